import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { encodeEvents, encodeEventsFrame, encodeFrame } from './codec';
import { readMsgpack } from './msgpack-read';
import { SUBPROTOCOL_MSGPACK, type SessionEvent, type SessionId } from './types';

// The codec's settings: what the SDK falls back to, and what the fast reader must agree with.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

const integer = fc.oneof(
  fc.integer({ min: -40, max: 300 }),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.constantFrom(0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, -0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -0x80000000, -0x80000001),
);
const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'grapheme-ascii', minLength: 10, maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 20 }));
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(integer, fc.double(), text, fc.boolean(), fc.constant(null)),
  node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 6 }), fc.dictionary(text, tie('node'), { maxKeys: 9 })),
})).node;

/**
 * What the gateway can store as data: it refuses `__proto__` keys and text that is not
 * well-formed Unicode (PROTOCOL §3.3), so its frames never carry them (the reader declines both).
 */
function storable(v: unknown): boolean {
  if (typeof v === 'string') return (v as string & { isWellFormed(): boolean }).isWellFormed();
  if (Array.isArray(v)) return v.every(storable);
  if (typeof v === 'object' && v !== null) return Object.keys(v).every((key) => key !== '__proto__' && storable(key)) && Object.values(v).every(storable);
  return true;
}

const event = fc.record(
  {
    offset: fc.integer({ min: 1, max: 2 ** 40 }),
    type: fc.constantFrom('chunk', 'gen.start', 'gen.end', 'append'),
    generationId: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 20 }),
    seq: fc.nat(),
    kind: fc.constantFrom('text', 'reasoning', 'tool'),
    priority: fc.constantFrom(0, 1, 2, 3),
    ts: fc.integer({ min: 0, max: 2 ** 45 }),
    data: value.filter(storable),
    status: fc.constantFrom('done', 'error'),
    key: fc.string({ maxLength: 12 }),
  },
  { requiredKeys: ['offset', 'type', 'priority', 'ts'] },
);

describe('the fast msgpack reader (SDK side)', () => {
  it('reads every value it takes exactly as msgpackr does, and leaves nothing it cannot take half-read', () => {
    let runs = 0;
    let taken = 0;
    fc.assert(
      fc.property(value, (v) => {
        const bytes = packr.pack(v);
        const fast = readMsgpack(bytes);
        runs++;
        // A value it declines is still fine (the caller decodes it with msgpackr); one it takes must match.
        if (fast === undefined) return;
        taken++;
        expect(fast).toEqual(packr.unpack(bytes));
      }),
      { numRuns: 3000 },
    );
    // msgpackr writes none of what the reader declines for JSON-shaped values but a `__proto__` key.
    expect(taken).toBeGreaterThan(runs * 0.95);
  });

  it('keeps a leading U+FEFF (it is data, not a byte order mark) and leaves strings that are not UTF-8 to msgpackr', () => {
    for (const value of ['\uFEFF', '\uFEFFtext', { '\uFEFF': '\uFEFF'.padEnd(40, ' ') }, 'a\uD800', '\uDC00'.repeat(20)]) {
      const bytes = packr.pack(value);
      const fast = readMsgpack(bytes);
      if (fast !== undefined) expect(fast).toEqual(packr.unpack(bytes));
    }
    expect(readMsgpack(packr.pack('\uFEFFx'))).toBe('\uFEFFx');
    expect(readMsgpack(packr.pack('\uFEFF'.padEnd(40, 'y')))).toBe('\uFEFF'.padEnd(40, 'y'));
  });

  it('takes every events frame the gateway writes, with the values msgpackr reads', () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 20 }), fc.string({ minLength: 1, maxLength: 30 }), (events, session) => {
        const frame = encodeEventsFrame(session as SessionId, encodeEvents(events as SessionEvent[]));
        const fast = readMsgpack(frame);
        expect(fast).not.toBeUndefined();
        expect(fast).toEqual(packr.unpack(frame));
      }),
      { numRuns: 1000 },
    );
  });

  it('declines what it does not take: float32, binary, extensions, non-string keys, a __proto__ key, trailing or missing bytes', () => {
    const declined = [
      Uint8Array.of(0xca, 0x3f, 0x80, 0x00, 0x00), // float32 1.0
      Uint8Array.of(0xc4, 0x01, 0x00), // bin 8
      Uint8Array.of(0xd4, 0x01, 0x00), // fixext 1
      Uint8Array.of(0xc1), // never used
      Uint8Array.of(0x81, 0x01, 0x02), // { 1: 2 }
      packr.pack(JSON.parse('{"__proto__": 1}')),
      Uint8Array.of(0x01, 0x02), // trailing byte
      Uint8Array.of(0x92, 0x01), // array of 2, one element
      Uint8Array.of(0xa5, 0x61), // str of 5, one byte
      Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), // array of 4 billion
    ];
    for (const bytes of declined) expect(readMsgpack(bytes)).toBeUndefined();
  });

  it('reads a chunk event whose fields come in another order or with others too, field by field', () => {
    const odd = { data: 'x', offset: 3, type: 'chunk', generationId: 'g', seq: 0, kind: 'text', priority: 2, ts: 5 };
    const bytes = encodeFrame({ type: 'events', session: 's', events: [odd, { ...odd, extra: 1 }] } as never, SUBPROTOCOL_MSGPACK) as Uint8Array;
    expect(readMsgpack(bytes)).toEqual(packr.unpack(bytes));
  });
});
