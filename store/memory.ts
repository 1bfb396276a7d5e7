/**
 * MemoryStore: the SessionStore in plain Maps, for unit tests of the gateway and client. It
 * shares its write rules with the LMDB store (engine.ts) and passes the same conformance suite,
 * so a test written against it holds against the real stores. Nothing survives the process.
 */
import { SpoolError } from '../protocol/errors';
import type { Offset, Priority, SessionEvent } from '../protocol/types';
import { LocalNotices } from './notices';
import { assembleRead } from './read';
import {
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
import type {
  AppendResult,
  ChangeListener,
  OpenRequest,
  OpenResult,
  ReadResult,
  DeleteResult,
  SessionDetails,
  SessionPage,
  ResetResult,
  SessionMeta,
  SessionStore,
  StoreOptions,
  TrimmedEvent,
  WriteItem,
} from './types';

/**
 * A FIFO of (offset, size) pairs: push at the tail, pop at the head in O(1). Array.shift on a
 * long array moves every element; instead a head index advances and the consumed prefix is cut
 * off once it is both large and the bigger half of the arrays.
 */
export class OffsetFifo {
  private offsets: number[] = [];
  private sizes: number[] = [];
  private head = 0;

  get length(): number {
    return this.offsets.length - this.head;
  }

  push(offset: Offset, size: number): void {
    this.offsets.push(offset);
    this.sizes.push(size);
  }

  /** Forgets every entry. */
  clear(): void {
    this.offsets = [];
    this.sizes = [];
    this.head = 0;
  }

  /** Removes and returns the oldest entry. */
  shift(): { offset: Offset; size: number } | undefined {
    if (this.head >= this.offsets.length) return undefined;
    const offset = this.offsets[this.head] as number;
    const size = this.sizes[this.head] as number;
    this.head += 1;
    if (this.head === this.offsets.length) {
      this.offsets = [];
      this.sizes = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.offsets.length) {
      this.offsets = this.offsets.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
    return { offset, size };
  }
}

interface StoredEvent {
  readonly event: SessionEvent;
  readonly size: number;
}

interface MemorySession {
  meta: MetaRecord;
  readonly events: Map<Offset, StoredEvent>;
  /** Retained trimmable events by priority 0, 1, 2, each in offset order. */
  readonly retained: readonly [OffsetFifo, OffsetFifo, OffsetFifo];
  /** seq -> offset, for the active generation only. */
  readonly seqs: Map<string, Map<number, Offset>>;
  readonly keys: Map<string, KeyRecord>;
  readonly ended: Map<string, EndedRecord>;
}

function newSession(): MemorySession {
  return {
    meta: { epoch: 0, head: 0, active: null, count: 0, bytes: 0, criticalCount: 0, criticalBytes: 0, lastWriteTs: 0 },
    events: new Map(),
    retained: [new OffsetFifo(), new OffsetFifo(), new OffsetFifo()],
    seqs: new Map(),
    keys: new Map(),
    ended: new Map(),
  };
}

/** The engine's view of one memory session; the session is created on its first write only. */
class MemoryTx implements SessionTx {
  private session: MemorySession | undefined;

  constructor(
    private readonly sessions: Map<string, MemorySession>,
    private readonly id: string,
  ) {
    this.session = sessions.get(id);
  }

  private writable(): MemorySession {
    if (this.session === undefined) {
      this.session = newSession();
      this.sessions.set(this.id, this.session);
    }
    return this.session;
  }

  readMeta(): MetaRecord | undefined {
    return this.session?.meta;
  }

  writeMeta(meta: MetaRecord): void {
    this.writable().meta = meta;
  }

  putEvent(event: SessionEvent, size: number): void {
    const session = this.writable();
    session.events.set(event.offset, { event, size });
    if (event.priority < 3) session.retained[event.priority as 0 | 1 | 2].push(event.offset, size);
  }

  evictOldest(): TrimmedEvent | undefined {
    const session = this.session;
    if (session === undefined) return undefined;
    for (const priority of [0, 1, 2] as const) {
      const oldest = session.retained[priority].shift();
      if (oldest === undefined) continue;
      session.events.delete(oldest.offset);
      return { offset: oldest.offset, priority: priority as Priority, size: oldest.size };
    }
    return undefined;
  }

  clearEvents(): void {
    const session = this.session;
    if (session === undefined) return;
    session.events.clear();
    for (const fifo of session.retained) fifo.clear();
  }

  seqOffset(generationId: string, seq: number): Offset | undefined {
    return this.session?.seqs.get(generationId)?.get(seq);
  }

  putSeq(generationId: string, seq: number, offset: Offset): void {
    const seqs = this.writable().seqs;
    let index = seqs.get(generationId);
    if (index === undefined) {
      index = new Map();
      seqs.set(generationId, index);
    }
    index.set(seq, offset);
  }

  dropSeqIndex(generationId: string): void {
    this.session?.seqs.delete(generationId);
  }

  keyRecord(key: string): KeyRecord | undefined {
    return this.session?.keys.get(key);
  }

  putKey(key: string, record: KeyRecord): void {
    this.writable().keys.set(key, record);
  }

  endedRecord(generationId: string): EndedRecord | undefined {
    return this.session?.ended.get(generationId);
  }

  putEnded(generationId: string, record: EndedRecord): void {
    this.writable().ended.set(generationId, record);
  }
}

/**
 * SessionStore in process memory. Each call runs synchronously to completion, which makes it
 * atomic with respect to every other call.
 */
export class MemoryStore implements SessionStore {
  /** Effective options (defaults filled in, dedupe window raised to at least 2 minutes). */
  readonly options: StoreOptions;
  private readonly sessions = new Map<string, MemorySession>();
  private readonly notices = new LocalNotices();
  private closed = false;

  constructor(options: Partial<StoreOptions> = {}) {
    this.options = normalizeOptions(options);
  }

  async meta(session: string): Promise<SessionMeta> {
    this.assertOpen();
    return publicMeta(this.sessions.get(session)?.meta);
  }

  async openGeneration(session: string, request: OpenRequest): Promise<OpenResult> {
    this.assertOpen();
    const result = applyOpen(new MemoryTx(this.sessions, session), request, this.options);
    // gen.start is the last event an open stores: its offset is the new head.
    if (result.status === 'opened') this.notices.notify(session, result.startOffset);
    return result;
  }

  async append(session: string, items: readonly WriteItem[]): Promise<AppendResult> {
    this.assertOpen();
    const result = applyAppend(new MemoryTx(this.sessions, session), items, this.options);
    if (result.events.length > 0) this.notices.notify(session, result.head);
    return result;
  }

  async reset(session: string, ts: number): Promise<ResetResult> {
    this.assertOpen();
    const result = applyReset(new MemoryTx(this.sessions, session), ts, this.options);
    if (result.status === 'reset') this.notices.notify(session, result.head);
    return result;
  }

  async delete(session: string): Promise<DeleteResult> {
    this.assertOpen();
    const found = this.sessions.get(session);
    if (found === undefined) return { status: 'unknown' };
    this.sessions.delete(session);
    const meta = found.meta;
    this.notices.notify(session, 0, true);
    return { status: 'deleted', head: meta.head, epoch: meta.epoch, fenced: meta.active === null ? null : meta.active.id };
  }

  async list(cursor: string | null, limit: number): Promise<SessionPage> {
    this.assertOpen();
    const ids = [...this.sessions.keys()].filter((id) => cursor === null || id > cursor).sort();
    const page = ids.slice(0, Math.max(1, limit));
    const sessions = page.map((id) => ({ id, ...publicMeta((this.sessions.get(id) as MemorySession).meta) }));
    return { sessions, cursor: ids.length > page.length ? (page.at(-1) as string) : null };
  }

  async inspect(session: string): Promise<SessionDetails | null> {
    this.assertOpen();
    const found = this.sessions.get(session);
    if (found === undefined) return null;
    const ended = [...found.ended].map(([id, record]) => ({ id, status: record.endStatus, offset: record.endOffset })).sort((a, b) => a.offset - b.offset);
    const [debug, low, normal] = found.retained;
    return { ...publicMeta(found.meta), lastWriteTs: found.meta.lastWriteTs, retained: [debug.length, low.length, normal.length, found.meta.criticalCount], ended };
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
    const state = this.sessions.get(session);
    const head = state?.meta.head ?? 0;
    if (limit < 1) return { items: [], head, through: after };
    const events: SessionEvent[] = [];
    if (state !== undefined) {
      // Walks offsets rather than sorting the map: offsets are dense 1..head apart from trimmed
      // holes, and this is a test store.
      for (let offset = after + 1; offset <= head && events.length < limit; offset++) {
        const stored = state.events.get(offset);
        if (stored !== undefined) events.push(stored.event);
      }
    }
    return assembleRead(after, events, head, events.length < limit);
  }

  /**
   * Scans every session: acceptable for a test store (the LMDB store uses expiry indexes).
   */
  async expire(now: number): Promise<number> {
    this.assertOpen();
    const sessionCutoff = now - this.options.sessionTtlMs;
    const dedupeCutoff = now - this.options.dedupeWindowMs;
    let removed = 0;
    for (const [id, session] of this.sessions) {
      if (session.meta.lastWriteTs < sessionCutoff) {
        this.sessions.delete(id);
        removed += 1;
        continue;
      }
      for (const [key, record] of session.keys) if (record.ts < dedupeCutoff) session.keys.delete(key);
      for (const [generationId, record] of session.ended) if (record.ts < dedupeCutoff) session.ended.delete(generationId);
    }
    return removed;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new SpoolError('CLOSED', 'the memory store is closed; create a new MemoryStore');
  }
}
