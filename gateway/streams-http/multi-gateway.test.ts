/**
 * The Durable Streams door with several gateways on one shared store (a private redis-server, and
 * a 3-master Redis Cluster): a stream is one session, so every gateway serves it, sees the
 * others' writes (store reads before each request, change notices for live readers), and
 * rebuilds its producers' state from the log; and writes of one stream taken by two gateways at
 * the same moment end as the protocol says, exactly (PROTOCOL §16.11: compare-and-append).
 */
import pino from 'pino';
import { openRedisStore, type RedisTarget } from '../../store/redis';
import { startCluster, startRedis, stopAllRedis } from '../../store/test-helpers/redis-server';
import type { SessionStore, WriteItem } from '../../store/types';
import type { GatewayOptions } from '../config';
import { startGateway, type Gateway } from '../gateway';

const quiet = pino({ level: 'silent' });

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => stopAllRedis());

async function pair(store: Pick<GatewayOptions, 'redis' | 'redisCluster'>): Promise<[string, string]> {
  const gateways: Gateway[] = [];
  for (const transport of ['ws', 'uws'] as const) {
    const gw = await startGateway({ port: 0, logger: quiet, transport, streamsLongPollMs: 5_000, ...store });
    cleanups.push(() => gw.close());
    gateways.push(gw);
  }
  return gateways.map((gw) => `http://127.0.0.1:${gw.port}/v1/stream`) as [string, string];
}

function producerPost(base: string, name: string, epoch: number, seq: number, body: string): Promise<Response> {
  return fetch(`${base}/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'producer-id': 'shared', 'producer-epoch': String(epoch), 'producer-seq': String(seq) },
    body,
  });
}

describe.each([
  ['redis', async (): Promise<Pick<GatewayOptions, 'redis'>> => ({ redis: (await startRedis()).url })],
  ['a 3-master Redis Cluster', async (): Promise<Pick<GatewayOptions, 'redisCluster'>> => ({ redisCluster: (await startCluster(3)).endpoints })],
] as const)('two gateways on %s', (_name, storeOf) => {
  test('a stream written through one gateway is read live through the other, and its producer is deduplicated and fenced by both', async () => {
    const [a, b] = await pair(await storeOf());
    const name = `shared-${Date.now()}`;
    expect((await fetch(`${a}/${name}`, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201);
    // B learns of the stream A created.
    const head = await fetch(`${b}/${name}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    const tail = head.headers.get('stream-next-offset') as string;

    // A long-poll on B at the tail is answered by a write through A (B's readers hear of it by the store's change notice).
    const poll = fetch(`${b}/${name}?offset=${tail}&live=long-poll`);
    expect((await producerPost(a, name, 0, 0, 'one ')).status).toBe(200);
    const answered = await poll;
    expect(answered.status).toBe(200);
    expect(await answered.text()).toBe('one ');

    // The producer's retry through the other gateway is a duplicate; its next seq goes on there.
    const retry = await producerPost(b, name, 0, 0, 'one ');
    expect(retry.status).toBe(204);
    expect((await producerPost(b, name, 0, 1, 'two ')).status).toBe(200);
    // A new epoch through B fences the old one on A.
    expect((await producerPost(b, name, 1, 0, 'three')).status).toBe(200);
    const zombie = await producerPost(a, name, 0, 2, 'zombie');
    expect(zombie.status).toBe(403);
    expect(zombie.headers.get('producer-epoch')).toBe('1');

    // Closed through A: B answers the close, and a reader through B ends at it.
    expect((await fetch(`${a}/${name}`, { method: 'POST', headers: { 'stream-closed': 'true' } })).status).toBe(204);
    const appendAfter = await fetch(`${b}/${name}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'late' });
    expect(appendAfter.status).toBe(409);
    expect(appendAfter.headers.get('stream-closed')).toBe('true');
    const read = await fetch(`${b}/${name}?offset=-1`);
    expect(await read.text()).toBe('one two three');
    expect(read.headers.get('stream-closed')).toBe('true');

    // Deleted through B: gone on A.
    expect((await fetch(`${b}/${name}`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${a}/${name}`, { method: 'HEAD' })).status).toBe(404);
  });
});

/**
 * A gateway's own connection to the shared store (as a process of its own has) whose next data
 * write of the door can be held at the store's door: the request has passed every check by then.
 */
class HeldStore {
  private held: { arrived: () => void; release: Promise<void> } | null = null;
  readonly store: SessionStore;

  constructor(inner: SessionStore) {
    this.store = Object.assign(Object.create(inner) as SessionStore, {
      append: async (session: string, items: readonly WriteItem[]): Promise<unknown> => {
        const held = this.held;
        if (held && items.some((item) => item.op === 'append' && item.kind.startsWith('ds.') && item.kind !== 'ds.meta')) {
          this.held = null;
          held.arrived();
          await held.release;
        }
        return inner.append(session, items);
      },
    });
  }

  /** Holds the next data write; resolves `arrived` once it is held, and lets it go on `release()`. */
  hold(): { arrived: Promise<void>; release: () => void } {
    let arrived!: () => void;
    let release!: () => void;
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    this.held = { arrived, release: new Promise<void>((resolve) => (release = resolve)) };
    return { arrived: arrival, release };
  }
}

interface Post {
  readonly body?: string;
  readonly producer?: readonly [epoch: number, seq: number];
  readonly streamSeq?: string;
  readonly close?: true;
}

function post(base: string, name: string, p: Post): Promise<Response> {
  const headers: Record<string, string> = {};
  if (p.body !== undefined) headers['content-type'] = 'text/plain';
  if (p.producer) Object.assign(headers, { 'producer-id': 'shared', 'producer-epoch': String(p.producer[0]), 'producer-seq': String(p.producer[1]) });
  if (p.streamSeq !== undefined) headers['stream-seq'] = p.streamSeq;
  if (p.close) headers['stream-closed'] = 'true';
  return fetch(`${base}/${name}`, { method: 'POST', headers, ...(p.body === undefined ? {} : { body: p.body }) });
}

/**
 * Writes that each pass their checks on their own gateway against the same state, then reach the
 * store one after the other: `first` through A, then `second` through B. The outcome the protocol
 * gives the second is the one it would get had it come after the first on one gateway.
 */
interface Race {
  readonly name: string;
  readonly first: Post;
  readonly second: Post;
  readonly statuses: readonly [number, number];
  readonly stored: string;
  readonly epoch?: string;
}

const RACES: readonly Race[] = [
  // The new epoch is stored first; the old epoch's write, which passed its check against epoch 0, is fenced.
  { name: 'an epoch bump racing a write of the old epoch: the old one is fenced (403)', first: { body: 'new', producer: [1, 0] }, second: { body: 'old', producer: [0, 1] }, statuses: [200, 403], stored: 'anew', epoch: '1' },
  { name: 'the same Producer-Seq with different bodies: one stored (200), the other a duplicate (204)', first: { body: 'x', producer: [0, 1] }, second: { body: 'y', producer: [0, 1] }, statuses: [200, 204], stored: 'ax' },
  { name: 'the same Producer-Seq with different Stream-Seq: one stored (200), the other a duplicate (204)', first: { body: 'x', producer: [0, 1], streamSeq: '1' }, second: { body: 'y', producer: [0, 1], streamSeq: '2' }, statuses: [200, 204], stored: 'ax' },
  { name: 'a Stream-Seq below the one stored meanwhile: 409', first: { body: 'x', streamSeq: 'b' }, second: { body: 'y', streamSeq: 'a' }, statuses: [204, 409], stored: 'ax' },
  { name: 'a write racing a close: the close wins, the write is refused (409 closed)', first: { close: true }, second: { body: 'late' }, statuses: [204, 409], stored: 'a' },
  { name: 'two closes with different final writes: one closes, the other is refused (409 closed)', first: { body: 'end1', close: true }, second: { body: 'end2', close: true }, statuses: [204, 409], stored: 'aend1' },
];

describe.each([
  ['redis', async (): Promise<RedisTarget> => ({ url: (await startRedis()).url })],
  ['a 3-master Redis Cluster', async (): Promise<RedisTarget> => ({ cluster: (await startCluster(3)).endpoints })],
] as const)('writes of one stream taken by two gateways at the same moment, on %s', (_name, targetOf) => {
  let target: RedisTarget;
  beforeAll(async () => {
    target = await targetOf();
  });

  async function heldGateway(transport: 'ws' | 'uws'): Promise<{ base: string; held: HeldStore }> {
    const inner = await openRedisStore(target);
    const held = new HeldStore(inner);
    const gw = await startGateway({ port: 0, logger: quiet, transport, store: held.store });
    cleanups.push(() => inner.close());
    cleanups.push(() => gw.close());
    return { base: `http://127.0.0.1:${gw.port}/v1/stream`, held };
  }

  test('two PUTs creating one stream with different first writes: one creates it (201), the other finds it alike (200) and writes nothing', async () => {
    const a = await heldGateway('ws');
    const b = await heldGateway('uws');
    const name = `create-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const put = (base: string, body: string): Promise<Response> => fetch(`${base}/${name}`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body });
    const holdA = a.held.hold();
    const holdB = b.held.hold();
    const answerA = put(a.base, 'first');
    const answerB = put(b.base, 'second');
    await Promise.all([holdA.arrived, holdB.arrived]);
    holdA.release();
    expect((await answerA).status).toBe(201);
    holdB.release();
    expect((await answerB).status).toBe(200);
    for (const base of [a.base, b.base]) expect(await (await fetch(`${base}/${name}?offset=-1`)).text()).toBe('first');
  });

  test.each(RACES)('$name', async ({ first, second, statuses, stored, epoch }) => {
    const a = await heldGateway('ws');
    const b = await heldGateway('uws');
    const name = `race-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    expect((await fetch(`${a.base}/${name}`, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201);
    expect((await post(a.base, name, { body: 'a', producer: [0, 0] })).status).toBe(200);
    // B has read the stream as it is now (one data write), like A.
    expect((await fetch(`${b.base}/${name}`, { method: 'HEAD' })).status).toBe(200);

    const holdA = a.held.hold();
    const holdB = b.held.hold();
    const answerA = post(a.base, name, first);
    const answerB = post(b.base, name, second);
    // Both passed their checks against the same state and wait at the store.
    await Promise.all([holdA.arrived, holdB.arrived]);
    holdA.release();
    const firstAnswer = await answerA;
    holdB.release();
    const secondAnswer = await answerB;

    expect([firstAnswer.status, secondAnswer.status]).toEqual(statuses);
    if (epoch !== undefined) expect(secondAnswer.headers.get('producer-epoch')).toBe(epoch);
    for (const base of [a.base, b.base]) {
      const read = await fetch(`${base}/${name}?offset=-1`);
      expect(await read.text()).toBe(stored);
    }
  });
});
