import fc from 'fast-check';
import { DEFAULT_BACKOFF, Emitter, reasonText, reconnectDelay, utf8Length, utf8LengthOf, wireText } from './util';

describe('reconnect delay', () => {
  const top = (): number => 1 - Number.EPSILON;

  it('draws full jitter under a ceiling that follows the length of the outage: initial at first, half the outage later, never past max', () => {
    expect(reconnectDelay(0, DEFAULT_BACKOFF, top)).toBe(99);
    expect(reconnectDelay(150, DEFAULT_BACKOFF, top)).toBe(99);
    expect(reconnectDelay(1_000, DEFAULT_BACKOFF, top)).toBe(499);
    expect(reconnectDelay(60_000, DEFAULT_BACKOFF, top)).toBe(4_999);
    expect(reconnectDelay(60_000, DEFAULT_BACKOFF, () => 0)).toBe(0);
  });

  it('after a short drop the next attempt comes within the initial delay, however many attempts failed during it', () => {
    // A 200 ms outage against a refused port: attempts fail at once; the delay after it is < 100 ms.
    let t = 0;
    let attempts = 0;
    while (t < 200) {
      t += reconnectDelay(t, DEFAULT_BACKOFF, Math.random) + 1;
      attempts++;
    }
    expect(attempts).toBeGreaterThan(1);
    expect(reconnectDelay(200, DEFAULT_BACKOFF, top)).toBeLessThan(DEFAULT_BACKOFF.initialDelayMs);
  });

  it('stays bounded over a long outage: about 2 + 4 ln(outage / 2 initial) attempts, each wait under max', () => {
    // Mean waits (random 0.5) over a 10 s outage where every attempt fails at once.
    let t = 0;
    let attempts = 0;
    while (t < 10_000) {
      const wait = reconnectDelay(t, DEFAULT_BACKOFF, () => 0.5);
      expect(wait).toBeLessThan(DEFAULT_BACKOFF.maxDelayMs);
      t += wait + 1;
      attempts++;
    }
    expect(attempts).toBeGreaterThanOrEqual(10);
    expect(attempts).toBeLessThanOrEqual(30);
  });
});


describe('wire text of finish errors and abort reasons', () => {
  test('is cut to the limit without splitting a surrogate pair and never holds a lone surrogate', () => {
    expect(wireText('abc', 5)).toBe('abc');
    expect(wireText('abcdef', 4)).toBe('abcd');
    // '😀' is two UTF-16 units; a cut between them would leave a lone high surrogate.
    expect(wireText('abc😀', 4)).toBe('abc');
    expect(wireText('abc😀', 5)).toBe('abc😀');
    expect(wireText('a\ud800b\udc00c', 10)).toBe('a\ufffdb\ufffdc');
  });

  test('an abort reason becomes text: strings as is, errors by message, nothing as empty', () => {
    expect(reasonText('user pressed stop')).toBe('user pressed stop');
    expect(reasonText(new Error('deadline'))).toBe('deadline');
    expect(reasonText(undefined)).toBe('');
    expect(reasonText(42)).toBe('42');
    const controller = new AbortController();
    controller.abort();
    expect(reasonText(controller.signal.reason)).toBe('This operation was aborted');
  });
});

describe('emitter', () => {
  interface Events {
    tick: number;
    tock: string;
  }

  test('delivers to listeners of the event only, until they are removed', () => {
    const emitter = new Emitter<Events>(['tick', 'tock'], 'test', undefined);
    const ticks: number[] = [];
    const off = emitter.on('tick', (n) => ticks.push(n));
    expect(emitter.has('tick')).toBe(true);
    expect(emitter.has('tock')).toBe(false);
    emitter.emit('tick', 1);
    emitter.emit('tock', 'x');
    off();
    emitter.emit('tick', 2);
    expect(ticks).toEqual([1]);
    expect(emitter.has('tick')).toBe(false);
  });

  test('a throwing listener is logged and the others still run', () => {
    const warnings: string[] = [];
    const emitter = new Emitter<Events>(['tick', 'tock'], 'test', { warn: (message) => warnings.push(message) });
    const seen: number[] = [];
    emitter.on('tick', () => {
      throw new Error('boom');
    });
    emitter.on('tick', (n) => seen.push(n));
    expect(() => emitter.emit('tick', 7)).not.toThrow();
    expect(seen).toEqual([7]);
    expect(warnings).toEqual(['test: a tick listener threw']);
  });

  test('an unknown event name is refused', () => {
    const emitter = new Emitter<Events>(['tick', 'tock'], 'test', undefined);
    expect(() => emitter.on('tack' as 'tick', () => undefined)).toThrow(TypeError);
  });
});

describe('utf8Length', () => {
  it('the plain-JS count (browsers) agrees with Node\'s native one and with TextEncoder for well-formed text', () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (text) => {
        const bytes = encoder.encode(text).byteLength;
        expect(utf8LengthOf(text)).toBe(bytes);
        expect(utf8Length(text)).toBe(bytes);
      }),
      { numRuns: 2000 },
    );
    expect(utf8LengthOf('a\u00e9\u20ac\u{1F600}')).toBe(1 + 2 + 3 + 4);
  });
});
