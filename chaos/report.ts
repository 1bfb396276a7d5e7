/**
 * The chaos report: a readable summary table (scenarios, faults per kind, gate windows,
 * failures) and the JSON time series next to it.
 *
 *   .chaos-out/<run>/summary.txt             what `npm run chaos` prints at the end
 *   .chaos-out/<run>/summary.json            the same, as data
 *   .chaos-out/<run>/<scenario>.series.json  the gate windows of one scenario (10 s each)
 *   .chaos-out/<run>/<scenario>-seed<N>.history.json   the recorded history of a failed scenario
 *   .chaos-out/latest -> <run>
 */
import fs from 'node:fs';
import path from 'node:path';
import { formatViolation, judgeIntrusion } from './checker';
import type { ScenarioResult } from './runner';
import { REQUIRED_FAULT_KINDS } from './scenario';

export interface RunSummary {
  readonly mode: string;
  readonly startedAt: string;
  readonly wallMs: number;
  readonly scenarios: readonly ScenarioResult[];
  readonly faults: Record<string, number>;
  readonly faultsTotal: number;
  /** Answers the second writer got, per code, over every scenario. */
  readonly secondWriter: Record<string, number>;
  readonly violations: number;
  /** Run-level failures: missing fault kinds, too few faults (CI budget only). */
  readonly problems: readonly string[];
  readonly ok: boolean;
}

export function summarize(mode: string, startedAt: Date, scenarios: readonly ScenarioResult[], requireCoverage: boolean, minFaults: number): RunSummary {
  const faults: Record<string, number> = {};
  for (const r of scenarios) for (const [k, n] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + n;
  const faultsTotal = Object.values(faults).reduce((a, b) => a + b, 0);
  const secondWriter: Record<string, number> = {};
  for (const r of scenarios) for (const [k, n] of Object.entries(r.secondWriter)) secondWriter[k] = (secondWriter[k] ?? 0) + n;
  const violations = scenarios.reduce((n, r) => n + r.violations.length, 0);
  const problems: string[] = [];
  if (requireCoverage) {
    const missing = REQUIRED_FAULT_KINDS.filter((k) => !(faults[k] ?? 0));
    if (missing.length > 0) problems.push(`fault kinds never injected: ${missing.join(', ')}`);
    if (faultsTotal < minFaults) problems.push(`only ${faultsTotal} faults injected, fewer than ${minFaults}`);
    const stores = new Set(scenarios.map((r) => r.topology.split('/')[0]));
    const transports = new Set(scenarios.map((r) => r.topology.split('/')[1]));
    for (const need of ['lmdb', 'redis']) if (!stores.has(need)) problems.push(`no scenario on ${need}`);
    for (const need of ['ws', 'uws']) if (!transports.has(need)) problems.push(`no scenario over ${need}`);
  }
  return {
    mode,
    startedAt: startedAt.toISOString(),
    wallMs: Date.now() - startedAt.getTime(),
    scenarios,
    faults,
    faultsTotal,
    secondWriter,
    violations,
    problems,
    ok: problems.length === 0 && scenarios.every((r) => r.ok),
  };
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

function table(header: readonly string[], rows: readonly (readonly string[])[], rightFrom = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => pad(c, widths[i] as number, i >= rightFrom)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
const msOrDash = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '-' : `${ms}ms`);
const pct = (rate: number | null): string => (rate === null ? '-' : `${(rate * 100).toFixed(rate === 1 ? 0 : 1)}%`);

export function formatSummary(summary: RunSummary): string {
  const out: string[] = [];
  const verdict = summary.ok ? 'PASS' : 'FAIL';
  out.push(
    `spool chaos (${summary.mode}): ${verdict} — ${summary.scenarios.length} scenarios in ${secs(summary.wallMs)}, ` +
      `${summary.faultsTotal} faults injected, ${summary.violations} checker violations`,
    '',
  );
  out.push(
    table(
      ['scenario', 'topology', 'seed', 'wall', 'faults', 'log events', 'delivered', 'acks', 'resumes', 'slowest', 'violations', 'result'],
      summary.scenarios.map((r) => [
        r.name,
        r.topology,
        String(r.seed),
        secs(r.wallMs),
        String(r.faultsTotal),
        String(r.stats?.logEvents ?? 0),
        String(r.stats?.delivered ?? 0),
        String(r.stats?.acksChecked ?? 0),
        String(r.client.resumes),
        msOrDash(r.client.slowestResumeMs),
        String(r.violations.length),
        r.ok ? 'ok' : 'FAIL',
      ]),
      2,
    ),
    '',
  );
  const kinds = Object.keys(summary.faults).sort();
  out.push('faults injected per kind', table(['kind', 'count'], [...kinds.map((k) => [k, String(summary.faults[k])]), ['total', String(summary.faultsTotal)]]), '');
  const answers = Object.keys(summary.secondWriter).sort();
  if (answers.length > 0) {
    const rows = answers.map((a) => [a, judgeIntrusion(a), String(summary.secondWriter[a])]);
    out.push('answers to the second writer (anything accepted is an intruder-accepted violation)', table(['answer', 'counts as', 'count'], rows, 2), '');
  }
  const windowRows = summary.scenarios.flatMap((r) =>
    r.windows.map((w) => [
      r.name,
      `${(w.fromMs / 1000).toFixed(0)}-${(w.toMs / 1000).toFixed(0)}s`,
      String(w.faults),
      `${w.client.resumesCompleted}/${w.client.resumesCompleted + w.client.resumesFailed}`,
      pct(w.client.successRate),
      msOrDash(w.client.slowestResumeMs),
      String(w.client.reconnects),
      `${w.server.resumeLive}/${w.server.resumeAttempts}`,
      msOrDash(w.server.slowestResumeMs),
      String(w.server.trimmed),
      String(w.server.degradedDropped),
      String(w.server.fencedWrites),
      w.ok ? 'ok' : 'FAIL',
    ]),
  );
  out.push(
    'gate windows (client resumes: loss → live again, end to end; server: resume.live / resume.attempt)',
    table(['scenario', 'window', 'faults', 'resumes', 'success', 'slowest', 'reconnects', 'server', 'srv slowest', 'trimmed', 'degraded', 'fenced', 'gate'], windowRows, 2),
    '',
  );
  const failing = summary.scenarios.filter((r) => !r.ok);
  if (summary.problems.length > 0) out.push('run problems', ...summary.problems.map((p) => `  - ${p}`), '');
  for (const r of failing) {
    out.push(`FAILED ${r.name} (seed ${r.seed}) — reproduce: npm run chaos -- --scenario ${r.name} --seed ${r.seed}`);
    for (const v of r.violations.slice(0, 5)) out.push(formatViolation(v, r.name, r.seed));
    if (r.violations.length > 5) out.push(`  … and ${r.violations.length - 5} more violations`);
    for (const f of r.failures.slice(0, 10)) out.push(`  - ${f.split('\n')[0]}`);
    if (r.failures.length > 10) out.push(`  … and ${r.failures.length - 10} more failures`);
    if (r.historyFile) out.push(`  recorded history: ${r.historyFile}`);
    out.push('');
  }
  return out.join('\n');
}

/** Writes summary.txt, summary.json and one series file per scenario; points `latest` at the run. */
export function writeReport(root: string, runDir: string, summary: RunSummary): void {
  fs.mkdirSync(runDir, { recursive: true });
  fs.writeFileSync(path.join(runDir, 'summary.txt'), formatSummary(summary) + '\n');
  const compact = { ...summary, scenarios: summary.scenarios.map((r) => ({ ...r, windows: undefined })) };
  fs.writeFileSync(path.join(runDir, 'summary.json'), JSON.stringify(compact, null, 2));
  for (const r of summary.scenarios) {
    const series = { scenario: r.name, seed: r.seed, topology: r.topology, windowMs: r.windows[0] ? r.windows[0].toMs - r.windows[0].fromMs : null, windows: r.windows };
    fs.writeFileSync(path.join(runDir, `${r.name}-seed${r.seed}.series.json`), JSON.stringify(series, null, 2));
  }
  const latest = path.join(root, 'latest');
  try {
    fs.rmSync(latest, { force: true });
    fs.symlinkSync(path.relative(root, runDir), latest);
  } catch {
    // a symlink is a convenience only
  }
}
