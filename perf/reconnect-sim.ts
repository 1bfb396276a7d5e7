/**
 * The SDK's reconnect schedule through one outage, simulated: no socket, no timer, just the
 * delays the schedule draws. bench:resume measures the current schedule for real and uses this
 * to put the previous one beside it under the same outage (the SDK has no switch back to the
 * previous schedule, on purpose: it is not a mode anyone should run).
 *
 *   t = 0 the client sees its connection drop      outage.downMs: the network accepts again
 *   ──●── wait ──▲ refused (refusedMs) ── wait ──▲ refused ── … ── wait ──▲ accepted
 *                                                          acceptedAfterMs ├──┤
 *
 * Both schedules are the SDK's own functions (client/util.ts), not copies of them.
 */
import { DEFAULT_BACKOFF, jitteredDelay, reconnectDelay } from '../client/util';

/** A reconnect schedule: the wait before the next attempt. */
export interface Schedule {
  readonly name: string;
  /**
   * @param downForMs how long the connection has been down when the last attempt failed
   * @param failures attempts since the last welcome (the drop itself counts as none)
   */
  delay(downForMs: number, failures: number, random: () => number): number;
}

/** Today's SDK: full jitter under max(100 ms, downFor / 2), at most 5 s (`reconnectDelay`). */
export const CURRENT_SCHEDULE: Schedule = {
  name: 'full jitter under max(100, down/2) ≤ 5000 ms',
  delay: (downForMs, _failures, random) => reconnectDelay(downForMs, DEFAULT_BACKOFF, random),
};

/** The SDK before issue 10: full jitter under min(5000, 100·2^failures) (`jitteredDelay`). */
export const PREVIOUS_SCHEDULE: Schedule = {
  name: 'full jitter under min(5000, 100·2^failures) ms',
  delay: (_downForMs, failures, random) => jitteredDelay(failures, DEFAULT_BACKOFF, random),
};

/** An outage as one client sees it. */
export interface Outage {
  /** From the client seeing its connection drop to the network accepting again, in ms. */
  readonly downMs: number;
  /** How long an attempt takes to fail while the network refuses, in ms. */
  readonly refusedMs: number;
}

/** One client through one outage. */
export interface OutageRun {
  /** Attempts that started before the network was back (and were refused). */
  readonly refused: number;
  /** From the network's return to the start of the attempt that was accepted, in ms (≥ 0). */
  readonly acceptedAfterMs: number;
}

/** More attempts than any schedule makes in any outage a benchmark simulates. */
const MAX_ATTEMPTS = 100_000;

/** Runs `schedule` through `outage`; `random` in [0, 1) draws the jitter. */
export function simulateOutage(schedule: Schedule, outage: Outage, random: () => number): OutageRun {
  let t = 0;
  for (let failures = 0; failures < MAX_ATTEMPTS; failures++) {
    const attemptAt = t + schedule.delay(t, failures, random);
    if (attemptAt >= outage.downMs) return { refused: failures, acceptedAfterMs: attemptAt - outage.downMs };
    t = attemptAt + outage.refusedMs;
  }
  throw new Error(`simulateOutage: ${schedule.name} made ${MAX_ATTEMPTS} attempts in a ${outage.downMs} ms outage`);
}

/** A seeded PRNG (mulberry32), so a simulation prints the same figures run after run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
