/**
 * The raw baseline of `npm run bench`: what a Node team gets by writing the same workload to
 * Redis streams by hand, with no gateway in between. It runs in its own process (this file is
 * both the parent's {@link runRawRedis} and the child's entry point), so, like the gateway
 * child, it never shares the load generator's event loop:
 *
 *   writers  one ioredis connection per stream (auto-pipelining on): XADD <key> * s <seq> d <text>
 *            with up to `window` XADDs unanswered, as a spool producer keeps `window` chunks
 *            unacknowledged; each reply frees a slot
 *   readers  one more connection per stream (never a writer's): XREAD COUNT 1024 BLOCK 0 from
 *            the start until every entry is in, each checked: seq in order, exactly once, text
 *            intact
 *
 * Figures are measured as throughput.ts measures spool's: `delivery` is XADD issued → the
 * stream's reader got the entry, `ack` is XADD issued → its reply, delivered/s is entries ÷
 * (first XADD → last entry read). Before the clock starts, one untimed stream of 2,000 entries
 * warms both sides up.
 *
 *   parent ── spawn (spec as JSON in argv) ──▶ child: connects, warm-up
 *   parent ◀── { type: 'start' } ────────────── child: timed run begins (parent samples Redis CPU)
 *   parent ◀── { type: 'result', result } ───── child: done, disconnects, exits
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { cpuSecondsOf, entryArgs, samplePeakRss } from './gateway-child';
import { LatencyRecorder, type LatencySummary } from './latency';
import { runMain } from './report';
import { payloads, Problems, withTimeout } from './workload';

/** What the baseline runs against and how much it writes. */
export interface RawRedisSpec {
  /** A private redis-server (store/test-helpers/redis-server.ts `startRedis`). */
  readonly url: string;
  /** Its pid, so its CPU time can be measured; null when unknown. */
  readonly redisPid: number | null;
  readonly sessions: number;
  readonly perSession: number;
  /** Characters (= UTF-8 bytes) of each entry's text. */
  readonly bytes: number;
  /** XADDs unanswered per stream. */
  readonly window: number;
  /** @default 300000 */
  readonly timeoutMs?: number;
}

/** What the child measures of itself. */
interface ChildFigures {
  readonly chunks: number;
  /** First XADD → last XADD answered. */
  readonly seconds: number;
  /** First XADD → last entry read. */
  readonly deliverySeconds: number;
  readonly ack: LatencySummary;
  readonly delivery: LatencySummary;
  /** CPU time the child used over the timed run, µs. */
  readonly cpuUs: number;
  readonly problems: readonly string[];
}

/** One baseline run. */
export interface RawRedisResult {
  readonly sessions: number;
  readonly chunks: number;
  readonly seconds: number;
  /** Entries answered per second over `seconds`. */
  readonly chunksPerSec: number;
  readonly deliverySeconds: number;
  /** Entries read per second over `deliverySeconds`. */
  readonly deliveredPerSec: number;
  readonly ack: LatencySummary;
  readonly delivery: LatencySummary;
  /** CPU time the baseline's Node process used over the timed run, per entry, µs. */
  readonly cpuUsPerChunk: number;
  /** CPU time the redis-server used over the timed run, per entry, µs (NaN when unknown). */
  readonly redisCpuUsPerChunk: number;
  /** Highest VmRSS of the baseline's Node process over its life, bytes. */
  readonly rssMaxBytes: number;
  readonly problems: readonly string[];
}

type ChildMessage = { readonly type: 'start' } | { readonly type: 'result'; readonly figures: ChildFigures };

const WARMUP_ENTRIES = 2000;
const LOG_LIMIT = 16 * 1024;

// ------------------------------------------------------------------ parent


/** Runs the baseline in a child process and returns its figures; throws when the child fails. */
export async function runRawRedis(spec: RawRedisSpec): Promise<RawRedisResult> {
  const timeoutMs = spec.timeoutMs ?? 300_000;
  const child = spawn(process.execPath, [...entryArgs('raw-redis'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let output = '';
  const append = (data: Buffer): void => {
    output = (output + data.toString()).slice(-LOG_LIMIT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const rss = samplePeakRss(child.pid as number, 100);
  let redisCpu0 = Number.NaN;
  let redisCpu = Number.NaN;
  let timer: NodeJS.Timeout | undefined;
  try {
    const figures = await new Promise<ChildFigures>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the raw baseline did not finish within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      child.on('message', (message: ChildMessage) => {
        if (message.type === 'start') redisCpu0 = cpuSecondsOf(spec.redisPid);
        else if (message.type === 'result') {
          redisCpu = cpuSecondsOf(spec.redisPid) - redisCpu0;
          resolve(message.figures);
        }
      });
      child.once('exit', (code, signal) => reject(new Error(`the raw baseline exited (${String(code ?? signal)}) before its result:\n${output}`)));
    });
    return {
      sessions: spec.sessions,
      chunks: figures.chunks,
      seconds: figures.seconds,
      chunksPerSec: figures.chunks / figures.seconds,
      deliverySeconds: figures.deliverySeconds,
      deliveredPerSec: figures.chunks / figures.deliverySeconds,
      ack: figures.ack,
      delivery: figures.delivery,
      cpuUsPerChunk: figures.cpuUs / figures.chunks,
      redisCpuUsPerChunk: (redisCpu * 1e6) / figures.chunks,
      rssMaxBytes: rss.stop(),
      problems: figures.problems,
    };
  } finally {
    clearTimeout(timer);
    rss.stop();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  }
}

// ------------------------------------------------------------------ child

/** Moments of one stream's run (performance.now()). */
interface StreamTimes {
  readonly firstWrite: number;
  readonly lastReply: number;
  readonly lastRead: number;
}

/**
 * One stream: its reader blocks on XREAD first, then its writer XADDs `count` entries with up to
 * `window` unanswered; resolves when every reply and every entry are in.
 */
async function runStream(
  writer: Redis,
  reader: Redis,
  key: string,
  count: number,
  window: number,
  text: (seq: number) => string,
  into: { readonly ack: LatencyRecorder; readonly delivery: LatencyRecorder; readonly problems: Problems },
): Promise<StreamTimes> {
  const writeAt = new Float64Array(count);
  let lastRead = Number.NaN;
  let lastReply = Number.NaN;

  const reading = (async () => {
    let lastId = '0';
    let next = 0;
    let received = 0;
    while (received < count) {
      const reply = await reader.xread('COUNT', 1024, 'BLOCK', 0, 'STREAMS', key, lastId);
      const now = performance.now();
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) {
          lastId = id;
          received++;
          const seq = Number(fields[1]);
          if (seq !== next) into.problems.add(`${key}: entry seq ${fields[1] ?? '?'} where ${next} was due`);
          else if (fields[3] !== text(seq)) into.problems.add(`${key}: entry seq ${seq} arrived with different text`);
          else into.delivery.record(now - (writeAt[seq] as number));
          next = seq + 1;
        }
      }
      lastRead = now;
    }
  })();

  const firstWrite = performance.now();
  const writing = new Promise<void>((resolve) => {
    let seq = 0;
    let inFlight = 0;
    let answered = 0;
    const pump = (): void => {
      while (inFlight < window && seq < count) {
        const s = seq++;
        inFlight++;
        writeAt[s] = performance.now();
        writer.xadd(key, '*', 's', String(s), 'd', text(s)).then(
          () => {
            lastReply = performance.now();
            into.ack.record(lastReply - (writeAt[s] as number));
            settled();
          },
          (error: unknown) => {
            into.problems.add(`XADD ${key} seq ${s}: ${String(error)}`);
            settled();
          },
        );
      }
    };
    const settled = (): void => {
      inFlight--;
      if (++answered === count) resolve();
      else pump();
    };
    pump();
  });

  await Promise.all([writing, reading]);
  return { firstWrite, lastReply, lastRead };
}

async function connect(url: string): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableAutoPipelining: true });
  redis.on('error', () => undefined); // a failed command rejects; the run reports it
  await redis.connect();
  return redis;
}

/** The child: connects, warms up, runs every stream at once, reports to the parent, exits. */
async function childMain(argv: readonly string[]): Promise<number> {
  const spec = JSON.parse(argv[0] ?? '{}') as RawRedisSpec;
  const send = (message: ChildMessage): Promise<void> => new Promise((resolve) => process.send?.(message, () => resolve()) ?? resolve());
  const text = payloads(spec.bytes);
  const clients: Redis[] = [];
  try {
    for (let i = 0; i < spec.sessions * 2; i++) clients.push(await connect(spec.url));
    const writers = clients.slice(0, spec.sessions);
    const readers = clients.slice(spec.sessions);
    const warmup = { ack: new LatencyRecorder(), delivery: new LatencyRecorder(), problems: new Problems() };
    await withTimeout(runStream(writers[0] as Redis, readers[0] as Redis, 'raw:warmup', WARMUP_ENTRIES, spec.window, text, warmup), 60_000, 'the warm-up stream');

    const timed = { ack: new LatencyRecorder(), delivery: new LatencyRecorder(), problems: new Problems() };
    for (const problem of warmup.problems.done()) timed.problems.add(`warm-up: ${problem}`);
    await send({ type: 'start' });
    const cpu0 = process.cpuUsage();
    const runs = await withTimeout(
      Promise.all(writers.map((writer, i) => runStream(writer, readers[i] as Redis, `raw:${i}`, spec.perSession, spec.window, text, timed))),
      spec.timeoutMs ?? 300_000,
      'the raw streams',
    );
    const cpu = process.cpuUsage(cpu0);
    const first = Math.min(...runs.map((r) => r.firstWrite));
    await send({
      type: 'result',
      figures: {
        chunks: spec.sessions * spec.perSession,
        seconds: (Math.max(...runs.map((r) => r.lastReply)) - first) / 1000,
        deliverySeconds: (Math.max(...runs.map((r) => r.lastRead)) - first) / 1000,
        ack: timed.ack.summary(),
        delivery: timed.delivery.summary(),
        cpuUs: cpu.user + cpu.system,
        problems: timed.problems.done(),
      },
    });
    return 0;
  } finally {
    for (const client of clients) client.disconnect();
    process.disconnect?.();
  }
}

if (require.main === module) runMain('raw-redis', childMain);
