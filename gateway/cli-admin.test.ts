/**
 * The operator commands of the `spool` CLI, run as real processes (`node … gateway/cli.ts`)
 * against a real gateway's admin listener (token-protected): output, JSON, exit codes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import { startGateway, type Gateway } from './index';
import { RawClient } from './test-helpers/raw-client';
import { runSpool, type SpoolRun } from './test-helpers/spool-cli';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const ADMIN_TOKEN = 'cli-test-admin-token';

/** A gateway with its admin listener on a free port, requiring ADMIN_TOKEN (`--admin-port 0 --admin-token T`). */
async function gatewayWithAdmin(): Promise<{ gw: Gateway; adminUrl: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-cli-'));
  const store = openLmdbStore({ path: dir });
  const gw = await startGateway({ port: 0, store, logger: pino({ level: 'silent' }), adminPort: 0, adminToken: ADMIN_TOKEN });
  cleanups.push(async () => {
    await gw.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { gw, adminUrl: `http://127.0.0.1:${gw.adminPort as number}` };
}

/** `spool ...args` with the admin token in its environment (SPOOL_ADMIN_TOKEN). */
const spool = (args: readonly string[], until?: (stdout: string) => boolean): Promise<SpoolRun> => runSpool(args, { env: { SPOOL_ADMIN_TOKEN: ADMIN_TOKEN }, ...(until ? { until } : {}) });

const appendItem = (key: string) => ({ op: 'append' as const, key, kind: 'user', priority: 3 as const, ts: 1, data: `text ${key}`, size: 1 });

describe('spool operator commands', () => {
  it('sessions, inspect, tail, reset and delete print what the admin API answers, in text and JSON', async () => {
    const { gw, adminUrl } = await gatewayWithAdmin();
    await gw.store.append('chat-1', [appendItem('a'), appendItem('b')]);
    await gw.store.append('chat-2', [appendItem('c')]);
    const admin = ['--admin-url', adminUrl];

    const listed = await spool(['sessions', ...admin, '--json']);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { sessions: { id: string }[] }).sessions.map((s) => s.id)).toEqual(['chat-1', 'chat-2']);
    const text = await spool(['sessions', ...admin, '--limit', '1', '--all']);
    expect(text.stdout).toMatch(/^chat-1\thead 2\tepoch 0\tevents 2\tactive -\treaders here 0\nchat-2\t/);

    const inspected = await spool(['inspect', 'chat-1', ...admin, '--json']);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ id: 'chat-1', head: 2, retained: [0, 0, 0, 2] });

    const tailed = await spool(['tail', 'chat-1', ...admin, '--json']);
    expect(tailed.code).toBe(0);
    expect(tailed.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key)).toEqual(['a', 'b']);
    expect((await spool(['tail', 'chat-1', ...admin, '--from', '1'])).stdout).toBe('2\tappend b\ttext b\n');

    expect(JSON.parse((await spool(['reset', 'chat-1', ...admin, '--json'])).stdout)).toEqual({ status: 'reset', head: 3, cleared: 2, epoch: 1, fenced: null });
    expect((await spool(['tail', 'chat-1', ...admin])).stdout).toBe('1-2\tgap (trimmed)\n3\tsession.reset\n');
    expect((await spool(['delete', 'chat-2', ...admin])).stdout).toContain('status: deleted');
    const gone = await spool(['inspect', 'chat-2', ...admin]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('NOT_FOUND (HTTP 404)');
  }, 120_000);

  it('tail --follow prints what is written while it runs, until interrupted', async () => {
    const { gw, adminUrl } = await gatewayWithAdmin();
    await gw.store.append('chat', [appendItem('a')]);
    let wrote = false;
    const run = spool(['tail', 'chat', '--follow', '--admin-url', adminUrl], (stdout) => {
      if (!wrote && stdout.includes('append a')) {
        wrote = true;
        void gw.store.append('chat', [appendItem('later')]);
      }
      return stdout.includes('append later');
    });
    const result = await run;
    expect(result.stdout).toBe('1\tappend a\ttext a\n2\tappend later\ttext later\n');
  }, 60_000);

  it('end-generation and toggles change the gateway; refusals, usage errors and an unreachable gateway have their exit codes', async () => {
    const { gw, adminUrl } = await gatewayWithAdmin();
    const admin = ['--admin-url', adminUrl];
    const producer = await RawClient.connect(gw.url, SUBPROTOCOL_MSGPACK);
    cleanups.push(() => producer.close());
    await producer.open('chat', 'g1');
    const ended = await spool(['end-generation', 'chat', 'g1', '--status', 'aborted', ...admin, '--json']);
    expect(JSON.parse(ended.stdout)).toEqual({ generation: 'g1', status: 'aborted', offset: 2 });
    const again = await spool(['end-generation', 'chat', 'g1', '--status', 'aborted', ...admin]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('GENERATION_CLOSED (HTTP 409)');

    expect(JSON.parse((await spool(['toggles', '--set', 'readOnly=true', '--set', 'degradeWatermark=64', ...admin, '--json'])).stdout)).toEqual({ syncAppend: false, readOnly: true, degradeWatermark: 64, maxReaderBufferedBytes: 1024 * 1024, slowReaderTimeoutMs: 10_000, logLevel: 'silent' });
    expect(gw.toggles.readOnly).toBe(true);
    const bad = await spool(['toggles', '--set', 'readOnly=maybe', ...admin]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('BAD_FRAME');

    expect((await spool(['end-generation', 'chat', 'g1', ...admin])).code).toBe(2);
    expect((await spool(['inspect', ...admin])).code).toBe(2);
    expect((await spool(['sessions', '--bogus'])).code).toBe(2);
    const help = await spool(['tail', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('spool tail <session>');
    const wrongToken = await spool(['sessions', ...admin, '--admin-token', 'not-the-token']);
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.stderr).toContain('UNAUTHORIZED (HTTP 401)');
    const unreachable = await spool(['sessions', '--admin-url', 'http://127.0.0.1:1']);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('cannot reach the admin API');
  }, 120_000);
});
