/**
 * Config files and the one schema every configuration source goes through (issue 13): each
 * class of refused value, precedence flags > environment > file > defaults, `spool config
 * print|check`, and toggles from the file applied at start and again on SIGHUP.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, readConfigFile, validateOptions } from './config-file';
import { runSpool, startSpool, type SpoolRun } from './test-helpers/spool-cli';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function fileWith(name: string, content: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-config-'));
  dirs.push(dir);
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config files', () => {
  it('reads YAML and JSON with the options startGateway takes, nested ones and toggles', () => {
    const yaml = fileWith('spool.yaml', 'port: 9001\ndurability: fsync\nretention:\n  maxEvents: 5000\ncredit:\n  frames: 256\ntoggles:\n  readOnly: true\n');
    expect(readConfigFile(yaml)).toEqual({ options: { port: 9001, durability: 'fsync', retention: { maxEvents: 5000 }, credit: { frames: 256 } }, toggles: { readOnly: true } });
    const json = fileWith('spool.json', JSON.stringify({ redis: 'redis://127.0.0.1:6380', heartbeatMs: 5000 }));
    expect(readConfigFile(json)).toEqual({ options: { redis: 'redis://127.0.0.1:6380', heartbeatMs: 5000 }, toggles: {} });
    expect(readConfigFile(fileWith('empty.yaml', ''))).toEqual({ options: {}, toggles: {} });
  });

  const refused: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown option', { heartbeat: 5 }, /unknown option "heartbeat"/],
    ['an unknown nested option', { retention: { maxEvent: 5 } }, /unknown option "maxEvent" in retention/],
    ['a string for a number', { port: '8080' }, /port .*number/i],
    ['a fraction for an integer', { maxBatchEvents: 1.5 }, /maxBatchEvents must be an integer/],
    ['a negative duration', { heartbeatMs: -5 }, /heartbeatMs must be >= 1/],
    ['a zero count', { retention: { maxEvents: 0 } }, /retention.maxEvents must be >= 1/],
    ['a port out of range', { port: 70_000 }, /port must be <= 65535/],
    ['a value outside an enum', { durability: 'maybe' }, /durability/],
    ['a malformed URL', { redis: 'localhost:6379' }, /redis must be a redis:\/\/ or rediss:\/\/ URL/],
    ['a secret too short for HS256', { jwtSecret: 'short' }, /jwtSecret must be at least 32 characters/],
    ['a boolean as text', { streams: 'yes' }, /streams/],
    ['an option only code can give', { clock: 5 }, /clock can only be given in code/],
  ];
  it.each(refused)('refuses %s, naming the option', (_what, options, message) => {
    expect(refusal(() => validateOptions(options, 'spool.yaml'))).toMatch(message);
    expect(refusal(() => validateOptions(options, 'spool.yaml'))).toMatch(/^spool\.yaml: /);
  });

  it('refuses a file that is not YAML or JSON, not a mapping, or whose toggles are wrong', () => {
    expect(refusal(() => readConfigFile(fileWith('spool.toml', 'port = 1')))).toMatch(/must end in .yaml, .yml or .json/);
    expect(refusal(() => readConfigFile(fileWith('bad.yaml', 'port: [1,\n')))).toMatch(/bad\.yaml: /);
    expect(refusal(() => readConfigFile(fileWith('list.yaml', '- 1\n- 2\n')))).toMatch(/must be a mapping/);
    expect(refusal(() => readConfigFile(fileWith('t.yaml', 'toggles:\n  readOnly: maybe\n')))).toMatch(/toggles.readOnly/);
    expect(refusal(() => readConfigFile(fileWith('u.yaml', 'toggles:\n  linger: 1\n')))).toMatch(/unknown option "linger" in toggles/);
    expect(refusal(() => readConfigFile(fileWith('v.yaml', 'toggles:\n  logLevel: loud\n')))).toMatch(/toggles.logLevel/);
    expect(refusal(() => readConfigFile(fileWith('w.yaml', 'toggles:\n  slowReaderTimeoutMs: 0\n')))).toMatch(/toggles.slowReaderTimeoutMs/);
    expect(readConfigFile(fileWith('x.yaml', 'toggles:\n  logLevel: debug\n  maxReaderBufferedBytes: 65536\n  slowReaderTimeoutMs: 2000\n')).toggles).toEqual({ logLevel: 'debug', maxReaderBufferedBytes: 65536, slowReaderTimeoutMs: 2000 });
    expect(refusal(() => readConfigFile('/nonexistent/spool.yaml'))).toMatch(/cannot read it/);
  });
});

const spool = (args: readonly string[], env: Record<string, string> = {}): Promise<SpoolRun> => runSpool(args, { env });

describe('spool config print|check, and the environment through the same schema', () => {
  it('check: 0 for a good file, 2 naming the option for a bad file or a bad SPOOL_* variable', async () => {
    const good = fileWith('good.yaml', 'port: 9002\n');
    expect(await spool(['config', 'check', '--config', good])).toMatchObject({ code: 0, stdout: expect.stringContaining('configuration ok') });
    const bad = await spool(['config', 'check', '--config', fileWith('bad.yaml', 'retention:\n  maxEvents: 0\n')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad\.yaml: retention\.maxEvents must be >= 1/);
    const env = await spool(['config', 'check'], { SPOOL_HEARTBEAT_MS: '-5' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('environment: SPOOL_HEARTBEAT_MS must be >= 1');
    expect((await spool(['config', 'check'], { SPOOL_RETENTION_EVENTS: '0' })).stderr).toContain('environment: retention.maxEvents must be >= 1');
  }, 60_000);

  it('print: flags over environment over file over defaults, secrets redacted', async () => {
    const file = fileWith('spool.yaml', 'port: 9003\nheartbeatMs: 7000\ngenerationIdleTimeoutMs: 11000\nauthToken: file-secret\ntoggles:\n  syncAppend: true\n');
    const printed = await spool(['config', 'print', '--config', file, '--port', '9100'], { SPOOL_HEARTBEAT_MS: '8000' });
    expect(printed.code).toBe(0);
    const effective = JSON.parse(printed.stdout) as Record<string, unknown>;
    expect(effective).toMatchObject({ port: 9100, heartbeatMs: 8000, generationIdleTimeoutMs: 11_000, sessionIdleMs: 60_000, authToken: '(set, redacted)', toggles: { syncAppend: true, readOnly: false } });
    expect(printed.stdout).not.toContain('file-secret');
  }, 60_000);

  it('serve applies the file toggles at start and re-reads them on SIGHUP', async () => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-config-data-'));
    dirs.push(data);
    const file = fileWith('spool.yaml', 'toggles:\n  readOnly: true\n');
    const child = startSpool(['serve', '--port', '0', '--data', data, '--config', file], { env: { SPOOL_LOG_LEVEL: 'warn' } });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    try {
      let out = '';
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line in 30 s: ${err}`)), 30_000);
        child.stdout?.on('data', (d: Buffer) => {
          out += d.toString();
          const match = /spool listening on ws:\/\/([^/\s]+)\/v1/.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve(`http://${match[1]}/metrics`);
          }
        });
      });
      const gauge = async (): Promise<string | undefined> => /^spool_toggle_read_only (\d)$/m.exec(await (await fetch(url)).text())?.[1];
      expect(await gauge()).toBe('1');
      fs.writeFileSync(file, 'toggles:\n  readOnly: false\n');
      const reloaded = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no SIGHUP answer in 30 s: ${err}`)), 30_000);
        child.stdout?.on('data', () => {
          if (out.includes('SIGHUP: toggles')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill('SIGHUP');
      await reloaded;
      expect(await gauge()).toBe('0');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 60_000);
});
