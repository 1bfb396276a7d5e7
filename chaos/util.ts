/** Small helpers of the chaos runner: bounded waits and seeded choices. */
import type { AnyFrame, RawClient } from '../gateway/test-helpers/raw-client';

export { mulberry32 } from './history';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the promise's value, or rejects with `what` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/**
 * The raw client's next matching frame, or undefined when none came within `ms` or the
 * connection closed first (a gateway killed under it answers nothing: no point waiting it out).
 */
export function nextFrame(client: RawClient, match: (f: AnyFrame) => boolean, ms: number): Promise<AnyFrame | undefined> {
  return Promise.race([
    client.next(match, ms).catch(() => undefined),
    client.waitClosed(ms + 1000).then(
      () => undefined,
      () => undefined,
    ),
  ]);
}

/** Polls `check` every `everyMs` until it is true or `ms` passed; returns whether it became true. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** An integer in [lo, hi]. */
export function between(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** A seeded choice; throws on an empty list. */
export function pick<T>(rand: () => number, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list');
  return items[Math.floor(rand() * items.length)] as T;
}

/** The code of a SpoolError (or the message of anything else), for records. */
export function errorCode(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && typeof (error as { code: unknown }).code === 'string') return (error as { code: string }).code;
  return error instanceof Error ? error.message : String(error);
}
