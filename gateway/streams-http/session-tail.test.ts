/**
 * An HTTP reader's subscription (SessionTail) against a real actor registry on the memory store:
 * it is one of the session's readers, with their bounds.
 */
import pino from 'pino';
import type { SessionId } from '../../protocol/types';
import { MemoryStore } from '../../store/memory';
import { resolveConfig } from '../config';
import { ActorRegistry } from '../registry';
import { Metrics, noopSink } from '../telemetry';
import { Toggles } from '../toggles';
import { SessionTail, type TailItem } from './session-tail';

const quiet = pino({ level: 'silent' });

async function registry(options: Parameters<typeof resolveConfig>[0]): Promise<{ registry: ActorRegistry; close: () => Promise<void> }> {
  const metrics = new Metrics();
  const config = resolveConfig(options);
  const r = new ActorRegistry(new MemoryStore(), config, metrics, noopSink, quiet, new Toggles(config));
  return {
    registry: r,
    close: async () => {
      await r.close(1000);
      await metrics.close();
    },
  };
}

function append(r: ActorRegistry, session: SessionId, key: string, data: string): Promise<number> {
  return new Promise((resolve, reject) => r.with(session, (actor) => actor.append({ type: 'append', session, key, kind: 'ds.text', priority: 2, data }).then((a) => resolve(a.offset), reject), reject));
}

/** The next item that is not `events`, within `timeoutMs`. */
async function nextOther(tail: SessionTail, timeoutMs: number): Promise<{ item: TailItem | 'timeout' | 'stopped'; events: number }> {
  let events = 0;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const item = await tail.next(deadline - Date.now());
    if (typeof item === 'object' && item.kind === 'events') {
      events += item.events.length;
      continue;
    }
    return { item, events };
  }
}

describe('SessionTail', () => {
  test('catches up from the store, goes live at the head, then gets each new write', async () => {
    const { registry: r, close } = await registry({});
    const session = 'tail-live' as SessionId;
    for (let i = 0; i < 5; i++) await append(r, session, `k${i}`, `v${i}`);
    const tail = new SessionTail(r, session);
    tail.start(2);
    const seen: number[] = [];
    let live: TailItem | 'timeout' | 'stopped' | undefined;
    while (live === undefined) {
      const item = await tail.next(5000);
      if (typeof item === 'object' && item.kind === 'events') seen.push(...item.events.map((e) => e.offset));
      else live = item;
    }
    expect(seen).toEqual([3, 4, 5]);
    expect(live).toEqual({ kind: 'live', offset: 5 });
    await append(r, session, 'k5', 'v5');
    expect(await tail.next(5000)).toEqual({ kind: 'events', events: [expect.objectContaining({ offset: 6, data: 'v5' })] });
    tail.stop();
    expect(await tail.next(5000)).toBe('stopped');
    await close();
  });

  test('a reader whose response does not drain is paused past maxReaderBufferedBytes and ended with SLOW_CONSUMER after slowReaderTimeoutMs, like a WebSocket reader', async () => {
    const { registry: r, close } = await registry({ maxReaderBufferedBytes: 16 * 1024, slowReaderTimeoutMs: 300 });
    const session = 'tail-slow' as SessionId;
    // The response's backlog: far past the bound, and it never drains.
    const sink = { bufferedAmount: () => 1024 * 1024, onceDrained: () => undefined };
    const tail = new SessionTail(r, session, sink);
    tail.start(0);
    expect((await nextOther(tail, 5000)).item).toEqual({ kind: 'live', offset: 0 });
    for (let i = 0; i < 20; i++) await append(r, session, `k${i}`, 'x'.repeat(1024));
    const { item, events } = await nextOther(tail, 5000);
    expect(item).toEqual({ kind: 'error', error: expect.objectContaining({ code: 'SLOW_CONSUMER' }) });
    // Past the bound from its first delivery (the `live` that caught it up): paused there, so none
    // of the 20 writes was pushed to it, and it was ended instead of being buffered for.
    expect(events).toBe(0);
    await close();
  });
});
