/**
 * Reading a stream over HTTP (protocol §5.6–5.8): catch-up, long-poll and SSE, all served by the
 * session actor's readers (session-tail.ts), from the hot buffer or the store, with the same
 * change notices and slow-reader bounds as WebSocket readers.
 *
 * A read covers a range of stream offsets, split in segments: a fork's inherited range is read
 * from its source's session (recursively for fork chains), capped at the fork point, then its own
 * range from its own session. The Collector folds what the tails deliver into the reader's units
 * (payloads.ts), tracking the stream offset it reached:
 *
 *   events ──▶ units, next offset    (a ds.close of the stream: EOF, stop)
 *   gap    ──▶ stop; first thing of the read: the range is gone (410)
 *   live   ──▶ caught up with the session head (catch-up stops; long-poll and SSE wait on)
 */
import { SpoolError } from '../../protocol/errors';
import type { Offset, SessionEvent, SessionId } from '../../protocol/types';
import type { StreamCatalog } from './catalog';
import { eventUnit, nativeUnit, unitSize, type Mode, type Unit } from './payloads';
import { decodeKey, KIND_CLOSE, KIND_DELETE, KIND_META } from './records';
import { SessionTail, type TailItem, type TailSink } from './session-tail';
import { baseOf, ownOffset, renderOwn, type Incarnation } from './stream-state';
import type { ActorRegistry } from '../registry';

/** One contiguous part of a read, in one session. */
export interface Segment {
  readonly session: SessionId;
  /** Spool offset the read starts after. */
  readonly after: Offset;
  /** Last spool offset of the segment (inherited ranges); none for the stream's own, live range. */
  readonly cap: Offset | undefined;
  readonly render: (o: Offset) => number;
  readonly unit: (e: SessionEvent) => Unit | null;
  /** The stream read, for its own segment: its close is EOF, its deletion ends the read. */
  readonly own: Incarnation | null;
  readonly isOwn: boolean;
}

/** The stream a request reads: a door-made incarnation, or a session read as a JSON stream of its events. */
export interface ReadView {
  readonly session: SessionId;
  readonly inc: Incarnation | null;
  readonly mode: Mode;
}

/** The segments covering stream offsets after `from` (≥ 0). */
export async function segmentsOf(catalog: StreamCatalog, view: ReadView, from: number): Promise<Segment[]> {
  if (view.inc === null) {
    return [{ session: view.session, after: from, cap: undefined, render: (o) => o, unit: nativeUnit, own: null, isOwn: true }];
  }
  return chain(catalog, view.inc, view.session, from, undefined, view.mode, true);
}

async function chain(catalog: StreamCatalog, inc: Incarnation, session: SessionId, from: number, cap: number | undefined, mode: Mode, isOwn: boolean): Promise<Segment[]> {
  const base = baseOf(inc);
  const segments: Segment[] = [];
  const fork = inc.meta.fork;
  if (fork && from < base) {
    const source = await catalog.fresh(fork.session as SessionId);
    const sourceInc = source.log.current;
    // The fork holds a reference on this incarnation, so it is still there (at most soft-deleted).
    if (sourceInc && sourceInc.inc === fork.inc) {
      segments.push(...(await chain(catalog, sourceInc, fork.session as SessionId, from, Math.min(cap ?? base, base), mode, false)));
    }
  }
  if (cap === undefined || cap > base) {
    segments.push({
      session,
      after: ownOffset(inc, Math.max(from, base)),
      cap: cap === undefined ? undefined : ownOffset(inc, cap),
      render: (o) => renderOwn(inc, o),
      unit: (e) => eventUnit(e, mode),
      own: isOwn ? inc : null,
      isOwn,
    });
  }
  return segments;
}

/** Whether `event` ends the incarnation's stream (deleted, replaced, or the session emptied). */
function endsStream(event: SessionEvent, inc: Incarnation): boolean {
  if ((event.type as string) === 'session.reset') return true;
  if (event.type !== 'append') return false;
  const key = decodeKey(event.key);
  if (event.kind === KIND_DELETE) return key?.type === 'delete' && key.inc === inc.inc;
  return event.kind === KIND_META && key?.type === 'meta' && key.inc !== inc.inc;
}

function closes(event: SessionEvent, inc: Incarnation): boolean {
  return event.type === 'append' && event.kind === KIND_CLOSE && decodeKey(event.key)?.inc === inc.inc;
}

export type Feed = 'more' | 'segment-done' | 'stop';

/** What a read gathered so far. */
export class Collector {
  units: Unit[] = [];
  bytes = 0;
  /** The stream offset the read reached. */
  next: number;
  /** Reached the stream's close: EOF. */
  closed = false;
  /** The stream was deleted or replaced while it was read. */
  ended = false;
  /** The first thing after the read's offset was trimmed by retention: 410. */
  gone = false;
  /** Reached the head of the stream's own session. */
  caughtUp = false;
  private position: Offset;
  private anything = false;

  /** Long-poll and SSE, once caught up: after `live`, keep taking events instead of stopping. */
  follow = false;

  constructor(
    private segment: Segment,
    private readonly maxBytes: number,
  ) {
    this.position = segment.after;
    this.next = segment.render(segment.after);
    const closed = segment.own?.closed;
    if (closed && segment.after >= closed.offset) {
      this.closed = true;
      this.caughtUp = true;
    }
  }

  /** Moves on to the next segment of the read. */
  enter(segment: Segment): void {
    this.segment = segment;
    this.position = segment.after;
  }

  /** Takes the units gathered so far (SSE sends them as they come). */
  drain(): Unit[] {
    const units = this.units;
    this.units = [];
    this.bytes = 0;
    return units;
  }

  feed(item: TailItem): Feed {
    const seg = this.segment;
    switch (item.kind) {
      case 'events':
        for (const event of item.events) {
          if (event.offset <= this.position) continue;
          if (seg.cap !== undefined && event.offset > seg.cap) return 'segment-done';
          if (seg.own && endsStream(event, seg.own)) {
            this.ended = true;
            return 'stop';
          }
          const unit = seg.unit(event);
          if (unit) {
            const size = unitSize(unit);
            if (this.units.length > 0 && this.bytes + size > this.maxBytes) return 'stop';
            this.units.push(unit);
            this.bytes += size;
            this.anything = true;
          }
          this.position = event.offset;
          this.next = seg.render(event.offset);
          if (seg.own && closes(event, seg.own)) {
            this.closed = true;
            this.caughtUp = true;
            return 'stop';
          }
          if (seg.cap !== undefined && event.offset >= seg.cap) return 'segment-done';
        }
        return 'more';
      case 'gap':
        if (seg.cap !== undefined && item.from > seg.cap) return 'segment-done';
        if (!this.anything) this.gone = true;
        return 'stop';
      case 'live': {
        const end = seg.cap !== undefined ? Math.min(item.offset, seg.cap) : item.offset;
        if (end > this.position) {
          this.position = end;
          this.next = seg.render(end);
        }
        if (!seg.isOwn) return 'segment-done';
        this.caughtUp = true;
        return this.follow ? 'more' : 'stop';
      }
      case 'error':
        throw item.error;
    }
  }
}

/** A catch-up read's outcome; `tail` is left open on the stream's own session when asked to and caught up. */
export interface CatchUp {
  readonly collector: Collector;
  readonly tail: SessionTail | null;
}

/** How long a catch-up waits for the next page of a reader before giving up (store trouble). */
const PAGE_DEADLINE_MS = 30_000;

export interface ReadDeps {
  readonly registry: ActorRegistry;
  readonly catalog: StreamCatalog;
}

/**
 * Reads `segments` until `maxBytes`, the stream's head, its close, or a gap. With `keepTail`, a
 * read that caught up with the head leaves its own tail subscribed (long-poll waits on it).
 */
export async function catchUp(deps: ReadDeps, segments: readonly Segment[], maxBytes: number, keepTail: boolean, sink?: TailSink): Promise<CatchUp> {
  const first = segments[0] as Segment;
  const collector = new Collector(first, maxBytes);
  if (collector.closed) return { collector, tail: null };
  for (const segment of segments) {
    collector.enter(segment);
    const tail = new SessionTail(deps.registry, segment.session, sink);
    tail.start(segment.after);
    let outcome: Feed = 'more';
    try {
      while (outcome === 'more') {
        const item = await tail.next(PAGE_DEADLINE_MS);
        if (item === 'stopped') break;
        if (item === 'timeout') throw timeoutError();
        outcome = collector.feed(item);
      }
    } catch (error) {
      tail.stop();
      throw error;
    }
    if (keepTail && segment.isOwn && collector.caughtUp && !collector.closed && !collector.ended && !collector.gone) return { collector, tail };
    tail.stop();
    if (outcome === 'stop') break;
  }
  return { collector, tail: null };
}

/** A reader that got no page for this long: the store is in trouble (the actor's reader path answers STORE_UNAVAILABLE itself in every case it detects). */
function timeoutError(): SpoolError {
  return new SpoolError('STORE_UNAVAILABLE', 'no answer from the session reader; retry');
}
