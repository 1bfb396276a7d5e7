/**
 * Test helper: msgpack spelled byte by byte, so a test can send what no well-behaved encoder
 * would (invalid UTF-8, integer map keys, duplicate keys, uint64, float32, ext types) and choose
 * each value's width.
 *
 *   map([s('type'), s('ping')], [s('id'), [0xcd, 0x00, 0x07]])   // {type:'ping', id: 7 as uint16}
 */

export type Bytes = Uint8Array | readonly number[];

export const NIL: Bytes = [0xc0];

export function cat(...parts: Bytes[]): Uint8Array {
  return catAll(parts);
}

/** `cat` for more parts than a call can spread. */
export function catAll(parts: readonly Bytes[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** A msgpack str holding exactly `raw`, which need not be valid UTF-8 (shortest header). */
export function strOf(raw: Uint8Array): Uint8Array {
  if (raw.length < 32) return cat([0xa0 | raw.length], raw);
  if (raw.length < 256) return cat([0xd9, raw.length], raw);
  if (raw.length < 65536) return cat([0xda, raw.length >> 8, raw.length & 0xff], raw);
  return cat([0xdb, raw.length >>> 24, (raw.length >> 16) & 0xff, (raw.length >> 8) & 0xff, raw.length & 0xff], raw);
}

/** A msgpack str of `text` as UTF-8. */
export const s = (text: string): Uint8Array => strOf(utf8(text));

/** A msgpack map of the given (already spelled) keys and values, in that order. */
export function map(...entries: ReadonlyArray<readonly [Bytes, Bytes]>): Uint8Array {
  return mapOf(entries);
}

/** `map` for more entries than a call can spread. */
export function mapOf(entries: ReadonlyArray<readonly [Bytes, Bytes]>): Uint8Array {
  const n = entries.length;
  const header = n < 16 ? [0x80 | n] : n < 65536 ? [0xde, n >> 8, n & 0xff] : [0xdf, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  return catAll([header, ...entries.flatMap(([k, v]) => [k, v])]);
}

/** A msgpack array of the given (already spelled) items. */
export function arr(...items: Bytes[]): Uint8Array {
  const n = items.length;
  const header = n < 16 ? [0x90 | n] : n < 65536 ? [0xdc, n >> 8, n & 0xff] : [0xdd, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  return catAll([header, ...items]);
}

/** The smallest msgpack spelling of a non-negative integer up to 2^32 − 1. */
export function uint(n: number): Uint8Array {
  if (n < 128) return Uint8Array.of(n);
  if (n < 256) return Uint8Array.of(0xcc, n);
  if (n < 65536) return Uint8Array.of(0xcd, n >> 8, n & 0xff);
  return Uint8Array.of(0xce, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}
