/**
 * OpenTelemetry for `spool serve`, configured the way the OpenTelemetry specification says, by
 * OTEL_* environment variables. The CLI loads this module only when otelConfigured() (telemetry.ts) says the
 * environment asks for export; otherwise no OTel SDK beyond the /metrics reader is loaded and
 * the hot path has no tracing code in it.
 *
 *   traces   @opentelemetry/sdk-node NodeSDK: OTEL_TRACES_EXPORTER (otlp | console | none),
 *            OTEL_EXPORTER_OTLP_[TRACES_]{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT} (http/protobuf,
 *            http/json, grpc), OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_*; spans come from tracing.ts
 *   metrics  the gateway's own MeterProvider (telemetry.ts) gets a periodic reader per
 *            OTEL_METRICS_EXPORTER entry (otlp | console | none; prometheus is GET /metrics
 *            already), OTLP as above with OTEL_EXPORTER_OTLP_METRICS_*, every
 *            OTEL_METRIC_EXPORT_INTERVAL ms (default 60000), OTEL_METRIC_EXPORT_TIMEOUT
 *   resource OTEL_SERVICE_NAME (default spool), OTEL_RESOURCE_ATTRIBUTES, host, process id and
 *            runtime, a service.instance.id per process (command-line arguments are left out:
 *            they may hold secrets such as --jwt-secret)
 *
 * The exporters read their OTEL_EXPORTER_OTLP_* variables from process.env themselves.
 */
import { randomUUID } from 'node:crypto';
import { diag, DiagLogLevel, trace, type ContextManager } from '@opentelemetry/api';
import { OTLPMetricExporter as OtlpGrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as OtlpJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OtlpProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { defaultResource, detectResources, envDetector, hostDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { ConsoleMetricExporter, PeriodicExportingMetricReader, type MetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { Logger } from 'pino';
import type { Observability } from './telemetry';
import { Tracing } from './tracing';

export interface Otel extends Observability {
  /** Flushes and stops span export. Call after the gateway closed (which flushes its metrics). */
  shutdown(): Promise<void>;
}

/** Starts OpenTelemetry from the OTEL_* environment. `logger` gets the SDK's own warnings (failed exports). */
export async function startOtel(logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Otel> {
  // The SDK's diagnostics as JSON log lines on the gateway's logger, never as console text.
  diag.setLogger(
    {
      error: (message, ...args) => logger.error({ otel: args.map(String) }, `opentelemetry: ${message}`),
      warn: (message, ...args) => logger.warn({ otel: args.map(String) }, `opentelemetry: ${message}`),
      info: (message, ...args) => logger.debug({ otel: args.map(String) }, `opentelemetry: ${message}`),
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.INFO, suppressOverrideMessage: true },
  );
  const resource = await detectResource(env);
  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    // Metrics have their own provider (the gateway's); logs go through pino, not OTel.
    metricReaders: [],
    logRecordProcessors: [],
    // Spans get their parents passed explicitly (tracing.ts): no AsyncLocalStorage context
    // manager, and its cost on every promise, is needed; nor a global propagator.
    contextManager: null as unknown as ContextManager,
    textMapPropagator: null,
  });
  sdk.start();
  const traced = !(env['OTEL_TRACES_EXPORTER'] ?? '').split(',').some((e) => e.trim() === 'none');
  const metricReaders = metricReadersFromEnv(env);
  logger.info(
    { traces: traced, metricReaders: metricReaders.length, service: resource.attributes['service.name'], endpoint: env['OTEL_EXPORTER_OTLP_ENDPOINT'] },
    'opentelemetry started',
  );
  return {
    resource,
    metricReaders,
    ...(traced ? { tracing: new Tracing(trace.getTracer('spool')) } : {}),
    shutdown: () => sdk.shutdown(),
  };
}

async function detectResource(env: NodeJS.ProcessEnv): Promise<Resource> {
  const detected = detectResources({ detectors: [envDetector, hostDetector] });
  await detected.waitForAsyncAttributes?.();
  // Later merges win: the environment over spool's defaults over the SDK's.
  return defaultResource()
    .merge(
      resourceFromAttributes({
        'service.name': 'spool',
        'service.instance.id': env['HOSTNAME'] ? `${env['HOSTNAME']}-${process.pid}` : randomUUID(),
        'process.pid': process.pid,
        'process.runtime.name': 'nodejs',
        'process.runtime.version': process.versions.node,
      }),
    )
    .merge(detected);
}

/** A periodic reader per OTEL_METRICS_EXPORTER entry (default otlp), as the specification reads them. */
function metricReadersFromEnv(env: NodeJS.ProcessEnv): MetricReader[] {
  const names = (env['OTEL_METRICS_EXPORTER'] ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  if (names.includes('none')) return [];
  if (names.length === 0) names.push('otlp');
  const positive = (name: string): number | undefined => {
    const value = Number(env[name]);
    return env[name] !== undefined && Number.isFinite(value) && value > 0 ? value : undefined;
  };
  const exportIntervalMillis = positive('OTEL_METRIC_EXPORT_INTERVAL') ?? 60_000;
  const exportTimeoutMillis = Math.min(positive('OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000, exportIntervalMillis);
  const readers: MetricReader[] = [];
  for (const name of new Set(names)) {
    let exporter: PushMetricExporter;
    if (name === 'otlp') exporter = otlpMetricExporter(env);
    else if (name === 'console') exporter = new ConsoleMetricExporter();
    else {
      // 'prometheus' is GET /metrics on the gateway's own port; anything else is not known here.
      if (name !== 'prometheus') diag.warn(`OTEL_METRICS_EXPORTER=${name} is not supported (otlp, console, none; prometheus is GET /metrics)`);
      continue;
    }
    readers.push(new PeriodicExportingMetricReader({ exporter, exportIntervalMillis, exportTimeoutMillis }));
  }
  return readers;
}

function otlpMetricExporter(env: NodeJS.ProcessEnv): PushMetricExporter {
  const protocol = (env['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL'] ?? env['OTEL_EXPORTER_OTLP_PROTOCOL'] ?? '').trim() || 'http/protobuf';
  switch (protocol) {
    case 'http/json':
      return new OtlpJsonMetricExporter();
    case 'grpc':
      return new OtlpGrpcMetricExporter();
    case 'http/protobuf':
      return new OtlpProtoMetricExporter();
    default:
      diag.warn(`OTLP metrics protocol ${protocol} is not supported (http/protobuf, http/json, grpc); using http/protobuf`);
      return new OtlpProtoMetricExporter();
  }
}
