/**
 * The harness of the tests that run JWT gateways over real WebSockets (authorization, token
 * lifecycle, quotas, the admin listener): test keys made once per file, gateways on port 0 over a
 * memory store on either transport, hello'd raw connections, and teardown registered at once and
 * run after each test, newest first.
 *
 *   const h = jwtHarness();                       // at the top of the file: registers the hooks
 *   describe.each(TRANSPORT_NAMES)('over %s', (name) => {
 *     it('…', async () => {
 *       const gw = await h.gateway(name, { jwtSecret: h.keys.secret });
 *       const c = await h.hello(gw, await h.sign({ sub: 'u1', spool: { write: ['*'] } }));
 */
import pino from 'pino';
import { SUBPROTOCOL_MSGPACK, type Subprotocol } from '../../protocol/types';
import { MemoryStore } from '../../store/memory';
import type { GatewayOptions } from '../config';
import { startGateway, type Gateway } from '../gateway';
import type { Transport, TransportName } from '../transport';
import { loadUwsTransport } from '../transport-uws';
import { wsTransport } from '../transport-ws';
import { makeTestKeys, signToken, type SignOptions, type TestKeys } from './jwt';
import { RawClient } from './raw-client';

export const quiet = pino({ level: 'silent' });

let uws: Transport | undefined;

/** The transport of `name` (uWebSockets.js loaded once, on first use). */
export function transportOf(name: TransportName): Transport {
  if (name === 'ws') return wsTransport;
  uws ??= loadUwsTransport();
  return uws;
}

export interface JwtHarness {
  /** The test keys (made in beforeAll). */
  readonly keys: TestKeys;
  /** Runs `fn` after the current test (teardown, newest first). */
  defer(fn: () => Promise<void> | void): void;
  /** A gateway on port 0 over a memory store (unless `options.store`), closed after the test. */
  gateway(transport: TransportName, options: GatewayOptions): Promise<Gateway>;
  /**
   * A raw connection that sent `hello` with `token` (none when undefined), request id 1; its
   * answer is not awaited, so frames can be pipelined behind it. Closed after the test.
   */
  hello(gw: Gateway, token: string | undefined, subprotocol?: Subprotocol): Promise<RawClient>;
  /** An HS256 token for the harness's secret. */
  sign(claims: Record<string, unknown>, options?: Omit<SignOptions, 'key'>): Promise<string>;
}

/** Registers beforeAll / afterAll / afterEach hooks in the calling file and returns the harness. */
export function jwtHarness(): JwtHarness {
  let keys: TestKeys | undefined;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    keys = await makeTestKeys();
  });
  afterAll(() => keys?.cleanup());
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  const harness: JwtHarness = {
    get keys(): TestKeys {
      if (keys === undefined) throw new Error('the harness keys are made in beforeAll; use them inside a test or hook');
      return keys;
    },
    defer: (fn) => void cleanups.push(fn),
    async gateway(transport, options) {
      const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: quiet, transport: transportOf(transport), ...options });
      cleanups.push(() => gw.close());
      return gw;
    },
    async hello(gw, token, subprotocol = SUBPROTOCOL_MSGPACK) {
      const c = await RawClient.connect(gw.url, subprotocol, false);
      cleanups.push(() => c.close());
      c.send({ type: 'hello', id: 1, protocol: 1, ...(token !== undefined ? { token } : {}) });
      return c;
    },
    sign: (claims, options = {}) => signToken(claims, { ...options, key: harness.keys.secret }),
  };
  return harness;
}
