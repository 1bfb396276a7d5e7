/**
 * The Durable Streams door as spool's: one log behind two doors, on real gateways (port 0) over
 * both transports. The protocol itself is the published conformance suite's
 * (streams-http.conformance.ts, `npm run test:ds`); these are the guarantees it cannot see:
 * WebSocket readers of the same session, retention gaps, producer state that survives a restart,
 * fencing, and scopes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { DurableStream, IdempotentProducer } from '@durable-streams/client';
import { SpoolClient, type SubscriptionItem } from '../../client';
import type { GatewayOptions } from '../config';
import { startGateway, type Gateway } from '../gateway';
import { signToken } from '../test-helpers/jwt';
import { TRANSPORT_NAMES, type TransportName } from '../transport';

const quiet = pino({ level: 'silent' });
const JSON_TYPE = { 'content-type': 'application/json' };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-ds-test-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function gateway(transport: TransportName, options: GatewayOptions = {}): Promise<{ gw: Gateway; base: string }> {
  const gw = await startGateway({ port: 0, data: tempDir(), logger: quiet, transport, streamsLongPollMs: 500, ...options });
  cleanups.push(() => gw.close());
  return { gw, base: `http://127.0.0.1:${gw.port}/v1/stream` };
}

function client(gw: Gateway, options: { token?: string } = {}): SpoolClient {
  const c = new SpoolClient({ url: gw.url, ...options });
  cleanups.push(() => c.close());
  return c;
}

/** Takes items from a subscription until `done` says so, or fails after `timeoutMs`. */
async function collect(sub: AsyncIterator<SubscriptionItem>, done: (items: SubscriptionItem[]) => boolean, timeoutMs = 30_000): Promise<SubscriptionItem[]> {
  const items: SubscriptionItem[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!done(items)) {
    const next = await Promise.race([sub.next(), new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now())).unref())]);
    if (next === 'timeout') throw new Error(`timed out after ${items.length} items`);
    if (next.done) break;
    items.push(next.value);
  }
  return items;
}

/** The JSON messages in the door's events of a subscription (ds.json and ds.close payloads). */
function messagesOf(items: readonly SubscriptionItem[]): unknown[] {
  const out: unknown[] = [];
  for (const item of items) {
    if (item.type !== 'append') continue;
    if (item.kind === 'ds.json') out.push(...(item.data as unknown[]));
    if (item.kind === 'ds.close' && item.data !== null) out.push(...((item.data as { data: unknown[] }).data ?? []));
  }
  return out;
}

describe.each(TRANSPORT_NAMES)('Durable Streams door over %s', (transport) => {
  test("an IdempotentProducer's items reach a spool SDK subscriber and an SSE reader of the same session once each, in order", async () => {
    const { gw, base } = await gateway(transport);
    const stream = await DurableStream.create({ url: `${base}/chat-1`, contentType: 'application/json' });
    const sub = client(gw).subscribe('chat-1', { from: 0 });
    const sse = await stream.stream<{ i: number }>({ offset: '-1', live: 'sse' });
    const sseItems: Array<{ i: number }> = [];
    const sseDone = (async () => {
      for await (const item of sse.jsonStream()) sseItems.push(item);
    })();
    const N = 3000;
    const errors: Error[] = [];
    const producer = new IdempotentProducer(stream, 'writer-1', { lingerMs: 2, maxBatchBytes: 4096, onError: (e) => errors.push(e) });
    for (let i = 0; i < N; i++) producer.append(JSON.stringify({ i }));
    await producer.close();
    expect(errors).toEqual([]);

    const items = await collect(sub, (got) => got.some((e) => e.type === 'append' && e.kind === 'ds.close'));
    const expected = Array.from({ length: N }, (_, i) => ({ i }));
    expect(messagesOf(items)).toEqual(expected);
    // Every offset once, in order: the door's writes are plain events of the session's log.
    const offsets = items.map((e) => (e.type === 'gap' ? e.from : e.offset));
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);
    await sseDone;
    expect(sse.streamClosed).toBe(true);
    expect(sseItems).toEqual(expected);
  });

  test('a session written through the WebSocket SDK reads over HTTP as a JSON stream of its events; a long-poll at its tail answers the next write', async () => {
    const { gw, base } = await gateway(transport);
    const c = client(gw);
    const gen = c.generation('ws-chat');
    gen.write('hello ');
    gen.write('world');
    await gen.finish();
    const first = await fetch(`${base}/ws-chat`);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('application/json');
    const events = (await first.json()) as Array<{ type: string; data?: unknown; offset: number }>;
    expect(events.map((e) => e.type)).toEqual(['gen.start', 'chunk', 'chunk', 'gen.end']);
    expect(events.filter((e) => e.type === 'chunk').map((e) => e.data)).toEqual(['hello ', 'world']);
    const tail = first.headers.get('stream-next-offset') as string;

    const poll = fetch(`${base}/ws-chat?offset=${tail}&live=long-poll`);
    // The long-poll is waiting at the tail (a HEAD shows the same tail) when the append lands.
    expect((await fetch(`${base}/ws-chat`, { method: 'HEAD' })).headers.get('stream-next-offset')).toBe(tail);
    await c.append('ws-chat', { key: 'u-1', kind: 'user', data: { text: 'next' } });
    const answer = await poll;
    expect(answer.status).toBe(200);
    const next = (await answer.json()) as Array<{ type: string; key?: string; data?: unknown }>;
    expect(next).toEqual([expect.objectContaining({ type: 'append', key: 'u-1', data: { text: 'next' } })]);
    // The WebSocket door's sessions are read-only over HTTP: it writes only streams it created.
    const post = await fetch(`${base}/ws-chat`, { method: 'POST', headers: JSON_TYPE, body: '{}' });
    expect(post.status).toBe(405);
  });

  test('an offset whose data retention trimmed answers 410, while a WebSocket reader of the session gets a gap', async () => {
    const { gw, base } = await gateway(transport, { retention: { maxEvents: 10 } });
    expect((await fetch(`${base}/trimmed`, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201);
    for (let i = 0; i < 30; i++) {
      const r = await fetch(`${base}/trimmed`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `<${i}>` });
      expect(r.status).toBe(204);
    }
    const gone = await fetch(`${base}/trimmed?offset=-1`);
    expect(gone.status).toBe(410);
    // Reading on from what retention kept works.
    const head = await fetch(`${base}/trimmed`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    const items = await collect(client(gw).subscribe('trimmed', { from: 0 }), (got) => got.length > 0 && got[got.length - 1]?.type !== 'gap' && (got[got.length - 1] as { offset: number }).offset >= 31);
    expect(items[0]).toEqual(expect.objectContaining({ type: 'append', kind: 'ds.meta' }));
    expect(items[1]).toEqual(expect.objectContaining({ type: 'gap', reason: 'trimmed' }));
    const kept = items.filter((e) => e.type === 'append' && e.kind === 'ds.text').map((e) => (e as { data: string }).data);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept[kept.length - 1]).toBe('<29>');
    const gap = items[1] as { to: number };
    const after = await fetch(`${base}/trimmed?offset=0000000000000000_${String(gap.to).padStart(16, '0')}`);
    expect(after.status).toBe(200);
    expect(await after.text()).toBe(kept.join(''));
  });

  test('producer state lives in the log: after a restart on the same data, a stale epoch is still fenced (403, nothing stored) and a retry is still a duplicate', async () => {
    const dir = tempDir();
    const first = await startGateway({ port: 0, data: dir, logger: quiet, transport });
    const url = `http://127.0.0.1:${first.port}/v1/stream/fenced`;
    const post = (body: string, epoch: number, seq: number, base = url): Promise<Response> =>
      fetch(base, { method: 'POST', headers: { 'content-type': 'text/plain', 'producer-id': 'p', 'producer-epoch': String(epoch), 'producer-seq': String(seq) }, body });
    expect((await fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201);
    expect((await post('a', 0, 0)).status).toBe(200);
    expect((await post('b', 1, 0)).status).toBe(200);
    await first.close();

    const second = await startGateway({ port: 0, data: dir, logger: quiet, transport });
    cleanups.push(() => second.close());
    const again = `http://127.0.0.1:${second.port}/v1/stream/fenced`;
    const zombie = await post('zombie', 0, 1, again);
    expect(zombie.status).toBe(403);
    expect(zombie.headers.get('producer-epoch')).toBe('1');
    const retry = await post('b', 1, 0, again);
    expect(retry.status).toBe(204);
    expect(retry.headers.get('producer-seq')).toBe('0');
    const gap = await post('d', 1, 2, again);
    expect(gap.status).toBe(409);
    expect(gap.headers.get('producer-expected-seq')).toBe('1');
    expect(await (await fetch(again)).text()).toBe('ab');
    // Counted with the WebSocket door's fenced and duplicate writes.
    expect(second.metrics.fencedWrites.get()).toBe(1);
    expect(second.metrics.duplicateWrites.get()).toBe(1);
  });

  test('requests are authorized against the token scopes like frames: no token 401, read-only scope cannot write (403), nothing stored', async () => {
    const secret = 'x'.repeat(40);
    const { base } = await gateway(transport, { jwtSecret: secret });
    const token = (read: string[], write: string[]): Promise<string> => signToken({ sub: 'u', spool: { read, write, takeover: [], admin: false } }, { key: secret });
    const writer = await token(['doc-*'], ['doc-*']);
    const reader = await token(['doc-*'], []);
    const auth = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
    expect((await fetch(`${base}/doc-1`, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(401);
    expect((await fetch(`${base}/doc-1`, { method: 'PUT', headers: { 'content-type': 'text/plain', ...auth(writer) }, body: 'one' })).status).toBe(201);
    const refused = await fetch(`${base}/doc-1`, { method: 'POST', headers: { 'content-type': 'text/plain', ...auth(reader) }, body: 'two' });
    expect(refused.status).toBe(403);
    expect((await fetch(`${base}/other`, { headers: auth(writer) })).status).toBe(403);
    const read = await fetch(`${base}/doc-1`, { headers: auth(reader) });
    expect(read.status).toBe(200);
    expect(await read.text()).toBe('one');
    // Shared caches may not keep what a token was needed for.
    expect(read.headers.get('cache-control')).toMatch(/^private/);
  });

  test('with allowedOrigins, a browser request from another origin is refused (403, preflight too) and an allowed one is answered for its origin only', async () => {
    const { base } = await gateway(transport, { allowedOrigins: ['https://app.example.com'] });
    expect((await fetch(`${base}/page`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'x' })).status).toBe(201);
    const foreign = await fetch(`${base}/page`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${base}/page`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(403);
    const allowed = await fetch(`${base}/page`, { headers: { origin: 'https://app.example.com' } });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(allowed.headers.get('vary')).toBe('origin');
    expect(await allowed.text()).toBe('x');
    // Not from a browser page (no Origin): as without an allowlist.
    expect((await fetch(`${base}/page`)).status).toBe(200);
  });
});
