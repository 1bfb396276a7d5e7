/**
 * Reset and delete through the gateway (PROTOCOL §10.5, §10.6). Reset: serialized with the session's writes, the active
 * generation fenced, readers on every gateway given the `session.reset` event after everything
 * before it and nothing of the old log afterwards, offsets going on after it. Run on LMDB (one
 * gateway) and on Redis with two gateways (each its own store connection, as two processes).
 * Delete: serialized the same way; producer and readers on every gateway get SESSION_DELETED
 * after everything they had; the session starts again from offset 1.
 */
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { noticeChannel } from '../store/redis-notices';
import { command } from '../store/test-helpers/redis-server';
import type { Gateway } from './index';
import { gatewayHarness, transportNamed, type StoreKind } from './test-helpers/gateway-harness';
import type { RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES, type TransportName } from './transport';

const h = gatewayHarness();

type Frame = Awaited<ReturnType<RawClient['next']>>;
interface Item {
  readonly offset?: number;
  readonly type: string;
  readonly seq?: number;
  readonly data?: unknown;
  readonly from?: number;
  readonly to?: number;
}

/** Two gateways on one log: on Redis each with its own store connection (as two processes); LMDB can only have one. */
async function gatewaysOn(store: StoreKind, transport: TransportName): Promise<[Gateway, Gateway]> {
  const first = await h.gateway({ store: await h.store(store), transport: transportNamed(transport) });
  const second = store === 'redis' ? await h.gateway({ store: await h.store('redis'), transport: transportNamed(transport) }) : first;
  return [first, second];
}

/** A reader of `session` on `gw`, live from the start. */
async function follow(gw: Gateway, session: string): Promise<RawClient> {
  const reader = await h.client(gw, SUBPROTOCOL_MSGPACK);
  reader.send({ type: 'subscribe', id: 1, session, from: 'start' });
  await reader.next((f) => f.type === 'live');
  return reader;
}

interface Streaming {
  readonly first: Gateway;
  readonly second: Gateway;
  readonly session: string;
  readonly producer: RawClient;
  readonly token: string;
  /** Live from the start before anything was written: one on each gateway. */
  readonly readers: readonly [RawClient, RawClient];
}

/**
 * A session with a reader live on each gateway and generation g1 open on the first, its chunks
 * `old 0`, `old 1`, … sent and a ping answered behind them: they are in the session's queue
 * (frames are handled in order), maybe not durable yet. What comes next must not overtake them.
 */
async function streaming(label: string, store: StoreKind, transport: TransportName, chunks: number): Promise<Streaming> {
  const [first, second] = await gatewaysOn(store, transport);
  const session = `${label}-${transport}-${store}-${Math.random().toString(36).slice(2)}`;
  const producer = await h.client(first);
  const readers = [await follow(first, session), await follow(second, session)] as const;
  const opened = await producer.open(session, 'g1');
  expect(opened.type).toBe('opened');
  const token = opened['token'] as string;
  producer.send({ type: 'chunks', token, seq: 0, items: Array.from({ length: chunks }, (_, i) => ({ data: `old ${i}` })) });
  producer.send({ type: 'ping', id: 77 });
  await producer.next((f) => f.type === 'pong');
  return { first, second, session, producer, token, readers };
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

/** What a reader got until its subscription ended with an error: the items, then that error frame. */
async function itemsUntilError(reader: RawClient): Promise<{ items: Item[]; error: Frame }> {
  const items: Item[] = [];
  for (;;) {
    const frame = await reader.next((f) => f.type === 'events' || f.type === 'gap' || f.type === 'error');
    if (frame.type === 'error') return { items, error: frame };
    items.push(...(frame.type === 'gap' ? [frame as unknown as Item] : (frame['events'] as Item[])));
  }
}

/** Resolves once `count` processes watch the session's change notices (Redis PUBSUB NUMSUB: their notice links are subscribed). */
async function watchers(session: string, count: number): Promise<void> {
  const port = (await h.redis()).port;
  const channel = noticeChannel(session);
  for (let i = 0; i < 500; i++) {
    const [, n] = (await command(port, 'PUBSUB', 'NUMSUB', channel)) as [string, number];
    if (Number(n) === count) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${channel} never had ${count} subscribers`);
}

describe.each(TRANSPORT_NAMES.flatMap((t) => (['lmdb', 'redis'] as const).map((s) => [t, s] as const)))('over %s on %s', (transportName, storeName) => {
  it('a reset runs after the writes queued before it, fences the producer, and readers everywhere get everything, then session.reset, then only the new log', async () => {
    const { first, second, session, producer, token, readers } = await streaming('reset', storeName, transportName, 5);
    const reset = await first.resetSession(session);
    expect(reset).toEqual({ status: 'reset', head: 7, cleared: 6, epoch: 2, fenced: 'g1' });
    // The chunks were durable (and acked) before the reset; then the producer is fenced.
    const ack = await producer.next((f) => f.type === 'ack');
    expect(ack).toMatchObject({ seq: 4, offset: 6 });
    expect(await producer.next((f) => f.type === 'error')).toMatchObject({ code: 'FENCED', ref: 'g1' });
    producer.send({ type: 'chunks', token, seq: 5, items: [{ data: 'after' }] });
    expect(await producer.next((f) => f.type === 'error')).toMatchObject({ code: 'FENCED' });

    const writer = await h.client(second);
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
      const late = await h.client(gw);
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
    const [gw] = await gatewaysOn(storeName, transportName);
    const session = `reset-none-${Math.random().toString(36).slice(2)}`;
    expect(await gw.resetSession(session)).toEqual({ status: 'unknown' });
    expect(await gw.store.meta(session)).toMatchObject({ head: 0, epoch: 0 });
  }, 30_000);

  it('a delete runs after the writes queued before it; its producer and readers get SESSION_DELETED after everything; writing again starts from offset 1', async () => {
    const { first, second, session, producer, readers } = await streaming('delete', storeName, transportName, 3);
    expect(await first.deleteSession(session)).toEqual({ status: 'deleted', head: 4, epoch: 1, fenced: 'g1' });
    expect(await producer.next((f) => f.type === 'ack')).toMatchObject({ seq: 2, offset: 4 });
    expect(await producer.next((f) => f.type === 'error')).toMatchObject({ code: 'SESSION_DELETED', ref: 'g1' });
    // The deleting gateway published every event before the delete, then its terminal answer.
    const { items, error } = await itemsUntilError(readers[0]);
    expect(items.map((item) => [item.offset, item.type])).toEqual([[1, 'gen.start'], [2, 'chunk'], [3, 'chunk'], [4, 'chunk']]);
    expect(error).toMatchObject({ code: 'SESSION_DELETED', ref: session });
    expect(await first.store.meta(session)).toMatchObject({ head: 0, epoch: 0, active: null });

    const writer = await h.client(second);
    expect(await writer.open(session, 'g2')).toMatchObject({ type: 'opened', offset: 1 });
    const late = await h.client(first);
    late.send({ type: 'subscribe', id: 2, session, from: 'start' });
    expect((await itemsUntil(late, (item) => item.type === 'gen.start')).map((item) => [item.offset, item.type])).toEqual([[1, 'gen.start']]);
  }, 60_000);

  it('deleting a session that does not exist answers unknown', async () => {
    const [gw] = await gatewaysOn(storeName, transportName);
    expect(await gw.deleteSession(`delete-none-${Math.random().toString(36).slice(2)}`)).toEqual({ status: 'unknown' });
  }, 30_000);
});

describe.each(TRANSPORT_NAMES)('a delete seen from another gateway process, over %s on Redis (PROTOCOL §10.6)', (transportName) => {
  it('a reader whose gateway watches the session gets SESSION_DELETED after everything it had, and nothing more', async () => {
    const { first, session, readers } = await streaming('delete-notice', 'redis', transportName, 3);
    // Both notice links subscribed to the session, and the other gateway's reader given everything
    // written so far: it can learn of the delete only from the delete's own notice.
    await watchers(session, 2);
    const before = await itemsUntil(readers[1], (item) => item.offset === 4);
    expect(before.map((item) => item.offset)).toEqual([1, 2, 3, 4]);
    expect(await first.deleteSession(session)).toMatchObject({ status: 'deleted', head: 4 });
    const { items, error } = await itemsUntilError(readers[1]);
    expect(items).toEqual([]);
    expect(error).toMatchObject({ code: 'SESSION_DELETED', ref: session });
  }, 60_000);

  it('a gateway that missed the notice (not watching then) finds the session gone at its next look: SESSION_REWOUND for a reader resuming there', async () => {
    const { first, second, session, readers } = await streaming('delete-missed', 'redis', transportName, 3);
    const before = await itemsUntil(readers[1], (item) => item.offset === 4);
    expect(before.map((item) => item.offset)).toEqual([1, 2, 3, 4]);
    // The other gateway's reader leaves: that gateway stops watching (one notice link left, the
    // deleting gateway's), but still knows the session up to offset 4.
    readers[1].send({ type: 'unsubscribe', id: 3, session });
    await readers[1].next((f) => f.type === 'unsubscribed');
    await watchers(session, 1);
    expect(await first.deleteSession(session)).toMatchObject({ status: 'deleted', head: 4 });
    const back = await h.client(second);
    back.send({ type: 'subscribe', id: 4, session, from: 4 });
    const { items, error } = await itemsUntilError(back);
    expect(items).toEqual([]);
    expect(error).toMatchObject({ code: 'SESSION_REWOUND', ref: session });
  }, 60_000);
});
