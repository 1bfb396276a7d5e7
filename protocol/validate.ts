/**
 * Turns a decoded value into a ClientFrame or throws SpoolError(BAD_FRAME) naming the field to
 * fix. Unknown fields are ignored (forward compatibility); unknown frame types are refused.
 */
import { SpoolError } from './errors';
import type { ProtocolLimits } from './limits';
import {
  FINISH_STATUSES,
  ID_PATTERN,
  type ChunkItem,
  type ClientFrame,
  type ClientFrameType,
  type GenerationId,
  type Priority,
  type SessionId,
} from './types';

type Obj = Record<string, unknown>;

function bad(message: string): never {
  throw new SpoolError('BAD_FRAME', message);
}

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function requestId(frame: Obj): number | undefined {
  const id = frame['id'];
  if (id === undefined) return undefined;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) bad('id must be a non-negative integer');
  return id;
}

function id(frame: Obj, field: string): string {
  const value = frame[field];
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) bad(`${field} must be 1-128 chars of [A-Za-z0-9._:-]`);
  return value;
}

function nonNegativeInt(frame: Obj, field: string): number {
  const value = frame[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) bad(`${field} must be a non-negative integer`);
  return value;
}

function shortString(frame: Obj, field: string, max: number, optional: boolean): string | undefined {
  const value = frame[field];
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    bad(`${field} must be a string of 1-${max} chars`);
  }
  return wellFormed(value, field);
}

function priority(frame: Obj, field = 'priority'): Priority | undefined {
  const value = frame[field];
  if (value === undefined) return undefined;
  if (value !== 0 && value !== 1 && value !== 2 && value !== 3) bad(`${field} must be 0, 1, 2 or 3`);
  return value;
}

/** An open's producer secret: long enough to be unguessable when drawn at random (§7.1). */
const SECRET_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

/** W3C trace context (PROTOCOL §3.4): a string, checked for size only; what does not parse is ignored. */
function traceparent(frame: Obj): string | undefined {
  const value = frame['traceparent'];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > 256) bad('traceparent must be a string of at most 256 characters');
  return value;
}

function token(frame: Obj): string {
  const value = frame['token'];
  if (typeof value !== 'string' || value.length === 0 || value.length > 512) bad('token must be the string returned by opened');
  return value;
}

/** Matches a lone (unpaired) UTF-16 surrogate; with the `u` flag a proper pair is one code point. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * Text that is stored must be well-formed Unicode: UTF-8 (msgpack, the stores) cannot carry a
 * lone surrogate, so it would silently become U+FFFD, and two different idempotency keys could
 * collapse into one.
 */
function wellFormed(value: string, field: string): string {
  if (LONE_SURROGATE.test(value)) bad(`${field} holds a lone UTF-16 surrogate (not valid Unicode)`);
  return value;
}

const NOT_JSON = 'must be JSON data (null, boolean, finite number, string, array, object)';

/**
 * `data` must be plain JSON (null, boolean, finite number, well-formed string, array, object
 * without a `__proto__` key) nested at most `maxDepth` deep, whatever the subprotocol: an event
 * written over msgpack is read over JSON too, and the store, the fanout and the size estimate
 * all re-encode it. msgpack can carry more (binary, bigint, NaN, undefined, timestamps,
 * msgpackr extensions such as Error or RegExp) that one of those steps would throw on or turn
 * into something else; msgpackr renames a `__proto__` key; JSON can nest deeper than any
 * recursive encoder survives. Iterative, so hostile nesting cannot overflow the stack here.
 *
 * Exported so the SDK can refuse bad data in `write()`, where the caller can fix it, instead of
 * sending a chunk the gateway will refuse. Returns `value`; throws SpoolError(BAD_FRAME).
 */
export function portableData(value: unknown, field: string, maxDepth: number): unknown {
  if (typeof value === 'string') return wellFormed(value, field); // the common case: a text delta
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const v = values.pop();
    const depth = depths.pop() as number;
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'string') {
      wellFormed(v, field);
      continue;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) bad(`${field} ${NOT_JSON}: ${v} is not a finite number`);
      continue;
    }
    if (typeof v !== 'object') bad(`${field} ${NOT_JSON}, not ${v === undefined ? 'undefined' : typeof v}`);
    if (depth >= maxDepth) bad(`${field} nests deeper than maxDataDepth (${maxDepth})`);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        values.push(v[i]);
        depths.push(depth + 1);
      }
      continue;
    }
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) bad(`${field} ${NOT_JSON}, not binary or an extension type`);
    for (const key of Object.keys(v)) {
      if (key === '__proto__') bad(`${field} must not hold a "__proto__" key`);
      wellFormed(key, field);
      values.push((v as Obj)[key]);
      depths.push(depth + 1);
    }
  }
  return value;
}

function withOptional<T extends object>(base: T, extra: Obj): T {
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) (base as Obj)[key] = value;
  return base;
}

/** Runs once per chunk: no allocation but the item itself (its field name is spelled only for an error). */
function chunkItem(raw: unknown, index: number, limits: ProtocolLimits): ChunkItem {
  if (!isObject(raw)) bad(`items[${index}] must be an object`);
  if (!('data' in raw)) bad(`items[${index}].data is required`);
  const value = raw['data'];
  const data = typeof value === 'string' && !LONE_SURROGATE.test(value) ? value : portableData(value, `items[${index}].data`, limits.maxDataDepth);
  const kind = shortString(raw, 'kind', limits.maxKindLength, true);
  const prio = priority(raw);
  // One literal per shape (a generic copy of optional fields costs more than the rest of the check).
  if (kind === undefined) return prio === undefined ? { data } : { priority: prio, data };
  return prio === undefined ? { kind, data } : { kind, priority: prio, data };
}

const decoders: { [T in ClientFrameType]: (frame: Obj, limits: ProtocolLimits) => Extract<ClientFrame, { type: T }> } = {
  hello(frame) {
    const protocol = frame['protocol'];
    if (typeof protocol !== 'number' || !Number.isFinite(protocol)) bad('protocol must be a number (1)');
    const tok = frame['token'];
    if (tok !== undefined && typeof tok !== 'string') bad('token must be a string');
    const client = frame['client'];
    if (client !== undefined && typeof client !== 'string') bad('client must be a string');
    return withOptional({ type: 'hello', protocol }, { id: requestId(frame), token: tok, client, traceparent: traceparent(frame) });
  },
  open(frame) {
    const resume = frame['resume'];
    let resumeToken: { token: string } | undefined;
    if (resume !== undefined) {
      if (!isObject(resume)) bad('resume must be an object {token}');
      resumeToken = { token: token(resume) };
    }
    const takeover = frame['takeover'];
    if (takeover !== undefined && typeof takeover !== 'boolean') bad('takeover must be a boolean');
    const secret = frame['secret'];
    if (secret !== undefined && (typeof secret !== 'string' || !SECRET_PATTERN.test(secret))) bad('secret must be 16-128 chars of [A-Za-z0-9_-]');
    return withOptional(
      { type: 'open', session: id(frame, 'session') as SessionId, generation: id(frame, 'generation') as GenerationId },
      { id: requestId(frame), resume: resumeToken, takeover, secret, traceparent: traceparent(frame) },
    );
  },
  chunk(frame, limits) {
    if (!('data' in frame)) bad('data is required');
    return withOptional(
      { type: 'chunk', token: token(frame), seq: nonNegativeInt(frame, 'seq'), data: portableData(frame['data'], 'data', limits.maxDataDepth) },
      { kind: shortString(frame, 'kind', limits.maxKindLength, true), priority: priority(frame) },
    );
  },
  chunks(frame, limits) {
    const items = frame['items'];
    if (!Array.isArray(items) || items.length === 0) bad('items must be a non-empty array');
    if (items.length > limits.maxBatchItems) bad(`items holds ${items.length} chunks, over maxBatchItems (${limits.maxBatchItems})`);
    return {
      type: 'chunks',
      token: token(frame),
      seq: nonNegativeInt(frame, 'seq'),
      items: items.map((item, i) => chunkItem(item, i, limits)),
    };
  },
  finish(frame, limits) {
    const status = frame['status'];
    if (status !== undefined && !FINISH_STATUSES.includes(status as never)) bad('status must be done, error or aborted');
    return withOptional(
      { type: 'finish', token: token(frame), seq: nonNegativeInt(frame, 'seq') },
      {
        id: requestId(frame),
        status: status as 'done' | 'error' | 'aborted' | undefined,
        error: shortString(frame, 'error', limits.maxErrorLength, true),
      },
    );
  },
  append(frame, limits) {
    if (!('data' in frame)) bad('data is required');
    return withOptional(
      {
        type: 'append',
        session: id(frame, 'session') as SessionId,
        key: shortString(frame, 'key', limits.maxKeyLength, false) as string,
        kind: shortString(frame, 'kind', limits.maxKindLength, false) as string,
        data: portableData(frame['data'], 'data', limits.maxDataDepth),
      },
      { id: requestId(frame), priority: priority(frame) },
    );
  },
  subscribe(frame) {
    const from = frame['from'];
    if (from !== 'start' && from !== 'now' && (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0)) {
      bad("from must be an offset (integer >= 0), 'start' or 'now'");
    }
    return withOptional({ type: 'subscribe', session: id(frame, 'session') as SessionId, from }, { id: requestId(frame), traceparent: traceparent(frame) });
  },
  unsubscribe(frame) {
    return withOptional({ type: 'unsubscribe', session: id(frame, 'session') as SessionId }, { id: requestId(frame) });
  },
  ping(frame) {
    return withOptional({ type: 'ping' }, { id: requestId(frame) });
  },
  refresh(frame) {
    const tok = frame['token'];
    if (typeof tok !== 'string' || tok.length === 0) bad('token must be a non-empty string (the new credential)');
    return withOptional({ type: 'refresh', token: tok }, { id: requestId(frame) });
  },
};

/** Validates a decoded client frame. Throws SpoolError(BAD_FRAME) with a message naming the field. */
export function validateClientFrame(raw: unknown, limits: ProtocolLimits): ClientFrame {
  if (!isObject(raw)) bad('a frame must be an object with a type');
  const type = raw['type'];
  if (typeof type !== 'string') bad('type must be a string');
  if (!Object.prototype.hasOwnProperty.call(decoders, type)) bad(`unknown frame type '${type.slice(0, 32)}'`);
  return decoders[type as ClientFrameType](raw, limits);
}

/** The request id of a raw frame if it has a valid one, so an error can still echo it. */
export function rawRequestId(raw: unknown): number | undefined {
  if (!isObject(raw)) return undefined;
  const value = raw['id'];
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}
