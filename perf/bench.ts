/**
 * `npm run bench`: spool against a raw Redis baseline, on one workload, in one run (issue 10).
 *
 *   npm run bench [-- --sessions 50] [--per-session 2000] [--bytes 64] [--window 64]
 *                 [--rate 50000] [--configs raw-redis,lmdb-ws,…] [--memory] [--profile]
 *                 [--json] [--record]
 *   npm run bench -- --otel   OpenTelemetry's cost instead (bench-otel.ts): lmdb-ws with telemetry
 *                             removed, unconfigured, traced at 100 % and at 1 %
 *
 * The workload: S sessions × M chunks of B-byte text, each session with its own producer
 * (upload socket, at most `window` chunks unacknowledged, as fast as that allows) and its own
 * live reader client; the gateway in a child process (throughput.ts, gateway-child.ts), the
 * producers and readers in this one. It runs on each configuration in turn:
 *
 *   raw-redis      no gateway: a Node child doing pipelined ioredis XADD (≤ window in flight
 *                  per stream) and one XREAD BLOCK reader per stream (raw-redis.ts)
 *   lmdb-ws        the default: embedded LMDB, durability commit, ws transport
 *   lmdb-uws       the same on uWebSockets.js
 *   lmdb-http      lmdb-ws's gateway, spoken to through the Durable Streams door: POST batches
 *                  of ≤ window chunks (one request in flight) and SSE readers (http-workload.ts)
 *   lmdb-ws-fsync  LMDB with --durability fsync (SPOOL_DURABILITY=fsync)
 *   redis-ws       the Redis store
 *   paced          lmdb-ws again, producers paced to an aggregate `rate` chunks/s
 *   paced-linger   the same with the producers' SDK lingerMs at TARGETS.pacedLingerMs (2 ms)
 *
 * Every Redis is a private redis-server on a free port (store/test-helpers/redis-server.ts),
 * never the shared one on 6379. Each configuration reports delivered chunks/s (first write →
 * last chunk a reader got), delivery p50/p99 (write() → the reader has it), ack p99, the
 * gateway's CPU per chunk and its peak RSS (VmRSS sampled every 100 ms), and its ratio to the
 * raw baseline; the issue's targets are printed next to the figures, never asserted.
 *
 * `--memory` adds memory per idle session (10,000 sessions) and per connection (10,000 ws
 * connections) from memory.ts. `--profile` has every gateway child write a CPU profile under
 * .perf-out/bench-profile/<timestamp>/<config>/ and prints its top functions by self time.
 * `--record` appends one line to perf/history/bench.jsonl (CI never passes it).
 *
 * Progress goes to stderr, the table (or with `--json` the report as JSON) to stdout.
 * Correctness is checked, speed never: the exit status is non-zero only when a reader missed,
 * repeated or reordered a chunk, or a run could not be carried out.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startRedis } from '../store/test-helpers/redis-server';
import {
  BENCH_RUNS,
  PACED_CONFIG,
  checkTargets,
  formatBenchReport,
  historyLine,
  SPOOL_CONFIGS,
  TARGETS,
  type BenchMemory,
  type BenchProfile,
  type BenchReport,
  type BenchRow,
  type BenchRunName,
  type BenchWorkload,
  type PacedRow,
  type SpoolConfigName,
} from './bench-report';
import { appendJsonLine, HISTORY_DIR, historyMachine, REPO_ROOT } from './history';
import { measureConnections, measureIdleSessions } from './memory';
import { topSelfTime } from './profile-top';
import { formatOtelCost, runOtelCost } from './bench-otel';
import { runRawRedis, type RawRedisResult } from './raw-redis';
import { positiveInt, positiveNumber, progress, runMain } from './report';
import { runHttpThroughput } from './http-workload';
import { runThroughput, type ThroughputResult, type ThroughputStore } from './throughput';

// ------------------------------------------------------------------ options

export interface BenchOptions {
  /** @default 50 */
  readonly sessions?: number;
  /** @default 2000 */
  readonly perSession?: number;
  /** @default 64 */
  readonly bytes?: number;
  /** Unacknowledged chunks per producer (and XADDs in flight per raw stream). @default 64 */
  readonly window?: number;
  /** The paced run's aggregate chunks/s. @default TARGETS.pacedRate */
  readonly rate?: number;
  /** @default every run in {@link BENCH_RUNS} */
  readonly runs?: readonly BenchRunName[];
  /** Memory per idle session and per connection, at these populations. */
  readonly memory?: { readonly sessions: number; readonly connections: number };
  /** Every gateway child writes a CPU profile under `<profileDir>/<config>/`. */
  readonly profileDir?: string;
  /** Functions listed per profile. @default 20 */
  readonly profileTop?: number;
  /** Append the run's line to this JSONL file (the CLI's --record: perf/history/bench.jsonl). */
  readonly historyFile?: string;
  readonly log?: (line: string) => void;
}

// ------------------------------------------------------------------ the run

/** A figure JSON can carry: NaN and ±Infinity (not measured) become null. */
const known = (n: number): number | null => (Number.isFinite(n) ? n : null);

function redisVersion(): string | null {
  try {
    return /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    return null;
  }
}

function spoolRow(name: SpoolConfigName, r: ThroughputResult, raw: BenchRow | null): BenchRow {
  const config = SPOOL_CONFIGS[name];
  return {
    name,
    store: config.store,
    transport: config.transport,
    durability: config.durability,
    served: r.served,
    chunks: r.chunks,
    chunksPerSec: r.deliveredPerSec,
    ackedPerSec: r.chunksPerSec,
    deliveryP50: r.delivery.p50,
    deliveryP99: r.delivery.p99,
    ackP50: r.ack.p50,
    ackP99: r.ack.p99,
    gatewayCpuUsPerChunk: known(r.gatewayCpuUsPerChunk),
    gatewayRssMaxBytes: r.gatewayRssMaxBytes > 0 ? r.gatewayRssMaxBytes : null,
    redisCpuUsPerChunk: config.store === 'redis' ? known(r.redisCpuUsPerChunk) : null,
    loadCpuUsPerChunk: known(r.loadCpuUsPerChunk),
    ratioToRaw: raw === null ? null : known(r.deliveredPerSec / raw.chunksPerSec),
  };
}

function rawRow(r: RawRedisResult): BenchRow {
  return {
    name: 'raw-redis',
    store: 'redis',
    transport: 'ioredis',
    durability: null,
    served: 'ioredis',
    chunks: r.chunks,
    chunksPerSec: r.deliveredPerSec,
    ackedPerSec: r.chunksPerSec,
    deliveryP50: r.delivery.p50,
    deliveryP99: r.delivery.p99,
    ackP50: r.ack.p50,
    ackP99: r.ack.p99,
    gatewayCpuUsPerChunk: known(r.cpuUsPerChunk),
    gatewayRssMaxBytes: r.rssMaxBytes > 0 ? r.rssMaxBytes : null,
    redisCpuUsPerChunk: known(r.redisCpuUsPerChunk),
    loadCpuUsPerChunk: null,
    ratioToRaw: 1,
  };
}

/** The `.cpuprofile` files a gateway child wrote into `dir`, each with its top functions. */
function readProfiles(config: string, dir: string, top: number): BenchProfile[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .map((file) => {
      const full = path.join(dir, file);
      return { config, file: full, top: topSelfTime(JSON.parse(fs.readFileSync(full, 'utf8')), top) };
    });
}

/** Runs every configuration asked for, in order, and reports; a run that fails is a problem, the rest still run. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const say = options.log ?? ((): void => undefined);
  const workload: BenchWorkload = {
    sessions: options.sessions ?? 50,
    perSession: options.perSession ?? 2000,
    bytes: options.bytes ?? 64,
    window: options.window ?? 64,
  };
  const rate = options.rate ?? TARGETS.pacedRate;
  const runs = new Set(options.runs ?? BENCH_RUNS);
  const startedAt = new Date();
  const started = performance.now();
  const environment = { ...historyMachine(), redis: redisVersion() };
  const problems: string[] = [];
  const profiles: BenchProfile[] = [];
  const fail = (name: string, error: unknown): void => {
    problems.push(`${name}: the run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  };
  const spool = async (label: string, name: SpoolConfigName, pace?: number, lingerMs?: number): Promise<ThroughputResult> => {
    const config = SPOOL_CONFIGS[name];
    const profileDir = options.profileDir === undefined ? undefined : path.join(options.profileDir, label);
    const redis = config.store === 'redis' ? await startRedis() : undefined;
    try {
      const store: ThroughputStore = redis === undefined ? { kind: 'lmdb', durability: config.durability ?? 'commit' } : { kind: 'redis', url: redis.url, pid: redis.pid };
      const common = { name: label, sessions: workload.sessions, perSession: workload.perSession, bytes: workload.bytes, window: workload.window, store, ...(profileDir !== undefined ? { cpuProfileDir: profileDir } : {}) };
      const result =
        config.transport === 'http'
          ? await runHttpThroughput({ ...common, log: say })
          : await runThroughput({ ...common, transport: config.transport, ...(pace !== undefined ? { pace } : {}), ...(lingerMs !== undefined && lingerMs > 0 ? { lingerMs } : {}) });
      problems.push(...result.problems.map((p) => `${label}: ${p}`));
      if (profileDir !== undefined) profiles.push(...readProfiles(label, profileDir, options.profileTop ?? 20));
      return result;
    } finally {
      await redis?.stop();
    }
  };

  const size = `${workload.sessions} sessions × ${workload.perSession.toLocaleString('en-US')} chunks × ${workload.bytes} B, window ${workload.window}`;
  let raw: BenchRow | null = null;
  if (runs.has('raw-redis')) {
    say(`raw-redis: ioredis XADD + XREAD BLOCK in a child process on a private redis-server; ${size}`);
    const redis = await startRedis();
    try {
      const result = await runRawRedis({ url: redis.url, redisPid: redis.pid, ...workload });
      problems.push(...result.problems.map((p) => `raw-redis: ${p}`));
      raw = rawRow(result);
    } catch (error) {
      fail('raw-redis', error);
    } finally {
      await redis.stop();
    }
  }

  const configs: BenchRow[] = [];
  const spoolNames = (Object.keys(SPOOL_CONFIGS) as SpoolConfigName[]).filter((name) => runs.has(name));
  if (spoolNames.length > 0 || runs.has('paced') || runs.has('paced-linger')) {
    // This process's SDK paths get compiled before anything is measured (each run also warms its own gateway up).
    say('warm-up run (untimed)');
    try {
      const warm = await runThroughput({ name: 'warm-up', transport: 'ws', sessions: Math.min(10, workload.sessions), perSession: Math.min(1000, workload.perSession), bytes: workload.bytes });
      problems.push(...warm.problems.map((p) => `warm-up: ${p}`));
    } catch (error) {
      fail('warm-up', error);
    }
  }
  for (const name of spoolNames) {
    say(`${name}: gateway child (${SPOOL_CONFIGS[name].store}, ${SPOOL_CONFIGS[name].transport}${SPOOL_CONFIGS[name].durability === null ? '' : `, durability ${SPOOL_CONFIGS[name].durability}`}); ${size}`);
    try {
      configs.push(spoolRow(name, await spool(name, name), raw));
    } catch (error) {
      fail(name, error);
    }
  }

  const pacedRun = async (label: 'paced' | 'paced-linger', lingerMs: number): Promise<PacedRow | null> => {
    if (!runs.has(label)) return null;
    const linger = lingerMs === 0 ? '' : `, the producers' SDK lingerMs ${lingerMs}`;
    say(`${label}: ${PACED_CONFIG} at ${rate.toLocaleString('en-US')} chunks/s across ${workload.sessions} producers${linger}; ${size}`);
    try {
      const r = await spool(label, PACED_CONFIG, rate, lingerMs);
      return {
        config: PACED_CONFIG,
        rate,
        lingerMs,
        chunksPerSec: r.deliveredPerSec,
        deliveryP50: r.delivery.p50,
        deliveryP99: r.delivery.p99,
        ackP99: r.ack.p99,
        gatewayCpuUsPerChunk: known(r.gatewayCpuUsPerChunk),
        gatewayRssMaxBytes: r.gatewayRssMaxBytes > 0 ? r.gatewayRssMaxBytes : null,
      };
    } catch (error) {
      fail(label, error);
      return null;
    }
  };
  const paced = await pacedRun('paced', 0);
  const pacedLinger = await pacedRun('paced-linger', TARGETS.pacedLingerMs);

  let memory: BenchMemory | null = null;
  if (options.memory !== undefined) {
    const { sessions, connections } = options.memory;
    say(`memory: ${sessions.toLocaleString('en-US')} idle sessions, then ${connections.toLocaleString('en-US')} ws connections`);
    try {
      const idle = await measureIdleSessions({ sessions, log: say });
      const conns = await measureConnections({ transport: 'ws', connections, log: say });
      problems.push(...idle.problems.map((p) => `memory (idle sessions): ${p}`), ...conns.problems.map((p) => `memory (connections): ${p}`));
      memory = { idleSessions: sessions, idleSessionBytes: idle.perSession.rss, idleSessionMarginalBytes: idle.perSessionMarginal.rss, connections, connectionBytes: conns.perConnection.rss };
    } catch (error) {
      fail('memory', error);
    }
  }

  const ok = problems.length === 0;
  const report: BenchReport = {
    ok,
    problems,
    startedAt: startedAt.toISOString(),
    wallSeconds: (performance.now() - started) / 1000,
    environment,
    workload,
    raw,
    configs,
    paced,
    pacedLinger,
    targets: checkTargets(configs, paced, memory, pacedLinger),
    memory,
    profiles,
    recorded: null,
  };
  if (options.historyFile === undefined) return report;
  if (!ok) {
    say(`not recorded in ${options.historyFile}: the run had problems`);
    return report;
  }
  appendJsonLine(options.historyFile, historyLine(report));
  return { ...report, recorded: { file: options.historyFile } };
}

// ------------------------------------------------------------------ CLI

function parseRuns(value: string | undefined): readonly BenchRunName[] | undefined {
  if (value === undefined) return undefined;
  const names = value.split(',').map((name) => name.trim());
  for (const name of names) {
    if (!(BENCH_RUNS as readonly string[]).includes(name)) throw new Error(`--configs: unknown run ${name}; pick from ${BENCH_RUNS.join(', ')}`);
  }
  return names as BenchRunName[];
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      sessions: { type: 'string' },
      'per-session': { type: 'string' },
      bytes: { type: 'string' },
      window: { type: 'string' },
      rate: { type: 'string' },
      configs: { type: 'string' },
      memory: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      record: { type: 'boolean', default: false },
      otel: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.otel === true) {
    const workload = {
      sessions: positiveInt(values.sessions, '--sessions', 50),
      perSession: positiveInt(values['per-session'], '--per-session', 2000),
      bytes: positiveInt(values.bytes, '--bytes', 64),
      window: positiveInt(values.window, '--window', 64),
    };
    progress('otel: warm-up run (untimed)');
    await runThroughput({ name: 'warm-up', transport: 'ws', sessions: Math.min(10, workload.sessions), perSession: Math.min(1000, workload.perSession), bytes: workload.bytes });
    const otel = await runOtelCost({ ...workload, log: progress });
    console.log(values.json === true ? JSON.stringify(otel) : formatOtelCost(otel));
    return otel.rows.every((r) => r.problems.length === 0) ? 0 : 1;
  }
  const runs = parseRuns(values.configs);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const report = await runBench({
    sessions: positiveInt(values.sessions, '--sessions', 50),
    perSession: positiveInt(values['per-session'], '--per-session', 2000),
    bytes: positiveInt(values.bytes, '--bytes', 64),
    window: positiveInt(values.window, '--window', 64),
    rate: positiveNumber(values.rate, '--rate', TARGETS.pacedRate),
    ...(runs !== undefined ? { runs } : {}),
    ...(values.memory === true ? { memory: { sessions: 10_000, connections: 10_000 } } : {}),
    ...(values.profile === true ? { profileDir: path.join(REPO_ROOT, '.perf-out', 'bench-profile', stamp) } : {}),
    ...(values.record === true ? { historyFile: path.join(HISTORY_DIR, 'bench.jsonl') } : {}),
    log: progress,
  });
  console.log(values.json === true ? JSON.stringify(report) : formatBenchReport(report));
  return report.ok ? 0 : 1;
}

if (require.main === module) runMain('bench', main);
