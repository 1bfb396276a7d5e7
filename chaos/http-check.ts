/**
 * The history checker for the Durable Streams door's participants of a chaos run
 * (http-streams.ts), with the rules of checker.ts:
 *
 *   duplicate-stored    a producer seq stored twice (the door's dedupe failed a retry)
 *   order               the stored seqs are not 0, 1, 2, … in offset order, or a batch's items
 *                       are not the ones after the previous batch's
 *   lost-ack            an acknowledged batch (200 or 204) is not in the log
 *   ack-mismatch        a 200 names an offset other than its batch's event, or items other than its own
 *   unexpected-gap      the stream's log holds a gap (no retention pressure in these runs)
 *   duplicate-delivery  the SSE reader got an item twice
 *   wrong-event         the SSE reader got items in another order than the log holds them
 *   unresumed           the reader did not reach the close, or the producer could not close
 *   write-after-fence   an answer a sequential producer never gets (403, 409, 400)
 *
 * The stream offset of a batch is its event's spool offset (PROTOCOL §16.4), so log and acks
 * compare directly.
 */
import type { ReadItem, SessionEvent } from '../protocol/types';
import type { Violation } from './checker';
import type { HttpProducerRecord, HttpReaderRecord } from './http-streams';

interface StoredBatch {
  readonly event: SessionEvent;
  readonly seq: number;
  readonly items: number[];
}

function keyParts(event: SessionEvent): unknown[] | undefined {
  if (event.type !== 'append' || typeof event.key !== 'string' || !event.key.startsWith('["ds"')) return undefined;
  try {
    const parts = JSON.parse(event.key) as unknown;
    return Array.isArray(parts) ? parts : undefined;
  } catch {
    return undefined;
  }
}

/** The producer's batches in the stream's log, in offset order, and whether it holds a close and any gap. */
function storedBatches(log: readonly ReadItem[]): { batches: StoredBatch[]; closed: boolean; gap: ReadItem | undefined } {
  const batches: StoredBatch[] = [];
  let closed = false;
  let gap: ReadItem | undefined;
  for (const item of log) {
    if (item.type === 'gap') {
      gap ??= item;
      continue;
    }
    const parts = keyParts(item);
    if (item.kind === 'ds.close') closed = true;
    if (!parts || parts[2] !== 'p' || item.kind !== 'ds.json') continue;
    const messages = item.data as Array<{ n: number }>;
    batches.push({ event: item, seq: parts[5] as number, items: messages.map((m) => m.n) });
  }
  return { batches, closed, gap };
}

function renderOffset(n: number): string {
  return `0000000000000000_${String(n).padStart(16, '0')}`;
}

export function checkHttpStreams(producers: readonly HttpProducerRecord[], readers: readonly HttpReaderRecord[], logs: Readonly<Record<string, ReadItem[]>>): Violation[] {
  const violations: Violation[] = [];
  const v = (rule: Violation['rule'], session: string, where: string, message: string, event: unknown): void => {
    violations.push({ rule, session, where, message, event });
  };
  for (const producer of producers) {
    const session = producer.session;
    const log = logs[session] ?? [];
    const { batches, closed, gap } = storedBatches(log);
    if (gap) v('unexpected-gap', session, 'log', 'the stream lost data to a gap', gap);
    for (const anomaly of producer.anomalies) v('write-after-fence', session, 'producer http', anomaly, null);
    if (!producer.closed || !closed) v('unresumed', session, 'producer http', 'the stream was not closed at the end', null);
    const bySeq = new Map<number, StoredBatch>();
    let expectedSeq = 0;
    let expectedItem = 0;
    for (const batch of batches) {
      if (bySeq.has(batch.seq)) {
        v('duplicate-stored', session, 'log', `producer seq ${batch.seq} stored at ${bySeq.get(batch.seq)?.event.offset} and again at ${batch.event.offset}`, batch.event);
        continue;
      }
      bySeq.set(batch.seq, batch);
      if (batch.seq !== expectedSeq) v('order', session, 'log', `producer seq ${batch.seq} stored where ${expectedSeq} was due`, batch.event);
      if (batch.items[0] !== expectedItem) v('order', session, 'log', `batch seq ${batch.seq} starts at item ${batch.items[0]}, not ${expectedItem}`, batch.event);
      expectedSeq = batch.seq + 1;
      expectedItem = (batch.items[batch.items.length - 1] ?? expectedItem - 1) + 1;
    }
    for (const ack of producer.acks) {
      const stored = bySeq.get(ack.seq);
      if (!stored) {
        v('lost-ack', session, 'producer http', `seq ${ack.seq} was answered ${ack.status} but is not in the log`, ack);
        continue;
      }
      if (ack.status === 200 && ack.offset !== renderOffset(stored.event.offset)) v('ack-mismatch', session, 'producer http', `seq ${ack.seq} acknowledged at ${ack.offset}, stored at ${stored.event.offset}`, ack);
      if (JSON.stringify(ack.items) !== JSON.stringify(stored.items)) v('ack-mismatch', session, 'producer http', `seq ${ack.seq}: other items stored than sent`, ack);
    }
    const reader = readers.find((r) => r.session === session);
    if (!reader) continue;
    const expected = batches.flatMap((b) => b.items);
    const seen = new Set<number>();
    for (let i = 0; i < reader.delivered.length; i++) {
      const n = reader.delivered[i] as number;
      if (seen.has(n)) {
        v('duplicate-delivery', session, 'reader http', `item ${n} delivered again (position ${i})`, n);
        break;
      }
      seen.add(n);
      if (expected[i] !== n) {
        v('wrong-event', session, 'reader http', `position ${i}: got item ${n}, the log holds ${expected[i]}`, n);
        break;
      }
    }
    if (!reader.ended || reader.delivered.length !== expected.length) v('unresumed', session, 'reader http', `the SSE reader got ${reader.delivered.length} of ${expected.length} items${reader.ended ? '' : ' and never reached the close'}`, null);
  }
  return violations;
}
