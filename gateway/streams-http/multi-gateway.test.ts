/**
 * The Durable Streams door with several gateways on one shared store (a private redis-server, and
 * a 3-master Redis Cluster): a stream is one session, so every gateway serves it, sees the
 * others' writes (store reads before each request, change notices for live readers), and
 * rebuilds its producers' state from the log.
 */
import pino from 'pino';
import { startCluster, startRedis, stopAllRedis } from '../../store/test-helpers/redis-server';
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
