/**
 * Incarnations of a session (PROTOCOL §10.6). A delete removes a session whole, and written again
 * it starts over at offset 1 and epoch 1: a new log under the same id. The checker's rules assume
 * an offset names one event forever, so a history is cut into incarnations first and each one is
 * checked on its own:
 *
 *   incarnation 0 ──delete──▶ incarnation 1 ──delete──▶ … ──▶ incarnation K (the final log)
 *
 * What belongs where comes from the workload: a session's producer and its appends wait for a
 * delete's answer before they write again (workload.ts), so every producer and append record
 * carries the incarnation it wrote in. A reader's deliveries are labelled by their generation or
 * append key; gaps and `session.reset` events (no id) go with their neighbours. A subscription
 * moves to a later incarnation only
 *
 *   - after its terminal answer (SESSION_DELETED; SESSION_REWOUND or OFFSET_OUT_OF_RANGE from a
 *     process that missed the delete's notice): the reader subscribes again from the start, or
 *   - across a reconnect that missed the delete altogether: the SDK resubscribes from its offset
 *     and the new incarnation already reaches past it, so the reader goes on there (the hazard
 *     §10.6 documents: no tombstone). Counted as a silent switch, not a violation; the offsets it
 *     skipped of the new incarnation are the ones below its old position;
 *
 * and never back. The last incarnation is checked against the final log with every rule; a
 * deleted one has no log left, so it is checked against what its readers and producers observed:
 * readers agree with each other, nothing is acknowledged or delivered past the head the delete
 * answered, the producer caught by the delete ends with one of the delete's answers.
 */
import type { ReadItem, SessionEvent } from '../protocol/types';
import type { Add, AppendRecord, CheckStats, DeleteRecord, ProducerRecord, ReaderRecord, ReaderStint, RecordedHistory, Rule } from './records';

/** Answers that end a reader's subscription to a deleted incarnation (PROTOCOL §10.6, §10.4, §9.1). */
export const TERMINAL_ANSWERS: ReadonlySet<string> = new Set(['SESSION_DELETED', 'SESSION_REWOUND', 'OFFSET_OUT_OF_RANGE']);

/**
 * What the producer of a deleted incarnation may be told: SESSION_DELETED now, GENERATION_CLOSED
 * or FENCED on its next write or resume; SESSION_REWOUND from a process that found the session
 * gone (its own write's answer) before the delete's notice reached it, as its readers are told.
 */
export const DELETED_PRODUCER_ANSWERS: ReadonlySet<string> = new Set(['SESSION_DELETED', 'SESSION_REWOUND', 'GENERATION_CLOSED', 'FENCED']);

/** One incarnation of a session: what was written in it and what each reader was given of it. */
export interface Incarnation {
  readonly number: number;
  readonly producers: ProducerRecord[];
  readonly appends: AppendRecord[];
  /** Each reader's deliveries of this incarnation, as stints (a subscription, or the part of one in it). */
  readonly readers: ReaderRecord[];
  /** The delete that ended it; undefined for the last (the final log). */
  readonly deleted: DeleteRecord | undefined;
}

/** True when the producer wrote in an incarnation a later delete removed. */
export function wroteInDeletedIncarnation(deletes: readonly DeleteRecord[] | undefined, producer: ProducerRecord): boolean {
  const incarnation = producer.incarnation ?? 0;
  return (deletes ?? []).some((d) => d.session === producer.session && d.incarnation >= incarnation);
}

/**
 * Cuts a session's history into incarnations (the last one is the final log's) and reports what
 * is wrong with how readers crossed from one to the next.
 */
export function sliceIncarnations(session: string, history: RecordedHistory, add: Add, stats: CheckStats): Incarnation[] {
  const deletes = (history.deletes ?? []).filter((d) => d.session === session).sort((a, b) => a.incarnation - b.incarnation);
  const count = deletes.length + 1;
  const slices: Incarnation[] = Array.from({ length: count }, (_, number) => ({ number, producers: [], appends: [], readers: [], deleted: deletes[number] }));
  const slice = (n: number): Incarnation => slices[Math.min(n, count - 1)] as Incarnation;
  const generations = new Map<string, number>();
  const keys = new Map<string, Set<number>>();
  for (const p of history.producers) {
    if (p.session !== session) continue;
    slice(p.incarnation ?? 0).producers.push(p);
    generations.set(p.generation, p.incarnation ?? 0);
  }
  for (const a of history.appends) {
    if (a.session !== session) continue;
    slice(a.incarnation ?? 0).appends.push(a);
    let known = keys.get(a.key);
    if (!known) keys.set(a.key, (known = new Set()));
    known.add(a.incarnation ?? 0);
  }
  const label = (item: ReadItem): number | undefined => {
    if (item.type === 'gap') return undefined;
    if (item.generationId !== undefined) return generations.get(item.generationId);
    if (item.type === 'append' && item.key !== undefined) {
      const known = keys.get(item.key);
      return known?.size === 1 ? (known.values().next().value as number) : undefined;
    }
    return undefined;
  };
  stats.incarnations += count;
  for (const reader of history.readers) {
    if (reader.session !== session) continue;
    const parts = splitReader(reader, label, count - 1, add, stats);
    // Every reader must end in the last incarnation, at the final head (checkReader: unresumed).
    if (!parts.has(count - 1)) parts.set(count - 1, []);
    for (const [n, stints] of parts) slice(n).readers.push({ id: reader.id, session, stints });
  }
  // The final log is the last incarnation's: nothing of a deleted one may be in it.
  for (const item of history.logs[session] ?? []) {
    const n = label(item);
    if (n !== undefined && n < count - 1) add('stale-incarnation', session, 'log', `${describeItem(item)} of incarnation ${n} (deleted) is in the final log, incarnation ${count - 1}`, item);
  }
  return slices;
}

/** A reader's stints cut by incarnation: incarnation -> its segments, in delivery order. */
function splitReader(reader: ReaderRecord, label: (item: ReadItem) => number | undefined, last: number, add: Add, stats: CheckStats): Map<number, ReaderStint[]> {
  const where = `reader ${reader.id}`;
  const parts = new Map<number, ReaderStint[]>();
  let reported = 0;
  const note = (rule: Rule, message: string, event: unknown): void => {
    if (reported++ < 5) add(rule, reader.session, where, message, event);
  };
  let incarnation = 0;
  /** After a terminal answer: the least incarnation the next subscription may show. */
  let after: number | undefined;
  for (const stint of reader.stints) {
    // After a terminal answer, the subscription's incarnation is known from its first labelled item.
    let provisional = after !== undefined;
    if (after !== undefined) incarnation = after;
    let segment: ReaderStint = { from: stint.from, ...(stint.gateway !== undefined ? { gateway: stint.gateway } : {}), items: [] };
    let segmentOf = incarnation;
    const close = (): void => {
      const list = parts.get(segmentOf) ?? [];
      list.push(segment);
      parts.set(segmentOf, list);
    };
    // A stint begins with a (re)subscription: a break at 0.
    const breaks = [0, ...(stint.breaks ?? [])];
    let pending: Array<{ item: ReadItem; index: number }> = [];
    let lastLabelled = -1;
    const wasProvisional = provisional;
    stint.items.forEach((item, index) => {
      const n = label(item);
      if (n === undefined) {
        pending.push({ item, index });
        return;
      }
      if (n === incarnation || (provisional && n > incarnation)) {
        if (provisional) segmentOf = incarnation = n;
        provisional = false;
        for (const p of pending) segment.items.push(p.item);
        pending = [];
        segment.items.push(item);
        lastLabelled = index;
        return;
      }
      if (n < incarnation) {
        const why = provisional ? `after the reader's terminal answer for incarnation ${incarnation - 1}` : `after the reader had been given incarnation ${incarnation}`;
        note('stale-incarnation', `delivered ${describeItem(item)} of incarnation ${n} (deleted) ${why}`, item);
        return;
      }
      // A later incarnation inside one subscription: only across a reconnect that missed the delete.
      const crossing = breaks.filter((b) => b > lastLabelled && b <= index).pop();
      if (crossing === undefined) {
        note('missed-terminal', `delivered ${describeItem(item)} of incarnation ${n} in the subscription that had been given incarnation ${incarnation}, with no terminal answer and no reconnect between`, item);
      } else stats.silentSwitches += 1;
      const cut = crossing ?? index;
      for (const p of pending) if (p.index < cut) segment.items.push(p.item);
      const moved = pending.filter((p) => p.index >= cut).map((p) => p.item);
      pending = [];
      close();
      segment = { from: reachedBy(segment), ...(stint.gateway !== undefined ? { gateway: stint.gateway } : {}), items: [...moved, item] };
      segmentOf = incarnation = n;
      lastLabelled = index;
    });
    for (const p of pending) segment.items.push(p.item);
    close();
    const minimum = after;
    after = undefined;
    if (stint.end !== undefined && TERMINAL_ANSWERS.has(stint.end)) {
      stats.terminalAnswers += 1;
      const echo = wasProvisional && lastLabelled < 0;
      if (!echo && incarnation >= last) note('unexpected-terminal', `the subscription ended with ${stint.end} in incarnation ${incarnation}, but no delete of the session followed it`, { end: stint.end, from: stint.from });
      // A subscription after a terminal answer that was given nothing of its own before its own
      // terminal answer may have been the same incarnation's (asked before the delete was over): it
      // raises the bar no further.
      after = echo ? (minimum as number) : incarnation + 1;
    }
  }
  // Ended on a terminal answer with nothing after it: it has nothing of the next incarnation yet.
  if (after !== undefined && after <= last && !parts.has(after)) parts.set(after, []);
  return parts;
}

/** The offset a segment's reader had reached: where its SDK resubscribed from. */
function reachedBy(segment: ReaderStint): number {
  const last = segment.items[segment.items.length - 1];
  if (last === undefined) return segment.from;
  return last.type === 'gap' ? last.to : last.offset;
}

/**
 * A deleted incarnation, checked against what was observed of it (its log is gone): readers agree
 * with each other offset by offset, producers' acks and finishes and appends name what readers
 * were given there, nothing past the head the delete answered, and the producer the delete caught
 * ended with one of the delete's answers. (Reader order, holes, seams and gaps are checkReader's,
 * run by the caller on `observed`.)
 */
export function checkDeletedIncarnation(session: string, slice: Incarnation, add: Add): { events: Map<number, SessionEvent>; head: number } {
  const head = slice.deleted?.head ?? Number.MAX_SAFE_INTEGER;
  const events = new Map<number, SessionEvent>();
  const chunks = new Map<string, SessionEvent>();
  const keys = new Map<string, SessionEvent>();
  for (const reader of slice.readers) {
    for (const stint of reader.stints) {
      for (const item of stint.items) {
        if (item.type === 'gap' || events.has(item.offset)) continue;
        events.set(item.offset, item);
        const id = item.type === 'chunk' ? `${item.generationId}/${item.seq}` : undefined;
        const twin = id !== undefined ? chunks.get(id) : item.type === 'append' && item.key !== undefined ? keys.get(item.key) : undefined;
        if (twin !== undefined && twin.offset !== item.offset) {
          add('duplicate-stored', session, `incarnation ${slice.number}`, `${describeItem(item)} was also delivered @${twin.offset}: stored twice`, item);
        } else if (id !== undefined) chunks.set(id, item);
        else if (item.type === 'append' && item.key !== undefined) keys.set(item.key, item);
      }
    }
  }
  const where = (p: ProducerRecord): string => `producer ${p.generation}`;
  for (const p of slice.producers) {
    for (const ack of p.acks) {
      if (ack.offset > head) add('ack-after-delete', session, where(p), `ack of ${p.generation}/${ack.seq} names offset ${ack.offset}, past ${head}, where its incarnation ${slice.number} was deleted`, ack);
      const seen = events.get(ack.offset);
      if (seen && (seen.type !== 'chunk' || seen.generationId !== p.generation || seen.seq !== ack.seq)) {
        add('ack-mismatch', session, where(p), `ack of ${p.generation}/${ack.seq} names offset ${ack.offset}, where readers of incarnation ${slice.number} were given ${describeItem(seen)}`, ack);
      }
    }
    if (p.finished) {
      if (p.finished.offset > head) add('ack-after-delete', session, where(p), `finished @${p.finished.offset}, past ${head}, where its incarnation ${slice.number} was deleted`, p.finished);
      const seen = events.get(p.finished.offset);
      if (seen && (seen.type !== 'gen.end' || seen.generationId !== p.generation || seen.status !== p.finished.status)) {
        add('finish-mismatch', session, where(p), `finished {${p.finished.status} @${p.finished.offset}} but readers of incarnation ${slice.number} were given ${describeItem(seen)} there`, p.finished);
      }
    }
    if (p.outcome === 'failed' && !DELETED_PRODUCER_ANSWERS.has(p.errorCode ?? '')) {
      add('delete-answer', session, where(p), `the producer of deleted incarnation ${slice.number} ended with ${p.error ?? p.errorCode ?? 'an unknown error'}, not SESSION_DELETED, GENERATION_CLOSED or FENCED`, { generation: p.generation, error: p.error ?? null });
    }
  }
  for (const a of slice.appends) {
    if (a.offset > head) add('ack-after-delete', session, 'appends', `append ${a.key} was acknowledged @${a.offset}, past ${head}, where its incarnation ${slice.number} was deleted`, a);
    const seen = events.get(a.offset);
    if (seen && (seen.type !== 'append' || seen.key !== a.key)) add('ack-mismatch', session, 'appends', `append ${a.key} was acknowledged @${a.offset}, where readers of incarnation ${slice.number} were given ${describeItem(seen)}`, a);
  }
  return { events, head };
}

function describeItem(item: ReadItem): string {
  if (item.type === 'gap') return `gap ${item.from}-${item.to}`;
  const gen = item.generationId !== undefined ? ` ${item.generationId}` : '';
  const seq = item.type === 'chunk' ? `/${item.seq}` : '';
  const key = item.type === 'append' ? ` key ${item.key}` : '';
  return `${item.type}${gen}${seq}${key} @${item.offset}`;
}
