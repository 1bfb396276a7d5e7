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
import { SpoolClient, type SubscriptionItem } from '../client';
import { ChildGateway, metricValue } from './gateway-child';
import { payload, Problems, produceFlat, SessionFleet, withTimeout, type FleetFigures } from './workload';

/** One run of the workload through a gateway child. */
export interface ThroughputResult extends FleetFigures {
  readonly name: string;
  /** Transport asked for, and the one the child reports it served with. */
  readonly transport: string;
  readonly served: string;
  /** Mean events per store append (the child's spool_persistence_batch_size). */
  readonly storeBatch: number;
  /** CPU time the gateway process used over the run, per chunk, in microseconds. */
  readonly gatewayCpuUsPerChunk: number;
  /** CPU time this process (producers and readers) used over the run, per chunk, in µs. */
  readonly loadCpuUsPerChunk: number;
  readonly problems: readonly string[];
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
  const problems = new Problems();
  let gateway: ChildGateway | undefined;
  let fleet: SessionFleet | undefined;
  try {
    gateway = await ChildGateway.start({
      data: dir,
      transport: spec.transport,
      env: { SPOOL_RETENTION_EVENTS: String(Math.max(100_000, spec.perSession + 16)) },
    });
    const url = gateway.url;
    await withTimeout(warmUp(url, `warmup-${spec.transport}`), 60_000, 'the warm-up generation');
    const sessions = Array.from({ length: spec.sessions }, (_, i) => `pressure-${spec.transport}-${i}`);
    fleet = new SessionFleet(url, sessions, spec.perSession, problems);
    // The clock starts with every upload socket open and every reader live on its gen.start.
    await fleet.ready(60_000);

    const metrics0 = await gateway.metrics();
    const gatewayCpu0 = gateway.cpuSeconds();
    const loadCpu0 = process.cpuUsage();
    await fleet.run(produceFlat);
    const gatewayCpu = gateway.cpuSeconds() - gatewayCpu0;
    const loadCpuUsage = process.cpuUsage(loadCpu0);

    const figures = fleet.figures();
    // Store batches of the timed run only (the warm-up's are in metrics0).
    const metrics = await gateway.metrics();
    const delta = (name: string): number => metricValue(metrics, name) - metricValue(metrics0, name);
    const batchCount = delta('spool_persistence_batch_size_count');
    if (gateway.transport !== spec.transport) problems.add(`asked for transport ${spec.transport}, the gateway served ${gateway.transport}`);
    return {
      name: spec.name,
      transport: spec.transport,
      served: gateway.transport,
      ...figures,
      storeBatch: batchCount > 0 ? delta('spool_persistence_batch_size_sum') / batchCount : 0,
      gatewayCpuUsPerChunk: (gatewayCpu * 1e6) / figures.chunks,
      loadCpuUsPerChunk: (loadCpuUsage.user + loadCpuUsage.system) / figures.chunks,
      problems: problems.done(),
    };
  } finally {
    await fleet?.close();
    await gateway?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
