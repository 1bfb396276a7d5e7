/**
 * What a session actor queues for its store, and what becomes of each queued write once the
 * store answered: the turn from store results to the replies, acks and errors producers get, and
 * to the session's log (readers). Runs only from the actor's flusher, one batch at a time, so it
 * sees the session's generations (generations.ts) exactly as the store left them.
 */
import { SpoolError, type ErrorCode, type ErrorDetails } from '../protocol/errors';
import { encodeToken, type TokenParts } from '../protocol/token';
import type { AppendedFrame, FinishedFrame, GenerationId, OpenedFrame, Offset, SessionId } from '../protocol/types';
import type { AppendResult, DeleteResult, OpenResult, ResetResult, WriteItem, WriteResult } from '../store/types';
import type { GatewayConfig } from './config';
import type { GenState, Generations } from './generations';
import type { Link } from './link';
import * as replies from './replies';
import type { SessionLog } from './session-log';
import type { Metrics, TelemetrySink } from './telemetry';

export interface Reply<T> {
  resolve(value: T): void;
  reject(error: SpoolError): void;
}

export type Op =
  | { readonly kind: 'chunk'; readonly item: WriteItem & { op: 'chunk' }; readonly gen: GenState; readonly counted: boolean }
  | { readonly kind: 'end'; readonly item: WriteItem & { op: 'end' }; readonly gen: GenState | null; readonly reply: Reply<FinishedFrame> | null }
  | { readonly kind: 'append'; readonly item: WriteItem; readonly reply: Reply<AppendedFrame>; readonly requestId: number | undefined }
  /**
   * Appends on one condition (compare-and-append, PROTOCOL §16.11): the items carry `ifHead`, so
   * they travel in a store call of their own, together (they hold together in it).
   */
  | { readonly kind: 'conditional'; readonly items: readonly WriteItem[]; readonly reply: Reply<readonly WriteResult[]> }
  /**
   * Another process stored up to `head`: read what this actor has not seen and fan it out.
   * `verify`: a notice reported a head below one the store had before; look at the store's meta
   * to tell a stale notice from a store that lost data (a rewind).
   */
  | { readonly kind: 'sync'; head: Offset; verify: boolean; deleted: boolean }
  /** Delete the session (PROTOCOL §10.6), after everything queued before it. */
  | { readonly kind: 'delete'; readonly reply: Reply<DeleteOutcome> }
  /** Empty the session's log (PROTOCOL §10.5), after everything queued before it. */
  | { readonly kind: 'reset'; readonly reply: Reply<ResetOutcome> }
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

/** What a reset did, as the actor reports it (`unknown`: the session held nothing). */
export type ResetOutcome =
  | { readonly status: 'reset'; readonly head: Offset; readonly cleared: Offset; readonly epoch: number; readonly fenced: string | null }
  | { readonly status: 'unknown' };

/** What a delete did, as the actor reports it (`unknown`: there was no such session). */
export type DeleteOutcome = { readonly status: 'deleted'; readonly head: Offset; readonly epoch: number; readonly fenced: string | null } | { readonly status: 'unknown' };

export interface WriteResultsDeps {
  readonly session: SessionId;
  readonly config: GatewayConfig;
  readonly metrics: Metrics;
  readonly telemetry: TelemetrySink;
  readonly gens: Generations;
  readonly log: SessionLog;
}

export class WriteResults {
  private readonly session: SessionId;

  constructor(private readonly deps: WriteResultsDeps) {
    this.session = deps.session;
  }

  /** An open's answer from the store: the generation it made or resumed, or the refusal. */
  opened(op: Extract<Op, { kind: 'open' }>, result: OpenResult): void {
    const reply = op.reply;
    switch (result.status) {
      case 'opened': {
        const gens = this.deps.gens;
        const displaced = gens.active;
        gens.epoch = result.epoch;
        if (displaced && displaced.id === result.fenced) {
          displaced.ending = true;
          if (displaced.link) {
            displaced.link.sendError(replies.fenced(displaced.id, result.epoch, `generation ${op.generationId}`), displaced.id);
          }
        }
        const gen = gens.create(op.generationId, result.epoch, -1, result.startOffset);
        gen.link = op.link;
        gen.knownWriteTs = op.ts;
        gens.activate(gen);
        this.deps.log.publish(result.events, result.trimmed, result.events.at(-1)?.offset ?? this.deps.log.head);
        reply.resolve(this.openedFrame(op, gen, op.tag, false));
        return;
      }
      case 'resumed': {
        const gens = this.deps.gens;
        let gen = gens.active;
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
          gen = gens.create(op.generationId, result.epoch, result.nextSeq - 1, result.startOffset);
          gens.epoch = Math.max(gens.epoch, result.epoch);
          gens.activate(gen);
        }
        gen.link = op.link;
        gen.lastActivity = this.deps.config.clock();
        gen.knownWriteTs = Math.max(gen.knownWriteTs, op.ts);
        gen.nextSeq = Math.max(gen.nextSeq, result.nextSeq);
        reply.resolve(this.openedFrame(op, gen, result.tag, true, result.nextSeq));
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
          reply.reject(result.endStatus === 'fenced' ? replies.fenced(op.generationId, this.deps.gens.epoch, undefined, ended) : replies.closed(op.generationId, ended));
        }
        return;
      case 'full':
        reply.reject(new SpoolError('SESSION_FULL', `session ${this.session} holds the most critical events retention allows`, { session: this.session }));
        return;
    }
  }

  private openedFrame(op: Extract<Op, { kind: 'open' }>, gen: GenState, tag: string, resumed: boolean, nextSeq = gen.nextSeq): OpenedFrame {
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

  /**
   * A reset's answer from the store: the generation it fenced stops here too (its producer is
   * told FENCED), and the `session.reset` event goes to the log, which drops what came before.
   */
  reset(op: Extract<Op, { kind: 'reset' }>, result: ResetResult): void {
    if (result.status === 'unknown') {
      op.reply.resolve({ status: 'unknown' });
      return;
    }
    const gens = this.deps.gens;
    gens.epoch = Math.max(gens.epoch, result.epoch);
    const gen = gens.active;
    if (gen !== null) {
      gen.ending = true;
      if (gen.link) gen.link.sendError(replies.fenced(gen.id, result.epoch, 'a reset of the session'), gen.id);
      gens.deactivate();
    }
    this.deps.log.publish(result.events, [], result.head);
    op.reply.resolve({ status: 'reset', head: result.head, cleared: result.cleared, epoch: result.epoch, fenced: result.fenced });
  }

  /**
   * A delete's answer from the store: the producer and every reader of the session here get
   * SESSION_DELETED (their terminal answer), and the actor starts over from an empty session.
   */
  deleted(op: Extract<Op, { kind: 'delete' }>, result: DeleteResult): void {
    if (result.status === 'deleted') {
      const error = deletedError(this.session);
      const gens = this.deps.gens;
      const gen = gens.active;
      if (gen !== null) {
        gen.ending = true;
        gen.failedCode = 'SESSION_DELETED';
        if (gen.link) gen.link.sendError(error, gen.id);
        gens.deactivate();
      }
      gens.epoch = 0;
      this.deps.log.readers.failAll(error);
      this.deps.log.reset(0);
    }
    op.reply.resolve(result);
  }

  /**
   * A batch's answers from the store, item by item: one cumulative ack per generation (only now
   * that the batch is durable, G1), replies to appends and finishes, errors to producers; then
   * the durable events go to the session's log.
   */
  appended(batch: readonly Op[], result: AppendResult): void {
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
              this.deps.gens.lastFailure = { id: gen.id, code: 'SESSION_FULL' };
              if (gen.link) sendError(gen.link, 'SESSION_FULL', `session ${this.session} is full of critical events; chunk ${seq} refused`, gen.id);
              if (this.deps.gens.active === gen) this.deps.gens.endFromGateway(gen, 'error', 'SESSION_FULL: retention cannot make room');
            }
          } else if (r.status === 'seq_gap') {
            gen.nextSeq = r.expected;
            if (gen.link) sendError(gen.link, 'SEQ_GAP', `seq ${seq} skips ahead; expected ${r.expected}`, gen.id, { expectedSeq: r.expected });
          } else if (gen.link) {
            gen.link.sendError(replies.closed(gen.id), gen.id);
          }
          break;
        }
        case 'end':
          this.ended(op, r);
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
    this.deps.log.publish(result.events, result.trimmed, result.head, result.encoded);
  }

  /**
   * A conditional append's answer from the store: each item's result (ok, duplicate, conflict)
   * goes back to the caller, who re-reads and checks again after a conflict; SESSION_FULL when the
   * hard cap refused one. What was stored goes to the session's log.
   */
  conditional(op: Extract<Op, { kind: 'conditional' }>, result: AppendResult): void {
    for (const r of result.results) if (r.status === 'duplicate') this.deps.metrics.duplicateWrites.inc();
    if (result.results.some((r) => r.status === 'full')) {
      op.reply.reject(new SpoolError('SESSION_FULL', `session ${this.session} is full of critical events`, { session: this.session }));
    } else {
      op.reply.resolve(result.results);
    }
    this.deps.log.publish(result.events, result.trimmed, result.head, result.encoded);
  }

  private ended(op: Extract<Op, { kind: 'end' }>, r: AppendResult['results'][number]): void {
    const item = op.item;
    const gen = op.gen;
    if (r.status === 'duplicate' && op.reply && r.endStatus !== undefined && r.endStatus !== item.status) {
      // The generation already ended, otherwise than this finish asks: the finish failed (G6).
      const ended = { status: r.endStatus, offset: r.offset };
      const failure = this.deps.gens.lastFailure;
      const cause = r.endStatus === 'error' && failure?.id === item.generationId ? failure.code : null;
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
      if (gen && this.deps.gens.active === gen) this.deps.gens.deactivate();
      op.reply?.resolve({ type: 'finished', generation: item.generationId as GenerationId, status, offset: r.offset });
      return;
    }
    if (r.status === 'busy' && gen) {
      // The idle timeout raced activity (here or through another process): keep it open.
      gen.ending = false;
      gen.knownWriteTs = Math.max(gen.knownWriteTs, r.lastWriteTs);
      gen.lastActivity = this.deps.config.clock();
      this.deps.gens.armIdleTimer();
      return;
    }
    if (r.status === 'seq_gap' && gen && !op.reply) {
      // A gateway-originated end raced a rollback of nextSeq: end at the store's next seq.
      gen.ending = false;
      gen.nextSeq = r.expected;
      this.deps.gens.endFromGateway(gen, item.status, item.error);
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
}

/** SESSION_DELETED, the terminal answer of a deleted session's readers and producer (PROTOCOL §10.6). */
export function deletedError(session: SessionId): SpoolError {
  return new SpoolError('SESSION_DELETED', `session ${session} was deleted; a write starts it again from offset 1`, { session });
}

export function sendError(link: Link, code: ErrorCode, message: string, ref: string, details: ErrorDetails = {}, id?: number): void {
  link.sendError(new SpoolError(code, message, details), ref, id);
}
