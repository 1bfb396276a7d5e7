/**
 * Native TLS (`tlsCert` / `tlsKey`, README "Security") on both transports: the gateway serves
 * wss:// and https:// with the given certificate, a client that trusts it streams a generation
 * and reads it back, and a client that speaks plain ws:// to the TLS port gets nowhere. The
 * certificate is a self-signed test fixture for localhost / 127.0.0.1 (test-helpers/tls).
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import pino from 'pino';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { MemoryStore } from '../store/memory';
import { startGateway, type Gateway } from './index';
import { RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES, type Transport, type TransportName } from './transport';
import { loadUwsTransport } from './transport-uws';
import { wsTransport } from './transport-ws';

const TRANSPORTS: Record<TransportName, Transport> = { ws: wsTransport, uws: loadUwsTransport() };
const CERT = path.join(__dirname, 'test-helpers', 'tls', 'localhost.crt');
const KEY = path.join(__dirname, 'test-helpers', 'tls', 'localhost.key');
const ca = fs.readFileSync(CERT);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function httpsGet(port: number, path_: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: path_, ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

describe.each(TRANSPORT_NAMES)('over %s', (transportName) => {
  let gw: Gateway;
  beforeEach(async () => {
    gw = await startGateway({ port: 0, store: new MemoryStore(), logger: pino({ level: 'silent' }), transport: TRANSPORTS[transportName], tlsCert: CERT, tlsKey: KEY });
    cleanups.push(() => gw.close());
  });

  it('serves wss://: a client trusting the certificate streams a generation and reads it back, over both subprotocols', async () => {
    expect(gw.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/v1$/);
    for (const protocol of [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON] as const) {
      const c = await RawClient.connect(gw.url, protocol, true, { ca });
      cleanups.push(() => c.close());
      const session = `tls-${protocol}`;
      const opened = await c.open(session, 'g1');
      c.send({ type: 'chunk', token: opened['token'], seq: 0, data: 'over TLS' });
      c.send({ type: 'finish', id: 2, token: opened['token'], seq: 1 });
      expect((await c.next((f) => f.id === 2)).type).toBe('finished');
      const events = await c.readAll(session, 0);
      expect(events.map((e) => e['data'])).toContain('over TLS');
    }
  });

  it('serves https:// for /healthz and /readyz', async () => {
    expect(await httpsGet(gw.port, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await httpsGet(gw.port, '/readyz')).status).toBe(200);
  });

  it('a plain ws:// client does not get a WebSocket on the TLS port', async () => {
    await expect(RawClient.connect(gw.url.replace('wss://', 'ws://'), SUBPROTOCOL_MSGPACK, false)).rejects.toThrow();
  });

  it('a client that does not trust the certificate is refused by its own TLS check', async () => {
    await expect(RawClient.connect(gw.url, SUBPROTOCOL_MSGPACK, false)).rejects.toThrow(/self[- ]signed|certificate/i);
  });
});
