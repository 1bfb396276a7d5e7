/**
 * The four sections of bench:resume (bench-resume.ts), each against the one gateway child on
 * LMDB the run holds (`Rig`; a section may kill or restart it, the next gets the new one):
 *
 *   runDrop     N readers through a TCP proxy that resets them all and refuses for 200 ms, R
 *               rounds, producers writing; the previous reconnect schedule simulated beside it
 *   runOutage   one reader through a proxy that refuses for 10 s: attempts counted at the proxy
 *   runStorm    1,000 readers, the gateway SIGKILLed and restarted on its port and data
 *   runBacklog  subscribe → live 1,000 events behind, from the hot buffer and from LMDB
 *
 * Times are performance.now() in this process: readers' moments come from their tapped
 * WebSockets (resume-reader.ts, ws-tap.ts), the network's return from the proxy. A reader's
 * failed check is a problem in the report; a wait that runs out is an error naming what it
 * waited for.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { SpoolClient, type Generation, type Subscription } from '../client';
import { ChildGateway } from './gateway-child';
import { LatencyRecorder, type LatencySummary } from './latency';
import { CURRENT_SCHEDULE, PREVIOUS_SCHEDULE, seededRandom, simulateOutage, type Schedule } from './reconnect-sim';
import { int } from './report';
import { TrackedReader } from './resume-reader';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';
import { payload, sleep, withTimeout, type Problems } from './workload';
import { tappedWebSocket } from './ws-tap';

// ------------------------------------------------------------------ sizes and results

export interface ResumeSizes {
  /** 1: readers (one session each) and rounds of drops. */
  readonly readers: number;
  readonly rounds: number;
  /** 1: how long the proxy refuses after each cut. */
  readonly dropMs: number;
  /** 1: each producer writes one chunk per tick. */
  readonly tickMs: number;
  /** 2: how long the proxy refuses. */
  readonly outageMs: number;
  /** 3: readers, and readers per session. */
  readonly stormClients: number;
  readonly stormPerSession: number;
  /** 3: from the gateway's death to its restart. */
  readonly stormDeadMs: number;
  /** 4: events behind, timed rounds per variant (after `backlogWarmup` untimed ones). */
  readonly backlog: number;
  readonly backlogRounds: number;
  readonly backlogWarmup: number;
}

/** Draws per measured resume when simulating a schedule through the same outage. */
export const DRAWS_PER_RESUME = 20;
/** Clients simulated through the long outage, per schedule. */
const OUTAGE_DRAWS = 2000;
/** Chunks per generation in the outage's and the storm's sessions. */
const SMALL_CHUNKS = 10;

export interface DropResult {
  readonly readers: number;
  readonly rounds: number;
  readonly dropMs: number;
  readonly chunksPerSecondPerSession: number;
  /** Network back → live again, measured (ms). */
  readonly measured: LatencySummary;
  /** The same through the simulation (reconnect-sim.ts), today's schedule and the previous one. */
  readonly simulatedCurrent: LatencySummary;
  readonly simulatedPrevious: LatencySummary;
  /** Medians the simulation took from the measured run: cut → the reader saw its socket close; a refused attempt's duration. */
  readonly detectMs: number;
  readonly refusedMs: number;
  /** Accepted attempt → live again, measured: what the simulation adds to each simulated attempt. */
  readonly resumeCost: LatencySummary;
  /** This process's event-loop delay over the rounds (ms): how late its clients' timers could fire. */
  readonly loopDelay: LoopDelay;
}

/** Event-loop delay of the load generator (this process) over a section, in ms. */
export interface LoopDelay {
  readonly p99: number;
  readonly max: number;
}

export interface OutageResult {
  readonly outageMs: number;
  /** Attempts the proxy refused during the outage, and accepted after it. */
  readonly refused: number;
  readonly accepted: number;
  /** Network back → live again (ms). */
  readonly returnMs: number;
  /** Mean attempts refused over the same outage, simulated. */
  readonly simulatedCurrent: number;
  readonly simulatedPrevious: number;
}

export interface StormResult {
  readonly clients: number;
  readonly sessions: number;
  readonly deadMs: number;
  /** Restart (the new child spawned) → it printed that it listens (ms). */
  readonly listenMs: number;
  /** Per 100 ms bucket from the restart: the attempts that got through (one per reader), and all attempts. */
  readonly returns: readonly number[];
  readonly attempts: readonly number[];
  /** Attempts between the kill and the restart (all refused). */
  readonly attemptsBeforeRestart: number;
  /** The busiest bucket of `returns`: its index and its share of all returns. */
  readonly peakBucket: number;
  readonly peakShare: number;
  /** Restart → live again (ms). */
  readonly toLive: LatencySummary;
  /** This process's event-loop delay from the kill to every reader live again (ms). */
  readonly loopDelay: LoopDelay;
}

export interface BacklogResult {
  readonly behind: number;
  readonly rounds: number;
  /** Subscribe → live (ms): catch-up from the hot buffer, then from the store after a restart. */
  readonly hot: LatencySummary;
  readonly store: LatencySummary;
}

// ------------------------------------------------------------------ helpers

/** The gateway child and what a restart keeps: its port and its data. */
export interface Rig {
  gateway: ChildGateway;
  readonly data: string;
}

const median = (values: readonly number[]): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1] as number;
};

const proxyUrl = (proxy: TcpProxy): string => `ws://127.0.0.1:${proxy.port}/v1`;

/** Resolves when every reader satisfies `ready`, or rejects naming `what` after `ms`. */
function allReaders(readers: readonly TrackedReader[], ready: (reader: TrackedReader, i: number) => boolean, ms: number, what: string): Promise<void> {
  return withTimeout(Promise.all(readers.map((reader, i) => reader.until(() => ready(reader, i)))), ms, what).then(() => undefined);
}

/** A generation id per session and section. */
const generationId = (label: string, session: string): string => `${label}-${session}`;

/** Writes `chunks` chunks into one new generation per session as fast as credit allows, finishes them. */
async function writeGenerations(url: string, sessions: readonly string[], label: string, chunks: number): Promise<void> {
  const client = new SpoolClient({ url });
  try {
    await Promise.all(
      sessions.map(async (session) => {
        const gen = client.generation(session, { id: generationId(label, session) });
        for (let seq = 0; seq < chunks; seq++) if (!gen.write(payload(seq), { kind: 'text' })) await gen.drained();
        await gen.finish();
      }),
    );
  } finally {
    // Everything written is finished by now; on a failure, a graceful close would wait for a
    // gateway that may be gone.
    client.destroy();
  }
}

/** One generation per session, one chunk into each every tick until `finish()`. */
class PacedProducer {
  private readonly client: SpoolClient;
  private readonly gens: Generation[];
  private timer: ReturnType<typeof setInterval> | undefined;
  /** Chunks written into each generation so far. */
  written = 0;

  constructor(url: string, sessions: readonly string[], label: string) {
    this.client = new SpoolClient({ url });
    this.gens = sessions.map((session) => this.client.generation(session, { id: generationId(label, session) }));
  }

  /** Every generation open. */
  async open(timeoutMs: number): Promise<void> {
    await withTimeout(Promise.all(this.gens.map((gen) => gen.flush())), timeoutMs, 'opening the generations');
  }

  start(tickMs: number): void {
    this.timer ??= setInterval(() => {
      for (const gen of this.gens) gen.write(payload(this.written), { kind: 'text' });
      this.written++;
    }, tickMs);
  }

  async finish(timeoutMs: number): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    await withTimeout(Promise.all(this.gens.map((gen) => gen.finish())), timeoutMs, 'finishing the generations');
  }

  /** Stops at once (after `finish()` nothing is pending; after a failure nothing should wait). */
  destroy(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.client.destroy();
  }
}

/**
 * Watches this process's event loop: every client of a section runs on it, so a stall delays
 * their reconnect timers together (and bunches their attempts) whatever the schedule says.
 */
function watchEventLoop(): { stop(): LoopDelay } {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  return {
    stop() {
      histogram.disable();
      return { p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 };
    },
  };
}

/** Records `ms` unless it is negative (a measurement that ran backwards is a bug, not a figure). */
function record(into: LatencyRecorder, ms: number, what: string, problems: Problems): void {
  if (!(ms >= 0)) problems.add(`${what}: measured ${ms} ms`);
  else into.record(ms);
}

// ------------------------------------------------------------------ 1. short drop

export async function runDrop(rig: Rig, sizes: ResumeSizes, problems: Problems, say: (line: string) => void): Promise<DropResult> {
  const label = 'drop';
  const sessions = Array.from({ length: sizes.readers }, (_, i) => `drop-${i}`);
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: rig.gateway.port });
  const producer = new PacedProducer(rig.gateway.url, sessions, label);
  const readers: TrackedReader[] = [];
  const measured = new LatencyRecorder();
  const cost = new LatencyRecorder();
  const detects: number[] = [];
  const samples: Array<{ readonly detect: number; readonly cost: number }> = [];
  let loopDelay: LoopDelay = { p99: Number.NaN, max: Number.NaN };
  try {
    await producer.open(60_000);
    for (const session of sessions) readers.push(new TrackedReader(proxyUrl(proxy), session, problems));
    await allReaders(readers, (r) => r.live, 60_000, 'the readers going live');
    producer.start(sizes.tickMs);
    const loop = watchEventLoop();
    for (let round = 1; round <= sizes.rounds; round++) {
      // Following: live, and a chunk received live since.
      await allReaders(readers, (r) => r.live && r.itemsSinceLive > 0, 30_000, `round ${round}: the readers following`);
      const lives = readers.map((r) => r.lives);
      const cutAt = performance.now();
      const cut = proxy.cut(sizes.dropMs, 'reset');
      if (cut !== readers.length) problems.add(`round ${round}: the proxy cut ${cut} connections, not ${readers.length}`);
      await allReaders(readers, (r, i) => r.lives > (lives[i] as number), 30_000, `round ${round}: the readers live again`);
      for (const r of readers) {
        const detect = r.downAt - cutAt;
        const resume = r.liveAt - r.returnAttemptAt;
        record(measured, r.liveAt - proxy.backAt, `round ${round} ${r.session}: network back → live`, problems);
        record(cost, resume, `round ${round} ${r.session}: accepted attempt → live`, problems);
        detects.push(detect);
        samples.push({ detect, cost: resume });
      }
      say(`drop round ${round}/${sizes.rounds}: ${readers.length} readers live again`);
    }
    loopDelay = loop.stop();
    await producer.finish(60_000);
    await allReaders(readers, (r) => r.ended(generationId(label, r.session)), 60_000, 'the readers reaching gen.end');
    for (const r of readers) r.verify([{ id: generationId(label, r.session), chunks: producer.written }]);
  } finally {
    await Promise.all(readers.map((r) => r.close()));
    producer.destroy();
    await proxy.close();
  }

  // The same outage through each schedule: from the reader seeing its drop to the network's
  // return, attempts failing as fast as the refused ones did, then that reader's measured
  // accepted attempt → live.
  const refusedMs = median(readers.flatMap((r) => r.refusedMs));
  const simulate = (schedule: Schedule, seed: number): LatencySummary => {
    const random = seededRandom(seed);
    const out = new LatencyRecorder();
    for (const sample of samples) {
      const outage = { downMs: Math.max(0, sizes.dropMs - sample.detect), refusedMs: Number.isFinite(refusedMs) ? refusedMs : 0 };
      for (let draw = 0; draw < DRAWS_PER_RESUME; draw++) out.record(simulateOutage(schedule, outage, random).acceptedAfterMs + sample.cost);
    }
    return out.summary();
  };
  return {
    readers: sizes.readers,
    rounds: sizes.rounds,
    dropMs: sizes.dropMs,
    chunksPerSecondPerSession: 1000 / sizes.tickMs,
    measured: measured.summary(),
    simulatedCurrent: simulate(CURRENT_SCHEDULE, 1),
    simulatedPrevious: simulate(PREVIOUS_SCHEDULE, 1),
    detectMs: median(detects),
    refusedMs,
    resumeCost: cost.summary(),
    loopDelay,
  };
}

// ------------------------------------------------------------------ 2. long outage

export async function runOutage(rig: Rig, sizes: ResumeSizes, problems: Problems): Promise<OutageResult> {
  const label = 'outage';
  const session = 'outage-0';
  await writeGenerations(rig.gateway.url, [session], label, SMALL_CHUNKS);
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: rig.gateway.port });
  const reader = new TrackedReader(proxyUrl(proxy), session, problems);
  try {
    await allReaders([reader], (r) => r.live && r.ended(generationId(label, session)), 60_000, 'the reader going live');
    const lives = reader.lives;
    const refused0 = proxy.refused;
    const passed0 = proxy.passed;
    const cutAt = performance.now();
    proxy.cut(sizes.outageMs, 'reset');
    await allReaders([reader], (r) => r.lives > lives, sizes.outageMs + 30_000, 'the reader live again after the outage');
    const refused = proxy.refused - refused0;
    const accepted = proxy.passed - passed0;
    if (accepted !== 1) problems.add(`outage: the proxy let ${accepted} connections through after the outage, not 1`);
    const returnMs = reader.liveAt - proxy.backAt;
    if (!(returnMs >= 0)) problems.add(`outage: network back → live measured ${returnMs} ms`);
    reader.verify([{ id: generationId(label, session), chunks: SMALL_CHUNKS }]);

    const outage = { downMs: sizes.outageMs - (reader.downAt - cutAt), refusedMs: median(reader.refusedMs) };
    const meanRefused = (schedule: Schedule): number => {
      const random = seededRandom(2);
      let total = 0;
      for (let i = 0; i < OUTAGE_DRAWS; i++) total += simulateOutage(schedule, outage, random).refused;
      return total / OUTAGE_DRAWS;
    };
    return {
      outageMs: sizes.outageMs,
      refused,
      accepted,
      returnMs,
      simulatedCurrent: meanRefused(CURRENT_SCHEDULE),
      simulatedPrevious: meanRefused(PREVIOUS_SCHEDULE),
    };
  } finally {
    await reader.close();
    await proxy.close();
  }
}

// ------------------------------------------------------------------ 3. storm

export const BUCKET_MS = 100;

/** Counts of `times` (ms from the restart, ≥ 0) per 100 ms bucket, through the last non-empty one. */
function buckets(times: readonly number[]): number[] {
  const counts: number[] = [];
  for (const t of times) {
    const i = Math.floor(t / BUCKET_MS);
    while (counts.length <= i) counts.push(0);
    counts[i] = (counts[i] as number) + 1;
  }
  return counts;
}

export async function runStorm(rig: Rig, sizes: ResumeSizes, problems: Problems, say: (line: string) => void): Promise<StormResult> {
  const sessionCount = Math.ceil(sizes.stormClients / sizes.stormPerSession);
  const sessions = Array.from({ length: sessionCount }, (_, i) => `storm-${i}`);
  const port = rig.gateway.port;
  await writeGenerations(rig.gateway.url, sessions, 'storm-a', SMALL_CHUNKS);
  const readers: TrackedReader[] = [];
  try {
    for (let i = 0; i < sizes.stormClients; i++) readers.push(new TrackedReader(rig.gateway.url, sessions[i % sessionCount] as string, problems));
    await allReaders(readers, (r) => r.live && r.ended(generationId('storm-a', r.session)), 120_000, 'the storm readers going live');
    say(`storm: ${readers.length} readers live; SIGKILL the gateway`);
    const lives = readers.map((r) => r.lives);
    const loop = watchEventLoop();
    const killAt = performance.now();
    await rig.gateway.kill();
    await sleep(Math.max(0, sizes.stormDeadMs - (performance.now() - killAt)));
    const restartAt = performance.now();
    rig.gateway = await ChildGateway.start({ data: rig.data, port });
    const listenMs = performance.now() - restartAt;
    say(`storm: gateway listening again after ${Math.round(listenMs)} ms`);
    await allReaders(readers, (r, i) => r.live && r.lives > (lives[i] as number), 120_000, 'the storm readers live again');
    const loopDelay = loop.stop();
    // Nothing lost across the crash: a new generation reaches every reader, right after the first.
    await writeGenerations(rig.gateway.url, sessions, 'storm-b', SMALL_CHUNKS);
    await allReaders(readers, (r) => r.ended(generationId('storm-b', r.session)), 60_000, 'the storm readers reaching the second gen.end');
    for (const r of readers) r.verify([{ id: generationId('storm-a', r.session), chunks: SMALL_CHUNKS }, { id: generationId('storm-b', r.session), chunks: SMALL_CHUNKS }]);

    const toLive = new LatencyRecorder();
    const returned: number[] = [];
    const attempted: number[] = [];
    let attemptsBeforeRestart = 0;
    for (const r of readers) {
      record(toLive, r.liveAt - restartAt, `storm ${r.session}: restart → live`, problems);
      const back = r.returnAttemptAt - restartAt;
      if (back >= 0) returned.push(back);
      else problems.add(`storm ${r.session}: its accepted attempt started ${back} ms from the restart`);
      for (const at of r.attempts) {
        if (at < killAt) continue;
        if (at < restartAt) attemptsBeforeRestart++;
        else attempted.push(at - restartAt);
      }
    }
    const returns = buckets(returned);
    const peak = returns.length === 0 ? 0 : Math.max(...returns);
    return {
      clients: sizes.stormClients,
      sessions: sessionCount,
      deadMs: sizes.stormDeadMs,
      listenMs,
      returns,
      attempts: buckets(attempted),
      attemptsBeforeRestart,
      peakBucket: returns.indexOf(peak),
      peakShare: returned.length === 0 ? 0 : peak / returned.length,
      toLive: toLive.summary(),
      loopDelay,
    };
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
}

// ------------------------------------------------------------------ 4. backlog

/**
 * One client, its connection open; for each session in turn: subscribe `behind` events before
 * the head, time subscribe → live, then read those events and check them. The first `warmup`
 * sessions are not timed.
 */
async function timeBacklog(url: string, sessions: readonly string[], warmup: number, behind: number, problems: Problems): Promise<LatencySummary> {
  const recorder = new LatencyRecorder();
  let current: Subscription | undefined;
  let liveAt = Number.NaN;
  let onLive: (() => void) | undefined;
  const client = new SpoolClient({
    url,
    WebSocket: tappedWebSocket({
      afterMessage: (at) => {
        if (current?.live === true && Number.isNaN(liveAt)) {
          liveAt = at;
          onLive?.();
        }
      },
    }),
  });
  // A generation of `behind` chunks is offsets 1 (gen.start) .. behind + 2 (gen.end).
  const from = 2;
  try {
    for (const [i, session] of sessions.entries()) {
      liveAt = Number.NaN;
      const live = new Promise<void>((resolve) => (onLive = resolve));
      const subscribedAt = performance.now();
      const sub = client.subscribe(session, { from });
      current = sub;
      await withTimeout(live, 30_000, `${session}: the backlog subscription going live`);
      if (i >= warmup) record(recorder, liveAt - subscribedAt, `backlog ${session}: subscribe → live`, problems);
      if (sub.buffered !== behind) problems.add(`backlog ${session}: ${sub.buffered} events buffered at live, not ${behind}`);
      for (let offset = from + 1; offset <= from + behind; offset++) {
        const next = await withTimeout(sub.next(), 30_000, `${session}: reading the backlog`);
        const item = next.done === true ? undefined : next.value;
        if (item === undefined || item.type === 'gap' || item.offset !== offset) {
          problems.add(`backlog ${session}: at offset ${offset} got ${item === undefined ? 'the end' : item.type === 'gap' ? 'a gap' : `offset ${item.offset}`}`);
          break;
        }
        if (offset === from + behind && item.type !== 'gen.end') problems.add(`backlog ${session}: ${item.type} at the head, not gen.end`);
      }
      sub.close();
      current = undefined;
    }
  } finally {
    await client.close();
  }
  return recorder.summary();
}

export async function runBacklog(rig: Rig, sizes: ResumeSizes, problems: Problems, say: (line: string) => void): Promise<BacklogResult> {
  const perVariant = sizes.backlogWarmup + sizes.backlogRounds;
  const hot = Array.from({ length: perVariant }, (_, i) => `backlog-hot-${i}`);
  const cold = Array.from({ length: perVariant }, (_, i) => `backlog-store-${i}`);
  say(`backlog: writing ${int(2 * perVariant)} sessions of ${int(sizes.backlog)} chunks`);
  await writeGenerations(rig.gateway.url, [...hot, ...cold], 'backlog', sizes.backlog);
  const hotFigures = await timeBacklog(rig.gateway.url, hot, sizes.backlogWarmup, sizes.backlog, problems);
  // A graceful restart unloads every session: each subscribe below loads its session and reads
  // the backlog from LMDB.
  say('backlog: restarting the gateway (SIGTERM) to read from the store');
  await rig.gateway.stop();
  rig.gateway = await ChildGateway.start({ data: rig.data });
  const storeFigures = await timeBacklog(rig.gateway.url, cold, sizes.backlogWarmup, sizes.backlog, problems);
  return { behind: sizes.backlog, rounds: sizes.backlogRounds, hot: hotFigures, store: storeFigures };
}
