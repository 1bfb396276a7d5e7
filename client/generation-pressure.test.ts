/**
 * The producer under pressure, against the hand-driven FakeGateway: coalescing of text deltas,
 * AbortSignal, finish timeouts, the bounded queue, and the observability events.
 */
import { SpoolClient, SpoolError, type AbortSignalLike, type AckEvent, type GenerationStateChange } from './index';
import { FakeGateway, settle, within } from './test-helpers/fake-gateway';
import { ack, answerOpen, itemsOf, rejection, seqsOf, thrown } from './test-helpers/producer';

let gateway: FakeGateway;
let client: SpoolClient;

async function setup(welcome: Record<string, unknown> = {}, clientOptions: Partial<ConstructorParameters<typeof SpoolClient>[0]> = {}): Promise<void> {
  gateway = await FakeGateway.start({ welcome });
  client = new SpoolClient({ url: gateway.url, reconnect: { initialDelayMs: 5, maxDelayMs: 20 }, ...clientOptions });
}

afterEach(async () => {
  client?.destroy();
  await gateway?.close();
});

/** A long window: merges close only by what the test does, never by the clock. */
const LONG_WINDOW = { windowMs: 60_000, maxBytes: 1000 };

describe('coalescing', () => {
  test('adjacent string writes within the window become one chunk whose text is their concatenation', async () => {
    await setup({}, { coalesce: LONG_WINDOW });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    const written = ['Hel', 'lo', ', ', 'wörld', '!'];
    for (const text of written) {
      expect(gen.write(text)).toBe(true);
      await settle(); // separate ticks, as tokens from a model arrive
    }
    expect(socket.take('chunks')).toEqual([]); // still merging
    const flushed = gen.flush();
    const frame = await socket.next('chunks');
    expect(frame['seq']).toBe(0);
    expect(frame['items']).toEqual([{ data: written.join('') }]);
    ack(socket, 'g1', 0, 2);
    await expect(within(flushed, 15_000, 'flush')).resolves.toEqual({ seq: 0, offset: 2 });
  });

  test('a different kind, priority or non-string data closes the merge first, so order is kept exactly', async () => {
    await setup({}, { coalesce: LONG_WINDOW });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    gen.write('b');
    gen.write('r1', { kind: 'reasoning', priority: 1 });
    gen.write('r2', { kind: 'reasoning', priority: 1 });
    gen.write('p', { priority: 3 });
    gen.write({ tool: 'search' });
    gen.write('c');
    gen.write('d');
    gen.flush().catch(() => undefined); // never acked here: destroyed by afterEach
    const frames = [await socket.next('chunks')];
    while (seqsOf(frames).length < 5) frames.push(await socket.next('chunks'));
    expect(seqsOf(frames)).toEqual([0, 1, 2, 3, 4]);
    expect(itemsOf(frames)).toEqual([
      { data: 'ab' },
      { kind: 'reasoning', priority: 1, data: 'r1r2' },
      { priority: 3, data: 'p' },
      { data: { tool: 'search' } },
      { data: 'cd' },
    ]);
  });

  test('the window elapsing sends the merge without any flush', async () => {
    await setup({}, { coalesce: { windowMs: 20, maxBytes: 1000 } });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    gen.write('b');
    expect((await socket.next('chunks'))['items']).toEqual([{ data: 'ab' }]);
    gen.write('c');
    const next = await socket.next('chunks');
    expect([next['seq'], next['items']]).toEqual([1, [{ data: 'c' }]]);
  });

  test('reaching maxBytes closes the merge at once; a write larger than maxBytes goes as it is', async () => {
    await setup({}, { coalesce: { windowMs: 60_000, maxBytes: 4 } });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('ab');
    gen.write('cd');
    gen.write('ef'); // does not fit: 'abcd' is queued, 'ef' opens the next merge
    expect((await socket.next('chunks'))['items']).toEqual([{ data: 'abcd' }]);
    gen.write('toolong'); // 'ef' closes first, then the large write goes alone
    expect(itemsOf([await socket.next('chunks')])).toEqual([{ data: 'ef' }, { data: 'toolong' }]);
  });

  test('finish() and abort() close the merge: its chunk goes before the end, counted in finish.seq', async () => {
    await setup({}, { coalesce: LONG_WINDOW });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('x');
    gen.write({ n: 1 });
    gen.write('a');
    gen.write('b');
    const aborted = gen.abort('stop');
    const frames = [await socket.next('chunks')];
    const finish = await socket.next('finish');
    expect(itemsOf([...frames, ...socket.take('chunks')])).toEqual([{ data: 'x' }, { data: { n: 1 } }, { data: 'ab' }]);
    expect(finish).toMatchObject({ seq: 3, status: 'aborted', error: 'stop' });
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'aborted', offset: 5 });
    await expect(within(aborted, 15_000, 'abort')).resolves.toEqual({ offset: 5, status: 'aborted' });
  });

  test("write()'s return value counts the open merge, and drained() sends it rather than wait for the window", async () => {
    await setup({}, { coalesce: LONG_WINDOW, highWaterMark: { bytes: 10 } });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    expect(gen.write('x'.repeat(6))).toBe(true);
    expect(gen.write('y'.repeat(6))).toBe(false); // 12 bytes held, in the merge only
    const drained = gen.drained();
    const frame = await socket.next('chunks');
    expect(frame['items']).toEqual([{ data: `${'x'.repeat(6)}${'y'.repeat(6)}` }]);
    let done = false;
    void drained.then(() => {
      done = true;
    });
    await settle();
    expect(done).toBe(false);
    ack(socket, 'g1', 0, 2);
    await within(drained, 15_000, 'drained');
    expect(gen.write('z')).toBe(true);
  });

  test('a generation overrides the client: off where the client coalesces, on where it does not', async () => {
    await setup({}, { coalesce: LONG_WINDOW });
    const plain = client.generation('s1', { id: 'g1', coalesce: { windowMs: 0 } });
    const socket = await gateway.accept();
    await answerOpen(socket);
    plain.write('a');
    plain.write('b');
    expect((await socket.next('chunks'))['items']).toEqual([{ data: 'a' }, { data: 'b' }]);

    const other = new SpoolClient({ url: gateway.url });
    try {
      const merged = other.generation('s2', { id: 'g2', coalesce: { windowMs: 60_000 } });
      const second = await gateway.accept();
      await answerOpen(second);
      merged.write('a');
      merged.write('b');
      merged.flush().catch(() => undefined); // never acked here: destroyed below
      expect((await second.next('chunks'))['items']).toEqual([{ data: 'ab' }]);
    } finally {
      other.destroy();
    }
  });

  test('nonsense coalesce options are refused where they are given', async () => {
    await setup();
    expect(() => new SpoolClient({ url: gateway.url, coalesce: { windowMs: -5 } })).toThrow(TypeError);
    expect(() => client.generation('s1', { coalesce: { windowMs: 10, maxBytes: 0 } })).toThrow(TypeError);
  });
});

/** An AbortSignal stand-in that shows its listeners. */
function fakeSignal(): AbortSignalLike & { listeners: Set<() => void>; fire(reason: unknown): void } {
  const listeners = new Set<() => void>();
  const signal = {
    aborted: false,
    reason: undefined as unknown,
    listeners,
    addEventListener: (_type: 'abort', listener: () => void) => listeners.add(listener),
    removeEventListener: (_type: 'abort', listener: () => void) => listeners.delete(listener),
    fire(reason: unknown): void {
      signal.aborted = true;
      signal.reason = reason;
      for (const listener of [...listeners]) listener();
    },
  };
  return signal;
}

describe('AbortSignal', () => {
  test('an abort ends the generation aborted with the reason, rejects waiters with CLOSED and refuses further writes', async () => {
    await setup({}, { highWaterMark: { bytes: 10 } });
    const controller = new AbortController();
    const gen = client.generation('s1', { id: 'g1', signal: controller.signal });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('x'.repeat(8));
    expect(gen.write('y'.repeat(8))).toBe(false);
    const drained = gen.drained();
    const flushed = gen.flush();
    expect(seqsOf([await socket.next('chunks')])).toEqual([0, 1]);
    const reason = new Error('user pressed stop');
    controller.abort(reason);

    const drainError = await rejection(drained);
    expect(drainError).toBeInstanceOf(SpoolError);
    expect(drainError.code).toBe('CLOSED');
    expect(drainError.cause).toBe(reason);
    expect((await rejection(flushed)).code).toBe('CLOSED');
    expect(thrown(() => gen.write('z')).code).toBe('CLOSED');
    expect((await rejection(gen.drained())).code).toBe('CLOSED');
    expect(gen.state).toBe('finishing');

    const finish = await socket.next('finish');
    expect(finish).toMatchObject({ seq: 2, status: 'aborted', error: 'user pressed stop' });
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'aborted', offset: 4 });
    await expect(within(gen.finish(), 15_000, 'finish')).resolves.toEqual({ offset: 4, status: 'aborted' });
  });

  test('an already-aborted signal aborts at once: the generation opens and ends aborted', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1', signal: AbortSignal.abort('too late') });
    expect(gen.state).toBe('finishing');
    expect(thrown(() => gen.write('a')).code).toBe('CLOSED');
    const socket = await gateway.accept();
    await answerOpen(socket);
    const finish = await socket.next('finish');
    expect(finish).toMatchObject({ seq: 0, status: 'aborted', error: 'too late' });
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'aborted', offset: 2 });
    await expect(within(gen.finish(), 15_000, 'finish')).resolves.toEqual({ offset: 2, status: 'aborted' });
  });

  test('a reason longer than the wire limit is cut to 1024 chars', async () => {
    await setup();
    const signal = fakeSignal();
    const gen = client.generation('s1', { id: 'g1', signal });
    const socket = await gateway.accept();
    await answerOpen(socket);
    signal.fire('x'.repeat(5000));
    expect((await socket.next('finish'))['error']).toBe('x'.repeat(1024));
    expect(gen.state).toBe('finishing');
  });

  test('the listener is removed when the generation finishes, and a later abort changes nothing', async () => {
    await setup();
    const signal = fakeSignal();
    const gen = client.generation('s1', { id: 'g1', signal });
    expect(signal.listeners.size).toBe(1);
    const socket = await gateway.accept();
    await answerOpen(socket);
    const finished = gen.finish();
    const finish = await socket.next('finish');
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'done', offset: 2 });
    await within(finished, 15_000, 'finish');
    expect(signal.listeners.size).toBe(0);
    signal.fire('late');
    expect(gen.state).toBe('finished');
  });

  test('the listener is removed when the generation fails', async () => {
    await setup();
    const signal = fakeSignal();
    const gen = client.generation('s1', { id: 'g1', signal });
    gen.destroy();
    expect(gen.state).toBe('failed');
    expect(signal.listeners.size).toBe(0);
  });

  test('a signal firing after finish() was called leaves the finish as it was asked', async () => {
    await setup();
    const signal = fakeSignal();
    const gen = client.generation('s1', { id: 'g1', signal });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    const finished = gen.finish();
    signal.fire('stop');
    const finish = await socket.next('finish');
    expect(finish).toMatchObject({ seq: 1, status: 'done' });
    expect(finish['error']).toBeUndefined();
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'done', offset: 3 });
    await expect(within(finished, 15_000, 'finish')).resolves.toEqual({ offset: 3, status: 'done' });
  });
});

describe('finish({ timeoutMs })', () => {
  test('a finished that arrives after the TIMEOUT resurrects nothing', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    const finished = gen.finish({ timeoutMs: 50 });
    const finish = await socket.next('finish');
    const error = await rejection(finished);
    expect(error.code).toBe('TIMEOUT');
    // The gateway answers at last: the producer has given up and closed the channel.
    socket.send({ type: 'ack', generation: 'g1', seq: 0, offset: 2 });
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'done', offset: 3 });
    await within(socket.closed, 15_000, 'the channel to close');
    await settle();
    expect(gen.state).toBe('failed');
    expect(await rejection(gen.finish())).toBe(error);
    expect((await rejection(gen.flush())).code).toBe('TIMEOUT');
    expect(thrown(() => gen.write('b')).code).toBe('TIMEOUT');
  });

  test('fails with TIMEOUT when the gateway cannot be reached at all', async () => {
    await setup();
    await gateway.close(); // nothing listens any more: every connect attempt fails
    const gen = client.generation('s1', { id: 'g1' });
    gen.write('a');
    const error = await rejection(gen.finish({ timeoutMs: 100 }));
    expect(error.code).toBe('TIMEOUT');
    expect(error.retryable).toBe(true);
    expect(gen.state).toBe('failed');
  });
});

describe('bounded queue', () => {
  test('while acks do not come, write() keeps returning false and the queue stops at maxQueuedBytes', async () => {
    // Small frames so that the cap can sit close above the mark (cap >= mark + maxFrameBytes).
    await setup({ limits: { maxFrameBytes: 400, maxBatchItems: 1024 } }, { highWaterMark: { bytes: 100 }, maxQueuedBytes: 1000 });
    const gen = client.generation('s1', { id: 'g1' });
    const first = await gateway.accept();
    await answerOpen(first);
    first.terminate(); // the network goes away; the reconnect meets a gateway that never opens
    const results: boolean[] = [];
    let refused: SpoolError | undefined;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      try {
        results.push(gen.write('0123456789'));
      } catch (error) {
        refused = error as SpoolError;
      }
    }
    expect(results.slice(0, 10).every(Boolean)).toBe(true); // 100 bytes: at the mark, not past it
    expect(results.slice(10).some(Boolean)).toBe(false); // past the mark: false, every time
    expect(results).toHaveLength(100); // 1000 bytes queued, the 101st write refused
    expect(refused?.code).toBe('RATE_LIMITED');
    expect(refused?.retryable).toBe(true);
    expect(refused?.details.limit).toBe(1000);
    expect(gen.state).not.toBe('failed'); // refusing one write does not break the generation

    const drained = gen.drained();
    const second = await gateway.accept();
    await answerOpen(second, 0);
    const frames = [await second.next('chunks')];
    while (seqsOf(frames).length < 100) frames.push(await second.next('chunks'));
    expect(seqsOf(frames)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    ack(second, 'g1', 99, 101);
    await within(drained, 15_000, 'drained');
    expect(gen.write('0123456789')).toBe(true); // the refused write goes through now
    expect(seqsOf([await second.next('chunks')])).toEqual([100]);
  });

  test('in-flight data never exceeds the byte credit; acks let the rest go', async () => {
    await setup({ credit: { frames: 1024, bytes: 50 } });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    for (let i = 0; i < 10; i++) gen.write('x'.repeat(20));
    expect(seqsOf([await socket.next('chunks')])).toEqual([0, 1]); // a third would make 60 > 50
    await settle();
    expect(socket.take('chunks')).toEqual([]);
    ack(socket, 'g1', 1, 3);
    expect(seqsOf([await socket.next('chunks')])).toEqual([2, 3]);
  });

  test('a caller that stops at false never meets maxQueuedBytes, however low it is set', async () => {
    await setup({}, { highWaterMark: { bytes: 100 }, maxQueuedBytes: 1 });
    const gen = client.generation('s1', { id: 'g1' });
    expect(gen.write('x'.repeat(60))).toBe(true);
    expect(gen.write('y'.repeat(60))).toBe(false);
  });

  test('maxQueuedBytes must be a positive number', async () => {
    await setup();
    expect(() => new SpoolClient({ url: gateway.url, maxQueuedBytes: 0 })).toThrow(TypeError);
    expect(() => client.generation('s1', { maxQueuedBytes: Number.NaN })).toThrow(TypeError);
  });
});

describe('events', () => {
  test("on('ack') reports each ack that advanced the durable point, once, until removed", async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const acks: AckEvent[] = [];
    const off = gen.on('ack', (event) => acks.push(event));
    const socket = await gateway.accept();
    await answerOpen(socket);
    for (let i = 0; i < 4; i++) gen.write(i);
    await socket.next('chunks');
    ack(socket, 'g1', 1, 3);
    ack(socket, 'g1', 1, 3); // a repeat (duplicate batch) is no progress
    ack(socket, 'g1', 0, 2); // a stale one neither
    ack(socket, 'g1', 3, 5, 1);
    await within(gen.flush(), 15_000, 'flush');
    expect(acks).toEqual([
      { seq: 1, offset: 3, dropped: 0 },
      { seq: 3, offset: 5, dropped: 1 },
    ]);
    off();
    gen.write(4);
    await socket.next('chunks');
    ack(socket, 'g1', 4, 6);
    await within(gen.flush(), 15_000, 'flush');
    expect(acks).toHaveLength(2);
  });

  test("on('state') follows the generation's lifecycle, and a throwing listener breaks nothing", async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const states: GenerationStateChange[] = [];
    gen.on('state', (change) => states.push(change));
    gen.on('state', () => {
      throw new Error('listener bug');
    });
    const socket = await gateway.accept();
    await answerOpen(socket);
    await within(gen.flush(), 15_000, 'the open'); // nothing written: resolves once opened
    const finished = gen.finish();
    const finish = await socket.next('finish');
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'done', offset: 2 });
    await within(finished, 15_000, 'finish');
    expect(states.map((change) => change.state)).toEqual(['open', 'finishing', 'finished']);
    expect(states[0]?.previous).toBe('opening');
    expect(() => gen.on('nope' as 'ack', () => undefined)).toThrow(TypeError);
  });

  test("the client reports connection states and counts reconnects", async () => {
    await setup();
    const changes: string[] = [];
    const reconnects: Array<{ connection: string; reconnects: number }> = [];
    client.on('state', ({ connection, previous, state }) => changes.push(`${connection}: ${previous} -> ${state}`));
    client.on('reconnect', (event) => reconnects.push(event));
    expect(client.reconnects).toBe(0);
    const gen = client.generation('s1', { id: 'g1' });
    const first = await gateway.accept();
    await answerOpen(first);
    first.terminate();
    const second = await gateway.accept();
    await answerOpen(second);
    await within(gen.flush(), 15_000, 'flush after the reconnect');
    expect(client.reconnects).toBe(1);
    expect(reconnects).toEqual([{ connection: 'generation g1', reconnects: 1 }]);
    expect(changes).toEqual([
      'generation g1: idle -> connecting',
      'generation g1: connecting -> handshaking',
      'generation g1: handshaking -> open',
      'generation g1: open -> backoff',
      'generation g1: backoff -> connecting',
      'generation g1: connecting -> handshaking',
      'generation g1: handshaking -> open',
    ]);
  });
});
