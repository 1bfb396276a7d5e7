import { SpoolClient, SpoolError, type Generation } from './index';
import { FakeGateway, settle, within } from './test-helpers/fake-gateway';
import { ack, answerOpen, rejection, seqsOf } from './test-helpers/producer';

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

describe('generation', () => {
  test('writes queued before the open are sent after opened as one chunks frame with contiguous seqs', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    expect(gen.state).toBe('opening');
    gen.write('a');
    gen.write('b', { kind: 'reasoning', priority: 1 });
    gen.write({ tool: 'x' });
    const socket = await gateway.accept();
    const open = await answerOpen(socket);
    expect(open).toMatchObject({ type: 'open', session: 's1', generation: 'g1' });
    expect(open['resume']).toBeUndefined();
    expect(open['takeover']).toBeUndefined();

    const first = await socket.next('chunks');
    expect(first).toMatchObject({ token: 'v1/1/s1/g1', seq: 0 });
    expect(first['items']).toEqual([{ data: 'a' }, { kind: 'reasoning', priority: 1, data: 'b' }, { data: { tool: 'x' } }]);
    expect(gen.state).toBe('open');

    // Writes of one tick travel together, continuing the seqs.
    gen.write('d');
    gen.write('e');
    const second = await socket.next('chunks');
    expect(second['seq']).toBe(3);
    expect(second['items']).toEqual([{ data: 'd' }, { data: 'e' }]);
  });

  test('the first open carries takeover when asked', async () => {
    await setup();
    client.generation('s1', { id: 'g1', takeover: true });
    const socket = await gateway.accept();
    const open = await socket.next('open');
    expect(open['takeover']).toBe(true);
  });

  test('acks release the queue and resolve flush with the cumulative ack', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    gen.write('b');
    const flushAB = gen.flush();
    gen.write('c');
    let flushedABC = false;
    const flushABC = gen.flush().then((result) => {
      flushedABC = true;
      return result;
    });
    expect(seqsOf([await socket.next('chunks')])).toEqual([0, 1, 2]);

    ack(socket, 'g1', 1, 11);
    await expect(within(flushAB, 15_000, 'flush of a, b')).resolves.toEqual({ seq: 1, offset: 11 });
    await settle();
    expect(flushedABC).toBe(false);

    ack(socket, 'g1', 2, 12);
    await expect(within(flushABC, 15_000, 'flush of a, b, c')).resolves.toEqual({ seq: 2, offset: 12 });
  });

  test('flush with nothing written resolves once the generation is open, with the gen.start offset', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const flushed = gen.flush();
    const socket = await gateway.accept();
    await answerOpen(socket, 0, 7);
    await expect(within(flushed, 15_000, 'flush')).resolves.toEqual({ seq: -1, offset: 7 });
  });

  test('write() returns false past the high-water mark and drained() resolves after acks', async () => {
    await setup({}, { highWaterMark: { bytes: 100 } });
    const gen = client.generation('s1', { id: 'g1' });
    expect(gen.write('x'.repeat(60))).toBe(true);
    expect(gen.write('y'.repeat(60))).toBe(false);
    let drained = false;
    const drainedPromise = gen.drained().then(() => {
      drained = true;
    });
    const socket = await gateway.accept();
    await answerOpen(socket);
    expect(seqsOf([await socket.next('chunks')])).toEqual([0, 1]);
    await settle();
    expect(drained).toBe(false);
    ack(socket, 'g1', 0, 2);
    await within(drainedPromise, 15_000, 'drained');
    expect(gen.write('z')).toBe(true);
  });

  test('the high-water mark in items and the gateway credit both bound write()', async () => {
    await setup({ credit: { frames: 3, bytes: 1024 * 1024 } }, { highWaterMark: { items: 10 } });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    // The welcome's credit (3 chunks) is below the high-water mark (10 items): it wins.
    expect([gen.write(1), gen.write(2), gen.write(3), gen.write(4)]).toEqual([true, true, true, false]);
  });

  test('batches respect maxBatchItems and never exceed the credit of unacked chunks', async () => {
    await setup({ limits: { maxFrameBytes: 1024 * 1024, maxBatchItems: 2 }, credit: { frames: 3, bytes: 1024 * 1024 } });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    for (let i = 0; i < 6; i++) gen.write(i);
    const a = await socket.next('chunks');
    const b = await socket.next('chunks');
    expect([a['seq'], a['items'].length, b['seq'], b['items'].length]).toEqual([0, 2, 2, 1]);
    ack(socket, 'g1', 1, 3);
    const c = await socket.next('chunks');
    expect([c['seq'], c['items'].length]).toEqual([3, 2]);
    await settle();
    expect(socket.take('chunks')).toEqual([]); // 3 unacked: the credit is spent
    ack(socket, 'g1', 4, 6);
    expect(seqsOf([await socket.next('chunks')])).toEqual([5]);
  });

  test('after the socket drops, the generation reopens with its resume token and resends only from opened.nextSeq', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1', takeover: true });
    for (let i = 0; i < 5; i++) gen.write(`t${i}`);
    const first = await gateway.accept();
    const firstOpen = await answerOpen(first);
    expect(firstOpen['takeover']).toBe(true);
    expect(seqsOf([await first.next('chunks')])).toEqual([0, 1, 2, 3, 4]);
    ack(first, 'g1', 1, 3);
    const flushed = gen.flush();
    first.terminate();

    const second = await gateway.accept();
    const reopen = await second.next('open');
    expect(reopen['resume']).toEqual({ token: 'v1/1/s1/g1' });
    expect(reopen['takeover']).toBeUndefined();
    // The gateway holds seqs 0..2 durably (2 without an ack the client saw).
    second.send({ type: 'opened', id: reopen['id'], session: 's1', generation: 'g1', token: 'v1/1/s1/g1', nextSeq: 3, offset: 1, resumed: true });
    const resent = await second.next('chunks');
    expect(resent['seq']).toBe(3);
    expect(resent['items']).toEqual([{ data: 't3' }, { data: 't4' }]);
    gen.write('t5');
    expect(seqsOf([await second.next('chunks')])).toEqual([5]);
    ack(second, 'g1', 5, 9);
    await expect(within(flushed, 15_000, 'flush')).resolves.toEqual({ seq: 5, offset: 9 });
    expect(seqsOf(second.frames.filter((frame) => frame.type === 'chunks'))).toEqual([3, 4, 5]);
    expect(gen.state).toBe('open');
  });

  test('a resume that finds every chunk durable resends the last one once to learn its offset', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    gen.write('a');
    gen.write('b');
    const first = await gateway.accept();
    await answerOpen(first);
    await first.next('chunks');
    const flushed = gen.flush();
    first.terminate();
    const second = await gateway.accept();
    await answerOpen(second, 2);
    const resent = await second.next('chunks');
    expect([resent['seq'], resent['items']]).toEqual([1, [{ data: 'b' }]]);
    ack(second, 'g1', 1, 5);
    await expect(within(flushed, 15_000, 'flush')).resolves.toEqual({ seq: 1, offset: 5 });
  });

  test('SEQ_GAP makes the producer resend from expectedSeq, once per gap', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write(0);
    gen.write(1);
    const flushedTwo = gen.flush();
    gen.write(2);
    gen.write(3);
    expect(seqsOf([await socket.next('chunks')])).toEqual([0, 1, 2, 3]);
    const gap = { type: 'error', code: 'SEQ_GAP', message: 'expected 2', retryable: true, ref: 'g1', details: { expectedSeq: 2 } };
    socket.send(gap);
    expect(seqsOf([await socket.next('chunks')])).toEqual([2, 3]);
    // A later frame after the hole draws the same error, arriving after the resend went out.
    socket.send(gap);
    ack(socket, 'g1', 1, 3);
    await within(flushedTwo, 15_000, 'flush'); // the repeated SEQ_GAP has been handled by now
    // Frames arrive in order: a second resend of 2..3 would reach the gateway before this write.
    gen.write(4);
    expect(seqsOf([await socket.next('chunks')])).toEqual([4]);
  });

  test('STORE_UNAVAILABLE resends the unacknowledged chunks after a backoff', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    gen.write('b');
    await socket.next('chunks');
    ack(socket, 'g1', 0, 2);
    socket.send({ type: 'error', code: 'STORE_UNAVAILABLE', message: 'store down', retryable: true, ref: 'g1' });
    expect(seqsOf([await socket.next('chunks')])).toEqual([1]);
  });

  test('chunk errors that arrive while a finish is in flight wait for the finish answer', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    gen.write('b');
    const finished = gen.finish();
    expect(seqsOf([await socket.next('chunks')])).toEqual([0, 1]);
    const finish = await socket.next('finish');
    // Chunk 1 was lost to a store hiccup; the finish is answered with what is missing.
    socket.send({ type: 'error', code: 'STORE_UNAVAILABLE', message: 'down', retryable: true, ref: 'g1' });
    socket.send({ type: 'error', id: finish['id'], code: 'SEQ_GAP', message: 'holds 1', retryable: true, ref: 'g1', details: { expectedSeq: 1 } });
    expect(seqsOf([await socket.next('chunks')])).toEqual([1]);
    const again = await socket.next('finish');
    expect(again['seq']).toBe(2);
    socket.send({ type: 'finished', id: again['id'], generation: 'g1', status: 'done', offset: 5 });
    await expect(within(finished, 15_000, 'finish')).resolves.toEqual({ offset: 5, status: 'done' });
  });

  test('finish sends seq = number of chunks, resolves with the gen.end offset and closes the channel', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    gen.write('b');
    const finished = gen.finish();
    expect(gen.state).toBe('finishing');
    expect(() => gen.write('late')).toThrow(expect.objectContaining({ code: 'GENERATION_CLOSED' }));
    await socket.next('chunks');
    const finish = await socket.next('finish');
    expect(finish).toMatchObject({ token: 'v1/1/s1/g1', seq: 2, status: 'done' });
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'done', offset: 4 });
    await expect(within(finished, 15_000, 'finish')).resolves.toEqual({ offset: 4, status: 'done' });
    expect(gen.state).toBe('finished');
    await within(socket.closed, 15_000, 'the channel to close');
  });

  test('abort finishes with status aborted and the reason', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    const aborted = gen.abort('user pressed stop');
    const finish = await socket.next('finish');
    expect(finish).toMatchObject({ seq: 0, status: 'aborted', error: 'user pressed stop' });
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'aborted', offset: 2 });
    await expect(within(aborted, 15_000, 'abort')).resolves.toEqual({ offset: 2, status: 'aborted' });
  });

  test('a finish interrupted by a drop is re-sent on the resumed channel after the missing chunks', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const first = await gateway.accept();
    await answerOpen(first);
    gen.write('a');
    gen.write('b');
    gen.write('c');
    const finished = gen.finish();
    await first.next('finish');
    first.terminate();
    const second = await gateway.accept();
    await answerOpen(second, 1);
    expect(seqsOf([await second.next('chunks')])).toEqual([1, 2]);
    const finish = await second.next('finish');
    expect(finish['seq']).toBe(3);
    second.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'done', offset: 9 });
    await expect(within(finished, 15_000, 'finish')).resolves.toEqual({ offset: 9, status: 'done' });
  });

  test('a lost finished is recovered from the GENERATION_CLOSED answer to the reopen', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const first = await gateway.accept();
    await answerOpen(first);
    const finished = gen.finish();
    await first.next('finish');
    first.terminate();
    const second = await gateway.accept();
    const reopen = await second.next('open');
    second.send({
      type: 'error',
      id: reopen['id'],
      code: 'GENERATION_CLOSED',
      message: 'ended',
      retryable: false,
      details: { status: 'done', offset: 3 },
    });
    await expect(within(finished, 15_000, 'finish')).resolves.toEqual({ offset: 3, status: 'done' });
  });

  test('FENCED fails finish with code FENCED and later writes throw it', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    const flushed = gen.flush();
    const finished = gen.finish();
    const finish = await socket.next('finish');
    socket.send({ type: 'error', id: finish['id'], code: 'FENCED', message: 'displaced', retryable: false, details: { epoch: 2 } });
    const error = await rejection(finished);
    expect(error).toBeInstanceOf(SpoolError);
    expect(error.code).toBe('FENCED');
    expect(error.details.epoch).toBe(2);
    expect((await rejection(flushed)).code).toBe('FENCED');
    expect(gen.state).toBe('failed');
    expect(() => gen.write('b')).toThrow(expect.objectContaining({ code: 'FENCED' }));
  });

  test('FENCED on a chunks frame fails pending flushes', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    gen.write('a');
    const flushed = gen.flush();
    await socket.next('chunks');
    socket.send({ type: 'error', code: 'FENCED', message: 'displaced', retryable: false, ref: 'g1', details: { epoch: 2 } });
    expect((await rejection(flushed)).code).toBe('FENCED');
    await expect(gen.finish()).rejects.toMatchObject({ code: 'FENCED' });
  });

  test('GENERATION_ACTIVE on open fails the generation', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g2' });
    gen.write('a');
    const flushed = gen.flush();
    const socket = await gateway.accept();
    const open = await socket.next('open');
    socket.send({ type: 'error', id: open['id'], code: 'GENERATION_ACTIVE', message: 'g1 is active', retryable: false });
    expect((await rejection(flushed)).code).toBe('GENERATION_ACTIVE');
    expect(gen.state).toBe('failed');
  });

  test('finish({timeoutMs}) rejects with TIMEOUT when the gateway never confirms', async () => {
    await setup();
    const gen: Generation = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    const finished = gen.finish({ timeoutMs: 50 });
    await socket.next('finish');
    expect((await rejection(finished)).code).toBe('TIMEOUT');
    expect(gen.state).toBe('failed');
  });

  test('binary data and oversized chunks are refused at write()', async () => {
    await setup();
    const gen = client.generation('s1', { id: 'g1' });
    expect(() => gen.write(new Uint8Array(4))).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
    expect(() => gen.write('x'.repeat(2 * 1024 * 1024))).toThrow(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
    expect(gen.state).toBe('opening');
  });

  test('the JSON subprotocol carries the same frames as text', async () => {
    await setup({}, { protocol: 'json' });
    const gen = client.generation('s1', { id: 'g1' });
    gen.write('a');
    const socket = await gateway.accept();
    expect(socket.subprotocol).toBe('spool.v1.json');
    await answerOpen(socket);
    expect(await socket.next('chunks')).toMatchObject({ seq: 0, items: [{ data: 'a' }] });
  });
});

/** Resolves once `gen` is open (its `opened` handled), settling between looks. */
async function untilOpen(gen: Generation): Promise<void> {
  while (gen.state !== 'open') await settle();
}

describe('lingerMs (chunks wait for more to join their frame)', () => {
  test('chunks written over several ticks travel in one frame, which flush() sends at once', async () => {
    await setup({}, { lingerMs: 10_000 });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    await within(untilOpen(gen), 15_000, 'the generation opening');
    gen.write('a');
    await settle();
    gen.write('b', { kind: 'reasoning' });
    await settle();
    const flushed = gen.flush();
    // Without the linger, 'a' would have left alone at the end of its tick.
    const frame = await socket.next('chunks');
    expect(frame['items']).toEqual([{ data: 'a' }, { kind: 'reasoning', data: 'b' }]);
    ack(socket, 'g1', 1, 3);
    await expect(within(flushed, 15_000, 'flush')).resolves.toMatchObject({ seq: 1 });
  });

  test('a full batch (maxBatchItems) does not wait for the linger, and finish() sends what waits', async () => {
    await setup({ limits: { maxFrameBytes: 1024 * 1024, maxBatchItems: 3 } }, { lingerMs: 10_000 });
    const gen = client.generation('s1', { id: 'g1' });
    const socket = await gateway.accept();
    await answerOpen(socket);
    await within(untilOpen(gen), 15_000, 'the generation opening');
    for (const text of ['a', 'b', 'c', 'd']) {
      gen.write(text);
      await settle();
    }
    // Well before the 10 s linger would send it.
    const full = await socket.next('chunks', 5_000);
    expect(full['items']).toEqual([{ data: 'a' }, { data: 'b' }, { data: 'c' }]);
    const finished = gen.finish();
    const rest = await socket.next('chunks');
    expect(rest).toMatchObject({ seq: 3, items: [{ data: 'd' }] });
    const finish = await socket.next('finish');
    expect(finish['seq']).toBe(4);
    socket.send({ type: 'finished', id: finish['id'], generation: 'g1', status: 'done', offset: 6 });
    await expect(within(finished, 15_000, 'finish')).resolves.toMatchObject({ status: 'done' });
  });

  test('chunks lingering when the socket drops are sent once, after the resume, nothing lost or repeated (G2)', async () => {
    await setup({}, { lingerMs: 10_000 });
    const gen = client.generation('s1', { id: 'g1' });
    const first = await gateway.accept();
    await answerOpen(first);
    await within(untilOpen(gen), 15_000, 'the generation opening');
    gen.write('a');
    await settle();
    gen.write('b');
    first.terminate(); // while a and b linger, never sent
    const second = await gateway.accept();
    const reopen = await second.next('open');
    second.send({ type: 'opened', id: reopen['id'], session: 's1', generation: 'g1', token: 'v1/1/s1/g1', nextSeq: 0, offset: 1, resumed: true });
    await within(untilOpen(gen), 15_000, 'the generation reopening');
    gen.write('c');
    const flushed = gen.flush();
    const frame = await second.next('chunks');
    expect(frame).toMatchObject({ seq: 0, items: [{ data: 'a' }, { data: 'b' }, { data: 'c' }] });
    ack(second, 'g1', 2, 4);
    await expect(within(flushed, 15_000, 'flush')).resolves.toEqual({ seq: 2, offset: 4 });
    expect(first.frames.filter((f) => f.type === 'chunks')).toEqual([]);
    expect(seqsOf(second.frames.filter((f) => f.type === 'chunks'))).toEqual([0, 1, 2]);
  });

  test('is a number of ms from 0 to 10000, on the client and per generation', async () => {
    await setup();
    expect(() => new SpoolClient({ url: gateway.url, lingerMs: -1 })).toThrow(TypeError);
    expect(() => new SpoolClient({ url: gateway.url, lingerMs: Number.NaN })).toThrow(TypeError);
    expect(() => client.generation('s1', { lingerMs: 10_001 })).toThrow(TypeError);
  });
});
