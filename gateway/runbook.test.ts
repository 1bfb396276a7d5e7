/**
 * Every `spool …` command of docs/RUNBOOK.md, read from the runbook itself, runs through the real
 * CLI against a real gateway's admin listener and succeeds: a command added to the runbook is
 * exercised here without anyone writing a test for it (issue 13, "each command in it is
 * exercised by a test"). Placeholders: SESSION (a session with generation GENERATION open and
 * three chunks written), GENERATION, N (an offset).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Gateway } from './index';
import { gatewayHarness } from './test-helpers/gateway-harness';
import { ROOT, runSpool } from './test-helpers/spool-cli';

const h = gatewayHarness();
const ADMIN_TOKEN = 'runbook-test-admin-token';

/** The runbook's commands: inline `spool …` code and lines of its sh blocks, comments dropped. */
function runbookCommands(text: string): string[] {
  const commands: string[] = [];
  let inBlock = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) {
      inBlock = !inBlock;
      continue;
    }
    if (inBlock) {
      const code = line.replace(/\s+#.*$/, '').trim();
      if (code.startsWith('spool ')) commands.push(code);
      continue;
    }
    for (const match of line.matchAll(/`(spool [^`]+)`/g)) commands.push((match[1] as string).trim());
  }
  return commands;
}

/** A command line as argv: words, and "double-quoted" words with spaces. */
function words(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => (m[1] ?? m[2]) as string);
}

async function sessionWithOpenGeneration(gw: Gateway, session: string): Promise<void> {
  const producer = await h.client(gw);
  const opened = await producer.open(session, 'g1');
  producer.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'a' }, { data: 'b' }, { data: 'c' }] });
  await producer.next((f) => f.type === 'ack' && f['seq'] === 2);
}

describe('docs/RUNBOOK.md', () => {
  const commands = [...new Set(runbookCommands(fs.readFileSync(path.join(ROOT, 'docs', 'RUNBOOK.md'), 'utf8')))];

  it('names the operator commands an incident needs', () => {
    const names = new Set(commands.map((c) => c.split(' ')[1]));
    for (const name of ['inspect', 'tail', 'end-generation', 'reset', 'delete', 'toggles', 'sessions']) expect(names).toContain(name);
  });

  it.each(commands.map((c, i) => [c, i] as const))('%s runs through the real CLI and succeeds', async (command, i) => {
    const gw = await h.gateway({ store: await h.store('lmdb'), adminPort: 0, adminToken: ADMIN_TOKEN });
    const session = `runbook-${i}`;
    await sessionWithOpenGeneration(gw, session);
    const argv = words(command.replace(/\bSESSION\b/g, session).replace(/\bGENERATION\b/g, 'g1').replace(/\s--from N\b/, ' --from 1')).slice(1);
    const run = await runSpool([...argv, '--admin-url', `http://127.0.0.1:${gw.adminPort as number}`], { env: { SPOOL_ADMIN_TOKEN: ADMIN_TOKEN } });
    expect({ command, code: run.code, stderr: run.stderr }).toEqual({ command, code: 0, stderr: '' });
    expect(run.stdout).not.toBe('');
  }, 60_000);
});
