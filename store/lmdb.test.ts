import { spawn } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import fc from 'fast-check';
import { open } from 'lmdb';
import { decodeEvents } from '../protocol/codec';
import type { Priority, SessionEvent } from '../protocol/types';
import { openLmdbStore, type LmdbStoreOptions } from './lmdb';
import { MemoryStore } from './memory';
import { chunk, dropped, end, keyed, readAll, runStoreConformance, TAG } from './store.conformance';
import { DEFAULT_STORE_OPTIONS, type WriteItem } from './types';

const T0 = 1_700_000_000_000;

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-lmdb-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

runStoreConformance('lmdb', async (options) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-lmdb-'));
  const store = openLmdbStore({ path: dir, ...options });
  return {
    store,
    cleanup: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

/** Every key in the environment except the format marker and lmdb's own (non-array) keys. */
async function rawKeys(dir: string): Promise<unknown[][]> {
  const db = open({ path: dir });
  try {
    const keys: unknown[][] = [];
    for (const key of db.getKeys({})) if (Array.isArray(key) && key[0] !== 'v') keys.push([...key]);
    return keys;
  } finally {
    await db.close();
  }
}

describe('LmdbStore', () => {
  function openAt(dir: string, extra: Partial<LmdbStoreOptions> = {}) {
    return openLmdbStore({ path: dir, ...DEFAULT_STORE_OPTIONS, ...extra });
  }

  it('data survives closing and reopening at the same path, including the active generation', async () => {
    const dir = tempDir();
    const first = openAt(dir);
    await first.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
    await first.append('s', [chunk('g1', 1, 0), keyed('u1'), end('g1', 1, 1)]);
    await first.openGeneration('s', { generationId: 'g2', takeover: false, tag: TAG, ts: T0 + 1 });
    await first.append('s', [chunk('g2', 2, 0), chunk('g2', 2, 1, { kind: 'reasoning', data: { nested: [1, 'two', null] } })]);
    const metaBefore = await first.meta('s');
    const logBefore = await readAll(first, 's');
    await first.close();

    const second = openAt(dir);
    try {
      expect(await second.meta('s')).toEqual(metaBefore);
      expect(metaBefore).toMatchObject({ epoch: 2, head: 7, active: { id: 'g2', epoch: 2, lastSeq: 1, startOffset: 5 } });
      expect(await readAll(second, 's')).toEqual(logBefore);
      expect(await second.openGeneration('s', { generationId: 'g2', takeover: false, resumeTag: TAG, tag: TAG, ts: T0 })).toEqual({ status: 'resumed', epoch: 2, tag: TAG, nextSeq: 2, startOffset: 5, takeover: false });
      expect(await second.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 })).toEqual({ status: 'closed', endStatus: 'done', endOffset: 4 });
      const retry = await second.append('s', [chunk('g2', 2, 1), keyed('u1'), chunk('g2', 2, 2)]);
      expect(retry.results).toEqual([{ status: 'duplicate', offset: 7 }, { status: 'duplicate', offset: 3 }, { status: 'ok', offset: 8 }]);
    } finally {
      await second.close();
    }
  });

  it('every append that resolved before the writer was killed with SIGKILL is readable after reopening', async () => {
    const dir = tempDir();
    const helper = path.join(__dirname, 'test-helpers', 'lmdb-writer.js');
    const child = spawn(process.execPath, [helper, dir, '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
    type Ack = { offset: number; seq?: number; key?: string };
    const acks: { session: string; acked: Ack[] }[] = [];
    let stderr = '';
    child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));

    await new Promise<void>((resolve, reject) => {
      let pending = '';
      const timer = setTimeout(() => reject(new Error(`writer acked ${acks.length} batches in 30 s; stderr: ${stderr}`)), 30_000);
      child.stdout.on('data', (data: Buffer) => {
        pending += data.toString();
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) acks.push(JSON.parse(line) as { session: string; acked: Ack[] });
        if (acks.length >= 200) {
          child.kill('SIGKILL');
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', () => {
        clearTimeout(timer);
        if (acks.length < 200) reject(new Error(`writer exited early; stderr: ${stderr}`));
      });
    });
    expect(await exited).toBe('SIGKILL');

    const store = openAt(dir);
    try {
      for (const { session, acked } of acks) {
        for (const ack of acked) {
          const page = await store.read(session, ack.offset - 1, 1);
          const event = page.items[0] as SessionEvent | undefined;
          if (ack.key === undefined) expect(event).toMatchObject({ offset: ack.offset, type: 'chunk', seq: ack.seq });
          else expect(event).toMatchObject({ offset: ack.offset, type: 'append', key: ack.key });
        }
      }
      // What was committed is whole: each session's chunks are exactly seqs 0..lastSeq.
      for (const session of ['s0', 's1', 's2', 's3']) {
        const meta = await store.meta(session);
        const seqs = (await readAll(store, session)).flatMap((item) => (item.type === 'chunk' ? [(item as SessionEvent).seq] : []));
        expect(seqs).toEqual(Array.from({ length: (meta.active?.lastSeq ?? -1) + 1 }, (_, i) => i));
      }
    } finally {
      await store.close();
    }
  });

  it('deleting a session leaves no key of it behind, expiry and dedupe indexes included', async () => {
    const dir = tempDir();
    const store = openAt(dir);
    for (const session of ['a', 'b']) {
      await store.openGeneration(session, { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await store.append(session, [chunk('g1', 1, 0, { priority: 0 }), dropped('g1', 1, 1), keyed('k1'), end('g1', 1, 2)]);
      await store.openGeneration(session, { generationId: 'g2', takeover: false, tag: TAG, ts: T0 });
      await store.append(session, [chunk('g2', 2, 0)]);
    }
    expect(await store.delete('a')).toMatchObject({ status: 'deleted' });
    await store.close();
    const keys = await rawKeys(dir);
    expect(keys.filter((key) => key.includes('a'))).toEqual([]);
    // Session b keeps every family it had: meta, batches, retention, seq runs, keys, ended, both indexes.
    expect(new Set(keys.filter((key) => key.includes('b')).map((key) => key[0]))).toEqual(new Set(['m', 'b', 'r', 'g', 'k', 'x', 't', 'd']));
  });

  it('expiring every session leaves no key behind in the environment', async () => {
    const dir = tempDir();
    const store = openAt(dir, { sessionTtlMs: 3_600_000, dedupeWindowMs: 7_200_000 });
    for (const session of ['a', 'b']) {
      await store.openGeneration(session, { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
      await store.append(session, [chunk('g1', 1, 0, { priority: 0 }), chunk('g1', 1, 1), keyed('k1'), end('g1', 1, 2)]);
      await store.openGeneration(session, { generationId: 'g2', takeover: false, tag: TAG, ts: T0 });
      await store.append(session, [chunk('g2', 2, 0, { priority: 1 }), dropped('g2', 2, 1)]);
      await store.openGeneration(session, { generationId: 'g2', takeover: false, tag: TAG, ts: T0 });
    }
    expect(await store.expire(T0 + 3_600_001)).toBe(2);
    await store.close();
    expect(await rawKeys(dir)).toEqual([]);
  });

  it('files a session in the expiry index once per second of writes, and the expirer re-files one it finds before it is due', async () => {
    const dir = tempDir();
    const ttl = 3_600_000;
    const store = openAt(dir, { sessionTtlMs: ttl });
    const second = T0 - (T0 % 1000) + 5_000; // the start of a second
    const timeKeys = async (): Promise<number[]> => {
      await store.close();
      const keys = (await rawKeys(dir)).filter((key) => key[0] === 't').map((key) => key[1] as number);
      return keys;
    };
    await store.append('s', [keyed('a', { ts: second + 100 })]);
    await store.append('s', [keyed('b', { ts: second + 900 })]); // same second: the entry stays where it is
    // Due by the entry (filed at second + 100's second), not by the session (last write second + 900).
    expect(await store.expire(second + 500 + ttl)).toBe(0);
    expect((await store.meta('s')).head).toBe(2);
    expect(await store.expire(second + 900 + ttl)).toBe(0);
    expect(await store.expire(second + 901 + ttl)).toBe(1);
    expect((await store.meta('s')).head).toBe(0);
    await store.append('t', [keyed('a', { ts: second + 100 })]);
    await store.append('t', [keyed('b', { ts: second + 1_100 })]); // the next second: the entry moves
    expect(await timeKeys()).toEqual([second + 1_000]);
  });

  it('a generation that ends leaves no seq index behind (dropped seqs included), and dedupe records leave with their window', async () => {
    const dir = tempDir();
    const store = openAt(dir, { sessionTtlMs: 24 * 3_600_000, dedupeWindowMs: 120_000 });
    await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
    await store.append('s', [chunk('g1', 1, 0), dropped('g1', 1, 1), chunk('g1', 1, 2), keyed('k1'), end('g1', 1, 3)]);
    await store.openGeneration('s', { generationId: 'g2', takeover: false, tag: TAG, ts: T0 });
    await store.append('s', [dropped('g2', 2, 0)]);
    await store.openGeneration('s', { generationId: 'g3', takeover: true, tag: TAG, ts: T0 });
    await store.expire(T0 + 120_001);
    await store.close();
    const families = new Set((await rawKeys(dir)).map((key) => key[0]));
    expect([...families].sort()).toEqual(['b', 'm', 'r', 't']);
  });

  it('keeps the seq index as one run per store call, and answers every retransmitted seq with its own offset', async () => {
    const dir = tempDir();
    const store = openAt(dir);
    await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
    const first = await store.append('s', Array.from({ length: 100 }, (_, seq) => chunk('g1', 1, seq)));
    // A dropped seq and an append in between break the run: seqs 100-101 dropped, 102-103 around k1.
    await store.append('s', [dropped('g1', 1, 100), dropped('g1', 1, 101), chunk('g1', 1, 102), keyed('k1'), chunk('g1', 1, 103)]);
    const retry = await store.append('s', Array.from({ length: 104 }, (_, seq) => chunk('g1', 1, seq)));
    await store.close();
    expect(retry.results.slice(0, 100)).toEqual(first.results.map((r) => ({ status: 'duplicate', offset: (r as { offset: number }).offset })));
    expect(retry.results.slice(100)).toEqual([{ status: 'dropped' }, { status: 'dropped' }, { status: 'duplicate', offset: 102 }, { status: 'duplicate', offset: 104 }]);
    const runs = (await rawKeys(dir)).filter((key) => key[0] === 'g').map((key) => key[3]);
    expect(runs).toEqual([0, 100, 102, 103]);
  });

  it('reads a seq index written one record per seq (older data) as runs of one', async () => {
    const dir = tempDir();
    const store = openAt(dir);
    await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
    await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1), chunk('g1', 1, 2)]);
    await store.close();
    const db = open({ path: dir });
    await db.transaction(() => {
      db.removeSync(['g', 's', 'g1', 0]);
      for (const seq of [0, 1, 2]) db.putSync(['g', 's', 'g1', seq], seq + 2);
    });
    await db.close();
    const reopened = openAt(dir);
    try {
      const retry = await reopened.append('s', [chunk('g1', 1, 1), chunk('g1', 1, 2), chunk('g1', 1, 3)]);
      expect(retry.results).toEqual([{ status: 'duplicate', offset: 3 }, { status: 'duplicate', offset: 4 }, { status: 'ok', offset: 5 }]);
    } finally {
      await reopened.close();
    }
  });

  it('stores each call as one batch record (one retention record per priority in it) and returns the batch bytes', async () => {
    const dir = tempDir();
    const store = openAt(dir);
    await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 });
    const written = await store.append('s', [...Array.from({ length: 100 }, (_, seq) => chunk('g1', 1, seq, { priority: (seq % 2) as Priority })), keyed('k1')]);
    await store.close();
    expect(written.encoded).toBeDefined();
    expect(decodeEvents(written.encoded as Uint8Array)).toEqual(written.events);
    const keys = await rawKeys(dir);
    expect(keys.filter((key) => key[0] === 'b')).toEqual([['b', 's', 1], ['b', 's', 2]]);
    expect(keys.filter((key) => key[0] === 'r')).toEqual([['r', 's', 0, 2], ['r', 's', 1, 2]]);
  });

  it('reads, trims, dedupes and resets exactly as the memory store for any sequence of calls, reopened or not', async () => {
    // The memory store runs the same engine over Maps: it is the model of what LMDB's batches hold.
    const call = fc.oneof(
      fc.record({ op: fc.constant('append' as const), items: fc.array(fc.record({ key: fc.integer({ min: 0, max: 40 }), priority: fc.integer({ min: 0, max: 3 }), size: fc.integer({ min: 1, max: 60 }) }), { minLength: 1, maxLength: 12 }) }),
      fc.record({ op: fc.constant('read' as const), after: fc.integer({ min: -1, max: 120 }), limit: fc.integer({ min: 1, max: 30 }) }),
      fc.constant({ op: 'reopen' as const }),
      fc.constant({ op: 'reset' as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(call, { minLength: 1, maxLength: 25 }), async (calls) => {
        const options = { retention: { maxEvents: 20, maxBytes: 400, criticalFactor: 4 } };
        const model = new MemoryStore(options);
        const dir = tempDir();
        let store = openAt(dir, options);
        try {
          for (const c of calls) {
            if (c.op === 'reset') {
              expect(await store.reset('s', T0)).toEqual(await model.reset('s', T0));
            } else if (c.op === 'reopen') {
              await store.close();
              store = openAt(dir, options);
            } else if (c.op === 'read') {
              expect(await store.read('s', c.after, c.limit)).toEqual(await model.read('s', c.after, c.limit));
            } else {
              const items: WriteItem[] = c.items.map((item) => keyed(`k${item.key}`, { priority: item.priority as Priority, size: item.size }));
              const [got, want] = [await store.append('s', items), await model.append('s', items)];
              expect({ results: got.results, events: got.events, trimmed: got.trimmed, head: got.head }).toEqual(want);
            }
          }
          expect(await readAll(store, 's', 7)).toEqual(await readAll(model, 's', 7));
          expect(await store.meta('s')).toEqual(await model.meta('s'));
        } finally {
          await store.close();
          await model.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('opens an environment of format 1 (one record per event) and reads, trims and dedupes it as before', async () => {
    const dir = tempDir();
    const options = { retention: { maxEvents: 4, maxBytes: 1_000_000, criticalFactor: 4 } };
    const store = openAt(dir, options);
    await store.append('s', [keyed('k1', { priority: 1 }), keyed('k2', { priority: 0 }), keyed('k3', { priority: 3 })]);
    const before = await readAll(store, 's');
    await store.close();
    // Rewrite what format 2 wrote as format 1 would have: ['e'] per event, a plain size per ['r'].
    const db = open({ path: dir });
    await db.transaction(() => {
      for (const { key, value } of db.getRange({ start: ['b'], end: ['c'] })) {
        for (const event of decodeEvents(value as Uint8Array)) db.putSync(['e', 's', event.offset], event);
        db.removeSync(key);
      }
      for (const { key, value } of db.getRange({ start: ['r'], end: ['s'] })) {
        const pairs = value as number[];
        db.removeSync(key);
        for (let i = 0; i < pairs.length; i += 2) db.putSync(['r', 's', (key as unknown[])[2] as number, pairs[i] as number], pairs[i + 1] as number);
      }
      db.putSync(['v'], 1);
    });
    await db.close();

    const reopened = openAt(dir, options);
    try {
      expect(await readAll(reopened, 's')).toEqual(before);
      const next = await reopened.append('s', [keyed('k1'), keyed('k4', { priority: 1 }), keyed('k5', { priority: 1 })]);
      expect(next.results).toEqual([{ status: 'duplicate', offset: 1 }, { status: 'ok', offset: 4 }, { status: 'ok', offset: 5 }]);
      // Five events over a bound of four: the oldest of the lowest priority present (k2, debug) goes.
      expect(next.trimmed).toEqual([{ offset: 2, priority: 0, size: 10 }]);
      expect((await readAll(reopened, 's')).map((item) => (item.type === 'gap' ? `gap ${item.from}` : item.key))).toEqual(['k1', 'gap 2', 'k3', 'k4', 'k5']);
    } finally {
      await reopened.close();
    }
    expect((await rawKeys(dir)).some((key) => key[0] === 'e')).toBe(false);
  });

  it('with durability fsync, writes resolve and are readable', async () => {
    const dir = tempDir();
    const store = openAt(dir, { durability: 'fsync' });
    try {
      const written = await store.append('s', [keyed('k1'), keyed('k2')]);
      expect(written.head).toBe(2);
      expect((await store.read('s', 0, 10)).items).toHaveLength(2);
    } finally {
      await store.close();
    }
  });

  it('treats a path with a dot in its name as a directory', async () => {
    const dir = path.join(tempDir(), 'spool.data');
    const store = openAt(dir);
    await store.append('s', [keyed('k1')]);
    await store.close();
    expect(fs.statSync(dir).isDirectory()).toBe(true);
  });
});
