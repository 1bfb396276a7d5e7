/**
 * GET /metrics of a real gateway on port 0, scraped over HTTP during and after a workload: every
 * named metric moved as the workload says it must (finish outcomes by status, store failures,
 * resumes, first durable chunk), in the Prometheus exposition the gateway serves.
 */
import pino from 'pino';
import { MemoryStore } from '../store/memory';
import type { SessionStore, WriteItem } from '../store/types';
import { startGateway, type Gateway, type GatewayOptions } from './index';
import { DISABLED_OBSERVABILITY } from './telemetry';
import { RawClient, type AnyFrame } from './test-helpers/raw-client';

const quiet = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function gateway(options: GatewayOptions = {}): Promise<Gateway> {
  const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: quiet, ...options });
  cleanups.push(() => gw.close());
  return gw;
}

async function client(gw: Gateway): Promise<RawClient> {
  const c = await RawClient.connect(gw.url);
  cleanups.push(() => c.close());
  return c;
}

/** The samples of a Prometheus text page by series (`name` or `name{labels}` as printed). */
async function scrape(gw: Gateway): Promise<{ text: string; value: (series: string) => number | undefined }> {
  const response = await fetch(`http://127.0.0.1:${gw.port}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return { text, value: (series) => samples.get(series) };
}

let nextId = 1;
async function finish(c: RawClient, token: string, seq: number, status: string): Promise<AnyFrame> {
  const id = nextId++;
  c.send({ type: 'finish', id, token, seq, status });
  return c.next((f) => f.id === id && (f.type === 'finished' || f.type === 'error'));
}

/** A store whose appends fail while `failing(session)` says so; counts the failures it threw. */
function flakyStore(failing: (session: string, items: readonly WriteItem[]) => boolean): SessionStore & { thrown: number } {
  const inner = new MemoryStore();
  const store = Object.assign(Object.create(inner) as MemoryStore, {
    thrown: 0,
    append: async (session: string, items: readonly WriteItem[]) => {
      if (failing(session, items)) {
        store.thrown += 1;
        throw new Error('injected store failure');
      }
      return inner.append(session, items);
    },
  });
  return store;
}

describe('GET /metrics', () => {
  it('counts finish outcomes by status as the generations ended (done, error, aborted, fenced, timeout), once each', async () => {
    const gw = await gateway({ generationIdleTimeoutMs: 300 });
    const producer = await client(gw);
    const statuses = ['done', 'done', 'error', 'aborted'];
    for (const [i, status] of statuses.entries()) {
      const { token } = await producer.open(`fin-${i}`, `g${i}`);
      producer.send({ type: 'chunks', token, seq: 0, items: [{ data: 'hello' }, { data: 'world' }] });
      expect(await finish(producer, token, 2, status)).toMatchObject({ type: 'finished', status });
    }
    // Fenced: a takeover open of another generation ends the active one with gen.end fenced.
    const displaced = await producer.open('fin-fenced', 'old');
    const other = await client(gw);
    const taker = await other.open('fin-fenced', 'new', { takeover: true });
    expect(taker).toMatchObject({ type: 'opened' });
    expect(await producer.next((f) => f.type === 'error' && f.code === 'FENCED')).toMatchObject({ ref: 'old' });
    expect(await finish(other, taker['token'], 0, 'done')).toMatchObject({ type: 'finished', status: 'done' });
    // Timeout: a generation that sends nothing is ended by the gateway after the idle timeout.
    const idle = await producer.open('fin-idle', 'quiet');
    expect(idle).toMatchObject({ type: 'opened' });
    const reader = await client(gw);
    reader.send({ type: 'subscribe', session: 'fin-idle', from: 0 });
    await reader.next((f) => f.type === 'events' && (f['events'] as AnyFrame[]).some((e) => e.type === 'gen.end' && e['status'] === 'timeout'));

    const m = await scrape(gw);
    expect(m.value('spool_generations_ended_total{status="done"}')).toBe(3);
    expect(m.value('spool_generations_ended_total{status="error"}')).toBe(1);
    expect(m.value('spool_generations_ended_total{status="aborted"}')).toBe(1);
    expect(m.value('spool_generations_ended_total{status="fenced"}')).toBe(1);
    expect(m.value('spool_generations_ended_total{status="timeout"}')).toBe(1);
    // Producer finishes only (the timeout has no one waiting): 4 + the taker's.
    expect(m.value('spool_finish_latency_seconds_count')).toBe(5);
    // Open → first durable chunk, for the four generations that wrote one.
    expect(m.value('spool_first_durable_chunk_seconds_count')).toBe(4);
    expect(m.value('spool_chunk_payload_bytes_count')).toBe(8);
    expect(m.value('spool_chunk_payload_bytes_sum')).toBeGreaterThanOrEqual(8 * 5);
    expect(m.value('spool_fenced_writes_total')).toBe(0);
    expect(displaced).toMatchObject({ type: 'opened' });
    // One data-bytes and one queue-wait observation per successful append, as many as batch sizes.
    const appends = m.value('spool_persistence_batch_size_count');
    expect(appends).toBeGreaterThan(0);
    expect(m.value('spool_persistence_batch_bytes_count')).toBe(appends);
    expect(m.value('spool_write_durable_latency_seconds_count')).toBe(appends);
    expect(m.value('spool_persistence_batch_size_bucket{le="+Inf"}')).toBe(appends);
  });

  it('counts an injected store failure as a persistence failure, and writes that outlive the retry budget as failed writes', async () => {
    let failOnce = true;
    const store = flakyStore((session) => {
      if (session === 'doomed') return true;
      if (session === 'flaky' && failOnce) {
        failOnce = false;
        return true;
      }
      return false;
    });
    // A budget no stall of a loaded machine outlasts, so the one retry of 'flaky' succeeds.
    const patient = await gateway({ store, storeRetryBudgetMs: 30_000, storeProbeIntervalMs: 50 });
    const pc = await client(patient);
    const before = await scrape(patient);
    expect(before.value('spool_persistence_failure_total')).toBe(0);
    expect(before.value('spool_writes_failed_total{code="STORE_UNAVAILABLE"}')).toBe(0);

    // One failure, retried within the budget: the chunk is acked, the failure counted.
    const flaky = await pc.open('flaky', 'g');
    pc.send({ type: 'chunk', token: flaky['token'], seq: 0, data: 'a' });
    expect(await pc.next((f) => f.type === 'ack')).toMatchObject({ generation: 'g', seq: 0 });
    const during = await scrape(patient);
    expect(during.value('spool_persistence_failure_total')).toBe(1);
    expect(store.thrown).toBe(1);
    expect(during.value('spool_writes_failed_total{code="STORE_UNAVAILABLE"}')).toBe(0);

    // Failing past the budget: the writes fail, the producer is told, both are counted.
    store.thrown = 0;
    const gw = await gateway({ store, storeRetryBudgetMs: 300, storeProbeIntervalMs: 50 });
    const c = await client(gw);
    const doomed = await c.open('doomed', 'g');
    c.send({ type: 'chunks', token: doomed['token'], seq: 0, items: [{ data: 'x' }, { data: 'y' }] });
    expect(await c.next((f) => f.type === 'error' && f['ref'] === 'g' && f.code === 'STORE_UNAVAILABLE')).toMatchObject({ retryable: true });
    const after = await scrape(gw);
    expect(after.value('spool_writes_failed_total{code="STORE_UNAVAILABLE"}')).toBe(2);
    expect(after.value('spool_errors_total{code="STORE_UNAVAILABLE"}')).toBe(1);
    // Every failed attempt but the last was retried; the last one is the failed writes above.
    expect(after.value('spool_persistence_failure_total')).toBe(store.thrown - 1);
    expect(after.value('spool_store_ready')).toBe(1);
  });

  it('shows connections, sessions and a resume while they are there, and their end after', async () => {
    const gw = await gateway();
    const producer = await client(gw);
    const reader = await client(gw);
    const { token } = await producer.open('live', 'g');
    producer.send({ type: 'chunks', token, seq: 0, items: [{ data: 'a' }, { data: 'b' }, { data: 'c' }] });
    await producer.next((f) => f.type === 'ack' && f['seq'] === 2);
    // A reader resuming after offset 2 (of 4): counted as a resume attempt, and as a success once live.
    const items = await reader.readAll('live', 2);
    expect(items.map((e) => e['offset'])).toEqual([3, 4]);

    const during = await scrape(gw);
    expect(during.value('spool_connections_active')).toBe(2);
    expect(during.value('spool_sessions_active')).toBe(1);
    expect(during.value('spool_resume_attempts_total')).toBe(1);
    expect(during.value('spool_resume_latency_seconds_count')).toBe(1);
    expect(during.value('spool_memory_bytes_per_session')).toBeGreaterThanOrEqual(0);
    expect(during.value('process_memory_usage')).toBeGreaterThan(0);
    expect(during.text).toMatch(/^nodejs_eventloop_utilization /m);
    expect(during.text).toMatch(/^v8js_memory_heap_used\{/m);

    producer.close();
    reader.close();
    await producer.waitClosed();
    await reader.waitClosed();
    // The server side of a close is seen a moment after the client's: wait for the count, bounded.
    const deadline = Date.now() + 20_000;
    let after = await scrape(gw);
    while (after.value('spool_connections_active') !== 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      after = await scrape(gw);
    }
    expect(after.value('spool_connections_active')).toBe(0);
    expect(after.value('spool_resume_attempts_total')).toBe(1);
  });
});

describe('OTEL_SDK_DISABLED=true (observability.disabled)', () => {
  it('records nothing: no instrument, no process or runtime metrics; /metrics answers that it is disabled', async () => {
    const gw = await gateway({ observability: DISABLED_OBSERVABILITY });
    const producer = await client(gw);
    const { token } = await producer.open('off', 'g');
    producer.send({ type: 'chunks', token, seq: 0, items: [{ data: 'a' }, { data: 'b' }] });
    expect(await finish(producer, token, 2, 'done')).toMatchObject({ type: 'finished', status: 'done' });
    expect(gw.metrics.disabled).toBe(true);
    expect(gw.metrics.persistenceSuccess.get()).toBe(0);
    expect(gw.metrics.generationsEnded.get({ status: 'done' })).toBe(0);
    const m = await scrape(gw);
    expect(m.text).toBe('# OpenTelemetry is disabled (OTEL_SDK_DISABLED=true): no metrics are recorded\n');
  });
});

describe('GET /metrics under pressure', () => {
  /** A store whose appends wait until `release()`, retaining `maxEvents` events. */
  function gatedStore(maxEvents: number): { store: MemoryStore; release: () => void } {
    const inner = new MemoryStore({ retention: { maxEvents, maxBytes: 1 << 20, criticalFactor: 2 } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const store = Object.assign(Object.create(inner) as MemoryStore, {
      append: async (session: string, items: readonly WriteItem[]) => {
        await gate;
        return inner.append(session, items);
      },
    });
    return { store, release };
  }

  it('shows the queue while the store holds it, then debug drops past the degrade watermark, duplicates, fenced writes and trims by priority', async () => {
    const { store, release } = gatedStore(6);
    const gw = await gateway({ store, degradeWatermark: 4 });
    cleanups.push(release); // before the gateway's close, which waits for queued writes
    const producer = await client(gw);
    const { token } = await producer.open('pressure', 'g');
    // The first chunk goes to the (held) store; the rest queue behind it, debug ones past the watermark dropped.
    const priorities = [2, 2, 2, 2, 2, 0, 1, 0, 2, 0];
    producer.send({ type: 'chunks', token, seq: 0, items: priorities.map((priority, i) => ({ priority, data: `p${priority}-${i}` })) });
    producer.send({ type: 'ping', id: 1 });
    await producer.next((f) => f.type === 'pong');
    // That frame is one store call, in flight; the next write waits in the queue behind it.
    producer.send({ type: 'chunk', token, seq: 10, priority: 2, data: 'queued' });
    producer.send({ type: 'ping', id: 2 });
    await producer.next((f) => f.type === 'pong' && f.id === 2);
    const held = await scrape(gw);
    expect(held.value('spool_persistence_queue_depth')).toBe(1);
    expect(held.value('spool_degraded_dropped_total')).toBe(3);
    release();
    await producer.next((f) => f.type === 'ack' && f['seq'] === 10);

    // The same append key twice: stored once, the second answered as a duplicate.
    for (const id of [11, 12]) {
      producer.send({ type: 'append', id, session: 'pressure', key: 'user-1', kind: 'user', data: 'hi' });
      await producer.next((f) => f.id === id && f.type === 'appended');
    }
    // A takeover fences the first producer: its next write is refused and counted.
    const taker = await client(gw);
    expect(await taker.open('pressure', 'g2', { takeover: true })).toMatchObject({ type: 'opened' });
    producer.send({ type: 'chunk', token, seq: 11, data: 'late' });
    await producer.next((f) => f.type === 'error' && f['code'] === 'FENCED');

    const after = await scrape(gw);
    expect(after.value('spool_persistence_queue_depth')).toBe(0);
    expect(after.value('spool_duplicate_writes_total')).toBe(1);
    expect(after.value('spool_fenced_writes_total')).toBe(1);
    expect(after.value('spool_generations_ended_total{status="fenced"}')).toBe(1);
    // 8 chunks, gen.start, the append, gen.end fenced and gen.start again in 6 retained events:
    // the priority-1 chunk goes first, then priority-2 ones; critical events stay.
    expect(after.value('spool_buffer_trimmed_total{priority="1"}')).toBe(1);
    expect(after.value('spool_buffer_trimmed_total{priority="2"}')).toBeGreaterThan(0);
    expect(after.value('spool_buffer_trimmed_total{priority="3"}')).toBeUndefined();
  });

  it('counts a reader paused past maxReaderBufferedBytes and its close as a slow consumer', async () => {
    const gw = await gateway({ maxReaderBufferedBytes: 64 * 1024, slowReaderTimeoutMs: 200, credit: { frames: 4096, bytes: 8 << 20 } });
    const producer = await client(gw);
    const reader = await client(gw);
    const { token } = await producer.open('slow', 'g');
    reader.send({ type: 'subscribe', session: 'slow', from: 0 });
    await reader.next((f) => f.type === 'live');
    // The reader stops reading at the TCP level; kernel buffers absorb megabytes before the gateway's bound is reached.
    (reader.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const chunk = 'y'.repeat(1000);
    let slow = 0;
    for (let seq = 0; slow === 0 && seq < 200_000; seq += 100) {
      producer.send({ type: 'chunks', token, seq, items: Array.from({ length: 100 }, (_, i) => ({ data: `${seq + i}:${chunk}` })) });
      await producer.next((f) => f.type === 'ack' && f['seq'] === seq + 99);
      slow = (await scrape(gw)).value('spool_errors_total{code="SLOW_CONSUMER"}') ?? 0;
    }
    const m = await scrape(gw);
    expect(m.value('spool_errors_total{code="SLOW_CONSUMER"}')).toBe(1);
    expect(m.value('spool_reader_pauses_total')).toBeGreaterThanOrEqual(1);
  });
});
