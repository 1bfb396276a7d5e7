/**
 * A tiny TCP proxy that can cut its connections for real: `cut()` destroys both sockets of every
 * pair, so the client sees its WebSocket die mid-stream exactly as on a network failure, and
 * the gateway sees its peer vanish. While `holdMs` runs after a cut, new connections are
 * accepted and destroyed at once (the client's reconnect attempts fail, as during an outage).
 */
import net from 'node:net';

export interface TcpProxy {
  /** The port clients connect to. */
  readonly port: number;
  /** Connections passed through to the target so far. */
  readonly passed: number;
  /** Connections refused while a cut's hold was running. */
  readonly refused: number;
  /** Destroys every live connection; refuses new ones for `holdMs`. Returns how many it cut. */
  cut(holdMs?: number): number;
  /** Stops listening and destroys every connection. Idempotent. */
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (a free port) forwarding to `target`. */
export async function startTcpProxy(target: { readonly host: string; readonly port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let holdUntil = 0;
  let passed = 0;
  let refused = 0;

  const server = net.createServer((client) => {
    if (Date.now() < holdUntil) {
      refused++;
      client.destroy();
      return;
    }
    passed++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    const pair = { client, upstream };
    pairs.add(pair);
    const teardown = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: no port');

  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    get passed() {
      return passed;
    },
    get refused() {
      return refused;
    },
    cut(holdMs = 0) {
      holdUntil = Date.now() + holdMs;
      const cut = pairs.size;
      for (const { client, upstream } of [...pairs]) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      return cut;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const { client, upstream } of pairs) {
          client.destroy();
          upstream.destroy();
        }
        pairs.clear();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
