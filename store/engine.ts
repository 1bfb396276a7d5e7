/**
 * The write semantics every embedded store shares: fencing, dedupe, seq order, offset
 * assignment, the critical hard cap and priority retention, written once against a small
 * synchronous view of one session (`SessionTx`). The memory store backs that view with Maps,
 * the LMDB store with key ranges inside one transaction, so both behave identically by
 * construction; the Redis store repeats these rules in Lua and proves it with the same
 * conformance suite.
 *
 * A generation's life as this file implements it:
 *
 *            open (epoch+1, gen.start)
 *   (none) ──────────────────────────▶ active ──end(seq = chunk count)──▶ ended (gen.end status)
 *                                        │  ▲
 *                       open same id ────┘  │ chunk seq = lastSeq+1
 *                       proved (token tag   │ (stored, or dropped: seq consumed, nothing stored)
 *                       or secret): resumed,│
 *                       lastWriteTs only;   │
 *                       unproved + takeover:│ epoch+1, new tag (old writer fenced), no event;
 *                       unproved: `active`  │
 *                                        │ open other id + takeover
 *                                        └──────────────────────────────▶ ended (gen.end fenced)
 *
 * An ended generation is remembered (status, gen.end offset) for the dedupe window, so a retried
 * open answers `closed` and a retried end answers `duplicate` with how it ended.
 *
 * The seq index maps each seq of the active generation to its offset, or to DROPPED_SEQ (0,
 * never an offset) for a chunk the gateway dropped under pressure (§7.6): a retransmission of a
 * dropped seq is answered `dropped`, never stored.
 */
import type { EndStatus, Offset, Priority, SessionEvent } from '../protocol/types';
import {
  DEFAULT_STORE_OPTIONS,
  type AppendResult,
  type OpenRequest,
  type OpenResult,
  type ResetResult,
  type SessionMeta,
  type StoreOptions,
  type TrimmedEvent,
  type WriteItem,
  type WriteResult,
} from './types';

/** The least dedupe window any store honours (G2: "never under 2 min"). */
export const MIN_DEDUPE_WINDOW_MS = 120_000;

const CRITICAL: Priority = 3;

/** The seq index's entry for a dropped chunk: offsets start at 1, so 0 is never a real one. */
export const DROPPED_SEQ: Offset = 0;

/** The active generation as persisted; mutable only inside one operation. */
export interface ActiveRecord {
  id: string;
  epoch: number;
  lastSeq: number;
  startOffset: Offset;
  lastWriteTs: number;
  /** The tag of the current epoch's token: a resume must present it (PROTOCOL §7.1). */
  tag: string;
  /** Digest of the producer's secret ('' when its open carried none). */
  secret: string;
}

/** A session's persisted bookkeeping. `count`/`bytes` include the critical share. */
export interface MetaRecord {
  epoch: number;
  head: Offset;
  active: ActiveRecord | null;
  count: number;
  bytes: number;
  criticalCount: number;
  criticalBytes: number;
  /** Newest `ts` of anything stored: the session's TTL runs from here. */
  lastWriteTs: number;
}

/** How a generation ended, kept for the dedupe window. `ts` is when it ended. */
export interface EndedRecord {
  readonly endStatus: EndStatus;
  readonly endOffset: Offset;
  readonly ts: number;
}

/** An append idempotency key: where its event went and when (for the dedupe window). */
export interface KeyRecord {
  readonly offset: Offset;
  readonly ts: number;
}

/**
 * One session as seen from inside one atomic store operation. Every method is synchronous:
 * the whole operation runs without yielding, which is what makes it one transaction.
 */
export interface SessionTx {
  readMeta(): MetaRecord | undefined;
  /** Persists meta; `previous` is what readMeta returned, so indexes keyed by it can move. */
  writeMeta(meta: MetaRecord, previous: MetaRecord | undefined): void;
  /** Stores an event and, for priorities 0–2, enters it in the retention index. */
  putEvent(event: SessionEvent, size: number): void;
  /** Deletes the oldest retained event of the lowest trimmable priority present. */
  evictOldest(): TrimmedEvent | undefined;
  /** Deletes every event and the retention index (a reset); keys, ended records and meta stay. */
  clearEvents(): void;
  seqOffset(generationId: string, seq: number): Offset | undefined;
  putSeq(generationId: string, seq: number, offset: Offset): void;
  /** Forgets a generation's seq index once it ended: no per-generation state outlives it (G8). */
  dropSeqIndex(generationId: string): void;
  keyRecord(key: string): KeyRecord | undefined;
  putKey(key: string, record: KeyRecord): void;
  endedRecord(generationId: string): EndedRecord | undefined;
  putEnded(generationId: string, record: EndedRecord): void;
}

/**
 * Fills in defaults and enforces the dedupe floor: a window below 2 minutes is raised to
 * 2 minutes, because producers retry for about that long after a disconnect and a forgotten key
 * would store their retry twice.
 */
export function normalizeOptions(options: Partial<StoreOptions> = {}): StoreOptions {
  return {
    retention: { ...DEFAULT_STORE_OPTIONS.retention, ...options.retention },
    sessionTtlMs: options.sessionTtlMs ?? DEFAULT_STORE_OPTIONS.sessionTtlMs,
    dedupeWindowMs: Math.max(MIN_DEDUPE_WINDOW_MS, options.dedupeWindowMs ?? DEFAULT_STORE_OPTIONS.dedupeWindowMs),
  };
}

export function emptyMeta(): MetaRecord {
  return { epoch: 0, head: 0, active: null, count: 0, bytes: 0, criticalCount: 0, criticalBytes: 0, lastWriteTs: 0 };
}

/** The public shape of a meta record (no internal counters, no shared references). */
export function publicMeta(meta: MetaRecord | undefined): SessionMeta {
  if (meta === undefined) return { epoch: 0, head: 0, active: null, count: 0, bytes: 0 };
  return {
    epoch: meta.epoch,
    head: meta.head,
    // Tag and secret digest stay inside the store: they are the producer's credentials.
    active: meta.active === null ? null : { id: meta.active.id, epoch: meta.active.epoch, lastSeq: meta.active.lastSeq, startOffset: meta.active.startOffset, lastWriteTs: meta.active.lastWriteTs },
    count: meta.count,
    bytes: meta.bytes,
  };
}

/** Field by field, as literals: a spread copy here ran once per store call (bench:engine guards the cliff). */
function copyMeta(meta: MetaRecord): MetaRecord {
  const a = meta.active;
  const active: ActiveRecord | null = a === null ? null : { id: a.id, epoch: a.epoch, lastSeq: a.lastSeq, startOffset: a.startOffset, lastWriteTs: a.lastWriteTs, tag: a.tag, secret: a.secret };
  return {
    epoch: meta.epoch,
    head: meta.head,
    active,
    count: meta.count,
    bytes: meta.bytes,
    criticalCount: meta.criticalCount,
    criticalBytes: meta.criticalBytes,
    lastWriteTs: meta.lastWriteTs,
  };
}

/** The working state of one operation: a private copy of meta plus what it stored and trimmed. */
class Operation {
  readonly meta: MetaRecord;
  readonly events: SessionEvent[] = [];
  readonly trimmed: TrimmedEvent[] = [];
  private dirty = false;

  constructor(
    private readonly tx: SessionTx,
    private readonly options: StoreOptions,
    private readonly previous: MetaRecord | undefined,
  ) {
    // A copy, so a store that hands out its live record (memory) is untouched until commit.
    this.meta = copyMeta(previous ?? emptyMeta());
  }

  /** Critical events alone at the hard cap: new chunks, appends and opens are refused (G7). */
  isFull(): boolean {
    const { retention } = this.options;
    return (
      this.meta.criticalCount >= retention.maxEvents * retention.criticalFactor ||
      this.meta.criticalBytes >= retention.maxBytes * retention.criticalFactor
    );
  }

  /** The offset the next stored event gets: the session's head + 1. */
  get nextOffset(): Offset {
    return this.meta.head + 1;
  }

  /**
   * Stores an event built by the caller at `nextOffset`; the only place offsets are made. The
   * caller builds the whole event as one object literal: copying fields in here with a spread
   * cost ≈ 2 µs per event on Node 20 (it falls off V8's fast path), bench:engine guards it.
   */
  store(event: SessionEvent, size: number): Offset {
    const meta = this.meta;
    const offset = meta.head + 1;
    if (event.offset !== offset) throw new Error(`engine: event at offset ${event.offset} stored at head ${meta.head}`);
    this.tx.putEvent(event, size);
    meta.head = offset;
    meta.count += 1;
    meta.bytes += size;
    if (event.priority === CRITICAL) {
      meta.criticalCount += 1;
      meta.criticalBytes += size;
    }
    // Max, not assignment: gateways on different hosts may disagree slightly about the clock,
    // and a session's TTL must never move backwards.
    meta.lastWriteTs = Math.max(meta.lastWriteTs, event.ts);
    this.events.push(event);
    this.dirty = true;
    return offset;
  }

  /** Appends the generation's gen.end, forgets its seq index and remembers how it ended. */
  endGeneration(active: ActiveRecord, seq: number, status: EndStatus, error: string | undefined, ts: number): Offset {
    const at = this.nextOffset;
    const event: SessionEvent =
      error === undefined
        ? { offset: at, type: 'gen.end', generationId: active.id, seq, status, priority: CRITICAL, ts }
        : { offset: at, type: 'gen.end', generationId: active.id, seq, status, error, priority: CRITICAL, ts };
    const offset = this.store(event, 0);
    this.tx.dropSeqIndex(active.id);
    this.tx.putEnded(active.id, { endStatus: status, endOffset: offset, ts });
    this.meta.active = null;
    return offset;
  }

  /**
   * Retention (G7): while over either bound, delete the oldest event of the lowest priority
   * present. Critical events are not in the retention index, so they are never chosen.
   */
  retain(): void {
    const meta = this.meta;
    const { maxEvents, maxBytes } = this.options.retention;
    while ((meta.count > maxEvents || meta.bytes > maxBytes) && meta.count > meta.criticalCount) {
      const evicted = this.tx.evictOldest();
      // The counters say a trimmable event exists but the index has none: stop rather than spin.
      if (evicted === undefined) break;
      meta.count -= 1;
      meta.bytes -= evicted.size;
      this.trimmed.push(evicted);
      this.dirty = true;
    }
  }

  /**
   * Marks meta changed without storing an event (a dropped chunk, a resumed open raising the
   * active generation's lastWriteTs). Only for a session that has an active generation, so it
   * never creates a session.
   */
  touch(): void {
    this.dirty = true;
  }

  /** Writes meta only when something changed, so refused writes never create or touch a session. */
  commit(): void {
    if (this.dirty) this.tx.writeMeta(this.meta, this.previous);
  }
}

/**
 * True when an open of the active generation comes from its producer: it presents the tag of the
 * current epoch's token, or repeats the secret of the generation's first open. An empty tag or
 * secret never matches (a generation opened without a secret cannot be resumed by one).
 */
function provesProducer(active: ActiveRecord, request: OpenRequest): boolean {
  if (request.resumeTag !== undefined && request.resumeTag !== '' && request.resumeTag === active.tag) return true;
  return request.secret !== undefined && request.secret !== '' && request.secret === active.secret;
}

/** `SessionStore.openGeneration` against one session view. */
export function applyOpen(tx: SessionTx, request: OpenRequest, options: StoreOptions): OpenResult {
  const previous = tx.readMeta();
  const op = new Operation(tx, options, previous);
  const meta = op.meta;
  const current = meta.active;

  if (current !== null && current.id === request.generationId) {
    if (provesProducer(current, request)) {
      // A re-open is activity (§7.8): every process's idle timeout must see it. Only the active
      // generation's lastWriteTs moves (one meta write, and none when it would not rise); the
      // session's own lastWriteTs (its TTL) stays, as nothing was stored.
      if (request.ts > current.lastWriteTs) {
        current.lastWriteTs = request.ts;
        op.touch();
        op.commit();
      }
      return { status: 'resumed', epoch: current.epoch, tag: current.tag, nextSeq: current.lastSeq + 1, startOffset: current.startOffset, takeover: false };
    }
    if (!request.takeover || request.resumeOnly === true) return { status: 'active', activeId: current.id, epoch: meta.epoch };
    // Takeover of the active generation's writer: a new epoch and tag fence whoever held the old
    // token; the generation, its seqs and its log stay as they are (no event is stored).
    meta.epoch += 1;
    current.epoch = meta.epoch;
    current.tag = request.tag;
    current.secret = request.secret ?? '';
    current.lastWriteTs = Math.max(current.lastWriteTs, request.ts);
    // The new epoch is durable state: it refreshes the session's TTL like a dropped chunk does
    // (the Redis store refreshes every key's TTL on it too).
    meta.lastWriteTs = Math.max(meta.lastWriteTs, request.ts);
    op.touch();
    op.commit();
    return { status: 'resumed', epoch: current.epoch, tag: current.tag, nextSeq: current.lastSeq + 1, startOffset: current.startOffset, takeover: true };
  }
  const ended = tx.endedRecord(request.generationId);
  if (ended !== undefined) return { status: 'closed', endStatus: ended.endStatus, endOffset: ended.endOffset };
  if (request.resumeOnly) return { status: 'unknown' };
  if (current !== null && !request.takeover) return { status: 'active', activeId: current.id, epoch: meta.epoch };
  if (op.isFull()) return { status: 'full' };

  meta.epoch += 1;
  let fenced: string | null = null;
  if (current !== null) {
    // The displaced generation's terminal event precedes the new gen.start (G6).
    op.endGeneration(current, current.lastSeq + 1, 'fenced', undefined, request.ts);
    fenced = current.id;
  }
  const startOffset = op.store({ offset: op.nextOffset, type: 'gen.start', generationId: request.generationId, priority: CRITICAL, ts: request.ts }, 0);
  meta.active = { id: request.generationId, epoch: meta.epoch, lastSeq: -1, startOffset, lastWriteTs: request.ts, tag: request.tag, secret: request.secret ?? '' };
  op.retain();
  op.commit();
  return { status: 'opened', epoch: meta.epoch, nextSeq: 0, startOffset, events: op.events, trimmed: op.trimmed, fenced };
}

/** `SessionStore.append` against one session view: items in order, then retention. */
export function applyAppend(tx: SessionTx, items: readonly WriteItem[], options: StoreOptions): AppendResult {
  const op = new Operation(tx, options, tx.readMeta());
  const results: WriteResult[] = [];
  // Whether every conditional item so far was stored by this call (they hold together).
  let held = true;
  for (const item of items) {
    switch (item.op) {
      case 'chunk':
        results.push(applyChunk(tx, op, item));
        break;
      case 'end':
        results.push(applyEnd(tx, op, item));
        break;
      case 'append': {
        const result = applyKeyedAppend(tx, op, item, held);
        if (item.ifHead !== undefined && result.status !== 'ok') held = false;
        results.push(result);
        break;
      }
    }
  }
  op.retain();
  op.commit();
  return { results, events: op.events, trimmed: op.trimmed, head: op.meta.head };
}

/**
 * `SessionStore.reset` against one session view: the epoch moves on (every writer is fenced),
 * the active generation ends as fenced (its ended record answers a retried finish), every event
 * goes, and one `session.reset` event is stored after them. Offsets continue.
 */
export function applyReset(tx: SessionTx, ts: number, options: StoreOptions): ResetResult {
  const previous = tx.readMeta();
  if (previous === undefined || previous.head === 0) return { status: 'unknown' };
  const op = new Operation(tx, options, previous);
  const meta = op.meta;
  const cleared = meta.head;
  meta.epoch += 1;
  const active = meta.active;
  if (active !== null) {
    tx.dropSeqIndex(active.id);
    tx.putEnded(active.id, { endStatus: 'fenced', endOffset: cleared + 1, ts });
    meta.active = null;
  }
  tx.clearEvents();
  meta.count = 0;
  meta.bytes = 0;
  meta.criticalCount = 0;
  meta.criticalBytes = 0;
  const head = op.store({ offset: op.nextOffset, type: 'session.reset', priority: CRITICAL, ts }, 0);
  op.commit();
  return { status: 'reset', epoch: meta.epoch, head, cleared, fenced: active === null ? null : active.id, events: op.events };
}

type ChunkItem = Extract<WriteItem, { op: 'chunk' }>;
type EndItem = Extract<WriteItem, { op: 'end' }>;
type KeyedItem = Extract<WriteItem, { op: 'append' }>;

function applyChunk(tx: SessionTx, op: Operation, item: ChunkItem): WriteResult {
  const meta = op.meta;
  if (item.epoch < meta.epoch) return { status: 'fenced', epoch: meta.epoch };
  const active = meta.active;
  if (active === null || active.id !== item.generationId || active.epoch !== item.epoch) return { status: 'closed' };
  // Duplicates are answered before the hard cap: a retransmit stores nothing, and refusing it
  // would turn a chunk that is durable into one the producer believes was lost (G2).
  if (item.seq <= active.lastSeq) {
    const offset = tx.seqOffset(active.id, item.seq);
    // Only a seq below 0 has no entry (the index holds 0..lastSeq); it can never be stored.
    if (offset === undefined) return { status: 'seq_gap', expected: active.lastSeq + 1 };
    // A dropped seq stays dropped, whether the retransmission is marked drop or not (§7.6).
    if (offset === DROPPED_SEQ) return { status: 'dropped' };
    return { status: 'duplicate', offset };
  }
  if (item.drop === true) {
    // Never `full`: a drop stores nothing, so the hard cap has nothing to refuse.
    if (item.seq > active.lastSeq + 1) return { status: 'seq_gap', expected: active.lastSeq + 1 };
    tx.putSeq(active.id, item.seq, DROPPED_SEQ);
    active.lastSeq = item.seq;
    active.lastWriteTs = Math.max(active.lastWriteTs, item.ts);
    // The consumed seq is durable state: it refreshes the session's TTL like a stored write
    // (the Redis store refreshes every key's TTL on it too).
    meta.lastWriteTs = Math.max(meta.lastWriteTs, item.ts);
    op.touch();
    return { status: 'dropped' };
  }
  if (op.isFull()) return { status: 'full' };
  if (item.seq > active.lastSeq + 1) return { status: 'seq_gap', expected: active.lastSeq + 1 };

  // Two literal shapes, no spread (see Operation.store).
  const at = op.nextOffset;
  const event: SessionEvent =
    item.kind === undefined
      ? { offset: at, type: 'chunk', generationId: item.generationId, seq: item.seq, priority: item.priority, ts: item.ts, data: item.data }
      : { offset: at, type: 'chunk', generationId: item.generationId, seq: item.seq, kind: item.kind, priority: item.priority, ts: item.ts, data: item.data };
  const offset = op.store(event, item.size);
  tx.putSeq(active.id, item.seq, offset);
  active.lastSeq = item.seq;
  active.lastWriteTs = Math.max(active.lastWriteTs, item.ts);
  return { status: 'ok', offset };
}

function applyEnd(tx: SessionTx, op: Operation, item: EndItem): WriteResult {
  const meta = op.meta;
  // The ended record is consulted before the epoch: a retried finish must learn how its
  // generation ended even after a newer generation bumped the epoch. Nothing is written here,
  // so answering it cannot let a stale writer change the log (G4 holds).
  const ended = tx.endedRecord(item.generationId);
  if (ended !== undefined) return { status: 'duplicate', offset: ended.endOffset, endStatus: ended.endStatus };
  if (item.epoch < meta.epoch) return { status: 'fenced', epoch: meta.epoch };
  const active = meta.active;
  if (active === null || active.id !== item.generationId || active.epoch !== item.epoch) return { status: 'closed' };
  // The idle timeout's end (§7.8): activity after the caller last looked wins, wherever it came from.
  if (item.ifIdleSince !== undefined && active.lastWriteTs > item.ifIdleSince) return { status: 'busy', lastWriteTs: active.lastWriteTs };
  if (item.seq !== active.lastSeq + 1) return { status: 'seq_gap', expected: active.lastSeq + 1 };
  // Never refused for `full`: every generation gets its terminal event (G6).
  const offset = op.endGeneration(active, item.seq, item.status, item.error, item.ts);
  return { status: 'ok', offset };
}

function applyKeyedAppend(tx: SessionTx, op: Operation, item: KeyedItem, held: boolean): WriteResult {
  const seen = tx.keyRecord(item.key);
  if (seen !== undefined) return { status: 'duplicate', offset: seen.offset };
  // Compare-and-append: the caller checked its writes against the session as of head ifHead.
  if (item.ifHead !== undefined && (!held || op.meta.head !== item.ifHead)) return { status: 'conflict', head: op.meta.head };
  if (op.isFull()) return { status: 'full' };
  const offset = op.store(
    { offset: op.nextOffset, type: 'append', key: item.key, kind: item.kind, priority: item.priority, ts: item.ts, data: item.data },
    item.size,
  );
  tx.putKey(item.key, { offset, ts: item.ts });
  return { status: 'ok', offset };
}
