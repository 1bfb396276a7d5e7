/**
 * One client WebSocket: handshake, decoding and validation, routing to session actors, and
 * error answers. Any input, however malformed, ends in a typed error frame; nothing a client
 * sends can throw out of here.
 *
 *   awaiting-hello ──hello ok──▶ open ──gateway close()──▶ closing ──socket closed──▶ closed
 *        │ other frame / bad protocol / bad token   │ token expired                    ▲
 *        └─────────────────────────── error + close ┴──────────────────────────────────┘
 *
 * Every frame is authorized against the connection's Identity (auth.ts) before it reaches an
 * actor: out of scope is FORBIDDEN and nothing of it is stored or delivered. While a token is
 * being verified (a JWT's hello or refresh: verification is asynchronous), the frames that arrive
 * are held, in order, and run once it is done, so pipelined frames see the verified identity.
 */
import type { Logger } from 'pino';
import { decodeFrame, decodeUnchecked, encodeFrame, messageBytes } from '../protocol/codec';
import { ERROR_REGISTRY, SpoolError, formatBytes } from '../protocol/errors';
import { parseToken, type TokenParts } from '../protocol/token';
import {
  PROTOCOL_VERSION,
  SUBPROTOCOL_JSON,
  type ChunkItem,
  type ClientFrame,
  type ServerFrame,
  type SessionId,
  type Subprotocol,
} from '../protocol/types';
import { rawRequestId, validateClientFrame } from '../protocol/validate';
import type { SessionActor } from './actor';
import type { Authenticator, Identity } from './auth';
import type { GatewayConfig } from './config';
import type { EdgeGuard } from './edge/guard';
import { Holdings } from './edge/holdings';
import { appendCharge, chunksCharge, OPEN_CHARGE, type QuotaAccount, type Quotas, type WriteCharge } from './edge/quotas';
import type { GatedHandlers } from './edge/inbound-gate';
import type { Link } from './link';
import type { ActorRegistry } from './registry';
import type { SharedFrame } from './shared-frame';
import { dataSize } from './size';
import type { Capability } from './scopes';
import { frameLogIds } from './log-fields';
import type { GatewayTracing, Metrics } from './telemetry';
import type { TransportSocket } from './transport';

export type ConnectionState = 'awaiting-hello' | 'open' | 'closing' | 'closed';

export interface ConnectionDeps {
  readonly id: string;
  readonly socket: TransportSocket;
  readonly config: GatewayConfig;
  readonly registry: ActorRegistry;
  readonly authenticator: Authenticator;
  readonly metrics: Metrics;
  /** Spans (tracing.ts): told which trace an open or subscribe continues. Unset without tracing. */
  readonly tracing?: GatewayTracing;
  readonly logger: Logger;
  /** The edge's accounting (edge/guard.ts): told when the connection is welcomed, asked before a token is checked. */
  readonly edge?: EdgeGuard;
  /** Per-identity write quotas (edge/quotas.ts); unset: none. */
  readonly quotas?: Quotas;
  readonly onClosed: (connection: Connection) => void;
}

/** A frame (or the refusal of one) that arrived while a token was being verified. */
type HeldFrame =
  | { readonly frame: ClientFrame; readonly bytes: number }
  /** `read`: the refused frame as far as it could be read, for the log line. */
  | { readonly error: unknown; readonly id: number | undefined; readonly bytes: 0; readonly read: unknown };

/** Most frames held while one token is verified; past either bound a frame is refused with RATE_LIMITED. */
const MAX_HELD_FRAMES = 1024;

/**
 * Frames refused before any hello that a connection may send; past it the connection is closed
 * (HANDSHAKE_REQUIRED). A client's first valid frame is its hello, so only a broken or hostile peer
 * sends many invalid ones first, each of which would cost a decode and a reply (PROTOCOL §4.1).
 */
const MAX_REFUSED_BEFORE_HELLO = 16;

/** How long a closed connection's peer has to answer the close frame before its socket is dropped. */
const CLOSE_GRACE_MS = 5_000;

/** setTimeout's longest delay; a token valid for longer re-arms its expiry timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Connection implements Link, GatedHandlers {
  readonly id: string;
  readonly remoteAddress: string;
  private state: ConnectionState = 'awaiting-hello';
  private readonly protocol: Subprotocol;
  /**
   * Subscriptions and generations held on this connection, within its limits: tokens of
   * generations opened here; sessions subscribed to (a refresh that narrows `read` ends the ones
   * it no longer covers).
   */
  private readonly holdings: Holdings;
  /** Sessions this connection has touched (to detach from on close). */
  private readonly sessions = new Set<SessionId>();
  /** Who the connection is, from the hello on. */
  private identity: Identity | undefined;
  /** What its writes count against: its `sub`'s account, or (open and shared-token gateways) its own. */
  private quota: QuotaAccount | undefined;
  /** Per generation token: the seq after the last chunk counted against the quota, so a chunk resent here counts once. */
  private readonly chargedSeqs = new Map<string, number>();
  /** The hello's W3C trace context: the parent of opens and subscribes that carry none. */
  private traceparent: string | undefined;
  /** Defined while a token is being verified: frames wait here, in order. */
  private held: HeldFrame[] | undefined;
  private heldBytes = 0;

  /** A hello frame arrived (verified or not). */
  private helloSeen = false;
  private refusedBeforeHello = 0;
  /** An error that closes the connection was sent: nothing it sends from then on is read (§4.1, §4.4). */
  private closeSent = false;
  /**
   * The frame being handled (decoded or, when refused, as far as it could be read), while it is
   * handled synchronously or its actor call is answered: log lines about it name its ids.
   */
  private handling: unknown;

  private handshakeTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: ConnectionDeps) {
    this.id = deps.id;
    this.remoteAddress = deps.socket.remoteAddress;
    this.holdings = new Holdings(deps.config);
    this.protocol = deps.socket.protocol ?? SUBPROTOCOL_JSON;
    deps.logger.debug({ connectionId: this.id, remoteAddress: this.remoteAddress, subprotocol: deps.socket.protocol }, 'connection opened');
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
    // Refused frames and protocol errors, at debug (SPOOL_LOG_LEVEL=debug).
    if (this.deps.logger.isLevelEnabled('debug')) {
      this.deps.logger.debug(
        {
          ...this.logIds(this.handling),
          ...(requestId !== undefined ? { requestId } : {}),
          ...(ref !== undefined ? { ref } : {}),
          code: error.code,
          retryable: entry.retryable,
          ...(entry.closes ? { closeCode: entry.closeCode } : {}),
          reason: error.message,
        },
        'error sent',
      );
    }
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
    if (entry.closes) {
      this.closeSent = true;
      this.closeSocket(entry.closeCode, error.message);
    }
  }

  bufferedAmount(): number {
    return this.deps.socket.bufferedAmount();
  }

  onceDrained(lowWaterBytes: number, callback: () => void): void {
    this.deps.socket.onceDrained(lowWaterBytes, callback);
  }

  // ------------------------------------------------------------------ socket events

  onMessage(message: Uint8Array | string): void {
    if (this.state === 'closed' || this.closeSent) return;
    let raw: unknown;
    // Within maxFrameBytes, so a refused message may still be read for its request id (§3.2).
    let readable = false;
    let size = 0;
    try {
      size = messageBytes(message);
      const max = this.deps.config.limits.maxFrameBytes;
      if (size > max) {
        throw new SpoolError('FRAME_TOO_LARGE', `frame of ${formatBytes(size)} exceeds maxFrameBytes (${formatBytes(max)})`, { limit: max });
      }
      readable = true;
      raw = decodeFrame(message, this.protocol);
      this.handling = raw;
      const frame = validateClientFrame(raw, this.deps.config.limits);
      if (this.held !== undefined) this.hold({ frame, bytes: size }, rawRequestId(frame));
      else this.dispatch(frame, size);
    } catch (error) {
      const read = raw !== undefined ? raw : readable ? this.readUnchecked(message) : undefined;
      const id = rawRequestId(read);
      this.handling = read;
      // A refusal keeps its place among held frames, so replies come in the order frames did.
      if (this.held !== undefined) this.hold({ error, id, bytes: 0, read }, id);
      else if (!this.helloSeen && ++this.refusedBeforeHello > MAX_REFUSED_BEFORE_HELLO) {
        this.sendError(new SpoolError('HANDSHAKE_REQUIRED', `more than ${MAX_REFUSED_BEFORE_HELLO} invalid frames before hello`), undefined, id);
      } else this.fail(error, id);
    } finally {
      this.handling = undefined;
    }
  }

  /** Answers a frame that failed with `error`: its code, or INTERNAL for anything unexpected. */
  private fail(error: unknown, requestId: number | undefined): void {
    if (error instanceof SpoolError) {
      this.sendError(error, undefined, requestId);
    } else {
      this.deps.logger.error({ ...this.logIds(this.handling), requestId, err: error }, 'unexpected error handling a frame');
      this.sendError(new SpoolError('INTERNAL', 'internal error handling the frame'), undefined, requestId);
    }
  }

  /**
   * A message decodeFrame refused, read without its checks (msgpack maps with keys of any type
   * included), so the BAD_FRAME can still name the request (§3.2); undefined when even that cannot read it.
   */
  private readUnchecked(message: Uint8Array | string): unknown {
    return decodeUnchecked(message, this.protocol);
  }

  /** A message the edge's gate did not deliver (RATE_LIMITED): answered in its place among held frames. */
  refuse(message: Uint8Array | string, error: SpoolError): void {
    if (this.state === 'closed' || this.closeSent) return;
    const read = this.readUnchecked(message);
    const id = rawRequestId(read);
    if (this.held !== undefined) this.hold({ error, id, bytes: 0, read }, id);
    else this.about(read, () => this.fail(error, id));
  }

  /** The edge's gate gave up on a peer that does not read: told why (should it ever read), then dropped. */
  cut(error: SpoolError): void {
    if (this.state === 'closed') return;
    this.deps.logger.warn({ connectionId: this.id, remoteAddress: this.remoteAddress, code: error.code }, error.message);
    this.sendError(error);
    this.deps.socket.terminate();
  }

  /** The gateway is at maxConnections and this connection has not said hello: it gives way (edge/guard.ts). */
  evict(): void {
    if (this.state !== 'awaiting-hello') return;
    this.sendError(new SpoolError('HANDSHAKE_REQUIRED', 'the gateway is at its connection limit and this connection had not sent hello; reconnect and send hello at once'));
    // Dropped now, not after the closing handshake: its socket is the room being made (the error
    // and close frames are already handed to the kernel; an idle peer has nothing queued before them).
    this.deps.socket.terminate();
  }

  onClose(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.setState('closed');
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.expiryTimer);
    clearTimeout(this.closeTimer);
    this.held = undefined;
    if (this.quota !== undefined && this.identity?.subject === undefined) this.deps.quotas?.release(this.quota);
    this.deps.logger.debug({ connectionId: this.id, remoteAddress: this.remoteAddress, closeCode: code, reason }, 'connection closed');
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

  /** Routes a valid frame of `bytes` (its size as received). */
  private dispatch(frame: ClientFrame, bytes: number): void {
    if (this.state === 'closing') throw new SpoolError('SHUTTING_DOWN', 'gateway is shutting down; reconnect');
    if (this.state === 'awaiting-hello') {
      if (frame.type !== 'hello') throw new SpoolError('HANDSHAKE_REQUIRED', `the first frame must be hello, got ${frame.type}`);
      this.helloSeen = true;
      this.traceparent = frame.traceparent;
      this.hello(frame.protocol, frame.token, frame.id);
      return;
    }
    switch (frame.type) {
      case 'hello':
        throw new SpoolError('BAD_FRAME', 'hello was already received on this connection');
      case 'ping':
        this.send({ type: 'pong', ...(frame.id !== undefined ? { id: frame.id } : {}) });
        return;
      case 'refresh':
        this.refresh(frame.token, frame.id);
        return;
      case 'open': {
        const { session, generation, id } = frame;
        if (!this.permits('write', session, session, id)) return;
        if (frame.takeover === true && !this.permits('takeover', session, session, id)) return;
        let resume: TokenParts | undefined;
        if (frame.resume) {
          resume = parseToken(frame.resume.token);
          if (!resume || resume.session !== session || resume.generation !== generation) {
            throw new SpoolError('BAD_FRAME', 'resume.token does not belong to this session and generation');
          }
        }
        // A resume starts nothing; any other open may store a gen.start and, later, its gen.end.
        if (!resume && !this.withinQuota(session, OPEN_CHARGE, session, id)) return;
        const overLimit = this.holdings.reserveGeneration(session, generation);
        if (overLimit) {
          this.sendError(overLimit, session, id);
          return;
        }
        const options = {
          takeover: frame.takeover === true,
          ...(resume ? { resume } : {}),
          ...(frame.secret !== undefined ? { secret: frame.secret } : {}),
        };
        this.deps.tracing?.opening(session, generation, this.id, frame.traceparent ?? this.traceparent);
        this.onActor(
          session,
          id,
          async (actor) => {
            const opened = await actor.open(this, generation, options, id);
            const parts = parseToken(opened.token);
            if (parts) this.holdings.opened(opened.token, parts);
            this.send(opened);
            if (this.deps.logger.isLevelEnabled('debug')) {
              this.deps.logger.debug(
                { ...this.logIds(frame), takeover: options.takeover, resumed: opened.resumed, offset: opened.offset, nextSeq: opened.nextSeq },
                'generation opened',
              );
            }
          },
          () => this.holdings.openFailed(session, generation),
        );
        return;
      }
      case 'chunk':
      case 'chunks': {
        const parts = this.channel(frame.token, undefined);
        if (!parts || !this.permits('write', parts.session, parts.generation, undefined)) return;
        const items = frame.type === 'chunk' ? [frame] : frame.items;
        if (!this.chunksWithinQuota(frame.token, parts, frame.seq, items, bytes)) return;
        this.onActor(parts.session, undefined, (actor) => actor.write(this, parts, frame.seq, items));
        return;
      }
      case 'finish': {
        const parts = this.channel(frame.token, frame.id);
        if (!parts || !this.permits('write', parts.session, parts.generation, frame.id)) return;
        this.onActor(parts.session, frame.id, async (actor) => {
          const finished = await actor.finish(this, parts, frame.seq, frame.status ?? 'done', frame.error);
          this.holdings.finished(parts);
          this.chargedSeqs.delete(frame.token);
          this.send({ ...finished, ...(frame.id !== undefined ? { id: frame.id } : {}) });
          if (this.deps.logger.isLevelEnabled('debug')) this.deps.logger.debug({ ...this.logIds(frame), status: finished.status, offset: finished.offset }, 'generation finished');
        });
        return;
      }
      case 'append':
        if (!this.permits('write', frame.session, frame.session, frame.id)) return;
        if (this.quota !== undefined && !this.withinQuota(frame.session, appendCharge(frame.priority, frame.data, bytes, dataSize), frame.session, frame.id)) return;
        this.onActor(frame.session, frame.id, async (actor) => this.send(await actor.append(frame)));
        return;
      case 'subscribe':
        if (!this.permits('read', frame.session, frame.session, frame.id)) return;
        {
          const overLimit = this.holdings.subscribe(frame.session);
          if (overLimit) {
            this.sendError(overLimit, frame.session, frame.id);
            return;
          }
        }
        this.deps.tracing?.subscribing(frame.session, this.id, frame.traceparent ?? this.traceparent);
        if (this.deps.logger.isLevelEnabled('debug')) this.deps.logger.debug({ ...this.logIds(frame), from: frame.from }, 'subscribe');
        this.onActor(frame.session, frame.id, (actor) => actor.subscribe(this, frame.from, frame.id));
        return;
      case 'unsubscribe':
        this.holdings.unsubscribe(frame.session);
        // A session this connection never touched has no subscription of it: nothing to load.
        if (!this.sessions.has(frame.session)) {
          this.send({ type: 'unsubscribed', ...(frame.id !== undefined ? { id: frame.id } : {}), session: frame.session });
          return;
        }
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
    this.verifyThen(token, id, (identity) => {
      if (this.state !== 'awaiting-hello') return; // shutting down meanwhile: shutdown() answers
      this.setState('open');
      clearTimeout(this.handshakeTimer);
      this.deps.edge?.welcomed(this);
      const c = this.deps.config;
      const expiresInMs = this.grant(identity);
      this.send({
        type: 'welcome',
        ...(id !== undefined ? { id } : {}),
        connectionId: this.id,
        protocol: 1,
        limits: { maxFrameBytes: c.limits.maxFrameBytes, maxBatchItems: c.limits.maxBatchItems },
        credit: c.credit,
        heartbeatMs: c.heartbeatMs,
        ...(expiresInMs !== undefined ? { expiresInMs } : {}),
      });
    });
  }

  // ------------------------------------------------------------------ identity

  /**
   * A new token for the open connection (PROTOCOL §4.5): it must verify and name the same `sub`;
   * its scopes replace the old ones (subscriptions it no longer covers end with FORBIDDEN) and its
   * `exp` re-arms the expiry.
   */
  private refresh(token: string, id: number | undefined): void {
    this.verifyThen(token, id, (identity) => {
      if (this.state !== 'open') return;
      if (identity.subject !== this.identity?.subject) {
        this.sendError(new SpoolError('FORBIDDEN', 'a refresh must keep the connection\'s subject (sub); open a new connection for another identity'), undefined, id);
        return;
      }
      const expiresInMs = this.grant(identity);
      this.endUnreadable();
      this.send({ type: 'refreshed', ...(id !== undefined ? { id } : {}), ...(expiresInMs !== undefined ? { expiresInMs } : {}) });
    });
  }

  /**
   * Runs `then` with the identity `token` proves, or answers the refusal (whose codes close the
   * connection). Open and shared-token gateways verify synchronously; while a JWT is verified,
   * arriving frames are held and run afterwards, in order. A failed verification discards them,
   * as a failed hello discards what was pipelined after it (§4.1).
   */
  private verifyThen(token: string | undefined, id: number | undefined, then: (identity: Identity) => void): void {
    const edge = this.deps.edge;
    if (edge !== undefined && !edge.mayAuthenticate(this.remoteAddress)) {
      throw new SpoolError('AUTH_THROTTLED', 'too many refused tokens from this address; the token was not checked: wait, then reconnect with a valid one');
    }
    let verified: Identity | Promise<Identity>;
    try {
      verified = this.deps.authenticator.verify(token);
    } catch (error) {
      this.noteRefused(error);
      throw error;
    }
    if (!(verified instanceof Promise)) {
      then(verified);
      return;
    }
    this.held = [];
    verified.then(
      (identity) => {
        if (this.state === 'closed') return;
        then(identity);
        this.release();
      },
      (error: unknown) => {
        this.noteRefused(error);
        if (this.state === 'closed') return;
        this.held = undefined;
        this.heldBytes = 0;
        if (error instanceof SpoolError) {
          this.sendError(error, undefined, id);
        } else {
          this.deps.logger.error({ connectionId: this.id, remoteAddress: this.remoteAddress, err: error }, 'token verification failed unexpectedly');
          this.sendError(new SpoolError('AUTH_UNAVAILABLE', 'the token could not be verified; reconnect'), undefined, id);
        }
      },
    );
  }

  /** A refused token (not an expired one, nor an unreachable key set) spends from the address's failure budget. */
  private noteRefused(error: unknown): void {
    if (error instanceof SpoolError && error.code === 'UNAUTHORIZED') this.deps.edge?.authFailed(this.remoteAddress);
  }

  /** Holds a frame that arrived during a verification, within MAX_HELD_FRAMES and 4 × maxFrameBytes. */
  private hold(entry: HeldFrame, id: number | undefined): void {
    const held = this.held as HeldFrame[];
    const maxBytes = 4 * this.deps.config.limits.maxFrameBytes;
    if (held.length >= MAX_HELD_FRAMES || this.heldBytes + entry.bytes > maxBytes) {
      this.sendError(new SpoolError('RATE_LIMITED', `more than ${MAX_HELD_FRAMES} frames or ${formatBytes(maxBytes)} sent while the token was verified; wait for welcome (or refreshed), then resend`), undefined, id);
      return;
    }
    held.push(entry);
    this.heldBytes += entry.bytes;
  }

  /** Runs the frames held during a verification, in order, until one starts another verification. */
  private release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.heldBytes = 0;
    for (let i = 0; i < held.length; i++) {
      if (this.state === 'closed' || this.closeSent) return;
      if (this.held !== undefined) {
        // A held refresh started verifying: the rest wait for it, ahead of anything newer.
        this.held = held.slice(i);
        this.heldBytes = this.held.reduce((n, e) => n + e.bytes, 0);
        return;
      }
      const entry = held[i] as HeldFrame;
      if ('frame' in entry) {
        this.about(entry.frame, () => {
          try {
            this.dispatch(entry.frame, entry.bytes);
          } catch (error) {
            this.fail(error, rawRequestId(entry.frame));
          }
        });
      } else {
        this.about(entry.read, () => this.fail(entry.error, entry.id));
      }
    }
  }

  /** Makes `identity` the connection's and arms its expiry; returns ms until it expires (undefined: never). */
  private grant(identity: Identity): number | undefined {
    this.identity = identity;
    const quotas = this.deps.quotas;
    if (quotas !== undefined) {
      // A JWT's sub shares one account across its connections (a refresh brings its new quota);
      // without identities, each connection counts on its own (README "Security").
      if (identity.subject !== undefined) this.quota = quotas.subjectAccount(identity.subject, identity.quota);
      else this.quota ??= quotas.connectionAccount(this.id);
    }
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (identity.expiresAt === undefined) return undefined;
    const expiresInMs = Math.max(0, identity.expiresAt - this.deps.config.clock());
    this.armExpiry(identity.expiresAt, expiresInMs);
    return expiresInMs;
  }

  /** At `expiresAt` the connection is told TOKEN_EXPIRED and closed (4021), unless a refresh came first. */
  private armExpiry(expiresAt: number, inMs: number): void {
    this.expiryTimer = setTimeout(() => {
      const left = expiresAt - this.deps.config.clock();
      if (left > 0) {
        this.armExpiry(expiresAt, left); // a token valid for longer than one timer can wait
        return;
      }
      if (this.state !== 'open') return;
      this.deps.logger.debug({ connectionId: this.id, remoteAddress: this.remoteAddress, sub: this.identity?.subject }, 'token expired');
      this.sendError(new SpoolError('TOKEN_EXPIRED', 'the connection\'s token expired; reconnect with a fresh one (or send refresh before it expires)'));
    }, Math.min(inMs, MAX_TIMER_MS));
    this.expiryTimer.unref();
  }

  /**
   * Counts `charge` against the connection's quota, or answers the refusal (QUOTA_EXCEEDED,
   * SESSION_QUOTA_EXCEEDED, with `ref` and the request id) and returns false: nothing of the
   * frame is stored.
   */
  private withinQuota(session: SessionId, charge: WriteCharge, ref: string, requestId: number | undefined): boolean {
    const refused = this.quota?.charge(session, charge);
    if (refused === undefined) return true;
    this.sendError(refused, ref, requestId);
    return false;
  }

  /** The quota check of a chunk or chunks frame: chunks already counted on this connection (a resend) count nothing. */
  private chunksWithinQuota(token: string, parts: TokenParts, seq: number, items: readonly ChunkItem[], bytes: number): boolean {
    if (this.quota === undefined) return true;
    const next = seq + items.length;
    if (next <= (this.chargedSeqs.get(token) ?? 0)) return true;
    if (!this.withinQuota(parts.session, chunksCharge(items, bytes, dataSize), parts.generation, undefined)) return false;
    this.chargedSeqs.set(token, next);
    return true;
  }

  /**
   * Answers FORBIDDEN (with `ref` and the request id) unless the identity grants `capability` on
   * `session`; true when it does.
   */
  private permits(capability: Capability, session: SessionId, ref: string, requestId: number | undefined): boolean {
    const identity = this.identity as Identity;
    if (identity.scopes.allows(capability, session)) return true;
    this.sendError(forbidden(identity, capability, session), ref, requestId);
    return false;
  }

  /** After a refresh: subscriptions the new scopes do not cover end, each told FORBIDDEN (`ref` = session). */
  private endUnreadable(): void {
    const identity = this.identity as Identity;
    for (const session of this.holdings.subscriptions()) {
      if (identity.scopes.allows('read', session)) continue;
      this.holdings.unsubscribe(session);
      this.deps.registry.with(session, (actor) => actor.unsubscribe(this), () => {});
      this.sendError(forbidden(identity, 'read', session), session);
    }
  }

  /**
   * The parts of a token opened on this connection; otherwise answers BAD_FRAME, with `ref` = the
   * generation when the token spells one (every chunk refusal names its generation, §7.2), and
   * returns undefined.
   */
  private channel(token: string, requestId: number | undefined): TokenParts | undefined {
    const parts = this.holdings.channel(token);
    if (parts) return parts;
    this.sendError(new SpoolError('BAD_FRAME', 'token was not opened on this connection; send open first'), parseToken(token)?.generation, requestId);
    return undefined;
  }

  /**
   * Runs `fn` on the session's actor; a rejection or throw becomes an error frame for request `id`
   * (after `failed`, which undoes what the caller reserved for it).
   */
  private onActor(session: SessionId, id: number | undefined, fn: (actor: SessionActor) => void | Promise<void>, failed?: () => void): void {
    this.sessions.add(session);
    // The frame this is for, named by the error's log line when the answer comes later.
    const frame = this.handling;
    const fail = (error: unknown): void => {
      failed?.();
      if (this.state === 'closed') return;
      if (error instanceof SpoolError) {
        this.about(frame, () => this.sendError(error, session, id));
      } else {
        this.deps.logger.error({ ...this.logIds(frame), sessionId: session, err: error }, 'session operation failed');
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

  /** Runs `fn` with `frame` as the frame being handled (log lines written meanwhile name its ids). */
  private about(frame: unknown, fn: () => void): void {
    const outer = this.handling;
    this.handling = frame;
    try {
      fn();
    } finally {
      this.handling = outer;
    }
  }

  /** Log fields of a line about `frame` on this connection (log-fields.ts names them). */
  private logIds(frame: unknown): Record<string, unknown> {
    return { connectionId: this.id, remoteAddress: this.remoteAddress, ...frameLogIds(frame, this.traceparent) };
  }

  private closeSocket(code: number, reason: string): void {
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.deps.socket.close(code, reason.slice(0, 120));
    // A peer that does not answer the close (it is not reading) is dropped, not held for ws's 30 s.
    this.closeTimer ??= setTimeout(() => this.deps.socket.terminate(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  private setState(next: ConnectionState): void {
    if (next === this.state) return;
    this.deps.logger.debug({ connectionId: this.id, remoteAddress: this.remoteAddress }, `connection ${this.state} -> ${next}`);
    this.state = next;
  }
}

/** The refusal of a frame outside the identity's scopes; names the capability and the claim to change. */
function forbidden(identity: Identity, capability: Capability, session: SessionId): SpoolError {
  const who = identity.subject === undefined ? 'this connection' : `sub ${JSON.stringify(identity.subject)}`;
  return new SpoolError('FORBIDDEN', `${who} may not ${capability} session ${session}: the token's spool.${capability} does not cover it`, { session });
}
