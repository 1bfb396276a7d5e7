/**
 * Observability: domain events for tests and tracing (TelemetrySink), and the gateway's metrics,
 * recorded with OpenTelemetry instruments in a MeterProvider of the gateway's own (names of
 * DESIGN §8, prefix spool_). GET /metrics serializes what that provider collects with
 * OpenTelemetry's Prometheus serializer; more readers (OTLP export, otel.ts) read the same
 * instruments. There is no registry here: the objects below are thin handles on instruments.
 *
 *   call sites ── inc / observe ──▶ Counter (a running total) ──▶ ObservableCounter ─┐
 *                                   Histogram ─────────────────▶ Histogram ──────────┤ MeterProvider
 *   gateway.ts ── gauge(read) ────────────────────────────────▶ ObservableGauge ─────┤  ├─ scrape reader ─▶ /metrics
 *   host-metrics, runtime-node (process and runtime metrics) ────────────────────────┘  └─ OTLP reader(s)
 *
 * Counters keep their total in the handle and report it through an observable counter when a
 * reader collects: an increment on the hot path is an addition (a synchronous OTel counter costs
 * ~75 ns per add, ~350 ns with an attribute), and `get()` reads the same number the exporters see.
 */
import { createNoopMeter, type Histogram as OtelHistogram, type Meter, type ObservableResult } from '@opentelemetry/api';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { HostMetrics } from '@opentelemetry/host-metrics';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { ERROR_REGISTRY, type ErrorCode } from '../protocol/errors';
import type { EndStatus, Priority } from '../protocol/types';
import type { SessionStore } from '../store/types';

export type DomainEvent =
  | { readonly name: 'resume.attempt'; readonly session: string; readonly from: number; readonly connectionId: string }
  /** `gaps`: gap frames the reader got while it caught up. */
  | { readonly name: 'resume.live'; readonly session: string; readonly offset: number; readonly latencyMs: number; readonly connectionId: string; readonly gaps: number }
  | { readonly name: 'buffer.trimmed'; readonly session: string; readonly offset: number; readonly priority: Priority }
  | { readonly name: 'generation.end'; readonly session: string; readonly generation: string; readonly status: EndStatus; readonly offset: number }
  | { readonly name: 'write.fenced'; readonly session: string; readonly generation: string; readonly epoch: number }
  | { readonly name: 'session.rewound'; readonly session: string; readonly fromHead: number; readonly toHead: number }
  /** Writes accepted into the session's queue failed for good (the store's retry budget ran out, or shutdown). */
  | { readonly name: 'writes.failed'; readonly session: string; readonly code: ErrorCode; readonly writes: number };

/** Receives domain events; tests pass one to assert on behaviour without scraping metrics. */
export interface TelemetrySink {
  emit(event: DomainEvent): void;
}

export const noopSink: TelemetrySink = { emit() {} };

/**
 * True when the environment asks for OpenTelemetry export: an OTLP endpoint, or an exporter
 * named in OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER other than none; and OTEL_SDK_DISABLED
 * is not true. Nothing is started otherwise (the SDK's own default, OTLP to localhost, would
 * send to a collector nobody configured).
 */
export function otelConfigured(env: NodeJS.ProcessEnv): boolean {
  if (otelDisabled(env)) return false;
  const set = (name: string): boolean => (env[name] ?? '').trim() !== '';
  const exporters = (name: string): boolean => (env[name] ?? '').split(',').some((e) => e.trim() !== '' && e.trim() !== 'none');
  return (
    set('OTEL_EXPORTER_OTLP_ENDPOINT') ||
    set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ||
    set('OTEL_EXPORTER_OTLP_METRICS_ENDPOINT') ||
    exporters('OTEL_TRACES_EXPORTER') ||
    exporters('OTEL_METRICS_EXPORTER')
  );
}

/**
 * True when OTEL_SDK_DISABLED is true: the specification's "no-op SDK for every signal". The
 * gateway then records no metrics at all (Metrics with `disabled`: every handle a no-op, no
 * process or runtime metrics, no metered store; /metrics says so) and starts no tracing.
 */
export function otelDisabled(env: NodeJS.ProcessEnv): boolean {
  return (env['OTEL_SDK_DISABLED'] ?? '').trim().toLowerCase() === 'true';
}

/** Every event goes to each sink, in order. */
export function teeSink(...sinks: readonly TelemetrySink[]): TelemetrySink {
  return { emit: (event) => sinks.forEach((sink) => sink.emit(event)) };
}

/**
 * Spans of the gateway (tracing.ts, loaded by otel.ts only when tracing is configured). It learns
 * from the connection which trace a frame continues, from the store calls what was done, and
 * from domain events (it is a sink) how resumes and generations went.
 */
export interface GatewayTracing extends TelemetrySink {
  /** An `open` arrived; `traceparent` (the open's, else its connection's hello's) parents the generation's span. */
  opening(session: string, generation: string, connectionId: string, traceparent: string | undefined): void;
  /** A `subscribe` arrived; `traceparent` parents its resume span, if it resumes. */
  subscribing(session: string, connectionId: string, traceparent: string | undefined): void;
  /** `store` with a span per call (and per persisted batch); `system`: lmdb, redis, … (db.system.name). */
  wrapStore(store: SessionStore, system: string): SessionStore;
}

/** What OpenTelemetry wiring (otel.ts) hands startGateway (GatewayOptions.observability). */
export interface Observability {
  /** Readers of the gateway's metrics besides /metrics (OTLP export). */
  readonly metricReaders: readonly MetricReader[];
  /** The resource metrics and spans describe (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, host, process). */
  readonly resource: Resource;
  /** Absent when traces are not exported (OTEL_TRACES_EXPORTER=none). */
  readonly tracing?: GatewayTracing;
  /** OTEL_SDK_DISABLED=true: no metrics are recorded (see otelDisabled). */
  readonly disabled?: boolean;
}

/** What `spool serve` hands startGateway under OTEL_SDK_DISABLED=true. */
export const DISABLED_OBSERVABILITY: Observability = {
  metricReaders: [],
  resource: resourceFromAttributes({ 'service.name': 'spool' }),
  disabled: true,
};

/** Label values; every label of a spool metric has a bounded set of values (never a session id). */
type Labels = Readonly<Record<string, string>>;

/** Prometheus text exposition format, as GET /metrics serves it. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A monotonic count. Read by collection through an observable counter. */
export class Counter {
  private total = 0;
  /** Labelled series by their label values (in the order the call site gives them). */
  private readonly series = new Map<string, { readonly labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    /** Label values reported at 0 before the first increment, so rate() and increase() see the first one. */
    preset: readonly Labels[] = [],
  ) {
    for (const labels of preset) this.series.set(seriesKey(labels), { labels, value: 0 });
  }

  inc(amount = 1, labels?: Labels): void {
    if (labels === undefined) {
      this.total += amount;
      return;
    }
    const key = seriesKey(labels);
    const entry = this.series.get(key);
    if (entry) entry.value += amount;
    else this.series.set(key, { labels: { ...labels }, value: amount });
  }

  /** The count of one series (the unlabelled one without `labels`). */
  get(labels?: Labels): number {
    return labels === undefined ? this.total : (this.series.get(seriesKey(labels))?.value ?? 0);
  }

  /** @internal Reports every series to a collecting reader. */
  report(result: ObservableResult): void {
    // The unlabelled series exists once something counted without labels, or nothing has labels.
    if (this.total > 0 || this.series.size === 0) result.observe(this.total);
    for (const { labels, value } of this.series.values()) result.observe(value, labels);
  }
}

function seriesKey(labels: Labels): string {
  let key = '';
  for (const name in labels) key += `${name}\u0000${labels[name] as string}\u0000`;
  return key;
}

/** A distribution (count, sum, buckets with the bounds it was declared with). */
export class Histogram {
  constructor(
    readonly name: string,
    private readonly instrument: OtelHistogram,
  ) {}

  observe(value: number, labels?: Labels): void {
    this.instrument.record(value, labels);
  }
}

/**
 * The handles of a disabled Metrics: their methods do nothing (a call site sees one class per
 * process, so V8 inlines the empty body away), and `get()` is always 0.
 */
class NoopCounter extends Counter {
  override inc(): void {}
}

class NoopHistogram extends Histogram {
  override observe(): void {}
}

/** Upper bounds of latency histograms, in seconds. */
export const SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upper bounds of count histograms (events per batch). */
export const SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/** Upper bounds of byte histograms (payloads, batches): 16 B … 4 MiB by powers of 4. */
export const BYTES = [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];

const END_STATUSES: readonly EndStatus[] = ['done', 'error', 'aborted', 'fenced', 'timeout'];

export interface MetricsOptions {
  /** More readers of the same instruments, e.g. a periodic OTLP exporter (otel.ts). */
  readonly readers?: readonly MetricReader[];
  /** The resource the metrics describe (target_info on /metrics). @default service.name=spool */
  readonly resource?: Resource;
  /**
   * Record process metrics (@opentelemetry/host-metrics: process.cpu.*, process.memory.*) and
   * Node runtime metrics (@opentelemetry/instrumentation-runtime-node: event loop delay and
   * utilization, GC, V8 heap). @default true
   */
  readonly runtime?: boolean;
  /**
   * Record nothing (OTEL_SDK_DISABLED=true): no instrument is created, every handle is a no-op,
   * no process or runtime metrics; `render()` answers a comment saying so. @default false
   */
  readonly disabled?: boolean;
}

/** A reader that collects only when asked: GET /metrics. */
class ScrapeReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/**
 * The metrics of one gateway process (each in-process gateway of a test has its own provider).
 * Names and Prometheus exposition (with `_total`, `_sum`, `_count`, `_bucket`) are the ones
 * DESIGN §8 and the README's metrics table give; the serializer adds no unit suffixes, and the
 * instrumentation scope is not a label (withoutScopeInfo), so every series reads as before.
 */
export class Metrics {
  readonly persistenceBatchSize: Histogram;
  readonly persistenceBatchBytes: Histogram;
  readonly persistenceLatency: Histogram;
  readonly persistenceSuccess: Counter;
  readonly persistenceFailure: Counter;
  readonly writeDurableLatency: Histogram;
  readonly writesFailed: Counter;
  readonly chunkPayloadBytes: Histogram;
  readonly generationsEnded: Counter;
  readonly finishLatency: Histogram;
  readonly firstDurableChunk: Histogram;
  readonly resumeAttempts: Counter;
  readonly resumeLatency: Histogram;
  readonly bufferTrimmed: Counter;
  readonly degradedDropped: Counter;
  readonly fencedWrites: Counter;
  readonly duplicateWrites: Counter;
  readonly errorsSent: Counter;
  readonly readerPauses: Counter;
  readonly sessionRewound: Counter;

  private readonly provider: MeterProvider;
  private readonly meter: Meter;
  private readonly scrape = new ScrapeReader();
  private readonly serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  private readonly runtime: RuntimeNodeInstrumentation | undefined;
  private closing: Promise<void> | undefined;
  /** No instrument exists and nothing is recorded (OTEL_SDK_DISABLED=true). */
  readonly disabled: boolean;

  constructor(options: MetricsOptions = {}) {
    this.disabled = options.disabled === true;
    this.provider = new MeterProvider({
      resource: options.resource ?? resourceFromAttributes({ 'service.name': 'spool' }),
      readers: [this.scrape, ...(options.readers ?? [])],
    });
    this.meter = this.provider.getMeter('spool');
    this.persistenceBatchSize = this.histogram('spool_persistence_batch_size', 'Events per store append', '{event}', SIZES);
    this.persistenceBatchBytes = this.histogram('spool_persistence_batch_bytes', 'Data bytes per store append', 'By', BYTES);
    this.persistenceLatency = this.histogram('spool_persistence_latency_seconds', 'Store call latency (appends and generation opens, each attempt that succeeded)', 's', SECONDS);
    this.persistenceSuccess = this.counter('spool_persistence_success_total', 'Store calls (appends, opens) that resolved');
    this.persistenceFailure = this.counter('spool_persistence_failure_total', 'Store calls that failed and were retried (each failed attempt; writes whose retry budget ran out count in spool_writes_failed_total)');
    this.writeDurableLatency = this.histogram('spool_write_durable_latency_seconds', 'From a write entering its session queue to the store making it durable (the oldest write of each store append)', 's', SECONDS);
    this.writesFailed = this.counter('spool_writes_failed_total', 'Writes accepted into a session queue that then failed (never durable; the producer got the code), by code', [
      { code: 'STORE_UNAVAILABLE' },
      { code: 'SHUTTING_DOWN' },
    ]);
    this.chunkPayloadBytes = this.histogram('spool_chunk_payload_bytes', 'Data bytes of each chunk stored', 'By', BYTES);
    this.generationsEnded = this.counter(
      'spool_generations_ended_total',
      'Generations this process ended in the store (gen.end written), by status: done, error, aborted, fenced, timeout',
      END_STATUSES.map((status) => ({ status })),
    );
    this.finishLatency = this.histogram('spool_finish_latency_seconds', 'From a finish (or a gateway-side end) to its gen.end being durable', 's', SECONDS);
    this.firstDurableChunk = this.histogram('spool_first_durable_chunk_seconds', "From a generation's open to its first chunk being durable (time to first token, as the gateway sees it)", 's', SECONDS);
    this.resumeAttempts = this.counter('spool_resume_attempts_total', 'Subscriptions that resumed from an offset > 0');
    this.resumeLatency = this.histogram('spool_resume_latency_seconds', 'Time from a resuming subscribe to live (its count is the resumes that succeeded)', 's', SECONDS);
    this.bufferTrimmed = this.counter('spool_buffer_trimmed_total', 'Events removed by retention, by priority');
    this.degradedDropped = this.counter('spool_degraded_dropped_total', 'Debug chunks dropped at the door under pressure');
    this.fencedWrites = this.counter('spool_fenced_writes_total', 'Writes refused for a stale generation token');
    this.duplicateWrites = this.counter('spool_duplicate_writes_total', 'Writes answered as duplicates');
    this.errorsSent = this.counter(
      'spool_errors_total',
      'Error frames sent, by code',
      (Object.keys(ERROR_REGISTRY) as ErrorCode[]).map((code) => ({ code })),
    );
    this.readerPauses = this.counter('spool_reader_pauses_total', 'Times a reader past maxReaderBufferedBytes stopped getting live pushes');
    this.sessionRewound = this.counter(
      'spool_session_rewound_total',
      'Times a session was found behind what its store had acknowledged (data lost, or expired and re-created); its readers and producer got SESSION_REWOUND',
    );
    if ((options.runtime ?? true) && !this.disabled) {
      new HostMetrics({ meterProvider: this.provider, name: 'spool-host', metricGroups: ['process.cpu', 'process.memory'] }).start();
      this.runtime = new RuntimeNodeInstrumentation({ enabled: false });
      this.runtime.setMeterProvider(this.provider);
      this.runtime.enable();
    }
  }

  /** A gauge read when a reader collects (`read` must be cheap and must not throw). */
  gauge(name: string, help: string, read: () => number, unit?: string): void {
    if (this.disabled) return;
    this.meter
      .createObservableGauge(name, { description: help, ...(unit !== undefined ? { unit } : {}) })
      .addCallback((result) => result.observe(read()));
  }

  /** Every metric in the Prometheus text format (GET /metrics). */
  async render(): Promise<string> {
    if (this.disabled) return '# OpenTelemetry is disabled (OTEL_SDK_DISABLED=true): no metrics are recorded\n';
    const { resourceMetrics, errors } = await this.scrape.collect();
    const text = this.serializer.serialize(resourceMetrics);
    return errors.length ? `${text}# ${errors.length} collection errors: ${errors.map(String).join('; ').replace(/\n/g, ' ')}\n` : text;
  }

  /** Exports what is pending to every pushing reader and stops them. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.runtime?.disable();
      await this.provider.shutdown().catch(() => {});
    })();
    return this.closing;
  }

  private counter(name: string, help: string, preset: readonly Labels[] = []): Counter {
    if (this.disabled) return new NoopCounter(name);
    const counter = new Counter(name, preset);
    this.meter.createObservableCounter(name, { description: help }).addCallback((result) => counter.report(result));
    return counter;
  }

  private histogram(name: string, help: string, unit: string, bounds: readonly number[]): Histogram {
    if (this.disabled) return new NoopHistogram(name, createNoopMeter().createHistogram(name));
    return new Histogram(name, this.meter.createHistogram(name, { description: help, unit, advice: { explicitBucketBoundaries: [...bounds] } }));
  }
}
