import type { SessionEvent } from '../protocol/types';
import { HotBuffer } from './hot-buffer';

const ev = (offset: number, data = 'x'): SessionEvent => ({ offset, type: 'chunk', generationId: 'g', seq: offset, priority: 2, ts: 0, data });
const size = (e: SessionEvent) => String(e.data ?? '').length;
const shape = (items: ReturnType<HotBuffer['readAfter']>) => items.map((i) => (i.type === 'gap' ? `gap ${i.from}-${i.to}` : `${i.offset}`));

describe('HotBuffer', () => {
  it('serves everything after an offset, with trimmed holes and a trimmed tail as gaps', () => {
    const hot = new HotBuffer(100, 1 << 20, 0);
    hot.push([ev(1), ev(2), ev(4)], 5, size);
    expect(shape(hot.readAfter(0))).toEqual(['1', '2', 'gap 3-3', '4', 'gap 5-5']);
    expect(shape(hot.readAfter(3))).toEqual(['4', 'gap 5-5']);
    expect(hot.readAfter(5)).toEqual([]);
  });

  it('drops the oldest events past its count bound and raises the floor to the last dropped offset', () => {
    const hot = new HotBuffer(3, 1 << 20, 10);
    hot.push([11, 12, 13, 14, 15].map((o) => ev(o)), 15, size);
    expect(hot.size).toBe(3);
    expect(hot.floor).toBe(12);
    expect(shape(hot.readAfter(12))).toEqual(['13', '14', '15']);
  });

  it('drops by bytes too, but always keeps the newest event', () => {
    const hot = new HotBuffer(100, 200, 0);
    hot.push([ev(1, 'a'.repeat(100)), ev(2, 'b'.repeat(100)), ev(3, 'c'.repeat(500))], 3, size);
    expect(hot.size).toBe(1);
    expect(shape(hot.readAfter(hot.floor))).toEqual(['3']);
  });

  it('removes trimmed events without serving them again, and lets them fall off the front', () => {
    const hot = new HotBuffer(3, 1 << 20, 0);
    hot.push([ev(1), ev(2), ev(3)], 3, size);
    hot.remove([2]);
    expect(hot.size).toBe(2);
    expect(shape(hot.readAfter(0))).toEqual(['1', 'gap 2-2', '3']);
    hot.push([ev(4), ev(5)], 5, size);
    expect(hot.size).toBe(3);
    expect(hot.floor).toBe(1);
    expect(shape(hot.readAfter(hot.floor))).toEqual(['gap 2-2', '3', '4', '5']);
    hot.push([ev(6)], 6, size);
    // 3 falls off, and the trimmed 2 in front of it with it.
    expect(hot.floor).toBe(3);
    expect(shape(hot.readAfter(hot.floor))).toEqual(['4', '5', '6']);
  });

  it('forgets everything when the head moves past writes it never saw', () => {
    const hot = new HotBuffer(10, 1 << 20, 0);
    hot.push([ev(1)], 1, size);
    hot.advanceHead(9);
    expect(hot.floor).toBe(9);
    expect(hot.readAfter(9)).toEqual([]);
  });
});
