/**
 * The perf dashboard built from a temp history (bench and perf-gate lines, malformed ones among
 * them, and a last run's windows) and rendered in real headless Chromium (Debian's
 * /usr/bin/chromium): its DOM holds every chart with its series, strings from the history are
 * text, never markup, and a screenshot of it lands in .perf-out/test/dashboard.png. Without
 * Chromium the test fails and says how to install it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { readHistory, parseBenchLine, renderDashboard, writeDashboard } from './dashboard';
import { escapeHtml, html, niceMax } from './svg-chart';

jest.setTimeout(120_000);

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(__dirname, '..');
const TEST_OUT = path.join(ROOT, '.perf-out', 'test');
const HOSTILE = 'lmdb-ws <img src=x onerror=alert(1)>';

const machine = { cpus: 2, model: 'AMD EPYC <b>bold</b>', totalMem: 25e9, node: 'v20.20.2', platform: 'linux x64', loadAverage: 0.4 };

function benchLine(day: number, scale: number): string {
  const config = (name: string, chunksPerSec: number, p50: number, p99: number) => ({
    name,
    store: name.startsWith('redis') || name === 'raw-redis' ? 'redis' : 'lmdb',
    transport: name.includes('uws') ? 'uws' : name === 'raw-redis' ? 'ioredis' : 'ws',
    durability: name.startsWith('lmdb') ? (name.endsWith('fsync') ? 'fsync' : 'commit') : null,
    chunksPerSec: chunksPerSec * scale,
    deliveryP50: p50 / scale,
    deliveryP99: p99 / scale,
    ackP99: p99 / scale,
    gatewayCpuUsPerChunk: 11 / scale,
    gatewayRssMaxBytes: 140e6,
    ratioToRaw: (chunksPerSec * scale) / 120_000,
  });
  return JSON.stringify({
    date: `2026-11-${String(day).padStart(2, '0')}T10:00:00.000Z`,
    commit: `${day}abcdef0123456789`,
    dirty: day % 2 === 0,
    machine,
    workload: { sessions: 50, perSession: 2000, bytes: 64 },
    configs: [
      config('raw-redis', 120_000, 8, 20),
      config('lmdb-ws', 90_000, 12, 40),
      config('lmdb-uws', 95_000, 11, 35),
      config('lmdb-ws-fsync', 30_000, 30, 90),
      config('redis-ws', 60_000, 15, 45),
      ...(day === 3 ? [config(HOSTILE, 1000, 1, 2)] : []),
    ],
    paced: { rate: 50_000, deliveryP50: 3 / scale, deliveryP99: 14 / scale },
  });
}

function gateLine(day: number, ok: boolean, resumeSuccess: number, trimRate: number): string {
  return JSON.stringify({
    date: `2026-11-${String(day).padStart(2, '0')}T11:00:00.000Z`,
    commit: null,
    dirty: null,
    machine,
    seconds: 60,
    ok,
    windows: 7,
    failedWindow: ok ? null : 3,
    figures: {
      chunks: 100_000,
      chunksPerSec: 1500 + day * 10,
      ackP50: 2,
      ackP99: 9,
      deliveryP50: 3,
      deliveryP99: 12 + day,
      resumes: 40,
      resumeSuccess,
      resumeP50: 120,
      resumeP99: 900,
      resumeMax: 1500,
      trimRate,
      gatewayCpuPercent: 45,
      gatewayRssMax: 130e6,
    },
  });
}

function window(index: number, ok: boolean) {
  const summary = { count: 100, p50: 2 + index, p99: 10 + index, max: 20, mean: 3 };
  return {
    index,
    fromMs: index * 10_000,
    toMs: (index + 1) * 10_000,
    ok,
    reasons: ok ? [] : ['resume success 90.0 % < 95 %'],
    resumes: { completed: 9, failed: ok ? 0 : 1, successRate: ok ? 1 : 0.9, slowestMs: 800, p50: 100, p99: 700 },
    trim: { stored: 10_000, trimmed: index, rate: index / 10_000 },
    retentionSession: { stored: 500, trimmed: 400 },
    chunks: { acked: 15_000, perSec: 1500 + index * 20 },
    ack: summary,
    delivery: summary,
    gateway: { cpuPercent: 40 + index, rss: (120 + index) * 1e6, resumeAttempts: 9, resumeLive: 9, trimmed: 0, degradedDropped: 0 },
    drops: { cuts: 2, restarts: 1, skipped: 0 },
    reconnects: 3,
  };
}

/** Runs Chromium headless on `args` + `url` with a fresh profile; resolves with its stdout. */
function chromium(args: readonly string[], url: string): Promise<string> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-chromium-'));
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profile}`,
    ...args,
    url,
  ];
  return new Promise<string>((resolve, reject) => {
    execFile(CHROMIUM, flags, { timeout: 90_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      fs.rmSync(profile, { recursive: true, force: true });
      if (error !== null) reject(new Error(`chromium ${args.join(' ')} failed: ${error.message}\n${stderr.slice(-4000)}`));
      else resolve(stdout);
    });
  });
}

/** Width, height and the number of distinct byte values of the decompressed pixel rows of a PNG. */
function pngFacts(file: string): { width: number; height: number; distinctBytes: number } {
  const png = fs.readFileSync(file);
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  const idat: Buffer[] = [];
  let width = 0;
  let height = 0;
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + length;
  }
  const pixels = zlib.inflateSync(Buffer.concat(idat));
  const seen = new Set<number>();
  for (let i = 0; i < pixels.length; i += 7) seen.add(pixels[i] as number);
  return { width, height, distinctBytes: seen.size };
}

describe('perf dashboard', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-dashboard-test-'));
  const historyDir = path.join(tmp, 'history');
  const seriesFile = path.join(tmp, 'latest', 'series.json');
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  beforeAll(() => {
    fs.mkdirSync(historyDir, { recursive: true });
    fs.mkdirSync(path.dirname(seriesFile), { recursive: true });
    // Out of date order on purpose, with malformed lines between.
    fs.writeFileSync(
      path.join(historyDir, 'bench.jsonl'),
      [benchLine(2, 1.1), 'not json at all {', benchLine(1, 1), '', JSON.stringify({ date: '2026-11-02T00:00:00Z' }), benchLine(3, 1.3), JSON.stringify({ date: 'yesterday', configs: [] })].join('\n') + '\n',
    );
    fs.writeFileSync(path.join(historyDir, 'perf-gate.jsonl'), [gateLine(1, true, 1, 0), gateLine(2, false, 0.9, 0.002), '[1, 2, 3]', gateLine(3, true, 0.975, 0.0004)].join('\n') + '\n');
    fs.writeFileSync(seriesFile, JSON.stringify({ gate: { minResumeSuccess: 0.95, maxTrimRate: 0.01, resumeLimitMs: 15_000, windowMs: 10_000 }, startedAt: '2026-11-03T11:00:00.000Z', windows: [window(0, true), window(1, true), window(2, false), window(3, true)] }));
  });

  it('reads the history in date order and counts the malformed lines it skipped', () => {
    const bench = readHistory(path.join(historyDir, 'bench.jsonl'), parseBenchLine);
    expect(bench.runs.map((r) => r.date.slice(0, 10))).toEqual(['2026-11-01', '2026-11-02', '2026-11-03']);
    expect(bench.skipped).toEqual([2, 5, 7]);
    expect(bench.runs[2]?.configs.map((c) => c.name)).toContain(HOSTILE);
  });

  it('escapes every string from the history: markup in a config name or a CPU model stays text', () => {
    const page = writeDashboard({ historyDir, seriesFile, out: path.join(tmp, 'page.html') });
    const text = fs.readFileSync(page.out, 'utf8');
    expect(text).not.toContain('<img');
    expect(text).not.toContain('<b>bold</b>');
    expect(text).toContain(escapeHtml(HOSTILE));
    expect(html`<p title="${'"x"'}">${'<a>'}${html`<i>ok</i>`}</p>`.text).toBe('<p title="&quot;x&quot;">&lt;a&gt;<i>ok</i></p>');
    expect([niceMax(0), niceMax(7), niceMax(93_000), niceMax(151_000)]).toEqual([1, 10, 100_000, 250_000]);
  });

  it('says so when there is no history and no series', () => {
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    const { out, input } = writeDashboard({ historyDir: path.join(empty, 'none'), seriesFile: path.join(empty, 'none.json'), out: path.join(empty, 'page.html') });
    expect(input.bench.exists).toBe(false);
    const text = fs.readFileSync(out, 'utf8');
    expect(text).toContain('No runs recorded in bench.jsonl yet');
    expect(text).toContain('No runs recorded in perf-gate.jsonl yet');
    expect(text).toContain('No windows found in');
    expect(text).not.toContain('data-chart=');
  });

  it('renders in headless Chromium: every chart with its series, the skipped lines counted, a screenshot', async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} not found: the dashboard test renders the page in Debian's Chromium. Install it with: apt-get install -y chromium`);
    }
    fs.mkdirSync(TEST_OUT, { recursive: true });
    const out = path.join(TEST_OUT, 'dashboard.html');
    writeDashboard({ historyDir, seriesFile, out });
    expect(renderDashboard({ bench: readHistory(path.join(historyDir, 'bench.jsonl'), parseBenchLine), gate: { file: 'x', exists: false, runs: [], skipped: [] }, series: null })).toContain('data-chart="bench-chunks-per-sec"');
    const url = `file://${out}`;

    const dom = await chromium(['--dump-dom'], url);
    const charts = [...dom.matchAll(/<figure class="chart" data-chart="([^"]+)"/g)].map((m) => m[1]);
    expect(charts).toEqual([
      'bench-chunks-per-sec',
      'bench-delivery-p99',
      'bench-delivery-p50',
      'bench-paced',
      'gate-chunks-per-sec',
      'gate-delivery',
      'gate-resume-success',
      'gate-trim-rate',
      'window-chunks-per-sec',
      'window-delivery',
      'window-resume-success',
      'window-trim-rate',
      'window-gateway-cpu',
      'window-gateway-rss',
    ]);
    const chart = (id: string): string => {
      const start = dom.indexOf(`data-chart="${id}"`);
      return dom.slice(start, dom.indexOf('</figure>', start));
    };
    for (const name of ['raw-redis', 'lmdb-ws', 'lmdb-uws', 'lmdb-ws-fsync', 'redis-ws']) expect(chart('bench-chunks-per-sec')).toContain(`data-series="${name}"`);
    // Three runs: three points per configuration that ran in all of them.
    const lmdb = chart('bench-chunks-per-sec').split('data-series="lmdb-ws"')[1]?.split('</g>')[0] ?? '';
    expect(lmdb.match(/<circle/g)).toHaveLength(3);
    expect(chart('gate-resume-success')).toContain('data-threshold="gate 95 %"');
    expect(chart('gate-resume-success')).toContain('class="point failed"');
    expect(chart('window-delivery')).toContain('data-series="p99"');
    expect(chart('window-delivery').match(/class="point failed"/g)).toHaveLength(2); // window 2, in p50 and p99
    expect(dom).toContain('data-skipped="3"');
    expect(dom).toContain('data-skipped="1"');
    expect(dom).not.toMatch(/<img/);
    expect(dom).not.toContain('<b>bold</b>');

    const png = path.join(TEST_OUT, 'dashboard.png');
    fs.rmSync(png, { force: true });
    await chromium([`--screenshot=${png}`, '--window-size=1280,2000', '--hide-scrollbars'], url);
    expect(fs.statSync(png).size).toBeGreaterThan(20_000);
    const facts = pngFacts(png);
    expect([facts.width, facts.height]).toEqual([1280, 2000]);
    expect(facts.distinctBytes).toBeGreaterThan(32); // charts and text, not a blank page
  });
});
