/**
 * The SDK's token handling against a hand-driven fake gateway: when the token function is called,
 * the in-band refresh before expiry, reconnects on TOKEN_EXPIRED and UNAUTHORIZED (once, then
 * final), and what a string token does. (chaos/token-refresh.test.ts streams through a real
 * gateway across expiries.)
 */
import { SpoolClient, type SpoolError } from './index';
import { FakeGateway, within, type FakeSocket } from './test-helpers/fake-gateway';
import { TokenSource, refreshDelay } from './token';

let gateway: FakeGateway | undefined;
let client: SpoolClient | undefined;

afterEach(async () => {
  client?.destroy();
  await gateway?.close();
  client = undefined;
  gateway = undefined;
});

const FAST = { initialDelayMs: 1, maxDelayMs: 5 };

/** A token function that hands out t1, t2, … and counts its calls. */
function counter(prefix = 't'): { calls: () => number; token: () => Promise<string> } {
  let n = 0;
  return { calls: () => n, token: async () => `${prefix}${++n}` };
}

function rejection(promise: Promise<unknown>): Promise<SpoolError> {
  return within(
    promise.then(
      () => {
        throw new Error('expected a rejection');
      },
      (error: unknown) => error as SpoolError,
    ),
    15_000,
    'a rejection',
  );
}

async function appendAnswered(socket: FakeSocket, offset: number): Promise<void> {
  const append = await socket.next('append');
  socket.send({ type: 'appended', id: append['id'], session: append['session'], key: append['key'], offset, duplicate: false });
}

describe('TokenSource', () => {
  test('a string is presented as is and cannot be renewed; a function is called for each token, overlapping calls share one', async () => {
    const fixed = new TokenSource('abc');
    expect(fixed.get()).toBe('abc');
    expect(fixed.renewable).toBe(false);
    expect(new TokenSource(undefined).get()).toBeUndefined();
    const { calls, token } = counter();
    const source = new TokenSource(token);
    expect(source.renewable).toBe(true);
    const [a, b] = [source.get(), source.get()];
    expect(await a).toBe('t1');
    expect(await b).toBe('t1');
    expect(calls()).toBe(1);
    expect(await source.get()).toBe('t2');
    expect(new TokenSource(() => 'sync').get()).toBe('sync');
  });

  test('a function that returns no string fails with a TypeError, and an empty string token is refused up front', async () => {
    await expect(new TokenSource(() => Promise.resolve(undefined as unknown as string)).get()).rejects.toThrow(TypeError);
    expect(() => new TokenSource(() => '').get()).toThrow(TypeError);
    expect(() => new TokenSource('')).toThrow(TypeError);
  });

  test('refreshes a third of the token’s life early, at most a minute early', () => {
    expect(refreshDelay(3000)).toBe(2000);
    expect(refreshDelay(3_600_000)).toBe(3_540_000);
    expect(refreshDelay(0)).toBe(0);
  });
});

describe('token function', () => {
  test('is called for every connection attempt, after the socket opened, and its token goes in the hello', async () => {
    gateway = await FakeGateway.start();
    const { calls, token } = counter();
    client = new SpoolClient({ url: gateway.url, token, reconnect: FAST });
    expect(calls()).toBe(0);
    const appended = client.append('s', { key: 'k', kind: 'user', data: 1 });
    const first = await gateway.accept();
    expect(first.frames[0]).toMatchObject({ type: 'hello', token: 't1' });
    first.terminate();
    const second = await gateway.accept();
    expect(second.frames[0]).toMatchObject({ type: 'hello', token: 't2' });
    await appendAnswered(second, 1);
    await within(appended, 15_000, 'append');
    expect(calls()).toBe(2);
  });

  test('refreshes in band before the token expires, again after each refreshed, on the same connection', async () => {
    gateway = await FakeGateway.start({ welcome: { expiresInMs: 90 } });
    const { token } = counter();
    client = new SpoolClient({ url: gateway.url, token, reconnect: FAST });
    const appended = client.append('s', { key: 'k', kind: 'user', data: 1 });
    const socket = await gateway.accept();
    for (const expected of ['t2', 't3']) {
      const refresh = await socket.next('refresh');
      expect(refresh).toMatchObject({ token: expected, id: expect.any(Number) });
      socket.send({ type: 'refreshed', id: refresh['id'], expiresInMs: 90 });
    }
    await appendAnswered(socket, 1);
    await within(appended, 15_000, 'append');
    expect(gateway.sockets).toHaveLength(1);
  });

  test('TOKEN_EXPIRED reconnects with a fresh token, and an unanswered append is sent again', async () => {
    gateway = await FakeGateway.start();
    const { token } = counter();
    client = new SpoolClient({ url: gateway.url, token, reconnect: FAST });
    const appended = client.append('s', { key: 'k', kind: 'user', data: 1 });
    const first = await gateway.accept();
    await first.next('append');
    first.send({ type: 'error', code: 'TOKEN_EXPIRED', message: 'expired', retryable: true });
    first.close(4021, 'token expired');
    const second = await gateway.accept();
    expect(second.frames[0]).toMatchObject({ type: 'hello', token: 't2' });
    await appendAnswered(second, 7);
    await expect(within(appended, 15_000, 'append')).resolves.toEqual({ offset: 7, duplicate: false });
  });

  test('UNAUTHORIZED fetches a token once more; a second UNAUTHORIZED before a welcome is final', async () => {
    gateway = await FakeGateway.start({ autoWelcome: false });
    const { calls, token } = counter();
    client = new SpoolClient({ url: gateway.url, token, reconnect: FAST });
    const appended = client.append('s', { key: 'k', kind: 'user', data: 1 });
    for (const expected of ['t1', 't2']) {
      const socket = await gateway.accept();
      expect(socket.frames[0]).toMatchObject({ token: expected });
      socket.send({ type: 'error', code: 'UNAUTHORIZED', message: `refused ${expected}`, retryable: false });
      socket.close(4002, 'unauthorized');
    }
    const error = await rejection(appended);
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toBe('refused t2');
    expect(calls()).toBe(2);
  });

  test('a welcome in between resets the allowance: an expiry after a good connection is retried again', async () => {
    gateway = await FakeGateway.start({ autoWelcome: false });
    const { token } = counter();
    client = new SpoolClient({ url: gateway.url, token, reconnect: FAST });
    const appended = client.append('s', { key: 'k', kind: 'user', data: 1 });
    const welcome = (socket: FakeSocket): void =>
      socket.send({ type: 'welcome', connectionId: 'c', protocol: 1, limits: { maxFrameBytes: 1 << 20, maxBatchItems: 1024 }, credit: { frames: 1024, bytes: 1 << 20 }, heartbeatMs: 60_000 });
    const one = await gateway.accept();
    one.send({ type: 'error', code: 'UNAUTHORIZED', message: 'no', retryable: false });
    one.close(4002);
    const two = await gateway.accept();
    welcome(two);
    await two.next('append');
    two.close(4021, 'token expired');
    const three = await gateway.accept();
    expect(three.frames[0]).toMatchObject({ token: 't3' });
    welcome(three);
    await appendAnswered(three, 2);
    await within(appended, 15_000, 'append');
  });

  test('a token function that throws or rejects is retried with backoff until it answers', async () => {
    gateway = await FakeGateway.start();
    let n = 0;
    client = new SpoolClient({
      url: gateway.url,
      reconnect: FAST,
      token: async () => {
        n++;
        if (n === 1) throw new Error('token endpoint down');
        if (n === 2) return undefined as unknown as string;
        return 'finally';
      },
    });
    const appended = client.append('s', { key: 'k', kind: 'user', data: 1 });
    let socket = await gateway.nextSocket();
    while ((await within(Promise.race([socket.next('hello').then(() => true), socket.closed.then(() => false)]), 15_000, 'hello or close')) === false) {
      socket = await gateway.nextSocket();
    }
    expect(socket.frames[0]).toMatchObject({ type: 'hello', token: 'finally' });
    await appendAnswered(socket, 1);
    await within(appended, 15_000, 'append');
    expect(n).toBe(3);
  });

  test('with a string token, TOKEN_EXPIRED is final: it cannot be renewed', async () => {
    gateway = await FakeGateway.start();
    client = new SpoolClient({ url: gateway.url, token: 'static', reconnect: FAST });
    const appended = client.append('s', { key: 'k', kind: 'user', data: 1 });
    const socket = await gateway.accept();
    await socket.next('append');
    socket.send({ type: 'error', code: 'TOKEN_EXPIRED', message: 'expired', retryable: true });
    socket.close(4021, 'token expired');
    expect((await rejection(appended)).code).toBe('TOKEN_EXPIRED');
    expect(gateway.sockets).toHaveLength(1);
  });
});
