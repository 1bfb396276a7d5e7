/**
 * Reads a session through the SDK from offset 0 until a given number of generations ended:
 * what the end-to-end tests compare against the history checker.
 */
import { SpoolClient } from '../client';
import type { ReadItem } from '../protocol/types';

export async function readUntilEnded(url: string, session: string, generations: number): Promise<ReadItem[]> {
  const reader = new SpoolClient({ url, reconnect: { initialDelayMs: 10, maxDelayMs: 200 } });
  const sub = reader.subscribe(session, { from: 0 });
  const items: ReadItem[] = [];
  let ends = 0;
  try {
    for await (const item of sub) {
      items.push(item);
      if (item.type === 'gen.end' && ++ends === generations) break;
    }
  } finally {
    sub.close();
    await reader.close();
  }
  return items;
}
