/**
 * The streams this process serves over HTTP: each session's StreamLog (stream-state.ts), kept
 * up to date from the store, one lock per session for the door's writes, and the writes
 * themselves, which go through the session's actor like every write of the WebSocket door (same
 * queue, same durable acks, same dedupe by key, same readers notified).
 *
 * The store is the truth: before every request the catalog reads what the session gained since
 * it last looked (one store read when nothing changed), so writes of other gateway processes and
 * of the WebSocket door are seen. Writes of the door are serialised per session in this process
 * (validate, then append, then apply) — protocol §5.2.1 asks for per-producer serialisation;
 * per session is stricter and keeps Stream-Seq and closure checks exact too. Across processes the
 * writes are compare-and-appends on the session's head (writeIf, PROTOCOL §16.11): a write stored
 * only if nothing came since the checks read the stream.
 *
 * Fork references (who still reads a deleted stream's data) live in a registry session per
 * source incarnation (records.ts refsSession): `ds.fork` / `ds.unfork` appends keyed by the fork.
 */
import type { Logger } from 'pino';
import type { AppendFrame, AppendedFrame, Offset, SessionId } from '../../protocol/types';
import type { SessionStore, WriteResult } from '../../store/types';
import type { GatewayConfig } from '../config';
import type { ActorRegistry } from '../registry';
import { encodeKey, KIND_DELETE, KIND_FORK, KIND_UNFORK, PRIORITY_STRUCTURE, refKey, refsSession, type DeleteRecord, type ForkRef } from './records';
import { StreamLog, type Incarnation } from './stream-state';

export interface CatalogDeps {
  readonly registry: ActorRegistry;
  readonly store: SessionStore;
  readonly config: GatewayConfig;
  readonly logger: Logger;
}

/** One write the door makes: an `append` event of the session. */
export interface DoorWrite {
  readonly key: string;
  readonly kind: string;
  readonly priority: 2 | 3;
  readonly data: unknown;
}

export interface StreamEntry {
  readonly session: SessionId;
  readonly log: StreamLog;
  /** When this process first looked at the session: the TTL clock's floor (PROTOCOL §16.7). */
  readonly loadedAt: number;
  /** The last read or write of the current incarnation here (HEAD does not count). */
  access: { readonly inc: string; readonly at: number } | null;
  lastUsed: number;
  lock: Promise<unknown>;
  locks: number;
}

/** Entries unused this long are dropped (they reload from the store), TTL streams aside (sweep). */
const ENTRY_IDLE_MS = 60_000;

export class StreamCatalog {
  private readonly entries = new Map<string, StreamEntry>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly releasing = new Set<Promise<void>>();

  constructor(private readonly deps: CatalogDeps) {
    this.sweeper = setInterval(() => this.sweep(), ENTRY_IDLE_MS / 2);
    this.sweeper.unref();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.entries.clear();
  }

  private entry(session: SessionId): StreamEntry {
    const now = this.deps.config.clock();
    let entry = this.entries.get(session);
    if (!entry) {
      entry = { session, log: new StreamLog(), loadedAt: now, access: null, lastUsed: now, lock: Promise.resolve(), locks: 0 };
      this.entries.set(session, entry);
    }
    entry.lastUsed = now;
    return entry;
  }

  /** The session's entry, brought up to the store's head. */
  async fresh(session: SessionId): Promise<StreamEntry> {
    const entry = this.entry(session);
    await this.catchUp(entry);
    return entry;
  }

  private async catchUp(entry: StreamEntry): Promise<void> {
    const { store, config } = this.deps;
    for (;;) {
      const log = entry.log;
      const page = await store.read(entry.session, log.scanned, config.readPageEvents);
      if (page.head < log.scanned) {
        // The session went back (it expired and was written again, or the store lost data):
        // what this process knew of it names nothing now.
        log.reset();
        continue;
      }
      log.apply(page.items, page.through);
      if (page.through >= page.head || page.items.length === 0) return;
    }
  }

  /**
   * Runs `fn` alone among the door's writers of the session in this process, on its entry
   * brought up to date first.
   */
  locked<T>(session: SessionId, fn: (entry: StreamEntry) => Promise<T>): Promise<T> {
    const entry = this.entry(session);
    entry.locks += 1;
    const run = entry.lock.then(async () => {
      await this.catchUp(entry);
      return fn(entry);
    });
    entry.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run.finally(() => {
      entry.locks -= 1;
    });
  }

  /** Writes waiting for (or holding) the session's lock here. */
  pending(session: SessionId): number {
    return this.entries.get(session)?.locks ?? 0;
  }

  /**
   * Appends `writes` to the session through its actor, in order, queued in one go (so they share
   * a store call unless the queue splits them), and folds the stored events into the entry.
   */
  async write(entry: StreamEntry, writes: readonly DoorWrite[]): Promise<AppendedFrame[]> {
    const session = entry.session;
    const answers = await new Promise<Array<Promise<AppendedFrame>>>((resolve, reject) => {
      this.deps.registry.with(
        session,
        (actor) => resolve(writes.map((w) => actor.append({ type: 'append', session, key: w.key, kind: w.kind, priority: w.priority, data: w.data }))),
        reject,
      );
    });
    const settled = await Promise.allSettled(answers);
    const results: AppendedFrame[] = [];
    for (let i = 0; i < settled.length; i++) {
      const s = settled[i] as PromiseSettledResult<AppendedFrame>;
      if (s.status === 'rejected') throw s.reason;
      const w = writes[i] as DoorWrite;
      const appended = s.value;
      results.push(appended);
      // The door's own write needs no read back when nothing else came between.
      if (!appended.duplicate && appended.offset === entry.log.scanned + 1) {
        entry.log.applyEvent({ offset: appended.offset, type: 'append', key: w.key, kind: w.kind, priority: w.priority, ts: this.deps.config.clock(), data: w.data });
      }
    }
    // Anything else (a duplicate, another writer in between) is read back from the store.
    await this.catchUp(entry);
    return results;
  }

  /**
   * Like write, on condition that nothing was stored in the session since the entry was brought up
   * to date (compare-and-append on its head, PROTOCOL §16.11): the checks the caller made against
   * the entry hold for the writes, across processes too. Null when something was (a conflict):
   * the entry is brought up to date again, and the caller checks again and retries or refuses.
   */
  async writeIf(entry: StreamEntry, writes: readonly DoorWrite[]): Promise<AppendedFrame[] | null> {
    const session = entry.session;
    const head = entry.log.scanned;
    const frames = writes.map((w): AppendFrame => ({ type: 'append', session, key: w.key, kind: w.kind, priority: w.priority, data: w.data }));
    const results = await new Promise<readonly WriteResult[]>((resolve, reject) => {
      this.deps.registry.with(session, (actor) => actor.appendIf(frames, head).then(resolve, reject), reject);
    });
    if (results.some((r) => r.status === 'conflict')) {
      await this.catchUp(entry);
      return null;
    }
    const appended: AppendedFrame[] = [];
    for (let i = 0; i < results.length; i++) {
      const r = results[i] as WriteResult;
      if (r.status !== 'ok' && r.status !== 'duplicate') throw new Error(`durable streams: a conditional append answered ${r.status}`);
      const w = writes[i] as DoorWrite;
      appended.push({ type: 'appended', session, key: w.key, offset: r.offset, duplicate: r.status === 'duplicate' });
      if (r.status === 'ok' && r.offset === entry.log.scanned + 1) {
        entry.log.applyEvent({ offset: r.offset, type: 'append', key: w.key, kind: w.kind, priority: w.priority, ts: this.deps.config.clock(), data: w.data });
      }
    }
    await this.catchUp(entry);
    return appended;
  }

  // ------------------------------------------------------------------ TTL (protocol §4, §5.1)

  /** A read or write of the stream (not HEAD): restarts its TTL window. */
  touch(entry: StreamEntry, inc: Incarnation): void {
    entry.access = { inc: inc.inc, at: this.deps.config.clock() };
  }

  /** Whether the stream's Expires-At passed or its TTL window ran out. */
  expired(entry: StreamEntry, inc: Incarnation): boolean {
    const now = this.deps.config.clock();
    const { expiresAt, ttlSeconds } = inc.meta;
    if (expiresAt !== undefined) {
      const at = Date.parse(expiresAt);
      if (!Number.isFinite(at) || now >= at) return true;
    }
    if (ttlSeconds !== undefined) {
      const seen = entry.access?.inc === inc.inc ? entry.access.at : 0;
      const last = Math.max(seen, inc.lastWriteTs, entry.loadedAt);
      if (now >= last + ttlSeconds * 1000) return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ deletion and fork references

  /**
   * Deletes the stream (the caller holds the session's lock): soft while forks still read it (a
   * `ds.delete` event; the data stays for them), else for good. Returns whether it was soft.
   */
  async remove(entry: StreamEntry, inc: Incarnation, reason: DeleteRecord['reason']): Promise<boolean> {
    const soft = (await this.refCount(entry.session, inc.inc)) > 0;
    if (soft) {
      const record: DeleteRecord = { soft, reason };
      await this.write(entry, [{ key: encodeKey({ type: 'delete', inc: inc.inc, soft }), kind: KIND_DELETE, priority: PRIORITY_STRUCTURE, data: record }]);
    } else {
      await this.erase(entry, inc);
    }
    return soft;
  }

  /**
   * Deletes the stream for good (the caller holds the session's lock): the session is reset
   * (PROTOCOL §10.5) through its actor, so its data is gone from the store, its WebSocket readers
   * get the `session.reset` event, and offsets continue (a stream created here again never reuses
   * one: no cached response of the old stream can answer for the new one). Then the stream drops
   * the reference it held on its source, and its own fork registry goes.
   */
  private async erase(entry: StreamEntry, inc: Incarnation): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.deps.registry.with(entry.session, (actor) => actor.reset().then(() => resolve(), reject), reject);
    });
    await this.catchUp(entry);
    this.afterRemoval({ session: entry.session, inc: inc.inc }, inc);
  }

  /**
   * A stream is gone for good: it drops the reference it held on its source, and its fork
   * registry is deleted. Runs after the caller released the stream's lock: locks are taken child
   * first, then parent, on every path, so two deletes never wait on each other.
   */
  private afterRemoval(fork: ForkRef, inc: Incarnation): void {
    const origin = inc.meta.fork;
    const done = Promise.resolve().then(async () => {
      await this.deleteSession(refsSession(fork.session, fork.inc));
      if (origin) await this.release(origin.session as SessionId, origin.inc, fork);
    });
    this.releasing.add(done);
    void done.finally(() => this.releasing.delete(done));
  }

  /** Resolves once every reference release under way has finished (tests; shutdown). */
  async settled(): Promise<void> {
    while (this.releasing.size > 0) await Promise.all([...this.releasing]);
  }

  /** Drops a fork's reference on source incarnation `sourceInc`; finishes a soft-deleted source left without readers. */
  private async release(source: SessionId, sourceInc: string, fork: ForkRef): Promise<void> {
    try {
      await this.dropRef(source, sourceInc, fork.session, fork.inc);
      await this.locked(source, async (entry) => {
        const cur = entry.log.current;
        if (!cur || cur.inc !== sourceInc || !cur.deleted?.soft) return;
        if ((await this.refCount(source, sourceInc)) > 0) return;
        await this.erase(entry, cur);
      });
    } catch (error) {
      // The source stays soft-deleted (410) until another release or its session's TTL; logged.
      this.deps.logger.warn({ sessionId: source, err: String(error) }, 'durable streams: releasing a fork reference failed');
    }
  }

  /** Records that fork incarnation `forkInc` of `forkSession` reads source incarnation `sourceInc` (the caller holds the source's lock). */
  async addRef(source: SessionId, sourceInc: string, forkSession: string, forkInc: string): Promise<void> {
    await this.appendTo(refsSession(source, sourceInc), refKey(forkSession, forkInc, 'add'), KIND_FORK, { session: forkSession, inc: forkInc });
  }

  /** Drops what addRef recorded (the fork is gone, or its creation failed after addRef). */
  async dropRef(source: SessionId, sourceInc: string, forkSession: string, forkInc: string): Promise<void> {
    await this.appendTo(refsSession(source, sourceInc), refKey(forkSession, forkInc, 'drop'), KIND_UNFORK, { session: forkSession, inc: forkInc });
  }

  /** Forks of the incarnation that have not dropped their reference. */
  async refCount(session: string, inc: string): Promise<number> {
    const refs = refsSession(session, inc);
    const live = new Set<string>();
    let after: Offset = 0;
    for (;;) {
      const page = await this.deps.store.read(refs, after, this.deps.config.readPageEvents);
      for (const item of page.items) {
        if (item.type === 'gap' || item.type !== 'append' || typeof item.key !== 'string') continue;
        let parts: unknown;
        try {
          parts = JSON.parse(item.key);
        } catch {
          continue;
        }
        if (!Array.isArray(parts) || parts[0] !== 'ds-ref') continue;
        const id = JSON.stringify([parts[1], parts[2]]);
        if (parts[3] === 'add') live.add(id);
        else live.delete(id);
      }
      if (page.through >= page.head || page.through <= after) return live.size;
      after = page.through;
    }
  }

  /** Deletes a session of the door's bookkeeping (a fork registry), best effort: it expires anyway. */
  private async deleteSession(session: string): Promise<void> {
    await new Promise<void>((resolve) => {
      this.deps.registry.with(
        session as SessionId,
        (actor) =>
          actor.delete().then(
            () => resolve(),
            (err: unknown) => {
              this.deps.logger.warn({ sessionId: session, err: String(err) }, 'durable streams: deleting a fork registry failed');
              resolve();
            },
          ),
        () => resolve(),
      );
    });
  }

  private appendTo(session: string, key: string, kind: string, data: unknown): Promise<AppendedFrame> {
    return new Promise((resolve, reject) => {
      this.deps.registry.with(
        session as SessionId,
        (actor) => actor.append({ type: 'append', session: session as SessionId, key, kind, priority: PRIORITY_STRUCTURE, data }).then(resolve, reject),
        reject,
      );
    });
  }

  /**
   * Drops entries unused for a while (they reload from the store), except those whose stream has
   * a TTL: their clock lives here only, so they stay until the stream expires, and the sweep
   * deletes an expired one itself rather than forgetting it (a process that forgot it would start
   * its clock again on the next request).
   */
  private sweep(): void {
    const now = this.deps.config.clock();
    for (const [session, entry] of this.entries) {
      if (entry.locks > 0 || now - entry.lastUsed < ENTRY_IDLE_MS) continue;
      const inc = entry.log.current;
      if (inc && !inc.deleted && inc.meta.ttlSeconds !== undefined) {
        if (!this.expired(entry, inc)) continue;
        void this.locked(entry.session, async (locked) => {
          const cur = locked.log.current;
          if (cur && !cur.deleted && this.expired(locked, cur)) await this.remove(locked, cur, 'expired');
        }).then(
          () => this.entries.delete(session),
          (err: unknown) => this.deps.logger.warn({ sessionId: session, err: String(err) }, 'durable streams: expiring an idle stream failed'),
        );
        continue;
      }
      this.entries.delete(session);
    }
  }
}
