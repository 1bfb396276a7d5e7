/**
 * A reader for bench:resume: one SpoolClient (its own connection), one subscription from offset
 * 0, consumed as fast as it arrives and checked item by item; its WebSocket is tapped (ws-tap.ts)
 * so it knows, at the moment they happen, each connection attempt, each refused attempt, each
 * loss of `live` and each return to it.
 *
 *   live ──socket lost (close)──▶ down ──attempt … attempt──▶ subscribed, catching up ──`live`──▶ live
 *          downAt, drops++            attempts[]                                       liveAt, lives++
 *
 * `live` is read from the SDK (`Subscription.live`) right after the SDK handled each message,
 * so `liveAt` is when the subscription turned live, not when a poll noticed.
 *
 * The checks, all made as items arrive: offsets contiguous from 1 (no gap, nothing repeated or
 * skipped across any number of reconnects), each generation's gen.start once, its chunks in seq
 * order with the payload written as that seq, its gen.end `done`. A failed check is a problem
 * in the run's report, never a throw.
 */
import { SpoolClient, type Subscription, type SubscriptionItem } from '../client';
import { payload, type Problems } from './workload';
import { tappedWebSocket } from './ws-tap';

/** What a reader saw of one generation. */
interface GenerationSeen {
  chunks: number;
  ended: boolean;
}

/** A generation a reader must have seen whole: gen.start, chunks 0..chunks-1, gen.end done. */
export interface ExpectedGeneration {
  readonly id: string;
  readonly chunks: number;
}

export class TrackedReader {
  readonly client: SpoolClient;
  readonly sub: Subscription;
  /** performance.now() of every connection attempt (a WebSocket constructed). */
  readonly attempts: number[] = [];
  /** ms each attempt that never opened took to fail (attempt → close). */
  readonly refusedMs: number[] = [];
  /** Whether the subscription is live, as of the last message or close. */
  live = false;
  /** When the subscription last turned live. */
  liveAt = Number.NaN;
  /** Times it turned live. */
  lives = 0;
  /** When it last stopped being live because its socket closed. */
  downAt = Number.NaN;
  /** Items received since it last turned live. */
  itemsSinceLive = 0;
  /** Offset of the last item received. */
  offset = 0;
  private readonly generations = new Map<string, GenerationSeen>();
  private opened = false;
  private waiters: Array<{ readonly ready: () => boolean; readonly resolve: () => void }> = [];
  /** The consumer loop; resolves when the subscription ends. */
  readonly reading: Promise<void>;

  constructor(
    url: string,
    readonly session: string,
    private readonly problems: Problems,
  ) {
    this.client = new SpoolClient({
      url,
      WebSocket: tappedWebSocket({
        attempt: (at) => {
          this.attempts.push(at);
          this.opened = false;
          this.sync(at);
        },
        open: () => {
          this.opened = true;
        },
        close: (at) => {
          if (!this.opened) this.refusedMs.push(at - (this.attempts[this.attempts.length - 1] as number));
          this.sync(at);
        },
        afterMessage: (at) => this.sync(at),
      }),
    });
    this.sub = this.client.subscribe(session, { from: 0 });
    this.reading = this.read();
  }

  /** The attempt that led to the latest return to live (the last one before `liveAt`). */
  get returnAttemptAt(): number {
    for (let i = this.attempts.length - 1; i >= 0; i--) {
      const at = this.attempts[i] as number;
      if (at <= this.liveAt) return at;
    }
    return Number.NaN;
  }

  /** Whether the reader has seen generation `id` end. */
  ended(id: string): boolean {
    return this.generations.get(id)?.ended === true;
  }

  /** Resolves once `ready()` holds, re-checked at every item, close and return to live. */
  until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ ready, resolve }));
  }

  /** Problems for each expected generation not seen whole, and for any generation not expected. */
  verify(expected: readonly ExpectedGeneration[]): void {
    const where = this.session;
    for (const { id, chunks } of expected) {
      const seen = this.generations.get(id);
      if (seen === undefined) this.problems.add(`${where}: never saw generation ${id}`);
      else if (seen.chunks !== chunks || !seen.ended) this.problems.add(`${where}: saw ${seen.chunks} of ${chunks} chunks of ${id}${seen.ended ? '' : ', no gen.end'}`);
    }
    for (const id of this.generations.keys()) {
      if (!expected.some((g) => g.id === id)) this.problems.add(`${where}: saw unexpected generation ${id}`);
    }
  }

  /** Closes the client: it has no generation to flush, so this waits on nothing but the close handshake (at most 2 s). */
  close(): Promise<void> {
    return this.client.close();
  }

  /**
   * Follows `Subscription.live`. Read after every close and message, and at every attempt: a
   * socket the SDK gives up on (no welcome in time, silent heartbeats) is detached without a
   * close event, but no subscription is live while its connection makes a new attempt.
   */
  private sync(at: number): void {
    // The first attempt starts inside subscribe(), before `sub` is assigned.
    const live = (this.sub as Subscription | undefined)?.live ?? false;
    if (live === this.live) return;
    this.live = live;
    if (live) {
      this.liveAt = at;
      this.lives++;
      this.itemsSinceLive = 0;
    } else {
      this.downAt = at;
    }
    this.changed();
  }

  private changed(): void {
    if (this.waiters.length === 0) return;
    const waiting = this.waiters;
    this.waiters = [];
    for (const waiter of waiting) {
      if (waiter.ready()) waiter.resolve();
      else this.waiters.push(waiter);
    }
  }

  private async read(): Promise<void> {
    const where = this.session;
    try {
      for await (const item of this.sub as AsyncIterable<SubscriptionItem>) {
        this.check(item);
        if (this.live) this.itemsSinceLive++;
        this.changed();
      }
    } catch (error) {
      this.problems.add(`${where}: subscription failed: ${String(error)}`);
    }
  }

  private check(item: SubscriptionItem): void {
    const where = this.session;
    if (item.type === 'gap') {
      this.problems.add(`${where}: gap ${item.from}..${item.to} (${item.reason})`);
      this.offset = item.to;
      return;
    }
    if (item.offset !== this.offset + 1) this.problems.add(`${where}: offset ${item.offset} after ${this.offset}`);
    this.offset = item.offset;
    const id = String(item.generationId);
    const seen = this.generations.get(id);
    if (item.type === 'gen.start') {
      if (seen !== undefined) this.problems.add(`${where}: second gen.start of ${id}`);
      else this.generations.set(id, { chunks: 0, ended: false });
    } else if (seen === undefined) {
      this.problems.add(`${where}: ${item.type} of ${id} before its gen.start`);
    } else if (item.type === 'chunk') {
      if (item.seq !== seen.chunks) this.problems.add(`${where}: ${id} chunk seq ${String(item.seq)} where ${seen.chunks} was due`);
      else if (item.data !== payload(seen.chunks)) this.problems.add(`${where}: ${id} chunk seq ${seen.chunks} arrived with different data`);
      else seen.chunks++;
    } else if (item.type === 'gen.end') {
      if (item.status !== 'done') this.problems.add(`${where}: ${id} ended ${String(item.status)}`);
      seen.ended = true;
    }
  }
}
