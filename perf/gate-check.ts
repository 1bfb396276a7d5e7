/**
 * What the perf gate checks of everything a reader received (gate-workload.ts), item by item as
 * it arrives, across every stint of the reader (a restart resumes on a new client, a cut on the
 * same one), and once more at the end against what the producers were acknowledged:
 *
 *   offsets   strictly ascending: one not above the last is a delivery twice or out of order; one
 *             skipping ahead is a silent hole (a trimmed range must come as a `gap`);
 *   gaps      only in the session meant to fill its retention, reason `trimmed`, starting right
 *             after the last offset;
 *   chunks    per generation in seq order with the data its producer wrote under that seq;
 *             in the other sessions every seq 0..n-1 and nothing else;
 *   acks      every ack a producer got, `{seq, offset}`, names a chunk this reader received at
 *             that offset (in the retention session: or an offset inside a gap it received; a
 *             degradation-dropped seq's ack names the last stored offset before it, PROTOCOL §7.6);
 *   appends   every user message stored at the offset its append was answered with;
 *   ends      exactly one gen.start and one gen.end `done` per generation.
 *
 * The retention session may also see seqs skip without a gap: degradation drops priority-0
 * chunks at the door (they consume a seq, never an offset), so there only the order is checked.
 */
import type { AckEvent, EndStatus, SubscriptionItem } from '../client';
import type { Problems } from './workload';

/** One generation as its producer wrote it (filled in while it runs). */
export class GenTrack {
  /** performance.now() of each chunk's write(), by seq. */
  readonly writeAt: Float64Array;
  /** Every ack the producer got, in order. */
  readonly acks: Array<Pick<AckEvent, 'seq' | 'offset'>> = [];
  /** Highest seq an ack (or the finish) covered; -1 before the first. */
  ackedThrough = -1;
  /** Priority-0 chunks the gateway reported dropped at the door (ack.dropped). */
  dropped = 0;
  finished: { readonly offset: number; readonly status: EndStatus } | undefined;

  constructor(
    readonly session: string,
    readonly id: string,
    readonly chunks: number,
    /** The data chunk `seq` carries. */
    readonly data: (seq: number) => string,
  ) {
    this.writeAt = new Float64Array(chunks);
  }
}

/** An idempotent append (a user message) and the offset it was answered with. */
export interface AppendRecord {
  readonly key: string;
  readonly offset: number;
}

interface GenerationSeen {
  starts: number;
  ends: number;
  /** Offset of its gen.start (0: not received). */
  startOffset: number;
  /** The seq due next (the one after the last chunk received). */
  nextSeq: number;
  chunks: number;
  /** Offset each seq was received at (0: not received). */
  readonly offsets: Float64Array;
}

/** Checks one reader's items (see the file comment). Problems go to the shared bounded list. */
export class LogCheck {
  /** The last offset taken (an event's offset or a gap's `to`): the resume point. */
  offset = 0;
  events = 0;
  chunks = 0;
  gaps = 0;
  /** Gapped offsets, for the ack check (sorted: gaps arrive in offset order). */
  private readonly gapRanges: Array<readonly [number, number]> = [];
  private readonly generations = new Map<string, GenerationSeen>();
  private readonly appends = new Map<string, number>();

  constructor(
    readonly where: string,
    /** The session meant to fill its retention: gaps and degradation drops allowed. */
    private readonly retention: boolean,
    private readonly tracks: ReadonlyMap<string, GenTrack>,
    private readonly problems: Problems,
    /** Called for every chunk that passed, with the moment it was taken. */
    private readonly onChunk: (track: GenTrack, seq: number, at: number) => void = () => undefined,
  ) {}

  take(item: SubscriptionItem, at: number): void {
    const where = this.where;
    if (item.type === 'gap') {
      this.gaps += 1;
      if (!this.retention) this.problems.add(`${where}: gap ${item.from}..${item.to} (${item.reason}) in a session that never reaches its retention`);
      if (item.reason !== 'trimmed') this.problems.add(`${where}: gap ${item.from}..${item.to} says ${item.reason}, not trimmed`);
      if (item.from !== this.offset + 1 || item.to < item.from) this.problems.add(`${where}: gap ${item.from}..${item.to} after offset ${this.offset}`);
      this.gapRanges.push([item.from, item.to]);
      this.offset = Math.max(this.offset, item.to);
      return;
    }
    if (item.offset <= this.offset) {
      this.problems.add(`${where}: offset ${item.offset} delivered after ${this.offset} (twice, or out of order)`);
      return;
    }
    if (item.offset !== this.offset + 1) this.problems.add(`${where}: offsets ${this.offset + 1}..${item.offset - 1} missing with no gap`);
    this.offset = item.offset;
    this.events += 1;
    if (item.type === 'append') {
      if (item.key !== undefined) this.appends.set(item.key, item.offset);
      return;
    }
    const id = item.generationId ?? '';
    const track = this.tracks.get(id);
    if (track === undefined) {
      this.problems.add(`${where}: ${item.type} of unknown generation ${id} at ${item.offset}`);
      return;
    }
    const seen = this.seen(track);
    if (item.type === 'gen.start') {
      if (++seen.starts > 1) this.problems.add(`${where}: second gen.start of ${id} at ${item.offset}`);
      seen.startOffset = item.offset;
    } else if (item.type === 'gen.end') {
      if (++seen.ends > 1) this.problems.add(`${where}: second gen.end of ${id} at ${item.offset}`);
      if (item.status !== 'done') this.problems.add(`${where}: ${id} ended ${String(item.status)}${item.error ? ` (${item.error})` : ''}`);
    } else {
      const seq = item.seq ?? -1;
      const inOrder = this.retention ? seq >= seen.nextSeq : seq === seen.nextSeq;
      if (!inOrder || seq >= track.chunks) {
        this.problems.add(`${where}: ${id} chunk seq ${seq} at ${item.offset} where seq ${seen.nextSeq} was due`);
        return;
      }
      if (item.data !== track.data(seq)) this.problems.add(`${where}: ${id} chunk seq ${seq} arrived with different data`);
      seen.offsets[seq] = item.offset;
      seen.nextSeq = seq + 1;
      seen.chunks += 1;
      this.chunks += 1;
      this.onChunk(track, seq, at);
    }
  }

  /**
   * At the end, once this reader reached the session's final head: every generation of the
   * session started and ended once, complete (outside the retention session), every ack names
   * what this reader received, every append is where it was answered.
   */
  verify(tracks: readonly GenTrack[], appends: readonly AppendRecord[]): void {
    const where = this.where;
    for (const track of tracks) {
      const seen = this.generations.get(track.id);
      if (seen === undefined || seen.starts !== 1 || seen.ends !== 1) {
        this.problems.add(`${where}: ${track.id} seen with ${seen?.starts ?? 0} gen.start and ${seen?.ends ?? 0} gen.end`);
        continue;
      }
      if (!this.retention && seen.chunks !== track.chunks) this.problems.add(`${where}: ${track.id}: ${seen.chunks} of ${track.chunks} chunks`);
      for (const ack of track.acks) {
        if (seen.offsets[ack.seq] === ack.offset) continue;
        if (this.retention && (this.inGap(ack.offset) || this.receivedUpTo(seen, ack.seq, ack.offset))) continue;
        this.problems.add(`${where}: ${track.id} seq ${ack.seq} was acked at offset ${ack.offset}, received at ${seen.offsets[ack.seq] || 'none'}`);
      }
    }
    for (const append of appends) {
      const at = this.appends.get(append.key);
      if (at !== append.offset) this.problems.add(`${where}: append ${append.key} answered at ${append.offset}, received at ${at ?? 'none'}`);
    }
  }

  private seen(track: GenTrack): GenerationSeen {
    let seen = this.generations.get(track.id);
    if (seen === undefined) {
      seen = { starts: 0, ends: 0, startOffset: 0, nextSeq: 0, chunks: 0, offsets: new Float64Array(track.chunks) };
      this.generations.set(track.id, seen);
    }
    return seen;
  }

  private inGap(offset: number): boolean {
    let lo = 0;
    let hi = this.gapRanges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [from, to] = this.gapRanges[mid] as readonly [number, number];
      if (offset < from) hi = mid - 1;
      else if (offset > to) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /**
   * A chunk of seq <= `seq` received at `offset`, or the gen.start there: the ack of a dropped
   * seq names the generation's last stored event before it.
   */
  private receivedUpTo(seen: GenerationSeen, seq: number, offset: number): boolean {
    if (offset === seen.startOffset) return true;
    for (let s = Math.min(seq, seen.offsets.length - 1); s >= 0; s--) {
      const at = seen.offsets[s] as number;
      if (at === offset) return true;
      if (at !== 0 && at < offset) return false;
    }
    return false;
  }
}
