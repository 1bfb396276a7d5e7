/**
 * The gateway's spans with the OpenTelemetry SDK's in-memory exporter, over real sockets: a
 * retried batch is one persist span with its retries, a batch given up ends in error, parents
 * come from the frames' traceparent. (chaos/otel.test.ts runs the same through a process and a
 * real OTLP receiver.)
 */
import { trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import pino from 'pino';
import { DEFAULT_LIMITS } from '../protocol/limits';
import { validateClientFrame } from '../protocol/validate';
import { MemoryStore } from '../store/memory';
import type { WriteItem } from '../store/types';
import { startGateway, type Gateway } from './index';
import { RawClient } from './test-helpers/raw-client';
import { contextOf, Tracing } from './tracing';

const quiet = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

/** A traced gateway whose store's appends fail while `failing(session)`; writes fail for good after `retryBudgetMs`. */
async function tracedGateway(failing: (session: string) => boolean, retryBudgetMs = 300): Promise<{ gw: Gateway; spans: () => ReadableSpan[] }> {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  cleanups.push(() => provider.shutdown());
  const inner = new MemoryStore();
  const store = Object.assign(Object.create(inner) as MemoryStore, {
    append: async (session: string, items: readonly WriteItem[]) => {
      if (failing(session)) throw new Error('injected store failure');
      return inner.append(session, items);
    },
  });
  const gw = await startGateway({
    port: 0,
    store,
    logger: quiet,
    storeRetryBudgetMs: retryBudgetMs,
    storeProbeIntervalMs: 50,
    observability: { metricReaders: [], resource: resourceFromAttributes({ 'service.name': 'spool-test' }), tracing: new Tracing(provider.getTracer('spool')) },
  });
  cleanups.push(() => gw.close());
  return { gw, spans: () => exporter.getFinishedSpans() };
}

const attribute = (span: ReadableSpan | undefined, key: string): unknown => span?.attributes[key];

describe('spans', () => {
  it('records a batch retried after a store failure as one persist span with its retries, each attempt a store span under it', async () => {
    let failures = 1;
    // A budget no stall of a loaded machine outlasts: the one retry must succeed.
    const { gw, spans } = await tracedGateway((session) => session === 'retried' && failures-- > 0, 30_000);
    const c = await RawClient.connect(gw.url);
    cleanups.push(() => c.close());
    const opened = await c.open('retried', 'g', { traceparent: TRACEPARENT });
    c.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a' }, { data: 'b' }] });
    await c.next((f) => f.type === 'ack' && f['seq'] === 1);

    const generation = spans().find((s) => s.name === 'spool.generation');
    // Still open (no gen.end yet): ended spans only are exported.
    expect(generation).toBeUndefined();
    const persist = spans().filter((s) => s.name === 'spool.persist');
    expect(persist).toHaveLength(1);
    expect(attribute(persist[0], 'spool.batch.retries')).toBe(1);
    expect(attribute(persist[0], 'spool.batch.events')).toBe(2);
    expect(persist[0]?.spanContext().traceId).toBe(TRACE_ID);
    const attempts = spans().filter((s) => s.name === 'spool.store append');
    expect(attempts).toHaveLength(2);
    expect(attempts.map((s) => s.parentSpanContext?.spanId)).toEqual([persist[0]?.spanContext().spanId, persist[0]?.spanContext().spanId]);
    expect(attempts.map((s) => s.status.code)).toEqual([2, 0]); // ERROR, then UNSET (ok)

    c.send({ type: 'finish', id: 5, token: opened['token'], seq: 2, status: 'done' });
    await c.next((f) => f.id === 5 && f.type === 'finished');
    const ended = spans().find((s) => s.name === 'spool.generation');
    expect(ended?.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(ended?.parentSpanContext?.traceId).toBe(TRACE_ID);
    expect(attribute(ended, 'spool.generation.status')).toBe('done');
    expect(persist[0]?.parentSpanContext?.spanId).toBe(ended?.spanContext().spanId);
  });

  it('ends the span of a batch whose retry budget ran out in error, each failed attempt a store span in error', async () => {
    const { gw, spans } = await tracedGateway((session) => session === 'doomed');
    const c = await RawClient.connect(gw.url);
    cleanups.push(() => c.close());
    const opened = await c.open('doomed', 'g');
    c.send({ type: 'chunk', token: opened['token'], seq: 0, data: 'x' });
    await c.next((f) => f.type === 'error' && f.code === 'STORE_UNAVAILABLE');
    const persist = spans().filter((s) => s.name === 'spool.persist');
    expect(persist).toHaveLength(1);
    expect(persist[0]?.status.code).toBe(2);
    expect(persist[0]?.status.message).toMatch(/^STORE_UNAVAILABLE: 1 writes failed/);
    expect(attribute(persist[0], 'spool.batch.retries')).toBeGreaterThanOrEqual(0);
    expect(spans().filter((s) => s.name === 'spool.store append').every((s) => s.status.code === 2)).toBe(true);
  });
});

describe('traceparent', () => {
  it('is accepted on hello, open and subscribe as a string of at most 256 characters, and refused otherwise', () => {
    expect(validateClientFrame({ type: 'hello', protocol: 1, traceparent: TRACEPARENT }, DEFAULT_LIMITS)).toMatchObject({ traceparent: TRACEPARENT });
    expect(validateClientFrame({ type: 'open', session: 's', generation: 'g', traceparent: TRACEPARENT }, DEFAULT_LIMITS)).toMatchObject({ traceparent: TRACEPARENT });
    expect(validateClientFrame({ type: 'subscribe', session: 's', from: 0, traceparent: 'not one' }, DEFAULT_LIMITS)).toMatchObject({ traceparent: 'not one' });
    expect(() => validateClientFrame({ type: 'open', session: 's', generation: 'g', traceparent: 7 }, DEFAULT_LIMITS)).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
    expect(() => validateClientFrame({ type: 'subscribe', session: 's', from: 0, traceparent: 'x'.repeat(257) }, DEFAULT_LIMITS)).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
  });

  it('names the caller span as a remote parent; a malformed one starts a new trace', () => {
    const parent = trace.getSpanContext(contextOf(TRACEPARENT));
    expect(parent).toMatchObject({ traceId: TRACE_ID, spanId: PARENT_ID, traceFlags: 1, isRemote: true });
    for (const malformed of ['not one', `00-${'0'.repeat(32)}-${PARENT_ID}-01`, `00-${TRACE_ID}-${PARENT_ID}`, undefined]) {
      expect(trace.getSpanContext(contextOf(malformed))).toBeUndefined();
    }
  });
});
