/**
 * The HTTP participants' history checker on hand-made histories: a correct one passes, and each
 * kind of wrong one is named by its rule.
 */
import type { ReadItem, SessionEvent } from '../protocol/types';
import { checkHttpStreams } from './http-check';
import type { HttpProducerRecord, HttpReaderRecord } from './http-streams';

const offsetOf = (n: number): string => `0000000000000000_${String(n).padStart(16, '0')}`;

function batchEvent(offset: number, seq: number, items: number[]): SessionEvent {
  return { offset, type: 'append', key: JSON.stringify(['ds', '1', 'p', 'chaos-http', 0, seq, null]), kind: 'ds.json', priority: 2, ts: 0, data: items.map((n) => ({ s: 'h0', n })) };
}
const meta: SessionEvent = { offset: 1, type: 'append', key: '["ds","1","meta"]', kind: 'ds.meta', priority: 3, ts: 0, data: { v: 1, path: 'h0', contentType: 'application/json' } };
const close = (offset: number): SessionEvent => ({ offset, type: 'append', key: JSON.stringify(['ds', '1', 'p', 'chaos-http', 0, 9, null]), kind: 'ds.close', priority: 3, ts: 0, data: null });

function history(): { producer: HttpProducerRecord; reader: HttpReaderRecord; log: ReadItem[] } {
  return {
    producer: {
      session: 'h0',
      acks: [
        { seq: 0, items: [0, 1], offset: offsetOf(2), status: 200 },
        { seq: 1, items: [2], offset: undefined, status: 204 },
      ],
      retries: 1,
      closed: true,
      anomalies: [],
    },
    reader: { session: 'h0', delivered: [0, 1, 2], connections: 2, ended: true },
    log: [meta, batchEvent(2, 0, [0, 1]), batchEvent(3, 1, [2]), close(4)],
  };
}

function rules(h: ReturnType<typeof history>): string[] {
  return checkHttpStreams([h.producer], [h.reader], { h0: h.log }).map((v) => v.rule);
}

describe('checkHttpStreams', () => {
  test('a history where every acknowledged batch is stored once, in order, and read once passes', () => {
    expect(rules(history())).toEqual([]);
  });

  test('a retried batch stored twice is duplicate-stored', () => {
    const h = history();
    h.log.splice(3, 0, batchEvent(3, 0, [0, 1]));
    h.log[3 + 1] = batchEvent(4, 1, [2]);
    expect(rules(h)).toContain('duplicate-stored');
  });

  test('an acknowledged batch missing from the log is lost-ack', () => {
    const h = history();
    h.log.splice(2, 1);
    expect(rules(h)).toContain('lost-ack');
  });

  test('a 200 naming another offset than its batch is ack-mismatch', () => {
    const h = history();
    h.producer.acks[0] = { seq: 0, items: [0, 1], offset: offsetOf(3), status: 200 };
    expect(rules(h)).toEqual(['ack-mismatch']);
  });

  test('an item delivered twice is duplicate-delivery; out of order is wrong-event; short is unresumed', () => {
    expect(rules({ ...history(), reader: { session: 'h0', delivered: [0, 1, 1, 2], connections: 2, ended: true } })).toContain('duplicate-delivery');
    expect(rules({ ...history(), reader: { session: 'h0', delivered: [0, 2, 1], connections: 1, ended: true } })).toContain('wrong-event');
    expect(rules({ ...history(), reader: { session: 'h0', delivered: [0, 1], connections: 1, ended: false } })).toEqual(['unresumed']);
  });

  test('a producer refused with 403 or 409 is a fencing violation; a stream left open is unresumed', () => {
    const h = history();
    h.producer.anomalies.push('seq 2 answered 409 (1)');
    expect(rules(h)).toEqual(['write-after-fence']);
    const open = history();
    open.log.pop();
    expect(rules(open)).toEqual(['unresumed']);
  });
});
