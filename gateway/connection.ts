/**
 * One client WebSocket: handshake, decoding and validation, routing to session actors, and
 * error answers. Any input, however malformed, ends in a typed error frame; nothing a client
 * sends can throw out of here.
 *
 *   awaiting-hello ──hello ok──▶ open ──gateway close()──▶ closing ──socket closed──▶ closed
 *        │ other frame / bad protocol / bad token                                      ▲
 *        └─────────────────────────── error + close ────────────────────────────────────┘
 */
import type { Logger } from 'pino';
import { decodeFrame, decodeServerFrame, encodeFrame, messageBytes } from '../protocol/codec';
import { ERROR_REGISTRY, SpoolError, formatBytes } from '../protocol/errors';
import { parseToken, type TokenParts } from '../protocol/token';
import {
  PROTOCOL_VERSION,
  SUBPROTOCOL_JSON,
  type ClientFrame,
  type ServerFrame,
  type SessionId,
  type Subprotocol,
} from '../protocol/types';
import { rawRequestId, validateClientFrame } from '../protocol/validate';
import type { SessionActor } from './actor';
import type { GatewayConfig } from './config';
import type { Link } from './link';
import type { ActorRegistry } from './registry';
import type { SharedFrame } from './shared-frame';
import type { Metrics } from './telemetry';
import type { SocketHandlers, TransportSocket } from './transport';

export type ConnectionState = 'awaiting-hello' | 'open' | 'closing' | 'closed';

export interface ConnectionDeps {
  readonly id: string;
  readonly socket: TransportSocket;
  readonly config: GatewayConfig;
  readonly registry: ActorRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly onClosed: (connection: Connection) => void;
}

export class Connection implements Link, SocketHandlers {
  readonly id: string;
  private state: ConnectionState = 'awaiting-hello';
  private readonly protocol: Subprotocol;
  /** Tokens of generations opened on this connection. */
  private readonly channels = new Map<string, TokenParts>();
  /** Sessions this connection has touched (to detach from on close). */
  private readonly sessions = new Set<SessionId>();

  private handshakeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: ConnectionDeps) {
    this.id = deps.id;
    this.protocol = deps.socket.protocol ?? SUBPROTOCOL_JSON;
    if (deps.socket.protocol === null) {
      this.sendError(new SpoolError('UNSUPPORTED_PROTOCOL', "offer the WebSocket subprotocol 'spool.v1' (msgpack) or 'spool.v1.json'"));
      return;
    }
    // A socket that never says hello holds resources without being accountable for them.
    this.handshakeTimer = setTimeout(() => {
      if (this.state === 'awaiting-hello') this.sendError(new SpoolError('HANDSHAKE_REQUIRED', `no hello within ${deps.config.handshakeTimeoutMs} ms`));
    }, deps.config.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  // ------------------------------------------------------------------ Link

  send(frame: ServerFrame): void {
    if (this.state === 'closed') return;
    this.deps.socket.send(encodeFrame(frame, this.protocol));
  }

  sendShared(frame: SharedFrame): void {
    if (this.state === 'closed') return;
    this.deps.socket.send(frame.encoded(this.protocol));
  }

  sendError(error: SpoolError, ref?: string, requestId?: number): void {
    const entry = ERROR_REGISTRY[error.code];
    this.deps.metrics.errorsSent.inc(1, { code: error.code });
    const details = Object.keys(error.details).length ? { details: error.details } : {};
    this.send({
      type: 'error',
      ...(requestId !== undefined ? { id: requestId } : {}),
      code: error.code,
      message: error.message,
      retryable: entry.retryable,
      ...(ref !== undefined ? { ref } : {}),
      ...details,
    });
    if (entry.closes) this.closeSocket(entry.closeCode, error.message);
  }

  bufferedAmount(): number {
    return this.deps.socket.bufferedAmount();
  }

  onceDrained(lowWaterBytes: number, callback: () => void): void {
    this.deps.socket.onceDrained(lowWaterBytes, callback);
  }

  // ------------------------------------------------------------------ socket events

  onMessage(message: Uint8Array | string): void {
    if (this.state === 'closed') return;
    let raw: unknown;
    // Within maxFrameBytes, so a refused message may still be read for its request id (§3.2).
    let readable = false;
    try {
      const size = messageBytes(message);
      const max = this.deps.config.limits.maxFrameBytes;
      if (size > max) {
        throw new SpoolError('FRAME_TOO_LARGE', `frame of ${formatBytes(size)} exceeds maxFrameBytes (${formatBytes(max)})`, { limit: max });
      }
      readable = true;
      raw = decodeFrame(message, this.protocol);
      const frame = validateClientFrame(raw, this.deps.config.limits);
      this.dispatch(frame);
    } catch (error) {
      const id = rawRequestId(raw !== undefined ? raw : readable ? this.readUnchecked(message) : undefined);
      if (error instanceof SpoolError) {
        this.sendError(error, undefined, id);
      } else {
        this.deps.logger.error({ connection: this.id, err: error }, 'unexpected error handling a frame');
        this.sendError(new SpoolError('INTERNAL', 'internal error handling the frame'), undefined, id);
      }
    }
  }

  /**
   * A message decodeFrame refused, read without its checks (the way the SDK reads gateway frames),
   * so the BAD_FRAME can still name the request (§3.2); undefined when even that cannot read it.
   */
  private readUnchecked(message: Uint8Array | string): unknown {
    try {
      return decodeServerFrame(message, this.protocol);
    } catch {
      return undefined;
    }
  }

  onClose(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.setState('closed');
    clearTimeout(this.handshakeTimer);
    this.deps.logger.debug({ connection: this.id, code, reason }, 'connection closed');
    for (const session of this.sessions) {
      this.deps.registry.with(session, (actor) => actor.detach(this), () => {});
    }
    this.deps.onClosed(this);
  }

  /** Gateway shutdown, step 1: frames from now on are refused with SHUTTING_DOWN. */
  beginShutdown(): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.setState('closing');
  }

  /** Gateway shutdown, step 2 (after queued writes were acked): tell the client to come back later. */
  shutdown(): void {
    if (this.state === 'closed') return;
    this.setState('closing');
    this.sendError(new SpoolError('SHUTTING_DOWN', 'gateway is shutting down; reconnect'));
  }

  // ------------------------------------------------------------------ routing

  private dispatch(frame: ClientFrame): void {
    if (this.state === 'closing') throw new SpoolError('SHUTTING_DOWN', 'gateway is shutting down; reconnect');
    if (this.state === 'awaiting-hello') {
      if (frame.type !== 'hello') throw new SpoolError('HANDSHAKE_REQUIRED', `the first frame must be hello, got ${frame.type}`);
      this.hello(frame.protocol, frame.token, frame.id);
      return;
    }
    switch (frame.type) {
      case 'hello':
        throw new SpoolError('BAD_FRAME', 'hello was already received on this connection');
      case 'ping':
        this.send({ type: 'pong', ...(frame.id !== undefined ? { id: frame.id } : {}) });
        return;
      case 'open': {
        const { session, generation, id } = frame;
        let resume: TokenParts | undefined;
        if (frame.resume) {
          resume = parseToken(frame.resume.token);
          if (!resume || resume.session !== session || resume.generation !== generation) {
            throw new SpoolError('BAD_FRAME', 'resume.token does not belong to this session and generation');
          }
        }
        const options = {
          takeover: frame.takeover === true,
          ...(resume ? { resume } : {}),
          ...(frame.secret !== undefined ? { secret: frame.secret } : {}),
        };
        this.onActor(session, id, async (actor) => {
          const opened = await actor.open(this, generation, options, id);
          const parts = parseToken(opened.token);
          if (parts) this.channels.set(opened.token, parts);
          this.send(opened);
        });
        return;
      }
      case 'chunk':
      case 'chunks': {
        const parts = this.channel(frame.token, undefined);
        if (!parts) return;
        const items = frame.type === 'chunk' ? [frame] : frame.items;
        this.onActor(parts.session, undefined, (actor) => actor.write(this, parts, frame.seq, items));
        return;
      }
      case 'finish': {
        const parts = this.channel(frame.token, frame.id);
        if (!parts) return;
        this.onActor(parts.session, frame.id, async (actor) => {
          const finished = await actor.finish(this, parts, frame.seq, frame.status ?? 'done', frame.error);
          this.send({ ...finished, ...(frame.id !== undefined ? { id: frame.id } : {}) });
        });
        return;
      }
      case 'append':
        this.onActor(frame.session, frame.id, async (actor) => this.send(await actor.append(frame)));
        return;
      case 'subscribe':
        this.onActor(frame.session, frame.id, (actor) => actor.subscribe(this, frame.from, frame.id));
        return;
      case 'unsubscribe':
        this.onActor(frame.session, frame.id, (actor) => {
          actor.unsubscribe(this);
          this.send({ type: 'unsubscribed', ...(frame.id !== undefined ? { id: frame.id } : {}), session: frame.session });
        });
        return;
    }
  }

  private hello(protocol: number, token: string | undefined, id: number | undefined): void {
    if (protocol !== PROTOCOL_VERSION) {
      throw new SpoolError('UNSUPPORTED_PROTOCOL', `protocol ${protocol} is not supported; this gateway speaks ${PROTOCOL_VERSION}`);
    }
    const expected = this.deps.config.authToken;
    if (expected !== undefined && token !== expected) {
      throw new SpoolError('UNAUTHORIZED', token === undefined ? 'hello.token is required' : 'hello.token is not valid');
    }
    this.setState('open');
    clearTimeout(this.handshakeTimer);
    const c = this.deps.config;
    this.send({
      type: 'welcome',
      ...(id !== undefined ? { id } : {}),
      connectionId: this.id,
      protocol: 1,
      limits: { maxFrameBytes: c.limits.maxFrameBytes, maxBatchItems: c.limits.maxBatchItems },
      credit: c.credit,
      heartbeatMs: c.heartbeatMs,
    });
  }

  /**
   * The parts of a token opened on this connection; otherwise answers BAD_FRAME, with `ref` = the
   * generation when the token spells one (every chunk refusal names its generation, §7.2), and
   * returns undefined.
   */
  private channel(token: string, requestId: number | undefined): TokenParts | undefined {
    const parts = this.channels.get(token);
    if (parts) return parts;
    this.sendError(new SpoolError('BAD_FRAME', 'token was not opened on this connection; send open first'), parseToken(token)?.generation, requestId);
    return undefined;
  }

  /** Runs `fn` on the session's actor; a rejection or throw becomes an error frame for request `id`. */
  private onActor(session: SessionId, id: number | undefined, fn: (actor: SessionActor) => void | Promise<void>): void {
    this.sessions.add(session);
    const fail = (error: unknown): void => {
      if (this.state === 'closed') return;
      if (error instanceof SpoolError) {
        this.sendError(error, session, id);
      } else {
        this.deps.logger.error({ connection: this.id, session, err: error }, 'session operation failed');
        this.sendError(new SpoolError('STORE_UNAVAILABLE', 'could not load the session; retry'), session, id);
      }
    };
    this.deps.registry.with(
      session,
      (actor) => {
        try {
          const result = fn(actor);
          if (result) result.catch(fail);
        } catch (error) {
          fail(error);
        }
      },
      fail,
    );
  }

  private closeSocket(code: number, reason: string): void {
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.deps.socket.close(code, reason.slice(0, 120));
  }

  private setState(next: ConnectionState): void {
    if (next === this.state) return;
    this.deps.logger.debug({ connection: this.id }, `connection ${this.state} -> ${next}`);
    this.state = next;
  }
}
