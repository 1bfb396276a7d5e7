/**
 * The perf gate at toy size (a 4 s budget in 2 s windows), asserting correctness only: the run
 * passes, every window is recorded, every chunk planned is acked, the retention session trimmed
 * and the others did not, the report lands where it should, and every figure is a finite number
 * >= 0. Never a speed, not even that a figure is positive: a toy window's latency or CPU may read
 * 0 at the timer's or the clock tick's grain.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GATE, judgeWindow } from './gate-windows';
import { planGate } from './gate-workload';
import { formatPerfGateReport, runPerfGate } from './perf-gate';

/** A measured figure: a number, whatever the machine's speed. */
function finite(value: number): void {
  expect(Number.isFinite(value)).toBe(true);
  expect(value).toBeGreaterThanOrEqual(0);
}

describe('perf gate', () => {
  it('a toy run passes, records every window with finite figures, and writes its report', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-perf-gate-test-'));
    try {
      const report = await runPerfGate({ seconds: 4, windowMs: 2000, outDir: out });
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.verdict).toMatch(/^spool perf gate: PASS/);

      const plan = planGate(4);
      const f = report.figures;
      // Counts fixed by the plan, whatever the machine's speed.
      expect(f.chunks).toBe(plan.sessions * plan.chunksPerSession + plan.retentionChunks);
      expect(f.drops.cuts + f.drops.restarts + f.drops.skipped).toBe(plan.drops);
      expect(f.resumes.total).toBeGreaterThanOrEqual(f.drops.cuts + f.drops.restarts);
      expect(f.trim.trimmed).toBe(0);
      expect(f.retentionSession.trimmed).toBeGreaterThan(0);
      expect(f.retentionSession.gapsReadBack).toBeGreaterThan(0);
      expect(f.gateway.trimmedMetric).toBe(f.trim.trimmed + f.retentionSession.trimmed);

      expect(report.windows.length).toBeGreaterThanOrEqual(2);
      report.windows.forEach((w, i) => {
        expect(w.index).toBe(i);
        expect(w.ok).toBe(true);
        expect(w.toMs).toBeGreaterThanOrEqual(w.fromMs);
        for (const value of [w.chunks.acked, w.chunks.perSec, w.ack.p50, w.ack.p99, w.delivery.p50, w.delivery.p99, w.resumes.p50, w.resumes.p99]) finite(value);
        for (const value of [w.trim.stored, w.trim.trimmed, w.retentionSession.stored, w.retentionSession.trimmed, w.gateway.cpuPercent, w.gateway.rss]) finite(value);
      });
      for (const value of [f.chunksPerSec, f.ack.p50, f.ack.p99, f.delivery.p50, f.delivery.p99, f.resumes.latency.p50, f.resumes.latency.p99, f.gateway.cpuPercent, f.gateway.rssMax]) finite(value);

      const dir = report.artifacts?.dir as string;
      const summary = fs.readFileSync(path.join(dir, 'summary.txt'), 'utf8');
      expect(summary.split('\n')[0]).toBe(report.verdict);
      expect(summary).toBe(`${formatPerfGateReport(report)}\n`);
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'series.json'), 'utf8')).windows).toHaveLength(report.windows.length);
      expect(JSON.parse(fs.readFileSync(path.join(out, 'latest', 'summary.json'), 'utf8')).ok).toBe(true);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('a window fails on resume success under 95 %, a resume over 15 s, or a trim rate over 1 %', () => {
    const resumes = { completed: 19, failed: 1, successRate: 0.95, slowestMs: 15_000, p50: 0, p99: 0 };
    const trim = { stored: 1000, trimmed: 10, rate: 0.01 };
    expect(judgeWindow({ resumes, trim })).toEqual([]);
    expect(judgeWindow({ resumes: { ...resumes, completed: 18, failed: 2, successRate: 0.9 }, trim })).toEqual([expect.stringContaining('resume success 90.0 % < 95 %')]);
    expect(judgeWindow({ resumes: { ...resumes, slowestMs: 15_001 }, trim })).toEqual([`a resume took 15001 ms > ${GATE.resumeLimitMs} ms`]);
    expect(judgeWindow({ resumes, trim: { stored: 1000, trimmed: 11, rate: 0.011 } })).toEqual([expect.stringContaining('trim rate 1.10 % > 1 %')]);
    // A window with nothing to judge passes.
    expect(judgeWindow({ resumes: { ...resumes, completed: 0, failed: 0, successRate: null, slowestMs: null }, trim: { stored: 0, trimmed: 0, rate: null } })).toEqual([]);
  });
});
