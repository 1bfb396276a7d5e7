/**
 * The hardened edge under the issue's attacks, big (gateway/edge.test.ts and
 * chaos/fd-limit.test.ts are the small versions in npm test). A gateway in its own process
 * (gateway-child.ts, LMDB, default limits) while good producers stream and /healthz is probed:
 *
 *   flood-preauth   2 connections that never say hello and never read, each sending up to 2M
 *                   one-byte frames (every one earns a BAD_FRAME reply)
 *   flood-postauth  the same after hello, with pings (every one earns a pong)
 *   idle            20,000 WebSockets that never say hello, from 100 local addresses (past the
 *                   per-address cap from each, past maxConnections in total), held by forked
 *                   workers; a good client connects, streams and finishes meanwhile
 *   slow            2,000 HTTP upgrade requests trickled a byte a second
 *
 * Printed per phase: the gateway's peak RSS and RSS after (forced GC), good producers' ack
 * latency p50/p99 against the unloaded run, /healthz answered/failed and its slowest answer,
 * and what the attack got (frames sent before the cut, connections admitted/refused/evicted,
 * slow requests cut and when). Figures, never asserted: `npm run bench:edge -- [--transport ws|uws]
 * [--phases flood-preauth,idle] [--idle 20000] [--flood 2000000] [--slow 2000]`.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { clientFrame, flood, openUnreadSocket, trickle } from '../gateway/test-helpers/raw-socket';
import { decodeFrame, encodeFrame } from '../protocol/codec';
import { SUBPROTOCOL_MSGPACK, type Frame } from '../protocol/types';
import { EDGE_WORKER_ENV, type IdleReport } from './edge-worker';
import { ChildGateway, entryArgs, samplePeakRss } from './gateway-child';

type Phase = 'flood-preauth' | 'flood-postauth' | 'idle' | 'slow';
const PHASES: readonly Phase[] = ['flood-preauth', 'flood-postauth', 'idle', 'slow'];

export interface EdgeBenchOptions {
  readonly transport: 'ws' | 'uws';
  readonly phases: readonly Phase[];
  /** One-byte frames each flooding connection sends at most. */
  readonly floodFrames: number;
  readonly idleSockets: number;
  readonly slowRequests: number;
  /** Good producers and the chunks each streams, per measurement. */
  readonly goodSessions: number;
  readonly goodChunks: number;
  readonly log: (line: string) => void;
}

interface Latencies {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

function latencies(values: number[]): Latencies {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}

const fmt = (l: Latencies): string => `p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(0)} ms (${l.count})`;

function send(ws: WebSocket, frame: Record<string, unknown>): void {
  ws.send(encodeFrame(frame as unknown as Frame, SUBPROTOCOL_MSGPACK));
}

/** One good producer: a generation of `chunks` chunks with at most 32 unacked; resolves with each chunk's send → ack latency. */
function produce(url: string, session: string, chunks: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [SUBPROTOCOL_MSGPACK]);
    const sentAt: number[] = [];
    const out: number[] = [];
    let token = '';
    let sent = 0;
    let acked = -1;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`good producer ${session}: not finished within 120 s (acked ${acked + 1} of ${chunks})`));
    }, 120_000);
    const pump = (): void => {
      while (sent < chunks && sent - acked <= 32) {
        sentAt[sent] = performance.now();
        send(ws, { type: 'chunk', token, seq: sent, data: `good chunk ${sent} ${'x'.repeat(64)}` });
        sent++;
      }
      if (sent === chunks && acked === chunks - 1) send(ws, { type: 'finish', id: 2, token, seq: chunks });
    };
    ws.on('error', reject);
    ws.on('open', () => {
      send(ws, { type: 'hello', protocol: 1 });
      send(ws, { type: 'open', id: 1, session, generation: 'g' });
    });
    ws.on('message', (data) => {
      const frame = decodeFrame(new Uint8Array(data as Buffer), SUBPROTOCOL_MSGPACK) as Record<string, unknown>;
      if (frame['type'] === 'opened') {
        token = frame['token'] as string;
        pump();
      } else if (frame['type'] === 'ack') {
        const now = performance.now();
        const seq = frame['seq'] as number;
        for (let s = acked + 1; s <= seq; s++) out.push(now - (sentAt[s] as number));
        acked = Math.max(acked, seq);
        pump();
      } else if (frame['type'] === 'finished') {
        clearTimeout(timer);
        ws.close();
        resolve(out);
      } else if (frame['type'] === 'error') {
        clearTimeout(timer);
        ws.terminate();
        reject(new Error(`good producer ${session}: ${JSON.stringify(frame)}`));
      }
    });
  });
}

async function goodWorkload(url: string, tag: string, options: EdgeBenchOptions): Promise<Latencies> {
  const all = await Promise.all(Array.from({ length: options.goodSessions }, (_, i) => produce(url, `good-${tag}-${i}`, options.goodChunks)));
  return latencies(all.flat());
}

/** GET /healthz every 100 ms (5 s timeout each) until stopped. */
function probeHealth(port: number): { stop(): Promise<{ ok: number; failed: number; slowest: number }> } {
  let ok = 0;
  let failed = 0;
  let slowest = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const start = performance.now();
      const status = await new Promise<number>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 5_000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(0));
      });
      slowest = Math.max(slowest, performance.now() - start);
      if (status === 200) ok++;
      else failed++;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { ok, failed, slowest };
    },
  };
}

const MiB = 2 ** 20;

async function flooding(gateway: ChildGateway, baseline: Latencies, postAuth: boolean, options: EdgeBenchOptions): Promise<void> {
  const block = Buffer.concat(Array.from({ length: 4096 }, () => clientFrame(Buffer.from(postAuth ? '{"type":"ping"}' : 'x'))));
  const frameBytes = block.length / 4096;
  const peak = samplePeakRss(gateway.pid);
  const health = probeHealth(gateway.port);
  const started = performance.now();
  const attackers = await Promise.all([0, 1].map(() => openUnreadSocket({ port: gateway.port })));
  const cuts = attackers.map((a) => a.closed.then(() => performance.now() - started));
  const written = attackers.map(async (a) => {
    if (postAuth) a.socket.write(clientFrame(Buffer.from('{"type":"hello","protocol":1}')));
    const bytes = await flood(a, block, options.floodFrames * frameBytes);
    // Past its budget the attacker keeps sending a frame every 100 ms: a socket that neither
    // reads nor writes would never notice that the gateway dropped it.
    const one = block.subarray(0, frameBytes);
    const timer = setInterval(() => a.socket.write(one), 100);
    void a.closed.then(() => clearInterval(timer));
    return bytes;
  });
  const good = await goodWorkload(gateway.url, postAuth ? 'post' : 'pre', options);
  const sent = await Promise.all(written);
  const cutAfter = await Promise.race([Promise.all(cuts), new Promise<null>((resolve) => setTimeout(() => resolve(null), 60_000))]);
  const healthz = await health.stop();
  const peakRss = peak.stop();
  await gateway.gc();
  const after = gateway.memory();
  options.log(
    [
      `${postAuth ? 'flood-postauth' : 'flood-preauth'} (${options.transport}): attackers sent ${sent.map((b) => `${Math.round(b / frameBytes).toLocaleString('en')} frames`).join(' and ')}, ` +
        `cut after ${cutAfter === null ? 'more than 60 s (not cut)' : cutAfter.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(' and ')}`,
      `  gateway RSS peak ${(peakRss / MiB).toFixed(0)} MB, after ${(after.rss / MiB).toFixed(0)} MB (anon ${(after.rssAnon / MiB).toFixed(0)} MB)`,
      `  good acks ${fmt(good)}; unloaded ${fmt(baseline)}: p99 ×${(good.p99 / Math.max(0.001, baseline.p99)).toFixed(2)}`,
      `  /healthz ${healthz.ok} answered, ${healthz.failed} failed, slowest ${healthz.slowest.toFixed(0)} ms`,
    ].join('\n'),
  );
}

function forkWorker(): Promise<{ send(message: object): void; next(type: string): Promise<IdleReport>; stop(): Promise<void> }> {
  const [modulePath, ...args] = entryArgs('edge-worker');
  const child = fork(modulePath as string, args, { env: { ...process.env, [EDGE_WORKER_ENV]: '1' }, execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiters = new Map<string, (report: IdleReport) => void>();
  child.on('message', (message: IdleReport | { type: 'closed' }) => {
    waiters.get(message.type)?.(message as IdleReport);
    waiters.delete(message.type);
  });
  return Promise.resolve({
    send: (message: object) => child.send(message),
    next: (type: string) => new Promise<IdleReport>((resolve) => waiters.set(type, resolve)),
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.send({ type: 'close' });
      }),
  });
}

async function idle(gateway: ChildGateway, baseline: Latencies, options: EdgeBenchOptions): Promise<void> {
  const workerCount = Math.max(1, Math.ceil(options.idleSockets / 5_000));
  const workers = await Promise.all(Array.from({ length: workerCount }, forkWorker));
  const peak = samplePeakRss(gateway.pid);
  const health = probeHealth(gateway.port);
  const started = performance.now();
  const opened = Promise.all(
    workers.map((worker, w) => {
      const addresses = Array.from({ length: 25 }, (_, i) => `127.1.${w}.${i + 1}`);
      worker.send({ type: 'open', url: gateway.url, count: Math.ceil(options.idleSockets / workerCount), concurrency: 100, addresses });
      return worker.next('opened');
    }),
  );
  const reports = await opened;
  const openedAfter = performance.now() - started;
  // The good client connects, streams and finishes while the idle sockets are held.
  const goodStart = performance.now();
  const good = await goodWorkload(gateway.url, 'idle', options);
  const goodMs = performance.now() - goodStart;
  const now = await Promise.all(workers.map((worker) => (worker.send({ type: 'report' }), worker.next('report'))));
  const healthz = await health.stop();
  const peakRss = peak.stop();
  const sum = (pick: (r: IdleReport) => number): number => now.reduce((n, r) => n + pick(r), 0);
  const merge = (pick: (r: IdleReport) => Readonly<Record<string, number>>): string => {
    const out: Record<string, number> = {};
    for (const r of now) for (const [k, v] of Object.entries(pick(r))) out[k] = (out[k] ?? 0) + v;
    return Object.entries(out).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
  };
  options.log(
    [
      `idle (${options.transport}): ${options.idleSockets.toLocaleString('en')} attempts from ${workerCount * 25} addresses in ${(openedAfter / 1000).toFixed(1)} s: ` +
        `${sum((r) => r.opened)} became WebSockets (${sum((r) => r.open)} still open), refused {${merge((r) => r.refused)}}, failed ${sum((r) => r.failed)}, closed by the gateway {${merge((r) => r.closed)}}`,
      `  good producers connected and finished in ${(goodMs / 1000).toFixed(1)} s; acks ${fmt(good)}; unloaded p99 ${baseline.p99.toFixed(1)} ms`,
      `  gateway RSS peak ${(peakRss / MiB).toFixed(0)} MB; /healthz ${healthz.ok} answered, ${healthz.failed} failed, slowest ${healthz.slowest.toFixed(0)} ms`,
      `  (reports at open: ${reports.map((r) => r.opened).join(', ')} WebSockets per worker)`,
    ].join('\n'),
  );
  await Promise.all(workers.map((worker) => worker.stop()));
}

async function slow(gateway: ChildGateway, options: EdgeBenchOptions): Promise<void> {
  const request = ['GET /v1 HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade', `X-Padding: ${'a'.repeat(2000)}`, '', ''].join('\r\n');
  const health = probeHealth(gateway.port);
  const started = performance.now();
  const cut = await Promise.all(Array.from({ length: options.slowRequests }, () => trickle(gateway.port, request, 1_000).then((r) => ({ ...r, ms: performance.now() - started }))));
  const healthz = await health.stop();
  const times = latencies(cut.map((c) => c.ms));
  options.log(
    [
      `slow (${options.transport}): ${options.slowRequests} upgrades trickled a byte a second: all cut, the last after ${(times.max / 1000).toFixed(1)} s (p50 ${(times.p50 / 1000).toFixed(1)} s), ` +
        `${cut.filter((c) => c.answer.startsWith('HTTP/1.1 408')).length} answered 408`,
      `  /healthz ${healthz.ok} answered, ${healthz.failed} failed, slowest ${healthz.slowest.toFixed(0)} ms`,
    ].join('\n'),
  );
}

export async function runEdgeBench(options: EdgeBenchOptions): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-edge-'));
  const gateway = await ChildGateway.start({ data: dir, transport: options.transport });
  try {
    const baseline = await goodWorkload(gateway.url, 'baseline', options);
    options.log(`unloaded (${options.transport}): good acks ${fmt(baseline)}; gateway RSS ${(gateway.memory().rss / MiB).toFixed(0)} MB`);
    for (const phase of options.phases) {
      if (phase === 'flood-preauth') await flooding(gateway, baseline, false, options);
      else if (phase === 'flood-postauth') await flooding(gateway, baseline, true, options);
      else if (phase === 'idle') await idle(gateway, baseline, options);
      else await slow(gateway, options);
    }
  } finally {
    await gateway.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<void> {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    args: argv,
    options: { transport: { type: 'string' }, phases: { type: 'string' }, flood: { type: 'string' }, idle: { type: 'string' }, slow: { type: 'string' }, sessions: { type: 'string' }, chunks: { type: 'string' } },
  });
  const phases = values.phases === undefined ? PHASES : (values.phases.split(',') as Phase[]);
  for (const phase of phases) if (!PHASES.includes(phase)) throw new Error(`--phases: ${phase} is not one of ${PHASES.join(', ')}`);
  await runEdgeBench({
    transport: values.transport === 'uws' ? 'uws' : 'ws',
    phases,
    floodFrames: Number(values.flood ?? 2_000_000),
    idleSockets: Number(values.idle ?? 20_000),
    slowRequests: Number(values.slow ?? 2_000),
    goodSessions: Number(values.sessions ?? 10),
    goodChunks: Number(values.chunks ?? 1_000),
    log: (line) => process.stdout.write(`${line}\n`),
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
