/**
 * LmdbStore: the embedded default SessionStore, one LMDB environment under a directory.
 *
 * Every openGeneration/append/expire step is one LMDB transaction (a child transaction of
 * lmdb-js's batched write transaction, so a callback that throws rolls back only its own
 * writes). Its promise resolves after commit: that is the durability point of G1. Commits are
 * written to the file before they resolve, so they survive `kill -9` of the process; with
 * `durability: 'fsync'` a call also waits for the fsync, which is what survives power loss.
 * lmdb-js runs the transactions of many sessions in one batch, so concurrent sessions share
 * commits without any batching here.
 *
 * Keys are ordered-binary arrays, so every per-session family is one contiguous range:
 *
 *   ['v']                               format version
 *   ['m', session]                      MetaRecord
 *   ['b', session, firstOffset]         bytes       batch: the events one store call stored, from
 *                                                   firstOffset on, as one encodeEvents array (the
 *                                                   bytes readers' frames carry); retention takes
 *                                                   events out of it, the last one deletes it
 *   ['r', session, priority, firstOffset] [offset, size, offset, size, ...]
 *                                                   retention index, priorities 0-2 only: the
 *                                                   batch's retained events of that priority
 *   ['g', session, generation, seq]     [offset, n] seq index, active generation only: a run of n
 *                                                   seqs from `seq` at offsets from `offset`
 *                                                   (offset 0: n dropped seqs); one record per
 *                                                   run written by one store call, not per chunk.
 *                                                   A plain number (older data) is a run of 1.
 *   ['k', session, key]                 KeyRecord   append idempotency keys
 *   ['x', session, generation]          EndedRecord ended generations
 *   ['t', ts, session]                  true        session expiry index: every session has an entry
 *                                                   at or before its lastWriteTs, filed under the
 *                                                   second its lastWriteTs falls in (moved when that
 *                                                   second changes, not on every write) or, when the
 *                                                   expirer finds it not due yet, under lastWriteTs
 *   ['d', ts, session, 'k'|'x', id]     true        dedupe-window expiry index (keys, ended)
 *
 * One store call writes a handful of records however many events it stores: the batch, one
 * retention record per priority in it, one seq run, meta. The retention index sorts by priority,
 * then batch, so "oldest event of the lowest priority present" is the first pair of the first
 * record under ['r', session]: one O(log n) lookup, no event read. Trimming reads a batch once
 * per store call and writes what is left of it when the call ends.
 *
 * Format 1 (before batches) kept one ['e', session, offset] record per event and a plain size
 * per ['r', ...] entry; opening such an environment rewrites it as batches of one (format 2).
 * The two expiry indexes sort by time, so `expire(now)` reads only what is due.
 */
import { open, type Key, type RootDatabase } from 'lmdb';
import { decodeEvents, encodeEvents } from '../protocol/codec';
import { SpoolError } from '../protocol/errors';
import type { Offset, Priority, SessionEvent } from '../protocol/types';
import {
  DROPPED_SEQ,
  applyAppend,
  applyOpen,
  applyReset,
  normalizeOptions,
  publicMeta,
  type EndedRecord,
  type KeyRecord,
  type MetaRecord,
  type SessionTx,
} from './engine';
import { LocalNotices } from './notices';
import { assembleRead } from './read';
import type {
  AppendResult,
  ChangeListener,
  OpenRequest,
  OpenResult,
  ReadResult,
  DeleteResult,
  SessionDetails,
  SessionPage,
  SessionSummary,
  ResetResult,
  SessionMeta,
  SessionStore,
  StoreOptions,
  TrimmedEvent,
  WriteItem,
} from './types';

const FORMAT_VERSION = 2;
/** One ['e', session, offset] record per event, a plain size per retention entry. */
const FORMAT_EVENTS = 1;
/** Upper bound for offset and seq ranges (exclusive end keys). */
const MAX_INDEX = Number.MAX_SAFE_INTEGER;
/** Sessions removed per expiry transaction: keeps one transaction (and the writer lock) short. */
const EXPIRE_SESSIONS_PER_TXN = 64;

/** The start of the second `ts` falls in: where writeMeta files a session in the expiry index. */
function expirySecond(ts: number): number {
  return ts - (ts % 1000);
}
/** Dedupe records removed per expiry transaction. */
const EXPIRE_RECORDS_PER_TXN = 1024;

type Db = RootDatabase<unknown, Key>;
type KeyPart = string | number;

export interface LmdbStoreOptions extends Partial<StoreOptions> {
  /** Directory of the LMDB environment; created when missing. */
  readonly path: string;
  /**
   * When a write resolves. 'commit': committed and written to the OS (survives a process
   * crash, `kill -9`). 'fsync': also fsynced (survives power loss), at the cost of a disk flush
   * per commit batch. @default 'commit'
   */
  readonly durability?: 'commit' | 'fsync';
}

/** Opens (creating if needed) the LMDB environment at `options.path`. */
export function openLmdbStore(options: LmdbStoreOptions): LmdbStore {
  // noSubdir false: `path` is always a directory, even when its name contains a dot.
  const db = open<unknown, Key>({ path: options.path, noSubdir: false, encoding: 'msgpack', keyEncoding: 'ordered-binary' });
  const format = db.get(['v']);
  if (format === undefined) {
    db.putSync(['v'], FORMAT_VERSION);
  } else if (format === FORMAT_EVENTS) {
    db.transactionSync(() => migrateEventsToBatches(db));
  } else if (format !== FORMAT_VERSION) {
    void db.close();
    throw new SpoolError('INTERNAL', `LMDB data at ${options.path} has format ${String(format)}; this spool reads formats ${FORMAT_EVENTS} and ${FORMAT_VERSION}`);
  }
  return new LmdbStore(db, options);
}

/**
 * Format 1 → 2, in one transaction when the environment is opened: each event record becomes a
 * batch of one, each retention entry's size becomes its [offset, size] pair.
 */
function migrateEventsToBatches(db: Db): void {
  for (const { key, value } of entriesUnder(db, ['e'])) {
    const [, session, offset] = key as [string, string, Offset];
    db.putSync(['b', session, offset], encodeEvents([value as SessionEvent]));
    db.removeSync(key);
  }
  for (const { key, value } of entriesUnder(db, ['r'])) {
    if (typeof value === 'number') db.putSync(key, [key[3] as Offset, value]);
  }
  db.putSync(['v'], FORMAT_VERSION);
}

function hasPrefix(key: Key, prefix: readonly KeyPart[]): key is KeyPart[] {
  if (!Array.isArray(key) || key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}

/** Every entry whose key starts with `prefix`, collected before the caller deletes any. */
function entriesUnder(db: Db, prefix: readonly KeyPart[]): { key: KeyPart[]; value: unknown }[] {
  const entries: { key: KeyPart[]; value: unknown }[] = [];
  for (const entry of db.getRange({ start: prefix as KeyPart[] })) {
    if (!hasPrefix(entry.key, prefix)) break;
    entries.push({ key: entry.key, value: entry.value });
  }
  return entries;
}

function removeUnder(db: Db, prefix: readonly KeyPart[]): void {
  const keys: KeyPart[][] = [];
  for (const key of db.getKeys({ start: prefix as KeyPart[] })) {
    if (!hasPrefix(key, prefix)) break;
    keys.push(key);
  }
  for (const key of keys) db.removeSync(key);
}

/** The offset of the `index`-th seq of a run starting at `firstOffset` (a dropped run stays dropped). */
function runOffset(firstOffset: Offset, index: number): Offset {
  return firstOffset === DROPPED_SEQ ? DROPPED_SEQ : firstOffset + index;
}

/** A batch this operation trims: decoded once, written back (or deleted) when the operation ends. */
interface TrimmedBatch {
  readonly events: readonly SessionEvent[];
  readonly removed: Set<Offset>;
}

/** The retention record evictions are taking from: its pairs from `next` on are still retained. */
interface RetentionCursor {
  readonly key: [string, string, Priority, Offset];
  readonly pairs: readonly number[];
  next: number;
}

/** The engine's view of one session; valid only inside a write transaction. */
class LmdbTx implements SessionTx {
  /** The run of consecutive seqs at consecutive offsets (or all dropped) this operation is adding. */
  private run: { readonly generationId: string; readonly firstSeq: number; readonly firstOffset: Offset; count: number } | null = null;
  /** Events this operation stored, written as one batch before it trims or when it ends. */
  private fresh: SessionEvent[] = [];
  private freshSizes: number[] = [];
  private batchesWritten = 0;
  /** The bytes of the one batch this operation wrote (AppendResult.encoded). */
  private freshBytes: Uint8Array | undefined;
  private readonly trimming = new Map<Offset, TrimmedBatch>();
  private cursor: RetentionCursor | null = null;

  constructor(
    private readonly db: Db,
    private readonly session: string,
  ) {}

  /** The encodeEvents bytes of every event this operation stored, when it stored them as one batch. */
  get encoded(): Uint8Array | undefined {
    return this.batchesWritten === 1 ? this.freshBytes : undefined;
  }

  readMeta(): MetaRecord | undefined {
    return this.db.get(['m', this.session]) as MetaRecord | undefined;
  }

  writeMeta(meta: MetaRecord, previous: MetaRecord | undefined): void {
    // Meta is written once, at the end of an operation that changed something: the batch, the
    // seq run and the trimmed batches under construction go out with it.
    this.flushBatch();
    this.flushRun();
    this.flushTrims();
    this.db.putSync(['m', this.session], meta);
    // The expiry index moves once a second at most: a write in the same second as the last keeps
    // its entry (two store operations fewer per call; the expirer re-files an entry it finds early).
    const second = expirySecond(meta.lastWriteTs);
    if (previous !== undefined && expirySecond(previous.lastWriteTs) === second) return;
    if (previous !== undefined) this.db.removeSync(['t', expirySecond(previous.lastWriteTs), this.session]);
    this.db.putSync(['t', second, this.session], true);
  }

  putEvent(event: SessionEvent, size: number): void {
    this.fresh.push(event);
    this.freshSizes.push(size);
  }

  evictOldest(): TrimmedEvent | undefined {
    // What this operation stored is retained like everything else: write it before choosing.
    this.flushBatch();
    for (;;) {
      const cursor = this.cursor ?? this.firstRetention();
      if (cursor === null) return undefined;
      this.cursor = cursor;
      if (cursor.next < cursor.pairs.length) {
        const offset = cursor.pairs[cursor.next] as Offset;
        const size = cursor.pairs[cursor.next + 1] as number;
        cursor.next += 2;
        const [, , priority, firstOffset] = cursor.key;
        this.trimFrom(firstOffset, offset);
        return { offset, priority, size };
      }
      this.db.removeSync(cursor.key);
      this.cursor = null;
    }
  }

  clearEvents(): void {
    this.fresh = [];
    this.freshSizes = [];
    this.trimming.clear();
    this.cursor = null;
    removeUnder(this.db, ['b', this.session]);
    removeUnder(this.db, ['r', this.session]);
  }

  /** The first retention record: lowest priority present, oldest batch. */
  private firstRetention(): RetentionCursor | null {
    for (const { key, value } of this.db.getRange({ start: ['r', this.session], end: ['r', this.session, 3], limit: 1 })) {
      return { key: key as RetentionCursor['key'], pairs: value as number[], next: 0 };
    }
    return null;
  }

  /** Takes `offset` out of the batch starting at `firstOffset` (written back in flushTrims). */
  private trimFrom(firstOffset: Offset, offset: Offset): void {
    let batch = this.trimming.get(firstOffset);
    if (batch === undefined) {
      const bytes = this.db.get(['b', this.session, firstOffset]) as Uint8Array | undefined;
      if (bytes === undefined) throw new SpoolError('INTERNAL', `LMDB: retention names offset ${offset} of a batch at ${firstOffset} that is missing`);
      batch = { events: decodeEvents(bytes), removed: new Set() };
      this.trimming.set(firstOffset, batch);
    }
    batch.removed.add(offset);
  }

  /** Writes the events this operation stored as one batch, with its retention records. */
  private flushBatch(): void {
    const events = this.fresh;
    if (events.length === 0) return;
    const firstOffset = (events[0] as SessionEvent).offset;
    this.freshBytes = encodeEvents(events);
    this.batchesWritten += 1;
    this.db.putSync(['b', this.session, firstOffset], this.freshBytes);
    // One pass: the batch's trimmable events by priority, as [offset, size] pairs in offset order.
    const pairs: [number[], number[], number[]] = [[], [], []];
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as SessionEvent;
      if (event.priority < 3) pairs[event.priority as 0 | 1 | 2].push(event.offset, this.freshSizes[i] as number);
    }
    for (let priority = 0; priority < 3; priority++) {
      const list = pairs[priority as 0 | 1 | 2];
      if (list.length > 0) this.db.putSync(['r', this.session, priority, firstOffset], list);
    }
    this.fresh = [];
    this.freshSizes = [];
  }

  /** Writes back what trimming left of each batch it touched, and where the cursor stopped. */
  private flushTrims(): void {
    const cursor = this.cursor;
    if (cursor !== null) {
      if (cursor.next >= cursor.pairs.length) this.db.removeSync(cursor.key);
      else this.db.putSync(cursor.key, cursor.pairs.slice(cursor.next));
      this.cursor = null;
    }
    for (const [firstOffset, batch] of this.trimming) {
      const kept = batch.events.filter((event) => !batch.removed.has(event.offset));
      if (kept.length === 0) this.db.removeSync(['b', this.session, firstOffset]);
      else this.db.putSync(['b', this.session, firstOffset], encodeEvents(kept));
    }
    this.trimming.clear();
  }

  seqOffset(generationId: string, seq: number): Offset | undefined {
    const pending = this.run;
    if (pending !== null && pending.generationId === generationId && seq >= pending.firstSeq && seq < pending.firstSeq + pending.count) {
      return runOffset(pending.firstOffset, seq - pending.firstSeq);
    }
    // The run holding `seq` is the last one that starts at or before it.
    for (const { key, value } of this.db.getRange({ start: ['g', this.session, generationId, seq], reverse: true, limit: 1 })) {
      const [, session, generation, firstSeq] = key as [string, string, string, number];
      if (session !== this.session || generation !== generationId) return undefined;
      const [firstOffset, count] = typeof value === 'number' ? [value, 1] : (value as [Offset, number]);
      return seq < firstSeq + count ? runOffset(firstOffset, seq - firstSeq) : undefined;
    }
    return undefined;
  }

  putSeq(generationId: string, seq: number, offset: Offset): void {
    const run = this.run;
    if (
      run !== null &&
      run.generationId === generationId &&
      seq === run.firstSeq + run.count &&
      (run.firstOffset === DROPPED_SEQ ? offset === DROPPED_SEQ : offset === run.firstOffset + run.count)
    ) {
      run.count += 1;
      return;
    }
    this.flushRun();
    this.run = { generationId, firstSeq: seq, firstOffset: offset, count: 1 };
  }

  dropSeqIndex(generationId: string): void {
    if (this.run?.generationId === generationId) this.run = null;
    removeUnder(this.db, ['g', this.session, generationId]);
  }

  /** Writes the run of seqs this operation is building (the engine writes meta last, then commits). */
  private flushRun(): void {
    const run = this.run;
    if (run === null) return;
    this.db.putSync(['g', this.session, run.generationId, run.firstSeq], [run.firstOffset, run.count]);
    this.run = null;
  }

  keyRecord(key: string): KeyRecord | undefined {
    return this.db.get(['k', this.session, key]) as KeyRecord | undefined;
  }

  putKey(key: string, record: KeyRecord): void {
    this.db.putSync(['k', this.session, key], record);
    this.db.putSync(['d', record.ts, this.session, 'k', key], true);
  }

  endedRecord(generationId: string): EndedRecord | undefined {
    return this.db.get(['x', this.session, generationId]) as EndedRecord | undefined;
  }

  putEnded(generationId: string, record: EndedRecord): void {
    this.db.putSync(['x', this.session, generationId], record);
    this.db.putSync(['d', record.ts, this.session, 'x', generationId], true);
  }
}

/** SessionStore on LMDB. Create it with `openLmdbStore`. */
export class LmdbStore implements SessionStore {
  /** Effective options (defaults filled in, dedupe window raised to at least 2 minutes). */
  readonly options: StoreOptions;
  private readonly durability: 'commit' | 'fsync';
  private readonly pending = new Set<Promise<unknown>>();
  private readonly notices = new LocalNotices();
  private closing: Promise<void> | null = null;

  constructor(
    private readonly db: Db,
    options: LmdbStoreOptions,
  ) {
    this.options = normalizeOptions(options);
    this.durability = options.durability ?? 'commit';
  }

  async meta(session: string): Promise<SessionMeta> {
    this.assertOpen();
    return publicMeta(this.db.get(['m', session]) as MetaRecord | undefined);
  }

  async openGeneration(session: string, request: OpenRequest): Promise<OpenResult> {
    const result = await this.transact(() => applyOpen(new LmdbTx(this.db, session), request, this.options));
    // Notified after commit (G1); gen.start is the last event an open stores, so its offset is the head.
    if (result.status === 'opened') this.notices.notify(session, result.startOffset);
    return result;
  }

  async append(session: string, items: readonly WriteItem[]): Promise<AppendResult> {
    const result = await this.transact(() => {
      const tx = new LmdbTx(this.db, session);
      const applied = applyAppend(tx, items, this.options);
      const encoded = tx.encoded;
      return encoded === undefined ? applied : { results: applied.results, events: applied.events, trimmed: applied.trimmed, head: applied.head, encoded };
    });
    if (result.events.length > 0) this.notices.notify(session, result.head);
    return result;
  }

  async reset(session: string, ts: number): Promise<ResetResult> {
    const result = await this.transact(() => applyReset(new LmdbTx(this.db, session), ts, this.options));
    if (result.status === 'reset') this.notices.notify(session, result.head);
    return result;
  }

  async delete(session: string): Promise<DeleteResult> {
    const result = await this.transact((): DeleteResult => {
      const meta = this.db.get(['m', session]) as MetaRecord | undefined;
      if (meta === undefined) return { status: 'unknown' };
      this.deleteSession(session, meta);
      return { status: 'deleted', head: meta.head, epoch: meta.epoch, fenced: meta.active === null ? null : meta.active.id };
    });
    if (result.status === 'deleted') this.notices.notify(session, 0, true);
    return result;
  }

  async list(cursor: string | null, limit: number): Promise<SessionPage> {
    this.assertOpen();
    const sessions: SessionSummary[] = [];
    let more = false;
    for (const { key, value } of this.db.getRange({ start: cursor === null ? ['m'] : ['m', cursor] })) {
      if (!hasPrefix(key, ['m'])) break;
      const id = (key as [string, string])[1];
      if (cursor !== null && id <= cursor) continue;
      if (sessions.length >= Math.max(1, limit)) {
        more = true;
        break;
      }
      sessions.push({ id, ...publicMeta(value as MetaRecord) });
    }
    return { sessions, cursor: more ? (sessions.at(-1) as SessionSummary).id : null };
  }

  async inspect(session: string): Promise<SessionDetails | null> {
    this.assertOpen();
    const meta = this.db.get(['m', session]) as MetaRecord | undefined;
    if (meta === undefined) return null;
    const retained: [number, number, number, number] = [0, 0, 0, meta.criticalCount];
    for (const { key, value } of entriesUnder(this.db, ['r', session])) {
      const priority = key[2] as 0 | 1 | 2;
      retained[priority] += (value as number[]).length / 2;
    }
    const ended = entriesUnder(this.db, ['x', session])
      .map(({ key, value }) => ({ id: key[2] as string, status: (value as EndedRecord).endStatus, offset: (value as EndedRecord).endOffset }))
      .sort((a, b) => a.offset - b.offset);
    return { ...publicMeta(meta), lastWriteTs: meta.lastWriteTs, retained, ended };
  }

  watch(session: string, listener: ChangeListener): () => void {
    this.assertOpen();
    return this.notices.watch(session, listener);
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async read(session: string, requestedAfter: Offset, limit: number): Promise<ReadResult> {
    this.assertOpen();
    // A negative offset means "from the start"; clamping keeps gaps from reaching below 1.
    const after = Math.max(0, requestedAfter);
    // Meta and events are read in one synchronous stretch, so from the same read snapshot:
    // the head always matches the events it is reported with.
    const meta = this.db.get(['m', session]) as MetaRecord | undefined;
    const head = meta?.head ?? 0;
    if (limit < 1) return { items: [], head, through: after };
    const events: SessionEvent[] = [];
    const take = (bytes: unknown): void => {
      for (const event of decodeEvents(bytes as Uint8Array)) if (event.offset > after && events.length < limit) events.push(event);
    };
    // The batch holding after + 1 starts at or before it; the ones after it follow in order.
    let from = after + 1;
    for (const { key, value } of this.db.getRange({ start: ['b', session, after + 1], end: ['b', session, 0], reverse: true, limit: 1 })) {
      take(value);
      from = (key as [string, string, Offset])[2] + 1;
    }
    if (events.length < limit) {
      for (const { value } of this.db.getRange({ start: ['b', session, from], end: ['b', session, MAX_INDEX] })) {
        take(value);
        if (events.length >= limit) break;
      }
    }
    return assembleRead(after, events, head, events.length < limit);
  }

  /**
   * Takes due entries from the two expiry indexes in bounded transactions; never visits a
   * session that is not due. Each session is deleted in one transaction after re-checking,
   * inside it, that no write refreshed it since the index was read.
   */
  async expire(now: number): Promise<number> {
    const sessionCutoff = now - this.options.sessionTtlMs;
    const dedupeCutoff = now - this.options.dedupeWindowMs;
    let removed = 0;
    for (;;) {
      const step = await this.transact(() => this.expireSessions(sessionCutoff));
      removed += step.removed;
      if (!step.more) break;
    }
    while (await this.transact(() => this.expireDedupeRecords(dedupeCutoff)));
    return removed;
  }

  /** Waits for writes in flight, then releases the environment. Idempotent. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closing = (async () => {
        await Promise.allSettled([...this.pending]);
        await this.db.close();
      })();
    }
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing !== null) throw new SpoolError('CLOSED', 'the LMDB store is closed; open it again with openLmdbStore');
  }

  /** One write transaction; resolves after commit (and fsync with durability 'fsync'). */
  private transact<T>(work: () => T): Promise<T> {
    try {
      this.assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    let done: Promise<T> = this.db.childTransaction(work);
    if (this.durability === 'fsync') {
      done = done.then(async (result) => {
        await this.db.flushed;
        return result;
      });
    }
    this.pending.add(done);
    const forget = (): void => void this.pending.delete(done);
    done.then(forget, forget);
    return done;
  }

  private expireSessions(cutoff: number): { removed: number; more: boolean } {
    const due = Array.from(this.db.getKeys({ start: ['t'], end: ['t', cutoff], limit: EXPIRE_SESSIONS_PER_TXN }));
    let removed = 0;
    for (const key of due) {
      const session = (key as [string, number, string])[2];
      this.db.removeSync(key);
      const meta = this.db.get(['m', session]) as MetaRecord | undefined;
      if (meta === undefined) continue;
      if (meta.lastWriteTs >= cutoff) {
        // Written since this entry was filed: file it again at its lastWriteTs, past this cutoff.
        this.db.putSync(['t', meta.lastWriteTs, session], true);
        continue;
      }
      this.deleteSession(session, meta);
      removed += 1;
    }
    return { removed, more: due.length === EXPIRE_SESSIONS_PER_TXN };
  }

  /** Every key of a session, including its entries in the dedupe and session expiry indexes. */
  private deleteSession(session: string, meta: MetaRecord): void {
    // Where writeMeta and the expirer file it; an entry left elsewhere finds no session and goes.
    this.db.removeSync(['t', expirySecond(meta.lastWriteTs), session]);
    this.db.removeSync(['t', meta.lastWriteTs, session]);
    for (const kind of ['k', 'x'] as const) {
      for (const { key, value } of entriesUnder(this.db, [kind, session])) {
        const id = key[2] as string;
        this.db.removeSync(['d', (value as KeyRecord | EndedRecord).ts, session, kind, id]);
        this.db.removeSync(key);
      }
    }
    removeUnder(this.db, ['b', session]);
    removeUnder(this.db, ['r', session]);
    removeUnder(this.db, ['g', session]);
    this.db.removeSync(['m', session]);
  }

  private expireDedupeRecords(cutoff: number): boolean {
    const due = Array.from(this.db.getKeys({ start: ['d'], end: ['d', cutoff], limit: EXPIRE_RECORDS_PER_TXN }));
    for (const key of due) {
      const [, ts, session, kind, id] = key as [string, number, string, 'k' | 'x', string];
      this.db.removeSync(key);
      const recordKey = [kind, session, id];
      const record = this.db.get(recordKey) as KeyRecord | EndedRecord | undefined;
      if (record !== undefined && record.ts === ts) this.db.removeSync(recordKey);
    }
    return due.length === EXPIRE_RECORDS_PER_TXN;
  }
}
