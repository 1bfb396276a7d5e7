/**
 * Coalescing of adjacent text deltas: consecutive string writes of one kind and priority, made
 * within a short window of the first and totalling at most a byte bound, become one chunk (one
 * seq, one stored event, one fanout item) before the chunk is queued for sending.
 *
 *            write(text) ─ same kind+priority, in window, fits ─▶ joined
 *                 │
 *     none open ──┴─ else ──▶ close the open merge (queued first) ──▶ open a new one
 *
 *     open merge ── window timer | flush() | finish() | abort() | drained() must wait
 *                   | a write of other data, kind or priority ──▶ closed: queued as one chunk
 *
 * The merge is closed before anything that follows it is queued, so the order of what was
 * written is preserved exactly, and its text is the concatenation of the writes. One timer per
 * generation at most (the open merge's window), never one per write. Knows no socket.
 */
import type { Priority } from '../protocol';
import type { Timer } from './util';

/** Merging of adjacent string writes; see `SpoolClientOptions.coalesce`. */
export interface CoalesceOptions {
  /**
   * How long the first write of a merge may wait for more, in ms. 0 turns coalescing off.
   * @default 0 (off)
   */
  readonly windowMs: number;
  /** Bound on the UTF-8 bytes of one merged chunk (never above what fits one frame). @default 16 KiB (per generation: the client's) */
  readonly maxBytes?: number;
}

/** Byte bound of a merged chunk when `coalesce.maxBytes` is not given. */
export const DEFAULT_COALESCE_MAX_BYTES = 16 * 1024;

/** Coalescing off: the default, because it changes chunk boundaries (see the README). */
export const COALESCE_OFF: Required<CoalesceOptions> = { windowMs: 0, maxBytes: DEFAULT_COALESCE_MAX_BYTES };

/** Validates a `coalesce` option and fills in its default. */
export function resolveCoalesce(options: CoalesceOptions | undefined, fallback: Required<CoalesceOptions> = COALESCE_OFF): Required<CoalesceOptions> {
  if (options === undefined) return fallback;
  const { windowMs } = options;
  const maxBytes = options.maxBytes ?? fallback.maxBytes;
  if (typeof windowMs !== 'number' || !Number.isFinite(windowMs) || windowMs < 0) {
    throw new TypeError(`coalesce.windowMs must be a finite number of ms >= 0 (0: off), got ${String(windowMs)}`);
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new TypeError(`coalesce.maxBytes must be a positive integer, got ${String(maxBytes)}`);
  return { windowMs, maxBytes };
}

/** A closed merge, ready to be queued as one chunk. */
export interface MergedChunk {
  readonly text: string;
  readonly bytes: number;
  readonly kind: string | undefined;
  readonly priority: Priority | undefined;
}

interface OpenMerge {
  text: string;
  bytes: number;
  readonly kind: string | undefined;
  readonly priority: Priority | undefined;
  readonly startedAt: number;
}

/** Clock and timer, passed in so tests can drive the window (fake timers work too). */
export interface CoalescerClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
}

const SYSTEM_CLOCK: CoalescerClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer),
};

/** The open merge of one generation, if any. */
export class Coalescer {
  private merge: OpenMerge | undefined;
  private timer: Timer | undefined;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.onWindowEnd();
  };

  /**
   * @param onWindowEnd called when the open merge's window elapsed: the owner takes it (`take()`)
   *   and queues it.
   */
  constructor(
    private readonly options: Required<CoalesceOptions>,
    private readonly onWindowEnd: () => void,
    private readonly clock: CoalescerClock = SYSTEM_CLOCK,
  ) {}

  /** Bytes waiting in the open merge (0 when none). */
  get bytes(): number {
    return this.merge?.bytes ?? 0;
  }

  get isOpen(): boolean {
    return this.merge !== undefined;
  }

  /**
   * Adds a string write to the open merge when it may join it: same kind and priority, within
   * the window of the merge's first write, and the total within `maxBytes` (capped by the
   * caller at what fits one frame). False: the caller closes the merge (`take()`), then `begin()`s.
   */
  join(text: string, bytes: number, kind: string | undefined, priority: Priority | undefined, maxBytes: number): boolean {
    const merge = this.merge;
    if (merge === undefined || merge.kind !== kind || merge.priority !== priority) return false;
    if (merge.bytes + bytes > Math.min(maxBytes, this.options.maxBytes)) return false;
    // The timer closes the merge on time unless the event loop is busy (a synchronous burst of
    // writes): the clock keeps "within windowMs of the first write" true even then.
    if (this.clock.now() - merge.startedAt >= this.options.windowMs) return false;
    merge.text += text; // V8 concatenates lazily (ropes): no copy per write
    merge.bytes += bytes;
    return true;
  }

  /**
   * Opens a merge with this write, which must not join the open one (there is none after
   * `take()`). False when the write is too large to take more: the caller queues it as is.
   */
  begin(text: string, bytes: number, kind: string | undefined, priority: Priority | undefined, maxBytes: number): boolean {
    if (this.merge !== undefined) throw new Error('coalescer: begin() while a merge is open');
    if (bytes >= Math.min(maxBytes, this.options.maxBytes)) return false;
    this.merge = { text, bytes, kind, priority, startedAt: this.clock.now() };
    this.timer = this.clock.setTimeout(this.onTimer, this.options.windowMs);
    return true;
  }

  /** Closes the open merge and returns it (undefined when none is open). */
  take(): MergedChunk | undefined {
    const merge = this.merge;
    if (merge === undefined) return undefined;
    this.merge = undefined;
    this.clearTimer();
    return { text: merge.text, bytes: merge.bytes, kind: merge.kind, priority: merge.priority };
  }

  /** Drops the open merge (the generation failed: nothing more will be sent). */
  dispose(): void {
    this.merge = undefined;
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
