/**
 * The SDK carries the app's W3C trace context (PROTOCOL §3.4): `traceparent` on hello, open and
 * subscribe, from a string or from a function that reads the current one. The gateway side (the
 * spans parented by it) is chaos/otel.test.ts.
 */
import { SpoolClient, type Subscription } from './index';
import { FakeGateway, within, type FakeSocket } from './test-helpers/fake-gateway';
import { answerOpen } from './test-helpers/producer';

const tp = (n: number): string => `00-${n.toString(16).padStart(32, '0')}-${n.toString(16).padStart(16, '0')}-01`;

let gateway: FakeGateway | undefined;
let client: SpoolClient | undefined;
afterEach(async () => {
  client?.destroy();
  await gateway?.close();
  client = undefined;
  gateway = undefined;
});

async function subscribed(socket: FakeSocket): Promise<Record<string, unknown>> {
  const subscribe = await socket.next('subscribe');
  socket.send({ type: 'subscribed', id: subscribe['id'], session: subscribe['session'], from: 0, head: 0 });
  return subscribe;
}

async function firstItem(sub: Subscription): Promise<void> {
  await within(sub.next(), 15_000, 'the first item');
}

test("a function traceparent is read for each hello, and once per generation() and subscribe(), whose every open / subscribe carries that value (reconnects included)", async () => {
  gateway = await FakeGateway.start();
  let current = tp(1);
  client = new SpoolClient({ url: gateway.url, traceparent: () => current, reconnect: { initialDelayMs: 5, maxDelayMs: 20 } });

  current = tp(2);
  const generation = client.generation('s1', { id: 'g1' });
  current = tp(3);
  const upload = await gateway.nextSocket();
  expect((await upload.next('hello'))['traceparent']).toBe(tp(3));
  const open = await answerOpen(upload);
  expect(open['traceparent']).toBe(tp(2));

  current = tp(4);
  const sub = client.subscribe('s1', { from: 0 });
  current = tp(5);
  const shared = await gateway.nextSocket();
  expect((await shared.next('hello'))['traceparent']).toBe(tp(5));
  expect((await subscribed(shared))['traceparent']).toBe(tp(4));
  shared.send({ type: 'events', session: 's1', events: [{ offset: 1, type: 'append', key: 'k1', kind: 'msg', priority: 3, ts: 1, data: 'one' }] });
  await firstItem(sub);

  // After a drop: a new hello reads the function again; the open (a resume) and the resubscribe keep theirs.
  current = tp(6);
  upload.terminate();
  const uploadAgain = await gateway.nextSocket();
  expect((await uploadAgain.next('hello'))['traceparent']).toBe(tp(6));
  const reopen = await answerOpen(uploadAgain);
  expect(reopen['resume']).toBeDefined();
  expect(reopen['traceparent']).toBe(tp(2));
  current = tp(9);
  shared.terminate();
  const sharedAgain = await gateway.nextSocket();
  expect((await sharedAgain.next('hello'))['traceparent']).toBe(tp(9));
  expect((await subscribed(sharedAgain))['traceparent']).toBe(tp(4));
  generation.destroy();
});

test('a per-call traceparent wins over the client’s; without either nothing is sent; a throwing function sends none and warns', async () => {
  gateway = await FakeGateway.start();
  const warnings: string[] = [];
  const noop = (): void => undefined;
  client = new SpoolClient({
    url: gateway.url,
    traceparent: () => {
      throw new Error('no context');
    },
    logger: { debug: noop, info: noop, warn: (m: string) => warnings.push(m), error: noop },
  });
  client.generation('s1', { id: 'g1', traceparent: tp(7) });
  const upload = await gateway.nextSocket();
  expect(await upload.next('hello')).not.toHaveProperty('traceparent');
  expect((await answerOpen(upload))['traceparent']).toBe(tp(7));
  client.subscribe('s2', { traceparent: () => tp(8) });
  const shared = await gateway.nextSocket();
  await shared.next('hello');
  expect((await subscribed(shared))['traceparent']).toBe(tp(8));
  client.generation('s3', { id: 'g3' });
  const third = await gateway.nextSocket();
  await third.next('hello');
  expect(await answerOpen(third)).not.toHaveProperty('traceparent');
  expect(warnings.some((w) => w.includes('traceparent function failed'))).toBe(true);

  // A client with no traceparent at all sends none anywhere.
  const plain = new SpoolClient({ url: gateway.url });
  try {
    plain.generation('s4', { id: 'g4' });
    const socket = await gateway.nextSocket();
    expect(await socket.next('hello')).not.toHaveProperty('traceparent');
    expect(await answerOpen(socket)).not.toHaveProperty('traceparent');
  } finally {
    plain.destroy();
  }
});
