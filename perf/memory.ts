/**
 * Memory per idle session and per open connection, measured on a gateway in its own process
 * (gateway-child.ts) so the figures are the gateway's alone.
 *
 * Both use the same method: load a small warm-up population first (so lazily built structures,
 * JIT code and pools are already paid for), force a GC in the child and sample; add the measured
 * population, force a GC and sample again; divide the difference by the population. Samples are
 * VmRSS and RssAnon from /proc/<pid>/status and V8's heapUsed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SpoolClient } from '../client';
import { DEFAULT_CONFIG } from '../gateway';
import { WORKER_ENV, type OpenedReply } from './conn-worker';
import { ChildGateway, entryArgs, metricValue, type ProcMemory } from './gateway-child';

/** One memory sample of the gateway child, after a forced GC. */
export interface MemorySample extends ProcMemory {
  readonly heapUsed: number;
  readonly heapTotal: number;
  /** The child's own gauges at the time of the sample. */
  readonly sessionsActive: number;
  readonly connectionsActive: number;
  /** spool_memory_bytes_per_session × spool_sessions_active: heapUsed as /metrics reports it. */
  readonly gaugeHeap: number;
}

/** Differences between two samples divided by the population added between them, in bytes. */
export interface PerUnit {
  readonly rss: number;
  readonly rssAnon: number;
  readonly heap: number;
}

export interface IdleSessionsResult {
  readonly sessions: number;
  readonly warmup: number;
  readonly before: MemorySample;
  readonly after: MemorySample;
  /** After a second population of `sessions` more. */
  readonly afterSecond: MemorySample;
  /** What the first `sessions` added, divided by their number: the headline figure. */
  readonly perSession: PerUnit & { readonly gaugeHeap: number };
  /**
   * What the second `sessions` added, divided by their number: the cost of one more session once
   * the process has grown to hold the first population (V8's young generation and heap reserve
   * and the LMDB map's first pages are paid by then).
   */
  readonly perSessionMarginal: PerUnit;
  /** First touch → second sample: must stay under sessionIdleMs, or actors were evicted. */
  readonly elapsedMs: number;
  readonly sessionIdleMs: number;
  readonly problems: readonly string[];
}

export interface ConnectionsResult {
  /** Transport asked for, and the one the child reports it used. */
  readonly transport: string;
  readonly served: string;
  readonly connections: number;
  readonly warmup: number;
  readonly workers: number;
  readonly before: MemorySample;
  readonly after: MemorySample;
  readonly perConnection: PerUnit;
  readonly problems: readonly string[];
}

function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `spool-pressure-${label}-`));
}

async function sample(gateway: ChildGateway): Promise<MemorySample> {
  const { memory } = await gateway.gc();
  const proc = gateway.memory();
  const text = await gateway.metrics();
  const sessionsActive = metricValue(text, 'spool_sessions_active');
  return {
    ...proc,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    sessionsActive,
    connectionsActive: metricValue(text, 'spool_connections_active'),
    gaugeHeap: metricValue(text, 'spool_memory_bytes_per_session') * sessionsActive,
  };
}

function perUnit(before: MemorySample, after: MemorySample, units: number): PerUnit {
  return {
    rss: (after.rss - before.rss) / units,
    rssAnon: (after.rssAnon - before.rssAnon) / units,
    heap: (after.heapUsed - before.heapUsed) / units,
  };
}

/** Runs `work(i)` for i in [from, to) with `lanes` at a time. */
async function inLanes(from: number, to: number, lanes: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = from;
  const lane = async (): Promise<void> => {
    while (next < to) await work(next++);
  };
  await Promise.all(Array.from({ length: lanes }, lane));
}

/**
 * `sessions` sessions touched once each (one append through the SDK, then nothing: the actor is
 * loaded with its hot buffer, no reader, no generation), measured before the gateway's
 * sessionIdleMs (60 s) evicts the idle actors, i.e. at their most expensive; then as many again,
 * for the marginal figure.
 *
 * The child runs without the per-identity quota on critical events: every touch is one (a user
 * append), all from one connection, and the default 6,000 a minute would answer most of them
 * QUOTA_EXCEEDED and have the SDK retry for tens of seconds: the figure would include the
 * retries' garbage, and the run would end close to sessionIdleMs.
 */
export async function measureIdleSessions(options: { readonly sessions: number; readonly warmup?: number; readonly log?: (line: string) => void }): Promise<IdleSessionsResult> {
  const warmup = options.warmup ?? 100;
  const total = warmup + 2 * options.sessions;
  const problems: string[] = [];
  const dir = tempDir('idle');
  let gateway: ChildGateway | undefined;
  let client: SpoolClient | undefined;
  try {
    gateway = await ChildGateway.start({ data: dir, env: { SPOOL_QUOTA_CRITICAL_EVENTS_PER_MINUTE: '0' } });
    client = new SpoolClient({ url: gateway.url });
    const c = client;
    const touch = async (i: number): Promise<void> => {
      try {
        await c.append(`idle-${i}`, { key: 'hello', kind: 'user', data: 'a user message, then nothing more' });
      } catch (error) {
        if (problems.length < 10) problems.push(`idle-${i}: append failed: ${String(error)}`);
      }
    };
    const started = performance.now();
    await inLanes(0, warmup, 64, touch);
    const before = await sample(gateway);
    options.log?.(`idle sessions: ${warmup} warm-up sessions loaded; touching ${options.sessions}, then as many again`);
    await inLanes(warmup, warmup + options.sessions, 256, touch);
    const after = await sample(gateway);
    await inLanes(warmup + options.sessions, total, 256, touch);
    const afterSecond = await sample(gateway);
    const elapsedMs = performance.now() - started;
    const sessionIdleMs = DEFAULT_CONFIG.sessionIdleMs;
    if (afterSecond.sessionsActive !== total) problems.push(`spool_sessions_active is ${afterSecond.sessionsActive}, expected ${total} loaded actors`);
    if (elapsedMs >= sessionIdleMs) problems.push(`took ${Math.round(elapsedMs)} ms, past sessionIdleMs (${sessionIdleMs} ms): idle actors may have been evicted`);
    return {
      sessions: options.sessions,
      warmup,
      before,
      after,
      afterSecond,
      perSession: { ...perUnit(before, after, options.sessions), gaugeHeap: (after.gaugeHeap - before.gaugeHeap) / options.sessions },
      perSessionMarginal: perUnit(after, afterSecond, options.sessions),
      elapsedMs,
      sessionIdleMs,
      problems,
    };
  } finally {
    client?.destroy();
    await gateway?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The soft limit on open files of this process (children inherit it). */
export function openFileLimit(): number {
  try {
    const limits = fs.readFileSync('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (match?.[1] === 'unlimited') return Number.POSITIVE_INFINITY;
    if (match?.[1] !== undefined) return Number(match[1]);
  } catch {
    // not Linux: assume the common default
  }
  return 1024;
}

/** A forked conn-worker and its one pending request. */
class ConnWorker {
  private pending: ((message: { type: string }) => void) | undefined;
  private readonly exited: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.on('message', (message: { type: string }) => {
      const pending = this.pending;
      this.pending = undefined;
      pending?.(message);
    });
  }

  static spawn(): ConnWorker {
    const [modulePath, ...args] = entryArgs('conn-worker');
    return new ConnWorker(fork(modulePath as string, args, { env: { ...process.env, [WORKER_ENV]: '1' }, execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
  }

  private request<T extends { type: string }>(message: object, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection worker did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.pending = (reply) => {
        clearTimeout(timer);
        resolve(reply as T);
      };
      this.child.send(message);
    });
  }

  open(url: string, count: number, concurrency: number): Promise<OpenedReply> {
    return this.request<OpenedReply>({ type: 'open', url, count, concurrency }, 180_000);
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      await this.request({ type: 'close' }, 30_000).catch(() => this.child.kill('SIGKILL'));
    }
    await this.exited;
  }
}

/**
 * `connections` WebSocket connections that said hello (no subscription, no generation), held by
 * forked conn-workers, against a fresh gateway child on `transport`.
 */
export async function measureConnections(options: {
  readonly transport: 'ws' | 'uws';
  readonly connections: number;
  readonly warmup?: number;
  readonly log?: (line: string) => void;
}): Promise<ConnectionsResult> {
  const warmup = options.warmup ?? 100;
  const problems: string[] = [];
  // Each worker holds its share of the sockets; the gateway child holds all of them (plus the
  // LMDB files and its listeners), so both must fit under the open-files limit.
  const limit = openFileLimit();
  const perWorker = Math.max(100, Math.min(5000, limit - 256));
  const workers = Math.max(1, Math.ceil((warmup + options.connections) / perWorker));
  if (warmup + options.connections + 256 > limit) {
    throw new Error(`open-files limit ${limit} (ulimit -n) is too low for a gateway holding ${warmup + options.connections} sockets; raise it or pass fewer connections`);
  }
  const dir = tempDir(`conn-${options.transport}`);
  const pool: ConnWorker[] = [];
  let gateway: ChildGateway | undefined;
  try {
    // Every socket comes from 127.0.0.1, and there are more of them than the edge lets one
    // address or one gateway hold by default (maxConnectionsPerAddress, maxConnections).
    const env = { SPOOL_MAX_CONNECTIONS_PER_ADDRESS: '0', SPOOL_MAX_CONNECTIONS: String(Math.max(10_000, warmup + options.connections + 100)) };
    gateway = await ChildGateway.start({ data: dir, transport: options.transport, env });
    for (let i = 0; i < workers; i++) pool.push(ConnWorker.spawn());
    const url = gateway.url;
    const account = (reply: OpenedReply): void => {
      if (reply.failed > 0) problems.push(`${reply.failed} connection(s) failed: ${reply.firstError ?? '?'}`);
    };
    account(await (pool[0] as ConnWorker).open(url, warmup, 32));
    const before = await sample(gateway);
    options.log?.(`connections (${options.transport}): ${warmup} warm-up connections open; opening ${options.connections} across ${workers} worker(s)`);
    const shares = pool.map((_, i) => Math.floor(options.connections / workers) + (i < options.connections % workers ? 1 : 0));
    const replies = await Promise.all(pool.map((worker, i) => worker.open(url, shares[i] as number, 64)));
    replies.forEach(account);
    const after = await sample(gateway);
    if (after.connectionsActive !== warmup + options.connections) {
      problems.push(`spool_connections_active is ${after.connectionsActive}, expected ${warmup + options.connections}`);
    }
    return {
      transport: options.transport,
      served: gateway.transport,
      connections: options.connections,
      warmup,
      workers,
      before,
      after,
      perConnection: perUnit(before, after, options.connections),
      problems,
    };
  } finally {
    // Gateway first: the server side closes every socket, so the workers' sockets are already
    // gone when they are told to close.
    await gateway?.stop();
    await Promise.all(pool.map((worker) => worker.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
