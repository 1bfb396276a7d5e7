/**
 * Issue 4, "Done when": a reader that stops reading for 30 s while a producer streams 100,000
 * chunks. The gateway (its own process, the real CLI, embedded LMDB) must keep its resident
 * memory within a bound, and once the reader reads again it must receive everything retained,
 * exactly once, in order.
 *
 *   producer (SDK) ──100,000 chunks──▶ gateway process ──live pushes──▶ reader (raw ws, socket paused)
 *                                           │ VmRSS sampled every 500 ms from /proc/<pid>/status
 *
 * The reader stops at the TCP level (its socket is paused, as gateway/pressure.test.ts does):
 * the kernel buffers fill, then the gateway's send buffer toward it reaches
 * maxReaderBufferedBytes (1 MiB by default), then live pushes to it stop; when it reads again
 * it is caught up from the store.
 *
 * The bound (RSS_BOUND_BYTES): peak VmRSS during the run ≤ VmRSS just before streaming + 320 MiB.
 * Measured on 2 CPUs, 100,000 chunks of 100 bytes streamed in ~3 s, six runs on ws and uws:
 * baseline ~90 MiB (the child runs the sources through @swc/core), peak growth 141–176 MiB, of
 * which ~80 MiB is RssFile, LMDB's memory map (the pages the 100,000 events were written to,
 * the same every run), and 61–96 MiB RssAnon, V8 heap grown while processing the stream. The
 * peak comes while the producer streams; RSS then stays flat (or drops at a GC) for the rest of
 * the stop and rises less during the catch-up. 320 MiB is ~1.8× the largest growth seen.
 *
 * What the bound can and cannot catch: it fails on anything that holds memory per chunk
 * (≥ ~1.5 KiB per chunk beyond what was measured), but not on a gateway that buffered this
 * whole stream toward the reader: that is only ~15 MB of frames. Measured with
 * maxReaderBufferedBytes = 1e12 instead of 1 MiB, the peak RssAnon was ~12 MiB higher, inside the
 * run-to-run spread. The mechanism itself (live pushes stop past the bound and resume from the
 * store) is pinned by gateway/pressure.test.ts; this test holds the whole process to a bound at
 * the scale the issue names and checks the exactly-once catch-up end to end.
 *
 * The reader's silence is longer than two heartbeats of the default 15 s, and a paused socket
 * never answers a ping: with the defaults the gateway drops it after 15–30 s (measured: a reader
 * stopped for 35 s got what was already in its socket buffers, ~18,000 events, then a 1006
 * close), and this raw reader does not reconnect. The heartbeat is therefore set
 * longer than the stop (SPOOL_HEARTBEAT_MS), so what is tested is the slow-reader path and not
 * the dead-peer path, and so is SPOOL_SLOW_READER_TIMEOUT_MS (10 s by default): this reader is
 * meant to be paused and caught up, not told SLOW_CONSUMER (gateway/pressure.test.ts covers that).
 *
 * CHAOS_READER_STOP_MS shortens the stop locally (default 30000). SPOOL_TRANSPORT=uws runs the
 * gateway on uWebSockets.js. CHAOS_VERBOSE=1 prints the RSS figures.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SpoolClient } from '../client';
import { RawClient, type AnyFrame } from '../gateway/test-helpers/raw-client';
import type { ReadItem } from '../protocol/types';
import { freePort } from './fault-proxy';
import { GatewayProcess } from './gateway-process';
import { checkSessionHistory } from './history';

const STOP_MS = Number(process.env['CHAOS_READER_STOP_MS'] ?? 30_000);
const CHUNKS = 100_000;
const SAMPLE_MS = 500;
/** Peak VmRSS minus the VmRSS just before streaming; see the file comment for where it comes from. */
const RSS_BOUND_BYTES = 320 * 1024 * 1024;
const MIB = 1024 * 1024;

/** ~100-byte chunk data that names its seq, so the reader can check what it got. */
const PAD = 'x'.repeat(100);
const chunkData = (seq: number): string => `${seq}:${PAD}`.slice(0, 100);

function rssOf(pid: number): { rss: number; rssAnon: number; rssFile: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
}

/** Stops reading from the socket at the TCP level, so the gateway's send buffer toward it fills. */
function stopReading(client: RawClient): () => void {
  const socket = (client.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  socket.pause();
  return () => socket.resume();
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('a reader that stops reading while a producer streams', () => {
  it(`keeps the gateway's RSS within its bound for ${STOP_MS / 1000} s and 100,000 chunks, then delivers everything exactly once`, async () => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-slow-reader-'));
    cleanups.push(() => fs.rmSync(data, { recursive: true, force: true }));
    const gateway = new GatewayProcess({
      port: await freePort(),
      data,
      env: {
        // Room for all 100,000 chunks plus gen.start and gen.end: nothing is trimmed, so the
        // reader must get every one of them.
        SPOOL_RETENTION_EVENTS: String(CHUNKS * 2),
        SPOOL_HEARTBEAT_MS: String(Math.max(15_000, STOP_MS + 30_000)),
        SPOOL_SLOW_READER_TIMEOUT_MS: String(STOP_MS + 30_000),
      },
    });
    cleanups.push(() => gateway.kill9());
    await gateway.start();
    const pid = gateway.pid as number;

    const session = 'slow-reader';
    const reader = await RawClient.connect(gateway.url);
    cleanups.push(() => reader.close());
    reader.send({ type: 'subscribe', id: 1, session, from: 0 });
    await reader.next((f) => f.type === 'live' && f['session'] === session, 30_000);

    const producer = new SpoolClient({ url: gateway.url });
    cleanups.push(() => producer.destroy());
    const gen = producer.generation(session, { id: 'g-slow-reader' });
    await withTimeout(gen.flush(), 30_000, 'the generation opening');

    const samples: Array<{ at: number; rss: number; rssAnon: number; rssFile: number }> = [];
    const started = Date.now();
    const sample = (): void => void samples.push({ at: Date.now() - started, ...rssOf(pid) });
    sample();
    const baseline = samples[0] as (typeof samples)[number];
    const sampler = setInterval(sample, SAMPLE_MS);
    cleanups.push(() => clearInterval(sampler));

    const resume = stopReading(reader);
    const stopped = new Promise<void>((resolve) => setTimeout(resolve, STOP_MS));
    let producedAt = 0;
    const producing = (async () => {
      for (let seq = 0; seq < CHUNKS; seq++) {
        if (!gen.write(chunkData(seq), { kind: 'text' })) await gen.drained();
      }
      await gen.finish();
      producedAt = Date.now() - started;
    })();
    // The reader stays silent for the whole stop, however fast the producer is; a producer
    // slower than the stop keeps streaming after the reader resumes.
    await stopped;
    sample();
    const peakWhileStopped = Math.max(...samples.map((s) => s.rss));
    resume();
    await withTimeout(producing, 120_000, 'the producer finishing');

    const end = await reader.next((f) => f.type === 'events' && f['session'] === session && (f['events'] as AnyFrame[]).some((e) => e.type === 'gen.end'), 60_000);
    expect(end).toBeDefined();
    clearInterval(sampler);
    sample();

    const items: ReadItem[] = [];
    for (const frame of reader.frames) {
      if (frame['session'] !== session) continue;
      if (frame.type === 'events') items.push(...(frame['events'] as ReadItem[]));
      else if (frame.type === 'gap') items.push(frame as unknown as ReadItem);
    }
    const report = checkSessionHistory(items, { generations: 1, chunksPerGeneration: CHUNKS });
    expect(report.violations).toEqual([]);
    expect(report.duplicates).toBe(0);
    expect(report.gaps).toBe(0);
    expect(report.events).toBe(CHUNKS + 2);
    const corrupted = items.filter((e) => e.type === 'chunk' && e.data !== chunkData(e.seq ?? -1)).length;
    expect(corrupted).toBe(0);
    expect(reader.frames.some((f) => f.type === 'error')).toBe(false);
    // The bound was reached and enforced: the gateway stopped pushing to the reader (and caught
    // it up from the store later) rather than buffering the stream toward it.
    const metrics = await (await fetch(gateway.url.replace('ws:', 'http:').replace('/v1', '/metrics'))).text();
    expect(Number(/^spool_reader_pauses_total (\d+)/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
    expect(reader.frames.filter((f) => f.type === 'live')).toHaveLength(1);

    const peak = samples.reduce((max, s) => (s.rss > max.rss ? s : max), baseline);
    const growth = peak.rss - baseline.rss;
    const summary =
      `VmRSS baseline ${(baseline.rss / MIB).toFixed(1)} MiB (anon ${(baseline.rssAnon / MIB).toFixed(1)}, file ${(baseline.rssFile / MIB).toFixed(1)}), ` +
      `peak ${(peak.rss / MIB).toFixed(1)} MiB at ${(peak.at / 1000).toFixed(1)} s (anon ${(peak.rssAnon / MIB).toFixed(1)}, file ${(peak.rssFile / MIB).toFixed(1)}), ` +
      `growth ${(growth / MIB).toFixed(1)} MiB (bound ${RSS_BOUND_BYTES / MIB} MiB); peak while stopped ${(peakWhileStopped / MIB).toFixed(1)} MiB; ` +
      `producer done at ${(producedAt / 1000).toFixed(1)} s, stop ${STOP_MS / 1000} s, ${samples.length} samples`;
    if (process.env['CHAOS_VERBOSE']) {
      console.log(`${summary}\n${samples.map((s) => `${(s.at / 1000).toFixed(1)}s ${(s.rss / MIB).toFixed(1)}/${(s.rssAnon / MIB).toFixed(1)}/${(s.rssFile / MIB).toFixed(1)}`).join('  ')}`);
    }
    if (growth > RSS_BOUND_BYTES) throw new Error(`gateway RSS grew past its bound: ${summary}`);
  }, STOP_MS + 120_000);
});
