/**
 * End to end through the SDK on the embedded store: readers cut off at random points (by a
 * dropped TCP path, and by closing and resubscribing from their saved offset) resume and get
 * every event exactly once, in offset order.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SpoolClient } from '../client';
import { startGateway, type Gateway } from '../gateway';
import type { ReadItem, SessionEvent } from '../protocol/types';
import { FaultProxy } from './fault-proxy';
import { checkSessionHistory, mulberry32 } from './history';

const GENERATIONS = 10;
const CHUNKS = 1000;
const SEED = 20261122;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function embeddedGateway(): Promise<Gateway> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-resume-'));
  const gw = await startGateway({ port: 0, data: dir, logger: pino({ level: 'silent' }) });
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => gw.close());
  return gw;
}

function fastClient(url: string): SpoolClient {
  const client = new SpoolClient({ url, reconnect: { initialDelayMs: 5, maxDelayMs: 100 } });
  cleanups.push(() => client.close());
  return client;
}

/** Produces GENERATIONS × CHUNKS into the session, one generation after another. */
async function produce(client: SpoolClient, session: string): Promise<void> {
  for (let g = 0; g < GENERATIONS; g++) {
    const gen = client.generation(session, { id: `gen-${g}` });
    for (let s = 0; s < CHUNKS; s++) {
      const priority = s % 10 === 0 ? 1 : 2;
      if (!gen.write(`g${g}s${s}`, { kind: priority === 1 ? 'reasoning' : 'text', priority })) await gen.drained();
    }
    await gen.finish({ timeoutMs: 30_000 });
  }
}

/** Reads until the last generation ended; a fault proxy in front of this reader is reset at random points. */
async function readThroughCuts(url: string, proxy: FaultProxy, session: string, rand: () => number): Promise<ReadItem[]> {
  const client = fastClient(url);
  const sub = client.subscribe(session, { from: 0 });
  const items: ReadItem[] = [];
  let nextCut = Math.floor(rand() * 2000);
  for await (const item of sub) {
    items.push(item);
    if (items.length === nextCut) {
      proxy.apply({ reset: true });
      nextCut += 1 + Math.floor(rand() * 2000);
    }
    if (item.type === 'gen.end' && item.generationId === `gen-${GENERATIONS - 1}`) break;
  }
  sub.close();
  return items;
}

/** Reads in stints: closes its client at random points and resumes from sub.offset with a new one. */
async function readInStints(url: string, session: string, rand: () => number): Promise<{ items: ReadItem[]; stints: number }> {
  const items: ReadItem[] = [];
  let offset = 0;
  let stints = 0;
  for (;;) {
    stints += 1;
    const client = new SpoolClient({ url, reconnect: { initialDelayMs: 5, maxDelayMs: 100 } });
    const sub = client.subscribe(session, { from: offset });
    const budget = 1 + Math.floor(rand() * 1500);
    let taken = 0;
    let done = false;
    for await (const item of sub) {
      items.push(item);
      taken += 1;
      if (item.type === 'gen.end' && item.generationId === `gen-${GENERATIONS - 1}`) done = true;
      if (done || taken >= budget) break;
    }
    offset = sub.offset;
    sub.close();
    await client.close();
    if (done) return { items, stints };
  }
}

describe('resume through the SDK on the embedded store', () => {
  it(`${GENERATIONS} generations × ${CHUNKS} chunks: readers cut at random points get every event exactly once, in order`, async () => {
    const gw = await embeddedGateway();
    const proxies = await Promise.all([FaultProxy.start(gw.port), FaultProxy.start(gw.port)]);
    for (const proxy of proxies) cleanups.push(() => proxy.close());
    const rand = mulberry32(SEED);
    const session = 'resume-10x1000';
    const readers = Promise.all([
      readThroughCuts(`ws://127.0.0.1:${proxies[0]!.port}/v1`, proxies[0]!, session, rand),
      readThroughCuts(`ws://127.0.0.1:${proxies[1]!.port}/v1`, proxies[1]!, session, rand),
      readInStints(gw.url, session, rand),
    ] as const);
    await produce(fastClient(gw.url), session);
    const [cutA, cutB, stints] = await readers;
    expect(proxies[0]!.resets + proxies[1]!.resets).toBeGreaterThan(5);
    expect(stints.stints).toBeGreaterThan(3);

    const expected = GENERATIONS * (CHUNKS + 2);
    for (const items of [cutA, cutB, stints.items]) {
      const report = checkSessionHistory(items as SessionEvent[], { generations: GENERATIONS, chunksPerGeneration: CHUNKS });
      expect(report.violations).toEqual([]);
      expect(report.events).toBe(expected);
    }
  });
});
