import { Emitter, reasonText, wireText } from './util';

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
