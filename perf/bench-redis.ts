/**
 * `npm run bench:redis`: spool on Redis, from one run on one private `redis-server` (started
 * on a free port in a temp dir, never the shared one on 6379; `--aof` turns on appendonly with
 * appendfsync always):
 *
 *   gateway  one gateway process (a child, so this load generator never shares its event loop)
 *            on that Redis; the SDK with one producer (generation, hence upload socket) per
 *            session, S sessions × M ~40-byte chunks as fast as credit allows: chunks/s from the
 *            first write to the last `finish()` resolved, and write() → ack latency (ack-tap.ts).
 *            Afterwards a reader on the second gateway process reads every session back from the
 *            store and checks it (every chunk exactly once, in order, data intact).
 *   raw      ioredis on the same server, no gateway: the same number of ~40-byte entries,
 *            XADD to S stream keys, pipelined in batches of the gateway's mean store batch
 *            (its `spool_persistence_batch_size` sum/count over the gateway run), one pipeline
 *            in flight per key as the gateway keeps one append in flight per session.
 *   ratio    gateway chunks/s ÷ raw XADD/s.
 *   latency  a second gateway process B on the same Redis; L sessions, each written through A
 *            at a paced R chunks/s, whose data carries the write() moment (performance.now() of
 *            this process); one reader on B and one on A follow every session. Reported:
 *            write → delivered p50/p99 on B (across processes: Redis pub/sub notice, then a read),
 *            on A (same process as the writer: live fanout from the flushed batch), and B − A.
 *
 * Producers and readers share this process and its clock. Correctness is checked, speed never:
 * exit status is non-zero only when a reader missed, repeated or reordered a chunk (or the run
 * could not be carried out). Every process started here (redis-server, both gateways) is stopped
 * on the way out, also on failure or SIGINT/SIGTERM.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { SpoolClient, type Generation } from '../client';
import { command, startRedis, type RedisServer } from '../store/test-helpers/redis-server';
import { ackTappedWebSocket } from './ack-tap';
import { ChildGateway, cpuSecondsOf, metricValue } from './gateway-child';
import { LatencyRecorder, type LatencySummary } from './latency';
import { correctness, figure, int as integer, machine, orUnknown, positiveInt, positiveNumber, printReport, progress, runMain, table, type Machine } from './report';
import { deferred, PAYLOAD_TEXT, payload, Problems, produceFlat, readGeneration, sleep, Track, withTimeout, writeSpanSeconds } from './workload';

// ------------------------------------------------------------------ results

export interface GatewayThroughputResult {
  readonly sessions: number;
  readonly perSession: number;
  readonly chunks: number;
  /** First write → last `finish()` resolved. */
  readonly seconds: number;
  readonly chunksPerSec: number;
  /** write() → the cumulative ack covering it arrived at the producer. */
  readonly ack: LatencySummary;
  /** Mean events per store append of the gateway over this run. */
  readonly storeBatch: number;
  /** CPU the gateway process used over the run, per chunk (µs). */
  readonly gatewayCpuUsPerChunk: number;
  /** CPU redis-server used over the run, per chunk (µs). */
  readonly redisCpuUsPerChunk: number;
  /** CPU this process (the SDK producers) used over the run, per chunk (µs). */
  readonly clientCpuUsPerChunk: number;
  readonly problems: readonly string[];
}

export interface RawXaddResult {
  readonly streams: number;
  readonly entries: number;
  /** XADDs per pipeline (all to one key). */
  readonly batch: number;
  readonly seconds: number;
  readonly perSec: number;
  /** CPU redis-server used over the run, per entry (µs). */
  readonly redisCpuUsPerEntry: number;
  /** CPU this process (ioredis) used over the run, per entry (µs). */
  readonly clientCpuUsPerEntry: number;
  readonly problems: readonly string[];
}

export interface CrossProcessLatencyResult {
  readonly sessions: number;
  /** Paced write rate of each session (chunks/s). */
  readonly ratePerSession: number;
  readonly chunks: number;
  /** First write → last reader done. */
  readonly seconds: number;
  /** write() → delivered to a reader on the writer's gateway process. */
  readonly local: LatencySummary;
  /** write() → delivered to a reader on the other gateway process. */
  readonly remote: LatencySummary;
  /** remote − local, per percentile (ms). */
  readonly added: { readonly p50: number; readonly p99: number };
  /** write() → ack at the paced rate. */
  readonly ack: LatencySummary;
  readonly problems: readonly string[];
}

export interface RedisBenchReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly environment: Machine & {
    readonly redis: string;
    readonly aof: boolean;
    /** 1-minute load average when the run started (others' work on the machine skews every figure). */
    readonly loadAverage: number;
  };
  readonly gateway: GatewayThroughputResult;
  readonly raw: RawXaddResult;
  /** gateway chunks/s ÷ raw XADD/s. */
  readonly ratio: number;
  readonly latency: CrossProcessLatencyResult;
}

export interface RedisBenchOptions {
  /** Sessions of the throughput run (and streams of the raw run). @default 100 */
  readonly sessions?: number;
  /** Chunks per session of the throughput run. @default 1000 */
  readonly perSession?: number;
  /** appendonly yes, appendfsync always. @default false */
  readonly aof?: boolean;
  /** Sessions of the latency run. @default 10 */
  readonly latencySessions?: number;
  /** Paced chunks/s per session in the latency run. @default 200 */
  readonly rate?: number;
  /** Duration of the latency run's writing (s). @default 5 */
  readonly latencySeconds?: number;
  /** Chunks of the untimed warm-up generation through both processes. @default 2000 */
  readonly warmup?: number;
  /** Progress lines (the CLI prints them to stderr). */
  readonly log?: (line: string) => void;
}

// ------------------------------------------------------------------ helpers

/** A latency-run chunk: the write() moment, padded to ~40 bytes. */
const stamped = (at: number): string => `${at.toFixed(3)} ${PAYLOAD_TEXT}`.slice(0, 40);
const stampOf = (data: unknown): number => (typeof data === 'string' ? Number.parseFloat(data) : Number.NaN);

/** Session names are unique per run, so several runs can share one rig (and one Redis). */
let runCount = 0;
const runPrefix = (label: string): string => `${label}${++runCount}-`;


// ------------------------------------------------------------------ processes

/** The private redis-server and the two gateway processes on it. */
export interface RedisRig {
  readonly redis: RedisServer;
  /** The writers' process (and the local reader's). */
  readonly a: ChildGateway;
  /** The other process (remote reader, read-back check). */
  readonly b: ChildGateway;
  stop(): Promise<void>;
}

/** Starts a private redis-server and two gateway processes on it; stops all of it on failure. */
export async function startRig(options: { readonly aof?: boolean; readonly retentionEvents?: number }): Promise<RedisRig> {
  const redis = await startRedis({ appendonly: options.aof ?? false });
  const gateways: ChildGateway[] = [];
  const dirs: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.allSettled(gateways.map((gateway) => gateway.stop()));
    await redis.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const env = {
      SPOOL_REDIS_URL: redis.url,
      SPOOL_RETENTION_EVENTS: String(Math.max(100_000, options.retentionEvents ?? 0)),
    };
    for (const name of ['a', 'b']) {
      // --data is required by the CLI but unused: with SPOOL_REDIS_URL sessions live in Redis.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `spool-bench-redis-${name}-`));
      dirs.push(dir);
      gateways.push(await ChildGateway.start({ data: dir, env }));
    }
    return { redis, a: gateways[0] as ChildGateway, b: gateways[1] as ChildGateway, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ------------------------------------------------------------------ warm-up

/**
 * One untimed generation written through A and read on A and on B, so the timed runs meet
 * compiled hot paths and connected pub/sub in both processes. Checked like the rest.
 */
export async function warmUp(rig: RedisRig, chunks: number): Promise<readonly string[]> {
  const problems = new Problems();
  const producer = new SpoolClient({ url: rig.a.url });
  const readers = [new SpoolClient({ url: rig.a.url }), new SpoolClient({ url: rig.b.url })];
  try {
    const session = `${runPrefix('warmup')}0`;
    const reading = readers.map((reader, i) =>
      readGeneration(
        reader.subscribe(session, { from: 0 }),
        { where: `warm-up reader ${i === 0 ? 'A' : 'B'}`, generationId: `g-${session}`, chunks, check: (seq, data) => data === payload(seq) },
        problems,
      ),
    );
    const gen = producer.generation(session, { id: `g-${session}` });
    for (let seq = 0; seq < chunks; seq++) if (!gen.write(payload(seq), { kind: 'text' })) await gen.drained();
    await withTimeout(gen.finish(), 60_000, 'the warm-up generation');
    await withTimeout(Promise.all(reading), 60_000, 'the warm-up readers');
    return problems.done();
  } finally {
    await Promise.all([producer, ...readers].map((client) => client.close()));
  }
}

// ------------------------------------------------------------------ 1. gateway throughput

/**
 * S sessions × M chunks through gateway A, one producer per session, as fast as credit allows;
 * then every session read back through B and checked.
 */
export async function runGatewayThroughput(rig: RedisRig, spec: { readonly sessions: number; readonly perSession: number }): Promise<GatewayThroughputResult> {
  const { sessions, perSession } = spec;
  const problems = new Problems();
  const tracks = new Map<string, Track>();
  const producer = new SpoolClient({ url: rig.a.url, WebSocket: ackTappedWebSocket((observation) => tracks.get(observation.generation)?.onAck(observation)) });
  const verifier = new SpoolClient({ url: rig.b.url });
  try {
    const prefix = runPrefix('tp');
    const names = Array.from({ length: sessions }, (_, i) => `${prefix}${i}`);
    const runs = names.map((session) => {
      const track = new Track(session, `g-${session}`, perSession);
      tracks.set(track.generationId, track);
      return { track, gen: producer.generation(session, { id: track.generationId }) };
    });
    // The clock starts with every upload socket open and every generation opened.
    await withTimeout(Promise.all(runs.map(({ gen }) => gen.flush())), 60_000, 'opening the generations');

    const metrics0 = await rig.a.metrics();
    const gatewayCpu0 = cpuSecondsOf(rig.a.pid);
    const redisCpu0 = cpuSecondsOf(rig.redis.pid);
    const clientCpu0 = process.cpuUsage();
    await withTimeout(Promise.all(runs.map(({ gen, track }) => produceFlat(gen, track))), 300_000, 'the producers');
    const gatewayCpu = cpuSecondsOf(rig.a.pid) - gatewayCpu0;
    const redisCpu = cpuSecondsOf(rig.redis.pid) - redisCpu0;
    const clientCpu = process.cpuUsage(clientCpu0);
    const metrics = await rig.a.metrics();

    const ack = new LatencyRecorder();
    for (const { track } of runs) track.recordAckLatencies(ack, problems);
    // Read back from the store through the other process: what was acknowledged is all there.
    await withTimeout(
      Promise.all(
        runs.map(({ track }) =>
          readGeneration(
            verifier.subscribe(track.session, { from: 0 }),
            { where: `${track.session} (read back on B)`, generationId: track.generationId, chunks: perSession, check: (seq, data) => data === payload(seq) },
            problems,
          ),
        ),
      ),
      120_000,
      'reading the sessions back',
    );

    const delta = (name: string): number => metricValue(metrics, name) - metricValue(metrics0, name);
    const batches = delta('spool_persistence_batch_size_count');
    const chunks = sessions * perSession;
    const seconds = writeSpanSeconds(runs.map(({ track }) => track));
    return {
      sessions,
      perSession,
      chunks,
      seconds,
      chunksPerSec: chunks / seconds,
      ack: ack.summary(),
      storeBatch: batches > 0 ? delta('spool_persistence_batch_size_sum') / batches : Number.NaN,
      gatewayCpuUsPerChunk: (gatewayCpu * 1e6) / chunks,
      redisCpuUsPerChunk: (redisCpu * 1e6) / chunks,
      clientCpuUsPerChunk: (clientCpu.user + clientCpu.system) / chunks,
      problems: problems.done(),
    };
  } finally {
    await Promise.all([producer.close(), verifier.close()]);
  }
}

// ------------------------------------------------------------------ 2. raw XADD

/**
 * `streams` × `perStream` ~40-byte entries, XADD (auto id, one field) to `streams` keys,
 * pipelined `batch` XADDs to one key per pipeline, one pipeline in flight per key, all on one
 * connection (as the gateway's store has one command connection). Checks every XADD succeeded
 * and every stream holds `perStream` entries.
 */
export async function runRawXadd(redis: RedisServer, spec: { readonly streams: number; readonly perStream: number; readonly batch: number }): Promise<RawXaddResult> {
  const { streams, perStream } = spec;
  const batch = Math.max(1, Math.round(spec.batch));
  const problems = new Problems();
  const client = new Redis(redis.url, { maxRetriesPerRequest: 0, lazyConnect: true });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const keys = Array.from({ length: streams }, (_, i) => `raw:{${i}}:log`);
    const redisCpu0 = cpuSecondsOf(redis.pid);
    const clientCpu0 = process.cpuUsage();
    const started = performance.now();
    await Promise.all(
      keys.map(async (key) => {
        for (let seq = 0; seq < perStream; seq += batch) {
          const pipeline = client.pipeline();
          for (let s = seq; s < Math.min(perStream, seq + batch); s++) pipeline.xadd(key, '*', 'e', payload(s));
          const replies = (await pipeline.exec()) ?? [];
          const failed = replies.find(([error]) => error !== null);
          if (failed !== undefined) problems.add(`XADD ${key}: ${String(failed[0])}`);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const redisCpu = cpuSecondsOf(redis.pid) - redisCpu0;
    const clientCpu = process.cpuUsage(clientCpu0);
    const lengths = await Promise.all(keys.map((key) => client.xlen(key)));
    lengths.forEach((length, i) => {
      if (length !== perStream) problems.add(`${keys[i] as string} holds ${length} entries, not ${perStream}`);
    });
    await client.del(...keys);
    const entries = streams * perStream;
    return {
      streams,
      entries,
      batch,
      seconds,
      perSec: entries / seconds,
      redisCpuUsPerEntry: (redisCpu * 1e6) / entries,
      clientCpuUsPerEntry: (clientCpu.user + clientCpu.system) / entries,
      problems: problems.done(),
    };
  } finally {
    client.disconnect();
  }
}

// ------------------------------------------------------------------ 4. cross-process latency

/**
 * L sessions written through A at `rate` chunks/s each for `seconds`, each chunk's data the
 * moment of its write(); one reader client on A and one on B follow every session live.
 */
export async function runCrossProcessLatency(
  rig: RedisRig,
  spec: { readonly sessions: number; readonly rate: number; readonly seconds: number },
): Promise<CrossProcessLatencyResult> {
  const { sessions, rate } = spec;
  const perSession = Math.max(1, Math.round(rate * spec.seconds));
  const problems = new Problems();
  const tracks = new Map<string, Track>();
  const producer = new SpoolClient({ url: rig.a.url, WebSocket: ackTappedWebSocket((observation) => tracks.get(observation.generation)?.onAck(observation)) });
  const readerA = new SpoolClient({ url: rig.a.url });
  const readerB = new SpoolClient({ url: rig.b.url });
  const local = new LatencyRecorder();
  const remote = new LatencyRecorder();
  try {
    const prefix = runPrefix('lat');
    const runs = Array.from({ length: sessions }, (_, i) => {
      const session = `${prefix}${i}`;
      const track = new Track(session, `g-${session}`, perSession);
      tracks.set(track.generationId, track);
      return { i, track, written: 0, gen: undefined as Generation | undefined };
    });
    const reading: Array<Promise<void>> = [];
    const live: Array<Promise<void>> = [];
    for (const run of runs) {
      for (const [reader, where, into] of [
        [readerA, 'A', local],
        [readerB, 'B', remote],
      ] as const) {
        const started = deferred();
        live.push(started.promise);
        reading.push(
          readGeneration(
            reader.subscribe(run.track.session, { from: 0 }),
            {
              where: `${run.track.session} (reader on ${where})`,
              generationId: run.track.generationId,
              chunks: perSession,
              // The data is the write() moment, which this process recorded too.
              check: (seq, data) => stampOf(data) === Number.parseFloat((run.track.writeAt[seq] as number).toFixed(3)),
            },
            problems,
            { onStart: started.resolve, onChunk: (_seq, data, at) => into.record(at - stampOf(data)) },
          ),
        );
      }
    }
    for (const run of runs) run.gen = producer.generation(run.track.session, { id: run.track.generationId });
    await withTimeout(Promise.all(runs.map(({ gen }) => (gen as Generation).flush())), 60_000, 'opening the generations');
    // Both readers of every session are live (they saw its gen.start) before the first chunk.
    await withTimeout(Promise.all(live), 60_000, 'the readers seeing gen.start');

    // Paced writing: session i's chunk k is due at start + (k + i/L) / rate s (phases spread
    // the sessions over the interval); each tick writes whatever is due.
    const start = performance.now();
    const intervalMs = 1000 / rate;
    let notDrained = 0;
    while (runs.some((run) => run.written < perSession)) {
      const now = performance.now();
      for (const run of runs) {
        const due = Math.min(perSession, Math.floor((now - start) / intervalMs - run.i / sessions) + 1);
        while (run.written < due) {
          const at = performance.now();
          run.track.writeAt[run.written] = at;
          if (!(run.gen as Generation).write(stamped(at), { kind: 'text' })) notDrained++;
          run.written++;
        }
      }
      await sleep(1);
    }
    await withTimeout(Promise.all(runs.map(({ gen }) => (gen as Generation).finish())), 60_000, 'finishing the generations');
    await withTimeout(Promise.all(reading), 60_000, 'the readers');
    const seconds = (performance.now() - start) / 1000;
    if (notDrained > 0) problems.add(`write() returned false ${notDrained} times at a paced rate (the pace is not what was asked)`);

    const ack = new LatencyRecorder();
    for (const { track } of runs) track.recordAckLatencies(ack, problems);
    const l = local.summary();
    const r = remote.summary();
    return {
      sessions,
      ratePerSession: rate,
      chunks: sessions * perSession,
      seconds,
      local: l,
      remote: r,
      added: { p50: r.p50 - l.p50, p99: r.p99 - l.p99 },
      ack: ack.summary(),
      problems: problems.done(),
    };
  } finally {
    await Promise.all([producer.close(), readerA.close(), readerB.close()]);
  }
}

// ------------------------------------------------------------------ the whole run

async function redisVersion(redis: RedisServer): Promise<string> {
  try {
    const info = String(await command(redis.port, 'INFO', 'server'));
    return /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
  } catch {
    return '?';
  }
}

/** Starts the rig, runs warm-up, throughput, raw XADD and latency in sequence, stops the rig. */
export async function runRedisBench(options: RedisBenchOptions = {}): Promise<RedisBenchReport> {
  const say = options.log ?? ((): void => undefined);
  const sessions = options.sessions ?? 100;
  const perSession = options.perSession ?? 1000;
  const aof = options.aof ?? false;
  const latencySessions = options.latencySessions ?? 10;
  const rate = options.rate ?? 200;
  const latencySeconds = options.latencySeconds ?? 5;
  const warmup = options.warmup ?? 2000;
  const latencyChunks = Math.max(1, Math.round(rate * latencySeconds));

  const loadAverage = os.loadavg()[0] ?? Number.NaN;
  say(`starting a private redis-server (${aof ? 'appendonly yes, appendfsync always' : 'appendonly no'}) and two gateway processes`);
  const rig = await startRig({ aof, retentionEvents: Math.max(perSession, latencyChunks, warmup) + 16 });
  try {
    const redis = await redisVersion(rig.redis);
    say(`warm-up: ${warmup} chunks through A, read on A and B`);
    const warm = await warmUp(rig, warmup);
    say(`gateway: ${sessions} sessions × ${perSession} chunks through A`);
    const gateway = await runGatewayThroughput(rig, { sessions, perSession });
    const batch = Number.isFinite(gateway.storeBatch) && gateway.storeBatch > 0 ? gateway.storeBatch : 500;
    say(`raw: ${sessions} streams × ${perSession} XADD, pipelines of ${Math.round(batch)}`);
    const raw = await runRawXadd(rig.redis, { streams: sessions, perStream: perSession, batch });
    say(`latency: ${latencySessions} sessions × ${rate} chunks/s for ${latencySeconds} s, readers on A and B`);
    const latency = await runCrossProcessLatency(rig, { sessions: latencySessions, rate, seconds: latencySeconds });
    const problems = [
      ...warm.map((p) => `warm-up: ${p}`),
      ...gateway.problems.map((p) => `gateway: ${p}`),
      ...raw.problems.map((p) => `raw: ${p}`),
      ...latency.problems.map((p) => `latency: ${p}`),
    ];
    return {
      ok: problems.length === 0,
      problems,
      environment: { ...machine(), redis, aof, loadAverage },
      gateway,
      raw,
      ratio: gateway.chunksPerSec / raw.perSec,
      latency,
    };
  } finally {
    await rig.stop();
  }
}

// ------------------------------------------------------------------ output

// A figure this run could not measure (a CPU time off Linux, an empty histogram) prints as '?'.
const int = orUnknown(integer);
const ms = orUnknown(figure);
const signed = (n: number): string => (n >= 0 ? `+${ms(n)}` : ms(n));
const us = orUnknown((n) => n.toFixed(1));

/** The readable tables `npm run bench:redis` prints. */
export function formatRedisBenchReport(report: RedisBenchReport): string {
  const { environment: env, gateway: g, raw, latency: l } = report;
  const throughput = table(
    ['throughput', 'chunks', 'secs', 'chunks/s', 'ack ms p50 / p99 / max', 'batch', 'cpu µs/chunk: gateway', 'redis', 'client'],
    [
      [
        `gateway A + SDK, ${g.sessions} sessions × ${int(g.perSession)}`,
        int(g.chunks),
        g.seconds.toFixed(2),
        int(g.chunksPerSec),
        `${ms(g.ack.p50)} / ${ms(g.ack.p99)} / ${ms(g.ack.max)}`,
        Number.isFinite(g.storeBatch) ? g.storeBatch.toFixed(1) : '?',
        us(g.gatewayCpuUsPerChunk),
        us(g.redisCpuUsPerChunk),
        us(g.clientCpuUsPerChunk),
      ],
      [
        `raw ioredis XADD, ${raw.streams} streams, pipelined`,
        int(raw.entries),
        raw.seconds.toFixed(2),
        int(raw.perSec),
        '',
        String(raw.batch),
        '',
        us(raw.redisCpuUsPerEntry),
        us(raw.clientCpuUsPerEntry),
      ],
      ['ratio gateway / raw', '', '', report.ratio.toFixed(3), '', '', '', '', ''],
    ],
  );
  const latency = table(
    ['live latency, write → delivered', 'chunks', 'p50 ms', 'p99 ms', 'max ms'],
    [
      ['reader on A (writer\'s process)', int(l.local.count), ms(l.local.p50), ms(l.local.p99), ms(l.local.max)],
      ['reader on B (other process)', int(l.remote.count), ms(l.remote.p50), ms(l.remote.p99), ms(l.remote.max)],
      ['added by crossing processes (B − A)', '', signed(l.added.p50), signed(l.added.p99), ''],
      ['(ack at this pace, for reference)', int(l.ack.count), ms(l.ack.p50), ms(l.ack.p99), ms(l.ack.max)],
    ],
  );
  const chunksChecked = g.chunks + 2 * l.chunks;
  return [
    `spool bench:redis: node ${env.node}, ${env.cpus} CPUs, ${env.platform}; one private redis-server ${env.redis} ` +
      `(${env.aof ? 'appendonly yes, appendfsync always' : 'appendonly no'}); gateways A and B each in its own process; ` +
      `SDK producers and readers in this process (ws on loopback, msgpack); load average ${env.loadAverage.toFixed(2)} at the start`,
    '',
    ...throughput,
    '',
    `gateway: first write → last finish() resolved; every session writes its ${int(g.perSession)} chunks as fast as credit allows, so ack latency is mostly queueing.`,
    'raw: the same number of ~40-byte entries, XADD to one key per pipeline (pipeline size = the gateway\'s mean store batch), one pipeline in flight per key, one connection.',
    'cpu: CPU time per chunk of the gateway process, of redis-server, and of this process (SDK producers; ioredis for raw).',
    '',
    ...latency,
    '',
    `latency: ${l.sessions} sessions written through A at ${int(l.ratePerSession)} chunks/s each for ${(l.chunks / l.sessions / l.ratePerSession).toFixed(1)} s; ` +
      'each chunk carries its write() moment; both readers follow every session live.',
    '',
    correctness(
      report,
      `correctness: every reader got every chunk exactly once, in order (${int(chunksChecked)} chunks checked: the gateway run read back on B, the latency run on A and on B)`,
    ),
  ].join('\n');
}

// ------------------------------------------------------------------ CLI

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      sessions: { type: 'string' },
      'per-session': { type: 'string' },
      aof: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'latency-sessions': { type: 'string' },
      rate: { type: 'string' },
      'latency-seconds': { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick === true;
  const report = await runRedisBench({
    sessions: positiveInt(values.sessions, '--sessions', quick ? 20 : 100),
    perSession: positiveInt(values['per-session'], '--per-session', quick ? 250 : 1000),
    aof: values.aof === true,
    latencySessions: positiveInt(values['latency-sessions'], '--latency-sessions', quick ? 5 : 10),
    rate: positiveNumber(values.rate, '--rate', 200),
    latencySeconds: positiveNumber(values['latency-seconds'], '--latency-seconds', quick ? 2 : 5),
    warmup: quick ? 500 : 2000,
    log: progress,
  });
  return printReport(report, formatRedisBenchReport, values.json === true);
}

if (require.main === module) {
  // An interrupted run still stops what it started: process.exit runs the redis helper's
  // 'exit' hook (SIGKILL), and the gateway children shut down when their IPC channel closes.
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench:redis: ${signal}, stopping\n`);
      process.exit(code);
    });
  }
  runMain('bench:redis', main);
}
