/**
 * Shared by every store: turns the retained events of a range into read items, reporting each
 * hole as a gap. Offsets are contiguous (1..head) and only retention removes events, so a hole
 * between two retained events is exactly a trimmed range.
 */
import type { Gap, Offset, ReadItem, SessionEvent } from '../protocol/types';
import type { ReadResult } from './types';

/**
 * @param after    the reader's offset
 * @param events   retained events with offset > after, ascending, at most `limit` of them
 * @param head     the session head at read time
 * @param exhausted true when `events` holds every retained event after `after` (no more to fetch)
 */
export function assembleRead(after: Offset, events: readonly SessionEvent[], head: Offset, exhausted: boolean): ReadResult {
  const items: ReadItem[] = [];
  let cursor = after;
  for (const event of events) {
    if (event.offset > cursor + 1) items.push(trimmedGap(cursor + 1, event.offset - 1));
    items.push(event);
    cursor = event.offset;
  }
  if (exhausted && cursor < head) {
    items.push(trimmedGap(cursor + 1, head));
    cursor = head;
  }
  return { items, head, through: cursor };
}

export function trimmedGap(from: Offset, to: Offset): Gap {
  return { type: 'gap', from, to, reason: 'trimmed' };
}
