/**
 * One reconnecting WebSocket to the gateway: handshake, app-level heartbeat, request/response
 * by numeric id, and full-jitter reconnect. It knows nothing of generations or subscriptions;
 * its single owner (a Generation, or the client's shared channel) re-issues its own work when
 * told the connection is open again.
 *
 *   idle ──start()──▶ connecting ──socket open──▶ handshaking ──welcome──▶ open
 *                         ▲                            │                    │
 *                         │ backoff timer              │ drop / timeout     │ drop / 2 silent heartbeats
 *                         └────────── backoff ◀────────┴────────────────────┘
 *   any ──close()──▶ closing ──▶ closed        any ──non-retryable close code──▶ closed (fatal)
 *
 * Its token (token.ts) is asked for on every attempt, once the socket is open, before the hello.
 * While open it refreshes in band before the token expires (`refresh` → `refreshed`). A close with
 * TOKEN_EXPIRED or UNAUTHORIZED reconnects with a fresh token once; a second one before a welcome
 * is final, and so is either with a token that cannot be renewed.
 */
import {
  DEFAULT_LIMITS,
  PROTOCOL_VERSION,
  ERROR_REGISTRY,
  SpoolError,
  codeOfClose,
  decodeServerFrame,
  encodeFrame,
  isErrorCode,
  type AnnouncedLimits,
  type ClientFrame,
  type Credit,
  type ErrorFrame,
  type ServerFrame,
  type Subprotocol,
  type WelcomeFrame,
} from '../protocol';
import { TokenSource, refreshDelay } from './token';
import { resolveTraceparent, type TraceparentOption } from './trace';
import { log, reconnectDelay, unrefTimer, type Backoff, type Logger, type Timer } from './util';

/**
 * The part of the WebSocket API the SDK uses; satisfied by the browser's WebSocket, Node 22's
 * global one and the `ws` package. Handlers take `any` events because the three implementations
 * type their event objects differently and the SDK reads only `data`, `code` and `reason`.
 */
export interface WebSocketLike {
  readonly protocol: string;
  binaryType: string;
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: drop the TCP connection without a closing handshake. */
  terminate?(): void;
}

export type WebSocketConstructor = new (url: string, protocols: string | string[]) => WebSocketLike;

/**
 * Picks the WebSocket implementation: the one passed in, else the runtime's global, else the
 * `ws` package (Node 20 has no global WebSocket). `ws` is required lazily and through a variable
 * so browser bundles never pull it in; a browser always has the global and never gets here.
 */
export function resolveWebSocket(explicit: WebSocketConstructor | undefined): WebSocketConstructor {
  if (explicit !== undefined) return explicit;
  const global = (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof global === 'function') return global as WebSocketConstructor;
  const moduleName = 'ws';
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = (typeof require === 'function' ? require(moduleName) : undefined) as
      | { WebSocket?: unknown; default?: unknown }
      | undefined;
    const ctor = mod?.WebSocket ?? mod?.default ?? mod;
    if (typeof ctor === 'function') return ctor as WebSocketConstructor;
  } catch {
    /* fall through to the error below */
  }
  throw new TypeError('no WebSocket implementation: pass options.WebSocket, or install the `ws` package on Node < 22');
}

/**
 * Flow-control credit assumed until `welcome` announces the real one (the gateway's defaults:
 * 1024 unacked chunks, 1 MiB of unacked chunk data per generation).
 */
export const DEFAULT_CREDIT: Credit = { frames: 1024, bytes: 1024 * 1024 };

/** Lifecycle of a Connection; see the diagram at the top of this file. */
export type ConnectionState = 'idle' | 'connecting' | 'handshaking' | 'open' | 'backoff' | 'closing' | 'closed';

/** Told of a connection's state changes and reconnects (the client's events and counters). */
export interface ConnectionObserver {
  onState(connection: string, previous: ConnectionState, state: ConnectionState): void;
  /** The connection is open again after it had been open and was lost. */
  onReconnect(connection: string): void;
}

/** Everything a Connection needs, resolved by the client from its options. */
export interface ConnectionOptions {
  readonly url: string;
  /** The client's token, shared by its connections. @default no token */
  readonly token?: TokenSource;
  readonly WebSocket: WebSocketConstructor;
  /** false: a drop is final. */
  readonly reconnect: Backoff | false;
  readonly subprotocol: Subprotocol;
  readonly logger?: Logger;
  /** Names the connection in logs ("shared", "generation g1"). */
  readonly name: string;
  /** Socket open + welcome must happen within this long, else the attempt is dropped. @default 10000 */
  readonly connectTimeoutMs?: number;
  readonly observer?: ConnectionObserver;
  /** Sent in every hello, read on every connection attempt (trace.ts). @default none */
  readonly traceparent?: TraceparentOption;
}

/** What a connection tells its owner. */
export interface ConnectionOwner {
  /** The handshake completed (first time or after a reconnect): (re-)issue your work now. */
  onOpen(welcome: WelcomeFrame): void;
  /** A frame that is not a reply to a pending request (acks, events, errors without id …). */
  onFrame(frame: ServerFrame): void;
  /**
   * The socket is gone. Without `fatal` a reconnect follows and `onOpen` will be called again;
   * pending requests were forgotten (not failed) so the owner re-issues them. With `fatal` the
   * connection is closed for good and pending requests were rejected with it.
   */
  onDown(fatal: SpoolError | undefined): void;
}

/** A request waiting for the reply that echoes its id. */
export interface PendingRequest {
  resolve(frame: ServerFrame): void;
  reject(error: SpoolError): void;
}

/** Codes about the connection's credential: the connection decides what they mean, never its owner. */
const AUTH_CODES: ReadonlySet<string> = new Set(['UNAUTHORIZED', 'TOKEN_EXPIRED', 'AUTH_UNAVAILABLE']);

/** Turns an `error` frame into the SpoolError it stands for (unknown codes become INTERNAL). */
export function errorFromFrame(frame: ErrorFrame): SpoolError {
  const message = typeof frame.message === 'string' ? frame.message : String(frame.code);
  if (isErrorCode(frame.code)) return new SpoolError(frame.code, message, frame.details ?? {});
  // A code from a newer gateway: INTERNAL, named in the message, retried only if the gateway says so
  // (a non-retryable refusal such as a per-session quota must not be retried forever).
  return new SpoolError('INTERNAL', `${String(frame.code)}: ${message}`, frame.details ?? {}, frame.retryable === true);
}

function isServerFrame(value: unknown): value is ServerFrame {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}

/** The message payload as bytes or text; null for shapes the SDK never asked for (Blob). */
function messagePayload(data: unknown): Uint8Array | string | null {
  if (typeof data === 'string') return data;
  // toString tags and isView work across realms (jest's vm, iframes), instanceof does not.
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') return new Uint8Array(data as ArrayBuffer);
  return null;
}

const CLOSE_WAIT_MS = 2000;

/** One reconnecting WebSocket with one owner; see the diagram at the top of this file. */
export class Connection {
  private stateValue: ConnectionState = 'idle';
  /** Bumped for every socket; events of an older socket are stale and ignored. */
  private attempt = 0;
  /** When the current outage began (ms since epoch, the first loss since the last welcome); drives the backoff. */
  private downSince: number | undefined;
  private socket: WebSocketLike | undefined;
  private welcomeFrame: WelcomeFrame | undefined;
  private readonly pending = new Map<number, PendingRequest>();
  private nextId = 1;
  private connectTimer: Timer | undefined;
  private backoffTimer: Timer | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private sawFrame = false;
  private silentBeats = 0;
  /** The error frame that announced the close now under way (its message beats "closed 4002"). */
  private closingError: SpoolError | undefined;
  private closeWaiters: Array<() => void> = [];
  private fatalError: SpoolError | undefined;
  /** A welcome was received before: the next one is a reconnect. */
  private wasOpen = false;
  /** Closes for UNAUTHORIZED / TOKEN_EXPIRED since the last welcome (one is retried with a fresh token). */
  private authFailures = 0;
  private refreshTimer: Timer | undefined;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly owner: ConnectionOwner,
  ) {}

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Why the connection closed for good (undefined while it lives or after a plain close()). */
  get failure(): SpoolError | undefined {
    return this.fatalError;
  }

  get isOpen(): boolean {
    return this.stateValue === 'open';
  }

  /** The latest welcome (kept across drops so limits stay known while reconnecting). */
  get welcome(): WelcomeFrame | undefined {
    return this.welcomeFrame;
  }

  get limits(): AnnouncedLimits {
    return this.welcomeFrame?.limits ?? DEFAULT_LIMITS;
  }

  get credit(): Credit {
    return this.welcomeFrame?.credit ?? DEFAULT_CREDIT;
  }

  /** Starts connecting if nothing has been started yet. */
  start(): void {
    if (this.stateValue === 'idle') this.connect();
  }

  /** Sends a frame if the connection is open; false otherwise (the owner re-sends on `onOpen`). */
  send(frame: ClientFrame): boolean {
    const socket = this.socket;
    if (this.stateValue !== 'open' || socket === undefined) return false;
    return this.sendOn(socket, frame);
  }

  /**
   * Sends a request with a fresh id and routes its reply (or error) to `pending`. Returns false
   * when not open; nothing is registered then, the owner issues it on the next `onOpen`.
   */
  request(frame: ClientFrame, pending: PendingRequest): boolean {
    if (this.stateValue !== 'open') return false;
    const id = this.nextId++;
    this.pending.set(id, pending);
    if (!this.send({ ...frame, id } as ClientFrame)) {
      this.pending.delete(id);
      return false;
    }
    return true;
  }

  /** Graceful and idempotent: stop reconnecting, close the socket after what is buffered. */
  close(): Promise<void> {
    if (this.stateValue === 'closed') return Promise.resolve();
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    if (this.stateValue === 'closing') return done;
    this.clearTimers();
    this.setState('closing');
    const socket = this.socket;
    if (socket === undefined) {
      this.finalClose(new SpoolError('CLOSED', `connection ${this.options.name} was closed`));
      return done;
    }
    const attempt = this.attempt;
    try {
      socket.close(1000, 'client closed');
    } catch {
      /* already closing */
    }
    // A peer that never answers the closing handshake must not hold close() hostage.
    this.connectTimer = setTimeout(() => {
      if (attempt !== this.attempt || this.stateValue !== 'closing') return;
      this.detach(socket, true);
      this.finalClose(new SpoolError('CLOSED', `connection ${this.options.name} was closed`));
    }, CLOSE_WAIT_MS);
    return done;
  }

  private setState(next: ConnectionState): void {
    const previous = this.stateValue;
    if (previous === next) return;
    this.stateValue = next;
    log(this.options.logger, 'debug', `spool connection ${this.options.name}: ${previous} -> ${next}`);
    this.options.observer?.onState(this.options.name, previous, next);
  }

  private connect(): void {
    const attempt = ++this.attempt;
    this.setState('connecting');
    const subprotocol = this.options.subprotocol;
    let socket: WebSocketLike;
    try {
      socket = new this.options.WebSocket(this.options.url, subprotocol);
      socket.binaryType = 'arraybuffer';
    } catch (error) {
      log(this.options.logger, 'warn', `spool connection ${this.options.name}: cannot create WebSocket`, { error: String(error) });
      this.dropped(attempt, undefined, String(error));
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (attempt !== this.attempt) return;
      this.setState('handshaking');
      this.withToken(attempt, 'handshaking', (token) => {
        const traceparent = resolveTraceparent(this.options.traceparent, this.options.logger);
        this.sendOn(socket, {
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          client: 'spool-js',
          ...(token !== undefined ? { token } : {}),
          ...(traceparent !== undefined ? { traceparent } : {}),
        });
      });
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (attempt === this.attempt) this.receive(event.data);
    };
    socket.onclose = (event: { code?: number; reason?: string }) => this.dropped(attempt, event.code, event.reason ?? '');
    // The close event always follows an error and carries everything the SDK acts on.
    socket.onerror = () => undefined;
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    this.connectTimer = setTimeout(() => this.abandon(attempt, `no welcome within ${timeoutMs} ms`), timeoutMs);
  }

  /**
   * Runs `then` with a token for this attempt, once the token source has one, if the attempt is
   * still the current one and still in `state`. A token function that fails drops the attempt
   * (handshaking) and the backoff retries it; a failed refresh is logged (the gateway's
   * TOKEN_EXPIRED at `exp` then leads to a reconnect, which asks again).
   */
  private withToken(attempt: number, state: 'handshaking' | 'open', then: (token: string | undefined) => void): void {
    const failed = (error: unknown): void => {
      if (attempt !== this.attempt || this.stateValue !== state) return;
      log(this.options.logger, 'warn', `spool connection ${this.options.name}: the token function failed`, { error: String(error) });
      if (state === 'handshaking') this.abandon(attempt, 'no token');
    };
    let token: string | undefined | Promise<string>;
    try {
      token = this.options.token?.get();
    } catch (error) {
      failed(error);
      return;
    }
    if (!(token instanceof Promise)) {
      then(token);
      return;
    }
    token.then((value) => {
      if (attempt === this.attempt && this.stateValue === state) then(value);
    }, failed);
  }

  /** Refreshes the token in band a while before it expires (PROTOCOL §4.6), when it can be renewed. */
  private scheduleRefresh(attempt: number, expiresInMs: number | undefined): void {
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    if (expiresInMs === undefined || this.options.token?.renewable !== true) return;
    this.refreshTimer = unrefTimer(
      setTimeout(() => {
        this.refreshTimer = undefined;
        if (attempt !== this.attempt || this.stateValue !== 'open') return;
        this.withToken(attempt, 'open', (token) => {
          if (token === undefined) return;
          this.request(
            { type: 'refresh', token },
            {
              resolve: (reply) => {
                if (reply.type === 'refreshed' && attempt === this.attempt) this.scheduleRefresh(attempt, reply.expiresInMs);
              },
              // UNAUTHORIZED / TOKEN_EXPIRED close the socket and lead to a reconnect; FORBIDDEN
              // (another sub) keeps the connection until its token expires, then the same.
              reject: (error) => log(this.options.logger, 'warn', `spool connection ${this.options.name}: token refresh refused: ${error.code}`, { message: error.message }),
            },
          );
        });
      }, refreshDelay(expiresInMs)),
    );
  }

  private sendOn(socket: WebSocketLike, frame: ClientFrame): boolean {
    try {
      socket.send(encodeFrame(frame, this.options.subprotocol));
      return true;
    } catch (error) {
      // A socket that fails to send is broken; its close event drives the reconnect.
      log(this.options.logger, 'warn', `spool connection ${this.options.name}: send failed`, { error: String(error) });
      return false;
    }
  }

  private receive(data: unknown): void {
    const payload = messagePayload(data);
    if (payload === null) return;
    let frame: unknown;
    try {
      frame = decodeServerFrame(payload, this.options.subprotocol);
    } catch {
      log(this.options.logger, 'warn', `spool connection ${this.options.name}: undecodable frame dropped`);
      return;
    }
    if (!isServerFrame(frame)) {
      log(this.options.logger, 'warn', `spool connection ${this.options.name}: frame without type dropped`);
      return;
    }
    this.sawFrame = true;
    if (frame.type === 'pong') return;
    if (frame.type === 'welcome') {
      if (this.stateValue === 'handshaking') this.welcomed(frame);
      return;
    }
    if (frame.type === 'error') {
      const error = errorFromFrame(frame);
      if (frame.id !== undefined) {
        const pending = this.pending.get(frame.id);
        if (pending !== undefined) {
          this.pending.delete(frame.id);
          pending.reject(error);
          return;
        }
      }
      // Errors that close the socket arrive just before the close; keep the richer message.
      if (ERROR_REGISTRY[error.code].closes) this.closingError = error;
      // The close that follows an auth error decides (reconnect with a fresh token, or give up).
      if (AUTH_CODES.has(error.code)) return;
      if (this.stateValue === 'open' && frame.id === undefined) this.owner.onFrame(frame);
      else if (frame.id !== undefined) log(this.options.logger, 'debug', `spool connection ${this.options.name}: error for a forgotten request`, { code: error.code });
      return;
    }
    if (this.stateValue !== 'open') return;
    const id = (frame as { id?: unknown }).id;
    if (typeof id === 'number') {
      const pending = this.pending.get(id);
      if (pending !== undefined) {
        this.pending.delete(id);
        pending.resolve(frame);
      }
      // A reply nobody waits for belongs to a request issued on an earlier socket: drop it.
      return;
    }
    this.owner.onFrame(frame);
  }

  private welcomed(welcome: WelcomeFrame): void {
    this.clearConnectTimer();
    this.welcomeFrame = welcome;
    this.downSince = undefined;
    this.closingError = undefined;
    this.authFailures = 0;
    this.setState('open');
    if (this.wasOpen) this.options.observer?.onReconnect(this.options.name);
    this.wasOpen = true;
    this.startHeartbeat(this.attempt, welcome.heartbeatMs);
    this.scheduleRefresh(this.attempt, welcome.expiresInMs);
    this.owner.onOpen(welcome);
  }

  /**
   * App-level heartbeat: a ping every heartbeatMs; a connection from which nothing at all
   * arrived during two whole intervals is dead (a half-open TCP connection never closes itself).
   * One interval timer per connection rather than a timer reset per frame.
   */
  private startHeartbeat(attempt: number, heartbeatMs: number): void {
    if (!(heartbeatMs > 0)) return;
    this.sawFrame = true;
    this.silentBeats = 0;
    this.heartbeatTimer = unrefTimer(
      setInterval(() => {
        if (attempt !== this.attempt) return;
        if (this.sawFrame) this.silentBeats = 0;
        else if (++this.silentBeats >= 2) {
          this.abandon(attempt, `no frame for ${2 * heartbeatMs} ms`);
          return;
        }
        this.sawFrame = false;
        this.send({ type: 'ping' });
      }, heartbeatMs),
    );
  }

  /** Gives up on a socket that looks dead and goes straight to the reconnect path. */
  private abandon(attempt: number, why: string): void {
    if (attempt !== this.attempt) return;
    const socket = this.socket;
    log(this.options.logger, 'warn', `spool connection ${this.options.name}: ${why}; reconnecting`);
    if (socket !== undefined) this.detach(socket, true);
    this.dropped(attempt, undefined, why);
  }

  /** Stops listening to a socket and makes sure it goes away. */
  private detach(socket: WebSocketLike, force: boolean): void {
    socket.onopen = socket.onmessage = socket.onclose = null;
    socket.onerror = () => undefined;
    if (force) {
      try {
        if (socket.terminate !== undefined) socket.terminate();
        else socket.close();
      } catch {
        /* already gone */
      }
    }
    if (this.socket === socket) this.socket = undefined;
  }

  private dropped(attempt: number, code: number | undefined, reason: string): void {
    if (attempt !== this.attempt) return;
    if (this.socket !== undefined) this.detach(this.socket, false);
    this.clearTimers();
    const closingError = this.closingError;
    this.closingError = undefined;
    if (this.stateValue === 'closing' || this.stateValue === 'closed') {
      this.finalClose(new SpoolError('CLOSED', `connection ${this.options.name} was closed`));
      return;
    }
    const registryCode = code === undefined ? undefined : codeOfClose(code);
    let fatal: SpoolError | undefined;
    if (registryCode === 'UNAUTHORIZED' || registryCode === 'TOKEN_EXPIRED') {
      fatal = this.authFailure(registryCode, closingError, code as number, reason);
    } else if (registryCode !== undefined && !ERROR_REGISTRY[registryCode].retryable) {
      fatal =
        closingError?.code === registryCode
          ? closingError
          : new SpoolError(registryCode, `gateway closed the connection with ${registryCode} (${code})${reason ? `: ${reason}` : ''}`);
    } else if (this.options.reconnect === false) {
      fatal =
        registryCode !== undefined
          ? (closingError ?? new SpoolError(registryCode, `gateway closed the connection with ${registryCode}`))
          : new SpoolError('CLOSED', `connection lost (close code ${code ?? 'none'}) and reconnect is disabled`);
    }
    if (fatal !== undefined) {
      log(this.options.logger, 'error', `spool connection ${this.options.name}: ${fatal.message}; not reconnecting`, { code: fatal.code });
      this.finalClose(fatal);
      return;
    }
    // Requests of the lost socket are forgotten, not failed: their owners re-issue them.
    this.pending.clear();
    const now = Date.now();
    this.downSince ??= now;
    const delay = reconnectDelay(now - this.downSince, this.options.reconnect as Backoff);
    log(this.options.logger, 'info', `spool connection ${this.options.name}: lost (${code ?? 'no close code'}), reconnecting in ${delay} ms`);
    this.setState('backoff');
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      if (attempt === this.attempt && this.stateValue === 'backoff') this.connect();
    }, delay);
    this.owner.onDown(undefined);
  }

  /**
   * A close for the token: undefined (reconnect, asking the token function again) the first time
   * since the last welcome when the token can be renewed; otherwise the error to give up with.
   */
  private authFailure(registryCode: 'UNAUTHORIZED' | 'TOKEN_EXPIRED', closingError: SpoolError | undefined, code: number, reason: string): SpoolError | undefined {
    const renewable = this.options.token?.renewable === true;
    if (renewable && this.options.reconnect !== false && this.authFailures === 0) {
      this.authFailures++;
      log(this.options.logger, 'info', `spool connection ${this.options.name}: ${registryCode}, reconnecting with a fresh token`);
      return undefined;
    }
    if (closingError?.code === registryCode) return closingError;
    const why = renewable ? 'a fresh token was refused too' : 'a string token cannot be renewed; pass a function as token';
    return new SpoolError(registryCode, `gateway closed the connection with ${registryCode} (${code})${reason ? `: ${reason}` : ''}; ${why}`);
  }

  private finalClose(error: SpoolError): void {
    this.clearTimers();
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.attempt++;
    const wasClosing = this.stateValue === 'closing';
    if (!wasClosing) this.fatalError = error;
    this.setState('closed');
    for (const request of pending) request.reject(error);
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const resolve of waiters) resolve();
    // An owner that closed its own connection already knows; anything else is news to it.
    if (!wasClosing) this.owner.onDown(error);
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }

  private clearTimers(): void {
    this.clearConnectTimer();
    if (this.backoffTimer !== undefined) clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
  }
}
