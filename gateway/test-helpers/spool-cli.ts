/**
 * The `spool` CLI as a real process, run from the sources (`node chaos/run-ts.js gateway/cli.ts
 * …`), for the tests of its commands: one runner instead of one per test file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'gateway', 'cli.ts');
const RUN_TS = path.join(ROOT, 'chaos', 'run-ts.js');

export interface SpoolRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface SpoolOptions {
  /** The child's environment besides PATH (nothing else of the test's environment leaks in, SPOOL_* least of all). */
  readonly env?: Readonly<Record<string, string>>;
  /** Called with stdout so far on each write; true sends SIGINT (`tail --follow`). */
  readonly until?: (stdout: string) => boolean;
  /** @default 30000 */
  readonly timeoutMs?: number;
  /** Node flags before the entry (e.g. --preserve-symlinks). */
  readonly nodeArgs?: readonly string[];
  /** Another copy of cli.ts to run. @default this checkout's */
  readonly cli?: string;
}

/** Starts `spool ...args` (the caller reads and stops it: `serve`). */
export function startSpool(args: readonly string[], options: SpoolOptions = {}): ChildProcess {
  return spawn(process.execPath, [...(options.nodeArgs ?? []), RUN_TS, options.cli ?? CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '', ...options.env },
  });
}

/** Runs `spool ...args` to its end; rejects (and kills it) past the timeout. */
export function runSpool(args: readonly string[], options: SpoolOptions = {}): Promise<SpoolRun> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = startSpool(args, options);
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`spool ${args.join(' ')} did not end within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.stdout?.on('data', (data: Buffer) => {
      stdout += data.toString();
      if (options.until?.(stdout)) child.kill('SIGINT');
    });
    child.stderr?.on('data', (data: Buffer) => (stderr += data.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
