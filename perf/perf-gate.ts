/**
 * `npm run perf:gate`: the windowed perf gate CI runs after the chaos suite (issue 10).
 *
 *   npm run perf:gate [-- --seconds N] [--json] [--record] [--out DIR] [--window-ms MS]
 *
 * A gateway in a child process on LMDB (gateway-child.ts); in this process the live + resume
 * workload of gate-workload.ts: SDK producers streaming generations into 4 sessions for a budget
 * of N seconds (default 60), 2 SDK readers per session following live and dropped on a schedule
 * (their TCP connection cut at a proxy, or their client closed and the session resumed from the
 * saved offset on a new one), and a fifth session that fills its retention on purpose.
 *
 * Every 10 s window is judged as it closes (gate-windows.ts), and the run stops in the first
 * window that fails: resume success >= 95 %, no resume over 15 s, trim rate <= 1 % (trimmed /
 * stored events of every session but the retention session). At the end every acked chunk must
 * have reached every reader exactly once, in order, trimmed ranges only as explicit gaps and only
 * in the retention session (gate-check.ts), and the stored log must read back the same.
 * Speed figures are recorded and printed, never gated.
 *
 * Writes `<out>/<timestamp>/{summary.txt, summary.json, series.json}` and points `<out>/latest`
 * at it (out: .perf-out); with `--record`, appends one line to perf/history/perf-gate.jsonl
 * (CI does not: it must not dirty the clone). The first line printed is PASS or FAIL; the exit
 * status is 0 only on PASS.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { openLmdbStore } from '../store/lmdb';
import { GATE, metricTotal, WindowSampler, type GateThresholds, type WindowRecord } from './gate-windows';
import { GateWorkload, planGate, type GatePlan } from './gate-workload';
import { ChildGateway } from './gateway-child';
import { appendJsonLine, gitCommit, HISTORY_DIR, REPO_ROOT } from './history';
import type { LatencySummary } from './latency';
import { figure, int, machine, orUnknown, positiveInt, positiveNumber, progress, runMain, table, type Machine } from './report';

// ------------------------------------------------------------------ results

export interface PerfGateOptions {
  /** Budget the writing is paced over. @default 60 */
  readonly seconds?: number;
  /** @default 10000 */
  readonly windowMs?: number;
  /** Thresholds other than the gate's (tests). @default GATE */
  readonly gate?: Partial<GateThresholds>;
  /** Where `<timestamp>/` and `latest` go; none written when undefined. */
  readonly outDir?: string;
  /** Append a line to this JSONL file (the CLI's --record: perf/history/perf-gate.jsonl). */
  readonly historyFile?: string;
  readonly log?: (line: string) => void;
}

/** The figures of the whole run: recorded, printed, never gated. */
export interface GateFigures {
  /** Chunks acknowledged (every session), and per second from the first write to the last finish. */
  readonly chunks: number;
  readonly chunksPerSec: number;
  /** write() → the ack (or finish) covering it. */
  readonly ack: LatencySummary;
  /** write() → a live reader (no resume under way) took it. */
  readonly delivery: LatencySummary;
  readonly resumes: {
    readonly total: number;
    readonly withinLimit: number;
    readonly byCause: Record<string, number>;
    readonly latency: LatencySummary;
  };
  readonly drops: { readonly cuts: number; readonly restarts: number; readonly skipped: number };
  readonly reconnects: number;
  /** Sessions the gate judges: stored and trimmed events over the run. */
  readonly trim: { readonly stored: number; readonly trimmed: number; readonly rate: number };
  /** The session that fills its retention on purpose (not judged). */
  readonly retentionSession: { readonly stored: number; readonly trimmed: number; readonly gapsReadBack: number };
  readonly gateway: {
    readonly transport: string;
    /** Mean CPU over the windows, % of one core. */
    readonly cpuPercent: number;
    readonly rssMax: number;
    /** `spool_buffer_trimmed_total` at the end (every session). */
    readonly trimmedMetric: number;
    readonly degradedDropped: number;
  };
}

export interface PerfGateReport {
  readonly ok: boolean;
  /** The first line printed: PASS or FAIL and why. */
  readonly verdict: string;
  /** Everything that failed: the failing window, correctness problems, a run that could not finish. */
  readonly problems: readonly string[];
  /** What could not be recorded (never judged), e.g. a window whose /metrics did not answer. */
  readonly notes: readonly string[];
  readonly startedAt: string;
  readonly wallSeconds: number;
  readonly environment: Machine & { readonly model: string; readonly totalMem: number; readonly loadAverage: number };
  readonly gate: GateThresholds & { readonly windowMs: number };
  readonly plan: GatePlan;
  readonly windows: readonly WindowRecord[];
  /** Index of the window that failed the gate (the run stopped there). */
  readonly failedWindow: number | null;
  readonly figures: GateFigures;
  /** Where the report was written. */
  readonly artifacts: { readonly dir: string; readonly latest: string } | null;
}

// ------------------------------------------------------------------ the run

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** Runs the gate once: gateway child, workload, windows, final checks, report (and artifacts). */
export async function runPerfGate(options: PerfGateOptions = {}): Promise<PerfGateReport> {
  const say = options.log ?? ((): void => undefined);
  const seconds = options.seconds ?? 60;
  const windowMs = options.windowMs ?? GATE.windowMs;
  const gate: GateThresholds = { ...GATE, ...options.gate };
  const plan = planGate(seconds);
  const startedAt = new Date();
  const started = performance.now();
  const loadAverage = os.loadavg()[0] ?? Number.NaN;
  const problems: string[] = [];
  // Generous, and only against a hang: the work is fixed by count, a slow machine takes longer.
  const overallMs = 180_000 + 5 * seconds * 1000;

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-perf-gate-'));
  let gateway: ChildGateway | undefined;
  let store: ReturnType<typeof openLmdbStore> | undefined;
  let workload: GateWorkload | undefined;
  let sampler: WindowSampler | undefined;
  let failedWindow: number | null = null;
  let retentionGaps = 0;
  let trimmedMetric = 0;
  let degradedDropped = 0;
  let transport = '';
  try {
    say(`gateway child on LMDB (retention ${int(plan.retentionEvents)} events / ${int(plan.retentionBytes / 1024)} KiB per session)`);
    gateway = await ChildGateway.start({
      data: dir,
      env: { SPOOL_RETENTION_EVENTS: String(plan.retentionEvents), SPOOL_RETENTION_BYTES: String(plan.retentionBytes) },
    });
    transport = gateway.transport;
    // LMDB is multi-process: the gate reads each session's head and retained count beside the gateway.
    store = openLmdbStore({ path: dir });
    const running = await GateWorkload.create(plan, gateway.url, gateway.port, store);
    workload = running;
    sampler = new WindowSampler(running, gateway, windowMs, gate, (w) => {
      failedWindow = w.index;
      running.abort(`window ${w.index} failed the gate`);
    });
    const t0 = performance.now();
    await sampler.start(t0);
    say(
      `${plan.sessions} sessions × ${int(plan.chunksPerSession)} chunks, ${plan.readersPerSession} readers each; ${plan.retentionSession}: ` +
        `${int(plan.retentionChunks)} chunks of ${plan.retentionChunkBytes} B, ${plan.retentionReaders} readers; ${plan.drops} drops; over ~${seconds} s`,
    );
    const overall = setTimeout(() => running.abort(`the run did not finish within ${overallMs / 1000} s`), overallMs);
    try {
      await running.run();
      if (running.aborted === undefined) {
        say('producers done; readers running to the final heads');
        problems.push(...(await running.drainReaders(60_000)));
      }
    } finally {
      clearTimeout(overall);
    }
    await sampler.stop();
    problems.push(...sampler.errors);
    if (running.aborted !== undefined && failedWindow === null) problems.push(running.aborted);
    if (running.aborted === undefined) {
      for (const r of running.openResumes()) problems.push(`reader ${r.reader} lost its connection (${r.cause}) at ${((r.start - t0) / 1000).toFixed(1)} s and was never live again`);
      say('reading every session back and checking every reader against the acks');
      retentionGaps = await running.verify(60_000);
      const metrics = await gateway.metrics();
      trimmedMetric = metricTotal(metrics, 'spool_buffer_trimmed_total');
      degradedDropped = metricTotal(metrics, 'spool_degraded_dropped_total');
      const counts = await running.storeCounts();
      const storeTrimmed = counts.measured.trimmed + counts.retention.trimmed;
      if (trimmedMetric !== storeTrimmed) problems.push(`the gateway counted ${trimmedMetric} trimmed events (spool_buffer_trimmed_total), the store shows ${storeTrimmed}`);
    }
    problems.push(...running.problems.done());
  } catch (error) {
    problems.push(`the run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    sampler?.cancel();
    await workload?.close();
    await store?.close();
    await gateway?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const windows = sampler?.windows ?? [];
  const failed = failedWindow === null ? undefined : windows[failedWindow];
  const figures = summarizeFigures(workload, windows, gate, { transport, retentionGaps, trimmedMetric, degradedDropped });
  const ok = failed === undefined && problems.length === 0;
  const report: PerfGateReport = {
    ok,
    verdict: verdictLine(ok, windows, windowMs, gate, figures, failed, problems, workload?.readers.length ?? 0, (performance.now() - started) / 1000),
    problems: failed === undefined ? problems : [`window ${failed.index} (${secs(failed.fromMs)}–${secs(failed.toMs)} s): ${failed.reasons.join('; ')}`, ...problems],
    notes: sampler?.notes ?? [],
    startedAt: startedAt.toISOString(),
    wallSeconds: (performance.now() - started) / 1000,
    environment: { ...machine(), model: os.cpus()[0]?.model ?? '?', totalMem: os.totalmem(), loadAverage },
    gate: { minResumeSuccess: gate.minResumeSuccess, maxTrimRate: gate.maxTrimRate, resumeLimitMs: gate.resumeLimitMs, windowMs },
    plan,
    windows,
    failedWindow,
    figures,
    artifacts: null,
  };
  const withArtifacts = options.outDir === undefined ? report : { ...report, artifacts: writeArtifacts(options.outDir, startedAt, report) };
  if (options.historyFile !== undefined) appendHistory(options.historyFile, withArtifacts);
  return withArtifacts;
}

function summarizeFigures(
  workload: GateWorkload | undefined,
  windows: readonly WindowRecord[],
  gate: GateThresholds,
  end: { readonly transport: string; readonly retentionGaps: number; readonly trimmedMetric: number; readonly degradedDropped: number },
): GateFigures {
  const empty = { count: 0, p50: 0, p99: 0, max: 0, mean: 0 };
  const totals = workload?.totals;
  const resumes = workload?.resumes ?? [];
  const byCause: Record<string, number> = {};
  for (const r of resumes) byCause[r.cause] = (byCause[r.cause] ?? 0) + 1;
  const ended = resumes.filter((r) => r.end !== undefined && r.end - r.start <= gate.resumeLimitMs).length;
  const stored = sum(windows.map((w) => w.trim.stored));
  const trimmed = sum(windows.map((w) => w.trim.trimmed));
  const span = totals ? (totals.lastFinish - totals.firstWrite) / 1000 : 0;
  const windowSeconds = sum(windows.map((w) => (w.toMs - w.fromMs) / 1000));
  return {
    chunks: totals?.acked ?? 0,
    chunksPerSec: totals && span > 0 ? totals.acked / span : 0,
    ack: totals?.ack.summary() ?? empty,
    delivery: totals?.delivery.summary() ?? empty,
    resumes: { total: resumes.length, withinLimit: ended, byCause, latency: totals?.resume.summary() ?? empty },
    drops: { ...(workload?.drops ?? { cuts: 0, restarts: 0, skipped: 0 }) },
    reconnects: workload?.reconnects ?? 0,
    trim: { stored, trimmed, rate: stored > 0 ? trimmed / stored : 0 },
    retentionSession: {
      stored: sum(windows.map((w) => w.retentionSession.stored)),
      trimmed: sum(windows.map((w) => w.retentionSession.trimmed)),
      gapsReadBack: end.retentionGaps,
    },
    gateway: {
      transport: end.transport,
      cpuPercent: windowSeconds > 0 ? sum(windows.map((w) => (w.gateway.cpuPercent * (w.toMs - w.fromMs)) / 1000)) / windowSeconds : 0,
      rssMax: Math.max(0, ...windows.map((w) => w.gateway.rss)),
      trimmedMetric: end.trimmedMetric,
      degradedDropped: end.degradedDropped,
    },
  };
}

// ------------------------------------------------------------------ output

const secs = (ms: number): string => `${(ms / 1000).toFixed(0)}`;
const ms = orUnknown(figure);
const pct = (rate: number | null, digits = 1): string => (rate === null ? '-' : `${(rate * 100).toFixed(digits)} %`);
const mib = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(0);

function verdictLine(
  ok: boolean,
  windows: readonly WindowRecord[],
  windowMs: number,
  gate: GateThresholds,
  f: GateFigures,
  failed: WindowRecord | undefined,
  problems: readonly string[],
  readers: number,
  wallSeconds: number,
): string {
  const head = `spool perf gate: ${ok ? 'PASS' : 'FAIL'} — `;
  if (failed !== undefined) return `${head}window ${failed.index} (${secs(failed.fromMs)}–${secs(failed.toMs)} s) broke the gate: ${failed.reasons.join('; ')}`;
  if (!ok) return `${head}${problems.length} problem${problems.length === 1 ? '' : 's'}, first: ${(problems[0] ?? '').split('\n')[0]}`;
  return (
    `${head}${windows.length} window${windows.length === 1 ? '' : 's'} of ${windowMs / 1000} s in ${wallSeconds.toFixed(1)} s; ${int(f.chunks)} chunks acked, ` +
    `${f.resumes.total} resumes (${pct(f.resumes.total > 0 ? f.resumes.withinLimit / f.resumes.total : 1, 0)} within ${gate.resumeLimitMs / 1000} s), ` +
    `trim rate ${pct(f.trim.rate, 2)} (retention session excluded); every acked chunk reached all ${readers} readers exactly once, in order`
  );
}

/** The text report: verdict first, then what was gated, the windows, the figures. */
export function formatPerfGateReport(r: PerfGateReport): string {
  const f = r.figures;
  const env = r.environment;
  const p = r.plan;
  const windowRows = r.windows.map((w) => [
    String(w.index),
    `${secs(w.fromMs)}–${secs(w.toMs)}`,
    int(w.chunks.perSec),
    `${ms(w.ack.p50)} / ${ms(w.ack.p99)}`,
    `${ms(w.delivery.p50)} / ${ms(w.delivery.p99)}`,
    `${w.resumes.completed}/${w.resumes.completed + w.resumes.failed}`,
    w.resumes.completed + w.resumes.failed > 0 ? `${ms(w.resumes.p50)} / ${ms(w.resumes.p99)} / ${ms(w.resumes.slowestMs ?? 0)}` : '-',
    `${pct(w.trim.rate, 2)} of ${int(w.trim.stored)}`,
    int(w.retentionSession.trimmed),
    w.gateway.cpuPercent.toFixed(0),
    mib(w.gateway.rss),
    w.ok ? 'ok' : `FAIL: ${w.reasons.join('; ')}`,
  ]);
  const lines = [
    r.verdict,
    '',
    `node ${env.node}, ${env.cpus} CPUs (${env.model}), ${(env.totalMem / 2 ** 30).toFixed(1)} GiB, ${env.platform}; load average ${env.loadAverage.toFixed(2)} at the start; ` +
      `gateway child on LMDB (${f.gateway.transport || '?'}); SDK producers and readers in this process, readers through TCP proxies`,
    `workload: ${p.sessions} sessions × ${int(p.chunksPerSession)} chunks (generations of ${p.chunksPerGeneration}, a user message before each), ${p.readersPerSession} readers each; ` +
      `${p.retentionSession}: ${int(p.retentionChunks)} chunks of ${p.retentionChunkBytes} B (debug/low priority) into a retention of ${int(p.retentionBytes / 1024)} KiB, ${p.retentionReaders} readers; ` +
      `${p.drops} reader drops (TCP cuts held 0 / 300 / 1500 ms, client restarts from the saved offset); paced over ~${p.seconds} s`,
    `gate, per ${r.gate.windowMs / 1000} s window: resume success >= ${r.gate.minResumeSuccess * 100} %, no resume over ${r.gate.resumeLimitMs / 1000} s, ` +
      `trim rate <= ${r.gate.maxTrimRate * 100} % (trimmed / stored events of every session except ${p.retentionSession}, which fills its retention on purpose); ` +
      'at the end every acked chunk delivered to every reader exactly once, in order (gaps only in the retention session)',
    '',
    ...table(
      ['window', 's', 'chunks/s', 'ack ms p50 / p99', 'delivery ms p50 / p99', 'resumes ok', 'resume ms p50 / p99 / max', 'trim rate of stored', 'retention trimmed', 'gw cpu %', 'rss MiB', 'result'],
      windowRows,
    ),
    '',
    'figures (recorded, never gated):',
    `  chunks/s ${int(f.chunksPerSec)} (${int(f.chunks)} chunks acked); ack ms p50 ${ms(f.ack.p50)} / p99 ${ms(f.ack.p99)}; live delivery ms p50 ${ms(f.delivery.p50)} / p99 ${ms(f.delivery.p99)}`,
    `  resumes ${f.resumes.total} (${Object.entries(f.resumes.byCause).map(([cause, n]) => `${cause} ${n}`).join(', ') || 'none'}), ms p50 ${ms(f.resumes.latency.p50)} / p99 ${ms(f.resumes.latency.p99)} / max ${ms(f.resumes.latency.max)}; ` +
      `drops: ${f.drops.cuts} cuts, ${f.drops.restarts} restarts, ${f.drops.skipped} skipped (reader not live); ${f.reconnects} client reconnects`,
    `  gateway: cpu ${f.gateway.cpuPercent.toFixed(0)} % of a core (mean), rss max ${mib(f.gateway.rssMax)} MiB; degraded drops ${f.gateway.degradedDropped}`,
    `  trimming: judged sessions ${int(f.trim.trimmed)} of ${int(f.trim.stored)} events (${pct(f.trim.rate, 2)}); ${p.retentionSession} ${int(f.retentionSession.trimmed)} of ${int(f.retentionSession.stored)}, ` +
      `${int(f.retentionSession.gapsReadBack)} gaps reading it back from 0; spool_buffer_trimmed_total ${int(f.gateway.trimmedMetric)}`,
    ...r.notes.map((note) => `  note: ${note}`),
    '',
    r.ok
      ? 'correctness: every acked chunk and user message reached every reader exactly once, in order, through every cut and restart; gaps only in the retention session; the stored log reads back the same'
      : `FAILED:\n${r.problems.map((problem) => `  - ${problem.split('\n')[0]}`).join('\n')}`,
  ];
  if (r.artifacts !== null) {
    const shown = (file: string): string => path.relative(process.cwd(), file) || '.';
    lines.push('', `report: ${shown(path.join(r.artifacts.dir, 'summary.txt'))} (summary.json, series.json beside it); ${shown(r.artifacts.latest)} points at the last run`);
  }
  return lines.join('\n');
}

// ------------------------------------------------------------------ artifacts and history

/** Writes summary.txt, summary.json and series.json under `<root>/<timestamp>/`; points `<root>/latest` at it. */
function writeArtifacts(root: string, startedAt: Date, report: PerfGateReport): { readonly dir: string; readonly latest: string } {
  const dir = path.join(root, startedAt.toISOString().replace(/[:.]/g, '-'));
  const latest = path.join(root, 'latest');
  const withPaths = { ...report, artifacts: { dir, latest } };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'series.json'), JSON.stringify({ gate: report.gate, startedAt: report.startedAt, windows: report.windows }, null, 2));
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ ...withPaths, windows: undefined }, null, 2));
  fs.writeFileSync(path.join(dir, 'summary.txt'), `${formatPerfGateReport(withPaths)}\n`);
  try {
    fs.rmSync(latest, { recursive: true, force: true });
    fs.symlinkSync(path.relative(root, dir), latest);
  } catch {
    fs.cpSync(dir, latest, { recursive: true }); // no symlinks here: a copy will do
  }
  return { dir, latest };
}

/** One line per run: when, which commit, which machine, the verdict and the figures. */
function appendHistory(file: string, r: PerfGateReport): void {
  const f = r.figures;
  const git = gitCommit();
  const line = {
    date: r.startedAt,
    commit: git?.commit ?? null,
    dirty: git?.dirty ?? null,
    machine: { cpus: r.environment.cpus, model: r.environment.model, totalMem: r.environment.totalMem, node: r.environment.node, platform: r.environment.platform, loadAverage: r.environment.loadAverage },
    seconds: r.plan.seconds,
    ok: r.ok,
    windows: r.windows.length,
    failedWindow: r.failedWindow,
    figures: {
      chunks: f.chunks,
      chunksPerSec: f.chunksPerSec,
      ackP50: f.ack.p50,
      ackP99: f.ack.p99,
      deliveryP50: f.delivery.p50,
      deliveryP99: f.delivery.p99,
      resumes: f.resumes.total,
      resumeSuccess: f.resumes.total > 0 ? f.resumes.withinLimit / f.resumes.total : 1,
      resumeP50: f.resumes.latency.p50,
      resumeP99: f.resumes.latency.p99,
      resumeMax: f.resumes.latency.max,
      trimRate: f.trim.rate,
      gatewayCpuPercent: f.gateway.cpuPercent,
      gatewayRssMax: f.gateway.rssMax,
    },
  };
  appendJsonLine(file, line);
}

// ------------------------------------------------------------------ CLI

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seconds: { type: 'string' },
      'window-ms': { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean', default: false },
      record: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const report = await runPerfGate({
    seconds: positiveNumber(values.seconds, '--seconds', 60),
    windowMs: positiveInt(values['window-ms'], '--window-ms', GATE.windowMs),
    outDir: path.resolve(values.out ?? path.join(REPO_ROOT, '.perf-out')),
    ...(values.record === true ? { historyFile: path.join(HISTORY_DIR, 'perf-gate.jsonl') } : {}),
    log: progress,
  });
  console.log(formatPerfGateReport(report));
  if (values.json === true) console.log(JSON.stringify(report));
  return report.ok ? 0 : 1;
}

// Run as a program: `node dist/perf/perf-gate.js`, or from source through chaos/run-ts.js (which
// requires this file, so require.main is run-ts's module; it leaves argv[1] naming this file).
if (require.main === module || path.resolve(process.argv[1] ?? '') === __filename) runMain('perf:gate', main);
