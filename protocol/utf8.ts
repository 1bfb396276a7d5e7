/**
 * UTF-8 well-formedness of a byte range, without decoding it. Pure JavaScript because protocol/
 * also runs in the browser SDK, where Node's `isUtf8` (node:buffer) does not exist; and it
 * takes a range rather than a view, so checking each string of a msgpack frame allocates
 * nothing (`isUtf8` would need a `subarray` per string).
 */

/**
 * True when `bytes[start, end)` is well-formed UTF-8 (Unicode 15 §3.9, Table 3-7): no stray
 * continuation byte, no truncated sequence, no overlong form, no surrogate (U+D800–U+DFFF), nothing
 * past U+10FFFF. Runs of ASCII cost one comparison per byte.
 */
export function isWellFormedUtf8(bytes: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    if (b >= 0xc2 && b <= 0xdf) {
      if (i + 1 >= end || !cont(bytes[i + 1] as number)) return false;
      i += 2;
      continue;
    }
    if (b >= 0xe0 && b <= 0xef) {
      if (i + 2 >= end) return false;
      const b1 = bytes[i + 1] as number;
      // E0 needs A0..BF (else overlong); ED needs 80..9F (else a surrogate).
      const lo = b === 0xe0 ? 0xa0 : 0x80;
      const hi = b === 0xed ? 0x9f : 0xbf;
      if (b1 < lo || b1 > hi || !cont(bytes[i + 2] as number)) return false;
      i += 3;
      continue;
    }
    if (b >= 0xf0 && b <= 0xf4) {
      if (i + 3 >= end) return false;
      const b1 = bytes[i + 1] as number;
      // F0 needs 90..BF (else overlong); F4 needs 80..8F (else past U+10FFFF).
      const lo = b === 0xf0 ? 0x90 : 0x80;
      const hi = b === 0xf4 ? 0x8f : 0xbf;
      if (b1 < lo || b1 > hi || !cont(bytes[i + 2] as number) || !cont(bytes[i + 3] as number)) return false;
      i += 4;
      continue;
    }
    return false; // 80..C1 (continuation or overlong lead), F5..FF
  }
  return true;
}

function cont(b: number): boolean {
  return (b & 0xc0) === 0x80;
}
