/**
 * The one runner of chaos scenarios:
 *
 *   validate ─▶ topology up ─▶ readers, producers, fault schedule, window sampler
 *     ─▶ durationMs ─▶ stop faults, heal everything ─▶ producers finish ─▶ every generation
 *     ended ─▶ read each session's log (direct, no proxy) ─▶ readers run to the final head
 *     ─▶ check the history ─▶ expectations (telemetry, trimming, Redis cleanup) ─▶ gate
 *     ─▶ tear down ─▶ result (+ the history as JSON when it failed)
 *
 * Every wait is bounded; a run that cannot finish reports what was stuck instead of hanging.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ReadItem } from '../protocol/types';
import { RawClient } from '../gateway/test-helpers/raw-client';
import { command } from '../store/test-helpers/redis-server';
import { checkHistory, formatViolation, type CheckStats, type RecordedHistory, type Violation } from './checker';
import { FaultInjector } from './faults';
import type { ProxyStats } from './fault-proxy';
import { openResumes, WindowSampler, WINDOW_MS, type ServerCounters, type WindowRecord } from './gate';
import { checkHttpStreams } from './http-check';
import { wroteInDeletedIncarnation } from './incarnations';
import { HttpStreams } from './http-streams';
import { validateScenario, type Scenario } from './scenario';
import { ChaosTopology, CHAOS_IDLE_TIMEOUT_MS } from './topology';
import { mulberry32, sleep, waitFor, withTimeout } from './util';
import { ChaosWorkload } from './workload';

export interface ScenarioResult {
  readonly name: string;
  readonly seed: number;
  readonly topology: string;
  readonly ok: boolean;
  readonly wallMs: number;
  /** Injected faults per kind. */
  readonly faults: Record<string, number>;
  readonly faultsTotal: number;
  readonly skipped: Record<string, number>;
  readonly violations: Violation[];
  /** Gate, expectation and run failures (anything that is not a checker violation). */
  readonly failures: string[];
  readonly stats: CheckStats | undefined;
  readonly windows: WindowRecord[];
  readonly server: ServerCounters | undefined;
  readonly client: { reconnects: number; resumes: number; slowestResumeMs: number | null; rawFrames: number };
  /** Answers the second writer got, per error code (or `opened`, `ack`, `finished`, `no-answer`). */
  readonly secondWriter: Record<string, number>;
  readonly proxies: ProxyStats;
  /** ms each phase after the fault window took (heal, producers, final-read, readers). */
  readonly phases: Record<string, number>;
  /** Where the recorded history was written (failed runs only). */
  readonly historyFile?: string;
}

export interface RunOptions {
  /** Directory for the time series and, on failure, the recorded history. */
  readonly outDir?: string;
  readonly windowMs?: number;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

function describeTopology(s: Scenario): string {
  const t = s.topology;
  return `${t.store}/${t.transport}/${t.gateways}gw/${t.mode ?? 'child'}`;
}

export async function runScenario(scenario: Scenario, options: RunOptions = {}): Promise<ScenarioResult> {
  validateScenario(scenario);
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const rand = mulberry32(scenario.seed);
  const failures: string[] = [];
  /** ms spent in each phase after the faults stopped, for the report. */
  const phases: Record<string, number> = {};
  let violations: Violation[] = [];
  let stats: CheckStats | undefined;
  let historyFile: string | undefined;
  let history: RecordedHistory | undefined;

  let topology: ChaosTopology;
  try {
    topology = await ChaosTopology.start(scenario, mulberry32(scenario.seed ^ 0x5eed));
  } catch (error) {
    return notStarted(scenario, started, error);
  }
  const workload = new ChaosWorkload(scenario, topology, rand);
  const injector = new FaultInjector(scenario, topology, workload, mulberry32(scenario.seed ^ 0xfa17));
  const sampler = new WindowSampler(topology, workload, injector, options.windowMs ?? WINDOW_MS);
  // Its own random choices, so adding HTTP streams leaves the rest of a seed's choices as they were.
  const http = new HttpStreams(scenario, topology, mulberry32(scenario.seed ^ 0x4774));
  try {
    await http.start();
    const t0 = Date.now();
    await sampler.start(t0);
    workload.start(t0);
    injector.start(t0);
    log(`  ${scenario.name}: ${injector.planned} faults planned over ${scenario.durationMs} ms`);
    await sleep(scenario.durationMs);

    let mark = Date.now();
    const phase = (name: string): void => {
      phases[name] = Date.now() - mark;
      mark = Date.now();
    };
    await withTimeout(injector.stop(), 60_000, 'faults to heal').catch((e: unknown) => failures.push(String(e)));
    failures.push(...injector.errors.map((e) => `fault injection: ${e}`));
    phase('heal');
    const stuck = await workload.finishProducing(90_000);
    failures.push(...stuck.map((s) => `unresumed: ${s}`));
    await withTimeout(http.finishProducing(), 60_000, 'HTTP producers to close their streams').catch((e: unknown) => failures.push(`unresumed: ${String(e)}`));
    phase('producers');

    // The log of every session, once every generation has ended (a vanished producer's ends
    // with `timeout` after the idle timeout).
    const idleMs = scenario.gateway?.generationIdleTimeoutMs ?? CHAOS_IDLE_TIMEOUT_MS;
    const logs = await readLogs(topology, workload.sessionIds(), idleMs + 15_000, failures);
    phase('final-read');
    const ends = new Map(Object.entries(logs).map(([s, items]) => [s, items[items.length - 1]]));
    const short = await workload.stopReaders(ends, 30_000);
    failures.push(...short.map((s) => `unresumed: ${s}`));
    await http.finishReading(30_000);
    phase('readers');
    const httpLogs: Record<string, ReadItem[]> = {};
    for (const session of http.sessions()) httpLogs[session] = await withTimeout(topology.readLog(session), 10_000, `final read of ${session}`);

    history = {
      scenario: scenario.name,
      seed: scenario.seed,
      retentionPressure: scenario.gateway?.retentionEvents !== undefined,
      producers: workload.producers,
      appends: workload.appends,
      readers: workload.readerRecords,
      logs,
      intrusions: workload.intrusions,
      deletes: workload.deletes,
    };
    const report = checkHistory(history);
    violations = [...report.violations, ...checkHttpStreams(http.producers, http.readers, httpLogs)];
    stats = report.stats;
    if (http.producers.length > 0) {
      const acked = http.producers.reduce((n, p) => n + p.acks.length, 0);
      const retries = http.producers.reduce((n, p) => n + p.retries, 0);
      const connections = http.readers.reduce((n, r) => n + r.connections, 0);
      log(`  ${scenario.name}: HTTP streams: ${acked} batches acknowledged, ${retries} requests sent again, ${connections} SSE connections`);
    }

    if (workload.deletes.length > 0) {
      log(`  ${scenario.name}: ${workload.deletes.length} sessions deleted; ${report.stats.incarnations} incarnations checked, ${report.stats.terminalAnswers} terminal answers to readers, ${report.stats.silentSwitches} readers reconnected into the next incarnation`);
    }
    for (const p of workload.producers) {
      // One a delete caught is judged by the checker (delete-answer).
      if (wroteInDeletedIncarnation(workload.deletes, p)) continue;
      if (p.via === 'sdk' && p.outcome !== 'finished' && p.outcome !== 'fenced') failures.push(`unresumed: producer ${p.generation} of ${p.session} ended ${p.outcome}${p.error ? ` (${p.error})` : ''}`);
    }
    failures.push(...workload.anomalies.map((a) => `anomaly: ${a}`));
    await sampler.stop();
    await checkExpectations(scenario, topology, workload, sampler, logs, failures);

    for (const w of sampler.windows) if (!w.ok) failures.push(`gate: window ${w.index} (${(w.fromMs / 1000).toFixed(0)}-${(w.toMs / 1000).toFixed(0)} s): ${w.reasons.join('; ')}`);
    for (const r of openResumes(workload)) failures.push(`unresumed: reader ${r.reader} lost its connection at ${r.start - t0} ms and never went live again`);
  } catch (error) {
    failures.push(`run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    http.close();
    await workload.close();
    await topology.close();
  }

  const ok = violations.length === 0 && failures.length === 0;
  if (!ok && history && options.outDir) {
    fs.mkdirSync(options.outDir, { recursive: true });
    historyFile = path.join(options.outDir, `${scenario.name}-seed${scenario.seed}.history.json`);
    fs.writeFileSync(historyFile, JSON.stringify(history));
  }
  for (const v of violations.slice(0, 3)) log(formatViolation(v, scenario.name, scenario.seed));
  const proxies = sumProxyStats(topology);
  const resumesDone = workload.resumes.filter((r) => r.end !== undefined);
  return {
    name: scenario.name,
    seed: scenario.seed,
    topology: describeTopology(scenario),
    ok,
    wallMs: Date.now() - started,
    faults: { ...injector.counts },
    faultsTotal: injector.total,
    skipped: { ...injector.skipped },
    violations,
    failures,
    stats,
    windows: sampler.windows,
    server: sampler.totals,
    client: {
      reconnects: workload.clientReconnects,
      resumes: resumesDone.length,
      slowestResumeMs: resumesDone.length > 0 ? Math.max(...resumesDone.map((r) => (r.end as number) - r.start)) : null,
      rawFrames: workload.rawFrames,
    },
    secondWriter: countAnswers(workload),
    proxies,
    phases,
    ...(historyFile ? { historyFile } : {}),
  };
}

function notStarted(scenario: Scenario, started: number, error: unknown): ScenarioResult {
  return {
    name: scenario.name,
    seed: scenario.seed,
    topology: describeTopology(scenario),
    ok: false,
    wallMs: Date.now() - started,
    faults: {},
    faultsTotal: 0,
    skipped: {},
    violations: [],
    failures: [`the topology did not start: ${error instanceof Error ? error.message : String(error)}`],
    stats: undefined,
    windows: [],
    server: undefined,
    client: { reconnects: 0, resumes: 0, slowestResumeMs: null, rawFrames: 0 },
    secondWriter: {},
    proxies: { accepted: 0, refused: 0, resets: 0, halfCloses: 0, blackholes: 0, delays: 0, throttles: 0 },
    phases: {},
  };
}

function countAnswers(workload: ChaosWorkload): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const i of workload.intrusions) counts[i.answer] = (counts[i.answer] ?? 0) + 1;
  return counts;
}

/** Reads every session's log from the store, retrying until every generation has ended (bounded). */
async function readLogs(topology: ChaosTopology, sessions: readonly string[], timeoutMs: number, failures: string[]): Promise<Record<string, ReadItem[]>> {
  const logs: Record<string, ReadItem[]> = {};
  const deadline = Date.now() + timeoutMs;
  const touched = new Map<string, RawClient | undefined>();
  try {
    for (const session of sessions) {
      for (;;) {
        let items: ReadItem[];
        try {
          items = await withTimeout(topology.readLog(session), 10_000, `final read of ${session}`);
        } catch (error) {
          if (Date.now() > deadline) {
            failures.push(`final read of ${session} failed: ${String(error)}`);
            break;
          }
          await sleep(500);
          continue;
        }
        logs[session] = items;
        const open = unended(items);
        if (open.length === 0) break;
        // A generation whose producer vanished while its gateway was down ends `timeout` once a
        // gateway loads the session again (PROTOCOL §7.8): a reader arriving does that.
        if (!touched.has(session)) touched.set(session, await touch(topology, session));
        if (Date.now() > deadline) {
          failures.push(`unresumed: generations ${open.join(', ')} of ${session} never ended (no gen.end ${timeoutMs} ms after the faults stopped)`);
          break;
        }
        await sleep(500);
      }
    }
  } finally {
    for (const client of touched.values()) client?.close();
  }
  return logs;
}

/** Subscribes to the session ('now') on gateway 0, which loads it there; undefined if that failed. */
async function touch(topology: ChaosTopology, session: string): Promise<RawClient | undefined> {
  const gateway = topology.gateways[0];
  if (!gateway) return undefined;
  try {
    const client = await withTimeout(RawClient.connect(gateway.url), 5000, 'connect');
    client.ws.on('error', () => undefined);
    client.send({ type: 'subscribe', session, from: 'now' });
    const ping = setInterval(() => (client.closed ? clearInterval(ping) : client.send({ type: 'ping' })), 500);
    return client;
  } catch {
    return undefined;
  }
}

function unended(items: readonly ReadItem[]): string[] {
  const started = new Set<string>();
  for (const item of items) {
    if (item.type === 'gen.start' && item.generationId) started.add(item.generationId);
    if (item.type === 'gen.end' && item.generationId) started.delete(item.generationId);
  }
  return [...started];
}

async function checkExpectations(
  scenario: Scenario,
  topology: ChaosTopology,
  workload: ChaosWorkload,
  sampler: WindowSampler,
  logs: Record<string, ReadItem[]>,
  failures: string[],
): Promise<void> {
  const expect = scenario.expect ?? {};
  if (expect.resumeTelemetry) {
    // A disconnect produces resume.attempt, then resume.live on the same connection.
    const attempts = new Map<string, number>();
    let pairs = 0;
    for (const e of topology.telemetry) {
      if (e.name === 'resume.attempt') attempts.set(`${e.connectionId}/${e.session}`, e.t);
      if (e.name === 'resume.live') {
        const key = `${e.connectionId}/${e.session}`;
        if (attempts.has(key)) {
          pairs += 1;
          attempts.delete(key);
        } else failures.push(`telemetry: resume.live on ${key} without an earlier resume.attempt`);
      }
    }
    const disconnects = workload.resumes.length;
    if (disconnects === 0) failures.push('telemetry: the run produced no reader disconnect to observe');
    else if (pairs === 0) failures.push(`telemetry: ${disconnects} reader disconnects but no resume.attempt → resume.live pair`);
  }
  if (expect.trimmed) {
    const trimmed = (topology.gateways[0]?.inproc ? topology.trimmedEvents : 0) + sampler.totals.trimmed;
    if (trimmed === 0) failures.push('telemetry: retention pressure was configured but nothing reported buffer.trimmed');
    if (!Object.values(logs).some((items) => items.some((i) => i.type === 'gap'))) failures.push('retention pressure was configured but no log shows a trimmed gap');
  }
  if (expect.redisCleanup) {
    const redis = topology.redis;
    const ttl = scenario.gateway?.sessionTtlMs ?? 0;
    if (!redis) return;
    for (const session of Object.keys(logs)) {
      for (const key of [`s:{${session}}:seq`, `s:{${session}}:seqruns`]) {
        if (Number(await command(redis.port, 'EXISTS', key)) !== 0) failures.push(`redis cleanup: ${key} still exists after every generation of ${session} ended`);
      }
    }
    const gone = await waitFor(async () => ((await command(redis.port, 'KEYS', 's:*')) as string[]).length === 0, ttl + 10_000, 250);
    if (!gone) {
      const left = (await command(redis.port, 'KEYS', 's:*')) as string[];
      failures.push(`redis cleanup: ${left.length} session keys still exist ${ttl + 10_000} ms after the last write (TTL ${ttl} ms): ${left.slice(0, 5).join(', ')}`);
    }
  }
}

function sumProxyStats(topology: ChaosTopology): ProxyStats {
  const sum: ProxyStats = { accepted: 0, refused: 0, resets: 0, halfCloses: 0, blackholes: 0, delays: 0, throttles: 0 };
  for (const p of topology.proxies()) for (const k of Object.keys(sum) as Array<keyof ProxyStats>) sum[k] += p.stats[k];
  return sum;
}
