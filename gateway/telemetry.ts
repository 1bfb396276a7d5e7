/**
 * Observability: domain events for tests and tracing (TelemetrySink), and the metrics the
 * /metrics endpoint serves in Prometheus text format (names of DESIGN §8, prefix spool_).
 */
import type { EndStatus, Priority } from '../protocol/types';

export type DomainEvent =
  | { readonly name: 'resume.attempt'; readonly session: string; readonly from: number; readonly connectionId: string }
  | { readonly name: 'resume.live'; readonly session: string; readonly offset: number; readonly latencyMs: number; readonly connectionId: string }
  | { readonly name: 'buffer.trimmed'; readonly session: string; readonly offset: number; readonly priority: Priority }
  | { readonly name: 'generation.end'; readonly session: string; readonly generation: string; readonly status: EndStatus; readonly offset: number }
  | { readonly name: 'write.fenced'; readonly session: string; readonly generation: string; readonly epoch: number }
  | { readonly name: 'session.rewound'; readonly session: string; readonly fromHead: number; readonly toHead: number };

/** Receives domain events; tests pass one to assert on behaviour without scraping metrics. */
export interface TelemetrySink {
  emit(event: DomainEvent): void;
}

export const noopSink: TelemetrySink = { emit() {} };

type Labels = Readonly<Record<string, string>>;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Counter {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(amount = 1, labels?: Labels): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + amount);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [key, value] of this.values) lines.push(`${this.name}${key} ${value}`);
    return lines.join('\n');
  }
}

class Gauge {
  constructor(readonly name: string, readonly help: string, private readonly read: () => number) {}
  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${this.read()}`].join('\n');
  }
}

class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string, private readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= (this.bounds[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        break;
      }
    }
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    let cumulative = 0;
    this.bounds.forEach((bound, i) => {
      cumulative += this.counts[i] as number;
      lines.push(`${this.name}_bucket{le="${bound}"} ${cumulative}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines.join('\n');
  }
}

const SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** Counters, gauges and histograms of one gateway process. Gauges read live state when scraped. */
export class Metrics {
  readonly persistenceBatchSize = new Histogram('spool_persistence_batch_size', 'Events per store append', SIZES);
  readonly persistenceLatency = new Histogram('spool_persistence_latency_seconds', 'Store append latency', SECONDS);
  readonly persistenceSuccess = new Counter('spool_persistence_success_total', 'Store appends that resolved');
  readonly persistenceFailure = new Counter('spool_persistence_failure_total', 'Store appends that failed (each attempt)');
  readonly resumeAttempts = new Counter('spool_resume_attempts_total', 'Subscriptions that resumed from an offset > 0');
  readonly resumeLatency = new Histogram('spool_resume_latency_seconds', 'Time from subscribe to live', SECONDS);
  readonly bufferTrimmed = new Counter('spool_buffer_trimmed_total', 'Events removed by retention');
  readonly degradedDropped = new Counter('spool_degraded_dropped_total', 'Debug chunks dropped at the door under pressure');
  readonly fencedWrites = new Counter('spool_fenced_writes_total', 'Writes refused for a stale generation token');
  readonly duplicateWrites = new Counter('spool_duplicate_writes_total', 'Writes answered as duplicates');
  readonly errorsSent = new Counter('spool_errors_total', 'Error frames sent, by code');
  readonly readerPauses = new Counter('spool_reader_pauses_total', 'Times a reader past maxReaderBufferedBytes stopped getting live pushes');
  readonly sessionRewound = new Counter('spool_session_rewound_total', 'Times a session was found behind what its store had acknowledged (data lost, or expired and re-created); its readers and producer got SESSION_REWOUND');
  private readonly gauges: Gauge[] = [];

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.push(new Gauge(name, help, read));
  }

  render(): string {
    const all = [
      this.persistenceBatchSize,
      this.persistenceLatency,
      this.persistenceSuccess,
      this.persistenceFailure,
      this.resumeAttempts,
      this.resumeLatency,
      this.bufferTrimmed,
      this.degradedDropped,
      this.fencedWrites,
      this.duplicateWrites,
      this.errorsSent,
      this.readerPauses,
      this.sessionRewound,
      ...this.gauges,
    ];
    return all.map((m) => m.render()).join('\n') + '\n';
  }
}
