/**
 * Eviction cost against the number of retained events (issue 4: "flat from 256 to 65,536").
 *
 * Stores (memory, LMDB, Redis when a private redis-server can be started): one session with
 * retention.maxEvents = N is filled to N events of mixed priorities 0/1/2 (plus its critical
 * gen.start), then K appends of 64 chunks are timed, each of which must evict exactly 64 events
 * (oldest of the lowest priority present). A control run appends the same K batches to a session
 * of the same size whose limit is out of reach, so nothing is evicted. Figures are medians over
 * the K batches, per event:
 *
 *   evicting   µs per appended-and-evicted event
 *   control    µs per appended event, no eviction
 *   eviction   evicting − control: what evicting one event costs by itself
 *
 * The gateway's HotBuffer (gateway/hot-buffer.ts), with hotBufferEvents = N: `push()` of batches
 * of 64 into a full buffer (each evicts 64 from the front) against pushes into a buffer with room,
 * and `remove()` of the offsets the store trimmed (oldest of the lowest priority first, as the
 * store picks them), per offset.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { HotBuffer } from '../gateway/hot-buffer';
import type { Priority, SessionEvent } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import { MemoryStore } from '../store/memory';
import { openRedisStore } from '../store/redis';
import { startRedis, type RedisServer } from '../store/test-helpers/redis-server';
import type { SessionStore, StoreOptions, WriteItem } from '../store/types';

export const EVICTION_SIZES: readonly number[] = [256, 4096, 65_536];
/** Events per timed append: each one evicts this many. */
export const EVICTION_BATCH = 64;
/** Batch size of the (untimed) fill, the gateway's maxBatchEvents. */
const FILL_BATCH = 512;
/** Mixed priorities: a quarter debug, a quarter low, half normal. */
const PRIORITIES: readonly Priority[] = [2, 0, 2, 1, 2, 0, 1, 2];
const DATA = 'x'.repeat(40);

export interface StoreEvictionRow {
  readonly store: string;
  readonly retained: number;
  readonly batches: number;
  readonly evicted: number;
  /** Median µs per event of an append that evicts as many events as it adds. */
  readonly evictingUs: number;
  /** Median µs per event of the same append with nothing to evict. */
  readonly controlUs: number;
  /** evictingUs − controlUs. */
  readonly evictionUs: number;
  readonly problems: readonly string[];
}

export interface HotBufferRow {
  readonly retained: number;
  /** Median µs per event of push() into a full buffer (each event evicts one). */
  readonly pushEvictingUs: number;
  /** Median µs per event of push() into a buffer with room. */
  readonly pushControlUs: number;
  readonly pushEvictionUs: number;
  /** Median µs per offset of remove() of trimmed offsets inside the buffer. */
  readonly removeUs: number;
  readonly removed: number;
  readonly problems: readonly string[];
}

export interface EvictionReport {
  readonly stores: readonly StoreEvictionRow[];
  readonly hotBuffer: readonly HotBufferRow[];
  /** Why a store was not measured (e.g. no redis-server). */
  readonly skipped: readonly string[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function chunkItems(epoch: number, fromSeq: number, count: number): WriteItem[] {
  const ts = Date.now();
  return Array.from({ length: count }, (_, i) => {
    const seq = fromSeq + i;
    return { op: 'chunk', generationId: 'g', epoch, seq, kind: 'text', priority: PRIORITIES[seq % PRIORITIES.length] as Priority, ts, data: DATA, size: DATA.length };
  });
}

type StoreFactory = (options: Partial<StoreOptions>) => Promise<{ store: SessionStore; close: () => Promise<void> }>;

/** One session being appended to: its store, epoch and next seq. */
interface Appending {
  readonly store: SessionStore;
  readonly session: string;
  readonly epoch: number;
  seq: number;
}

/** Opens a generation in `session` and fills it to `retained` events (untimed). */
async function fill(store: SessionStore, session: string, retained: number, problems: string[]): Promise<Appending> {
  const opened = await store.openGeneration(session, { generationId: 'g', takeover: false, tag: 'perf-baseline-tag-0000', ts: Date.now() });
  if (opened.status !== 'opened') throw new Error(`${session}: openGeneration answered ${opened.status}`);
  const target: Appending = { store, session, epoch: opened.epoch, seq: 0 };
  // gen.start is event 1: N − 1 chunks make N retained events.
  while (target.seq < retained - 1) {
    const count = Math.min(FILL_BATCH, retained - 1 - target.seq);
    await store.append(session, chunkItems(target.epoch, target.seq, count));
    target.seq += count;
  }
  const meta = await store.meta(session);
  if (meta.count !== retained) problems.push(`${session}: ${meta.count} events retained after the fill, expected ${retained}`);
  return target;
}

/** Times one append of EVICTION_BATCH chunks: µs per event. Checks it evicted `expectEvicted`. */
async function timeAppend(target: Appending, expectEvicted: number, problems: string[]): Promise<number> {
  const items = chunkItems(target.epoch, target.seq, EVICTION_BATCH);
  const started = performance.now();
  const result = await target.store.append(target.session, items);
  const perEvent = ((performance.now() - started) * 1000) / EVICTION_BATCH;
  target.seq += EVICTION_BATCH;
  if (result.trimmed.length !== expectEvicted && problems.length < 5) {
    problems.push(`${target.session}: an append of ${EVICTION_BATCH} evicted ${result.trimmed.length}, expected ${expectEvicted}`);
  }
  const refused = result.results.find((r) => r.status !== 'ok');
  if (refused !== undefined && problems.length < 5) problems.push(`${target.session}: append answered ${refused.status}`);
  return perEvent;
}

/**
 * Two stores of the same kind, both filled to `retained`: one at its limit, one with room. Their
 * timed appends alternate, so a drift of the machine (another process, a GC, a disk flush) hits
 * both alike.
 */
async function measureStore(name: string, factory: StoreFactory, retained: number, batches: number): Promise<StoreEvictionRow> {
  const problems: string[] = [];
  const tag = `${name.toLowerCase()}-${retained}-${process.pid}-${Date.now()}`;
  const limits = { maxBytes: 1 << 30, criticalFactor: 2 };
  const atLimit = await factory({ retention: { ...limits, maxEvents: retained } });
  try {
    const withRoom = await factory({ retention: { ...limits, maxEvents: retained + (batches + 1) * EVICTION_BATCH } });
    try {
      const evicting = await fill(atLimit.store, `evict-${tag}`, retained, problems);
      const control = await fill(withRoom.store, `control-${tag}`, retained, problems);
      const evictingTimes: number[] = [];
      const controlTimes: number[] = [];
      for (let b = 0; b < batches; b++) {
        evictingTimes.push(await timeAppend(evicting, EVICTION_BATCH, problems));
        controlTimes.push(await timeAppend(control, 0, problems));
      }
      const meta = await atLimit.store.meta(evicting.session);
      if (meta.count !== retained) problems.push(`${meta.count} events retained after the evicting appends, expected ${retained}`);
      const evictingUs = median(evictingTimes);
      const controlUs = median(controlTimes);
      return { store: name, retained, batches, evicted: batches * EVICTION_BATCH, evictingUs, controlUs, evictionUs: evictingUs - controlUs, problems };
    } finally {
      await withRoom.close();
    }
  } finally {
    await atLimit.close();
  }
}

// ------------------------------------------------------------------ HotBuffer

const sizeOf = (event: SessionEvent): number => (typeof event.data === 'string' ? event.data.length : 0);

function events(from: number, count: number): SessionEvent[] {
  return Array.from({ length: count }, (_, i) => {
    const offset = from + i;
    return { offset, type: 'chunk', generationId: 'g', seq: offset, kind: 'text', priority: PRIORITIES[offset % PRIORITIES.length] as Priority, ts: 0, data: DATA };
  });
}

/** Median µs per event of `samples` timed groups of 16 pushes of EVICTION_BATCH events. */
function timePushes(buffer: HotBuffer, from: number, samples: number): number[] {
  const group = 16;
  const perEvent: number[] = [];
  let offset = from;
  for (let s = 0; s < samples; s++) {
    const batches = Array.from({ length: group }, (_, g) => events(offset + g * EVICTION_BATCH, EVICTION_BATCH));
    const started = performance.now();
    for (const batch of batches) buffer.push(batch, (batch[batch.length - 1] as SessionEvent).offset, sizeOf);
    perEvent.push(((performance.now() - started) * 1000) / (group * EVICTION_BATCH));
    offset += group * EVICTION_BATCH;
  }
  return perEvent;
}

function measureHotBuffer(retained: number, pushedEvents: number, removedOffsets: number): HotBufferRow {
  const problems: string[] = [];
  const samples = Math.max(8, Math.floor(pushedEvents / (16 * EVICTION_BATCH)));

  const full = new HotBuffer(retained, Number.MAX_SAFE_INTEGER, 0);
  full.push(events(1, retained), retained, sizeOf);
  const evictingTimes = timePushes(full, retained + 1, samples);
  if (full.size !== retained) problems.push(`HotBuffer(${retained}) holds ${full.size} events after evicting pushes`);

  const roomy = new HotBuffer(retained + (samples + 1) * 16 * EVICTION_BATCH, Number.MAX_SAFE_INTEGER, 0);
  roomy.push(events(1, retained), retained, sizeOf);
  const controlTimes = timePushes(roomy, retained + 1, samples);

  // remove(): a full buffer, and the offsets the store would trim first (lowest priority, oldest
  // first), in batches of 64, up to half the buffer; a fresh buffer per round until enough.
  const removeTimes: number[] = [];
  let removed = 0;
  const content = events(1, retained);
  const order = [0, 1, 2].flatMap((priority) => content.filter((e) => e.priority === priority).map((e) => e.offset));
  const perRound = order.slice(0, Math.max(EVICTION_BATCH, Math.floor(retained / 2)));
  while (removed < removedOffsets) {
    const buffer = new HotBuffer(retained, Number.MAX_SAFE_INTEGER, 0);
    buffer.push(content, retained, sizeOf);
    for (let i = 0; i < perRound.length; i += EVICTION_BATCH) {
      const batch = perRound.slice(i, i + EVICTION_BATCH);
      const started = performance.now();
      buffer.remove(batch);
      removeTimes.push(((performance.now() - started) * 1000) / batch.length);
    }
    removed += perRound.length;
    if (buffer.size !== retained - perRound.length) problems.push(`HotBuffer(${retained}) holds ${buffer.size} after removing ${perRound.length}`);
  }
  const pushEvictingUs = median(evictingTimes);
  const pushControlUs = median(controlTimes);
  return { retained, pushEvictingUs, pushControlUs, pushEvictionUs: pushEvictingUs - pushControlUs, removeUs: median(removeTimes), removed, problems };
}

// ------------------------------------------------------------------ all of it

function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `spool-pressure-${label}-`));
}

const memoryFactory: StoreFactory = async (options) => {
  const store = new MemoryStore(options);
  return { store, close: () => store.close() };
};

const lmdbFactory: StoreFactory = async (options) => {
  const dir = tempDir('evict-lmdb');
  const store = openLmdbStore({ ...options, path: dir });
  return {
    store,
    close: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
};

export interface EvictionOptions {
  readonly sizes?: readonly number[];
  /** Timed appends per store and size. @default 128 (memory: 4×) */
  readonly batches?: number;
  /** HotBuffer: events pushed and offsets removed per size. @default 262144 and 65536 */
  readonly hotPushed?: number;
  readonly hotRemoved?: number;
  /** Try Redis (a private redis-server from store/test-helpers). @default true */
  readonly redis?: boolean;
  readonly log?: (line: string) => void;
}

export async function runEviction(options: EvictionOptions = {}): Promise<EvictionReport> {
  const sizes = options.sizes ?? EVICTION_SIZES;
  const batches = options.batches ?? 128;
  const say = options.log ?? ((): void => undefined);
  const stores: StoreEvictionRow[] = [];
  const skipped: string[] = [];

  // One unmeasured pass at the smallest size first, so the first measured row does not pay for
  // the JIT warming up the append and eviction paths.
  await measureStore('memory', memoryFactory, sizes[0] ?? 256, 512);
  for (const retained of sizes) {
    say(`eviction: memory store, ${retained} retained`);
    stores.push(await measureStore('memory', memoryFactory, retained, batches * 4));
  }
  await measureStore('LMDB', lmdbFactory, sizes[0] ?? 256, 16);
  for (const retained of sizes) {
    say(`eviction: LMDB store, ${retained} retained`);
    stores.push(await measureStore('LMDB', lmdbFactory, retained, batches));
  }

  if (options.redis !== false) {
    let server: RedisServer | undefined;
    try {
      server = await startRedis();
    } catch (error) {
      skipped.push(`Redis: a private redis-server could not be started (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`);
    }
    if (server !== undefined) {
      const url = server.url;
      const redisFactory: StoreFactory = async (storeOptions) => {
        const store = await openRedisStore({ url }, storeOptions);
        return { store, close: () => store.close() };
      };
      try {
        await measureStore('Redis', redisFactory, sizes[0] ?? 256, 16);
        for (const retained of sizes) {
          say(`eviction: Redis store, ${retained} retained`);
          stores.push(await measureStore('Redis', redisFactory, retained, batches));
        }
      } finally {
        await server.stop();
      }
    }
  } else {
    skipped.push('Redis: not asked for (--no-redis)');
  }

  say('eviction: HotBuffer');
  measureHotBuffer(sizes[0] ?? 256, 16 * 1024, 1024); // JIT warm-up, unmeasured
  const hotBuffer = sizes.map((retained) => measureHotBuffer(retained, options.hotPushed ?? 262_144, options.hotRemoved ?? 65_536));
  return { stores, hotBuffer, skipped };
}
