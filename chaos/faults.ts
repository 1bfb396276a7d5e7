/**
 * Fires a scenario's fault schedule: expands it with the seed into timed firings, applies each
 * one to the proxies, the Redis server, the gateway processes or the workload, and counts what
 * it injected per kind. Heavy faults on one target (a Redis kill, a gateway SIGSTOP) never
 * overlap: a firing that finds its target busy is counted as skipped, not injected.
 */
import { command } from '../store/test-helpers/redis-server';
import type { Fault as LinkFault } from './fault-proxy';
import { faultKinds, type Scenario, type ScheduledFault } from './scenario';
import type { ChaosTopology, GatewayNode } from './topology';
import { pick, sleep } from './util';
import type { ChaosWorkload } from './workload';

export interface Firing {
  /** ms after the workload started */
  readonly at: number;
  readonly fault: ScheduledFault;
}

/** The firings of a schedule, in time order; the same seed gives the same list. */
export function planFaults(scenario: Scenario, rand: () => number): Firing[] {
  const firings: Firing[] = [];
  for (const fault of scenario.faults) {
    let at = fault.after;
    let count = 0;
    const jitter = fault.jitter ?? 0.3;
    // Bounded: `every` is at least 20 ms (validateScenario) and the loop stops at the duration.
    while (at < scenario.durationMs && (fault.times === undefined || count < fault.times)) {
      firings.push({ at: Math.round(at), fault });
      count += 1;
      if (fault.every === undefined) break;
      at += fault.every * (1 + (rand() * 2 - 1) * jitter);
    }
  }
  return firings.sort((a, b) => a.at - b.at);
}

export interface FaultLogEntry {
  readonly at: number;
  readonly kinds: readonly string[];
  /** Connections hit, for link faults. */
  readonly hit?: number;
  readonly skipped?: string;
}

export class FaultInjector {
  /** Injected faults per kind. */
  readonly counts: Record<string, number> = {};
  /** Firings skipped per kind (target busy or absent). */
  readonly skipped: Record<string, number> = {};
  /** Every firing, in order, with the ms it happened at (for the time series). */
  readonly log: FaultLogEntry[] = [];
  /** Errors while injecting (a restart that failed is a finding, not noise). */
  readonly errors: string[] = [];
  private readonly firings: Firing[];
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;
  private stopped = false;
  private redisBusy = false;
  private readonly heavy = new Set<Promise<void>>();

  constructor(
    scenario: Scenario,
    private readonly topology: ChaosTopology,
    private readonly workload: ChaosWorkload,
    private readonly rand: () => number,
  ) {
    this.firings = planFaults(scenario, rand);
  }

  get planned(): number {
    return this.firings.length;
  }

  start(t0: number): void {
    this.t0 = t0;
    this.arm();
  }

  /** No firing after this; resolves once every heavy fault healed (processes resumed and restarted). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([...this.heavy]);
    // Whatever happened, leave every process running for the drain and the final read.
    const redis = this.topology.redis;
    if (redis && redis.pid === null) await redis.restart().catch((e: unknown) => this.errors.push(`redis restart at the end: ${String(e)}`));
    for (const g of this.topology.gateways) {
      if (g.process && !g.process.running) await g.process.start().catch((e: unknown) => this.errors.push(`gateway ${g.index} start at the end: ${String(e)}`));
      g.up = true;
    }
  }

  /** Total injected faults. */
  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }

  private arm(): void {
    if (this.stopped) return;
    const firing = this.firings[this.next];
    if (!firing) return;
    const wait = Math.max(0, this.t0 + firing.at - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Fire everything due now (a busy event loop may have delayed several).
      const now = Date.now() - this.t0;
      while (!this.stopped && this.next < this.firings.length && (this.firings[this.next] as Firing).at <= now) {
        this.fire(this.firings[this.next] as Firing);
        this.next += 1;
      }
      this.arm();
    }, wait);
  }

  private count(kinds: readonly string[], at: number, hit?: number): void {
    for (const k of kinds) this.counts[k] = (this.counts[k] ?? 0) + 1;
    this.log.push(hit === undefined ? { at, kinds } : { at, kinds, hit });
  }

  private skip(kinds: readonly string[], at: number, why: string): void {
    for (const k of kinds) this.skipped[k] = (this.skipped[k] ?? 0) + 1;
    this.log.push({ at, kinds, skipped: why });
  }

  private runHeavy(work: () => Promise<void>): void {
    const p = work().catch((e: unknown) => {
      this.errors.push(String(e instanceof Error ? e.message : e));
    });
    this.heavy.add(p);
    void p.finally(() => this.heavy.delete(p));
  }

  private fire(firing: Firing): void {
    const { fault } = firing;
    const kinds = faultKinds(fault);
    const at = Date.now() - this.t0;
    switch (fault.on) {
      case 'client': {
        const nodes = this.nodes(fault.gateway);
        const who = fault.who ?? 'all';
        const proxies = nodes.flatMap((g) => (who === 'producers' ? [g.producerProxy] : who === 'readers' ? [g.readerProxy] : [g.producerProxy, g.readerProxy]));
        const hit = proxies.reduce((n, p) => n + p.apply(linkFault(fault)), 0);
        this.count(kinds, at, hit);
        return;
      }
      case 'redis-link': {
        const proxies = this.nodes(fault.gateway).flatMap((g) => (g.redisProxy ? [g.redisProxy] : []));
        const hit = proxies.reduce((n, p) => n + p.apply(linkFault(fault)), 0);
        this.count(kinds, at, hit);
        return;
      }
      case 'redis': {
        const redis = this.topology.redis;
        if (!redis || this.redisBusy || redis.pid === null) return this.skip(kinds, at, 'redis busy');
        this.redisBusy = true;
        this.count(kinds, at);
        this.runHeavy(async () => {
          try {
            if (fault.sigstopMs !== undefined) {
              redis.pause();
              await sleep(fault.sigstopMs);
              redis.resume();
            } else if (fault.clientPause !== undefined) {
              await command(redis.port, 'CLIENT', 'PAUSE', fault.clientPause.ms, fault.clientPause.mode);
              await sleep(fault.clientPause.ms);
            } else if (fault.killDownMs !== undefined) {
              await redis.kill();
              await sleep(fault.killDownMs);
              await redis.restart();
            }
          } finally {
            this.redisBusy = false;
          }
        });
        return;
      }
      case 'gateway': {
        const candidates = this.topology.gateways.filter((g) => g.process && !g.busy && (fault.index === undefined || g.index === fault.index));
        if (candidates.length === 0) return this.skip(kinds, at, 'gateway busy');
        const node = pick(this.rand, candidates);
        const proc = node.process;
        if (!proc) return this.skip(kinds, at, 'not a process');
        node.busy = true;
        node.up = false;
        this.count(kinds, at);
        this.runHeavy(async () => {
          try {
            if (fault.kill9DownMs !== undefined) {
              await proc.kill9();
              await sleep(fault.kill9DownMs);
              await proc.start();
            } else if (fault.sigstopMs !== undefined) {
              proc.pause();
              await sleep(fault.sigstopMs);
              proc.resume();
            } else if (fault.terminateDownMs !== undefined) {
              await proc.terminate();
              await sleep(fault.terminateDownMs);
              await proc.start();
            }
          } finally {
            node.busy = false;
            node.up = true;
          }
        });
        return;
      }
      case 'clients': {
        if (fault.disconnectStorm !== undefined) {
          const share = fault.disconnectStorm;
          let hit = 0;
          for (const g of this.topology.gateways) {
            hit += g.producerProxy.apply({ reset: true, probability: share });
            hit += g.readerProxy.apply({ reset: true, probability: share });
          }
          hit += this.workload.restartReaders(share);
          this.count(kinds, at, hit);
        } else if (fault.takeover) {
          if (this.workload.takeover()) this.count(kinds, at);
          else this.skip(kinds, at, 'no producer streaming');
        } else if (fault.duplicateStorm !== undefined) {
          this.workload.duplicateStorm(fault.duplicateStorm);
          this.count(kinds, at);
        } else if (fault.secondWriter !== undefined) {
          if (this.workload.secondWriter(fault.secondWriter)) this.count(kinds, at);
          else this.skip(kinds, at, 'no producer streaming');
        } else if (fault.sessionReset || fault.sessionDelete) {
          // An operator's call to the admin API; the workload keeps it apart from the session's other faults.
          if (this.workload.operate(fault.sessionDelete ? 'delete' : 'reset')) this.count(kinds, at);
          else this.skip(kinds, at, 'no producer streaming');
        }
        return;
      }
    }
  }

  private nodes(index: number | undefined): GatewayNode[] {
    return index === undefined ? this.topology.gateways : this.topology.gateways.filter((g) => g.index === index);
  }
}

/** The proxy part of a scheduled link fault (timing and targeting fields removed). */
function linkFault(fault: ScheduledFault): LinkFault {
  const { on: _on, after: _after, every: _every, times: _times, jitter: _jitter, ...rest } = fault as ScheduledFault & { who?: unknown; gateway?: unknown };
  const { who: _who, gateway: _gateway, ...link } = rest as typeof rest & { who?: unknown; gateway?: unknown };
  return link as LinkFault;
}
