/**
 * What a producer writes, a reader reads back equal, or the write is BAD_FRAME and nothing is
 * stored (PROTOCOL §3.3): through a real gateway on each store (memory, LMDB, a private
 * redis-server), written over either subprotocol and read over both.
 */
import { arr, map, mapOf, s, strOf, uint, type Bytes } from '../protocol/test-helpers/msgpack-spell';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Subprotocol } from '../protocol/types';
import type { Gateway } from './index';
import { gatewayHarness, transportNamed, type StoreKind } from './test-helpers/gateway-harness';
import type { AnyFrame, RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES } from './transport';

const PROTOCOLS: readonly Subprotocol[] = [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON];

// One redis-server for the file: every test writes sessions of its own (random names).
const h = gatewayHarness();
const STORES: readonly StoreKind[] = ['memory', 'lmdb', 'redis'];

/** Tricky-but-valid data any producer can write (both subprotocols), and a reader must get back as is. */
const VALUES: ReadonlyArray<readonly [string, unknown]> = [
  ['ASCII', 'plain text'],
  ['2-, 3- and 4-byte UTF-8', 'héllo € 😀 𝄞 中文'],
  ['the largest code point', '\u{10FFFF}'],
  ['a real U+FFFD', 'a\uFFFDb'],
  ['an empty string', ''],
  ['an empty map', {}],
  ['an empty array', []],
  ['null', null],
  ['true', true],
  ['false', false],
  ['nested maps and arrays', { a: { b: [1, { c: 'd', e: [] }], f: {} }, g: [[[null]]], h: [{}, [], ''] }],
  ['multi-byte and empty keys', { ключ: 'значение', '😀': '\uFFFD', '': 0 }],
  ['integer-like keys', { '1': 'a', b: 2, '0': null }],
  // (`constructor` holds a primitive: jest's toStrictEqual compares two objects' `constructor` properties by identity.)
  ['keys named like Object.prototype members', { constructor: 'c', prototype: { constructor: 1 }, toString: 'x', hasOwnProperty: null, valueOf: [], __defineGetter__: 0, __proto: 'not __proto__' }],
  ['a NUL character in a key and a value', { '\u0000': '\u0000' }],
  ['2^60, which a double holds exactly', 2 ** 60],
  [
    'numbers of every msgpack width',
    [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53 - 1)],
  ],
  ['floats', [1.5, -0.25, 0.1, 1e300, 5e-324, -1.7976931348623157e308, 2 ** 53 + 2]],
];

/** msgpack spellings only a spool.v1 producer can choose (widths, float32), and the value each is. */
const RAW_VALUES: ReadonlyArray<readonly [string, Bytes, unknown]> = [
  ['float32 1.5', [0xca, 0x3f, 0xc0, 0x00, 0x00], 1.5],
  ['float32 0.1', [0xca, 0x3d, 0xcc, 0xcc, 0xcd], Math.fround(0.1)],
  ['uint16 spelling of 2', [0xcd, 0x00, 0x02], 2],
  ['uint32 spelling of 1', [0xce, 0, 0, 0, 1], 1],
  ['uint64 spelling of 7', [0xcf, 0, 0, 0, 0, 0, 0, 0, 7], 7],
  ['uint64 2^53 − 1', [0xcf, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Number.MAX_SAFE_INTEGER],
  ['int8 −1', [0xd0, 0xff], -1],
  ['int16 spelling of 5', [0xd1, 0x00, 0x05], 5],
  ['int32 −2^31', [0xd2, 0x80, 0, 0, 0], -(2 ** 31)],
  ['int64 −(2^53 − 1)', [0xd3, 0xff, 0xe0, 0, 0, 0, 0, 0, 0x01], -Number.MAX_SAFE_INTEGER],
  ['an empty str8', [0xd9, 0x00], ''],
  ['an empty map16', [0xde, 0x00, 0x00], {}],
  ['an empty array32', [0xdd, 0, 0, 0, 0], []],
  ['str16 of 4-byte UTF-8', s('😀'.repeat(100)), '😀'.repeat(100)],
];

/** Data spellings that must be refused: each would be stored as something other than sent. */
const REFUSED_RAW: ReadonlyArray<readonly [string, Bytes]> = [
  ['an integer map key', map([[0x01], s('a')])],
  ['an integer key colliding with a string key', map([[0x01], s('a')], [s('1'), s('b')])],
  ['a duplicate key', map([s('a'), [0x01]], [s('a'), [0x02]])],
  ['a "__proto__" key', map([s('__proto__'), map([s('x'), [0x01]])])],
  ['invalid UTF-8 (0xff)', strOf(Uint8Array.of(0x61, 0xff, 0x62))],
  ['a UTF-8-encoded surrogate', strOf(Uint8Array.of(0xed, 0xa0, 0x80))],
  ['uint64 2^53', [0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 0]],
  ['int64 −2^63', [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]],
  ['binary', [0xc4, 0x02, 0x01, 0x02]],
  ['msgpackr undefined (fixext1)', [0xd4, 0x00, 0x00]],
  ['a timestamp (fixext4 −1)', [0xd6, 0xff, 0, 0, 0, 0]],
  ['ext8', [0xc7, 0x01, 0x05, 0x00]],
  ['the reserved byte 0xc1', [0xc1]],
  ['undefined inside an array', arr([0x01], [0xd4, 0x00, 0x00])],
];

function chunkFrame(token: string, seq: number, data: Bytes): Uint8Array {
  return map([s('type'), s('chunk')], [s('token'), s(token)], [s('seq'), uint(seq)], [s('data'), data]);
}

function appendFrame(session: string, key: Bytes, data: Bytes, id?: number): Uint8Array {
  const fields: Array<readonly [Bytes, Bytes]> = [[s('type'), s('append')], [s('session'), s(session)], [s('key'), key], [s('kind'), s('user')], [s('data'), data]];
  if (id !== undefined) fields.push([s('id'), uint(id)]);
  return mapOf(fields);
}

/** Refused spellings msgpackr cannot read even without the checks: their BAD_FRAME can name no request id. */
const UNREADABLE = new Set(['ext8']);

const ackOrError = (f: AnyFrame): boolean => f.type === 'ack' || f.type === 'error';
const appendedOrError = (f: AnyFrame): boolean => f.type === 'appended' || f.type === 'error';

// Every store over both transports: uWebSockets.js hands the connection its own copy of each
// message, ws a Buffer; the checks and the round trip must not depend on which.
const CASES = STORES.flatMap((storeName) => TRANSPORT_NAMES.map((transportName) => [storeName, transportName] as const));

describe.each(CASES)('on the %s store over %s', (storeName, transportName) => {
  let gw: Gateway;
  let session: (name: string) => string;

  beforeEach(async () => {
    gw = await h.gateway({ store: await h.store(storeName), transport: transportNamed(transportName) });
    const prefix = `fid-${Math.random().toString(36).slice(2, 10)}`;
    session = (name) => `${prefix}-${name}`;
  });

  const client = (protocol: Subprotocol): Promise<RawClient> => h.client(gw, protocol);

  /** The data of every chunk and append event of `id`, read over `protocol`. */
  async function readData(id: string, protocol: Subprotocol): Promise<{ chunks: unknown[]; appends: unknown[]; keys: string[] }> {
    const reader = await client(protocol);
    const events = await reader.readAll(id, 0);
    return {
      chunks: events.filter((e) => e['type'] === 'chunk').map((e) => e['data']),
      appends: events.filter((e) => e['type'] === 'append').map((e) => e['data']),
      keys: events.filter((e) => e['type'] === 'append').map((e) => e['key'] as string),
    };
  }

  describe.each(PROTOCOLS)('written over %s', (producerProtocol) => {
    it('every tricky-but-valid value, as chunk data and as append data, reads back deep-equal over both subprotocols', async () => {
      const id = session('values');
      const producer = await client(producerProtocol);
      const opened = await producer.open(id, 'g');
      const token = opened['token'] as string;
      producer.send({ type: 'chunks', token, seq: 0, items: VALUES.map(([, data]) => ({ kind: 'text', data })) });
      expect(await producer.next(ackOrError)).toMatchObject({ type: 'ack', seq: VALUES.length - 1 });
      let seq = VALUES.length;
      const expectedChunks: unknown[] = VALUES.map(([, data]) => data);
      if (producerProtocol === SUBPROTOCOL_MSGPACK) {
        for (const [, raw, value] of RAW_VALUES) {
          producer.sendRaw(Buffer.from(chunkFrame(token, seq, raw)));
          expect(await producer.next(ackOrError)).toMatchObject({ type: 'ack', seq });
          expectedChunks.push(value);
          seq++;
        }
      }
      for (const [i, [, data]] of VALUES.entries()) {
        producer.send({ type: 'append', id: i, session: id, key: `k${i}`, kind: 'user', data });
        expect(await producer.next(appendedOrError)).toMatchObject({ type: 'appended', id: i, duplicate: false });
      }
      if (producerProtocol === SUBPROTOCOL_MSGPACK) {
        for (const [i, [, raw]] of RAW_VALUES.entries()) {
          producer.sendRaw(Buffer.from(appendFrame(id, s(`raw${i}`), raw)));
          expect(await producer.next(appendedOrError)).toMatchObject({ type: 'appended', duplicate: false });
        }
      }
      const expectedAppends = [...VALUES.map(([, data]) => data), ...(producerProtocol === SUBPROTOCOL_MSGPACK ? RAW_VALUES.map(([, , value]) => value) : [])];
      for (const readerProtocol of PROTOCOLS) {
        const read = await readData(id, readerProtocol);
        expect(read.chunks).toStrictEqual(expectedChunks);
        expect(read.appends).toStrictEqual(expectedAppends);
      }
    });

    it('append keys spelled with distinct multi-byte UTF-8 stay distinct (no normalisation, no U+FFFD)', async () => {
      const id = session('keys');
      const producer = await client(producerProtocol);
      // NFC and NFD spellings of "café", a real U+FFFD, neighbouring emoji, a titlecase digraph and its two letters.
      const keys = ['café', 'cafe\u0301', 'a\uFFFDb', 'a😀b', 'a😁b', 'ǅ', 'Dž', 'k'];
      for (const [i, key] of keys.entries()) {
        producer.send({ type: 'append', id: i, session: id, key, kind: 'user', data: i });
        expect(await producer.next(appendedOrError)).toMatchObject({ type: 'appended', id: i, duplicate: false });
      }
      producer.send({ type: 'append', id: 99, session: id, key: 'cafe\u0301', kind: 'user', data: 'again' });
      expect(await producer.next(appendedOrError)).toMatchObject({ type: 'appended', id: 99, duplicate: true });
      for (const readerProtocol of PROTOCOLS) {
        const read = await readData(id, readerProtocol);
        expect(read.keys).toStrictEqual(keys);
        expect(read.appends).toStrictEqual(keys.map((_, i) => i));
      }
    });
  });

  it('append keys a\\xffb and a\\xfeb are refused, not collapsed into one U+FFFD key (the second was answered duplicate and lost)', async () => {
    const id = session('fffd');
    const producer = await client(SUBPROTOCOL_MSGPACK);
    for (const key of [Uint8Array.of(0x61, 0xff, 0x62), Uint8Array.of(0x61, 0xfe, 0x62)]) {
      producer.sendRaw(Buffer.from(appendFrame(id, strOf(key), s('invalid'))));
      expect(await producer.next(appendedOrError)).toMatchObject({ type: 'error', code: 'BAD_FRAME' });
    }
    producer.sendRaw(Buffer.from(appendFrame(id, s('a\uFFFDb'), s('real'))));
    expect(await producer.next(appendedOrError)).toMatchObject({ type: 'appended', duplicate: false });
    const read = await readData(id, SUBPROTOCOL_JSON);
    expect(read.keys).toStrictEqual(['a\uFFFDb']);
    expect(read.appends).toStrictEqual(['real']);
  });

  it('each refused msgpack spelling gets BAD_FRAME, stores nothing, and the next valid write is the next event', async () => {
    const id = session('refused');
    const producer = await client(SUBPROTOCOL_MSGPACK);
    const opened = await producer.open(id, 'g');
    const token = opened['token'] as string;
    const expected: Array<readonly [string, unknown]> = [];
    for (const [i, [name, raw]] of REFUSED_RAW.entries()) {
      // A refused chunk does not consume its seq: the valid chunk after it reuses seq i.
      producer.sendRaw(Buffer.from(chunkFrame(token, i, raw)));
      expect(await producer.next(ackOrError)).toMatchObject({ type: 'error', code: 'BAD_FRAME' });
      producer.sendRaw(Buffer.from(chunkFrame(token, i, s(`after chunk: ${name}`))));
      expect(await producer.next(ackOrError)).toMatchObject({ type: 'ack', seq: i });
      expected.push(['chunk', `after chunk: ${name}`]);
      producer.sendRaw(Buffer.from(appendFrame(id, s(`bad-${i}`), raw, 1000 + i)));
      const refused = await producer.next(appendedOrError);
      expect(refused).toMatchObject({ type: 'error', code: 'BAD_FRAME' });
      // The refusal still names the request (§3.2), read from the message without the checks.
      if (UNREADABLE.has(name)) expect(refused).not.toHaveProperty('id');
      else expect(refused['id']).toBe(1000 + i);
      producer.sendRaw(Buffer.from(appendFrame(id, s(`good-${i}`), s(`after append: ${name}`))));
      expect(await producer.next(appendedOrError)).toMatchObject({ type: 'appended', duplicate: false });
      expected.push(['append', `after append: ${name}`]);
    }
    for (const readerProtocol of PROTOCOLS) {
      const reader = await client(readerProtocol);
      const events = await reader.readAll(id, 0);
      expect(events.filter((e) => e['type'] === 'chunk' || e['type'] === 'append').map((e) => [e['type'], e['data']])).toStrictEqual(expected);
    }
  });

  it('a JSON frame with a duplicate member name gets BAD_FRAME and stores nothing (JSON.parse would keep the last)', async () => {
    const id = session('json-dup');
    const producer = await client(SUBPROTOCOL_JSON);
    const opened = await producer.open(id, 'g');
    const token = opened['token'] as string;
    producer.sendRaw(`{"type":"chunk","token":"${token}","seq":0,"data":{"a":"first","a":"second"}}`);
    expect(await producer.next(ackOrError)).toMatchObject({ type: 'error', code: 'BAD_FRAME' });
    producer.sendRaw(`{"type":"append","session":"${id}","key":"k","kind":"user","data":{"n":1,"\\u006e":2}}`);
    expect(await producer.next(appendedOrError)).toMatchObject({ type: 'error', code: 'BAD_FRAME' });
    producer.send({ type: 'chunk', token, seq: 0, data: 'valid' });
    expect(await producer.next(ackOrError)).toMatchObject({ type: 'ack', seq: 0 });
    producer.send({ type: 'append', session: id, key: 'k', kind: 'user', data: 'valid' });
    expect(await producer.next(appendedOrError)).toMatchObject({ type: 'appended', duplicate: false });
    const read = await readData(id, SUBPROTOCOL_MSGPACK);
    expect(read.chunks).toStrictEqual(['valid']);
    expect(read.appends).toStrictEqual(['valid']);
  });
});
