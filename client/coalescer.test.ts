import { Coalescer, DEFAULT_COALESCE_MAX_BYTES, resolveCoalesce } from './coalescer';

const NO_FRAME_CAP = Number.MAX_SAFE_INTEGER;

beforeEach(() => {
  jest.useFakeTimers();
});

afterEach(() => {
  jest.useRealTimers();
});

function coalescer(windowMs = 20, maxBytes = 100): { c: Coalescer; windowEnds: () => number } {
  let ends = 0;
  const c = new Coalescer({ windowMs, maxBytes }, () => {
    ends++;
  });
  return { c, windowEnds: () => ends };
}

describe('coalescer', () => {
  test('writes of one kind and priority within the window merge into one chunk whose text is their concatenation', () => {
    const { c } = coalescer();
    expect(c.begin('Hel', 3, undefined, undefined, NO_FRAME_CAP)).toBe(true);
    expect(c.join('lo ', 3, undefined, undefined, NO_FRAME_CAP)).toBe(true);
    expect(c.join('wörld', 6, undefined, undefined, NO_FRAME_CAP)).toBe(true);
    expect(c.bytes).toBe(12);
    expect(c.take()).toEqual({ text: 'Hello wörld', bytes: 12, kind: undefined, priority: undefined });
    expect(c.isOpen).toBe(false);
    expect(c.take()).toBeUndefined();
  });

  test('a different kind or priority never joins the open merge', () => {
    const { c } = coalescer();
    c.begin('a', 1, 'text', 2, NO_FRAME_CAP);
    expect(c.join('b', 1, 'reasoning', 2, NO_FRAME_CAP)).toBe(false);
    expect(c.join('b', 1, 'text', 1, NO_FRAME_CAP)).toBe(false);
    expect(c.join('b', 1, undefined, 2, NO_FRAME_CAP)).toBe(false);
    expect(c.join('b', 1, 'text', undefined, NO_FRAME_CAP)).toBe(false);
    expect(c.join('b', 1, 'text', 2, NO_FRAME_CAP)).toBe(true);
    expect(c.take()).toEqual({ text: 'ab', bytes: 2, kind: 'text', priority: 2 });
  });

  test('the window ends windowMs after the first write, with one timer however many writes joined', () => {
    const { c, windowEnds } = coalescer(20);
    c.begin('a', 1, undefined, undefined, NO_FRAME_CAP);
    for (let i = 0; i < 50; i++) c.join('b', 1, undefined, undefined, NO_FRAME_CAP);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(19);
    expect(windowEnds()).toBe(0);
    jest.advanceTimersByTime(1);
    expect(windowEnds()).toBe(1);
    expect(jest.getTimerCount()).toBe(0);
    // The owner takes the merge when told; no timer is left behind by take().
    expect(c.take()?.text).toBe(`a${'b'.repeat(50)}`);
    expect(jest.getTimerCount()).toBe(0);
  });

  test('a write made after the window elapsed does not join even when the timer is late (busy event loop)', () => {
    const { c, windowEnds } = coalescer(20);
    c.begin('a', 1, undefined, undefined, NO_FRAME_CAP);
    // The clock moves but the timer cannot run: what a synchronous burst of work does.
    jest.setSystemTime(Date.now() + 25);
    expect(c.join('b', 1, undefined, undefined, NO_FRAME_CAP)).toBe(false);
    expect(windowEnds()).toBe(0);
  });

  test('maxBytes bounds a merge, and a write that cannot take more does not open one', () => {
    const { c } = coalescer(20, 10);
    expect(c.begin('x'.repeat(10), 10, undefined, undefined, NO_FRAME_CAP)).toBe(false);
    expect(c.isOpen).toBe(false);
    expect(jest.getTimerCount()).toBe(0);
    expect(c.begin('x'.repeat(6), 6, undefined, undefined, NO_FRAME_CAP)).toBe(true);
    expect(c.join('y'.repeat(4), 4, undefined, undefined, NO_FRAME_CAP)).toBe(true); // exactly 10: fits
    expect(c.join('z', 1, undefined, undefined, NO_FRAME_CAP)).toBe(false);
    expect(c.take()?.bytes).toBe(10);
  });

  test('the frame bound the caller passes caps a merge below maxBytes', () => {
    const { c } = coalescer(20, 100);
    c.begin('x'.repeat(6), 6, undefined, undefined, 8);
    expect(c.join('y'.repeat(3), 3, undefined, undefined, 8)).toBe(false);
    expect(c.join('y'.repeat(2), 2, undefined, undefined, 8)).toBe(true);
  });

  test('take() and dispose() clear the window timer', () => {
    const { c, windowEnds } = coalescer(20);
    c.begin('a', 1, undefined, undefined, NO_FRAME_CAP);
    c.take();
    expect(jest.getTimerCount()).toBe(0);
    c.begin('b', 1, undefined, undefined, NO_FRAME_CAP);
    c.dispose();
    expect(c.isOpen).toBe(false);
    jest.advanceTimersByTime(100);
    expect(windowEnds()).toBe(0);
  });

  test('begin() while a merge is open is a bug in the caller', () => {
    const { c } = coalescer();
    c.begin('a', 1, undefined, undefined, NO_FRAME_CAP);
    expect(() => c.begin('b', 1, undefined, undefined, NO_FRAME_CAP)).toThrow();
  });

  test('options: windowMs 0 is off, maxBytes defaults to 16 KiB (or the fallback), nonsense is refused', () => {
    expect(resolveCoalesce(undefined)).toEqual({ windowMs: 0, maxBytes: DEFAULT_COALESCE_MAX_BYTES });
    expect(resolveCoalesce({ windowMs: 15 })).toEqual({ windowMs: 15, maxBytes: 16 * 1024 });
    expect(resolveCoalesce({ windowMs: 15 }, { windowMs: 5, maxBytes: 64 })).toEqual({ windowMs: 15, maxBytes: 64 });
    expect(resolveCoalesce(undefined, { windowMs: 5, maxBytes: 64 })).toEqual({ windowMs: 5, maxBytes: 64 });
    expect(() => resolveCoalesce({ windowMs: -1 })).toThrow(TypeError);
    expect(() => resolveCoalesce({ windowMs: Number.NaN })).toThrow(TypeError);
    expect(() => resolveCoalesce({ windowMs: 10, maxBytes: 0 })).toThrow(TypeError);
    expect(() => resolveCoalesce({ windowMs: 10, maxBytes: 1.5 })).toThrow(TypeError);
  });
});
