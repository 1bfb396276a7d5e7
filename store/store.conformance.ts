/**
 * The SessionStore conformance suite: every store (memory, LMDB, Redis) runs it through
 * `runStoreConformance` from its own `*.test.ts`. It uses only the SessionStore interface, so a
 * store passes it or does not; nothing here knows which store it holds.
 */
import type { EndStatus, Gap, Offset, Priority, ReadItem, SessionEvent } from '../protocol/types';
import type { OpenResult, Retention, SessionPage, SessionStore, SessionSummary, StoreOptions, WriteItem, WriteResult } from './types';

/** Builds a fresh, empty store with the given options; `cleanup` closes it and removes its data. */
export type MakeStore = (options: StoreOptions) => Promise<{ store: SessionStore; cleanup(): Promise<void> }>;

/** How a store implements what the suite cannot observe through the interface alone. */
export interface ConformanceOptions {
  /**
   * How sessions expire. 'sweep': `expire(now)` removes them, judged by the `ts` of their writes
   * (memory, LMDB), so the suite drives time through `ts`. 'ttl': the store's server removes a
   * session sessionTtlMs of wall-clock time after its last stored write and `expire` returns 0
   * (Redis), so the suite writes with real time and a short TTL and waits for it.
   * @default 'sweep'
   */
  readonly expiry?: 'sweep' | 'ttl';
}

const T0 = 1_700_000_000_000;
/** The token tag every open of these tests draws; a re-open that presents it proves its producer. */
export const TAG = 'conformance-tag-000000';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

interface OptionOverrides {
  readonly retention?: Partial<Retention>;
  readonly sessionTtlMs?: number;
  readonly dedupeWindowMs?: number;
}

function storeOptions(over: OptionOverrides = {}): StoreOptions {
  return {
    retention: { maxEvents: 10_000, maxBytes: 1 << 30, criticalFactor: 2, ...over.retention },
    sessionTtlMs: over.sessionTtlMs ?? 24 * HOUR,
    dedupeWindowMs: over.dedupeWindowMs ?? 2 * MINUTE,
  };
}

interface ItemExtras {
  readonly priority?: Priority;
  readonly size?: number;
  readonly kind?: string;
  readonly data?: unknown;
  readonly ts?: number;
  /** A chunk the gateway dropped at the door (degradation, §7.6). */
  readonly drop?: true;
}

/** A chunk write item; priority 2, size 10, ts T0 unless overridden. */
export function chunk(generationId: string, epoch: number, seq: number, extra: ItemExtras = {}): WriteItem {
  return {
    op: 'chunk',
    generationId,
    epoch,
    seq,
    ...(extra.kind === undefined ? {} : { kind: extra.kind }),
    priority: extra.priority ?? 2,
    ts: extra.ts ?? T0,
    data: extra.data ?? `${generationId}#${seq}`,
    size: extra.size ?? 10,
    ...(extra.drop === undefined ? {} : { drop: extra.drop }),
  };
}

/** A dropped priority-0 chunk (degradation, §7.6): consumes its seq, stores nothing. */
export function dropped(generationId: string, epoch: number, seq: number, extra: Omit<ItemExtras, 'drop'> = {}): WriteItem {
  return chunk(generationId, epoch, seq, { priority: 0, ...extra, drop: true });
}

/** An end write item (`seq` = the generation's chunk count). */
export function end(generationId: string, epoch: number, seq: number, status: EndStatus = 'done', extra: { error?: string; ts?: number; ifIdleSince?: number } = {}): WriteItem {
  return {
    op: 'end',
    generationId,
    epoch,
    seq,
    status,
    ...(extra.error === undefined ? {} : { error: extra.error }),
    ts: extra.ts ?? T0,
    ...(extra.ifIdleSince === undefined ? {} : { ifIdleSince: extra.ifIdleSince }),
  };
}

/** An append write item with idempotency key `key`; priority 3 (critical) unless overridden; `ifHead` makes it conditional. */
export function keyed(key: string, extra: ItemExtras & { readonly ifHead?: Offset } = {}): WriteItem {
  const item: WriteItem = { op: 'append', key, kind: extra.kind ?? 'user', priority: extra.priority ?? 3, ts: extra.ts ?? T0, data: extra.data ?? { text: key }, size: extra.size ?? 10 };
  return extra.ifHead === undefined ? item : { ...item, ifHead: extra.ifHead };
}

type Opened = Extract<OpenResult, { status: 'opened' }>;

async function openNew(store: SessionStore, session: string, generationId: string, takeover = false, ts = T0): Promise<Opened> {
  const result = await store.openGeneration(session, { generationId, takeover, tag: TAG, ts });
  if (result.status !== 'opened') throw new Error(`expected ${generationId} to open, got ${JSON.stringify(result)}`);
  return result;
}

/** The offset of each `ok` result, or the status of anything else. */
function offsetsOf(results: readonly WriteResult[]): (Offset | string)[] {
  return results.map((result) => (result.status === 'ok' ? result.offset : result.status));
}

/** Reads the whole retained log by following `through`, failing if a read makes no progress. */
export async function readAll(store: SessionStore, session: string, limit = 1000): Promise<ReadItem[]> {
  const items: ReadItem[] = [];
  let after = 0;
  for (;;) {
    const page = await store.read(session, after, limit);
    items.push(...page.items);
    if (page.through >= page.head) return items;
    if (page.through <= after) throw new Error(`read after ${after} made no progress (head ${page.head})`);
    after = page.through;
  }
}

function eventsIn(items: readonly ReadItem[]): SessionEvent[] {
  return items.filter((item): item is SessionEvent => item.type !== 'gap');
}

/** A compact picture of a read: event offsets as numbers, gaps as 'from-to'. */
function layout(items: readonly ReadItem[]): (number | string)[] {
  return items.map((item) => (item.type === 'gap' ? `${(item as Gap).from}-${(item as Gap).to}` : (item as SessionEvent).offset));
}

const EMPTY_META = { epoch: 0, head: 0, active: null, count: 0, bytes: 0 };

/** How long a test waits for a notice or a condition before failing (a loaded machine included). */
const WAIT_MS = 20_000;

/** Polls `check` every 20 ms until it returns true; fails after WAIT_MS naming `what`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Records the heads a watcher is told and waits for one (no sleeps: resolves on the notice). */
export class NoticeLog {
  readonly heads: number[] = [];
  private waiters: { head: number; resolve(): void }[] = [];

  readonly listener = ({ head }: { head: number }): void => {
    this.heads.push(head);
    this.waiters = this.waiters.filter((waiter) => {
      if (head < waiter.head) return true;
      waiter.resolve();
      return false;
    });
  };

  get max(): number {
    return this.heads.reduce((max, head) => Math.max(max, head), 0);
  }

  /** Resolves once a notice with a head of at least `head` arrived. */
  reached(head: number, timeoutMs = WAIT_MS): Promise<void> {
    if (this.max >= head) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no notice with head >= ${head} within ${timeoutMs} ms (heads seen: ${JSON.stringify(this.heads)})`)), timeoutMs);
      this.waiters.push({ head, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

/** Defines the suite for one store implementation. */
export function runStoreConformance(name: string, makeStore: MakeStore, conformance: ConformanceOptions = {}): void {
  const expiry = conformance.expiry ?? 'sweep';
  describe(`SessionStore conformance: ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (let cleanup = cleanups.pop(); cleanup !== undefined; cleanup = cleanups.pop()) await cleanup();
    });
    async function open(over: OptionOverrides = {}): Promise<SessionStore> {
      const made = await makeStore(storeOptions(over));
      cleanups.push(made.cleanup);
      return made.store;
    }

    describe('offsets and generations', () => {
      it('an unknown session has epoch 0, head 0, no active generation and an empty log', async () => {
        const store = await open();
        expect(await store.meta('nobody')).toEqual(EMPTY_META);
        expect(await store.read('nobody', 0, 10)).toEqual({ items: [], head: 0, through: 0 });
      });

      it('offsets are contiguous from 1 across gen.start, chunks, appends and gen.end', async () => {
        const store = await open();
        const opened = await openNew(store, 's', 'g1');
        const written = await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1, { kind: 'text' }), keyed('u1'), chunk('g1', 1, 2), end('g1', 1, 3)]);
        expect(offsetsOf(written.results)).toEqual([2, 3, 4, 5, 6]);
        expect(written.events.map((event) => event.offset)).toEqual([2, 3, 4, 5, 6]);
        expect(written.head).toBe(6);
        const log = await readAll(store, 's');
        expect(log).toEqual([...opened.events, ...written.events]);
        expect(log[1]).toEqual({ offset: 2, type: 'chunk', generationId: 'g1', seq: 0, priority: 2, ts: T0, data: 'g1#0' });
        expect(log[2]).toEqual({ offset: 3, type: 'chunk', generationId: 'g1', seq: 1, kind: 'text', priority: 2, ts: T0, data: 'g1#1' });
        expect(log[3]).toEqual({ offset: 4, type: 'append', key: 'u1', kind: 'user', priority: 3, ts: T0, data: { text: 'u1' } });
        expect(log[5]).toEqual({ offset: 6, type: 'gen.end', generationId: 'g1', seq: 3, status: 'done', priority: 3, ts: T0 });
      });

      it('opening a new generation bumps the epoch, appends gen.start and starts at seq 0', async () => {
        const store = await open();
        const opened = await openNew(store, 's', 'g1', false, T0 + 7);
        expect(opened).toEqual({
          status: 'opened', epoch: 1, nextSeq: 0, startOffset: 1, fenced: null, trimmed: [],
          events: [{ offset: 1, type: 'gen.start', generationId: 'g1', priority: 3, ts: T0 + 7 }],
        });
        expect(await store.meta('s')).toEqual({
          epoch: 1, head: 1, count: 1, bytes: 0,
          active: { id: 'g1', epoch: 1, lastSeq: -1, startOffset: 1, lastWriteTs: T0 + 7 },
        });
        await store.append('s', [end('g1', 1, 0)]);
        expect(await openNew(store, 's', 'g2')).toMatchObject({ epoch: 2, nextSeq: 0, startOffset: 3 });
      });

      it('re-opening the active generation resumes after its highest durable seq and writes nothing', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1), chunk('g1', 1, 2)]);
        const resumed = { status: 'resumed', epoch: 1, tag: TAG, nextSeq: 3, startOffset: 1, takeover: false };
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeTag: TAG, tag: TAG, ts: T0 })).toEqual(resumed);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: true, resumeTag: TAG, tag: TAG, ts: T0 })).toEqual(resumed);
        expect(await store.meta('s')).toMatchObject({ epoch: 1, head: 4 });
      });

      it('re-opening the active generation without proof of being its producer answers active and changes nothing', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0)]);
        const before = await store.meta('s');
        const refused = { status: 'active', activeId: 'g1', epoch: 1 };
        // No proof, a wrong tag, a secret the first open did not carry, and a resume (which never takes over).
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: 'other-tag-000000000000', ts: T0 + 5 })).toEqual(refused);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeTag: 'forged-tag-00000000000', tag: 'x-tag-0000000000000000', ts: T0 + 5 })).toEqual(refused);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, secret: 'digest-of-a-secret', tag: 'x-tag-0000000000000000', ts: T0 + 5 })).toEqual(refused);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: true, resumeOnly: true, resumeTag: 'forged-tag-00000000000', tag: 'x-tag-0000000000000000', ts: T0 + 5 })).toEqual(refused);
        expect(await store.meta('s')).toEqual(before);
        expect(layout(await readAll(store, 's'))).toEqual([1, 2]);
      });

      it('a retried first open proves its producer by repeating the secret of the first open', async () => {
        const store = await open();
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, secret: 'secret-digest-A', tag: TAG, ts: T0 })).toMatchObject({ status: 'opened', epoch: 1 });
        await store.append('s', [chunk('g1', 1, 0)]);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, secret: 'secret-digest-A', tag: 'unused-tag-00000000000', ts: T0 + 1 })).toEqual({
          status: 'resumed', epoch: 1, tag: TAG, nextSeq: 1, startOffset: 1, takeover: false,
        });
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, secret: 'secret-digest-B', tag: 'unused-tag-00000000000', ts: T0 + 1 })).toEqual({ status: 'active', activeId: 'g1', epoch: 1 });
        expect(layout(await readAll(store, 's'))).toEqual([1, 2]);
      });

      it('takeover of the active generation without proof fences its writer: new epoch and tag, same seqs, no event', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)]);
        const NEW_TAG = 'taken-over-tag-0000000';
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: true, secret: 'digest-C', tag: NEW_TAG, ts: T0 + 3 })).toEqual({
          status: 'resumed', epoch: 2, tag: NEW_TAG, nextSeq: 2, startOffset: 1, takeover: true,
        });
        expect(await store.meta('s')).toMatchObject({ epoch: 2, head: 3, active: { id: 'g1', epoch: 2, lastSeq: 1, startOffset: 1 } });
        // The old writer's token no longer proves anything, and its writes are fenced.
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeOnly: true, resumeTag: TAG, tag: 'x-tag-0000000000000000', ts: T0 + 4 })).toEqual({ status: 'active', activeId: 'g1', epoch: 2 });
        const stale = await store.append('s', [chunk('g1', 1, 2), end('g1', 1, 2)]);
        expect(stale.results).toEqual([{ status: 'fenced', epoch: 2 }, { status: 'fenced', epoch: 2 }]);
        // The new writer resumes with its tag or its secret and continues the seqs.
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeOnly: true, resumeTag: NEW_TAG, tag: 'x-tag-0000000000000000', ts: T0 + 4 })).toMatchObject({ status: 'resumed', epoch: 2, nextSeq: 2 });
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, secret: 'digest-C', tag: 'x-tag-0000000000000000', ts: T0 + 4 })).toMatchObject({ status: 'resumed', epoch: 2, tag: NEW_TAG });
        const fresh = await store.append('s', [chunk('g1', 2, 1), chunk('g1', 2, 2), end('g1', 2, 3)]);
        expect(fresh.results).toEqual([{ status: 'duplicate', offset: 3 }, { status: 'ok', offset: 4 }, { status: 'ok', offset: 5 }]);
        expect(layout(await readAll(store, 's'))).toEqual([1, 2, 3, 4, 5]);
      });

      it('an open retried after its first attempt reached the store proves itself with the tag it drew', async () => {
        const store = await open();
        const first = { generationId: 'g1', takeover: false, tag: 'drawn-by-this-open-000', resumeTag: 'drawn-by-this-open-000', ts: T0 };
        expect(await store.openGeneration('s', first)).toMatchObject({ status: 'opened', epoch: 1 });
        expect(await store.openGeneration('s', first)).toEqual({ status: 'resumed', epoch: 1, tag: 'drawn-by-this-open-000', nextSeq: 0, startOffset: 1, takeover: false });
        expect(await store.openGeneration('s', { ...first, takeover: true })).toMatchObject({ status: 'resumed', epoch: 1, takeover: false });
        expect(layout(await readAll(store, 's'))).toEqual([1]);
      });

      it('a generation opened without a secret is never resumed by one', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, secret: '', tag: 'x-tag-0000000000000000', ts: T0 })).toMatchObject({ status: 'active' });
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeTag: '', tag: 'x-tag-0000000000000000', ts: T0 })).toMatchObject({ status: 'active' });
      });

      it('a resumeOnly open never creates a generation: unknown when neither active nor ended', async () => {
        const store = await open();
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeOnly: true, tag: TAG, ts: T0 })).toEqual({ status: 'unknown' });
        expect(await store.meta('s')).toMatchObject({ epoch: 0, head: 0, active: null });
        await openNew(store, 's', 'g1');
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeOnly: true, resumeTag: TAG, tag: TAG, ts: T0 })).toMatchObject({ status: 'resumed', nextSeq: 0 });
        await openNew(store, 's', 'g2', true);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeOnly: true, tag: TAG, ts: T0 })).toMatchObject({ status: 'closed', endStatus: 'fenced' });
      });

      it('opening while another generation is active is refused unless takeover is asked for', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        expect(await store.openGeneration('s', { generationId: 'g2', takeover: false, tag: TAG, ts: T0 })).toEqual({ status: 'active', activeId: 'g1', epoch: 1 });
        expect(await store.meta('s')).toMatchObject({ epoch: 1, head: 1, active: { id: 'g1' } });
      });

      it('takeover ends the displaced generation with gen.end fenced before the new gen.start', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)]);
        const opened = await openNew(store, 's', 'g2', true, T0 + 5);
        expect(opened).toMatchObject({ epoch: 2, nextSeq: 0, startOffset: 5, fenced: 'g1' });
        expect(opened.events).toEqual([
          { offset: 4, type: 'gen.end', generationId: 'g1', seq: 2, status: 'fenced', priority: 3, ts: T0 + 5 },
          { offset: 5, type: 'gen.start', generationId: 'g2', priority: 3, ts: T0 + 5 },
        ]);
        expect(await store.meta('s')).toMatchObject({ epoch: 2, head: 5, active: { id: 'g2', epoch: 2, lastSeq: -1, startOffset: 5 } });
      });

      it('writes carrying a displaced epoch are fenced and never stored', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await openNew(store, 's', 'g2', true);
        const stale = await store.append('s', [chunk('g1', 1, 0), chunk('g2', 1, 0), end('other', 1, 0)]);
        expect(stale.results).toEqual([{ status: 'fenced', epoch: 2 }, { status: 'fenced', epoch: 2 }, { status: 'fenced', epoch: 2 }]);
        expect(stale.events).toEqual([]);
        expect(stale.head).toBe(3);
        expect(layout(await readAll(store, 's'))).toEqual([1, 2, 3]);
      });

      it('opening a generation that already ended answers closed with how and where it ended', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await openNew(store, 's', 'g2', true);
        const ended = await store.append('s', [end('g2', 2, 0, 'done')]);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: true, tag: TAG, ts: T0 })).toEqual({ status: 'closed', endStatus: 'fenced', endOffset: 2 });
        expect(await store.openGeneration('s', { generationId: 'g2', takeover: false, tag: TAG, ts: T0 })).toEqual({ status: 'closed', endStatus: 'done', endOffset: ended.head });
        expect(await store.meta('s')).toMatchObject({ epoch: 2, head: 4, active: null });
      });

      it('opening a generation applies retention and reports what it trimmed', async () => {
        const store = await open({ retention: { maxEvents: 3 } });
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0, { priority: 0, size: 4 }), chunk('g1', 1, 1, { priority: 2, size: 6 })]);
        const opened = await openNew(store, 's', 'g2', true);
        expect(opened.trimmed).toEqual([{ offset: 2, priority: 0, size: 4 }, { offset: 3, priority: 2, size: 6 }]);
        expect(await store.meta('s')).toMatchObject({ head: 5, count: 3, bytes: 0 });
      });
    });

    describe('chunks and ends', () => {
      it('a retransmitted chunk is stored once and answered with its original offset', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        expect(offsetsOf((await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)])).results)).toEqual([2, 3]);
        const retry = await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1), chunk('g1', 1, 2)]);
        expect(retry.results).toEqual([{ status: 'duplicate', offset: 2 }, { status: 'duplicate', offset: 3 }, { status: 'ok', offset: 4 }]);
        expect(retry.events.map((event) => event.seq)).toEqual([2]);
        const sameBatch = await store.append('s', [chunk('g1', 1, 3), chunk('g1', 1, 3)]);
        expect(sameBatch.results).toEqual([{ status: 'ok', offset: 5 }, { status: 'duplicate', offset: 5 }]);
        const chunks = eventsIn(await readAll(store, 's')).filter((event) => event.type === 'chunk');
        expect(chunks.map((event) => event.seq)).toEqual([0, 1, 2, 3]);
      });

      it('a chunk that skips ahead is refused with seq_gap naming the expected seq and is not stored', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0)]);
        const gap = await store.append('s', [chunk('g1', 1, 2), chunk('g1', 1, 3)]);
        expect(gap.results).toEqual([{ status: 'seq_gap', expected: 1 }, { status: 'seq_gap', expected: 1 }]);
        expect(gap.head).toBe(2);
        expect(offsetsOf((await store.append('s', [chunk('g1', 1, 1), chunk('g1', 1, 2)])).results)).toEqual([3, 4]);
      });

      it('chunks for a generation that is not the active one are answered closed', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        const other = await store.append('s', [chunk('g9', 1, 0), chunk('g1', 2, 0)]);
        expect(other.results).toEqual([{ status: 'closed' }, { status: 'closed' }]);
        await store.append('s', [chunk('g1', 1, 0), end('g1', 1, 1)]);
        const late = await store.append('s', [chunk('g1', 1, 1), chunk('g1', 1, 0)]);
        expect(late.results).toEqual([{ status: 'closed' }, { status: 'closed' }]);
        expect(late.head).toBe(3);
      });

      it('refused writes leave an unknown session unknown', async () => {
        const store = await open();
        const refused = await store.append('ghost', [chunk('g1', 1, 0), end('g1', 1, 0)]);
        expect(refused.results).toEqual([{ status: 'closed' }, { status: 'closed' }]);
        expect(refused.head).toBe(0);
        expect(await store.meta('ghost')).toEqual(EMPTY_META);
        expect(await store.expire(T0 + 1000 * HOUR)).toBe(0);
      });

      it('end stores gen.end at the chunk count and clears the active generation', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        const written = await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1), end('g1', 1, 2, 'error', { error: 'model overloaded', ts: T0 + 9 })]);
        expect(written.results[2]).toEqual({ status: 'ok', offset: 4 });
        expect(written.events[2]).toEqual({ offset: 4, type: 'gen.end', generationId: 'g1', seq: 2, status: 'error', error: 'model overloaded', priority: 3, ts: T0 + 9 });
        expect(await store.meta('s')).toMatchObject({ epoch: 1, head: 4, active: null });
      });

      it('end with a seq other than the chunk count is refused with seq_gap', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)]);
        const refused = await store.append('s', [end('g1', 1, 5), end('g1', 1, 1)]);
        expect(refused.results).toEqual([{ status: 'seq_gap', expected: 2 }, { status: 'seq_gap', expected: 2 }]);
        expect(await store.meta('s')).toMatchObject({ head: 3, active: { id: 'g1', lastSeq: 1 } });
      });

      it('a repeated end is a duplicate with the original offset and end status, even after a newer generation opened', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [end('g1', 1, 0, 'done')]);
        const again = await store.append('s', [end('g1', 1, 0, 'aborted')]);
        expect(again.results).toEqual([{ status: 'duplicate', offset: 2, endStatus: 'done' }]);
        expect(again.events).toEqual([]);
        await openNew(store, 's', 'g2');
        expect((await store.append('s', [end('g1', 1, 0, 'done')])).results).toEqual([{ status: 'duplicate', offset: 2, endStatus: 'done' }]);
      });

      it('items of one batch apply in order, each with its own result', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        const batch = await store.append('s', [
          chunk('g1', 1, 0), chunk('g1', 1, 2), chunk('g1', 1, 1), chunk('g1', 1, 1), keyed('k'), end('g1', 1, 2), chunk('g1', 1, 2),
        ]);
        expect(batch.results).toEqual([
          { status: 'ok', offset: 2 }, { status: 'seq_gap', expected: 1 }, { status: 'ok', offset: 3 }, { status: 'duplicate', offset: 3 },
          { status: 'ok', offset: 4 }, { status: 'ok', offset: 5 }, { status: 'closed' },
        ]);
        expect(batch.events.map((event) => event.type)).toEqual(['chunk', 'chunk', 'append', 'gen.end']);
      });
    });

    describe('dropped chunks (degradation)', () => {
      it('a dropped chunk consumes its seq and stores nothing; the next chunk gets the next offset', async () => {
        const store = await open();
        await openNew(store, 's', 'g1', false, T0);
        await store.append('s', [chunk('g1', 1, 0, { ts: T0 + 1 })]);
        const drop = await store.append('s', [dropped('g1', 1, 1, { ts: T0 + 2 })]);
        expect(drop).toEqual({ results: [{ status: 'dropped' }], events: [], trimmed: [], head: 2 });
        expect(await store.meta('s')).toEqual({
          epoch: 1, head: 2, count: 2, bytes: 10,
          active: { id: 'g1', epoch: 1, lastSeq: 1, startOffset: 1, lastWriteTs: T0 + 2 },
        });
        const next = await store.append('s', [chunk('g1', 1, 2, { ts: T0 + 3 })]);
        expect(next.results).toEqual([{ status: 'ok', offset: 3 }]);
        const chunks = eventsIn(await readAll(store, 's')).filter((event) => event.type === 'chunk');
        expect(chunks.map((event) => [event.offset, event.seq, event.data])).toEqual([[2, 0, 'g1#0'], [3, 2, 'g1#2']]);
      });

      it('drops, retransmissions and stored chunks mix in one batch, each answered in order', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        const batch = await store.append('s', [
          chunk('g1', 1, 0), dropped('g1', 1, 1), chunk('g1', 1, 1), dropped('g1', 1, 1), dropped('g1', 1, 2), chunk('g1', 1, 3), keyed('k'), chunk('g1', 1, 4), end('g1', 1, 5),
        ]);
        expect(batch.results).toEqual([
          { status: 'ok', offset: 2 }, { status: 'dropped' }, { status: 'dropped' }, { status: 'dropped' }, { status: 'dropped' },
          { status: 'ok', offset: 3 }, { status: 'ok', offset: 4 }, { status: 'ok', offset: 5 }, { status: 'ok', offset: 6 },
        ]);
        expect(batch.events.map((event) => [event.offset, event.type, event.seq, event.data ?? null])).toEqual([
          [2, 'chunk', 0, 'g1#0'], [3, 'chunk', 3, 'g1#3'], [4, 'append', undefined, { text: 'k' }], [5, 'chunk', 4, 'g1#4'], [6, 'gen.end', 5, null],
        ]);
        expect(await readAll(store, 's')).toEqual([expect.objectContaining({ type: 'gen.start' }), ...batch.events]);
      });

      it('a retransmitted dropped seq answers dropped, whether marked drop or not, and is never stored', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), dropped('g1', 1, 1), chunk('g1', 1, 2)]);
        const retry = await store.append('s', [dropped('g1', 1, 1), chunk('g1', 1, 1), chunk('g1', 1, 0), dropped('g1', 1, 0), chunk('g1', 1, 2, { priority: 0, drop: true })]);
        expect(retry.results).toEqual([
          { status: 'dropped' }, { status: 'dropped' }, { status: 'duplicate', offset: 2 }, { status: 'duplicate', offset: 2 }, { status: 'duplicate', offset: 3 },
        ]);
        expect(retry.events).toEqual([]);
        expect(await store.meta('s')).toMatchObject({ head: 3, count: 3, active: { lastSeq: 2 } });
        expect(layout(await readAll(store, 's'))).toEqual([1, 2, 3]);
      });

      it('a drop is checked like a chunk: fenced for a stale epoch, closed when not active, seq_gap past the next seq', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), dropped('g1', 1, 1)]);
        await openNew(store, 's', 'g2', true);
        const refused = await store.append('s', [dropped('g1', 1, 2), dropped('g1', 1, 1), dropped('g9', 2, 0), dropped('g2', 2, 1), dropped('g2', 2, 5)]);
        expect(refused.results).toEqual([
          { status: 'fenced', epoch: 2 }, { status: 'fenced', epoch: 2 }, { status: 'closed' },
          { status: 'seq_gap', expected: 0 }, { status: 'seq_gap', expected: 0 },
        ]);
        expect(await store.meta('s')).toMatchObject({ epoch: 2, head: 4, active: { id: 'g2', lastSeq: -1 } });
        // g1 was fenced at its next seq after the drop: the drop counted.
        expect(eventsIn(await readAll(store, 's'))[2]).toMatchObject({ type: 'gen.end', generationId: 'g1', seq: 2, status: 'fenced' });
        const ghost = await store.append('ghost', [dropped('g1', 1, 0)]);
        expect(ghost.results).toEqual([{ status: 'closed' }]);
        expect(await store.meta('ghost')).toEqual(EMPTY_META);
      });

      it('end after drops succeeds at lastSeq+1 with gen.end.seq there, and is refused with seq_gap elsewhere', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        expect((await store.append('s', [dropped('g1', 1, 0), dropped('g1', 1, 1)])).results).toEqual([{ status: 'dropped' }, { status: 'dropped' }]);
        expect((await store.append('s', [end('g1', 1, 1)])).results).toEqual([{ status: 'seq_gap', expected: 2 }]);
        const ended = await store.append('s', [end('g1', 1, 2, 'done', { ts: T0 + 4 })]);
        expect(ended.results).toEqual([{ status: 'ok', offset: 2 }]);
        expect(ended.events).toEqual([{ offset: 2, type: 'gen.end', generationId: 'g1', seq: 2, status: 'done', priority: 3, ts: T0 + 4 }]);
        expect(await store.meta('s')).toMatchObject({ head: 2, count: 2, active: null });
        // The generation ended: its drops are forgotten with its seq index, and late frames are closed.
        expect((await store.append('s', [dropped('g1', 1, 1), chunk('g1', 1, 0)])).results).toEqual([{ status: 'closed' }, { status: 'closed' }]);
      });

      it('a drop is never refused with full: it stores nothing', async () => {
        const store = await open({ retention: { maxEvents: 2, criticalFactor: 2 } });
        await openNew(store, 's', 'g1');
        await store.append('s', [keyed('k1'), keyed('k2'), keyed('k3')]);
        const written = await store.append('s', [chunk('g1', 1, 0), dropped('g1', 1, 0), chunk('g1', 1, 0), chunk('g1', 1, 1), end('g1', 1, 1)]);
        expect(written.results).toEqual([{ status: 'full' }, { status: 'dropped' }, { status: 'dropped' }, { status: 'full' }, { status: 'ok', offset: 5 }]);
        expect(await store.meta('s')).toMatchObject({ head: 5, count: 5, active: null });
      });
    });

    describe('conditional end (idle timeout)', () => {
      it('an end with ifIdleSince before the last write is busy with that lastWriteTs and stores nothing', async () => {
        const store = await open();
        await openNew(store, 's', 'g1', false, T0);
        await store.append('s', [chunk('g1', 1, 0, { ts: T0 + 10 })]);
        const busy = await store.append('s', [end('g1', 1, 1, 'timeout', { ts: T0 + 50, ifIdleSince: T0 + 9 })]);
        expect(busy).toEqual({ results: [{ status: 'busy', lastWriteTs: T0 + 10 }], events: [], trimmed: [], head: 2 });
        expect(await store.meta('s')).toMatchObject({ head: 2, count: 2, active: { id: 'g1', lastSeq: 0, lastWriteTs: T0 + 10 } });
        // Busy is answered before the seq check: the timeout learns of the activity, not a seq.
        expect((await store.append('s', [end('g1', 1, 7, 'timeout', { ifIdleSince: T0 })])).results).toEqual([{ status: 'busy', lastWriteTs: T0 + 10 }]);
        expect(layout(await readAll(store, 's'))).toEqual([1, 2]);
      });

      it('an end with ifIdleSince at or after the last write ends the generation as usual', async () => {
        const store = await open();
        await openNew(store, 's', 'g1', false, T0);
        await store.append('s', [chunk('g1', 1, 0, { ts: T0 + 10 })]);
        const ended = await store.append('s', [end('g1', 1, 1, 'timeout', { ts: T0 + 40, ifIdleSince: T0 + 10 })]);
        expect(ended.results).toEqual([{ status: 'ok', offset: 3 }]);
        expect(ended.events).toEqual([{ offset: 3, type: 'gen.end', generationId: 'g1', seq: 1, status: 'timeout', priority: 3, ts: T0 + 40 }]);
        expect(await store.meta('s')).toMatchObject({ head: 3, active: null });
        // A retried conditional end learns how the generation ended, as any end does.
        expect((await store.append('s', [end('g1', 1, 1, 'timeout', { ifIdleSince: T0 })])).results).toEqual([{ status: 'duplicate', offset: 3, endStatus: 'timeout' }]);
      });

      it('a conditional end is fenced or closed before it is busy', async () => {
        const store = await open();
        await openNew(store, 's', 'g1', false, T0);
        await store.append('s', [chunk('g1', 1, 0, { ts: T0 + 10 })]);
        expect((await store.append('s', [end('g9', 1, 0, 'timeout', { ifIdleSince: T0 })])).results).toEqual([{ status: 'closed' }]);
        await openNew(store, 's', 'g2', true, T0 + 20);
        await store.append('s', [chunk('g2', 2, 0, { ts: T0 + 30 })]);
        expect((await store.append('s', [end('g3', 1, 0, 'timeout', { ifIdleSince: T0 })])).results).toEqual([{ status: 'fenced', epoch: 2 }]);
      });

      it('drops and chunks earlier in the same batch count as activity', async () => {
        const store = await open();
        await openNew(store, 's', 'g1', false, T0);
        const batch = await store.append('s', [dropped('g1', 1, 0, { ts: T0 + 5 }), end('g1', 1, 1, 'timeout', { ts: T0 + 6, ifIdleSince: T0 + 4 })]);
        expect(batch.results).toEqual([{ status: 'dropped' }, { status: 'busy', lastWriteTs: T0 + 5 }]);
        expect((await store.meta('s')).active).toMatchObject({ lastSeq: 0, lastWriteTs: T0 + 5 });
      });

      it('a resumed open raises the generation lastWriteTs (never lowers it) and stores nothing', async () => {
        const store = await open();
        await openNew(store, 's', 'g1', false, T0);
        await store.append('s', [chunk('g1', 1, 0, { ts: T0 + 10 })]);
        const resumed = { status: 'resumed', epoch: 1, tag: TAG, nextSeq: 1, startOffset: 1, takeover: false };
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeTag: TAG, tag: TAG, ts: T0 + 30 })).toEqual(resumed);
        expect(await store.meta('s')).toEqual({
          epoch: 1, head: 2, count: 2, bytes: 10,
          active: { id: 'g1', epoch: 1, lastSeq: 0, startOffset: 1, lastWriteTs: T0 + 30 },
        });
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: true, resumeTag: TAG, tag: TAG, ts: T0 + 20 })).toEqual(resumed);
        expect((await store.meta('s')).active?.lastWriteTs).toBe(T0 + 30);
        // The idle timeout of another process, which last saw the chunk at T0 + 10, must not end it.
        expect((await store.append('s', [end('g1', 1, 1, 'timeout', { ifIdleSince: T0 + 25 })])).results).toEqual([{ status: 'busy', lastWriteTs: T0 + 30 }]);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, resumeOnly: true, resumeTag: TAG, tag: TAG, ts: T0 + 40 })).toEqual(resumed);
        expect((await store.append('s', [end('g1', 1, 1, 'timeout', { ifIdleSince: T0 + 35 })])).results).toEqual([{ status: 'busy', lastWriteTs: T0 + 40 }]);
        expect(layout(await readAll(store, 's'))).toEqual([1, 2]);
        const ended = await store.append('s', [end('g1', 1, 1, 'timeout', { ts: T0 + 70, ifIdleSince: T0 + 40 })]);
        expect(ended.results).toEqual([{ status: 'ok', offset: 3 }]);
      });
    });

    describe('append keys', () => {
      it('an append with a key seen before is stored once and answered with the original offset', async () => {
        const store = await open();
        expect(offsetsOf((await store.append('s', [keyed('k1'), keyed('k2')])).results)).toEqual([1, 2]);
        expect((await store.append('s', [keyed('k1')])).results).toEqual([{ status: 'duplicate', offset: 1 }]);
        expect((await store.append('s', [keyed('k3'), keyed('k3')])).results).toEqual([{ status: 'ok', offset: 3 }, { status: 'duplicate', offset: 3 }]);
        expect(layout(await readAll(store, 's'))).toEqual([1, 2, 3]);
        expect(await store.meta('s')).toMatchObject({ epoch: 0, head: 3, active: null });
      });

      it('append keys and ended generations are forgotten after the dedupe window', async () => {
        const store = await open({ dedupeWindowMs: 2 * MINUTE, sessionTtlMs: 24 * HOUR });
        await store.append('s', [keyed('k1', { ts: T0 })]);
        await openNew(store, 's', 'g1', false, T0);
        await store.append('s', [end('g1', 1, 0, 'done', { ts: T0 })]);
        expect(await store.expire(T0 + MINUTE)).toBe(0);
        expect((await store.append('s', [keyed('k1', { ts: T0 + MINUTE })])).results).toEqual([{ status: 'duplicate', offset: 1 }]);
        expect(await store.expire(T0 + 2 * MINUTE + 1)).toBe(0);
        expect((await store.append('s', [keyed('k1', { ts: T0 + 3 * MINUTE })])).results).toEqual([{ status: 'ok', offset: 4 }]);
        expect(await openNew(store, 's', 'g1', false, T0 + 3 * MINUTE)).toMatchObject({ epoch: 2, startOffset: 5 });
      });

      it('a dedupe window under two minutes is raised to two minutes', async () => {
        const store = await open({ dedupeWindowMs: 1000 });
        await store.append('s', [keyed('k1', { ts: T0 })]);
        await store.expire(T0 + MINUTE);
        expect((await store.append('s', [keyed('k1', { ts: T0 + MINUTE })])).results).toEqual([{ status: 'duplicate', offset: 1 }]);
      });
    });

    describe('compare-and-append (ifHead)', () => {
      it('a conditional append is stored when the head is the one it names, else answered conflict with the head and nothing is stored', async () => {
        const store = await open();
        expect((await store.append('s', [keyed('a', { ifHead: 1 })])).results).toEqual([{ status: 'conflict', head: 0 }]);
        // A refused conditional append leaves an unknown session unknown.
        expect(await store.meta('s')).toEqual(EMPTY_META);
        expect((await store.append('s', [keyed('a', { ifHead: 0 })])).results).toEqual([{ status: 'ok', offset: 1 }]);
        const stale = await store.append('s', [keyed('b', { ifHead: 0 })]);
        expect(stale.results).toEqual([{ status: 'conflict', head: 1 }]);
        expect(stale.events).toEqual([]);
        expect((await store.append('s', [keyed('b', { ifHead: 1 })])).results).toEqual([{ status: 'ok', offset: 2 }]);
        expect(layout(await readAll(store, 's'))).toEqual([1, 2]);
      });

      it('the head is compared after the items before it in the same call are applied', async () => {
        const store = await open();
        const { epoch } = await openNew(store, 's', 'g');
        const result = await store.append('s', [chunk('g', epoch, 0), keyed('after-chunk', { ifHead: 2 }), keyed('plain'), keyed('stale', { ifHead: 3 })]);
        expect(result.results).toEqual([
          { status: 'ok', offset: 2 },
          { status: 'ok', offset: 3 },
          { status: 'ok', offset: 4 },
          { status: 'conflict', head: 4 },
        ]);
        expect(eventsIn(await readAll(store, 's')).map((e) => e.key ?? e.type)).toEqual(['gen.start', 'chunk', 'after-chunk', 'plain']);
      });

      it('a key stored before is a duplicate with its original offset whatever the head (its retry is not a conflict)', async () => {
        const store = await open();
        await store.append('s', [keyed('k', { ifHead: 0 }), keyed('other')]);
        expect((await store.append('s', [keyed('k', { ifHead: 0 })])).results).toEqual([{ status: 'duplicate', offset: 1 }]);
        expect((await store.meta('s')).head).toBe(2);
      });

      it('conditional items of one call hold together: after one is not stored, every later one is a conflict, even where the head matches it', async () => {
        const store = await open();
        expect(offsetsOf((await store.append('s', [keyed('m1', { ifHead: 0 }), keyed('d1', { ifHead: 1 }), keyed('d2', { ifHead: 2 })])).results)).toEqual([1, 2, 3]);
        // Someone else wrote offset 4: a group that expected head 3 must not land its second item
        // at 5 though the head then is 4, the one that item names.
        await store.append('s', [keyed('intruder')]);
        const group = await store.append('s', [keyed('m2', { ifHead: 3 }), keyed('d3', { ifHead: 4 }), keyed('free')]);
        expect(group.results).toEqual([{ status: 'conflict', head: 4 }, { status: 'conflict', head: 4 }, { status: 'ok', offset: 5 }]);
        // A duplicate first item breaks the group too.
        const again = await store.append('s', [keyed('m1', { ifHead: 5 }), keyed('d4', { ifHead: 6 })]);
        expect(again.results).toEqual([{ status: 'duplicate', offset: 1 }, { status: 'conflict', head: 5 }]);
        expect(eventsIn(await readAll(store, 's')).map((e) => e.key)).toEqual(['m1', 'd1', 'd2', 'intruder', 'free']);
      });

      it('of two conditional appends racing for the same head, exactly one is stored', async () => {
        const store = await open();
        await store.append('s', [keyed('first')]);
        for (let round = 0; round < 20; round++) {
          const head = (await store.meta('s')).head;
          const [a, b] = await Promise.all([store.append('s', [keyed(`a${round}`, { ifHead: head })]), store.append('s', [keyed(`b${round}`, { ifHead: head })])]);
          const statuses = [a.results[0]?.status, b.results[0]?.status].sort();
          expect(statuses).toEqual(['conflict', 'ok']);
          expect([a.results[0], b.results[0]]).toContainEqual({ status: 'conflict', head: head + 1 });
        }
        expect((await store.meta('s')).head).toBe(21);
      });
    });

    describe('retention', () => {
      it('trims debug first, then low, then normal, and never critical; reads report the trimmed ranges as gaps', async () => {
        const store = await open({ retention: { maxEvents: 3 } });
        await openNew(store, 's', 'g1');
        const priorities: Priority[] = [2, 1, 0, 3, 2, 1, 0, 2];
        const first = await store.append('s', priorities.map((priority, seq) => chunk('g1', 1, seq, { priority, size: 10 + seq })));
        expect(first.events.map((event) => event.offset)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
        expect(first.trimmed).toEqual([
          { offset: 4, priority: 0, size: 12 }, { offset: 8, priority: 0, size: 16 },
          { offset: 3, priority: 1, size: 11 }, { offset: 7, priority: 1, size: 15 },
          { offset: 2, priority: 2, size: 10 }, { offset: 6, priority: 2, size: 14 },
        ]);
        expect(layout(await readAll(store, 's'))).toEqual([1, '2-4', 5, '6-8', 9]);
        expect(await store.meta('s')).toMatchObject({ count: 3, bytes: 13 + 17 });

        const critical = await store.append('s', [8, 9, 10].map((seq) => chunk('g1', 1, seq, { priority: 3, size: 1 })));
        expect(critical.trimmed).toEqual([{ offset: 9, priority: 2, size: 17 }]);
        expect(await store.meta('s')).toMatchObject({ head: 12, count: 5, bytes: 13 + 3 });
        expect(layout(await readAll(store, 's'))).toEqual([1, '2-4', 5, '6-9', 10, 11, 12]);
      });

      it('an event trimmed by the call that stored it is reported in both events and trimmed, and read ends with its gap', async () => {
        const store = await open({ retention: { maxEvents: 2 } });
        await openNew(store, 's', 'g1');
        const written = await store.append('s', [chunk('g1', 1, 0, { priority: 2 }), chunk('g1', 1, 1, { priority: 0, size: 3 })]);
        expect(written.events.map((event) => event.offset)).toEqual([2, 3]);
        expect(written.trimmed).toEqual([{ offset: 3, priority: 0, size: 3 }]);
        const page = await store.read('s', 0, 10);
        expect(page.items).toEqual([expect.objectContaining({ offset: 1 }), expect.objectContaining({ offset: 2 }), { type: 'gap', from: 3, to: 3, reason: 'trimmed' }]);
        expect(page).toMatchObject({ head: 3, through: 3 });
      });

      it('trims oldest-lowest-priority first until retained bytes fit maxBytes', async () => {
        const store = await open({ retention: { maxBytes: 100 } });
        await openNew(store, 's', 'g1');
        const written = await store.append('s', [0, 1, 2, 3].map((seq) => chunk('g1', 1, seq, { size: 40 })));
        expect(written.trimmed).toEqual([{ offset: 2, priority: 2, size: 40 }, { offset: 3, priority: 2, size: 40 }]);
        expect(await store.meta('s')).toMatchObject({ head: 5, count: 3, bytes: 80 });
      });

      it('when critical events reach the hard cap, chunks, appends and opens are refused with full while gen.end is still stored', async () => {
        const store = await open({ retention: { maxEvents: 2, criticalFactor: 2 } });
        await openNew(store, 's', 'g1');
        await store.append('s', [keyed('k1'), keyed('k2'), keyed('k3')]);
        const refused = await store.append('s', [chunk('g1', 1, 0), keyed('k4'), keyed('k1'), end('g1', 1, 0, 'error')]);
        expect(refused.results).toEqual([{ status: 'full' }, { status: 'full' }, { status: 'duplicate', offset: 2 }, { status: 'ok', offset: 5 }]);
        expect(refused.events).toEqual([expect.objectContaining({ type: 'gen.end', generationId: 'g1', status: 'error' })]);
        expect(await store.openGeneration('s', { generationId: 'g2', takeover: true, tag: TAG, ts: T0 })).toEqual({ status: 'full' });
        expect(await store.meta('s')).toMatchObject({ epoch: 1, head: 5, active: null });
      });

      it('critical bytes at the hard cap refuse new writes with full', async () => {
        const store = await open({ retention: { maxBytes: 100, criticalFactor: 2 } });
        await store.append('s', [keyed('k1', { size: 120 }), keyed('k2', { size: 80 })]);
        expect((await store.append('s', [keyed('k3', { size: 1 }), keyed('k4', { priority: 2, size: 1 })])).results).toEqual([{ status: 'full' }, { status: 'full' }]);
      });

      it('a retransmitted chunk is answered with its original offset even when the session is full', async () => {
        const store = await open({ retention: { maxEvents: 2, criticalFactor: 2 } });
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), keyed('k1'), keyed('k2'), keyed('k3')]);
        const retry = await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)]);
        expect(retry.results).toEqual([{ status: 'duplicate', offset: 2 }, { status: 'full' }]);
      });
    });

    describe('reads', () => {
      it('paging by through covers every offset up to the head exactly once, in order', async () => {
        // 25 critical events (gen.start, 9 keys, 15 chunks of priority 3) and room for 15 more.
        const store = await open({ retention: { maxEvents: 40 } });
        await openNew(store, 's', 'g1');
        for (let seq = 0; seq < 63; seq += 7) {
          const items: WriteItem[] = [];
          for (let i = seq; i < seq + 7; i++) items.push(chunk('g1', 1, i, { priority: (i % 4) as Priority, size: 1 }));
          items.push(keyed(`k${seq}`));
          await store.append('s', items);
        }
        const { head } = await store.meta('s');
        const covered: number[] = [];
        const events: SessionEvent[] = [];
        let after = 0;
        for (let pages = 0; after < head; pages++) {
          if (pages > 200) throw new Error('paging did not reach the head');
          const page = await store.read('s', after, 5);
          expect(eventsIn(page.items).length).toBeLessThanOrEqual(5);
          for (const item of page.items) {
            const from = item.type === 'gap' ? (item as Gap).from : (item as SessionEvent).offset;
            const to = item.type === 'gap' ? (item as Gap).to : (item as SessionEvent).offset;
            for (let offset = from; offset <= to; offset++) covered.push(offset);
            if (item.type !== 'gap') events.push(item as SessionEvent);
          }
          expect(page.through).toBe(covered[covered.length - 1]);
          after = page.through;
        }
        expect(covered).toEqual(Array.from({ length: head }, (_, i) => i + 1));
        expect(events).toEqual(eventsIn(await readAll(store, 's')));
        expect(events.length).toBe(40);
      });

      it('a read from inside a trimmed range starts with the rest of that gap', async () => {
        const store = await open({ retention: { maxEvents: 2 } });
        await openNew(store, 's', 'g1');
        await store.append('s', [0, 1, 2, 3].map((seq) => chunk('g1', 1, seq)));
        expect(layout(await readAll(store, 's'))).toEqual([1, '2-4', 5]);
        expect(layout((await store.read('s', 2, 10)).items)).toEqual(['3-4', 5]);
      });

      it('a read at or past the head returns nothing', async () => {
        const store = await open();
        await store.append('s', [keyed('k1'), keyed('k2')]);
        expect(await store.read('s', 2, 10)).toEqual({ items: [], head: 2, through: 2 });
      });
    });

    // Only the expiry flavour the store implements is defined (not skipped): both are complete specs.
    if (expiry === 'sweep') describe('expiry by sweep', () => {
      it('expire removes sessions idle past the TTL with all their state and keeps recently written ones', async () => {
        const store = await open({ sessionTtlMs: HOUR, dedupeWindowMs: 24 * HOUR });
        await openNew(store, 'old', 'g1', false, T0);
        await store.append('old', [chunk('g1', 1, 0, { ts: T0 }), keyed('k1', { ts: T0 }), end('g1', 1, 1, 'done', { ts: T0 })]);
        await openNew(store, 'old', 'g2', false, T0);
        await openNew(store, 'recent', 'g1', false, T0 + 30 * MINUTE);
        expect(await store.expire(T0 + HOUR)).toBe(0);
        expect(await store.expire(T0 + HOUR + 1)).toBe(1);
        expect(await store.meta('old')).toEqual(EMPTY_META);
        expect(await store.read('old', 0, 10)).toEqual({ items: [], head: 0, through: 0 });
        expect(await store.meta('recent')).toMatchObject({ epoch: 1, head: 1, active: { id: 'g1' } });
        // Nothing of the old session survives: its generation ids and keys are new again.
        expect(await openNew(store, 'old', 'g1', false, T0 + 2 * HOUR)).toMatchObject({ epoch: 1, startOffset: 1 });
        expect((await store.append('old', [keyed('k1', { ts: T0 + 2 * HOUR })])).results).toEqual([{ status: 'ok', offset: 2 }]);
      });

      it('every stored write refreshes the session TTL; refused writes do not', async () => {
        const store = await open({ sessionTtlMs: HOUR });
        await openNew(store, 's', 'g1', false, T0);
        await store.append('s', [chunk('g1', 1, 0, { ts: T0 + 50 * MINUTE })]);
        expect(await store.expire(T0 + HOUR + 1)).toBe(0);
        await store.append('s', [chunk('g9', 1, 0, { ts: T0 + 100 * MINUTE }), chunk('g1', 1, 5, { ts: T0 + 100 * MINUTE })]);
        expect(await store.expire(T0 + 110 * MINUTE + 1)).toBe(1);
        expect(await store.meta('s')).toEqual(EMPTY_META);
      });

      it('a dropped chunk refreshes the session TTL (its seq is state); a resumed open does not', async () => {
        const store = await open({ sessionTtlMs: HOUR });
        await openNew(store, 'd', 'g1', false, T0);
        await store.append('d', [dropped('g1', 1, 0, { ts: T0 + 50 * MINUTE })]);
        await openNew(store, 'r', 'g1', false, T0);
        expect((await store.openGeneration('r', { generationId: 'g1', takeover: false, resumeTag: TAG, tag: TAG, ts: T0 + 50 * MINUTE })).status).toBe('resumed');
        expect(await store.expire(T0 + HOUR + 1)).toBe(1);
        expect(await store.meta('r')).toEqual(EMPTY_META);
        expect(await store.meta('d')).toMatchObject({ head: 1, active: { id: 'g1', lastSeq: 0 } });
        expect(await store.expire(T0 + 110 * MINUTE + 1)).toBe(1);
        expect(await store.meta('d')).toEqual(EMPTY_META);
      });
    });

    if (expiry === 'ttl') describe('expiry by server TTL', () => {
      // Consecutive writes below are a poll interval and a few round trips apart: the TTL must be
      // far longer than any pause a loaded machine puts between two of them.
      const TTL_MS = 1000;

      it('a session disappears with all its state TTL after its last stored write: refused writes do not keep it, stored writes do', async () => {
        const store = await open({ sessionTtlMs: TTL_MS, dedupeWindowMs: 24 * HOUR });
        const now = (): number => Date.now();
        await openNew(store, 'old', 'g1', false, now());
        await store.append('old', [chunk('g1', 1, 0, { ts: now() }), keyed('k1', { ts: now() }), end('g1', 1, 1, 'done', { ts: now() })]);
        await openNew(store, 'old', 'g2', false, now());
        const oldWritten = now();
        let recentWrites = 0;
        const writeRecent = async (): Promise<void> => {
          const written = await store.append('recent', [keyed(`r${recentWrites}`, { ts: now() })]);
          expect(written.results).toEqual([{ status: 'ok', offset: ++recentWrites }]);
        };
        await writeRecent();
        const recentFirst = now();
        // Refused writes to 'old' keep coming; it still goes TTL after its last stored write.
        await until('the idle session to expire', async () => {
          const refused = await store.append('old', [chunk('g9', 2, 0, { ts: now() }), chunk('g2', 1, 0, { ts: now() })]);
          if (refused.head !== 0) expect(refused.results).toEqual([{ status: 'closed' }, { status: 'fenced', epoch: 2 }]);
          await writeRecent();
          return (await store.meta('old')).head === 0;
        });
        expect(now() - oldWritten).toBeGreaterThanOrEqual(TTL_MS - 50);
        expect(await store.meta('old')).toEqual(EMPTY_META);
        expect(await store.read('old', 0, 10)).toEqual({ items: [], head: 0, through: 0 });
        // 'recent' outlives several TTLs because every stored write refreshes it.
        await until('two TTLs of stored writes', async () => {
          await writeRecent();
          return now() - recentFirst > 2 * TTL_MS;
        });
        expect(await store.meta('recent')).toMatchObject({ head: recentWrites, count: recentWrites });
        await until('the written session to expire once writes stop', async () => (await store.meta('recent')).head === 0);
        // Nothing of the old session survives: its generation ids and keys are new again.
        expect(await openNew(store, 'old', 'g1', false, now())).toMatchObject({ epoch: 1, startOffset: 1 });
        expect((await store.append('old', [keyed('k1', { ts: now() })])).results).toEqual([{ status: 'ok', offset: 2 }]);
        expect(await store.expire(now() + 1000 * HOUR)).toBe(0);
      });
    });

    describe('reset', () => {
      it('resetting an unknown session answers unknown and creates nothing', async () => {
        const store = await open();
        expect(await store.reset('nobody', T0)).toEqual({ status: 'unknown' });
        expect(await store.meta('nobody')).toEqual(EMPTY_META);
      });

      it('removes every event and stores one session.reset after them: offsets continue, the removed range reads as a gap', async () => {
        const store = await open();
        const log = new NoticeLog();
        const stop = store.watch('s', log.listener);
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0, { priority: 0 }), chunk('g1', 1, 1), keyed('k1'), end('g1', 1, 2)]);
        const reset = await store.reset('s', T0 + 5);
        const event = { offset: 6, type: 'session.reset', priority: 3, ts: T0 + 5 };
        expect(reset).toEqual({ status: 'reset', epoch: 2, head: 6, cleared: 5, fenced: null, events: [event] });
        await log.reached(6);
        stop();
        expect(await store.meta('s')).toEqual({ epoch: 2, head: 6, active: null, count: 1, bytes: 0 });
        expect(await readAll(store, 's')).toEqual([{ type: 'gap', from: 1, to: 5, reason: 'trimmed' }, event]);
        expect(await store.read('s', 5, 10)).toEqual({ items: [event], head: 6, through: 6 });
        // The log goes on after the reset, with retention counting only what is left.
        const next = await openNew(store, 's', 'g2', false, T0 + 6);
        expect(next.epoch).toBe(3);
        expect(next.startOffset).toBe(7);
      });

      it('fences the active generation: its writes are fenced, a retried finish learns it ended fenced', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)]);
        const reset = await store.reset('s', T0 + 1);
        expect(reset).toMatchObject({ status: 'reset', epoch: 2, head: 4, cleared: 3, fenced: 'g1' });
        expect((await store.meta('s')).active).toBeNull();
        expect((await store.append('s', [chunk('g1', 1, 2)])).results).toEqual([{ status: 'fenced', epoch: 2 }]);
        expect((await store.append('s', [end('g1', 1, 2)])).results).toEqual([{ status: 'duplicate', offset: 4, endStatus: 'fenced' }]);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 + 2 })).toEqual({ status: 'closed', endStatus: 'fenced', endOffset: 4 });
        expect(await readAll(store, 's')).toEqual([{ type: 'gap', from: 1, to: 3, reason: 'trimmed' }, ...(reset.status === 'reset' ? reset.events : [])]);
      });

      it('append keys outlive a reset for their dedupe window: a retried append is answered with its old offset, not stored again', async () => {
        const store = await open();
        const first = await store.append('s', [keyed('k1'), keyed('k2')]);
        await store.reset('s', T0 + 1);
        const retry = await store.append('s', [keyed('k1'), keyed('k3')]);
        expect(retry.results).toEqual([{ status: 'duplicate', offset: (first.results[0] as { offset: number }).offset }, { status: 'ok', offset: 4 }]);
        expect((await readAll(store, 's')).map((item) => (item.type === 'gap' ? 'gap' : item.type))).toEqual(['gap', 'session.reset', 'append']);
      });

      it('after a reset, retention trims the new log by what it holds, and the hard cap counts only the reset event', async () => {
        const store = await open({ retention: { maxEvents: 3, criticalFactor: 2 } });
        // Six critical events reach the hard cap (3 x 2): the seventh is refused.
        await store.append('s', ['a', 'b', 'c', 'd', 'e', 'f'].map((key) => keyed(key)));
        expect((await store.append('s', [keyed('full')])).results).toEqual([{ status: 'full' }]);
        await store.reset('s', T0 + 1);
        const after = await store.append('s', [keyed('g', { priority: 1 }), keyed('h', { priority: 1 }), keyed('i', { priority: 1 })]);
        expect(after.results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
        // The reset event (7) and three more: over maxEvents, the oldest normal one (g, 8) goes.
        expect(after.trimmed).toEqual([{ offset: 8, priority: 1, size: 10 }]);
        expect((await store.meta('s')).count).toBe(3);
      });
    });

    describe('delete', () => {
      it('deleting an unknown session answers unknown and notifies nobody', async () => {
        const store = await open();
        expect(await store.delete('nobody')).toEqual({ status: 'unknown' });
        expect(await store.meta('nobody')).toEqual(EMPTY_META);
      });

      it('removes the session whole: meta, log, keys and ended generations; watchers are told; it starts again from offset 1', async () => {
        const store = await open();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0), keyed('k1'), end('g1', 1, 1)]);
        await openNew(store, 's', 'g2');
        await store.append('s', [chunk('g2', 2, 0, { priority: 0 })]);
        // Watching first, and seen to watch (a shared store subscribes asynchronously): then the
        // delete's notice cannot be missed.
        const log = new NoticeLog();
        const stop = store.watch('s', log.listener);
        await store.append('s', [chunk('g2', 2, 1)]);
        await log.reached(7);
        const notices: unknown[] = [];
        let stopDeleted = (): void => undefined;
        const deletedNotice = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no deleted notice within ${WAIT_MS} ms`)), WAIT_MS);
          stopDeleted = store.watch('s', (notice) => {
            notices.push(notice);
            if (notice.deleted === true) resolve(clearTimeout(timer));
          });
        });
        expect(await store.delete('s')).toEqual({ status: 'deleted', head: 7, epoch: 2, fenced: 'g2' });
        await deletedNotice;
        stop();
        stopDeleted();
        expect(notices.filter((notice) => (notice as { deleted?: boolean }).deleted === true)).toEqual([{ head: 0, deleted: true }]);
        expect(await store.meta('s')).toEqual(EMPTY_META);
        expect(await store.read('s', 0, 10)).toEqual({ items: [], head: 0, through: 0 });
        // Nothing of it is remembered: its key stores again, its ended generation opens anew.
        expect((await store.append('s', [keyed('k1')])).results).toEqual([{ status: 'ok', offset: 1 }]);
        expect(await store.openGeneration('s', { generationId: 'g1', takeover: false, tag: TAG, ts: T0 })).toMatchObject({ status: 'opened', epoch: 1, startOffset: 2 });
        expect(await store.delete('other')).toEqual({ status: 'unknown' });
      });
    });

    describe('listing and inspecting', () => {
      it('lists every session once across pages, each with its meta; a deleted one is gone', async () => {
        const store = await open();
        const ids = Array.from({ length: 23 }, (_, i) => `list-${String(i).padStart(2, '0')}`);
        for (const id of ids) await store.append(id, [keyed('k1')]);
        await openNew(store, 'list-05', 'g1');
        await store.delete('list-07');
        const seen: SessionSummary[] = [];
        let cursor: string | null = null;
        for (let pages = 0; pages < 100; pages++) {
          const page: SessionPage = await store.list(cursor, 5);
          seen.push(...page.sessions);
          cursor = page.cursor;
          if (cursor === null) break;
        }
        expect(cursor).toBeNull();
        const listed = seen.filter((s) => s.id.startsWith('list-'));
        expect(listed.map((s) => s.id).sort()).toEqual(ids.filter((id) => id !== 'list-07'));
        expect(listed.find((s) => s.id === 'list-05')).toMatchObject({ head: 2, epoch: 1, count: 2, active: { id: 'g1', epoch: 1, lastSeq: -1 } });
        expect(listed.find((s) => s.id === 'list-00')).toEqual({ id: 'list-00', epoch: 0, head: 1, active: null, count: 1, bytes: 10 });
      });

      it('inspects a session: meta, last write, retained events per priority, ended generations; null for an unknown one', async () => {
        const store = await open();
        expect(await store.inspect('nobody')).toBeNull();
        await openNew(store, 's', 'g1');
        await store.append('s', [chunk('g1', 1, 0, { priority: 0 }), chunk('g1', 1, 1, { priority: 1 }), chunk('g1', 1, 2, { priority: 1, ts: T0 + 9 }), end('g1', 1, 3, 'error', { error: 'x' })]);
        await openNew(store, 's', 'g2', false, T0 + 10);
        await store.append('s', [chunk('g2', 2, 0)]);
        expect(await store.inspect('s')).toEqual({
          epoch: 2,
          head: 7,
          active: { id: 'g2', epoch: 2, lastSeq: 0, startOffset: 6, lastWriteTs: T0 + 10 },
          count: 7,
          bytes: 40,
          lastWriteTs: T0 + 10,
          retained: [1, 2, 1, 3],
          ended: [{ id: 'g1', status: 'error', offset: 5 }],
        });
      });
    });

    describe('change notices and health', () => {
      it('a watcher is told the new head after an open and after an append that stored something', async () => {
        const store = await open();
        const log = new NoticeLog();
        const stop = store.watch('s', log.listener);
        await openNew(store, 's', 'g1');
        await log.reached(1);
        await store.append('s', [chunk('g1', 1, 0), chunk('g1', 1, 1)]);
        await log.reached(3);
        await store.append('s', [chunk('g1', 1, 9), keyed('k1')]);
        await log.reached(4);
        // Duplicates and heads already known are allowed; a head that never existed is not.
        expect(log.heads.every((head) => [1, 3, 4].includes(head))).toBe(true);
        stop();
        stop();
      });

      it('every watcher of a session is told; an unsubscribed watcher and a watcher of another session are not', async () => {
        const store = await open();
        const [a, b, other] = [new NoticeLog(), new NoticeLog(), new NoticeLog()];
        const stopA = store.watch('s', a.listener);
        const stopB = store.watch('s', b.listener);
        const stopOther = store.watch('other', other.listener);
        await store.append('s', [keyed('k1')]);
        await Promise.all([a.reached(1), b.reached(1)]);
        stopA();
        await store.append('s', [keyed('k2')]);
        // b is told about head 2 by the same notice a would have had.
        await b.reached(2);
        expect(a.max).toBe(1);
        // A notice of head 0 (the heal after subscribing, for a session with nothing) says nothing of s.
        expect(other.heads.filter((head) => head > 0)).toEqual([]);
        await store.append('other', [keyed('k1')]);
        await other.reached(1);
        expect(other.max).toBe(1);
        stopB();
        stopOther();
      });

      it('ping resolves while the store is open; ping and watch are refused with CLOSED after close', async () => {
        const store = await open();
        await expect(store.ping()).resolves.toBeUndefined();
        await store.close();
        await expect(store.ping()).rejects.toMatchObject({ code: 'CLOSED' });
        expect(() => store.watch('s', () => undefined)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
      });
    });

    describe('concurrency and lifecycle', () => {
      it('concurrent appends to many sessions keep each session contiguous and store every key once', async () => {
        const store = await open();
        const sessions = Array.from({ length: 8 }, (_, i) => `s${i}`);
        const calls = sessions.flatMap((session) =>
          Array.from({ length: 10 }, (_, call) => store.append(session, [0, 1, 2].map((i) => keyed(`k${call}.${i}`)))),
        );
        const results = await Promise.all(calls);
        expect(results.flatMap((result) => result.results).every((result) => result.status === 'ok')).toBe(true);
        for (const session of sessions) {
          const events = eventsIn(await readAll(store, session));
          expect(events.map((event) => event.offset)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
          expect(new Set(events.map((event) => event.key)).size).toBe(30);
        }
      });

      it('generations in many sessions stream concurrently with every seq stored once, in order', async () => {
        const store = await open();
        const sessions = Array.from({ length: 6 }, (_, i) => `s${i}`);
        await Promise.all(
          sessions.map(async (session) => {
            const { epoch } = await openNew(store, session, 'g');
            for (let seq = 0; seq < 40; seq += 4) await store.append(session, [0, 1, 2, 3].map((i) => chunk('g', epoch, seq + i)));
            await store.append(session, [end('g', epoch, 40)]);
          }),
        );
        for (const session of sessions) {
          const events = eventsIn(await readAll(store, session));
          expect(events.filter((event) => event.type === 'chunk').map((event) => event.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i));
          expect(events.map((event) => event.offset)).toEqual(Array.from({ length: 42 }, (_, i) => i + 1));
        }
      });

      it('close is idempotent and calls after close are rejected with CLOSED', async () => {
        const store = await open();
        await store.append('s', [keyed('k1')]);
        await store.close();
        await store.close();
        await expect(store.meta('s')).rejects.toMatchObject({ code: 'CLOSED' });
        await expect(store.append('s', [keyed('k2')])).rejects.toMatchObject({ code: 'CLOSED' });
        await expect(store.read('s', 0, 10)).rejects.toMatchObject({ code: 'CLOSED' });
      });
    });
  });
}
