/**
 * What the fuzzer sends (fast-check arbitraries): client frames of every type with fields drawn
 * from valid, edge and hostile values, frames with fields missing or mistyped, data the protocol
 * forbids (ext types, binary, NaN, bigint, lone surrogates, `__proto__` keys, hostile nesting),
 * hand-spelled msgpack no encoder writes, encoded frames with bytes flipped, inserted, dropped or
 * cut, random bytes and text, and frames past the size limits.
 *
 * A frame is a value encoded at send time in the connection's way, so it can refer to what the
 * connection learned: `TokenRef` picks one of the tokens its `opened` answers gave it, `SeqRef`
 * the next seq of that token, and `ID` a fresh request id (so every answer can be matched to its
 * request). Everything else is drawn here, from fast-check's seed.
 */
import fc from 'fast-check';
import { NIL, arr, cat, map, s, strOf, type Bytes } from '../protocol/test-helpers/msgpack-spell';

/** A token the connection was given by `opened` (the n-th, modulo how many it has; junk if none). */
export class TokenRef {
  constructor(readonly n: number) {}
}
/** The next seq of the frame's token, as the connection counts it. */
export const SEQ_REF = Symbol('seq');
/** A fresh request id the sender will wait an answer for. */
export const ID = Symbol('id');

export type FuzzMessage =
  /** `value` encoded as the connection's subprotocol, or as JSON text when `asText`; `mutation` applied to the bytes. */
  | { readonly kind: 'frame'; readonly value: Record<string, unknown>; readonly asText: boolean; readonly mutation?: Mutation }
  /** Sent as is: a binary message of `bytes`. */
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  /** Sent as is: a text message. */
  | { readonly kind: 'text'; readonly text: string }
  /** `size` bytes of one repeated byte: past maxFrameBytes (and the transport's hard cap when `size` is). */
  | { readonly kind: 'oversize'; readonly size: number; readonly asText: boolean };

export interface Mutation {
  readonly op: 'flip' | 'insert' | 'delete' | 'truncate';
  readonly at: number;
  readonly byte: number;
}

/** Sessions the fuzzer writes to (the interleaved good session is none of them). */
export const FUZZ_SESSIONS = ['fz-a', 'fz-b', 'fz-c', 'fz-d', 'fz:e.1'];
const GENERATIONS = ['g1', 'g2', 'g3', 'g4', 'g5'];

const ID_CHARS = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-'];

/** Strings that are not what a field wants: empty, too long, lone surrogates, any code unit. */
const oddString = fc.oneof(
  fc.constant(''),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.constant('x'.repeat(600)),
  fc.constantFrom('\ud800', 'a\udc00b', '\u0000', '__proto__', 'constructor', 'toString', '💥'),
);

/** Values of the wrong type for any field. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, -1, 1.5, -0, Number.MAX_SAFE_INTEGER + 2, NaN, Infinity, [], {}, 'x'),
  oddString,
  fc.integer(),
);

const idString = fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 24 });
const sessionArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...FUZZ_SESSIONS) }, { weight: 1, arbitrary: idString.map((id) => `fz-${id}`.slice(0, 128)) }, { weight: 1, arbitrary: junk });
const generationArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...GENERATIONS) }, { weight: 1, arbitrary: idString }, { weight: 1, arbitrary: junk });
const tokenArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: fc.nat(7).map((n) => new TokenRef(n)) },
  { weight: 1, arbitrary: fc.constantFrom('v1/1/fz-a/g1/AAAAAAAAAAAAAAAAAAAAAA', 'v1/x', 'v1/0/fz-a/g1/x', 'v2/1/fz-a/g1/x') },
  { weight: 1, arbitrary: junk },
);
const seqArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 10, arbitrary: fc.constant(SEQ_REF) }, { weight: 2, arbitrary: fc.nat(40) }, { weight: 1, arbitrary: junk });
const idArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 10, arbitrary: fc.constant(ID) }, { weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: junk });
const priorityArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(undefined, 0, 1, 2, 3) }, { weight: 1, arbitrary: junk });
const kindArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('text', 'reasoning', 'tool', 'user') }, { weight: 1, arbitrary: oddString }, { weight: 1, arbitrary: junk });

/** A value `depth` arrays deep (past maxDataDepth when `depth` > 64). */
function nested(depth: number): unknown {
  let value: unknown = 'bottom';
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { d: value };
  return value;
}

/** Data: mostly JSON, then everything msgpackr can encode that the protocol forbids. */
const dataArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 10, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  {
    weight: 2,
    arbitrary: fc.anything({
      maxDepth: 2,
      maxKeys: 4,
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
    }),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, -Infinity, undefined, -0, 2 ** 60, Number.MIN_VALUE, new Uint8Array([1, 2]), new Date(0)) },
  { weight: 1, arbitrary: fc.integer({ min: 60, max: 70 }).map(nested) },
  { weight: 1, arbitrary: fc.constantFrom(JSON.parse('{"__proto__":{"polluted":1}}') as unknown, { constructor: 'c', prototype: { toString: 1 } }) },
);

const itemArb = fc.record({ data: dataArb, kind: kindArb, priority: priorityArb }, { requiredKeys: ['data'] });

/** One client frame of each type, fields valid most of the time. */
const frameValue: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ type: fc.constant('hello'), protocol: fc.oneof(fc.constant(1), junk), token: fc.oneof(fc.constant(undefined), oddString), id: idArb }) },
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('open'),
      session: sessionArb,
      generation: generationArb,
      id: idArb,
      resume: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.record({ token: tokenArb }) }, { weight: 1, arbitrary: junk }),
      takeover: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.boolean() }, { weight: 1, arbitrary: junk }),
      secret: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant('fuzz-secret-0123456789') }, { weight: 1, arbitrary: oddString }),
    }),
  },
  { weight: 10, arbitrary: fc.record({ type: fc.constant('chunk'), token: tokenArb, seq: seqArb, data: dataArb, kind: kindArb, priority: priorityArb }, { requiredKeys: ['type', 'token', 'seq', 'data'] }) },
  { weight: 6, arbitrary: fc.record({ type: fc.constant('chunks'), token: tokenArb, seq: seqArb, items: fc.oneof({ weight: 8, arbitrary: fc.array(itemArb, { maxLength: 6 }) }, { weight: 1, arbitrary: junk }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('finish'),
      token: tokenArb,
      seq: seqArb,
      id: idArb,
      status: fc.oneof(fc.constantFrom(undefined, 'done', 'error', 'aborted'), junk),
      error: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 20 }), oddString),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ type: fc.constant('append'), session: sessionArb, key: fc.oneof(idString, oddString), kind: kindArb, data: dataArb, priority: priorityArb, id: idArb }, { requiredKeys: ['type', 'session', 'key', 'kind', 'data'] }),
  },
  { weight: 4, arbitrary: fc.record({ type: fc.constant('subscribe'), session: sessionArb, from: fc.oneof(fc.constantFrom('start', 'now', 0), fc.nat(200), junk), id: idArb }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('unsubscribe'), session: sessionArb, id: idArb }) },
  { weight: 3, arbitrary: fc.record({ type: fc.constant('ping'), id: idArb }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('refresh'), token: fc.oneof(fc.constant('t'), oddString, junk), id: idArb }) },
  { weight: 1, arbitrary: fc.record({ type: fc.oneof(fc.constantFrom('welcome', 'error', 'events', '__proto__', 'constructor', 'PING', ''), junk), id: idArb }) },
);

/** A frame with one field dropped, mistyped or added, or two frames' fields mixed. */
const distorted: fc.Arbitrary<Record<string, unknown>> = fc.tuple(frameValue, fc.nat(10), junk, fc.constantFrom('drop', 'retype', 'extra', 'mix')).chain(([value, pick, replacement, how]) =>
  frameValue.map((other) => {
    const keys = Object.keys(value);
    const key = keys[pick % keys.length] as string;
    const out = { ...value };
    if (how === 'drop') delete out[key];
    else if (how === 'retype') out[key] = replacement;
    else if (how === 'extra') out[`x${pick}`] = replacement;
    else Object.assign(out, other, { type: value['type'] });
    return out;
  }),
);

const mutation: fc.Arbitrary<Mutation> = fc.record({ op: fc.constantFrom('flip', 'insert', 'delete', 'truncate'), at: fc.nat(), byte: fc.nat(255) });

const ping = map([s('type'), s('ping')]);
/** msgpack spellings no well-behaved encoder writes: each one is BAD_FRAME (PROTOCOL §3.3). */
const SPELLED: readonly Bytes[] = [
  map([s('type'), s('ping')], [s('type'), s('ping')]),
  map([s('type'), s('ping')], [[0x07], s('x')]),
  map([s('type'), s('ping')], [s('__proto__'), map([s('id'), [0x05]])]),
  map([s('type'), s('append')], [s('session'), s('fz-a')], [s('key'), strOf(Uint8Array.of(0x61, 0xff))], [s('kind'), s('u')], [s('data'), NIL]),
  map([s('type'), s('append')], [s('session'), s('fz-a')], [s('key'), s('k')], [s('kind'), s('u')], [s('data'), [0xc4, 0x01, 0x00]]),
  map([s('type'), s('append')], [s('session'), s('fz-a')], [s('key'), s('k')], [s('kind'), s('u')], [s('data'), [0xd4, 0x00, 0x00]]),
  map([s('type'), s('append')], [s('session'), s('fz-a')], [s('key'), s('k')], [s('kind'), s('u')], [s('data'), [0xd6, 0xff, 0, 0, 0, 0]]),
  map([s('type'), s('append')], [s('session'), s('fz-a')], [s('key'), s('k')], [s('kind'), s('u')], [s('data'), [0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 1]]),
  map([s('type'), s('append')], [s('session'), s('fz-a')], [s('key'), s('k')], [s('kind'), s('u')], [s('data'), [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]]),
  map([s('type'), s('append')], [s('session'), s('fz-a')], [s('key'), s('k')], [s('kind'), s('u')], [s('data'), arr([0xc1])]),
  cat(ping, [0x00]),
  cat(ping, ping),
  ping.subarray(0, ping.length - 1),
  [0xdf, 0x7f, 0xff, 0xff, 0xff],
  [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
  [],
];

/** Every kind of message, weighted towards frames that reach an actor. */
export const fuzzMessage: fc.Arbitrary<FuzzMessage> = fc.oneof(
  { weight: 400, arbitrary: fc.record({ kind: fc.constant('frame' as const), value: frameValue, asText: fc.boolean() }) },
  { weight: 60, arbitrary: fc.record({ kind: fc.constant('frame' as const), value: distorted, asText: fc.boolean() }) },
  { weight: 50, arbitrary: fc.record({ kind: fc.constant('frame' as const), value: frameValue, asText: fc.boolean(), mutation }) },
  { weight: 20, arbitrary: fc.constantFrom(...SPELLED).map((bytes) => ({ kind: 'bytes' as const, bytes: Uint8Array.from(bytes) })) },
  { weight: 20, arbitrary: fc.uint8Array({ maxLength: 48 }).map((bytes) => ({ kind: 'bytes' as const, bytes })) },
  { weight: 20, arbitrary: fc.oneof(fc.string({ maxLength: 40 }), fc.json({ maxDepth: 2 }), fc.constantFrom('{', '{"type":"ping"', '{"type":"ping"}{"type":"ping"}', '{"type":"ping","type":"chunk"}')).map((text) => ({ kind: 'text' as const, text })) },
  // Past maxFrameBytes (FRAME_TOO_LARGE, the connection stays) and, rarely, past the transport's hard cap (it closes).
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('oversize' as const), size: fc.constant(17 * 1024), asText: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('oversize' as const), size: fc.constant(80 * 1024), asText: fc.boolean() }) },
);

/** Applies `m` to encoded bytes (positions wrap around the length). */
export function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  if (bytes.length === 0) return Uint8Array.of(m.byte);
  const at = m.at % bytes.length;
  switch (m.op) {
    case 'flip': {
      const out = Uint8Array.from(bytes);
      out[at] = (out[at] as number) ^ (1 << (m.byte % 8));
      return out;
    }
    case 'insert':
      return cat(bytes.subarray(0, at), [m.byte], bytes.subarray(at));
    case 'delete':
      return cat(bytes.subarray(0, at), bytes.subarray(at + 1));
    case 'truncate':
      return bytes.subarray(0, at);
  }
}
