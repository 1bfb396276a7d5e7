/**
 * The bounds of G8 at the gateway: producer credit, slow readers, the per-session write queue.
 */
import pino from 'pino';
import type WebSocket from 'ws';
import { closeCodeOf } from '../protocol/errors';
import type { ReadItem } from '../protocol/types';
import { MemoryStore } from '../store/memory';
import { startGateway, type Gateway, type GatewayOptions } from './index';
import { RawClient, type AnyFrame } from './test-helpers/raw-client';

const cleanups: Array<() => Promise<void> | void> = [];
/** Gates to open before anything closes, so shutdown never waits on a held store call. */
const gates: Array<() => void> = [];
afterEach(async () => {
  for (const release of gates.splice(0)) release();
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function gateway(options: GatewayOptions = {}): Promise<Gateway> {
  const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: pino({ level: 'silent' }), ...options });
  cleanups.push(() => gw.close());
  return gw;
}

async function client(gw: Gateway): Promise<RawClient> {
  const c = await RawClient.connect(gw.url);
  cleanups.push(() => c.close());
  return c;
}

/** A store whose appends wait until released, so nothing gets acked meanwhile. */
function gatedStore(): { store: MemoryStore; release: () => void } {
  const inner = new MemoryStore();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  gates.push(() => release());
  const store = Object.assign(Object.create(inner) as MemoryStore, {
    append: async (session: string, items: Parameters<MemoryStore['append']>[1]) => {
      await gate;
      return inner.append(session, items);
    },
  });
  return { store, release };
}

/** A session's whole log, page by page up to its head (however much a run wrote). */
async function readLog(store: MemoryStore, session: string): Promise<ReadItem[]> {
  const items: ReadItem[] = [];
  let after = 0;
  for (;;) {
    const page = await store.read(session, after, 1000);
    items.push(...page.items);
    if (page.through >= page.head) return items;
    if (page.through <= after) throw new Error(`read of ${session} after ${after} made no progress (head ${page.head})`);
    after = page.through;
  }
}

/** Stops reading from the socket at the TCP level, so the gateway's send buffer toward it fills. */
function stopReading(c: RawClient): () => void {
  const socket = (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  socket.pause();
  return () => socket.resume();
}

describe('producer credit', () => {
  it('closes a producer that ignores its credit with FLOW_CONTROL, and accepts one that stays inside it', async () => {
    const { store, release } = gatedStore();
    const gw = await gateway({ store, credit: { frames: 10, bytes: 1 << 20 } });
    const c = await client(gw);
    const { token } = await c.open('s', 'g');
    c.send({ type: 'chunks', token, seq: 0, items: Array.from({ length: 10 }, (_, i) => ({ data: i })) });
    c.send({ type: 'ping', id: 1 });
    await c.next((f) => f.type === 'pong');
    expect(c.frames.some((f) => f.type === 'error')).toBe(false);
    c.send({ type: 'chunk', token, seq: 10, data: 'one too many' });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'FLOW_CONTROL', retryable: false });
    expect((await c.waitClosed()).code).toBe(closeCodeOf('FLOW_CONTROL'));
    release();
    // The generation stays open: a well-behaved producer resumes it.
    const again = await client(gw);
    const resumed = await again.open('s', 'g', { resume: { token } });
    expect(resumed).toMatchObject({ type: 'opened', resumed: true, nextSeq: 10 });
  });

  it('counts data bytes too, allowing credit.bytes plus one frame of slack', async () => {
    const { store } = gatedStore();
    const gw = await gateway({ store, credit: { frames: 1000, bytes: 1000 }, limits: { maxFrameBytes: 3000 } });
    const c = await client(gw);
    const { token } = await c.open('s', 'g');
    c.send({ type: 'chunk', token, seq: 0, data: 'x'.repeat(1900) });
    c.send({ type: 'chunk', token, seq: 1, data: 'x'.repeat(1900) });
    c.send({ type: 'ping', id: 1 });
    await c.next((f) => f.type === 'pong');
    expect(c.frames.some((f) => f.type === 'error')).toBe(false);
    c.send({ type: 'chunk', token, seq: 2, data: 'x'.repeat(300) });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'FLOW_CONTROL' });
  });
});

describe('retransmission floods', () => {
  it('a producer resending old seqs in a loop cannot grow the session queue past maxQueuedWrites', async () => {
    const { store } = gatedStore();
    const gw = await gateway({ store, maxQueuedWrites: 50 });
    const c = await client(gw);
    const { token } = await c.open('s', 'g');
    c.send({ type: 'chunk', token, seq: 0, data: 'first' });
    // seq 0 again and again: duplicates, which credit does not count.
    for (let i = 0; i < 100; i++) c.send({ type: 'chunk', token, seq: 0, data: 'first' });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'FLOW_CONTROL' });
    expect(Number(/^spool_persistence_queue_depth (\d+)/m.exec(await gw.metrics.render())?.[1])).toBeLessThanOrEqual(50);
  });
});

describe('slow readers', () => {
  const chunk = 'y'.repeat(1000);

  async function stream(p: RawClient, token: string, from: number, count: number): Promise<void> {
    for (let seq = from; seq < from + count; seq += 100) {
      p.send({ type: 'chunks', token, seq, items: Array.from({ length: 100 }, (_, i) => ({ data: `${seq + i}:${chunk}` })) });
      await p.next((f) => f.type === 'ack' && f['seq'] === seq + 99, 20_000);
    }
  }

  it('a reader that stops reading is paused, not buffered without bound, and gets everything exactly once when it reads again', async () => {
    // Paused, never given up on: however long streaming takes on this machine, neither the slow
    // reader timeout nor the heartbeat (a paused socket answers no ping) may end the reader.
    const gw = await gateway({
      maxReaderBufferedBytes: 64 * 1024,
      hotBufferEvents: 256,
      credit: { frames: 4096, bytes: 8 << 20 },
      slowReaderTimeoutMs: 600_000,
      heartbeatMs: 600_000,
    });
    const p = await client(gw);
    const r = await client(gw);
    const { token } = await p.open('s', 'g');
    r.send({ type: 'subscribe', session: 's', from: 0 });
    await r.next((f) => f.type === 'live');
    const resume = stopReading(r);
    await stream(p, token, 0, 20_000); // ~20 MB: far past socket buffers and the reader bound
    p.send({ type: 'finish', token, seq: 20_000 });
    await p.next((f) => f.type === 'finished');
    resume();
    const seqs: number[] = [];
    let last = 1; // gen.start arrived before live
    for (;;) {
      const f = await r.next((x) => x.type === 'events' || x.type === 'gap', 20_000);
      expect(f.type).toBe('events');
      for (const e of f['events'] as AnyFrame[]) {
        expect(e['offset']).toBe(last + 1);
        last = e['offset'];
        if (e.type === 'chunk') seqs.push(e['seq']);
      }
      if ((f['events'] as AnyFrame[]).some((e) => e.type === 'gen.end')) break;
    }
    expect(seqs).toEqual(Array.from({ length: 20_000 }, (_, i) => i));
  });

  /**
   * A producer streams to a live reader that has stopped reading until the gateway gives up on
   * it (bounded: kernel socket buffers absorb megabytes first), then the reader reads what was
   * sent, ending with its close: the close code. `beforeStalling` runs once the reader is live.
   */
  async function slowReaderClose(gw: Gateway, beforeStalling: () => void = () => undefined): Promise<number> {
    const p = await client(gw);
    const r = await client(gw);
    const { token } = await p.open('s', 'g');
    r.send({ type: 'subscribe', session: 's', from: 0 });
    await r.next((f) => f.type === 'live');
    beforeStalling();
    const resume = stopReading(r);
    const closed = new Promise<number>((resolve) => (r.ws as WebSocket).once('close', (code) => resolve(code)));
    const slow = (): number => gw.metrics.errorsSent.get({ code: 'SLOW_CONSUMER' });
    for (let seq = 0; slow() === 0 && seq < 200_000; seq += 1000) await stream(p, token, seq, 1000);
    expect(slow()).toBe(1);
    resume();
    return closed;
  }

  it('a reader whose socket never drains is closed with SLOW_CONSUMER after slowReaderTimeoutMs', async () => {
    const gw = await gateway({ maxReaderBufferedBytes: 64 * 1024, slowReaderTimeoutMs: 200, credit: { frames: 4096, bytes: 8 << 20 } });
    expect(await slowReaderClose(gw)).toBe(closeCodeOf('SLOW_CONSUMER'));
  });

  it('a reader limit lowered through the toggles applies to readers already subscribed: SLOW_CONSUMER after the new slowReaderTimeoutMs', async () => {
    // Started with limits no reader of this test reaches; the toggles lower them (no restart).
    const gw = await gateway({ maxReaderBufferedBytes: 1 << 30, slowReaderTimeoutMs: 3_600_000, credit: { frames: 4096, bytes: 8 << 20 } });
    const lowered = (): void => {
      expect(gw.toggles.update({ maxReaderBufferedBytes: 64 * 1024, slowReaderTimeoutMs: 200 })).toMatchObject({ maxReaderBufferedBytes: 64 * 1024, slowReaderTimeoutMs: 200 });
    };
    expect(await slowReaderClose(gw, lowered)).toBe(closeCodeOf('SLOW_CONSUMER'));
  });
});

describe('session write queue', () => {
  it('answers appends past maxQueuedWrites with RATE_LIMITED and stores every accepted one', async () => {
    const { store, release } = gatedStore();
    const gw = await gateway({ store, maxQueuedWrites: 5 });
    const c = await client(gw);
    for (let i = 0; i < 8; i++) c.send({ type: 'append', id: i, session: 's', key: `k${i}`, kind: 'user', data: i });
    const firstRefusal = await c.next((f) => f.type === 'error');
    expect(firstRefusal).toMatchObject({ code: 'RATE_LIMITED', retryable: true });
    release();
    const answered = (): AnyFrame[] => c.frames.filter((f) => f.type === 'appended' || f.type === 'error');
    while (answered().length < 8) await c.next((f) => f.type === 'appended');
    const appended = answered().filter((f) => f.type === 'appended');
    const limited = answered().filter((f) => f.type === 'error' && f['code'] === 'RATE_LIMITED');
    expect(appended.length + limited.length).toBe(8);
    expect(appended.length).toBeGreaterThanOrEqual(5);
    expect((await store.read('s', 0, 100)).items.map((e) => (e as AnyFrame)['key'])).toEqual(appended.map((a) => a['key']));
  });
});

describe('degradation', () => {
  it('past degradeWatermark drops only debug chunks at the door, consumes their seqs, counts them and reports them in the ack', async () => {
    const { store, release } = gatedStore();
    const gw = await gateway({ store, degradeWatermark: 4 });
    const c = await client(gw);
    const { token } = await c.open('s', 'g');
    // The first chunk goes to the store (held); the next ones queue behind it.
    const items = [2, 2, 2, 2, 2, 0, 1, 0, 2, 0].map((priority, i) => ({ priority, data: `p${priority}-${i}` }));
    c.send({ type: 'chunks', token, seq: 0, items });
    c.send({ type: 'ping', id: 1 });
    await c.next((f) => f.type === 'pong');
    release();
    const acks: AnyFrame[] = [];
    while (acks.at(-1)?.['seq'] !== 9) acks.push(await c.next((f) => f.type === 'ack'));
    expect(acks.reduce((n, a) => n + (a['dropped'] ?? 0), 0)).toBe(3);
    expect(gw.metrics.degradedDropped.get()).toBe(3);
    const stored = (await store.read('s', 0, 100)).items.filter((e) => e.type === 'chunk') as AnyFrame[];
    expect(stored.map((e) => e['seq'])).toEqual([0, 1, 2, 3, 4, 6, 8]);
    expect(stored.every((e) => e['priority'] > 0)).toBe(true);
    // The end takes the seq after the dropped ones; readers see no offset gap.
    c.send({ type: 'finish', id: 2, token, seq: 10 });
    expect(await c.next((f) => f.id === 2)).toMatchObject({ type: 'finished', status: 'done' });
    const log = (await store.read('s', 0, 100)).items;
    expect(log.some((i) => i.type === 'gap')).toBe(false);
  });
});

describe('idle timeout across processes', () => {
  it('a gateway whose producer moved to another gateway does not time the generation out while it is written elsewhere', async () => {
    const store = new MemoryStore();
    // Both gateways read one clock that moves only when the test moves it: idleness is judged by
    // it, so neither a fast run (no time passes) nor a stalled one (too much passes) decides.
    let now = Date.now();
    const clock = (): number => now;
    // How the store answered the first gateway's idle-timeout ends.
    const idleEnds: string[] = [];
    const watched = Object.assign(Object.create(store) as MemoryStore, {
      append: async (session: string, items: Parameters<MemoryStore['append']>[1]) => {
        const result = await store.append(session, items);
        items.forEach((item, i) => {
          if (item.op === 'end' && item.status === 'timeout') idleEnds.push(result.results[i]?.status ?? 'missing');
        });
        return result;
      },
    });
    const first = await gateway({ store: watched, clock, generationIdleTimeoutMs: 100 });
    const second = await gateway({ store, clock, generationIdleTimeoutMs: 100 });
    const a = await client(first);
    const opened = await a.open('s', 'g');
    a.send({ type: 'chunk', token: opened['token'], seq: 0, data: 'on first' });
    await a.next((f) => f.type === 'ack');
    a.ws.terminate();
    const b = await client(second);
    const { token } = await b.open('s', 'g', { resume: { token: opened['token'] } });
    // Keep writing through the second gateway, the clock passing the idle timeout as it goes,
    // until the first gateway's idle timeout has fired twice (each answered by the store), and
    // no further than a count: every step moves the clock 60 ms, so each of the first gateway's
    // checks finds 100 ms without activity there, while the second one hears a chunk every step.
    let seq = 1;
    while (idleEnds.length < 2 && seq <= 100_000) {
      now += 60;
      b.send({ type: 'chunk', token, seq, data: `on second ${seq}` });
      if ((await b.next((f) => f.type === 'ack' || f.type === 'error', 20_000)).type === 'error') break;
      seq += 1;
    }
    expect(idleEnds.slice(0, 2)).toEqual(['busy', 'busy']);
    expect(b.frames.filter((f) => f.type === 'error')).toEqual([]);
    b.send({ type: 'finish', id: 9, token, seq });
    expect(await b.next((f) => f.id === 9, 20_000)).toMatchObject({ type: 'finished', status: 'done' });
    const log = await readLog(store, 's');
    expect(log.filter((e) => e.type === 'chunk').map((e) => (e as AnyFrame)['seq'])).toEqual(Array.from({ length: seq }, (_, i) => i));
    expect(log.filter((e) => e.type === 'gen.end').map((e) => (e as AnyFrame)['status'])).toEqual(['done']);
  });
});

describe('readers across processes', () => {
  it('a reader arriving at a gateway that stopped watching the session is judged against the store head, not a stale one', async () => {
    const store = new MemoryStore();
    const a = await gateway({ store });
    const b = await gateway({ store });
    const producer = await client(a);
    const { token } = await producer.open('s', 'g');
    producer.send({ type: 'chunks', token, seq: 0, items: [{ data: 0 }, { data: 1 }] });
    await producer.next((f) => f.type === 'ack' && f['seq'] === 1);
    const first = await client(b);
    expect((await first.readAll('s', 0)).map((e) => e['offset'])).toEqual([1, 2, 3]);
    first.close();
    // B's actor no longer watches: these writes happen without it hearing of them.
    producer.send({ type: 'chunks', token, seq: 2, items: [{ data: 2 }, { data: 3 }] });
    producer.send({ type: 'finish', id: 5, token, seq: 4 });
    await producer.next((f) => f.id === 5);
    const second = await client(b);
    second.send({ type: 'subscribe', id: 1, session: 's', from: 5 });
    expect(await second.next((f) => f.id === 1)).toMatchObject({ type: 'subscribed', from: 5, head: 6 });
    const events = await second.next((f) => f.type === 'events');
    expect(events['events'].map((e: AnyFrame) => e['offset'])).toEqual([6]);
    expect(await second.next((f) => f.type === 'live')).toMatchObject({ offset: 6 });
    // And 'now' means the store's head too.
    const third = await client(b);
    third.send({ type: 'subscribe', id: 2, session: 's', from: 'now' });
    expect(await third.next((f) => f.id === 2)).toMatchObject({ type: 'subscribed', from: 6, head: 6 });
  });
  it('a reader with an offset this process has not heard of yet (its notice still in flight) is checked against the store, not refused', async () => {
    const store = new MemoryStore();
    // B hears of nothing: every notice to it is "still in flight".
    const deaf = Object.assign(Object.create(store) as MemoryStore, { watch: () => () => {} });
    const a = await gateway({ store });
    const b = await gateway({ store: deaf });
    const watcher = await client(b);
    watcher.send({ type: 'subscribe', id: 1, session: 's', from: 0 });
    await watcher.next((f) => f.type === 'live');
    const producer = await client(a);
    const { token } = await producer.open('s', 'g');
    producer.send({ type: 'chunks', token, seq: 0, items: [{ data: 0 }, { data: 1 }] });
    await producer.next((f) => f.type === 'ack' && f['seq'] === 1);
    const hopper = await client(b);
    hopper.send({ type: 'subscribe', id: 2, session: 's', from: 2 });
    expect(await hopper.next((f) => f.id === 2)).toMatchObject({ type: 'subscribed', from: 2, head: 3 });
    const events = await hopper.next((f) => f.type === 'events');
    expect(events['events'].map((e: AnyFrame) => e['offset'])).toEqual([3]);
  });
});
