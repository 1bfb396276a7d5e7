/**
 * In-process change notices (`SessionStore.watch`) for the stores whose every writer lives in
 * this process (memory, LMDB). The Redis store fans notices out through pub/sub instead
 * (redis-notices.ts) but calls listeners through the same `notifyAll`.
 */
import type { Offset } from '../protocol/types';
import type { ChangeListener } from './types';

/**
 * Calls every listener with `{head}` (and `deleted` when the session was deleted). A listener that throws stops neither the others nor the
 * caller (a store write or a socket's data handler); its error is rethrown on a later tick,
 * where the process reports it as uncaught rather than losing it.
 */
export function notifyAll(listeners: Iterable<ChangeListener>, head: Offset, deleted = false): void {
  const notice = deleted ? { head, deleted } : { head };
  // A copy: a listener may unsubscribe (itself or another) while being called.
  for (const listener of [...listeners]) {
    try {
      listener(notice);
    } catch (error) {
      setImmediate(() => {
        throw error;
      });
    }
  }
}

/** Listeners by session, for stores that notify in-process after a write resolved. */
export class LocalNotices {
  private readonly bySession = new Map<string, Set<ChangeListener>>();

  watch(session: string, listener: ChangeListener): () => void {
    let listeners = this.bySession.get(session);
    if (listeners === undefined) {
      listeners = new Set();
      this.bySession.set(session, listeners);
    }
    // A wrapper, so the same function watched twice is two subscriptions, each removed once.
    const entry: ChangeListener = (notice) => listener(notice);
    listeners.add(entry);
    return () => {
      const current = this.bySession.get(session);
      if (current === undefined || !current.delete(entry)) return;
      if (current.size === 0) this.bySession.delete(session);
    };
  }

  notify(session: string, head: Offset, deleted = false): void {
    const listeners = this.bySession.get(session);
    if (listeners !== undefined) notifyAll(listeners, head, deleted);
  }

  /** Sessions with at least one listener. */
  get sessions(): number {
    return this.bySession.size;
  }
}
