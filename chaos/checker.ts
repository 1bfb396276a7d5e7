/**
 * The history checker of the chaos suite. The runner records, while faults fly:
 *
 *   - every acknowledged write, producer side: each `ack {seq, offset}` (cumulative), each
 *     `finished`, each `appended`, and how every producer ended;
 *   - every item delivered to every reader, in delivery order, in stints (a stint is one
 *     subscription; a reader that closes its client resumes on a new one from its saved offset);
 *   - the log of every session, read at the end after the faults stopped.
 *
 * and `checkHistory` verifies the guarantees against that record (DESIGN §2):
 *
 *   lost-ack            G1  an acknowledged chunk/append is not in the log and no gap covers it
 *   ack-mismatch        G1  an ack names an offset that holds some other event
 *   duplicate-stored    G2  the log holds a (generation, seq) or an append key twice
 *   duplicate-delivery  G5  a reader received an offset twice
 *   order               G3  a generation's chunks are not in seq order, or skip a seq with nothing trimmed
 *   silent-hole         G5  offsets skipped without a gap (reader or log)
 *   gen-end-count       G6  a generation without exactly one gen.end, or something of it after its gen.end
 *   write-after-fence   G4  an event of a fenced generation stored after its `gen.end fenced`
 *   ack-after-fence     G4  a fenced producer acknowledged at an offset after its fencing point, or a
 *                           generation of before a session reset acknowledged after it (PROTOCOL §10.5)
 *   fence-not-atomic    G4  the taker's gen.start does not directly follow the `gen.end fenced`
 *   unexpected-gap      G7  a gap although no retention pressure was configured (a gap that ends right
 *                           before a `session.reset` event is the reset's, never unexpected)
 *   gap-over-retained   G7  a gap delivered over an offset the log still holds (a hole that was not trimmed)
 *   wrong-event         G5  a reader got an event that differs from the log's event at that offset,
 *                           or a chunk whose data names another (generation, seq)
 *   phantom-event       G1  a reader got an offset past the final head (a non-durable event)
 *   resume-seam         G5  a stint began somewhere other than where the reader's previous one ended
 *   unresumed           G5  a reader never caught up with the final head
 *   finish-mismatch     G6  `finished` disagrees with the gen.end in the log
 *   content-mismatch    G2  a stored or delivered chunk whose kind, priority or data differ from
 *                           what its producer wrote under that (generation, seq), or a chunk at a
 *                           seq its producer never wrote (someone else's bytes in its generation)
 *   intruder-accepted   G4  a second writer that named another producer's generation without its
 *                           token (no token, a forged or stale one, a wrong secret) was answered
 *                           anything but a refusal: `opened`, `ack`, `finished`, or an error only
 *                           a writer of the generation can get
 *
 * and, where sessions were deleted (PROTOCOL §10.6: offsets start again at 1), per incarnation
 * (incarnations.ts cuts the history; the last incarnation is checked against the final log with
 * every rule above, the deleted ones against what their readers and producers observed):
 *
 *   stale-incarnation   §10.6  an event of a deleted incarnation in a later one's log, or delivered
 *                              after the reader's terminal answer or after a later incarnation's events
 *   missed-terminal     §10.6  a subscription moved to the next incarnation without a terminal
 *                              answer while its connection stayed up
 *   unexpected-terminal §10.6  SESSION_DELETED (or SESSION_REWOUND, OFFSET_OUT_OF_RANGE) with no delete to answer for
 *   ack-after-delete    §10.6  an ack, `finished` or `appended` of a deleted incarnation past its final
 *                              head (a reader given an offset past it: phantom-event)
 *   delete-answer       §10.6  a producer of a deleted incarnation ended with anything but
 *                              SESSION_DELETED, GENERATION_CLOSED or FENCED
 *
 * Violations come in a fixed order (per session: the log, then producers, then readers; each in
 * offset/delivery order), so "the first bad event" is well defined and stable for a history.
 */
import type { ReadItem, SessionEvent } from '../protocol/types';
import { chunkDigest, parseChunkData } from './chunk-content';
import { checkDeletedIncarnation, sliceIncarnations, type Incarnation } from './incarnations';
import type { AckRecord, Add, AppendRecord, CheckReport, CheckStats, IntrusionRecord, ProducerRecord, ReaderRecord, RecordedHistory, Rule, Violation } from './records';

export { chunkData, chunkDigest, parseChunkData } from './chunk-content';
// The recorded history's format lives in records.ts (shared with incarnations.ts); importers keep using checker.
export type * from './records';

const MAX_VIOLATIONS = 200;

interface SessionIndex {
  readonly events: Map<number, SessionEvent>;
  /** Inclusive trimmed ranges, in order. */
  readonly gaps: Array<{ from: number; to: number }>;
  readonly head: number;
  /**
   * Offsets of the `session.reset` events anyone saw (the final log keeps only the last one; a
   * reader may have received earlier ones): a gap ending right before one is the reset's.
   */
  readonly resets: ReadonlySet<number>;
  /** Where each generation started, from the final log or any reader's deliveries (a reset removes gen.starts). */
  readonly starts: ReadonlyMap<string, number>;
}

/** The first gap (in offset order) whose `to` is at or past `offset`. */
function firstGapReaching(index: SessionIndex, offset: number): { from: number; to: number } | undefined {
  const gaps = index.gaps;
  let lo = 0;
  let hi = gaps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((gaps[mid] as { to: number }).to < offset) lo = mid + 1;
    else hi = mid;
  }
  return gaps[lo];
}

function inGap(index: SessionIndex, offset: number): boolean {
  const g = firstGapReaching(index, offset);
  return g !== undefined && g.from <= offset;
}

/** Some trimmed offset lies strictly between `after` and `before`. */
function gapBetween(index: SessionIndex, after: number, before: number): boolean {
  const g = firstGapReaching(index, after + 1);
  return g !== undefined && g.from < before;
}

function identity(e: SessionEvent): string {
  return JSON.stringify([e.offset, e.type, e.generationId ?? null, e.seq ?? null, e.key ?? null, e.status ?? null, e.priority, e.data ?? null]);
}

function describe(item: ReadItem | undefined): string {
  if (item === undefined) return 'nothing';
  if (item.type === 'gap') return `gap ${item.from}-${item.to}`;
  const gen = item.generationId !== undefined ? ` ${item.generationId}` : '';
  const seq = item.type === 'chunk' ? `/${item.seq}` : '';
  const status = item.type === 'gen.end' ? ` ${item.status}` : '';
  const key = item.type === 'append' ? ` key ${item.key}` : '';
  return `${item.type}${gen}${seq}${status}${key} @${item.offset}`;
}

export function checkHistory(history: RecordedHistory): CheckReport {
  const violations: Violation[] = [];
  const stats: CheckStats = {
    sessions: 0,
    logEvents: 0,
    logGaps: 0,
    generations: 0,
    fenced: 0,
    acksChecked: 0,
    appendsChecked: 0,
    readers: 0,
    stints: 0,
    delivered: 0,
    deliveredGaps: 0,
    contentChecked: 0,
    intrusions: 0,
    incarnations: 0,
    terminalAnswers: 0,
    silentSwitches: 0,
  };
  const add = (rule: Rule, session: string, where: string, message: string, event: unknown): void => {
    if (violations.length < MAX_VIOLATIONS) violations.push({ rule, session, where, message, event });
  };
  const sessions = [...new Set([...Object.keys(history.logs), ...history.producers.map((p) => p.session), ...history.readers.map((r) => r.session)])].sort();
  for (const session of sessions) {
    stats.sessions += 1;
    const readers = history.readers.filter((r) => r.session === session);
    stats.readers += readers.length;
    // Offsets start again after a delete: each incarnation is a log of its own (incarnations.ts).
    const incarnations = sliceIncarnations(session, history, add, stats);
    const last = incarnations[incarnations.length - 1] as Incarnation;
    const seen = seenIn([history.logs[session] ?? [], ...last.readers.flatMap((r) => r.stints.map((s) => s.items))]);
    const index = checkLog(session, history.logs[session] ?? [], history.retentionPressure, seen, add, stats);
    checkProducers(session, index, last.producers, add, stats);
    checkAppends(session, index, last.appends, add, stats);
    for (const reader of last.readers) checkReader(reader, index, history.retentionPressure, add, stats);
    for (const deleted of incarnations.slice(0, -1)) {
      const observed = checkDeletedIncarnation(session, deleted, add);
      const { resets, starts } = seenIn(deleted.readers.flatMap((r) => r.stints.map((s) => s.items)));
      const partial: SessionIndex = { events: observed.events, gaps: [], head: observed.head, resets, starts };
      for (const reader of deleted.readers) checkReader(reader, partial, history.retentionPressure, add, stats, false);
    }
    checkContent(session, index, history.producers.filter((p) => p.session === session), readers, add, stats);
    checkIntrusions(session, (history.intrusions ?? []).filter((i) => i.session === session), add, stats);
  }
  return { ok: violations.length === 0, violations, stats };
}

/** The `session.reset` offsets and generation starts anyone saw in these item lists. */
function seenIn(lists: ReadonlyArray<readonly ReadItem[]>): Pick<SessionIndex, 'resets' | 'starts'> {
  const resets = new Set<number>();
  const starts = new Map<string, number>();
  for (const items of lists) {
    for (const item of items) {
      if (item.type === 'session.reset') resets.add(item.offset);
      else if (item.type === 'gen.start' && item.generationId !== undefined) starts.set(item.generationId, item.offset);
    }
  }
  return { resets, starts };
}

function checkLog(session: string, log: readonly ReadItem[], pressure: boolean, seen: Pick<SessionIndex, 'resets' | 'starts'>, add: Add, stats: CheckStats): SessionIndex {
  const resets = seen.resets;
  const events = new Map<number, SessionEvent>();
  const gaps: Array<{ from: number; to: number }> = [];
  let cursor = 0;
  for (const item of log) {
    if (item.type === 'gap') {
      stats.logGaps += 1;
      if (!pressure && !resets.has(item.to + 1)) add('unexpected-gap', session, 'log', `the log reports gap ${item.from}-${item.to} (${item.reason}) but no retention pressure was configured`, item);
      if (item.from !== cursor + 1) add(item.from <= cursor ? 'duplicate-delivery' : 'silent-hole', session, 'log', `log gap ${item.from}-${item.to} does not start right after offset ${cursor}`, item);
      gaps.push({ from: item.from, to: item.to });
      cursor = Math.max(cursor, item.to);
      continue;
    }
    if (item.offset <= cursor) {
      add('duplicate-delivery', session, 'log', `the log read repeats offset ${item.offset} (after ${cursor})`, item);
      continue;
    }
    if (item.offset !== cursor + 1) add('silent-hole', session, 'log', `the log skips offsets ${cursor + 1}-${item.offset - 1} without a gap`, item);
    cursor = item.offset;
    events.set(item.offset, item);
    stats.logEvents += 1;
  }
  const index: SessionIndex = { events, gaps, head: cursor, resets, starts: seen.starts };

  // Per generation, in offset order.
  interface Trace {
    start?: SessionEvent;
    ends: SessionEvent[];
    chunks: SessionEvent[];
  }
  const traces = new Map<string, Trace>();
  const keys = new Map<string, SessionEvent>();
  for (const e of [...events.values()]) {
    if (e.type === 'append' && e.key !== undefined) {
      const first = keys.get(e.key);
      if (first) add('duplicate-stored', session, 'log', `append key ${e.key} is stored twice (@${first.offset} and @${e.offset})`, e);
      else keys.set(e.key, e);
      continue;
    }
    if (e.generationId === undefined) continue;
    let t = traces.get(e.generationId);
    if (!t) {
      t = { ends: [], chunks: [] };
      traces.set(e.generationId, t);
    }
    if (e.type === 'gen.start') {
      if (t.start) add('duplicate-stored', session, 'log', `generation ${e.generationId} started twice (@${t.start.offset} and @${e.offset})`, e);
      else t.start = e;
      if (t.chunks.length > 0 || t.ends.length > 0) add('order', session, 'log', `generation ${e.generationId} has events before its gen.start`, e);
    } else if (e.type === 'chunk') {
      if (t.ends.length > 0) {
        const end = t.ends[0] as SessionEvent;
        add(end.status === 'fenced' ? 'write-after-fence' : 'gen-end-count', session, 'log', `chunk ${e.generationId}/${e.seq} stored @${e.offset} after the generation's gen.end ${end.status} @${end.offset}`, e);
      }
      t.chunks.push(e);
      const named = parseChunkData(e.data);
      if (named !== undefined && (named.generation !== e.generationId || named.seq !== e.seq)) {
        add('wrong-event', session, 'log', `chunk stored as ${e.generationId}/${e.seq} @${e.offset} carries the data of ${named.generation}/${named.seq}`, e);
      }
    } else if (e.type === 'gen.end') {
      t.ends.push(e);
      if (t.ends.length === 2) add('gen-end-count', session, 'log', `generation ${e.generationId} has a second gen.end @${e.offset} (first @${(t.ends[0] as SessionEvent).offset})`, e);
    }
  }
  for (const [generation, t] of traces) {
    stats.generations += 1;
    if (t.ends.length === 0) add('gen-end-count', session, 'log', `generation ${generation} has no gen.end in the log at the end`, t.start ?? t.chunks[0]);
    if (!t.start) add('order', session, 'log', `generation ${generation} has no gen.start`, t.chunks[0] ?? t.ends[0]);
    const seen = new Map<number, SessionEvent>();
    let prev: SessionEvent | undefined = t.start;
    for (const c of t.chunks) {
      const seq = c.seq as number;
      const dup = seen.get(seq);
      if (dup) {
        add('duplicate-stored', session, 'log', `chunk ${generation}/${seq} is stored twice (@${dup.offset} and @${c.offset})`, c);
        continue;
      }
      seen.set(seq, c);
      const prevSeq = prev?.type === 'chunk' ? (prev.seq as number) : -1;
      if (seq <= prevSeq) add('order', session, 'log', `chunk ${generation}/${seq} @${c.offset} follows seq ${prevSeq}`, c);
      else if (seq !== prevSeq + 1 && !gapBetween(index, prev?.offset ?? 0, c.offset)) {
        add('order', session, 'log', `generation ${generation} skips seqs ${prevSeq + 1}-${seq - 1} before @${c.offset} and nothing was trimmed there`, c);
      }
      prev = c;
    }
    const end = t.ends[0];
    if (end) {
      const last = t.chunks.length > 0 ? ((t.chunks[t.chunks.length - 1] as SessionEvent).seq as number) : -1;
      const holds = end.seq ?? 0;
      if (last >= holds) add('gen-end-count', session, 'log', `gen.end of ${generation} says ${holds} chunks but chunk seq ${last} is stored`, end);
      else if (last < holds - 1 && !gapBetween(index, prev?.offset ?? 0, end.offset)) {
        add('order', session, 'log', `gen.end of ${generation} says ${holds} chunks but the log holds seqs up to ${last} and nothing was trimmed before it`, end);
      }
      if (end.status === 'fenced') {
        stats.fenced += 1;
        const next = events.get(end.offset + 1);
        if (!next || next.type !== 'gen.start' || next.generationId === generation) {
          add('fence-not-atomic', session, 'log', `gen.end fenced of ${generation} @${end.offset} is not followed by the taker's gen.start (found ${describe(next)})`, end);
        }
      }
    }
  }
  return index;
}

function checkProducers(session: string, index: SessionIndex, producers: readonly ProducerRecord[], add: Add, stats: CheckStats): void {
  const byGeneration = new Map<string, { start?: SessionEvent; end?: SessionEvent; chunks: SessionEvent[] }>();
  for (const e of index.events.values()) {
    if (e.generationId === undefined) continue;
    let g = byGeneration.get(e.generationId);
    if (!g) byGeneration.set(e.generationId, (g = { chunks: [] }));
    if (e.type === 'gen.start') g.start ??= e;
    else if (e.type === 'gen.end') g.end ??= e;
    else if (e.type === 'chunk') g.chunks.push(e);
  }
  for (const p of producers) {
    const where = `producer ${p.generation}`;
    const trace = byGeneration.get(p.generation) ?? { chunks: [] };
    const end = trace.end;
    const fencedAt = end?.status === 'fenced' ? end.offset : undefined;
    let maxAcked = -1;
    let maxAck: AckRecord | undefined;
    for (const ack of p.acks) {
      stats.acksChecked += 1;
      if (ack.seq > maxAcked) {
        maxAcked = ack.seq;
        maxAck = ack;
      }
      if (fencedAt !== undefined && ack.offset > fencedAt) {
        add('ack-after-fence', session, where, `ack of ${p.generation}/${ack.seq} names offset ${ack.offset}, after the generation was fenced @${fencedAt}`, ack);
      }
      // A reset fences the generation active before it: nothing of it may be acked after it. (Where
      // no one saw the generation start, this cannot be told.)
      const started = index.starts.get(p.generation);
      const resetBefore = started === undefined ? undefined : [...index.resets].find((r) => started < r && r < ack.offset);
      if (resetBefore !== undefined) {
        add('ack-after-fence', session, where, `ack of ${p.generation}/${ack.seq} names offset ${ack.offset}, after the session was reset @${resetBefore} (the generation was open before it)`, ack);
      }
      const at = index.events.get(ack.offset);
      if (at === undefined) {
        if (!inGap(index, ack.offset)) {
          add('lost-ack', session, where, `ack of ${p.generation}/${ack.seq} @${ack.offset}: the log at the end has no event there and no gap covers it (head ${index.head})`, ack);
        }
      } else if (at.type !== 'chunk' || at.generationId !== p.generation || at.seq !== ack.seq) {
        add('ack-mismatch', session, where, `ack of ${p.generation}/${ack.seq} names offset ${ack.offset}, where the log holds ${describe(at)}`, ack);
      }
    }
    if (p.finished) {
      if (maxAcked < 0 && end?.seq !== undefined) maxAcked = end.seq - 1;
      const at = index.events.get(p.finished.offset);
      // A gen.end a later reset removed (the log holds the reset's gap there) was durable.
      const removedByReset = !at && inGap(index, p.finished.offset) && [...index.resets].some((r) => r > p.finished!.offset);
      if (removedByReset) {
        // Its chunks went with it: nothing more of this producer can be compared with the log.
      } else if (!at || at.type !== 'gen.end' || at.generationId !== p.generation || at.status !== p.finished.status) {
        add('finish-mismatch', session, where, `finished {${p.finished.status} @${p.finished.offset}} but the log holds ${describe(at)} there`, p.finished);
      } else if (at.seq !== undefined) {
        maxAcked = Math.max(maxAcked, at.seq - 1);
      }
    }
    // Every seq up to the highest acked one must be stored, or trimmed (covered by a gap).
    const chunks = [...trace.chunks].sort((a, b) => (a.seq as number) - (b.seq as number));
    let i = 0;
    for (let seq = 0; seq <= maxAcked; seq++) {
      while (i < chunks.length && ((chunks[i] as SessionEvent).seq as number) < seq) i++;
      if (chunks[i]?.seq === seq) continue;
      const before = i > 0 ? (chunks[i - 1] as SessionEvent).offset : (trace.start?.offset ?? 0);
      const after = chunks[i]?.offset ?? end?.offset ?? Number.MAX_SAFE_INTEGER;
      if (gapBetween(index, before, after)) continue;
      add('lost-ack', session, where, `chunk ${p.generation}/${seq} was acknowledged (ack seq ${maxAck?.seq ?? maxAcked} @${maxAck?.offset ?? '?'}${p.finished ? ', or finished' : ''}) but is not in the log and no gap covers where it belongs`, {
        generation: p.generation,
        seq,
        ack: maxAck ?? null,
      });
      break; // one per producer: the rest follow from it
    }
  }
}

function checkAppends(session: string, index: SessionIndex, appends: readonly AppendRecord[], add: Add, stats: CheckStats): void {
  for (const a of appends) {
    stats.appendsChecked += 1;
    const at = index.events.get(a.offset);
    if (at === undefined) {
      if (!inGap(index, a.offset)) add('lost-ack', session, 'appends', `append ${a.key} was acknowledged @${a.offset} but the log has nothing there`, a);
    } else if (at.type !== 'append' || at.key !== a.key) {
      add('ack-mismatch', session, 'appends', `append ${a.key} was acknowledged @${a.offset}, where the log holds ${describe(at)}`, a);
    }
  }
}

/**
 * A reader's deliveries against the log. `complete` false: `index` is a deleted incarnation's,
 * holding what its readers were given rather than a log (incarnations.ts): an offset it lacks is
 * not a hole, a gap over an offset another reader got before a reset or trim is no fault, and no
 * reader had to reach its head.
 */
function checkReader(reader: ReaderRecord, index: SessionIndex, pressure: boolean, add: Add, stats: CheckStats, complete = true): void {
  const session = reader.session;
  const where = `reader ${reader.id}`;
  let cursor = reader.stints[0]?.from ?? 0;
  let reported = 0;
  // One reader that goes wrong tends to go wrong many times; the first few tell the story.
  const note = (rule: Rule, message: string, event: unknown): void => {
    if (reported++ < 5) add(rule, session, where, message, event);
  };
  for (const stint of reader.stints) {
    stats.stints += 1;
    if (stint.from !== cursor) {
      note('resume-seam', `a stint resumed from ${stint.from} after the reader had consumed up to ${cursor}`, { from: stint.from, gateway: stint.gateway ?? null });
      cursor = stint.from;
    }
    for (const item of stint.items) {
      if (item.type === 'gap') {
        stats.deliveredGaps += 1;
        if (!pressure && !index.resets.has(item.to + 1)) note('unexpected-gap', `gap ${item.from}-${item.to} (${item.reason}) delivered but no retention pressure was configured`, item);
        if (item.from <= cursor) note('duplicate-delivery', `gap ${item.from}-${item.to} covers offsets up to ${cursor} the reader already had`, item);
        else if (item.from !== cursor + 1) note('silent-hole', `offsets ${cursor + 1}-${item.from - 1} skipped before gap ${item.from}-${item.to}`, item);
        for (let o = Math.max(item.from, cursor + 1); complete && o <= item.to; o++) {
          const kept = index.events.get(o);
          if (kept) {
            note('gap-over-retained', `gap ${item.from}-${item.to} covers offset ${o}, which the log still holds (${describe(kept)}): a hole that retention did not make`, item);
            break;
          }
        }
        cursor = Math.max(cursor, item.to);
        continue;
      }
      stats.delivered += 1;
      if (item.offset <= cursor) {
        note('duplicate-delivery', `offset ${item.offset} delivered again (the reader was at ${cursor})`, item);
        continue;
      }
      if (item.offset !== cursor + 1) note('silent-hole', `offsets ${cursor + 1}-${item.offset - 1} skipped without a gap before ${describe(item)}`, item);
      cursor = item.offset;
      const logged = index.events.get(item.offset);
      if (!complete && item.offset > index.head) {
        note('phantom-event', `delivered ${describe(item)}, past ${index.head}, where its incarnation was deleted`, item);
      } else if (logged) {
        if (identity(logged) !== identity(item)) note('wrong-event', `delivered ${describe(item)} but the log holds ${describe(logged)} there`, item);
      } else if (item.offset > index.head) {
        note('phantom-event', `delivered ${describe(item)}, past the final head ${index.head}: an event that was never durable`, item);
      } else if (!inGap(index, item.offset)) {
        note('phantom-event', `delivered ${describe(item)}, an offset the final log neither holds nor reports trimmed`, item);
      }
    }
  }
  if (complete && cursor < index.head) note('unresumed', `the reader ended at offset ${cursor}, short of the final head ${index.head}`, { at: cursor, head: index.head });
}

/**
 * G2 against what the producers wrote: every chunk of the final log, then every chunk each reader
 * received, must carry what its producer wrote under that (generation, seq). Generations no
 * producer record wrote down (histories recorded before issue 9) are not checked.
 */
function checkContent(session: string, index: SessionIndex, producers: readonly ProducerRecord[], readers: readonly ReaderRecord[], add: Add, stats: CheckStats): void {
  const wrote = new Map<string, Map<number, Set<string>>>();
  for (const p of producers) {
    if (p.written === undefined) continue;
    let seqs = wrote.get(p.generation);
    if (!seqs) wrote.set(p.generation, (seqs = new Map()));
    for (let seq = 0; seq < p.written.length; seq++) {
      const digest = p.written[seq];
      if (typeof digest !== 'string') continue;
      const known = seqs.get(seq);
      if (known) known.add(digest);
      else seqs.set(seq, new Set([digest]));
    }
  }
  if (wrote.size === 0) return;
  /** Why `e` is not what its producer wrote, or undefined when it is (or nobody wrote it down). */
  const mismatch = (e: SessionEvent): string | undefined => {
    const seqs = e.type === 'chunk' && e.generationId !== undefined && e.seq !== undefined ? wrote.get(e.generationId) : undefined;
    if (seqs === undefined) return undefined;
    stats.contentChecked += 1;
    const expected = seqs.get(e.seq as number);
    if (expected === undefined) return `its producer never wrote seq ${e.seq}`;
    const got = chunkDigest(e);
    return expected.has(got) ? undefined : `it carries content ${got}, its producer wrote ${[...expected].join(' or ')} under that seq`;
  };
  // One bad chunk tends to show up in the log and at every reader; the first few tell the story.
  let reported = 0;
  for (const e of index.events.values()) {
    const why = mismatch(e);
    if (why !== undefined && reported++ < 5) add('content-mismatch', session, 'log', `${describe(e)} in the log is not what its producer wrote: ${why}`, e);
  }
  for (const reader of readers) {
    reported = 0;
    for (const stint of reader.stints) {
      for (const item of stint.items) {
        if (item.type !== 'chunk') continue;
        const why = mismatch(item);
        if (why !== undefined && reported++ < 5) add('content-mismatch', session, `reader ${reader.id}`, `delivered ${describe(item)}, which is not what its producer wrote: ${why}`, item);
      }
    }
  }
}

/** What the gateway must answer a second writer: a refusal that lets it write nothing (§7.1, §7.2). */
const REFUSALS: ReadonlySet<string> = new Set(['GENERATION_ACTIVE', 'FENCED', 'BAD_FRAME', 'GENERATION_CLOSED']);
/** Answers that judge nothing: the attempt met a store or a gateway that was down or going down. */
const INCONCLUSIVE: ReadonlySet<string> = new Set(['no-answer', 'STORE_UNAVAILABLE', 'SHUTTING_DOWN']);

/**
 * How an answer to the second writer counts: `refused` (as it must be), `inconclusive` (faults got
 * in the way), or `accepted`: `opened`, `ack`, `finished`, or an error only a writer of the
 * generation can get (SEQ_GAP, FLOW_CONTROL) or that no refusal is (INTERNAL).
 */
export function judgeIntrusion(answer: string): 'refused' | 'inconclusive' | 'accepted' {
  if (REFUSALS.has(answer)) return 'refused';
  return INCONCLUSIVE.has(answer) ? 'inconclusive' : 'accepted';
}

function checkIntrusions(session: string, intrusions: readonly IntrusionRecord[], add: Add, stats: CheckStats): void {
  for (const i of intrusions) {
    stats.intrusions += 1;
    if (judgeIntrusion(i.answer) !== 'accepted') continue;
    const seq = i.seq !== undefined ? ` seq ${i.seq}` : '';
    add('intruder-accepted', session, `second writer on ${i.generation}`, `${i.attempt}${seq} into ${i.generation} without its token was answered ${i.answer}, not a refusal`, i);
  }
}

/** A violation as the runner prints it: scenario, seed, rule, where, the first bad event, how to reproduce. */
export function formatViolation(v: Violation, scenario: string, seed: number): string {
  return [
    `chaos violation [${v.rule}] in scenario ${scenario} (seed ${seed})`,
    `  session ${v.session}, ${v.where}: ${v.message}`,
    `  first bad event: ${JSON.stringify(v.event)}`,
    `  reproduce: npm run chaos -- --scenario ${scenario} --seed ${seed}`,
  ].join('\n');
}
