/**
 * Takeover through the SDK against a real gateway: the displaced producer learns FENCED, the
 * log holds its gen.end fenced before the new gen.start, and nothing of it after.
 */
import pino from 'pino';
import { SpoolClient } from '../client';
import { startGateway } from '../gateway';
import type { SpoolError } from '../protocol/errors';
import { MemoryStore } from '../store/memory';

it('a takeover fences the streaming producer: its finish fails with FENCED and none of its later writes are stored', async () => {
  const gw = await startGateway({ port: 0, store: new MemoryStore(), logger: pino({ level: 'silent' }) });
  const a = new SpoolClient({ url: gw.url });
  const b = new SpoolClient({ url: gw.url });
  try {
    const genA = a.generation('s', { id: 'A' });
    for (let i = 0; i < 100; i++) genA.write(`a${i}`);
    await genA.flush();
    const genB = b.generation('s', { id: 'B', takeover: true });
    genB.write('b0');
    await genB.flush();
    // A keeps writing, unaware; its finish must fail with FENCED.
    let writeError: SpoolError | undefined;
    try {
      for (let i = 100; i < 200; i++) genA.write(`a${i}`);
    } catch (error) {
      writeError = error as SpoolError;
    }
    if (writeError) expect(writeError.code).toBe('FENCED');
    await expect(genA.finish({ timeoutMs: 30_000 })).rejects.toMatchObject({ code: 'FENCED' });
    expect(genA.state).toBe('failed');
    await genB.finish();
    const log = (await gw.store.read('s', 0, 1000)).items.map((e) => (e.type === 'gap' ? 'gap' : `${e.type}:${e.generationId}`));
    const fencedAt = log.indexOf('gen.end:A');
    expect(log[fencedAt + 1]).toBe('gen.start:B');
    expect(log.slice(fencedAt + 1).some((e) => e.endsWith(':A'))).toBe(false);
    expect(log.filter((e) => e === 'chunk:A')).toHaveLength(100);
    const ends = (await gw.store.read('s', 0, 1000)).items.filter((e) => e.type === 'gen.end');
    expect(ends.map((e) => (e.type === 'gen.end' ? `${e.generationId}:${e.status}` : ''))).toEqual(['A:fenced', 'B:done']);
  } finally {
    await a.close();
    await b.close();
    await gw.close();
  }
});
