/**
 * The runner end to end on a small in-process scenario (the CI budget is `npm run chaos`, not
 * this): faults fire and are counted, the history is checked, the gate records windows.
 */
import { planFaults } from './faults';
import { runScenario } from './runner';
import { validateScenario, type Scenario } from './scenario';
import { CI_BUDGET } from './scenarios';
import { mulberry32 } from './util';

jest.setTimeout(60_000);

const small: Scenario = {
  name: 'jest-small',
  topology: { store: 'lmdb', transport: 'ws', gateways: 1, mode: 'inproc' },
  workload: { sessions: 2, readersPerSession: 2, chunksPerSecond: 150, chunksPerGeneration: 120 },
  faults: [
    { on: 'client', after: 200, every: 200, reset: true, probability: 0.2 },
    { on: 'client', after: 300, every: 500, delayMs: 50, forMs: 200 },
    { on: 'clients', after: 600, disconnectStorm: 0.5 },
    { on: 'clients', after: 900, takeover: true },
    { on: 'clients', after: 300, duplicateStorm: 60 },
    // Fires until the end: a firing that finds no producer streaming yet (a loaded machine) is skipped.
    { on: 'clients', after: 600, every: 300, secondWriter: 2 },
  ],
  durationMs: 3000,
  seed: 7,
  expect: { resumeTelemetry: true },
};

describe('chaos runner', () => {
  it('runs a small scenario: faults counted, history checked with no violation, gate windows recorded', async () => {
    const result = await runScenario(small, { windowMs: 1000 });
    expect(result.failures).toEqual([]);
    expect(result.violations).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.faults['client-link:reset']).toBeGreaterThan(5);
    expect(result.faults['clients:duplicate-storm']).toBe(1);
    // The second writer was refused: told the generation is someone else's, its frames BAD_FRAME.
    expect(result.faults['clients:second-writer']).toBeGreaterThanOrEqual(1);
    expect(result.secondWriter['GENERATION_ACTIVE']).toBeGreaterThan(0);
    expect(result.secondWriter['BAD_FRAME']).toBeGreaterThan(0);
    expect(result.stats?.intrusions).toBeGreaterThanOrEqual(10);
    expect(result.stats?.contentChecked).toBeGreaterThan(result.stats?.logEvents ?? 0);
    // How much a 3 s run writes depends on the machine's speed; what it writes whatever the
    // speed: a generation in each of the two sessions, and the storm's two (A, 30 chunks, fenced;
    // B, 10 chunks) with their starts and ends; the user message before each generation.
    expect(result.stats?.generations).toBeGreaterThanOrEqual(4);
    expect(result.stats?.logEvents).toBeGreaterThanOrEqual(44 + 2 * 3);
    // Every reader got its session up to the final head (a short one is in `failures`).
    expect(result.stats?.readers).toBe(4);
    expect(result.stats?.delivered).toBeGreaterThanOrEqual(4 * 3);
    expect(result.stats?.fenced).toBeGreaterThanOrEqual(1); // the storm's stale writer at least
    expect(result.windows.length).toBeGreaterThanOrEqual(3);
    expect(result.client.resumes).toBeGreaterThan(0);
  });

  it('plans the same faults for the same seed, bounded by the duration', () => {
    const plan = (seed: number): string => JSON.stringify(planFaults({ ...small, seed }, mulberry32(seed)).map((f) => [f.at, f.fault.on]));
    expect(plan(7)).toEqual(plan(7));
    expect(plan(7)).not.toEqual(plan(8));
    expect(planFaults(small, mulberry32(7)).every((f) => f.at < small.durationMs)).toBe(true);
  });

  it('refuses scenarios that cannot run as written, and the catalogue is valid', () => {
    expect(() => validateScenario({ ...small, topology: { ...small.topology, gateways: 2 } })).toThrow(/LMDB is embedded/);
    expect(() => validateScenario({ ...small, faults: [{ on: 'gateway', after: 0, kill9DownMs: 100 }] })).toThrow(/mode 'child'/);
    expect(() => validateScenario({ ...small, faults: [{ on: 'client', after: 0, every: 1, reset: true }] })).toThrow(/every/);
    expect(() => validateScenario({ ...small, faults: [{ on: 'clients', after: 0, secondWriter: 0 }] })).toThrow(/secondWriter/);
    for (const scenario of CI_BUDGET) expect(() => validateScenario(scenario)).not.toThrow();
  });
});
