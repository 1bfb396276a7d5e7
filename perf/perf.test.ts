/**
 * The benchmark and the demo at toy sizes, asserting correctness only: every chunk reaches its
 * reader exactly once and every figure is a finite number. Speed is never asserted here, not
 * even that a figure is positive: a latency of a toy run may read 0 at the timer's grain.
 */
import { runConcurrentSessions, runLoneWrites, runRawBaseline, runSingleSession, type ScenarioResult } from './bench-quick';
import { runDemo } from './demo';
import { MemoryStore } from '../store/memory';
import { benchEngineStore } from './bench-engine';
import { topSelfTime } from './profile-top';

function expectSane(result: ScenarioResult, chunks: number): void {
  expect(result.problems).toEqual([]);
  expect(result.chunks).toBe(chunks);
  expect(result.ack.count).toBe(chunks);
  expect(result.delivery.count).toBe(chunks);
  for (const value of [result.seconds, result.chunksPerSec, result.ack.p50, result.ack.p99, result.ack.max, result.delivery.p50, result.delivery.p99, result.delivery.max]) finite(value);
  // Every chunk went through a store append: a mean of at least one event per append.
  expect(result.storeBatch).toBeGreaterThanOrEqual(1);
}

/** A measured figure (time, rate, latency): a number, whatever the machine's speed. */
function finite(value: number): void {
  expect(Number.isFinite(value)).toBe(true);
  expect(value).toBeGreaterThanOrEqual(0);
}

describe('profile-top', () => {
  it('sums self time per function across nodes and lists the largest first', () => {
    const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)') },
        { id: 2, callFrame: frame('push', 'file:///x/gateway/hot-buffer.ts', 48) },
        { id: 3, callFrame: frame('push', 'file:///x/gateway/hot-buffer.ts', 48) },
        { id: 4, callFrame: frame('(idle)') },
      ],
      samples: [2, 3, 3, 4, 1],
    };
    expect(topSelfTime(profile, 2)).toEqual([
      { fn: 'push gateway/hot-buffer.ts:49', share: 0.6 },
      { fn: '(root)', share: 0.2 },
    ]);
  });
});

describe('bench:engine at toy size', () => {
  it('writes every chunk through the engine and reports finite figures', async () => {
    const store = new MemoryStore();
    const figures = await benchEngineStore('memory', store, 500, 64);
    for (const value of [figures.nsPerChunk, figures.cpuNsPerChunk, figures.chunksPerSecond]) finite(value);
    // Warm-up (500) + measured (500) chunks, each stored once after the gen.start.
    expect((await store.meta('s')).head).toBe(1001);
  });
});

describe('bench:quick at toy sizes', () => {
  it('one session: the reader gets all 200 chunks exactly once and every figure is finite', async () => {
    expectSane(await runSingleSession(200), 200);
  });

  it('five concurrent sessions of 50 chunks: every reader gets its chunks exactly once', async () => {
    expectSane(await runConcurrentSessions(5, 50), 250);
  });

  it('lone writes: each write is acked and delivered', async () => {
    expectSane(await runLoneWrites(20), 20);
  });

  it('the raw LMDB baseline stores every chunk', async () => {
    const raw = await runRawBaseline({ sessions: 3, perSession: 100, batch: 64 });
    expect(raw.problems).toEqual([]);
    expect(raw.chunks).toBe(300);
    finite(raw.chunksPerSec);
  });
});

describe('demo', () => {
  it('a reader cut halfway resumes by itself with nothing lost and nothing duplicated', async () => {
    const report = await runDemo({ tokenDelayMs: 1, outageMs: 100 });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.duplicates).toBe(0);
    expect(report.gaps).toBe(0);
    expect(report.contiguous).toBe(true);
    expect(report.eventsReceived).toBe(report.expectedEvents);
    expect(report.reconnects).toBeGreaterThanOrEqual(1);
    expect(report.cutAtOffset).toBeDefined();
    expect(report.assistantText.length).toBeGreaterThan(0);
  });
});
