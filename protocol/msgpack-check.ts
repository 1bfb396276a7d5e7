/**
 * A strict structural check of one `spool.v1` message, run on the raw bytes before msgpackr
 * decodes them (PROTOCOL §2.2, §3.3). msgpackr is lenient where spool must not be: it turns
 * `{1:"a"}` into `{"1":"a"}`, keeps the last of two equal keys, renames a `__proto__` key,
 * decodes invalid UTF-8 to U+FFFD and int64 beyond 2^53 to the nearest double, and decodes ext
 * and bin into objects JSON cannot carry. Each of those would store something other than what
 * the producer wrote, so each is refused here, with BAD_FRAME naming what and where.
 *
 * One linear pass over the bytes, iterative (an explicit stack, so hostile nesting cannot
 * overflow the call stack), allocating nothing per value beyond that stack (and, for a map of
 * more than 16 keys, one array to sort them by). The walk knows where
 * every value starts and ends and under which path it sits; a later caller that wants the byte
 * range of each item's `data` (to store it without re-encoding) can be served from the same walk.
 *
 * Accepted: nil, false, true, every int width (uint64/int64 only within ±(2^53 − 1)), float32,
 * float64, str (well-formed UTF-8), array, map (str keys, no two byte-equal, none "__proto__").
 * Refused: bin, ext/fixext (msgpackr records, timestamps, `undefined`, …), 0xc1, a truncated
 * value, and bytes after the one value.
 */
import { SpoolError } from './errors';
import { isWellFormedUtf8 } from './utf8';

const ARRAY = 0;
const MAP = 1;
/** Maps with more keys than this are checked for duplicates by sorting instead of pairwise. */
const PAIRWISE_MAX_KEYS = 16;
/** 2^53 − 1 = 0x001FFFFF_FFFFFFFF: the high 32 bits of the largest safe integer. */
const SAFE_HIGH = 0x1fffff;
/** "__proto__" as bytes. */
const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

/**
 * The open containers, as parallel arrays `depth` deep (the depth lives in a local of the walk).
 * The keys of every open map sit on one shared key stack (a child map's keys above its
 * parent's, dropped when the child closes), so a map's keys are `keyStarts[keyBase[level] ..]`.
 * The arrays only grow; counters mark their tops, because truncating a JS array is a runtime
 * call that cost more than the rest of the walk.
 */
interface Stack {
  /** ARRAY or MAP. */
  readonly kinds: number[];
  /** Slots still to read (a map of n entries has 2n: key, value, …). */
  readonly left: number[];
  /** Slots when opened (for the index in an error's path). */
  readonly total: number[];
  /** Where the map's keys start on the key stack. */
  readonly keyBase: number[];
  readonly keyStarts: number[];
  readonly keyEnds: number[];
}

/**
 * Throws SpoolError(BAD_FRAME) unless `bytes` hold exactly one msgpack value that msgpackr
 * (as the codec configures it) decodes to a value equal to what was sent.
 */
export function checkMsgpack(bytes: Uint8Array): void {
  const length = bytes.length;
  // Big-endian reads of headers, and four string bytes at a time for the ASCII fast path.
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  const stack: Stack = { kinds: [], left: [], total: [], keyBase: [], keyStarts: [], keyEnds: [] };
  const { kinds, left, total, keyBase, keyStarts, keyEnds } = stack;
  let depth = 0;
  let keys = 0;
  let pos = 0;
  do {
    if (pos >= length) throw failure(bytes, stack, depth, keys, 'is truncated', length);
    const start = pos;
    const b = bytes[start] as number;
    const isKey = depth > 0 && kinds[depth - 1] === MAP && ((left[depth - 1] as number) & 1) === 0;
    let kind = ARRAY; // of the container this value opens, if count >= 0
    let count = -1;
    let strLength = -1; // of the string this value is, if >= 0
    if (b <= 0x7f || b >= 0xe0) {
      pos += 1; // positive / negative fixint
    } else if (b <= 0x8f) {
      kind = MAP;
      count = b & 0x0f;
      pos += 1;
    } else if (b <= 0x9f) {
      count = b & 0x0f;
      pos += 1;
    } else if (b <= 0xbf) {
      strLength = b & 0x1f;
      pos += 1;
    } else {
      // Every header is read only once it is known to be complete.
      const size = HEADER_SIZE[b - 0xc0] as number;
      if (size === 0) throw failure(bytes, stack, depth, keys, `holds ${describe(b)}, which spool does not carry`, start);
      if (start + size > length) throw failure(bytes, stack, depth, keys, 'is truncated', length);
      pos += size;
      switch (b) {
        case 0xcf: // uint64
        case 0xd3: // int64
          if (!safeInt64(view, start + 1, b === 0xd3)) {
            throw failure(bytes, stack, depth, keys, `has ${b === 0xd3 ? 'an int64' : 'a uint64'} outside ±(2^53 − 1), which would not decode exactly`, start);
          }
          break;
        case 0xd9:
          strLength = bytes[start + 1] as number;
          break;
        case 0xda:
          strLength = view.getUint16(start + 1);
          break;
        case 0xdb:
          strLength = view.getUint32(start + 1);
          break;
        case 0xdc:
          count = view.getUint16(start + 1);
          break;
        case 0xdd:
          count = view.getUint32(start + 1);
          break;
        case 0xde:
          kind = MAP;
          count = view.getUint16(start + 1);
          break;
        case 0xdf:
          kind = MAP;
          count = view.getUint32(start + 1);
          break;
        default: // nil, booleans, floats, the other ints: the header is the value
      }
    }
    if (isKey && strLength < 0) throw failure(bytes, stack, depth, keys, `has a map key that is ${describe(b)}, not a string`, start);
    if (strLength >= 0) {
      const end = pos + strLength;
      if (end > length) throw failure(bytes, stack, depth, keys, 'is truncated', length);
      if (!isAscii(view, bytes, pos, end) && !isWellFormedUtf8(bytes, pos, end)) {
        throw failure(bytes, stack, depth, keys, `has a ${isKey ? 'map key' : 'string'} that is not well-formed UTF-8`, pos);
      }
      if (isKey) {
        if (isProto(bytes, pos, end)) throw failure(bytes, stack, depth, keys, 'has a "__proto__" map key', pos);
        keyStarts[keys] = pos;
        keyEnds[keys] = end;
        keys++;
      }
      pos = end;
    } else if (count > 0) {
      const slots = kind === MAP ? count * 2 : count;
      // Every slot takes at least one byte: a count past the bytes left is a truncated (or
      // hostile) header, refused before anything is pushed for it.
      if (slots > length - pos) throw failure(bytes, stack, depth, keys, 'is truncated', length);
      kinds[depth] = kind;
      left[depth] = slots;
      total[depth] = slots;
      keyBase[depth] = keys;
      depth++;
      continue;
    }
    // A value ended at `pos`: count it in its container, closing every container it completes.
    while (depth > 0) {
      const top = depth - 1;
      const rest = (left[top] as number) - 1;
      left[top] = rest;
      if (rest > 0) break;
      if (kinds[top] === MAP) {
        const base = keyBase[top] as number;
        const twice = keys - base > 1 ? duplicateKey(bytes, keyStarts, keyEnds, base, keys) : -1;
        if (twice >= 0) {
          throw failure(bytes, stack, depth, keys, `has the key ${JSON.stringify(keyText(bytes, stack, twice))} twice in one map`, keyStarts[twice] as number);
        }
        keys = base;
      }
      depth = top;
    }
  } while (depth > 0);
  if (pos !== length) throw failure(bytes, stack, 0, 0, `has ${length - pos} byte${length - pos === 1 ? '' : 's'} after its one value`, pos);
}

/**
 * Bytes each type byte 0xc0..0xdf takes before its payload (fixed-size values: all of it);
 * 0 for what spool refuses: 0xc1 (never used), bin 0xc4-0xc6, ext 0xc7-0xc9, fixext 0xd4-0xd8.
 */
// prettier-ignore
const HEADER_SIZE: readonly number[] = [
  1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 5, 9, 2, 3, 5, 9, // c0 nil, c1, false, true, bin×3, ext×3, float32, float64, uint8..uint64
  2, 3, 5, 9, 0, 0, 0, 0, 0, 2, 3, 5, 3, 5, 3, 5, // d0 int8..int64, fixext×5, str8/16/32, array16/32, map16/32
];

/** Whether the 8 bytes at `at` are an int64 (or uint64) within ±(2^53 − 1). */
function safeInt64(view: DataView, at: number, signed: boolean): boolean {
  const high = signed ? view.getInt32(at) : view.getUint32(at);
  if (high >= 0) return high <= SAFE_HIGH;
  // Negative: high in [-2^21, -1], but not -2^53 itself (high -2^21, low 0).
  return high > -SAFE_HIGH - 1 || (high === -SAFE_HIGH - 1 && view.getUint32(at + 4) !== 0);
}

/** Whether `bytes[start, end)` is all ASCII; four bytes per step through the DataView. */
function isAscii(view: DataView, bytes: Uint8Array, start: number, end: number): boolean {
  let acc = 0;
  let i = start;
  for (; i + 4 <= end; i += 4) acc |= view.getUint32(i);
  for (; i < end; i++) acc |= bytes[i] as number;
  return (acc & 0x80808080) === 0;
}

function isProto(bytes: Uint8Array, start: number, end: number): boolean {
  if (end - start !== PROTO.length) return false;
  for (let k = 0; k < PROTO.length; k++) if (bytes[start + k] !== PROTO[k]) return false;
  return true;
}

/** The index (on the key stack) of a key equal to an earlier one in `[base, top)`, or -1. */
function duplicateKey(bytes: Uint8Array, starts: readonly number[], ends: readonly number[], base: number, top: number): number {
  const count = top - base;
  if (count <= PAIRWISE_MAX_KEYS) {
    for (let i = base + 1; i < top; i++) {
      for (let j = base; j < i; j++) if (sameBytes(bytes, starts, ends, i, j)) return i;
    }
    return -1;
  }
  // Large maps: sort the keys by their bytes and compare neighbours, O(n log n) instead of O(n²).
  const order = Array.from({ length: count }, (_, k) => base + k);
  order.sort((i, j) => compareBytes(bytes, starts, ends, i, j));
  for (let k = 1; k < count; k++) {
    if (sameBytes(bytes, starts, ends, order[k] as number, order[k - 1] as number)) return order[k] as number;
  }
  return -1;
}

function sameBytes(bytes: Uint8Array, starts: readonly number[], ends: readonly number[], i: number, j: number): boolean {
  const a = starts[i] as number;
  const b = starts[j] as number;
  const length = (ends[i] as number) - a;
  if ((ends[j] as number) - b !== length) return false;
  for (let k = 0; k < length; k++) if (bytes[a + k] !== bytes[b + k]) return false;
  return true;
}

function compareBytes(bytes: Uint8Array, starts: readonly number[], ends: readonly number[], i: number, j: number): number {
  const a = starts[i] as number;
  const b = starts[j] as number;
  const aLength = (ends[i] as number) - a;
  const bLength = (ends[j] as number) - b;
  const n = Math.min(aLength, bLength);
  for (let k = 0; k < n; k++) {
    const d = (bytes[a + k] as number) - (bytes[b + k] as number);
    if (d !== 0) return d;
  }
  return aLength - bLength;
}

function keyText(bytes: Uint8Array, stack: Stack, key: number): string {
  const text = new TextDecoder().decode(bytes.subarray(stack.keyStarts[key] as number, stack.keyEnds[key] as number));
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/**
 * The error for a refusal at byte `at`, naming where the walk stands as a path from the frame
 * (`items[2].data.a`). For a map, the key of its current value is the last key pushed before
 * the next level opened. Built only on failure.
 */
function failure(bytes: Uint8Array, stack: Stack, depth: number, keys: number, what: string, at: number): SpoolError {
  let path = '';
  for (let level = 0; level < depth; level++) {
    const done = (stack.total[level] as number) - (stack.left[level] as number);
    if (stack.kinds[level] === ARRAY) {
      path += `[${done}]`;
      continue;
    }
    if ((done & 1) === 0) break; // at a key slot, or the map just closed: the path is the map itself
    const next = level + 1 < depth ? (stack.keyBase[level + 1] as number) : keys;
    const key = keyText(bytes, stack, next - 1);
    path += /^[A-Za-z_$][\w$]*$/.test(key) ? `${path === '' ? '' : '.'}${key}` : `[${JSON.stringify(key)}]`;
  }
  return new SpoolError('BAD_FRAME', `msgpack ${path === '' ? 'frame' : path} ${what} (byte ${at})`);
}

/** A msgpack type byte, named for an error message. */
function describe(b: number): string {
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return 'an integer';
  if (b <= 0x8f || b === 0xde || b === 0xdf) return 'a map';
  if (b <= 0x9f || b === 0xdc || b === 0xdd) return 'an array';
  if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return 'a string';
  if (b === 0xc0) return 'nil';
  if (b === 0xc2 || b === 0xc3) return 'a boolean';
  if (b === 0xca || b === 0xcb) return 'a float';
  if (b >= 0xc4 && b <= 0xc6) return `binary (0x${b.toString(16)})`;
  if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) return `an extension type (0x${b.toString(16)})`;
  return `the reserved byte 0x${b.toString(16)}`;
}
