/**
 * The Durable Streams door through gateway SIGKILLs: the official client's IdempotentProducer
 * streams 10,000 items while the gateway process is killed twice (kill -9) and restarted on the
 * same data dir and port; an SSE reader (`@durable-streams/client` stream({live: 'sse'})) and a
 * spool SDK subscriber of the same session each see every item exactly once, in order.
 *
 * The producer retries a batch whose request failed (the gateway was gone) with the same
 * (Producer-Id, epoch, seq): its fetch is wrapped in a retry loop, the client's documented
 * `fetch` option. What makes that safe is the door's dedupe: a batch that was stored before the
 * kill is answered 204 when it comes again, from producer state the restarted gateway rebuilt
 * from the log.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DurableStream, IdempotentProducer } from '@durable-streams/client';
import { SpoolClient, type SubscriptionItem } from '../client';
import { freePort } from './fault-proxy';
import { GatewayProcess } from './gateway-process';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/**
 * What the producer's requests met: attempts that failed (the gateway was gone), and retries
 * answered as duplicates (stored before the kill; not every run has one, so not asserted).
 */
const seen = { failed: 0, duplicates: 0 };

/** fetch that retries network failures and 5xx answers (full jitter, ≤ 200 ms) until it gets an answer. */
const retryingFetch: typeof fetch = async (input, init) => {
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(input, init);
      if (attempt > 1 && response.status === 204 && response.headers.has('producer-seq')) seen.duplicates++;
      if (response.status < 500) return response;
      await response.arrayBuffer();
    } catch (error) {
      if (init?.signal?.aborted) throw error;
    }
    seen.failed++;
    await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(200, 10 * 2 ** attempt)));
  }
};

/** Lets queued I/O run (batches reach the wire) without waiting for anything in particular. */
async function yieldToIo(turns: number): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * An SSE reader that survives the gateway's death: the client reconnects an SSE response that
 * ended by itself, but a connection cut mid-body fails the response, so the reader opens a new
 * one from the offset after the last batch it took (what any application does with an offset).
 *
 * It is done when its subscriber got the batch that says the stream closed: the response's
 * `closed` promise can resolve (with `streamClosed`) before the subscriber was handed the last
 * batch (the client's reading loop and its subscriber loop are separate), so that alone would
 * drop the final items.
 */
async function sseReader(stream: DurableStream, items: Array<{ i: number }>): Promise<void> {
  let offset = '-1';
  for (;;) {
    let sawClose: () => void = () => undefined;
    const closedBatch = new Promise<void>((resolve) => {
      sawClose = resolve;
    });
    try {
      const res = await stream.stream<{ i: number }>({ offset, live: 'sse', sseResilience: { logWarnings: false } });
      res.subscribeJson((batch) => {
        items.push(...batch.items);
        offset = batch.offset;
        if (batch.streamClosed) sawClose();
      });
      await res.closed;
      if (res.streamClosed) {
        await Promise.race([closedBatch, new Promise((_, reject) => setTimeout(() => reject(new Error('the stream closed but its last batch never reached the subscriber')), 10_000).unref())]);
        return;
      }
    } catch {
      // Reopened below.
    }
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 50));
  }
}

describe('Durable Streams door, gateway kill -9', () => {
  it("an IdempotentProducer's 10,000 items written through two SIGKILLs and restarts reach an SSE reader and a spool SDK subscriber once each, in order", async () => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-ds-kill9-'));
    cleanups.push(() => fs.rmSync(data, { recursive: true, force: true }));
    const port = await freePort();
    const gateway = new GatewayProcess({ port, data });
    cleanups.push(() => gateway.kill9());
    await gateway.start();

    const url = `http://127.0.0.1:${port}/v1/stream/ds-kill9`;
    const stream = await DurableStream.create({ url, contentType: 'application/json' });
    const spool = new SpoolClient({ url: gateway.url, reconnect: { initialDelayMs: 10, maxDelayMs: 200 } });
    cleanups.push(() => spool.close());
    const sub = spool.subscribe('ds-kill9', { from: 0 });
    const spoolItems: SubscriptionItem[] = [];
    const spoolDone = (async () => {
      for await (const item of sub) {
        spoolItems.push(item);
        if (item.type === 'append' && item.kind === 'ds.close') return;
      }
    })();
    const sseItems: Array<{ i: number }> = [];
    const sseDone = sseReader(stream, sseItems);

    const total = 10_000;
    const killAt = new Set([3_000, 7_000]);
    const errors: Error[] = [];
    const producer = new IdempotentProducer(stream, 'ds-kill9-writer', { fetch: retryingFetch, lingerMs: 1, maxBatchBytes: 2048, onError: (e) => errors.push(e) });
    for (let i = 0; i < total; i++) {
      producer.append(JSON.stringify({ i }));
      if (i % 100 === 99) await yieldToIo(2);
      if (killAt.has(i)) {
        // Batches are on the wire: some stored and unanswered, some not stored yet.
        await yieldToIo(5);
        await gateway.kill9();
        await gateway.start();
      }
    }
    await producer.close();
    expect(errors).toEqual([]);
    // The kills cut requests in flight (a run where they did not would prove nothing).
    expect(seen.failed).toBeGreaterThan(0);

    const expected = Array.from({ length: total }, (_, i) => ({ i }));
    await Promise.race([Promise.all([spoolDone, sseDone]), new Promise((_, reject) => setTimeout(() => reject(new Error(`readers did not reach the close: spool ${spoolItems.length} items, SSE ${sseItems.length}`)), 60_000).unref())]);
    const messages: unknown[] = [];
    for (const item of spoolItems) {
      if (item.type === 'append' && item.kind === 'ds.json') messages.push(...(item.data as unknown[]));
    }
    expect(messages).toEqual(expected);
    const offsets = spoolItems.map((item) => (item.type === 'gap' ? item.from : item.offset));
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(sseItems).toEqual(expected);
  }, 180_000);
});
