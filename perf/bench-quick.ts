/**
 * `npm run bench:quick`: throughput and latency of spool on the embedded LMDB store, through
 * the SDK over real WebSockets on loopback, next to a raw LMDB baseline measured in the same
 * run (so ratios mean something on a noisy machine).
 *
 *   lone  one session; each write waits for its ack before the next: latency with no queue
 *   A     one session, one producer, one reader: N chunks as fast as credit allows
 *   B     S sessions at once, one producer client (a generation, hence an upload socket, per
 *         session) and one reader client per session: M chunks each as fast as credit allows
 *   raw   the same number of chunks through `store.append` directly, in the batch size the
 *         gateway ended up using for that scenario (one append in flight per session, as in
 *         the gateway)
 *
 * Latencies: `ack` is write() → the cumulative ack covering that seq arriving on the producer's
 * socket (observed through the SDK's WebSocket option, see ack-tap.ts); `delivery` is write()
 * → the reader's `for await` yielding that chunk. Producer, readers and gateway share one
 * process and clock (performance.now()).
 *
 * Correctness is checked, speed never: every reader must receive gen.start, every chunk
 * exactly once in seq order with its data intact, and gen.end done, in contiguous offsets.
 * Exit status is non-zero only when that check fails.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { DEFAULT_CONFIG, startGateway, type Gateway } from '../gateway';
import { openLmdbStore } from '../store/lmdb';
import { DEFAULT_STORE_OPTIONS, type WriteItem } from '../store/types';
import type { LatencySummary } from './latency';
import { correctness, figure, int, machine, positiveInt, printReport, progress, runMain, table, type Machine } from './report';
import { payload, Problems, produceFlat, produceLone, SessionFleet, type FleetFigures } from './workload';

// ------------------------------------------------------------------ results

/** One scenario driven through the gateway. */
export interface ScenarioResult extends FleetFigures {
  readonly name: string;
  /** Mean events per store append the gateway made (its `spool_persistence_batch_size`). */
  readonly storeBatch: number;
  /** Correctness failures (empty when every reader got every chunk exactly once). */
  readonly problems: readonly string[];
}

/** Raw `store.append` on LMDB with no gateway in front. */
export interface BaselineResult {
  readonly name: string;
  readonly sessions: number;
  readonly chunks: number;
  readonly batch: number;
  readonly seconds: number;
  readonly chunksPerSec: number;
  readonly problems: readonly string[];
}

export interface BenchOptions {
  /** Scenario A: chunks in the one session. @default 20000 */
  readonly chunks?: number;
  /** Scenario B: concurrent sessions. @default 100 */
  readonly sessions?: number;
  /** Scenario B: chunks per session. @default 1000 */
  readonly perSession?: number;
  /** Lone-write scenario: writes, each awaited. @default 300 */
  readonly lone?: number;
  /** Progress lines while running (the CLI prints them to stderr). */
  readonly log?: (line: string) => void;
}

export interface BenchReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly environment: Machine;
  readonly lone: ScenarioResult;
  readonly single: ScenarioResult;
  readonly concurrent: ScenarioResult;
  readonly rawSingle: BaselineResult;
  readonly rawConcurrent: BaselineResult;
  /** Gateway chunks/s divided by raw LMDB chunks/s at the same batch size. */
  readonly ratios: { readonly single: number; readonly concurrent: number };
}

// ------------------------------------------------------------------ helpers

function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `spool-bench-${label}-`));
}

/** Mean of the gateway's `spool_persistence_batch_size` histogram (0 when nothing was stored). */
async function meanStoreBatch(gateway: Gateway): Promise<number> {
  const text = await gateway.metrics.render();
  const sum = Number(/^spool_persistence_batch_size_sum (\S+)$/m.exec(text)?.[1] ?? NaN);
  const count = Number(/^spool_persistence_batch_size_count (\S+)$/m.exec(text)?.[1] ?? NaN);
  return count > 0 ? sum / count : 0;
}

// ------------------------------------------------------------------ scenarios

interface ScenarioSpec {
  readonly name: string;
  readonly label: string;
  readonly sessions: number;
  readonly perSession: number;
  readonly mode: 'flat' | 'lone';
}

/** Runs one scenario against a fresh gateway on a fresh LMDB directory, then removes both. */
async function runScenario(spec: ScenarioSpec): Promise<ScenarioResult> {
  const dir = tempDir(spec.label);
  const problems = new Problems();
  let gateway: Gateway | undefined;
  let fleet: SessionFleet | undefined;
  try {
    gateway = await startGateway({
      port: 0,
      data: dir,
      logger: pino({ level: 'warn' }),
      retention: { maxEvents: Math.max(DEFAULT_STORE_OPTIONS.retention.maxEvents, spec.perSession + 16) },
    });
    const sessions = Array.from({ length: spec.sessions }, (_, i) => `bench-${spec.label}-${i}`);
    fleet = new SessionFleet(gateway.url, sessions, spec.perSession, problems);
    // The clock starts with every socket up and every reader live.
    await fleet.ready(30_000);
    await fleet.run(spec.mode === 'lone' ? produceLone : produceFlat);
    return { name: spec.name, ...fleet.figures(), storeBatch: await meanStoreBatch(gateway), problems: problems.done() };
  } finally {
    await fleet?.close();
    await gateway?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Raw LMDB appends, no gateway: `sessions` sessions at once, each appending `perSession`
 * chunks in batches of `batch`, one append in flight per session (as the gateway's flusher).
 */
export async function runRawBaseline(options: { readonly name?: string; readonly sessions: number; readonly perSession: number; readonly batch: number }): Promise<BaselineResult> {
  const { sessions, perSession } = options;
  const batch = Math.max(1, Math.round(options.batch));
  const dir = tempDir('raw');
  const problems = new Problems();
  const store = openLmdbStore({
    path: dir,
    retention: { ...DEFAULT_STORE_OPTIONS.retention, maxEvents: Math.max(DEFAULT_STORE_OPTIONS.retention.maxEvents, perSession + 16) },
  });
  try {
    const names = Array.from({ length: sessions }, (_, i) => `raw-${i}`);
    const epochs = new Map<string, number>();
    for (const session of names) {
      const opened = await store.openGeneration(session, { generationId: 'g', takeover: false, tag: 'perf-baseline-tag-0000', ts: Date.now() });
      if (opened.status !== 'opened') throw new Error(`raw baseline: openGeneration answered ${opened.status}`);
      epochs.set(session, opened.epoch);
    }
    const started = performance.now();
    await Promise.all(
      names.map(async (session) => {
        const epoch = epochs.get(session) as number;
        for (let seq = 0; seq < perSession; seq += batch) {
          const items: WriteItem[] = [];
          const ts = Date.now();
          for (let s = seq; s < Math.min(perSession, seq + batch); s++) {
            const data = payload(s);
            items.push({ op: 'chunk', generationId: 'g', epoch, seq: s, priority: 2, ts, data, size: data.length, kind: 'text' });
          }
          const result = await store.append(session, items);
          const bad = result.results.find((r) => r.status !== 'ok');
          if (bad !== undefined) problems.add(`raw ${session}: append answered ${bad.status}`);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const chunks = sessions * perSession;
    return { name: options.name ?? `raw LMDB, ${sessions} session(s)`, sessions, chunks, batch, seconds, chunksPerSec: chunks / seconds, problems: problems.done() };
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Lone writes: each write waits for its ack, so the latencies carry no queueing. */
export function runLoneWrites(writes: number): Promise<ScenarioResult> {
  return runScenario({ name: 'lone writes, 1 session (write, await flush)', label: 'lone', sessions: 1, perSession: writes, mode: 'lone' });
}

/** Scenario A: one session, one producer, one reader, `chunks` chunks as fast as credit allows. */
export function runSingleSession(chunks: number): Promise<ScenarioResult> {
  return runScenario({ name: 'A: 1 session, 1 producer, 1 reader', label: 'a', sessions: 1, perSession: chunks, mode: 'flat' });
}

/** Scenario B: `sessions` sessions at once, `perSession` chunks each, one reader per session. */
export function runConcurrentSessions(sessions: number, perSession: number): Promise<ScenarioResult> {
  return runScenario({
    name: `B: ${sessions} sessions × ${perSession.toLocaleString('en-US')}, ${sessions} readers`,
    label: 'b',
    sessions,
    perSession,
    mode: 'flat',
  });
}

/** Runs every scenario and both baselines in sequence. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const say = options.log ?? ((): void => undefined);
  const chunks = options.chunks ?? 20_000;
  const sessions = options.sessions ?? 100;
  const perSession = options.perSession ?? 1000;
  const loneWrites = options.lone ?? 300;

  say(`lone writes: ${loneWrites}`);
  const lone = await runLoneWrites(loneWrites);
  say(`A: 1 session, ${chunks} chunks`);
  const single = await runSingleSession(chunks);
  say(`B: ${sessions} sessions × ${perSession} chunks`);
  const concurrent = await runConcurrentSessions(sessions, perSession);
  say(`raw LMDB baselines (batch ${single.storeBatch.toFixed(1)} and ${concurrent.storeBatch.toFixed(1)})`);
  const rawSingle = await runRawBaseline({ name: 'raw LMDB store.append, 1 session', sessions: 1, perSession: chunks, batch: single.storeBatch || 64 });
  const rawConcurrent = await runRawBaseline({
    name: `raw LMDB store.append, ${sessions} sessions`,
    sessions,
    perSession,
    batch: concurrent.storeBatch || 64,
  });

  const problems = [lone, single, concurrent, rawSingle, rawConcurrent].flatMap((r) => r.problems.map((p) => `${r.name}: ${p}`));
  return {
    ok: problems.length === 0,
    problems,
    environment: machine(),
    lone,
    single,
    concurrent,
    rawSingle,
    rawConcurrent,
    ratios: {
      single: single.chunksPerSec / rawSingle.chunksPerSec,
      concurrent: concurrent.chunksPerSec / rawConcurrent.chunksPerSec,
    },
  };
}

// ------------------------------------------------------------------ output

const triple = (l: LatencySummary): string => `${figure(l.p50)} / ${figure(l.p99)} / ${figure(l.max)}`;

/** The readable table `npm run bench:quick` prints. */
export function formatBenchReport(report: BenchReport): string {
  const { environment: env } = report;
  const credit = DEFAULT_CONFIG.credit.frames;
  const perSession = report.concurrent.chunks / Math.max(1, report.concurrent.sessions);
  const header = ['scenario', 'chunks', 'secs', 'chunks/s', 'ack ms p50/p99/max', 'delivery ms p50/p99/max', 'store batch'];
  const rows: string[][] = [report.lone, report.single, report.concurrent].map((r) => [
    r.name,
    int(r.chunks),
    r.seconds.toFixed(2),
    int(r.chunksPerSec),
    triple(r.ack),
    triple(r.delivery),
    r.storeBatch.toFixed(1),
  ]);
  for (const r of [report.rawSingle, report.rawConcurrent]) {
    rows.push([r.name, int(r.chunks), r.seconds.toFixed(2), int(r.chunksPerSec), '', '', String(r.batch)]);
  }
  return [
    `spool bench:quick: node ${env.node}, ${env.cpus} CPUs, ${env.platform}; embedded LMDB in a temp dir; SDK over ws on loopback (msgpack); gateway, producers and readers in one process`,
    '',
    ...table(header, rows),
    '',
    `gateway / raw LMDB at the same batch size: A ${report.ratios.single.toFixed(2)}, B ${report.ratios.concurrent.toFixed(2)}`,
    'ack: write() → the cumulative ack covering it arrives; delivery: write() → the reader yields it.',
    `A and B write as fast as credit allows (${int(credit)} unacked chunks per generation), so their latencies are mostly queueing time.`,
    ...(perSession <= credit
      ? [`In B each session's ${int(perSession)} chunks fit in its credit: all ${int(report.concurrent.chunks)} are written at once, and latency ≈ time to drain that backlog.`]
      : []),
    '',
    correctness(report, `correctness: every reader got every chunk exactly once, in order (${int(report.lone.chunks + report.single.chunks + report.concurrent.chunks)} chunks)`),
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      chunks: { type: 'string' },
      sessions: { type: 'string' },
      'per-session': { type: 'string' },
      lone: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const report = await runBench({
    chunks: positiveInt(values.chunks, '--chunks', 20_000),
    sessions: positiveInt(values.sessions, '--sessions', 100),
    perSession: positiveInt(values['per-session'], '--per-session', 1000),
    lone: positiveInt(values.lone, '--lone', 300),
    log: progress,
  });
  return printReport(report, formatBenchReport, values.json === true);
}

if (require.main === module) runMain('bench:quick', main);
