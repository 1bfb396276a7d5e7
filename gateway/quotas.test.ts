/**
 * Per-identity quotas over real WebSockets on both transports (edge/quotas.ts, PROTOCOL §12.2):
 * the attack (129 critical appends of 1 MiB from one identity) is refused before the
 * session is full and another identity still writes; a rate quota refuses with retryAfterMs and
 * refills on the gateway's (test) clock; a refused frame stores nothing; open gateways count per
 * connection; the SDK surfaces both codes; the Durable Streams door answers 429 / 507.
 */
import { SpoolClient } from '../client';
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';
import type { SessionId } from '../protocol/types';
import { jwtHarness } from './test-helpers/jwt-gateway';
import type { AnyFrame, RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES } from './transport';

const h = jwtHarness();

/** Sends `frame` with request id `id` and returns its answer (the reply, or an error naming the id). */
async function ask(c: RawClient, frame: Record<string, unknown>, id: number): Promise<AnyFrame> {
  c.send({ ...frame, id });
  return c.next((f) => f['id'] === id && f.type !== 'pong');
}

/** A connection welcomed with a JWT for `sub` writing to `shared:*`, with `quota` as its spool.quota. */
async function writer(gw: Awaited<ReturnType<typeof h.gateway>>, sub: string, quota?: Record<string, number>): Promise<RawClient> {
  const token = await h.sign({ sub, spool: { read: ['*'], write: ['shared:*'], ...(quota ? { quota } : {}) } }, { expIn: 3600 });
  const c = await h.hello(gw, token);
  await c.next((f) => f.type === 'welcome');
  return c;
}

describe.each(TRANSPORT_NAMES)('over %s', (transport) => {
  it('129 critical appends of 1 MiB from one identity: refused with SESSION_QUOTA_EXCEEDED before the session is full; another identity still writes', async () => {
    // Gateway defaults: criticalBytesPerSession 32 MiB, a quarter of the session's critical room
    // (retention.maxBytes 64 MiB × criticalFactor 2).
    const gw = await h.gateway(transport, { jwtSecret: h.keys.secret });
    const session = 'shared:attacked';
    const mallory = await writer(gw, 'mallory');
    const MiB = 'x'.repeat(1024 * 1024 - 256); // within maxFrameBytes with the frame around it
    const answers: AnyFrame[] = [];
    for (let i = 0; i < 129; i++) answers.push(await ask(mallory, { type: 'append', session, key: `k${i}`, kind: 'blob', data: MiB }, 10 + i));
    const accepted = answers.filter((a) => a.type === 'appended').length;
    const refused = answers.filter((a) => a.type === 'error');
    expect(accepted).toBe(32);
    expect(refused).toHaveLength(97);
    for (const error of refused) {
      expect(error).toMatchObject({ code: 'SESSION_QUOTA_EXCEEDED', retryable: false, ref: session, details: { quota: 'criticalBytesPerSession', session } });
    }
    // Nothing of a refused append was stored, and the session is far from SESSION_FULL.
    const meta = await gw.store.meta(session as SessionId);
    expect(meta.head).toBe(32);
    expect(meta.bytes).toBeLessThan(33 * 1024 * 1024);
    // Another identity writes its critical events; mallory may still write what can be trimmed.
    const alice = await writer(gw, 'alice');
    expect(await ask(alice, { type: 'append', session, key: 'alice-1', kind: 'user.message', data: 'hello' }, 1000)).toMatchObject({ type: 'appended', offset: 33 });
    expect(await ask(mallory, { type: 'append', session, key: 'low', kind: 'log', priority: 1, data: 'ok' }, 1001)).toMatchObject({ type: 'appended', offset: 34 });
  });

  it('a rate quota refuses with QUOTA_EXCEEDED and retryAfterMs, stores nothing of the refused frame, and refills on the clock', async () => {
    let now = Date.now();
    const gw = await h.gateway(transport, { jwtSecret: h.keys.secret, clock: () => now });
    const session = 'shared:rate';
    const c = await writer(gw, 'bob', { bytesPerMinute: 4096 });
    const data = 'd'.repeat(1000);
    const append = (key: string, id: number): Promise<AnyFrame> => ask(c, { type: 'append', session, key, kind: 'note', priority: 1, data }, id);
    expect(await append('a', 1)).toMatchObject({ type: 'appended' });
    expect(await append('b', 2)).toMatchObject({ type: 'appended' });
    expect(await append('c', 3)).toMatchObject({ type: 'appended' });
    const refusal = await append('d', 4);
    expect(refusal).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED', retryable: true, ref: session, details: { quota: 'bytesPerMinute', limit: 4096 } });
    const wait = refusal['details']['retryAfterMs'] as number;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(60_000);
    expect((await gw.store.meta(session as SessionId)).head).toBe(3);
    now += wait - 1;
    expect(await append('d', 5)).toMatchObject({ code: 'QUOTA_EXCEEDED' });
    now += 1;
    expect(await append('d', 6)).toMatchObject({ type: 'appended', offset: 4 });

    // Chunks: the refused frame's seq is not consumed; resent once the quota has room, it is acked.
    const opened = await ask(c, { type: 'open', session, generation: 'g1' }, 7);
    expect(opened.type).toBe('opened');
    now += 60_000;
    const token = opened['token'] as string;
    c.send({ type: 'chunks', token, seq: 0, items: [{ data: 'c'.repeat(3000) }, { data: 'c'.repeat(1000) }] });
    expect(await c.next((f) => f.type === 'ack')).toMatchObject({ generation: 'g1', seq: 1 });
    c.send({ type: 'chunk', token, seq: 2, data: 'late' });
    const chunkRefusal = await c.next((f) => f.type === 'error');
    expect(chunkRefusal).toMatchObject({ code: 'QUOTA_EXCEEDED', ref: 'g1' });
    now += chunkRefusal['details']['retryAfterMs'] as number;
    c.send({ type: 'chunk', token, seq: 2, data: 'late' });
    expect(await c.next((f) => f.type === 'ack' && f['seq'] === 2)).toMatchObject({ generation: 'g1' });
    const events = await c.readAll(session, 0);
    expect(events.filter((e) => e['type'] === 'chunk').map((e) => e['seq'])).toEqual([0, 1, 2]);
  });

  it('a token may lift a quota (0: no limit), and a malformed spool.quota refuses the token', async () => {
    const gw = await h.gateway(transport, { jwtSecret: h.keys.secret, quotaCriticalEventsPerSession: 2 });
    const session = 'shared:lifted';
    const limited = await writer(gw, 'carol');
    expect(await ask(limited, { type: 'append', session, key: 'a', kind: 'm', data: 1 }, 2)).toMatchObject({ type: 'appended' });
    expect(await ask(limited, { type: 'append', session, key: 'b', kind: 'm', data: 1 }, 3)).toMatchObject({ type: 'appended' });
    expect(await ask(limited, { type: 'append', session, key: 'c', kind: 'm', data: 1 }, 4)).toMatchObject({ code: 'SESSION_QUOTA_EXCEEDED', details: { quota: 'criticalEventsPerSession', limit: 2 } });
    const lifted = await writer(gw, 'dave', { criticalEventsPerSession: 0 });
    for (let i = 0; i < 5; i++) expect(await ask(lifted, { type: 'append', session, key: `d${i}`, kind: 'm', data: 1 }, 10 + i)).toMatchObject({ type: 'appended' });
    const bad = await h.hello(gw, await h.sign({ sub: 'eve', spool: { write: ['*'], quota: { bytesPerMinute: -1 } } }));
    expect(await bad.next((f) => f.type === 'error')).toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('open gateways count per connection: one connection at its cap does not stop another', async () => {
    const gw = await h.gateway(transport, { quotaCriticalEventsPerSession: 3 });
    const session = 'open:s';
    const first = await h.hello(gw, undefined);
    await first.next((f) => f.type === 'welcome');
    // An open counts two critical events (its gen.start and the gen.end to come).
    const opened = await ask(first, { type: 'open', session, generation: 'g' }, 2);
    expect(opened).toMatchObject({ type: 'opened' });
    expect(await ask(first, { type: 'append', session, key: 'a', kind: 'm', data: 1 }, 3)).toMatchObject({ type: 'appended' });
    expect(await ask(first, { type: 'append', session, key: 'b', kind: 'm', data: 1 }, 4)).toMatchObject({ code: 'SESSION_QUOTA_EXCEEDED' });
    const second = await h.hello(gw, undefined, SUBPROTOCOL_MSGPACK);
    await second.next((f) => f.type === 'welcome');
    expect(await ask(second, { type: 'append', session, key: 'b', kind: 'm', data: 1 }, 2)).toMatchObject({ type: 'appended' });
    // At its cap, the connection still finishes its generation: the open counted its gen.end.
    expect(await ask(first, { type: 'open', session, generation: 'g2' }, 5)).toMatchObject({ code: 'SESSION_QUOTA_EXCEEDED' });
    expect(await ask(first, { type: 'finish', token: opened['token'], seq: 0 }, 6)).toMatchObject({ type: 'finished', status: 'done' });
  });

  it('the SDK: a refused append rejects with SESSION_QUOTA_EXCEEDED; one over a rate is retried after retryAfterMs and resolves', async () => {
    let now = Date.now();
    const gw = await h.gateway(transport, { jwtSecret: h.keys.secret, clock: () => now });
    const token = await h.sign({ sub: 'sdk', spool: { write: ['shared:*'], quota: { criticalEventsPerSession: 1, bytesPerMinute: 1500 } } }, { expIn: 3600 });
    let sawRefusal: () => void = () => {};
    const refusedOnce = new Promise<void>((resolve) => (sawRefusal = resolve));
    const logger = { warn: (message: string) => (message.includes('QUOTA_EXCEEDED') ? sawRefusal() : undefined) };
    const client = new SpoolClient({ url: gw.url, token, logger, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    h.defer(() => client.close());
    await expect(client.append('shared:sdk', { key: 'one', kind: 'm', data: 'x' })).resolves.toMatchObject({ offset: 1 });
    await expect(client.append('shared:sdk', { key: 'two', kind: 'm', data: 'x' })).rejects.toMatchObject({ code: 'SESSION_QUOTA_EXCEEDED', retryable: false });
    // Over the byte rate: refused (retryable) until the gateway's clock moves on; the SDK's retry then lands.
    const pending = client.append('shared:sdk', { key: 'big', kind: 'm', priority: 1, data: 'y'.repeat(1900) });
    await refusedOnce;
    now += 60_000;
    await expect(pending).resolves.toMatchObject({ offset: 2 });
  });

  it('Durable Streams writes count against the same quotas: 429 with Retry-After over a rate, 507 past a per-session cap, nothing stored', async () => {
    let now = Date.now();
    const gw = await h.gateway(transport, { jwtSecret: h.keys.secret, clock: () => now });
    const base = `http://127.0.0.1:${gw.port}/v1/stream`;
    const token = await h.sign({ sub: 'http-writer', spool: { read: ['*'], write: ['shared:*'], quota: { bytesPerMinute: 1000, criticalEventsPerSession: 3 } } }, { expIn: 3600 });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'text/plain' };
    expect((await fetch(`${base}/shared:http`, { method: 'PUT', headers })).status).toBe(201);
    expect((await fetch(`${base}/shared:http`, { method: 'POST', headers, body: 'a'.repeat(600) })).status).toBe(204);
    const over = await fetch(`${base}/shared:http`, { method: 'POST', headers, body: 'b'.repeat(600) });
    expect(over.status).toBe(429);
    expect(await over.text()).toMatch(/^QUOTA_EXCEEDED/);
    // 200 bytes over the allowance at 1000 a minute: 12 s.
    expect(over.headers.get('retry-after')).toBe('12');
    const tail = (await fetch(`${base}/shared:http`, { method: 'HEAD', headers })).headers.get('stream-next-offset');
    now += 12_000;
    expect((await fetch(`${base}/shared:http`, { method: 'POST', headers, body: 'b'.repeat(600) })).status).toBe(204);
    expect((await fetch(`${base}/shared:http`, { method: 'HEAD', headers })).headers.get('stream-next-offset')).not.toBe(tail);
    // Critical records in the session: the PUT's metadata (1), a repeated PUT (2), the close (3); a fourth is refused.
    expect((await fetch(`${base}/shared:http`, { method: 'PUT', headers })).status).toBe(200);
    expect((await fetch(`${base}/shared:http`, { method: 'POST', headers: { ...headers, 'stream-closed': 'true' } })).status).toBe(204);
    const full = await fetch(`${base}/shared:http`, { method: 'PUT', headers: { ...headers, 'stream-closed': 'true' } });
    expect(full.status).toBe(507);
    expect(await full.text()).toMatch(/^SESSION_QUOTA_EXCEEDED/);
    // Another session has its own room.
    expect((await fetch(`${base}/shared:http2`, { method: 'PUT', headers })).status).toBe(201);
  });

  it('HTTP writes without identities count per client address, read from X-Forwarded-For behind a trusted proxy', async () => {
    const gw = await h.gateway(transport, { quotaBytesPerMinute: 1000, trustProxy: ['127.0.0.1'] });
    const url = `http://127.0.0.1:${gw.port}/v1/stream/open-http`;
    const from = (client: string): Record<string, string> => ({ 'content-type': 'text/plain', 'x-forwarded-for': client });
    expect((await fetch(url, { method: 'PUT', headers: from('198.51.100.1') })).status).toBe(201);
    expect((await fetch(url, { method: 'POST', headers: from('198.51.100.1'), body: 'a'.repeat(900) })).status).toBe(204);
    expect((await fetch(url, { method: 'POST', headers: from('198.51.100.1'), body: 'a'.repeat(900) })).status).toBe(429);
    expect((await fetch(url, { method: 'POST', headers: from('198.51.100.2'), body: 'a'.repeat(900) })).status).toBe(204);
  });

  it('a chunk resent on the connection that sent it counts once', async () => {
    // A clock that stands still: nothing refills, so a resend counted again would pass 3000 bytes.
    const now = Date.now();
    const gw = await h.gateway(transport, { jwtSecret: h.keys.secret, clock: () => now });
    const c = await writer(gw, 'resender', { bytesPerMinute: 3000 });
    const opened = await ask(c, { type: 'open', session: 'shared:resend', generation: 'g' }, 2);
    const frame = { type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'r'.repeat(1000) }] };
    for (let i = 0; i < 3; i++) {
      c.send(frame);
      expect(await c.next((f) => f.type === 'ack' || f.type === 'error')).toMatchObject({ type: 'ack', seq: 0 });
    }
    c.send({ ...frame, seq: 1 });
    expect(await c.next((f) => f.type === 'ack' || f.type === 'error')).toMatchObject({ type: 'ack', seq: 1 });
  });
});

