/**
 * A producer writing as fast as it can against a store slowed by a fault: the gateway's queue
 * stays bounded, the producer is slowed by credit, debug chunks are degraded and counted, and
 * nothing of priority >= 1 is lost. Then Redis trouble: readiness follows the store, and the SDK
 * rides out an outage longer than the retry budget with nothing but a delay.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SpoolClient } from '../client';
import { startGateway, type Gateway } from '../gateway';
import type { SessionEvent } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import { startRedis } from '../store/test-helpers/redis-server';
import type { SessionStore } from '../store/types';
import { checkSessionHistory } from './history';
import { readUntilEnded } from './reader';

jest.setTimeout(120_000);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** Every append waits `delayMs` first: a slow disk, a slow network to the store. */
function slowed(store: SessionStore, delayMs: number): SessionStore {
  return Object.assign(Object.create(store) as SessionStore, {
    append: async (session: string, items: Parameters<SessionStore['append']>[1]) => {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return store.append(session, items);
    },
  });
}


async function get(gw: Gateway, route: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${gw.port}${route}`);
  return response.status;
}

describe('a slow store', () => {
  it('bounds the queue, slows the producer by credit, degrades only debug chunks, and loses nothing else', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-slow-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const lmdb = openLmdbStore({ path: dir });
    cleanups.push(() => lmdb.close());
    const credit = { frames: 256, bytes: 1 << 20 };
    const gw = await startGateway({
      port: 0,
      store: slowed(lmdb, 15),
      logger: pino({ level: 'silent' }),
      credit,
      degradeWatermark: 64,
      maxBatchEvents: 32,
    });
    cleanups.push(() => gw.close());

    let maxQueue = 0;
    const sampler = setInterval(() => {
      void gw.metrics.render().then((text) => {
        const depth = Number(/^spool_persistence_queue_depth (\d+)/m.exec(text)?.[1] ?? 0);
        maxQueue = Math.max(maxQueue, depth);
      });
    }, 5);
    cleanups.push(() => clearInterval(sampler));

    const producer = new SpoolClient({ url: gw.url });
    cleanups.push(() => producer.close());
    const gen = producer.generation('slow', { id: 'g' });
    let dropped = 0;
    gen.on('ack', (ack) => (dropped += ack.dropped ?? 0));
    const total = 4000;
    let refusals = 0;
    for (let seq = 0; seq < total; seq++) {
      // Every other chunk is debug output; the rest is text the reader must get.
      const debug = seq % 2 === 1;
      const more = gen.write(debug ? `debug ${seq}` : `text ${seq}`, { kind: debug ? 'debug' : 'text', priority: debug ? 0 : 2 });
      if (!more) {
        refusals += 1;
        await gen.drained();
      }
    }
    await gen.finish({ timeoutMs: 60_000 });
    clearInterval(sampler);

    expect(refusals).toBeGreaterThan(0); // the producer was slowed by credit
    expect(maxQueue).toBeLessThanOrEqual(credit.frames); // the gateway never queued past the credit
    expect(gw.metrics.degradedDropped.get()).toBeGreaterThan(0);
    expect(dropped).toBe(gw.metrics.degradedDropped.get()); // reported to the producer, all of them

    const read = await readUntilEnded(gw.url, 'slow', 1);
    expect(read.filter((i) => i.type === 'gap')).toEqual([]);
    const events = read as SessionEvent[];
    const report = checkSessionHistory(events, { generations: 1 });
    // Seqs of dropped debug chunks are skipped; offsets stay contiguous with no gap.
    expect(report.violations.filter((v) => !/was due/.test(v))).toEqual([]);
    const chunks = events.filter((e) => e.type === 'chunk');
    const text = chunks.filter((e) => e.priority === 2).map((e) => e.seq);
    expect(text).toEqual(Array.from({ length: total / 2 }, (_, i) => i * 2));
    const debugKept = chunks.filter((e) => e.priority === 0).length;
    expect(debugKept + gw.metrics.degradedDropped.get()).toBe(total / 2);
  });
});

describe('Redis trouble', () => {
  it('readiness follows Redis, and a producer rides out an outage longer than the retry budget with only a delay', async () => {
    const redis = await startRedis({ appendonly: true });
    cleanups.push(() => redis.stop());
    const gw = await startGateway({
      port: 0,
      redis: redis.url,
      logger: pino({ level: 'silent' }),
      readinessIntervalMs: 50,
      storeRetryBudgetMs: 300,
      storeProbeIntervalMs: 100,
    });
    cleanups.push(() => gw.close());
    const producer = new SpoolClient({ url: gw.url, reconnect: { initialDelayMs: 10, maxDelayMs: 200 } });
    cleanups.push(() => producer.close());
    const reading = readUntilEnded(gw.url, 'trouble', 1);
    const gen = producer.generation('trouble', { id: 'g' });
    for (let i = 0; i < 200; i++) gen.write(`before ${i}`);
    await gen.flush();
    expect(await get(gw, '/readyz')).toBe(200);

    redis.pause();
    for (let i = 200; i < 400; i++) gen.write(`during ${i}`);
    // Not ready while Redis does not answer (polled, bounded).
    const deadline = Date.now() + 30_000;
    while ((await get(gw, '/readyz')) !== 503) if (Date.now() > deadline) throw new Error('/readyz never said 503');
    // Writes past the retry budget were answered STORE_UNAVAILABLE; the SDK keeps retrying.
    while (gw.metrics.errorsSent.get({ code: 'STORE_UNAVAILABLE' }) === 0) {
      if (Date.now() > deadline) throw new Error('no STORE_UNAVAILABLE within 30 s');
      await new Promise((resolve) => setImmediate(resolve));
    }
    redis.resume();
    while ((await get(gw, '/readyz')) !== 200) if (Date.now() > deadline + 30_000) throw new Error('/readyz never recovered');
    for (let i = 400; i < 600; i++) gen.write(`after ${i}`);
    await gen.finish({ timeoutMs: 30_000 });
    expect(gen.state).toBe('finished');

    const report = checkSessionHistory(await reading, { generations: 1, chunksPerGeneration: 600 });
    expect(report.violations).toEqual([]);
  });
});
