/**
 * The live session actors of this process: created on first use (state loaded from the store),
 * evicted after sessionIdleMs with nothing left to do.
 */
import type { Logger } from 'pino';
import type { SessionId } from '../protocol/types';
import type { SessionStore } from '../store/types';
import { SessionActor, type ActorDeps } from './actor';
import type { GatewayConfig } from './config';
import type { FlusherOptions } from './flusher';
import type { Metrics, TelemetrySink } from './telemetry';
import type { Toggles } from './toggles';

interface Slot {
  actor: SessionActor;
  /** Pending while the actor loads; calls made meanwhile chain on it, in order. */
  loading: Promise<SessionActor> | null;
}

export class ActorRegistry {
  private readonly slots = new Map<SessionId, Slot>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly flusherOptions: FlusherOptions;
  /** Shared by every actor. */
  private readonly actorDeps: ActorDeps;

  constructor(
    store: SessionStore,
    private readonly config: GatewayConfig,
    metrics: Metrics,
    telemetry: TelemetrySink,
    logger: Logger,
    toggles: Toggles,
  ) {
    this.flusherOptions = {
      // Read on every batch: synchronous append mode makes every write a store call of its own.
      get maxBatchEvents() {
        return toggles.syncAppend ? 1 : config.maxBatchEvents;
      },
      maxBatchBytes: config.maxBatchBytes,
      get lingerMs() {
        return toggles.syncAppend ? 0 : config.lingerMs;
      },
      retryBudgetMs: config.storeRetryBudgetMs,
      probeIntervalMs: config.storeProbeIntervalMs,
      clock: config.clock,
    };
    this.actorDeps = { toggles, flusherOptions: this.flusherOptions, store, config, metrics, telemetry, logger };
    this.sweeper = setInterval(() => this.sweep(), Math.max(100, Math.floor(config.sessionIdleMs / 2)));
    this.sweeper.unref();
  }

  get size(): number {
    return this.slots.size;
  }

  /**
   * Runs `fn` on the session's actor: synchronously when it is loaded, after its load otherwise.
   * Calls for one session run in call order either way. Load failures reach `onError`.
   */
  with(session: SessionId, fn: (actor: SessionActor) => void, onError: (error: unknown) => void): void {
    let slot = this.slots.get(session);
    if (!slot) {
      const actor = new SessionActor(session, this.actorDeps);
      const created: Slot = { actor, loading: null };
      created.loading = actor.load().then(
        () => {
          created.loading = null;
          return actor;
        },
        (error: unknown) => {
          // Forget the slot so the next use retries the load.
          if (this.slots.get(session) === created) this.slots.delete(session);
          throw error;
        },
      );
      this.slots.set(session, created);
      slot = created;
    }
    if (!slot.loading) {
      fn(slot.actor);
      return;
    }
    slot.loading.then(fn, onError);
  }

  /** The session's actor if it is loaded here (never loads one). */
  peek(session: SessionId): SessionActor | undefined {
    const slot = this.slots.get(session);
    return slot === undefined || slot.loading ? undefined : slot.actor;
  }

  /** Runs `fn` on the session's actor (loading it if needed) and resolves with what it resolves with. */
  run<T>(session: SessionId, fn: (actor: SessionActor) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => this.with(session, (actor) => fn(actor).then(resolve, reject), reject));
  }

  /** Totals over loaded actors, for gauges. */
  queueDepth(): number {
    let depth = 0;
    for (const slot of this.slots.values()) if (!slot.loading) depth += slot.actor.queueDepth;
    return depth;
  }

  /** Waits (bounded) for every queued write to be answered, then closes every actor. */
  async close(timeoutMs: number): Promise<void> {
    clearInterval(this.sweeper);
    const actors = [...this.slots.values()].map((slot) => slot.actor);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(actors.map((actor) => actor.whenIdle())),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    for (const actor of actors) actor.close();
    this.slots.clear();
  }

  private sweep(): void {
    const now = this.config.clock();
    for (const [session, slot] of this.slots) {
      if (!slot.loading && slot.actor.evictable(now)) {
        slot.actor.close();
        this.slots.delete(session);
      }
    }
  }
}
