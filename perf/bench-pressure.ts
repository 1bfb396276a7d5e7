/**
 * `npm run bench:pressure`: the figures of issue 4, measured in one run.
 *
 *   1. ws vs uws: chunks/s, ack and delivery latency p50/p99 for one session (one producer, one
 *      reader) and for 100 sessions (a producer and a reader each), same workload on each
 *      transport, embedded LMDB in a fresh temp dir each time (throughput.ts).
 *   2. Memory per idle session: 10,000 sessions touched once, actors loaded, no readers
 *      (memory.ts), against a target of 2 KiB each.
 *   3. Memory per open connection: 10,000 WebSockets that said hello, on ws and on uws
 *      (memory.ts, conn-worker.ts), against a target of 10 KiB each.
 *   4. Eviction cost at 256 / 4,096 / 65,536 retained events: memory, LMDB and Redis stores and
 *      the gateway's HotBuffer (eviction.ts); the target is a flat cost.
 *
 * Every gateway runs in its own child process (gateway-child.ts: the real CLI with
 * `--transport`), so the load generator (SDK producers and readers, thousands of client sockets)
 * never shares the gateway's event loop, CPU time or heap; memory is read from the child's
 * /proc/<pid>/status and its heap after a forced GC.
 *
 * No thresholds: targets are printed next to the figures. The exit status is non-zero only on a
 * correctness failure (a chunk lost, duplicated or reordered, a connection refused, an append
 * that did not evict what it had to).
 *
 *   node dist/perf/bench-pressure.js [--quick] [--json] [--no-redis]
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG } from '../gateway';
import { EVICTION_BATCH, EVICTION_SIZES, runEviction, type EvictionReport } from './eviction';
import type { LatencySummary } from './latency';
import { measureConnections, measureIdleSessions, openFileLimit, type ConnectionsResult, type IdleSessionsResult } from './memory';
import { correctness, figure, int, machine, printReport, progress, runMain, table, type Machine } from './report';
import { runThroughput, type ThroughputResult } from './throughput';

export const TARGET_BYTES_PER_IDLE_SESSION = 2 * 1024;
export const TARGET_BYTES_PER_CONNECTION = 10 * 1024;

export interface PressureSizes {
  /** Scenario A: chunks in the one session. */
  readonly singleChunks: number;
  /** Scenario B: sessions, and chunks per session. */
  readonly sessions: number;
  readonly perSession: number;
  /** Runs of each scenario on each transport (interleaved); the median run by chunks/s is reported. */
  readonly repeats: number;
  readonly idleSessions: number;
  readonly connections: number;
  /** Timed appends of 64 per store and retention size. */
  readonly evictionBatches: number;
  readonly hotPushed: number;
  readonly hotRemoved: number;
}

export const FULL_SIZES: PressureSizes = {
  singleChunks: 20_000,
  sessions: 100,
  perSession: 1000,
  repeats: 5,
  idleSessions: 10_000,
  connections: 10_000,
  evictionBatches: 128,
  hotPushed: 262_144,
  hotRemoved: 65_536,
};

export const QUICK_SIZES: PressureSizes = {
  singleChunks: 5000,
  sessions: 100,
  perSession: 200,
  repeats: 1,
  idleSessions: 2000,
  connections: 2000,
  evictionBatches: 32,
  hotPushed: 65_536,
  hotRemoved: 16_384,
};

export interface TransportPair {
  /** The median run (by chunks/s) of each transport. */
  readonly ws: ThroughputResult;
  readonly uws: ThroughputResult;
  /** chunks/s of every run, in run order. */
  readonly wsRuns: readonly number[];
  readonly uwsRuns: readonly number[];
  /** uws / ws. Above 1 for chunks/s means uws is faster; below 1 for latencies means uws is quicker. */
  readonly ratios: {
    readonly chunksPerSec: number;
    readonly ackP50: number;
    readonly ackP99: number;
    readonly deliveryP50: number;
    readonly deliveryP99: number;
    readonly gatewayCpuPerChunk: number;
  };
}

export interface PressureReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly environment: Machine & { readonly openFilesLimit: number };
  readonly sizes: PressureSizes;
  readonly throughput: { readonly single: TransportPair; readonly concurrent: TransportPair };
  readonly idleSessions: IdleSessionsResult;
  readonly connections: { readonly ws: ConnectionsResult; readonly uws: ConnectionsResult };
  readonly eviction: EvictionReport;
  readonly targets: { readonly bytesPerIdleSession: number; readonly bytesPerConnection: number };
  readonly seconds: number;
}

export interface PressureOptions {
  readonly sizes?: PressureSizes;
  /** Measure the Redis store too (needs redis-server on PATH). @default true */
  readonly redis?: boolean;
  readonly log?: (line: string) => void;
}

/** The run with the median chunks/s (the lower middle one for an even count). */
function medianRun(runs: readonly ThroughputResult[]): ThroughputResult {
  const sorted = [...runs].sort((a, b) => a.chunksPerSec - b.chunksPerSec);
  return sorted[(sorted.length - 1) >> 1] as ThroughputResult;
}

function pair(wsRuns: readonly ThroughputResult[], uwsRuns: readonly ThroughputResult[]): TransportPair {
  const ws = medianRun(wsRuns);
  const uws = medianRun(uwsRuns);
  return {
    ws,
    uws,
    wsRuns: wsRuns.map((r) => r.chunksPerSec),
    uwsRuns: uwsRuns.map((r) => r.chunksPerSec),
    ratios: {
      chunksPerSec: uws.chunksPerSec / ws.chunksPerSec,
      ackP50: uws.ack.p50 / ws.ack.p50,
      ackP99: uws.ack.p99 / ws.ack.p99,
      deliveryP50: uws.delivery.p50 / ws.delivery.p50,
      deliveryP99: uws.delivery.p99 / ws.delivery.p99,
      gatewayCpuPerChunk: uws.gatewayCpuUsPerChunk / ws.gatewayCpuUsPerChunk,
    },
  };
}

export async function runPressureBench(options: PressureOptions = {}): Promise<PressureReport> {
  const sizes = options.sizes ?? FULL_SIZES;
  const say = options.log ?? ((): void => undefined);
  const started = performance.now();

  const perSession = sizes.perSession.toLocaleString('en-US');
  const singleName = `A: 1 session × ${sizes.singleChunks.toLocaleString('en-US')}, 1 reader`;
  const concurrentName = `B: ${sizes.sessions} sessions × ${perSession}, ${sizes.sessions} readers`;
  const run = (name: string, transport: 'ws' | 'uws', sessions: number, chunks: number): Promise<ThroughputResult> => {
    say(`${name} on ${transport}`);
    return runThroughput({ name, transport, sessions, perSession: chunks });
  };
  // An untimed run first: this process's SDK paths get compiled before anything is measured
  // (each run also warms its own fresh gateway up).
  say('warm-up run (untimed)');
  const warmUp = await runThroughput({ name: 'warm-up', transport: 'ws', sessions: 10, perSession: 1000 });
  // Transports alternate run by run, so a drift of the machine hits both alike.
  const runs = { singleWs: [] as ThroughputResult[], singleUws: [] as ThroughputResult[], concurrentWs: [] as ThroughputResult[], concurrentUws: [] as ThroughputResult[] };
  for (let i = 0; i < sizes.repeats; i++) {
    runs.singleWs.push(await run(singleName, 'ws', 1, sizes.singleChunks));
    runs.singleUws.push(await run(singleName, 'uws', 1, sizes.singleChunks));
  }
  for (let i = 0; i < sizes.repeats; i++) {
    runs.concurrentWs.push(await run(concurrentName, 'ws', sizes.sessions, sizes.perSession));
    runs.concurrentUws.push(await run(concurrentName, 'uws', sizes.sessions, sizes.perSession));
  }

  say(`memory per idle session: ${sizes.idleSessions} sessions`);
  const idleSessions = await measureIdleSessions({ sessions: sizes.idleSessions, log: say });
  const connectionsWs = await measureConnections({ transport: 'ws', connections: sizes.connections, log: say });
  const connectionsUws = await measureConnections({ transport: 'uws', connections: sizes.connections, log: say });

  const eviction = await runEviction({
    sizes: EVICTION_SIZES,
    batches: sizes.evictionBatches,
    hotPushed: sizes.hotPushed,
    hotRemoved: sizes.hotRemoved,
    redis: options.redis ?? true,
    log: say,
  });

  const problems = [
    ...[warmUp, ...runs.singleWs, ...runs.singleUws, ...runs.concurrentWs, ...runs.concurrentUws].flatMap((r) => r.problems.map((p) => `${r.name} (${r.transport}): ${p}`)),
    ...idleSessions.problems.map((p) => `idle sessions: ${p}`),
    ...[connectionsWs, connectionsUws].flatMap((r) => r.problems.map((p) => `connections (${r.transport}): ${p}`)),
    ...eviction.stores.flatMap((r) => r.problems.map((p) => `eviction ${r.store} ${r.retained}: ${p}`)),
    ...eviction.hotBuffer.flatMap((r) => r.problems.map((p) => `eviction HotBuffer ${r.retained}: ${p}`)),
  ];
  return {
    ok: problems.length === 0,
    problems,
    environment: { ...machine(), openFilesLimit: openFileLimit() },
    sizes,
    throughput: { single: pair(runs.singleWs, runs.singleUws), concurrent: pair(runs.concurrentWs, runs.concurrentUws) },
    idleSessions,
    connections: { ws: connectionsWs, uws: connectionsUws },
    eviction,
    targets: { bytesPerIdleSession: TARGET_BYTES_PER_IDLE_SESSION, bytesPerConnection: TARGET_BYTES_PER_CONNECTION },
    seconds: (performance.now() - started) / 1000,
  };
}

// ------------------------------------------------------------------ output

const pair2 = (l: LatencySummary): string => `${figure(l.p50)} / ${figure(l.p99)}`;
const us = figure;
const ns = (microseconds: number): string => (microseconds * 1000).toFixed(microseconds < 0.1 ? 1 : 0);
const ratio = (n: number): string => `×${n.toFixed(2)}`;
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(2)} KiB`;
const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

function verdict(value: number, target: number): string {
  return value < target ? `under ${kib(target)}: met` : `under ${kib(target)}: NOT met`;
}

/** The readable report `npm run bench:pressure` prints. */
export function formatPressureReport(report: PressureReport): string {
  const env = report.environment;
  const out: string[] = [
    `spool bench:pressure: node ${env.node}, ${env.cpus} CPUs, ${env.platform}, open-files limit ${env.openFilesLimit}; ${report.seconds.toFixed(0)} s`,
    'Each gateway runs in its own child process (the real CLI, embedded LMDB in a fresh temp dir); producers, readers and',
    "client sockets run in this process or in forked connection workers, never on the gateway's event loop.",
    '',
  ];

  // 1. ws vs uws
  const { single, concurrent } = report.throughput;
  const repeats = report.sizes.repeats;
  out.push(
    `1. ws vs uws: SDK over loopback (msgpack), each producer writing as fast as credit allows; ${repeats} run(s) per scenario and transport,`,
    '   alternating transports; the median run by chunks/s is shown, with every run\'s chunks/s beside it',
  );
  const tpRows = [single, concurrent].flatMap((p) =>
    [
      { r: p.ws, all: p.wsRuns },
      { r: p.uws, all: p.uwsRuns },
    ].map(({ r, all }, i) => [
      i === 0 ? r.name : '',
      r.served === r.transport ? r.transport : `${r.transport}→${r.served}`,
      int(r.chunks),
      r.seconds.toFixed(2),
      int(r.chunksPerSec),
      all.map(int).join(' '),
      pair2(r.ack),
      pair2(r.delivery),
      r.storeBatch.toFixed(0),
      us(r.gatewayCpuUsPerChunk),
      us(r.loadCpuUsPerChunk),
    ]),
  );
  out.push(
    ...table(['scenario', 'transport', 'chunks', 'secs', 'chunks/s', 'all runs', 'ack ms p50/p99', 'delivery ms p50/p99', 'store batch', 'gateway CPU µs/chunk', 'load CPU µs/chunk'], tpRows),
  );
  for (const [label, p] of [['A', single], ['B', concurrent]] as const) {
    const r = p.ratios;
    out.push(
      `uws/ws ${label}: chunks/s ${ratio(r.chunksPerSec)}; ack p50 ${ratio(r.ackP50)}, p99 ${ratio(r.ackP99)}; delivery p50 ${ratio(r.deliveryP50)}, p99 ${ratio(r.deliveryP99)}; gateway CPU per chunk ${ratio(r.gatewayCpuPerChunk)}`,
    );
  }
  out.push(
    `ack: write() → the cumulative ack covering it; delivery: write() → the reader yields it. Writing as fast as credit allows (${int(DEFAULT_CONFIG.credit.frames)} unacked`,
    'chunks per generation), latencies are mostly queueing. CPU columns: seconds of CPU over the run per chunk, gateway child and load generator.',
    '',
  );

  // 2. idle sessions
  const idle = report.idleSessions;
  out.push(
    `2. memory per idle session: ${int(idle.sessions)} sessions, one append each (actor loaded, no reader), after ${int(idle.warmup)} warm-up sessions;`,
    `   measured ${(idle.elapsedMs / 1000).toFixed(1)} s after the first touch, before sessionIdleMs (${int(idle.sessionIdleMs / 1000)} s) evicts idle actors: the worst case`,
  );
  out.push(
    ...table(
      ['', 'VmRSS', 'RssAnon', 'heapTotal', 'heapUsed', '/metrics heap', 'target (VmRSS)'],
      [
        ['before', mib(idle.before.rss), mib(idle.before.rssAnon), mib(idle.before.heapTotal), mib(idle.before.heapUsed), mib(idle.before.gaugeHeap), ''],
        ['after', mib(idle.after.rss), mib(idle.after.rssAnon), mib(idle.after.heapTotal), mib(idle.after.heapUsed), mib(idle.after.gaugeHeap), ''],
        ['after as many again', mib(idle.afterSecond.rss), mib(idle.afterSecond.rssAnon), mib(idle.afterSecond.heapTotal), mib(idle.afterSecond.heapUsed), mib(idle.afterSecond.gaugeHeap), ''],
        [
          'per session',
          kib(idle.perSession.rss),
          kib(idle.perSession.rssAnon),
          kib((idle.after.heapTotal - idle.before.heapTotal) / idle.sessions),
          kib(idle.perSession.heap),
          kib(idle.perSession.gaugeHeap),
          verdict(idle.perSession.rss, report.targets.bytesPerIdleSession),
        ],
        [
          'per session, the second lot',
          kib(idle.perSessionMarginal.rss),
          kib(idle.perSessionMarginal.rssAnon),
          kib((idle.afterSecond.heapTotal - idle.after.heapTotal) / idle.sessions),
          kib(idle.perSessionMarginal.heap),
          '',
          '',
        ],
      ],
    ),
  );
  out.push(
    `   sessions loaded at the last sample: ${int(idle.afterSecond.sessionsActive)} (spool_sessions_active). Samples follow a forced GC in the child; VmRSS includes LMDB's`,
    '   memory-mapped pages (RssFile), RssAnon does not; heapTotal − heapUsed is heap V8 grew during the burst of appends and keeps.',
    '   /metrics heap = spool_memory_bytes_per_session × spool_sessions_active. The second lot costs what one more session costs once the first',
    '   lot has grown the process (young generation, heap reserve): the target is judged on the first lot.',
    '',
  );

  // 3. connections
  const conns = [report.connections.ws, report.connections.uws];
  const first = conns[0] as ConnectionsResult;
  out.push(
    `3. memory per open connection: ${int(first.connections)} WebSockets that said hello (no subscription), after ${int(first.warmup)} warm-up connections;`,
    `   clients spread over ${first.workers} forked worker process(es)`,
  );
  out.push(
    ...table(
      ['transport', 'VmRSS before → after', 'VmRSS/conn', 'RssAnon/conn', 'heapUsed/conn', 'target (VmRSS)'],
      conns.map((c) => [
        c.served === c.transport ? c.transport : `${c.transport}→${c.served}`,
        `${mib(c.before.rss)} → ${mib(c.after.rss)}`,
        kib(c.perConnection.rss),
        kib(c.perConnection.rssAnon),
        kib(c.perConnection.heap),
        verdict(c.perConnection.rss, report.targets.bytesPerConnection),
      ]),
    ),
    '',
  );

  // 4. eviction
  const ev = report.eviction;
  out.push(
    `4. eviction cost: a session at its retention limit (maxEvents = N, priorities 0/1/2 mixed), timed appends of ${EVICTION_BATCH} chunks that each evict ${EVICTION_BATCH};`,
    '   medians per event. control = the same appends with nothing to evict; eviction = the difference; "vs N=256" = evicting / evicting at 256',
  );
  const base = new Map<string, number>();
  for (const row of ev.stores) if (!base.has(row.store)) base.set(row.store, row.evictingUs);
  out.push(
    ...table(
      ['store', 'N retained', 'evicted', 'evicting µs/event', 'control µs/event', 'eviction µs/event', 'vs N=256'],
      ev.stores.map((r) => [r.store, int(r.retained), int(r.evicted), us(r.evictingUs), us(r.controlUs), us(r.evictionUs), ratio(r.evictingUs / (base.get(r.store) as number))]),
    ),
  );
  for (const note of ev.skipped) out.push(`   skipped: ${note}`);
  const hotBase = ev.hotBuffer[0];
  out.push('', '   gateway HotBuffer (hotBufferEvents = N): push() of 64 into a full buffer (each evicts 64) vs into one with room; remove() of trimmed offsets');
  out.push(
    ...table(
      ['HotBuffer', 'N retained', 'push evicting ns/event', 'push control ns/event', 'eviction ns/event', 'vs N=256', 'remove() ns/offset', 'vs N=256'],
      ev.hotBuffer.map((r) => [
        '',
        int(r.retained),
        ns(r.pushEvictingUs),
        ns(r.pushControlUs),
        ns(r.pushEvictionUs),
        ratio(r.pushEvictingUs / (hotBase?.pushEvictingUs ?? Number.NaN)),
        ns(r.removeUs),
        ratio(r.removeUs / (hotBase?.removeUs ?? Number.NaN)),
      ]),
    ),
    '   target: flat across N.',
    '',
  );

  out.push(
    correctness(report, 'correctness: every reader got every chunk exactly once, in order; every connection was welcomed; every evicting append evicted exactly 64'),
  );
  return out.join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'no-redis': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const report = await runPressureBench({
    sizes: values.quick === true ? QUICK_SIZES : FULL_SIZES,
    redis: values['no-redis'] !== true,
    log: progress,
  });
  return printReport(report, formatPressureReport, values.json === true);
}

if (require.main === module) runMain('bench:pressure', main);
