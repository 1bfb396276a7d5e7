/**
 * The processes and proxies of one chaos run, all on loopback:
 *
 *   producers ──▶ producer proxy i ──┐
 *                                    ├──▶ gateway i ──▶ redis proxy i ──▶ redis-server (private, AOF)
 *   readers   ──▶ reader proxy i ────┘        (or LMDB under a temp dir)
 *
 * Gateways run in the runner's process ('inproc': their TelemetrySink is recorded) or as child
 * processes of the real CLI ('child': kill -9, SIGSTOP, restart on the same port and data).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startGateway, type DomainEvent, type Gateway } from '../gateway';
import type { ReadItem } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import { openRedisStore } from '../store/redis';
import type { SessionStore } from '../store/types';
import { startRedis, type RedisServer } from '../store/test-helpers/redis-server';
import { FaultProxy, freePort } from './fault-proxy';
import { GatewayProcess } from './gateway-process';
import type { Scenario } from './scenario';

/** Defaults of the chaos runs: short heartbeats and idle timeouts so faults resolve within a run. */
export const CHAOS_HEARTBEAT_MS = 1000;
export const CHAOS_IDLE_TIMEOUT_MS = 4000;

export interface GatewayNode {
  readonly index: number;
  readonly port: number;
  /** Direct URL (no proxy): the final log read and raw storms use it. */
  readonly url: string;
  readonly producerProxy: FaultProxy;
  readonly readerProxy: FaultProxy;
  readonly redisProxy: FaultProxy | undefined;
  readonly producerUrl: string;
  readonly readerUrl: string;
  /** Set in mode 'child'. */
  readonly process: GatewayProcess | undefined;
  /** Set in mode 'inproc'. */
  readonly inproc: Gateway | undefined;
  /** Its admin listener (open: chaos gateways run without auth), for operators' resets and deletes. */
  readonly adminUrl: string;
  /** A heavy fault (kill, stop) is running on it. */
  busy: boolean;
  /** False while killed or stopped. */
  up: boolean;
}

/** A telemetry event as recorded, with the runner's clock. */
export type TimedEvent = DomainEvent & { readonly t: number };

export class ChaosTopology {
  /** resume.* and write.fenced events of in-process gateways, in order. */
  readonly telemetry: TimedEvent[] = [];
  /** buffer.trimmed events of in-process gateways (counted, not kept: there can be many). */
  trimmedEvents = 0;
  private readonly cleanups: Array<() => Promise<void> | void> = [];

  private constructor(
    readonly scenario: Scenario,
    readonly redis: RedisServer | undefined,
    readonly gateways: GatewayNode[],
    readonly dataDir: string,
  ) {}

  static async start(scenario: Scenario, rand: () => number): Promise<ChaosTopology> {
    const { topology } = scenario;
    const mode = topology.mode ?? 'child';
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `spool-chaos-${scenario.name}-`));
    let redis: RedisServer | undefined;
    const gateways: GatewayNode[] = [];
    const self = new ChaosTopology(scenario, undefined, gateways, dataDir);
    self.cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    try {
      if (topology.store === 'redis') {
        redis = await startRedis({ appendonly: true });
        const server = redis;
        self.cleanups.push(() => server.stop());
        (self as { redis: RedisServer | undefined }).redis = redis;
      }
      const settings = scenario.gateway ?? {};
      const heartbeatMs = settings.heartbeatMs ?? CHAOS_HEARTBEAT_MS;
      const idleMs = settings.generationIdleTimeoutMs ?? CHAOS_IDLE_TIMEOUT_MS;
      for (let index = 0; index < topology.gateways; index++) {
        const redisProxy = redis ? await FaultProxy.start(redis.port, { rand }) : undefined;
        if (redisProxy) self.cleanups.push(() => redisProxy.close());
        const redisUrl = redisProxy ? `redis://127.0.0.1:${redisProxy.port}` : undefined;
        let port: number;
        let adminPort: number;
        let child: GatewayProcess | undefined;
        let inproc: Gateway | undefined;
        if (mode === 'child') {
          port = await freePort();
          adminPort = await freePort();
          const env: Record<string, string> = {
            SPOOL_TRANSPORT: topology.transport,
            SPOOL_HEARTBEAT_MS: String(heartbeatMs),
            SPOOL_GENERATION_IDLE_TIMEOUT_MS: String(idleMs),
            SPOOL_LOG_LEVEL: 'error',
          };
          if (redisUrl) env['SPOOL_REDIS_URL'] = redisUrl;
          if (settings.retentionEvents !== undefined) env['SPOOL_RETENTION_EVENTS'] = String(settings.retentionEvents);
          if (settings.sessionTtlMs !== undefined) env['SPOOL_SESSION_TTL_MS'] = String(settings.sessionTtlMs);
          const proc = new GatewayProcess({ port, adminPort, data: path.join(dataDir, `gw${index}`), env });
          self.cleanups.push(() => proc.kill9());
          await proc.start();
          child = proc;
        } else {
          const gw = await startGateway({
            port: 0,
            data: path.join(dataDir, `gw${index}`),
            ...(redisUrl ? { redis: redisUrl } : {}),
            transport: topology.transport,
            adminPort: 0,
            heartbeatMs,
            generationIdleTimeoutMs: idleMs,
            ...(settings.retentionEvents !== undefined ? { retention: { maxEvents: settings.retentionEvents } } : {}),
            ...(settings.sessionTtlMs !== undefined ? { sessionTtlMs: settings.sessionTtlMs } : {}),
            logger: pino({ level: 'silent' }),
            telemetry: {
              emit: (event) => {
                if (event.name === 'buffer.trimmed') self.trimmedEvents += 1;
                else if (event.name !== 'generation.end') self.telemetry.push({ ...event, t: Date.now() });
              },
            },
          });
          self.cleanups.push(() => gw.close());
          port = gw.port;
          adminPort = gw.adminPort as number;
          inproc = gw;
        }
        const producerProxy = await FaultProxy.start(port, { rand });
        const readerProxy = await FaultProxy.start(port, { rand });
        self.cleanups.push(() => producerProxy.close());
        self.cleanups.push(() => readerProxy.close());
        gateways.push({
          index,
          port,
          url: `ws://127.0.0.1:${port}/v1`,
          producerProxy,
          readerProxy,
          redisProxy,
          producerUrl: `ws://127.0.0.1:${producerProxy.port}/v1`,
          readerUrl: `ws://127.0.0.1:${readerProxy.port}/v1`,
          process: child,
          inproc,
          adminUrl: `http://127.0.0.1:${adminPort}`,
          busy: false,
          up: true,
        });
      }
      return self;
    } catch (error) {
      await self.close();
      throw error;
    }
  }

  private reader: SessionStore | undefined;

  /**
   * A session's whole log, read from the store itself (not through a gateway, whose view of a
   * session another process wrote to may lag): every retained event and a gap for each trimmed
   * range, from offset 0 to the head.
   */
  async readLog(session: string): Promise<ReadItem[]> {
    const store = await this.store();
    const items: ReadItem[] = [];
    let after = 0;
    // Bounded: every page moves `after` forward, and there are at most head / 1 pages.
    for (let page = 0; page < 100_000; page++) {
      const result = await store.read(session, after, 1000);
      items.push(...result.items);
      if (result.through <= after || result.through >= result.head) break;
      after = result.through;
    }
    return items;
  }

  private async store(): Promise<SessionStore> {
    const inproc = this.gateways[0]?.inproc;
    if (inproc) return inproc.store;
    if (!this.reader) {
      if (this.redis) {
        this.reader = await openRedisStore({ url: this.redis.url });
      } else {
        // LMDB allows readers in other processes beside the gateway that writes.
        this.reader = openLmdbStore({ path: path.join(this.dataDir, 'gw0') });
      }
      const reader = this.reader;
      this.cleanups.push(() => reader.close());
    }
    return this.reader;
  }

  /** Prometheus text of gateway i's /metrics, or undefined while it is down. */
  async metrics(i: number): Promise<string | undefined> {
    const node = this.gateways[i];
    if (!node || !node.up) return undefined;
    if (node.inproc) return await node.inproc.metrics.render();
    try {
      return await node.process?.metrics();
    } catch {
      return undefined;
    }
  }

  /** Every proxy of the run, for the stats in the report. */
  proxies(): FaultProxy[] {
    return this.gateways.flatMap((g) => [g.producerProxy, g.readerProxy, ...(g.redisProxy ? [g.redisProxy] : [])]);
  }

  /** Tears everything down in reverse order; never throws. */
  async close(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // teardown is best effort: the next cleanup must still run
      }
    }
  }
}
