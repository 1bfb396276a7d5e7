/**
 * Throughput and latency against a gateway in its own process, through the SDK over real
 * WebSockets on loopback: S sessions, each with one producer (its own upload socket) writing M
 * chunks as fast as credit allows and one reader (its own client) following it from offset 0.
 * The same workload as bench:quick's scenarios A and B, but the gateway runs in a child process
 * (gateway-child.ts), so producers and readers here never share its event loop. Each run
 * starts with an untimed warm-up: the same workload once on sessions of its own (at most 2,000
 * chunks per session), so what is timed is a warm gateway, not a cold start.
 *
 * Latencies: `ack` is write() → the cumulative ack covering that seq arriving on the producer's
 * socket (ack-tap.ts); `delivery` is write() → the reader's `for await` yielding that chunk.
 * Both ends of both are in this process, on one clock.
 *
 * The store is LMDB in a fresh temp dir (durability `commit` or `fsync`) or a Redis the caller
 * started; producers may be paced to an aggregate rate instead of writing as fast as credit
 * allows; the gateway's peak RSS is sampled from /proc every 100 ms over the run.
 *
 * Correctness is checked, speed never: every reader must receive gen.start, every chunk exactly
 * once in seq order with its data intact, and gen.end done, at contiguous offsets.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildGateway, cpuSecondsOf, metricValue, samplePeakRss } from './gateway-child';
import { payload, payloads, Problems, produceFlat, producePaced, SessionFleet, withTimeout, type FleetFigures } from './workload';

/** Where the gateway child keeps its sessions. */
export type ThroughputStore =
  | { readonly kind: 'lmdb'; readonly durability?: 'commit' | 'fsync' }
  /** A Redis the caller runs; `pid` (when known) lets its CPU time be measured. */
  | { readonly kind: 'redis'; readonly url: string; readonly pid?: number | null };

/** One run's workload and setting. */
export interface ThroughputSpec {
  readonly name: string;
  readonly transport: 'ws' | 'uws';
  readonly sessions: number;
  readonly perSession: number;
  /** @default LMDB, durability commit (the gateway's default) */
  readonly store?: ThroughputStore;
  /** Characters (= UTF-8 bytes) of each chunk's text. @default 40 */
  readonly bytes?: number;
  /** Chunks each producer keeps unacknowledged ({@link FleetOptions}). @default the SDK's */
  readonly window?: number;
  /** The producers' SDK lingerMs ({@link FleetOptions}). @default the SDK's */
  readonly lingerMs?: number;
  /** Aggregate chunks/s, spread evenly over the producers; as fast as credit allows when absent. */
  readonly pace?: number;
  /** The gateway child writes its `.cpuprofile` here when it exits. */
  readonly cpuProfileDir?: string;
  /** More environment for the gateway child (e.g. OTEL_* for bench --otel). */
  readonly env?: Readonly<Record<string, string>>;
}

/** One run of the workload through a gateway child. */
export interface ThroughputResult extends FleetFigures {
  readonly name: string;
  /** Transport asked for, and the one the child reports it served with. */
  readonly transport: string;
  readonly served: string;
  readonly store: 'lmdb' | 'redis';
  /** LMDB's durability; null on Redis (whatever that server's persistence is). */
  readonly durability: 'commit' | 'fsync' | null;
  /** Aggregate chunks/s the producers were paced to; null when as fast as credit allows. */
  readonly pace: number | null;
  /** Mean events per store append (the child's spool_persistence_batch_size). */
  readonly storeBatch: number;
  /** CPU time the gateway process used over the run, per chunk, in microseconds. */
  readonly gatewayCpuUsPerChunk: number;
  /** CPU time this process (producers and readers) used over the run, per chunk, in µs. */
  readonly loadCpuUsPerChunk: number;
  /** CPU time the redis-server used over the run, per chunk, in µs (NaN: not on Redis, or no pid). */
  readonly redisCpuUsPerChunk: number;
  /** Highest VmRSS of the gateway child from its start to the end of the run, in bytes. */
  readonly gatewayRssMaxBytes: number;
  readonly problems: readonly string[];
}

/** Chunks per session the warm-up writes at most (a larger run warms up with this many). */
const WARMUP_PER_SESSION = 2000;

/**
 * The workload's own shape once, untimed, on sessions of its own: the measured run meets a
 * gateway and a load generator whose hot paths are compiled and whose heaps have grown to their
 * working size, as a gateway in service has, rather than a process just started (a run of
 * 100,000 chunks lasts about a second: one cold start weighs on it). Its correctness is checked
 * like the measured run's.
 */
async function warmUp(url: string, spec: ThroughputSpec, text: (seq: number) => string, problems: Problems): Promise<void> {
  const sessions = Array.from({ length: spec.sessions }, (_, i) => `warmup-${spec.transport}-${i}`);
  const fleet = new SessionFleet(url, sessions, Math.min(spec.perSession, WARMUP_PER_SESSION), problems, {
    text,
    ...(spec.window !== undefined ? { window: spec.window } : {}),
    ...(spec.lingerMs !== undefined ? { lingerMs: spec.lingerMs } : {}),
  });
  try {
    await fleet.ready(60_000);
    await fleet.run(produceFlat);
  } finally {
    await fleet.close();
  }
}

/**
 * One run on a fresh gateway child (`transport`, on `store`: LMDB in a fresh temp dir removed
 * afterwards, or the caller's Redis).
 */
export async function runThroughput(spec: ThroughputSpec): Promise<ThroughputResult> {
  const store = spec.store ?? { kind: 'lmdb' };
  const text = spec.bytes === undefined ? payload : payloads(spec.bytes);
  // With SPOOL_REDIS_URL the gateway keeps sessions in Redis; --data is required but unused.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `spool-pressure-tp-${spec.transport}-`));
  const env: Record<string, string> = { SPOOL_RETENTION_EVENTS: String(Math.max(100_000, spec.perSession + 16)), ...spec.env };
  if (store.kind === 'redis') env['SPOOL_REDIS_URL'] = store.url;
  else if (store.durability !== undefined) env['SPOOL_DURABILITY'] = store.durability;
  const problems = new Problems();
  let gateway: ChildGateway | undefined;
  let fleet: SessionFleet | undefined;
  let rss: { stop(): number } | undefined;
  try {
    gateway = await ChildGateway.start({
      data: dir,
      transport: spec.transport,
      env,
      ...(spec.cpuProfileDir !== undefined ? { cpuProfileDir: spec.cpuProfileDir } : {}),
    });
    rss = samplePeakRss(gateway.pid, 100);
    const url = gateway.url;
    await withTimeout(warmUp(url, spec, text, problems), 300_000, 'the warm-up run');
    const sessions = Array.from({ length: spec.sessions }, (_, i) => `pressure-${spec.transport}-${i}`);
    fleet = new SessionFleet(url, sessions, spec.perSession, problems, {
      text,
      ...(spec.window !== undefined ? { window: spec.window } : {}),
      ...(spec.lingerMs !== undefined ? { lingerMs: spec.lingerMs } : {}),
    });
    // The clock starts with every upload socket open and every reader live on its gen.start.
    await fleet.ready(60_000);

    const redisPid = store.kind === 'redis' ? store.pid : undefined;
    const metrics0 = await gateway.metrics();
    const gatewayCpu0 = gateway.cpuSeconds();
    const redisCpu0 = cpuSecondsOf(redisPid);
    const loadCpu0 = process.cpuUsage();
    await fleet.run(spec.pace === undefined ? produceFlat : producePaced(spec.pace / spec.sessions));
    const gatewayCpu = gateway.cpuSeconds() - gatewayCpu0;
    const redisCpu = cpuSecondsOf(redisPid) - redisCpu0;
    const loadCpuUsage = process.cpuUsage(loadCpu0);
    const gatewayRssMaxBytes = rss.stop();

    const figures = fleet.figures();
    // Store batches of the timed run only (the warm-up's are in metrics0).
    const metrics = await gateway.metrics();
    const delta = (name: string): number => metricValue(metrics, name) - metricValue(metrics0, name);
    const batchCount = delta('spool_persistence_batch_size_count');
    if (gateway.transport !== spec.transport) problems.add(`asked for transport ${spec.transport}, the gateway served ${gateway.transport}`);
    return {
      name: spec.name,
      transport: spec.transport,
      served: gateway.transport,
      store: store.kind,
      durability: store.kind === 'lmdb' ? (store.durability ?? 'commit') : null,
      pace: spec.pace ?? null,
      ...figures,
      storeBatch: batchCount > 0 ? delta('spool_persistence_batch_size_sum') / batchCount : 0,
      gatewayCpuUsPerChunk: (gatewayCpu * 1e6) / figures.chunks,
      loadCpuUsPerChunk: (loadCpuUsage.user + loadCpuUsage.system) / figures.chunks,
      redisCpuUsPerChunk: (redisCpu * 1e6) / figures.chunks,
      gatewayRssMaxBytes,
      problems: problems.done(),
    };
  } finally {
    rss?.stop();
    await fleet?.close();
    await gateway?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
