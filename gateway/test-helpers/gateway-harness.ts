/**
 * The harness of gateway tests that start real gateways on real stores: a cleanup list run after
 * each test (in reverse order), one private redis-server per test file (started on first use,
 * stopped after the file), and stores, gateways and raw clients that clean up after themselves.
 *
 *   const h = gatewayHarness();                  // at the top of the file: registers the hooks
 *   const gw = await h.gateway({ store: await h.store('redis'), transport: transportNamed('uws') });
 *   const client = await h.client(gw);
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SUBPROTOCOL_MSGPACK, type Subprotocol } from '../../protocol/types';
import { openLmdbStore } from '../../store/lmdb';
import { MemoryStore } from '../../store/memory';
import { openRedisStore } from '../../store/redis';
import { startRedis, stopAllRedis, type RedisServer } from '../../store/test-helpers/redis-server';
import type { SessionStore } from '../../store/types';
import { startGateway, type Gateway, type GatewayOptions } from '../index';
import type { Transport, TransportName } from '../transport';
import { loadUwsTransport } from '../transport-uws';
import { wsTransport } from '../transport-ws';
import { RawClient } from './raw-client';

export const quiet = pino({ level: 'silent' });

export type StoreKind = 'memory' | 'lmdb' | 'redis';

/** The transport of that name (uWebSockets.js loaded on first use). */
export function transportNamed(name: TransportName): Transport {
  return name === 'ws' ? wsTransport : loadUwsTransport();
}

export interface GatewayHarness {
  /** Runs `fn` after the current test (the last registered first). */
  cleanup(fn: () => Promise<void> | void): void;
  /** The file's redis-server. */
  redis(): Promise<RedisServer>;
  /** A store of that kind, closed after the test: LMDB in a temporary directory, Redis a connection of its own to the file's server. */
  store(kind: StoreKind): Promise<SessionStore>;
  /** A gateway on port 0, silent unless `options` give a logger, closed after the test. */
  gateway(options?: GatewayOptions): Promise<Gateway>;
  /** A raw protocol client of `gw` (msgpack unless said), closed after the test. */
  client(gw: Gateway, subprotocol?: Subprotocol): Promise<RawClient>;
}

/** Registers afterEach/afterAll hooks of the calling test file; call it once at its top. */
export function gatewayHarness(): GatewayHarness {
  const cleanups: Array<() => Promise<void> | void> = [];
  let server: Promise<RedisServer> | undefined;
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  // Every server the file started, its own or a test's (startRedis keeps the list).
  afterAll(() => stopAllRedis());
  const cleanup = (fn: () => Promise<void> | void): void => void cleanups.push(fn);
  const redis = (): Promise<RedisServer> => (server ??= startRedis());
  return {
    cleanup,
    redis,
    async store(kind) {
      let store: SessionStore;
      if (kind === 'memory') store = new MemoryStore();
      else if (kind === 'redis') store = await openRedisStore({ url: (await redis()).url });
      else {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-gw-test-'));
        cleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
        store = openLmdbStore({ path: dir });
      }
      cleanup(() => store.close());
      return store;
    },
    async gateway(options = {}) {
      const gw = await startGateway({ port: 0, logger: quiet, ...options });
      cleanup(() => gw.close());
      return gw;
    },
    async client(gw, subprotocol = SUBPROTOCOL_MSGPACK) {
      const client = await RawClient.connect(gw.url, subprotocol);
      cleanup(() => client.close());
      return client;
    },
  };
}
