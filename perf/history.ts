/**
 * The perf history kept in the repository: `perf/history/<tool>.jsonl`, one JSON line per
 * recorded run (`npm run bench -- --record`, `npm run perf:gate -- --record`), read back by the
 * dashboard (dashboard.ts). What every line starts with is built here: when, which commit, which
 * machine.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machine } from './report';

/** The repository root (this file runs from perf/ through run-ts, or from dist/perf/). */
export const REPO_ROOT = path.resolve(__dirname, __filename.endsWith('.ts') ? '..' : '../..');

/** perf/history/ of this repository. */
export const HISTORY_DIR = path.join(REPO_ROOT, 'perf', 'history');

/** The machine as a history line records it. */
export interface HistoryMachine {
  readonly cpus: number;
  readonly model: string;
  readonly totalMem: number;
  readonly node: string;
  readonly platform: string;
  /** 1-minute load average when the run started. */
  readonly loadAverage: number;
}

/** This machine now (the load average as of this call). */
export function historyMachine(): HistoryMachine {
  const m = machine();
  return { cpus: m.cpus, model: os.cpus()[0]?.model ?? '?', totalMem: os.totalmem(), node: m.node, platform: m.platform, loadAverage: os.loadavg()[0] ?? Number.NaN };
}

/** HEAD, and whether the work tree differs from it (untracked files aside); null outside a git clone. */
export function gitCommit(): { readonly commit: string; readonly dirty: boolean } | null {
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: __dirname, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    return { commit: git('rev-parse', 'HEAD').trim(), dirty: git('status', '--porcelain', '--untracked-files=no').trim() !== '' };
  } catch {
    return null;
  }
}

/** Appends `line` as one line of JSON to `file`, creating its directory. */
export function appendJsonLine(file: string, line: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.appendFileSync(file, `${JSON.stringify(line)}\n`);
}
