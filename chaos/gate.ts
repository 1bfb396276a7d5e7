/**
 * The windowed gate. Every window (10 s by default) the runner records, per run:
 *
 *   server  resume attempts and successes (TelemetrySink of in-process gateways, or /metrics
 *           `spool_resume_attempts_total` / `spool_resume_latency_seconds_count` of child
 *           processes, restarts accounted for), trims, degraded drops, fenced writes, and the
 *           slowest resume (telemetry latency, or the > 5 s histogram buckets);
 *   client  reconnects of every SDK client, and every reader resume measured end to end: from
 *           the moment its connection dropped (or it closed its client to resume on a new one)
 *           until its subscription is live again, however many reconnects that took;
 *   faults  injected in the window.
 *
 * A window fails when client resume success is under 99 %, or any resume (client or server)
 * took over 5 s. The run fails when anything resumable ended unresumed: a reader resume still
 * open at the end, a reader short of the final head, an SDK producer that failed other than by
 * being fenced.
 *
 * Why success is measured at the client: the server counts a resume attempt when a reader
 * subscribes from an offset, and a success when that subscription goes live; an attempt whose
 * socket an injected fault cut before it went live is never a server success, although the
 * reader simply resumed again. The client sees the whole resume, so it is the gate; the server
 * figures are recorded beside it.
 */
import type { ChaosTopology } from './topology';
import type { FaultInjector } from './faults';
import { RESUME_LIMIT_MS, type ChaosWorkload, type ResumeRecord } from './workload';

export const WINDOW_MS = 10_000;
export const MIN_RESUME_SUCCESS = 0.99;

export interface ServerCounters {
  resumeAttempts: number;
  resumeLive: number;
  /** Resumes slower than 5 s per the latency histogram (child processes). */
  resumeOver5s: number;
  trimmed: number;
  degradedDropped: number;
  fencedWrites: number;
}

export interface WindowRecord {
  readonly index: number;
  /** ms since the workload started */
  readonly fromMs: number;
  readonly toMs: number;
  readonly faults: number;
  readonly faultKinds: Record<string, number>;
  readonly server: ServerCounters & { slowestResumeMs: number | null; successRate: number | null };
  readonly client: {
    reconnects: number;
    resumesCompleted: number;
    resumesFailed: number;
    slowestResumeMs: number | null;
    successRate: number | null;
  };
  readonly ok: boolean;
  readonly reasons: string[];
}

const COUNTERS: Record<keyof ServerCounters, string> = {
  resumeAttempts: 'spool_resume_attempts_total',
  resumeLive: 'spool_resume_latency_seconds_count',
  resumeOver5s: '',
  trimmed: 'spool_buffer_trimmed_total',
  degradedDropped: 'spool_degraded_dropped_total',
  fencedWrites: 'spool_fenced_writes_total',
};

/** Sums every series of `name` in Prometheus text (labelled series included). */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

function readCounters(text: string): ServerCounters {
  const counters = {} as ServerCounters;
  for (const [key, name] of Object.entries(COUNTERS) as Array<[keyof ServerCounters, string]>) counters[key] = name ? metricSum(text, name) : 0;
  const within5 = metricSum(text, 'spool_resume_latency_seconds_bucket{le="5"}');
  counters.resumeOver5s = counters.resumeLive - within5;
  return counters;
}

const zero = (): ServerCounters => ({ resumeAttempts: 0, resumeLive: 0, resumeOver5s: 0, trimmed: 0, degradedDropped: 0, fencedWrites: 0 });

export class WindowSampler {
  readonly windows: WindowRecord[] = [];
  /** Server counters summed over the run. */
  readonly totals: ServerCounters = zero();
  private readonly last = new Map<number, ServerCounters>();
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;
  private from = 0;
  private faultsSeen = 0;
  private reconnectsSeen = 0;
  private readonly failedResumes = new Set<ResumeRecord>();
  private sampling: Promise<void> = Promise.resolve();

  constructor(
    private readonly topology: ChaosTopology,
    private readonly workload: ChaosWorkload,
    private readonly injector: FaultInjector,
    private readonly windowMs = WINDOW_MS,
  ) {}

  async start(t0: number): Promise<void> {
    this.t0 = t0;
    // Baselines, so each window holds what happened in it.
    for (let i = 0; i < this.topology.gateways.length; i++) {
      const text = await this.topology.metrics(i);
      if (text !== undefined) this.last.set(i, readCounters(text));
    }
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample(false));
    }, this.windowMs);
  }

  /** Closes the last (partial) window. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.sampling;
    await this.sample(true);
  }

  /** Whether every window passed. */
  get ok(): boolean {
    return this.windows.every((w) => w.ok);
  }

  private async sample(final: boolean): Promise<void> {
    const now = Date.now();
    const fromMs = this.from;
    const toMs = now - this.t0;
    if (final && toMs - fromMs < 500 && this.windows.length > 0) return;
    this.from = toMs;

    // Server counters: deltas per gateway; a counter that went down means the process restarted.
    const server = zero();
    for (let i = 0; i < this.topology.gateways.length; i++) {
      const text = await this.topology.metrics(i);
      if (text === undefined) continue;
      const current = readCounters(text);
      const previous = this.last.get(i) ?? zero();
      const restarted = current.resumeAttempts < previous.resumeAttempts || current.resumeLive < previous.resumeLive;
      for (const key of Object.keys(server) as Array<keyof ServerCounters>) {
        const delta = restarted || current[key] < previous[key] ? current[key] : current[key] - previous[key];
        server[key] += delta;
        this.totals[key] += delta;
      }
      this.last.set(i, current);
    }
    const lives = this.topology.telemetry.filter((e) => e.name === 'resume.live' && e.t - this.t0 >= fromMs && e.t - this.t0 < toMs);
    const slowestServer = lives.length > 0 ? Math.max(...lives.map((e) => (e.name === 'resume.live' ? e.latencyMs : 0))) : null;

    // Client resumes: those that ended in this window, and those open past the limit.
    let completed = 0;
    let failed = 0;
    let slowestClient: number | null = null;
    for (const r of this.workload.resumes) {
      if (this.failedResumes.has(r)) continue;
      if (r.end !== undefined && r.end - this.t0 >= fromMs && r.end - this.t0 < toMs + 1) {
        const took = r.end - r.start;
        slowestClient = Math.max(slowestClient ?? 0, took);
        if (took > RESUME_LIMIT_MS) {
          failed += 1;
          this.failedResumes.add(r);
        } else completed += 1;
      } else if (r.end === undefined && now - r.start > RESUME_LIMIT_MS) {
        failed += 1;
        this.failedResumes.add(r);
        slowestClient = Math.max(slowestClient ?? 0, now - r.start);
      }
    }
    const faults = this.injector.log.filter((f) => f.skipped === undefined && f.at >= fromMs && f.at < toMs);
    const faultKinds: Record<string, number> = {};
    for (const f of faults) for (const k of f.kinds) faultKinds[k] = (faultKinds[k] ?? 0) + 1;
    const injected = faults.reduce((n, f) => n + f.kinds.length, 0);
    this.faultsSeen += injected;
    const reconnects = this.workload.clientReconnects - this.reconnectsSeen;
    this.reconnectsSeen = this.workload.clientReconnects;

    const resolved = completed + failed;
    const clientRate = resolved > 0 ? completed / resolved : null;
    const reasons: string[] = [];
    if (clientRate !== null && clientRate < MIN_RESUME_SUCCESS) reasons.push(`resume success ${(clientRate * 100).toFixed(1)} % < 99 % (${completed}/${resolved})`);
    if (slowestClient !== null && slowestClient > RESUME_LIMIT_MS) reasons.push(`a reader resume took ${slowestClient} ms > ${RESUME_LIMIT_MS} ms`);
    if (slowestServer !== null && slowestServer > RESUME_LIMIT_MS) reasons.push(`a server resume took ${slowestServer} ms > ${RESUME_LIMIT_MS} ms`);
    if (server.resumeOver5s > 0) reasons.push(`${server.resumeOver5s} server resume(s) took over 5 s (latency histogram)`);
    this.windows.push({
      index: this.windows.length,
      fromMs,
      toMs,
      faults: injected,
      faultKinds,
      server: { ...server, slowestResumeMs: slowestServer, successRate: server.resumeAttempts > 0 ? Math.min(1, server.resumeLive / server.resumeAttempts) : null },
      client: { reconnects, resumesCompleted: completed, resumesFailed: failed, slowestResumeMs: slowestClient, successRate: clientRate },
      ok: reasons.length === 0,
      reasons,
    });
  }
}

/** Resumes that never ended: the gate's "ended unresumed" for readers. */
export function openResumes(workload: ChaosWorkload): ResumeRecord[] {
  return workload.resumes.filter((r) => r.end === undefined);
}
