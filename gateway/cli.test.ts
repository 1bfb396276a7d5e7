/**
 * The `spool` CLI as a whole, run as real processes: `--help` and `--json` on every command,
 * the exit codes (0 done, 1 failed, 2 usage, 3 unreachable: cli-admin.test.ts), and `spool bench`
 * / `spool chaos`, which run this checkout's benchmark and chaos suite with their arguments passed
 * through, and refuse with exit 2 where perf/ and chaos/ are not (an installed package).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, runSpool, startSpool } from './test-helpers/spool-cli';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});
const tempDir = (prefix: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};

const COMMANDS: ReadonlyArray<readonly string[]> = [
  ['serve'],
  ['config', 'print'],
  ['config', 'check'],
  ['sessions'],
  ['inspect'],
  ['tail'],
  ['reset'],
  ['delete'],
  ['end-generation'],
  ['toggles'],
  ['bench'],
  ['chaos'],
];

describe('spool: every command', () => {
  it.each(COMMANDS.map((c) => [c.join(' '), c] as const))('%s --help prints its usage and exits 0', async (_name, command) => {
    const run = await runSpool([...command, '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`spool ${command[0]}`);
    expect(run.stderr).toBe('');
  }, 60_000);

  it('usage errors exit 2 with the usage on stderr: no command, an unknown one, an unknown flag, a bad value', async () => {
    for (const args of [[], ['frob'], ['serve', '--bogus'], ['serve', '--port', 'abc'], ['serve', '--transport', 'tcp'], ['config', 'check', '--max-connections', 'lots']]) {
      const run = await runSpool(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toContain('usage: spool');
      expect(run.stdout).toBe('');
    }
  }, 120_000);

  it('config check --json answers {ok} on stdout, {ok: false, error} with exit 2 for a refused value', async () => {
    expect(await runSpool(['config', 'check', '--json'])).toMatchObject({ code: 0, stdout: '{"ok":true,"config":null}\n' });
    const refused = await runSpool(['config', 'check', '--json'], { env: { SPOOL_HEARTBEAT_MS: '-5' } });
    expect(refused.code).toBe(2);
    expect(JSON.parse(refused.stdout)).toEqual({ ok: false, error: expect.stringContaining('SPOOL_HEARTBEAT_MS must be >= 1') });
    // config print is JSON whether asked or not.
    expect(JSON.parse((await runSpool(['config', 'print', '--json', '--port', '9300'])).stdout)).toMatchObject({ port: 9300 });
  }, 60_000);

  it('serve --json logs JSON lines, as serve always does', async () => {
    const child = startSpool(['serve', '--json', '--port', '0', '--data', tempDir('spool-cli-serve-')]);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no listening line in 30 s: ${out}`)), 30_000);
        child.stdout?.on('data', (data: Buffer) => {
          out += data.toString();
          const listening = out.split('\n').find((l) => l.includes('spool listening on'));
          if (listening !== undefined) {
            clearTimeout(timer);
            resolve(listening);
          }
        });
      });
      expect(JSON.parse(line)).toMatchObject({ msg: expect.stringMatching(/^spool listening on ws:\/\//), url: expect.any(String) });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 60_000);
});

describe('spool bench and spool chaos, from a checkout', () => {
  it('bench runs perf/bench.ts with the arguments given: one small configuration, the report as JSON', async () => {
    const run = await runSpool(['bench', '--configs', 'lmdb-ws', '--sessions', '1', '--per-session', '20', '--json'], { timeoutMs: 180_000 });
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { ok: boolean; workload: unknown; configs: Array<{ name: string; chunks: number }> };
    expect(report.ok).toBe(true);
    expect(report.workload).toEqual({ sessions: 1, perSession: 20, bytes: 64, window: 64 });
    expect(report.configs.map((c) => [c.name, c.chunks])).toEqual([['lmdb-ws', 20]]);
  }, 200_000);

  it('chaos runs chaos/cli.ts: the catalogue as JSON, an unknown scenario is exit 2', async () => {
    const listed = await runSpool(['chaos', '--list', '--json']);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ name: string }>).map((s) => s.name)).toContain('redis-ws-lifecycle');
    const unknown = await runSpool(['chaos', '--scenario', 'no-such-scenario']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no scenario named no-such-scenario');
  }, 60_000);

  it('chaos runs a scenario file and answers its summary as JSON: sessions deleted while they stream, 0 violations', async () => {
    const dir = tempDir('spool-cli-chaos-');
    const file = path.join(dir, 'tiny.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'cli-tiny-delete',
        topology: { store: 'lmdb', transport: 'ws', gateways: 1, mode: 'inproc' },
        workload: { sessions: 2, readersPerSession: 2, chunksPerSecond: 150, chunksPerGeneration: 100 },
        // Fires until one finds a producer streaming (a loaded machine may start them late).
        faults: [{ on: 'clients', after: 500, every: 400, sessionDelete: true }],
        durationMs: 4000,
        seed: 13,
      }),
    );
    const run = await runSpool(['chaos', '--file', file, '--out', dir, '--json'], { timeoutMs: 180_000 });
    const summary = JSON.parse(run.stdout) as { ok: boolean; violations: number; faults: Record<string, number> };
    expect({ code: run.code, ok: summary.ok, violations: summary.violations }).toEqual({ code: 0, ok: true, violations: 0 });
    expect(summary.faults['clients:session-delete']).toBeGreaterThanOrEqual(1);
    // Progress went to stderr: stdout is the one JSON document.
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain('cli-tiny-delete');
  }, 200_000);

  it('where perf/ and chaos/ are not (an installed package), bench and chaos say so and exit 2', async () => {
    // A package of the runtime alone: its folders linked from this checkout, not perf/ or chaos/.
    const pkg = path.join(tempDir('spool-cli-installed-'), 'spool');
    fs.mkdirSync(pkg);
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'spool' }));
    for (const folder of ['gateway', 'protocol', 'store', 'client', 'node_modules']) fs.symlinkSync(path.join(ROOT, folder), path.join(pkg, folder));
    const installed = { cli: path.join(pkg, 'gateway', 'cli.ts'), nodeArgs: ['--preserve-symlinks', '--preserve-symlinks-main'] };
    for (const [command, entry] of [['bench', 'perf/bench.ts'], ['chaos', 'chaos/cli.ts']] as const) {
      const run = await runSpool([command, '--json'], installed);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`spool ${command}: ${entry} is not here`);
    }
  }, 60_000);
});
