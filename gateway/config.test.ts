/**
 * Configuration that reaches the store: the LMDB durability setting, from the environment and
 * through startGateway to a store that acknowledges writes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { configFromEnv, parseDurability, resolveConfig } from './config';
import { startGateway } from './gateway';
import { RawClient } from './test-helpers/raw-client';

describe('durability', () => {
  it("reads SPOOL_DURABILITY (commit | fsync), defaults to commit and refuses anything else", () => {
    expect(configFromEnv({ SPOOL_DURABILITY: 'fsync' })).toMatchObject({ durability: 'fsync' });
    expect(configFromEnv({})).not.toHaveProperty('durability');
    expect(resolveConfig({}).durability).toBe('commit');
    expect(() => configFromEnv({ SPOOL_DURABILITY: 'flush' })).toThrow(/SPOOL_DURABILITY=flush is not a durability/);
    expect(() => parseDurability('sync', '--durability')).toThrow(/--durability=sync/);
  });

  it('a gateway on LMDB with durability fsync acknowledges writes that a restart on the same directory still has', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-durability-'));
    try {
      const options = { port: 0, data: dir, durability: 'fsync' as const, logger: pino({ level: 'silent' }) };
      const first = await startGateway(options);
      const c = await RawClient.connect(first.url, SUBPROTOCOL_MSGPACK);
      const { token } = await c.open('s', 'g');
      c.send({ type: 'chunk', token, seq: 0, data: 'kept' });
      expect(await c.next((f) => f.type === 'ack')).toMatchObject({ seq: 0, offset: 2 });
      await c.close();
      await first.close();
      const second = await startGateway(options);
      try {
        expect((await second.store.read('s', 0, 10)).items.map((e) => (e as { data?: unknown }).data)).toEqual([undefined, 'kept']);
      } finally {
        await second.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
