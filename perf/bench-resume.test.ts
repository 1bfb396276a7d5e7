/**
 * bench:resume at toy sizes, asserting correctness only: every reader is live again after the
 * drop, the outage and the gateway's SIGKILL and restart, and saw every generation whole at
 * contiguous offsets; every figure is a finite number >= 0 (a toy run's time can read 0 on a
 * coarse clock, so never positive-only). Speed is never asserted. The simulation is checked on
 * its own: it is pure, so its figures are exact.
 */
import { FULL_SIZES, formatResumeReport, runResumeBench } from './bench-resume';
import type { LatencySummary } from './latency';
import { CURRENT_SCHEDULE, PREVIOUS_SCHEDULE, seededRandom, simulateOutage } from './reconnect-sim';
import type { ResumeSizes } from './resume-scenarios';

const TOY: ResumeSizes = {
  ...FULL_SIZES,
  readers: 5,
  rounds: 1,
  outageMs: 1000,
  stormClients: 20,
  stormPerSession: 5,
  stormDeadMs: 300,
  backlog: 100,
  backlogRounds: 3,
  backlogWarmup: 1,
};

const finite = (value: number): void => {
  expect(Number.isFinite(value)).toBe(true);
  expect(value).toBeGreaterThanOrEqual(0);
};

const finiteSummary = (summary: LatencySummary, count: number): void => {
  expect(summary.count).toBe(count);
  for (const value of [summary.p50, summary.p99, summary.max]) finite(value);
};

describe('bench:resume at toy sizes', () => {
  // The timeout is far above the run's ~10 s: its own waits (30-120 s each) fail first and say which.
  it('every reader is live again after a drop, an outage and a gateway crash, with every generation whole', async () => {
    // Progress goes into the failure message: a run that fails says how far it got.
    const progress: string[] = [];
    const report = await runResumeBench({ sizes: TOY, log: (line) => progress.push(line) }).catch((error: unknown) => {
      throw new Error(`${String(error)}\nprogress:\n${progress.join('\n')}`);
    });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);

    finiteSummary(report.drop.measured, TOY.readers * TOY.rounds);
    finiteSummary(report.drop.simulatedCurrent, TOY.readers * TOY.rounds * 20);
    finiteSummary(report.drop.simulatedPrevious, TOY.readers * TOY.rounds * 20);
    finite(report.drop.detectMs);
    finite(report.drop.refusedMs);
    finite(report.drop.loopDelay.max);

    expect(report.outage.accepted).toBe(1);
    for (const value of [report.outage.refused, report.outage.returnMs, report.outage.simulatedCurrent, report.outage.simulatedPrevious]) finite(value);

    // One accepted attempt per reader, all of them counted in the buckets.
    expect(report.storm.returns.reduce((a, b) => a + b, 0)).toBe(TOY.stormClients);
    finiteSummary(report.storm.toLive, TOY.stormClients);
    for (const value of [report.storm.listenMs, report.storm.peakShare, report.storm.attemptsBeforeRestart, report.storm.loopDelay.max]) finite(value);

    finiteSummary(report.backlog.hot, TOY.backlogRounds);
    finiteSummary(report.backlog.store, TOY.backlogRounds);
    expect(formatResumeReport(report)).toMatch(/^correctness: every reader live again/m);
  }, 300_000);
});

describe('reconnect simulation', () => {
  it('every simulated client is accepted at or after the network returns, after a whole number of refused attempts', () => {
    const random = seededRandom(7);
    for (const schedule of [CURRENT_SCHEDULE, PREVIOUS_SCHEDULE]) {
      for (let i = 0; i < 500; i++) {
        const run = simulateOutage(schedule, { downMs: 200, refusedMs: 1 }, random);
        finite(run.acceptedAfterMs);
        expect(Number.isInteger(run.refused) && run.refused >= 0).toBe(true);
      }
    }
  });

  it('with no jitter left (random → 0) every attempt is immediate: refused once per refusedMs of the outage', () => {
    // Each attempt starts at once and fails in 10 ms: attempts at 0, 10, …, 90 are refused, 100 is accepted.
    const run = simulateOutage(CURRENT_SCHEDULE, { downMs: 100, refusedMs: 10 }, () => 0);
    expect(run).toEqual({ refused: 10, acceptedAfterMs: 0 });
  });

  it('at the top of the jitter the previous schedule doubles its ceiling per failure while today it follows the outage', () => {
    const top = (): number => 0.999999;
    // Previous: waits just under 100, 200, 400, 800 ms: refused at ~100, ~300, ~700; accepted at ~1500.
    const previous = simulateOutage(PREVIOUS_SCHEDULE, { downMs: 1000, refusedMs: 0 }, top);
    expect(previous.refused).toBe(3);
    expect(previous.acceptedAfterMs).toBeGreaterThan(400);
    // Today: under max(100, t/2): refused at ~100, ~200, ~300, ~450, ~670; accepted at ~1000.
    const current = simulateOutage(CURRENT_SCHEDULE, { downMs: 1000, refusedMs: 0 }, top);
    expect(current.refused).toBe(5);
    expect(current.acceptedAfterMs).toBeLessThan(100);
  });
});
