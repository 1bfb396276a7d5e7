/**
 * The session actor: the one serial path through which every write to a session passes (G4).
 * It checks fencing and seq order in memory (fast path; the store re-checks atomically), queues
 * writes for its flusher, acks producers only after the store made a batch durable (G1), and
 * publishes what became durable to the session's log (session-log.ts), which its readers follow.
 *
 * The actor is split along what it owns:
 *   actor.ts          the session's API (open, write, finish, append, subscribe), credit and
 *                     the queue, the store calls (execute) and syncs with other processes
 *   generations.ts    the active generation, the epoch, who may write, the idle timeout
 *   write-results.ts  store answers → acks, replies and errors; durable events → the log
 *   session-log.ts    the hot buffer, the store head and publication to readers (readers.ts)
 */
import type { Logger } from 'pino';
import { SpoolError } from '../protocol/errors';
import type { TokenParts } from '../protocol/token';
import type { AppendFrame, AppendedFrame, ChunkItem, FinishedFrame, OpenedFrame, Offset, SessionId } from '../protocol/types';
import type { OpenRequest, SessionStore, WriteItem, WriteResult } from '../store/types';
import type { GatewayConfig } from './config';
import { newTag, secretDigest } from './credentials';
import { Flusher, type FlushHandler, type FlusherOptions } from './flusher';
import { endItem, Generations, type EndItem, type GenerationsDeps, type GenState } from './generations';
import type { Link } from './link';
import type { SessionReaders } from './readers';
import * as replies from './replies';
import { SessionLog, type SessionLogDeps } from './session-log';
import { dataSize } from './size';
import type { Metrics, TelemetrySink } from './telemetry';
import type { Toggles } from './toggles';
import { deletedError, sendError, WriteResults, type DeleteOutcome, type Op, type ResetOutcome, type WriteResultsDeps } from './write-results';

/** How an open asks (PROTOCOL §7.1). */
export interface OpenOptions {
  readonly takeover: boolean;
  /** The parsed `resume.token`. */
  readonly resume?: TokenParts;
  /** The producer's secret, as sent. */
  readonly secret?: string;
}

/** What every actor of a registry shares: one object for all of them. */
export interface ActorDeps {
  /** Runtime toggles, read on every use. */
  readonly toggles: Toggles;
  /** Shared by every actor of a registry. */
  readonly flusherOptions: FlusherOptions;
  readonly store: SessionStore;
  readonly config: GatewayConfig;
  readonly metrics: Metrics;
  readonly telemetry: TelemetrySink;
  readonly logger: Logger;
}

/** The two calls an actor's parts make back into it. */
interface PartsOwner {
  requestSync(head: Offset, verify: boolean, deleted: boolean): void;
  queueEnd(gen: GenState, item: EndItem): void;
}

/**
 * What one actor hands its parts (log and readers, generations, write results): a single object
 * per actor, reading the shared fields through to the registry's deps and calling back through
 * methods, instead of a literal per part and a closure per callback. An idle session is mostly
 * this bookkeeping (DESIGN §8 memory_bytes_per_session).
 */
class ActorParts implements SessionLogDeps, GenerationsDeps, WriteResultsDeps {
  /** Set by the actor once it has made them (write results need both). */
  gens!: Generations;
  log!: SessionLog;

  constructor(
    readonly session: SessionId,
    private readonly shared: ActorDeps,
    private readonly owner: PartsOwner,
  ) {}

  get store(): SessionStore {
    return this.shared.store;
  }
  get config(): GatewayConfig {
    return this.shared.config;
  }
  get limits(): Toggles {
    return this.shared.toggles;
  }
  get metrics(): Metrics {
    return this.shared.metrics;
  }
  get telemetry(): TelemetrySink {
    return this.shared.telemetry;
  }
  get logger(): Logger {
    return this.shared.logger;
  }
  sync(head: Offset, verify: boolean, deleted: boolean): void {
    this.owner.requestSync(head, verify, deleted);
  }
  queueEnd(gen: GenState, item: EndItem): void {
    this.owner.queueEnd(gen, item);
  }
}

export class SessionActor implements FlushHandler<Op>, PartsOwner {
  private readonly gens: Generations;
  private readonly results: WriteResults;
  /** The session's log: hot buffer, known store head, publication to readers (shared with them). */
  private readonly log: SessionLog;
  private readonly readers: SessionReaders;
  private readonly flusher: Flusher<Op>;
  private lastUsed: number;
  private closed = false;
  /** The queued sync op, if any: notices arriving meanwhile raise its target instead of queueing more. */
  private pendingSync: Extract<Op, { kind: 'sync' }> | null = null;
  private idleWaiters: Array<() => void> | null = null;

  constructor(
    readonly session: SessionId,
    private readonly deps: ActorDeps,
  ) {
    this.lastUsed = deps.config.clock();
    // The actor is its flusher's handler and its parts' owner (methods, not per-actor closures):
    // an idle session costs little memory (DESIGN §8 memory_bytes_per_session).
    this.flusher = new Flusher<Op>(deps.flusherOptions, this);
    const parts = new ActorParts(session, deps, this);
    this.log = parts.log = new SessionLog(parts);
    this.readers = this.log.readers;
    this.gens = parts.gens = new Generations(parts);
    this.results = new WriteResults(parts);
  }

  /** Loads the session's state from the store. Called once, before any other method. */
  async load(): Promise<void> {
    const meta = await this.deps.store.meta(this.session);
    this.gens.epoch = meta.epoch;
    this.log.reset(meta.head);
    if (meta.active) this.gens.adopt(meta.active);
  }

  get queueDepth(): number {
    return this.flusher.depth;
  }

  get head(): Offset {
    return this.log.head;
  }

  // ------------------------------------------------------------------ producers

  /**
   * Opens a generation, or re-binds the producer of the active one when the open proves it is
   * that producer (the resume token's tag, or the secret of its first open). With `resume` it
   * never creates a generation: a displaced one answers FENCED, an ended or unknown one
   * GENERATION_CLOSED (with how it ended, when the store still remembers). An open of the active
   * generation that proves nothing answers GENERATION_ACTIVE, unless it asks for `takeover`,
   * which fences the generation's current writer and hands it a new token.
   */
  open(link: Link, generationId: string, options: OpenOptions, requestId: number | undefined): Promise<OpenedFrame> {
    this.touch();
    return new Promise<OpenedFrame>((resolve, reject) => {
      if (this.rejectIfUnavailable(reject)) return;
      const resume = options.resume;
      // Read-only: a producer resuming its generation may go on and finish; nothing new starts.
      const refused = resume === undefined ? this.deps.toggles.refuseNew(`opening generation ${generationId}`) : null;
      if (refused !== null) {
        reject(refused);
        return;
      }
      this.flusher.enqueue({
        kind: 'open',
        generationId,
        takeover: options.takeover && resume === undefined,
        resume,
        secret: options.secret === undefined ? undefined : secretDigest(options.secret),
        link,
        reply: { resolve, reject },
        requestId,
        ts: 0,
        tag: '',
      });
    });
  }

  /** Chunks `seq, seq+1, …` of the generation the token names. Answers arrive as ack or error frames. */
  write(link: Link, token: TokenParts, seq: number, items: readonly ChunkItem[]): void {
    const now = this.touch();
    const gen = this.gens.writer(link, token);
    if (!gen) return;
    if (seq > gen.nextSeq) {
      sendError(link, 'SEQ_GAP', `seq ${seq} skips ahead; expected ${gen.nextSeq}`, gen.id, { expectedSeq: gen.nextSeq });
      return;
    }
    if (this.flusher.unhealthy) {
      sendError(link, 'STORE_UNAVAILABLE', 'store unavailable; retry', gen.id);
      return;
    }
    const credit = this.deps.config.credit;
    // Credit (§7.6), chunks first: the gateway's count of unacked chunks never exceeds the
    // producer's (acks leave here before they arrive there), so a producer that respects
    // `welcome.credit` is never refused.
    const fresh = seq + items.length - gen.nextSeq;
    // Retransmissions are not counted by credit, so the session's queue bound also applies:
    // without it a producer resending old seqs in a loop would grow the queue without limit (G8).
    if ((fresh > 0 && gen.nextSeq - 1 - gen.durableSeq + fresh > credit.frames) || this.flusher.depth + items.length > this.deps.config.maxQueuedWrites) {
      this.refuseOverCredit(link, gen);
      return;
    }
    const byteLimit = credit.bytes + this.deps.config.limits.maxFrameBytes;
    gen.lastActivity = now;
    const watermark = this.deps.toggles.degradeWatermark;
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as ChunkItem;
      const s = seq + i;
      if (watermark > 0 && s === gen.nextSeq && (item.priority ?? 2) === 0 && this.flusher.depth >= watermark) {
        // Degradation (§7.6): the store is behind; debug chunks are dropped at the door. The seq
        // is still consumed (through the store, so every process agrees), nothing is stored.
        gen.nextSeq += 1;
        gen.droppedSinceAck += 1;
        this.deps.metrics.degradedDropped.inc();
        const drop: WriteItem & { op: 'chunk' } = { op: 'chunk', generationId: gen.id, epoch: gen.epoch, seq: s, priority: 0, ts: now, data: null, size: 0, drop: true };
        this.flusher.enqueue({ kind: 'chunk', item: drop, gen, counted: false });
        continue;
      }
      // A seq below nextSeq is a retransmission: it still goes to the store, which answers it
      // with the original offset (after the original, since the queue is ordered).
      const counted = s === gen.nextSeq;
      const size = dataSize(item.data);
      if (counted) {
        // Bytes are checked per chunk, so each size is computed once; chunks of this frame
        // already queued stay (they were within credit), and the connection closes.
        if (gen.unackedBytes + size > byteLimit) {
          this.refuseOverCredit(link, gen);
          return;
        }
        gen.nextSeq += 1;
        gen.unackedBytes += size;
      }
      const priority = item.priority ?? 2;
      const write: WriteItem & { op: 'chunk' } =
        item.kind === undefined
          ? { op: 'chunk', generationId: gen.id, epoch: gen.epoch, seq: s, priority, ts: now, data: item.data, size }
          : { op: 'chunk', generationId: gen.id, epoch: gen.epoch, seq: s, kind: item.kind, priority, ts: now, data: item.data, size };
      this.flusher.enqueue({ kind: 'chunk', item: write, gen, counted });
    }
  }

  private refuseOverCredit(link: Link, gen: GenState): void {
    const credit = this.deps.config.credit;
    sendError(link, 'FLOW_CONTROL', `generation ${gen.id} exceeded its credit (${credit.frames} chunks / ${credit.bytes} bytes unacknowledged)`, gen.id, { limit: credit.frames });
  }

  finish(link: Link, token: TokenParts, seq: number, status: 'done' | 'error' | 'aborted', error: string | undefined): Promise<FinishedFrame> {
    const now = this.touch();
    return new Promise<FinishedFrame>((resolve, reject) => {
      if (this.rejectIfUnavailable(reject)) return;
      const active = this.gens.active;
      const gen = active && active.id === token.generation && active.epoch === token.epoch ? active : null;
      if (gen) {
        if (gen.link !== link) gen.link = link;
        if (gen.failedCode) {
          // A chunk was refused for good: its gen.end error is already queued (G6); finish fails.
          reject(replies.failedBy(gen.id, gen.failedCode));
          return;
        }
        if (seq !== gen.nextSeq) {
          reject(new SpoolError('SEQ_GAP', `finish at seq ${seq}, but the generation holds ${gen.nextSeq} chunks`, { expectedSeq: gen.nextSeq }));
          return;
        }
        gen.lastActivity = now;
        gen.ending = true;
      }
      // Without a matching active generation the store answers: duplicate (it ended: its original
      // end), fenced, or closed.
      this.flusher.enqueue({ kind: 'end', item: endItem(token.generation, token.epoch, seq, status, error, now), gen, reply: { resolve, reject } });
    });
  }

  append(frame: AppendFrame): Promise<AppendedFrame> {
    const now = this.touch();
    return new Promise<AppendedFrame>((resolve, reject) => {
      if (this.refusesAppend(`append ${frame.key}`, reject)) return;
      const item: WriteItem = { op: 'append', key: frame.key, kind: frame.kind, priority: frame.priority ?? 3, ts: now, data: frame.data, size: dataSize(frame.data) };
      this.flusher.enqueue({ kind: 'append', item, reply: { resolve, reject }, requestId: frame.id });
    });
  }

  /** Refuses an append (store down, read-only, queue full) through `reject`; true when it did. */
  private refusesAppend(what: string, reject: (error: unknown) => void): boolean {
    if (this.rejectIfUnavailable(reject)) return true;
    const refused = this.deps.toggles.refuseNew(what);
    if (refused !== null) {
      reject(refused);
      return true;
    }
    if (this.flusher.depth >= this.deps.config.maxQueuedWrites) {
      reject(new SpoolError('RATE_LIMITED', `session ${this.session} has ${this.flusher.depth} writes waiting for the store; retry shortly`, { limit: this.deps.config.maxQueuedWrites }));
      return true;
    }
    return false;
  }

  /**
   * Appends `frames` in one store call of their own, stored only while the session's head is
   * still `head` (compare-and-append, PROTOCOL §16.11): the first at `head + 1`, the next after
   * it, and so on; once one is not stored, none after it is. Answers each item's store result:
   * ok, duplicate (its key was stored before) or conflict (someone else wrote: read and check
   * again); SESSION_FULL when the hard cap refused one.
   */
  appendIf(frames: readonly AppendFrame[], head: Offset): Promise<readonly WriteResult[]> {
    const now = this.touch();
    return new Promise<readonly WriteResult[]>((resolve, reject) => {
      if (this.refusesAppend(`append ${frames[0]?.key ?? ''}`, reject)) return;
      const items = frames.map((frame, i): WriteItem => ({ op: 'append', key: frame.key, kind: frame.kind, priority: frame.priority ?? 3, ts: now, data: frame.data, size: dataSize(frame.data), ifHead: head + i }));
      this.flusher.enqueue({ kind: 'conditional', items, reply: { resolve, reject } });
    });
  }

  /**
   * Empties the session's log (PROTOCOL §10.5): runs after every write already queued and before
   * any queued after it; fences the active generation; offsets continue after a `session.reset` event.
   */
  reset(): Promise<ResetOutcome> {
    this.touch();
    return new Promise<ResetOutcome>((resolve, reject) => {
      if (this.rejectIfUnavailable(reject)) return;
      this.flusher.enqueue({ kind: 'reset', reply: { resolve, reject } });
    });
  }

  /**
   * Deletes the session (PROTOCOL §10.6): runs after every write already queued and before any
   * queued after it; its producer and readers get SESSION_DELETED on every process.
   */
  delete(): Promise<DeleteOutcome> {
    this.touch();
    return new Promise<DeleteOutcome>((resolve, reject) => {
      if (this.rejectIfUnavailable(reject)) return;
      this.flusher.enqueue({ kind: 'delete', reply: { resolve, reject } });
    });
  }

  /**
   * Ends the active generation `generationId` from the gateway (an operator's choice of status),
   * after every write queued before it; its producer's later writes are refused as after any end.
   * GENERATION_CLOSED when it is not this session's active generation.
   */
  endGeneration(generationId: string, status: 'done' | 'error' | 'aborted', error: string | undefined): Promise<FinishedFrame> {
    this.touch();
    return new Promise<FinishedFrame>((resolve, reject) => {
      if (this.rejectIfUnavailable(reject)) return;
      const gen = this.gens.active;
      if (gen === null || gen.id !== generationId || gen.ending) {
        reject(replies.closed(generationId));
        return;
      }
      gen.ending = true;
      const item = endItem(gen.id, gen.epoch, gen.nextSeq, status, error, this.deps.config.clock());
      this.flusher.enqueue({ kind: 'end', item, gen, reply: { resolve, reject } });
    });
  }

  /** Readers subscribed to this session on this process. */
  get readerCount(): number {
    return this.readers.size;
  }

  // ------------------------------------------------------------------ readers

  /** Starts delivery of everything after `from`; answers `subscribed` first. */
  subscribe(link: Link, from: Offset | 'start' | 'now', requestId: number | undefined): void {
    this.touch();
    this.readers.subscribe(link, from, requestId);
  }

  /** Ends the link's subscription, if it has one. */
  unsubscribe(link: Link): boolean {
    return this.readers.unsubscribe(link);
  }

  /** The link's connection went away: drop its subscription and producer bindings. */
  detach(link: Link): void {
    this.readers.unsubscribe(link);
    const gen = this.gens.active;
    if (gen?.link === link) gen.link = null;
  }

  // ------------------------------------------------------------------ lifecycle

  /** True when nothing would be lost by dropping this actor (state reloads from the store). */
  evictable(now: number): boolean {
    return (
      !this.flusher.busy &&
      this.readers.size === 0 &&
      this.gens.active === null &&
      now - this.lastUsed >= this.deps.config.sessionIdleMs
    );
  }

  /** Resolves once every queued write was answered (durable, or failed). */
  whenIdle(): Promise<void> {
    if (!this.flusher.busy) return Promise.resolve();
    return new Promise((resolve) => (this.idleWaiters ??= []).push(resolve));
  }

  /** Stops timers and answers what is still queued with SHUTTING_DOWN. Call after whenIdle(). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.gens.close();
    this.flusher.close();
    this.giveUp(this.flusher.drainQueue(), new SpoolError('SHUTTING_DOWN', 'gateway is shutting down'));
    this.log.close();
  }

  // ------------------------------------------------------------------ internals

  private touch(): number {
    const now = this.deps.config.clock();
    this.lastUsed = now;
    return now;
  }

  private rejectIfUnavailable(reject: (error: SpoolError) => void): boolean {
    if (this.closed) {
      reject(new SpoolError('SHUTTING_DOWN', 'gateway is shutting down; reconnect'));
      return true;
    }
    if (this.flusher.unhealthy) {
      reject(new SpoolError('STORE_UNAVAILABLE', 'store unavailable; retry'));
      return true;
    }
    return false;
  }

  /** @internal One store call for a batch (the flusher's handler). */
  async execute(batch: Op[]): Promise<void> {
    const first = batch[0] as Op;
    const store = this.deps.store;
    const metrics = this.deps.metrics;
    const started = performance.now();
    // What the store had before this call: its answer may not show less (notices of this very
    // write may raise storeHead before the answer arrives, so compare with the head before).
    const headBefore = this.log.storeHead;
    if (first.kind === 'sync') {
      this.pendingSync = null;
      if (first.verify && (await this.checkRewind(undefined, undefined, first.deleted))) return;
      await this.log.readUpTo(first.head);
      return;
    }
    if (first.kind === 'open') {
      first.ts = this.deps.config.clock();
      // The tag is drawn once per open, not per attempt: a retry after an attempt that reached
      // the store but lost its answer presents it as proof and is answered as a resume.
      first.tag ||= newTag();
      const request: OpenRequest = {
        generationId: first.generationId,
        takeover: first.takeover,
        tag: first.tag,
        ts: first.ts,
        resumeTag: first.resume ? first.resume.tag : first.tag,
        ...(first.resume ? { resumeOnly: true } : {}),
        ...(first.secret !== undefined ? { secret: first.secret } : {}),
      };
      const result = await store.openGeneration(this.session, request);
      metrics.persistenceLatency.observe((performance.now() - started) / 1000);
      metrics.persistenceSuccess.inc();
      if (result.status === 'opened' && result.events[0]) {
        const before = result.events[0].offset - 1;
        if (before < headBefore) await this.checkRewind(before, headBefore);
        await this.log.readUpTo(before);
      }
      this.results.opened(first, result);
      return;
    }
    if (first.kind === 'delete') {
      const result = await store.delete(this.session);
      metrics.persistenceLatency.observe((performance.now() - started) / 1000);
      metrics.persistenceSuccess.inc();
      if (result.status === 'deleted') this.deps.logger.info({ sessionId: this.session, head: result.head, fenced: result.fenced }, 'session deleted');
      this.results.deleted(first, result);
      return;
    }
    if (first.kind === 'reset') {
      const result = await store.reset(this.session, this.deps.config.clock());
      metrics.persistenceLatency.observe((performance.now() - started) / 1000);
      metrics.persistenceSuccess.inc();
      if (result.status === 'reset') {
        // What others wrote before the reset reaches readers first (as the gap it now is).
        if (result.cleared < headBefore) await this.checkRewind(result.cleared, headBefore);
        await this.log.readUpTo(result.cleared);
      }
      if (result.status === 'reset') this.deps.logger.info({ sessionId: this.session, cleared: result.cleared, head: result.head, fenced: result.fenced }, 'session reset');
      this.results.reset(first, result);
      return;
    }
    const items = first.kind === 'conditional' ? first.items : batch.map((op) => (op as Extract<Op, { item: WriteItem }>).item);
    const result = await store.append(this.session, items);
    metrics.persistenceLatency.observe((performance.now() - started) / 1000);
    metrics.persistenceBatchSize.observe(items.length);
    metrics.persistenceSuccess.inc();
    // Other processes may have written since this actor last looked: fan their events out first,
    // so every offset up to ours is accounted for before ours are published. A head below one
    // the store had before means it lost data or the session was re-created (G9).
    const before = result.events[0] ? result.events[0].offset - 1 : result.head;
    if (before < headBefore) await this.checkRewind(before, headBefore);
    await this.log.readUpTo(before);
    if (first.kind === 'conditional') this.results.conditional(first, result);
    else this.results.appended(batch, result);
  }

  /** Counts, logs and describes a rewind: the store has less of this session than it had (G9). */
  private rewound(lost: { readonly head: Offset; readonly epoch: number }, meta: { readonly head: Offset; readonly epoch: number }): SpoolError {
    this.deps.metrics.sessionRewound.inc();
    this.deps.telemetry.emit({ name: 'session.rewound', session: this.session, fromHead: lost.head, toHead: meta.head });
    this.deps.logger.warn(
      { sessionId: this.session, head: lost.head, epoch: lost.epoch, storeHead: meta.head, storeEpoch: meta.epoch },
      'the store no longer has what it acknowledged for this session (data lost, or expired and written again); readers and producer told SESSION_REWOUND',
    );
    return new SpoolError(
      'SESSION_REWOUND',
      `session ${this.session} went back from offset ${lost.head} (epoch ${lost.epoch}) to ${meta.head} (epoch ${meta.epoch}): the store lost it or it expired; offsets after ${meta.head} will be reused, subscribe again from the start`,
      { session: this.session, head: meta.head, offset: lost.head },
    );
  }

  /** The log asks for a sync up to `head`: one pending sync op takes every ask until it runs. */
  requestSync(head: Offset, verify: boolean, deleted: boolean): void {
    if (this.closed) return;
    if (this.pendingSync) {
      this.pendingSync.head = Math.max(this.pendingSync.head, head);
      this.pendingSync.verify ||= verify;
      this.pendingSync.deleted ||= deleted;
      return;
    }
    this.pendingSync = { kind: 'sync', head, verify, deleted };
    this.flusher.enqueue(this.pendingSync);
  }
  /** The generations ask to end one (idle timeout, producer gone): behind everything already queued. */
  queueEnd(gen: GenState, item: EndItem): void {
    this.flusher.enqueue({ kind: 'end', item, gen, reply: null });
  }


  /**
   * Checks the store's meta against what this actor saw of it; when the head or the epoch went
   * back (the store lost acknowledged data, or the session expired and was written again), every
   * reader and the producer of the session are told with SESSION_REWOUND (G9) and the actor
   * restarts from the store's state. Returns true when it was a rewind. `seen`: the store just
   * answered one of this actor's writes with a head (before the write's first offset) below
   * `known`, the head it had before the write was sent — proof on its own, as the write came
   * after every earlier look.
   */
  private async checkRewind(seen?: Offset, known?: Offset, deleted = false): Promise<boolean> {
    // Compared with what was known before the look: notices of later writes may arrive while the
    // meta read is in flight and raise the known head past what the read could have seen.
    const gens = this.gens;
    const before = { head: this.log.storeHead, epoch: gens.epoch };
    const meta = await this.deps.store.meta(this.session);
    const rewound = (seen !== undefined && known !== undefined && seen < known) || meta.head < before.head || meta.epoch < before.epoch;
    if (!rewound) return false;
    const lost = { head: Math.max(before.head, this.log.storeHead), epoch: Math.max(before.epoch, gens.epoch) };
    // A delete (its notice said so, and the store has nothing) is not data lost: its readers and
    // producer get the delete's own terminal answer (PROTOCOL §10.6).
    const error = deleted && meta.head === 0 ? deletedError(this.session) : this.rewound(lost, meta);
    this.readers.failAll(error);
    const gen = gens.active;
    if (gen !== null) {
      const still = meta.active;
      if (still === null || still.id !== gen.id || still.epoch !== gen.epoch) {
        gen.ending = true;
        gen.failedCode = error.code;
        if (gen.link) gen.link.sendError(error, gen.id);
        gens.deactivate();
      }
    }
    gens.epoch = meta.epoch;
    this.log.reset(meta.head);
    if (meta.active && gens.active === null) gens.adopt(meta.active);
    return true;
  }

  /** @internal The store stayed down past the budget (or the actor closes): answer every op. */
  giveUp(batch: Op[], error: unknown): void {
    const spoolError = error instanceof SpoolError ? error : new SpoolError('STORE_UNAVAILABLE', `store unavailable: ${String(error)}; retry`);
    if (batch.length && !(error instanceof SpoolError)) {
      this.deps.logger.error({ sessionId: this.session, err: String(error), ops: batch.length }, 'store retry budget spent; failing writes');
    }
    const writes = batch.filter((op) => op.kind !== 'sync').length;
    if (writes > 0) {
      this.deps.metrics.writesFailed.inc(writes, { code: spoolError.code });
      this.deps.telemetry.emit({ name: 'writes.failed', session: this.session, code: spoolError.code, writes });
    }
    const notified = new Set<GenState>();
    for (const op of batch) {
      switch (op.kind) {
        case 'chunk': {
          const gen = op.gen;
          // Not durable: the producer resends from the last acked seq.
          gen.nextSeq = Math.min(gen.nextSeq, gen.durableSeq + 1);
          if (op.counted) gen.unackedBytes = Math.max(0, gen.unackedBytes - op.item.size);
          if (!notified.has(gen)) {
            notified.add(gen);
            if (gen.link) sendError(gen.link, spoolError.code, spoolError.message, gen.id);
          }
          break;
        }
        case 'end':
          if (op.gen) op.gen.ending = false;
          op.reply?.reject(spoolError);
          break;
        case 'append':
        case 'conditional':
        case 'open':
        case 'reset':
        case 'delete':
          op.reply.reject(spoolError);
          break;
        case 'sync':
          // Live readers cannot be brought up to date: end their subscriptions so they resume
          // from their offsets once the store is back (never a silent skip).
          this.pendingSync = null;
          this.readers.failAll(new SpoolError('STORE_UNAVAILABLE', 'store read failed; resubscribe from your offset'));
          break;
      }
    }
  }

  // ------------------------------------------------------------------ FlushHandler (called by the flusher only)

  /** @internal */
  batchable(op: Op): boolean {
    return op.kind === 'chunk' || op.kind === 'end' || op.kind === 'append';
  }

  /**
   * @internal A sync whose head this actor has reached meanwhile: in-process stores notify the
   * actor of its own writes before the write's answer arrives, so every batch written while
   * readers watch would otherwise be followed by a sync with nothing to read.
   */
  settled(op: Op): boolean {
    if (op.kind !== 'sync' || op.verify || op.head > this.log.head) return false;
    if (this.pendingSync === op) this.pendingSync = null;
    return true;
  }

  /** @internal */
  weight(op: Op): number {
    return op.kind === 'chunk' || op.kind === 'end' || op.kind === 'append' ? ('size' in op.item ? op.item.size : 0) : 0;
  }

  /** @internal */
  onRetry(error: unknown, attempt: number): void {
    this.deps.metrics.persistenceFailure.inc();
    this.deps.logger.warn({ sessionId: this.session, attempt, err: String(error) }, 'store call failed, retrying');
  }

  /** @internal */
  onIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = null;
    for (const resolve of waiters ?? []) resolve();
  }

}
