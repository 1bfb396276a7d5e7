/**
 * The SDK under pressure against a real gateway (memory store): coalescing of text deltas cuts
 * the number of stored chunks while readers reassemble the identical text in the same order,
 * and an AbortSignal ends a streaming generation with `gen.end aborted` in the log.
 * Synchronised on events (acks, subscription items, promises) with timeouts, never on sleeps.
 */
import pino from 'pino';
import { SpoolClient, type SpoolError } from '../client';
import { startGateway, type Gateway } from '../gateway';
import type { SessionEvent } from '../protocol/types';
import { MemoryStore } from '../store/memory';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function gateway(): Promise<Gateway> {
  const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: pino({ level: 'silent' }) });
  cleanups.push(() => gw.close());
  return gw;
}

function newClient(url: string, options: Partial<ConstructorParameters<typeof SpoolClient>[0]> = {}): SpoolClient {
  const client = new SpoolClient({ url, reconnect: { initialDelayMs: 5, maxDelayMs: 100 }, ...options });
  cleanups.push(() => client.close());
  return client;
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Lets I/O callbacks run once: how tokens of a model arrive, a few per tick (not a sleep). */
function nextTick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A reader's view of one generation: its events from gen.start to gen.end, read live from offset 0. */
async function readGeneration(client: SpoolClient, session: string, generation: string): Promise<SessionEvent[]> {
  const sub = client.subscribe(session, { from: 0 });
  const events: SessionEvent[] = [];
  const read = (async () => {
    for await (const item of sub) {
      if (item.type === 'gap') throw new Error(`unexpected gap ${item.from}-${item.to}`);
      if (item.generationId !== generation) continue;
      events.push(item);
      if (item.type === 'gen.end') break;
    }
  })();
  try {
    await within(read, 30_000, `gen.end of ${generation}`);
  } finally {
    sub.close();
  }
  return events;
}

/** Model-like output: text tokens with a reasoning token every 50, some of it non-ASCII. */
function tokens(count: number): Array<{ text: string; kind: 'text' | 'reasoning' }> {
  return Array.from({ length: count }, (_, i) => (i % 50 === 49 ? { text: `<think ${i}>`, kind: 'reasoning' } : { text: i % 7 === 0 ? `é${i}😀 ` : `t${i} `, kind: 'text' }));
}

/** Runs of consecutive chunks of one kind, concatenated: what a reader renders. */
function runs(chunks: SessionEvent[]): Array<[string | undefined, string]> {
  const out: Array<[string | undefined, string]> = [];
  for (const chunk of chunks) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] === chunk.kind) last[1] += chunk.data as string;
    else out.push([chunk.kind, chunk.data as string]);
  }
  return out;
}

it('coalescing cuts the chunk count while readers reassemble the identical text, kinds and order', async () => {
  const gw = await gateway();
  const written = tokens(600);
  const produce = async (client: SpoolClient, session: string, coalesce: boolean): Promise<void> => {
    const gen = client.generation(session, { id: 'g', ...(coalesce ? { coalesce: { windowMs: 20, maxBytes: 1024 } } : {}) });
    for (let i = 0; i < written.length; i++) {
      const token = written[i] as { text: string; kind: string };
      if (!gen.write(token.text, { kind: token.kind })) await within(gen.drained(), 30_000, 'drained');
      if (i % 10 === 9) await nextTick();
    }
    await expect(gen.finish({ timeoutMs: 30_000 })).resolves.toMatchObject({ status: 'done' });
  };
  const producer = newClient(gw.url);
  await Promise.all([produce(producer, 'plain', false), produce(producer, 'merged', true)]);

  const reader = newClient(gw.url);
  const plain = (await readGeneration(reader, 'plain', 'g')).filter((event) => event.type === 'chunk');
  const merged = (await readGeneration(reader, 'merged', 'g')).filter((event) => event.type === 'chunk');

  expect(plain).toHaveLength(written.length);
  // 12 reasoning tokens cut the output into 24 runs of one kind: never fewer chunks than that.
  // Merges closed by every tick of 10 writes would give about 72; by kind and maxBytes, 24.
  // Far below one chunk per token either way.
  expect(merged.length).toBeLessThan(plain.length / 4);
  expect(merged.length).toBeGreaterThanOrEqual(runs(plain).length);
  expect(merged.map((event) => event.seq)).toEqual(merged.map((_, i) => i));
  const text = written.map((token) => token.text).join('');
  expect(plain.map((event) => event.data).join('')).toBe(text);
  expect(merged.map((event) => event.data).join('')).toBe(text);
  expect(runs(merged)).toEqual(runs(plain));
  for (const chunk of merged) expect(Buffer.byteLength(chunk.data as string)).toBeLessThanOrEqual(1024);
});

it('an AbortSignal stops a streaming generation: the waiting producer wakes with CLOSED and the log ends with gen.end aborted', async () => {
  const gw = await gateway();
  const producer = newClient(gw.url, { highWaterMark: { bytes: 256 } });
  const controller = new AbortController();
  const gen = producer.generation('s', { id: 'g', signal: controller.signal });
  // The user presses stop once part of the answer is durable.
  gen.on('ack', ({ seq }) => {
    if (seq >= 100 && !controller.signal.aborted) controller.abort('user pressed stop');
  });
  let accepted = 0;
  let stoppedBy: SpoolError | undefined;
  try {
    for (let i = 0; i < 100_000; i++) {
      const more = gen.write(`token ${i} `);
      accepted++;
      if (!more) await within(gen.drained(), 30_000, 'drained');
    }
  } catch (error) {
    stoppedBy = error as SpoolError;
  }
  expect(stoppedBy?.code).toBe('CLOSED');
  expect(accepted).toBeGreaterThan(100);
  expect(accepted).toBeLessThan(100_000);
  const end = await within(gen.finish(), 30_000, 'the abort to be confirmed');
  expect(end.status).toBe('aborted');

  const events = await readGeneration(newClient(gw.url), 's', 'g');
  const last = events[events.length - 1];
  expect(last).toMatchObject({ type: 'gen.end', status: 'aborted', error: 'user pressed stop', offset: end.offset });
  // Every chunk written before the abort is in the log, once, in order, and nothing after.
  const chunks = events.filter((event) => event.type === 'chunk');
  expect(chunks.map((event) => event.data)).toEqual(Array.from({ length: accepted }, (_, i) => `token ${i} `));
  expect(events.filter((event) => event.type === 'gen.end')).toHaveLength(1);
});
