/**
 * `npm run chaos` — the chaos suite (run from source: `node chaos/run-ts.js chaos/cli.ts`).
 *
 *   npm run chaos                                   the CI budget (every scenario of CI_BUDGET, ~5 min)
 *   npm run chaos -- --scenario NAME [--seed N]     one scenario (its catalogue seed unless --seed)
 *   npm run chaos -- --file my-scenario.json        a scenario written as a JSON file
 *   npm run chaos -- --soak MINUTES                 the catalogue again and again with fresh seeds, 3× longer each
 *   npm run chaos -- --list                         the catalogue
 *   --out DIR (default .chaos-out)   --window MS (gate window, default 10000)
 *   --json   the run's summary (or the catalogue) as one JSON document on stdout; progress on stderr
 *
 * Exit status 0 only when every scenario passed the checker and the gate (and, for the CI
 * budget, every required fault kind was injected and there were at least 1,000 faults).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runScenario, type ScenarioResult } from './runner';
import { validateScenario, type Scenario } from './scenario';
import { CI_BUDGET, findScenario } from './scenarios';
import { formatSummary, summarize, writeReport } from './report';
import { stopAllRedis } from '../store/test-helpers/redis-server';

const MIN_FAULTS = 1000;

const USAGE = `usage: npm run chaos -- [--scenario NAME [--seed N] | --file SCENARIO.json | --soak MINUTES | --list] [--out DIR] [--window MS] [--json]`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string' },
      seed: { type: 'string' },
      file: { type: 'string' },
      soak: { type: 'string' },
      list: { type: 'boolean' },
      out: { type: 'string' },
      window: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const json = values.json === true;
  if (values.list && json) {
    process.stdout.write(`${JSON.stringify(CI_BUDGET.map((s) => ({ name: s.name, topology: s.topology, seed: s.seed, durationMs: s.durationMs, faults: s.faults.length })))}\n`);
    return 0;
  }
  if (values.list) {
    for (const s of CI_BUDGET) {
      const t = s.topology;
      process.stdout.write(`${s.name.padEnd(26)} ${`${t.store}/${t.transport}/${t.gateways}gw/${t.mode ?? 'child'}`.padEnd(22)} seed ${s.seed}  ${s.durationMs} ms  ${s.faults.length} fault schedules\n`);
    }
    return 0;
  }
  const root = path.resolve(values.out ?? '.chaos-out');
  const startedAt = new Date();
  const runDir = path.join(root, startedAt.toISOString().replace(/[:.]/g, '-'));
  const windowMs = values.window !== undefined ? Number(values.window) : undefined;
  // With --json stdout carries the summary alone.
  const log = (line: string): void => {
    (json ? process.stderr : process.stdout).write(`${line}\n`);
  };
  const results: ScenarioResult[] = [];
  const run = async (scenario: Scenario): Promise<ScenarioResult> => {
    log(`▶ ${scenario.name} (seed ${scenario.seed})`);
    const result = await runScenario(scenario, { outDir: runDir, log, ...(windowMs !== undefined ? { windowMs } : {}) });
    results.push(result);
    log(
      `${result.ok ? '✓' : '✗'} ${scenario.name}: ${result.faultsTotal} faults, ${result.stats?.logEvents ?? 0} log events, ${result.stats?.delivered ?? 0} delivered, ` +
        `${result.violations.length} violations, ${result.failures.length} failures, ${(result.wallMs / 1000).toFixed(1)} s ` +
        `(after the faults: ${Object.entries(result.phases).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)}s`).join(', ')})`,
    );
    for (const f of result.failures.slice(0, 5)) log(`    - ${f.split('\n')[0]}`);
    return result;
  };

  let mode: string;
  let coverage = false;
  if (values.scenario !== undefined || values.file !== undefined) {
    let scenario: Scenario;
    if (values.file !== undefined) {
      scenario = JSON.parse(fs.readFileSync(values.file, 'utf8')) as Scenario;
    } else {
      const found = findScenario(values.scenario as string);
      if (!found) {
        process.stderr.write(`no scenario named ${values.scenario}; --list shows them\n`);
        return 2;
      }
      scenario = found;
    }
    if (values.seed !== undefined) scenario = { ...scenario, seed: Number(values.seed) };
    validateScenario(scenario);
    mode = `scenario ${scenario.name}, seed ${scenario.seed}`;
    await run(scenario);
  } else if (values.soak !== undefined) {
    const minutes = Number(values.soak);
    if (!(minutes > 0)) throw new Error(`--soak ${values.soak}: give the minutes to run`);
    mode = `soak ${minutes} min`;
    const deadline = Date.now() + minutes * 60_000;
    // Bounded by the deadline: no scenario starts after it, and each one is bounded itself.
    for (let round = 1; Date.now() < deadline; round++) {
      for (const base of CI_BUDGET) {
        if (Date.now() >= deadline) break;
        await run({ ...base, seed: base.seed + 1000 * round, durationMs: base.durationMs * 3 });
      }
    }
  } else {
    mode = 'CI budget';
    coverage = true;
    for (const scenario of CI_BUDGET) await run(scenario);
  }
  const summary = summarize(mode, startedAt, results, coverage, MIN_FAULTS);
  writeReport(root, runDir, summary);
  log('');
  log(formatSummary(summary));
  log(`report: ${path.relative(process.cwd(), path.join(runDir, 'summary.txt'))} (time series: *.series.json beside it)`);
  if (json) process.stdout.write(`${JSON.stringify({ ...summary, scenarios: summary.scenarios.map((r) => ({ ...r, windows: undefined })) })}\n`);
  return summary.ok ? 0 : 1;
}

// Interrupted: exit, so the 'exit' hooks kill every redis-server and gateway process started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main(process.argv.slice(2))
  .then(async (code) => {
    await stopAllRedis();
    process.exit(code);
  })
  .catch(async (error: unknown) => {
    process.stderr.write(`chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await stopAllRedis();
    process.exit(2);
  });
