/**
 * Throughput and latency against a gateway in its own process, through the SDK over real
 * WebSockets on loopback: S sessions, each with one producer (its own upload socket) writing M
 * chunks as fast as credit allows and one reader (its own client) following it from offset 0.
 * The same workload as bench:quick's scenarios A and B, but the gateway runs in a child process
 * (gateway-child.ts), so producers and readers here never share its event loop. Each run
 * starts with an untimed warm-up generation of 2,000 chunks.
 *
 * Latencies: `ack` is write() → the cumulative ack covering that seq arriving on the producer's
 * socket (ack-tap.ts); `delivery` is write() → the reader's `for await` yielding that chunk.
 * Both ends of both are in this process, on one clock.
 *
 * Correctness is checked, speed never: every reader must receive gen.start, every chunk exactly
 * once in seq order with its data intact, and gen.end done, at contiguous offsets.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SpoolClient, type Generation, type Subscription, type SubscriptionItem } from '../client';
import { ackTappedWebSocket, type AckObservation } from './ack-tap';
import { ChildGateway, metricValue } from './gateway-child';
import { LatencyRecorder, type LatencySummary } from './latency';

export interface ThroughputResult {
  readonly name: string;
  /** Transport asked for, and the one the child reports it served with. */
  readonly transport: string;
  readonly served: string;
  readonly sessions: number;
  readonly chunks: number;
  /** First write → last `finish()` resolved. */
  readonly seconds: number;
  readonly chunksPerSec: number;
  readonly ack: LatencySummary;
  readonly delivery: LatencySummary;
  /** Mean events per store append (the child's spool_persistence_batch_size). */
  readonly storeBatch: number;
  /** CPU time the gateway process used over the run, per chunk, in microseconds. */
  readonly gatewayCpuUsPerChunk: number;
  /** CPU time this process (producers and readers) used over the run, per chunk, in µs. */
  readonly loadCpuUsPerChunk: number;
  readonly problems: readonly string[];
}

const TEXT = 'the model keeps talking while the reader follows the log, offset by offset; ';
/** ~40-byte text deltas, as bench:quick writes. */
const PAYLOADS: readonly string[] = Array.from({ length: 64 }, (_, i) => (TEXT + TEXT).slice(i, i + 40));
const payload = (seq: number): string => PAYLOADS[seq % PAYLOADS.length] as string;

const MAX_PROBLEMS = 20;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Write times, acks and the reader's progress for one session's generation. */
class Track {
  readonly writeAt: Float64Array;
  private readonly ackSeq: number[] = [];
  private readonly ackAt: number[] = [];
  private finishedAt: number | undefined;
  readonly started: Promise<void>;
  markStarted!: () => void;
  firstWriteAt = Number.NaN;
  finishResolvedAt = Number.NaN;

  constructor(
    readonly session: string,
    readonly generationId: string,
    readonly chunks: number,
  ) {
    this.writeAt = new Float64Array(chunks);
    this.started = new Promise<void>((resolve) => (this.markStarted = resolve));
  }

  onAck(observation: AckObservation): void {
    if (observation.type === 'finished') this.finishedAt ??= observation.at;
    else {
      this.ackSeq.push(observation.seq);
      this.ackAt.push(observation.at);
    }
  }

  /** write() → the first ack whose cumulative seq covers it (or `finished`, which covers all). */
  recordAckLatencies(into: LatencyRecorder, problem: (text: string) => void): void {
    let j = 0;
    for (let seq = 0; seq < this.chunks; seq++) {
      while (j < this.ackSeq.length && (this.ackSeq[j] as number) < seq) j++;
      const at = j < this.ackAt.length ? (this.ackAt[j] as number) : this.finishedAt;
      if (at === undefined) {
        problem(`${this.session}: no ack or finished covers seq ${seq}`);
        return;
      }
      into.record(at - (this.writeAt[seq] as number));
    }
  }
}

async function follow(sub: Subscription, track: Track, delivery: LatencyRecorder, problem: (text: string) => void): Promise<void> {
  let nextOffset = 1;
  let nextSeq = 0;
  let ended = false;
  for await (const item of sub as AsyncIterable<SubscriptionItem>) {
    const now = performance.now();
    if (item.type === 'gap') {
      problem(`${track.session}: gap ${item.from}..${item.to} (${item.reason})`);
      nextOffset = item.to + 1;
      continue;
    }
    if (item.offset !== nextOffset) problem(`${track.session}: offset ${item.offset} after ${nextOffset - 1}`);
    nextOffset = item.offset + 1;
    if (item.type === 'gen.start') {
      track.markStarted();
    } else if (item.type === 'chunk') {
      const seq = item.seq ?? -1;
      if (seq !== nextSeq) problem(`${track.session}: chunk seq ${seq} where ${nextSeq} was due`);
      else if (item.data !== payload(seq)) problem(`${track.session}: chunk seq ${seq} arrived with different data`);
      else delivery.record(now - (track.writeAt[seq] as number));
      if (seq === nextSeq) nextSeq++;
    } else if (item.type === 'gen.end') {
      if (item.status !== 'done') problem(`${track.session}: gen.end ${String(item.status)}`);
      ended = true;
      break;
    }
  }
  if (!ended) problem(`${track.session}: subscription ended before gen.end`);
  if (nextSeq !== track.chunks) problem(`${track.session}: reader got ${nextSeq} of ${track.chunks} chunks`);
}

async function produce(gen: Generation, track: Track): Promise<void> {
  track.firstWriteAt = performance.now();
  for (let seq = 0; seq < track.chunks; seq++) {
    track.writeAt[seq] = performance.now();
    if (!gen.write(payload(seq), { kind: 'text' })) await gen.drained();
  }
  await gen.finish();
  track.finishResolvedAt = performance.now();
}

/** Chunks streamed through a fresh gateway before the clock starts. */
const WARMUP_CHUNKS = 2000;

/**
 * One untimed generation with a reader, so the measured run meets a gateway (and a load
 * generator) whose hot paths are already compiled rather than a process just started.
 */
async function warmUp(url: string, session: string): Promise<void> {
  const client = new SpoolClient({ url });
  try {
    const sub = client.subscribe(session, { from: 0 });
    const reading = (async () => {
      for await (const item of sub as AsyncIterable<SubscriptionItem>) if (item.type === 'gen.end') break;
    })();
    const gen = client.generation(session);
    for (let seq = 0; seq < WARMUP_CHUNKS; seq++) if (!gen.write(payload(seq), { kind: 'text' })) await gen.drained();
    await gen.finish();
    await reading;
  } finally {
    await client.close();
  }
}

/**
 * One run on a fresh gateway child (`transport`, LMDB in a fresh temp dir), removed afterwards.
 */
export async function runThroughput(spec: {
  readonly name: string;
  readonly transport: 'ws' | 'uws';
  readonly sessions: number;
  readonly perSession: number;
}): Promise<ThroughputResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `spool-pressure-tp-${spec.transport}-`));
  const problems: string[] = [];
  let dropped = 0;
  const problem = (text: string): void => {
    if (problems.length < MAX_PROBLEMS) problems.push(text);
    else dropped++;
  };
  const ack = new LatencyRecorder();
  const delivery = new LatencyRecorder();
  const tracks = new Map<string, Track>();
  let gateway: ChildGateway | undefined;
  let producer: SpoolClient | undefined;
  const readers: SpoolClient[] = [];
  try {
    gateway = await ChildGateway.start({
      data: dir,
      transport: spec.transport,
      env: { SPOOL_RETENTION_EVENTS: String(Math.max(100_000, spec.perSession + 16)) },
    });
    const url = gateway.url;
    await withTimeout(warmUp(url, `warmup-${spec.transport}`), 60_000, 'the warm-up generation');
    producer = new SpoolClient({ url, WebSocket: ackTappedWebSocket((observation) => tracks.get(observation.generation)?.onAck(observation)) });
    const following: Array<Promise<void>> = [];
    const gens: Array<{ gen: Generation; track: Track }> = [];
    for (let i = 0; i < spec.sessions; i++) {
      const session = `pressure-${spec.transport}-${i}`;
      const track = new Track(session, `g-${session}`, spec.perSession);
      tracks.set(track.generationId, track);
      const reader = new SpoolClient({ url });
      readers.push(reader);
      following.push(
        follow(reader.subscribe(session, { from: 0 }), track, delivery, problem).catch((error: unknown) => {
          problem(`${session}: reader failed: ${String(error)}`);
          track.markStarted();
        }),
      );
      gens.push({ gen: producer.generation(session, { id: track.generationId }), track });
    }
    // The clock starts with every upload socket open and every reader live on its gen.start.
    await withTimeout(Promise.all(gens.map(({ gen }) => gen.flush())), 60_000, 'opening the generations');
    await withTimeout(Promise.all(gens.map(({ track }) => track.started)), 60_000, 'the readers seeing gen.start');

    const metrics0 = await gateway.metrics();
    const gatewayCpu0 = gateway.cpuSeconds();
    const loadCpu0 = process.cpuUsage();
    await withTimeout(Promise.all(gens.map(({ gen, track }) => produce(gen, track))), 300_000, 'the producers');
    await withTimeout(Promise.all(following), 60_000, 'the readers');
    const gatewayCpu = gateway.cpuSeconds() - gatewayCpu0;
    const loadCpuUsage = process.cpuUsage(loadCpu0);

    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const track of tracks.values()) {
      first = Math.min(first, track.firstWriteAt);
      last = Math.max(last, track.finishResolvedAt);
      track.recordAckLatencies(ack, problem);
    }
    const chunks = spec.sessions * spec.perSession;
    const seconds = (last - first) / 1000;
    // Store batches of the timed run only (the warm-up's are in metrics0).
    const metrics = await gateway.metrics();
    const delta = (name: string): number => metricValue(metrics, name) - metricValue(metrics0, name);
    const batchCount = delta('spool_persistence_batch_size_count');
    if (gateway.transport !== spec.transport) problem(`asked for transport ${spec.transport}, the gateway served ${gateway.transport}`);
    if (dropped > 0) problems.push(`… and ${dropped} more`);
    return {
      name: spec.name,
      transport: spec.transport,
      served: gateway.transport,
      sessions: spec.sessions,
      chunks,
      seconds,
      chunksPerSec: chunks / seconds,
      ack: ack.summary(),
      delivery: delivery.summary(),
      storeBatch: batchCount > 0 ? delta('spool_persistence_batch_size_sum') / batchCount : 0,
      gatewayCpuUsPerChunk: (gatewayCpu * 1e6) / chunks,
      loadCpuUsPerChunk: (loadCpuUsage.user + loadCpuUsage.system) / chunks,
      problems,
    };
  } finally {
    await Promise.all(readers.map((reader) => reader.close()));
    await producer?.close();
    await gateway?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
