/**
 * `npm run bench` at toy size (2 sessions × 200 chunks): the raw baseline, the default
 * configuration and the paced run, with --profile and --record into temp places; and the
 * Durable Streams door's row (lmdb-http). Asserts the
 * report's shape and correctness only: every reader got every chunk, every figure is a finite
 * number >= 0, the JSON parses, the history line is written. Never a speed, not even that a
 * figure is positive: a toy run's latency or CPU may read 0 at the timer's or the tick's grain.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBench } from './bench';
import { checkTargets, formatBenchReport, type BenchRow } from './bench-report';

jest.setTimeout(120_000);

/** A measured figure: a number, whatever the machine's speed. */
function finite(value: number | null): void {
  expect(value).not.toBeNull();
  expect(Number.isFinite(value)).toBe(true);
  expect(value as number).toBeGreaterThanOrEqual(0);
}

function expectRow(row: BenchRow, chunks: number): void {
  expect(row.chunks).toBe(chunks);
  for (const value of [row.chunksPerSec, row.ackedPerSec, row.deliveryP50, row.deliveryP99, row.ackP50, row.ackP99, row.gatewayCpuUsPerChunk, row.gatewayRssMaxBytes, row.ratioToRaw]) finite(value);
  expect(row.deliveryP99).toBeGreaterThanOrEqual(row.deliveryP50);
}

describe('npm run bench at toy size', () => {
  it('raw baseline, lmdb-ws and the paced run: every chunk exactly once, finite figures, JSON, a history line, a profile', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-bench-test-'));
    const historyFile = path.join(tmp, 'history', 'bench.jsonl');
    const profileDir = path.join(tmp, 'profiles');
    try {
      const report = await runBench({ sessions: 2, perSession: 200, rate: 2000, runs: ['raw-redis', 'lmdb-ws', 'paced', 'paced-linger'], historyFile, profileDir, profileTop: 5 });
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.workload).toEqual({ sessions: 2, perSession: 200, bytes: 64, window: 64 });

      const raw = report.raw as BenchRow;
      expect(raw.name).toBe('raw-redis');
      expectRow(raw, 400);
      expect(raw.ratioToRaw).toBe(1);
      expect(report.configs.map((c) => c.name)).toEqual(['lmdb-ws']);
      const lmdb = report.configs[0] as BenchRow;
      expectRow(lmdb, 400);
      expect(lmdb).toMatchObject({ store: 'lmdb', transport: 'ws', durability: 'commit', served: 'ws', redisCpuUsPerChunk: null });
      expect(lmdb.ratioToRaw).toBeCloseTo(lmdb.chunksPerSec / raw.chunksPerSec, 6);

      const paced = report.paced;
      expect(paced).not.toBeNull();
      expect(paced?.rate).toBe(2000);
      for (const value of [paced?.chunksPerSec ?? null, paced?.deliveryP50 ?? null, paced?.deliveryP99 ?? null, paced?.ackP99 ?? null]) finite(value);
      expect(paced?.lingerMs).toBe(0);
      const lingering = report.pacedLinger;
      expect(lingering).toMatchObject({ rate: 2000, lingerMs: 2 });
      for (const value of [lingering?.chunksPerSec ?? null, lingering?.deliveryP99 ?? null]) finite(value);

      // Targets are reported for what ran, never asserted; the unmeasured ones say so.
      const byWhat = new Map(report.targets.map((t) => [t.what, t]));
      expect(byWhat.get('lmdb-ws delivered chunks/s')?.met).not.toBeNull();
      expect(byWhat.get('redis-ws delivered chunks/s')?.met).toBeNull();
      expect(byWhat.get('idle session RSS')?.figure).toBe('-');

      // One profile per gateway child that was profiled (lmdb-ws, paced), each with its top functions.
      expect(report.profiles.map((p) => p.config).sort()).toEqual(['lmdb-ws', 'paced', 'paced-linger']);
      for (const profile of report.profiles) {
        expect(fs.existsSync(profile.file)).toBe(true);
        expect(profile.top.length).toBeGreaterThan(0);
        expect(profile.top.length).toBeLessThanOrEqual(5);
      }

      const parsed = JSON.parse(JSON.stringify(report)) as typeof report;
      expect(parsed.configs[0]?.chunksPerSec).toBe(lmdb.chunksPerSec);

      const text = formatBenchReport(report);
      expect(text).toContain('raw-redis (ioredis) *');
      expect(text).toContain('lmdb-ws (commit)');
      expect(text).toContain('paced (lmdb-ws, 2,000 chunks/s');
      expect(text).toContain('paced, SDK lingerMs 2 (lmdb-ws, 2,000 chunks/s');
      expect(text).toContain('correctness: in all 4 runs every reader got every chunk exactly once');

      expect(report.recorded).toEqual({ file: historyFile });
      const lines = fs.readFileSync(historyFile, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(1);
      const line = JSON.parse(lines[0] as string);
      expect(line.date).toBe(report.startedAt);
      expect(typeof line.dirty === 'boolean' || line.dirty === null).toBe(true);
      expect(line.machine).toEqual(expect.objectContaining({ cpus: expect.any(Number), model: expect.any(String), totalMem: expect.any(Number), node: process.version }));
      expect(line.workload).toEqual({ sessions: 2, perSession: 200, bytes: 64, window: 64 });
      expect(line.configs.map((c: { name: string }) => c.name)).toEqual(['raw-redis', 'lmdb-ws']);
      expect(Object.keys(line.configs[1]).sort()).toEqual(
        ['ackP99', 'chunksPerSec', 'deliveryP50', 'deliveryP99', 'durability', 'gatewayCpuUsPerChunk', 'gatewayRssMaxBytes', 'name', 'ratioToRaw', 'store', 'transport'].sort(),
      );
      expect(line.paced).toEqual({ rate: 2000, deliveryP50: paced?.deliveryP50, deliveryP99: paced?.deliveryP99 });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('lmdb-http, the Durable Streams door: every chunk exactly once through POST batches and SSE readers, the same finite figures', async () => {
    const report = await runBench({ sessions: 2, perSession: 200, runs: ['lmdb-http'] });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.configs.map((c) => c.name)).toEqual(['lmdb-http']);
    const http = report.configs[0] as BenchRow;
    expect(http).toMatchObject({ store: 'lmdb', transport: 'http', durability: 'commit', served: 'http', redisCpuUsPerChunk: null, ratioToRaw: null });
    expect(http.chunks).toBe(400);
    for (const value of [http.chunksPerSec, http.ackedPerSec, http.deliveryP50, http.deliveryP99, http.ackP50, http.ackP99, http.gatewayCpuUsPerChunk, http.gatewayRssMaxBytes]) finite(value);
    expect(formatBenchReport(report)).toContain('lmdb-http (commit)');
  });

  it('targets are judged from the figures alone: met, missed, or not measured', () => {
    const row = (name: BenchRow['name'], chunksPerSec: number, deliveryP99: number, rss: number, ratioToRaw: number): BenchRow => ({
      name,
      store: 'lmdb',
      transport: 'ws',
      durability: 'commit',
      served: 'ws',
      chunks: 1,
      chunksPerSec,
      ackedPerSec: chunksPerSec,
      deliveryP50: 1,
      deliveryP99,
      ackP50: 1,
      ackP99: 1,
      gatewayCpuUsPerChunk: 1,
      gatewayRssMaxBytes: rss,
      redisCpuUsPerChunk: null,
      loadCpuUsPerChunk: 1,
      ratioToRaw,
    });
    const checks = checkTargets([row('lmdb-ws', 150_000, 50, 150e6, 1.2), row('redis-ws', 119_999, 10, 1, 1)], { config: 'lmdb-ws', rate: 50_000, lingerMs: 0, chunksPerSec: 50_000, deliveryP50: 1, deliveryP99: 15.5, ackP99: 1, gatewayCpuUsPerChunk: 1, gatewayRssMaxBytes: 1 }, null, { config: 'lmdb-ws', rate: 50_000, lingerMs: 2, chunksPerSec: 50_000, deliveryP50: 1, deliveryP99: 15, ackP99: 1, gatewayCpuUsPerChunk: 1, gatewayRssMaxBytes: 1 });
    expect(checks.map((c) => [c.what, c.met])).toEqual([
      ['lmdb-ws delivered chunks/s', true],
      ['lmdb-ws ÷ raw baseline', true],
      ['redis-ws delivered chunks/s', false],
      ['lmdb-ws delivery p99, saturated', true],
      ['delivery p99 paced at 50,000/s', false],
      ['the same, SDK lingerMs 2', true],
      ['lmdb-ws gateway peak RSS', true],
      ['idle session RSS', null],
      ['connection RSS', null],
    ]);
  });
});
