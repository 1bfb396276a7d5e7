/**
 * A token over the life of a connection, on both transports: expiry (TOKEN_EXPIRED, then close
 * 4021), in-band refresh (`refresh` → `refreshed`, same sub, scopes replaced), frames held while a
 * token is verified (in order, bounded), a JWKS URL rotated by kid or unreachable
 * (AUTH_UNAVAILABLE), and the shared-token and open modes.
 *
 * Expiry runs on real time (a JWT's exp has one-second granularity): tests wait for the events,
 * with generous timeouts, and assert only lower bounds on when they came.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeCodeOf } from '../protocol/errors';
import { startGateway, type Gateway, type GatewayOptions } from './index';
import { publicJwk, signToken, type KeyPair } from './test-helpers/jwt';
import { jwtHarness, quiet } from './test-helpers/jwt-gateway';
import type { RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES } from './transport';

const h = jwtHarness();

const ALL = { read: ['*'], write: ['*'], takeover: ['*'] };
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A JWKS over HTTP on 127.0.0.1 whose keys and answers a test controls. */
class JwksServer {
  keys: KeyPair[] = [];
  /** When set, answers wait for it. */
  hold: Promise<void> | undefined;
  requests = 0;
  private constructor(private readonly server: http.Server) {}

  static async start(): Promise<JwksServer> {
    const server = http.createServer();
    const jwks = new JwksServer(server);
    server.on('request', (_req, res) => {
      jwks.requests++;
      void (async () => {
        await jwks.hold;
        const body = JSON.stringify({ keys: await Promise.all(jwks.keys.map(publicJwk)) });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return jwks;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/jwks.json`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe.each(TRANSPORT_NAMES)('over %s', (transportName) => {
  const gateway = (options: GatewayOptions): Promise<Gateway> => h.gateway(transportName, options);
  /** A connection that sent hello with `token` (its answer not awaited). */
  const connect = (gw: Gateway, token: string | undefined): Promise<RawClient> => h.hello(gw, token);

  const sign = (claims: Record<string, unknown>, exp: number): Promise<string> => signToken({ sub: 'u1', ...claims }, { key: h.keys.secret, exp });

  describe('expiry', () => {
    it('a connection whose token expires is told TOKEN_EXPIRED (retryable) and then closed with its close code', async () => {
      const gw = await gateway({ jwtSecret: h.keys.secret });
      const exp = nowSeconds() + 1;
      const c = await connect(gw, await sign({ spool: ALL }, exp));
      const welcome = await c.next((f) => f.type === 'welcome');
      expect(welcome['expiresInMs']).toBeLessThanOrEqual(exp * 1000 - Date.now() + 50);
      c.send({ type: 'subscribe', id: 2, session: 's', from: 0 });
      await c.next((f) => f.id === 2 && f.type === 'subscribed');
      const expired = await c.next((f) => f.type === 'error');
      expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
      expect(expired).toMatchObject({ code: 'TOKEN_EXPIRED', retryable: true });
      expect((await c.waitClosed()).code).toBe(closeCodeOf('TOKEN_EXPIRED'));
      expect(closeCodeOf('TOKEN_EXPIRED')).toBe(4021);
    });
  });

  describe('refresh', () => {
    it('a refresh before expiry replaces the token: the connection outlives the first exp and is cut at the new one', async () => {
      const gw = await gateway({ jwtSecret: h.keys.secret });
      const first = nowSeconds() + 1;
      const c = await connect(gw, await sign({ spool: ALL }, first));
      await c.next((f) => f.type === 'welcome');
      const second = first + 2;
      c.send({ type: 'refresh', id: 2, token: await sign({ spool: ALL }, second) });
      const refreshed = await c.next((f) => f.id === 2);
      expect(refreshed).toMatchObject({ type: 'refreshed', expiresInMs: expect.any(Number) });
      expect(refreshed['expiresInMs']).toBeGreaterThan(1000);
      const expired = await c.next((f) => f.type === 'error');
      expect(expired).toMatchObject({ code: 'TOKEN_EXPIRED' });
      expect(Date.now()).toBeGreaterThanOrEqual(second * 1000);
      expect((await c.waitClosed()).code).toBe(4021);
    });

    it('a refresh that narrows the scopes ends the subscriptions and generations it no longer covers with FORBIDDEN, and stores nothing more of them', async () => {
      const gw = await gateway({ jwtSecret: h.keys.secret });
      const exp = nowSeconds() + 600;
      const c = await connect(gw, await sign({ spool: { read: ['a', 'b'], write: ['a', 'b'] } }, exp));
      await c.next((f) => f.type === 'welcome');
      const opened = await c.open('a', 'g');
      c.send({ type: 'chunk', token: opened['token'], seq: 0, data: 'before' });
      await c.next((f) => f.type === 'ack');
      c.send({ type: 'subscribe', id: 3, session: 'a', from: 0 });
      await c.next((f) => f.id === 3 && f.type === 'subscribed');
      c.send({ type: 'subscribe', id: 4, session: 'b', from: 0 });
      await c.next((f) => f.id === 4 && f.type === 'subscribed');

      // Pipelined behind the refresh: they run with the new scopes.
      c.send({ type: 'refresh', id: 5, token: await sign({ spool: { read: ['b'], write: ['b'] } }, exp) });
      c.send({ type: 'chunk', token: opened['token'], seq: 1, data: 'after' });
      c.send({ type: 'finish', id: 6, token: opened['token'], seq: 2 });
      c.send({ type: 'append', id: 7, session: 'a', key: 'k', kind: 'user', data: 'after' });
      c.send({ type: 'append', id: 8, session: 'b', key: 'k', kind: 'user', data: 'allowed' });

      expect(await c.next((f) => f.type === 'error' && f.id === undefined && f['ref'] === 'a' && f['code'] === 'FORBIDDEN')).toMatchObject({ details: { session: 'a' } });
      expect(await c.next((f) => f.id === 5)).toMatchObject({ type: 'refreshed' });
      expect(await c.next((f) => f.type === 'error' && f['ref'] === 'g')).toMatchObject({ code: 'FORBIDDEN' });
      expect(await c.next((f) => f.id === 6)).toMatchObject({ type: 'error', code: 'FORBIDDEN', ref: 'g' });
      expect(await c.next((f) => f.id === 7)).toMatchObject({ type: 'error', code: 'FORBIDDEN', ref: 'a' });
      expect(await c.next((f) => f.id === 8)).toMatchObject({ type: 'appended' });
      const a = (await gw.store.read('a' as never, 0, 10)).items;
      expect(a.map((e) => [e.type, (e as { data?: unknown }).data])).toEqual([
        ['gen.start', undefined],
        ['chunk', 'before'],
      ]);
      // The subscription to b goes on: the append made it there; nothing of a came after the refusal.
      const refusalAt = c.frames.findIndex((f) => f.type === 'error' && f['ref'] === 'a');
      expect(c.frames.slice(refusalAt).filter((f) => f.type === 'events' && f['session'] === 'a')).toEqual([]);
      const toB = (f: { type: string; [k: string]: unknown }): boolean => f.type === 'events' && f['session'] === 'b';
      expect(c.frames.find(toB) ?? (await c.next(toB))).toMatchObject({ events: [{ type: 'append', data: 'allowed' }] });
      expect(c.closed).toBeNull();
    });

    it('a refresh for another sub is FORBIDDEN and leaves the connection as it was', async () => {
      const gw = await gateway({ jwtSecret: h.keys.secret });
      const exp = nowSeconds() + 600;
      const c = await connect(gw, await sign({ spool: { write: ['s'] } }, exp));
      await c.next((f) => f.type === 'welcome');
      c.send({ type: 'refresh', id: 2, token: await signToken({ sub: 'someone-else', spool: ALL }, { key: h.keys.secret, exp }) });
      expect(await c.next((f) => f.id === 2)).toMatchObject({ type: 'error', code: 'FORBIDDEN' });
      c.send({ type: 'subscribe', id: 3, session: 's', from: 0 });
      expect(await c.next((f) => f.id === 3)).toMatchObject({ type: 'error', code: 'FORBIDDEN' });
      c.send({ type: 'append', id: 4, session: 's', key: 'k', kind: 'user', data: 1 });
      expect(await c.next((f) => f.id === 4)).toMatchObject({ type: 'appended' });
    });

    it.each([
      ['badly signed', 'UNAUTHORIZED', async () => signToken({ sub: 'u1', spool: ALL }, { key: 'some-other-secret-that-is-32-bytes!!' })],
      ['expired', 'TOKEN_EXPIRED', async () => signToken({ sub: 'u1', spool: ALL }, { key: h.keys.secret, expIn: -5 })],
    ] as const)('a refresh with a %s token is answered %s and the connection closed', async (_name, code, token) => {
      const gw = await gateway({ jwtSecret: h.keys.secret });
      const c = await connect(gw, await sign({ spool: ALL }, nowSeconds() + 600));
      await c.next((f) => f.type === 'welcome');
      c.send({ type: 'refresh', id: 2, token: await token() });
      c.send({ type: 'append', id: 3, session: 's', key: 'k', kind: 'user', data: 'discarded' });
      expect(await c.next((f) => f.id === 2)).toMatchObject({ type: 'error', code });
      expect((await c.waitClosed()).code).toBe(closeCodeOf(code));
      expect((await gw.store.read('s' as never, 0, 10)).items).toEqual([]);
    });

    it('shared-token and open gateways answer a refresh too (no expiry), and refuse a wrong shared token', async () => {
      const shared = await gateway({ authToken: 'sesame' });
      const c = await connect(shared, 'sesame');
      expect(await c.next((f) => f.type === 'welcome')).not.toHaveProperty('expiresInMs');
      c.send({ type: 'refresh', id: 2, token: 'sesame' });
      expect(await c.next((f) => f.id === 2)).toEqual({ type: 'refreshed', id: 2 });
      c.send({ type: 'refresh', id: 3, token: 'sesame?' });
      expect(await c.next((f) => f.id === 3)).toMatchObject({ type: 'error', code: 'UNAUTHORIZED' });
      expect((await c.waitClosed()).code).toBe(closeCodeOf('UNAUTHORIZED'));

      const open = await gateway({});
      const o = await connect(open, undefined);
      await o.next((f) => f.type === 'welcome');
      o.send({ type: 'refresh', id: 2, token: 'anything' });
      expect(await o.next((f) => f.id === 2)).toEqual({ type: 'refreshed', id: 2 });
    });
  });

  describe('verification in flight', () => {
    it('holds frames sent while the JWT is verified, runs them in order afterwards, and refuses what is past the bound with RATE_LIMITED', async () => {
      const jwks = await JwksServer.start();
      h.defer(() => jwks.close());
      jwks.keys = [h.keys.rsa];
      let release!: () => void;
      jwks.hold = new Promise((resolve) => (release = resolve));
      const gw = await gateway({ jwks: jwks.url, jwksCooldownMs: 0 });
      const c = await connect(gw, await signToken({ sub: 'u1', spool: ALL }, { key: h.keys.rsa }));
      const pings = 1100;
      for (let i = 0; i < pings; i++) c.send({ type: 'ping', id: 10 + i });
      // 1024 frames are held; the rest are refused at once, while the key set is still being fetched.
      for (let i = 1024; i < pings; i++) expect(await c.next((f) => f.id === 10 + i)).toMatchObject({ type: 'error', code: 'RATE_LIMITED', retryable: true });
      expect(c.frames.some((f) => f.type === 'welcome' || f.type === 'pong')).toBe(false);
      release();
      await c.next((f) => f.type === 'welcome');
      const pongs = [];
      for (let i = 0; i < 1024; i++) pongs.push((await c.next((f) => f.type === 'pong'))['id']);
      expect(pongs).toEqual(Array.from({ length: 1024 }, (_, i) => 10 + i));
    });
  });

  describe('JWKS URL', () => {
    it('verifies by kid, fetches the set again for an unknown kid (rotation) and refuses a kid it still does not hold', async () => {
      const jwks = await JwksServer.start();
      h.defer(() => jwks.close());
      jwks.keys = [h.keys.rsa];
      const gw = await gateway({ jwks: jwks.url, jwksCooldownMs: 0 });
      const a = await connect(gw, await signToken({ sub: 'u1', spool: ALL }, { key: h.keys.rsa }));
      await a.next((f) => f.type === 'welcome');
      const rotated: KeyPair = { ...h.keys.ec, kid: 'ec-rotated' };
      const b = await connect(gw, await signToken({ sub: 'u1', spool: ALL }, { key: rotated }));
      expect(await b.next((f) => f.type === 'error')).toMatchObject({ code: 'UNAUTHORIZED' });
      expect(jwks.requests).toBeGreaterThanOrEqual(2);
      jwks.keys = [h.keys.rsa, rotated];
      const c = await connect(gw, await signToken({ sub: 'u1', spool: ALL }, { key: rotated }));
      await c.next((f) => f.type === 'welcome');
    });

    it('a key set URL that does not answer is AUTH_UNAVAILABLE (retryable), not the token’s fault', async () => {
      const jwks = await JwksServer.start();
      const url = jwks.url;
      await jwks.close();
      const gw = await gateway({ jwks: url });
      const c = await connect(gw, await signToken({ sub: 'u1', spool: ALL }, { key: h.keys.rsa }));
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ id: 1, code: 'AUTH_UNAVAILABLE', retryable: true });
      expect((await c.waitClosed()).code).toBe(closeCodeOf('AUTH_UNAVAILABLE'));
    });
  });
});

describe('configuration', () => {
  it('startGateway refuses two auth modes before it opens a store or a port', async () => {
    await expect(startGateway({ port: 0, logger: quiet, authToken: 't', jwtSecret: h.keys.secret, data: '/nonexistent/never-created' })).rejects.toThrow(
      /one auth mode, not 2/,
    );
  });
});
