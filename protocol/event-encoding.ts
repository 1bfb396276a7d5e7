/**
 * The `spool.v1` encoding of a batch of events, written by hand: a batch is encoded once per
 * store call and is the gateway's largest single cost, and a general msgpack encoder spends most
 * of it discovering, per event, the shape this file knows in advance (which fields, which types).
 *
 * The bytes are msgpackr's for the same values (maps as map16, integers in the smallest integer
 * family up to 32 bits, anything else as float64, strings in the smallest str family), with an
 * event's fields in one fixed order (a chunk's, as the engine builds it), so a reader cannot tell
 * who encoded a frame; codec.test.ts pins that for any JSON-shaped data.
 * A `data` value that is not plain JSON-shaped (an `undefined` inside it, a typed array, …) is
 * handed to msgpackr as a whole and its bytes copied in, so every value encodes as before.
 */
import type { ChunkItem, ChunksFrame, SessionEvent } from './types';

/** An event, or an event without its offset (as the Redis store keeps one: the stream entry id holds the offset). */
export type EventFields = Omit<SessionEvent, 'offset'> & { readonly offset?: SessionEvent['offset'] };

/** Encodes what this file does not (`data` that is not plain JSON-shaped), as the codec does. */
export type FallbackEncoder = (value: unknown) => Uint8Array;

const utf8Encoder = new TextEncoder();

/** Grows by doubling; kept between calls, so a steady stream of batches allocates only its results. */
let buffer = new Uint8Array(64 * 1024);
let view = new DataView(buffer.buffer);
let pos = 0;

function ensure(bytes: number): void {
  if (pos + bytes <= buffer.length) return;
  let size = buffer.length * 2;
  while (size < pos + bytes) size *= 2;
  const grown = new Uint8Array(size);
  grown.set(buffer.subarray(0, pos));
  buffer = grown;
  view = new DataView(buffer.buffer);
}

function keyBytes(name: string): Uint8Array {
  return Uint8Array.of(0xa0 | name.length, ...Array.from(name, (c) => c.charCodeAt(0)));
}

const K_OFFSET = keyBytes('offset');
const K_TYPE = keyBytes('type');
const K_GENERATION = keyBytes('generationId');
const K_SEQ = keyBytes('seq');
const K_KIND = keyBytes('kind');
const K_PRIORITY = keyBytes('priority');
const K_TS = keyBytes('ts');
const K_DATA = keyBytes('data');
const K_STATUS = keyBytes('status');
const K_ERROR = keyBytes('error');
const K_KEY = keyBytes('key');
/** The str bytes of the field names a chunk event and a chunk item carry (the SDK's reader matches them). */
export const FIELD_KEYS = { offset: K_OFFSET, type: K_TYPE, generationId: K_GENERATION, seq: K_SEQ, kind: K_KIND, priority: K_PRIORITY, ts: K_TS, data: K_DATA } as const;
const K_TOKEN = keyBytes('token');
const K_ITEMS = keyBytes('items');
const V_CHUNKS = keyBytes('chunks');

function writeKey(key: Uint8Array): void {
  ensure(key.length);
  // A loop over locals: for a dozen bytes it is cheaper than set().
  const target = buffer;
  const at = pos;
  for (let i = 0; i < key.length; i++) target[at + i] = key[i] as number;
  pos = at + key.length;
}

function writeNumber(n: number): void {
  ensure(9);
  if (Number.isInteger(n)) {
    if (n >= 0) {
      if (n < 0x80) {
        buffer[pos++] = n;
        return;
      }
      if (n < 0x100) {
        buffer[pos++] = 0xcc;
        buffer[pos++] = n;
        return;
      }
      if (n < 0x10000) {
        buffer[pos++] = 0xcd;
        view.setUint16(pos, n);
        pos += 2;
        return;
      }
      if (n < 0x100000000) {
        buffer[pos++] = 0xce;
        view.setUint32(pos, n);
        pos += 4;
        return;
      }
    } else {
      if (n >= -0x20) {
        buffer[pos++] = 0x100 + n;
        return;
      }
      if (n >= -0x80) {
        buffer[pos++] = 0xd0;
        view.setInt8(pos++, n);
        return;
      }
      if (n >= -0x8000) {
        buffer[pos++] = 0xd1;
        view.setInt16(pos, n);
        pos += 2;
        return;
      }
      if (n >= -0x80000000) {
        buffer[pos++] = 0xd2;
        view.setInt32(pos, n);
        pos += 4;
        return;
      }
    }
  }
  buffer[pos++] = 0xcb;
  view.setFloat64(pos, n);
  pos += 8;
}

function writeStrHeader(length: number): void {
  if (length < 0x20) {
    buffer[pos++] = 0xa0 | length;
  } else if (length < 0x100) {
    buffer[pos++] = 0xd9;
    buffer[pos++] = length;
  } else if (length < 0x10000) {
    buffer[pos++] = 0xda;
    view.setUint16(pos, length);
    pos += 2;
  } else {
    buffer[pos++] = 0xdb;
    view.setUint32(pos, length);
    pos += 4;
  }
}

/** The size of the str header for `length` bytes. */
function strHeaderSize(length: number): number {
  return length < 0x20 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
}

function writeString(s: string): void {
  const n = s.length;
  if (n >= 0x20) {
    writeLongString(s);
    return;
  }
  ensure(1 + n);
  // Short ASCII (types, kinds, ids): one byte per UTF-16 unit, no call into the encoder.
  const header = pos;
  buffer[pos++] = 0xa0 | n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      pos = header;
      writeLongString(s);
      return;
    }
    buffer[pos + i] = c;
  }
  pos += n;
}

/** Encodes in place after a header sized for the worst case (3 bytes per unit), moved back when smaller. */
function writeLongString(s: string): void {
  const most = s.length * 3;
  const reserved = strHeaderSize(most);
  ensure(reserved + most);
  const start = pos + reserved;
  const written = utf8Encoder.encodeInto(s, buffer.subarray(start, start + most)).written;
  const needed = strHeaderSize(written);
  if (needed !== reserved) buffer.copyWithin(pos + needed, start, start + written);
  writeStrHeader(written);
  pos += written;
}

function writeArrayHeader(length: number): void {
  ensure(5);
  if (length < 0x10) {
    buffer[pos++] = 0x90 | length;
  } else if (length < 0x10000) {
    buffer[pos++] = 0xdc;
    view.setUint16(pos, length);
    pos += 2;
  } else {
    buffer[pos++] = 0xdd;
    view.setUint32(pos, length);
    pos += 4;
  }
}

function writeMapHeader(size: number): void {
  ensure(5);
  if (size < 0x10000) {
    buffer[pos++] = 0xde;
    view.setUint16(pos, size);
    pos += 2;
  } else {
    buffer[pos++] = 0xdf;
    view.setUint32(pos, size);
    pos += 4;
  }
}

/** True when `value` is made only of what JSON can say (plain objects, arrays, strings, finite or not numbers, booleans, null). */
function isPlain(value: unknown, depth: number): boolean {
  if (value === null) return true;
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return true;
    case 'object': {
      if (depth > 64) return false;
      if (Array.isArray(value)) {
        for (const item of value) if (!isPlain(item, depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) if (!isPlain((value as Record<string, unknown>)[key], depth + 1)) return false;
      return true;
    }
    default:
      return false;
  }
}

function writeValue(value: unknown): void {
  if (value === null) {
    ensure(1);
    buffer[pos++] = 0xc0;
    return;
  }
  switch (typeof value) {
    case 'string':
      writeString(value);
      return;
    case 'number':
      writeNumber(value);
      return;
    case 'boolean':
      ensure(1);
      buffer[pos++] = value ? 0xc3 : 0xc2;
      return;
    default:
      break;
  }
  if (Array.isArray(value)) {
    writeArrayHeader(value.length);
    for (const item of value) writeValue(item);
    return;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  writeMapHeader(keys.length);
  for (const key of keys) {
    writeString(key);
    writeValue(record[key]);
  }
}

function writeData(data: unknown, fallback: FallbackEncoder): void {
  if (typeof data === 'string') {
    writeString(data);
    return;
  }
  if (isPlain(data, 0)) {
    writeValue(data);
    return;
  }
  const bytes = fallback(data);
  ensure(bytes.length);
  buffer.set(bytes, pos);
  pos += bytes.length;
}

function writeEvent(event: EventFields, fallback: FallbackEncoder): void {
  // Fields by name in one fixed order (no walk over the object's keys): offset, type,
  // generationId, seq, kind, priority, ts, data, status, error, key, those that are set.
  const { offset, generationId, seq, kind, data, status, error, key } = event;
  const size =
    3 +
    (offset === undefined ? 0 : 1) +
    (generationId === undefined ? 0 : 1) +
    (seq === undefined ? 0 : 1) +
    (kind === undefined ? 0 : 1) +
    (data === undefined ? 0 : 1) +
    (status === undefined ? 0 : 1) +
    (error === undefined ? 0 : 1) +
    (key === undefined ? 0 : 1);
  writeMapHeader(size);
  if (offset !== undefined) {
    writeKey(K_OFFSET);
    writeNumber(offset);
  }
  writeKey(K_TYPE);
  writeString(event.type);
  if (generationId !== undefined) {
    writeKey(K_GENERATION);
    writeString(generationId);
  }
  if (seq !== undefined) {
    writeKey(K_SEQ);
    writeNumber(seq);
  }
  if (kind !== undefined) {
    writeKey(K_KIND);
    writeString(kind);
  }
  writeKey(K_PRIORITY);
  writeNumber(event.priority);
  writeKey(K_TS);
  writeNumber(event.ts);
  if (data !== undefined) {
    writeKey(K_DATA);
    writeData(data, fallback);
  }
  if (status !== undefined) {
    writeKey(K_STATUS);
    writeString(status);
  }
  if (error !== undefined) {
    writeKey(K_ERROR);
    writeString(error);
  }
  if (key !== undefined) {
    writeKey(K_KEY);
    writeString(key);
  }
}

/**
 * The `spool.v1` bytes of `events` as one array. An event field that is `undefined` is left out
 * (as JSON would; msgpackr would write an `undefined` extension no spool peer decodes). Fields
 * outside SessionEvent are not encoded (the engine builds every event from the known ones).
 */
export function encodeEventArray(events: readonly SessionEvent[], fallback: FallbackEncoder): Uint8Array {
  pos = 0;
  writeArrayHeader(events.length);
  for (const event of events) writeEvent(event, fallback);
  return buffer.slice(0, pos);
}

/**
 * encodeEventValue's bytes for each of `events` (fields without the offset), end to end in one
 * buffer: `ends[i]` is where the i-th ends. One allocation for a run of events instead of one each.
 */
export function encodeEventValuesEndToEnd(events: readonly EventFields[], fallback: FallbackEncoder): { readonly bytes: Uint8Array; readonly ends: number[] } {
  pos = 0;
  const ends: number[] = [];
  for (const event of events) {
    writeEvent(event, fallback);
    ends.push(pos);
  }
  return { bytes: buffer.slice(0, pos), ends };
}

/**
 * The bytes encodeEventArray writes for events, made from each event's fields without the offset
 * as encodeEventValue wrote them (a map16 header, then the fields; event i's are
 * `blobs[i][starts[i]..ends[i])`) and its offset: the offset is the first field an event has, so
 * this is a new header, the offset, and the fields' bytes as they are. The Redis store builds its
 * readers' frame from the bodies it sent this way.
 */
export function encodeEventArrayFromFields(blobs: readonly Uint8Array[], starts: readonly number[], ends: readonly number[], offsets: readonly number[]): Uint8Array {
  pos = 0;
  writeArrayHeader(blobs.length);
  for (let i = 0; i < blobs.length; i++) {
    const blob = blobs[i] as Uint8Array;
    const start = starts[i] as number;
    const end = ends[i] as number;
    if (blob[start] !== 0xde) throw new TypeError('encodeEventArrayFromFields: not encodeEventValue bytes (map16 header expected)');
    writeMapHeader((((blob[start + 1] as number) << 8) | (blob[start + 2] as number)) + 1);
    writeKey(K_OFFSET);
    writeNumber(offsets[i] as number);
    ensure(end - start - 3);
    buffer.set(blob.subarray(start + 3, end), pos);
    pos += end - start - 3;
  }
  return buffer.slice(0, pos);
}

function writeItem(item: ChunkItem, fallback: FallbackEncoder): void {
  const { kind, priority, data } = item;
  writeMapHeader(1 + (kind === undefined ? 0 : 1) + (priority === undefined ? 0 : 1));
  if (kind !== undefined) {
    writeKey(K_KIND);
    writeString(kind);
  }
  if (priority !== undefined) {
    writeKey(K_PRIORITY);
    writeNumber(priority);
  }
  writeKey(K_DATA);
  writeData(data, fallback);
}

/**
 * The `spool.v1` bytes of a producer's `chunks` frame (the SDK's most frequent frame): fields in
 * the order the SDK builds them (type, token, seq, items; an item's kind, priority, data, those
 * that are set), so the bytes are msgpackr's for the SDK's frames.
 */
export function encodeChunksFrameBytes(frame: ChunksFrame, fallback: FallbackEncoder): Uint8Array {
  pos = 0;
  writeMapHeader(4);
  writeKey(K_TYPE);
  writeKey(V_CHUNKS);
  writeKey(K_TOKEN);
  writeString(frame.token);
  writeKey(K_SEQ);
  writeNumber(frame.seq);
  writeKey(K_ITEMS);
  const items = frame.items;
  writeArrayHeader(items.length);
  for (let i = 0; i < items.length; i++) writeItem(items[i] as ChunkItem, fallback);
  return buffer.slice(0, pos);
}

/** The `spool.v1` bytes of one event (or of its fields without the offset), as encodeEventArray writes each. */
export function encodeEventValue(event: EventFields, fallback: FallbackEncoder): Uint8Array {
  pos = 0;
  writeEvent(event, fallback);
  return buffer.slice(0, pos);
}
