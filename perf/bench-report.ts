/**
 * What `npm run bench` reports (bench.ts runs it): the configurations it compares, the shape of
 * its report, the issue's targets checked against it, the line `--record` appends to the
 * history, and the text it prints: the workload, one row per configuration, the paced run, the
 * targets next to the figures, the profiles, and correctness last.
 */
import { gitCommit, type HistoryMachine } from './history';
import type { SelfTime } from './profile-top';
import { correctness, figure, int, orUnknown, table } from './report';

// ------------------------------------------------------------------ configurations and targets

/** The spool configurations, in the order they run. */
export const SPOOL_CONFIGS = {
  'lmdb-ws': { store: 'lmdb', transport: 'ws', durability: 'commit' },
  'lmdb-uws': { store: 'lmdb', transport: 'uws', durability: 'commit' },
  /** The Durable Streams door (PROTOCOL §16): POST batches and SSE readers (http-workload.ts). */
  'lmdb-http': { store: 'lmdb', transport: 'http', durability: 'commit' },
  'lmdb-ws-fsync': { store: 'lmdb', transport: 'ws', durability: 'fsync' },
  'redis-ws': { store: 'redis', transport: 'ws', durability: null },
} as const;

export type SpoolConfigName = keyof typeof SPOOL_CONFIGS;
/** Every run `--configs` may name. */
export type BenchRunName = SpoolConfigName | 'raw-redis' | 'paced' | 'paced-linger';
export const BENCH_RUNS: readonly BenchRunName[] = ['raw-redis', 'lmdb-ws', 'lmdb-uws', 'lmdb-http', 'lmdb-ws-fsync', 'redis-ws', 'paced', 'paced-linger'];

/** The paced run's configuration. */
export const PACED_CONFIG: SpoolConfigName = 'lmdb-ws';

/** Issue 10's targets, for the default configuration unless named otherwise. Printed, never asserted. */
export const TARGETS = {
  lmdbChunksPerSec: 150_000,
  lmdbRatioToRaw: 1.2,
  redisChunksPerSec: 120_000,
  saturatedP99Ms: 50,
  pacedRate: 50_000,
  pacedP99Ms: 15,
  /** The SDK lingerMs of the `paced-linger` run (the paced run with producers batching up to this long). */
  pacedLingerMs: 2,
  gatewayRssBytes: 150e6,
  idleSessionBytes: 2e3,
  connectionBytes: 10e3,
} as const;

// ------------------------------------------------------------------ results

/**
 * One configuration's figures (ms for latencies); null where a figure could not be measured.
 * On the raw-redis row the CPU and RSS are the baseline's Node process (there is no gateway).
 */
export interface BenchRow {
  readonly name: SpoolConfigName | 'raw-redis';
  readonly store: 'lmdb' | 'redis';
  readonly transport: 'ws' | 'uws' | 'http' | 'ioredis';
  /** LMDB's durability; null on Redis. */
  readonly durability: 'commit' | 'fsync' | null;
  /** The transport the gateway reported it listened with (a failed uws load falls back to ws). */
  readonly served: string;
  readonly chunks: number;
  /** Delivered chunks/s: chunks ÷ (first write → last chunk a reader got). */
  readonly chunksPerSec: number;
  /** Acknowledged chunks/s: chunks ÷ (first write → last ack). */
  readonly ackedPerSec: number;
  readonly deliveryP50: number;
  readonly deliveryP99: number;
  readonly ackP50: number;
  readonly ackP99: number;
  readonly gatewayCpuUsPerChunk: number | null;
  readonly gatewayRssMaxBytes: number | null;
  /** redis-server CPU per chunk; null off Redis. */
  readonly redisCpuUsPerChunk: number | null;
  /** This process (SDK producers and readers) CPU per chunk; null on raw-redis. */
  readonly loadCpuUsPerChunk: number | null;
  /** chunksPerSec ÷ the raw baseline's; null without a baseline. */
  readonly ratioToRaw: number | null;
}

/** The paced run. */
export interface PacedRow {
  readonly config: SpoolConfigName;
  /** Aggregate chunks/s the producers were paced to. */
  readonly rate: number;
  /** The producers' SDK lingerMs (0: the SDK's default). */
  readonly lingerMs: number;
  readonly chunksPerSec: number;
  readonly deliveryP50: number;
  readonly deliveryP99: number;
  readonly ackP99: number;
  readonly gatewayCpuUsPerChunk: number | null;
  readonly gatewayRssMaxBytes: number | null;
}

/** One target of the issue against the figure it is about. */
export interface TargetCheck {
  readonly what: string;
  readonly target: string;
  /** The figure, formatted; `-` when its run did not take place. */
  readonly figure: string;
  /** null: not measured in this run. */
  readonly met: boolean | null;
}

export interface BenchMemory {
  readonly idleSessions: number;
  /** VmRSS growth per idle session, bytes. */
  readonly idleSessionBytes: number;
  /** The same for a second lot of as many sessions (what one more costs); absent in older history lines. */
  readonly idleSessionMarginalBytes?: number;
  readonly connections: number;
  /** VmRSS growth per open ws connection, bytes. */
  readonly connectionBytes: number;
}

export interface BenchProfile {
  readonly config: string;
  readonly file: string;
  readonly top: readonly SelfTime[];
}

export interface BenchWorkload {
  readonly sessions: number;
  readonly perSession: number;
  readonly bytes: number;
  readonly window: number;
}

export interface BenchReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly startedAt: string;
  readonly wallSeconds: number;
  readonly environment: HistoryMachine & { readonly redis: string | null };
  readonly workload: BenchWorkload;
  /** The raw baseline (null when not run or failed). */
  readonly raw: BenchRow | null;
  /** The spool configurations that ran, in order. */
  readonly configs: readonly BenchRow[];
  readonly paced: PacedRow | null;
  /** The paced run again with the producers' SDK lingerMs at TARGETS.pacedLingerMs. */
  readonly pacedLinger: PacedRow | null;
  readonly targets: readonly TargetCheck[];
  readonly memory: BenchMemory | null;
  readonly profiles: readonly BenchProfile[];
  /** The history line written, when recorded. */
  readonly recorded: { readonly file: string } | null;
}

// ------------------------------------------------------------------ targets

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;
const perSec = (n: number): string => `${Math.round(n).toLocaleString('en-US')}/s`;

/** The issue's targets against this run's figures. */
export function checkTargets(configs: readonly BenchRow[], paced: PacedRow | null, memory: BenchMemory | null, pacedLinger: PacedRow | null = null): TargetCheck[] {
  const row = (name: SpoolConfigName): BenchRow | undefined => configs.find((c) => c.name === name);
  const check = (what: string, target: string, value: number | null | undefined, format: (n: number) => string, met: (n: number) => boolean): TargetCheck =>
    value === null || value === undefined ? { what, target, figure: '-', met: null } : { what, target, figure: format(value), met: met(value) };
  const lmdb = row('lmdb-ws');
  return [
    check('lmdb-ws delivered chunks/s', `≥ ${perSec(TARGETS.lmdbChunksPerSec)}`, lmdb?.chunksPerSec, perSec, (n) => n >= TARGETS.lmdbChunksPerSec),
    check('lmdb-ws ÷ raw baseline', `≥ ×${TARGETS.lmdbRatioToRaw}`, lmdb?.ratioToRaw, (n) => `×${n.toFixed(2)}`, (n) => n >= TARGETS.lmdbRatioToRaw),
    check('redis-ws delivered chunks/s', `≥ ${perSec(TARGETS.redisChunksPerSec)}`, row('redis-ws')?.chunksPerSec, perSec, (n) => n >= TARGETS.redisChunksPerSec),
    check('lmdb-ws delivery p99, saturated', `≤ ${TARGETS.saturatedP99Ms} ms`, lmdb?.deliveryP99, (n) => `${n.toFixed(1)} ms`, (n) => n <= TARGETS.saturatedP99Ms),
    check(
      `delivery p99 paced at ${perSec(paced?.rate ?? TARGETS.pacedRate)}`,
      `≤ ${TARGETS.pacedP99Ms} ms at ${perSec(TARGETS.pacedRate)}`,
      paced?.deliveryP99,
      (n) => `${n.toFixed(1)} ms`,
      (n) => n <= TARGETS.pacedP99Ms,
    ),
    check(
      `the same, SDK lingerMs ${pacedLinger?.lingerMs ?? TARGETS.pacedLingerMs}`,
      `≤ ${TARGETS.pacedP99Ms} ms at ${perSec(TARGETS.pacedRate)}`,
      pacedLinger?.deliveryP99,
      (n) => `${n.toFixed(1)} ms`,
      (n) => n <= TARGETS.pacedP99Ms,
    ),
    check('lmdb-ws gateway peak RSS', `≤ ${mb(TARGETS.gatewayRssBytes)}`, lmdb?.gatewayRssMaxBytes, mb, (n) => n <= TARGETS.gatewayRssBytes),
    check('idle session RSS', `< ${TARGETS.idleSessionBytes / 1e3} KB`, memory?.idleSessionBytes, (n) => `${(n / 1e3).toFixed(2)} KB`, (n) => n < TARGETS.idleSessionBytes),
    check('connection RSS', `< ${TARGETS.connectionBytes / 1e3} KB`, memory?.connectionBytes, (n) => `${(n / 1e3).toFixed(2)} KB`, (n) => n < TARGETS.connectionBytes),
  ];
}

// ------------------------------------------------------------------ history line

/** The line `--record` appends: date, commit, machine, workload, every configuration's figures (raw-redis first), the paced run. */
export function historyLine(report: BenchReport): Record<string, unknown> {
  const git = gitCommit();
  const { redis: _redis, ...machine } = report.environment;
  const config = (row: BenchRow): Record<string, unknown> => ({
    name: row.name,
    store: row.store,
    transport: row.transport,
    durability: row.durability,
    chunksPerSec: row.chunksPerSec,
    deliveryP50: row.deliveryP50,
    deliveryP99: row.deliveryP99,
    ackP99: row.ackP99,
    gatewayCpuUsPerChunk: row.gatewayCpuUsPerChunk,
    gatewayRssMaxBytes: row.gatewayRssMaxBytes,
    ratioToRaw: row.ratioToRaw,
  });
  const { paced, pacedLinger } = report;
  return {
    date: report.startedAt,
    commit: git?.commit ?? null,
    dirty: git?.dirty ?? null,
    machine,
    workload: { sessions: report.workload.sessions, perSession: report.workload.perSession, bytes: report.workload.bytes, window: report.workload.window },
    configs: [...(report.raw === null ? [] : [report.raw]), ...report.configs].map(config),
    paced: paced === null ? null : { rate: paced.rate, deliveryP50: paced.deliveryP50, deliveryP99: paced.deliveryP99 },
    pacedLinger: pacedLinger === null ? null : { rate: pacedLinger.rate, lingerMs: pacedLinger.lingerMs, deliveryP50: pacedLinger.deliveryP50, deliveryP99: pacedLinger.deliveryP99 },
  };
}

// ------------------------------------------------------------------ text

const ms = orUnknown(figure);
const fig = (n: number | null): string => (n === null ? '-' : ms(n));
const mbCell = (bytes: number | null): string => (bytes === null ? '-' : (bytes / 1e6).toFixed(0));
const ratio = (n: number | null): string => (n === null ? '-' : `×${n.toFixed(2)}`);

function label(row: BenchRow): string {
  if (row.name === 'raw-redis') return 'raw-redis (ioredis) *';
  const served = row.served === row.transport ? '' : ` (served ${row.served})`;
  return `${row.name}${row.durability === null ? '' : ` (${row.durability})`}${served}`;
}

/** The readable report: table on top, targets and notes below. */
export function formatBenchReport(r: BenchReport): string {
  const env = r.environment;
  const w = r.workload;
  const rows = [...(r.raw === null ? [] : [r.raw]), ...r.configs];
  const out: string[] = [
    `spool bench: ${w.sessions} sessions × ${int(w.perSession)} chunks × ${w.bytes} B text; per session one producer (≤ ${w.window} chunks unacked) and one live reader client`,
    `node ${env.node}, ${env.cpus} CPUs (${env.model}), ${(env.totalMem / 2 ** 30).toFixed(1)} GiB, ${env.platform}; load average ${env.loadAverage.toFixed(2)} at the start; ` +
      `redis-server ${env.redis ?? 'not installed'} (private, free port); ${r.wallSeconds.toFixed(0)} s`,
    'gateway in a child process; producers and readers in this process; every Redis a private redis-server',
    '',
    ...table(
      ['config', 'delivered/s', 'delivery ms p50 / p99', 'ack ms p99', 'gw cpu µs/chunk', 'gw peak rss MB', 'redis cpu µs/chunk', '÷ raw'],
      rows.map((row) => [
        label(row),
        int(row.chunksPerSec),
        `${ms(row.deliveryP50)} / ${ms(row.deliveryP99)}`,
        ms(row.ackP99),
        fig(row.gatewayCpuUsPerChunk),
        mbCell(row.gatewayRssMaxBytes),
        fig(row.redisCpuUsPerChunk),
        ratio(row.ratioToRaw),
      ]),
    ),
  ];
  if (r.raw !== null) out.push('* raw-redis: no gateway; its cpu and rss columns are the baseline\'s Node process (XADD writers and XREAD readers)');
  out.push(
    'delivered/s: chunks ÷ (first write → last chunk a reader got); delivery: write() → the reader has it; ack: write() → the ack (XADD reply) covering it;',
    'gw cpu: the gateway process\'s CPU time over the run per chunk; gw peak rss: its VmRSS, sampled every 100 ms from its start to the end of the run',
  );
  for (const p of [r.paced, r.pacedLinger]) {
    if (p === null) continue;
    out.push(
      '',
      `${p.lingerMs === 0 ? 'paced' : `paced, SDK lingerMs ${p.lingerMs}`} (${p.config}, ${int(p.rate)} chunks/s across ${w.sessions} producers, ${int(p.rate / w.sessions)} each): delivered ${int(p.chunksPerSec)}/s, ` +
        `delivery ms p50 ${ms(p.deliveryP50)} / p99 ${ms(p.deliveryP99)}, ack p99 ${ms(p.ackP99)} ms, gw cpu ${fig(p.gatewayCpuUsPerChunk)} µs/chunk, gw peak rss ${mbCell(p.gatewayRssMaxBytes)} MB`,
    );
  }
  if (r.memory !== null) {
    const m = r.memory;
    out.push(
      '',
      `memory: ${(m.idleSessionBytes / 1e3).toFixed(2)} KB RSS per idle session (${int(m.idleSessions)} sessions; ` +
        `${m.idleSessionMarginalBytes === undefined ? '-' : (m.idleSessionMarginalBytes / 1e3).toFixed(2)} KB each for ${int(m.idleSessions)} more), ` +
        `${(m.connectionBytes / 1e3).toFixed(2)} KB per open ws connection (${int(m.connections)}); after a forced GC in the gateway child`,
    );
  }
  out.push(
    '',
    'targets (issue 10; printed, never asserted):',
    ...table(
      ['target', 'wanted', 'this run', 'verdict'],
      r.targets.map((t) => [t.what, t.target, t.figure, t.met === null ? 'not measured' : t.met ? 'met' : 'MISSED']),
    ),
  );
  for (const profile of r.profiles) {
    out.push('', `gateway CPU profile, ${profile.config}: ${profile.file}`, ...profile.top.map(({ fn, share }) => `  ${(share * 100).toFixed(1).padStart(5)} %  ${fn}`));
  }
  if (r.profiles.length > 0) out.push('(profiling slows the gateway: the figures of a --profile run are not comparable)');
  if (r.recorded !== null) out.push('', `recorded: ${r.recorded.file}`);
  const runs = rows.length + (r.paced === null ? 0 : 1) + (r.pacedLinger === null ? 0 : 1);
  out.push('', correctness(r, `correctness: ${runs === 1 ? 'in the one run' : `in all ${runs} runs`} every reader got every chunk exactly once, in order, intact`));
  return out.join('\n');
}
