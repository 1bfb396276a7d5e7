/**
 * Content types (PROTOCOL §16.5): request bodies into what the log stores (records.ts), and
 * stored events back into the bytes or JSON messages a Durable Streams reader gets.
 *
 *   application/json   JSON mode: a body is one message, or an array of messages (flattened one
 *                      level); stored as one ds.json event holding the array. Read back as one
 *                      JSON array. Messages must be spool's portable JSON (PROTOCOL §3.3).
 *   text/*             bytes; a body that is valid UTF-8 is stored as a string (ds.text, so a
 *                      WebSocket reader gets text), any other body as base64 (ds.bytes)
 *   anything else      bytes, stored as base64 (ds.bytes)
 *
 * Events written through the WebSocket door into a stream read as: in JSON mode, one message
 * each (their `data`); otherwise their `data` as UTF-8 (a string as is, other JSON as its text).
 * gen.start / gen.end and the door's own structure events carry no data. A session the door did
 * not create (no ds.meta) reads as a JSON stream whose messages are its whole events.
 */
import { checkJsonNames } from '../../protocol/json-check';
import { SpoolError } from '../../protocol/errors';
import type { SessionEvent } from '../../protocol/types';
import { portableData } from '../../protocol/validate';
import { KIND_BYTES, KIND_CLOSE, KIND_JSON, KIND_TEXT, type Payload } from './records';

export type Mode = 'json' | 'text' | 'binary';

/** The media type of a Content-Type value: lower case, without parameters. */
export function mediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

/** Whether a Content-Type value names a media type (`type/subtype`). */
export function isMediaType(contentType: string): boolean {
  return /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+$/.test(mediaType(contentType));
}

export function modeOf(contentType: string): Mode {
  const media = mediaType(contentType);
  if (media === 'application/json') return 'json';
  return media.startsWith('text/') ? 'text' : 'binary';
}

/** Whether SSE data events of this mode are base64 (protocol §5.8: neither text/* nor JSON). */
export function sseBase64(mode: Mode): boolean {
  return mode === 'binary';
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });
const encoder = new TextEncoder();

/** A body that cannot be stored: answered 400 with `message`. */
export class BadBody extends Error {
  override readonly name = 'BadBody';
}

/**
 * The payload of a non-empty body, or null for a JSON body that is an empty array (valid on PUT,
 * refused on POST by the caller).
 */
export function payloadOf(body: Uint8Array, mode: Mode, maxDataDepth: number): Payload | null {
  if (mode === 'json') return jsonPayload(body, maxDataDepth);
  if (mode === 'text') {
    try {
      return { kind: KIND_TEXT, data: strictUtf8.decode(body) };
    } catch {
      // Not UTF-8: kept byte for byte.
    }
  }
  return { kind: KIND_BYTES, data: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64') };
}

function jsonPayload(body: Uint8Array, maxDataDepth: number): Payload | null {
  let text: string;
  try {
    text = strictUtf8.decode(body);
  } catch {
    throw new BadBody('the JSON body is not UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new BadBody(`the body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    checkJsonNames(text);
    // The array counts as one level: its messages may nest maxDataDepth - 1 deep, as an event's data.
    portableData(value, 'body', maxDataDepth);
  } catch (error) {
    if (error instanceof SpoolError) throw new BadBody(error.message);
    throw error;
  }
  const messages = Array.isArray(value) ? value : [value];
  return messages.length === 0 ? null : { kind: KIND_JSON, data: messages };
}

/** What one event gives a reader: bytes, JSON messages, or nothing (a structure event). */
export type Unit = { readonly bytes: Uint8Array } | { readonly messages: readonly unknown[] };

/** A stored payload as a reader of `mode` gets it. */
export function payloadUnit(payload: Payload, mode: Mode): Unit {
  if (mode === 'json') {
    if (payload.kind === KIND_JSON) return { messages: payload.data };
    return { messages: [payload.data] };
  }
  switch (payload.kind) {
    case KIND_TEXT:
      return { bytes: encoder.encode(payload.data) };
    case KIND_BYTES:
      return { bytes: Buffer.from(payload.data, 'base64') };
    case KIND_JSON:
      return { bytes: encoder.encode(payload.data.map((m) => JSON.stringify(m)).join(',')) };
  }
}

function asPayload(kind: string | undefined, data: unknown): Payload | null {
  if (kind === KIND_TEXT && typeof data === 'string') return { kind, data };
  if (kind === KIND_BYTES && typeof data === 'string') return { kind, data };
  if (kind === KIND_JSON && Array.isArray(data)) return { kind, data };
  return null;
}

/** The payload a `ds.close` event carries, if any. */
export function closePayload(event: SessionEvent): Payload | null {
  const data = event.data as { kind?: unknown; data?: unknown } | null | undefined;
  if (data === null || typeof data !== 'object') return null;
  return asPayload(typeof data.kind === 'string' ? data.kind : undefined, data.data);
}

/** What `event` of a door-created stream gives a reader of `mode`. */
export function eventUnit(event: SessionEvent, mode: Mode): Unit | null {
  if (event.type === 'append' && event.kind?.startsWith('ds.')) {
    if (event.kind === KIND_CLOSE) {
      const payload = closePayload(event);
      return payload ? payloadUnit(payload, mode) : null;
    }
    const payload = asPayload(event.kind, event.data);
    return payload ? payloadUnit(payload, mode) : null;
  }
  if (event.type !== 'chunk' && event.type !== 'append') return null;
  // Written through the WebSocket door.
  if (mode === 'json') return { messages: [event.data ?? null] };
  return { bytes: encoder.encode(typeof event.data === 'string' ? event.data : JSON.stringify(event.data ?? null)) };
}

/** What `event` of a session the door did not create gives a reader: the event itself as a message. */
export function nativeUnit(event: SessionEvent): Unit {
  return { messages: [event] };
}

/** The byte length a unit adds to a response (for the read size bound). */
export function unitSize(unit: Unit): number {
  if ('bytes' in unit) return unit.bytes.byteLength;
  let size = 0;
  for (const m of unit.messages) size += typeof m === 'string' ? m.length + 2 : JSON.stringify(m).length + 1;
  return size;
}

/** Units as a response body of `mode`: bytes concatenated, or one JSON array. */
export function renderBody(units: readonly Unit[], mode: Mode): Uint8Array {
  if (mode === 'json') return encoder.encode(renderJsonArray(units));
  const parts = units.map((u) => ('bytes' in u ? u.bytes : encoder.encode(renderJsonArray([u]))));
  return Buffer.concat(parts);
}

function renderJsonArray(units: readonly Unit[]): string {
  const parts: string[] = [];
  for (const u of units) {
    if ('messages' in u) for (const m of u.messages) parts.push(JSON.stringify(m));
    else parts.push(JSON.stringify(lenientUtf8.decode(u.bytes)));
  }
  return `[${parts.join(',')}]`;
}

/** The `data` text of one SSE data event carrying `units` (base64 for binary streams). */
export function sseData(units: readonly Unit[], mode: Mode): string {
  if (mode === 'json') return renderJsonArray(units);
  const bytes = renderBody(units, mode);
  return sseBase64(mode) ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') : lenientUtf8.decode(bytes);
}

/** The first `count` bytes or messages of a payload, for a fork at a sub-offset; null when it holds fewer. */
export function payloadPrefix(payload: Payload, count: number, mode: Mode): Payload | null {
  if (mode === 'json') {
    const messages = payload.kind === KIND_JSON ? payload.data : [payload.data];
    return count > messages.length ? null : { kind: KIND_JSON, data: messages.slice(0, count) };
  }
  const unit = payloadUnit(payload, mode) as { bytes: Uint8Array };
  if (count > unit.bytes.byteLength) return null;
  return payloadOf(unit.bytes.subarray(0, count), mode, Number.POSITIVE_INFINITY);
}

/** The payload of an event (a door data event, a close with data, or a WebSocket write), for sub-offset forks. */
export function eventPayload(event: SessionEvent, mode: Mode): Payload | null {
  if (event.type === 'append' && event.kind === KIND_CLOSE) return closePayload(event);
  const own = asPayload(event.kind, event.data);
  if (own && event.type === 'append') return own;
  const unit = eventUnit(event, mode);
  if (!unit) return null;
  if ('messages' in unit) return { kind: KIND_JSON, data: unit.messages };
  return payloadOf(unit.bytes, mode, Number.POSITIVE_INFINITY);
}
