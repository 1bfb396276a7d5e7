/**
 * A TCP fault proxy for chaos and end-to-end tests: sits between clients and a gateway (or a
 * gateway and Redis) on loopback and applies faults given as data.
 *
 *   client ──▶ proxy (listen 127.0.0.1:port) ──▶ target
 *            ◀── "down" lane ──   ── "up" lane ──▶
 *
 * Every connection is a pair of sockets joined by two lanes, one per direction. A lane forwards
 * what it reads in order, and can be slowed (latency), throttled (bandwidth), held (blackhole:
 * nothing is forwarded and nothing is closed, as when packets vanish and TCP keeps retrying) or
 * shut (half-close: a FIN goes to the far side and further bytes of that direction are
 * discarded, while the other direction keeps flowing). A reset destroys both sockets with RST.
 *
 *   proxy.apply({ delayMs: 200, forMs: 1000, direction: 'down' })   // 200 ms more latency toward clients for 1 s
 *   proxy.apply({ reset: true, probability: 0.3 })                  // RST about 30 % of the open connections
 *   proxy.apply({ blackholeMs: 1500 })                              // hold everything for 1.5 s
 *
 * Faults hit the connections open when they are applied (each with `probability`, default 1);
 * latency, bandwidth and blackholes applied with no `probability` also hit connections opened
 * while they last. Lanes honour backpressure: past 1 MiB queued the source socket is paused.
 */
import net from 'node:net';

export type Direction = 'up' | 'down' | 'both';

/** One fault, as data. Fields combine: `{ delayMs: 50, bandwidthBytesPerSec: 65536 }` is one fault. */
export interface Fault {
  /** Apply this many ms from now instead of at once. */
  readonly after?: number;
  /** Share (0..1) of the open connections the fault hits. @default 1 (all, and new ones while it lasts) */
  readonly probability?: number;
  /** Which lanes: 'up' (toward the target), 'down' (toward the client) or 'both'. @default 'both' */
  readonly direction?: Direction;
  /** Extra latency per forwarded chunk, in order (no reordering). */
  readonly delayMs?: number;
  /** Throughput cap per lane. */
  readonly bandwidthBytesPerSec?: number;
  /** How long `delayMs` and `bandwidthBytesPerSec` last. @default 1000 */
  readonly forMs?: number;
  /** Forward nothing for this long, close nothing; what arrives meanwhile is forwarded afterwards. */
  readonly blackholeMs?: number;
  /** Destroy the connections (RST to both sides). */
  readonly reset?: boolean;
  /** Send FIN toward the far end of the chosen lanes and discard what those lanes read from then on. */
  readonly halfClose?: boolean;
  /** Refuse new connections while true (accepted, then reset at once). */
  readonly refuse?: boolean;
  /** Refuse new connections for this long. */
  readonly refuseMs?: number;
}

/** What a proxy did so far. */
export interface ProxyStats {
  accepted: number;
  refused: number;
  resets: number;
  halfCloses: number;
  blackholes: number;
  delays: number;
  throttles: number;
}

export interface FaultProxyOptions {
  readonly targetHost?: string;
  readonly listenPort?: number;
  /** Random source for `probability` (pass a seeded one for reproducible runs). @default Math.random */
  readonly rand?: () => number;
}

const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

interface Condition {
  delayMs: number;
  delayUntil: number;
  bandwidth: number;
  bandwidthUntil: number;
  blackholeUntil: number;
}

const noCondition = (): Condition => ({ delayMs: 0, delayUntil: 0, bandwidth: 0, bandwidthUntil: 0, blackholeUntil: 0 });

/** One direction of a connection: reads `from`, writes `to`, applying its condition. */
class Lane {
  readonly cond: Condition;
  private readonly queue: Array<{ buf: Buffer; due: number }> = [];
  private queuedBytes = 0;
  private lastDue = 0;
  private freeAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingDrain = false;
  private sourceEnded = false;
  private shut = false;
  private done = false;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    initial: Condition,
  ) {
    this.cond = { ...initial };
    from.on('data', (buf: Buffer) => this.push(buf));
    from.on('end', () => {
      this.sourceEnded = true;
      this.pump();
    });
  }

  /** Half-close: FIN to the far side, discard everything read from now on. */
  shutdown(): void {
    if (this.shut || this.done) return;
    this.shut = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.stopTimer();
    if (this.from.isPaused()) this.from.resume();
    if (!this.to.destroyed) this.to.end();
  }

  dispose(): void {
    this.done = true;
    this.stopTimer();
    this.queue.length = 0;
  }

  /** Re-evaluates the queue (after a condition changed). */
  poke(): void {
    this.stopTimer();
    this.pump();
  }

  private push(buf: Buffer): void {
    if (this.shut || this.done) return;
    const now = Date.now();
    const delay = now < this.cond.delayUntil ? this.cond.delayMs : 0;
    const due = Math.max(now + delay, this.lastDue);
    this.lastDue = due;
    this.queue.push({ buf, due });
    this.queuedBytes += buf.length;
    if (this.queuedBytes > HIGH_WATER && !this.from.isPaused()) this.from.pause();
    if (this.timer === undefined && !this.waitingDrain) this.pump();
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(1, ms));
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private pump(): void {
    if (this.shut || this.done || this.waitingDrain || this.timer !== undefined) return;
    if (this.to.destroyed) return;
    const now = Date.now();
    while (this.queue.length > 0) {
      if (now < this.cond.blackholeUntil) return this.arm(this.cond.blackholeUntil - now);
      const head = this.queue[0] as { buf: Buffer; due: number };
      if (head.due > now) return this.arm(head.due - now);
      let chunk: Buffer;
      if (now < this.cond.bandwidthUntil && this.cond.bandwidth > 0) {
        if (this.freeAt > now) return this.arm(this.freeAt - now);
        // At most ~20 ms worth of bytes per write, so the rate holds at a fine grain.
        const slice = Math.max(1, Math.floor(this.cond.bandwidth / 50));
        if (head.buf.length > slice) {
          chunk = head.buf.subarray(0, slice);
          head.buf = head.buf.subarray(slice);
        } else {
          chunk = head.buf;
          this.queue.shift();
        }
        this.freeAt = Math.max(this.freeAt, now) + (chunk.length / this.cond.bandwidth) * 1000;
      } else {
        chunk = head.buf;
        this.queue.shift();
      }
      this.queuedBytes -= chunk.length;
      const flushed = this.to.write(chunk);
      if (!flushed) {
        this.waitingDrain = true;
        this.to.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
        break;
      }
    }
    if (this.queuedBytes < LOW_WATER && this.from.isPaused() && !this.waitingDrain) this.from.resume();
    if (this.queue.length === 0 && this.sourceEnded && !this.to.destroyed) this.to.end();
  }
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  readonly up: Lane;
  readonly down: Lane;
}

export class FaultProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<Pair>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private refusing = false;
  private refuseUntil = 0;
  /** Conditions new connections start with (faults applied without `probability`). */
  private readonly defaults: Record<'up' | 'down', Condition> = { up: noCondition(), down: noCondition() };
  private closed = false;
  readonly stats: ProxyStats = { accepted: 0, refused: 0, resets: 0, halfCloses: 0, blackholes: 0, delays: 0, throttles: 0 };
  port = 0;

  private constructor(
    private readonly targetPort: number,
    private readonly targetHost: string,
    private readonly rand: () => number,
  ) {
    this.server = net.createServer({ allowHalfOpen: true }, (client) => this.accept(client));
  }

  /** Starts a proxy to `targetPort` (on 127.0.0.1 unless `targetHost`), listening on a free loopback port. */
  static async start(targetPort: number, targetHostOrOptions: string | FaultProxyOptions = {}, listenPort = 0): Promise<FaultProxy> {
    const options: FaultProxyOptions = typeof targetHostOrOptions === 'string' ? { targetHost: targetHostOrOptions, listenPort } : targetHostOrOptions;
    const proxy = new FaultProxy(targetPort, options.targetHost ?? '127.0.0.1', options.rand ?? Math.random);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(options.listenPort ?? 0, '127.0.0.1', () => resolve());
    });
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  /** Open client connections right now. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Connections reset so far (by `reset` faults). */
  get resets(): number {
    return this.stats.resets;
  }

  /**
   * Applies a fault; returns how many open connections it hit (0 when deferred by `after`, or
   * when it only changes what new connections meet).
   */
  apply(fault: Fault): number {
    if (this.closed) return 0;
    if (fault.after !== undefined && fault.after > 0) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.apply({ ...fault, after: 0 });
      }, fault.after);
      this.timers.add(timer);
      return 0;
    }
    const now = Date.now();
    if (fault.refuse !== undefined) this.refusing = fault.refuse;
    if (fault.refuseMs !== undefined) this.refuseUntil = Math.max(this.refuseUntil, now + fault.refuseMs);
    const chosen = [...this.pairs].filter(() => fault.probability === undefined || this.rand() < fault.probability);
    const lanesOf = (pair: Pair): Lane[] => (fault.direction === 'up' ? [pair.up] : fault.direction === 'down' ? [pair.down] : [pair.up, pair.down]);
    const directions: Array<'up' | 'down'> = fault.direction === 'up' ? ['up'] : fault.direction === 'down' ? ['down'] : ['up', 'down'];
    const forMs = fault.forMs ?? 1000;
    const condition = (cond: Condition): void => {
      if (fault.delayMs !== undefined) {
        cond.delayMs = fault.delayMs;
        cond.delayUntil = now + forMs;
      }
      if (fault.bandwidthBytesPerSec !== undefined) {
        cond.bandwidth = fault.bandwidthBytesPerSec;
        cond.bandwidthUntil = now + forMs;
      }
      if (fault.blackholeMs !== undefined) cond.blackholeUntil = Math.max(cond.blackholeUntil, now + fault.blackholeMs);
    };
    const conditional = fault.delayMs !== undefined || fault.bandwidthBytesPerSec !== undefined || fault.blackholeMs !== undefined;
    if (conditional) {
      if (fault.probability === undefined) for (const d of directions) condition(this.defaults[d]);
      for (const pair of chosen) {
        for (const lane of lanesOf(pair)) {
          condition(lane.cond);
          lane.poke();
        }
      }
      if (fault.delayMs !== undefined) this.stats.delays += chosen.length;
      if (fault.bandwidthBytesPerSec !== undefined) this.stats.throttles += chosen.length;
      if (fault.blackholeMs !== undefined) this.stats.blackholes += chosen.length;
    }
    if (fault.halfClose) {
      for (const pair of chosen) for (const lane of lanesOf(pair)) lane.shutdown();
      this.stats.halfCloses += chosen.length;
    }
    if (fault.reset) {
      for (const pair of chosen) this.destroy(pair, true);
      this.stats.resets += chosen.length;
    }
    return conditional || fault.halfClose || fault.reset ? chosen.length : 0;
  }

  /** Resets every connection and stops listening. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const pair of [...this.pairs]) this.destroy(pair, true);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.closed || this.refusing || Date.now() < this.refuseUntil) {
      this.stats.refused += 1;
      rst(client);
      return;
    }
    this.stats.accepted += 1;
    const upstream = net.connect({ port: this.targetPort, host: this.targetHost, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pair: Pair = {
      client,
      upstream,
      up: new Lane(client, upstream, this.defaults.up),
      down: new Lane(upstream, client, this.defaults.down),
    };
    this.pairs.add(pair);
    const end = (): void => this.destroy(pair, false);
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  }

  private destroy(pair: Pair, reset: boolean): void {
    if (!this.pairs.delete(pair)) return;
    pair.up.dispose();
    pair.down.dispose();
    if (reset) {
      rst(pair.client);
      rst(pair.upstream);
    } else {
      pair.client.destroy();
      pair.upstream.destroy();
    }
  }
}

/** Destroys a socket with a TCP RST where the runtime can (Node ≥ 18.3), else plainly. */
function rst(socket: net.Socket): void {
  const s = socket as net.Socket & { resetAndDestroy?: () => net.Socket };
  try {
    if (typeof s.resetAndDestroy === 'function' && !socket.destroyed && !socket.connecting) s.resetAndDestroy();
    else socket.destroy();
  } catch {
    socket.destroy();
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
