/**
 * What a producer writes is what a reader reads, or the frame is BAD_FRAME (PROTOCOL §3.3):
 * the codec fed raw bytes, no socket. Every msgpack spelling that msgpackr would decode into
 * something other than what was sent is refused; every spelling it decodes faithfully (any int
 * width, float32, empty containers, deep nesting, multi-byte UTF-8, a real U+FFFD) is accepted
 * and decodes to the value sent. Then the JSON side: duplicate member names, and what §3.3 forbids
 * in any part of a message (a "__proto__" member, lone surrogate escapes, integers no double holds).
 */
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { decodeFrame } from './codec';
import { SpoolError } from './errors';
import { DEFAULT_LIMITS } from './limits';
import { checkMsgpack } from './msgpack-check';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type ClientFrame, type Subprotocol } from './types';
import { NIL, arr, cat, map, mapOf, s, strOf, utf8, type Bytes } from './test-helpers/msgpack-spell';
import { isWellFormedUtf8 } from './utf8';
import { validateClientFrame } from './validate';

const TOKEN = 'v1/1/s/g';

/** The three places data appears in a client frame, each holding the raw `data` bytes. */
const PLACES: ReadonlyArray<readonly [string, (data: Bytes) => Uint8Array]> = [
  ['chunk', (data) => map([s('type'), s('chunk')], [s('token'), s(TOKEN)], [s('seq'), [0]], [s('data'), data])],
  ['chunks', (data) => map([s('type'), s('chunks')], [s('token'), s(TOKEN)], [s('seq'), [0]], [s('items'), arr(map([s('data'), s('ok')]), map([s('kind'), s('text')], [s('data'), data]))])],
  ['append', (data) => map([s('type'), s('append')], [s('session'), s('s')], [s('key'), s('k')], [s('kind'), s('user')], [s('data'), data])],
];

function receive(message: Uint8Array | string, protocol: Subprotocol = SUBPROTOCOL_MSGPACK): ClientFrame {
  return validateClientFrame(decodeFrame(message, protocol), DEFAULT_LIMITS);
}

function dataOf(frame: ClientFrame): unknown {
  if (frame.type === 'chunks') return frame.items[1]?.data;
  return (frame as { data?: unknown }).data;
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

function expectBadFrame(fn: () => unknown): void {
  const thrown = thrownBy(fn);
  expect(thrown).toBeInstanceOf(SpoolError);
  expect((thrown as SpoolError).code).toBe('BAD_FRAME');
}

// ------------------------------------------------------------------ refused

/** Data spellings msgpackr would decode into something else, or into something JSON cannot carry. */
const REFUSED_DATA: ReadonlyArray<readonly [string, Bytes]> = [
  // map keys that are not strings: msgpackr turns them into string keys ({1:"a"} -> {"1":"a"})
  ['a map with an integer key', map([[0x01], s('a')])],
  ['a map whose integer key collides with a string key', map([[0x01], s('a')], [s('1'), s('b')])],
  ['a map with a nil key', map([NIL, s('a')])],
  ['a map with a boolean key', map([[0xc3], s('a')])],
  ['a map with a float key', map([[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], s('a')])],
  ['a map with an array key', map([arr(s('a')), s('b')])],
  ['a map with a map key', map([map(), s('b')])],
  ['a map with a binary key', map([[0xc4, 0x01, 0x61], s('b')])],
  // duplicate keys: msgpackr keeps the last value
  ['a map with the same key twice', map([s('a'), [0x01]], [s('a'), [0x02]])],
  ['a map with the same key twice, spelled fixstr and str8', map([s('a'), [0x01]], [[0xd9, 0x01, 0x61], [0x02]])],
  ['a nested map with the same key twice', map([s('x'), arr(map([s('b'), NIL], [s('c'), NIL], [s('b'), NIL]))])],
  ['a map of 40 keys with one repeated (sorted check)', map(...Array.from({ length: 40 }, (_, i) => [s(`k${i === 39 ? 7 : i}`), [i]] as const))],
  // __proto__: msgpackr renames it to "__proto_"
  ['a "__proto__" key', map([s('__proto__'), map([s('x'), [0x01]])])],
  ['a nested "__proto__" key', arr(map([s('a'), map([s('__proto__'), [0x01]])]))],
  // invalid UTF-8: msgpackr decodes it to U+FFFD
  ['a string with a 0xff byte', strOf(Uint8Array.of(0x61, 0xff, 0x62))],
  ['a string with a 0xfe byte', strOf(Uint8Array.of(0x61, 0xfe, 0x62))],
  ['a string with a lone continuation byte', strOf(Uint8Array.of(0x80))],
  ['a string with an overlong "/" (c0 af)', strOf(Uint8Array.of(0xc0, 0xaf))],
  ['a string with an overlong 3-byte form (e0 80 80)', strOf(Uint8Array.of(0xe0, 0x80, 0x80))],
  ['a string with an overlong 4-byte form (f0 80 80 80)', strOf(Uint8Array.of(0xf0, 0x80, 0x80, 0x80))],
  ['a string with a UTF-8-encoded surrogate (ed a0 80, CESU-8)', strOf(Uint8Array.of(0xed, 0xa0, 0x80))],
  ['a string past U+10FFFF (f4 90 80 80)', strOf(Uint8Array.of(0xf4, 0x90, 0x80, 0x80))],
  ['a string with a 0xf5 lead byte', strOf(Uint8Array.of(0xf5, 0x80, 0x80, 0x80))],
  ['a string ending inside a 3-byte sequence', strOf(Uint8Array.of(0x61, 0xe2, 0x82))],
  ['a string with a 4-byte sequence cut short', strOf(Uint8Array.of(0xf0, 0x9f, 0x98, 0x61))],
  ['a long (str16) string with one bad byte at the end', strOf(cat(utf8('é'.repeat(200)), [0xff]))],
  ['a map key that is not UTF-8', map([strOf(Uint8Array.of(0x6b, 0xff)), [0x01]])],
  // int64 outside ±(2^53 − 1): decoded to the nearest double, not the integer sent
  ['uint64 2^53', [0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 0]],
  ['uint64 2^53 + 1', [0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 1]],
  ['uint64 2^64 − 1', [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
  ['int64 2^53', [0xd3, 0x00, 0x20, 0, 0, 0, 0, 0, 0]],
  ['int64 −2^53', [0xd3, 0xff, 0xe0, 0, 0, 0, 0, 0, 0]],
  ['int64 −2^63', [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]],
  // bin, ext and the never-used byte
  ['bin8', [0xc4, 0x02, 0x01, 0x02]],
  ['bin16', [0xc5, 0x00, 0x01, 0x01]],
  ['bin32', [0xc6, 0x00, 0x00, 0x00, 0x01, 0x01]],
  ['ext8', [0xc7, 0x01, 0x05, 0x00]],
  ['ext16', [0xc8, 0x00, 0x01, 0x05, 0x00]],
  ['ext32', [0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00]],
  ['fixext1 (msgpackr undefined)', [0xd4, 0x00, 0x00]],
  ['fixext2', [0xd5, 0x01, 0x00, 0x00]],
  ['fixext4 (a timestamp)', [0xd6, 0xff, 0, 0, 0, 0]],
  ['fixext8', [0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]],
  ['fixext16', [0xd8, 0x01, ...new Array(16).fill(0)]],
  ['the reserved byte 0xc1', [0xc1]],
  ['undefined inside an array', arr([0x01], [0xd4, 0x00, 0x00])],
];

describe('msgpack the decoder would change is BAD_FRAME', () => {
  describe.each(PLACES)('as %s data', (_place, frame) => {
    test.each(REFUSED_DATA)('%s', (_name, data) => {
      expectBadFrame(() => decodeFrame(frame(data), SUBPROTOCOL_MSGPACK));
    });
  });

  test.each([
    ['a frame field with a duplicate key (type)', map([s('type'), s('ping')], [s('type'), s('chunk')])],
    ['a "__proto__" frame field', map([s('type'), s('ping')], [s('__proto__'), map([s('type'), s('chunk')])])],
    ['an append key with invalid UTF-8', map([s('type'), s('append')], [s('session'), s('s')], [s('key'), strOf(Uint8Array.of(0x61, 0xff, 0x62))], [s('kind'), s('u')], [s('data'), NIL])],
    ['a kind with invalid UTF-8', map([s('type'), s('chunk')], [s('token'), s(TOKEN)], [s('seq'), [0]], [s('kind'), strOf(Uint8Array.of(0xfe))], [s('data'), NIL])],
    ['a seq spelled as a uint64 past 2^53', map([s('type'), s('chunk')], [s('token'), s(TOKEN)], [s('seq'), [0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 1]], [s('data'), NIL])],
    ['a frame with an integer key', map([s('type'), s('ping')], [[0x07], s('x')])],
  ])('%s', (_name, message) => {
    expectBadFrame(() => decodeFrame(message, SUBPROTOCOL_MSGPACK));
  });

  const ping = map([s('type'), s('ping')]);
  test.each([
    ['a ping followed by one more byte', cat(ping, [0x00])],
    ['a ping followed by a second ping', cat(ping, ping)],
    ['a ping cut one byte short', ping.subarray(0, ping.length - 1)],
    ['a map16 header cut short', [0xde, 0x00]],
    ['a map32 header claiming more entries than bytes', [0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01]],
    ['an array32 header claiming 2^32 − 1 items', [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ['a str32 header claiming more bytes than sent', [0xdb, 0x00, 0x00, 0x01, 0x00, 0x61]],
    ['a str16 header cut short', [0xda, 0x00]],
    ['a float64 cut short', [0xcb, 0x3f, 0xf0]],
    ['a uint64 cut short', [0xcf, 0x00, 0x00]],
    ['a map with a key and no value', [0x81, 0xa1, 0x61]],
    ['an empty message', []],
  ])('truncated or trailing bytes: %s', (_name, message) => {
    expectBadFrame(() => decodeFrame(Uint8Array.from(message), SUBPROTOCOL_MSGPACK));
  });

  test('the U+FFFD collision: two append keys differing only in an invalid byte are both refused', () => {
    const append = (key: Uint8Array): Uint8Array => map([s('type'), s('append')], [s('session'), s('s')], [s('key'), strOf(key)], [s('kind'), s('u')], [s('data'), NIL]);
    expectBadFrame(() => decodeFrame(append(Uint8Array.of(0x61, 0xff, 0x62)), SUBPROTOCOL_MSGPACK));
    expectBadFrame(() => decodeFrame(append(Uint8Array.of(0x61, 0xfe, 0x62)), SUBPROTOCOL_MSGPACK));
    expect(receive(append(utf8('a\uFFFDb')))).toMatchObject({ key: 'a\uFFFDb' });
  });

  test('hostile nesting (a million arrays deep) is refused without overflowing the stack', () => {
    const deep = new Uint8Array(1_000_000).fill(0x91);
    expectBadFrame(() => decodeFrame(deep, SUBPROTOCOL_MSGPACK));
  });

  test('a map of 100,000 keys is checked for duplicates in O(n log n), not O(n²)', () => {
    // Pairwise, this map would take ~5·10^9 key comparisons (tens of seconds); sorted, ~2·10^6.
    // The bound is loose on purpose: it only has to tell those two apart on a loaded machine.
    const bigMap = (extra: ReadonlyArray<readonly [Bytes, Bytes]>): Uint8Array =>
      mapOf([...Array.from({ length: 100_000 }, (_, i) => [s(`key-${i}`), [0x01]] as const), ...extra]);
    const started = Date.now();
    expect(() => checkMsgpack(bigMap([]))).not.toThrow();
    expectBadFrame(() => checkMsgpack(bigMap([[s('key-99999'), [0x02]]])));
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

// ------------------------------------------------------------------ accepted

/** Data spellings msgpackr decodes faithfully, and the value each must decode to. */
const ACCEPTED_DATA: ReadonlyArray<readonly [string, Bytes, unknown]> = [
  ['float32 1.5', [0xca, 0x3f, 0xc0, 0x00, 0x00], 1.5],
  ['float32 0.1 (read as the float32 value, widened)', [0xca, 0x3d, 0xcc, 0xcc, 0xcd], Math.fround(0.1)],
  ['float64 0.1', [0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a], 0.1],
  ['positive fixint 127', [0x7f], 127],
  ['negative fixint −32', [0xe0], -32],
  ['uint8 255', [0xcc, 0xff], 255],
  ['uint16 65535', [0xcd, 0xff, 0xff], 65535],
  ['uint32 2^32 − 1', [0xce, 0xff, 0xff, 0xff, 0xff], 2 ** 32 - 1],
  ['uint32 spelling of 1 (not the shortest)', [0xce, 0, 0, 0, 1], 1],
  ['uint64 2^53 − 1', [0xcf, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Number.MAX_SAFE_INTEGER],
  ['uint64 spelling of 7', [0xcf, 0, 0, 0, 0, 0, 0, 0, 7], 7],
  ['int8 −128', [0xd0, 0x80], -128],
  ['int16 −32768', [0xd1, 0x80, 0x00], -32768],
  ['int32 −2^31', [0xd2, 0x80, 0, 0, 0], -(2 ** 31)],
  ['int64 −(2^53 − 1)', [0xd3, 0xff, 0xe0, 0, 0, 0, 0, 0, 0x01], -Number.MAX_SAFE_INTEGER],
  ['int64 2^53 − 1', [0xd3, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Number.MAX_SAFE_INTEGER],
  ['int64 −1', [0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], -1],
  ['nil', NIL, null],
  ['true', [0xc3], true],
  ['an empty string', [0xa0], ''],
  ['an empty str8', [0xd9, 0x00], ''],
  ['an empty map', [0x80], {}],
  ['an empty map16', [0xde, 0x00, 0x00], {}],
  ['an empty array', [0x90], []],
  ['an empty array32', [0xdd, 0, 0, 0, 0], []],
  ['2-, 3- and 4-byte UTF-8 (é, €, 😀, 𝄞)', s('é€😀𝄞'), 'é€😀𝄞'],
  ['the largest code point, U+10FFFF', s('\u{10FFFF}'), '\u{10FFFF}'],
  ['a real U+FFFD, as sent', s('a\uFFFDb'), 'a\uFFFDb'],
  ['a long non-ASCII string (str16)', s('ü'.repeat(300)), 'ü'.repeat(300)],
  ['multi-byte keys', map([s('ключ'), s('значение')], [s('😀'), [0x01]]), { ключ: 'значение', '😀': 1 }],
  ['integer-like string keys', map([s('b'), [0x02]], [s('1'), s('a')]), { '1': 'a', b: 2 }],
  ['the same key in sibling and nested maps', arr(map([s('a'), map([s('a'), [0x01]])]), map([s('a'), [0x02]])), [{ a: { a: 1 } }, { a: 2 }]],
  ['keys that are prefixes of each other', map([s('a'), [1]], [s('ab'), [2]], [s(''), [3]]), { a: 1, ab: 2, '': 3 }],
  ['"__proto__" as a string value (only the key is refused)', map([s('p'), s('__proto__')]), { p: '__proto__' }],
  ['a map of 40 distinct keys', map(...Array.from({ length: 40 }, (_, i) => [s(`k${i}`), [i]] as const)), Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i]))],
  ['arrays nested maxDataDepth deep', cat(new Array(DEFAULT_LIMITS.maxDataDepth).fill(0x91), [0x01]), nested(DEFAULT_LIMITS.maxDataDepth)],
];

function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

describe('msgpack the decoder reads faithfully is accepted, as the value sent', () => {
  describe.each(PLACES)('as %s data', (_place, frame) => {
    test.each(ACCEPTED_DATA)('%s', (_name, data, expected) => {
      expect(dataOf(receive(frame(data)))).toStrictEqual(expected);
    });
  });
});

// ------------------------------------------------------------------ JSON

describe('JSON with duplicate member names is BAD_FRAME', () => {
  const chunk = (data: string): string => `{"type":"chunk","token":"${TOKEN}","seq":0,"data":${data}}`;
  test.each([
    ['in data', chunk('{"a":1,"a":2}')],
    ['in nested data', chunk('{"x":[1,{"b":null,"c":true,"b":"y"}]}')],
    ['spelled differently (an escape)', chunk('{"a":1,"\\u0061":2}')],
    ['with escaped quotes and backslashes in the name', chunk('{"q\\"\\\\":1,"q\\"\\\\":2}')],
    ['among many names', chunk(`{${Array.from({ length: 50 }, (_, i) => `"k${i}":${i}`).join(',')},"k17":0}`)],
    ['as frame fields', '{"type":"ping","type":"ping"}'],
    ['a duplicate type smuggling another frame', `{"type":"ping","token":"${TOKEN}","seq":0,"data":1,"type":"chunk"}`],
    ['in an append', '{"type":"append","session":"s","key":"k","kind":"u","data":{"n":1,"n":1}}'],
  ])('%s', (_name, text) => {
    expectBadFrame(() => decodeFrame(text, SUBPROTOCOL_JSON));
    expectBadFrame(() => decodeFrame(utf8(text), SUBPROTOCOL_JSON));
    expectBadFrame(() => decodeFrame(text, SUBPROTOCOL_MSGPACK)); // a text message is JSON on spool.v1 too
  });

  test.each([
    ['equal names in sibling objects', chunk('[{"a":1},{"a":2}]'), [{ a: 1 }, { a: 2 }]],
    ['equal names at different depths', chunk('{"a":{"a":{"a":1}}}'), { a: { a: { a: 1 } } }],
    ['a value equal to a name', chunk('{"a":"a","b":["a","a"]}'), { a: 'a', b: ['a', 'a'] }],
    ['names that differ only by an escape sequence meaning', chunk('{"\\\\u0061":1,"a":2}'), { '\\u0061': 1, a: 2 }],
    ['strings holding braces, brackets, commas and colons', chunk('{"{":"}","[":",:","x":"\\"{,"}'), { '{': '}', '[': ',:', x: '"{,' }],
    ['an empty object and an empty name', chunk('{"":{},"e":[]}'), { '': {}, e: [] }],
  ])('accepted: %s', (_name, text, expected) => {
    expect(dataOf(receive(text, SUBPROTOCOL_JSON))).toStrictEqual(expected);
  });
});

describe('JSON the decoder would change, anywhere in the message, is BAD_FRAME', () => {
  const chunk = (data: string): string => `{"type":"chunk","token":"${TOKEN}","seq":0,"data":${data}}`;
  test.each([
    ['a "__proto__" member in data', chunk('{"__proto__":{"a":1}}')],
    ['a "__proto__" member as a frame field', '{"type":"ping","__proto__":{"id":5}}'],
    ['a "__proto__" member spelled with an escape', '{"type":"ping","\\u005f_proto__":1}'],
    ['a "__proto__" member inside resume', `{"type":"open","session":"s","generation":"g","resume":{"token":"${TOKEN}","__proto__":{}}}`],
    ['a lone high surrogate in data', chunk('"a\\ud800b"')],
    ['a lone low surrogate in a map key', chunk('{"\\udc00":1}')],
    ['a surrogate pair in the wrong order', chunk('"\\ude00\\ud83d"')],
    ['a lone surrogate in a hello token', '{"type":"hello","protocol":1,"token":"t\\ud800"}'],
    ['a lone surrogate in an append key', '{"type":"append","session":"s","key":"k\\udbff","kind":"u","data":1}'],
    ['an integer past 2^53 that no double holds', chunk('9007199254740993')],
    ['a negative one', chunk('[-9007199254740995]')],
    ['a long one', chunk('{"n":123456789012345678901234567890}')],
    ['2^60 spelled exactly (read back as 1152921504606847000)', chunk('1152921504606846976')],
  ])('%s', (_name, text) => {
    expectBadFrame(() => decodeFrame(text, SUBPROTOCOL_JSON));
    expectBadFrame(() => decodeFrame(utf8(text), SUBPROTOCOL_JSON));
    expectBadFrame(() => decodeFrame(text, SUBPROTOCOL_MSGPACK));
  });

  test.each([
    ['a surrogate pair as escapes', chunk('"\\ud83d\\ude00"'), '😀'],
    ['an escaped backslash before ud800 (not an escape)', chunk('"\\\\ud800"'), '\\ud800'],
    ['the largest safe integer', chunk('9007199254740991'), 2 ** 53 - 1],
    ['2^53 + 2 and 2^60 as JavaScript writes them (doubles that read back as sent)', chunk('[9007199254740994,1152921504606847000]'), [2 ** 53 + 2, 2 ** 60]],
    ['a float with an exponent', chunk('1.5e300'), 1.5e300],
    ['keys named like Object.prototype members', chunk('{"constructor":1,"toString":"x","hasOwnProperty":null,"valueOf":[],"prototype":{},"__defineGetter__":0,"__proto":1}'), {
      constructor: 1,
      toString: 'x',
      hasOwnProperty: null,
      valueOf: [],
      prototype: {},
      __defineGetter__: 0,
      __proto: 1,
    }],
  ])('accepted: %s', (_name, text, expected) => {
    expect(dataOf(receive(text, SUBPROTOCOL_JSON))).toStrictEqual(expected);
  });
});

// ------------------------------------------------------------------ properties

describe('properties', () => {
  test('the pure-JS UTF-8 check agrees with Node’s isUtf8 on any bytes', () => {
    const nearlyUtf8 = fc.oneof(
      fc.uint8Array({ maxLength: 24 }),
      fc.string({ unit: 'binary' }).map((text) => utf8(text)),
      fc
        .tuple(fc.string({ unit: 'binary' }), fc.nat(), fc.integer({ min: 0, max: 255 }))
        .map(([text, at, byte]) => {
          const bytes = utf8(text);
          if (bytes.length > 0) bytes[at % bytes.length] = byte;
          return bytes;
        }),
    );
    fc.assert(
      fc.property(nearlyUtf8, (bytes) => isWellFormedUtf8(bytes, 0, bytes.length) === isUtf8(bytes)),
      { numRuns: 20_000 },
    );
  });

  test('whatever msgpackr packs from JSON data (no "__proto__" key) passes the check and decodes to itself', () => {
    const packr = new Packr({ useRecords: false });
    const data = fc.jsonValue({ maxDepth: 5 }).filter((v) => !JSON.stringify(v).includes('"__proto__"'));
    fc.assert(
      fc.property(data, (value) => {
        const bytes = packr.pack({ type: 'chunk', token: TOKEN, seq: 0, data: value });
        expect(() => checkMsgpack(bytes)).not.toThrow();
        // -0 is packed as the integer 0: equal as a value, as JSON sees it.
        expect(dataOf(receive(bytes))).toStrictEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 1000 },
    );
  });

  test('a corrupted frame is BAD_FRAME or decodes to what its bytes spell: one byte changed, inserted or dropped', () => {
    // Whatever the check lets through must survive msgpackr unchanged: decoding, re-encoding
    // and checking again gives the same value (a changed key, string or number would differ).
    const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
    const corrupted = fc
      .tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'drop'))
      .map(([value, at, byte, how]) => {
        const bytes = [...(packr.pack({ d: value }) as Uint8Array)];
        const i = at % bytes.length;
        if (how === 'set') bytes[i] = byte;
        else if (how === 'insert') bytes.splice(i, 0, byte);
        else bytes.splice(i, 1);
        return Uint8Array.from(bytes);
      });
    fc.assert(
      fc.property(corrupted, (bytes) => {
        const thrown = thrownBy(() => checkMsgpack(bytes));
        if (thrown !== undefined) return thrown instanceof SpoolError && thrown.code === 'BAD_FRAME';
        const value: unknown = packr.unpack(bytes);
        const again = packr.pack(value) as Uint8Array;
        expect(() => checkMsgpack(again)).not.toThrow();
        // A corrupted float64 can spell -0, which msgpackr packs as the integer 0: the same value
        // as JSON sees it, so compared with -0 read as 0.
        expect(withoutNegativeZero(packr.unpack(again))).toStrictEqual(withoutNegativeZero(value));
        return true;
      }),
      { numRuns: 5000 },
    );
  });
});

/** `value` with every -0 read as 0 (what msgpack and JSON make of it). */
function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = withoutNegativeZero(item);
    return out;
  }
  return value;
}
