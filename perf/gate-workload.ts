/**
 * The perf gate's workload (perf-gate.ts), against one gateway child on LMDB:
 *
 *   producers  one SDK client per session writing G generations of C ~40-byte text chunks, a
 *              user message (an idempotent append) before each; paced at a fixed number of
 *              chunks per second, which only spreads a fixed count over the budget: a slow
 *              machine writes the same chunks, later;
 *   readers    K per session, each its own SDK client behind its own TCP proxy (tcp-proxy.ts),
 *              following the session live from offset 0 to its final head, checking every item
 *              as it arrives (gate-check.ts);
 *   drops      D planned drops, one every I ms, round-robin over the readers, cycling through
 *              cut 0 ms → restart → cut 300 ms → restart → cut 1500 ms: a cut destroys the
 *              reader's TCP connection at its proxy and refuses reconnects for that long (the SDK
 *              resumes by itself); a restart closes the reader's client and subscribes from the
 *              saved offset on a new one. A reader that is not live (still resuming) is skipped;
 *   retention  one more session writing 4 KiB debug (0) and low-priority (1) chunks, in all 5×
 *              the gateway's retention bytes: it fills its retention early and trims (and its
 *              readers see gaps) from then on, on purpose. The other sessions stay far below
 *              retention (a quarter of it at most), so any trim there is the gateway's fault.
 *
 *   resume     from the loss (the cut, the restart, or any unplanned drop the client reports)
 *              until the reader's subscription is live again, polled every 25 ms.
 *
 * Every amount of work is a count fixed by the plan (chunks, generations, drops); wall time only
 * paces it. Producer → ack and producer → live delivery latencies are on this process's clock.
 */
import { performance } from 'node:perf_hooks';
import { SpoolClient, type EndStatus, type Generation, type Subscription, type SubscriptionItem } from '../client';
import type { SessionStore } from '../store/types';
import { GenTrack, LogCheck, type AppendRecord } from './gate-check';
import { WindowMeter, type ResumeRecord, type StoreCounts, type WindowSource } from './gate-windows';
import { LatencyRecorder } from './latency';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';
import { payload, Problems, withTimeout } from './workload';

// ------------------------------------------------------------------ the plan

/** Every count of a run, fixed before it starts. */
export interface GatePlan {
  /** The budget the pace spreads the writing over. */
  readonly seconds: number;
  /** Sessions the gate judges (every one but the retention session). */
  readonly sessions: number;
  readonly readersPerSession: number;
  readonly chunksPerSession: number;
  readonly chunksPerGeneration: number;
  readonly retentionSession: string;
  readonly retentionReaders: number;
  readonly retentionChunks: number;
  readonly retentionChunksPerGeneration: number;
  readonly retentionChunkBytes: number;
  /** The gateway's retention (SPOOL_RETENTION_BYTES / SPOOL_RETENTION_EVENTS). */
  readonly retentionBytes: number;
  readonly retentionEvents: number;
  /** Planned reader drops over the run. */
  readonly drops: number;
}

/** Per judged session: chunks per second the pace aims at. */
export const RATE_PER_SESSION = 200;
const SESSIONS = 4;
const READERS_PER_SESSION = 2;
const CHUNKS_PER_GENERATION = 400;
const RETENTION_CHUNK_BYTES = 4096;
/** Each reader is dropped about once per this many seconds. */
const SECONDS_PER_DROP_PER_READER = 5;
/** Retention bytes charged per judged chunk when sizing retention (payload ~41 B, with room). */
const BYTES_PER_CHUNK_BOUND = 64;

/** The plan for a budget of `seconds` of writing. */
export function planGate(seconds: number): GatePlan {
  const chunksPerSession = Math.max(1, Math.round(RATE_PER_SESSION * seconds));
  const generations = Math.ceil(chunksPerSession / CHUNKS_PER_GENERATION);
  // The judged sessions hold at most a quarter of either bound; the retention session 5× the bytes.
  const retentionBytes = Math.max(256 * 1024, 4 * chunksPerSession * BYTES_PER_CHUNK_BOUND);
  const retentionEvents = Math.max(100_000, 4 * (chunksPerSession + 3 * generations));
  const readers = SESSIONS * READERS_PER_SESSION + 2;
  return {
    seconds,
    sessions: SESSIONS,
    readersPerSession: READERS_PER_SESSION,
    chunksPerSession,
    chunksPerGeneration: CHUNKS_PER_GENERATION,
    retentionSession: 'gate-retention',
    retentionReaders: 2,
    retentionChunks: Math.ceil((5 * retentionBytes) / RETENTION_CHUNK_BYTES),
    retentionChunksPerGeneration: 100,
    retentionChunkBytes: RETENTION_CHUNK_BYTES,
    retentionBytes,
    retentionEvents,
    drops: Math.max(1, Math.round((seconds * readers) / SECONDS_PER_DROP_PER_READER)),
  };
}

/** The planned drops, in order (see the file comment). */
const DROPS: ReadonlyArray<{ readonly kind: 'cut'; readonly holdMs: number } | { readonly kind: 'restart' }> = [
  { kind: 'cut', holdMs: 0 },
  { kind: 'restart' },
  { kind: 'cut', holdMs: 300 },
  { kind: 'restart' },
  { kind: 'cut', holdMs: 1500 },
];

const TICK_MS = 20;
const POLL_MS = 25;

const FILL = 'r'.repeat(RETENTION_CHUNK_BYTES);
/** Chunk `seq` of a retention-session generation: `<seq>:rrrr…`, `bytes` long. */
const retentionPayload = (seq: number, bytes: number): string => `${seq}:${FILL}`.slice(0, bytes);

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

// ------------------------------------------------------------------ sessions

interface SessionSpec {
  readonly id: string;
  readonly retention: boolean;
  readonly chunks: number;
  readonly chunksPerGeneration: number;
  readonly data: (seq: number) => string;
}

// ------------------------------------------------------------------ the workload

/** Totals over the whole run (the windows hold the same per window). */
export interface RunTotals {
  readonly ack: LatencyRecorder;
  readonly delivery: LatencyRecorder;
  readonly resume: LatencyRecorder;
  acked: number;
  /** performance.now() of the first write() and of the last finish() resolved. */
  firstWrite: number;
  lastFinish: number;
}

export class GateWorkload implements WindowSource {
  readonly resumes: ResumeRecord[] = [];
  reconnects = 0;
  readonly drops = { cuts: 0, restarts: 0, skipped: 0 };
  meter = new WindowMeter();
  readonly totals: RunTotals = {
    ack: new LatencyRecorder(),
    delivery: new LatencyRecorder(),
    resume: new LatencyRecorder(),
    acked: 0,
    firstWrite: Number.POSITIVE_INFINITY,
    lastFinish: Number.NEGATIVE_INFINITY,
  };
  readonly problems = new Problems();
  readonly tracks = new Map<string, GenTrack>();
  readonly appends = new Map<string, AppendRecord[]>();
  readonly readers: GateReader[] = [];
  readonly specs: readonly SessionSpec[];
  private readonly producers: SpoolClient[] = [];
  private readonly abortController = new AbortController();
  private abortReason: string | undefined;
  private poller: NodeJS.Timeout | undefined;

  private constructor(
    readonly plan: GatePlan,
    private readonly url: string,
    private readonly store: SessionStore,
    proxies: readonly TcpProxy[],
  ) {
    const specs: SessionSpec[] = [];
    for (let i = 0; i < plan.sessions; i++) {
      specs.push({ id: `gate-s${i}`, retention: false, chunks: plan.chunksPerSession, chunksPerGeneration: plan.chunksPerGeneration, data: payload });
    }
    const bytes = plan.retentionChunkBytes;
    specs.push({
      id: plan.retentionSession,
      retention: true,
      chunks: plan.retentionChunks,
      chunksPerGeneration: plan.retentionChunksPerGeneration,
      data: (seq) => retentionPayload(seq, bytes),
    });
    this.specs = specs;
    let p = 0;
    for (const spec of specs) {
      const count = spec.retention ? plan.retentionReaders : plan.readersPerSession;
      for (let j = 0; j < count; j++) this.readers.push(new GateReader(this, `${spec.id}.r${j}`, spec, proxies[p++] as TcpProxy));
    }
  }

  /** Starts one TCP proxy per reader in front of the gateway at `url`. */
  static async create(plan: GatePlan, url: string, port: number, store: SessionStore): Promise<GateWorkload> {
    const readers = plan.sessions * plan.readersPerSession + plan.retentionReaders;
    const proxies: TcpProxy[] = [];
    try {
      for (let i = 0; i < readers; i++) proxies.push(await startTcpProxy({ host: '127.0.0.1', port }));
    } catch (error) {
      await Promise.all(proxies.map((proxy) => proxy.close()));
      throw error;
    }
    return new GateWorkload(plan, url, store, proxies);
  }

  get signal(): AbortSignal {
    return this.abortController.signal;
  }

  /** Why the run stopped early (a window failed, the overall timeout), if it did. */
  get aborted(): string | undefined {
    return this.abortReason;
  }

  /** Stops everything at once: producers, drops, readers (fail fast). */
  abort(reason: string): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.abortController.abort();
    for (const client of this.producers) client.destroy();
    for (const reader of this.readers) reader.close();
  }

  /**
   * Readers subscribe first (each live on an empty session, so it follows from the very first
   * event), then producers write and drops run. Resolves when every producer finished and every
   * planned drop was made, or at once on abort.
   */
  async run(): Promise<void> {
    for (const reader of this.readers) reader.start();
    this.poller = setInterval(() => {
      const now = performance.now();
      for (const reader of this.readers) reader.poll(now);
    }, POLL_MS);
    const producing = this.specs.map((spec) => this.produce(spec));
    await Promise.all([...producing, this.dropLoop()]);
  }

  /** Every session's final head from the store; the readers run to it (bounded). Returns the laggards. */
  async drainReaders(timeoutMs: number): Promise<string[]> {
    const heads = new Map<string, number>();
    for (const spec of this.specs) heads.set(spec.id, (await this.store.meta(spec.id)).head);
    const reached = await Promise.all(this.readers.map((reader) => reader.stopAt(heads.get(reader.spec.id) ?? 0, timeoutMs)));
    return this.readers.filter((_, i) => !reached[i]).map((r) => `reader ${r.id} stopped at offset ${r.check.offset} of ${heads.get(r.spec.id) ?? 0}`);
  }

  /**
   * Reads every session once more from offset 0 on a fresh client straight to the gateway (the
   * log as stored) and checks it like a reader; then checks every reader against the acks.
   * Returns the gaps the stored retention session shows.
   */
  async verify(timeoutMs: number): Promise<number> {
    let retentionGaps = 0;
    const client = new SpoolClient({ url: this.url });
    try {
      for (const spec of this.specs) {
        const head = (await this.store.meta(spec.id)).head;
        const check = new LogCheck(`${spec.id} (read back from 0)`, spec.retention, this.tracks, this.problems);
        const sub = client.subscribe(spec.id, { from: 0 });
        try {
          await withTimeout(
            (async () => {
              if (head === 0) return;
              for await (const item of sub as AsyncIterable<SubscriptionItem>) {
                check.take(item, performance.now());
                if (check.offset >= head) return;
              }
            })(),
            timeoutMs,
            `reading ${spec.id} back`,
          );
        } catch (error) {
          this.problems.add(String(error));
        } finally {
          sub.close();
        }
        check.verify(this.sessionTracks(spec.id), this.appends.get(spec.id) ?? []);
        if (spec.retention) {
          retentionGaps = check.gaps;
          if (check.gaps === 0) this.problems.add(`${spec.id} (read back from 0): no trimmed gap, so the run never filled its retention: the workload is not what the gate needs`);
        }
      }
    } finally {
      await client.close();
    }
    for (const reader of this.readers) reader.check.verify(this.sessionTracks(reader.spec.id), this.appends.get(reader.spec.id) ?? []);
    return retentionGaps;
  }

  /** Resumes never live again. */
  openResumes(): ResumeRecord[] {
    return this.resumes.filter((r) => r.end === undefined);
  }

  async storeCounts(): Promise<{ readonly measured: StoreCounts; readonly retention: StoreCounts }> {
    let stored = 0;
    let trimmed = 0;
    let retention: StoreCounts = { stored: 0, trimmed: 0 };
    for (const spec of this.specs) {
      const meta = await this.store.meta(spec.id);
      // Offsets are assigned once and never reused: what is not retained of them was trimmed.
      const counts = { stored: meta.head, trimmed: meta.head - meta.count };
      if (spec.retention) retention = counts;
      else {
        stored += counts.stored;
        trimmed += counts.trimmed;
      }
    }
    return { measured: { stored, trimmed }, retention };
  }

  async close(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    for (const reader of this.readers) reader.close();
    for (const client of this.producers) client.destroy();
    await Promise.all(this.readers.map((reader) => reader.proxy.close()));
  }

  // ------------------------------------------------------------------ producers

  private sessionTracks(session: string): GenTrack[] {
    return [...this.tracks.values()].filter((t) => t.session === session);
  }

  /** One session's generations, paced over the budget; a failure is a problem, not a throw. */
  private async produce(spec: SessionSpec): Promise<void> {
    const client = new SpoolClient({ url: this.url });
    this.producers.push(client);
    const signal = this.signal;
    const perMs = spec.chunks / (this.plan.seconds * 1000);
    const start = performance.now();
    const appends: AppendRecord[] = [];
    this.appends.set(spec.id, appends);
    let written = 0;
    try {
      for (let g = 0; written < spec.chunks; g++) {
        if (signal.aborted) return;
        const key = `${spec.id}-m${g}`;
        const appended = await withTimeout(client.append(spec.id, { key, kind: 'user', data: { text: `question ${g}` } }), 60_000, `append ${key}`);
        appends.push({ key, offset: appended.offset });
        const track = new GenTrack(spec.id, `${spec.id}-g${g}`, Math.min(spec.chunksPerGeneration, spec.chunks - written), spec.data);
        this.tracks.set(track.id, track);
        const gen = client.generation(spec.id, { id: track.id });
        gen.on('ack', (ack) => this.onAck(track, ack.seq, ack.offset, ack.dropped, performance.now()));
        for (let seq = 0; seq < track.chunks; ) {
          if (signal.aborted) return;
          // The pace: chunk k of the session is due k / rate after the start.
          if (written >= Math.floor((performance.now() - start) * perMs) + 1) {
            await pause(TICK_MS, signal);
            continue;
          }
          const at = performance.now();
          this.totals.firstWrite = Math.min(this.totals.firstWrite, at);
          track.writeAt[seq] = at;
          const ok = this.write(gen, spec, seq);
          seq += 1;
          written += 1;
          if (!ok) await gen.drained();
        }
        const finished = await gen.finish({ timeoutMs: 60_000 });
        this.onFinished(track, finished.offset, finished.status, performance.now());
      }
    } catch (error) {
      if (!signal.aborted) this.problems.add(`producer of ${spec.id} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private write(gen: Generation, spec: SessionSpec, seq: number): boolean {
    if (!spec.retention) return gen.write(spec.data(seq), { kind: 'text' });
    const priority = seq % 2 === 0 ? 0 : 1;
    return gen.write(spec.data(seq), { kind: priority === 0 ? 'debug' : 'reasoning', priority });
  }

  private onAck(track: GenTrack, seq: number, offset: number, dropped: number, at: number): void {
    track.acks.push({ seq, offset });
    track.dropped += dropped;
    this.covered(track, seq, at);
  }

  private onFinished(track: GenTrack, offset: number, status: EndStatus, at: number): void {
    track.finished = { offset, status };
    if (status !== 'done') this.problems.add(`${track.id} finished ${status}`);
    this.covered(track, track.chunks - 1, at);
    this.totals.lastFinish = Math.max(this.totals.lastFinish, at);
  }

  /** write() → the ack (or finish) that covered each seq up to `through`. */
  private covered(track: GenTrack, through: number, at: number): void {
    for (let s = track.ackedThrough + 1; s <= through; s++) {
      const ms = at - (track.writeAt[s] as number);
      this.meter.ack.record(ms);
      this.totals.ack.record(ms);
    }
    const n = Math.max(0, through - track.ackedThrough);
    this.meter.acked += n;
    this.totals.acked += n;
    track.ackedThrough = Math.max(track.ackedThrough, through);
  }

  // ------------------------------------------------------------------ drops

  private async dropLoop(): Promise<void> {
    const { drops, seconds } = this.plan;
    const intervalMs = (seconds * 1000) / (drops + 1);
    const n = this.readers.length;
    for (let k = 0; k < drops; k++) {
      await pause(intervalMs, this.signal);
      if (this.signal.aborted) return;
      const reader = this.readers[k % n] as GateReader;
      const drop = DROPS[Math.floor(k / n) % DROPS.length] as (typeof DROPS)[number];
      if (drop.kind === 'cut' ? reader.cut(drop.holdMs) : reader.restart()) {
        if (drop.kind === 'cut') this.drops.cuts += 1;
        else this.drops.restarts += 1;
      } else this.drops.skipped += 1;
    }
  }

  /** @internal A reader's resume began. */
  resumeBegan(record: ResumeRecord): void {
    this.resumes.push(record);
  }

  /** @internal A reader's resume ended (it is live again). */
  resumeEnded(record: ResumeRecord): void {
    const ms = (record.end as number) - record.start;
    this.meter.resume.record(ms);
    this.totals.resume.record(ms);
  }

  /** @internal A chunk reached a live reader (no resume under way). */
  delivered(track: GenTrack, seq: number, at: number): void {
    const ms = at - (track.writeAt[seq] as number);
    this.meter.delivery.record(ms);
    this.totals.delivery.record(ms);
  }
}

// ------------------------------------------------------------------ readers

/**
 * One reader of one session across stints (a restart starts a new one on a new client):
 *
 *   live ──cut (proxy) / drop──▶ resuming ──client lost the socket, then sub.live──▶ live
 *   live ──restart: close client, subscribe(from: offset) on a new one──▶ resuming ──sub.live──▶ live
 *   any ──offset >= final head──▶ done (a resume under way ends: it caught up)
 */
class GateReader {
  readonly check: LogCheck;
  private client: SpoolClient | undefined;
  private sub: Subscription | undefined;
  private resume: ResumeRecord | undefined;
  /** The client has reported the loss (a cut is only a loss once the SDK saw it). */
  private lost = false;
  private target = Number.POSITIVE_INFINITY;
  private closed = false;
  private onDone: (() => void) | undefined;
  private failures = 0;
  reached = false;

  constructor(
    private readonly workload: GateWorkload,
    readonly id: string,
    readonly spec: SessionSpec,
    readonly proxy: TcpProxy,
  ) {
    this.check = new LogCheck(id, spec.retention, workload.tracks, workload.problems, (track, seq, at) => {
      if (this.resume === undefined) workload.delivered(track, seq, at);
    });
  }

  start(): void {
    this.stint(0);
  }

  private stint(from: number): void {
    const client = new SpoolClient({ url: `ws://127.0.0.1:${this.proxy.port}/v1` });
    client.on('state', ({ previous, state }) => {
      if (client !== this.client || this.closed || previous !== 'open' || state === 'open') return;
      if (this.resume === undefined) this.begin('unplanned', performance.now());
      this.lost = true;
    });
    client.on('reconnect', () => {
      this.workload.reconnects += 1;
    });
    const sub = client.subscribe(this.spec.id, { from });
    this.client = client;
    this.sub = sub;
    void this.consume(sub);
  }

  private async consume(sub: Subscription): Promise<void> {
    try {
      for await (const item of sub as AsyncIterable<SubscriptionItem>) {
        if (sub !== this.sub || this.closed) return;
        this.check.take(item, performance.now());
        if (this.check.offset >= this.target) {
          this.finish();
          return;
        }
      }
    } catch (error) {
      if (this.closed || sub !== this.sub) return;
      // A subscription that fails for good in a healthy gateway is a finding; carry on reading.
      this.workload.problems.add(`reader ${this.id}: subscription failed at ${this.check.offset}: ${error instanceof Error ? error.message : String(error)}`);
      if (++this.failures <= 5) this.replace('unplanned', performance.now());
    }
  }

  /** Cuts this reader's TCP connection at its proxy; false when it is not live (skipped). */
  cut(holdMs: number): boolean {
    if (this.closed || this.resume !== undefined || this.sub?.live !== true) return false;
    const at = performance.now();
    if (this.proxy.cut(holdMs) === 0) return false;
    this.begin('cut', at);
    return true;
  }

  /** Closes the client and resumes from the saved offset on a new one; false when not live. */
  restart(): boolean {
    if (this.closed || this.resume !== undefined || this.sub?.live !== true) return false;
    const at = performance.now();
    this.replace('restart', at);
    return true;
  }

  /** Closes the client and subscribes from the last offset taken on a new one. */
  private replace(cause: ResumeRecord['cause'], at: number): void {
    if (this.resume === undefined) this.begin(cause, at);
    this.lost = true;
    this.sub?.close();
    this.client?.destroy();
    this.stint(this.check.offset);
  }

  private begin(cause: ResumeRecord['cause'], at: number): void {
    this.resume = { reader: this.id, cause, start: at };
    this.lost = cause !== 'cut';
    this.workload.resumeBegan(this.resume);
  }

  private end(at: number): void {
    const resume = this.resume;
    if (resume === undefined) return;
    resume.end = at;
    this.resume = undefined;
    this.lost = false;
    this.workload.resumeEnded(resume);
  }

  /** A resume ends when the client had lost its connection and the subscription is live again. */
  poll(now: number): void {
    if (this.resume !== undefined && this.lost && this.sub?.live === true) this.end(now);
  }

  /** Reads on until `target` (the final head); resolves whether it got there in `timeoutMs`. */
  stopAt(target: number, timeoutMs: number): Promise<boolean> {
    this.target = target;
    if (this.reached || this.check.offset >= target) {
      this.finish();
      return Promise.resolve(true);
    }
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.onDone = undefined;
        this.close();
        resolve(false);
      }, timeoutMs);
      this.onDone = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  private finish(): void {
    if (this.closed) return;
    this.reached = true;
    // Caught up with the final head: a resume under way has succeeded.
    if (this.resume !== undefined) this.end(performance.now());
    this.close();
    this.onDone?.();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sub?.close();
    this.client?.destroy();
  }
}
