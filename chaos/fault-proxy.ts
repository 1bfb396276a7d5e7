/**
 * A TCP fault proxy for chaos and end-to-end tests: sits between clients and a gateway (or a
 * gateway and Redis) on loopback and applies faults given as data.
 *
 *   client ──▶ proxy (listen 127.0.0.1:port) ──▶ target
 */
import net from 'node:net';

export interface Fault {
  /** Destroy every open connection through the proxy (both directions), like a dropped TCP path. */
  readonly reset?: boolean;
  /** Refuse new connections (accepted then destroyed at once) while true. */
  readonly refuse?: boolean;
}

export class FaultProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private refusing = false;
  /** Connections reset so far. */
  resets = 0;
  port = 0;

  private constructor(private readonly targetPort: number, private readonly targetHost: string) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(targetPort: number, targetHost = '127.0.0.1', listenPort = 0): Promise<FaultProxy> {
    const proxy = new FaultProxy(targetPort, targetHost);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(listenPort, '127.0.0.1', () => resolve());
    });
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  /** Open client connections right now. */
  get connections(): number {
    return this.pairs.size;
  }

  apply(fault: Fault): void {
    if (fault.refuse !== undefined) this.refusing = fault.refuse;
    if (fault.reset) {
      for (const [a, b] of this.pairs) {
        a.destroy();
        b.destroy();
        this.resets += 1;
      }
      this.pairs.clear();
    }
  }

  async close(): Promise<void> {
    this.apply({ reset: true });
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.pairs.add(pair);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

/** A free TCP port on loopback (bound then released; fine for tests that own the machine's ports briefly). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
