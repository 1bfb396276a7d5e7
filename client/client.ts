/**
 * SpoolClient: the SDK's entry point. It holds the options, one shared connection (opened
 * lazily) for subscriptions and appends, and creates generations, each with its own upload
 * connection (DESIGN §5).
 */
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, SpoolError, isSessionId, type GenerationId, type ServerFrame, type SessionId } from '../protocol';
import { Appender, type AppendInput, type AppendResult } from './append';
import { resolveCoalesce, type CoalesceOptions } from './coalescer';
import { Connection, resolveWebSocket, type ConnectionOptions, type ConnectionObserver, type ConnectionState, type WebSocketConstructor } from './connection';
import { Generation } from './generation';
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_QUEUED_BYTES, type GenerationOptions, type HighWaterMark } from './generation-types';
import { Subscription, type SubscribeOptions, type SubscriptionChannel } from './subscription';
import { TokenSource, type TokenOption } from './token';
import { resolveTraceparent, type TraceparentOption } from './trace';
import { Emitter, log, randomId, resolveBackoff, type Backoff, type Listener, type Logger, type ReconnectOptions } from './util';

/** Options of `new SpoolClient()`; every one but `url` has a documented default. */
export interface SpoolClientOptions {
  /** The gateway's WebSocket endpoint, e.g. `ws://127.0.0.1:8080/v1`. */
  readonly url: string;
  /**
   * The credential sent in `hello` (PROTOCOL §4.6): the gateway's shared token, or a JWT. A
   * function (sync or async) is called for every connection attempt and again before each expiry,
   * when the SDK refreshes in band; on TOKEN_EXPIRED it reconnects with a fresh token, and after an
   * UNAUTHORIZED it asks once more before giving up with that error. Cache inside it if fetching
   * is expensive. A string is sent as is and cannot be renewed. @default no token
   */
  readonly token?: TokenOption;
  /**
   * WebSocket implementation. @default globalThis.WebSocket, else the `ws` package (Node 20)
   */
  readonly WebSocket?: WebSocketConstructor;
  /** Reconnect backoff (full jitter), or false to treat any drop as final. @default {initialDelayMs: 100, maxDelayMs: 5000} */
  readonly reconnect?: ReconnectOptions | false;
  /** Wire encoding: msgpack binary frames (`spool.v1`) or JSON text (`spool.v1.json`, for debugging). @default 'msgpack' */
  readonly protocol?: 'msgpack' | 'json';
  /**
   * Per generation: unacknowledged bytes / chunks past which `write()` returns false. A number
   * means bytes. The gateway's credit lowers it further. @default {bytes: 1 MiB, items: 4096}
   */
  readonly highWaterMark?: HighWaterMark | number;
  /**
   * Merge adjacent string writes of a generation (same kind and priority, within `windowMs` of
   * the first, at most `maxBytes` together) into one chunk: fewer events to store, fan out and
   * retain, at the price of up to `windowMs` of added latency and different chunk boundaries
   * (readers see fewer, larger chunks; their concatenation is what was written). Anything else
   * written, `flush()`, `finish()`, `abort()` and a `drained()` that must wait close the merge
   * first, so order is kept exactly. Off by default because chunk boundaries are visible to apps
   * (per-chunk rendering, token counting, seqs); 10–50 ms suits token streams. Overridable per
   * generation. @default {windowMs: 0 (off), maxBytes: 16 KiB}
   */
  readonly coalesce?: CoalesceOptions;
  /**
   * Per generation: how long a written chunk may wait for more to join its `chunks` frame, the way
   * Kafka's `linger.ms` batches records. 0 sends at the end of the current tick (writes of one
   * tick still travel together). A few ms cut the frames, store calls, acks and reader frames of a
   * fast producer several times over, at the price of up to that much added latency; a full batch
   * (`maxBatchItems`), `flush()`, `finish()` and `abort()` send at once. Chunk boundaries are
   * unchanged (unlike `coalesce`). Overridable per generation. @default 0
   */
  readonly lingerMs?: number;
  /**
   * Per generation: hard cap on unacknowledged chunk data (queued, in flight, in an open merge).
   * The high-water mark is the caller's contract (stop at `write() === false`); this cap is for
   * callers that ignore it: a write past it throws SpoolError `RATE_LIMITED` and queues nothing.
   * Never below highWaterMark.bytes + maxFrameBytes, so a caller that honours `false` never
   * meets it. `Infinity` turns it off. @default 64 MiB
   */
  readonly maxQueuedBytes?: number;
  /** Receives state transitions (debug) and trouble (warn/error). */
  readonly logger?: Logger;
  /** Socket open + welcome must happen within this long, else the attempt is retried. @default 10000 */
  readonly connectTimeoutMs?: number;
  /**
   * W3C trace context for the gateway's spans (PROTOCOL §3.4): a `traceparent` value, or a
   * function returning the current one (e.g. from `@opentelemetry/api`'s active context; see
   * trace.ts). A function is called for every `hello` (each connection attempt) and once per
   * `generation()` and `subscribe()`, whose `open` / `subscribe` frames carry what it returned
   * then, unless the call passes its own. The SDK does not depend on OpenTelemetry. @default none
   */
  readonly traceparent?: TraceparentOption;
}

/** A state transition of one of the client's connections (`SpoolClient.on('state')`). */
export interface ConnectionStateChange {
  /** Which connection: `shared`, `generation <id>` or `subscription <session>`. */
  readonly connection: string;
  readonly previous: ConnectionState;
  readonly state: ConnectionState;
}

/** A connection of the client is open again after a loss (`SpoolClient.on('reconnect')`). */
export interface ReconnectEvent {
  readonly connection: string;
  /** The client's reconnects so far, this one included (`SpoolClient.reconnects`). */
  readonly reconnects: number;
}

/** Events of a SpoolClient and their payloads. */
export interface ClientEvents {
  state: ConnectionStateChange;
  reconnect: ReconnectEvent;
}

const CLIENT_EVENTS: ReadonlyArray<keyof ClientEvents> = ['state', 'reconnect'];

function checkMaxQueuedBytes(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 1) throw new TypeError(`maxQueuedBytes must be a number of bytes >= 1 (or Infinity), got ${String(value)}`);
  return value;
}

function checkLingerMs(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 10_000) throw new TypeError(`lingerMs must be a number of ms from 0 to 10000, got ${String(value)}`);
  return value;
}

function checkSession(sessionId: string): SessionId {
  if (!isSessionId(sessionId)) throw new SpoolError('BAD_FRAME', 'session id must be 1-128 chars of [A-Za-z0-9._:-]');
  return sessionId;
}

/**
 * A connection plus the routing of its frames to the subscriptions (by session) and appends
 * riding on it. The client has one shared channel; a second subscription to a session that
 * already has one gets a channel of its own, since the wire keys subscriptions by session.
 */
class Channel implements SubscriptionChannel {
  readonly connection: Connection;
  readonly subscriptions = new Map<string, Subscription>();
  readonly appender: Appender;

  constructor(
    options: ConnectionOptions,
    retry: Backoff,
    private readonly logger: Logger | undefined,
    private readonly onEmpty: ((channel: Channel) => void) | undefined,
  ) {
    this.connection = new Connection(options, {
      onOpen: () => {
        for (const subscription of [...this.subscriptions.values()]) subscription.onOpen();
        this.appender.onOpen();
      },
      onFrame: (frame) => this.route(frame),
      onDown: (fatal) => {
        for (const subscription of [...this.subscriptions.values()]) subscription.onDown(fatal);
        this.appender.onDown(fatal);
      },
    });
    this.appender = new Appender(this.connection, retry, logger);
  }

  add(subscription: Subscription): void {
    this.subscriptions.set(subscription.session, subscription);
    const dead = this.connection.failure;
    if (dead !== undefined) {
      subscription.onDown(dead); // fails it: next() rejects with why the connection died
      return;
    }
    this.connection.start();
    if (this.connection.isOpen) subscription.onOpen();
  }

  release(subscription: Subscription): void {
    if (this.subscriptions.get(subscription.session) !== subscription) return;
    this.subscriptions.delete(subscription.session);
    if (this.subscriptions.size === 0) this.onEmpty?.(this);
  }

  private route(frame: ServerFrame): void {
    switch (frame.type) {
      case 'events':
      case 'gap':
      case 'live':
        this.subscriptions.get(frame.session)?.onFrame(frame);
        return;
      case 'error': {
        // Request errors come back by id; one without id names its session in `ref`.
        const subscription = frame.ref === undefined ? undefined : this.subscriptions.get(frame.ref);
        if (subscription !== undefined) subscription.onFrame(frame);
        else log(this.logger, 'warn', `spool: gateway error ${frame.code} not tied to a request`, { ref: frame.ref, message: frame.message });
        return;
      }
      default:
        return;
    }
  }
}

/**
 * Client of a spool gateway.
 *
 * ```ts
 * const client = new SpoolClient({ url: 'ws://127.0.0.1:8080/v1' });
 * const gen = client.generation('chat-1');
 * gen.write('Hello');
 * await gen.finish();
 * for await (const item of client.subscribe('chat-1', { from: 0 })) { … }
 * ```
 */
export class SpoolClient {
  private readonly connectionOptions: Omit<ConnectionOptions, 'name'>;
  private readonly highWaterMark: Required<HighWaterMark>;
  private readonly coalesce: Required<CoalesceOptions>;
  private readonly maxQueuedBytes: number;
  private readonly lingerMs: number;
  private readonly events: Emitter<ClientEvents>;
  private reconnectCount = 0;
  private readonly retry: Backoff;
  private readonly logger: Logger | undefined;
  private readonly traceparent: TraceparentOption | undefined;
  private shared: Channel | undefined;
  private readonly extraChannels = new Set<Channel>();
  private readonly generations = new Set<Generation>();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: SpoolClientOptions) {
    if (typeof options.url !== 'string' || !/^wss?:\/\//i.test(options.url)) {
      throw new TypeError(`url must be a ws:// or wss:// URL, got ${String(options.url)}`);
    }
    this.logger = options.logger;
    this.traceparent = options.traceparent;
    this.retry = resolveBackoff(options.reconnect);
    const hwm = typeof options.highWaterMark === 'number' ? { bytes: options.highWaterMark } : (options.highWaterMark ?? {});
    this.highWaterMark = { bytes: hwm.bytes ?? DEFAULT_HIGH_WATER_MARK.bytes, items: hwm.items ?? DEFAULT_HIGH_WATER_MARK.items };
    this.coalesce = resolveCoalesce(options.coalesce);
    this.maxQueuedBytes = checkMaxQueuedBytes(options.maxQueuedBytes, DEFAULT_MAX_QUEUED_BYTES);
    this.lingerMs = checkLingerMs(options.lingerMs, 0);
    this.events = new Emitter(CLIENT_EVENTS, 'spool client', options.logger);
    // Counting costs an increment; the state payload is built only while somebody listens.
    const observer: ConnectionObserver = {
      onState: (connection, previous, state) => {
        if (this.events.has('state')) this.events.emit('state', { connection, previous, state });
      },
      onReconnect: (connection) => {
        this.reconnectCount++;
        if (this.events.has('reconnect')) this.events.emit('reconnect', { connection, reconnects: this.reconnectCount });
      },
    };
    this.connectionOptions = {
      observer,
      url: options.url,
      WebSocket: resolveWebSocket(options.WebSocket),
      reconnect: options.reconnect === false ? false : this.retry,
      subprotocol: options.protocol === 'json' ? SUBPROTOCOL_JSON : SUBPROTOCOL_MSGPACK,
      ...(options.token !== undefined ? { token: new TokenSource(options.token) } : {}),
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      ...(options.traceparent !== undefined ? { traceparent: options.traceparent } : {}),
    };
  }

  /**
   * Reconnects of this client's connections so far (the shared one, each generation's upload
   * channel and extra subscription channels): how often a lost connection was open again.
   */
  get reconnects(): number {
    return this.reconnectCount;
  }

  /**
   * Adds a listener (`'state'`: every state transition of every connection of the client;
   * `'reconnect'`: a connection is open again after a loss); returns the function that removes
   * it. Listeners run synchronously inside the SDK: keep them short.
   */
  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): void {
    this.events.off(event, listener);
  }

  /**
   * Starts a generation in `sessionId` and returns it at once: its upload connection opens in
   * the background and writes queue until the gateway has opened the generation.
   */
  generation(sessionId: string, options: GenerationOptions = {}): Generation {
    this.assertOpen();
    const session = checkSession(sessionId);
    const id = options.id ?? randomId();
    if (!isSessionId(id)) throw new SpoolError('BAD_FRAME', 'generation id must be 1-128 chars of [A-Za-z0-9._:-]');
    const hwm = options.highWaterMark ?? {};
    const traceparent = resolveTraceparent(options.traceparent ?? this.traceparent, this.logger);
    const generation = new Generation(session, id as string as GenerationId, options.takeover === true, {
      connection: this.connectionOptions,
      highWaterMark: { bytes: hwm.bytes ?? this.highWaterMark.bytes, items: hwm.items ?? this.highWaterMark.items },
      coalesce: resolveCoalesce(options.coalesce, this.coalesce),
      maxQueuedBytes: checkMaxQueuedBytes(options.maxQueuedBytes, this.maxQueuedBytes),
      lingerMs: checkLingerMs(options.lingerMs, this.lingerMs),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      retry: this.retry,
      ...(this.logger !== undefined ? { logger: this.logger } : {}),
      ...(traceparent !== undefined ? { traceparent } : {}),
      onSettled: (settled) => this.generations.delete(settled),
    });
    this.generations.add(generation);
    return generation;
  }

  /** Follows `sessionId` from `options.from` (default 0: the whole retained log). */
  subscribe(sessionId: string, options: SubscribeOptions = {}): Subscription {
    this.assertOpen();
    const session = checkSession(sessionId);
    const sharedChannel = this.sharedChannel();
    const channel = sharedChannel.subscriptions.has(session)
      ? this.newChannel(`subscription ${session}`, (empty) => {
          this.extraChannels.delete(empty);
          void empty.connection.close();
        })
      : sharedChannel;
    if (channel !== sharedChannel) this.extraChannels.add(channel);
    const withTrace = options.traceparent === undefined && this.traceparent !== undefined ? { ...options, traceparent: this.traceparent } : options;
    const subscription = new Subscription(session, withTrace, channel, this.retry, this.logger);
    channel.add(subscription);
    return subscription;
  }

  /**
   * Appends one event outside any generation (a user message, a control event). Idempotent by
   * `key`: a retry, or a re-send after a reconnect, is stored once and answered with the
   * original offset and `duplicate: true`.
   */
  append(sessionId: string, input: AppendInput): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new SpoolError('CLOSED', 'client is closed'));
    let session: SessionId;
    try {
      session = checkSession(sessionId);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.sharedChannel().appender.append(session, input);
  }

  /**
   * Graceful and idempotent: refuses new work, waits until pending appends are answered and
   * unfinished generations have flushed what was written (finishing ones until they finish),
   * ends subscriptions, then closes every connection. Generations that were not finished are
   * then destroyed (CLOSED); the gateway ends them with `timeout`. Use `destroy()` to stop at once.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      const waits: Array<Promise<unknown>> = [];
      if (this.shared !== undefined) waits.push(this.shared.appender.settled());
      for (const generation of this.generations) {
        waits.push((generation.state === 'finishing' ? generation.finish() : generation.flush()).catch(() => undefined));
      }
      await Promise.all(waits);
      this.destroy(new SpoolError('CLOSED', 'client closed'));
    })();
    return this.closing;
  }

  /** Stops everything now: pending appends, flushes and finishes reject with `error`. */
  destroy(error: SpoolError = new SpoolError('CLOSED', 'client destroyed')): void {
    this.closed = true;
    for (const generation of [...this.generations]) generation.destroy(error);
    this.generations.clear();
    for (const channel of [this.shared, ...this.extraChannels]) {
      if (channel === undefined) continue;
      for (const subscription of [...channel.subscriptions.values()]) subscription.close();
      channel.appender.failAll(error);
      void channel.connection.close();
    }
    this.extraChannels.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new SpoolError('CLOSED', 'client is closed');
  }

  private sharedChannel(): Channel {
    this.shared ??= this.newChannel('shared', undefined);
    return this.shared;
  }

  private newChannel(name: string, onEmpty: ((channel: Channel) => void) | undefined): Channel {
    return new Channel({ ...this.connectionOptions, name }, this.retry, this.logger, onEmpty);
  }
}
