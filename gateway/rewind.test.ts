/**
 * G9 when a session goes back: the store lost what it acknowledged (Redis without persistence
 * killed and restarted empty), or the session expired and was written again. Every reader and
 * the producer of the session are told SESSION_REWOUND, and spool_session_rewound_total counts
 * it; nobody waits forever on a log that is gone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import { MemoryStore } from '../store/memory';
import { startRedis } from '../store/test-helpers/redis-server';
import type { SessionStore } from '../store/types';
import type { Gateway, GatewayOptions } from './index';
import type { DomainEvent } from './telemetry';
import { gatewayHarness, transportNamed } from './test-helpers/gateway-harness';
import type { RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES } from './transport';

/** Generous: Redis reconnects with backoff, and CI machines are loaded. */
const LONG = 30_000;
const h = gatewayHarness();

async function rewoundCount(gw: Gateway): Promise<number> {
  const line = (await gw.metrics.render()).split('\n').find((l) => l.startsWith('spool_session_rewound_total'));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe.each(TRANSPORT_NAMES)('over %s', (transportName) => {
  const gateway = (options: GatewayOptions): Promise<Gateway> => h.gateway({ transport: transportNamed(transportName), ...options });
  const client = (gw: Gateway): Promise<RawClient> => h.client(gw, SUBPROTOCOL_MSGPACK);

  /** A reader following `session` from the start, once it is live. */
  async function follow(gw: Gateway, session: string): Promise<RawClient> {
    const reader = await client(gw);
    reader.send({ type: 'subscribe', id: 1, session, from: 0 });
    await reader.next((f) => f.type === 'live', LONG);
    return reader;
  }

  it(
    'Redis restarted without its data: the live reader and the producer are told SESSION_REWOUND, and it is counted',
    async () => {
      const redis = await startRedis();
      const events: DomainEvent[] = [];
      const gw = await gateway({ redis: redis.url, telemetry: { emit: (e) => events.push(e) } });
      const producer = await client(gw);
      const opened = await producer.open('s', 'g');
      producer.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a' }, { data: 'b' }, { data: 'c' }] });
      await producer.next((f) => f.type === 'ack' && f['seq'] === 2);
      const reader = await follow(gw, 's');

      await redis.kill();
      await redis.restart();

      const readerError = await reader.next((f) => f.type === 'error', LONG);
      expect(readerError).toMatchObject({ code: 'SESSION_REWOUND', retryable: false, ref: 's', details: { head: 0, offset: 4 } });
      expect(await producer.next((f) => f.type === 'error', LONG)).toMatchObject({ code: 'SESSION_REWOUND', ref: 'g' });
      expect(await rewoundCount(gw)).toBe(1);
      expect(events).toContainEqual({ name: 'session.rewound', session: 's', fromHead: 4, toHead: 0 });

      // The session starts over and is usable: a reader from the start gets the new log only.
      const again = await producer.open('s', 'g2');
      expect(again).toMatchObject({ type: 'opened', offset: 1 });
      const fresh = await client(gw);
      const log = await fresh.readAll('s', 0);
      expect(log.map((e) => [e['offset'], e['type']])).toEqual([[1, 'gen.start']]);
    },
    LONG * 3,
  );

  const embedded: Record<string, () => SessionStore> = {
    memory: () => new MemoryStore({ sessionTtlMs: 60_000 }),
    lmdb: () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-rewind-'));
      h.cleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
      const store = openLmdbStore({ path: dir, sessionTtlMs: 60_000 });
      h.cleanup(() => store.close());
      return store;
    },
  };

  it.each(Object.keys(embedded))('on %s, a session that expired and was written again ends its live readers with SESSION_REWOUND', async (name) => {
    const store = (embedded[name] as () => SessionStore)();
    const gw = await gateway({ store });
    const writer = await client(gw);
    for (const key of ['k1', 'k2', 'k3']) {
      writer.send({ type: 'append', id: key.length + Number(key[1]), session: 's', key, kind: 'user', data: key });
      await writer.next((f) => f.type === 'appended' && f['key'] === key);
    }
    const reader = await follow(gw, 's');

    expect(await store.expire(Date.now() + 120_000)).toBe(1);
    writer.send({ type: 'append', id: 99, session: 's', key: 'k-new', kind: 'user', data: 'new' });
    expect(await writer.next((f) => f.id === 99)).toMatchObject({ type: 'appended', offset: 1, duplicate: false });

    expect(await reader.next((f) => f.type === 'error')).toMatchObject({ code: 'SESSION_REWOUND', ref: 's', details: { head: 1, offset: 3 } });
    expect(await rewoundCount(gw)).toBe(1);
  });
});

describe('no false rewind', () => {
  it('a notice of a later write arriving while the rewind check reads the store is not a rewind', async () => {
    // The store answers meta as it was when asked, and only then lets the answer through: the
    // gap between a Redis server handling HGETALL and its reply arriving after later notices.
    const inner = new MemoryStore();
    let listener: ((notice: { head: number }) => void) | undefined;
    let metaAsked!: () => void;
    const asked = new Promise<void>((resolve) => (metaAsked = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let holdMeta = false;
    const store = Object.assign(Object.create(inner) as MemoryStore, {
      watch: (session: string, fn: (notice: { head: number }) => void) => {
        listener = fn;
        return inner.watch(session, fn);
      },
      meta: async (session: string) => {
        const answer = await inner.meta(session);
        if (holdMeta) {
          metaAsked();
          await gate;
        }
        return answer;
      },
    });
    const gw = await h.gateway({ store });
    const writer = await h.client(gw);
    const reader = await h.client(gw);
    const append = async (key: string): Promise<void> => {
      writer.send({ type: 'append', id: Number(key.slice(1)), session: 's', key, kind: 'user', data: key });
      await writer.next((f) => f.type === 'appended' && f['key'] === key);
    };
    await append('k1');
    await append('k2');
    reader.send({ type: 'subscribe', id: 1, session: 's', from: 0 });
    await reader.next((f) => f.type === 'live');

    holdMeta = true;
    listener?.({ head: 1 }); // a stale notice (read before k2 was written): the actor verifies
    await asked; // meta answered "head 2" and is held back …
    holdMeta = false;
    // … while another process writes k3 and its notice raises the known head to 3.
    await inner.append('s', [{ op: 'append', key: 'k3', kind: 'user', priority: 3, ts: Date.now(), data: 'k3', size: 4 }]);
    release();
    const next = await reader.next((f) => f.type === 'events' || f.type === 'error');
    expect(next).toMatchObject({ type: 'events', events: [{ offset: 3, key: 'k3' }] });
    expect(await rewoundCount(gw)).toBe(0);
  });
});
