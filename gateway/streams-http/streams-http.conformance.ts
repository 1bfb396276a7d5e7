/**
 * The published Durable Streams conformance suite (`@durable-streams/server-conformance-tests`,
 * the protocol's contract) against spool's HTTP door: on LMDB and on Redis (a private
 * redis-server), over both transports. Run by `npm run test:ds` (vitest: the suite is written for
 * it); SPOOL_DS_ONLY=lmdb-ws (etc.) runs one of the four, SPOOL_DS_ONLY=redis-cluster-ws runs it
 * on a private 3-master Redis Cluster.
 *
 * The gateway answers a long-poll at the tail after 500 ms (the reference server's test setting),
 * so the suite's long-poll cases, which wait for that answer, stay short.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe } from 'vitest';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { startCluster, startRedis, stopAllRedis, type RedisServer } from '../../store/test-helpers/redis-server';
import { startGateway, type Gateway } from '../gateway';
import type { TransportName } from '../transport';

const only = process.env['SPOOL_DS_ONLY'];
interface Setup {
  readonly store: 'lmdb' | 'redis' | 'redis-cluster';
  readonly transport: TransportName;
}
const all: readonly Setup[] = [
  { store: 'lmdb', transport: 'ws' },
  { store: 'lmdb', transport: 'uws' },
  { store: 'redis', transport: 'ws' },
  { store: 'redis', transport: 'uws' },
  // Not in the default run (CI time); SPOOL_DS_ONLY=redis-cluster-ws runs it.
  { store: 'redis-cluster', transport: 'ws' },
];
const setups = all.filter((s) => (only === undefined ? s.store !== 'redis-cluster' : only === `${s.store}-${s.transport}`));

for (const setup of setups) {
  describe(`spool ${setup.store} ${setup.transport}`, () => {
    // Mutable: the suite reads baseUrl when its cases run, after beforeAll started the gateway.
    const options = { baseUrl: '', longPollTimeoutMs: 2_000 };
    let gateway: Gateway | undefined;
    let redis: RedisServer | undefined;
    let dir: string | undefined;

    beforeAll(async () => {
      const logger = pino({ level: process.env['SPOOL_LOG_LEVEL'] ?? 'warn' });
      let store: { redis: string } | { redisCluster: readonly string[] } | { data: string };
      if (setup.store === 'redis') {
        redis = await startRedis();
        store = { redis: redis.url };
      } else if (setup.store === 'redis-cluster') {
        store = { redisCluster: (await startCluster(3)).endpoints };
      } else {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-ds-'));
        store = { data: dir };
      }
      gateway = await startGateway({ port: 0, transport: setup.transport, logger, streamsLongPollMs: 500, ...store });
      options.baseUrl = `http://127.0.0.1:${gateway.port}`;
    });

    afterAll(async () => {
      await gateway?.close();
      await redis?.stop();
      if (setup.store === 'redis-cluster') await stopAllRedis();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    runConformanceTests(options);
  });
}
