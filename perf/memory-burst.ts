/**
 * Does memory come back after a burst? A gateway in its own process (gateway-child.ts, LMDB) is
 * sent bursts of short-lived work: per unit, a producer connection opens a generation in a
 * session of its own, streams chunks and finishes, and a reader connection subscribes from the
 * start, reads to `live` and leaves. After each burst, once every session actor was evicted
 * (sessionIdleMs), the child runs a full GC and its memory is sampled. The samples say what holds
 * what: V8's heap (heapUsed, heapTotal), memory outside it (external, arrayBuffers: Buffers,
 * native msgpack / uWebSockets.js state), the anonymous resident set (RssAnon: the heap, malloc's
 * arenas) and file-backed resident pages (RssFile: the code and LMDB's memory map, which the
 * kernel reclaims under pressure and which are not the gateway's allocations).
 *
 *   npm run bench:memory -- [--units 2000] [--rounds 3] [--concurrency 50] [--chunks 20] [--bytes 200] [--transport ws|uws]
 *
 * perf/memory-burst.test.ts runs a small burst in npm test and holds RssAnon to its documented
 * bound (README "Memory after a burst").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../protocol/codec';
import { SUBPROTOCOL_MSGPACK, type Frame } from '../protocol/types';
import { ChildGateway, metricValue } from './gateway-child';

export interface BurstOptions {
  /** Producer + reader pairs per burst. */
  readonly units: number;
  readonly rounds: number;
  /** Pairs in flight at once. */
  readonly concurrency: number;
  /** Chunks per generation, and bytes of text in each. */
  readonly chunks: number;
  readonly bytes: number;
  readonly transport: 'ws' | 'uws';
  /** Session actors are evicted this long after their last use. @default 500 */
  readonly sessionIdleMs?: number;
  readonly log?: (line: string) => void;
}

/** One sample of the child after a full GC, in MiB. */
export interface BurstSample {
  readonly label: string;
  readonly rss: number;
  readonly rssAnon: number;
  readonly rssFile: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** The peak RSS seen while the burst ran (MiB; 0 for the baseline). */
  readonly peakRss: number;
  /** RSS and RssAnon once the actors were evicted, before the forced GC (MiB): what a gateway left alone holds. */
  readonly rssBeforeGc: number;
  readonly rssAnonBeforeGc: number;
  readonly sessionsActive: number;
  readonly connectionsActive: number;
}

export interface BurstResult {
  readonly options: Omit<BurstOptions, 'log'>;
  /** After the warm-up, then after each burst. */
  readonly samples: readonly BurstSample[];
  /** RssAnon after the last burst minus after the warm-up (MiB). */
  readonly rssAnonGrowth: number;
  /** Same for the V8 heap used. */
  readonly heapGrowth: number;
}

const MiB = 2 ** 20;

function send(ws: WebSocket, frame: Record<string, unknown>): void {
  ws.send(encodeFrame(frame as unknown as Frame, SUBPROTOCOL_MSGPACK));
}

/** Opens a msgpack WebSocket; `onFrame` sees every frame; resolves when `done` returns true. */
function conversation(url: string, script: (ws: WebSocket) => void, done: (frame: Record<string, unknown>) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [SUBPROTOCOL_MSGPACK]);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('a burst conversation did not finish within 60 s'));
    }, 60_000);
    ws.on('error', reject);
    ws.on('open', () => script(ws));
    ws.on('message', (data) => {
      const frame = decodeFrame(new Uint8Array(data as Buffer), SUBPROTOCOL_MSGPACK) as Record<string, unknown>;
      if (frame['type'] === 'error') {
        clearTimeout(timer);
        ws.terminate();
        reject(new Error(`the gateway answered ${JSON.stringify(frame)}`));
        return;
      }
      if (!done(frame)) return;
      clearTimeout(timer);
      ws.once('close', () => resolve());
      ws.close(1000);
    });
  });
}

/**
 * One burst: `units` units, `concurrency` at a time. A unit: a producer connection opens a
 * generation in a session of its own, streams its chunks and finishes; then a reader connection
 * subscribes from the start and reads to `live`; both leave.
 */
async function burst(url: string, round: number, options: BurstOptions): Promise<void> {
  const text = 'x'.repeat(options.bytes);
  let next = 0;
  const work = async (): Promise<void> => {
    while (next < options.units) {
      const session = `burst-${round}-${next++}`;
      await conversation(
        url,
        (ws) => {
          send(ws, { type: 'hello', protocol: 1 });
          send(ws, { type: 'open', id: 1, session, generation: 'g' });
          ws.on('message', (data) => {
            const frame = decodeFrame(new Uint8Array(data as Buffer), SUBPROTOCOL_MSGPACK) as Record<string, unknown>;
            if (frame['type'] !== 'opened') return;
            const token = frame['token'] as string;
            for (let seq = 0; seq < options.chunks; seq++) send(ws, { type: 'chunk', token, seq, data: `${seq} ${text}` });
            send(ws, { type: 'finish', id: 2, token, seq: options.chunks });
          });
        },
        (frame) => frame['type'] === 'finished',
      );
      await conversation(
        url,
        (ws) => {
          send(ws, { type: 'hello', protocol: 1 });
          send(ws, { type: 'subscribe', id: 3, session, from: 'start' });
        },
        (frame) => frame['type'] === 'live',
      );
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, work));
}

/** Resolves once the child reports no session actor loaded (they are evicted after sessionIdleMs). */
async function evicted(gateway: ChildGateway): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const text = await gateway.metrics();
    if (metricValue(text, 'spool_sessions_active') === 0 && metricValue(text, 'spool_connections_active') === 0) return;
    if (Date.now() > deadline) throw new Error('session actors were not evicted within 120 s');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function sample(gateway: ChildGateway, label: string, peakRss: number): Promise<BurstSample> {
  const before = gateway.memory();
  const { memory } = await gateway.gc();
  const proc = gateway.memory();
  const text = await gateway.metrics();
  return {
    label,
    rss: proc.rss / MiB,
    rssAnon: proc.rssAnon / MiB,
    rssFile: proc.rssFile / MiB,
    heapUsed: memory.heapUsed / MiB,
    heapTotal: memory.heapTotal / MiB,
    external: memory.external / MiB,
    arrayBuffers: memory.arrayBuffers / MiB,
    peakRss: peakRss / MiB,
    rssBeforeGc: before.rss / MiB,
    rssAnonBeforeGc: before.rssAnon / MiB,
    sessionsActive: metricValue(text, 'spool_sessions_active'),
    connectionsActive: metricValue(text, 'spool_connections_active'),
  };
}

export async function runMemoryBurst(options: BurstOptions): Promise<BurstResult> {
  const log = options.log ?? (() => {});
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-burst-'));
  const config = path.join(dir, 'spool.json');
  const data = path.join(dir, 'data');
  fs.writeFileSync(config, JSON.stringify({ sessionIdleMs: options.sessionIdleMs ?? 500 }));
  const gateway = await ChildGateway.start({ data, transport: options.transport, args: ['--config', config] });
  const samples: BurstSample[] = [];
  try {
    // Warm-up: JIT code, pools and lazily built structures are paid for before the baseline.
    await burst(gateway.url, 0, { ...options, units: Math.max(1, Math.ceil(options.units / 10)) });
    await evicted(gateway);
    samples.push(await sample(gateway, 'after warm-up', 0));
    log(formatSample(samples[0] as BurstSample));
    for (let round = 1; round <= options.rounds; round++) {
      let peak = 0;
      const timer = setInterval(() => {
        peak = Math.max(peak, gateway.memory().rss);
      }, 100);
      try {
        await burst(gateway.url, round, options);
      } finally {
        clearInterval(timer);
      }
      await evicted(gateway);
      samples.push(await sample(gateway, `after burst ${round}`, peak));
      log(formatSample(samples[samples.length - 1] as BurstSample));
    }
  } finally {
    await gateway.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const first = samples[0] as BurstSample;
  const last = samples[samples.length - 1] as BurstSample;
  const { log: _log, ...shown } = options;
  return { options: shown, samples, rssAnonGrowth: last.rssAnon - first.rssAnon, heapGrowth: last.heapUsed - first.heapUsed };
}

export function formatSample(s: BurstSample): string {
  const f = (n: number): string => n.toFixed(1).padStart(7);
  return `${s.label.padEnd(16)} before gc: rss ${f(s.rssBeforeGc)} anon ${f(s.rssAnonBeforeGc)} | after gc: rss ${f(s.rss)}  anon ${f(s.rssAnon)}  file ${f(s.rssFile)}  heapUsed ${f(s.heapUsed)}  heapTotal ${f(s.heapTotal)}  external ${f(s.external)}  arrayBuffers ${f(s.arrayBuffers)}  peak rss ${f(s.peakRss)} MiB`;
}

async function main(argv: string[]): Promise<void> {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    args: argv,
    options: { units: { type: 'string' }, rounds: { type: 'string' }, concurrency: { type: 'string' }, chunks: { type: 'string' }, bytes: { type: 'string' }, transport: { type: 'string' } },
  });
  const result = await runMemoryBurst({
    units: Number(values.units ?? 2000),
    rounds: Number(values.rounds ?? 3),
    concurrency: Number(values.concurrency ?? 50),
    chunks: Number(values.chunks ?? 20),
    bytes: Number(values.bytes ?? 200),
    transport: values.transport === 'uws' ? 'uws' : 'ws',
    log: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`RssAnon after the last burst - after the warm-up: ${result.rssAnonGrowth.toFixed(1)} MiB; heapUsed: ${result.heapGrowth.toFixed(1)} MiB\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
