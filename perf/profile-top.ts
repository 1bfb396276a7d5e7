/**
 * Prints the functions with the most self time in a V8 `.cpuprofile` (as written by
 * `node --cpu-prof`, e.g. a gateway child run with SPOOL_GATEWAY_CPU_PROF=DIR):
 *
 *   node chaos/run-ts.js perf/profile-top.ts FILE.cpuprofile [--top 25]
 *
 * Self time is summed per function (name, file, line), idle and GC shown as V8 names them.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { runMain } from './report';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
}

export interface SelfTime {
  readonly fn: string;
  readonly share: number;
}

/** Self-time shares per function, largest first. */
export function topSelfTime(profile: Profile, top: number): SelfTime[] {
  const samplesPerNode = new Map<number, number>();
  for (const id of profile.samples) samplesPerNode.set(id, (samplesPerNode.get(id) ?? 0) + 1);
  const perFunction = new Map<string, number>();
  for (const node of profile.nodes) {
    const count = samplesPerNode.get(node.id) ?? 0;
    if (count === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? '' : ` ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${where}`;
    perFunction.set(key, (perFunction.get(key) ?? 0) + count);
  }
  const total = profile.samples.length || 1;
  return [...perFunction.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, count]) => ({ fn, share: count / total }));
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  const file = positionals[0];
  if (file === undefined) {
    process.stderr.write('usage: profile-top FILE.cpuprofile [--top N]\n');
    return 2;
  }
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  for (const { fn, share } of topSelfTime(profile, Number(values.top))) process.stdout.write(`${(share * 100).toFixed(1).padStart(5)} %  ${fn}\n`);
  return 0;
}

if (require.main === module) runMain('profile-top', main);
