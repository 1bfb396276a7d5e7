/**
 * The admin API's routes against a real gateway (LMDB, real sockets for the producer and the
 * reader whose sessions it operates on). The listener that carries admin HTTP is tested with it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import type { AdminRequest } from './admin-api';
import { startGateway, type Gateway } from './index';
import { RawClient } from './test-helpers/raw-client';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function gateway(logger = pino({ level: 'silent' })): Promise<Gateway> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-admin-'));
  const store = openLmdbStore({ path: dir });
  const gw = await startGateway({ port: 0, store, logger });
  cleanups.push(async () => {
    await gw.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return gw;
}

async function client(gw: Gateway): Promise<RawClient> {
  const c = await RawClient.connect(gw.url, SUBPROTOCOL_MSGPACK);
  cleanups.push(() => c.close());
  return c;
}

function request(method: string, target: string, body?: unknown): AdminRequest {
  const url = new URL(target, 'http://admin');
  return { method, path: url.pathname, query: url.searchParams, body };
}

describe('admin API', () => {
  it('lists sessions page by page, with readers on this process', async () => {
    const gw = await gateway();
    for (const id of ['a', 'b', 'c']) await gw.store.append(id, [{ op: 'append', key: 'k', kind: 'user', priority: 3, ts: 1, data: 'x', size: 1 }]);
    const reader = await client(gw);
    reader.send({ type: 'subscribe', id: 1, session: 'b', from: 'start' });
    await reader.next((f) => f.type === 'live');
    const first = await gw.admin.handle(request('GET', '/admin/sessions?limit=2'));
    expect(first).toMatchObject({ status: 200, body: { sessions: [{ id: 'a', head: 1, readersHere: 0 }, { id: 'b', head: 1, readersHere: 1 }] } });
    const cursor = (first?.body as { cursor: string }).cursor;
    expect(await gw.admin.handle(request('GET', `/admin/sessions?limit=2&cursor=${encodeURIComponent(cursor)}`))).toEqual({
      status: 200,
      body: { sessions: [{ id: 'c', epoch: 0, head: 1, active: null, count: 1, bytes: 1, readersHere: 0 }], cursor: null },
    });
    expect(await gw.admin.handle(request('GET', '/admin/sessions?limit=0'))).toMatchObject({ status: 400, body: { error: { code: 'BAD_FRAME' } } });
  }, 30_000);

  it('inspects a session; 404 for one that does not exist or a route that does not', async () => {
    const gw = await gateway();
    const producer = await client(gw);
    const opened = await producer.open('chat', 'g1');
    producer.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a', priority: 0 }, { data: 'b' }] });
    await producer.next((f) => f.type === 'ack');
    expect(await gw.admin.handle(request('GET', '/admin/sessions/chat'))).toMatchObject({
      status: 200,
      body: { id: 'chat', head: 3, epoch: 1, active: { id: 'g1', lastSeq: 1 }, retained: [1, 0, 1, 1], ended: [], here: { loaded: true, readers: 0, queueDepth: 0 } },
    });
    expect(await gw.admin.handle(request('GET', '/admin/sessions/nobody'))).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    expect(await gw.admin.handle(request('PATCH', '/admin/sessions/chat'))).toMatchObject({ status: 404 });
    expect(await gw.admin.handle(request('GET', '/metrics'))).toBeNull();
  }, 30_000);

  it('ends a stuck generation with the status asked for; the producer learns it; a second end is GENERATION_CLOSED', async () => {
    const gw = await gateway();
    const producer = await client(gw);
    const reader = await client(gw);
    reader.send({ type: 'subscribe', id: 1, session: 'chat', from: 'start' });
    await reader.next((f) => f.type === 'live');
    const opened = await producer.open('chat', 'g1');
    producer.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a' }] });
    await producer.next((f) => f.type === 'ack');
    expect(await gw.admin.handle(request('POST', '/admin/sessions/chat/generations/g1/end', { status: 'error', error: 'stuck, ended by ops' }))).toEqual({
      status: 200,
      body: { generation: 'g1', status: 'error', offset: 3 },
    });
    const end = await reader.next((f) => f.type === 'events' && (f['events'] as { type: string }[]).some((e) => e.type === 'gen.end'));
    expect((end['events'] as unknown[]).at(-1)).toMatchObject({ type: 'gen.end', generationId: 'g1', seq: 1, status: 'error', error: 'stuck, ended by ops' });
    producer.send({ type: 'chunks', token: opened['token'], seq: 1, items: [{ data: 'late' }] });
    expect(await producer.next((f) => f.type === 'error')).toMatchObject({ code: 'GENERATION_CLOSED' });
    expect(await gw.admin.handle(request('POST', '/admin/sessions/chat/generations/g1/end', { status: 'done' }))).toMatchObject({ status: 409, body: { error: { code: 'GENERATION_CLOSED' } } });
    expect(await gw.admin.handle(request('POST', '/admin/sessions/chat/generations/g1/end', { status: 'fenced' }))).toMatchObject({ status: 400 });
  }, 30_000);

  it('resets and deletes through the session writer; 404 for a session that does not exist', async () => {
    const gw = await gateway();
    await gw.store.append('chat', [{ op: 'append', key: 'k', kind: 'user', priority: 3, ts: 1, data: 'x', size: 1 }]);
    expect(await gw.admin.handle(request('POST', '/admin/sessions/chat/reset'))).toEqual({ status: 200, body: { status: 'reset', head: 2, cleared: 1, epoch: 1, fenced: null } });
    expect(await gw.admin.handle(request('DELETE', '/admin/sessions/chat'))).toEqual({ status: 200, body: { status: 'deleted', head: 2, epoch: 1, fenced: null } });
    expect(await gw.admin.handle(request('DELETE', '/admin/sessions/chat'))).toMatchObject({ status: 404 });
    expect(await gw.admin.handle(request('POST', '/admin/sessions/chat/reset'))).toMatchObject({ status: 404 });
    expect(await gw.admin.handle(request('GET', '/admin/sessions/%E0%A4%A'))).toMatchObject({ status: 400, body: { error: { code: 'BAD_FRAME' } } });
  }, 30_000);

  it('toggles: read-only refuses new generations and appends (READ_ONLY, retryable) while an open generation finishes and readers read', async () => {
    const gw = await gateway();
    const producer = await client(gw);
    const opened = await producer.open('chat', 'g1');
    expect(await gw.admin.handle(request('PUT', '/admin/toggles', { readOnly: true }))).toEqual({ status: 200, body: { syncAppend: false, readOnly: true, degradeWatermark: 512, maxReaderBufferedBytes: 1024 * 1024, slowReaderTimeoutMs: 10_000, logLevel: 'silent' } });
    const metrics = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    expect(metrics).toMatch(/^spool_toggle_read_only 1$/m);
    // Open ones go on and finish.
    producer.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a' }] });
    await producer.next((f) => f.type === 'ack');
    producer.send({ type: 'finish', id: 5, token: opened['token'], seq: 1, status: 'done' });
    expect(await producer.next((f) => f.id === 5)).toMatchObject({ type: 'finished', status: 'done' });
    // Nothing new starts.
    expect(await producer.open('chat', 'g2')).toMatchObject({ type: 'error', code: 'READ_ONLY', retryable: true });
    producer.send({ type: 'append', id: 6, session: 'chat', key: 'k1', kind: 'user', data: 'hi' });
    expect(await producer.next((f) => f.id === 6)).toMatchObject({ type: 'error', code: 'READ_ONLY' });
    // Reads are served.
    const reader = await client(gw);
    reader.send({ type: 'subscribe', id: 1, session: 'chat', from: 'start' });
    await reader.next((f) => f.type === 'live');
    expect(await gw.admin.handle(request('PUT', '/admin/toggles', { readOnly: false }))).toMatchObject({ status: 200, body: { readOnly: false } });
    expect(await producer.open('chat', 'g2')).toMatchObject({ type: 'opened' });
  }, 30_000);

  it('toggles: synchronous append mode acks every chunk from a store call of its own; bad toggles are refused by name', async () => {
    const gw = await gateway();
    expect(await gw.admin.handle(request('PUT', '/admin/toggles', { syncAppend: true }))).toMatchObject({ status: 200, body: { syncAppend: true } });
    const producer = await client(gw);
    const opened = await producer.open('chat', 'g1');
    producer.send({ type: 'chunks', token: opened['token'], seq: 0, items: Array.from({ length: 10 }, (_, i) => ({ data: `c${i}` })) });
    const acks = [];
    for (let seq = 0; seq < 10; seq++) acks.push(await producer.next((f) => f.type === 'ack'));
    expect(acks.map((ack) => ack['seq'])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const bad of [{ syncAppend: 'yes' }, { degradeWatermark: -1 }, { lingerMs: 5 }, { logLevel: 'loud' }, { maxReaderBufferedBytes: 0 }, { slowReaderTimeoutMs: 1.5 }, [1]]) {
      expect(await gw.admin.handle(request('PUT', '/admin/toggles', bad))).toMatchObject({ status: 400, body: { error: { code: 'BAD_FRAME' } } });
    }
    expect(await gw.admin.handle(request('GET', '/admin/toggles'))).toEqual({ status: 200, body: { syncAppend: true, readOnly: false, degradeWatermark: 512, maxReaderBufferedBytes: 1024 * 1024, slowReaderTimeoutMs: 10_000, logLevel: 'silent' } });
  }, 30_000);

  it('toggles: the log level changes without a restart (debug lines appear, then stop), and is a gauge', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const gw = await gateway(pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }));
    const c = await client(gw);
    const refusedFrames = (): number => lines.filter((line) => line['msg'] === 'error sent').length;
    const gauge = async (): Promise<string | undefined> => /^spool_toggle_log_level (\S+)$/m.exec(await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text())?.[1];
    expect(await gauge()).toBe('30');
    // A refused frame is logged at debug: nothing at info.
    c.send({ type: 'subscribe', id: 1, session: '' });
    await c.next((f) => f.type === 'error' && f['id'] === 1);
    expect(refusedFrames()).toBe(0);
    expect(await gw.admin.handle(request('PUT', '/admin/toggles', { logLevel: 'debug' }))).toMatchObject({ status: 200, body: { logLevel: 'debug' } });
    expect(await gauge()).toBe('20');
    c.send({ type: 'subscribe', id: 2, session: '' });
    await c.next((f) => f.type === 'error' && f['id'] === 2);
    expect(refusedFrames()).toBe(1);
    expect(lines.find((line) => line['msg'] === 'error sent')).toMatchObject({ code: 'BAD_FRAME', requestId: 2 });
    expect(await gw.admin.handle(request('PUT', '/admin/toggles', { logLevel: 'warn' }))).toMatchObject({ status: 200, body: { logLevel: 'warn' } });
    c.send({ type: 'subscribe', id: 3, session: '' });
    await c.next((f) => f.type === 'error' && f['id'] === 3);
    expect(refusedFrames()).toBe(1);
    expect(await gauge()).toBe('40');
  }, 30_000);

  it('reads a session page by page, and with wait answers as soon as something new is written', async () => {
    const gw = await gateway();
    const item = (key: string) => ({ op: 'append' as const, key, kind: 'user', priority: 3 as const, ts: 1, data: key, size: 1 });
    await gw.store.append('chat', [item('a'), item('b'), item('c')]);
    expect(await gw.admin.handle(request('GET', '/admin/sessions/chat/events?after=1&limit=1'))).toMatchObject({ status: 200, body: { items: [{ offset: 2, key: 'b' }], head: 3, through: 2 } });
    const waiting = gw.admin.handle(request('GET', '/admin/sessions/chat/events?after=3&wait=20000'));
    await gw.store.append('chat', [item('d')]);
    expect(await waiting).toMatchObject({ status: 200, body: { items: [{ offset: 4, key: 'd' }], head: 4 } });
    expect(await gw.admin.handle(request('GET', '/admin/sessions/chat/events?after=4&wait=1'))).toMatchObject({ status: 200, body: { items: [], head: 4 } });
    expect(await gw.admin.handle(request('GET', '/admin/sessions/chat/events?after=-1'))).toMatchObject({ status: 400 });
  }, 30_000);
});
