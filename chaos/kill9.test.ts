/**
 * The gateway process is killed with SIGKILL while a producer streams; restarted on the same
 * data dir and port, the producer's SDK reconnects and resumes by itself, finish() succeeds, and
 * a reader from offset 0 sees every chunk exactly once.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SpoolClient } from '../client';
import { freePort } from './fault-proxy';
import { GatewayProcess } from './gateway-process';
import { checkSessionHistory } from './history';
import { readUntilEnded } from './reader';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});


/** A gateway in its own process on a fresh data dir and a fixed port (so it restarts there), and a producer client. */
async function killableGateway(): Promise<{ gateway: GatewayProcess; producer: SpoolClient }> {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-kill9-'));
  cleanups.push(() => fs.rmSync(data, { recursive: true, force: true }));
  const gateway = new GatewayProcess({ port: await freePort(), data });
  cleanups.push(() => gateway.kill9());
  await gateway.start();
  const producer = new SpoolClient({ url: gateway.url, reconnect: { initialDelayMs: 10, maxDelayMs: 200 } });
  cleanups.push(() => producer.close());
  return { gateway, producer };
}

describe('gateway kill -9', () => {
  it('a producer streaming through SIGKILL and restart resumes, finishes, and nothing acked is lost or repeated', async () => {
    const { gateway, producer } = await killableGateway();

    const session = 'kill9';
    const total = 6000;
    const killAt = [1500, 4000];
    const gen = producer.generation(session, { id: 'g-kill9' });
    const acked: number[] = [];
    for (let seq = 0; seq < total; seq++) {
      if (!gen.write({ seq, text: `token ${seq} ` })) await gen.drained();
      if (seq === 1000) acked.push((await gen.flush()).seq);
      if (killAt.includes(seq)) {
        // Killed mid-stream: chunks are in flight, some durable and unacked, some not stored yet.
        await gateway.kill9();
        // Keep writing while the gateway is down (the SDK queues, bounded by its high-water mark),
        // then bring it back on the same port and data dir.
        for (let extra = 0; extra < 50; extra++) gen.write({ seq: ++seq, text: `token ${seq} ` });
        await gateway.start();
      }
    }
    const finished = await gen.finish({ timeoutMs: 30_000 });
    expect(finished.offset).toBe(total + 2);
    expect(acked).toHaveLength(1);
    expect(acked[0]).toBeGreaterThanOrEqual(1000);

    const items = await readUntilEnded(gateway.url, session, 1);
    const report = checkSessionHistory(items, { generations: 1, chunksPerGeneration: total });
    expect(report.violations).toEqual([]);
    expect(report.events).toBe(total + 2);
    const seqs = items.flatMap((i) => (i.type === 'chunk' ? [(i.data as { seq: number }).seq] : []));
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i));
  });

  it('a reader following through SIGKILL and restart resumes from its offset with no repeats', async () => {
    const { gateway, producer } = await killableGateway();
    const session = 'kill9-reader';
    const reading = readUntilEnded(gateway.url, session, 2);
    const first = producer.generation(session, { id: 'before' });
    for (let i = 0; i < 500; i++) first.write(`a${i}`);
    await first.finish({ timeoutMs: 30_000 });
    await gateway.kill9();
    await gateway.start();
    const second = producer.generation(session, { id: 'after' });
    for (let i = 0; i < 500; i++) second.write(`b${i}`);
    await second.finish({ timeoutMs: 30_000 });
    const report = checkSessionHistory(await reading, { generations: 2, chunksPerGeneration: 500 });
    expect(report.violations).toEqual([]);
    expect(report.events).toBe(1004);
  });
});
