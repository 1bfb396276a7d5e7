/**
 * The admin listener (`adminPort`): health and readiness open, /metrics and the admin API behind
 * the admin credential (admin token; an admin JWT in JWT mode; the gateway's own mode without an
 * admin token), /metrics gone from the public port, refused credentials throttled, and its router
 * serving routes added by method and pattern with their parsed JSON body. Real HTTP on port 0.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import pino from 'pino';
import { MemoryStore } from '../store/memory';
import { startGateway, type Gateway, type GatewayOptions } from './index';
import { signToken } from './test-helpers/jwt';
import { jwtHarness } from './test-helpers/jwt-gateway';
import { RawClient } from './test-helpers/raw-client';

const h = jwtHarness();

function gateway(options: GatewayOptions): Promise<Gateway> {
  return h.gateway('ws', { adminPort: 0, ...options });
}

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
  readonly json: any;
  readonly headers: Headers;
}

async function call(port: number | undefined, path: string, init: { token?: string; method?: string; body?: string } = {}): Promise<Answer> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: init.method ?? 'GET',
    headers: init.token !== undefined ? { authorization: `Bearer ${init.token}` } : {},
    ...(init.body !== undefined ? { body: init.body } : {}),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, contentType: response.headers.get('content-type'), text, json, headers: response.headers };
}

describe('with an admin token', () => {
  it('serves /healthz and /readyz to anyone, /metrics only with the token, and no /metrics on the public port', async () => {
    const gw = await gateway({ adminToken: 'admin-secret' });
    expect(gw.adminPort).toBeGreaterThan(0);
    expect(gw.adminPort).not.toBe(gw.port);
    expect(await call(gw.adminPort, '/healthz')).toMatchObject({ status: 200, text: 'ok\n' });
    expect(await call(gw.adminPort, '/readyz')).toMatchObject({ status: 200, text: 'ready\n' });
    const anonymous = await call(gw.adminPort, '/metrics');
    expect(anonymous).toMatchObject({ status: 401, json: { error: { code: 'UNAUTHORIZED' } } });
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    expect(await call(gw.adminPort, '/metrics', { token: 'wrong' })).toMatchObject({ status: 401 });
    const metrics = await call(gw.adminPort, '/metrics', { token: 'admin-secret' });
    expect(metrics.status).toBe(200);
    expect(metrics.contentType).toMatch(/^text\/plain/);
    expect(metrics.text).toContain('spool_connections_active');
    // The public port keeps health and readiness, not metrics.
    expect(await call(gw.port, '/metrics')).toMatchObject({ status: 404 });
    expect(await call(gw.port, '/healthz')).toMatchObject({ status: 200 });
  });

  it('serves the admin API (protocol/ADMIN.md) behind the token: list, reset; an unknown route is 404 NOT_FOUND', async () => {
    const gw = await gateway({ adminToken: 'admin-secret' });
    const c = await RawClient.connect(gw.url);
    h.defer(() => c.close());
    c.send({ type: 'append', id: 1, session: 'adm-1', key: 'k1', kind: 'user', data: 'hello' });
    await c.next((f) => f.id === 1);
    expect(await call(gw.adminPort, '/admin/sessions')).toMatchObject({ status: 401 });
    const list = await call(gw.adminPort, '/admin/sessions', { token: 'admin-secret' });
    expect(list.status).toBe(200);
    expect(list.json.sessions.map((s: { id: string }) => s.id)).toContain('adm-1');
    expect(await call(gw.adminPort, '/admin/sessions/adm-1/reset', { token: 'admin-secret', method: 'POST' })).toMatchObject({ status: 200, json: { status: 'reset' } });
    expect(await call(gw.adminPort, '/admin/nothing-here', { token: 'admin-secret' })).toMatchObject({ status: 404, json: { error: { code: 'NOT_FOUND' } } });
    expect(await call(gw.adminPort, '/elsewhere', { token: 'admin-secret' })).toMatchObject({ status: 404, json: { error: { code: 'NOT_FOUND' } } });
  });

  it('throttles refused credentials per address: past authFailureBurst, 429 AUTH_THROTTLED even with the right token', async () => {
    const gw = await gateway({ adminToken: 'admin-secret', authFailureBurst: 2, authFailureRate: 0.01 });
    expect((await call(gw.adminPort, '/metrics', { token: 'guess-1' })).status).toBe(401);
    expect((await call(gw.adminPort, '/metrics', { token: 'guess-2' })).status).toBe(401);
    expect(await call(gw.adminPort, '/metrics', { token: 'admin-secret' })).toMatchObject({ status: 429, json: { error: { code: 'AUTH_THROTTLED' } } });
    expect((await call(gw.adminPort, '/healthz')).status).toBe(200);
  });

  it('routes added to gateway.adminServer get their params (decoded) and parsed JSON body; a body that is not JSON is 400 BAD_FRAME', async () => {
    const gw = await gateway({ adminToken: 'admin-secret' });
    gw.adminServer?.route('POST', '/ops/echo/:name', (request) => ({ status: 201, body: { name: request.params['name'], body: request.body, q: request.query.get('q') } }));
    gw.adminServer?.route('GET', '/ops/public', () => ({ status: 200, body: { open: true } }), { open: true });
    expect(await call(gw.adminPort, '/ops/echo/a%2Fb?q=1', { token: 'admin-secret', method: 'POST', body: '{"x":[1,2]}' })).toMatchObject({
      status: 201,
      json: { name: 'a/b', body: { x: [1, 2] }, q: '1' },
    });
    expect(await call(gw.adminPort, '/ops/echo/a', { method: 'POST', body: '{}' })).toMatchObject({ status: 401 });
    expect(await call(gw.adminPort, '/ops/echo/a', { token: 'admin-secret', method: 'POST', body: '{not json' })).toMatchObject({ status: 400, json: { error: { code: 'BAD_FRAME' } } });
    expect(await call(gw.adminPort, '/ops/echo/a', { token: 'admin-secret', method: 'GET' })).toMatchObject({ status: 404 });
    expect(await call(gw.adminPort, '/ops/public')).toMatchObject({ status: 200, json: { open: true } });
  });
});

describe('in JWT mode', () => {
  const claims = (admin: boolean): Record<string, unknown> => ({ sub: 'ops', spool: { read: [], write: [], takeover: [], admin } });

  it('a JWT whose spool.admin is true is the admin credential; one without it is 403 FORBIDDEN, an expired one 401', async () => {
    const gw = await gateway({ jwtSecret: h.keys.secret });
    expect((await call(gw.adminPort, '/metrics', { token: await signToken(claims(true), { key: h.keys.secret }) })).status).toBe(200);
    expect(await call(gw.adminPort, '/metrics', { token: await signToken(claims(false), { key: h.keys.secret }) })).toMatchObject({ status: 403, json: { error: { code: 'FORBIDDEN' } } });
    expect((await call(gw.adminPort, '/metrics', { token: await signToken(claims(true), { key: h.keys.secret, expIn: -30 }) })).status).toBe(401);
    expect((await call(gw.adminPort, '/metrics')).status).toBe(401);
  });

  it('with an admin token as well, either credential works', async () => {
    const gw = await gateway({ jwtSecret: h.keys.secret, adminToken: 'admin-secret' });
    expect((await call(gw.adminPort, '/metrics', { token: 'admin-secret' })).status).toBe(200);
    expect((await call(gw.adminPort, '/metrics', { token: await signToken(claims(true), { key: h.keys.secret }) })).status).toBe(200);
    expect((await call(gw.adminPort, '/metrics', { token: 'guess' })).status).toBe(401);
  });
});

describe('without an admin token', () => {
  it('a shared-token gateway takes its token', async () => {
    const gw = await gateway({ authToken: 'shared' });
    expect((await call(gw.adminPort, '/metrics', { token: 'shared' })).status).toBe(200);
    expect((await call(gw.adminPort, '/metrics', { token: 'other' })).status).toBe(401);
  });

  it('an open gateway is open here too (bind the admin listener to a private interface)', async () => {
    const gw = await gateway({});
    expect((await call(gw.adminPort, '/metrics')).status).toBe(200);
  });
});

it('without adminPort there is no admin listener and /metrics stays on the public port', async () => {
  const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: pino({ level: 'silent' }) });
  h.defer(() => gw.close());
  expect(gw.adminServer).toBeUndefined();
  expect(gw.adminPort).toBeUndefined();
  expect((await call(gw.port, '/metrics')).status).toBe(200);
});

describe('over TLS (adminTlsCert / adminTlsKey)', () => {
  const CERT = path.join(__dirname, 'test-helpers', 'tls', 'localhost.crt');
  const KEY = path.join(__dirname, 'test-helpers', 'tls', 'localhost.key');

  /** GET over https trusting the test certificate (or over plain http when `plain`): status and body, or the error's code. */
  function get(port: number | undefined, path_: string, headers: Record<string, string>, plain = false): Promise<{ status: number; body: string } | { error: string }> {
    return new Promise((resolve) => {
      const options = { host: '127.0.0.1', port, path: path_, headers, agent: false, timeout: 20_000 };
      const req = plain ? http.get(options) : https.get({ ...options, ca: fs.readFileSync(CERT) });
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
      req.on('timeout', () => req.destroy(new Error('timeout')));
    });
  }

  it('serves health and the token-protected routes over https with the certificate; plain http gets no answer', async () => {
    const gw = await gateway({ adminToken: 'admin-secret', adminTlsCert: CERT, adminTlsKey: KEY });
    expect(await get(gw.adminPort, '/healthz', {})).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(gw.adminPort, '/metrics', {})).toMatchObject({ status: 401 });
    expect(await get(gw.adminPort, '/metrics', { authorization: 'Bearer admin-secret' })).toMatchObject({ status: 200 });
    expect(await get(gw.adminPort, '/admin/sessions', { authorization: 'Bearer admin-secret' })).toMatchObject({ status: 200 });
    const plain = await get(gw.adminPort, '/healthz', {}, true);
    expect('status' in plain && plain.status === 200).toBe(false);
  });

  it('a certificate without its key (or the reverse) is a configuration error', async () => {
    await expect(gateway({ adminTlsCert: CERT })).rejects.toThrow(/--admin-tls-cert and --admin-tls-key/);
    await expect(gateway({ adminTlsKey: KEY })).rejects.toThrow(/--admin-tls-cert and --admin-tls-key/);
  });
});
