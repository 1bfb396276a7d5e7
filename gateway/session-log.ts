/**
 * One session's log as this process knows it: the hot buffer of recent durable events, the
 * highest head the store is known to have, and publication of newly durable events to the
 * session's readers. The writer side (the session actor) and the reader side (SessionReaders)
 * both hold it; neither reaches into the other.
 *
 *   actor ── publish(durable events) ──▶ SessionLog ── fanOut ──▶ SessionReaders ──▶ links
 *     ▲                                    │ ▲                        │
 *     └──── sync(head, verify) ◀─ notice ──┘ └── hot, storeHead ──────┘ (catch-up reads)
 *
 * Notices (another process wrote; a store reconnect healed its watch) arrive through the readers'
 * store watch. Bringing the log up to a noticed head is done by the writer, which serializes it
 * with its own writes (so every offset before its own is published first): the log asks it once
 * per notice, and the writer folds repeated asks into one pending sync.
 */
import type { Offset, SessionEvent } from '../protocol/types';
import type { AppendResult } from '../store/types';
import { HotBuffer } from './hot-buffer';
import { SessionReaders, type ReaderDeps } from './readers';
import { dataSize } from './size';

export interface SessionLogDeps extends ReaderDeps {
  /**
   * Asks the session's writer to bring the log up to `head` (`verify`: the head is below one the
   * store had before, so the writer checks for a rewind first; `deleted`: the store said the
   * session was deleted).
   */
  readonly sync: (head: Offset, verify: boolean, deleted: boolean) => void;
}

export class SessionLog {
  readonly readers: SessionReaders;
  private hotBuffer: HotBuffer;
  private knownHead: Offset = 0;
  private closedFlag = false;

  constructor(private readonly deps: SessionLogDeps) {
    this.hotBuffer = new HotBuffer(deps.config.hotBufferEvents, deps.config.hotBufferBytes, 0);
    this.readers = new SessionReaders(deps, this);
  }

  /** Starts (or, after a rewind, restarts) the log at the store's `head`, with nothing in memory. */
  reset(head: Offset): void {
    this.hotBuffer = new HotBuffer(this.deps.config.hotBufferEvents, this.deps.config.hotBufferBytes, head);
    this.knownHead = head;
  }

  /** Recent durable events, for readers near the head. */
  get hot(): HotBuffer {
    return this.hotBuffer;
  }

  /** The offset of the newest event published here. */
  get head(): Offset {
    return this.hotBuffer.head;
  }

  /** The highest head the store is known to have (own writes, notices, reads): never behind `head`. */
  get storeHead(): Offset {
    return this.knownHead;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** A store answer showed `head`. */
  noteStoreHead(head: Offset): void {
    if (head > this.knownHead) this.knownHead = head;
  }

  /** A change notice from the store (this process's writes or another's; `deleted`: a delete's). */
  notice(head: Offset, deleted = false): void {
    if (this.closedFlag) return;
    // Heads never go back while the store keeps what it acknowledged. A lower one is a notice
    // read before a write it raced (harmless), a store that lost data, or a deleted session: the
    // sync finds out which.
    const verify = head < this.knownHead;
    this.noteStoreHead(head);
    if (head <= this.hotBuffer.head && !verify) return;
    this.deps.sync(head, verify, deleted);
  }

  /**
   * Newly durable events: into the hot buffer, then out to live readers. `trimmed` are offsets
   * retention removed in the same store call (they become gaps, never deliveries); `encoded` is
   * the store's encoding of `events` (AppendResult.encoded), sent as is when readers get them all.
   */
  publish(events: readonly SessionEvent[], trimmed: AppendResult['trimmed'], head: Offset, encoded?: Uint8Array): void {
    // Every offset in (prevHead, head] is in `events` or was trimmed: readUpTo made sure of it.
    const prevHead = this.hotBuffer.head;
    let removed: Set<Offset> | null = null;
    if (trimmed.length > 0) {
      removed = new Set();
      for (const t of trimmed) {
        removed.add(t.offset);
        this.deps.metrics.bufferTrimmed.inc(1, { priority: String(t.priority) });
        this.deps.telemetry.emit({ name: 'buffer.trimmed', session: this.deps.session, offset: t.offset, priority: t.priority });
      }
    }
    const fresh = events.filter((e) => e.offset > prevHead && !(removed?.has(e.offset) ?? false));
    this.noteStoreHead(head);
    let resetAt = -1;
    for (let i = 0; i < fresh.length; i++) {
      const event = fresh[i] as SessionEvent;
      if (event.type === 'gen.end') this.emitEnd(event);
      else if (event.type === 'session.reset') resetAt = i;
    }
    if (resetAt >= 0) {
      // A reset removed everything before its event (PROTOCOL §10.5): nothing of it may be
      // served from memory again, to any reader that catches up from here on.
      const reset = fresh[resetAt] as SessionEvent;
      this.hotBuffer = new HotBuffer(this.deps.config.hotBufferEvents, this.deps.config.hotBufferBytes, reset.offset - 1);
      this.hotBuffer.push(fresh.slice(resetAt), head, (e) => dataSize(e.data));
    } else {
      this.hotBuffer.push(fresh, head, (e) => dataSize(e.data));
    }
    if (removed) this.hotBuffer.remove(removed);
    if (head <= prevHead) return;
    this.readers.fanOut(prevHead, fresh, head, fresh.length === events.length ? encoded : undefined);
  }

  /**
   * Brings the log (and live readers) up to `target` from the store. Only does work when another
   * process wrote to this session; for a session written only here it returns at once.
   */
  async readUpTo(target: Offset): Promise<void> {
    while (this.hotBuffer.head < target && !this.closedFlag) {
      const before = this.hotBuffer.head;
      const page = await this.deps.store.read(this.deps.session, before, this.deps.config.readPageEvents);
      if (page.through <= before) return;
      const events = page.items.filter((item): item is SessionEvent => item.type !== 'gap');
      this.publish(events, [], page.through);
    }
  }

  /** Drops every reader without a word and stops watching (the session's actor closes). */
  close(): void {
    this.closedFlag = true;
    this.readers.close();
  }

  private emitEnd(event: SessionEvent): void {
    this.deps.telemetry.emit({
      name: 'generation.end',
      session: this.deps.session,
      generation: event.generationId ?? '',
      status: event.status ?? 'done',
      offset: event.offset,
    });
  }
}
