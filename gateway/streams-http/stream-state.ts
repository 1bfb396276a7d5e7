/**
 * A session's log as the Durable Streams door sees it: the stream it holds (if any), rebuilt by
 * folding the session's events in offset order (records.ts says what each event means). Pure:
 * no store, no clock, no I/O; the catalog (catalog.ts) feeds it events as it reads them.
 *
 *   (empty) ──ds.meta──▶ open ──ds.close──▶ closed
 *                         │                   │
 *                         └──ds.delete────────┴──▶ deleted (soft: forks still read it)
 *   deleted ──ds.meta (a new PUT)──▶ open, a new incarnation with fresh producers
 *   any ──session.reset (an operator emptied the session)──▶ (no stream)
 */
import type { Offset, ReadItem, SessionEvent } from '../../protocol/types';
import { mediaType, modeOf, type Mode } from './payloads';
import { decodeKey, KIND_CLOSE, KIND_DELETE, KIND_META, type DeleteRecord, type StreamMeta } from './records';

/** An idempotent producer's place in its stream (protocol §5.2.1). */
export interface ProducerState {
  readonly epoch: number;
  readonly lastSeq: number;
}

export interface ClosedState {
  /** Spool offset of the ds.close event. */
  readonly offset: Offset;
  /** The producer write that closed it, when it carried producer headers: [producer, epoch, seq]. */
  readonly by: readonly [string, number, number] | null;
}

/** One stream: what a PUT created, until a DELETE or expiry. */
export interface Incarnation {
  readonly inc: string;
  /** Spool offset of its ds.meta event. */
  readonly metaOffset: Offset;
  readonly meta: StreamMeta;
  readonly mode: Mode;
  /** ts of its ds.meta: with `inc`, names the incarnation uniquely even if a session's offsets restart (ETags). */
  readonly createdTs: number;
  closed: ClosedState | null;
  deleted: (DeleteRecord & { readonly offset: Offset }) | null;
  readonly producers: Map<string, ProducerState>;
  /** The highest Stream-Seq accepted (byte-wise order). */
  streamSeq: string | undefined;
  /** ts of its newest event: the TTL clock of a process that has not seen the stream before. */
  lastWriteTs: number;
}

export class StreamLog {
  /** Every offset up to here has been folded in. */
  scanned: Offset = 0;
  /** The stream of this session, if the door ever created one (deleted ones stay until a new PUT). */
  current: Incarnation | null = null;
  /** The session holds events but no ds.meta: written through the WebSocket door only. */
  private sawEvents = false;

  /** A session with events and no stream the door created: readable as a JSON stream of its events. */
  get native(): boolean {
    return this.current === null && this.sawEvents;
  }

  /** Folds a store page in: items after `scanned`, up to `through`. */
  apply(items: readonly ReadItem[], through: Offset): void {
    for (const item of items) {
      if (item.type === 'gap') continue;
      if (item.offset <= this.scanned) continue;
      this.applyEvent(item);
    }
    if (through > this.scanned) this.scanned = through;
  }

  /** Folds one event in (the catalog applies the door's own writes this way, without reading them back). */
  applyEvent(event: SessionEvent): void {
    if (event.offset > this.scanned) this.scanned = event.offset;
    if ((event.type as string) === 'session.reset') {
      // An operator emptied the session: whatever stream it held is gone.
      this.current = null;
      this.sawEvents = false;
      return;
    }
    this.sawEvents = true;
    const cur = this.current;
    const key = event.type === 'append' ? decodeKey(event.key) : undefined;
    if (event.kind === KIND_META && key?.type === 'meta') {
      const meta = event.data as StreamMeta;
      if (cur && !cur.deleted && cur.inc === key.inc) return;
      this.current = {
        inc: key.inc,
        metaOffset: event.offset,
        meta,
        mode: modeOf(meta.contentType),
        createdTs: event.ts,
        closed: null,
        deleted: null,
        producers: new Map(),
        streamSeq: undefined,
        lastWriteTs: event.ts,
      };
      return;
    }
    if (!cur) return;
    if (event.kind === KIND_DELETE && key?.type === 'delete' && key.inc === cur.inc) {
      // A soft delete (forks still read it) may later be made final; a final one stays.
      const record = event.data as DeleteRecord;
      if (cur.deleted === null || (cur.deleted.soft && !record.soft)) cur.deleted = { soft: record.soft, reason: record.reason, offset: event.offset };
      return;
    }
    if (cur.deleted) return;
    if (key === undefined || key.inc !== cur.inc) {
      // A write through the WebSocket door, or a straggler of an older incarnation.
      if (event.type === 'chunk' || event.type === 'append') cur.lastWriteTs = event.ts;
      return;
    }
    cur.lastWriteTs = event.ts;
    if (cur.closed) return;
    if (key.type === 'producer') {
      const prior = cur.producers.get(key.producer);
      if (!prior || key.epoch > prior.epoch || (key.epoch === prior.epoch && key.seq > prior.lastSeq)) {
        cur.producers.set(key.producer, { epoch: key.epoch, lastSeq: key.seq });
      }
    }
    if ((key.type === 'producer' || key.type === 'plain') && key.streamSeq !== null) {
      if (cur.streamSeq === undefined || key.streamSeq > cur.streamSeq) cur.streamSeq = key.streamSeq;
    }
    if (event.kind === KIND_CLOSE) {
      cur.closed = { offset: event.offset, by: key.type === 'producer' ? [key.producer, key.epoch, key.seq] : null };
    }
  }

  /** Forget everything (the session went back: expired and written again, or its store lost data). */
  reset(): void {
    this.scanned = 0;
    this.current = null;
    this.sawEvents = false;
  }
}

/** The first offset a read of the incarnation renders (its base) and how its own offsets render. */
export function baseOf(inc: Incarnation): number {
  return inc.meta.fork ? inc.meta.fork.offset : inc.metaOffset;
}

/** The stream offset of spool offset `o` of the incarnation's own log. */
export function renderOwn(inc: Incarnation, o: Offset): number {
  return baseOf(inc) + (o - inc.metaOffset);
}

/** The spool offset of the incarnation's own log at stream offset `r` (r ≥ its base). */
export function ownOffset(inc: Incarnation, r: number): Offset {
  return inc.metaOffset + (r - baseOf(inc));
}

/** The stream's tail (stream offset): the close for a closed stream, else the session head. */
export function tailOf(inc: Incarnation, head: Offset): number {
  return renderOwn(inc, inc.closed ? inc.closed.offset : head);
}

export type ProducerVerdict =
  | { readonly status: 'accept'; readonly next: ProducerState }
  | { readonly status: 'duplicate'; readonly lastSeq: number }
  | { readonly status: 'stale'; readonly epoch: number }
  | { readonly status: 'bad-epoch-seq' }
  | { readonly status: 'gap'; readonly expected: number; readonly received: number };

/**
 * The idempotent-producer check (protocol §5.2.1), the same rule a generation token follows in
 * spool's own door: an older epoch is fenced (403, like FENCED), a seq that skips ahead is a gap
 * (409, like SEQ_GAP), a seq already stored is a duplicate answered without storing (204).
 */
export function checkProducer(state: ProducerState | undefined, epoch: number, seq: number): ProducerVerdict {
  if (!state) return seq === 0 ? { status: 'accept', next: { epoch, lastSeq: 0 } } : { status: 'gap', expected: 0, received: seq };
  if (epoch < state.epoch) return { status: 'stale', epoch: state.epoch };
  if (epoch > state.epoch) return seq === 0 ? { status: 'accept', next: { epoch, lastSeq: 0 } } : { status: 'bad-epoch-seq' };
  if (seq <= state.lastSeq) return { status: 'duplicate', lastSeq: state.lastSeq };
  if (seq === state.lastSeq + 1) return { status: 'accept', next: { epoch, lastSeq: seq } };
  return { status: 'gap', expected: state.lastSeq + 1, received: seq };
}

/** Whether two Content-Type values name the same media type (parameters and case aside). */
export function sameMediaType(a: string, b: string): boolean {
  return mediaType(a) === mediaType(b);
}
