/**
 * Many gateway processes on one Redis: a producer on A, readers hopping between B and C, a
 * takeover through C, a SIGSTOPped writer, and a Redis restart mid-stream.
 */
import pino from 'pino';
import { SpoolClient } from '../client';
import { startGateway } from '../gateway';
import type { ReadItem } from '../protocol/types';
import { startRedis, type RedisServer } from '../store/test-helpers/redis-server';
import { freePort } from './fault-proxy';
import { GatewayProcess } from './gateway-process';
import { checkSessionHistory, mulberry32 } from './history';
import { readUntilEnded } from './reader';

jest.setTimeout(120_000);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function redis(appendonly = false): Promise<RedisServer> {
  const server = await startRedis({ appendonly });
  cleanups.push(() => server.stop());
  return server;
}

async function gatewayOn(server: RedisServer): Promise<GatewayProcess> {
  const gw = new GatewayProcess({ port: await freePort(), data: '/nonexistent-unused', env: { SPOOL_REDIS_URL: server.url } });
  cleanups.push(() => gw.kill9());
  await gw.start();
  return gw;
}

function client(url: string): SpoolClient {
  const c = new SpoolClient({ url, reconnect: { initialDelayMs: 10, maxDelayMs: 200 } });
  cleanups.push(() => c.close());
  return c;
}

/** Reads a session in stints, each on a randomly chosen gateway, resuming from sub.offset. */
async function hopAndRead(urls: readonly string[], session: string, rand: () => number): Promise<{ items: ReadItem[]; hops: number }> {
  const items: ReadItem[] = [];
  let offset = 0;
  let hops = 0;
  for (;;) {
    const url = urls[Math.floor(rand() * urls.length)] as string;
    const reader = new SpoolClient({ url, reconnect: { initialDelayMs: 10, maxDelayMs: 200 } });
    const sub = reader.subscribe(session, { from: offset });
    const budget = 1 + Math.floor(rand() * 120);
    let taken = 0;
    let done = false;
    for await (const item of sub) {
      items.push(item);
      if (item.type === 'gen.end') done = true;
      if (done || ++taken >= budget) break;
    }
    offset = sub.offset;
    sub.close();
    await reader.close();
    hops += 1;
    if (done) return { items, hops };
  }
}

describe('many gateway processes on one Redis', () => {
  it('20 sessions streamed through A and read through B and C with random hops: every chunk exactly once, in order', async () => {
    const server = await redis();
    const [a, b, c] = await Promise.all([gatewayOn(server), gatewayOn(server), gatewayOn(server)]);
    const rand = mulberry32(7);
    const sessions = Array.from({ length: 20 }, (_, i) => `mp-${i}`);
    const chunks = 300;
    const readers = sessions.flatMap((s) => [hopAndRead([b!.url, c!.url], s, rand), hopAndRead([b!.url, c!.url], s, rand)]);
    const producer = client(a!.url);
    await Promise.all(
      sessions.map(async (session) => {
        const gen = producer.generation(session, { id: `g-${session}` });
        for (let seq = 0; seq < chunks; seq++) if (!gen.write(`${session}:${seq}`)) await gen.drained();
        await gen.finish({ timeoutMs: 60_000 });
      }),
    );
    const results = await Promise.all(readers);
    expect(results.reduce((n, r) => n + r.hops, 0)).toBeGreaterThan(sessions.length * 2);
    for (const { items } of results) {
      const report = checkSessionHistory(items, { generations: 1, chunksPerGeneration: chunks });
      expect(report.violations).toEqual([]);
      expect(report.events).toBe(chunks + 2);
    }
  });

  it('a takeover through C fences the producer on A: its finish fails with FENCED and nothing of it lands after', async () => {
    const server = await redis();
    const [a, c] = await Promise.all([gatewayOn(server), gatewayOn(server)]);
    const genA = client(a.url).generation('mp-takeover', { id: 'A' });
    for (let i = 0; i < 200; i++) genA.write(`a${i}`);
    await genA.flush();
    const genC = client(c.url).generation('mp-takeover', { id: 'C', takeover: true });
    genC.write('c0');
    await genC.flush();
    try {
      for (let i = 200; i < 400; i++) genA.write(`a${i}`);
    } catch (error) {
      expect(error).toMatchObject({ code: 'FENCED' });
    }
    await expect(genA.finish({ timeoutMs: 20_000 })).rejects.toMatchObject({ code: 'FENCED' });
    await genC.finish();
    const items = await readUntilEnded(c.url, 'mp-takeover', 2);
    const shape = items.map((i) => (i.type === 'gap' ? 'gap' : `${i.type}:${i.generationId}`));
    const fencedAt = shape.indexOf('gen.end:A');
    expect(shape[fencedAt + 1]).toBe('gen.start:C');
    expect(shape.slice(fencedAt + 1).some((s) => s.endsWith(':A'))).toBe(false);
    expect(items.find((i) => i.type === 'gen.end' && i.generationId === 'A')).toMatchObject({ status: 'fenced' });
  });

  it('a SIGSTOPped writer resumed after its takeover stores nothing', async () => {
    const server = await redis();
    const [a, c] = await Promise.all([gatewayOn(server), gatewayOn(server)]);
    const session = 'mp-sigstop';
    const genA = client(a.url).generation(session, { id: 'A' });
    for (let i = 0; i < 100; i++) genA.write(`a${i}`);
    const durable = await genA.flush();
    // Frames sent now sit in A's socket buffers, unread, while A is stopped.
    process.kill(a.pid as number, 'SIGSTOP');
    cleanups.push(() => {
      if (a.pid) process.kill(a.pid, 'SIGCONT');
    });
    for (let i = 100; i < 600; i++) genA.write(`late${i}`);
    const genC = client(c.url).generation(session, { id: 'C', takeover: true });
    genC.write('c0');
    await genC.finish();
    process.kill(a.pid as number, 'SIGCONT');
    // A wakes up, reads the stale frames and tries to store them: every one is fenced.
    await expect(genA.finish({ timeoutMs: 30_000 })).rejects.toMatchObject({ code: 'FENCED' });
    const items = await readUntilEnded(c.url, session, 2);
    const chunksOfA = items.filter((i) => i.type === 'chunk' && i.generationId === 'A');
    expect(chunksOfA.length).toBe(durable.seq + 1);
    expect(chunksOfA.some((i) => i.type === 'chunk' && String(i.data).startsWith('late'))).toBe(false);
    const report = checkSessionHistory(items, { generations: 2, endStatuses: ['fenced', 'done'] });
    expect(report.violations).toEqual([]);
    // A did try to write after waking, and was refused.
    const metrics = await (await fetch(a.url.replace('ws:', 'http:').replace('/v1', '/metrics'))).text();
    expect(Number(/^spool_fenced_writes_total (\d+)/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
  });

  it('a Redis restart (AOF) mid-stream costs producers only delays: finish succeeds and readers see every chunk once', async () => {
    const server = await redis(true);
    const gw = await startGateway({ port: 0, redis: server.url, logger: pino({ level: 'silent' }), storeRetryBudgetMs: 20_000 });
    cleanups.push(() => gw.close());
    const session = 'mp-restart';
    const reading = readUntilEnded(gw.url, session, 1);
    const gen = client(gw.url).generation(session, { id: 'g' });
    const total = 3000;
    for (let seq = 0; seq < total; seq++) {
      if (!gen.write(`t${seq}`)) await gen.drained();
      if (seq === 1000) await server.restart();
    }
    await gen.finish({ timeoutMs: 60_000 });
    const report = checkSessionHistory(await reading, { generations: 1, chunksPerGeneration: total });
    expect(report.violations).toEqual([]);
    expect(report.events).toBe(total + 2);
  });
});
