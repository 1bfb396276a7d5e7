/**
 * The reader side of a session actor: every subscription to one session, from `subscribed`
 * through catch-up (store, then hot buffer) to `live`, pauses of slow readers, and fan-out of
 * newly durable events. The session's log (session-log.ts) holds the hot buffer and the known
 * store head; this module reads them and is published to.
 *
 * A subscriber, as this module sees it:
 *
 *                ┌─────────── not at the previous head of a batch ───────────┐
 *                ▼                                                           │
 *   subscribe ─▶ catching-up ──at the head (store page or hot buffer)──▶ live
 *                ▲     │                                                     │
 *                │     └──socket backed up──▶ paused ◀──socket backed up─────┘
 *                └────────── drained ────────────┘ ──no drain in slowReaderTimeoutMs──▶ SLOW_CONSUMER
 *   any state ──unsubscribe, detach, store failure, SLOW_CONSUMER, actor close──▶ closed
 */
import type { ReaderLimits } from './toggles';
import type { Logger } from 'pino';
import { encodeEventsFrame } from '../protocol/codec';
import { SpoolError, type ErrorCode, type ErrorDetails } from '../protocol/errors';
import type { Offset, ReadItem, ServerFrame, SessionEvent, SessionId } from '../protocol/types';
import { assembleRead } from '../store/read';
import type { SessionStore } from '../store/types';
import type { GatewayConfig } from './config';
import type { Link } from './link';
import type { HotBuffer } from './hot-buffer';
import { SharedFrame } from './shared-frame';
import type { Metrics, TelemetrySink } from './telemetry';

type SubscriberState = 'catching-up' | 'live' | 'paused' | 'closed';

interface Subscriber {
  readonly link: Link;
  offset: Offset;
  state: SubscriberState;
  /** `live` goes out once per subscription (PROTOCOL §9.2), not again after a pause. */
  liveSent: boolean;
  readonly startedAt: number;
  readonly resumed: boolean;
  /** Gap frames sent while it caught up (telemetry of a resume). */
  gaps: number;
}

/**
 * What the reader side uses of its session's log (SessionLog in session-log.ts, which owns the
 * readers; declared here so the two modules do not import each other).
 */
export interface ReaderLog {
  /** Recent durable events. */
  readonly hot: Pick<HotBuffer, 'head' | 'floor' | 'readAfter'>;
  /** The highest head the store is known to have. */
  readonly storeHead: Offset;
  readonly closed: boolean;
  /** A store read showed `head`. */
  noteStoreHead(head: Offset): void;
  /** A change notice (or a fresh look at the store's meta) reported `head`. */
  notice(head: Offset, deleted?: boolean): void;
}

/** The shared services the reader side uses. */
export interface ReaderDeps {
  readonly session: SessionId;
  readonly store: SessionStore;
  readonly config: GatewayConfig;
  /** The reader limits, read on each use (runtime toggles). */
  readonly limits: ReaderLimits;
  readonly metrics: Metrics;
  readonly telemetry: TelemetrySink;
  readonly logger: Logger;
}

/** Events per `events` frame toward a reader. */
const EVENTS_PER_FRAME = 256;

/**
 * The readers of one session: owns the subscribers and the store watch that runs while there
 * are any, brings each reader from its offset to the head and keeps it live.
 */
export class SessionReaders {
  private readonly session: SessionId;
  /** Made for the first subscriber, dropped with the last: an idle session has none. */
  private subscribers: Map<Link, Subscriber> | null = null;
  /** Stops change notices; set while this actor has readers. */
  private unwatch: (() => void) | null = null;

  constructor(
    private readonly deps: ReaderDeps,
    /** The session's log: what readers catch up from and are published to. */
    private readonly log: ReaderLog,
  ) {
    this.session = deps.session;
  }

  /** How many readers are subscribed. */
  get size(): number {
    return this.subscribers?.size ?? 0;
  }

  /** Starts delivery of everything after `from`; answers `subscribed` first. */
  subscribe(link: Link, from: Offset | 'start' | 'now', requestId: number | undefined): void {
    this.unsubscribe(link);
    if (this.unwatch && (typeof from !== 'number' || from <= this.log.storeHead)) {
      // Watching, and the offset is one this actor has heard of: no store round trip.
      this.startSubscription(link, from, this.log.storeHead, requestId);
      return;
    }
    // Not watching until now (no readers here), or the reader knows of an offset whose notice
    // has not reached this process yet (it read it elsewhere): other processes may have written
    // since this actor last looked. Watch first, so nothing after the look is missed, then ask
    // the store before judging the offset.
    this.unwatch ??= this.deps.store.watch(this.session, (notice) => this.log.notice(notice.head, notice.deleted === true));
    this.deps.store.meta(this.session).then(
      (meta) => {
        if (this.log.closed) return;
        this.log.notice(meta.head);
        this.startSubscription(link, from, this.log.storeHead, requestId);
      },
      (error: unknown) => {
        this.deps.logger.warn({ sessionId: this.session, err: String(error) }, 'store meta failed for a subscribe');
        this.sendError(link, 'STORE_UNAVAILABLE', 'store unavailable; subscribe again from your offset', this.session, {}, requestId);
        if (this.size === 0) this.stopWatching();
      },
    );
  }

  private startSubscription(link: Link, from: Offset | 'start' | 'now', head: Offset, requestId: number | undefined): void {
    const start = from === 'start' ? 0 : from === 'now' ? head : from;
    if (start > head) {
      this.sendError(link, 'OFFSET_OUT_OF_RANGE', `offset ${start} is past the session head ${head}`, this.session, {}, requestId);
      if (this.size === 0) this.stopWatching();
      return;
    }
    const resumed = typeof from === 'number' && from > 0;
    const sub: Subscriber = { link, offset: start, state: 'catching-up', liveSent: false, startedAt: this.deps.config.clock(), resumed, gaps: 0 };
    (this.subscribers ??= new Map()).set(link, sub);
    link.send({ type: 'subscribed', ...(requestId !== undefined ? { id: requestId } : {}), session: this.session, from: start, head });
    if (resumed) {
      this.deps.metrics.resumeAttempts.inc();
      this.deps.telemetry.emit({ name: 'resume.attempt', session: this.session, from: start, connectionId: link.id });
    }
    this.catchUp(sub);
  }

  private stopWatching(): void {
    this.unwatch?.();
    this.unwatch = null;
  }

  /** Ends the link's subscription, if it has one; stops watching when it was the last. */
  unsubscribe(link: Link): boolean {
    const sub = this.subscribers?.get(link);
    if (!sub) return false;
    sub.state = 'closed';
    this.subscribers?.delete(link);
    if (this.size === 0) {
      this.subscribers = null;
      this.stopWatching();
    }
    return true;
  }

  /**
   * Ends every subscription with `error` and stops watching: live readers cannot be brought up
   * to date (a sync with the store failed: STORE_UNAVAILABLE, they resume from their offsets
   * once the store is back), or their offsets no longer name anything (SESSION_REWOUND).
   */
  failAll(error: SpoolError): void {
    for (const sub of [...(this.subscribers?.values() ?? [])]) {
      this.unsubscribe(sub.link);
      sub.link.sendError(error, this.session);
    }
  }

  /** Drops every subscription without a word and stops watching (the actor closes). */
  close(): void {
    for (const sub of this.subscribers?.values() ?? []) sub.state = 'closed';
    this.subscribers = null;
    this.stopWatching();
  }

  /**
   * Sends newly durable events to live readers: `fresh` are the events of `(prevHead, head]`
   * (offsets missing from it were trimmed and become gaps). Call only when `head > prevHead`.
   * `encoded`: the `spool.v1` encoding of `fresh` as one array, when the store made one.
   */
  fanOut(prevHead: Offset, fresh: readonly SessionEvent[], head: Offset, encoded?: Uint8Array): void {
    // Fan out from the batch itself, not the hot buffer: a batch larger than the buffer has
    // already pushed its own front out of it. Built and encoded once for every live reader.
    if (this.subscribers === null) return;
    let shared: SharedFrame[] | null = null;
    for (const sub of this.subscribers.values()) {
      if (sub.state !== 'live' || sub.offset >= head) continue;
      if (sub.offset === prevHead) {
        shared ??= this.liveFrames(prevHead, fresh, head, encoded);
        for (const frame of shared) sub.link.sendShared(frame);
        this.sent(sub, head);
      } else {
        // Not at the previous head (it read ahead from the store): bring it up the slow way.
        sub.state = 'catching-up';
        this.catchUp(sub);
      }
    }
  }

  /**
   * The frames of a fan-out, built once for every live reader. A batch without holes that the
   * store already encoded goes out as one `events` frame around the store's bytes.
   */
  private liveFrames(prevHead: Offset, fresh: readonly SessionEvent[], head: Offset, encoded: Uint8Array | undefined): SharedFrame[] {
    const first = fresh[0];
    if (encoded !== undefined && first !== undefined && first.offset === prevHead + 1 && prevHead + fresh.length === head) {
      return [new SharedFrame({ type: 'events', session: this.session, events: fresh }, encodeEventsFrame(this.session, encoded))];
    }
    return this.framesFor(assembleRead(prevHead, fresh, head, true).items).map((frame) => new SharedFrame(frame));
  }

  /** Groups read items into `events` and `gap` frames, in order. */
  private framesFor(items: readonly ReadItem[]): ServerFrame[] {
    const frames: ServerFrame[] = [];
    let run: SessionEvent[] = [];
    const flushRun = (): void => {
      if (run.length) frames.push({ type: 'events', session: this.session, events: run });
      run = [];
    };
    for (const item of items) {
      if (item.type === 'gap') {
        flushRun();
        frames.push({ type: 'gap', session: this.session, from: item.from, to: item.to, reason: item.reason });
      } else {
        run.push(item);
        if (run.length >= EVENTS_PER_FRAME) flushRun();
      }
    }
    flushRun();
    return frames;
  }

  /** Sends frames covering up to `through`; pauses a reader whose socket is backed up. */
  private sendFrames(sub: Subscriber, frames: readonly ServerFrame[], through: Offset): void {
    for (const frame of frames) {
      sub.link.send(frame);
      if (frame.type === 'gap') sub.gaps += 1;
    }
    this.sent(sub, through);
  }

  /** Frames covering up to `through` went out to `sub`: move it on; pause it if its socket is backed up. */
  private sent(sub: Subscriber, through: Offset): void {
    if (through > sub.offset) sub.offset = through;
    if (sub.link.bufferedAmount() > this.deps.limits.maxReaderBufferedBytes) this.pause(sub);
  }

  private pause(sub: Subscriber): void {
    sub.state = 'paused';
    this.deps.metrics.readerPauses.inc();
    const timeoutMs = this.deps.limits.slowReaderTimeoutMs;
    // One timer per paused reader: a reader whose socket never drains is told to come back
    // (SLOW_CONSUMER, retryable) instead of holding its buffer forever.
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            if (sub.state !== 'paused') return;
            this.unsubscribe(sub.link);
            this.sendError(sub.link, 'SLOW_CONSUMER', `reader did not drain ${this.deps.limits.maxReaderBufferedBytes} buffered bytes within ${timeoutMs} ms; resubscribe from your offset`, this.session);
          }, timeoutMs)
        : undefined;
    timer?.unref();
    sub.link.onceDrained(this.deps.limits.maxReaderBufferedBytes / 2, () => {
      clearTimeout(timer);
      if (sub.state === 'paused') this.catchUp(sub);
    });
  }

  /** Brings a reader from its offset to the head (store, then hot buffer), then marks it live. */
  private catchUp(sub: Subscriber): void {
    if (sub.state === 'closed' || this.log.closed) return;
    // The hot buffer serves a reader only when it holds everything the store has; while a sync
    // is pending (another process wrote), the reader reads the store.
    const hot = this.log.hot;
    if (sub.offset >= hot.floor && hot.head >= this.log.storeHead) {
      this.goLive(sub, hot.readAfter(sub.offset), hot.head);
      return;
    }
    sub.state = 'catching-up';
    this.deps.store.read(this.session, sub.offset, this.deps.config.readPageEvents).then(
      (page) => {
        if (sub.state !== 'catching-up') return;
        this.log.noteStoreHead(page.head);
        const advanced = page.through > sub.offset;
        if (!advanced || page.through >= page.head) {
          // At the store's head: live from here; the pending sync brings later events.
          this.goLive(sub, page.items, page.through);
          return;
        }
        this.sendFrames(sub, this.framesFor(page.items), page.through);
        if (sub.state === 'catching-up') this.catchUp(sub);
      },
      (error: unknown) => {
        if (sub.state === 'closed') return;
        this.deps.logger.warn({ sessionId: this.session, err: String(error) }, 'store read failed for a reader');
        this.unsubscribe(sub.link);
        this.sendError(sub.link, 'STORE_UNAVAILABLE', 'store read failed; resubscribe from your offset', this.session);
      },
    );
  }

  /** Sends the last items of a catch-up and marks the reader live (`live` once per subscription). */
  private goLive(sub: Subscriber, items: readonly ReadItem[], through: Offset): void {
    sub.state = 'live';
    this.sendFrames(sub, this.framesFor(items), through);
    if (sub.liveSent) return;
    sub.liveSent = true;
    sub.link.send({ type: 'live', session: this.session, offset: sub.offset });
    if (sub.resumed) {
      const latencyMs = this.deps.config.clock() - sub.startedAt;
      this.deps.metrics.resumeLatency.observe(latencyMs / 1000);
      this.deps.telemetry.emit({ name: 'resume.live', session: this.session, offset: sub.offset, latencyMs, connectionId: sub.link.id, gaps: sub.gaps });
    }
  }

  private sendError(link: Link, code: ErrorCode, message: string, ref: string, details: ErrorDetails = {}, id?: number): void {
    link.sendError(new SpoolError(code, message, details), ref, id);
  }
}
