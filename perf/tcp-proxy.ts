/**
 * A tiny TCP proxy that can cut its connections for real: `cut()` destroys both sockets of every
 * pair, so the client sees its WebSocket die mid-stream exactly as on a network failure, and
 * the gateway sees its peer vanish. While `holdMs` runs after a cut, new connections are
 * accepted and destroyed at once (the client's reconnect attempts fail, as during an outage).
 * `cut(holdMs, 'reset')` ends each connection with a TCP RST instead of a FIN: both ends see an
 * error (ECONNRESET), not an orderly close.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export interface TcpProxy {
  /** The port clients connect to. */
  readonly port: number;
  /** Connections passed through to the target so far. */
  readonly passed: number;
  /** Connections refused while a cut's hold was running. */
  readonly refused: number;
  /** performance.now() at which the last cut's hold ends: the network is back (0 before any cut). */
  readonly backAt: number;
  /**
   * Destroys every live connection (`'close'`: with a FIN; `'reset'`: with an RST) and refuses
   * new ones for `holdMs`. Returns how many it cut.
   */
  cut(holdMs?: number, how?: 'close' | 'reset'): number;
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
    if (performance.now() < holdUntil) {
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
    get backAt() {
      return holdUntil;
    },
    cut(holdMs = 0, how: 'close' | 'reset' = 'close') {
      holdUntil = performance.now() + holdMs;
      const cut = pairs.size;
      for (const { client, upstream } of [...pairs]) {
        if (how === 'reset') {
          client.resetAndDestroy();
          upstream.resetAndDestroy();
        } else {
          client.destroy();
          upstream.destroy();
        }
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
