/**
 * A msgpack reader for what the gateway sends (SDK side): maps with string keys, arrays,
 * strings, integers, float64, booleans and nil, which is every `spool.v1` frame the gateway
 * writes. Decoding a reader's `events` frames was the SDK's largest single cost; a reader that
 * knows it will only meet these types skips msgpackr's generality (records, extensions, key
 * types) and builds the values directly.
 *
 * Anything else (float32, binary, extensions, a non-string or `__proto__` key, bytes past the
 * end) makes `readMsgpack` answer `undefined`, and the caller decodes the message with msgpackr
 * instead: every message decodes to what msgpackr makes of it (mapsAsObjects, int64 as number),
 * only faster for the common ones. msgpack-read.test.ts pins that equality.
 */
import { FIELD_KEYS as KEY } from './event-encoding';

// ignoreBOM: a string's leading U+FEFF is data, not a byte order mark; fatal: bytes that are not UTF-8
// (a lone surrogate msgpackr wrote) decline the message to msgpackr, which reads them its own way.
const textDecoder = new TextDecoder('utf-8', { ignoreBOM: true, fatal: true });

/** Thrown inside the reader for a byte it does not handle; never escapes `readMsgpack`. */
class Unhandled extends Error {}
const UNHANDLED = new Unhandled('not handled by the fast reader');

// The message being read, in module scope on purpose (as event-encoding.ts keeps its buffer):
// readMsgpack is synchronous and calls nothing that could re-enter it, so one reader state serves
// every call without allocating a reader per frame; it is cleared when each call returns. The
// short-string table below is a cache of immutable strings, safe to share for the same reason.
let bytes: Uint8Array = new Uint8Array(0);
let view: DataView = new DataView(bytes.buffer);
let pos = 0;

/** The value `message` holds, or undefined when it holds something this reader leaves to msgpackr. */
export function readMsgpack(message: Uint8Array): unknown {
  bytes = message;
  view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  pos = 0;
  try {
    const value = readValue();
    return pos === message.length ? value : undefined;
  } catch {
    return undefined;
  } finally {
    bytes = EMPTY;
    view = EMPTY_VIEW;
  }
}

const EMPTY = new Uint8Array(0);
const EMPTY_VIEW = new DataView(EMPTY.buffer);

function need(n: number): void {
  if (pos + n > bytes.length) throw UNHANDLED;
}

function u8(): number {
  need(1);
  return bytes[pos++] as number;
}

function u16(): number {
  need(2);
  const v = view.getUint16(pos);
  pos += 2;
  return v;
}

function u32(): number {
  need(4);
  const v = view.getUint32(pos);
  pos += 4;
  return v;
}

function readValue(): unknown {
  need(1);
  const b = bytes[pos++] as number;
  if (b < 0x80) return b;
  if (b < 0x90) return readMap(b & 0x0f);
  if (b < 0xa0) return readArray(b & 0x0f);
  if (b < 0xc0) return readString(b & 0x1f);
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xcb: {
      need(8);
      const v = view.getFloat64(pos);
      pos += 8;
      return v;
    }
    case 0xcc:
      return u8();
    case 0xcd:
      return u16();
    case 0xce:
      return u32();
    case 0xcf:
      // High word first (left to right).
      return u32() * 0x100000000 + u32();
    case 0xd0: {
      need(1);
      return view.getInt8(pos++);
    }
    case 0xd1: {
      need(2);
      const v = view.getInt16(pos);
      pos += 2;
      return v;
    }
    case 0xd2: {
      need(4);
      const v = view.getInt32(pos);
      pos += 4;
      return v;
    }
    case 0xd3: {
      need(8);
      const v = view.getInt32(pos) * 0x100000000 + view.getUint32(pos + 4);
      pos += 8;
      return v;
    }
    case 0xd9:
      return readString(u8());
    case 0xda:
      return readString(u16());
    case 0xdb:
      return readString(u32());
    case 0xdc:
      return readArray(u16());
    case 0xdd:
      return readArray(u32());
    case 0xde:
      return readMap(u16());
    case 0xdf:
      return readMap(u32());
    default:
      // float32 (msgpackr rounds it), bin, ext, 0xc1: msgpackr's to read.
      throw UNHANDLED;
  }
}

function readArray(n: number): unknown[] {
  // Each element is at least one byte: a length past what is left is not a message of ours.
  need(n);
  const out = new Array<unknown>(n);
  for (let i = 0; i < n; i++) out[i] = readValue();
  return out;
}

function readMap(n: number): Record<string, unknown> {
  need(n * 2);
  if (n <= 3 || n === 7 || n === 8) {
    const start = pos;
    const known = n <= 3 ? chunkItem(n) : chunkEvent(n === 8);
    if (known !== undefined) return known;
    pos = start;
  }
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) out[readMapKey()] = readValue();
  return out;
}

/** Whether `key`'s bytes (a fixstr) come next; moves past them when they do. */
function at(key: Uint8Array): boolean {
  const n = key.length;
  if (pos + n > bytes.length) return false;
  for (let i = 0; i < n; i++) if (bytes[pos + i] !== key[i]) return false;
  pos += n;
  return true;
}

/** A producer's chunk item (`{ kind?, priority?, data }`, as the SDK builds it), as one literal. */
function chunkItem(n: number): Record<string, unknown> | undefined {
  if (n === 1) return at(KEY.data) ? { data: readValue() } : undefined;
  if (at(KEY.kind)) {
    const kind = readValue();
    if (n === 2) return at(KEY.data) ? { kind, data: readValue() } : undefined;
    if (!at(KEY.priority)) return undefined;
    const priority = readValue();
    return at(KEY.data) ? { kind, priority, data: readValue() } : undefined;
  }
  if (n === 2 && at(KEY.priority)) {
    const priority = readValue();
    return at(KEY.data) ? { priority, data: readValue() } : undefined;
  }
  return undefined;
}

/**
 * A chunk event as the gateway writes it (event-encoding.ts's fields in its order; `kind` when
 * the map has 8 fields), built as one literal: V8 gives every such object one shape, where
 * adding fields one by one by name is a slow generic store per field. Undefined (and `pos`
 * anywhere) for any other map of 7 or 8 fields.
 */
function chunkEvent(withKind: boolean): Record<string, unknown> | undefined {
  if (!at(KEY.offset)) return undefined;
  const offset = readValue();
  if (!at(KEY.type)) return undefined;
  const type = readValue();
  if (!at(KEY.generationId)) return undefined;
  const generationId = readValue();
  if (!at(KEY.seq)) return undefined;
  const seq = readValue();
  let kind: unknown;
  if (withKind) {
    if (!at(KEY.kind)) return undefined;
    kind = readValue();
  }
  if (!at(KEY.priority)) return undefined;
  const priority = readValue();
  if (!at(KEY.ts)) return undefined;
  const ts = readValue();
  if (!at(KEY.data)) return undefined;
  const data = readValue();
  return withKind ? { offset, type, generationId, seq, kind, priority, ts, data } : { offset, type, generationId, seq, priority, ts, data };
}

function readMapKey(): string {
  need(1);
  const b = bytes[pos++] as number;
  let length: number;
  if (b >= 0xa0 && b < 0xc0) length = b & 0x1f;
  else if (b === 0xd9) {
    need(1);
    length = bytes[pos++] as number;
  } else throw UNHANDLED; // a key that is not a short string
  const key = readString(length);
  if (key === '__proto__') throw UNHANDLED;
  return key;
}

/**
 * Short strings repeat (event types, kinds, generation ids, map keys): a direct-mapped table of
 * the last one seen per slot returns the same string again without building it, checked byte by
 * byte. A miss builds the string (ASCII by hand, else the decoder) and takes the slot.
 */
const SLOTS = 1024;
const slotBytes: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(SLOTS).fill(undefined);
const slotStrings: string[] = new Array<string>(SLOTS).fill('');

function readString(length: number): string {
  need(length);
  const start = pos;
  pos += length;
  if (length === 0) return '';
  if (length > 16) return textDecoder.decode(bytes.subarray(start, start + length));
  const slot = (length * 977 + (bytes[start] as number) * 31 + (bytes[start + length - 1] as number) * 7 + (bytes[start + (length >> 1)] as number)) & (SLOTS - 1);
  const known = slotBytes[slot];
  if (known !== undefined && known.length === length) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (known[i] !== bytes[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return slotStrings[slot] as string;
  }
  let out = '';
  for (let i = 0; i < length; i++) {
    const c = bytes[start + i] as number;
    if (c >= 0x80) {
      out = textDecoder.decode(bytes.subarray(start, start + length));
      break;
    }
    out += String.fromCharCode(c);
  }
  slotBytes[slot] = bytes.slice(start, start + length);
  slotStrings[slot] = out;
  return out;
}
