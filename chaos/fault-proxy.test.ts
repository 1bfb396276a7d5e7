/**
 * The fault proxy does what its faults say: latency, bandwidth, blackhole, half-close and reset,
 * per direction, against a TCP echo server on loopback. A fault's effect is asserted as a lower
 * bound on time (a slow machine only adds to it), never as an upper one; faults last far longer
 * than the test needs them, so a slow step never outlives the fault it depends on.
 */
import net from 'node:net';
import { FaultProxy } from './fault-proxy';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function echoServer(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end()); // answer a FIN with a FIN
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

async function proxied(): Promise<{ proxy: FaultProxy; socket: net.Socket; received: () => Buffer; events: string[] }> {
  const proxy = await FaultProxy.start(await echoServer(), { rand: () => 0 });
  cleanups.push(() => proxy.close());
  const socket = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  const events: string[] = [];
  socket.on('data', (d) => chunks.push(d));
  socket.on('end', () => events.push('end'));
  socket.on('error', (e) => events.push(`error:${(e as NodeJS.ErrnoException).code ?? e.message}`));
  socket.on('close', () => events.push('close'));
  cleanups.push(() => {
    socket.destroy();
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  await waitFor(() => proxy.connections === 1);
  return { proxy, socket, received: () => Buffer.concat(chunks), events };
}

async function waitFor(check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function roundTrip(socket: net.Socket, received: () => Buffer, payload: Buffer): Promise<number> {
  const before = received().length;
  const start = Date.now();
  socket.write(payload);
  await waitFor(() => received().length >= before + payload.length);
  return Date.now() - start;
}

describe('fault proxy', () => {
  it('forwards both ways untouched without faults', async () => {
    const { proxy, socket, received } = await proxied();
    const payload = Buffer.from('x'.repeat(100_000));
    await roundTrip(socket, received, payload);
    expect(received().equals(payload)).toBe(true);
    expect(proxy.stats).toMatchObject({ accepted: 1, delays: 0, throttles: 0, blackholes: 0, resets: 0, halfCloses: 0 });
  });

  it('latency delays one direction, in order, for forMs', async () => {
    const { proxy, socket, received } = await proxied();
    proxy.apply({ delayMs: 150, direction: 'down', forMs: 60_000 });
    const took = await roundTrip(socket, received, Buffer.from('a'));
    expect(took).toBeGreaterThanOrEqual(140);
    socket.write('b');
    socket.write('c');
    await waitFor(() => received().toString() === 'abc');
    expect(proxy.stats.delays).toBe(1);
  });

  it('a bandwidth cap bounds throughput', async () => {
    const { proxy, socket, received } = await proxied();
    proxy.apply({ bandwidthBytesPerSec: 50_000, direction: 'up', forMs: 60_000 });
    const payload = Buffer.alloc(20_000, 1);
    const took = await roundTrip(socket, received, payload);
    // 20 kB at 50 kB/s: at least about 400 ms (the first slice goes at once), all of it intact.
    expect(took).toBeGreaterThanOrEqual(300);
    expect(received().equals(payload)).toBe(true);
    expect(proxy.stats.throttles).toBe(1);
  });

  it('a blackhole holds traffic without closing, then delivers it', async () => {
    const { proxy, socket, received, events } = await proxied();
    proxy.apply({ blackholeMs: 300 });
    const started = Date.now();
    socket.write('held');
    await waitFor(() => received().length > 0);
    // Nothing came through before the hole closed, and nothing was closed meanwhile.
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(received().toString()).toBe('held');
    expect(events).toEqual([]);
    expect(proxy.stats.blackholes).toBe(1);
  });

  it('half-close up: the target gets a FIN while the client still hears it', async () => {
    const { proxy, socket, received, events } = await proxied();
    await roundTrip(socket, received, Buffer.from('1'));
    proxy.apply({ halfClose: true, direction: 'up' });
    // The echo server answers the FIN with its own; the client sees an orderly end, not a reset.
    await waitFor(() => events.includes('end'));
    expect(events.some((e) => e.startsWith('error'))).toBe(false);
    expect(proxy.stats.halfCloses).toBe(1);
  });

  it('reset destroys the connection with an error on the client side; probability picks connections', async () => {
    const { proxy, events } = await proxied();
    expect(proxy.apply({ reset: true, probability: 0.5 })).toBe(1); // rand() = 0 < 0.5: hit
    await waitFor(() => events.includes('close'));
    expect(events.some((e) => e === 'error:ECONNRESET')).toBe(true);
    expect(proxy.connections).toBe(0);
    expect(proxy.resets).toBe(1);
  });

  it('refuses new connections for refuseMs', async () => {
    const { proxy } = await proxied();
    proxy.apply({ refuseMs: 60_000 });
    const refused = net.connect({ port: proxy.port, host: '127.0.0.1' });
    const outcome = await new Promise<string>((resolve) => {
      refused.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? 'error'));
      refused.on('close', () => resolve('close'));
    });
    expect(['ECONNRESET', 'close']).toContain(outcome);
    expect(proxy.stats.refused).toBe(1);
  });
});
