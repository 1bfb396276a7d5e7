import { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { decodeEvents, encodeEvents } from '../protocol/codec';
import type { Priority, SessionEvent } from '../protocol/types';
import { openRedisStore, sessionKeys, type RedisStore, type RedisStoreOptions, type RedisTarget } from './redis';
import { keySlot, noticeChannel } from './redis-notices';
import { APPEND_SCRIPT, ITEM, PRUNE_PER_CALL, READ_SCRIPT, RESULT } from './redis-scripts';
import { DEFAULT_STORE_OPTIONS } from './types';
import { NoticeLog, chunk, dropped, end, keyed, readAll, runStoreConformance, TAG } from './store.conformance';
import { command, freePort, startCluster, startRedis, stopAllRedis, waitUntil, type RedisCluster, type RedisServer } from './test-helpers/redis-server';

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;

let server: RedisServer;
let cluster: RedisCluster;

beforeAll(async () => {
  [server, cluster] = await Promise.all([startRedis(), startCluster(3)]);
}, 60_000);
afterAll(() => stopAllRedis());

async function flushAll(ports: readonly number[]): Promise<void> {
  await Promise.all(ports.map((port) => command(port, 'FLUSHALL')));
}

runStoreConformance(
  'redis',
  async (options) => {
    await flushAll([server.port]);
    const store = await openRedisStore({ url: server.url }, options);
    return { store, cleanup: () => store.close() };
  },
  { expiry: 'ttl' },
);

runStoreConformance(
  'redis cluster (3 masters)',
  async (options) => {
    await flushAll(cluster.nodes.map((node) => node.port));
    const store = await openRedisStore({ cluster: cluster.endpoints }, options);
    return { store, cleanup: () => store.close() };
  },
  { expiry: 'ttl' },
);

describe('RedisStore on a real redis-server', () => {
  const opened: RedisStore[] = [];
  let raw: Redis;

  beforeAll(() => {
    raw = new Redis(server.url);
  });
  afterAll(() => raw.disconnect());
  beforeEach(() => flushAll([server.port]));
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });

  async function make(options: RedisStoreOptions = {}, target: RedisTarget = { url: server.url }): Promise<RedisStore> {
    const store = await openRedisStore(target, options);
    opened.push(store);
    return store;
  }

  function keysOf(session: string): Record<'log' | 'meta' | 'p0' | 'p1' | 'p2' | 'seq' | 'keys' | 'ended' | 'dedupe' | 'seqruns', string> {
    const [log, meta, p0, p1, p2, seq, keys, ended, dedupe, seqruns] = sessionKeys(session) as [string, string, string, string, string, string, string, string, string, string];
    return { log, meta, p0, p1, p2, seq, keys, ended, dedupe, seqruns };
  }

  describe('cleanup', () => {
    it('delete leaves no key of the session on the server (SCAN), and other sessions keep theirs', async () => {
      const store = await make();
      for (const session of ['gone', 'kept']) {
        await store.openGeneration(session, { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
        await store.append(session, [chunk('g1', 1, 0, { priority: 0 }), chunk('g1', 1, 1, { priority: 1 }), keyed('k1'), end('g1', 1, 2)]);
        await store.openGeneration(session, { generationId: 'g2', takeover: false, tag: TAG, ts: T0 });
        await store.append(session, [chunk('g2', 2, 0)]);
      }
      const scan = async (pattern: string): Promise<string[]> => {
        const found: string[] = [];
        let cursor = '0';
        do {
          const [next, keys] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          found.push(...keys);
          cursor = next;
        } while (cursor !== '0');
        return found.sort();
      };
      const keptBefore = await scan('s:{kept}:*');
      expect((await scan('s:{gone}:*')).length).toBeGreaterThan(5);
      expect(await store.delete('gone')).toEqual({ status: 'deleted', head: 7, epoch: 2, fenced: 'g2' });
      expect(await scan('s:{gone}:*')).toEqual([]);
      expect(await scan('s:{kept}:*')).toEqual(keptBefore);
    });

    it(`a write with a ts past the dedupe window prunes expired keys and ended generations, at most ${PRUNE_PER_CALL} per call`, async () => {
      const store = await make({ dedupeWindowMs: 2 * MINUTE });
      const k = keysOf('s');
      await store.append('s', Array.from({ length: 70 }, (_, i) => keyed(`k${i}`, { ts: T0 })));
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await store.append('s', [end('g1', 1, 0, 'done', { ts: T0 })]);
      expect([await raw.hlen(k.keys), await raw.hlen(k.ended), await raw.zcard(k.dedupe)]).toEqual([70, 1, 71]);

      // At the edge of the window nothing is due yet.
      await store.append('s', [keyed('edge', { ts: T0 + 2 * MINUTE })]);
      expect(await raw.zcard(k.dedupe)).toBe(72);

      await store.append('s', [keyed('late1', { ts: T0 + 2 * MINUTE + 1 })]);
      expect(await raw.zcard(k.dedupe)).toBe(73 - PRUNE_PER_CALL);
      expect((await raw.hlen(k.keys)) + (await raw.hlen(k.ended))).toBe(73 - PRUNE_PER_CALL);

      await store.append('s', [keyed('late2', { ts: T0 + 2 * MINUTE + 1 })]);
      expect((await raw.hkeys(k.keys)).sort()).toEqual(['edge', 'late1', 'late2']);
      expect(await raw.exists(k.ended)).toBe(0);
      expect(await raw.zrange(k.dedupe, '0', '-1')).toEqual(['k:edge', 'k:late1', 'k:late2']);
      // Forgotten means new again.
      expect((await store.append('s', [keyed('k0', { ts: T0 + 3 * MINUTE })])).results).toEqual([{ status: 'ok', offset: 76 }]);
    });

    it('the seq runs exist only while their generation is active: one member per run an append stored, removed on end and on takeover', async () => {
      const store = await make();
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)]);
      await store.append('s', [chunk('g1', 1, 2), dropped('g1', 1, 3), dropped('g1', 1, 4), chunk('g1', 1, 5)]);
      expect(await raw.zrange(k.seqruns, '0', '-1', 'WITHSCORES')).toEqual(['0:2:2', '0', '2:4:1', '2', '3:0:2', '3', '5:5:1', '5']);
      expect(await raw.exists(k.seq)).toBe(0);
      // A retransmission finds each seq in its run.
      const again = await store.append('s', [0, 1, 2, 3, 4, 5].map((seq) => (seq === 3 || seq === 4 ? dropped('g1', 1, seq) : chunk('g1', 1, seq))));
      expect(again.results).toEqual([
        { status: 'duplicate', offset: 2 },
        { status: 'duplicate', offset: 3 },
        { status: 'duplicate', offset: 4 },
        { status: 'dropped' },
        { status: 'dropped' },
        { status: 'duplicate', offset: 5 },
      ]);
      await store.append('s', [end('g1', 1, 6)]);
      expect(await raw.exists(k.seqruns)).toBe(0);

      await store.openGeneration('s', { generationId: 'g2', takeover: false, tag: TAG, ts: T0 });
      await store.append('s', [chunk('g2', 2, 0)]);
      expect(await raw.exists(k.seqruns)).toBe(1);
      await store.openGeneration('s', { generationId: 'g3', takeover: true, tag: TAG, ts: T0 });
      expect(await raw.exists(k.seqruns)).toBe(0);
      expect(await raw.hgetall(k.ended)).toEqual({ g1: '6:done', g2: '9:fenced' });
    });

    it('a generation active across the upgrade to seq runs still dedupes the seqs its one-field-per-seq hash holds, and the hash goes when it ends', async () => {
      const store = await make();
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1), chunk('g1', 1, 2)]);
      // What a spool before seq runs left: seq -> offset fields, no runs.
      await raw.del(k.seqruns);
      await raw.hset(k.seq, '0', '2', '1', '0', '2', '4');
      const again = await store.append('s', [chunk('g1', 1, 0), dropped('g1', 1, 1), chunk('g1', 1, 2), chunk('g1', 1, 3)]);
      expect(again.results).toEqual([{ status: 'duplicate', offset: 2 }, { status: 'dropped' }, { status: 'duplicate', offset: 4 }, { status: 'ok', offset: 5 }]);
      expect((await store.append('s', [chunk('g1', 1, 3)])).results).toEqual([{ status: 'duplicate', offset: 5 }]);
      await store.append('s', [end('g1', 1, 4)]);
      expect(await raw.exists(k.seq)).toBe(0);
      expect(await raw.exists(k.seqruns)).toBe(0);
    });

    it('a dropped chunk records a dropped seq run and refreshes every TTL (the seq runs it creates expire too), with no stream entry', async () => {
      const ttl = 60_000;
      const store = await make({ sessionTtlMs: ttl });
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await raw.pexpire(k.meta, 10_000); // far below the TTL, far above any pause of the machine
      expect(await store.append('s', [dropped('g1', 1, 0, { ts: T0 + 5 })])).toEqual({ results: [{ status: 'dropped' }], events: [], trimmed: [], head: 1 });
      expect(await raw.zrange(k.seqruns, '0', '-1')).toEqual(['0:0:1']);
      for (const key of [k.seqruns, k.meta, k.log]) expect(await raw.pttl(key)).toBeGreaterThan(ttl - 5000);
      expect(await raw.xlen(k.log)).toBe(1);
      expect(await raw.hmget(k.meta, 'head', 'count', 'activeLastSeq', 'activeLastWriteTs', 'lastWriteTs')).toEqual(['1', '1', '0', String(T0 + 5), String(T0 + 5)]);
      expect(await raw.exists(k.p0)).toBe(0);
    });

    it('a resumed open sets only activeLastWriteTs, only when it rises, and refreshes no TTL', async () => {
      const store = await make({ sessionTtlMs: 60_000 });
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await store.append('s', [chunk('g1', 1, 0, { ts: T0 + 1 })]);
      await raw.pexpire(k.meta, 30_000); // far below the TTL, far above any pause of the machine
      const before = await raw.hgetall(k.meta);
      expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeTag: TAG, tag: TAG, ts: T0 + 9 })).toMatchObject({ status: 'resumed', nextSeq: 1 });
      expect(await raw.hgetall(k.meta)).toEqual({ ...before, activeLastWriteTs: String(T0 + 9) });
      expect(await raw.pttl(k.meta)).toBeLessThanOrEqual(30_000);
      expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeOnly: true, resumeTag: TAG, tag: TAG, ts: T0 + 2 })).toMatchObject({ status: 'resumed' });
      expect(await raw.hget(k.meta, 'activeLastWriteTs')).toBe(String(T0 + 9));
    });

    it('every key of a session gets a PTTL of at most sessionTtlMs on a write and is gone after it', async () => {
      // Long enough that no pause of a loaded machine between two writes, or before the PTTLs
      // are read, lets a key expire early; the wait for expiry below is bounded generously.
      const ttl = 2000;
      const store = await make({ sessionTtlMs: ttl });
      const now = Date.now();
      await store.append('s', [keyed('k1', { ts: now })]);
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: now });
      await store.append('s', [end('g1', 1, 0, 'done', { ts: now })]);
      await store.openGeneration('s', { generationId: 'g2', takeover: false, tag: TAG, ts: now });
      await store.append('s', [0, 1, 2].map((seq) => chunk('g2', 2, seq, { priority: seq as Priority, ts: now })));
      const { seq: legacySeq, ...written } = keysOf('s');
      const keys = Object.values(written);
      // The one-field-per-seq hash is only ever read (a generation from before seq runs).
      expect(await raw.exists(legacySeq)).toBe(0);
      const pttls = await Promise.all(keys.map((key) => raw.pttl(key)));
      // Every other key exists (PTTL -2 means missing, -1 means no TTL).
      for (const pttl of pttls) {
        expect(pttl).toBeGreaterThan(0);
        expect(pttl).toBeLessThanOrEqual(ttl);
      }
      await waitUntil('every key of the session to expire', async () => (await raw.exists(...keys)) === 0, 20_000);
      expect(await store.meta('s')).toMatchObject({ epoch: 0, head: 0, active: null });
    });

    it('retention evicts exactly what it reports, from the index heads, and leaves every other entry byte for byte', async () => {
      const store = await make({ retention: { ...DEFAULT_STORE_OPTIONS.retention, maxEvents: 8 } });
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      const priorities: Priority[] = [2, 1, 0, 3, 2, 1, 0];
      await store.append('s', priorities.map((priority, seq) => chunk('g1', 1, seq, { priority, size: 10 + seq, data: { seq, text: 'x'.repeat(seq) } })));
      const before = new Map((await raw.xrangeBuffer(k.log, '-', '+')).map(([id, fields]) => [id.toString(), Buffer.concat(fields)]));
      expect(before.size).toBe(8);

      const more: Priority[] = [3, 0, 2, 1];
      const written = await store.append('s', more.map((priority, i) => chunk('g1', 1, 7 + i, { priority, size: 20 + i })));
      expect(written.trimmed).toEqual([
        { offset: 4, priority: 0, size: 12 }, { offset: 8, priority: 0, size: 16 }, { offset: 10, priority: 0, size: 21 }, { offset: 3, priority: 1, size: 11 },
      ]);
      const after = new Map((await raw.xrangeBuffer(k.log, '-', '+')).map(([id, fields]) => [id.toString(), Buffer.concat(fields)]));
      const trimmedIds = written.trimmed.map((event) => `${event.offset}-0`);
      for (const [id, bytes] of before) {
        if (trimmedIds.includes(id)) expect(after.has(id)).toBe(false);
        else expect(after.get(id)?.equals(bytes)).toBe(true);
      }
      expect([...after.keys()]).toEqual(['1-0', '2-0', '5-0', '6-0', '7-0', '9-0', '11-0', '12-0']);
      // The index holds exactly the retained trimmable events, oldest first.
      expect(await raw.lrange(k.p0, 0, -1)).toEqual([]);
      expect(await raw.lrange(k.p1, 0, -1)).toEqual(['7:15', '12:23']);
      expect(await raw.lrange(k.p2, 0, -1)).toEqual(['2:10', '6:14', '11:22']);
      expect(await raw.hmget(k.meta, 'count', 'criticalCount')).toEqual(['8', '3']);
    });
  });

  describe('batches in the stream', () => {
    /** The stream as [entry id, events in it]. */
    async function entries(k: ReturnType<typeof keysOf>): Promise<[string, number][]> {
      return (await raw.xrange(k.log, '-', '+')).map(([id, fields]) => [id, fields.length / 2]);
    }

    it('consecutive events of one priority stored by one call share a stream entry; another priority or a critical event starts the next', async () => {
      const store = await make();
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      const priorities: Priority[] = [1, 1, 1, 2, 2, 1, 3, 3, 1];
      await store.append('s', [...priorities.map((priority, seq) => chunk('g1', 1, seq, { priority, size: 5 })), end('g1', 1, 9)]);
      expect(await entries(k)).toEqual([['1-0', 1], ['2-0', 3], ['5-0', 2], ['7-0', 1], ['8-0', 2], ['10-0', 1], ['11-0', 1]]);
      // The retention index: one entry per batch of a trimmable priority, its events' sizes in order.
      expect(await raw.lrange(k.p1, 0, -1)).toEqual(['2:5,5,5', '7:5', '10:5']);
      expect(await raw.lrange(k.p2, 0, -1)).toEqual(['5:5,5']);
      const read = await store.read('s', 0, 100);
      expect(read.items.map((item) => (item.type === 'gap' ? 'gap' : item.offset))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      // A read from inside a batch starts at the next offset.
      expect((await store.read('s', 3, 2)).items.map((item) => (item.type === 'gap' ? 'gap' : item.offset))).toEqual([4, 5]);
    });

    it('trimming takes the front batch of the lowest priority one event at a time (its floor in meta), deletes its stream entry with its last event, and reads show the trimmed ones as gaps', async () => {
      const store = await make({ retention: { ...DEFAULT_STORE_OPTIONS.retention, maxEvents: 6 } });
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await store.append('s', [0, 1, 2, 3].map((seq) => chunk('g1', 1, seq, { priority: 1, size: 7 })));
      expect(await entries(k)).toEqual([['1-0', 1], ['2-0', 4]]);
      const first = await store.append('s', [4, 5].map((seq) => chunk('g1', 1, seq, { priority: 1, size: 7 })));
      expect(first.trimmed).toEqual([{ offset: 2, priority: 1, size: 7 }]);
      expect(await raw.hget(k.meta, 'floor1')).toBe('3');
      expect(await entries(k)).toEqual([['1-0', 1], ['2-0', 4], ['6-0', 2]]);
      expect((await store.read('s', 0, 100)).items.map((item) => (item.type === 'gap' ? `gap ${item.from}-${item.to}` : item.offset))).toEqual([1, 'gap 2-2', 3, 4, 5, 6, 7]);
      expect(await store.inspect('s')).toMatchObject({ retained: [0, 5, 0, 1] });

      const second = await store.append('s', [6, 7, 8].map((seq) => chunk('g1', 1, seq, { priority: 1, size: 7 })));
      expect(second.trimmed.map((event) => event.offset)).toEqual([3, 4, 5]);
      // The first batch's last event went: its entry with it, and the floor is back to none.
      expect(await entries(k)).toEqual([['1-0', 1], ['6-0', 2], ['8-0', 3]]);
      expect(await raw.hget(k.meta, 'floor1')).toBe('0');
      expect(await raw.lrange(k.p1, 0, -1)).toEqual(['6:7,7', '8:7,7,7']);
      expect((await store.read('s', 1, 100)).items.map((item) => (item.type === 'gap' ? `gap ${item.from}-${item.to}` : item.offset))).toEqual(['gap 2-5', 6, 7, 8, 9, 10]);
      // A read that starts inside the trimmed range.
      expect((await store.read('s', 3, 2)).items.map((item) => (item.type === 'gap' ? `gap ${item.from}-${item.to}` : item.offset))).toEqual(['gap 4-5', 6, 7]);
    });

    it('a call that trims its own batch writes it and deletes it whole, or from its front', async () => {
      const store = await make({ retention: { ...DEFAULT_STORE_OPTIONS.retention, maxEvents: 3 } });
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      const written = await store.append('s', [0, 1, 2, 3].map((seq) => chunk('g1', 1, seq, { priority: 0, size: 1 })));
      expect(written.trimmed.map((event) => event.offset)).toEqual([2, 3]);
      expect(await raw.hget(k.meta, 'floor0')).toBe('4');
      expect((await store.read('s', 0, 100)).items.map((item) => (item.type === 'gap' ? `gap ${item.from}-${item.to}` : item.offset))).toEqual([1, 'gap 2-3', 4, 5]);
      const again = await store.append('s', [4, 5].map((seq) => chunk('g1', 1, seq, { priority: 2, size: 1 })));
      expect(again.trimmed.map((event) => event.offset)).toEqual([4, 5]);
      expect(await entries(k)).toEqual([['1-0', 1], ['6-0', 2]]);
      expect(await raw.exists(k.p0)).toBe(0);
      expect((await store.read('s', 0, 100)).items.map((item) => (item.type === 'gap' ? `gap ${item.from}-${item.to}` : item.offset))).toEqual([1, 'gap 2-5', 6, 7]);
    });

    it('a read takes from Redis about the events it asks for, however many a batch holds', async () => {
      const store = await make();
      const k = keysOf('s');
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      for (let b = 0; b < 8; b++) await store.append('s', [0, 1, 2, 3].map((i) => chunk('g1', 1, b * 4 + i)));
      expect((await entries(k)).length).toBe(9);
      const look = async (from: number, limit: number): Promise<{ entries: number; ended: number }> => {
        const keys = sessionKeys('s');
        const reply = (await raw.callBuffer('EVAL', READ_SCRIPT, keys.length, ...keys, '', '', '', '', '', '', '', String(from), String(limit))) as [unknown, unknown, unknown[], number];
        return { entries: reply[2].length, ended: reply[3] };
      };
      // The batch holding 3 (3..5 of it wanted) and one more: 5 events asked for, 8 taken.
      expect(await look(3, 5)).toEqual({ entries: 2, ended: 0 });
      expect(await look(3, 4)).toEqual({ entries: 2, ended: 0 });
      expect(await look(3, 3)).toEqual({ entries: 1, ended: 0 });
      expect(await look(1, 1000)).toEqual({ entries: 9, ended: 1 });
      // Through the store: pages of 5, nothing lost or repeated.
      const seen: number[] = [];
      let after = 0;
      for (let page = 0; page < 10 && after < 33; page++) {
        const read = await store.read('s', after, 5);
        for (const item of read.items) if (item.type !== 'gap') seen.push(item.offset);
        after = read.through;
      }
      expect(seen).toEqual(Array.from({ length: 33 }, (_, i) => i + 1));
    });

    it("an append's readers' encoding is encodeEvents' bytes for its events, made from the bodies it sent (and gen.end encoded here)", async () => {
      const store = await make();
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      const written = await store.append('s', [
        chunk('g1', 1, 0, { data: 'plain text' }),
        chunk('g1', 1, 1, { kind: 'tool', priority: 2, data: { name: 'search', args: [1, 'two', null, true] } }),
        dropped('g1', 1, 2),
        keyed('u1', { data: { text: 'a user message' } }),
        end('g1', 1, 3, 'error', { error: 'upstream closed' }),
      ]);
      expect(written.events.map((event) => event.offset)).toEqual([2, 3, 4, 5]);
      expect(written.encoded).toBeDefined();
      expect(Buffer.from(written.encoded as Uint8Array).equals(Buffer.from(encodeEvents(written.events)))).toBe(true);
      expect(decodeEvents(written.encoded as Uint8Array)).toEqual(written.events);
      // What readers get from the store reads back the same events.
      expect((await store.read('s', 1, 100)).items).toEqual(written.events);
      expect((await store.append('s', [chunk('g1', 1, 0)])).encoded).toBeUndefined();
    });

    it('a log written before batches (an entry and an "offset:size" index entry per event) reads, trims and grows the same', async () => {
      const store = await make({ retention: { ...DEFAULT_STORE_OPTIONS.retention, maxEvents: 4 } });
      const k = keysOf('s');
      // What spool wrote before batches: gen.start at 1, three chunks of priority 1 at 2..4.
      const body = (fields: Record<string, unknown>): Buffer => new Packr({ useRecords: false }).pack(fields);
      await raw.xadd(k.log, '1-0', 'e', body({ type: 'gen.start', generationId: 'g1', priority: 3, ts: T0 }));
      for (const seq of [0, 1, 2]) await raw.xadd(k.log, `${seq + 2}-0`, 'e', body({ type: 'chunk', generationId: 'g1', seq, priority: 1, ts: T0, data: `c${seq}` }));
      await raw.rpush(k.p1, '2:3', '3:3', '4:3');
      await raw.hset(k.meta, 'epoch', '1', 'head', '4', 'count', '4', 'bytes', '9', 'criticalCount', '1', 'criticalBytes', '0', 'lastWriteTs', String(T0));
      await raw.hset(k.meta, 'activeId', 'g1', 'activeEpoch', '1', 'activeLastSeq', '2', 'activeStartOffset', '1', 'activeLastWriteTs', String(T0), 'activeTag', TAG, 'activeSecret', '');
      expect((await store.read('s', 0, 100)).items.map((item) => (item.type === 'gap' ? 'gap' : item.offset))).toEqual([1, 2, 3, 4]);
      const written = await store.append('s', [3, 4].map((seq) => chunk('g1', 1, seq, { priority: 1, size: 3 })));
      expect(written.trimmed.map((event) => event.offset)).toEqual([2, 3]);
      expect(await entries(k)).toEqual([['1-0', 1], ['4-0', 1], ['5-0', 2]]);
      expect(await raw.lrange(k.p1, 0, -1)).toEqual(['4:3', '5:3,3']);
      const read = await store.read('s', 0, 100);
      expect(read.items.map((item) => (item.type === 'gap' ? `gap ${item.from}-${item.to}` : item.offset))).toEqual([1, 'gap 2-3', 4, 5, 6]);
      expect(read.items[2]).toMatchObject({ offset: 4, type: 'chunk', seq: 2, data: 'c2' });
    });
  });

  describe('the append script', () => {
    /** Calls the append script as the store does (config ARGV 1-7), with a header and bodies of the test's own. */
    async function callAppend(session: string, header: unknown[], bodies: Buffer[]): Promise<unknown> {
      const packr = new Packr({ useRecords: false });
      const config = ['100', '1000000', '2', '60000', '120000', 'PUBLISH', noticeChannel(session)];
      const keys = sessionKeys(session);
      return packr.unpack((await raw.callBuffer('EVAL', APPEND_SCRIPT, keys.length, ...keys, ...config, packr.pack(header), ...bodies)) as Buffer);
    }

    it('answers a chunks item with one result per chunk, at consecutive offsets', async () => {
      const store = await make();
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      // Three bodies end to end in one argument: {a: 1}, {b: 'xy'}, {}.
      const bodies = Buffer.from([0x81, 0xa1, 0x61, 0x01, 0x81, 0xa1, 0x62, 0xa2, 0x78, 0x79, 0x80]);
      const reply = await callAppend('s', [[ITEM.chunks, 'g1', 1, 0, [1, 1, 2], [T0, T0, T0 + 1], [3, 4, 5], [4, 6, 1]]], [bodies]);
      expect(reply).toEqual([4, [[RESULT.ok, 2], [RESULT.ok, 3], [RESULT.ok, 4]], []]);
      const stored = await raw.xrangeBuffer(keysOf('s').log, '2-0', '+');
      expect(stored.map(([id, fields]) => [id.toString(), fields.map((f) => f.toString('hex'))])).toEqual([
        ['2-0', ['65', '81a16101', '65', '81a162a27879']],
        ['4-0', ['65', '80']],
      ]);
      // gen.start, then a batch per priority.
      expect((await raw.xrange(keysOf('s').log, '-', '+')).map(([id, fields]) => [id, fields.length / 2])).toEqual([['1-0', 1], ['2-0', 2], ['4-0', 1]]);
    });

    it('refuses a malformed chunks item (its arrays, its body lengths against its argument) before its first write', async () => {
      const store = await make();
      await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      const k = keysOf('s');
      const meta = await raw.hgetall(k.meta);
      const two = Buffer.from([0x80, 0x80]);
      const bad: [unknown[], Buffer[], RegExp][] = [
        [[[ITEM.chunks, 'g1', 1, 0, [1, 1], [T0], [3, 4], [1, 1]]], [two], /bad chunks lengths/],
        [[[ITEM.chunks, 'g1', 1, 0, [1, 1], [T0, T0], [3, 4], [2]]], [two], /bad chunks lengths/],
        [[[ITEM.chunks, 'g1', 1, 0, [], [], [], []]], [Buffer.alloc(0)], /bad chunks lengths/],
        [[[ITEM.chunks, 'g1', 1, 0, [1, 4], [T0, T0], [3, 4], [1, 1]]], [two], /bad chunks/],
        [[[ITEM.chunks, 'g1', 1, 0, [1], [T0], [-1], [1]]], [two.subarray(1)], /bad chunks/],
        [[[ITEM.chunks, 'g1', 1, 0, 1, [T0], [3], [1]]], [two.subarray(1)], /bad chunks/],
        [[[ITEM.chunks, 'g1', 1, 0, [1, 1], [T0, T0], [3, 4], [1, 0]]], [two.subarray(1)], /bad chunks body length/],
        [[[ITEM.chunks, 'g1', 1, 0, [1, 1], [T0, T0], [3, 4], [1, 2]]], [two], /lengths add up to 3 bytes, its argument has 2/],
        [[[ITEM.chunks, 'g1', 1, 0, [1, 1], [T0, T0], [3, 4], [1, 1]]], [two, two], /1 bodies expected, 2 given/],
        // A stored chunk travels in a chunks item; a lone chunk item is a dropped one.
        [[[ITEM.chunk, 'g1', 1, 0, 1, T0, 3, false]], [two.subarray(1)], /bad chunk drop/],
      ];
      for (const [header, bodies, message] of bad) await expect(callAppend('s', header, bodies)).rejects.toThrow(message);
      expect(await raw.xlen(k.log)).toBe(1);
      expect(await raw.hgetall(k.meta)).toEqual(meta);
      expect(await raw.exists(k.seqruns)).toBe(0);
    });
  });

  describe('many processes', () => {
    it('one subscription per session per store, however many listeners; notices cross to another store; the last unsubscribe leaves', async () => {
      const [a, b] = [await make(), await make()];
      const channel = noticeChannel('s');
      const [first, second] = [new NoticeLog(), new NoticeLog()];
      const stopFirst = a.watch('s', first.listener);
      const stopSecond = a.watch('s', second.listener);
      await waitUntil('the subscription', async () => (await raw.pubsub('NUMSUB', channel))[1] === 1);
      expect(a.watchedSessions).toBe(1);

      await b.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await Promise.all([first.reached(1), second.reached(1)]);
      await b.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)]);
      await Promise.all([first.reached(3), second.reached(3)]);
      expect((await raw.pubsub('NUMSUB', channel))[1]).toBe(1);

      stopFirst();
      expect((await raw.pubsub('NUMSUB', channel))[1]).toBe(1);
      stopSecond();
      await waitUntil('the last listener to unsubscribe', async () => (await raw.pubsub('NUMSUB', channel))[1] === 0);
      expect(a.watchedSessions).toBe(0);
    });

    it('after the subscriber connection drops, a notice with the current head heals what was published meanwhile', async () => {
      // A reconnect floor of 3 s leaves a window in which nobody is subscribed (the two commands
      // below must fit in it, however loaded the machine).
      const a = await make({ reconnectMinMs: 3000, reconnectMaxMs: 4000 });
      const b = await make();
      const channel = noticeChannel('s');
      const log = new NoticeLog();
      a.watch('s', log.listener);
      await waitUntil('the subscription', async () => (await raw.pubsub('NUMSUB', channel))[1] === 1);
      await b.append('s', [keyed('k1')]);
      await log.reached(1);
      await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await b.append('s', [keyed('k2'), keyed('k3')]);
      // Published to nobody: the notice can only come from the heal after resubscribing.
      expect((await raw.pubsub('NUMSUB', channel))[1]).toBe(0);
      await log.reached(3, 20_000);
    });

    it('a takeover by another store fences the old owner inside the script: nothing of its writes lands', async () => {
      const [a, b] = [await make(), await make()];
      const opened = await a.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      expect(opened).toMatchObject({ status: 'opened', epoch: 1 });
      await a.append('s', [chunk('g1', 1, 0)]);
      expect(await b.openGeneration('s', { generationId: 'g2', takeover: true, tag: TAG, ts: T0 })).toMatchObject({ status: 'opened', epoch: 2, fenced: 'g1' });
      const lengthBefore = await raw.xlen(keysOf('s').log);
      const stale = await a.append('s', [chunk('g1', 1, 1), keyed('late', { ts: T0 }), end('g1', 1, 2)]);
      // The old generation's chunk is fenced and its finish learns how it ended; the keyed
      // append carries no epoch (it belongs to no generation) and is stored.
      expect(stale.results).toEqual([{ status: 'fenced', epoch: 2 }, { status: 'ok', offset: 5 }, { status: 'duplicate', offset: 3, endStatus: 'fenced' }]);
      expect(await raw.xlen(keysOf('s').log)).toBe(lengthBefore + 1);
      const log = (await readAll(b, 's')) as SessionEvent[];
      expect(log.filter((event) => event.generationId === 'g1').map((event) => event.type)).toEqual(['gen.start', 'chunk', 'gen.end']);
    });
  });

  describe('Redis trouble', () => {
    it('while the server is paused, calls reject with STORE_UNAVAILABLE within the command timeout; after it resumes the same store works, and a timed-out append retried is a duplicate', async () => {
      const paused = await startRedis();
      try {
        const store = await make({ commandTimeoutMs: 500, pingTimeoutMs: 500 }, { url: paused.url });
        await store.append('s', [keyed('k1')]);
        paused.pause();
        // Without the command timeout the call would wait for the paused server forever: a bound
        // far above 500 ms tells the two apart without depending on how loaded the machine is.
        let bound: NodeJS.Timeout | undefined;
        const hung = new Promise<never>((_, reject) => {
          bound = setTimeout(() => reject(new Error('append to a paused server still pending after 20 s')), 20_000);
        });
        await expect(Promise.race([store.append('s', [keyed('k2')]), hung]).finally(() => clearTimeout(bound))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await expect(store.ping()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await expect(store.read('s', 0, 10)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        paused.resume();
        await waitUntil('ping after resume', async () => (await store.ping().then(() => true, () => false)));
        // The timed-out append reached the server and ran when it resumed: the retry finds it.
        expect((await store.append('s', [keyed('k2')])).results).toEqual([{ status: 'duplicate', offset: 2 }]);
        expect((await store.append('s', [keyed('k3')])).results).toEqual([{ status: 'ok', offset: 3 }]);
      } finally {
        paused.resume();
        await paused.stop();
      }
    });

    it('after a SIGKILL and restart with AOF, the store reconnects by itself and finds every acknowledged write', async () => {
      const durable = await startRedis({ appendonly: true });
      try {
        const store = await make({ commandTimeoutMs: 500 }, { url: durable.url });
        await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
        await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1), keyed('k1')]);
        const before = await readAll(store, 's');
        await durable.kill();
        await expect(store.append('s', [chunk('g1', 1, 2)])).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
        await durable.restart();
        await waitUntil('ping after restart', async () => (await store.ping().then(() => true, () => false)));
        expect(await readAll(store, 's')).toEqual(before);
        // The restarted server has no script cache: EVALSHA falls back to EVAL.
        expect((await store.append('s', [chunk('g1', 1, 2)])).results).toEqual([{ status: 'ok', offset: 5 }]);
      } finally {
        await durable.stop();
      }
    });

    it('openRedisStore rejects with STORE_UNAVAILABLE when nothing answers within startTimeoutMs', async () => {
      const port = await freePort();
      await expect(openRedisStore({ url: `redis://127.0.0.1:${port}` }, { startTimeoutMs: 300 })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    });
  });
});

describe('RedisStore on a real 3-master cluster', () => {
  const opened: RedisStore[] = [];
  beforeEach(() => flushAll(cluster.nodes.map((node) => node.port)));
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });

  async function make(options: RedisStoreOptions = {}): Promise<RedisStore> {
    const store = await openRedisStore({ cluster: cluster.endpoints }, options);
    opened.push(store);
    return store;
  }

  const ownerPort = (slot: number): Promise<number> => cluster.ownerOf(slot);

  it('every key and the notice channel of a session share one slot, and keySlot agrees with CLUSTER KEYSLOT', async () => {
    const port = cluster.nodes[0]?.port ?? 0;
    for (const session of ['s', 'a:b.c-d_1', 'ünïcode', 'x'.repeat(128)]) {
      const names = [...sessionKeys(session), noticeChannel(session)];
      const slots = await Promise.all(names.map((name) => command(port, 'CLUSTER', 'KEYSLOT', name)));
      expect(new Set(slots).size).toBe(1);
      expect(names.map(keySlot)).toEqual(slots);
    }
  });

  it('notices cross between two stores through sharded pub/sub, one subscription per session on the shard that owns it', async () => {
    const [a, b] = [await make(), await make()];
    // Sessions on every master.
    const owners = new Map<number, string>();
    for (let i = 0; owners.size < 3 && i < 1000; i++) {
      const port = await ownerPort(keySlot(noticeChannel(`s${i}`)));
      if (!owners.has(port)) owners.set(port, `s${i}`);
    }
    expect(owners.size).toBe(3);
    const logs = new Map<string, NoticeLog>();
    for (const session of owners.values()) {
      const log = new NoticeLog();
      logs.set(session, log);
      a.watch(session, log.listener);
      a.watch(session, () => undefined);
    }
    for (const [port, session] of owners) {
      await waitUntil(`the shard subscription of ${session}`, async () => ((await command(port, 'PUBSUB', 'SHARDNUMSUB', noticeChannel(session))) as [string, number])[1] === 1);
    }
    for (const session of owners.values()) {
      await b.openGeneration(session, { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await b.append(session, [chunk('g1', 1, 0), end('g1', 1, 1)]);
    }
    await Promise.all([...logs.values()].map((log) => log.reached(3)));
  });

  it('when a watched session\'s slot moves to another master, its subscription follows and no notice is lost', async () => {
    const [a, b] = [await make(), await make()];
    const session = 'moving';
    const channel = noticeChannel(session);
    const slot = keySlot(channel);
    const from = await ownerPort(slot);
    const to = cluster.nodes.map((node) => node.port).find((port) => port !== from) as number;
    const log = new NoticeLog();
    a.watch(session, log.listener);
    await waitUntil('the shard subscription', async () => ((await command(from, 'PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1] === 1);
    await b.append(session, [keyed('k1')]);
    await log.reached(1);

    await cluster.moveSlot(slot, to);
    // Written on the new owner: a's old subscription cannot carry it, the moved one (or its heal) does.
    await b.append(session, [keyed('k2')]);
    await log.reached(2);
    await waitUntil('the subscription on the new owner', async () => ((await command(to, 'PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1] === 1);
    expect(((await command(from, 'PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1]).toBe(0);
    await b.append(session, [keyed('k3')]);
    await log.reached(3);
    expect(await b.meta(session)).toMatchObject({ head: 3 });
    // Give the slot back, so later tests see the cluster as it was created.
    await cluster.moveSlot(slot, from);
  });

  it('a takeover through another store fences the old owner on the cluster', async () => {
    const [a, b] = [await make(), await make()];
    await a.openGeneration('s7', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
    await b.openGeneration('s7', { generationId: 'g2', takeover: true, tag: TAG, ts: T0 });
    const stale = await a.append('s7', [chunk('g1', 1, 0)]);
    expect(stale).toEqual({ results: [{ status: 'fenced', epoch: 2 }], events: [], trimmed: [], head: 3 });
  });
});
