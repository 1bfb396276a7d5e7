import type { ReadItem } from '../protocol/types';
import { checkSessionHistory } from './history';

const start = (offset: number, g = 'g'): ReadItem => ({ offset, type: 'gen.start', generationId: g, priority: 3, ts: 0 });
const chunk = (offset: number, seq: number, g = 'g'): ReadItem => ({ offset, type: 'chunk', generationId: g, seq, priority: 2, ts: 0, data: seq });
const end = (offset: number, seq: number, g = 'g'): ReadItem => ({ offset, type: 'gen.end', generationId: g, seq, status: 'done', priority: 3, ts: 0 });

describe('history checker', () => {
  it('accepts a complete, ordered history', () => {
    expect(checkSessionHistory([start(1), chunk(2, 0), chunk(3, 1), end(4, 2)], { generations: 1, chunksPerGeneration: 2 }).violations).toEqual([]);
  });

  it('reports a repeated offset, a silent hole, a second gen.end and a missing chunk', () => {
    const report = checkSessionHistory([start(1), chunk(2, 0), chunk(2, 0), chunk(4, 2), end(5, 3), end(6, 3)], { chunksPerGeneration: 3 });
    expect(report.duplicates).toBe(1);
    expect(report.violations.join('\n')).toMatch(/delivered again/);
    expect(report.violations.join('\n')).toMatch(/silent hole: offsets 3-3/);
    expect(report.violations.join('\n')).toMatch(/ended twice/);
    expect(report.violations.join('\n')).toMatch(/seq 2 where 1 was due/);
  });

  it('accepts a hole covered by a gap and reports a generation that never ended', () => {
    const report = checkSessionHistory([start(1), { type: 'gap', from: 2, to: 3, reason: 'trimmed' }, chunk(4, 2)]);
    expect(report.gaps).toBe(1);
    expect(report.violations).toEqual(['generation g has 0 gen.end']);
  });
});
