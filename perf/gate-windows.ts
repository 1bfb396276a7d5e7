/**
 * The perf gate's windows: every `windowMs` (10 s by default) the sampler closes a window of the
 * running workload (gate-workload.ts), records what happened in it and judges it against the
 * gate's correctness thresholds:
 *
 *   resumes   a resume is a reader losing its connection (its TCP connection cut, its client
 *             closed for a restart, or any unplanned drop) until its subscription is live again,
 *             measured at the client. Those that ended in the window count, plus those still
 *             open past the limit (counted once, as failed). Success = within the limit.
 *   trimming  trimmed events / stored events of the window, in every session except the one
 *             meant to fill its retention (the retention session is recorded beside, not gated).
 *             Read from the store itself (store.meta: head and retained count per session;
 *             trimmed = head − retained), so it is exact per session; the gateway's
 *             `spool_buffer_trimmed_total` (all sessions) is recorded next to it.
 *
 *   gate      resume success >= 95 %, no resume over 15 s, trim rate <= 1 %.
 *
 * Speed figures (chunks/s, ack and delivery p50/p99, resume p50/p99, gateway CPU and RSS) are
 * recorded per window and never judged.
 *
 * The resume arithmetic is the one of chaos/gate.ts's WindowSampler (ended in the window, or open
 * past the limit and counted once), duplicated here on purpose: perf/ may not import chaos/, and
 * the thresholds differ (chaos gates fault injection at 99 % / 5 s; this gate a healthy gateway
 * under load, on a possibly loaded CI machine, at 95 % / 15 s).
 */
import { performance } from 'node:perf_hooks';
import type { ChildGateway } from './gateway-child';
import { LatencyRecorder, type LatencySummary } from './latency';

/** What a window must hold. */
export interface GateThresholds {
  /** Resumes within `resumeLimitMs` / resumes resolved in the window. */
  readonly minResumeSuccess: number;
  /** Trimmed / stored events of the judged sessions in the window. */
  readonly maxTrimRate: number;
  readonly resumeLimitMs: number;
}

/** The gate (issue 10): 10 s windows and its thresholds. */
export const GATE: GateThresholds & { readonly windowMs: number } = {
  windowMs: 10_000,
  minResumeSuccess: 0.95,
  maxTrimRate: 0.01,
  resumeLimitMs: 15_000,
};

/** One reader resume, on performance.now()'s clock. */
export interface ResumeRecord {
  readonly reader: string;
  readonly cause: 'cut' | 'restart' | 'unplanned';
  readonly start: number;
  /** Undefined while the reader is not live again. */
  end?: number;
}

/** Stored and trimmed events of a set of sessions, from the store (cumulative). */
export interface StoreCounts {
  /** Offsets assigned (the sum of the sessions' heads). */
  readonly stored: number;
  /** Offsets assigned and no longer retained. */
  readonly trimmed: number;
}

/** What the sampler reads from the running workload. */
export interface WindowSource {
  /** Every resume so far (the workload appends, and sets `end`). */
  readonly resumes: readonly ResumeRecord[];
  /** Client reconnects of every reader client so far. */
  readonly reconnects: number;
  /** Planned drops so far: cuts, restarts, and drops skipped (the reader was not live). */
  readonly drops: { readonly cuts: number; readonly restarts: number; readonly skipped: number };
  /** The window's latencies and counts (the workload records into it); the sampler swaps it. */
  meter: WindowMeter;
  /** Cumulative store counts: the gated sessions, and the retention session. */
  storeCounts(): Promise<{ readonly measured: StoreCounts; readonly retention: StoreCounts }>;
}

/** Latencies and counts of one window, recorded by the workload as they happen. */
export class WindowMeter {
  readonly ack = new LatencyRecorder();
  readonly delivery = new LatencyRecorder();
  readonly resume = new LatencyRecorder();
  /** Chunks whose ack (or finish) arrived in the window. */
  acked = 0;
}

export interface WindowRecord {
  readonly index: number;
  /** ms since the workload started. */
  readonly fromMs: number;
  readonly toMs: number;
  readonly ok: boolean;
  readonly reasons: readonly string[];
  readonly resumes: {
    readonly completed: number;
    readonly failed: number;
    /** completed / (completed + failed); null when none ended. */
    readonly successRate: number | null;
    /** Slowest resume that ended (or was open past the limit) in the window, ms; null when none. */
    readonly slowestMs: number | null;
    readonly p50: number;
    readonly p99: number;
  };
  /** The gated sessions (every session but the retention session). */
  readonly trim: { readonly stored: number; readonly trimmed: number; readonly rate: number | null };
  /** The session meant to fill its retention: recorded, never gated. */
  readonly retentionSession: { readonly stored: number; readonly trimmed: number };
  readonly chunks: { readonly acked: number; readonly perSec: number };
  readonly ack: LatencySummary;
  readonly delivery: LatencySummary;
  readonly gateway: {
    /** CPU time over the window, % of one core. */
    readonly cpuPercent: number;
    /** Resident set size at the window's end, bytes. */
    readonly rss: number;
    /** The gateway's own counters over the window (/metrics). */
    readonly resumeAttempts: number;
    readonly resumeLive: number;
    readonly trimmed: number;
    readonly degradedDropped: number;
  };
  readonly drops: { readonly cuts: number; readonly restarts: number; readonly skipped: number };
  readonly reconnects: number;
}

/**
 * Every series of `name` in Prometheus text summed, labelled ones included (`name{…} value`); 0
 * when absent. (chaos/gate.ts's metricSum does the same; perf/ may not import chaos/.)
 */
export function metricTotal(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const next = line[name.length];
    if (next !== ' ' && next !== '{') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

interface GatewayCounters {
  readonly resumeAttempts: number;
  readonly resumeLive: number;
  readonly trimmed: number;
  readonly degradedDropped: number;
}

function gatewayCounters(text: string): GatewayCounters {
  return {
    resumeAttempts: metricTotal(text, 'spool_resume_attempts_total'),
    resumeLive: metricTotal(text, 'spool_resume_latency_seconds_count'),
    trimmed: metricTotal(text, 'spool_buffer_trimmed_total'),
    degradedDropped: metricTotal(text, 'spool_degraded_dropped_total'),
  };
}

const ZERO_COUNTERS: GatewayCounters = { resumeAttempts: 0, resumeLive: 0, trimmed: 0, degradedDropped: 0 };
const ZERO_COUNTS = { measured: { stored: 0, trimmed: 0 }, retention: { stored: 0, trimmed: 0 } };

/** Judges a window's figures against {@link GATE}; the reasons it fails (empty when it passes). */
export function judgeWindow(w: Pick<WindowRecord, 'resumes' | 'trim'>, gate: GateThresholds = GATE): string[] {
  const reasons: string[] = [];
  const { completed, failed, successRate, slowestMs } = w.resumes;
  if (successRate !== null && successRate < gate.minResumeSuccess) {
    reasons.push(`resume success ${(successRate * 100).toFixed(1)} % < ${gate.minResumeSuccess * 100} % (${completed}/${completed + failed})`);
  }
  if (slowestMs !== null && slowestMs > gate.resumeLimitMs) reasons.push(`a resume took ${Math.round(slowestMs)} ms > ${gate.resumeLimitMs} ms`);
  if (w.trim.rate !== null && w.trim.rate > gate.maxTrimRate) {
    reasons.push(`trim rate ${(w.trim.rate * 100).toFixed(2)} % > ${gate.maxTrimRate * 100} % (${w.trim.trimmed} of ${w.trim.stored} events stored, retention session excluded)`);
  }
  return reasons;
}

/**
 * Closes a window every `windowMs` and calls `onFail` with the first window that fails the
 * gate (the run stops there: fail fast). `stop()` closes the last, partial window.
 */
export class WindowSampler {
  readonly windows: WindowRecord[] = [];
  /** Windows that could not be closed (the run fails). */
  readonly errors: string[] = [];
  /** What could not be recorded and was not judged. */
  readonly notes: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();
  private t0 = 0;
  private fromMs = 0;
  private cpu0 = 0;
  private counters0: GatewayCounters = ZERO_COUNTERS;
  private counts0: { measured: StoreCounts; retention: StoreCounts } = ZERO_COUNTS;
  private reconnects0 = 0;
  private drops0 = { cuts: 0, restarts: 0, skipped: 0 };
  /** Resumes already counted as failed while still open (each counts once). */
  private readonly failedOpen = new Set<ResumeRecord>();
  private failed = false;

  constructor(
    private readonly source: WindowSource,
    private readonly gateway: ChildGateway,
    private readonly windowMs: number,
    private readonly gate: GateThresholds,
    private readonly onFail: (window: WindowRecord) => void,
  ) {}

  /** Takes the baselines and starts the clock (`t0`: performance.now() of the workload start). */
  async start(t0: number): Promise<void> {
    this.t0 = t0;
    this.cpu0 = this.gateway.cpuSeconds();
    this.counters0 = gatewayCounters(await this.gateway.metrics());
    this.counts0 = await this.source.storeCounts();
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample());
    }, this.windowMs);
  }

  /** Closes the last, partial window (however short: a resume may have ended in it). */
  async stop(): Promise<void> {
    this.cancel();
    await this.sampling;
    await this.sample();
  }

  /** Stops the clock without closing a window (the run failed before it could stop). */
  cancel(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  get ok(): boolean {
    return this.windows.every((w) => w.ok);
  }

  /** A window that could not be closed is an error of the run (the gate could not judge it). */
  private async sample(): Promise<void> {
    try {
      await this.closeWindow();
    } catch (error) {
      this.errors.push(`window ${this.windows.length} could not be sampled: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async closeWindow(): Promise<void> {
    if (this.failed) return;
    const now = performance.now();
    const fromMs = this.fromMs;
    const toMs = now - this.t0;
    this.fromMs = toMs;
    const seconds = Math.max(1e-3, (toMs - fromMs) / 1000);
    const meter = this.source.meter;
    this.source.meter = new WindowMeter();

    // Resumes: those that ended in this window, and those open past the limit (once).
    let completed = 0;
    let failed = 0;
    let slowestMs: number | null = null;
    for (const r of this.source.resumes) {
      if (this.failedOpen.has(r)) continue;
      if (r.end !== undefined) {
        const endMs = r.end - this.t0;
        if (endMs < fromMs || endMs >= toMs) continue;
        const took = r.end - r.start;
        slowestMs = Math.max(slowestMs ?? 0, took);
        if (took > this.gate.resumeLimitMs) failed += 1;
        else completed += 1;
      } else if (now - r.start > this.gate.resumeLimitMs) {
        failed += 1;
        this.failedOpen.add(r);
        slowestMs = Math.max(slowestMs ?? 0, now - r.start);
      }
    }

    const counts = await this.source.storeCounts();
    const stored = counts.measured.stored - this.counts0.measured.stored;
    const trimmed = counts.measured.trimmed - this.counts0.measured.trimmed;
    const retention = { stored: counts.retention.stored - this.counts0.retention.stored, trimmed: counts.retention.trimmed - this.counts0.retention.trimmed };
    this.counts0 = counts;

    const cpu = this.gateway.cpuSeconds();
    const cpuPercent = ((cpu - this.cpu0) / seconds) * 100;
    this.cpu0 = cpu;
    let counters = this.counters0;
    try {
      counters = gatewayCounters(await this.gateway.metrics());
    } catch (error) {
      // The gateway's own counters are recorded, not judged: a slow /metrics costs this window's.
      this.notes.push(`window ${this.windows.length}: /metrics did not answer (${error instanceof Error ? error.message : String(error)}); its gateway counters read 0`);
    }
    const server = {
      resumeAttempts: counters.resumeAttempts - this.counters0.resumeAttempts,
      resumeLive: counters.resumeLive - this.counters0.resumeLive,
      trimmed: counters.trimmed - this.counters0.trimmed,
      degradedDropped: counters.degradedDropped - this.counters0.degradedDropped,
    };
    this.counters0 = counters;
    const drops = this.source.drops;
    const resumeLatency = meter.resume.summary();

    const figures = {
      resumes: {
        completed,
        failed,
        successRate: completed + failed > 0 ? completed / (completed + failed) : null,
        slowestMs,
        p50: resumeLatency.p50,
        p99: resumeLatency.p99,
      },
      trim: { stored, trimmed, rate: stored > 0 ? trimmed / stored : null },
    };
    const reasons = judgeWindow(figures, this.gate);
    const window: WindowRecord = {
      index: this.windows.length,
      fromMs: Math.round(fromMs),
      toMs: Math.round(toMs),
      ok: reasons.length === 0,
      reasons,
      ...figures,
      retentionSession: retention,
      chunks: { acked: meter.acked, perSec: meter.acked / seconds },
      ack: meter.ack.summary(),
      delivery: meter.delivery.summary(),
      gateway: { cpuPercent, rss: this.gateway.memory().rss, ...server },
      drops: { cuts: drops.cuts - this.drops0.cuts, restarts: drops.restarts - this.drops0.restarts, skipped: drops.skipped - this.drops0.skipped },
      reconnects: this.source.reconnects - this.reconnects0,
    };
    this.drops0 = { ...drops };
    this.reconnects0 = this.source.reconnects;
    this.windows.push(window);
    if (!window.ok) {
      this.failed = true;
      this.onFail(window);
    }
  }
}
