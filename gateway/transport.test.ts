/**
 * The Transport seam, run against every transport: what the connection relies on (framing,
 * subprotocols, backpressure, close semantics, HTTP, listener lifecycle), plus how a transport
 * is chosen and the fallback when uWebSockets.js cannot load. Real sockets on port 0.
 */
import http from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import WebSocket from 'ws';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { MemoryStore } from '../store/memory';
import { configFromEnv } from './config';
import { startGateway } from './gateway';
import { RawClient } from './test-helpers/raw-client';
import {
  TRANSPORT_NAMES,
  negotiateSubprotocol,
  parseTransportName,
  type HttpResponse,
  type ListenOptions,
  type Transport,
  type TransportName,
  type TransportServer,
  type TransportSocket,
} from './transport';
import { loadUwsTransport, uwsIdleTimeoutSeconds } from './transport-uws';
import { wsTransport } from './transport-ws';
import { selectTransport } from './transports';

const TRANSPORTS: Record<TransportName, Transport> = { ws: wsTransport, uws: loadUwsTransport() };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** Resolves with `promise`, or rejects naming `what` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A queue of values that tests await one by one (with a timeout). */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: Array<(item: T) => void> = [];
  count = 0;

  push(item: T): void {
    this.count++;
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }

  next(what: string, ms = 20_000): Promise<T> {
    if (this.items.length) return Promise.resolve(this.items.shift() as T);
    return within(new Promise<T>((resolve) => this.waiters.push(resolve)), ms, what);
  }
}

interface Accepted {
  readonly socket: TransportSocket;
  readonly messages: Inbox<Uint8Array | string>;
  readonly closes: Inbox<{ code: number; reason: string }>;
}

interface Harness {
  readonly server: TransportServer;
  readonly url: string;
  readonly accepted: Inbox<Accepted>;
}

async function listen(transport: Transport, overrides: Partial<ListenOptions> = {}): Promise<Harness> {
  const accepted = new Inbox<Accepted>();
  const server = await transport.listen({
    host: '127.0.0.1',
    port: 0,
    path: '/v1',
    maxPayloadBytes: 1024 * 1024,
    idleTimeoutMs: 30_000,
    http: async (path) => ({ status: 200, contentType: 'text/plain', body: `you asked for ${path}` }),
    accept: (socket) => {
      const a: Accepted = { socket, messages: new Inbox(), closes: new Inbox() };
      accepted.push(a);
      return {
        onMessage: (message) => a.messages.push(message),
        onClose: (code, reason) => a.closes.push({ code, reason }),
      };
    },
    ...overrides,
  });
  cleanups.push(() => server.close());
  return { server, url: `ws://127.0.0.1:${server.port}/v1`, accepted };
}

/** A ws client (the same library the SDK uses in Node), open, with its messages and close queued. */
async function connect(url: string, protocols: string[] = [SUBPROTOCOL_MSGPACK]) {
  const ws = new WebSocket(url, protocols);
  const messages = new Inbox<{ data: Buffer; isBinary: boolean }>();
  const closed = new Inbox<{ code: number; reason: string }>();
  ws.on('message', (data, isBinary) => messages.push({ data: data as Buffer, isBinary }));
  ws.on('close', (code, reason) => closed.push({ code, reason: reason.toString() }));
  await within(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }),
    20_000,
    'client open',
  );
  cleanups.push(() => ws.terminate());
  return { ws, messages, closed };
}

/** Whether a WebSocket to `url` opens (true) or fails (false). */
function opens(url: string): Promise<boolean> {
  const ws = new WebSocket(url, [SUBPROTOCOL_MSGPACK]);
  ws.on('error', () => {});
  cleanups.push(() => ws.terminate());
  return within(
    new Promise<boolean>((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('close', () => resolve(false));
    }),
    20_000,
    'connection attempt',
  );
}

function request(port: number, path: string, method = 'GET'): Promise<{ status: number; contentType: string | undefined; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body }));
      });
      req.on('error', reject);
      req.end();
    }),
    20_000,
    `${method} ${path}`,
  );
}

describe.each(TRANSPORT_NAMES)('%s transport', (name) => {
  const transport = TRANSPORTS[name];

  it(`is named ${name}`, () => {
    expect(transport.name).toBe(name);
  });

  describe('WebSocket', () => {
    it('negotiates spool.v1 before spool.v1.json, and still upgrades a client that offers neither, with no protocol', async () => {
      const h = await listen(transport);
      const both = await connect(h.url, [SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK]);
      expect(both.ws.protocol).toBe(SUBPROTOCOL_MSGPACK);
      expect((await h.accepted.next('accept')).socket.protocol).toBe(SUBPROTOCOL_MSGPACK);
      const json = await connect(h.url, [SUBPROTOCOL_JSON]);
      expect(json.ws.protocol).toBe(SUBPROTOCOL_JSON);
      expect((await h.accepted.next('accept')).socket.protocol).toBe(SUBPROTOCOL_JSON);
      const none = await connect(h.url, []);
      expect(none.ws.protocol).toBe('');
      const accepted = await h.accepted.next('accept');
      expect(accepted.socket.protocol).toBeNull();
      expect(accepted.socket.remoteAddress).toBe('127.0.0.1');
    });

    it('hands binary messages over as bytes that stay intact after later messages, and text messages as strings', async () => {
      const h = await listen(transport);
      const c = await connect(h.url);
      const s = await h.accepted.next('accept');
      c.ws.send(Buffer.from([1, 2, 3, 4]));
      c.ws.send(Buffer.from([9, 9, 9, 9]));
      c.ws.send('héllo');
      const first = await s.messages.next('first message');
      const second = await s.messages.next('second message');
      const third = await s.messages.next('third message');
      // uws reuses its receive buffer once the handler returns: the first message must be a copy.
      expect(typeof first).not.toBe('string');
      expect([...(first as Uint8Array)]).toEqual([1, 2, 3, 4]);
      expect([...(second as Uint8Array)]).toEqual([9, 9, 9, 9]);
      expect(third).toBe('héllo');
    });

    it('sends bytes as binary and strings as text', async () => {
      const h = await listen(transport);
      const c = await connect(h.url);
      const s = await h.accepted.next('accept');
      s.socket.send(new Uint8Array([7, 8]));
      s.socket.send('text');
      const bin = await c.messages.next('binary');
      const text = await c.messages.next('text');
      expect(bin.isBinary).toBe(true);
      expect([...bin.data]).toEqual([7, 8]);
      expect(text.isBinary).toBe(false);
      expect(text.data.toString()).toBe('text');
    });

    it('close(code, reason) reaches the client and the handlers once; the socket is then inert', async () => {
      const h = await listen(transport);
      const c = await connect(h.url);
      const s = await h.accepted.next('accept');
      s.socket.close(4014, 'going away');
      expect(await c.closed.next('client close')).toEqual({ code: 4014, reason: 'going away' });
      await s.closes.next('server onClose');
      // After the close, nothing may throw (uws throws on a closed socket if touched).
      s.socket.send('late');
      s.socket.close(4000, 'again');
      s.socket.terminate();
      expect(s.socket.bufferedAmount()).toBe(0);
      s.socket.onceDrained(0, () => {
        throw new Error('a closed socket never drains');
      });
      await new Promise(setImmediate); // a second report would have been queued by now
      expect(s.closes.count).toBe(1);
    });

    it('reports a close started inside accept after accept returned its handlers', async () => {
      const closes = new Inbox<number>();
      const server = await transport.listen({
        host: '127.0.0.1',
        port: 0,
        path: '/v1',
        maxPayloadBytes: 1024,
        idleTimeoutMs: 30_000,
        http: async () => ({ status: 404, contentType: 'text/plain', body: '' }),
        accept: (socket) => {
          socket.send('refused');
          socket.close(4001, 'unsupported');
          return { onMessage: () => {}, onClose: (code) => closes.push(code) };
        },
      });
      cleanups.push(() => server.close());
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/v1`, [SUBPROTOCOL_MSGPACK]);
      cleanups.push(() => ws.terminate());
      const got = new Inbox<string>();
      ws.on('message', (d) => got.push(d.toString()));
      const closed = within(new Promise<number>((resolve) => ws.once('close', resolve)), 20_000, 'client close');
      expect(await got.next('message')).toBe('refused');
      expect(await closed).toBe(4001);
      expect(await closes.next('server onClose')).toBe(4001);
    });

    it('terminate() drops the connection without a close frame', async () => {
      const h = await listen(transport);
      const c = await connect(h.url);
      const s = await h.accepted.next('accept');
      s.socket.terminate();
      expect((await c.closed.next('client close')).code).toBe(1006);
      await s.closes.next('server onClose');
    });

    it('reports a client close to the handlers with its code and reason', async () => {
      const h = await listen(transport);
      const c = await connect(h.url);
      const s = await h.accepted.next('accept');
      c.ws.close(1000, 'done');
      expect(await s.closes.next('server onClose')).toEqual({ code: 1000, reason: 'done' });
    });

    it('closes a socket whose message exceeds maxPayloadBytes, and keeps serving others', async () => {
      const h = await listen(transport, { maxPayloadBytes: 1024 });
      const c = await connect(h.url);
      const s = await h.accepted.next('accept');
      c.ws.send(Buffer.alloc(1025));
      // ws closes with 1009; uws drops the connection without a close frame (1006).
      expect((await c.closed.next('client close')).code).toBe(name === 'ws' ? 1009 : 1006);
      await s.closes.next('server onClose');
      expect(s.messages.count).toBe(0);
      const d = await connect(h.url);
      const t = await h.accepted.next('accept');
      d.ws.send(Buffer.alloc(1024));
      expect((await t.messages.next('message at the cap')).length).toBe(1024);
    });
  });

  describe('backpressure', () => {
    it('onceDrained fires at once when nothing is buffered', async () => {
      const h = await listen(transport);
      await connect(h.url);
      const s = await h.accepted.next('accept');
      let fired = false;
      s.socket.onceDrained(0, () => (fired = true));
      expect(fired).toBe(true);
    });

    it('onceDrained fires after a backlog toward a paused reader clears, and every message arrives', async () => {
      const h = await listen(transport);
      const c = await connect(h.url);
      const s = await h.accepted.next('accept');
      c.ws.pause();
      const message = new Uint8Array(64 * 1024);
      const backlog = 1024 * 1024;
      const lowWater = 64 * 1024;
      let sent = 0;
      // Kernel buffers absorb the first megabytes; past them the transport holds the rest.
      while (s.socket.bufferedAmount() <= backlog && sent < 4096) {
        s.socket.send(message);
        sent++;
      }
      expect(s.socket.bufferedAmount()).toBeGreaterThan(backlog);
      let fired = false;
      const drained = new Promise<number>((resolve) =>
        s.socket.onceDrained(lowWater, () => {
          fired = true;
          resolve(s.socket.bufferedAmount());
        }),
      );
      expect(fired).toBe(false);
      c.ws.resume();
      expect(await within(drained, 20_000, 'drain callback')).toBeLessThanOrEqual(lowWater);
      // Nothing was dropped on the way (uws drops sends past maxBackpressure unless it is 0).
      for (let i = 0; i < sent; i++) expect((await c.messages.next(`message ${i}`, 20_000)).data.length).toBe(message.length);
    });
  });

  describe('HTTP', () => {
    it('routes GETs to options.http with the path (no query) and returns its status, type and body', async () => {
      const h = await listen(transport, {
        http: async (path): Promise<HttpResponse> =>
          path === '/healthz'
            ? { status: 200, contentType: 'text/plain', body: 'ok\n' }
            : { status: 404, contentType: 'text/plain', body: `no ${path}\n` },
      });
      expect(await request(h.server.port, '/healthz?verbose=1')).toEqual({ status: 200, contentType: 'text/plain', body: 'ok\n' });
      expect(await request(h.server.port, '/nope')).toEqual({ status: 404, contentType: 'text/plain', body: 'no /nope\n' });
      // A plain GET of the WebSocket path, without an upgrade, is an ordinary request.
      expect((await request(h.server.port, '/v1')).body).toBe('no /v1\n');
    });

    it('answers a failing handler with 500 and other methods with 405', async () => {
      const h = await listen(transport, { http: () => Promise.reject(new Error('broken')) });
      expect((await request(h.server.port, '/metrics')).status).toBe(500);
      expect((await request(h.server.port, '/metrics', 'POST')).status).toBe(405);
    });

    it('answers a GET whose handler resolves later, after other requests were served', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const h = await listen(transport, {
        http: async (path) => {
          if (path === '/slow') await gate;
          return { status: 200, contentType: 'text/plain', body: path };
        },
      });
      const slow = request(h.server.port, '/slow');
      expect((await request(h.server.port, '/fast')).body).toBe('/fast');
      release();
      expect((await slow).body).toBe('/slow');
    });
  });

  describe('lifecycle', () => {
    it('listens on the port it was given (port 0 picks one and reports it)', async () => {
      const h = await listen(transport);
      expect(h.server.port).toBeGreaterThan(0);
      expect((await request(h.server.port, '/x')).status).toBe(200);
    });

    it('fails to listen on a port that is taken', async () => {
      const h = await listen(transport);
      await expect(listen(transport, { port: h.server.port })).rejects.toThrow();
    });

    it('stopAccepting keeps existing sockets working both ways but refuses new ones', async () => {
      const h = await listen(transport);
      const c = await connect(h.url);
      const s = await h.accepted.next('accept');
      await h.server.stopAccepting();
      await h.server.stopAccepting();
      expect(await opens(h.url)).toBe(false);
      expect(h.accepted.count).toBe(1);
      c.ws.send('still here');
      expect(await s.messages.next('message after stopAccepting')).toBe('still here');
      s.socket.send('so am I');
      expect((await c.messages.next('reply after stopAccepting')).data.toString()).toBe('so am I');
    });

    it('close() drops every socket, reports each close once, releases the port, and is idempotent', async () => {
      const h = await listen(transport);
      const a = await connect(h.url);
      const b = await connect(h.url);
      const sa = await h.accepted.next('accept a');
      const sb = await h.accepted.next('accept b');
      const first = h.server.close();
      const second = h.server.close();
      await within(Promise.all([first, second]), 20_000, 'close');
      await within(h.server.close(), 20_000, 'third close');
      expect((await a.closed.next('a closed')).code).toBe(1006);
      expect((await b.closed.next('b closed')).code).toBe(1006);
      await sa.closes.next('a onClose');
      await sb.closes.next('b onClose');
      expect([sa.closes.count, sb.closes.count]).toEqual([1, 1]);
      expect(await opens(h.url)).toBe(false);
    });
  });
});

describe('choosing a transport', () => {
  function capture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
    const lines: Array<Record<string, unknown>> = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    return { logger: pino({ level: 'info' }, stream), lines };
  }

  it('names ws and uws, returns a Transport object as given, and defaults to ws', async () => {
    const { logger } = capture();
    expect(selectTransport('ws', logger)).toBe(wsTransport);
    expect(selectTransport('uws', logger).name).toBe('uws');
    expect(selectTransport(wsTransport, logger)).toBe(wsTransport);
  });

  it('falls back to ws with a warning when uWebSockets.js cannot be loaded', async () => {
    const { logger, lines } = capture();
    const transport = selectTransport('uws', logger, () =>
      loadUwsTransport(() => {
        throw new Error("Cannot find module '@trufflesuite/uws-js-unofficial'");
      }),
    );
    expect(transport).toBe(wsTransport);
    const warning = lines.find((l) => l['level'] === 40);
    expect(warning?.['msg']).toMatch(/falling back to the ws transport/);
    expect(String(warning?.['err'])).toContain('could not be loaded');
    // And the fallback serves.
    const h = await listen(transport);
    await connect(h.url);
  });

  it("refuses the package's JavaScript stand-in, which it loads when its native binary does not", () => {
    const standIn = { App: () => ({}), us_listen_socket_close: () => {}, us_socket_local_port: () => 0 };
    expect(() => loadUwsTransport(() => standIn)).toThrow(/without its native binary/);
    const { logger, lines } = capture();
    expect(selectTransport('uws', logger, () => loadUwsTransport(() => standIn))).toBe(wsTransport);
    expect(lines.some((l) => l['level'] === 40)).toBe(true);
  });

  it("a gateway started with transport 'uws' serves on uWebSockets.js", async () => {
    const { logger, lines } = capture();
    const gw = await startGateway({ port: 0, store: new MemoryStore(), logger, transport: 'uws' });
    cleanups.push(() => gw.close());
    expect(lines.find((l) => l['msg'] === 'spool gateway listening')?.['transport']).toBe('uws');
    const c = await RawClient.connect(gw.url);
    cleanups.push(() => c.close());
    c.send({ type: 'ping', id: 1 });
    expect(await c.next((f) => f.type === 'pong')).toMatchObject({ id: 1 });
  });

  it('reads SPOOL_TRANSPORT and refuses an unknown name', () => {
    expect(configFromEnv({ SPOOL_TRANSPORT: 'uws' })).toMatchObject({ transport: 'uws' });
    expect(configFromEnv({})).not.toHaveProperty('transport');
    expect(() => configFromEnv({ SPOOL_TRANSPORT: 'uwebsockets' })).toThrow(/SPOOL_TRANSPORT=uwebsockets is not a transport/);
    expect(parseTransportName('ws', '--transport')).toBe('ws');
    expect(() => parseTransportName('tcp', '--transport')).toThrow(/--transport=tcp/);
  });

  it('negotiates subprotocols the same way for every transport', () => {
    expect(negotiateSubprotocol([SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK])).toBe(SUBPROTOCOL_MSGPACK);
    expect(negotiateSubprotocol([SUBPROTOCOL_JSON])).toBe(SUBPROTOCOL_JSON);
    expect(negotiateSubprotocol(['spool.v2', ''])).toBeNull();
  });

  it("maps idleTimeoutMs onto uws's idle timeout: whole seconds, a multiple of 4, never longer than asked, within 8..960", () => {
    expect(uwsIdleTimeoutSeconds(30_000)).toBe(28);
    expect(uwsIdleTimeoutSeconds(32_000)).toBe(32);
    expect(uwsIdleTimeoutSeconds(100)).toBe(8);
    expect(uwsIdleTimeoutSeconds(24 * 3600_000)).toBe(960);
  });
});
