/**
 * `npm run bench -- --otel`: what OpenTelemetry costs the gateway's hot path (issue 12). The
 * throughput workload of `npm run bench` on lmdb-ws, through gateway children that differ only in
 * their OTEL_* environment, in one run:
 *
 *   removed       OTEL_SDK_DISABLED=true: no metric instrument exists, every metric handle is an
 *                 empty method (inlined away), no process/runtime metrics, no metered store, no
 *                 tracing — the telemetry code path taken out without editing the hot path
 *   unconfigured  the default: metrics recorded for /metrics (nothing scrapes it during the run),
 *                 no OTel SDK loaded, no spans
 *   traced 100 %  OTLP/HTTP (protobuf) to a receiver this process runs on port 0, spans sampled
 *                 always_on, metrics exported every 5 s
 *   traced 1 %    the same with OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.01
 *
 * removed and unconfigured run twice (first and last), so the table shows the run-to-run noise
 * next to the differences. Ratios are against the mean of the two removed runs. The bench's
 * clients send no traceparent, so every span is a root and the sampler alone decides. Inherited
 * OTEL_* variables of the shell would reach every child: run it with none set.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runThroughput, type ThroughputResult } from './throughput';

export interface OtelCostOptions {
  readonly sessions: number;
  readonly perSession: number;
  readonly bytes: number;
  readonly window: number;
  readonly log?: (line: string) => void;
}

export interface OtelCostRow {
  readonly variant: string;
  readonly env: Readonly<Record<string, string>>;
  readonly deliveredPerSec: number;
  readonly deliveryP50: number;
  readonly deliveryP99: number;
  readonly ackP99: number;
  readonly gatewayCpuUsPerChunk: number;
  readonly gatewayRssMaxBytes: number;
  /** OTLP requests and body bytes the receiver got during this variant (traces, metrics). */
  readonly otlp: { readonly traceRequests: number; readonly traceBytes: number; readonly metricRequests: number };
  readonly problems: readonly string[];
}

export interface OtelCostReport {
  readonly workload: Omit<OtelCostOptions, 'log'>;
  readonly rows: readonly OtelCostRow[];
}

/** An OTLP/HTTP endpoint that accepts everything and counts it (bodies are not decoded). */
class CountingReceiver {
  traceRequests = 0;
  traceBytes = 0;
  metricRequests = 0;
  private readonly server = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        this.traceRequests += 1;
        this.traceBytes += bytes;
      } else if (req.url === '/v1/metrics') this.metricRequests += 1;
      // An empty protobuf message is a valid (full-success) Export*ServiceResponse.
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  take(): OtelCostRow['otlp'] {
    const taken = { traceRequests: this.traceRequests, traceBytes: this.traceBytes, metricRequests: this.metricRequests };
    this.traceRequests = this.traceBytes = this.metricRequests = 0;
    return taken;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Runs the variants in the order that spreads drift over them (removed and unconfigured first and last). */
export async function runOtelCost(options: OtelCostOptions): Promise<OtelCostReport> {
  const say = options.log ?? ((): void => undefined);
  const receiver = new CountingReceiver();
  const endpoint = await receiver.start();
  const exporting = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_METRIC_EXPORT_INTERVAL: '5000' };
  const variants: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ['removed', { OTEL_SDK_DISABLED: 'true' }],
    ['unconfigured', {}],
    ['traced 100 %', { ...exporting, OTEL_TRACES_SAMPLER: 'always_on' }],
    ['traced 1 %', { ...exporting, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' }],
    ['removed', { OTEL_SDK_DISABLED: 'true' }],
    ['unconfigured', {}],
  ];
  const rows: OtelCostRow[] = [];
  try {
    for (const [variant, env] of variants) {
      say(`otel: ${variant} (lmdb-ws; ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ') || 'no OTEL_*'})`);
      receiver.take();
      const r: ThroughputResult = await runThroughput({
        name: `otel ${variant}`,
        transport: 'ws',
        sessions: options.sessions,
        perSession: options.perSession,
        bytes: options.bytes,
        window: options.window,
        store: { kind: 'lmdb', durability: 'commit' },
        env,
      });
      rows.push({
        variant,
        env,
        deliveredPerSec: r.deliveredPerSec,
        deliveryP50: r.delivery.p50,
        deliveryP99: r.delivery.p99,
        ackP99: r.ack.p99,
        gatewayCpuUsPerChunk: r.gatewayCpuUsPerChunk,
        gatewayRssMaxBytes: r.gatewayRssMaxBytes,
        otlp: receiver.take(),
        problems: r.problems,
      });
    }
  } finally {
    await receiver.close();
  }
  const { log: _log, ...workload } = options;
  return { workload, rows };
}

const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / values.length;

/** The table `npm run bench -- --otel` prints. */
export function formatOtelCost(report: OtelCostReport): string {
  const removed = report.rows.filter((r) => r.variant === 'removed');
  const baseRate = mean(removed.map((r) => r.deliveredPerSec));
  const baseCpu = mean(removed.map((r) => r.gatewayCpuUsPerChunk));
  const w = report.workload;
  const lines = [
    `OpenTelemetry cost, lmdb-ws: ${w.sessions} sessions × ${w.perSession.toLocaleString('en-US')} chunks × ${w.bytes} B, window ${w.window}; ratios against the mean of the removed runs`,
    '',
    'variant          delivered/s  ÷ removed  gw cpu µs/chunk  ÷ removed  delivery ms p50 / p99  ack ms p99  gw peak rss MB  OTLP trace reqs / KiB  metric reqs',
  ];
  for (const r of report.rows) {
    lines.push(
      [
        r.variant.padEnd(15),
        Math.round(r.deliveredPerSec).toLocaleString('en-US').padStart(12),
        `×${(r.deliveredPerSec / baseRate).toFixed(3)}`.padStart(10),
        r.gatewayCpuUsPerChunk.toFixed(2).padStart(16),
        `×${(r.gatewayCpuUsPerChunk / baseCpu).toFixed(3)}`.padStart(10),
        `${r.deliveryP50.toFixed(1)} / ${r.deliveryP99.toFixed(1)}`.padStart(22),
        r.ackP99.toFixed(1).padStart(11),
        (r.gatewayRssMaxBytes / 2 ** 20).toFixed(0).padStart(15),
        `${r.otlp.traceRequests} / ${(r.otlp.traceBytes / 1024).toFixed(0)}`.padStart(22),
        String(r.otlp.metricRequests).padStart(12),
      ].join(' '),
    );
  }
  const problems = report.rows.flatMap((r) => r.problems.map((p) => `${r.variant}: ${p}`));
  if (problems.length > 0) lines.push('', 'PROBLEMS:', ...problems.map((p) => `  ${p}`));
  return lines.join('\n');
}
