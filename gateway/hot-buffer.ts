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

export class HotBuffer {
  /**
   * events[start..] are live, ascending by offset, sizes[i] the bytes charged for events[i]; the
   * front is compacted lazily. Two arrays rather than an entry object per event: one object less
   * per event on the hot path, and an idle session's one event costs two one-slot arrays.
   */
  private events: SessionEvent[] = [];
  private sizes: number[] = [];
  private start = 0;
  private bytes = 0;
  /** Offsets at or after `start` that retention trimmed after they entered the buffer; null while none. */
  private removed: Set<Offset> | null = null;
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
    return this.events.length - this.start - (this.removed?.size ?? 0);
  }

  get byteSize(): number {
    return this.bytes;
  }

  /**
   * Appends newly durable events (ascending, all above head) and moves head to `head`; offsets
   * up to head without an event were trimmed. Then evicts past the bounds.
   */
  push(events: readonly SessionEvent[], head: Offset, sizeOf: (event: SessionEvent) => number): void {
    if (this.events.length === 0) {
      // Arrays of exactly this size (push would reserve 17 slots for the first event).
      this.events = events.slice();
      this.sizes = events.map((event) => sizeOf(event) + EVENT_OVERHEAD);
      for (const size of this.sizes) this.bytes += size;
    } else {
      for (const event of events) {
        const bytes = sizeOf(event) + EVENT_OVERHEAD;
        this.events.push(event);
        this.sizes.push(bytes);
        this.bytes += bytes;
      }
    }
    if (head > this.headOffset) this.headOffset = head;
    while (this.size > this.maxEvents || (this.bytes > this.maxBytes && this.size > 1)) this.dropFront();
    // Amortised O(1): compact once the dead front is at least half the array.
    if (this.start > 1024 && this.start * 2 > this.events.length) {
      this.events = this.events.slice(this.start);
      this.sizes = this.sizes.slice(this.start);
      this.start = 0;
    }
  }

  /** Moves head without events (the store's head moved on through writes this process did not see). */
  advanceHead(head: Offset): void {
    if (head > this.headOffset) {
      // The range between is unknown here: forget everything so readers go to the store.
      this.events = [];
      this.sizes = [];
      this.start = 0;
      this.bytes = 0;
      this.removed = null;
      this.floorOffset = head;
      this.headOffset = head;
    }
  }

  /**
   * Marks events retention trimmed from the store, so this buffer never serves them: a binary
   * search and a set entry each, O(log n) per trimmed event, no copying of the buffer.
   */
  remove(offsets: Iterable<Offset>): void {
    for (const offset of offsets) {
      const i = this.firstIndexAfter(offset - 1);
      const event = this.events[i];
      if (event === undefined || event.offset !== offset || this.removed?.has(offset) === true) continue;
      (this.removed ??= new Set()).add(offset);
      this.bytes -= this.sizes[i] as number;
    }
  }

  /** Every item after `after` up to head: events, with gaps for trimmed holes. Needs after >= floor. */
  readAfter(after: Offset): ReadItem[] {
    const items: ReadItem[] = [];
    const removed = this.removed;
    let cursor = after;
    for (let i = this.firstIndexAfter(after); i < this.events.length; i++) {
      const event = this.events[i] as SessionEvent;
      if (removed?.has(event.offset) === true) continue;
      if (event.offset > cursor + 1) items.push(trimmedGap(cursor + 1, event.offset - 1));
      items.push(event);
      cursor = event.offset;
    }
    if (cursor < this.headOffset) items.push(trimmedGap(cursor + 1, this.headOffset));
    return items;
  }

  private firstIndexAfter(after: Offset): number {
    let lo = this.start;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.events[mid] as SessionEvent).offset <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private dropFront(): void {
    // Trimmed events at the front go with it; they hold no bytes any more.
    let event = this.events[this.start] as SessionEvent;
    while (this.removed?.delete(event.offset) === true) {
      this.start += 1;
      event = this.events[this.start] as SessionEvent;
    }
    if (this.removed?.size === 0) this.removed = null;
    this.bytes -= this.sizes[this.start] as number;
    this.start += 1;
    // A reader at the dropped offset still finds everything after it here (holes read as gaps).
    this.floorOffset = event.offset;
  }
}
