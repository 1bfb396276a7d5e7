/**
 * File descriptors: every socket is one, and a process that runs out of them can accept nothing,
 * not even a health check. The gateway keeps its connection cap under the process's limit, and
 * the uWebSockets.js transport stops listening while the process is out of descriptors (its accept
 * loop would otherwise retry the failing accept at 100 % CPU; node:http's does not).
 */
import fs from 'node:fs';
import os from 'node:os';

/** The soft RLIMIT_NOFILE of this process, where the platform tells it (Linux /proc); else undefined. */
export function softFdLimit(limitsFile = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(limitsFile, 'utf8');
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!match || match[1] === 'unlimited') return undefined;
  return Number(match[1]);
}

/** Descriptors kept for everything that is not a client socket: the store, Redis, logs, the admin listener. */
export const FD_OVERHEAD = 256;

/**
 * The connection cap that fits under `fdLimit` with `reservedSockets` (HTTP) and FD_OVERHEAD to
 * spare: `maxConnections`, or less when the limit is lower (never under 1).
 */
export function connectionCapUnder(fdLimit: number | undefined, maxConnections: number, reservedSockets: number): number {
  if (fdLimit === undefined) return maxConnections;
  return Math.max(1, Math.min(maxConnections, fdLimit - reservedSockets - FD_OVERHEAD));
}

export interface FdWatch {
  stop(): void;
}

/**
 * Probes every `intervalMs` whether the process can open a descriptor. When it cannot,
 * `onExhausted` runs; after that, once `headroom` descriptors can be opened again, `onRelieved`
 * (again at every probe until it returns true).
 */
export function watchFdExhaustion(onExhausted: () => void, onRelieved: () => boolean, intervalMs = 250, headroom = 32): FdWatch {
  let exhausted = false;
  const timer = setInterval(() => {
    if (!exhausted) {
      if (canOpen(1)) return;
      exhausted = true;
      // While the listener is closed this timer may be all that keeps the process alive.
      timer.ref();
      onExhausted();
    } else if (canOpen(headroom) && onRelieved()) {
      exhausted = false;
      timer.unref();
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** Whether `count` descriptors can be open at once (opened and closed again). */
function canOpen(count: number): boolean {
  const fds: number[] = [];
  try {
    for (let i = 0; i < count; i++) fds.push(fs.openSync(os.devNull, 'r'));
    return true;
  } catch {
    return false;
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}
