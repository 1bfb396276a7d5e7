/**
 * `npm run bench`'s lmdb-http row: the bench workload (S sessions × M chunks of B-byte text, one
 * producer and one live reader per session, at most `window` chunks unacknowledged per producer,
 * the gateway in a child process) spoken through the Durable Streams door (PROTOCOL §16) instead
 * of the WebSocket SDK. Figures come out in throughput.ts's shape, so the row sits beside the
 * WebSocket ones.
 *
 * Each session is a JSON stream (`PUT`); chunk `seq` is the message `{"s": seq, "t": text}`
 * (`t` the same B-byte text the WebSocket producers write; `s` does what a chunk frame's seq does).
 *
 * Producers: **batched bodies, one request in flight.** A producer keeps up to `window` chunks
 * unacknowledged: it sends every chunk it may (up to `window`) as one POST whose body is the JSON
 * array of their messages, with Producer-Id / Producer-Epoch / Producer-Seq (one producer seq per
 * request), and sends the next batch when the answer (200, after the batch is durable) frees the
 * window. This is the WebSocket producer's window on the wire: the SDK sends what is queued as one
 * `chunks` frame and writes more as acks return credit; a producer writing as fast as the window
 * allows fills it with one batch either way. Pipelined POSTs would add nothing here: the door takes
 * one write of a stream at a time (the session's lock, one compare-and-append per write), so a
 * second request would only wait at the gateway, and over several connections it could arrive
 * before the first (a 409 gap, resent). A 429 or 503 is resent after its Retry-After with the
 * same producer headers (the protocol's retry: stored once) and counted. The last request closes
 * the stream (`Stream-Closed: true`, a producer write of no data).
 *
 * Readers: `@durable-streams/client` `stream({ live: 'sse' })` from the start, one per session,
 * each on its own connection; the clock starts once every SSE response is open. A reader checks
 * that it gets every message exactly once, in order, intact, and then the close.
 *
 * Latencies: `ack` is the batch's write (the moment its chunks entered the window) → its 200;
 * `delivery` is that write → the reader's subscriber receiving the message; both here, on one clock.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DurableStream } from '@durable-streams/client';
import { ChildGateway, cpuSecondsOf, metricValue, samplePeakRss } from './gateway-child';
import { LatencyRecorder } from './latency';
import type { ThroughputResult, ThroughputStore } from './throughput';
import { deferred, deliverySpanSeconds, payloads, Problems, sleep, Track, withTimeout, writeSpanSeconds } from './workload';

export interface HttpThroughputSpec {
  readonly name: string;
  readonly sessions: number;
  readonly perSession: number;
  /** Characters (= UTF-8 bytes) of each chunk's text. @default 64 */
  readonly bytes?: number;
  /** Chunks a producer keeps unacknowledged (the most one POST carries). @default 64 */
  readonly window?: number;
  /** @default LMDB, durability commit */
  readonly store?: ThroughputStore;
  /** The gateway child writes its `.cpuprofile` here when it exits. */
  readonly cpuProfileDir?: string;
  /** Progress lines (requests sent again after a 429 / 503). */
  readonly log?: (line: string) => void;
}

/** One chunk as the stream carries it. */
interface Message {
  readonly s: number;
  readonly t: string;
}

const JSON_TYPE = 'application/json';
const PRODUCER_ID = 'bench';
/** Chunks streamed through a fresh gateway before the clock starts (as throughput.ts). */
const WARMUP_CHUNKS = 2000;

/** One session: its stream's URL, its bookkeeping, and its reader's progress. */
class HttpSession {
  readonly track: Track;
  /** The seq the reader expects next. */
  private expected = 0;
  /** Resolved when the reader is done (`done`). */
  readonly closed = deferred();
  private stop: (() => void) | null = null;
  private readonly abort = new AbortController();
  /** Requests sent again after a 429 / 503. */
  resent = 0;

  constructor(
    readonly url: string,
    session: string,
    chunks: number,
    text: (seq: number) => string,
    private readonly window: number,
    private readonly problems: Problems,
    private readonly delivery: LatencyRecorder | null,
  ) {
    this.track = new Track(session, session, chunks, text);
  }

  async create(): Promise<void> {
    const res = await fetch(this.url, { method: 'PUT', headers: { 'content-type': JSON_TYPE } });
    if (res.status !== 201) throw new Error(`PUT ${this.url} answered ${res.status}: ${await res.text()}`);
  }

  /** Opens the SSE reader from the start; resolves once its response is open. */
  async follow(): Promise<void> {
    const stream = new DurableStream({ url: this.url, contentType: JSON_TYPE });
    const res = await stream.stream<Message>({ offset: '-1', live: 'sse', signal: this.abort.signal, sseResilience: { logWarnings: false } });
    this.stop = res.subscribeJson((batch) => {
      const at = performance.now();
      for (const message of batch.items) this.deliver(message, at);
      if (batch.streamClosed) this.sawClose();
    });
    // A close that comes without data reaches no subscriber: the response ends with Stream-Closed.
    // The reading loop may end before the subscriber has had the last batches (sawClose waits).
    res.closed.then(
      () => {
        if (res.streamClosed) this.sawClose();
        else if (!this.abort.signal.aborted) this.fail('the SSE response ended before the stream closed');
      },
      (error: unknown) => {
        if (!this.abort.signal.aborted) this.fail(`the SSE reader failed: ${String(error)}`);
      },
    );
  }

  private closeSeen = false;
  /** The reader saw the close and every chunk, or failed. */
  done = false;

  get progress(): string {
    return `${this.track.session} ${this.expected}/${this.track.chunks}${this.closeSeen ? ' closed' : ''}`;
  }

  private sawClose(): void {
    this.closeSeen = true;
    if (this.expected === this.track.chunks) this.end();
  }

  private end(): void {
    this.done = true;
    this.closed.resolve();
  }

  private fail(problem: string): void {
    this.problems.add(`${this.track.session}: ${problem} (after ${this.expected} of ${this.track.chunks} chunks)`);
    this.end();
  }

  private deliver(message: Message, at: number): void {
    const track = this.track;
    if (message.s !== this.expected) {
      this.problems.add(`${track.session}: got chunk ${String(message.s)} where ${this.expected} was next (missed, repeated or reordered)`);
      this.expected = Math.max(this.expected, message.s + 1);
      return;
    }
    if (message.t !== track.text(message.s)) this.problems.add(`${track.session}: chunk ${message.s} arrived altered`);
    this.expected += 1;
    this.delivery?.record(at - (track.writeAt[message.s] as number));
    track.lastDeliveryAt = at;
    if (this.closeSeen && this.expected === track.chunks) this.end();
  }

  /** Writes every chunk in batches of up to `window` (one request in flight), then closes the stream. */
  async produce(): Promise<void> {
    const track = this.track;
    track.firstWriteAt = performance.now();
    let producerSeq = 0;
    for (let next = 0; next < track.chunks; ) {
      const end = Math.min(track.chunks, next + this.window);
      const now = performance.now();
      const messages: Message[] = [];
      for (let seq = next; seq < end; seq++) {
        track.writeAt[seq] = now;
        messages.push({ s: seq, t: track.text(seq) });
      }
      const status = await this.post(producerSeq, JSON.stringify(messages));
      if (status !== 200) throw new Error(`${track.session}: the batch at chunk ${next} (Producer-Seq ${producerSeq}) answered ${status}`);
      track.onAck({ type: 'ack', generation: track.generationId, seq: end - 1, at: performance.now() });
      producerSeq += 1;
      next = end;
    }
    const status = await this.post(producerSeq, null);
    if (status !== 204) throw new Error(`${track.session}: the close answered ${status}`);
    track.finishResolvedAt = performance.now();
  }

  /** One producer request, sent again with the same headers after a 429 or 503. */
  private async post(producerSeq: number, body: string | null): Promise<number> {
    const headers: Record<string, string> = { 'producer-id': PRODUCER_ID, 'producer-epoch': '0', 'producer-seq': String(producerSeq) };
    if (body === null) headers['stream-closed'] = 'true';
    else headers['content-type'] = JSON_TYPE;
    for (;;) {
      const res = await fetch(this.url, { method: 'POST', headers, ...(body === null ? {} : { body }) });
      await res.arrayBuffer();
      if (res.status !== 429 && res.status !== 503) return res.status;
      this.resent += 1;
      // Waiting out the gateway's Retry-After is the protocol's pacing, not a synchronisation.
      await sleep(1000 * Number(res.headers.get('retry-after') ?? '1'));
    }
  }

  close(): void {
    this.stop?.();
    this.abort.abort();
  }
}


/** One run of the workload through the Durable Streams door of a fresh gateway child. */
export async function runHttpThroughput(spec: HttpThroughputSpec): Promise<ThroughputResult> {
  const store = spec.store ?? { kind: 'lmdb' };
  const window = spec.window ?? 64;
  const text = payloads(spec.bytes ?? 64);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-http-tp-'));
  const env: Record<string, string> = { SPOOL_RETENTION_EVENTS: String(Math.max(100_000, spec.perSession + 16)) };
  if (store.kind === 'redis') env['SPOOL_REDIS_URL'] = store.url;
  else if (store.durability !== undefined) env['SPOOL_DURABILITY'] = store.durability;
  const problems = new Problems();
  const delivery = new LatencyRecorder();
  const sessions: HttpSession[] = [];
  let gateway: ChildGateway | undefined;
  let rss: { stop(): number } | undefined;
  try {
    gateway = await ChildGateway.start({ data: dir, transport: 'ws', env, ...(spec.cpuProfileDir !== undefined ? { cpuProfileDir: spec.cpuProfileDir } : {}) });
    rss = samplePeakRss(gateway.pid, 100);
    const base = `http://127.0.0.1:${gateway.port}/v1/stream`;

    // Untimed: one stream written and read through, so the measured run meets compiled paths.
    const warm = new HttpSession(`${base}/http-warmup`, 'http-warmup', WARMUP_CHUNKS, text, window, problems, null);
    sessions.push(warm);
    await warm.create();
    await warm.follow();
    await withTimeout(Promise.all([warm.produce(), warm.closed.promise]), 60_000, 'the warm-up stream');

    const fleet = Array.from({ length: spec.sessions }, (_, i) => new HttpSession(`${base}/http-${i}`, `http-${i}`, spec.perSession, text, window, problems, delivery));
    sessions.push(...fleet);
    await withTimeout(Promise.all(fleet.map((s) => s.create())), 60_000, 'creating the streams');
    // The clock starts with every reader's SSE response open.
    await withTimeout(Promise.all(fleet.map((s) => s.follow())), 60_000, 'opening the SSE readers');

    const redisPid = store.kind === 'redis' ? store.pid : undefined;
    const metrics0 = await gateway.metrics();
    const gatewayCpu0 = gateway.cpuSeconds();
    const redisCpu0 = cpuSecondsOf(redisPid);
    const loadCpu0 = process.cpuUsage();
    await withTimeout(Promise.all(fleet.map((s) => s.produce())), 300_000, 'the producers');
    await withTimeout(Promise.all(fleet.map((s) => s.closed.promise)), 60_000, 'the readers').catch((error: unknown) => {
      throw new Error(`${String(error)}; behind: ${fleet.filter((s) => !s.done).map((s) => s.progress).join(', ')}`);
    });
    const gatewayCpu = gateway.cpuSeconds() - gatewayCpu0;
    const redisCpu = cpuSecondsOf(redisPid) - redisCpu0;
    const loadCpuUsage = process.cpuUsage(loadCpu0);
    const gatewayRssMaxBytes = rss.stop();

    const ack = new LatencyRecorder();
    for (const s of fleet) s.track.recordAckLatencies(ack, problems);
    const resent = fleet.reduce((sum, s) => sum + s.resent, 0);
    // Not a correctness problem (each was stored once), but the figures include the waits.
    if (resent > 0) spec.log?.(`${spec.name}: ${resent} producer requests were answered 429/503 and sent again after Retry-After`);
    const chunks = spec.sessions * spec.perSession;
    const tracks = fleet.map((s) => s.track);
    const seconds = writeSpanSeconds(tracks);
    const deliverySeconds = deliverySpanSeconds(tracks);
    const metrics = await gateway.metrics();
    const delta = (name: string): number => metricValue(metrics, name) - metricValue(metrics0, name);
    const batchCount = delta('spool_persistence_batch_size_count');
    return {
      name: spec.name,
      transport: 'http',
      served: 'http',
      store: store.kind,
      durability: store.kind === 'lmdb' ? (store.durability ?? 'commit') : null,
      pace: null,
      sessions: spec.sessions,
      chunks,
      seconds,
      chunksPerSec: chunks / seconds,
      deliverySeconds,
      deliveredPerSec: chunks / deliverySeconds,
      ack: ack.summary(),
      delivery: delivery.summary(),
      storeBatch: batchCount > 0 ? delta('spool_persistence_batch_size_sum') / batchCount : 0,
      gatewayCpuUsPerChunk: (gatewayCpu * 1e6) / chunks,
      loadCpuUsPerChunk: (loadCpuUsage.user + loadCpuUsage.system) / chunks,
      redisCpuUsPerChunk: (redisCpu * 1e6) / chunks,
      gatewayRssMaxBytes,
      problems: problems.done(),
    };
  } finally {
    rss?.stop();
    for (const s of sessions) s.close();
    await gateway?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
