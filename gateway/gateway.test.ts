/**
 * Gateway behaviour over real WebSockets on port 0, spoken with a bare protocol client so the
 * wire contract itself is pinned (the SDK has its own suite).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import WebSocket from 'ws';
import { encodeFrame } from '../protocol/codec';
import { closeCodeOf } from '../protocol/errors';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { MemoryStore } from '../store/memory';
import { startGateway, type Gateway, type GatewayOptions } from './index';
import type { DomainEvent } from './telemetry';
import { RawClient, type AnyFrame } from './test-helpers/raw-client';
import { TRANSPORT_NAMES, type Transport, type TransportName } from './transport';
import { loadUwsTransport } from './transport-uws';
import { wsTransport } from './transport-ws';

const quiet = pino({ level: 'silent' });
// Objects, not names: naming 'uws' falls back to ws when uWebSockets.js cannot load, which would
// quietly run this suite on ws twice. loadUwsTransport throws instead, failing the suite.
const TRANSPORTS: Record<TransportName, Transport> = { ws: wsTransport, uws: loadUwsTransport() };
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function client(gw: Gateway, protocol: Parameters<typeof RawClient.connect>[1] = SUBPROTOCOL_MSGPACK, hello = true): Promise<RawClient> {
  const c = await RawClient.connect(gw.url, protocol, hello);
  cleanups.push(() => c.close());
  return c;
}

const isError = (code: string) => (f: AnyFrame) => f.type === 'error' && f.code === code;

// Every test runs once per transport: the wire contract does not depend on which one serves it.
describe.each(TRANSPORT_NAMES)('over %s', (transportName) => {
  const transport = TRANSPORTS[transportName];

  async function gateway(options: GatewayOptions = {}): Promise<Gateway> {
    const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: quiet, transport, ...options });
    cleanups.push(() => gw.close());
    return gw;
  }

  describe('producing', () => {
    it('acks a batch cumulatively only after it is stored, with the offset of its last chunk', async () => {
      const gw = await gateway();
      const c = await client(gw);
      const opened = await c.open('s', 'g');
      expect(opened).toMatchObject({ type: 'opened', nextSeq: 0, offset: 1, resumed: false });
      c.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a' }, { data: 'b' }, { data: 'c' }] });
      const ack = await c.next((f) => f.type === 'ack');
      expect(ack).toMatchObject({ generation: 'g', seq: 2, offset: 4 });
      const stored = await gw.store.read('s', 0, 10);
      expect(stored.items.map((e) => (e as { data?: unknown }).data)).toEqual([undefined, 'a', 'b', 'c']);
    });

    it('sends no ack until the store append has resolved (G1)', async () => {
      const inner = new MemoryStore();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let called!: () => void;
      const appendCalled = new Promise<void>((r) => (called = r));
      const store = Object.assign(Object.create(inner) as MemoryStore, {
        append: async (session: string, items: Parameters<MemoryStore['append']>[1]) => {
          called();
          await gate;
          return inner.append(session, items);
        },
      });
      const gw = await gateway({ store });
      const c = await client(gw);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunk', token, seq: 0, data: 'a' });
      await appendCalled;
      c.send({ type: 'ping', id: 1 });
      await c.next((f) => f.type === 'pong');
      expect(c.frames.some((f) => f.type === 'ack')).toBe(false);
      release();
      expect(await c.next((f) => f.type === 'ack')).toMatchObject({ seq: 0, offset: 2 });
    });

    it('answers STORE_UNAVAILABLE once the retry budget is spent, stores nothing, and recovers when the store does', async () => {
      const inner = new MemoryStore();
      let failing = true;
      const store = Object.assign(Object.create(inner) as MemoryStore, {
        append: async (session: string, items: Parameters<MemoryStore['append']>[1]) => {
          if (failing) throw new Error('connection refused');
          return inner.append(session, items);
        },
      });
      const gw = await gateway({ store, storeRetryBudgetMs: 100, storeProbeIntervalMs: 20 });
      const c = await client(gw);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunk', token, seq: 0, data: 'a' });
      expect(await c.next((f) => f.type === 'error' || f.type === 'ack')).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
      expect(gw.metrics.persistenceFailure.get()).toBeGreaterThan(0);
      failing = false;
      let answer: AnyFrame | undefined;
      // Resend until the probe lets a write through again (bounded by time, not by a count:
      // fail-fast answers come back in microseconds). What is asserted is only the outcome.
      const deadline = Date.now() + 30_000;
      while (answer?.type !== 'ack' && Date.now() < deadline) {
        c.send({ type: 'chunk', token, seq: 0, data: 'a' });
        answer = await c.next((f) => f.type === 'error' || f.type === 'ack');
      }
      expect(answer).toMatchObject({ type: 'ack', seq: 0, offset: 2 });
      expect((await inner.read('s', 0, 10)).items.filter((e) => e.type === 'chunk')).toHaveLength(1);
    });

    it('stores a retransmitted seq once and acks it with its original offset', async () => {
      const gw = await gateway();
      const c = await client(gw);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunks', token, seq: 0, items: [{ data: 'a' }, { data: 'b' }] });
      await c.next((f) => f.type === 'ack' && f['seq'] === 1);
      c.send({ type: 'chunk', token, seq: 0, data: 'a' });
      const again = await c.next((f) => f.type === 'ack');
      expect(again).toMatchObject({ seq: 0, offset: 2 });
      const stored = await gw.store.read('s', 0, 10);
      expect(stored.items.filter((e) => e.type === 'chunk')).toHaveLength(2);
      expect(gw.metrics.duplicateWrites.get()).toBe(1);
    });

    it('refuses a seq that skips ahead with SEQ_GAP naming the expected seq, and stores nothing of it', async () => {
      const gw = await gateway();
      const c = await client(gw);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunk', token, seq: 0, data: 'a' });
      await c.next((f) => f.type === 'ack');
      c.send({ type: 'chunks', token, seq: 3, items: [{ data: 'x' }, { data: 'y' }] });
      const error = await c.next(isError('SEQ_GAP'));
      expect(error).toMatchObject({ retryable: true, details: { expectedSeq: 1 }, ref: 'g' });
      c.send({ type: 'chunk', token, seq: 1, data: 'b' });
      expect(await c.next((f) => f.type === 'ack')).toMatchObject({ seq: 1 });
      const stored = await gw.store.read('s', 0, 10);
      expect(stored.items.filter((e) => e.type === 'chunk').map((e) => (e as { data?: unknown }).data)).toEqual(['a', 'b']);
    });

    it('answers a repeated finish with the original finished frame', async () => {
      const gw = await gateway();
      const c = await client(gw);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunk', token, seq: 0, data: 'a' });
      c.send({ type: 'finish', id: 7, token, seq: 1 });
      const first = await c.next((f) => f.type === 'finished');
      expect(first).toMatchObject({ id: 7, status: 'done', offset: 3 });
      c.send({ type: 'finish', id: 8, token, seq: 1 });
      expect(await c.next((f) => f.id === 8)).toMatchObject({ type: 'finished', status: 'done', offset: 3 });
      const ends = (await gw.store.read('s', 0, 10)).items.filter((e) => e.type === 'gen.end');
      expect(ends).toHaveLength(1);
    });

    it('resumes an open generation from another connection at the next durable seq', async () => {
      const gw = await gateway();
      const a = await client(gw);
      const opened = await a.open('s', 'g');
      a.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 0 }, { data: 1 }, { data: 2 }] });
      await a.next((f) => f.type === 'ack' && f['seq'] === 2);
      a.ws.terminate();
      const b = await client(gw);
      const resumed = await b.open('s', 'g', { resume: { token: opened['token'] } });
      expect(resumed).toMatchObject({ type: 'opened', resumed: true, nextSeq: 3, token: opened['token'] });
    });

    it('refuses a second generation without takeover with GENERATION_ACTIVE and a reopened ended one with GENERATION_CLOSED', async () => {
      const gw = await gateway();
      const c = await client(gw);
      const { token } = await c.open('s', 'a');
      expect(await c.open('s', 'b')).toMatchObject({ type: 'error', code: 'GENERATION_ACTIVE' });
      c.send({ type: 'finish', token, seq: 0 });
      await c.next((f) => f.type === 'finished');
      expect(await c.open('s', 'a')).toMatchObject({ type: 'error', code: 'GENERATION_CLOSED', details: { status: 'done', offset: 2 } });
    });

    it('a resume never creates a generation: displaced answers FENCED, unknown answers GENERATION_CLOSED', async () => {
      const gw = await gateway();
      const c = await client(gw);
      const a = await c.open('s', 'A');
      await c.open('s', 'B', { takeover: true });
      expect(await c.open('s', 'A', { resume: { token: a['token'] } })).toMatchObject({ type: 'error', code: 'FENCED', details: { status: 'fenced' } });
      expect(await c.open('t', 'ghost', { resume: { token: 'v1/3/t/ghost/AAAAAAAAAAAAAAAAAAAAAA' } })).toMatchObject({ type: 'error', code: 'GENERATION_CLOSED' });
      expect((await gw.store.meta('t')).head).toBe(0);
    });

    it('takeover fences the old writer: FENCED on its next write, gen.end fenced before the new gen.start, nothing of it after', async () => {
      const events: DomainEvent[] = [];
      const gw = await gateway({ telemetry: { emit: (e) => events.push(e) } });
      const a = await client(gw);
      const b = await client(gw);
      const openedA = await a.open('s', 'A');
      a.send({ type: 'chunks', token: openedA['token'], seq: 0, items: [{ data: 'a0' }, { data: 'a1' }] });
      await a.next((f) => f.type === 'ack' && f['seq'] === 1);
      const openedB = await b.open('s', 'B', { takeover: true });
      expect(openedB).toMatchObject({ type: 'opened', resumed: false });
      a.send({ type: 'chunk', token: openedA['token'], seq: 2, data: 'late' });
      const fenced = await a.next(isError('FENCED'));
      expect(fenced['details']['epoch']).toBeGreaterThan(1);
      b.send({ type: 'chunk', token: openedB['token'], seq: 0, data: 'b0' });
      await b.next((f) => f.type === 'ack');
      const log = (await gw.store.read('s', 0, 100)).items as unknown as AnyFrame[];
      expect(log.map((e) => `${e.type}:${e['generationId']}:${e['status'] ?? e['data'] ?? ''}`)).toEqual([
        'gen.start:A:',
        'chunk:A:a0',
        'chunk:A:a1',
        'gen.end:A:fenced',
        'gen.start:B:',
        'chunk:B:b0',
      ]);
      expect(events.some((e) => e.name === 'write.fenced')).toBe(true);
      expect(events).toContainEqual(expect.objectContaining({ name: 'generation.end', generation: 'A', status: 'fenced' }));
    });

    it('a chunk refused for good (SESSION_FULL) ends the generation with gen.end error, and finish fails with that code', async () => {
      // Critical events alone may hold 3 events: gen.start and two critical chunks fill it.
      const gw = await gateway({ store: new MemoryStore({ retention: { maxEvents: 3, maxBytes: 1 << 20, criticalFactor: 1 } }) });
      const c = await client(gw);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunks', token, seq: 0, items: [{ priority: 3, data: 'a' }, { priority: 3, data: 'b' }] });
      await c.next((f) => f.type === 'ack' && f['seq'] === 1);
      c.send({ type: 'chunk', token, seq: 2, priority: 3, data: 'c' });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'SESSION_FULL', ref: 'g' });
      c.send({ type: 'finish', id: 4, token, seq: 3 });
      expect(await c.next((f) => f.id === 4)).toMatchObject({ type: 'error', code: 'SESSION_FULL' });
      const ends = (await gw.store.read('s', 0, 10)).items.filter((e) => e.type === 'gen.end');
      expect(ends).toEqual([expect.objectContaining({ generationId: 'g', status: 'error', seq: 2 })]);
    });

    it('ends a generation whose producer went silent with gen.end timeout', async () => {
      const events: DomainEvent[] = [];
      // The gateway's clock moves only when the test moves it: a slow step of the test is never
      // taken for the producer's silence, and the silence needs no waiting.
      let now = Date.now();
      const gw = await gateway({ clock: () => now, generationIdleTimeoutMs: 150, telemetry: { emit: (e) => events.push(e) } });
      const p = await client(gw);
      const r = await client(gw);
      const { token } = await p.open('s', 'g');
      p.send({ type: 'chunk', token, seq: 0, data: 'a' });
      await p.next((f) => f.type === 'ack');
      p.ws.terminate();
      now += 150; // the producer has been silent for the idle timeout
      r.send({ type: 'subscribe', session: 's', from: 0 });
      const end = await r.next((f) => f.type === 'events' && f['events'].some((e: AnyFrame) => e.type === 'gen.end'));
      expect(end['events'].find((e: AnyFrame) => e.type === 'gen.end')).toMatchObject({ generationId: 'g', status: 'timeout', seq: 1 });
      expect(events).toContainEqual(expect.objectContaining({ name: 'generation.end', status: 'timeout' }));
    });
  });

  describe('a second client (PROTOCOL §7.1)', () => {
    const stored = async (gw: Gateway, session: string) => (await gw.store.read(session, 0, 1000)).items as unknown as AnyFrame[];

    it('naming an active generation without proof is refused GENERATION_ACTIVE; nothing of it is stored and the producer\'s acks stay true', async () => {
      const gw = await gateway();
      const a = await client(gw);
      const opened = await a.open('s', 'g', { secret: 'producer-a-secret-0001' });
      a.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a0' }, { data: 'a1' }, { data: 'a2' }] });
      await a.next((f) => f.type === 'ack' && f['seq'] === 2);

      const b = await client(gw);
      // No token, a secret of its own, a token forged from what readers and errors show, a takeover-less resume.
      const bare = await b.open('s', 'g');
      expect(bare).toMatchObject({ type: 'error', code: 'GENERATION_ACTIVE', details: { generation: 'g', epoch: 1 } });
      expect(await b.open('s', 'g', { secret: 'someone-elses-secret-01' })).toMatchObject({ type: 'error', code: 'GENERATION_ACTIVE' });
      const forged = `v1/1/s/g/${'A'.repeat(22)}`;
      expect(await b.open('s', 'g', { resume: { token: forged } })).toMatchObject({ type: 'error', code: 'GENERATION_ACTIVE' });
      b.send({ type: 'chunk', token: forged, seq: 3, data: 'intruder' });
      expect(await b.next(isError('BAD_FRAME'))).toMatchObject({ code: 'BAD_FRAME', ref: 'g' });
      b.send({ type: 'finish', id: 5, token: forged, seq: 4 });
      expect(await b.next(isError('BAD_FRAME'))).toMatchObject({ id: 5, ref: 'g' });

      a.send({ type: 'chunk', token: opened['token'], seq: 3, data: 'a3' });
      const ack = await a.next((f) => f.type === 'ack' && f['seq'] === 3);
      const log = await stored(gw, 's');
      expect(log.find((e) => e['offset'] === ack['offset'])).toMatchObject({ type: 'chunk', seq: 3, data: 'a3' });
      expect(log.map((e) => e['data']).filter((d) => d !== undefined)).toEqual(['a0', 'a1', 'a2', 'a3']);
    });

    it('a retried first open whose opened was lost resumes by repeating the secret of the first open', async () => {
      const gw = await gateway();
      const first = await client(gw);
      const opened = await first.open('s', 'g', { secret: 'producer-secret-000001' });
      first.send({ type: 'chunk', token: opened['token'], seq: 0, data: 'x' });
      await first.next((f) => f.type === 'ack');
      first.ws.terminate();
      const retry = await client(gw);
      expect(await retry.open('s', 'g', { secret: 'producer-secret-000001' })).toMatchObject({ type: 'opened', resumed: true, nextSeq: 1, token: opened['token'] });
      expect((await stored(gw, 's')).map((e) => e['type'])).toEqual(['gen.start', 'chunk']);
    });

    it('takeover of the active generation fences its writer, hands out a new token and continues its seqs', async () => {
      const gw = await gateway();
      const a = await client(gw);
      const openedA = await a.open('s', 'g');
      a.send({ type: 'chunks', token: openedA['token'], seq: 0, items: [{ data: 'a0' }, { data: 'a1' }] });
      await a.next((f) => f.type === 'ack' && f['seq'] === 1);

      const b = await client(gw);
      const openedB = await b.open('s', 'g', { takeover: true });
      expect(openedB).toMatchObject({ type: 'opened', resumed: true, nextSeq: 2, offset: 1 });
      expect(openedB['token']).not.toBe(openedA['token']);
      expect(await a.next(isError('FENCED'))).toMatchObject({ ref: 'g', details: { epoch: 2 } });

      a.send({ type: 'chunk', token: openedA['token'], seq: 2, data: 'stale' });
      expect(await a.next(isError('FENCED'))).toMatchObject({ ref: 'g' });
      expect(await a.open('s', 'g', { resume: { token: openedA['token'] } })).toMatchObject({ type: 'error', code: 'FENCED' });

      b.send({ type: 'chunk', token: openedB['token'], seq: 2, data: 'b2' });
      await b.next((f) => f.type === 'ack' && f['seq'] === 2);
      b.send({ type: 'finish', id: 9, token: openedB['token'], seq: 3 });
      await b.next((f) => f.id === 9 && f.type === 'finished');
      expect((await stored(gw, 's')).map((e) => [e['type'], e['data'] ?? e['status'] ?? null])).toEqual([
        ['gen.start', null],
        ['chunk', 'a0'],
        ['chunk', 'a1'],
        ['chunk', 'b2'],
        ['gen.end', 'done'],
      ]);
    });

    it('an open whose store call ran but whose answer was lost is retried by the gateway and answered opened, with nothing stored twice', async () => {
      const inner = new MemoryStore();
      let lose = true;
      const store = Object.assign(Object.create(inner) as MemoryStore, {
        openGeneration: async (session: string, request: Parameters<MemoryStore['openGeneration']>[1]) => {
          const result = await inner.openGeneration(session, request);
          if (lose) {
            lose = false;
            throw new Error('connection reset before the answer arrived');
          }
          return result;
        },
      });
      const gw = await gateway({ store });
      const c = await client(gw);
      // No secret: the retry proves itself with the tag the gateway drew for this open.
      const opened = await c.open('s', 'g');
      expect(opened).toMatchObject({ type: 'opened', nextSeq: 0, offset: 1 });
      c.send({ type: 'chunk', token: opened['token'], seq: 0, data: 'x' });
      expect(await c.next((f) => f.type === 'ack')).toMatchObject({ seq: 0, offset: 2 });
      expect((await stored(gw, 's')).map((e) => e['type'])).toEqual(['gen.start', 'chunk']);
    });

    it('a retransmitted seq is answered with the original offset and the first content stays, whatever the resend holds', async () => {
      const gw = await gateway();
      const c = await client(gw);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunk', token, seq: 0, data: 'first' });
      const ack = await c.next((f) => f.type === 'ack');
      c.send({ type: 'chunk', token, seq: 0, data: 'different bytes' });
      expect(await c.next((f) => f.type === 'ack')).toMatchObject({ seq: 0, offset: ack['offset'] });
      expect((await stored(gw, 's')).map((e) => e['data'])).toEqual([undefined, 'first']);
    });
  });

  describe('reading', () => {
    it('a reader that subscribes mid-stream gets every event exactly once, in order, across the switch to live', async () => {
      const gw = await gateway({ hotBufferEvents: 16 });
      const p = await client(gw);
      const r = await client(gw);
      const { token } = await p.open('s', 'g');
      const total = 600;
      let seq = 0;
      const sendSome = (n: number): void => {
        const items = Array.from({ length: n }, (_, i) => ({ data: seq + i }));
        p.send({ type: 'chunks', token, seq, items });
        seq += n;
      };
      sendSome(200);
      await p.next((f) => f.type === 'ack' && f['seq'] === 199);
      r.send({ type: 'subscribe', session: 's', from: 0 });
      while (seq < total) sendSome(50);
      p.send({ type: 'finish', token, seq: total });
      const offsets: number[] = [];
      const data: unknown[] = [];
      for (;;) {
        const f = await r.next((x) => x.type === 'events');
        for (const e of f['events'] as AnyFrame[]) {
          offsets.push(e['offset']);
          if (e.type === 'chunk') data.push(e['data']);
        }
        if ((f['events'] as AnyFrame[]).some((e) => e.type === 'gen.end')) break;
      }
      expect(offsets).toEqual(Array.from({ length: total + 2 }, (_, i) => i + 1));
      expect(data).toEqual(Array.from({ length: total }, (_, i) => i));
      expect(r.frames.filter((f) => f.type === 'gap')).toEqual([]);
    });

    it("subscribe from 'now' delivers only what comes after, and an offset past the head is OFFSET_OUT_OF_RANGE", async () => {
      const gw = await gateway();
      const c = await client(gw);
      await c.send({ type: 'append', id: 1, session: 's', key: 'k1', kind: 'user', data: 'old' });
      await c.next((f) => f.type === 'appended');
      c.send({ type: 'subscribe', id: 2, session: 's', from: 'now' });
      expect(await c.next((f) => f.id === 2)).toMatchObject({ type: 'subscribed', from: 1, head: 1 });
      await c.next((f) => f.type === 'live');
      c.send({ type: 'append', id: 3, session: 's', key: 'k2', kind: 'user', data: 'new' });
      const events = await c.next((f) => f.type === 'events');
      expect(events['events'].map((e: AnyFrame) => e['data'])).toEqual(['new']);
      c.send({ type: 'subscribe', id: 4, session: 'other', from: 5 });
      expect(await c.next((f) => f.id === 4)).toMatchObject({ type: 'error', code: 'OFFSET_OUT_OF_RANGE' });
    });

    it('stores an append once per key and answers the retry with the original offset', async () => {
      const gw = await gateway();
      const c = await client(gw);
      c.send({ type: 'append', id: 1, session: 's', key: 'msg-1', kind: 'user', data: 'hi' });
      const first = await c.next((f) => f.id === 1);
      c.send({ type: 'append', id: 2, session: 's', key: 'msg-1', kind: 'user', data: 'hi' });
      const second = await c.next((f) => f.id === 2);
      expect(first).toMatchObject({ type: 'appended', offset: 1, duplicate: false });
      expect(second).toMatchObject({ type: 'appended', offset: 1, duplicate: true });
    });

    it('retention trims debug first, then reasoning, then text, keeps critical, and a resuming reader gets the trimmed ranges as gaps', async () => {
      const trims: DomainEvent[] = [];
      const gw = await gateway({
        store: new MemoryStore({ retention: { maxEvents: 8, maxBytes: 1 << 20, criticalFactor: 2 } }),
        telemetry: { emit: (e) => e.name === 'buffer.trimmed' && trims.push(e) },
      });
      const p = await client(gw);
      const { token } = await p.open('s', 'g'); // offset 1: gen.start (critical)
      // offsets 2..10: debug, reasoning, text, three times over
      const items = [0, 1, 2, 0, 1, 2, 0, 1, 2].map((priority, i) => ({ priority, kind: ['debug', 'reasoning', 'text'][priority], data: `c${i}` }));
      p.send({ type: 'chunks', token, seq: 0, items });
      await p.next((f) => f.type === 'ack' && f['seq'] === 8);
      // 10 events, limit 8: the two oldest debug chunks (offsets 2 and 5) go.
      const r = await client(gw);
      let read = await r.readAll('s', 0);
      expect(read.filter((i) => i.type === 'gap').map((g) => [g['from'], g['to']])).toEqual([[2, 2], [5, 5]]);
      // 3 more text chunks (11..13) -> 13 events: the last debug (8), then reasoning 3 and 6 go.
      p.send({ type: 'chunks', token, seq: 9, items: [9, 10, 11].map((i) => ({ priority: 2, kind: 'text', data: `c${i}` })) });
      await p.next((f) => f.type === 'ack' && f['seq'] === 11);
      read = await r.readAll('s', 1);
      expect(read.map((i) => (i.type === 'gap' ? `gap ${i['from']}-${i['to']}` : `${i['offset']}`))).toEqual([
        'gap 2-3', '4', 'gap 5-6', '7', 'gap 8-8', '9', '10', '11', '12', '13',
      ]);
      expect(trims.map((t) => (t as { priority: number }).priority)).toEqual([0, 0, 0, 1, 1]);
      // Text goes once nothing lower is left; critical events stay.
      p.send({ type: 'chunks', token, seq: 12, items: [{ priority: 2, data: 'c12' }, { priority: 2, data: 'c13' }] });
      await p.next((f) => f.type === 'ack' && f['seq'] === 13);
      read = await r.readAll('s', 0);
      const kept = read.filter((i) => i.type !== 'gap');
      expect(kept[0]).toMatchObject({ offset: 1, type: 'gen.start' });
      expect(kept.map((e) => e['offset'])).toEqual([1, 7, 10, 11, 12, 13, 14, 15]);
    });
  });

  describe('bad input', () => {
    it('answers garbage, wrong types, unknown frame types and oversized frames with typed errors and keeps the connection and other sessions working', async () => {
      const gw = await gateway({ limits: { maxFrameBytes: 4096 } });
      const bystander = await client(gw);
      const { token } = await bystander.open('other', 'g');
      const c = await client(gw);
      c.sendRaw(Buffer.from([0xc1, 0xff, 0x00, 0x13]));
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'BAD_FRAME', retryable: false });
      c.send({ type: 'chunk', token: 42, seq: 'x', data: 1 });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'BAD_FRAME' });
      c.send({ type: 'teleport', id: 5 });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'BAD_FRAME', id: 5 });
      c.send({ type: 'open', id: 6, session: 'bad session!', generation: 'g' });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'BAD_FRAME', id: 6 });
      c.send({ type: 'append', id: 9, session: 's', key: 'k', kind: 'user', data: 'x'.repeat(10_000) });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'FRAME_TOO_LARGE', details: { limit: 4096 } });
      c.send({ type: 'chunk', token: 'v1/1/other/g', seq: 0, data: 'not my token' });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'BAD_FRAME' });
      // Still usable, and the other session never noticed.
      c.send({ type: 'ping', id: 10 });
      expect(await c.next((f) => f.type === 'pong')).toMatchObject({ id: 10 });
      bystander.send({ type: 'chunk', token, seq: 0, data: 'fine' });
      expect(await bystander.next((f) => f.type === 'ack')).toMatchObject({ seq: 0 });
      expect((await gw.store.read('other', 0, 10)).items.filter((e) => e.type === 'chunk')).toHaveLength(1);
    });

    it('closes a connection whose first frame is not hello with HANDSHAKE_REQUIRED', async () => {
      const gw = await gateway();
      const c = await client(gw, SUBPROTOCOL_MSGPACK, false);
      c.send({ type: 'subscribe', session: 's', from: 0 });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'HANDSHAKE_REQUIRED' });
      expect((await c.waitClosed()).code).toBe(closeCodeOf('HANDSHAKE_REQUIRED'));
    });

    it('closes a connection that sends no hello within handshakeTimeoutMs', async () => {
      const gw = await gateway({ handshakeTimeoutMs: 50 });
      const c = await client(gw, SUBPROTOCOL_MSGPACK, false);
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'HANDSHAKE_REQUIRED' });
      expect((await c.waitClosed()).code).toBe(closeCodeOf('HANDSHAKE_REQUIRED'));
    });

    it('closes with UNSUPPORTED_PROTOCOL on a wrong protocol version or a missing subprotocol', async () => {
      const gw = await gateway();
      const c = await client(gw, SUBPROTOCOL_JSON, false);
      c.send({ type: 'hello', protocol: 2 });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'UNSUPPORTED_PROTOCOL' });
      expect((await c.waitClosed()).code).toBe(closeCodeOf('UNSUPPORTED_PROTOCOL'));
      const none = await client(gw, [], false);
      expect((await none.waitClosed()).code).toBe(closeCodeOf('UNSUPPORTED_PROTOCOL'));
    });

    it('refuses a hello without the configured token with UNAUTHORIZED', async () => {
      const gw = await gateway({ authToken: 'sesame' });
      const bad = await client(gw, SUBPROTOCOL_MSGPACK, false);
      bad.send({ type: 'hello', protocol: 1, token: 'guess' });
      expect(await bad.next((f) => f.type === 'error')).toMatchObject({ code: 'UNAUTHORIZED' });
      expect((await bad.waitClosed()).code).toBe(closeCodeOf('UNAUTHORIZED'));
      const good = await client(gw, SUBPROTOCOL_MSGPACK, false);
      good.send({ type: 'hello', protocol: 1, token: 'sesame' });
      expect(await good.next((f) => f.type === 'welcome')).toMatchObject({ protocol: 1 });
    });

    it('drops a frame past the transport hard cap without crashing the gateway', async () => {
      const gw = await gateway({ limits: { maxFrameBytes: 1024 } });
      const c = await client(gw);
      c.sendRaw(Buffer.alloc(64 * 1024, 1));
      // The transports legitimately differ here: ws answers with a close frame 1009 (Message Too
      // Big); uWebSockets.js closes the TCP connection without a close frame, so the client sees
      // 1006. Each must give exactly its own code: a crash or a hang fails either way.
      expect((await c.waitClosed()).code).toBe(transportName === 'ws' ? 1009 : 1006);
      const d = await client(gw);
      d.send({ type: 'ping', id: 1 });
      expect(await d.next((f) => f.type === 'pong')).toBeTruthy();
    });
  });

  describe('operations', () => {
    it('serves /metrics, /healthz and /readyz', async () => {
      const gw = await gateway();
      const get = (p: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          http.get(`http://127.0.0.1:${gw.port}${p}`, (res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          }).on('error', reject);
        });
      expect((await get('/healthz')).status).toBe(200);
      expect((await get('/readyz')).status).toBe(200);
      const metrics = await get('/metrics');
      expect(metrics.body).toContain('spool_persistence_success_total');
      expect(metrics.body).toContain('spool_connections_active');
    });

    it('close() closes sockets with the retryable SHUTTING_DOWN code and every acked chunk survives a restart on the same data dir', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-gw-'));
      cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
      const gw = await startGateway({ port: 0, data: dir, logger: quiet, transport });
      const c = await RawClient.connect(gw.url);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunks', token, seq: 0, items: Array.from({ length: 100 }, (_, i) => ({ data: i })) });
      await c.next((f) => f.type === 'ack' && f['seq'] === 99);
      await gw.close();
      expect((await c.waitClosed()).code).toBe(closeCodeOf('SHUTTING_DOWN'));
      const again = await startGateway({ port: 0, data: dir, logger: quiet, transport });
      cleanups.push(() => again.close());
      expect((await again.store.read('s', 0, 200)).items.filter((e) => e.type === 'chunk')).toHaveLength(100);
    });

    it('speaks the JSON subprotocol with the same shapes', async () => {
      const gw = await gateway();
      const ws = new WebSocket(gw.url, SUBPROTOCOL_JSON);
      cleanups.push(() => ws.close());
      await new Promise((r) => ws.once('open', r));
      const first = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
      ws.send(encodeFrame({ type: 'hello', protocol: 1 }, SUBPROTOCOL_JSON));
      expect(JSON.parse(await first)).toMatchObject({ type: 'welcome', protocol: 1 });
    });
  });
});
