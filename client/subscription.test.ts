import { SpoolClient, type SpoolError, type Subscription, type SubscriptionItem } from './index';
import { FakeGateway, within, type FakeSocket, type Seen } from './test-helpers/fake-gateway';

let gateway: FakeGateway;
let client: SpoolClient;

beforeEach(async () => {
  gateway = await FakeGateway.start();
  client = new SpoolClient({ url: gateway.url, reconnect: { initialDelayMs: 5, maxDelayMs: 20 } });
});

afterEach(async () => {
  client.destroy();
  await gateway.close();
});

function event(offset: number, data: unknown = `e${offset}`): Record<string, unknown> {
  return { offset, type: 'append', key: `k${offset}`, kind: 'msg', priority: 3, ts: 1, data };
}

function sendEvents(socket: FakeSocket, session: string, offsets: number[]): void {
  socket.send({ type: 'events', session, events: offsets.map((offset) => event(offset)) });
}

async function answerSubscribe(socket: FakeSocket, from: number, head: number): Promise<Seen> {
  const subscribe = await socket.next('subscribe');
  socket.send({ type: 'subscribed', id: subscribe['id'], session: subscribe['session'], from, head });
  return subscribe;
}

/** Reads `n` items with a timeout each. */
async function read(sub: Subscription, n: number): Promise<SubscriptionItem[]> {
  const items: SubscriptionItem[] = [];
  for (let i = 0; i < n; i++) {
    const result = await within(sub.next(), 15_000, `item ${i + 1} of ${n}`);
    if (result.done === true) throw new Error('subscription ended early');
    items.push(result.value);
  }
  return items;
}

function offsets(items: SubscriptionItem[]): Array<number | string> {
  return items.map((item) => (item.type === 'gap' ? `gap ${item.from}-${item.to}` : item.offset));
}

describe('subscription', () => {
  test('delivers events and gaps in offset order and tracks the consumed offset', async () => {
    const sub = client.subscribe('s1', { from: 0 });
    const socket = await gateway.accept();
    const subscribe = await answerSubscribe(socket, 0, 9);
    expect(subscribe).toMatchObject({ type: 'subscribe', session: 's1', from: 0 });
    sendEvents(socket, 's1', [1, 2]);
    socket.send({ type: 'gap', session: 's1', from: 3, to: 5, reason: 'trimmed' });
    sendEvents(socket, 's1', [6]);
    socket.send({ type: 'live', session: 's1', offset: 6 });
    expect(offsets(await read(sub, 4))).toEqual([1, 2, 'gap 3-5', 6]);
    expect(sub.offset).toBe(6);
  });

  test('dedupes events at or below its offset across a reconnect and resubscribes from sub.offset', async () => {
    const sub = client.subscribe('s1', { from: 0 });
    const first = await gateway.accept();
    await answerSubscribe(first, 0, 3);
    sendEvents(first, 's1', [1, 2, 3]);
    expect(offsets(await read(sub, 3))).toEqual([1, 2, 3]);
    first.terminate();

    const second = await gateway.accept();
    const resubscribe = await answerSubscribe(second, 3, 7);
    expect(resubscribe['from']).toBe(3);
    // A gateway replaying an overlapping range: 2 and 3 were delivered already.
    sendEvents(second, 's1', [2, 3, 4]);
    second.send({ type: 'gap', session: 's1', from: 3, to: 5, reason: 'trimmed' });
    sendEvents(second, 's1', [5, 6, 7]);
    expect(offsets(await read(sub, 4))).toEqual([4, 'gap 5-5', 6, 7]);
    expect(sub.offset).toBe(7);
  });

  test("from 'now' starts after the offset the gateway names in subscribed", async () => {
    const sub = client.subscribe('s1', { from: 'now' });
    const socket = await gateway.accept();
    const subscribe = await answerSubscribe(socket, 10, 10);
    expect(subscribe['from']).toBe('now');
    sendEvents(socket, 's1', [10, 11]);
    expect(offsets(await read(sub, 1))).toEqual([11]);
    socket.terminate();
    // After a reconnect it resumes from the offset, not from 'now' again.
    const second = await gateway.accept();
    expect((await answerSubscribe(second, 11, 11))['from']).toBe(11);
  });

  test('a slow consumer pauses the wire subscription and resumes from the last buffered offset', async () => {
    const sub = client.subscribe('s1', { from: 0, maxBufferedItems: 4 });
    const socket = await gateway.accept();
    await answerSubscribe(socket, 0, 100);
    sendEvents(socket, 's1', [1, 2, 3, 4, 5]);
    const unsubscribe = await socket.next('unsubscribe');
    expect(unsubscribe['session']).toBe('s1');
    // Pushed before the gateway saw the unsubscribe: dropped, not buffered.
    sendEvents(socket, 's1', [6, 7]);
    socket.send({ type: 'unsubscribed', id: unsubscribe['id'], session: 's1' });
    expect(sub.buffered).toBeLessThanOrEqual(5);
    // Reading down to half the bound resumes from the last buffered offset.
    expect(offsets(await read(sub, 3))).toEqual([1, 2, 3]);
    const resubscribe = await answerSubscribe(socket, 5, 100);
    expect(resubscribe['from']).toBe(5);
    sendEvents(socket, 's1', [6, 7]);
    expect(offsets(await read(sub, 4))).toEqual([4, 5, 6, 7]);
  });

  test('a non-retryable error rejects next() after the items already received', async () => {
    const sub = client.subscribe('s1', { from: 50 });
    const socket = await gateway.accept();
    const subscribe = await socket.next('subscribe');
    socket.send({ type: 'error', id: subscribe['id'], code: 'OFFSET_OUT_OF_RANGE', message: 'head is 3', retryable: false });
    const error = await within(
      sub.next().then(
        () => undefined,
        (e: unknown) => e as SpoolError,
      ),
      15_000,
      'the rejection',
    );
    expect(error?.code).toBe('OFFSET_OUT_OF_RANGE');
  });

  test('close() ends a for-await loop and unsubscribes', async () => {
    const sub = client.subscribe('s1');
    const socket = await gateway.accept();
    await answerSubscribe(socket, 0, 0);
    const seen: number[] = [];
    const loop = (async () => {
      for await (const item of sub) if (item.type !== 'gap') seen.push(item.offset);
    })();
    sendEvents(socket, 's1', [1]);
    await within(
      (async () => {
        while (seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
      })(),
      15_000,
      'the first event',
    );
    sub.close();
    await within(loop, 15_000, 'the loop to end');
    expect(seen).toEqual([1]);
    expect((await socket.next('unsubscribe'))['session']).toBe('s1');
  });

  test('two subscriptions to the same session each get everything, on separate connections', async () => {
    const a = client.subscribe('s1');
    const b = client.subscribe('s1');
    const sa = await gateway.accept();
    const sb = await gateway.accept();
    await answerSubscribe(sa, 0, 1);
    await answerSubscribe(sb, 0, 1);
    sendEvents(sa, 's1', [1]);
    sendEvents(sb, 's1', [1]);
    expect(offsets(await read(a, 1))).toEqual([1]);
    expect(offsets(await read(b, 1))).toEqual([1]);
  });
});
