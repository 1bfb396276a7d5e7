/**
 * The producer: one generation's upload channel. Each Generation owns its own Connection, so a
 * reconnect of that socket is exactly this generation's resume and one slow upload never
 * blocks another (DESIGN §5).
 *
 *   client.generation()
 *        │
 *        ▼      opened               finish()                 finished
 *    opening ──────────▶ open ─────────────▶ finishing ───────────────────▶ finished
 *        ▲                 │                  │    ▲
 *        └── socket drop ──┘                  └────┘ socket drop: reconnect, open{resume},
 *            (reconnect, open{resume},               resend from nextSeq, finish again
 *             resend from opened.nextSeq)
 *
 *    opening | open | finishing ──▶ failed   on FENCED, GENERATION_CLOSED, GENERATION_ACTIVE,
 *                                            SESSION_FULL, any other non-retryable error, a
 *                                            fatal close, finish timeout or destroy()
 *
 *    opening | open ──signal abort──▶ finishing (status aborted; flush/drained waiters reject
 *                                    CLOSED, write() throws it)
 *
 * The unacked chunks live in a ChunkWindow and are never dropped: a reconnect resends from the
 * gateway's `opened.nextSeq`, a SEQ_GAP from its `expectedSeq`, a retryable error from the last
 * ack. No promise or timer per chunk: writes only push (through the Coalescer when coalescing
 * is on), one microtask per tick sends what is queued, in as few `chunks` frames as the limits
 * and the credit allow.
 *
 * What write() admits and how much may wait unacknowledged (the high-water mark, maxQueuedBytes)
 * is generation-backlog.ts; the promises of flush(), drained() and finish() and what settles
 * them is generation-waiters.ts. This file is the channel: open, resume, send, ack, finish, fail.
 */
import {
  DEFAULT_LIMITS,
  SpoolError,
  type ClientFrame,
  type GenerationId,
  type Offset,
  type ServerFrame,
  type SessionId,
  type WelcomeFrame,
} from '../protocol';
import { ChunkWindow } from './chunk-window';
import {
  GENERATION_EVENTS,
  type FinishOptions,
  type FinishResult,
  type FlushResult,
  type GenerationEvents,
  type GenerationState,
  type WriteOptions,
} from './generation-types';
import { Connection, errorFromFrame, type ConnectionOptions } from './connection';
import { GenerationBacklog, type BacklogOptions } from './generation-backlog';
import { GenerationWaiters } from './generation-waiters';
import {
  Emitter,
  log,
  randomSecret,
  reasonText,
  retryDelay,
  wireText,
  type AbortSignalLike,
  type Backoff,
  type Listener,
  type Logger,
  type Timer,
} from './util';

/** What a Generation needs from the client that created it (the backlog's bounds among it). */
export interface GenerationContext extends BacklogOptions {
  readonly connection: Omit<ConnectionOptions, 'name'>;
  readonly signal?: AbortSignalLike;
  /** Backoff for retryable errors (STORE_UNAVAILABLE, RATE_LIMITED …). */
  readonly retry: Backoff;
  readonly logger?: Logger;
  /** Called once when the generation reaches finished or failed. */
  readonly onSettled?: (generation: Generation) => void;
  /** Sent in every open of the generation (resolved when it was created). */
  readonly traceparent?: string;
  /** How long written chunks may wait for more before their frame is sent (SpoolClientOptions.lingerMs). */
  readonly lingerMs: number;
}

/**
 * One generation being written into a session. Created by `SpoolClient.generation()`; writes
 * are accepted at once and queued until the gateway has opened the generation.
 */
export class Generation {
  private stateValue: GenerationState = 'opening';
  private readonly connection: Connection;
  private token: string | undefined;
  /** `opened` received on the current socket: chunks may flow. */
  private channelOpen = false;
  private firstOpenAnswered = false;

  private readonly window = new ChunkWindow();
  private readonly backlog: GenerationBacklog;
  /** The expectedSeq of the SEQ_GAP already being resent, so repeats of it are not resent again. */
  private rewoundTo = -1;

  private readonly waiters = new GenerationWaiters(() => this.overHighWaterMark());
  private finishRequest: { status: 'done' | 'error' | 'aborted'; error?: string } | undefined;
  private finishInFlight = false;
  private finishTimer: Timer | undefined;
  /** Set when a reopen was refused with GENERATION_CLOSED while finishing (see onOpenError). */
  private closedOnReopen: SpoolError | undefined;
  private result: FinishResult | undefined;
  private failure: SpoolError | undefined;
  /** Set when the AbortSignal fired: what write(), flush() and drained() fail with from then on. */
  private abortError: SpoolError | undefined;
  private signal: AbortSignalLike | undefined;
  private readonly onSignalAbort = (): void => this.abortBySignal();
  /** Created by the first `on()`: a generation nobody observes carries no listener state. */
  private events: Emitter<GenerationEvents> | undefined;

  /** Proves a retried first open (its `opened` lost) comes from this producer (§7.1). */
  private readonly secret = randomSecret();
  private retryTimer: Timer | undefined;
  private retryFailures = 0;
  private sendScheduled = false;
  /** The pending linger (lingerMs > 0): chunks written meanwhile join the frame it sends. */
  private lingerTimer: Timer | undefined;
  private readonly sendPassBound = (): void => this.sendPass();

  constructor(
    readonly session: SessionId,
    private readonly idValue: GenerationId,
    private readonly takeover: boolean,
    private readonly context: GenerationContext,
  ) {
    this.connection = new Connection(
      { ...context.connection, name: `generation ${idValue}` },
      {
        onOpen: (welcome) => this.onConnectionOpen(welcome),
        onFrame: (frame) => this.onFrame(frame),
        onDown: (fatal) => this.onConnectionDown(fatal),
      },
    );
    this.backlog = new GenerationBacklog(idValue, this.window, context, () => {
      if (this.channelOpen) this.scheduleSend();
    });
    this.connection.start();
    const signal = context.signal;
    if (signal !== undefined) {
      this.signal = signal;
      if (signal.aborted) this.abortBySignal();
      else signal.addEventListener('abort', this.onSignalAbort, { once: true });
    }
  }

  /** The generation id (chosen by the client, so streaming needs no round trip first). */
  get id(): GenerationId {
    return this.idValue;
  }

  get state(): GenerationState {
    return this.stateValue;
  }

  /** Offset of the generation's `gen.start`, once the gateway has opened it. */
  get offset(): Offset | undefined {
    return this.waiters.offset;
  }

  /**
   * Adds a listener (`'ack'`: every ack that advanced the durable point; `'state'`: lifecycle
   * transitions); returns the function that removes it. Listeners run synchronously inside the
   * SDK's frame handling: keep them short. Nothing is computed for an event nobody listens to.
   */
  on<K extends keyof GenerationEvents>(event: K, listener: Listener<GenerationEvents[K]>): () => void {
    this.events ??= new Emitter(GENERATION_EVENTS, `spool generation ${this.idValue}`, this.context.logger);
    return this.events.on(event, listener);
  }

  off<K extends keyof GenerationEvents>(event: K, listener: Listener<GenerationEvents[K]>): void {
    this.events?.off(event, listener);
  }

  /**
   * Queues one chunk and assigns it the next seq (with coalescing on, a string may instead join
   * the open merge: one chunk for several writes). Returns false once the unacknowledged bytes or
   * chunks exceed the high-water mark (or the gateway's credit): keep writing only after
   * `await drained()`. The chunk is queued either way; nothing is ever dropped.
   *
   * The high-water mark is the caller's contract: the SDK queues whatever is written despite
   * `false`, up to `maxQueuedBytes` (default 64 MiB) of unacknowledged data; a write past that
   * throws SpoolError `RATE_LIMITED` (retryable: `await drained()`, then write it again) and
   * queues nothing, so a caller that ignores `false` meets an error rather than unbounded memory.
   *
   * Throws the generation's SpoolError once it failed, CLOSED once its signal aborted,
   * GENERATION_CLOSED after finish().
   */
  write(data: unknown, options: WriteOptions = {}): boolean {
    if (this.failure !== undefined) throw this.failure;
    if (this.abortError !== undefined) throw this.abortError;
    if (this.finishRequest !== undefined) {
      throw new SpoolError('GENERATION_CLOSED', `generation ${this.idValue} is finishing: write() after finish()`, { generation: this.idValue });
    }
    this.backlog.write(data, options, this.connection.limits.maxFrameBytes);
    return !this.overHighWaterMark();
  }

  /** Resolves once the unacknowledged chunks are back under the high-water mark. */
  drained(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.abortError !== undefined) return Promise.reject(this.abortError);
    if (!this.overHighWaterMark()) return Promise.resolve();
    // The caller waits before writing more, so nothing would join the open merge: send it now.
    this.backlog.closeMerge();
    return this.waiters.drained();
  }

  /** Resolves once everything written so far is durable (G1), with the ack that says so. */
  flush(): Promise<FlushResult> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.abortError !== undefined) return Promise.reject(this.abortError);
    this.backlog.closeMerge();
    this.sendSoon();
    return this.waiters.flush(this.window.assigned);
  }

  /**
   * Ends the generation after every chunk written so far. Resolves with the `gen.end` offset once
   * the gateway confirms everything is durable (G6); rejects with the SpoolError that prevented
   * it, or TIMEOUT after `timeoutMs`. Calling it again returns the same promise.
   *
   * After TIMEOUT the generation is failed for this producer (the upload channel closes, a late
   * `finished` is ignored) and its outcome is unknown to it: readers see the `gen.end` the gateway
   * wrote, the requested one if the finish got through, else `timeout` after the gateway's
   * generation idle timeout.
   */
  finish(options: FinishOptions = {}): Promise<FinishResult> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.result !== undefined) return Promise.resolve(this.result);
    if (this.finishRequest !== undefined) return this.waiters.finish();
    this.backlog.closeMerge();
    const status = options.status ?? 'done';
    // Diagnostic text only: fit it to the wire (length, well-formed) rather than fail the end over it.
    const text = typeof options.error === 'string' ? wireText(options.error, DEFAULT_LIMITS.maxErrorLength) : '';
    const error = text === '' ? undefined : text;
    this.finishRequest = error === undefined ? { status } : { status, error };
    const finished = this.waiters.finish();
    const { timeoutMs } = options;
    if (timeoutMs !== undefined) {
      this.finishTimer = setTimeout(() => {
        this.finishTimer = undefined;
        this.fail(new SpoolError('TIMEOUT', `finish of generation ${this.idValue} not confirmed within ${timeoutMs} ms`, { generation: this.idValue }));
      }, timeoutMs);
    }
    this.setState('finishing');
    this.sendSoon();
    if (this.channelOpen) this.scheduleSend();
    return finished;
  }

  /** Ends the generation with status 'aborted' (after the chunks already written). */
  abort(reason?: string): Promise<FinishResult> {
    return this.finish(reason === undefined ? { status: 'aborted' } : { status: 'aborted', error: reason });
  }

  /** The AbortSignal fired (or had fired): abort, and wake everyone waiting to write more. */
  private abortBySignal(): void {
    const signal = this.signal;
    this.releaseSignal();
    if (signal === undefined || this.isSettled() || this.finishRequest !== undefined) return;
    const reason = reasonText(signal.reason);
    const error = new SpoolError('CLOSED', `generation ${this.idValue} was aborted${reason === '' ? '' : `: ${reason}`}`, { generation: this.idValue });
    error.cause = signal.reason;
    this.abortError = error;
    // The outcome stays available through finish(); nobody may be awaiting this promise.
    this.abort(reason === '' ? undefined : reason).catch(() => undefined);
    this.waiters.rejectFlushesAndDrains(error);
  }

  private releaseSignal(): void {
    this.signal?.removeEventListener('abort', this.onSignalAbort);
    this.signal = undefined;
  }

  /**
   * Gives up at once: pending flush/finish/drained reject with `error` (CLOSED by default) and
   * the connection closes. The gateway ends the generation with `timeout` if it was open.
   */
  destroy(error: SpoolError = new SpoolError('CLOSED', `generation ${this.idValue} was destroyed`)): void {
    this.fail(error);
  }

  // ------------------------------------------------------------------ connection events

  private onConnectionOpen(_welcome: WelcomeFrame): void {
    if (this.isSettled()) return;
    this.sendOpen();
  }

  private onConnectionDown(fatal: SpoolError | undefined): void {
    this.channelOpen = false;
    this.finishInFlight = false;
    this.clearRetry();
    this.window.rewind(this.window.durable);
    if (fatal !== undefined) {
      this.fail(fatal);
      return;
    }
    if (this.stateValue === 'open') this.setState('opening');
  }

  private onFrame(frame: ServerFrame): void {
    if (this.isSettled()) return;
    switch (frame.type) {
      case 'ack':
        if (frame.generation === this.idValue) this.onAck(frame.seq, frame.offset, frame.dropped);
        return;
      case 'error':
        this.onStreamError(errorFromFrame(frame));
        return;
      default:
        log(this.context.logger, 'debug', `spool generation ${this.idValue}: unexpected ${frame.type} frame ignored`);
    }
  }

  // ------------------------------------------------------------------ open

  private sendOpen(): void {
    const traceparent = this.context.traceparent;
    const base = { type: 'open' as const, session: this.session, generation: this.idValue, ...(traceparent !== undefined ? { traceparent } : {}) };
    // A reconnect resumes with the token and never takes over again. An open that was never
    // answered is the same request retried: it repeats the secret (so the gateway knows it is
    // this producer if the first one got through) and keeps the takeover the caller asked for.
    const first = this.secret === undefined ? base : { ...base, secret: this.secret };
    const frame: ClientFrame =
      this.token !== undefined
        ? { ...base, resume: { token: this.token } }
        : this.takeover && !this.firstOpenAnswered
          ? { ...first, takeover: true }
          : first;
    this.connection.request(frame, {
      resolve: (reply) => this.onOpened(reply),
      reject: (error) => this.onOpenError(error),
    });
  }

  private onOpened(reply: ServerFrame): void {
    if (this.isSettled()) return;
    if (reply.type !== 'opened') {
      this.fail(new SpoolError('INTERNAL', `gateway answered open with ${reply.type}`));
      return;
    }
    this.firstOpenAnswered = true;
    const next = reply.nextSeq;
    const { assigned, durable } = this.window;
    if (next > assigned || next < durable) {
      // The gateway holds chunks this producer never wrote, or lost acknowledged ones: two
      // producers share this generation id, or the store broke G1. Resending cannot repair it.
      this.fail(
        new SpoolError('INTERNAL', `gateway reports nextSeq ${next} for generation ${this.idValue}, but ${assigned} chunks were written and ${durable} acknowledged`, {
          generation: this.idValue,
        }),
      );
      return;
    }
    this.token = reply.token;
    this.waiters.opened(reply.offset);
    this.channelOpen = true;
    // Chunks below nextSeq are durable but their offsets unknown; they stay queued (counted as in
    // flight) until the next cumulative ack. When nothing follows them, resend the last one: the
    // gateway stores it once and acks it with its original offset (G2), which releases them all.
    this.window.rewind(next > durable && next === assigned ? next - 1 : next);
    if (this.stateValue === 'opening') this.setState('open');
    this.waiters.releaseFlushes();
    this.scheduleSend();
  }

  private onOpenError(error: SpoolError): void {
    if (this.isSettled()) return;
    if (error.code === 'GENERATION_CLOSED' && this.finishRequest !== undefined && this.token !== undefined) {
      // The generation ended while this producer was away, possibly by its own finish whose
      // `finished` got lost. The refusal names how it ended; without that, the token proves
      // ownership: ask once more, a repeated finish is answered with the original `finished`.
      const { status, offset } = error.details;
      if (status !== undefined && typeof offset === 'number') {
        this.onFinished({ type: 'finished', generation: this.idValue, status, offset });
        return;
      }
      this.closedOnReopen = error;
      this.sendFinish();
      return;
    }
    if (error.retryable) this.scheduleRetry();
    else this.fail(error);
  }

  // ------------------------------------------------------------------ chunks

  private scheduleSend(): void {
    if (this.sendScheduled) {
      // Lingering, and a frame's worth is waiting: no reason to wait longer.
      if (this.lingerTimer !== undefined && this.window.assigned - this.window.sent >= this.connection.limits.maxBatchItems) this.sendSoon();
      return;
    }
    this.sendScheduled = true;
    if (this.context.lingerMs > 0 && this.finishRequest === undefined) this.lingerTimer = setTimeout(this.sendPassBound, this.context.lingerMs);
    else queueMicrotask(this.sendPassBound);
  }

  /** Ends a linger: what waits goes out at the end of this tick (flush, finish, a full batch). */
  private sendSoon(): void {
    if (this.lingerTimer === undefined) return;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    queueMicrotask(this.sendPassBound);
  }

  /** Sends what is queued, in as few frames as the limits and the credit allow. */
  private sendPass(): void {
    this.sendScheduled = false;
    if (this.lingerTimer !== undefined) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
    }
    const token = this.token;
    if (!this.channelOpen || this.retryTimer !== undefined || this.isSettled() || token === undefined) return;
    const { maxBatchItems, maxFrameBytes } = this.connection.limits;
    const limits = { maxBatchItems, maxFrameBytes, credit: this.connection.credit, envelopeBytes: token.length };
    for (let batch = this.window.nextBatch(limits); batch !== undefined; batch = this.window.nextBatch(limits)) {
      if (!this.connection.send({ type: 'chunks', token, seq: batch.seq, items: batch.items })) {
        this.window.rewind(batch.seq); // the socket is going down; onDown resets the rest
        return;
      }
    }
    if (this.finishRequest !== undefined && !this.finishInFlight && this.window.allSent) this.sendFinish();
  }

  private onAck(seq: number, offset: Offset, dropped: number | undefined): void {
    if (seq >= this.window.assigned || seq < 0) {
      log(this.context.logger, 'warn', `spool generation ${this.idValue}: ack for seq ${seq} never written, ignored`);
      return;
    }
    this.waiters.acked(seq, offset);
    const advanced = seq + 1 > this.window.durable;
    if (advanced) this.window.release(seq + 1);
    if (this.rewoundTo < this.window.durable) this.rewoundTo = -1;
    if (dropped !== undefined && dropped > 0) {
      log(this.context.logger, 'warn', `spool generation ${this.idValue}: gateway dropped ${dropped} debug chunks under load`);
    }
    this.retryFailures = 0;
    this.waiters.releaseFlushes();
    this.waiters.releaseDrains();
    this.scheduleSend();
    if (advanced && this.events?.has('ack')) this.events.emit('ack', { seq, offset, dropped: dropped ?? 0 });
  }

  private onStreamError(error: SpoolError): void {
    if (this.finishInFlight && (error.retryable || error.code === 'GENERATION_CLOSED')) {
      // Errors drawn by chunks sent before the finish. The finish's own answer is authoritative
      // (finished, or SEQ_GAP naming what is missing); resending chunks behind it would only
      // meet "generation is finishing".
      log(this.context.logger, 'debug', `spool generation ${this.idValue}: ${error.code} while finishing, awaiting the finish answer`);
      return;
    }
    if (error.code === 'SEQ_GAP') {
      const expected = error.details.expectedSeq;
      if (typeof expected !== 'number') {
        this.scheduleRetry();
        return;
      }
      // Each frame sent after the missing one draws its own SEQ_GAP with the same expectedSeq;
      // the first one already rewound. Only ever move back: resending is safe (G2), skipping is not.
      if (expected === this.rewoundTo || expected >= this.window.sent) return;
      this.rewoundTo = expected;
      this.window.rewind(expected);
      this.scheduleSend();
      return;
    }
    if (error.retryable) {
      log(this.context.logger, 'warn', `spool generation ${this.idValue}: ${error.code}, resending unacknowledged chunks after backoff`, { message: error.message });
      this.scheduleRetry(error);
      return;
    }
    this.fail(error);
  }

  /** One backoff timer for the whole generation, however many errors arrive meanwhile (not before the error's retryAfterMs). */
  private scheduleRetry(error?: SpoolError): void {
    if (this.retryTimer !== undefined || this.isSettled()) return;
    const delay = retryDelay(this.retryFailures++, this.context.retry, error);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.isSettled()) return;
      if (this.channelOpen) {
        if (this.finishInFlight) return; // its answer decides what to resend
        this.window.rewind(this.window.durable);
        this.scheduleSend();
      } else if (this.connection.isOpen) {
        this.sendOpen();
      }
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  // ------------------------------------------------------------------ finish

  private sendFinish(): void {
    const request = this.finishRequest;
    if (request === undefined || this.token === undefined) return;
    this.finishInFlight = true;
    const frame: ClientFrame = {
      type: 'finish',
      token: this.token,
      seq: this.window.assigned,
      status: request.status,
      ...(request.error !== undefined ? { error: request.error } : {}),
    };
    this.connection.request(frame, {
      resolve: (reply) => this.onFinished(reply),
      reject: (error) => this.onFinishError(error),
    });
  }

  private onFinished(reply: ServerFrame): void {
    if (this.isSettled()) return;
    if (reply.type !== 'finished') {
      this.fail(new SpoolError('INTERNAL', `gateway answered finish with ${reply.type}`));
      return;
    }
    const asked = this.finishRequest?.status ?? 'done';
    if (reply.status !== asked) {
      // A repeated finish of a generation that ended some other way (fenced, idle timeout).
      const code = reply.status === 'fenced' ? 'FENCED' : 'GENERATION_CLOSED';
      this.fail(new SpoolError(code, `generation ${this.idValue} ended with status ${reply.status}, not ${asked}`, { generation: this.idValue }));
      return;
    }
    const result: FinishResult = { offset: reply.offset, status: reply.status };
    this.result = result;
    this.window.release(this.window.assigned);
    this.clearTimers();
    this.setState('finished');
    this.waiters.settleFlushes(this.window.assigned - 1, reply.offset);
    this.waiters.releaseDrains();
    this.waiters.finished(result);
    this.releaseSignal();
    this.context.onSettled?.(this);
    void this.connection.close();
  }

  private onFinishError(error: SpoolError): void {
    if (this.isSettled()) return;
    this.finishInFlight = false;
    if (this.closedOnReopen !== undefined && !error.retryable) {
      this.fail(this.closedOnReopen);
      return;
    }
    if (error.code === 'SEQ_GAP' && typeof error.details.expectedSeq === 'number') {
      // The gateway misses chunks before the end: resend them, then the finish again.
      this.window.rewind(error.details.expectedSeq);
      this.scheduleSend();
      return;
    }
    if (error.retryable) this.scheduleRetry();
    else this.fail(error);
  }

  // ------------------------------------------------------------------ state

  private overHighWaterMark(): boolean {
    return this.backlog.overHighWaterMark(this.connection.credit);
  }

  private fail(error: SpoolError): void {
    if (this.isSettled()) return;
    this.failure = error;
    const wasOpen = this.channelOpen;
    this.channelOpen = false;
    this.clearTimers();
    this.setState('failed');
    log(this.context.logger, 'error', `spool generation ${this.idValue} failed: ${error.code}`, {
      session: this.session,
      generation: this.idValue,
      message: error.message,
    });
    if (error.code === 'SESSION_FULL' && wasOpen && this.token !== undefined) {
      // The gateway still holds the generation open; end it now so readers see gen.end error at
      // once rather than after the idle timeout. Best effort: the socket closes right after.
      this.connection.send({ type: 'finish', token: this.token, seq: this.window.assigned, status: 'error', error: 'SESSION_FULL' });
    }
    this.waiters.rejectAll(error);
    this.backlog.dispose();
    this.releaseSignal();
    this.context.onSettled?.(this);
    void this.connection.close();
  }

  private isSettled(): boolean {
    return this.failure !== undefined || this.result !== undefined;
  }

  private clearTimers(): void {
    this.clearRetry();
    if (this.lingerTimer !== undefined) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
      this.sendScheduled = false;
    }
    if (this.finishTimer !== undefined) clearTimeout(this.finishTimer);
    this.finishTimer = undefined;
  }

  private setState(next: GenerationState): void {
    const previous = this.stateValue;
    if (previous === next) return;
    this.stateValue = next;
    log(this.context.logger, 'debug', `spool generation ${this.idValue}: ${previous} -> ${next}`, { session: this.session });
    if (this.events?.has('state')) this.events.emit('state', { previous, state: next });
  }
}
