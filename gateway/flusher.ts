/**
 * The flusher of one session actor: a bounded queue of store operations, at most one store call
 * in flight, batching, linger, retry with jittered backoff within a budget, then fail-fast while
 * the store is unhealthy (DESIGN §7).
 *
 *   enqueue ──▶ [queue] ──(idle: flush at once / busy: batch what queued, linger if asked)──▶ execute
 *                  ▲                                                                          │
 *                  └──────── retry same batch (backoff, within storeRetryBudgetMs) ◀─ throws ─┘
 *                                        budget spent ─▶ giveUp(batch) + unhealthy until probe
 */

export interface FlusherOptions {
  readonly maxBatchEvents: number;
  readonly maxBatchBytes: number;
  readonly lingerMs: number;
  readonly retryBudgetMs: number;
  readonly probeIntervalMs: number;
  readonly clock: () => number;
}

export interface FlushHandler<Op> {
  /** Whether the op may share a store call with its neighbours (a generation open may not). */
  batchable(op: Op): boolean;
  /**
   * True when an unbatchable op has nothing left to do by the time it comes up (an earlier op
   * did its work): it is dropped without a store call and without splitting the batch around it.
   */
  settled(op: Op): boolean;
  weight(op: Op): number;
  /** One store call for the batch; throws on a store failure (the batch is retried). */
  execute(batch: Op[]): Promise<void>;
  /** The store stayed down past the budget: answer every op of the batch with an error. */
  giveUp(batch: Op[], error: unknown): void;
  /** A store call failed and will be retried. */
  onRetry(error: unknown, attempt: number): void;
  /** The queue became empty with nothing in flight. */
  onIdle(): void;
}

const BACKOFF_BASE_MS = 25;
const BACKOFF_MAX_MS = 1000;

export class Flusher<Op> {
  private queue: Op[] = [];
  private head = 0;
  private inFlight = false;
  private scheduled = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private unhealthyUntil = 0;
  private closed = false;

  constructor(private readonly options: FlusherOptions, private readonly handler: FlushHandler<Op>) {}

  get depth(): number {
    return this.queue.length - this.head;
  }

  get busy(): boolean {
    return this.inFlight || this.depth > 0;
  }

  /** True while the store is considered down and writes fail fast. */
  get unhealthy(): boolean {
    return this.options.clock() < this.unhealthyUntil;
  }

  enqueue(op: Op): void {
    this.queue.push(op);
    if (!this.inFlight && !this.scheduled) {
      // A lone write flushes at once; ops enqueued in the same tick (one `chunks` frame) join it.
      this.scheduled = true;
      queueMicrotask(() => this.run());
    }
  }

  /** Stops timers; queued ops stay unanswered (the caller fails them). */
  close(): void {
    this.closed = true;
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
  }

  /** Removes and returns everything queued (not in flight). */
  drainQueue(): Op[] {
    const rest = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    return rest;
  }

  private run(): void {
    this.scheduled = false;
    this.lingerTimer = undefined;
    if (this.inFlight || this.closed || this.depth === 0) return;
    void this.flushOne();
  }

  private takeBatch(): Op[] {
    while (this.head < this.queue.length && this.handler.settled(this.queue[this.head] as Op)) this.head += 1;
    if (this.head >= this.queue.length) return [];
    const first = this.queue[this.head] as Op;
    if (!this.handler.batchable(first)) {
      this.head += 1;
      return [first];
    }
    const batch: Op[] = [];
    let bytes = 0;
    while (this.head < this.queue.length && batch.length < this.options.maxBatchEvents) {
      const op = this.queue[this.head] as Op;
      if (!this.handler.batchable(op)) {
        if (!this.handler.settled(op)) break;
        this.head += 1;
        continue;
      }
      const w = this.handler.weight(op);
      if (batch.length > 0 && bytes + w > this.options.maxBatchBytes) break;
      batch.push(op);
      bytes += w;
      this.head += 1;
    }
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return batch;
  }

  private async flushOne(): Promise<void> {
    this.inFlight = true;
    const batch = this.takeBatch();
    const startedAt = this.options.clock();
    let attempt = 0;
    for (;;) {
      if (batch.length === 0) break;
      if (this.unhealthy && attempt === 0) {
        this.handler.giveUp(batch, new Error('store unhealthy'));
        break;
      }
      try {
        await this.handler.execute(batch);
        this.unhealthyUntil = 0;
        break;
      } catch (error) {
        attempt += 1;
        const elapsed = this.options.clock() - startedAt;
        if (this.closed || elapsed >= this.options.retryBudgetMs) {
          this.unhealthyUntil = this.options.clock() + this.options.probeIntervalMs;
          this.handler.giveUp(batch, error);
          break;
        }
        this.handler.onRetry(error, attempt);
        const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt, this.options.retryBudgetMs - elapsed);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
      }
    }
    this.inFlight = false;
    if (this.depth === 0) {
      // Drop the grown backing store: an idle session should hold no queue memory.
      this.queue = [];
      this.head = 0;
      this.handler.onIdle();
      return;
    }
    if (this.options.lingerMs > 0 && this.depth < this.options.maxBatchEvents) {
      // Writes are streaming in behind the flush: wait a moment so the next call carries more.
      this.scheduled = true;
      this.lingerTimer = setTimeout(() => this.run(), this.options.lingerMs);
    } else {
      this.run();
    }
  }
}
