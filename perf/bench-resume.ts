/**
 * `npm run bench:resume`: how fast readers come back after the network or the gateway goes
 * away (issue 10), against a gateway in a child process (gateway-child.ts) on LMDB, with SDK
 * readers and producers in this process.
 *
 *   1. drop     N readers follow live sessions through a TCP proxy (tcp-proxy.ts) while producers
 *               write; the proxy resets every reader connection and refuses new ones for 200 ms.
 *               Per reader and round: the network's return → its subscription live again. The
 *               SDK's previous schedule is simulated through the same outage (reconnect-sim.ts).
 *   2. outage   one reader through the proxy while it refuses for 10 s: the attempts it makes,
 *               counted at the proxy.
 *   3. storm    1,000 readers, each its own connection; the gateway is SIGKILLed and restarted on
 *               the same port and data 1 s later: when each reader's attempts arrive (100 ms
 *               buckets from the restart) and when each is live again.
 *   4. backlog  a reader 1,000 events behind subscribes on an open connection: subscribe → live,
 *               served from the hot buffer, then from the store after a gateway restart.
 *
 * The sections are in resume-scenarios.ts; this file runs them on one gateway child and prints
 * the report. Every reader checks what it receives as it arrives (resume-reader.ts) and, at the
 * end of its section, that it saw every generation whole: offsets contiguous, nothing lost or
 * repeated.
 * No thresholds: targets are printed next to the figures. The exit status is non-zero only on a
 * correctness failure. Every wait is bounded; so is the whole run.
 *
 *   node dist/perf/bench-resume.js [--json] [--readers N] [--rounds N] [--clients N] [--backlog-rounds N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ChildGateway } from './gateway-child';
import type { LatencySummary } from './latency';
import { PREVIOUS_SCHEDULE } from './reconnect-sim';
import { correctness, figure, int, machine, positiveInt, printReport, progress, runMain, table, type Machine } from './report';
import {
  BUCKET_MS,
  DRAWS_PER_RESUME,
  runBacklog,
  runDrop,
  runOutage,
  runStorm,
  type BacklogResult,
  type DropResult,
  type OutageResult,
  type ResumeSizes,
  type Rig,
  type StormResult,
} from './resume-scenarios';
import { Problems, withTimeout } from './workload';

// ------------------------------------------------------------------ sizes and report

export const FULL_SIZES: ResumeSizes = {
  readers: 50,
  rounds: 10,
  dropMs: 200,
  tickMs: 50,
  outageMs: 10_000,
  stormClients: 1000,
  stormPerSession: 10,
  stormDeadMs: 1000,
  backlog: 1000,
  backlogRounds: 50,
  backlogWarmup: 5,
};

/** Issue 10's targets, printed next to the figures. */
export const TARGETS = {
  /** Network back → live again, after a short drop. */
  dropP50Ms: 100,
  dropP99Ms: 400,
  /** Attempts over a 10 s outage. */
  outageAttempts: 20,
  /** Subscribe → live, 1,000 events behind, on LMDB. */
  backlogP50Ms: 5,
  backlogP99Ms: 10,
} as const;

/** The whole run must end within this long. */
const RUN_TIMEOUT_MS = 20 * 60_000;

export interface ResumeReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly environment: Machine & { readonly loadStart: readonly number[]; readonly loadEnd: readonly number[] };
  readonly sizes: ResumeSizes;
  readonly drop: DropResult;
  readonly outage: OutageResult;
  readonly storm: StormResult;
  readonly backlog: BacklogResult;
  readonly targets: typeof TARGETS;
  readonly seconds: number;
}

// ------------------------------------------------------------------ the run

export interface ResumeOptions {
  readonly sizes?: ResumeSizes;
  readonly log?: (line: string) => void;
}

export async function runResumeBench(options: ResumeOptions = {}): Promise<ResumeReport> {
  const sizes = options.sizes ?? FULL_SIZES;
  const say = options.log ?? ((): void => undefined);
  const started = performance.now();
  const loadStart = os.loadavg();
  const problems = new Problems();
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-bench-resume-'));
  const rig: Rig = { gateway: await ChildGateway.start({ data }), data };
  try {
    return await withTimeout(
      (async () => {
        say(`1. drop: ${sizes.readers} readers, ${sizes.rounds} rounds of ${sizes.dropMs} ms`);
        const drop = await runDrop(rig, sizes, problems, say);
        say(`2. outage: one reader, ${sizes.outageMs} ms`);
        const outage = await runOutage(rig, sizes, problems);
        say(`3. storm: ${sizes.stormClients} readers`);
        const storm = await runStorm(rig, sizes, problems, say);
        say(`4. backlog: ${sizes.backlog} events behind, ${sizes.backlogRounds} rounds`);
        const backlog = await runBacklog(rig, sizes, problems, say);
        const list = problems.done();
        return {
          ok: list.length === 0,
          problems: list,
          environment: { ...machine(), loadStart, loadEnd: os.loadavg() },
          sizes,
          drop,
          outage,
          storm,
          backlog,
          targets: TARGETS,
          seconds: (performance.now() - started) / 1000,
        };
      })(),
      RUN_TIMEOUT_MS,
      'bench:resume',
    );
  } finally {
    await rig.gateway.stop();
    fs.rmSync(data, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ output

const ms = (n: number): string => (Number.isFinite(n) ? figure(n) : '?');
const triple = (l: LatencySummary): string[] => [ms(l.p50), ms(l.p99), ms(l.max)];
const load = (l: readonly number[]): string => l.map((n) => n.toFixed(2)).join(' ');
const indented = (lines: readonly string[]): string[] => lines.map((line) => `   ${line}`);

/** The readable report `npm run bench:resume` prints. */
export function formatResumeReport(report: ResumeReport): string {
  const { environment: env, drop, outage, storm, backlog } = report;
  const t = report.targets;
  const busy = (env.loadStart[0] ?? 0) > env.cpus * 0.5 || (env.loadEnd[0] ?? 0) > env.cpus * 0.5;
  const out: string[] = [
    `spool bench:resume: node ${env.node}, ${env.cpus} CPUs, ${env.platform}; ${report.seconds.toFixed(0)} s; gateway child on LMDB (ws), SDK clients in this process`,
    `load average ${load(env.loadStart)} at start, ${load(env.loadEnd)} at end${busy ? ' (a busy machine: figures are slower than on a quiet one)' : ''}`,
    '',
    `1. ${drop.dropMs} ms drop: ${drop.readers} readers through a TCP proxy follow live sessions (≈ ${figure(drop.chunksPerSecondPerSession)} chunks/s each); the proxy`,
    `   resets every reader connection and refuses for ${drop.dropMs} ms; ${drop.rounds} rounds, ${int(drop.measured.count)} resumes`,
    ...indented(
      table(
        ['network back → subscription live, ms', 'p50', 'p99', 'max', 'target p50 / p99'],
        [
          ['SDK today, measured', ...triple(drop.measured), `${t.dropP50Ms} / ${t.dropP99Ms}`],
          ['SDK today, simulated', ...triple(drop.simulatedCurrent), ''],
          ['previous schedule, simulated', ...triple(drop.simulatedPrevious), ''],
        ],
      ),
    ),
    `   simulated (reconnect-sim.ts, the SDK's schedule functions, not a run): each measured resume replayed ${DRAWS_PER_RESUME}× through`,
    `   the same outage (drop seen ${ms(drop.detectMs)} ms after the cut, refused attempts failing in ${ms(drop.refusedMs)} ms), plus its measured`,
    `   accepted attempt → live (p50 ${ms(drop.resumeCost.p50)}, p99 ${ms(drop.resumeCost.p99)} ms). Previous: ${PREVIOUS_SCHEDULE.name}.`,
    `   event-loop delay of this process (all clients, the proxy, the producers) over the rounds: p99 ${ms(drop.loopDelay.p99)}, max ${ms(drop.loopDelay.max)} ms`,
    '',
    `2. ${int(outage.outageMs / 1000)} s outage, one reader through the proxy: ${int(outage.refused)} attempts refused (counted at the proxy; target ≈ ${t.outageAttempts}),`,
    `   live ${ms(outage.returnMs)} ms after the network returned; simulated mean: today ${outage.simulatedCurrent.toFixed(1)}, previous schedule ${outage.simulatedPrevious.toFixed(1)}`,
    '',
    `3. storm: ${int(storm.clients)} readers (${int(storm.sessions)} sessions × ${int(storm.clients / storm.sessions)}), one connection each; gateway SIGKILLed, restarted on`,
    `   the same port and data ${int(storm.deadMs)} ms later; listening ${int(storm.listenMs)} ms after the restart`,
    `   accepted attempts per 100 ms from the restart: ${storm.returns.join(' ')}`,
    `   all attempts per 100 ms from the restart:      ${storm.attempts.join(' ')} (and ${int(storm.attemptsBeforeRestart)} between the kill and the restart)`,
    `   busiest 100 ms: ${(storm.peakShare * 100).toFixed(1)} % of the returns (${storm.peakBucket * BUCKET_MS}–${(storm.peakBucket + 1) * BUCKET_MS} ms); restart → live p50 / p99 / max: ${triple(storm.toLive).join(' / ')} ms`,
    `   event-loop delay of this process (all ${int(storm.clients)} clients) from the kill to the last reader live: p99 ${ms(storm.loopDelay.p99)}, max ${ms(storm.loopDelay.max)} ms`,
    '',
    `4. backlog: a reader ${int(backlog.behind)} events behind subscribes on an open connection; ${backlog.rounds} rounds each`,
    ...indented(
      table(
        ['subscribe → live, ms', 'p50', 'p99', 'max', 'target p50 / p99'],
        [
          ['hot buffer (session loaded)', ...triple(backlog.hot), `${t.backlogP50Ms} / ${t.backlogP99Ms}`],
          ['LMDB (after a gateway restart)', ...triple(backlog.store), `${t.backlogP50Ms} / ${t.backlogP99Ms}`],
        ],
      ),
    ),
    '',
    correctness(report, 'correctness: every reader live again after every drop, outage and restart, and every generation seen whole at contiguous offsets'),
  ];
  return out.join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      json: { type: 'boolean', default: false },
      readers: { type: 'string' },
      rounds: { type: 'string' },
      clients: { type: 'string' },
      'backlog-rounds': { type: 'string' },
    },
    strict: true,
  });
  const sizes: ResumeSizes = {
    ...FULL_SIZES,
    readers: positiveInt(values.readers, '--readers', FULL_SIZES.readers),
    rounds: positiveInt(values.rounds, '--rounds', FULL_SIZES.rounds),
    stormClients: positiveInt(values.clients, '--clients', FULL_SIZES.stormClients),
    backlogRounds: positiveInt(values['backlog-rounds'], '--backlog-rounds', FULL_SIZES.backlogRounds),
  };
  let report: ResumeReport;
  try {
    report = await runResumeBench({ sizes, log: progress });
  } catch (error) {
    // A run that timed out may leave clients behind that keep the process alive: exit anyway.
    setTimeout(() => process.exit(1), 5000).unref();
    throw error;
  }
  return printReport(report, formatResumeReport, values.json === true);
}

if (require.main === module) runMain('bench:resume', main);
