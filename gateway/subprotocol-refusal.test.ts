/**
 * PROTOCOL §2.1 on both transports, with a real `ws` client: an upgrade that offers only
 * subprotocols spool does not speak is refused with HTTP 400 and a JSON body naming the ones it
 * does (a compliant client would fail a 101 that selects none of its offers, and never read an
 * error frame); one that offers none is accepted and told UNSUPPORTED_PROTOCOL in a frame.
 */
import type { IncomingMessage } from 'node:http';
import pino from 'pino';
import WebSocket from 'ws';
import { closeCodeOf } from '../protocol/errors';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { MemoryStore } from '../store/memory';
import { startGateway, type Gateway } from './index';
import { RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES, answerUpgrade, offeredSubprotocols, type Transport, type TransportName } from './transport';
import { loadUwsTransport } from './transport-uws';
import { wsTransport } from './transport-ws';

const quiet = pino({ level: 'silent' });
const TRANSPORTS: Record<TransportName, Transport> = { ws: wsTransport, uws: loadUwsTransport() };
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

interface Refusal {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: string;
  /** Resolves once the server has closed the TCP connection. */
  readonly socketClosed: Promise<void>;
}

/** Opens a WebSocket offering `protocols` and resolves with the HTTP response that refused it (rejects if it opens). */
function refusedUpgrade(url: string, protocols: string[], timeoutMs = 10_000): Promise<Refusal> {
  const ws = new WebSocket(url, protocols);
  cleanups.push(() => ws.terminate());
  return new Promise<Refusal>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to the upgrade within ${timeoutMs} ms`)), timeoutMs);
    ws.once('open', () => reject(new Error(`upgrade offering ${protocols.join(', ')} was accepted with '${ws.protocol}'`)));
    ws.once('error', (err) => reject(err));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      const socketClosed = new Promise<void>((closed) => res.socket.once('close', () => closed()));
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body, socketClosed });
      });
    });
  });
}

describe('the upgrade answer, from the Sec-WebSocket-Protocol header', () => {
  it('selects spool.v1 before spool.v1.json, accepts no offer without a subprotocol, refuses only-other offers', () => {
    expect(answerUpgrade('spool.v1.json, spool.v1')).toEqual({ accept: true, protocol: SUBPROTOCOL_MSGPACK });
    expect(answerUpgrade('graphql-ws,spool.v1.json')).toEqual({ accept: true, protocol: SUBPROTOCOL_JSON });
    expect(answerUpgrade(undefined)).toEqual({ accept: true, protocol: null });
    expect(answerUpgrade('')).toEqual({ accept: true, protocol: null }); // how uws reads an absent header
    const refused = answerUpgrade('spool.v2, graphql-ws');
    expect(refused.accept).toBe(false);
    if (refused.accept) return;
    expect(refused.reply).toMatchObject({ status: 400, contentType: 'application/json' });
    expect(JSON.parse(refused.reply.body)).toMatchObject({ code: 'UNSUPPORTED_PROTOCOL', supported: [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON] });
  });

  it('reads the offer as comma-separated tokens, ignoring blanks', () => {
    expect(offeredSubprotocols(' a ,b,, c ')).toEqual(['a', 'b', 'c']);
    expect(offeredSubprotocols(undefined)).toEqual([]);
  });

  it('quotes at most a bounded excerpt of a hostile offer back', () => {
    const refused = answerUpgrade(Array.from({ length: 1000 }, (_, i) => `p${i}`).join(','));
    if (refused.accept) throw new Error('accepted');
    expect(refused.reply.body.length).toBeLessThan(600);
  });
});

describe.each(TRANSPORT_NAMES)('over %s', (transportName) => {
  const transport = TRANSPORTS[transportName];

  async function gateway(): Promise<Gateway> {
    const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: quiet, transport });
    cleanups.push(() => gw.close());
    return gw;
  }

  it('refuses an upgrade offering only other subprotocols with HTTP 400 and a JSON body naming the supported ones, and closes the connection', async () => {
    const gw = await gateway();
    const refusal = await refusedUpgrade(gw.url, ['spool.v2', 'graphql-ws']);
    expect(refusal.status).toBe(400);
    expect(refusal.contentType).toBe('application/json');
    const body = JSON.parse(refusal.body) as Record<string, unknown>;
    expect(body).toMatchObject({ code: 'UNSUPPORTED_PROTOCOL', supported: [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON] });
    expect(typeof body['message']).toBe('string');
    await refusal.socketClosed;
    expect(gw.metrics.errorsSent.get({ code: 'UNSUPPORTED_PROTOCOL' })).toBe(1);
  });

  it('accepts an offer that includes a spool subprotocol among others, selecting it', async () => {
    const gw = await gateway();
    const c = await RawClient.connect(gw.url, ['graphql-ws', SUBPROTOCOL_JSON]);
    cleanups.push(() => c.close());
    expect(c.ws.protocol).toBe(SUBPROTOCOL_JSON);
    c.send({ type: 'ping', id: 1 });
    expect(await c.next((f) => f.type === 'pong')).toMatchObject({ id: 1 });
  });

  it('still upgrades a client that offers no subprotocol at all, then sends UNSUPPORTED_PROTOCOL as JSON text and closes 4001', async () => {
    const gw = await gateway();
    const none = await RawClient.connect(gw.url, [], false);
    cleanups.push(() => none.close());
    expect(none.ws.protocol).toBe('');
    expect(await none.next((f) => f.type === 'error')).toMatchObject({ code: 'UNSUPPORTED_PROTOCOL' });
    expect((await none.waitClosed()).code).toBe(closeCodeOf('UNSUPPORTED_PROTOCOL'));
    expect(closeCodeOf('UNSUPPORTED_PROTOCOL')).toBe(4001);
  });
});
