/**
 * The session actor: the one serial path through which every write to a session passes (G4).
 * It checks fencing and seq order in memory (fast path; the store re-checks atomically), queues
 * writes for its flusher, acks producers only after the store made a batch durable (G1), and
 * publishes what became durable to the session's log (session-log.ts), which its readers follow.
 *
 * Generation lifecycle, as this actor sees it:
 *
 *            open (store: epoch+1, gen.start)
 *   (none) ─────────────────────────────────▶ active ──finish──────────▶ gen.end done|error|aborted
 *                                               │ ──idle timeout──────▶ gen.end timeout
 *                                               │ ──chunk refused full─▶ gen.end error
 *                                               └──open B + takeover──▶ gen.end fenced (by the store)
 *   A resumed open (same generation id, proved by the token's tag or the first open's secret)
 *   re-binds the producer's link and answers nextSeq; an unproved one with takeover fences the
 *   generation's writer (new epoch and token, same seqs); an unproved one without is refused.
 */
import type { Logger } from 'pino';
import { SpoolError, type ErrorCode, type ErrorDetails } from '../protocol/errors';
import { encodeToken, type TokenParts } from '../protocol/token';
import type {
  AppendFrame,
  AppendedFrame,
  ChunkItem,
  EndStatus,
  FinishedFrame,
  OpenedFrame,
  Offset,
  SessionId,
  GenerationId,
} from '../protocol/types';
import type { ActiveGeneration, AppendResult, OpenRequest, OpenResult, SessionStore, WriteItem } from '../store/types';
import type { GatewayConfig } from './config';
import { newTag, secretDigest } from './credentials';
import { Flusher, type FlushHandler, type FlusherOptions } from './flusher';
import type { Link } from './link';
import type { SessionReaders } from './readers';
import * as replies from './replies';
import { SessionLog } from './session-log';
import { dataSize } from './size';
import type { Metrics, TelemetrySink } from './telemetry';

interface Reply<T> {
  resolve(value: T): void;
  reject(error: SpoolError): void;
}

/** The actor's view of the session's active generation. */
interface GenState {
  readonly id: string;
  readonly epoch: number;
  /** Next seq accepted into the queue. */
  nextSeq: number;
  /** Highest seq the store made durable, and its offset. */
  durableSeq: number;
  durableOffset: Offset;
  readonly startOffset: Offset;
  /** The producer's upload channel; null while it is disconnected. */
  link: Link | null;
  lastActivity: number;
  /** Set once its end is queued: further chunks are refused. */
  ending: boolean;
  /** A chunk was refused for good (SESSION_FULL): the generation ends with error. */
  failedCode: ErrorCode | null;
  /** Data bytes of accepted chunks not yet durable, for credit enforcement (§7.6). */
  unackedBytes: number;
  /**
   * The newest activity time of this generation the store is known to hold (its lastWriteTs as
   * of our last look). The idle timeout ends the generation only if the store still says so:
   * a compare-and-set, so a producer now writing through another process (or another clock) wins.
   */
  knownWriteTs: number;
  /** Priority-0 chunks dropped at the door since the last ack (reported in it). */
  droppedSinceAck: number;
  /** Scratch for building one ack per generation per batch. */
  ackSeq: number;
  ackOffset: Offset;
}

type Op =
  | { readonly kind: 'chunk'; readonly item: WriteItem & { op: 'chunk' }; readonly gen: GenState; readonly counted: boolean }
  | { readonly kind: 'end'; readonly item: WriteItem & { op: 'end' }; readonly gen: GenState | null; readonly reply: Reply<FinishedFrame> | null }
  | { readonly kind: 'append'; readonly item: WriteItem; readonly reply: Reply<AppendedFrame>; readonly requestId: number | undefined }
  /**
   * Another process stored up to `head`: read what this actor has not seen and fan it out.
   * `verify`: a notice reported a head below one the store had before; look at the store's meta
   * to tell a stale notice from a store that lost data (a rewind).
   */
  | { readonly kind: 'sync'; head: Offset; verify: boolean }
  | {
      readonly kind: 'open';
      readonly generationId: string;
      readonly takeover: boolean;
      /** The resume token's parts: a resume never creates a generation (§7.1). */
      readonly resume: TokenParts | undefined;
      /** Digest of the producer's secret, when the open carried one. */
      readonly secret: string | undefined;
      readonly link: Link;
      readonly reply: Reply<OpenedFrame>;
      readonly requestId: number | undefined;
      /** Set when the store call is made: the activity time the store records for it. */
      ts: number;
      /** Set when the store call is made: the tag of any epoch the open makes. */
      tag: string;
    };

/** How an open asks (PROTOCOL §7.1). */
export interface OpenOptions {
  readonly takeover: boolean;
  /** The parsed `resume.token`. */
  readonly resume?: TokenParts;
  /** The producer's secret, as sent. */
  readonly secret?: string;
}

export interface ActorDeps {
  readonly session: SessionId;
  /** Shared by every actor of a registry. */
  readonly flusherOptions: FlusherOptions;
  readonly store: SessionStore;
  readonly config: GatewayConfig;
  readonly metrics: Metrics;
  readonly telemetry: TelemetrySink;
  readonly logger: Logger;
}

export class SessionActor implements FlushHandler<Op> {
  readonly session: SessionId;
  private epoch = 0;
  private active: GenState | null = null;
  /** The session's log: hot buffer, known store head, publication to readers (shared with them). */
  private readonly log: SessionLog;
  private readonly readers: SessionReaders;
  private readonly flusher: Flusher<Op>;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastUsed: number;
  private closed = false;
  /** The queued sync op, if any: notices arriving meanwhile raise its target instead of queueing more. */
  private pendingSync: Extract<Op, { kind: 'sync' }> | null = null;
  /** The last generation a refused chunk failed, so a finish arriving after its gen.end learns why. */
  private lastFailure: { readonly id: string; readonly code: ErrorCode } | null = null;
  private idleWaiters: Array<() => void> | null = null;

  constructor(private readonly deps: ActorDeps) {
    this.session = deps.session;
    this.lastUsed = deps.config.clock();
    // The actor is its flusher's handler (methods, not per-actor closures): an idle session
    // costs little memory (DESIGN §8 memory_bytes_per_session).
    this.flusher = new Flusher<Op>(deps.flusherOptions, this);
    this.log = new SessionLog({
      session: deps.session,
      store: deps.store,
      config: deps.config,
      metrics: deps.metrics,
      telemetry: deps.telemetry,
      logger: deps.logger,
      sync: (head, verify) => this.requestSync(head, verify),
    });
    this.readers = this.log.readers;
  }

  /** Loads the session's state from the store. Called once, before any other method. */
  async load(): Promise<void> {
    const meta = await this.deps.store.meta(this.session);
    this.epoch = meta.epoch;
    this.log.reset(meta.head);
    if (meta.active) this.adopt(meta.active);
  }

  /** Takes the store's active generation as this actor's (its producer is not bound yet). */
  private adopt(a: ActiveGeneration): void {
    // The producer gets a full idle timeout from now to come back (the gateway may have restarted).
    this.active = this.newGen(a.id, a.epoch, a.lastSeq, a.startOffset);
    this.active.durableOffset = 0;
    this.active.knownWriteTs = a.lastWriteTs;
    this.armIdleTimer();
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
    const gen = this.checkWriter(link, token);
    if (!gen) return;
    if (seq > gen.nextSeq) {
      this.sendError(link, 'SEQ_GAP', `seq ${seq} skips ahead; expected ${gen.nextSeq}`, gen.id, { expectedSeq: gen.nextSeq });
      return;
    }
    if (this.flusher.unhealthy) {
      this.sendError(link, 'STORE_UNAVAILABLE', 'store unavailable; retry', gen.id);
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
    const watermark = this.deps.config.degradeWatermark;
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
    this.sendError(link, 'FLOW_CONTROL', `generation ${gen.id} exceeded its credit (${credit.frames} chunks / ${credit.bytes} bytes unacknowledged)`, gen.id, { limit: credit.frames });
  }

  finish(link: Link, token: TokenParts, seq: number, status: 'done' | 'error' | 'aborted', error: string | undefined): Promise<FinishedFrame> {
    const now = this.touch();
    return new Promise<FinishedFrame>((resolve, reject) => {
      if (this.rejectIfUnavailable(reject)) return;
      const gen = this.active && this.active.id === token.generation && this.active.epoch === token.epoch ? this.active : null;
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
      this.flusher.enqueue({ kind: 'end', item: this.endItem(token.generation, token.epoch, seq, status, error, now), gen, reply: { resolve, reject } });
    });
  }

  append(frame: AppendFrame): Promise<AppendedFrame> {
    const now = this.touch();
    return new Promise<AppendedFrame>((resolve, reject) => {
      if (this.rejectIfUnavailable(reject)) return;
      if (this.flusher.depth >= this.deps.config.maxQueuedWrites) {
        reject(new SpoolError('RATE_LIMITED', `session ${this.session} has ${this.flusher.depth} writes waiting for the store; retry shortly`, { limit: this.deps.config.maxQueuedWrites }));
        return;
      }
      const item: WriteItem = { op: 'append', key: frame.key, kind: frame.kind, priority: frame.priority ?? 3, ts: now, data: frame.data, size: dataSize(frame.data) };
      this.flusher.enqueue({ kind: 'append', item, reply: { resolve, reject }, requestId: frame.id });
    });
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
    if (this.active?.link === link) this.active.link = null;
  }

  // ------------------------------------------------------------------ lifecycle

  /** True when nothing would be lost by dropping this actor (state reloads from the store). */
  evictable(now: number): boolean {
    return (
      !this.flusher.busy &&
      this.readers.size === 0 &&
      this.active === null &&
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
    if (this.idleTimer) clearTimeout(this.idleTimer);
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

  /** The active generation if the token may write to it; otherwise answers the error and returns null. */
  private checkWriter(link: Link, token: TokenParts): GenState | null {
    const gen = this.active;
    if (gen && gen.id === token.generation && gen.epoch === token.epoch) {
      if (gen.ending) {
        link.sendError(replies.finishing(gen.id), gen.id);
        return null;
      }
      if (gen.link !== link) gen.link = link;
      return gen;
    }
    if (token.epoch < this.epoch) {
      this.deps.metrics.fencedWrites.inc();
      this.deps.telemetry.emit({ name: 'write.fenced', session: this.session, generation: token.generation, epoch: this.epoch });
      link.sendError(replies.fenced(token.generation, this.epoch), token.generation);
    } else {
      link.sendError(replies.closed(token.generation), token.generation);
    }
    return null;
  }

  private newGen(id: string, epoch: number, lastSeq: number, startOffset: Offset): GenState {
    return {
      id,
      epoch,
      nextSeq: lastSeq + 1,
      durableSeq: lastSeq,
      durableOffset: startOffset,
      startOffset,
      link: null,
      lastActivity: this.deps.config.clock(),
      ending: false,
      failedCode: null,
      unackedBytes: 0,
      knownWriteTs: 0,
      droppedSinceAck: 0,
      ackSeq: -1,
      ackOffset: 0,
    };
  }

  private endItem(generationId: string, epoch: number, seq: number, status: EndStatus, error: string | undefined, ts: number): WriteItem & { op: 'end' } {
    return { op: 'end', generationId, epoch, seq, status, ts, ...(error !== undefined ? { error } : {}) };
  }

  /** Ends the active generation from the gateway side (timeout, refused chunk). */
  private endFromGateway(gen: GenState, status: EndStatus, error?: string): void {
    if (gen.ending) return;
    gen.ending = true;
    const item = this.endItem(gen.id, gen.epoch, gen.nextSeq, status, error, this.deps.config.clock());
    this.flusher.enqueue({ kind: 'end', item: status === 'timeout' ? { ...item, ifIdleSince: gen.knownWriteTs } : item, gen, reply: null });
  }

  private armIdleTimer(): void {
    if (this.idleTimer || this.closed) return;
    const timeout = this.deps.config.generationIdleTimeoutMs;
    const check = (): void => {
      this.idleTimer = undefined;
      const gen = this.active;
      if (!gen || gen.ending || this.closed) return;
      const idleFor = this.deps.config.clock() - gen.lastActivity;
      if (idleFor >= timeout) {
        this.deps.logger.info({ session: this.session, generation: gen.id }, 'generation idle, ending with timeout');
        this.endFromGateway(gen, 'timeout');
      } else {
        this.idleTimer = setTimeout(check, timeout - idleFor);
        this.idleTimer.unref();
      }
    };
    this.idleTimer = setTimeout(check, timeout);
    this.idleTimer.unref();
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
      if (first.verify && (await this.checkRewind())) return;
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
      this.applyOpen(first, result);
      return;
    }
    const items = batch.map((op) => (op as Extract<Op, { item: WriteItem }>).item);
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
    this.applyAppend(batch, result);
  }

  /** The log asks for a sync up to `head`: one pending sync op takes every ask until it runs. */
  private requestSync(head: Offset, verify: boolean): void {
    if (this.closed) return;
    if (this.pendingSync) {
      this.pendingSync.head = Math.max(this.pendingSync.head, head);
      this.pendingSync.verify ||= verify;
      return;
    }
    this.pendingSync = { kind: 'sync', head, verify };
    this.flusher.enqueue(this.pendingSync);
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
  private async checkRewind(seen?: Offset, known?: Offset): Promise<boolean> {
    // Compared with what was known before the look: notices of later writes may arrive while the
    // meta read is in flight and raise the known head past what the read could have seen.
    const before = { head: this.log.storeHead, epoch: this.epoch };
    const meta = await this.deps.store.meta(this.session);
    const rewound = (seen !== undefined && known !== undefined && seen < known) || meta.head < before.head || meta.epoch < before.epoch;
    if (!rewound) return false;
    const lost = { head: Math.max(before.head, this.log.storeHead), epoch: Math.max(before.epoch, this.epoch) };
    this.deps.metrics.sessionRewound.inc();
    this.deps.telemetry.emit({ name: 'session.rewound', session: this.session, fromHead: lost.head, toHead: meta.head });
    this.deps.logger.warn(
      { session: this.session, head: lost.head, epoch: lost.epoch, storeHead: meta.head, storeEpoch: meta.epoch },
      'the store no longer has what it acknowledged for this session (data lost, or expired and written again); readers and producer told SESSION_REWOUND',
    );
    const error = new SpoolError(
      'SESSION_REWOUND',
      `session ${this.session} went back from offset ${lost.head} (epoch ${lost.epoch}) to ${meta.head} (epoch ${meta.epoch}): the store lost it or it expired; offsets after ${meta.head} will be reused, subscribe again from the start`,
      { session: this.session, head: meta.head, offset: lost.head },
    );
    this.readers.failAll(error);
    const gen = this.active;
    if (gen !== null) {
      const still = meta.active;
      if (still === null || still.id !== gen.id || still.epoch !== gen.epoch) {
        gen.ending = true;
        gen.failedCode = 'SESSION_REWOUND';
        if (gen.link) gen.link.sendError(error, gen.id);
        this.active = null;
        if (this.idleTimer) {
          clearTimeout(this.idleTimer);
          this.idleTimer = undefined;
        }
      }
    }
    this.epoch = meta.epoch;
    this.log.reset(meta.head);
    if (meta.active && this.active === null) this.adopt(meta.active);
    return true;
  }

  private applyOpen(op: Extract<Op, { kind: 'open' }>, result: OpenResult): void {
    const reply = op.reply;
    switch (result.status) {
      case 'opened': {
        const displaced = this.active;
        this.epoch = result.epoch;
        if (displaced && displaced.id === result.fenced) {
          displaced.ending = true;
          if (displaced.link) {
            displaced.link.sendError(replies.fenced(displaced.id, result.epoch, `generation ${op.generationId}`), displaced.id);
          }
        }
        const gen = this.newGen(op.generationId, result.epoch, -1, result.startOffset);
        gen.link = op.link;
        gen.knownWriteTs = op.ts;
        this.active = gen;
        this.log.publish(result.events, result.trimmed, result.events.at(-1)?.offset ?? this.log.head);
        this.armIdleTimer();
        reply.resolve(this.opened(op, gen, op.tag, false));
        return;
      }
      case 'resumed': {
        let gen = this.active;
        if (result.takeover || !gen || gen.id !== op.generationId || gen.epoch !== result.epoch) {
          // A takeover of this generation's writer (new epoch: the displaced writer's queued
          // chunks stay bound to the old state, are fenced by the store and answered on its
          // link), or another process (or a restart) changed the active generation: adopt the
          // store's view.
          const displaced = gen !== null && gen.id === op.generationId ? gen : null;
          if (displaced && result.takeover) {
            displaced.ending = true;
            if (displaced.link && displaced.link !== op.link) {
              displaced.link.sendError(replies.fenced(displaced.id, result.epoch, 'another producer (takeover)'), displaced.id);
            }
          }
          gen = this.newGen(op.generationId, result.epoch, result.nextSeq - 1, result.startOffset);
          this.active = gen;
          this.epoch = Math.max(this.epoch, result.epoch);
          this.armIdleTimer();
        }
        gen.link = op.link;
        gen.lastActivity = this.deps.config.clock();
        gen.knownWriteTs = Math.max(gen.knownWriteTs, op.ts);
        gen.nextSeq = Math.max(gen.nextSeq, result.nextSeq);
        reply.resolve(this.opened(op, gen, result.tag, true, result.nextSeq));
        return;
      }
      case 'active':
        if (result.activeId === op.generationId) {
          // The generation is active, and this open did not prove it is its producer.
          if (op.resume && op.resume.epoch < result.epoch) {
            reply.reject(replies.fenced(op.generationId, result.epoch, 'another producer (takeover)'));
            return;
          }
        }
        reply.reject(replies.active(this.session, op.generationId, result.activeId, result.epoch));
        return;
      case 'unknown':
        reply.reject(replies.closed(op.generationId));
        return;
      case 'closed':
        {
          const ended = { status: result.endStatus, offset: result.endOffset };
          reply.reject(result.endStatus === 'fenced' ? replies.fenced(op.generationId, this.epoch, undefined, ended) : replies.closed(op.generationId, ended));
        }
        return;
      case 'full':
        reply.reject(new SpoolError('SESSION_FULL', `session ${this.session} holds the most critical events retention allows`, { session: this.session }));
        return;
    }
  }

  private opened(op: Extract<Op, { kind: 'open' }>, gen: GenState, tag: string, resumed: boolean, nextSeq = gen.nextSeq): OpenedFrame {
    return {
      type: 'opened',
      ...(op.requestId !== undefined ? { id: op.requestId } : {}),
      session: this.session,
      generation: gen.id as GenerationId,
      token: encodeToken({ epoch: gen.epoch, session: this.session, generation: gen.id as GenerationId, tag }),
      nextSeq,
      offset: gen.startOffset,
      resumed,
    };
  }

  private applyAppend(batch: Op[], result: AppendResult): void {
    const touched: GenState[] = [];
    const metrics = this.deps.metrics;
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i] as Extract<Op, { item: WriteItem }>;
      const r = result.results[i];
      if (!r) throw new Error(`store answered ${result.results.length} results for ${batch.length} items`);
      if (r.status === 'duplicate') metrics.duplicateWrites.inc();
      switch (op.kind) {
        case 'chunk': {
          const gen = op.gen;
          const seq = op.item.seq;
          if (op.counted) gen.unackedBytes = Math.max(0, gen.unackedBytes - op.item.size);
          if (r.status === 'ok' || r.status === 'duplicate' || r.status === 'dropped') {
            // A dropped seq is settled too: the ack covers it and keeps the last stored offset.
            const offset = r.status === 'dropped' ? gen.durableOffset : r.offset;
            if (gen.ackSeq < 0) touched.push(gen);
            if (seq >= gen.ackSeq) {
              gen.ackSeq = seq;
              gen.ackOffset = offset;
            }
            if (seq > gen.durableSeq) {
              gen.durableSeq = seq;
              gen.durableOffset = offset;
            }
            if (r.status !== 'duplicate' && op.item.ts > gen.knownWriteTs) gen.knownWriteTs = op.item.ts;
          } else if (r.status === 'fenced') {
            metrics.fencedWrites.inc();
            this.deps.telemetry.emit({ name: 'write.fenced', session: this.session, generation: gen.id, epoch: r.epoch });
            if (gen.link) gen.link.sendError(replies.fenced(gen.id, r.epoch), gen.id);
          } else if (r.status === 'full') {
            gen.nextSeq = Math.min(gen.nextSeq, seq);
            if (!gen.failedCode) {
              gen.failedCode = 'SESSION_FULL';
              this.lastFailure = { id: gen.id, code: 'SESSION_FULL' };
              if (gen.link) this.sendError(gen.link, 'SESSION_FULL', `session ${this.session} is full of critical events; chunk ${seq} refused`, gen.id);
              if (this.active === gen) this.endFromGateway(gen, 'error', 'SESSION_FULL: retention cannot make room');
            }
          } else if (r.status === 'seq_gap') {
            gen.nextSeq = r.expected;
            if (gen.link) this.sendError(gen.link, 'SEQ_GAP', `seq ${seq} skips ahead; expected ${r.expected}`, gen.id, { expectedSeq: r.expected });
          } else if (gen.link) {
            gen.link.sendError(replies.closed(gen.id), gen.id);
          }
          break;
        }
        case 'end':
          this.applyEnd(op, r);
          break;
        case 'append':
          if (r.status === 'ok' || r.status === 'duplicate') {
            op.reply.resolve({
              type: 'appended',
              ...(op.requestId !== undefined ? { id: op.requestId } : {}),
              session: this.session,
              key: (op.item as { key: string }).key,
              offset: r.offset,
              duplicate: r.status === 'duplicate',
            });
          } else {
            op.reply.reject(new SpoolError('SESSION_FULL', `session ${this.session} is full of critical events`, { session: this.session }));
          }
          break;
      }
    }
    // One cumulative ack per generation per batch, only now that the batch is durable (G1).
    for (const gen of touched) {
      const dropped = gen.droppedSinceAck;
      gen.droppedSinceAck = 0;
      if (gen.link) {
        gen.link.send({ type: 'ack', generation: gen.id as GenerationId, seq: gen.ackSeq, offset: gen.ackOffset, ...(dropped > 0 ? { dropped } : {}) });
      }
      gen.ackSeq = -1;
    }
    this.log.publish(result.events, result.trimmed, result.head, result.encoded);
  }

  private applyEnd(op: Extract<Op, { kind: 'end' }>, r: AppendResult['results'][number]): void {
    const item = op.item;
    const gen = op.gen;
    if (r.status === 'duplicate' && op.reply && r.endStatus !== undefined && r.endStatus !== item.status) {
      // The generation already ended, otherwise than this finish asks: the finish failed (G6).
      const ended = { status: r.endStatus, offset: r.offset };
      const cause = r.endStatus === 'error' && this.lastFailure?.id === item.generationId ? this.lastFailure.code : null;
      op.reply.reject(
        r.endStatus === 'fenced'
          ? replies.fenced(item.generationId, undefined, undefined, ended)
          : cause
            ? replies.failedBy(item.generationId, cause, ended)
            : replies.closed(item.generationId, ended),
      );
      return;
    }
    if (r.status === 'ok' || r.status === 'duplicate') {
      const status = r.status === 'duplicate' ? (r.endStatus ?? item.status) : item.status;
      if (gen && this.active === gen) {
        this.active = null;
        if (this.idleTimer) {
          clearTimeout(this.idleTimer);
          this.idleTimer = undefined;
        }
      }
      op.reply?.resolve({ type: 'finished', generation: item.generationId as GenerationId, status, offset: r.offset });
      return;
    }
    if (r.status === 'busy' && gen) {
      // The idle timeout raced activity (here or through another process): keep it open.
      gen.ending = false;
      gen.knownWriteTs = Math.max(gen.knownWriteTs, r.lastWriteTs);
      gen.lastActivity = this.deps.config.clock();
      this.armIdleTimer();
      return;
    }
    if (r.status === 'seq_gap' && gen && !op.reply) {
      // A gateway-originated end raced a rollback of nextSeq: end at the store's next seq.
      gen.ending = false;
      gen.nextSeq = r.expected;
      this.endFromGateway(gen, item.status, item.error);
      return;
    }
    if (gen) gen.ending = false;
    const error =
      r.status === 'fenced'
        ? replies.fenced(item.generationId, r.epoch)
        : r.status === 'seq_gap'
          ? new SpoolError('SEQ_GAP', `finish at seq ${item.seq}; expected ${r.expected}`, { expectedSeq: r.expected })
          : replies.closed(item.generationId);
    op.reply?.reject(error);
  }

  /** @internal The store stayed down past the budget (or the actor closes): answer every op. */
  giveUp(batch: Op[], error: unknown): void {
    const spoolError = error instanceof SpoolError ? error : new SpoolError('STORE_UNAVAILABLE', `store unavailable: ${String(error)}; retry`);
    if (batch.length && !(error instanceof SpoolError)) {
      this.deps.logger.error({ session: this.session, err: String(error), ops: batch.length }, 'store retry budget spent; failing writes');
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
            if (gen.link) this.sendError(gen.link, spoolError.code, spoolError.message, gen.id);
          }
          break;
        }
        case 'end':
          if (op.gen) op.gen.ending = false;
          op.reply?.reject(spoolError);
          break;
        case 'append':
        case 'open':
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
    return op.kind !== 'open' && op.kind !== 'sync';
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
    return op.kind === 'open' || op.kind === 'sync' ? 0 : 'size' in op.item ? op.item.size : 0;
  }

  /** @internal */
  onRetry(error: unknown, attempt: number): void {
    this.deps.metrics.persistenceFailure.inc();
    this.deps.logger.warn({ session: this.session, attempt, err: String(error) }, 'store call failed, retrying');
  }

  /** @internal */
  onIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = null;
    for (const resolve of waiters ?? []) resolve();
  }

  private sendError(link: Link, code: ErrorCode, message: string, ref: string, details: ErrorDetails = {}, id?: number): void {
    link.sendError(new SpoolError(code, message, details), ref, id);
  }
}
