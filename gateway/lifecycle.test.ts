/**
 * Reset and delete through the gateway (PROTOCOL §10.5, §10.6). Reset: serialized with the session's writes, the active
 * generation fenced, readers on every gateway given the `session.reset` event after everything
 * before it and nothing of the old log afterwards, offsets going on after it. Run on LMDB (one
 * gateway) and on Redis with two gateways (each its own store connection, as two processes).
 * Delete: serialized the same way; producer and readers on every gateway get SESSION_DELETED
 * after everything they had; the session starts again from offset 1.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import { openRedisStore } from '../store/redis';
import { startRedis, stopAllRedis, type RedisServer } from '../store/test-helpers/redis-server';
import type { SessionStore } from '../store/types';
import { startGateway, type Gateway } from './index';
import { RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES, type Transport, type TransportName } from './transport';
import { loadUwsTransport } from './transport-uws';
import { wsTransport } from './transport-ws';

const TRANSPORTS: Record<TransportName, Transport> = { ws: wsTransport, uws: loadUwsTransport() };
const quiet = pino({ level: 'silent' });

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(() => stopAllRedis());

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

type Frame = Awaited<ReturnType<RawClient['next']>>;
interface Item {
  readonly offset?: number;
  readonly type: string;
  readonly seq?: number;
  readonly data?: unknown;
  readonly from?: number;
  readonly to?: number;
}

/** Two gateways on one log: LMDB can only have one (one process owns the environment). */
async function gatewaysOn(storeName: 'lmdb' | 'redis', transport: Transport): Promise<[Gateway, Gateway]> {
  const stores: SessionStore[] = [];
  if (storeName === 'lmdb') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-reset-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    stores.push(openLmdbStore({ path: dir }));
  } else {
    stores.push(await openRedisStore({ url: redis.url }), await openRedisStore({ url: redis.url }));
  }
  const gateways: Gateway[] = [];
  for (const store of stores) {
    const gw = await startGateway({ port: 0, store, logger: quiet, transport });
    cleanups.push(async () => {
      await gw.close();
      await store.close();
    });
    gateways.push(gw);
  }
  return [gateways[0] as Gateway, (gateways[1] ?? gateways[0]) as Gateway];
}

async function client(gw: Gateway): Promise<RawClient> {
  const c = await RawClient.connect(gw.url, SUBPROTOCOL_MSGPACK);
  cleanups.push(() => c.close());
  return c;
}

/** Everything a reader got for the session, events and gaps, in arrival order, once `until` arrived. */
async function itemsUntil(reader: RawClient, until: (item: Item) => boolean): Promise<Item[]> {
  const items: Item[] = [];
  for (;;) {
    const frame: Frame = await reader.next((f) => f.type === 'events' || f.type === 'gap' || f.type === 'error');
    if (frame.type === 'error') throw new Error(`reader got ${JSON.stringify(frame)}`);
    const got: Item[] = frame.type === 'gap' ? [frame as unknown as Item] : (frame['events'] as Item[]);
    items.push(...got);
    if (got.some(until)) return items;
  }
}

describe.each(TRANSPORT_NAMES.flatMap((t) => (['lmdb', 'redis'] as const).map((s) => [t, s] as const)))('over %s on %s', (transportName, storeName) => {
  it('a reset runs after the writes queued before it, fences the producer, and readers everywhere get everything, then session.reset, then only the new log', async () => {
    const [first, second] = await gatewaysOn(storeName, TRANSPORTS[transportName]);
    const session = `reset-${transportName}-${storeName}-${Math.random().toString(36).slice(2)}`;
    const producer = await client(first);
    const readers = [await client(first), await client(second)];
    for (const reader of readers) {
      reader.send({ type: 'subscribe', id: 1, session, from: 'start' });
      await reader.next((f) => f.type === 'live');
    }
    const opened = await producer.open(session, 'g1');
    expect(opened.type).toBe('opened');
    const token = opened['token'] as string;
    // Not waited for: once the ping behind them is answered, the chunks are in the session's
    // queue (frames are handled in order), maybe not durable yet. The reset must not overtake them.
    producer.send({ type: 'chunks', token, seq: 0, items: Array.from({ length: 5 }, (_, i) => ({ data: `old ${i}` })) });
    producer.send({ type: 'ping', id: 77 });
    await producer.next((f) => f.type === 'pong');
    const reset = await first.resetSession(session);
    expect(reset).toEqual({ status: 'reset', head: 7, cleared: 6, epoch: 2, fenced: 'g1' });
    // The chunks were durable (and acked) before the reset; then the producer is fenced.
    const ack = await producer.next((f) => f.type === 'ack');
    expect(ack).toMatchObject({ seq: 4, offset: 6 });
    expect(await producer.next((f) => f.type === 'error')).toMatchObject({ code: 'FENCED', ref: 'g1' });
    producer.send({ type: 'chunks', token, seq: 5, items: [{ data: 'after' }] });
    expect(await producer.next((f) => f.type === 'error')).toMatchObject({ code: 'FENCED' });

    const writer = await client(second);
    const g2 = await writer.open(session, 'g2');
    expect(g2).toMatchObject({ type: 'opened', offset: 8 });
    writer.send({ type: 'chunks', token: g2['token'], seq: 0, items: [{ data: 'new 0' }] });
    await writer.next((f) => f.type === 'ack');

    const old: Array<[number, string, string | undefined]> = [[1, 'gen.start', undefined], ...Array.from({ length: 5 }, (_, i): [number, string, string] => [i + 2, 'chunk', `old ${i}`])];
    for (const [i, reader] of readers.entries()) {
      const items = await itemsUntil(reader, (item) => item.type === 'chunk' && item.data === 'new 0');
      const resetAt = items.findIndex((item) => item.type === 'session.reset');
      expect(items.slice(resetAt).map((item) => [item.offset, item.type, item.data])).toEqual([
        [7, 'session.reset', undefined],
        [8, 'gen.start', undefined],
        [9, 'chunk', 'new 0'],
      ]);
      const before = items.slice(0, resetAt);
      if (i === 0 || second === first) {
        // The resetting gateway published the old events before the reset: its readers have them all.
        expect(before.map((item) => [item.offset, item.type, item.data])).toEqual(old);
      } else {
        // Another gateway may learn of the old events only after the reset removed them: then
        // they reach its reader as the reset's gap. Either way offsets 1-6 exactly once, in order.
        let cursor = 0;
        for (const item of before) {
          if (item.type === 'gap') {
            expect(item.from).toBe(cursor + 1);
            cursor = item.to as number;
          } else {
            expect([item.offset, item.type, item.data]).toEqual(old[(item.offset as number) - 1]);
            expect(item.offset).toBe(cursor + 1);
            cursor = item.offset as number;
          }
        }
        expect(cursor).toBe(6);
      }
    }
    // A reader arriving after the reset, on either gateway, never sees the old log.
    for (const gw of [first, second]) {
      const late = await client(gw);
      late.send({ type: 'subscribe', id: 2, session, from: 'start' });
      const items = await itemsUntil(late, (item) => item.type === 'chunk' && item.data === 'new 0');
      expect(items.map((item) => (item.type === 'gap' ? ['gap', item.from, item.to] : [item.offset, item.type]))).toEqual([
        ['gap', 1, 6],
        [7, 'session.reset'],
        [8, 'gen.start'],
        [9, 'chunk'],
      ]);
    }
  }, 60_000);

  it('resetting a session that holds nothing answers unknown and creates nothing', async () => {
    const [gw] = await gatewaysOn(storeName, TRANSPORTS[transportName]);
    const session = `reset-none-${Math.random().toString(36).slice(2)}`;
    expect(await gw.resetSession(session)).toEqual({ status: 'unknown' });
    expect(await gw.store.meta(session)).toMatchObject({ head: 0, epoch: 0 });
  }, 30_000);

  it('a delete runs after the writes queued before it; producer and readers on every gateway get SESSION_DELETED; writing again starts from offset 1', async () => {
    const [first, second] = await gatewaysOn(storeName, TRANSPORTS[transportName]);
    const session = `delete-${transportName}-${storeName}-${Math.random().toString(36).slice(2)}`;
    const producer = await client(first);
    const readers = [await client(first), await client(second)];
    for (const reader of readers) {
      reader.send({ type: 'subscribe', id: 1, session, from: 'start' });
      await reader.next((f) => f.type === 'live');
    }
    const opened = await producer.open(session, 'g1');
    const token = opened['token'] as string;
    producer.send({ type: 'chunks', token, seq: 0, items: Array.from({ length: 3 }, (_, i) => ({ data: `old ${i}` })) });
    producer.send({ type: 'ping', id: 78 });
    await producer.next((f) => f.type === 'pong');
    expect(await first.deleteSession(session)).toEqual({ status: 'deleted', head: 4, epoch: 1, fenced: 'g1' });
    expect(await producer.next((f) => f.type === 'ack')).toMatchObject({ seq: 2, offset: 4 });
    expect(await producer.next((f) => f.type === 'error')).toMatchObject({ code: 'SESSION_DELETED', ref: 'g1' });

    for (const [i, reader] of readers.entries()) {
      const seen: Item[] = [];
      for (;;) {
        const frame = await reader.next((f) => f.type === 'events' || f.type === 'gap' || f.type === 'error');
        if (frame.type === 'error') {
          // Another gateway whose notice link was down at the delete finds the session gone at
          // its next look and says SESSION_REWOUND (PROTOCOL §10.6); the deleting one never does.
          const codes = i === 0 || second === first ? ['SESSION_DELETED'] : ['SESSION_DELETED', 'SESSION_REWOUND'];
          expect(codes).toContain(frame['code']);
          expect(frame['ref']).toBe(session);
          break;
        }
        seen.push(...(frame.type === 'gap' ? [frame as unknown as Item] : (frame['events'] as Item[])));
      }
      // Whatever a reader had received before, nothing stale comes after the terminal answer.
      expect(seen.map((item) => item.offset)).toEqual([1, 2, 3, 4].slice(0, seen.length));
    }
    expect(await first.store.meta(session)).toMatchObject({ head: 0, epoch: 0, active: null });

    const writer = await client(second);
    expect(await writer.open(session, 'g2')).toMatchObject({ type: 'opened', offset: 1 });
    const late = await client(first);
    late.send({ type: 'subscribe', id: 2, session, from: 'start' });
    const items = await itemsUntil(late, (item) => item.type === 'gen.start');
    expect(items.map((item) => [item.offset, item.type])).toEqual([[1, 'gen.start']]);
  }, 60_000);

  it('deleting a session that does not exist answers unknown', async () => {
    const [gw] = await gatewaysOn(storeName, TRANSPORTS[transportName]);
    expect(await gw.deleteSession(`delete-none-${Math.random().toString(36).slice(2)}`)).toEqual({ status: 'unknown' });
  }, 30_000);
});
