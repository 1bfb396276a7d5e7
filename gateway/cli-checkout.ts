/**
 * `spool bench` and `spool chaos`: the benchmark (perf/bench.ts) and the chaos suite
 * (chaos/cli.ts) of a checkout of spool's sources, run from their TypeScript through
 * chaos/run-ts.js with every argument passed through. An installed package carries only the
 * runtime (package.json `files`), so there they answer with a message and exit code 2.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const CHECKOUT_COMMANDS: ReadonlySet<string> = new Set(['bench', 'chaos']);

const ENTRY: Record<string, string> = { bench: 'perf/bench.ts', chaos: 'chaos/cli.ts' };

const HELP: Record<string, string> = {
  bench: `spool bench [--sessions N] [--per-session N] [--bytes N] [--window N] [--rate N]
            [--configs raw-redis,lmdb-ws,…] [--memory] [--profile] [--otel] [--json] [--record]
  the benchmark of this checkout (perf/bench.ts, README "Performance"): the table on stdout, progress on stderr;
  --json: the report as one JSON document. Exit 0 when every reader got every chunk once and in order, 1 otherwise.`,
  chaos: `spool chaos [--scenario NAME [--seed N] | --file SCENARIO.json | --soak MINUTES | --list] [--out DIR] [--window MS] [--json]
  the chaos suite of this checkout (chaos/cli.ts, README "Chaos"): the CI budget, or one scenario;
  --json: the run's summary as one JSON document on stdout (progress on stderr). Exit 0 when every scenario passed, 1 otherwise.`,
};

const COMMON = 'run from a checkout of spool (they need its perf/ and chaos/ folders and dev dependencies); exit codes: 0 passed, 1 failed, 2 usage or not a checkout';

/** The checkout's root (the folder with package.json above this file, in sources or in dist/), if it holds `entry`. */
export function checkoutRoot(entry: string, from = __dirname): string | undefined {
  let dir = from;
  for (let up = 0; up < 4; up++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) {
      return fs.existsSync(path.join(dir, entry)) && fs.existsSync(path.join(dir, 'chaos', 'run-ts.js')) ? dir : undefined;
    }
    dir = path.dirname(dir);
  }
  return undefined;
}

export interface CheckoutIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** Runs `spool bench|chaos ...args`; resolves with its exit code. */
export async function runCheckoutCommand(argv: readonly string[], io: CheckoutIo): Promise<number> {
  const command = argv[0] as string;
  const args = argv.slice(1);
  if (args.includes('--help') || args.includes('-h')) {
    io.out(`${HELP[command]}\n${COMMON}\n`);
    return 0;
  }
  const entry = ENTRY[command] as string;
  const root = checkoutRoot(entry);
  if (root === undefined) {
    io.err(`spool ${command}: ${entry} is not here: spool ${command} runs from a checkout of spool's sources (git clone, npm install); an installed package carries only the gateway\n`);
    return 2;
  }
  const child = spawn(process.execPath, [path.join(root, 'chaos', 'run-ts.js'), path.join(root, entry), ...args], { cwd: process.cwd(), stdio: 'inherit' });
  // Ctrl-C reaches the child from the terminal too; a signal sent to this process alone is passed on.
  const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    return await new Promise<number>((resolve) => {
      child.once('error', (error) => {
        io.err(`spool ${command}: ${error.message}\n`);
        resolve(1);
      });
      child.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1)));
    });
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}
