/**
 * The SessionStore seam. The session actor talks only to this interface; LMDB, Redis and the
 * memory store implement it and all pass `store.conformance.ts`.
 *
 * Every method on one session is atomic: the epoch check, dedupe, offset assignment, retention
 * and TTL refresh of one `append` happen as one store operation (one LMDB transaction, one Lua
 * script), so a paused or partitioned old owner can never write past a newer epoch (G4).
 */
import type { EndStatus, Offset, Priority, ReadItem, SessionEvent } from '../protocol/types';

/** Per-session bounds; past them the store trims oldest-lowest-priority first (G7). */
export interface Retention {
  /** Retained events (all priorities) the store aims to keep under. @default 100000 */
  readonly maxEvents: number;
  /** Retained bytes of event data (all priorities). @default 64 MiB */
  readonly maxBytes: number;
  /**
   * Hard cap for what cannot be trimmed (critical events): when critical events alone would
   * exceed maxEvents or maxBytes multiplied by this factor, chunks, appends and new generations
   * are refused with `full`. `gen.end` is never refused (G6). @default 2
   */
  readonly criticalFactor: number;
}

export interface StoreOptions {
  readonly retention: Retention;
  /** A session and all its keys disappear this long after its last write. @default 7 days */
  readonly sessionTtlMs: number;
  /** Append idempotency keys are remembered at least this long. @default 24 h, never under 2 min */
  readonly dedupeWindowMs: number;
}

export const DEFAULT_STORE_OPTIONS: StoreOptions = {
  retention: { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024, criticalFactor: 2 },
  sessionTtlMs: 7 * 24 * 3600 * 1000,
  dedupeWindowMs: 24 * 3600 * 1000,
};

/** The generation currently allowed to write in a session, as the store knows it. */
export interface ActiveGeneration {
  readonly id: string;
  readonly epoch: number;
  /** Highest durable seq of this generation; -1 before its first chunk. */
  readonly lastSeq: number;
  /** Offset of its `gen.start`. */
  readonly startOffset: Offset;
  /**
   * When it last showed activity (ms since epoch): the newest ts of its stored or dropped chunks,
   * its open, and any resumed re-open. Drives the idle timeout, across processes and restarts.
   */
  readonly lastWriteTs: number;
}

export interface SessionMeta {
  /** Writer epoch: bumped by every generation open. 0 before the first. */
  readonly epoch: number;
  /** Offset of the newest event; 0 for an empty (or unknown) session. */
  readonly head: Offset;
  readonly active: ActiveGeneration | null;
  /** Retained events and bytes, for retention and for memory accounting. */
  readonly count: number;
  readonly bytes: number;
}

export interface OpenRequest {
  readonly generationId: string;
  /**
   * Displace the writer of the active generation: one of another id ends with `gen.end fenced`;
   * the same id, when the open does not prove it is its producer, gets a new epoch and tag (its
   * old writer is fenced) and keeps its seqs.
   */
  readonly takeover: boolean;
  /**
   * A producer resuming a generation it opened before: never create it. When it is neither
   * active nor remembered as ended, the answer is `unknown`.
   */
  readonly resumeOnly?: boolean;
  /** The tag any epoch this open makes gets (a new generation, or a takeover of the active one). */
  readonly tag: string;
  /**
   * Proof that the caller is the active generation's producer (PROTOCOL §7.1): the tag of its
   * resume token, and/or the digest of the secret its first open carried. Without one that
   * matches, re-opening the active generation answers `active` and changes nothing.
   */
  readonly resumeTag?: string;
  /** Digest of the producer's secret: remembered with a new generation, compared on a re-open. */
  readonly secret?: string;
  readonly ts: number;
}

export type OpenResult =
  /** A new generation: the epoch was bumped, `gen.start` appended (after a `gen.end fenced` for a displaced one). */
  | {
      readonly status: 'opened';
      readonly epoch: number;
      readonly nextSeq: number;
      readonly startOffset: Offset;
      readonly events: readonly SessionEvent[];
      readonly trimmed: readonly TrimmedEvent[];
      readonly fenced: string | null;
    }
  /**
   * The generation is the active one and the open proved it is its producer: resume at nextSeq.
   * Nothing is stored; only the generation's lastWriteTs is raised to the request's ts (a re-open
   * keeps it alive, §7.8). With `takeover` (an open of the active id with takeover and without
   * proof) the epoch was bumped and the tag replaced: the previous writer is fenced.
   */
  | {
      readonly status: 'resumed';
      readonly epoch: number;
      readonly tag: string;
      readonly nextSeq: number;
      readonly startOffset: Offset;
      readonly takeover: boolean;
    }
  /**
   * Another generation is active and takeover was not asked for; or this one is, and the open
   * proved nothing. Nothing was written.
   */
  | { readonly status: 'active'; readonly activeId: string; readonly epoch: number }
  /** This generation id already ended (within the dedupe window). */
  | { readonly status: 'closed'; readonly endStatus: EndStatus; readonly endOffset: Offset }
  /** Critical events alone are at the hard cap. */
  | { readonly status: 'full' }
  /** `resumeOnly` and the generation is neither active nor remembered as ended. */
  | { readonly status: 'unknown' };

/**
 * What `reset` did (PROTOCOL §10.5): every event up to `cleared` was removed and one
 * `session.reset` event stored after them, at `head`; the epoch was bumped (fencing every writer)
 * and the generation that was active, if any (`fenced`), ended with status fenced. `unknown`: the
 * session holds nothing; nothing was written.
 */
export type ResetResult =
  | {
      readonly status: 'reset';
      readonly epoch: number;
      readonly head: Offset;
      readonly cleared: Offset;
      readonly fenced: string | null;
      readonly events: readonly SessionEvent[];
    }
  | { readonly status: 'unknown' };

/**
 * What `delete` did: every key of the session is gone (its log, meta, indexes, append keys and
 * ended generations); `head` and `epoch` are what it had, `fenced` the generation that was
 * active. `unknown`: there was nothing to delete.
 */
export type DeleteResult =
  | { readonly status: 'deleted'; readonly head: Offset; readonly epoch: number; readonly fenced: string | null }
  | { readonly status: 'unknown' };

/** One session as a listing shows it. */
export interface SessionSummary extends SessionMeta {
  readonly id: string;
}

/** A page of sessions; `cursor` continues the listing, null when it is complete. */
export interface SessionPage {
  readonly sessions: readonly SessionSummary[];
  readonly cursor: string | null;
}

/** What the store knows of one session beyond its meta, for an operator. */
export interface SessionDetails extends SessionMeta {
  readonly lastWriteTs: number;
  /** Retained events per priority (0 debug, 1 low, 2 normal, 3 critical). */
  readonly retained: readonly [number, number, number, number];
  /** Generations that ended within the dedupe window, oldest end first. */
  readonly ended: readonly { readonly id: string; readonly status: EndStatus; readonly offset: Offset }[];
}

/** One write of a batch. Items are applied in order; each gets its own result. */
export type WriteItem =
  | {
      readonly op: 'chunk';
      readonly generationId: string;
      readonly epoch: number;
      readonly seq: number;
      readonly kind?: string;
      readonly priority: Priority;
      readonly ts: number;
      readonly data: unknown;
      /** Encoded size of data in bytes, counted against retention.maxBytes. */
      readonly size: number;
      /**
       * Degradation (§7.6, G8): the gateway dropped this priority-0 chunk at the door. It is
       * checked like a chunk (fenced, closed, duplicate, seq_gap; never `full`), then consumes its
       * seq (the seq index remembers it as dropped) and stores nothing: no event, no offset.
       */
      readonly drop?: true;
    }
  | {
      /** Ends the generation: appends `gen.end` at position `seq` (= its chunk count). */
      readonly op: 'end';
      readonly generationId: string;
      readonly epoch: number;
      readonly seq: number;
      readonly status: EndStatus;
      readonly error?: string;
      readonly ts: number;
      /**
       * Conditional end for the idle timeout (ms since epoch): end only if the generation showed
       * no activity after this time (its lastWriteTs <= ifIdleSince: no chunk stored or dropped,
       * no re-open), else answer `busy` and write nothing. Checked after the ended/fenced/closed
       * checks, before the seq check. Makes the timeout safe when several gateway processes each
       * run one: activity seen by any of them wins.
       */
      readonly ifIdleSince?: number;
    }
  | {
      readonly op: 'append';
      readonly key: string;
      readonly kind: string;
      readonly priority: Priority;
      readonly ts: number;
      readonly data: unknown;
      readonly size: number;
      /**
       * Compare-and-append (PROTOCOL §16.11): stored only if the session's head is `ifHead` when
       * the item comes up (the call's items before it applied), else answered `conflict` with the
       * head, and nothing is stored. The key's dedupe comes first: a key stored before is a
       * `duplicate` whatever the head. Conditional items of one call hold together: once one of
       * them is not stored by this call (duplicate, conflict, full), every later conditional item
       * of the call is a `conflict`; so a caller writing several items on one condition sends them
       * in one call, each with the head it expects (the one before's offset).
       */
      readonly ifHead?: Offset;
    };

export type WriteResult =
  /** Stored now at `offset`. */
  | { readonly status: 'ok'; readonly offset: Offset }
  /**
   * Stored before (same generation+seq, same key, or an `end` of a generation that already
   * ended, which also says how it ended): the original offset.
   */
  | { readonly status: 'duplicate'; readonly offset: Offset; readonly endStatus?: EndStatus }
  /** The item's epoch is older than the session's: not stored. */
  | { readonly status: 'fenced'; readonly epoch: number }
  /** The item's generation is not active (ended, or never opened at this epoch): not stored. */
  | { readonly status: 'closed' }
  /** The item's seq skips ahead of the generation's next seq: not stored. */
  | { readonly status: 'seq_gap'; readonly expected: number }
  /** Critical events alone are at the hard cap: not stored. */
  | { readonly status: 'full' }
  /**
   * A dropped chunk (`drop`) consumed its seq and stored nothing; also the answer to any later
   * chunk (dropped or not) at a seq that was dropped: it is never stored.
   */
  | { readonly status: 'dropped' }
  /** An `end` with `ifIdleSince`: the generation stored something after it (at `lastWriteTs`); nothing written. */
  | { readonly status: 'busy'; readonly lastWriteTs: number }
  /** An `append` with `ifHead`: the session's head is `head`, not the one asked for (or an earlier conditional item of the call failed); nothing written. */
  | { readonly status: 'conflict'; readonly head: Offset };

/** An event removed by retention, as metadata only (never read or decoded to decide). */
export interface TrimmedEvent {
  readonly offset: Offset;
  readonly priority: Priority;
  readonly size: number;
}

export interface AppendResult {
  readonly results: readonly WriteResult[];
  /** The events stored by this call (status 'ok'), in offset order, for the hot buffer and fanout. */
  readonly events: readonly SessionEvent[];
  /** What retention removed during this call. */
  readonly trimmed: readonly TrimmedEvent[];
  readonly head: Offset;
  /**
   * The `spool.v1` encoding of `events` as one array (protocol encodeEvents), when the store made
   * it anyway (LMDB keeps each call's events as those bytes): readers' frames reuse it as is.
   */
  readonly encoded?: Uint8Array;
}

export interface ReadResult {
  /** Events with offset > after, in offset order, with a `gap` item for each trimmed range in between. */
  readonly items: readonly ReadItem[];
  /** The session's head at the time of the read. */
  readonly head: Offset;
  /** Highest offset this read covered (events and gaps); read again after it to continue. */
  readonly through: Offset;
}

/** A session changed: something was stored and its head is now `head`. */
export interface ChangeNotice {
  readonly head: Offset;
  /** The session was deleted (`head` is then 0): its log and state are gone. */
  readonly deleted?: boolean;
}

/**
 * Receives change notices. Called synchronously by the store, so it must be quick; an exception
 * it throws fails neither the write nor the other listeners (it is rethrown on a later tick).
 */
export type ChangeListener = (notice: ChangeNotice) => void;

export interface SessionStore {
  /** Reads the session's meta; an unknown or expired session is `{epoch: 0, head: 0, active: null, ...}`. */
  meta(session: string): Promise<SessionMeta>;
  openGeneration(session: string, request: OpenRequest): Promise<OpenResult>;
  append(session: string, items: readonly WriteItem[]): Promise<AppendResult>;
  /**
   * Up to `limit` events with offset > after, plus gaps for trimmed ranges in what it covers
   * (a gap counts as one item toward the limit). `through` reaches `head` when nothing is left.
   */
  read(session: string, after: Offset, limit: number): Promise<ReadResult>;
  /**
   * Empties the session's log in one atomic step (PROTOCOL §10.5): offsets continue, the removed
   * range reads as a gap followed by a `session.reset` event; keys and ended generations stay
   * for their dedupe window. Notifies watchers like a write.
   */
  reset(session: string, ts: number): Promise<ResetResult>;
  /**
   * Removes the session and every key it has, in one atomic step, and notifies watchers (every
   * process, on a shared store) with `{ head: 0, deleted: true }`. A session written afterwards
   * starts again from offset 1 and epoch 1.
   */
  delete(session: string): Promise<DeleteResult>;
  /**
   * Up to `limit` sessions the store holds, from where `cursor` (a previous page's) left off.
   * The order is the store's own (by id where it can, unordered on Redis); a session written
   * while a listing runs may or may not be in it.
   */
  list(cursor: string | null, limit: number): Promise<SessionPage>;
  /** The session's details; null when it does not exist. */
  inspect(session: string): Promise<SessionDetails | null>;
  /**
   * Removes sessions idle past sessionTtlMs and dedupe keys past the window; returns sessions
   * removed. A store whose server expires keys by itself (Redis: key TTLs, and dedupe records
   * pruned inside the write scripts) has nothing to do here and returns 0.
   */
  expire(now: number): Promise<number>;
  /**
   * Change notices for one session: `listener` is called after any `openGeneration`/`append`
   * that stored something in it, from this process or (shared stores) any other, with the new
   * head. Notices may be duplicated or report a head the listener already has (ignore those);
   * none is silently lost while the store is connected, and after a reconnect the store sends
   * one notice with the current head per watched session, so a gap in notices heals. Cheap to
   * call per reader: a shared store keeps one subscription per session per process. Returns the
   * unsubscribe function (idempotent). Throws CLOSED after close.
   */
  watch(session: string, listener: ChangeListener): () => void;
  /** Resolves if the store can serve right now; rejects otherwise (CLOSED after close). For readiness checks. */
  ping(): Promise<void>;
  /** Flushes and releases. Idempotent. */
  close(): Promise<void>;
}
