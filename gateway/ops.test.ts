/**
 * The operator's files under ops/ against the gateway they watch: the Grafana dashboard is valid
 * JSON whose every query names metrics a gateway exports, the Prometheus alert rules pass
 * `promtool check rules` (Debian's prometheus package; .ci/run installs it) and name exported
 * metrics only, and the README's metrics table lists exported metrics. The exported names are
 * read from a real gateway's /metrics after a workload that moves every histogram.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { parse } from 'yaml';
import { MemoryStore } from '../store/memory';
import { startGateway } from './index';
import { RawClient } from './test-helpers/raw-client';

const ROOT = path.resolve(__dirname, '..');
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** Metric names in PromQL (spool's, the SDK's process and runtime ones, and Prometheus's `up`). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(spool_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+|v8js_[a-z0-9_]+|up)\b(?!\s*\()/g)].map((m) => m[1] as string);
}

let exported: Set<string>;

beforeAll(async () => {
  const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: pino({ level: 'silent' }) });
  try {
    const c = await RawClient.connect(gw.url);
    const opened = await c.open('ops', 'g');
    c.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a' }, { data: 'b' }] });
    c.send({ type: 'finish', id: 1, token: opened['token'], seq: 2 });
    await c.next((f) => f.id === 1 && f.type === 'finished');
    await c.readAll('ops', 1); // a resume: its latency histogram
    c.close();
    const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    exported = new Set(['up']);
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exported.add(name as string);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${name as string}${suffix}`);
    }
  } finally {
    await gw.close();
  }
});

describe('ops/', () => {
  it('the Grafana dashboard is valid JSON, every panel queries Prometheus, and every query names exported metrics', () => {
    const dashboard = JSON.parse(read('ops/grafana/dashboards/spool.json')) as { uid: string; panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }> };
    expect(dashboard.uid).toBe('spool');
    const queries = dashboard.panels.filter((p) => p.type !== 'row').flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(queries.length).toBeGreaterThan(10);
    const unknown = queries.flatMap(({ panel, expr }) => metricNames(expr).filter((n) => !exported.has(n)).map((n) => `${panel}: ${n}`));
    expect(unknown).toEqual([]);
    for (const { expr } of queries) expect(metricNames(expr).length).toBeGreaterThan(0);
    // The SLOs the issue asks the dashboard to show.
    const all = queries.map((q) => q.expr).join('\n');
    for (const name of ['spool_first_durable_chunk_seconds_bucket', 'spool_generations_ended_total', 'spool_resume_attempts_total', 'spool_persistence_latency_seconds_bucket', 'spool_persistence_queue_depth', 'spool_buffer_trimmed_total', 'spool_degraded_dropped_total', 'spool_connections_active', 'spool_sessions_active']) {
      expect(all).toContain(name);
    }
  });

  it('the alert rules pass promtool check rules, cover the incidents, and name exported metrics only', () => {
    const out = execFileSync('promtool', ['check', 'rules', path.join(ROOT, 'ops/prometheus/alerts.yml')], { encoding: 'utf8' });
    expect(out).toMatch(/SUCCESS: \d+ rules found/);
    const rules = (parse(read('ops/prometheus/alerts.yml')) as { groups: Array<{ rules: Array<{ alert: string; expr: string; labels: { severity: string }; annotations: { summary: string } }> }> }).groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['SpoolFinishFailuresRising', 'SpoolAcceptedWritesFailed', 'SpoolStoreUnavailable', 'SpoolPersistenceLatencyP99OverBudget', 'SpoolResumeSuccessLow']),
    );
    for (const rule of rules) {
      expect(rule.labels.severity).toMatch(/^(warning|critical)$/);
      expect(rule.annotations.summary.length).toBeGreaterThan(0);
      expect(metricNames(rule.expr).filter((n) => !exported.has(n))).toEqual([]);
    }
  });

  it('Prometheus scrapes both compose gateways and loads the alert rules the compose file mounts', () => {
    const prometheus = parse(read('ops/prometheus/prometheus.yml')) as { rule_files: string[]; scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    const spool = prometheus.scrape_configs.find((s) => s.job_name === 'spool');
    expect(spool?.static_configs.flatMap((s) => s.targets)).toEqual(['gateway-1:8080', 'gateway-2:8080']);
    expect(prometheus.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    expect(read('docker-compose.yml')).toContain('./ops/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro');
  });

  it('the README metrics table lists exported metrics only', () => {
    const readme = read('README.md');
    const section = readme.slice(readme.indexOf('## Observability'));
    const table = section.slice(0, section.indexOf('\n## ', 4));
    const listed = [...table.matchAll(/^\| `(spool_[a-z0-9_]+)`/gm)].map((m) => m[1] as string);
    expect(listed.length).toBeGreaterThan(15);
    expect(listed.filter((n) => !exported.has(n))).toEqual([]);
  });
});
