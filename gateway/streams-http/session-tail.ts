/**
 * A subscription to one session for an HTTP reader: the WebSocket door's reader path (the
 * session actor's readers: catch-up from the hot buffer or the store, then live fan-out, slow
 * reader pauses) behind the `Link` seam, turned into a queue an async reader pulls from.
 *
 *   start(after) ──▶ [events | gap]* ──▶ live(offset) ──▶ [events | gap]* ──▶ …
 *   any time: error (SLOW_CONSUMER, STORE_UNAVAILABLE, SESSION_REWOUND, SHUTTING_DOWN): the last item
 *   stop(): unsubscribes; pulls then answer 'stopped'
 *
 * Backpressure is the reader's: `bufferedAmount` is what its response has not yet sent plus what
 * waits in this queue, so a reader that does not drain is paused by the actor's readers exactly
 * like a WebSocket reader (maxReaderBufferedBytes, slowReaderTimeoutMs), never buffered without
 * bound.
 */
import type { SpoolError } from '../../protocol/errors';
import type { Offset, ServerFrame, SessionEvent, SessionId } from '../../protocol/types';
import type { SessionActor } from '../actor';
import type { Link } from '../link';
import type { ActorRegistry } from '../registry';
import type { SharedFrame } from '../shared-frame';
import { dataSize } from '../size';

export type TailItem =
  | { readonly kind: 'events'; readonly events: readonly SessionEvent[] }
  | { readonly kind: 'gap'; readonly from: Offset; readonly to: Offset }
  | { readonly kind: 'live'; readonly offset: Offset }
  | { readonly kind: 'error'; readonly error: SpoolError };

/** What the tail's reader sends on: its response's backlog. */
export interface TailSink {
  bufferedAmount(): number;
  onceDrained(lowWaterBytes: number, callback: () => void): void;
}

const NO_SINK: TailSink = {
  bufferedAmount: () => 0,
  onceDrained: (_low, callback) => callback(),
};

let nextTailId = 0;

export class SessionTail implements Link {
  readonly id: string;
  private readonly queue: TailItem[] = [];
  private queuedBytes = 0;
  private waiter: ((item: TailItem | 'stopped') => void) | null = null;
  private actor: SessionActor | null = null;
  private stopped = false;
  private failed = false;

  constructor(
    private readonly registry: ActorRegistry,
    readonly session: SessionId,
    private readonly sink: TailSink = NO_SINK,
  ) {
    this.id = `http-${++nextTailId}`;
  }

  /** Subscribes after `after` (a spool offset of the session). */
  start(after: Offset): void {
    this.registry.with(
      this.session,
      (actor) => {
        if (this.stopped) return;
        this.actor = actor;
        actor.subscribe(this, after, undefined);
      },
      (error: unknown) => this.push({ kind: 'error', error: error as SpoolError }),
    );
  }

  /** The next item, or 'timeout' after `timeoutMs`, or 'stopped'. */
  next(timeoutMs?: number): Promise<TailItem | 'timeout' | 'stopped'> {
    const item = this.queue.shift();
    if (item) {
      if (item.kind === 'events') this.queuedBytes -= eventsSize(item.events);
      return Promise.resolve(item);
    }
    if (this.stopped) return Promise.resolve('stopped');
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      this.waiter = (value) => {
        if (timer) clearTimeout(timer);
        resolve(value);
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiter = null;
          resolve('timeout');
        }, Math.max(0, timeoutMs));
      }
    });
  }

  /** The next item if one is queued already. */
  poll(): TailItem | undefined {
    const item = this.queue.shift();
    if (item?.kind === 'events') this.queuedBytes -= eventsSize(item.events);
    return item;
  }

  /** Ends the subscription. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.actor?.unsubscribe(this);
    this.queue.length = 0;
    this.queuedBytes = 0;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.('stopped');
  }

  private push(item: TailItem): void {
    if (this.stopped || this.failed) return;
    if (item.kind === 'error') this.failed = true;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = null;
      waiter(item);
      return;
    }
    if (item.kind === 'events') this.queuedBytes += eventsSize(item.events);
    this.queue.push(item);
  }

  // ------------------------------------------------------------------ Link (called by the session's readers)

  send(frame: ServerFrame): void {
    switch (frame.type) {
      case 'events':
        this.push({ kind: 'events', events: frame.events });
        return;
      case 'gap':
        this.push({ kind: 'gap', from: frame.from, to: frame.to });
        return;
      case 'live':
        this.push({ kind: 'live', offset: frame.offset });
        return;
      case 'error':
        return;
      default:
        return;
    }
  }

  sendShared(frame: SharedFrame): void {
    this.send(frame.frame);
  }

  sendError(error: SpoolError): void {
    this.push({ kind: 'error', error });
  }

  bufferedAmount(): number {
    return this.sink.bufferedAmount() + this.queuedBytes;
  }

  onceDrained(lowWaterBytes: number, callback: () => void): void {
    const check = (): void => {
      if (this.stopped) return;
      if (this.queuedBytes <= lowWaterBytes) this.sink.onceDrained(Math.max(0, lowWaterBytes - this.queuedBytes), callback);
      else setTimeout(check, DRAIN_POLL_MS);
    };
    check();
  }
}

const DRAIN_POLL_MS = 10;

function eventsSize(events: readonly SessionEvent[]): number {
  let size = 0;
  for (const e of events) size += dataSize(e.data) + 64;
  return size;
}
