/**
 * OpenTelemetry end to end: a real `spool serve` process whose OTEL_* environment points at an
 * OTLP/HTTP receiver this test runs on port 0 (http/json, so bodies are read without protobuf).
 * A producer streams a generation and a reader resumes once, through the SDK (SpoolClient), each
 * with the app's W3C traceparent passed to the SDK (client option, per generation, per
 * subscription); the spans (generation, persisted batch, store call, resume) must arrive with
 * those as their parents, and the gateway's metrics must arrive by OTLP too. Nothing is mocked:
 * the SDK's own exporters send to a real HTTP server.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { SpoolClient, type Subscription, type SubscriptionItem } from '../client';
import { freePort } from './fault-proxy';
import { GatewayProcess } from './gateway-process';

jest.setTimeout(60_000);

interface OtlpAttribute {
  readonly key: string;
  readonly value: { readonly stringValue?: string; readonly intValue?: string | number; readonly doubleValue?: number; readonly boolValue?: boolean };
}
interface OtlpSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly attributes?: readonly OtlpAttribute[];
  readonly status?: { readonly code?: number };
}
interface OtlpDataPoint {
  readonly attributes?: readonly OtlpAttribute[];
  readonly asInt?: string | number;
  readonly asDouble?: number;
  readonly count?: string | number;
}
interface OtlpMetric {
  readonly name: string;
  readonly sum?: { readonly dataPoints: readonly OtlpDataPoint[] };
  readonly gauge?: { readonly dataPoints: readonly OtlpDataPoint[] };
  readonly histogram?: { readonly dataPoints: readonly OtlpDataPoint[] };
}

/** An OTLP/HTTP (JSON) receiver: keeps every span and every metric export it is sent. */
class OtlpReceiver {
  readonly spans: OtlpSpan[] = [];
  /** Each export's metrics, newest last (cumulative: the last one holds the totals). */
  readonly metricExports: OtlpMetric[][] = [];
  readonly resources: Array<readonly OtlpAttribute[]> = [];
  readonly contentTypes = new Set<string>();
  private readonly waiters: Array<() => void> = [];
  private server: http.Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.contentTypes.add(String(req.headers['content-type']));
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, any>;
        if (req.url === '/v1/traces') {
          for (const rs of body['resourceSpans'] ?? []) {
            this.resources.push(rs.resource?.attributes ?? []);
            for (const ss of rs.scopeSpans ?? []) this.spans.push(...(ss.spans ?? []));
          }
        } else if (req.url === '/v1/metrics') {
          const metrics: OtlpMetric[] = [];
          for (const rm of body['resourceMetrics'] ?? []) for (const sm of rm.scopeMetrics ?? []) metrics.push(...(sm.metrics ?? []));
          this.metricExports.push(metrics);
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server?.address() as { port: number }).port;
  }

  /** Resolves once `check` holds after some export arrived; fails after `timeoutMs`. */
  async until<T>(what: string, check: () => T | undefined, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = check();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`OTLP receiver: no ${what} within ${timeoutMs} ms (${this.spans.length} spans: ${[...new Set(this.spans.map((s) => s.name))].join(', ')})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

const attr = (attributes: readonly OtlpAttribute[] | undefined, key: string): unknown => {
  const value = attributes?.find((a) => a.key === key)?.value;
  if (!value) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.doubleValue ?? value.boolValue;
};

/** The value of a counter's (or gauge's) data point with `labels`, in the newest export that has it. */
function metricValue(exports: readonly OtlpMetric[][], name: string, labels: Record<string, string> = {}): number | undefined {
  for (let i = exports.length - 1; i >= 0; i--) {
    const metric = exports[i]?.find((m) => m.name === name);
    const points = metric?.sum?.dataPoints ?? metric?.gauge?.dataPoints ?? metric?.histogram?.dataPoints;
    const point = points?.find((p) => Object.entries(labels).every(([k, v]) => attr(p.attributes, k) === v));
    if (point) return Number(point.asInt ?? point.asDouble ?? point.count);
  }
  return undefined;
}

const hex = (n: number, seed: number): string => Array.from({ length: n }, (_, i) => ((seed * 7 + i * 13) % 16).toString(16)).join('');
/** A W3C traceparent of a (made-up) caller span, sampled. */
const caller = (seed: number): { traceparent: string; traceId: string; spanId: string } => {
  const traceId = hex(32, seed);
  const spanId = hex(16, seed + 1);
  return { traceparent: `00-${traceId}-${spanId}-01`, traceId, spanId };
};

/** Reads `sub` until an item at `offset` (or past it) arrived; returns the items. */
async function readThrough(sub: Subscription, offset: number): Promise<SubscriptionItem[]> {
  const items: SubscriptionItem[] = [];
  for (;;) {
    const next = await Promise.race([
      sub.next(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no item at offset ${offset} within 20 s; got ${JSON.stringify(items)}`)), 20_000).unref()),
    ]);
    if (next.done === true) throw new Error('the subscription ended');
    items.push(next.value);
    if ((next.value.type === 'gap' ? next.value.to : next.value.offset) >= offset) return items;
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

it('exports spans parented by the SDK’s traceparent (generation, batches, store calls, a resume) and metrics over OTLP/HTTP', async () => {
  const receiver = new OtlpReceiver();
  await receiver.start();
  cleanups.push(() => receiver.close());
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-otel-'));
  cleanups.push(() => fs.rmSync(data, { recursive: true, force: true }));
  const serviceName = 'spool "otel"\ntest';
  const gateway = new GatewayProcess({
    port: await freePort(),
    data,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: serviceName,
      OTEL_TRACES_SAMPLER: 'parentbased_always_on',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_METRIC_EXPORT_INTERVAL: '300',
      OTEL_METRIC_EXPORT_TIMEOUT: '300',
    },
  });
  cleanups.push(() => gateway.kill9());
  await gateway.start();

  // The producer: the client's traceparent goes in its hellos; the generation's own wins for its open.
  const connection = caller(1);
  const generation = caller(2);
  const producer = new SpoolClient({ url: gateway.url, traceparent: () => connection.traceparent });
  cleanups.push(() => producer.destroy());
  const gen = producer.generation('otel-s', { id: 'otel-g', traceparent: generation.traceparent });
  gen.write('one');
  gen.write('two');
  await gen.flush();

  // The reader: reads up to offset 3, goes away, and resumes from there with its own traceparent.
  const firstReader = new SpoolClient({ url: gateway.url });
  const seen = await readThrough(firstReader.subscribe('otel-s', { from: 0 }), 3);
  expect(seen.map((item) => (item.type === 'gap' ? item.to : item.offset))).toEqual([1, 2, 3]);
  await firstReader.close();
  gen.write('three');
  await gen.flush();
  const resume = caller(3);
  const readerClient = new SpoolClient({ url: gateway.url });
  cleanups.push(() => readerClient.destroy());
  const reader = readerClient.subscribe('otel-s', { from: 3, traceparent: () => resume.traceparent });
  expect((await readThrough(reader, 4)).map((item) => (item.type === 'gap' ? item.to : item.offset))).toEqual([4]);
  expect(await gen.finish()).toMatchObject({ status: 'done' });

  // Spans.
  const genSpan = await receiver.until('generation span', () => receiver.spans.find((s) => s.name === 'spool.generation'));
  expect(genSpan.traceId).toBe(generation.traceId);
  expect(genSpan.parentSpanId).toBe(generation.spanId);
  expect(attr(genSpan.attributes, 'session.id')).toBe('otel-s');
  expect(attr(genSpan.attributes, 'generation.id')).toBe('otel-g');
  expect(attr(genSpan.attributes, 'connection.id')).toEqual(expect.any(String));
  expect(attr(genSpan.attributes, 'spool.generation.status')).toBe('done');
  const batches = await receiver.until('the three batches (two chunk batches and the finish)', () => {
    const found = receiver.spans.filter((s) => s.name === 'spool.persist' && s.parentSpanId === genSpan.spanId);
    return found.length >= 3 ? found : undefined;
  });
  for (const batch of batches) {
    expect(batch.traceId).toBe(generation.traceId);
    expect(attr(batch.attributes, 'db.system.name')).toBe('lmdb');
    expect(attr(batch.attributes, 'spool.batch.retries')).toBe(0);
    // Each persisted batch's store call is its child.
    const call = await receiver.until('the batch’s store call', () => receiver.spans.find((s) => s.name === 'spool.store append' && s.parentSpanId === batch.spanId));
    expect(attr(call.attributes, 'db.operation.name')).toBe('append');
  }
  expect(batches.map((b) => attr(b.attributes, 'spool.batch.events')).sort()).toEqual([1, 1, 2]);
  expect(receiver.spans.find((s) => s.name === 'spool.store openGeneration')?.parentSpanId).toBe(genSpan.spanId);
  const resumeSpan = await receiver.until('resume span', () => receiver.spans.find((s) => s.name === 'spool.resume' && s.traceId === resume.traceId));
  expect(resumeSpan.parentSpanId).toBe(resume.spanId);
  expect(attr(resumeSpan.attributes, 'spool.resume.from')).toBe(3);
  expect(attr(resumeSpan.attributes, 'spool.resume.to')).toBe(4);
  expect(attr(resumeSpan.attributes, 'spool.resume.gaps')).toBe(0);
  // The first reader subscribed from 0: not a resume, no span.
  expect(receiver.spans.filter((s) => s.name === 'spool.resume')).toHaveLength(1);
  expect(attr(receiver.resources[0], 'service.name')).toBe(serviceName);
  expect([...receiver.contentTypes].every((t) => t.startsWith('application/json'))).toBe(true);

  // Metrics, by OTLP: the totals of this workload, and the SDK's process and runtime metrics.
  await receiver.until('finished generation in the OTLP metrics', () => (metricValue(receiver.metricExports, 'spool_generations_ended_total', { status: 'done' }) === 1 ? true : undefined));
  const exports = receiver.metricExports;
  expect(metricValue(exports, 'spool_resume_attempts_total')).toBe(1);
  expect(metricValue(exports, 'spool_first_durable_chunk_seconds')).toBe(1);
  expect(metricValue(exports, 'spool_persistence_success_total')).toBeGreaterThanOrEqual(4);
  // The reader's connection, and the producer's upload connection unless its close after the finish was seen already.
  expect([1, 2]).toContain(metricValue(exports, 'spool_connections_active'));
  expect(metricValue(exports, 'process.memory.usage')).toBeGreaterThan(0);

  // The same metrics on /metrics, where the resource's attributes are target_info's labels,
  // escaped as the exposition format asks (quote and newline).
  const text = await gateway.metrics();
  expect(text).toContain('service_name="spool \\"otel\\"\\ntest"');
  expect(text).toMatch(/^spool_generations_ended_total\{status="done"\} 1$/m);
});
