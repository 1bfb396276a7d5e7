/**
 * Micro-benchmark of the write engine's hot path (store/engine.ts `applyAppend`), the code every
 * embedded store runs per chunk: fencing, dedupe, offset assignment, event construction,
 * retention. Guards against a regression of the kind issue 10 found (an object spread per chunk
 * that fell off V8's fast path, ≈ 2 µs per event): prints ns per chunk for the memory store (the
 * engine alone) and for LMDB (the engine inside a transaction), with the retention index busy.
 *
 *   npm run bench:engine [-- --chunks 100000 --batch 64 --json]
 *
 * Figures only, no thresholds: a benchmark reports, a reader judges (machines here are shared).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { openLmdbStore } from '../store/lmdb';
import { MemoryStore } from '../store/memory';
import type { SessionStore, WriteItem } from '../store/types';
import { runMain } from './report';

export interface EngineFigures {
  readonly store: string;
  readonly chunks: number;
  readonly batch: number;
  /** Wall time per chunk (for LMDB this includes waiting for commits). */
  readonly nsPerChunk: number;
  /** This process's CPU time (user + system) per chunk: the engine's own cost. */
  readonly cpuNsPerChunk: number;
  readonly chunksPerSecond: number;
}

const TEXT = 'x'.repeat(64);

/** Writes `chunks` chunks into one session of `store` in batches of `batch`, after a warm-up, and times it. */
export async function benchEngineStore(name: string, store: SessionStore, chunks: number, batch: number): Promise<EngineFigures> {
  const opened = await store.openGeneration('s', { generationId: 'g', takeover: false, tag: 'bench-engine-tag-00000', ts: Date.now() });
  if (opened.status !== 'opened') throw new Error(`${name}: openGeneration answered ${opened.status}`);
  const items: WriteItem[] = new Array(batch);
  // Warm-up: the first batches run in V8's interpreter; measure the optimized code.
  let seq = 0;
  const write = async (count: number): Promise<void> => {
    for (let done = 0; done < count; done += batch) {
      const n = Math.min(batch, count - done);
      items.length = n;
      const ts = Date.now();
      for (let i = 0; i < n; i++) {
        items[i] = { op: 'chunk', generationId: 'g', epoch: opened.epoch, seq: seq++, kind: 'text', priority: 2, ts, data: TEXT, size: 66 };
      }
      const result = await store.append('s', items);
      if (result.results.length !== n) throw new Error(`${name}: ${result.results.length} results for ${n} items`);
    }
  };
  await write(Math.min(chunks, 10_000));
  const started = performance.now();
  const cpu = process.cpuUsage();
  await write(chunks);
  const used = process.cpuUsage(cpu);
  const elapsed = performance.now() - started;
  return {
    store: name,
    chunks,
    batch,
    nsPerChunk: (elapsed * 1e6) / chunks,
    cpuNsPerChunk: ((used.user + used.system) * 1000) / chunks,
    chunksPerSecond: (chunks * 1000) / elapsed,
  };
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: { chunks: { type: 'string', default: '100000' }, batch: { type: 'string', default: '64' }, json: { type: 'boolean', default: false } },
  });
  const chunks = Number(values.chunks);
  const batch = Number(values.batch);
  // Retention small enough that trimming runs on every batch, as in a full session.
  const retention = { maxEvents: 20_000, maxBytes: 64 * 1024 * 1024, criticalFactor: 2 };
  const figures: EngineFigures[] = [];
  figures.push(await benchEngineStore('memory', new MemoryStore({ retention }), chunks, batch));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-bench-engine-'));
  const lmdb = openLmdbStore({ path: dir, retention });
  try {
    figures.push(await benchEngineStore('lmdb', lmdb, chunks, batch));
  } finally {
    await lmdb.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    return 0;
  }
  process.stdout.write(`engine apply, ${chunks} chunks of 64 B in batches of ${batch}, retention ${retention.maxEvents} events\n`);
  for (const f of figures) {
    process.stdout.write(
      `  ${f.store.padEnd(7)} ${f.cpuNsPerChunk.toFixed(0).padStart(7)} CPU ns/chunk  ${f.nsPerChunk.toFixed(0).padStart(7)} wall ns/chunk  ${Math.round(f.chunksPerSecond).toLocaleString('en-US').padStart(11)} chunks/s\n`,
    );
  }
  return 0;
}

if (require.main === module) runMain('bench:engine', main);
