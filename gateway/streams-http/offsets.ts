/**
 * Durable Streams offsets and cursors as spool renders them (PROTOCOL §16.4).
 *
 * A stream offset is a position in the stream's log: for a stream that is not a fork, the spool
 * offset of the last event it covers. It is rendered as `0000000000000000_` followed by that
 * number in 16 zero-padded decimal digits, so two offsets of one stream compare as strings the
 * way they compare as numbers (the protocol's lexicographic order), and the spelling matches the
 * one the protocol's reference server uses (the conformance suite forks at the literal
 * `0000000000000000_0000000000000000`, "before any data"). The first half is reserved (always
 * zeros); anything else is a malformed offset.
 */

/** A parsed `offset` query parameter or `Stream-Fork-Offset` header. */
export type OffsetParam = { readonly kind: 'start' } | { readonly kind: 'now' } | { readonly kind: 'at'; readonly offset: number };

const PREFIX = '0000000000000000_';
const DIGITS = 16;
const OFFSET_PATTERN = /^0{16}_(\d{16})$/;

/** The wire spelling of stream position `n` (an integer ≥ 0). */
export function renderOffset(n: number): string {
  return PREFIX + String(n).padStart(DIGITS, '0');
}

/** Reads an offset as sent; null when it is not one spool could have rendered (or a sentinel). */
export function parseOffset(raw: string): OffsetParam | null {
  if (raw === '-1') return { kind: 'start' };
  if (raw === 'now') return { kind: 'now' };
  const match = OFFSET_PATTERN.exec(raw);
  if (!match) return null;
  const offset = Number(match[1]);
  return Number.isSafeInteger(offset) ? { kind: 'at', offset } : null;
}

/** The cursor clock of the protocol (§10.1): 20-second intervals counted from 2024-10-09. */
const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);
const CURSOR_INTERVAL_MS = 20_000;
const MAX_JITTER_SECONDS = 3600;

/**
 * The `Stream-Cursor` of a live response: the current interval number, or, when the client's
 * cursor is already at or past it, the client's plus a random jitter of 1–3600 s worth of
 * intervals, so cursors never repeat and a CDN can never cycle on a cached empty response.
 */
export function responseCursor(clientCursor: string | undefined, now: number, random: () => number = Math.random): string {
  const current = Math.floor((now - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS);
  if (clientCursor === undefined || !/^\d{1,15}$/.test(clientCursor)) return String(current);
  const client = Number(clientCursor);
  if (client < current) return String(current);
  const jitterSeconds = 1 + Math.floor(random() * MAX_JITTER_SECONDS);
  return String(client + Math.max(1, Math.ceil((jitterSeconds * 1000) / CURSOR_INTERVAL_MS)));
}
