/**
 * `npm run perf:dashboard`: one static HTML page of spool's perf history (issue 10).
 *
 *   npm run perf:dashboard [-- --out FILE] [--history DIR] [--series FILE]
 *
 * Reads perf/history/bench.jsonl (`npm run bench -- --record`), perf/history/perf-gate.jsonl
 * (`npm run perf:gate -- --record`) and the last perf-gate run's windows
 * (.perf-out/latest/series.json, when there is one), and writes .perf-out/dashboard.html: trends
 * over the recorded runs of delivered chunks/s and delivery p50/p99 per configuration, the paced
 * run, the perf gate's chunks/s, latencies, resume success and trim rate; then the last gate
 * run's per-window series. Charts are inline SVG (svg-chart.ts); the page needs no server, no
 * script and no network. Every string from the files is escaped. A missing or empty history says
 * so on the page; a line that is not JSON or lacks what the page needs is skipped and counted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { HISTORY_DIR, REPO_ROOT } from './history';
import { runMain } from './report';
import { html, lineChart, type Html, type Series } from './svg-chart';

// ------------------------------------------------------------------ reading

/** A history file as read: its usable lines, and which were skipped. */
export interface HistoryFile<T> {
  readonly file: string;
  readonly exists: boolean;
  readonly runs: readonly T[];
  /** 1-based numbers of the lines skipped (not JSON, or missing a field the page needs). */
  readonly skipped: readonly number[];
}

interface RunBase {
  readonly date: string;
  readonly commit: string | null;
  readonly dirty: boolean | null;
  readonly machine: { readonly cpus?: number; readonly model?: string; readonly loadAverage?: number } | null;
}

/** Figures named `K`, each a number or null (not recorded, or not finite). */
export type Figures<K extends string> = { readonly [P in K]: number | null };

/** The figures of one configuration in a bench.jsonl line (bench-report.ts historyLine). */
const BENCH_FIGURES = ['chunksPerSec', 'deliveryP50', 'deliveryP99', 'ackP99', 'gatewayCpuUsPerChunk', 'gatewayRssMaxBytes', 'ratioToRaw'] as const;
/** The paced run's figures in a bench.jsonl line. */
const PACED_FIGURES = ['rate', 'deliveryP50', 'deliveryP99'] as const;
/** The figures of a perf-gate.jsonl line (perf-gate.ts appendHistory). */
const GATE_FIGURES = ['chunksPerSec', 'deliveryP50', 'deliveryP99', 'resumeSuccess', 'resumeP50', 'resumeP99', 'trimRate', 'gatewayCpuPercent', 'gatewayRssMax'] as const;

export interface BenchConfigLine extends Figures<(typeof BENCH_FIGURES)[number]> {
  readonly name: string;
}

export interface BenchRun extends RunBase {
  readonly workload: { readonly sessions?: number; readonly perSession?: number; readonly bytes?: number } | null;
  readonly configs: readonly BenchConfigLine[];
  readonly paced: Figures<(typeof PACED_FIGURES)[number]> | null;
}

export interface GateRun extends RunBase {
  readonly ok: boolean | null;
  readonly seconds: number | null;
  readonly figures: Figures<(typeof GATE_FIGURES)[number]>;
}

/** What the page takes of one window of series.json (gate-windows.ts WindowRecord). */
export interface WindowPoint {
  readonly index: number;
  readonly toMs: number;
  readonly ok: boolean;
  readonly chunksPerSec: number | null;
  readonly deliveryP50: number | null;
  readonly deliveryP99: number | null;
  readonly resumeSuccess: number | null;
  readonly resumesCompleted: number | null;
  readonly resumesFailed: number | null;
  readonly trimRate: number | null;
  readonly gatewayCpuPercent: number | null;
  readonly gatewayRss: number | null;
}

export interface LastGateSeries {
  readonly file: string;
  readonly startedAt: string | null;
  readonly windowMs: number | null;
  readonly minResumeSuccess: number | null;
  readonly maxTrimRate: number | null;
  readonly windows: readonly WindowPoint[];
  /** Windows skipped for lacking what the page needs. */
  readonly skipped: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A finite number, else null (JSON writes NaN as null). */
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);

/** `keys` of a JSON object, each a finite number or null: one parse for every line's figures. */
function figures<K extends string>(obj: Json, keys: readonly K[]): Figures<K> {
  const out: Partial<Record<K, number | null>> = {};
  for (const key of keys) out[key] = num(obj[key]);
  return out as Figures<K>;
}

/** The finite numbers among `keys` of a JSON object; the others left out. */
function presentNumbers<K extends string>(obj: Json, keys: readonly K[]): { [P in K]?: number } {
  const out: { [P in K]?: number } = {};
  for (const key of keys) {
    const value = num(obj[key]);
    if (value !== null) out[key] = value;
  }
  return out;
}

function runBase(line: Json): RunBase | null {
  const date = str(line['date']);
  if (date === null || Number.isNaN(Date.parse(date))) return null;
  const m = line['machine'];
  return {
    date,
    commit: str(line['commit']),
    dirty: bool(line['dirty']),
    machine: isObject(m) ? { ...presentNumbers(m, ['cpus', 'loadAverage']), ...(str(m['model']) !== null ? { model: str(m['model']) as string } : {}) } : null,
  };
}

/** A bench.jsonl line, or null when it lacks a date or its configs. */
export function parseBenchLine(line: unknown): BenchRun | null {
  if (!isObject(line)) return null;
  const base = runBase(line);
  const configs = line['configs'];
  if (base === null || !Array.isArray(configs)) return null;
  const parsed: BenchConfigLine[] = [];
  for (const c of configs) {
    if (!isObject(c) || str(c['name']) === null) return null;
    parsed.push({ name: c['name'] as string, ...figures(c, BENCH_FIGURES) });
  }
  const w = line['workload'];
  const p = line['paced'];
  return {
    ...base,
    workload: isObject(w) ? presentNumbers(w, ['sessions', 'perSession', 'bytes']) : null,
    configs: parsed,
    paced: isObject(p) ? figures(p, PACED_FIGURES) : null,
  };
}

/** A perf-gate.jsonl line (perf-gate.ts appendHistory), or null when it lacks a date or its figures. */
export function parseGateLine(line: unknown): GateRun | null {
  if (!isObject(line)) return null;
  const base = runBase(line);
  const f = line['figures'];
  if (base === null || !isObject(f)) return null;
  return {
    ...base,
    ok: bool(line['ok']),
    seconds: num(line['seconds']),
    figures: figures(f, GATE_FIGURES),
  };
}

/** Reads a JSONL history: every line through `parse`, blank lines ignored, the rest sorted by date. */
export function readHistory<T extends RunBase>(file: string, parse: (line: unknown) => T | null): HistoryFile<T> {
  if (!fs.existsSync(file)) return { file, exists: false, runs: [], skipped: [] };
  const runs: T[] = [];
  const skipped: number[] = [];
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      if (text.trim() === '') return;
      let run: T | null = null;
      try {
        run = parse(JSON.parse(text));
      } catch {
        run = null;
      }
      if (run === null) skipped.push(i + 1);
      else runs.push(run);
    });
  // Stable: runs of the same moment keep their file order.
  runs.sort((a, b) => Date.parse(a.date) - Date.parse(b.date));
  return { file, exists: true, runs, skipped };
}

/** The windows of a perf-gate series.json, or null when there is no such file or it is not one. */
export function readSeries(file: string): LastGateSeries | null {
  if (!fs.existsSync(file)) return null;
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  if (!isObject(data) || !Array.isArray(data['windows'])) return null;
  const gate = isObject(data['gate']) ? data['gate'] : {};
  const windows: WindowPoint[] = [];
  let skipped = 0;
  for (const w of data['windows'] as unknown[]) {
    const index = isObject(w) ? num(w['index']) : null;
    const toMs = isObject(w) ? num(w['toMs']) : null;
    if (!isObject(w) || index === null || toMs === null) {
      skipped++;
      continue;
    }
    const part = (key: string): Json => (isObject(w[key]) ? (w[key] as Json) : {});
    windows.push({
      index,
      toMs,
      ok: w['ok'] !== false,
      chunksPerSec: num(part('chunks')['perSec']),
      deliveryP50: num(part('delivery')['p50']),
      deliveryP99: num(part('delivery')['p99']),
      resumeSuccess: num(part('resumes')['successRate']),
      resumesCompleted: num(part('resumes')['completed']),
      resumesFailed: num(part('resumes')['failed']),
      trimRate: num(part('trim')['rate']),
      gatewayCpuPercent: num(part('gateway')['cpuPercent']),
      gatewayRss: num(part('gateway')['rss']),
    });
  }
  return {
    file,
    startedAt: str(data['startedAt']),
    windowMs: num(gate['windowMs']),
    minResumeSuccess: num(gate['minResumeSuccess']),
    maxTrimRate: num(gate['maxTrimRate']),
    windows,
    skipped,
  };
}

// ------------------------------------------------------------------ the page

export interface DashboardInput {
  readonly bench: HistoryFile<BenchRun>;
  readonly gate: HistoryFile<GateRun>;
  readonly series: LastGateSeries | null;
  /** Shown as the page's moment. @default now */
  readonly generatedAt?: Date;
}

/** `2026-11-29 15:31` (UTC) of an ISO date. */
const shortDate = (iso: string): string => iso.slice(0, 16).replace('T', ' ');
const shortCommit = (run: RunBase): string => (run.commit === null ? 'no commit' : `${run.commit.slice(0, 8)}${run.dirty === true ? '+dirty' : ''}`);
const pct = (rate: number | null): number | null => (rate === null ? null : rate * 100);
const cell = (n: number | null, digits = 0): string => (n === null ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

function sourceNote(h: HistoryFile<RunBase>, record: string): Html {
  const name = path.basename(h.file);
  if (!h.exists || (h.runs.length === 0 && h.skipped.length === 0)) {
    return html`<p class="empty-history" data-history="${name}">No runs recorded in ${name} yet: <code>${record}</code> appends one.</p>`;
  }
  const skipped =
    h.skipped.length === 0 ? null : html` <span class="skipped" data-skipped="${h.skipped.length}">${h.skipped.length} malformed line${h.skipped.length === 1 ? '' : 's'} skipped (line ${h.skipped.join(', ')}).</span>`;
  return html`<p class="source" data-history="${name}">${h.runs.length} run${h.runs.length === 1 ? '' : 's'} from ${name}.${skipped}</p>`;
}

function benchSection(h: HistoryFile<BenchRun>): Html {
  const runs = h.runs;
  const body: Html[] = [];
  if (runs.length > 0) {
    const xLabels = runs.map((r) => shortDate(r.date));
    const notes = runs.map((r) => `${shortCommit(r)}, load ${cell(r.machine?.loadAverage ?? null, 2)}`);
    const names = [...new Set(runs.flatMap((r) => r.configs.map((c) => c.name)))];
    const perConfig = (pick: (c: BenchConfigLine) => number | null): Series[] =>
      names.map((name) => ({ name, values: runs.map((r) => { const c = r.configs.find((x) => x.name === name); return c === undefined ? null : pick(c); }), notes }));
    body.push(
      html`<div class="charts">`,
      lineChart({ id: 'bench-chunks-per-sec', title: 'Delivered chunks/s per configuration', unit: 'chunks/s', xLabels, series: perConfig((c) => c.chunksPerSec) }),
      lineChart({ id: 'bench-delivery-p99', title: 'Delivery p99 per configuration (saturated)', unit: 'ms', xLabels, series: perConfig((c) => c.deliveryP99) }),
      lineChart({ id: 'bench-delivery-p50', title: 'Delivery p50 per configuration (saturated)', unit: 'ms', xLabels, series: perConfig((c) => c.deliveryP50) }),
      lineChart({
        id: 'bench-paced',
        title: 'Paced run: delivery latency',
        unit: 'ms',
        xLabels,
        series: [
          { name: 'paced p50', values: runs.map((r) => r.paced?.deliveryP50 ?? null), notes: runs.map((r, i) => `${notes[i] as string}, ${cell(r.paced?.rate ?? null)} chunks/s`) },
          { name: 'paced p99', values: runs.map((r) => r.paced?.deliveryP99 ?? null), notes },
        ],
      }),
      html`</div>`,
    );
    const last = runs[runs.length - 1] as BenchRun;
    const w = last.workload;
    body.push(
      html`<h3>Last run: ${shortDate(last.date)} UTC, ${shortCommit(last)}; ${w?.sessions ?? '?'} sessions × ${cell(w?.perSession ?? null)} chunks × ${w?.bytes ?? '?'} B; ${last.machine?.cpus ?? '?'} CPUs (${last.machine?.model ?? '?'}), load ${cell(last.machine?.loadAverage ?? null, 2)}</h3>`,
      html`<table class="runs" data-table="bench-last"><thead><tr><th>config</th><th>delivered/s</th><th>delivery p50 ms</th><th>p99 ms</th><th>ack p99 ms</th><th>gw cpu µs/chunk</th><th>gw peak rss MB</th><th>÷ raw</th></tr></thead><tbody>${last.configs.map(
        (c) =>
          html`<tr><td>${c.name}</td><td>${cell(c.chunksPerSec)}</td><td>${cell(c.deliveryP50, 1)}</td><td>${cell(c.deliveryP99, 1)}</td><td>${cell(c.ackP99, 1)}</td><td>${cell(c.gatewayCpuUsPerChunk, 1)}</td><td>${cell(c.gatewayRssMaxBytes === null ? null : c.gatewayRssMaxBytes / 1e6)}</td><td>${cell(c.ratioToRaw, 2)}</td></tr>`,
      )}</tbody></table>`,
    );
  }
  return html`<section id="bench"><h2>npm run bench</h2>${sourceNote(h, 'npm run bench -- --record')}${body}</section>`;
}

function gateSection(h: HistoryFile<GateRun>): Html {
  const runs = h.runs;
  const body: Html[] = [];
  if (runs.length > 0) {
    const xLabels = runs.map((r) => shortDate(r.date));
    const notes = runs.map((r) => `${shortCommit(r)}, ${r.ok === false ? 'FAILED' : 'passed'}, load ${cell(r.machine?.loadAverage ?? null, 2)}`);
    const failed = runs.map((r) => r.ok === false);
    const one = (name: string, pick: (r: GateRun) => number | null): Series => ({ name, values: runs.map(pick), notes, failed });
    body.push(
      html`<div class="charts">`,
      lineChart({ id: 'gate-chunks-per-sec', title: 'Perf gate: chunks/s', unit: 'chunks/s', xLabels, series: [one('perf-gate (lmdb)', (r) => r.figures.chunksPerSec)] }),
      lineChart({ id: 'gate-delivery', title: 'Perf gate: live delivery latency', unit: 'ms', xLabels, series: [one('p50', (r) => r.figures.deliveryP50), one('p99', (r) => r.figures.deliveryP99)] }),
      lineChart({
        id: 'gate-resume-success',
        title: 'Perf gate: resume success',
        unit: '%',
        xLabels,
        series: [one('resume success', (r) => pct(r.figures.resumeSuccess))],
        thresholds: [{ label: 'gate 95 %', value: 95 }],
      }),
      lineChart({ id: 'gate-trim-rate', title: 'Perf gate: trim rate', unit: '%', xLabels, series: [one('trim rate', (r) => pct(r.figures.trimRate))], thresholds: [{ label: 'gate 1 %', value: 1 }] }),
      html`</div>`,
    );
  }
  return html`<section id="perf-gate"><h2>npm run perf:gate</h2>${sourceNote(h, 'npm run perf:gate -- --record')}${body}</section>`;
}

function windowsSection(s: LastGateSeries | null, seriesFile: string): Html {
  if (s === null || s.windows.length === 0) {
    return html`<section id="windows"><h2>Last perf-gate run, per window</h2><p class="empty-history" data-series="none">No windows found in ${seriesFile}: <code>npm run perf:gate</code> writes them.</p></section>`;
  }
  const ws = s.windows;
  const xLabels = ws.map((w) => `${(w.toMs / 1000).toFixed(0)} s`);
  const failed = ws.map((w) => !w.ok);
  const one = (name: string, pick: (w: WindowPoint) => number | null): Series => ({ name, values: ws.map(pick), failed, notes: ws.map((w) => `window ${w.index}${w.ok ? '' : ', FAILED'}`) });
  const resumeNote = ws.map((w) => `window ${w.index}: ${w.resumesCompleted ?? '?'} completed, ${w.resumesFailed ?? '?'} failed`);
  const gateSuccess = s.minResumeSuccess ?? 0.95;
  const gateTrim = s.maxTrimRate ?? 0.01;
  const failedCount = failed.filter(Boolean).length;
  return html`<section id="windows"><h2>Last perf-gate run, per window</h2><p class="source" data-series="${path.basename(s.file)}">${ws.length} windows${s.windowMs === null ? '' : ` of ${s.windowMs / 1000} s`} from ${s.file}${s.startedAt === null ? '' : `, started ${shortDate(s.startedAt)} UTC`}; ${failedCount === 0 ? 'every window passed' : `${failedCount} failed (red rings)`}.${s.skipped > 0 ? ` ${s.skipped} malformed windows skipped.` : ''}</p><div class="charts">${[
    lineChart({ id: 'window-chunks-per-sec', title: 'Chunks/s per window', unit: 'chunks/s', xLabels, series: [one('chunks/s', (w) => w.chunksPerSec)] }),
    lineChart({ id: 'window-delivery', title: 'Live delivery latency per window', unit: 'ms', xLabels, series: [one('p50', (w) => w.deliveryP50), one('p99', (w) => w.deliveryP99)] }),
    lineChart({
      id: 'window-resume-success',
      title: 'Resume success per window',
      unit: '%',
      xLabels,
      series: [{ ...one('resume success', (w) => pct(w.resumeSuccess)), notes: resumeNote }],
      thresholds: [{ label: `gate ${gateSuccess * 100} %`, value: gateSuccess * 100 }],
    }),
    lineChart({ id: 'window-trim-rate', title: 'Trim rate per window', unit: '%', xLabels, series: [one('trim rate', (w) => pct(w.trimRate))], thresholds: [{ label: `gate ${gateTrim * 100} %`, value: gateTrim * 100 }] }),
    lineChart({ id: 'window-gateway-cpu', title: 'Gateway CPU per window', unit: '% of a core', xLabels, series: [one('gateway cpu', (w) => w.gatewayCpuPercent)] }),
    lineChart({ id: 'window-gateway-rss', title: 'Gateway RSS at window end', unit: 'MB', xLabels, series: [one('gateway rss', (w) => (w.gatewayRss === null ? null : w.gatewayRss / 1e6))] }),
  ]}</div></section>`;
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 6px; border-bottom: 1px solid #ddd; } h3 { font-size: 14px; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure.chart { margin: 0; padding: 8px; border: 1px solid #e4e4e4; border-radius: 4px; width: 560px; }
figcaption { font-weight: 600; margin-bottom: 4px; } .unit { color: #777; font-weight: normal; }
svg .grid { stroke: #eee; } svg .axis { stroke: #999; } svg .tick { font-size: 11px; fill: #666; }
svg .threshold line { stroke: #d62728; stroke-dasharray: 5 4; } svg .threshold text { font-size: 11px; fill: #d62728; }
svg .point.failed { stroke: #d62728; stroke-width: 3; } svg .empty { fill: #aaa; font-size: 14px; }
ul.legend { list-style: none; padding: 0; margin: 4px 0 0; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -2px; border-radius: 2px; }
table.runs { border-collapse: collapse; font-size: 13px; } table.runs td, table.runs th { border-bottom: 1px solid #eee; padding: 3px 10px; text-align: right; }
table.runs td:first-child, table.runs th:first-child { text-align: left; }
.skipped { color: #b35900; } .empty-history { color: #777; font-style: italic; } code { background: #f4f4f4; padding: 0 3px; }
`;

/** The whole page. */
export function renderDashboard(input: DashboardInput, seriesFile = '.perf-out/latest/series.json'): string {
  const generated = (input.generatedAt ?? new Date()).toISOString();
  const page = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spool perf dashboard</title><style>${STYLE}</style></head>
<body><h1>spool perf dashboard</h1><p class="generated">Generated ${shortDate(generated)} UTC from the perf history kept in the repository (perf/history/*.jsonl). Figures are recorded, never gated; runs on different machines or under different load are not comparable.</p>
${benchSection(input.bench)}
${gateSection(input.gate)}
${windowsSection(input.series, input.series?.file ?? seriesFile)}
</body></html>
`;
  return page.text;
}

/** Where the dashboard reads and writes. */
export interface DashboardPaths {
  /** @default perf/history */
  readonly historyDir?: string;
  /** @default .perf-out/latest/series.json */
  readonly seriesFile?: string;
  /** @default .perf-out/dashboard.html */
  readonly out?: string;
}

/** Reads the history and the last series, writes the page; returns what it read and where it wrote. */
export function writeDashboard(paths: DashboardPaths = {}): { readonly out: string; readonly input: DashboardInput } {
  const historyDir = paths.historyDir ?? HISTORY_DIR;
  const seriesFile = paths.seriesFile ?? path.join(REPO_ROOT, '.perf-out', 'latest', 'series.json');
  const out = paths.out ?? path.join(REPO_ROOT, '.perf-out', 'dashboard.html');
  const input: DashboardInput = {
    bench: readHistory(path.join(historyDir, 'bench.jsonl'), parseBenchLine),
    gate: readHistory(path.join(historyDir, 'perf-gate.jsonl'), parseGateLine),
    series: readSeries(seriesFile),
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, renderDashboard(input, seriesFile));
  return { out, input };
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { out: { type: 'string' }, history: { type: 'string' }, series: { type: 'string' } }, strict: true });
  const { out, input } = writeDashboard({
    ...(values.out !== undefined ? { out: path.resolve(values.out) } : {}),
    ...(values.history !== undefined ? { historyDir: path.resolve(values.history) } : {}),
    ...(values.series !== undefined ? { seriesFile: path.resolve(values.series) } : {}),
  });
  const skipped = input.bench.skipped.length + input.gate.skipped.length;
  console.log(
    `wrote ${path.relative(process.cwd(), out) || out}: ${input.bench.runs.length} bench runs, ${input.gate.runs.length} perf-gate runs, ` +
      `${input.series?.windows.length ?? 0} windows of the last gate run${skipped > 0 ? `; ${skipped} malformed history lines skipped` : ''}`,
  );
  return 0;
}

if (require.main === module) runMain('perf:dashboard', main);
