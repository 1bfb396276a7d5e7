/**
 * bench:pressure at toy sizes, asserting correctness and sanity only: every chunk reaches its
 * reader exactly once through a gateway child on each transport, the memory probes see the
 * population they added, every evicting append evicts what it must. Speed and memory figures
 * are never asserted here: a timing or CPU figure of a toy run may read 0 (a clock tick or a
 * timer step is coarser than the work), so it only has to be a finite number, >= 0.
 */
import { runEviction } from './eviction';
import { measureConnections, measureIdleSessions } from './memory';
import { runThroughput } from './throughput';

/** A measured figure (time, rate, CPU): a number, whatever the machine's speed. */
const finite = (value: number): void => {
  expect(Number.isFinite(value)).toBe(true);
  expect(value).toBeGreaterThanOrEqual(0);
};

/** A memory sample of a live process: never 0 when the probe read it. */
const finitePositive = (value: number): void => {
  expect(Number.isFinite(value)).toBe(true);
  expect(value).toBeGreaterThan(0);
};

describe('bench:pressure at toy sizes', () => {
  it.each(['ws', 'uws'] as const)('through a gateway child on %s, every chunk reaches its reader exactly once', async (transport) => {
    const result = await runThroughput({ name: 'toy', transport, sessions: 2, perSession: 100 });
    expect(result.problems).toEqual([]);
    expect(result.served).toBe(transport);
    expect(result.ack.count).toBe(200);
    expect(result.delivery.count).toBe(200);
    for (const value of [result.chunksPerSec, result.ack.p50, result.delivery.p99, result.gatewayCpuUsPerChunk, result.loadCpuUsPerChunk]) finite(value);
    // Every chunk went through a store append: a mean of at least one event per append.
    expect(result.storeBatch).toBeGreaterThanOrEqual(1);
  });

  it('the idle-session probe sees every touched session loaded in the child', async () => {
    const result = await measureIdleSessions({ sessions: 200, warmup: 10 });
    expect(result.problems).toEqual([]);
    expect(result.after.sessionsActive).toBe(210);
    expect(result.afterSecond.sessionsActive).toBe(410);
    expect(result.before.sessionsActive).toBe(10);
    for (const value of [result.before.rss, result.after.rss, result.after.heapUsed, result.afterSecond.rss]) finitePositive(value);
    for (const value of [result.perSessionMarginal.rss, result.perSessionMarginal.heap]) expect(Number.isFinite(value)).toBe(true);
  });

  it('the connection probe holds every connection open and welcomed', async () => {
    const result = await measureConnections({ transport: 'ws', connections: 100, warmup: 10 });
    expect(result.problems).toEqual([]);
    expect(result.after.connectionsActive).toBe(110);
    expect(result.before.connectionsActive).toBe(10);
  });

  it('every timed append at the retention limit evicts exactly one batch, in the memory and LMDB stores', async () => {
    const report = await runEviction({ sizes: [64, 256], batches: 4, hotPushed: 4096, hotRemoved: 512, redis: false });
    expect(report.stores.map((r) => [r.store, r.retained])).toEqual([
      ['memory', 64],
      ['memory', 256],
      ['LMDB', 64],
      ['LMDB', 256],
    ]);
    for (const row of report.stores) {
      expect(row.problems).toEqual([]);
      finite(row.evictingUs);
      finite(row.controlUs);
    }
    for (const row of report.hotBuffer) {
      expect(row.problems).toEqual([]);
      finite(row.pushEvictingUs);
      finite(row.removeUs);
    }
  });
});
