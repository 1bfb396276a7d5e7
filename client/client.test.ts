import { WebSocket as WsWebSocket } from 'ws';
import { SpoolClient, type SpoolError } from './index';
import { FakeGateway, within, type FakeSocket } from './test-helpers/fake-gateway';

let gateway: FakeGateway | undefined;
let client: SpoolClient | undefined;

afterEach(async () => {
  client?.destroy();
  await gateway?.close();
  client = undefined;
  gateway = undefined;
});

/** A logger that records every message, to assert on state transitions without sleeping. */
function recorder(): { lines: string[]; logger: { debug(m: string): void; info(m: string): void; warn(m: string): void; error(m: string): void } } {
  const lines: string[] = [];
  const push = (message: string): void => {
    lines.push(message);
  };
  return { lines, logger: { debug: push, info: push, warn: push, error: push } };
}

async function answerAppend(socket: FakeSocket, offset: number, duplicate = false): Promise<void> {
  const append = await socket.next('append');
  socket.send({ type: 'appended', id: append['id'], session: append['session'], key: append['key'], offset, duplicate });
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

describe('connection', () => {
  test.each([
    ['msgpack', 'spool.v1'],
    ['json', 'spool.v1.json'],
  ] as const)('hello over %s carries protocol 1, the token and the client name', async (protocol, subprotocol) => {
    gateway = await FakeGateway.start();
    client = new SpoolClient({ url: gateway.url, token: 'secret', protocol });
    const appended = client.append('s1', { key: 'k1', kind: 'user', data: 'hi' });
    const socket = await gateway.nextSocket();
    expect(socket.subprotocol).toBe(subprotocol);
    expect(await socket.next('hello')).toEqual({ type: 'hello', protocol: 1, token: 'secret', client: 'spool-js' });
    // Nothing but the hello goes out before the welcome.
    expect(socket.frames.map((frame) => frame.type)).toEqual(['hello']);
    await answerAppend(socket, 1);
    await expect(within(appended, 15_000, 'append')).resolves.toEqual({ offset: 1, duplicate: false });
  });

  test('accepts the WebSocket constructor as an option', async () => {
    gateway = await FakeGateway.start();
    client = new SpoolClient({ url: gateway.url, WebSocket: WsWebSocket });
    const appended = client.append('s1', { key: 'k1', kind: 'user', data: 'hi' });
    await answerAppend(await gateway.accept(), 4, true);
    await expect(within(appended, 15_000, 'append')).resolves.toEqual({ offset: 4, duplicate: true });
  });

  test('a non-retryable close (UNAUTHORIZED 4002) stops reconnecting and fails what waits with its code', async () => {
    gateway = await FakeGateway.start({ autoWelcome: false });
    const { lines, logger } = recorder();
    client = new SpoolClient({ url: gateway.url, token: 'wrong', logger, reconnect: { initialDelayMs: 1, maxDelayMs: 1 } });
    const appended = client.append('s1', { key: 'k1', kind: 'user', data: 'hi' });
    const gen = client.generation('s1', { id: 'g1' });
    const flushed = gen.flush();
    for (let i = 0; i < 2; i++) {
      const socket = await gateway.accept();
      socket.send({ type: 'error', code: 'UNAUTHORIZED', message: 'bad token', retryable: false });
      socket.close(4002, 'unauthorized');
    }
    const error = await rejection(appended);
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toBe('bad token');
    expect((await rejection(flushed)).code).toBe('UNAUTHORIZED');
    expect(gen.state).toBe('failed');
    // Each connection went straight to closed: no backoff was ever scheduled.
    expect(lines.filter((line) => line.endsWith('-> backoff'))).toEqual([]);
    expect(lines).toContain('spool connection shared: handshaking -> closed');
  });

  test('SHUTTING_DOWN (4014) reconnects, and an unanswered append is re-sent with the same key', async () => {
    gateway = await FakeGateway.start();
    client = new SpoolClient({ url: gateway.url, reconnect: { initialDelayMs: 5, maxDelayMs: 10 } });
    const appended = client.append('s1', { key: 'user-msg-1', kind: 'user', data: { text: 'hi' }, priority: 3 });
    const first = await gateway.accept();
    const sent = await first.next('append');
    expect(sent).toMatchObject({ session: 's1', key: 'user-msg-1', kind: 'user', priority: 3, data: { text: 'hi' } });
    first.send({ type: 'error', code: 'SHUTTING_DOWN', message: 'bye', retryable: true });
    first.close(4014, 'shutting down');
    const second = await gateway.accept();
    const resent = await second.next('append');
    expect(resent).toMatchObject({ session: 's1', key: 'user-msg-1', kind: 'user', data: { text: 'hi' } });
    second.send({ type: 'appended', id: resent['id'], session: 's1', key: 'user-msg-1', offset: 8, duplicate: true });
    await expect(within(appended, 15_000, 'append')).resolves.toEqual({ offset: 8, duplicate: true });
  });

  test('a retryable append error is retried after a backoff; a non-retryable one rejects', async () => {
    gateway = await FakeGateway.start();
    client = new SpoolClient({ url: gateway.url, reconnect: { initialDelayMs: 5, maxDelayMs: 10 } });
    const retried = client.append('s1', { key: 'a', kind: 'user', data: 1 });
    const socket = await gateway.accept();
    const first = await socket.next('append');
    socket.send({ type: 'error', id: first['id'], code: 'STORE_UNAVAILABLE', message: 'down', retryable: true });
    await answerAppend(socket, 2);
    await expect(within(retried, 15_000, 'append')).resolves.toEqual({ offset: 2, duplicate: false });

    const refused = client.append('s1', { key: 'b', kind: 'user', data: 1 });
    const second = await socket.next('append');
    socket.send({ type: 'error', id: second['id'], code: 'SESSION_FULL', message: 'full', retryable: false });
    expect((await rejection(refused)).code).toBe('SESSION_FULL');
  });

  test('a gateway silent for two heartbeat intervals is dropped and the client reconnects', async () => {
    gateway = await FakeGateway.start({ pong: false, welcome: { heartbeatMs: 20 } });
    client = new SpoolClient({ url: gateway.url, reconnect: { initialDelayMs: 1, maxDelayMs: 5 } });
    const sub = client.subscribe('s1');
    const first = await gateway.accept();
    await first.next('subscribe');
    const second = await gateway.accept();
    expect(first.pings).toBeGreaterThanOrEqual(1);
    const resubscribe = await second.next('subscribe');
    expect(resubscribe).toMatchObject({ session: 's1', from: 0 });
    sub.close();
  });

  test('close() waits for pending appends, then closes the shared connection; later calls fail with CLOSED', async () => {
    gateway = await FakeGateway.start();
    client = new SpoolClient({ url: gateway.url });
    const appended = client.append('s1', { key: 'k', kind: 'user', data: 'x' });
    const socket = await gateway.accept();
    const closed = client.close();
    await answerAppend(socket, 1);
    await within(closed, 15_000, 'close');
    await expect(appended).resolves.toEqual({ offset: 1, duplicate: false });
    await within(socket.closed, 15_000, 'the socket to close');
    expect((await rejection(client.append('s1', { key: 'k2', kind: 'user', data: 'x' }))).code).toBe('CLOSED');
    expect(() => client?.subscribe('s1')).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  test('invalid session ids are refused before anything is sent', async () => {
    gateway = await FakeGateway.start();
    client = new SpoolClient({ url: gateway.url });
    expect(() => client?.generation('no spaces')).toThrow(expect.objectContaining({ code: 'BAD_FRAME' }));
    expect((await rejection(client.append('x'.repeat(129), { key: 'k', kind: 'user', data: 1 }))).code).toBe('BAD_FRAME');
    expect(() => new SpoolClient({ url: 'http://localhost' })).toThrow(TypeError);
  });
});
