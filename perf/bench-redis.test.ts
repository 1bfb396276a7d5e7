/**
 * Smoke test of `npm run bench:redis` at tiny sizes: a private redis-server, two gateway
 * processes, every part of the run. Asserts correctness and that every figure is a finite
 * number, never a speed.
 */
import { formatRedisBenchReport, runRedisBench } from './bench-redis';

jest.setTimeout(180_000);

test('bench:redis runs every part on a private redis-server: every chunk exactly once, finite figures', async () => {
  const report = await runRedisBench({ sessions: 5, perSession: 50, latencySessions: 2, rate: 100, latencySeconds: 0.5, warmup: 50 });
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);

  const { gateway, raw, latency } = report;
  expect(gateway.chunks).toBe(250);
  expect(raw.entries).toBe(250);
  expect(latency.chunks).toBe(100);
  expect(gateway.ack.count).toBe(250);
  expect(latency.local.count).toBe(100);
  expect(latency.remote.count).toBe(100);
  expect(latency.ack.count).toBe(100);

  const figures = [
    gateway.seconds,
    gateway.chunksPerSec,
    gateway.ack.p50,
    gateway.ack.p99,
    gateway.storeBatch,
    raw.batch,
    raw.seconds,
    raw.perSec,
    report.ratio,
    latency.local.p50,
    latency.local.p99,
    latency.remote.p50,
    latency.remote.p99,
    latency.added.p50,
    latency.added.p99,
  ];
  for (const figure of figures) expect(Number.isFinite(figure)).toBe(true);
  expect(gateway.storeBatch).toBeGreaterThan(0);
  expect(raw.batch).toBeGreaterThanOrEqual(1);

  const text = formatRedisBenchReport(report);
  expect(text).toContain('ratio gateway / raw');
  expect(text).toContain('reader on B (other process)');
  expect(text).toContain('correctness: every reader got every chunk exactly once');
});
