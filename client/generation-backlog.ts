/**
 * What a producer may write and how much of it may wait unacknowledged: the write side of a
 * generation's ChunkWindow. Generation sends, rewinds and releases the window; this admits
 * chunks into it, through the Coalescer when coalescing is on.
 *
 *   write(data) ── kind, priority, portable data, fits one frame ──▶ under the cap? ──▶ queued
 *                  else BAD_FRAME | FRAME_TOO_LARGE                  else RATE_LIMITED (nothing queued)
 *
 * Memory: what the window holds is bounded by the high-water mark for a caller that stops at
 * `false` (the SDK never drops a written chunk to enforce it), and by `maxQueuedBytes` for one
 * that does not: past it write() throws RATE_LIMITED and queues nothing. Knows no socket.
 */
import { portableData, DEFAULT_LIMITS, SpoolError, formatBytes, type ChunkItem, type Credit, type GenerationId, type Priority } from '../protocol';
import { FRAME_OVERHEAD, ITEM_OVERHEAD, type ChunkWindow } from './chunk-window';
import { Coalescer, type CoalesceOptions } from './coalescer';
import type { HighWaterMark, WriteOptions } from './generation-types';
import { sizeOf } from './util';

/** The bounds of a backlog (a generation's, from `GenerationContext`). */
export interface BacklogOptions {
  readonly highWaterMark: Required<HighWaterMark>;
  /** Coalescing of adjacent string writes (windowMs 0: off). */
  readonly coalesce: Required<CoalesceOptions>;
  /** Hard cap on unacknowledged chunk data; see `SpoolClientOptions.maxQueuedBytes`. */
  readonly maxQueuedBytes: number;
}

/** Admits one generation's writes into its ChunkWindow and measures them against its bounds. */
export class GenerationBacklog {
  /** Present only when coalescing is on. */
  private readonly coalescer: Coalescer | undefined;

  /**
   * @param onQueued called after each chunk enters the window (Generation sends it when it can)
   */
  constructor(
    private readonly generation: GenerationId,
    private readonly window: ChunkWindow,
    private readonly options: BacklogOptions,
    private readonly onQueued: () => void,
  ) {
    if (options.coalesce.windowMs > 0) this.coalescer = new Coalescer(options.coalesce, () => this.closeMerge());
  }

  /**
   * Checks one write and queues it as the next chunk (with coalescing on, a string may instead
   * join the open merge). Throws BAD_FRAME for a bad kind, priority or data, FRAME_TOO_LARGE
   * for a chunk no frame of `maxFrameBytes` holds, RATE_LIMITED past the queue cap; nothing is
   * queued then.
   */
  write(data: unknown, options: WriteOptions, maxFrameBytes: number): void {
    const { kind, priority } = options;
    if (kind !== undefined && (typeof kind !== 'string' || kind.length === 0 || kind.length > DEFAULT_LIMITS.maxKindLength)) {
      throw new SpoolError('BAD_FRAME', `kind must be a string of 1-${DEFAULT_LIMITS.maxKindLength} chars`);
    }
    if (priority !== undefined && priority !== 0 && priority !== 1 && priority !== 2 && priority !== 3) {
      throw new SpoolError('BAD_FRAME', 'priority must be 0, 1, 2 or 3');
    }
    // The gateway stores JSON data only (an event written over msgpack is read over JSON too);
    // refusing here, where the caller can fix it, beats a frame the gateway refuses later.
    portableData(data, 'data', DEFAULT_LIMITS.maxDataDepth);
    const bytes = sizeOf(data);
    if (bytes + ITEM_OVERHEAD + FRAME_OVERHEAD > maxFrameBytes) {
      throw new SpoolError('FRAME_TOO_LARGE', `chunk of ${formatBytes(bytes)} exceeds maxFrameBytes (${formatBytes(maxFrameBytes)}); split it into smaller writes`);
    }
    const queued = this.queuedBytes();
    const cap = this.queueCap(maxFrameBytes);
    if (queued > 0 && queued + bytes > cap) {
      throw new SpoolError(
        'RATE_LIMITED',
        `generation ${this.generation} holds ${formatBytes(queued)} unacknowledged, a write of ${formatBytes(bytes)} would pass maxQueuedBytes (${formatBytes(cap)}); await drained() before writing more`,
        { generation: this.generation, limit: cap },
      );
    }
    const coalescer = this.coalescer;
    if (coalescer !== undefined && typeof data === 'string') {
      // What one merged chunk may hold so that its frame still fits (as checked above).
      const fits = maxFrameBytes - ITEM_OVERHEAD - FRAME_OVERHEAD - (kind?.length ?? 0);
      if (!coalescer.join(data, bytes, kind, priority, fits)) {
        this.closeMerge();
        if (!coalescer.begin(data, bytes, kind, priority, fits)) this.enqueue(chunkItem(data, kind, priority), bytes);
      }
    } else {
      this.closeMerge(); // anything else ends the merge first: order is kept exactly
      this.enqueue(chunkItem(data, kind, priority), bytes);
    }
  }

  /** Queues the open merge, if any, as one chunk (called before anything else is queued). */
  closeMerge(): void {
    const merged = this.coalescer?.take();
    if (merged !== undefined) this.enqueue(chunkItem(merged.text, merged.kind, merged.priority), merged.bytes);
  }

  /**
   * Whether the unacknowledged chunks (the open merge counted as one) exceed the high-water
   * mark, or the gateway's `credit` where that is lower: write() returns false past it.
   */
  overHighWaterMark(credit: Credit): boolean {
    const hwm = this.options.highWaterMark;
    const items = this.window.unackedItems + (this.coalescer?.isOpen === true ? 1 : 0);
    return items > Math.min(hwm.items, credit.frames) || this.queuedBytes() > Math.min(hwm.bytes, credit.bytes);
  }

  /** Drops the open merge and its timer (the generation failed: nothing more will be sent). */
  dispose(): void {
    this.coalescer?.dispose();
  }

  private enqueue(item: ChunkItem, bytes: number): void {
    this.window.push(item, bytes);
    this.onQueued();
  }

  /** Unacknowledged chunk data, the open merge included. */
  private queuedBytes(): number {
    return this.window.unackedBytes + (this.coalescer?.bytes ?? 0);
  }

  /**
   * The hard cap of write(): maxQueuedBytes, but never so low that a caller who stops at `false`
   * could meet it (at most the mark plus one frame's worth of chunk is queued then).
   */
  private queueCap(maxFrameBytes: number): number {
    return Math.max(this.options.maxQueuedBytes, this.options.highWaterMark.bytes + maxFrameBytes);
  }
}

function chunkItem(data: unknown, kind: string | undefined, priority: Priority | undefined): ChunkItem {
  if (kind === undefined) return priority === undefined ? { data } : { priority, data };
  return priority === undefined ? { kind, data } : { kind, priority, data };
}
