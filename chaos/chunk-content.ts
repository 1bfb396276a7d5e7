/**
 * What the chaos producers write into a chunk, and how the checker recognises it: the data names
 * its (generation, seq) (`wrong-event` catches a chunk stored under another one), and a digest of
 * kind, priority and data is what a producer records per seq (`content-mismatch` catches a chunk
 * whose bytes are not its producer's, such as a second writer's).
 */
import { createHash } from 'node:crypto';

/** What a chunk written by the chaos workload carries: `<generation>#<seq>|padding`. */
export function chunkData(generation: string, seq: number, padding: string): string {
  return `${generation}#${seq}|${padding}`;
}

/**
 * A compact digest of what a chunk carries (kind, priority with the protocol's default of 2, and
 * data as canonical JSON): what producers record per seq and `content-mismatch` compares.
 */
export function chunkDigest(chunk: { readonly kind?: string | undefined; readonly priority?: number | undefined; readonly data?: unknown }): string {
  const canonical = canonicalJson([chunk.kind ?? null, chunk.priority ?? 2, chunk.data ?? null]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted, so equal values always encode to the same text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The (generation, seq) a chunk's data names, when it follows `chunkData`. */
export function parseChunkData(data: unknown): { generation: string; seq: number } | undefined {
  if (typeof data !== 'string') return undefined;
  const m = /^([^#|]+)#(\d+)\|/.exec(data);
  return m ? { generation: m[1] as string, seq: Number(m[2]) } : undefined;
}
