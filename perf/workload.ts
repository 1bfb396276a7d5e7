/**
 * The chunk workload the benchmarks drive through the SDK, and how they check it. bench-quick.ts
 * (gateway in process), throughput.ts (gateway child) and bench-redis.ts (two gateway children on
 * Redis) run the same workload in different settings; this is the part they share:
 *
 *   payload(seq)      ~40-byte text deltas, cheap to produce and to check (payloads(n): n bytes)
 *   Track             one session's generation: write() moments, the acks the producer saw
 *   produceFlat/Lone  a producer: as fast as credit allows, or one durable write at a time
 *   producePaced      a producer writing at a fixed rate
 *   readGeneration    a reader: exactly once, in seq order, at contiguous offsets, to gen.end done
 *   SessionFleet      S sessions, one ack-tapped producer client, a live reader client each
 *   Problems          the bounded list of correctness failures a run reports
 *
 * Correctness is checked, speed never: every check adds to `Problems`, nothing throws for a lost
 * or repeated chunk. `withTimeout` is what turns a hang into an error.
 */
import { performance } from 'node:perf_hooks';
import { SpoolClient, type Generation, type Subscription, type SubscriptionItem } from '../client';
import { ackTappedWebSocket, type AckObservation } from './ack-tap';
import { LatencyRecorder, type LatencySummary } from './latency';

// ------------------------------------------------------------------ payloads

/** The text the payloads are cut from (bench-redis stamps its latency chunks onto it). */
export const PAYLOAD_TEXT = 'the model keeps talking while the reader follows the log, offset by offset; ';

/**
 * Texts of exactly `bytes` ASCII characters (as many UTF-8 bytes) cut from {@link PAYLOAD_TEXT}
 * at 64 different starts: what a producer writes as chunk `seq` and a reader expects there.
 */
export function payloads(bytes: number): (seq: number) => string {
  const text = PAYLOAD_TEXT.repeat(Math.ceil((bytes + 64) / PAYLOAD_TEXT.length) + 1);
  const table: readonly string[] = Array.from({ length: 64 }, (_, i) => text.slice(i, i + bytes));
  return (seq) => table[seq % table.length] as string;
}

/** The 40-byte text delta a producer writes as chunk `seq` (and a reader expects there). */
export const payload = payloads(40);

// ------------------------------------------------------------------ problems and waiting

/** Problems kept in a report; the rest are counted in a last line. */
export const MAX_PROBLEMS = 20;

/** A bounded list of correctness failures: the first {@link MAX_PROBLEMS}, then a count. */
export class Problems {
  private readonly list: string[] = [];
  private more = 0;

  add(problem: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(problem);
    else this.more++;
  }

  /** The problems so far, with `… and N more` last when some were not kept. */
  done(): string[] {
    return this.more > 0 ? [...this.list, `… and ${this.more} more`] : [...this.list];
  }
}

/** `promise`, or a rejection naming `what` once `ms` have passed (the timer is cleared either way). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A promise and the function that resolves it (resolving twice is harmless). */
export interface Deferred {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

/** A fresh {@link Deferred}. */
export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves after `ms`. Pacing only, never synchronisation. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------ one session's bookkeeping

/** Write times and acks of one session's generation, and whether its reader is live. */
export class Track {
  /** performance.now() of each chunk's write(), by seq. */
  readonly writeAt: Float64Array;
  private readonly ackSeq: number[] = [];
  private readonly ackAt: number[] = [];
  private finishedAt: number | undefined;
  /** Resolved when the session's reader has seen gen.start (or has given up). */
  readonly started = deferred();
  /** First write() began. */
  firstWriteAt = Number.NaN;
  /** `finish()` resolved. */
  finishResolvedAt = Number.NaN;
  /** The session's reader yielded the last chunk it got (NaN: none yet). */
  lastDeliveryAt = Number.NaN;

  /** @param text what chunk `seq` carries. @default {@link payload} */
  constructor(
    readonly session: string,
    readonly generationId: string,
    readonly chunks: number,
    readonly text: (seq: number) => string = payload,
  ) {
    this.writeAt = new Float64Array(chunks);
  }

  /** Feed from the producer's ack tap (ack-tap.ts), for this track's generation. */
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

/** Seconds from the first write() of any track to the last `finish()` resolved. */
export function writeSpanSeconds(tracks: Iterable<Track>): number {
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const track of tracks) {
    first = Math.min(first, track.firstWriteAt);
    last = Math.max(last, track.finishResolvedAt);
  }
  return (last - first) / 1000;
}

/** Seconds from the first write() of any track to the last chunk any reader yielded. */
export function deliverySpanSeconds(tracks: Iterable<Track>): number {
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const track of tracks) {
    first = Math.min(first, track.firstWriteAt);
    last = Math.max(last, track.lastDeliveryAt);
  }
  return (last - first) / 1000;
}

// ------------------------------------------------------------------ producers

/** Writes every chunk as fast as the high-water mark (credit) allows, then finishes. */
export async function produceFlat(gen: Generation, track: Track): Promise<void> {
  track.firstWriteAt = performance.now();
  for (let seq = 0; seq < track.chunks; seq++) {
    track.writeAt[seq] = performance.now();
    if (!gen.write(track.text(seq), { kind: 'text' })) await gen.drained();
  }
  await gen.finish();
  track.finishResolvedAt = performance.now();
}

/** Writes one chunk at a time, waiting for each to be durable before the next, then finishes. */
export async function produceLone(gen: Generation, track: Track): Promise<void> {
  track.firstWriteAt = performance.now();
  for (let seq = 0; seq < track.chunks; seq++) {
    track.writeAt[seq] = performance.now();
    gen.write(track.text(seq), { kind: 'text' });
    await gen.flush();
  }
  await gen.finish();
  track.finishResolvedAt = performance.now();
}

/**
 * A producer writing `perSecond` chunks/s: chunk `seq` is due `seq / perSecond` s after its
 * first write, and each wake-up writes every chunk due by then (a late timer writes a burst, it
 * does not shift the schedule). Still honours the high-water mark, then finishes.
 */
export function producePaced(perSecond: number): (gen: Generation, track: Track) => Promise<void> {
  return async (gen, track) => {
    const t0 = performance.now();
    track.firstWriteAt = t0;
    let seq = 0;
    while (seq < track.chunks) {
      const due = Math.min(track.chunks, Math.floor(((performance.now() - t0) * perSecond) / 1000) + 1);
      for (; seq < due; seq++) {
        track.writeAt[seq] = performance.now();
        if (!gen.write(track.text(seq), { kind: 'text' })) await gen.drained();
      }
      if (seq < track.chunks) await sleep(t0 + (seq * 1000) / perSecond - performance.now());
    }
    await gen.finish();
    track.finishResolvedAt = performance.now();
  };
}

// ------------------------------------------------------------------ readers

/** What {@link readGeneration} expects of the one generation in a session. */
export interface ExpectedGeneration {
  /** Names the reader in problems: a session, or `session (reader on B)`. */
  readonly where: string;
  readonly generationId: string;
  /** Chunks with seq 0..chunks-1. */
  readonly chunks: number;
  /** Whether chunk `seq` carries the data it should. */
  check(seq: number, data: unknown): boolean;
}

/** What a reader reports as it goes. */
export interface ReaderHooks {
  /** On gen.start, and once more when reading ends however it ended (so no waiter hangs). */
  readonly onStart?: () => void;
  /** Every chunk that passed its checks, with the moment the subscription yielded it. */
  readonly onChunk?: (seq: number, data: unknown, at: number) => void;
}

/**
 * Reads one session to its gen.end and checks it: gen.start of `generationId` once, chunks with
 * seq 0..chunks-1 exactly once in order, each passing `check`, at contiguous offsets, gen.end
 * done. A reader that fails is a problem, not an error.
 */
export async function readGeneration(sub: Subscription, expected: ExpectedGeneration, problems: Problems, hooks: ReaderHooks = {}): Promise<void> {
  const { where, generationId, chunks } = expected;
  let nextOffset = 1;
  let nextSeq = 0;
  let ended = false;
  let started = false;
  try {
    for await (const item of sub as AsyncIterable<SubscriptionItem>) {
      const now = performance.now();
      if (item.type === 'gap') {
        problems.add(`${where}: gap ${item.from}..${item.to} (${item.reason})`);
        nextOffset = item.to + 1;
        continue;
      }
      if (item.offset !== nextOffset) problems.add(`${where}: offset ${item.offset} after ${nextOffset - 1}`);
      nextOffset = item.offset + 1;
      if (item.generationId !== generationId) {
        problems.add(`${where}: event of unknown generation ${String(item.generationId)}`);
        continue;
      }
      if (item.type === 'gen.start') {
        if (started) problems.add(`${where}: second gen.start`);
        started = true;
        hooks.onStart?.();
      } else if (item.type === 'chunk') {
        const seq = item.seq ?? -1;
        if (seq !== nextSeq) problems.add(`${where}: chunk seq ${seq} where ${nextSeq} was due`);
        else if (!expected.check(seq, item.data)) problems.add(`${where}: chunk seq ${seq} arrived with different data`);
        else hooks.onChunk?.(seq, item.data, now);
        if (seq === nextSeq) nextSeq++;
      } else if (item.type === 'gen.end') {
        if (item.status !== 'done') problems.add(`${where}: gen.end ${String(item.status)}`);
        ended = true;
        break;
      }
    }
  } catch (error) {
    problems.add(`${where}: reader failed: ${String(error)}`);
  } finally {
    hooks.onStart?.(); // never leave a waiter hanging on a reader that failed
  }
  if (!started) problems.add(`${where}: no gen.start`);
  if (!ended) problems.add(`${where}: subscription ended before gen.end`);
  if (nextSeq !== chunks) problems.add(`${where}: reader got ${nextSeq} of ${chunks} chunks`);
}

/**
 * Follows `track`'s session with {@link readGeneration} (payloads as `track.text` spells them),
 * marks `track.started` on gen.start, and records write() → yielded for every chunk and when
 * the last one was yielded.
 */
export function follow(sub: Subscription, track: Track, delivery: LatencyRecorder, problems: Problems): Promise<void> {
  return readGeneration(
    sub,
    { where: track.session, generationId: track.generationId, chunks: track.chunks, check: (seq, data) => data === track.text(seq) },
    problems,
    {
      onStart: track.started.resolve,
      onChunk: (seq, _data, at) => {
        delivery.record(at - (track.writeAt[seq] as number));
        track.lastDeliveryAt = at;
      },
    },
  );
}

// ------------------------------------------------------------------ the fleet

/** What a {@link SessionFleet} measured. */
export interface FleetFigures {
  readonly sessions: number;
  /** Chunks written in total (all sessions). */
  readonly chunks: number;
  /** First write() → last `finish()` resolved. */
  readonly seconds: number;
  /** Durable chunks per second over `seconds`. */
  readonly chunksPerSec: number;
  /** First write() → the last chunk any reader yielded. */
  readonly deliverySeconds: number;
  /** Chunks delivered to their readers per second over `deliverySeconds`. */
  readonly deliveredPerSec: number;
  /** write() → the cumulative ack covering it arrived on the producer's socket. */
  readonly ack: LatencySummary;
  /** write() → the session's reader yielded it. */
  readonly delivery: LatencySummary;
}

/** How a {@link SessionFleet}'s producers write. */
export interface FleetOptions {
  /** What chunk `seq` carries. @default {@link payload} */
  readonly text?: (seq: number) => string;
  /**
   * Chunks a producer keeps unacknowledged before write() returns false (the generation's
   * highWaterMark.items). @default the SDK's default
   */
  readonly window?: number;
  /** The producers' SDK lingerMs (chunks waiting for more to join their frame). @default the SDK's (0) */
  readonly lingerMs?: number;
}

/**
 * S sessions on one gateway: one producer client (its WebSocket ack-tapped) writing a generation
 * `g-<session>` of `perSession` chunks into each, and one reader client per session following it
 * live from offset 0 with {@link follow}. bench-quick's scenarios and throughput.ts drive it.
 *
 *   new        every reader subscribes, every generation is created
 *   ready()    every generation is open and every reader has seen its gen.start: start the clock
 *   run()      every producer writes and finishes, every reader reaches gen.end
 *   figures()  the measurement (ack latencies are computed here, after the clock stopped)
 *   close()    every client
 */
export class SessionFleet {
  private readonly tracks = new Map<string, Track>();
  private readonly producer: SpoolClient;
  private readonly readers: SpoolClient[] = [];
  private readonly gens: Array<{ readonly gen: Generation; readonly track: Track }> = [];
  private readonly following: Array<Promise<void>> = [];
  private readonly delivery = new LatencyRecorder();

  constructor(
    url: string,
    private readonly sessions: readonly string[],
    private readonly perSession: number,
    private readonly problems: Problems,
    options: FleetOptions = {},
  ) {
    this.producer = new SpoolClient({
      url,
      WebSocket: ackTappedWebSocket((observation) => this.tracks.get(observation.generation)?.onAck(observation)),
      ...(options.lingerMs !== undefined ? { lingerMs: options.lingerMs } : {}),
    });
    for (const session of sessions) {
      const track = new Track(session, `g-${session}`, perSession, options.text);
      this.tracks.set(track.generationId, track);
      const reader = new SpoolClient({ url });
      this.readers.push(reader);
      this.following.push(follow(reader.subscribe(session, { from: 0 }), track, this.delivery, problems));
    }
    const highWaterMark = options.window === undefined ? {} : { highWaterMark: { items: options.window } };
    for (const track of this.tracks.values()) this.gens.push({ gen: this.producer.generation(track.session, { id: track.generationId, ...highWaterMark }), track });
  }

  /** Opens every generation and waits until each reader has seen its gen.start. */
  async ready(timeoutMs: number): Promise<void> {
    await withTimeout(Promise.all(this.gens.map(({ gen }) => gen.flush())), timeoutMs, 'opening the generations');
    await withTimeout(Promise.all(this.gens.map(({ track }) => track.started.promise)), timeoutMs, 'the readers seeing gen.start');
  }

  /** Every generation written by `produce` ({@link produceFlat}, {@link produceLone}, {@link producePaced}), then every reader done. */
  async run(produce: (gen: Generation, track: Track) => Promise<void>): Promise<void> {
    await withTimeout(Promise.all(this.gens.map(({ gen, track }) => produce(gen, track))), 300_000, 'the producers');
    await withTimeout(Promise.all(this.following), 60_000, 'the readers');
  }

  /** The figures of the run; a chunk no ack covers is a problem. */
  figures(): FleetFigures {
    const ack = new LatencyRecorder();
    for (const track of this.tracks.values()) track.recordAckLatencies(ack, this.problems);
    const chunks = this.sessions.length * this.perSession;
    const seconds = writeSpanSeconds(this.tracks.values());
    const deliverySeconds = deliverySpanSeconds(this.tracks.values());
    return {
      sessions: this.sessions.length,
      chunks,
      seconds,
      chunksPerSec: chunks / seconds,
      deliverySeconds,
      deliveredPerSec: chunks / deliverySeconds,
      ack: ack.summary(),
      delivery: this.delivery.summary(),
    };
  }

  /** Closes the readers, then the producer. */
  async close(): Promise<void> {
    await Promise.all(this.readers.map((reader) => reader.close()));
    await this.producer.close();
  }
}
