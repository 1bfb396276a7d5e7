/**
 * Bytes <-> frames. Knows no socket. `spool.v1` is msgpack in binary messages, `spool.v1.json`
 * is JSON in text messages; both carry the same shapes. Decoding never throws anything but a
 * SpoolError(BAD_FRAME), so a caller can answer any garbage with a typed error.
 */
import { Packr } from 'msgpackr';
import { SpoolError } from './errors';
import { encodeChunksFrameBytes, encodeEventArray, encodeEventValue, encodeEventValuesEndToEnd, type EventFields } from './event-encoding';

/** encodeEvents' bytes for events whose encodeEventFields bytes and offsets are given apart. */
export { encodeEventArrayFromFields as encodeEventsFromFields } from './event-encoding';
import { checkJsonMessage } from './json-check';
import { readMsgpack } from './msgpack-read';
import { checkMsgpack } from './msgpack-check';
import { SUBPROTOCOL_JSON, type Frame, type SessionEvent, type SessionId, type Subprotocol } from './types';

// Plain maps only (no msgpackr records), so any msgpack implementation can speak spool.v1.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
/** Reads any msgpack map, whatever its keys (as a Map): only to find a refused frame's request id. */
const lenientPackr = new Packr({ useRecords: false, mapsAsObjects: false, int64AsType: 'number' });

export type Encoded = Uint8Array | string;

export function encodeFrame(frame: Frame, protocol: Subprotocol): Encoded {
  if (protocol === SUBPROTOCOL_JSON) return JSON.stringify(frame);
  // The two most frequent frames by the hand-written encoders (msgpackr's bytes for the same values):
  // a producer's chunks, and events (a batch the store did not encode already: Redis, catch-up reads).
  if (frame.type === 'chunks') return encodeChunksFrameBytes(frame, packData);
  if (frame.type === 'events') return encodeEventsFrame(frame.session, encodeEvents(frame.events));
  return packr.pack(frame);
}

/**
 * Decodes one message from a client (a text message is always JSON, whatever the subprotocol).
 * Whatever it returns is what the peer sent, value for value (PROTOCOL §3.3): a message that the
 * decoder would silently change (duplicate keys, invalid UTF-8, non-string map keys, int64 past
 * 2^53, binary, extension types, `__proto__` keys, lone surrogates; see msgpack-check.ts and
 * json-check.ts) is BAD_FRAME instead.
 */
export function decodeFrame(message: Uint8Array | string, protocol: Subprotocol): unknown {
  if (typeof message === 'string' || protocol === SUBPROTOCOL_JSON) {
    const text = textOf(message);
    const value = parseJson(text);
    checkJsonMessage(text);
    return value;
  }
  checkMsgpack(message);
  return unpack(message);
}

/**
 * Decodes one message from the gateway (the SDK's side): the gateway encodes only values it
 * decoded with decodeFrame or built itself, so the structural checks that protect the log from
 * clients would only cost every reader CPU per frame here.
 */
export function decodeServerFrame(message: Uint8Array | string, protocol: Subprotocol): unknown {
  if (typeof message === 'string' || protocol === SUBPROTOCOL_JSON) return parseJson(textOf(message));
  // The fast reader takes what the gateway writes; msgpackr whatever else (the same values).
  return readMsgpack(message) ?? unpack(message);
}

/**
 * A message decodeFrame refused, read as leniently as it can be, so its BAD_FRAME can still name
 * the request (PROTOCOL §3.2): msgpack maps with keys of any type are read too, and the frame's
 * string-keyed fields returned. Undefined when even that cannot read it.
 */
export function decodeUnchecked(message: Uint8Array | string, protocol: Subprotocol): unknown {
  try {
    if (typeof message === 'string' || protocol === SUBPROTOCOL_JSON) return JSON.parse(textOf(message)) as unknown;
    const value = lenientPackr.unpack(message) as unknown;
    if (!(value instanceof Map)) return value;
    const fields: Record<string, unknown> = {};
    for (const [key, field] of value) if (typeof key === 'string' && key !== '__proto__') fields[key] = field;
    return fields;
  } catch {
    return undefined;
  }
}

function textOf(message: Uint8Array | string): string {
  if (typeof message === 'string') return message;
  try {
    return utf8Decoder.decode(message);
  } catch {
    throw new SpoolError('BAD_FRAME', 'frame is not valid JSON');
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SpoolError('BAD_FRAME', 'frame is not valid JSON');
  }
}

function unpack(message: Uint8Array): unknown {
  try {
    return packr.unpack(message) as unknown;
  } catch {
    throw new SpoolError('BAD_FRAME', 'frame is not valid msgpack');
  }
}

/**
 * A batch of events encoded once (DESIGN §3): the `spool.v1` bytes of the array of events, as a
 * store keeps them (one LMDB record per store call) and as an `events` frame carries them. The
 * same bytes go to the store and to every msgpack reader's socket; nothing re-encodes them.
 */
export function encodeEvents(events: readonly SessionEvent[]): Uint8Array {
  return encodeEventArray(events, packData);
}

const packData = (value: unknown): Uint8Array => packr.pack(value);

/** The `spool.v1` bytes of one event's fields without its offset (the Redis store's stream entry body). */
export function encodeEventFields(fields: EventFields): Uint8Array {
  return encodeEventValue(fields, packData);
}

/** encodeEventFields' bytes for each of `fields`, end to end in one buffer; `ends[i]` is where the i-th ends. */
export function encodeEventFieldsEndToEnd(fields: readonly EventFields[]): { readonly bytes: Uint8Array; readonly ends: number[] } {
  return encodeEventValuesEndToEnd(fields, packData);
}

/** The events of `encodeEvents` bytes (read back from a store: trusted, so not checked). */
export function decodeEvents(bytes: Uint8Array): SessionEvent[] {
  return (readMsgpack(bytes) ?? packr.unpack(bytes)) as SessionEvent[];
}

/** One event (or its fields without the offset: a Redis stream entry's body), read back from a store. */
export function decodeEventValue(bytes: Uint8Array): unknown {
  return readMsgpack(bytes) ?? packr.unpack(bytes);
}

const EVENTS_KEY = packr.pack('events');
/** A map of 3 (map16, as msgpackr writes objects), 'type': 'events', 'session' — then the session id, 'events' and the array. */
const EVENTS_FRAME_PREFIX = concatBytes([Uint8Array.of(0xde, 0x00, 0x03), packr.pack('type'), EVENTS_KEY, packr.pack('session')]);

/**
 * The `spool.v1` bytes of `{ type: 'events', session, events }` around an array that is already
 * encoded: the map is written around the batch's bytes, byte for byte what encodeFrame makes.
 */
export function encodeEventsFrame(session: SessionId, encodedEvents: Uint8Array): Uint8Array {
  return concatBytes([EVENTS_FRAME_PREFIX, packr.pack(session), EVENTS_KEY, encodedEvents]);
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Size in bytes of a message as it crossed the wire. */
export function messageBytes(message: Uint8Array | string): number {
  return typeof message === 'string' ? utf8Encoder.encode(message).byteLength : message.byteLength;
}
