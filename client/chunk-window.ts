/**
 * A generation's unacknowledged chunks and the three pointers over them (counts of chunks;
 * seqs are 0-based):
 *
 *    0 ........ durable ........ sent ........ assigned
 *    | released  |  in flight     | queued, not |
 *    | (acked)   |  (unacked)     | yet sent    |
 *
 * It holds [durable, assigned) and never drops any of it: only an ack releases (G8 bounds it
 * through the producer's high-water mark, G1 through the gateway's acks). Knows no socket.
 */
import type { ChunkItem, Credit } from '../protocol';

interface QueuedChunk {
  readonly seq: number;
  readonly bytes: number;
  readonly item: ChunkItem;
}

/** Frame bytes a chunks frame costs beyond its items (type, token, seq, msgpack headers). */
export const FRAME_OVERHEAD = 96;
/** Frame bytes an item costs beyond its data (map header, field names, priority). */
export const ITEM_OVERHEAD = 24;

/** What bounds one `chunks` frame: the welcome's limits and the unacked credit. */
export interface BatchLimits {
  readonly maxBatchItems: number;
  readonly maxFrameBytes: number;
  readonly credit: Credit;
  /** Bytes of the envelope (token length); counted once per frame. */
  readonly envelopeBytes: number;
}

/** The unacked chunks of one generation, with the durable / sent / assigned pointers. */
export class ChunkWindow {
  private queue: QueuedChunk[] = [];
  private head = 0;
  private assignedValue = 0;
  private durableValue = 0;
  private sentValue = 0;
  private queuedBytes = 0;
  private inflightBytes = 0;

  /** Chunks written so far = the seq the next write gets = the seq a finish carries. */
  get assigned(): number {
    return this.assignedValue;
  }

  /** Chunks acknowledged and released. */
  get durable(): number {
    return this.durableValue;
  }

  /** Next seq to send on the current socket. */
  get sent(): number {
    return this.sentValue;
  }

  get unackedItems(): number {
    return this.assignedValue - this.durableValue;
  }

  get unackedBytes(): number {
    return this.queuedBytes;
  }

  get allSent(): boolean {
    return this.sentValue === this.assignedValue;
  }

  /** Queues a chunk; returns its seq. */
  push(item: ChunkItem, bytes: number): number {
    const seq = this.assignedValue++;
    this.queue.push({ seq, bytes, item });
    this.queuedBytes += bytes;
    return seq;
  }

  /** Drops chunks below `upTo`: they are durable. */
  release(upTo: number): void {
    while (this.head < this.queue.length) {
      const chunk = this.queue[this.head];
      if (chunk === undefined || chunk.seq >= upTo) break;
      this.queuedBytes -= chunk.bytes;
      if (chunk.seq < this.sentValue) this.inflightBytes -= chunk.bytes;
      this.queue[this.head] = undefined as unknown as QueuedChunk; // let the data be collected
      this.head++;
    }
    if (upTo > this.durableValue) this.durableValue = Math.min(upTo, this.assignedValue);
    if (this.sentValue < this.durableValue) this.sentValue = this.durableValue;
    // Compact only when the dead prefix dominates, so the cost per chunk stays constant.
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Moves the send pointer to `seq` (clamped to [durable, assigned]): back to resend, or forward
   * over chunks the gateway already holds (they stay queued, counted as in flight, until acked).
   */
  rewind(seq: number): void {
    this.sentValue = Math.max(this.durableValue, Math.min(seq, this.assignedValue));
    let bytes = 0;
    for (let i = this.head, end = this.head + this.sentValue - this.durableValue; i < end; i++) bytes += this.queue[i]?.bytes ?? 0;
    this.inflightBytes = bytes;
  }

  /**
   * Takes the next batch to send: consecutive chunks from `sent`, within maxBatchItems, an
   * estimate of maxFrameBytes and the credit of unacked chunks/bytes. Advances `sent`.
   */
  nextBatch(limits: BatchLimits): { seq: number; items: ChunkItem[] } | undefined {
    const seq = this.sentValue;
    const items: ChunkItem[] = [];
    let frameBytes = FRAME_OVERHEAD + limits.envelopeBytes;
    while (this.sentValue < this.assignedValue && items.length < limits.maxBatchItems) {
      const chunk = this.queue[this.head + this.sentValue - this.durableValue];
      if (chunk === undefined) break;
      const inFlight = this.sentValue - this.durableValue;
      // One chunk may always go when nothing is in flight, else a chunk larger than the credit
      // would wait forever.
      if (inFlight > 0 && (inFlight + 1 > limits.credit.frames || this.inflightBytes + chunk.bytes > limits.credit.bytes)) break;
      const chunkFrameBytes = chunk.bytes + ITEM_OVERHEAD + (chunk.item.kind?.length ?? 0);
      if (items.length > 0 && frameBytes + chunkFrameBytes > limits.maxFrameBytes) break;
      items.push(chunk.item);
      frameBytes += chunkFrameBytes;
      this.sentValue++;
      this.inflightBytes += chunk.bytes;
    }
    return items.length === 0 ? undefined : { seq, items };
  }
}
