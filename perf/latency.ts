/**
 * Latency recording for the benchmarks: an HdrHistogram in microseconds (3 significant
 * digits), read back in milliseconds.
 */
import * as hdr from 'hdr-histogram-js';

/** Percentiles of one latency distribution, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Records latencies given in milliseconds (fractions kept to the microsecond). */
export class LatencyRecorder {
  private readonly histogram = hdr.build({ lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3 });
  /** Exact, since the histogram reports bucket bounds (a p99 can read above its max). */
  private maxMs = 0;

  record(ms: number): void {
    if (!Number.isFinite(ms)) return;
    this.histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
    if (ms > this.maxMs) this.maxMs = ms;
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  summary(): LatencySummary {
    const h = this.histogram;
    if (h.totalCount === 0) return { count: 0, p50: 0, p99: 0, max: 0, mean: 0 };
    return {
      count: h.totalCount,
      p50: Math.min(h.getValueAtPercentile(50) / 1000, this.maxMs),
      p99: Math.min(h.getValueAtPercentile(99) / 1000, this.maxMs),
      max: this.maxMs,
      mean: h.mean / 1000,
    };
  }
}
