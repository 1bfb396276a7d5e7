/**
 * Validation of every client frame type, field by field; generation tokens; the error registry
 * (and that PROTOCOL.md's registry table says what errors.ts says).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  ERROR_CODES,
  ERROR_REGISTRY,
  SpoolError,
  closeCodeOf,
  codeOfClose,
  isErrorCode,
  type ErrorCode,
  type ErrorDetails,
} from './errors';
import { DEFAULT_LIMITS, type ProtocolLimits } from './limits';
import { encodeToken, parseToken } from './token';
import { END_STATUSES, type EndStatus, type GenerationId, type SessionId } from './types';
import { portableData, rawRequestId, validateClientFrame } from './validate';

const TOKEN = encodeToken({ epoch: 1, session: 's' as SessionId, generation: 'g' as GenerationId, tag: 'AAAAAAAAAAAAAAAAAAAAAA' });

function validate(raw: unknown, limits: ProtocolLimits = DEFAULT_LIMITS): unknown {
  return validateClientFrame(raw, limits);
}

function expectBadFrame(raw: unknown, limits: ProtocolLimits = DEFAULT_LIMITS): void {
  let thrown: unknown;
  try {
    validateClientFrame(raw, limits);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(SpoolError);
  expect((thrown as SpoolError).code).toBe('BAD_FRAME');
  expect((thrown as SpoolError).retryable).toBe(false);
}

/** `frame` without `field` (for required fields) or with `field` set to `value`. */
function withField(frame: Record<string, unknown>, field: string, value: unknown): Record<string, unknown> {
  const copy = { ...frame };
  if (value === MISSING) delete copy[field];
  else copy[field] = value;
  return copy;
}
const MISSING = Symbol('missing');

// ------------------------------------------------------------------ shared bad values

const long = (n: number): string => 'x'.repeat(n);
const BAD_ID = [MISSING, '', long(129), 'a/b', 'a b', 'é', 'a\n', '*', 'a\u0000', 1, null, true, [], {}];
const BAD_REQUEST_ID = [-1, 1.5, '1', null, true, 2 ** 53, NaN, Infinity, [1], {}];
const BAD_SEQ = [MISSING, -1, 1.5, '0', null, NaN, Infinity, 2 ** 53, true, [0], {}];
const BAD_TOKEN = [MISSING, '', long(513), 1, null, {}, ['t']];
const BAD_PRIORITY = [-1, 4, 1.5, '2', null, true, NaN, [2], {}];
const BAD_KIND = ['', long(DEFAULT_LIMITS.maxKindLength + 1), 1, null, true, {}, 'a\ud800'];
/** Values msgpack or JSON can carry that are not portable JSON data (see PROTOCOL.md "Data"). */
const BAD_DATA = [
  MISSING,
  undefined,
  NaN,
  Infinity,
  -Infinity,
  10n,
  new Date(0),
  new Uint8Array(2),
  Buffer.from('x'),
  new Map([['a', 1]]),
  new Set([1]),
  /x/,
  new Error('x'),
  Symbol('x'),
  () => 1,
  new (class Custom {})(),
  'lone \ud83d surrogate',
  { nested: [1, { deep: 2n }] },
  { nested: [undefined] },
  JSON.parse('{"__proto__": 1}'),
  { ['\udc00']: 1 },
];

// ------------------------------------------------------------------ valid frames

/** The smallest valid frame of each type, and one with every optional field. */
const VALID: Record<string, { min: Record<string, unknown>; full: Record<string, unknown> }> = {
  hello: { min: { type: 'hello', protocol: 1 }, full: { type: 'hello', id: 0, protocol: 1, token: 't', client: 'app/1' } },
  open: {
    min: { type: 'open', session: 's', generation: 'g' },
    full: { type: 'open', id: 1, session: 's', generation: 'g', resume: { token: TOKEN }, takeover: false, secret: 'Zm9vYmFyYmF6cXV4LXNlY3JldA' },
  },
  chunk: {
    min: { type: 'chunk', token: TOKEN, seq: 0, data: 'x' },
    full: { type: 'chunk', token: TOKEN, seq: 5, kind: 'text', priority: 0, data: { a: [1, 'b', null, true, { c: -2.5 }] } },
  },
  chunks: {
    min: { type: 'chunks', token: TOKEN, seq: 0, items: [{ data: null }] },
    full: { type: 'chunks', token: TOKEN, seq: 3, items: [{ data: 'a' }, { kind: 'reasoning', priority: 1, data: 'b' }] },
  },
  finish: {
    min: { type: 'finish', token: TOKEN, seq: 0 },
    full: { type: 'finish', id: 2, token: TOKEN, seq: 9, status: 'aborted', error: 'stopped by user' },
  },
  append: {
    min: { type: 'append', session: 's', key: 'k', kind: 'user', data: 'hi' },
    full: { type: 'append', id: 3, session: 's', key: long(DEFAULT_LIMITS.maxKeyLength), kind: long(DEFAULT_LIMITS.maxKindLength), priority: 1, data: [] },
  },
  subscribe: { min: { type: 'subscribe', session: 's', from: 0 }, full: { type: 'subscribe', id: 4, session: 's', from: 'now' } },
  unsubscribe: { min: { type: 'unsubscribe', session: 's' }, full: { type: 'unsubscribe', id: 5, session: 's' } },
  ping: { min: { type: 'ping' }, full: { type: 'ping', id: 6 } },
  refresh: { min: { type: 'refresh', token: 'eyJ.a.b' }, full: { type: 'refresh', id: 7, token: 'eyJ.a.b' } },
};

describe('valid frames', () => {
  test.each(Object.keys(VALID))('%s: minimal and full forms validate to themselves', (type) => {
    const { min, full } = VALID[type] as { min: Record<string, unknown>; full: Record<string, unknown> };
    expect(validate(min)).toEqual(min);
    expect(validate(full)).toEqual(full);
  });

  test('unknown fields are ignored and not passed on (forward compatibility)', () => {
    for (const { full } of Object.values(VALID)) {
      const result = validate({ ...full, futureField: { x: 1 }, another: 'y' }) as Record<string, unknown>;
      expect(result).toEqual(full);
      expect('futureField' in result).toBe(false);
    }
    const chunks = validate({ type: 'chunks', token: TOKEN, seq: 0, items: [{ data: 1, extra: true }] });
    expect(chunks).toEqual({ type: 'chunks', token: TOKEN, seq: 0, items: [{ data: 1 }] });
  });

  test('defaults are the gateway’s to apply: absent optional fields stay absent', () => {
    expect(validate({ type: 'chunk', token: TOKEN, seq: 0, data: 1 })).not.toHaveProperty('priority');
    expect(validate({ type: 'append', session: 's', key: 'k', kind: 'u', data: 1 })).not.toHaveProperty('priority');
    expect(validate({ type: 'finish', token: TOKEN, seq: 0 })).not.toHaveProperty('status');
  });

  test('data may be any portable JSON value, including falsy ones', () => {
    for (const data of [null, false, true, 0, -1.5, 1e300, '', 'héllo 😀', [], {}, [[[]]], { a: { b: { c: [1, 'x'] } } }]) {
      expect(validate({ type: 'chunk', token: TOKEN, seq: 0, data })).toEqual({ type: 'chunk', token: TOKEN, seq: 0, data });
    }
  });

  test('ids: 1 and 128 chars of every allowed character class pass', () => {
    for (const id of ['a', long(128), 'AZaz09._:-', 'session:2024-01-01.user_1', '.', '-', ':']) {
      expect(validate({ type: 'open', session: id, generation: id })).toMatchObject({ session: id, generation: id });
    }
  });

  test('priorities 0 to 3 pass everywhere a priority is allowed', () => {
    for (const priority of [0, 1, 2, 3]) {
      expect(validate({ type: 'chunk', token: TOKEN, seq: 0, priority, data: 1 })).toMatchObject({ priority });
      expect(validate({ type: 'chunks', token: TOKEN, seq: 0, items: [{ priority, data: 1 }] })).toMatchObject({ items: [{ priority }] });
      expect(validate({ type: 'append', session: 's', key: 'k', kind: 'u', priority, data: 1 })).toMatchObject({ priority });
    }
  });

  test('subscribe.from accepts offsets, start and now', () => {
    for (const from of [0, 1, 2 ** 53 - 1, 'start', 'now']) expect(validate({ type: 'subscribe', session: 's', from })).toMatchObject({ from });
  });
});

// ------------------------------------------------------------------ invalid frames

describe('frames that are not frames', () => {
  test.each([
    ['null', null],
    ['undefined', undefined],
    ['a number', 7],
    ['a string', 'ping'],
    ['a boolean', false],
    ['an array', [{ type: 'ping' }]],
    ['binary', new Uint8Array([1])],
    ['a Buffer', Buffer.from('{"type":"ping"}')],
  ])('%s is BAD_FRAME', (_name, raw) => expectBadFrame(raw));

  test.each([
    ['missing', {}],
    ['a number', { type: 1 }],
    ['null', { type: null }],
    ['an array', { type: ['ping'] }],
    ['empty', { type: '' }],
    ['unknown', { type: 'pong?' }],
    ['upper case', { type: 'PING' }],
    ['a gateway frame type', { type: 'welcome' }],
    ['another gateway frame type', { type: 'error', code: 'INTERNAL' }],
    ['Object.prototype member toString', { type: 'toString' }],
    ['Object.prototype member constructor', { type: 'constructor' }],
    ['Object.prototype member hasOwnProperty', { type: 'hasOwnProperty' }],
    ['__proto__', { type: '__proto__' }],
    ['very long', { type: long(100_000) }],
  ])('type %s is BAD_FRAME', (_name, raw) => expectBadFrame(raw));
});

/** For each frame type: every field, with values it must refuse. MISSING = field absent. */
const INVALID_FIELDS: Record<string, Record<string, readonly unknown[]>> = {
  hello: {
    id: BAD_REQUEST_ID,
    protocol: [MISSING, '1', null, true, [1], {}],
    token: [1, null, {}, []],
    client: [1, null, {}, []],
  },
  open: {
    id: BAD_REQUEST_ID,
    session: BAD_ID,
    generation: BAD_ID,
    resume: ['x', null, [], {}, { token: 1 }, { token: '' }, { token: long(513) }, { token: null }, new Uint8Array(1)],
    takeover: ['true', 1, 0, null, []],
    secret: ['', 'short', 'x'.repeat(15), 'x'.repeat(129), 'sixteen chars ok', 'abcdefghijklmnop+', 1, null, {}],
  },
  chunk: {
    token: BAD_TOKEN,
    seq: BAD_SEQ,
    kind: BAD_KIND,
    priority: BAD_PRIORITY,
    data: BAD_DATA,
  },
  chunks: {
    token: BAD_TOKEN,
    seq: BAD_SEQ,
    items: [
      MISSING,
      [],
      {},
      'x',
      null,
      { 0: { data: 1 }, length: 1 },
      [null],
      [1],
      ['x'],
      [[]],
      [{ data: 1 }, {}],
      [{ data: 1 }, { kind: 'k' }],
      ...BAD_KIND.map((kind) => [{ data: 1 }, { kind, data: 1 }]),
      ...BAD_PRIORITY.map((priority) => [{ data: 1 }, { priority, data: 1 }]),
      ...BAD_DATA.filter((d) => d !== MISSING).map((data) => [{ data: 1 }, { data }]),
    ],
  },
  finish: {
    id: BAD_REQUEST_ID,
    token: BAD_TOKEN,
    seq: BAD_SEQ,
    status: ['fenced', 'timeout', 'DONE', '', 1, null, ['done']],
    error: ['', long(DEFAULT_LIMITS.maxErrorLength + 1), 1, null, {}, 'bad \udfff'],
  },
  append: {
    id: BAD_REQUEST_ID,
    session: BAD_ID,
    key: [MISSING, '', long(DEFAULT_LIMITS.maxKeyLength + 1), 1, null, ['k'], 'k\ud800'],
    kind: [MISSING, ...BAD_KIND],
    priority: BAD_PRIORITY,
    data: BAD_DATA,
  },
  subscribe: {
    id: BAD_REQUEST_ID,
    session: BAD_ID,
    from: [MISSING, -1, 1.5, 'end', 'START', '5', '', null, NaN, Infinity, 2 ** 53, true, {}, [0]],
  },
  unsubscribe: { id: BAD_REQUEST_ID, session: BAD_ID },
  ping: { id: BAD_REQUEST_ID },
  refresh: { id: BAD_REQUEST_ID, token: [MISSING, '', 1, null, {}, ['t']] },
};

describe('wrong field values are BAD_FRAME', () => {
  const cases: Array<[string, string, string, unknown]> = [];
  for (const [type, fields] of Object.entries(INVALID_FIELDS)) {
    for (const [field, values] of Object.entries(fields)) {
      values.forEach((value, i) => cases.push([type, field, `#${i}`, value]));
    }
  }

  test.each(cases)('%s.%s %s', (type, field, _n, value) => {
    const { min, full } = VALID[type] as { min: Record<string, unknown>; full: Record<string, unknown> };
    expectBadFrame(withField(min, field, value));
    expectBadFrame(withField(full, field, value));
  });

  test('every field of every frame type has refusal cases', () => {
    for (const [type, { full }] of Object.entries(VALID)) {
      const fields = Object.keys(full).filter((f) => f !== 'type');
      expect(Object.keys(INVALID_FIELDS[type] ?? {}).sort()).toEqual(fields.sort());
    }
  });

  test('optional fields set to null are refused, not read as absent', () => {
    expectBadFrame({ type: 'chunk', token: TOKEN, seq: 0, data: 1, kind: null });
    expectBadFrame({ type: 'open', session: 's', generation: 'g', resume: null });
  });
});

describe('limits', () => {
  const small: ProtocolLimits = { ...DEFAULT_LIMITS, maxBatchItems: 3, maxKindLength: 4, maxKeyLength: 5, maxErrorLength: 6, maxDataDepth: 2 };
  const items = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ data: i }));

  test('chunks with exactly maxBatchItems items pass, one more is BAD_FRAME', () => {
    expect(validate({ type: 'chunks', token: TOKEN, seq: 0, items: items(3) }, small)).toMatchObject({ items: items(3) });
    expectBadFrame({ type: 'chunks', token: TOKEN, seq: 0, items: items(4) }, small);
    expect(validate({ type: 'chunks', token: TOKEN, seq: 0, items: items(DEFAULT_LIMITS.maxBatchItems) })).toBeDefined();
    expectBadFrame({ type: 'chunks', token: TOKEN, seq: 0, items: items(DEFAULT_LIMITS.maxBatchItems + 1) });
  });

  test('kind, key and error lengths follow the configured limits', () => {
    expect(validate({ type: 'chunk', token: TOKEN, seq: 0, kind: 'abcd', data: 1 }, small)).toBeDefined();
    expectBadFrame({ type: 'chunk', token: TOKEN, seq: 0, kind: 'abcde', data: 1 }, small);
    expect(validate({ type: 'append', session: 's', key: 'abcde', kind: 'k', data: 1 }, small)).toBeDefined();
    expectBadFrame({ type: 'append', session: 's', key: 'abcdef', kind: 'k', data: 1 }, small);
    expect(validate({ type: 'finish', token: TOKEN, seq: 0, error: 'abcdef' }, small)).toBeDefined();
    expectBadFrame({ type: 'finish', token: TOKEN, seq: 0, error: 'abcdefg' }, small);
  });

  test('data nested exactly maxDataDepth deep passes, one level more is BAD_FRAME', () => {
    for (const data of ['x', [1], { a: 1 }, [[1]], { a: [1] }, [{}]]) {
      expect(validate({ type: 'chunk', token: TOKEN, seq: 0, data }, small)).toBeDefined();
    }
    for (const data of [[[[]]], { a: { b: { c: 1 } } }, [{ a: [] }]]) {
      expectBadFrame({ type: 'chunk', token: TOKEN, seq: 0, data }, small);
      expectBadFrame({ type: 'chunks', token: TOKEN, seq: 0, items: [{ data }] }, small);
      expectBadFrame({ type: 'append', session: 's', key: 'k', kind: 'k', data }, small);
    }
  });

  test('hostile nesting far past the limit is BAD_FRAME, and the check itself never overflows the stack', () => {
    let data: unknown = 1;
    for (let i = 0; i < 200_000; i++) data = [data];
    expectBadFrame({ type: 'chunk', token: TOKEN, seq: 0, data });
    // Even with the limit lifted, walking it is iterative: accepted, no RangeError.
    expect(validate({ type: 'chunk', token: TOKEN, seq: 0, data }, { ...DEFAULT_LIMITS, maxDataDepth: Number.MAX_SAFE_INTEGER })).toBeDefined();
  });

  test('the default limits are the documented ones', () => {
    expect(DEFAULT_LIMITS).toEqual({ maxFrameBytes: 1024 * 1024, maxBatchItems: 1024, maxKindLength: 64, maxKeyLength: 256, maxErrorLength: 1024, maxDataDepth: 64 });
  });
});

describe('rawRequestId', () => {
  test('echoes a valid id even from a frame that fails validation', () => {
    expect(rawRequestId({ type: 'nope', id: 12 })).toBe(12);
    expect(rawRequestId({ type: 'append', id: 0 })).toBe(0);
  });

  test('is undefined for anything else', () => {
    for (const raw of [null, 'x', [], { id: -1 }, { id: '3' }, { id: 1.5 }, { id: 2 ** 53 }, {}]) expect(rawRequestId(raw)).toBeUndefined();
  });
});

// ------------------------------------------------------------------ tokens

describe('generation tokens', () => {
  const idArb = fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/);
  const tagArb = fc.stringMatching(/^[A-Za-z0-9_-]{16,64}$/);
  const partsArb = fc.record({ epoch: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), session: idArb, generation: idArb, tag: tagArb });

  test('parse(encode(parts)) gives the parts back, and the token fits the 512-char token field', () => {
    fc.assert(
      fc.property(partsArb, (parts) => {
        const token = encodeToken(parts as { epoch: number; session: SessionId; generation: GenerationId; tag: string });
        expect(parseToken(token)).toEqual(parts);
        expect(token.length).toBeLessThanOrEqual(512);
      }),
      { numRuns: 500 },
    );
  });

  test('a token that parses re-encodes to exactly itself (one spelling per token)', () => {
    const near = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.tuple(fc.constantFrom('v1', 'v2', 'V1', ''), fc.string(), idArb, idArb, tagArb).map((f) => f.join('/')),
      fc.tuple(fc.string({ unit: fc.constantFrom('0', '1', '9', ' ', '+', '-', '.', 'e', 'x') }), idArb, idArb, tagArb).map(([e, s, g, t]) => `v1/${e}/${s}/${g}/${t}`),
      fc.tuple(idArb, idArb, fc.string()).map(([s, g, t]) => `v1/1/${s}/${g}/${t}`),
    );
    fc.assert(
      fc.property(near, (token) => {
        const parts = parseToken(token);
        if (parts) expect(encodeToken(parts)).toBe(token);
      }),
      { numRuns: 2000 },
    );
  });

  test.each([
    '',
    'v1',
    'v1/1/s',
    'v1/1/s/g',
    'v1/1/s/g/',
    'v1/1/s/g/short',
    'v1/1/s/g/AAAAAAAAAAAAAAAAAAAAA+',
    `v1/1/s/g/${'A'.repeat(65)}`,
    'v1/1/s/g/AAAAAAAAAAAAAAAAAAAAAA/x',
    'v2/1/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'V1/1/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    '/1/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1//s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/0/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/-1/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/01/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/1.0/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/1e3/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/0x1/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/ 1/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/1 /s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/+1/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/abc/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/Infinity/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/9007199254740992/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/99999999999999999999/s/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/1//g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/1/s//AAAAAAAAAAAAAAAAAAAAAA',
    'v1/1/s b/g/AAAAAAAAAAAAAAAAAAAAAA',
    'v1/1/s/g/AAAAAAAAAAAAAAAAAAAAAA\n',
    `v1/1/${long(129)}/g/AAAAAAAAAAAAAAAAAAAAAA`,
    `v1/1/s/${long(129)}/AAAAAAAAAAAAAAAAAAAAAA`,
  ])('malformed token %j is refused', (token) => {
    expect(parseToken(token)).toBeUndefined();
  });

  test('the largest safe epoch is accepted', () => {
    expect(parseToken(`v1/${Number.MAX_SAFE_INTEGER}/s/g/${'A'.repeat(22)}`)).toEqual({ epoch: Number.MAX_SAFE_INTEGER, session: 's', generation: 'g', tag: 'A'.repeat(22) });
  });
});

// ------------------------------------------------------------------ error registry

describe('error registry', () => {
  const entries = Object.entries(ERROR_REGISTRY) as Array<[ErrorCode, { closeCode: number; retryable: boolean; closes: boolean }]>;

  test('every code has a close code in 4000-4999, a boolean retryable and a boolean closes', () => {
    for (const [, entry] of entries) {
      expect(Number.isInteger(entry.closeCode)).toBe(true);
      expect(entry.closeCode).toBeGreaterThanOrEqual(4000);
      expect(entry.closeCode).toBeLessThanOrEqual(4999);
      expect(typeof entry.retryable).toBe('boolean');
      expect(typeof entry.closes).toBe('boolean');
    }
  });

  test('close codes are unique, and map back to their code', () => {
    const closeCodes = entries.map(([, e]) => e.closeCode);
    expect(new Set(closeCodes).size).toBe(closeCodes.length);
    for (const code of ERROR_CODES) expect(codeOfClose(closeCodeOf(code))).toBe(code);
    for (const foreign of [1000, 1001, 1006, 1011, 3999, 4999, 5000]) expect(codeOfClose(foreign)).toBeUndefined();
  });

  test('codes are SCREAMING_SNAKE_CASE and ERROR_CODES lists exactly the registry', () => {
    expect([...ERROR_CODES].sort()).toEqual(Object.keys(ERROR_REGISTRY).sort());
    for (const code of ERROR_CODES) expect(code).toMatch(/^[A-Z][A-Z_]*[A-Z]$/);
  });

  test('every code DESIGN §5 names exists', () => {
    const design = ['BAD_FRAME', 'UNSUPPORTED_PROTOCOL', 'UNAUTHORIZED', 'FORBIDDEN', 'FRAME_TOO_LARGE', 'FENCED', 'SEQ_GAP', 'GENERATION_ACTIVE', 'GENERATION_CLOSED', 'SESSION_FULL', 'FLOW_CONTROL', 'RATE_LIMITED', 'SLOW_CONSUMER', 'STORE_UNAVAILABLE', 'SHUTTING_DOWN', 'INTERNAL'];
    for (const code of design) expect(isErrorCode(code)).toBe(true);
  });

  test('the retry classes clients rely on', () => {
    for (const code of ['STORE_UNAVAILABLE', 'SHUTTING_DOWN', 'SEQ_GAP', 'SLOW_CONSUMER', 'RATE_LIMITED'] as const) expect(ERROR_REGISTRY[code].retryable).toBe(true);
    for (const code of ['BAD_FRAME', 'UNAUTHORIZED', 'FENCED', 'GENERATION_CLOSED', 'UNSUPPORTED_PROTOCOL'] as const) expect(ERROR_REGISTRY[code].retryable).toBe(false);
    // The handshake failures end the connection; a dropped frame never does.
    for (const code of ['UNSUPPORTED_PROTOCOL', 'UNAUTHORIZED', 'HANDSHAKE_REQUIRED', 'SHUTTING_DOWN'] as const) expect(ERROR_REGISTRY[code].closes).toBe(true);
    for (const code of ['BAD_FRAME', 'FRAME_TOO_LARGE', 'SEQ_GAP', 'FENCED'] as const) expect(ERROR_REGISTRY[code].closes).toBe(false);
  });

  test('SpoolError carries code, retryable from the registry, and details', () => {
    for (const code of ERROR_CODES) {
      const error = new SpoolError(code, 'm', { epoch: 3 });
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe('SpoolError');
      expect(error.code).toBe(code);
      expect(error.retryable).toBe(ERROR_REGISTRY[code].retryable);
      expect(error.details).toEqual({ epoch: 3 });
    }
    expect(new SpoolError('INTERNAL', 'm').details).toEqual({});
  });

  test('isErrorCode accepts registry codes only (not Object.prototype members)', () => {
    for (const code of ERROR_CODES) expect(isErrorCode(code)).toBe(true);
    for (const value of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'bad_frame', '', 4000, null, undefined, {}]) expect(isErrorCode(value)).toBe(false);
  });

  test('ErrorDetails.status spells exactly the end statuses', () => {
    type DetailStatus = NonNullable<ErrorDetails['status']>;
    const fromDetails: DetailStatus[] = ['done', 'error', 'aborted', 'fenced', 'timeout'];
    // Both directions must compile: the two unions are the same.
    const asEnd: EndStatus[] = fromDetails;
    const asDetail: DetailStatus[] = [...END_STATUSES];
    expect([...asEnd].sort()).toEqual([...asDetail].sort());
  });

  test('PROTOCOL.md’s registry table says what errors.ts says, for every code', () => {
    const doc = readFileSync(join(__dirname, 'PROTOCOL.md'), 'utf8');
    const rows = new Map<string, { closeCode: number; retryable: boolean; closes: boolean }>();
    // | `CODE` | 4000 | no | no | when … |
    for (const match of doc.matchAll(/^\| `([A-Z_]+)` \| (\d{4}) \| (yes|no) \| (yes|no) \|/gm)) {
      rows.set(match[1] as string, { closeCode: Number(match[2]), retryable: match[3] === 'yes', closes: match[4] === 'yes' });
    }
    expect([...rows.keys()].sort()).toEqual([...ERROR_CODES].sort());
    for (const [code, entry] of entries) expect(rows.get(code)).toEqual(entry);
  });
});

describe('portableData (exported for the SDK)', () => {
  test('returns portable values and refuses the rest with BAD_FRAME', () => {
    expect(portableData({ a: ['b', 1, null] }, 'data', 64)).toEqual({ a: ['b', 1, null] });
    for (const value of [undefined, new Uint8Array(1), 1n, NaN, 'x\ud800', [[1]]]) {
      let thrown: unknown;
      try {
        portableData(value, 'data', 1);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(SpoolError);
      expect((thrown as SpoolError).code).toBe('BAD_FRAME');
    }
  });
});
