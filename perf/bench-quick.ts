/**
 * `npm run bench:quick`: throughput and latency of spool on the embedded LMDB store, through
 * the SDK over real WebSockets on loopback, next to a raw LMDB baseline measured in the same
 * run (so ratios mean something on a noisy machine).
 *
 *   lone  one session; each write waits for its ack before the next: latency with no queue
 *   A     one session, one producer, one reader: N chunks as fast as credit allows
 *   B     S sessions at once, one producer client (a generation, hence an upload socket, per
 *         session) and one reader client per session: M chunks each as fast as credit allows
 *   raw   the same number of chunks through `store.append` directly, in the batch size the
 *         gateway ended up using for that scenario (one append in flight per session, as in
 *         the gateway)
 *
 * Latencies: `ack` is write() → the cumulative ack covering that seq arriving on the producer's
 * socket (observed through the SDK's WebSocket option, see ack-tap.ts); `delivery` is write()
 * → the reader's `for await` yielding that chunk. Producer, readers and gateway share one
 * process and clock (performance.now()).
 *
 * Correctness is checked, speed never: every reader must receive gen.start, every chunk
 * exactly once in seq order with its data intact, and gen.end done, in contiguous offsets.
 * Exit status is non-zero only when that check fails.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { SpoolClient, type Generation, type Subscription, type SubscriptionItem } from '../client';
import { DEFAULT_CONFIG, startGateway, type Gateway } from '../gateway';
import { openLmdbStore } from '../store/lmdb';
import { DEFAULT_STORE_OPTIONS, type WriteItem } from '../store/types';
import { ackTappedWebSocket, type AckObservation } from './ack-tap';
import { LatencyRecorder, type LatencySummary } from './latency';

// ------------------------------------------------------------------ results

/** One scenario driven through the gateway. */
export interface ScenarioResult {
  readonly name: string;
  readonly sessions: number;
  /** Chunks written in total (all sessions). */
  readonly chunks: number;
  /** First write → last `finish()` resolved. */
  readonly seconds: number;
  /** Durable chunks per second over `seconds`. */
  readonly chunksPerSec: number;
  readonly ack: LatencySummary;
  readonly delivery: LatencySummary;
  /** Mean events per store append the gateway made (its `spool_persistence_batch_size`). */
  readonly storeBatch: number;
  /** Correctness failures (empty when every reader got every chunk exactly once). */
  readonly problems: readonly string[];
}

/** Raw `store.append` on LMDB with no gateway in front. */
export interface BaselineResult {
  readonly name: string;
  readonly sessions: number;
  readonly chunks: number;
  readonly batch: number;
  readonly seconds: number;
  readonly chunksPerSec: number;
  readonly problems: readonly string[];
}

export interface BenchOptions {
  /** Scenario A: chunks in the one session. @default 20000 */
  readonly chunks?: number;
  /** Scenario B: concurrent sessions. @default 100 */
  readonly sessions?: number;
  /** Scenario B: chunks per session. @default 1000 */
  readonly perSession?: number;
  /** Lone-write scenario: writes, each awaited. @default 300 */
  readonly lone?: number;
  /** Progress lines while running (the CLI prints them to stderr). */
  readonly log?: (line: string) => void;
}

export interface BenchReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly environment: { readonly node: string; readonly cpus: number; readonly platform: string };
  readonly lone: ScenarioResult;
  readonly single: ScenarioResult;
  readonly concurrent: ScenarioResult;
  readonly rawSingle: BaselineResult;
  readonly rawConcurrent: BaselineResult;
  /** Gateway chunks/s divided by raw LMDB chunks/s at the same batch size. */
  readonly ratios: { readonly single: number; readonly concurrent: number };
}

// ------------------------------------------------------------------ payloads

const TEXT = 'the model keeps talking while the reader follows the log, offset by offset; ';
/** ~40-byte text deltas, cheap to produce and to check. */
const PAYLOADS: readonly string[] = Array.from({ length: 64 }, (_, i) => (TEXT + TEXT).slice(i, i + 40));
const payload = (seq: number): string => PAYLOADS[seq % PAYLOADS.length] as string;

// ------------------------------------------------------------------ helpers

const MAX_PROBLEMS = 20;

class Problems {
  readonly list: string[] = [];
  private more = 0;
  add(problem: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(problem);
    else this.more++;
  }
  done(): string[] {
    return this.more > 0 ? [...this.list, `… and ${this.more} more`] : this.list;
  }
}

function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `spool-bench-${label}-`));
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Mean of the gateway's `spool_persistence_batch_size` histogram (0 when nothing was stored). */
function meanStoreBatch(gateway: Gateway): number {
  const text = gateway.metrics.render();
  const sum = Number(/^spool_persistence_batch_size_sum (\S+)$/m.exec(text)?.[1] ?? NaN);
  const count = Number(/^spool_persistence_batch_size_count (\S+)$/m.exec(text)?.[1] ?? NaN);
  return count > 0 ? sum / count : 0;
}

// ------------------------------------------------------------------ one session's bookkeeping

/** Write times, acks and the reader's view of one session's generation. */
class Track {
  readonly writeAt: Float64Array;
  private readonly ackSeq: number[] = [];
  private readonly ackAt: number[] = [];
  private finishedAt: number | undefined;
  readonly started = deferred();
  received = 0;
  firstWriteAt = Number.NaN;
  finishResolvedAt = Number.NaN;

  constructor(
    readonly session: string,
    readonly generationId: string,
    readonly chunks: number,
  ) {
    this.writeAt = new Float64Array(chunks);
  }

  onAck(observation: AckObservation): void {
    if (observation.type === 'finished') this.finishedAt ??= observation.at;
    else {
      this.ackSeq.push(observation.seq);
      this.ackAt.push(observation.at);
    }
  }

  /** write() → first ack whose cumulative seq covers it (or `finished`, which covers all). */
  recordAckLatencies(into: LatencyRecorder, problems: Problems): void {
    let j = 0;
    for (let seq = 0; seq < this.chunks; seq++) {
      while (j < this.ackSeq.length && (this.ackSeq[j] as number) < seq) j++;
      const at = j < this.ackAt.length ? (this.ackAt[j] as number) : this.finishedAt;
      if (at === undefined) {
        problems.add(`${this.session}: no ack or finished covers seq ${seq}`);
        return;
      }
      into.record(at - (this.writeAt[seq] as number));
    }
  }
}

/** Follows one session to its gen.end, checking exactly-once delivery and timing each chunk. */
async function follow(sub: Subscription, track: Track, delivery: LatencyRecorder, problems: Problems): Promise<void> {
  let nextOffset = 1;
  let nextSeq = 0;
  let ended = false;
  for await (const item of sub as AsyncIterable<SubscriptionItem>) {
    const now = performance.now();
    if (item.type === 'gap') {
      problems.add(`${track.session}: gap ${item.from}..${item.to} (${item.reason})`);
      nextOffset = item.to + 1;
      continue;
    }
    if (item.offset !== nextOffset) problems.add(`${track.session}: offset ${item.offset} after ${nextOffset - 1}`);
    nextOffset = item.offset + 1;
    if (item.generationId !== track.generationId) {
      problems.add(`${track.session}: event of unknown generation ${String(item.generationId)}`);
      continue;
    }
    if (item.type === 'gen.start') {
      track.started.resolve();
    } else if (item.type === 'chunk') {
      const seq = item.seq ?? -1;
      if (seq !== nextSeq) problems.add(`${track.session}: chunk seq ${seq} where ${nextSeq} was due`);
      else if (item.data !== payload(seq)) problems.add(`${track.session}: chunk seq ${seq} arrived with different data`);
      else delivery.record(now - (track.writeAt[seq] as number));
      if (seq === nextSeq) nextSeq++;
    } else if (item.type === 'gen.end') {
      if (item.status !== 'done') problems.add(`${track.session}: gen.end ${String(item.status)}`);
      ended = true;
      break;
    }
  }
  track.received = nextSeq;
  if (!ended) problems.add(`${track.session}: subscription ended before gen.end`);
  if (nextSeq !== track.chunks) problems.add(`${track.session}: reader got ${nextSeq} of ${track.chunks} chunks`);
}

/** Writes every chunk as fast as the high-water mark (credit) allows, then finishes. */
async function produceFlat(gen: Generation, track: Track): Promise<void> {
  track.firstWriteAt = performance.now();
  for (let seq = 0; seq < track.chunks; seq++) {
    track.writeAt[seq] = performance.now();
    if (!gen.write(payload(seq), { kind: 'text' })) await gen.drained();
  }
  await gen.finish();
  track.finishResolvedAt = performance.now();
}

/** Writes one chunk at a time, waiting for each to be durable before the next. */
async function produceLone(gen: Generation, track: Track): Promise<void> {
  track.firstWriteAt = performance.now();
  for (let seq = 0; seq < track.chunks; seq++) {
    track.writeAt[seq] = performance.now();
    gen.write(payload(seq), { kind: 'text' });
    await gen.flush();
  }
  await gen.finish();
  track.finishResolvedAt = performance.now();
}

// ------------------------------------------------------------------ scenarios

interface ScenarioSpec {
  readonly name: string;
  readonly label: string;
  readonly sessions: number;
  readonly perSession: number;
  readonly mode: 'flat' | 'lone';
}

/** Runs one scenario against a fresh gateway on a fresh LMDB directory, then removes both. */
async function runScenario(spec: ScenarioSpec): Promise<ScenarioResult> {
  const dir = tempDir(spec.label);
  const problems = new Problems();
  const ack = new LatencyRecorder();
  const delivery = new LatencyRecorder();
  const tracks = new Map<string, Track>();
  let gateway: Gateway | undefined;
  let producer: SpoolClient | undefined;
  const readers: SpoolClient[] = [];
  try {
    gateway = await startGateway({
      port: 0,
      data: dir,
      logger: pino({ level: 'warn' }),
      retention: { maxEvents: Math.max(DEFAULT_STORE_OPTIONS.retention.maxEvents, spec.perSession + 16) },
    });
    const url = gateway.url;
    producer = new SpoolClient({ url, WebSocket: ackTappedWebSocket((observation) => tracks.get(observation.generation)?.onAck(observation)) });

    const sessions = Array.from({ length: spec.sessions }, (_, i) => `bench-${spec.label}-${i}`);
    const following: Array<Promise<void>> = [];
    for (const session of sessions) {
      const track = new Track(session, `g-${session}`, spec.perSession);
      tracks.set(track.generationId, track);
      const reader = new SpoolClient({ url });
      readers.push(reader);
      following.push(
        follow(reader.subscribe(session, { from: 0 }), track, delivery, problems).catch((error: unknown) => {
          problems.add(`${session}: reader failed: ${String(error)}`);
          track.started.resolve();
        }),
      );
    }
    // Open every generation and wait until each reader has seen its gen.start: the clock then
    // starts with every socket up and every reader live.
    const gens = sessions.map((session) => {
      const gen = (producer as SpoolClient).generation(session, { id: `g-${session}` });
      return { gen, track: tracks.get(`g-${session}`) as Track };
    });
    await withTimeout(Promise.all(gens.map(({ gen }) => gen.flush())), 30_000, 'opening the generations');
    await withTimeout(Promise.all(gens.map(({ track }) => track.started.promise)), 30_000, 'the readers seeing gen.start');

    const produce = spec.mode === 'lone' ? produceLone : produceFlat;
    const producing = Promise.all(gens.map(({ gen, track }) => produce(gen, track)));
    await withTimeout(producing, 300_000, 'the producers');
    await withTimeout(Promise.all(following), 60_000, 'the readers');

    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const track of tracks.values()) {
      first = Math.min(first, track.firstWriteAt);
      last = Math.max(last, track.finishResolvedAt);
      track.recordAckLatencies(ack, problems);
    }
    const chunks = spec.sessions * spec.perSession;
    const seconds = (last - first) / 1000;
    return {
      name: spec.name,
      sessions: spec.sessions,
      chunks,
      seconds,
      chunksPerSec: chunks / seconds,
      ack: ack.summary(),
      delivery: delivery.summary(),
      storeBatch: meanStoreBatch(gateway),
      problems: problems.done(),
    };
  } finally {
    await Promise.all(readers.map((reader) => reader.close()));
    await producer?.close();
    await gateway?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Raw LMDB appends, no gateway: `sessions` sessions at once, each appending `perSession`
 * chunks in batches of `batch`, one append in flight per session (as the gateway's flusher).
 */
export async function runRawBaseline(options: { readonly name?: string; readonly sessions: number; readonly perSession: number; readonly batch: number }): Promise<BaselineResult> {
  const { sessions, perSession } = options;
  const batch = Math.max(1, Math.round(options.batch));
  const dir = tempDir('raw');
  const problems = new Problems();
  const store = openLmdbStore({
    path: dir,
    retention: { ...DEFAULT_STORE_OPTIONS.retention, maxEvents: Math.max(DEFAULT_STORE_OPTIONS.retention.maxEvents, perSession + 16) },
  });
  try {
    const names = Array.from({ length: sessions }, (_, i) => `raw-${i}`);
    const epochs = new Map<string, number>();
    for (const session of names) {
      const opened = await store.openGeneration(session, { generationId: 'g', takeover: false, ts: Date.now() });
      if (opened.status !== 'opened') throw new Error(`raw baseline: openGeneration answered ${opened.status}`);
      epochs.set(session, opened.epoch);
    }
    const started = performance.now();
    await Promise.all(
      names.map(async (session) => {
        const epoch = epochs.get(session) as number;
        for (let seq = 0; seq < perSession; seq += batch) {
          const items: WriteItem[] = [];
          const ts = Date.now();
          for (let s = seq; s < Math.min(perSession, seq + batch); s++) {
            const data = payload(s);
            items.push({ op: 'chunk', generationId: 'g', epoch, seq: s, priority: 2, ts, data, size: data.length, kind: 'text' });
          }
          const result = await store.append(session, items);
          const bad = result.results.find((r) => r.status !== 'ok');
          if (bad !== undefined) problems.add(`raw ${session}: append answered ${bad.status}`);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const chunks = sessions * perSession;
    return { name: options.name ?? `raw LMDB, ${sessions} session(s)`, sessions, chunks, batch, seconds, chunksPerSec: chunks / seconds, problems: problems.done() };
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Lone writes: each write waits for its ack, so the latencies carry no queueing. */
export function runLoneWrites(writes: number): Promise<ScenarioResult> {
  return runScenario({ name: 'lone writes, 1 session (write, await flush)', label: 'lone', sessions: 1, perSession: writes, mode: 'lone' });
}

/** Scenario A: one session, one producer, one reader, `chunks` chunks as fast as credit allows. */
export function runSingleSession(chunks: number): Promise<ScenarioResult> {
  return runScenario({ name: 'A: 1 session, 1 producer, 1 reader', label: 'a', sessions: 1, perSession: chunks, mode: 'flat' });
}

/** Scenario B: `sessions` sessions at once, `perSession` chunks each, one reader per session. */
export function runConcurrentSessions(sessions: number, perSession: number): Promise<ScenarioResult> {
  return runScenario({
    name: `B: ${sessions} sessions × ${perSession.toLocaleString('en-US')}, ${sessions} readers`,
    label: 'b',
    sessions,
    perSession,
    mode: 'flat',
  });
}

/** Runs every scenario and both baselines in sequence. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const say = options.log ?? ((): void => undefined);
  const chunks = options.chunks ?? 20_000;
  const sessions = options.sessions ?? 100;
  const perSession = options.perSession ?? 1000;
  const loneWrites = options.lone ?? 300;

  say(`lone writes: ${loneWrites}`);
  const lone = await runLoneWrites(loneWrites);
  say(`A: 1 session, ${chunks} chunks`);
  const single = await runSingleSession(chunks);
  say(`B: ${sessions} sessions × ${perSession} chunks`);
  const concurrent = await runConcurrentSessions(sessions, perSession);
  say(`raw LMDB baselines (batch ${single.storeBatch.toFixed(1)} and ${concurrent.storeBatch.toFixed(1)})`);
  const rawSingle = await runRawBaseline({ name: 'raw LMDB store.append, 1 session', sessions: 1, perSession: chunks, batch: single.storeBatch || 64 });
  const rawConcurrent = await runRawBaseline({
    name: `raw LMDB store.append, ${sessions} sessions`,
    sessions,
    perSession,
    batch: concurrent.storeBatch || 64,
  });

  const problems = [lone, single, concurrent, rawSingle, rawConcurrent].flatMap((r) => r.problems.map((p) => `${r.name}: ${p}`));
  return {
    ok: problems.length === 0,
    problems,
    environment: { node: process.version, cpus: os.cpus().length, platform: `${os.platform()} ${os.arch()}` },
    lone,
    single,
    concurrent,
    rawSingle,
    rawConcurrent,
    ratios: {
      single: single.chunksPerSec / rawSingle.chunksPerSec,
      concurrent: concurrent.chunksPerSec / rawConcurrent.chunksPerSec,
    },
  };
}

// ------------------------------------------------------------------ output

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
const triple = (l: LatencySummary): string => `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}`;

/** The readable table `npm run bench:quick` prints. */
export function formatBenchReport(report: BenchReport): string {
  const { environment: env } = report;
  const credit = DEFAULT_CONFIG.credit.frames;
  const perSession = report.concurrent.chunks / Math.max(1, report.concurrent.sessions);
  const header = ['scenario', 'chunks', 'secs', 'chunks/s', 'ack ms p50/p99/max', 'delivery ms p50/p99/max', 'store batch'];
  const rows: string[][] = [report.lone, report.single, report.concurrent].map((r) => [
    r.name,
    int(r.chunks),
    r.seconds.toFixed(2),
    int(r.chunksPerSec),
    triple(r.ack),
    triple(r.delivery),
    r.storeBatch.toFixed(1),
  ]);
  for (const r of [report.rawSingle, report.rawConcurrent]) {
    rows.push([r.name, int(r.chunks), r.seconds.toFixed(2), int(r.chunksPerSec), '', '', String(r.batch)]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ');
  return [
    `spool bench:quick: node ${env.node}, ${env.cpus} CPUs, ${env.platform}; embedded LMDB in a temp dir; SDK over ws on loopback (msgpack); gateway, producers and readers in one process`,
    '',
    line(header),
    line(header.map((_, i) => '-'.repeat(widths[i] as number))),
    ...rows.map(line),
    '',
    `gateway / raw LMDB at the same batch size: A ${report.ratios.single.toFixed(2)}, B ${report.ratios.concurrent.toFixed(2)}`,
    'ack: write() → the cumulative ack covering it arrives; delivery: write() → the reader yields it.',
    `A and B write as fast as credit allows (${int(credit)} unacked chunks per generation), so their latencies are mostly queueing time.`,
    ...(perSession <= credit
      ? [`In B each session's ${int(perSession)} chunks fit in its credit: all ${int(report.concurrent.chunks)} are written at once, and latency ≈ time to drain that backlog.`]
      : []),
    '',
    report.ok
      ? `correctness: every reader got every chunk exactly once, in order (${int(report.lone.chunks + report.single.chunks + report.concurrent.chunks)} chunks)`
      : `CORRECTNESS FAILED:\n${report.problems.map((p) => `  - ${p}`).join('\n')}`,
  ].join('\n');
}

function positive(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got ${value}`);
  return n;
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      chunks: { type: 'string' },
      sessions: { type: 'string' },
      'per-session': { type: 'string' },
      lone: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const report = await runBench({
    chunks: positive(values.chunks, '--chunks', 20_000),
    sessions: positive(values.sessions, '--sessions', 100),
    perSession: positive(values['per-session'], '--per-session', 1000),
    lone: positive(values.lone, '--lone', 300),
    log: (line) => process.stderr.write(`… ${line}\n`),
  });
  console.log(formatBenchReport(report));
  if (values.json === true) console.log(JSON.stringify(report));
  return report.ok ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2))
    .then((code) => {
      process.exitCode = code;
    })
    .catch((error: unknown) => {
      console.error(`bench:quick failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
      process.exitCode = 1;
    });
}
