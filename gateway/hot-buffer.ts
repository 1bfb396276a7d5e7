/**
 * The recent tail of one session's durable log, in memory, so live readers and short resumes
 * need no store read. It covers offsets (floor, head]: every retained event in that range is
 * here; an offset in range with no event was trimmed by retention and reads as a gap.
 *
 * Bounded by event count and bytes (G8): the oldest entries fall off the front, raising floor.
 */
import type { Offset, ReadItem, SessionEvent } from '../protocol/types';
import { trimmedGap } from '../store/read';

/** Bytes charged per event beyond its data, so zero-size events are not free. */
const EVENT_OVERHEAD = 64;

interface Entry {
  readonly event: SessionEvent;
  readonly bytes: number;
  /** Trimmed by retention after it entered the buffer: skipped, reads as part of a gap. */
  removed: boolean;
}

export class HotBuffer {
  /** entries[start..] are live, ascending by offset; the front is compacted lazily. */
  private entries: Entry[] = [];
  private start = 0;
  private bytes = 0;
  /** Entries at or after `start` flagged removed. */
  private removedCount = 0;
  private floorOffset: Offset;
  private headOffset: Offset;

  constructor(private readonly maxEvents: number, private readonly maxBytes: number, head: Offset) {
    this.floorOffset = head;
    this.headOffset = head;
  }

  /** Readers with an offset >= floor can be served from here alone. */
  get floor(): Offset {
    return this.floorOffset;
  }

  get head(): Offset {
    return this.headOffset;
  }

  /** Events held (trimmed ones excluded). */
  get size(): number {
    return this.entries.length - this.start - this.removedCount;
  }

  get byteSize(): number {
    return this.bytes;
  }

  /**
   * Appends newly durable events (ascending, all above head) and moves head to `head`; offsets
   * up to head without an event were trimmed. Then evicts past the bounds.
   */
  push(events: readonly SessionEvent[], head: Offset, sizeOf: (event: SessionEvent) => number): void {
    for (const event of events) {
      const bytes = sizeOf(event) + EVENT_OVERHEAD;
      this.entries.push({ event, bytes, removed: false });
      this.bytes += bytes;
    }
    if (head > this.headOffset) this.headOffset = head;
    while (this.size > this.maxEvents || (this.bytes > this.maxBytes && this.size > 1)) this.dropFront();
    // Amortised O(1): compact once the dead front is at least half the array.
    if (this.start > 1024 && this.start * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.start);
      this.start = 0;
    }
  }

  /** Moves head without events (the store's head moved on through writes this process did not see). */
  advanceHead(head: Offset): void {
    if (head > this.headOffset) {
      // The range between is unknown here: forget everything so readers go to the store.
      this.entries = [];
      this.start = 0;
      this.bytes = 0;
      this.removedCount = 0;
      this.floorOffset = head;
      this.headOffset = head;
    }
  }

  /**
   * Marks events retention trimmed from the store, so this buffer never serves them: a binary
   * search and a flag each, O(log n) per trimmed event, no copying of the buffer.
   */
  remove(offsets: Iterable<Offset>): void {
    for (const offset of offsets) {
      const i = this.firstIndexAfter(offset - 1);
      const entry = this.entries[i];
      if (entry && !entry.removed && entry.event.offset === offset) {
        entry.removed = true;
        this.bytes -= entry.bytes;
        this.removedCount += 1;
      }
    }
  }

  /** Every item after `after` up to head: events, with gaps for trimmed holes. Needs after >= floor. */
  readAfter(after: Offset): ReadItem[] {
    const items: ReadItem[] = [];
    let cursor = after;
    for (let i = this.firstIndexAfter(after); i < this.entries.length; i++) {
      const entry = this.entries[i] as Entry;
      if (entry.removed) continue;
      const event = entry.event;
      if (event.offset > cursor + 1) items.push(trimmedGap(cursor + 1, event.offset - 1));
      items.push(event);
      cursor = event.offset;
    }
    if (cursor < this.headOffset) items.push(trimmedGap(cursor + 1, this.headOffset));
    return items;
  }

  private firstIndexAfter(after: Offset): number {
    let lo = this.start;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.entries[mid] as Entry).event.offset <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private dropFront(): void {
    // Trimmed entries at the front go with it; they hold no bytes any more.
    let entry = this.entries[this.start] as Entry;
    while (entry.removed) {
      this.start += 1;
      this.removedCount -= 1;
      entry = this.entries[this.start] as Entry;
    }
    this.start += 1;
    this.bytes -= entry.bytes;
    // A reader at the dropped offset still finds everything after it here (holes read as gaps).
    this.floorOffset = entry.event.offset;
  }
}
