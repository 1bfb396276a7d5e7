/**
 * A per-reader history check used by the end-to-end tests in chaos/ (the chaos suite itself uses
 * checker.ts, which checks whole recorded histories: acks, every reader, the final log). It
 * checks what one reader received against the guarantees: offsets strictly ascending with no
 * repeats and no silent holes (a hole must be covered by a gap), and per generation exactly one
 * gen.start, chunks seq 0..n-1 in order, and exactly one gen.end after them.
 */
import type { EndStatus, ReadItem, SessionEvent } from '../protocol/types';

export interface HistoryExpectations {
  /** Exactly this many generations must appear, each started and ended. */
  readonly generations?: number;
  /** Every generation must hold exactly this many chunks (only when nothing was trimmed). */
  readonly chunksPerGeneration?: number;
  /** Allowed end statuses. @default ['done'] */
  readonly endStatuses?: readonly EndStatus[];
  /** The first offset the reader asked to start after. @default 0 */
  readonly from?: number;
}

export interface HistoryReport {
  readonly events: number;
  readonly gaps: number;
  readonly duplicates: number;
  /** Human-readable, first violations first; empty when the history is correct. */
  readonly violations: string[];
}

interface GenerationTrace {
  starts: number;
  ends: number;
  nextSeq: number;
  status: EndStatus | undefined;
}

export function checkSessionHistory(items: readonly ReadItem[], expect: HistoryExpectations = {}): HistoryReport {
  const violations: string[] = [];
  const note = (message: string): void => {
    if (violations.length < 20) violations.push(message);
  };
  const statuses = expect.endStatuses ?? ['done'];
  const generations = new Map<string, GenerationTrace>();
  let cursor = expect.from ?? 0;
  let events = 0;
  let gaps = 0;
  let duplicates = 0;
  let trimmedSomething = false;

  for (const item of items) {
    if (item.type === 'gap') {
      gaps += 1;
      trimmedSomething = true;
      if (item.from !== cursor + 1) note(`gap ${item.from}-${item.to} does not start right after offset ${cursor}`);
      if (item.to < item.from) note(`gap ${item.from}-${item.to} is empty or reversed`);
      cursor = Math.max(cursor, item.to);
      continue;
    }
    const event: SessionEvent = item;
    if (event.offset <= cursor) {
      duplicates += 1;
      note(`offset ${event.offset} delivered again (or out of order) after ${cursor}`);
      continue;
    }
    if (event.offset !== cursor + 1) note(`silent hole: offsets ${cursor + 1}-${event.offset - 1} missing without a gap`);
    cursor = event.offset;
    events += 1;
    if (event.generationId === undefined) continue;
    let trace = generations.get(event.generationId);
    if (!trace) {
      trace = { starts: 0, ends: 0, nextSeq: 0, status: undefined };
      generations.set(event.generationId, trace);
    }
    switch (event.type) {
      case 'gen.start':
        trace.starts += 1;
        if (trace.starts > 1) note(`generation ${event.generationId} started twice`);
        break;
      case 'chunk':
        if (trace.ends > 0) note(`generation ${event.generationId}: chunk seq ${event.seq} after its gen.end`);
        if (event.seq !== trace.nextSeq && !trimmedSomething) note(`generation ${event.generationId}: seq ${event.seq} where ${trace.nextSeq} was due`);
        if (event.seq !== undefined && event.seq < trace.nextSeq) note(`generation ${event.generationId}: seq ${event.seq} out of order`);
        trace.nextSeq = (event.seq ?? trace.nextSeq) + 1;
        break;
      case 'gen.end':
        trace.ends += 1;
        trace.status = event.status;
        if (trace.ends > 1) note(`generation ${event.generationId} ended twice`);
        if (event.status && !statuses.includes(event.status)) note(`generation ${event.generationId} ended with ${event.status}`);
        break;
      default:
        break;
    }
  }
  for (const [id, trace] of generations) {
    if (trace.starts !== 1 && (expect.from ?? 0) === 0 && !trimmedSomething) note(`generation ${id} has ${trace.starts} gen.start`);
    if (trace.ends !== 1) note(`generation ${id} has ${trace.ends} gen.end`);
    if (expect.chunksPerGeneration !== undefined && trace.nextSeq !== expect.chunksPerGeneration) {
      note(`generation ${id} holds ${trace.nextSeq} chunks, expected ${expect.chunksPerGeneration}`);
    }
  }
  if (expect.generations !== undefined && generations.size !== expect.generations) {
    note(`${generations.size} generations seen, expected ${expect.generations}`);
  }
  return { events, gaps, duplicates, violations };
}

/** A small seeded PRNG (mulberry32) so chaos runs reproduce from their seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
