/**
 * A reader following one session: every retained event after its offset exactly once, in
 * offset order, a `gap` item for each removed range, then the live tail (G5). It survives
 * reconnects by resubscribing from the last offset it received and dropping anything at or
 * below it, so a replayed range never reaches the consumer twice.
 *
 * Its buffer is bounded (G8): past `maxBufferedItems` waiting for the consumer it unsubscribes,
 * drops what is still in flight, and subscribes again from the last buffered offset once the
 * consumer has read the buffer down to half. A slow reader costs the gateway a catch-up read,
 * never the client its memory.
 *
 *   wire:  idle ──subscribe──▶ subscribing ──subscribed──▶ active
 *           ▲                                                │ buffer > max
 *           └──── unsubscribed (resubscribe when drained) ◀── unsubscribing
 *   any ──socket drop──▶ idle (resubscribe on reconnect)
 */
import {
  SpoolError,
  type Gap,
  type GapFrame,
  type Offset,
  type ServerFrame,
  type SessionEvent,
  type SessionId,
} from '../protocol';
import { errorFromFrame, type Connection } from './connection';
import { resolveTraceparent, type TraceparentOption } from './trace';
import { deferred, jitteredDelay, log, type Backoff, type Deferred, type Logger, type Timer } from './util';

/** What a reader receives: an event, or an explicit gap where events were removed. */
export type SubscriptionItem = SessionEvent | Gap;

/** Options of `SpoolClient.subscribe()`. */
export interface SubscribeOptions {
  /**
   * Deliver events with offset > from. 0 / 'start' = from the beginning; 'now' = only events
   * appended after the subscription starts. @default 0
   */
  readonly from?: Offset | 'start' | 'now';
  /** Items allowed to wait for the consumer before the subscription pauses. @default 10000 */
  readonly maxBufferedItems?: number;
  /**
   * W3C trace context the gateway's `spool.resume` span continues (PROTOCOL §3.4): a
   * `traceparent` value, or a function returning the current one, called once by
   * `client.subscribe()` and sent in every `subscribe` of this subscription (resubscribes after a
   * reconnect included). @default the client's `traceparent`
   */
  readonly traceparent?: TraceparentOption;
}

/** Default bound on items waiting for a subscription's consumer. */
export const DEFAULT_MAX_BUFFERED_ITEMS = 10_000;

/** What a Subscription needs from the channel (connection + router) it runs on. */
export interface SubscriptionChannel {
  readonly connection: Connection;
  /** The subscription ended: stop routing its session's frames to it. */
  release(subscription: Subscription): void;
}

type WireState = 'idle' | 'subscribing' | 'active' | 'unsubscribing';

function endOffset(item: SubscriptionItem): Offset {
  return item.type === 'gap' ? item.to : item.offset;
}

/**
 * A live, resumable read of one session. Iterate it with `for await`; `close()` ends the loop.
 */
export class Subscription implements AsyncIterableIterator<SubscriptionItem> {
  /** Highest offset received from the gateway: the resubscribe point. */
  private received: Offset;
  /** Offset of the last item handed to the consumer. */
  private consumed: Offset;
  /** Waiting for `subscribed` to learn where 'now' is. */
  private pendingNow: boolean;
  private buffer: SubscriptionItem[] = [];
  private head = 0;
  private readers: Array<Deferred<IteratorResult<SubscriptionItem>>> = [];
  private wire: WireState = 'idle';
  private paused = false;
  private closed = false;
  private failure: SpoolError | undefined;
  private liveValue = false;
  private retryTimer: Timer | undefined;
  private retryFailures = 0;
  private readonly maxBuffered: number;
  private readonly traceparent: string | undefined;

  constructor(
    readonly session: SessionId,
    options: SubscribeOptions,
    private readonly channel: SubscriptionChannel,
    private readonly retry: Backoff,
    private readonly logger: Logger | undefined,
  ) {
    const from = options.from ?? 0;
    if (from !== 'start' && from !== 'now' && !(Number.isSafeInteger(from) && from >= 0)) {
      throw new SpoolError('BAD_FRAME', "from must be an offset (integer >= 0), 'start' or 'now'");
    }
    this.pendingNow = from === 'now';
    this.received = typeof from === 'number' ? from : 0;
    this.consumed = this.received;
    this.maxBuffered = Math.max(2, options.maxBufferedItems ?? DEFAULT_MAX_BUFFERED_ITEMS);
    this.traceparent = resolveTraceparent(options.traceparent, logger);
  }

  /**
   * Offset of the last item the consumer has received (an event's offset or a gap's `to`):
   * persist it to resume with `subscribe(session, { from: offset })` after a restart. With
   * `from: 'now'` it is 0 until the gateway has said where 'now' is.
   */
  get offset(): Offset {
    return this.consumed;
  }

  /** True once the gateway has caught this reader up to the head (reset by a reconnect). */
  get live(): boolean {
    return this.liveValue;
  }

  /** Items received and not yet read by the consumer. */
  get buffered(): number {
    return this.buffer.length - this.head;
  }

  next(): Promise<IteratorResult<SubscriptionItem>> {
    if (this.buffered > 0) {
      const item = this.shift();
      this.maybeResume();
      return Promise.resolve({ value: item, done: false });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    const reader = deferred<IteratorResult<SubscriptionItem>>();
    this.readers.push(reader);
    return reader.promise;
  }

  return(): Promise<IteratorResult<SubscriptionItem>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<SubscriptionItem> {
    return this;
  }

  /** Stops following the session; a pending or later `next()` reports done. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearRetry();
    if (this.wire === 'subscribing' || this.wire === 'active') this.channel.connection.send({ type: 'unsubscribe', session: this.session });
    this.wire = 'idle';
    this.buffer = [];
    this.head = 0;
    const readers = this.readers;
    this.readers = [];
    for (const reader of readers) reader.resolve({ value: undefined, done: true });
    this.channel.release(this);
  }

  // ------------------------------------------------------------------ channel events

  /** @internal The channel's connection is (again) open. */
  onOpen(): void {
    this.wire = 'idle';
    this.maybeSubscribe();
  }

  /** @internal The channel's connection dropped; `fatal` when it will not come back. */
  onDown(fatal: SpoolError | undefined): void {
    this.wire = 'idle';
    this.liveValue = false;
    this.clearRetry();
    if (fatal !== undefined) this.fail(fatal);
  }

  /** @internal A frame about this subscription's session. */
  onFrame(frame: ServerFrame): void {
    if (this.closed || this.failure !== undefined) return;
    switch (frame.type) {
      case 'events':
        if (this.accepting()) {
          for (const event of frame.events) this.onEvent(event);
          this.checkPressure();
        }
        return;
      case 'gap':
        if (this.accepting()) {
          this.onGap(frame);
          this.checkPressure();
        }
        return;
      case 'live':
        if (this.accepting()) this.liveValue = true;
        return;
      case 'error':
        this.onError(errorFromFrame(frame));
        return;
      default:
        return;
    }
  }

  // ------------------------------------------------------------------ wire subscription

  private maybeSubscribe(): void {
    if (this.closed || this.failure !== undefined || this.paused || this.wire !== 'idle') return;
    if (this.retryTimer !== undefined || !this.channel.connection.isOpen) return;
    this.wire = 'subscribing';
    this.liveValue = false;
    this.channel.connection.request(
      { type: 'subscribe', session: this.session, from: this.pendingNow ? 'now' : this.received, ...(this.traceparent !== undefined ? { traceparent: this.traceparent } : {}) },
      {
        resolve: (reply) => this.onSubscribed(reply),
        reject: (error) => this.onError(error),
      },
    );
  }

  private onSubscribed(reply: ServerFrame): void {
    if (this.closed || this.wire !== 'subscribing') return; // paused or dropped meanwhile
    if (reply.type !== 'subscribed') {
      this.fail(new SpoolError('INTERNAL', `gateway answered subscribe with ${reply.type}`));
      return;
    }
    this.wire = 'active';
    this.retryFailures = 0;
    if (this.pendingNow) {
      this.pendingNow = false;
      this.received = reply.from;
      this.consumed = reply.from;
    }
  }

  private onError(error: SpoolError): void {
    if (this.closed || this.failure !== undefined) return;
    if (!error.retryable) {
      this.fail(error);
      return;
    }
    // STORE_UNAVAILABLE, RATE_LIMITED …: subscribe again from what we have after a backoff;
    // anything replayed at or below `received` is dropped.
    log(this.logger, 'warn', `spool subscription ${this.session}: ${error.code}, resubscribing after backoff`, { message: error.message });
    if (this.wire === 'subscribing' || this.wire === 'active') this.wire = 'idle';
    if (this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.maybeSubscribe();
    }, jitteredDelay(this.retryFailures++, this.retry));
  }

  /** Events in flight after an unsubscribe (or before a resubscribe) are dropped, not buffered. */
  private accepting(): boolean {
    return this.wire === 'subscribing' || this.wire === 'active';
  }

  private onEvent(event: SessionEvent): void {
    if (event.offset <= this.received) return; // a replay across a reconnect: already delivered
    if (event.offset !== this.received + 1) {
      // The gateway reports every removed range as a gap (G5); a silent hole is its bug, and
      // the consumer should hear of it rather than stall on an offset that will never come.
      log(this.logger, 'warn', `spool subscription ${this.session}: offsets ${this.received + 1}..${event.offset - 1} skipped without a gap`);
    }
    this.received = event.offset;
    this.push(event);
  }

  private onGap(frame: GapFrame): void {
    if (frame.to <= this.received) return;
    const gap: Gap = { type: 'gap', from: Math.max(frame.from, this.received + 1), to: frame.to, reason: frame.reason };
    this.received = frame.to;
    this.push(gap);
  }

  private checkPressure(): void {
    if (this.buffered <= this.maxBuffered || !this.accepting()) return;
    this.paused = true;
    this.wire = 'unsubscribing';
    log(this.logger, 'debug', `spool subscription ${this.session}: ${this.buffered} items wait for the consumer, pausing at offset ${this.received}`);
    const sent = this.channel.connection.request(
      { type: 'unsubscribe', session: this.session },
      {
        resolve: () => this.onUnsubscribed(),
        reject: () => this.onUnsubscribed(),
      },
    );
    if (!sent) this.wire = 'idle';
  }

  private onUnsubscribed(): void {
    if (this.wire !== 'unsubscribing') return;
    this.wire = 'idle';
    this.maybeResume();
  }

  private maybeResume(): void {
    if (this.paused && this.buffered <= this.maxBuffered / 2) this.paused = false;
    this.maybeSubscribe();
  }

  // ------------------------------------------------------------------ consumer side

  private push(item: SubscriptionItem): void {
    const reader = this.readers.shift();
    if (reader !== undefined) {
      this.consumed = endOffset(item);
      reader.resolve({ value: item, done: false });
      return;
    }
    this.buffer.push(item);
  }

  private shift(): SubscriptionItem {
    const item = this.buffer[this.head] as SubscriptionItem;
    this.buffer[this.head] = undefined as unknown as SubscriptionItem;
    this.head++;
    if (this.head === this.buffer.length) {
      this.buffer = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
    this.consumed = endOffset(item);
    return item;
  }

  private fail(error: SpoolError): void {
    if (this.failure !== undefined || this.closed) return;
    this.failure = error;
    this.wire = 'idle';
    this.clearRetry();
    log(this.logger, 'error', `spool subscription ${this.session} failed: ${error.code}`, { session: this.session, message: error.message });
    // Items already received are still delivered; the error follows them.
    const readers = this.readers;
    this.readers = [];
    for (const reader of readers) reader.reject(error);
    this.channel.release(this);
  }

  private clearRetry(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
