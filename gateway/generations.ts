/**
 * The generation lifecycle of one session as its actor sees it: the active generation (if any),
 * the session's epoch, who may write, and the idle timeout that ends a generation whose producer
 * went silent.
 *
 *            open (store: epoch+1, gen.start)
 *   (none) ─────────────────────────────────▶ active ──finish──────────▶ gen.end done|error|aborted
 *                                               │ ──idle timeout──────▶ gen.end timeout
 *                                               │ ──chunk refused full─▶ gen.end error
 *                                               └──open B + takeover──▶ gen.end fenced (by the store)
 *   A resumed open (same generation id, proved by the token's tag or the first open's secret)
 *   re-binds the producer's link and answers nextSeq; an unproved one with takeover fences the
 *   generation's writer (new epoch and token, same seqs); an unproved one without is refused.
 *
 * Ends the gateway decides on (timeout, refused chunk) are queued through the actor like any
 * write, so they are serialized with the producer's chunks.
 */
import type { Logger } from 'pino';
import type { ErrorCode } from '../protocol/errors';
import type { TokenParts } from '../protocol/token';
import type { EndStatus, Offset, SessionId } from '../protocol/types';
import type { ActiveGeneration, WriteItem } from '../store/types';
import type { GatewayConfig } from './config';
import type { Link } from './link';
import * as replies from './replies';
import type { Metrics, TelemetrySink } from './telemetry';

export type EndItem = WriteItem & { op: 'end' };

/** The actor's view of the session's active generation. */
export interface GenState {
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

export interface GenerationsDeps {
  readonly session: SessionId;
  readonly config: GatewayConfig;
  readonly metrics: Metrics;
  readonly telemetry: TelemetrySink;
  readonly logger: Logger;
  /** Queues an end the gateway decided on behind everything already queued. */
  readonly queueEnd: (gen: GenState, item: EndItem) => void;
}

export function endItem(generationId: string, epoch: number, seq: number, status: EndStatus, error: string | undefined, ts: number): EndItem {
  return error === undefined ? { op: 'end', generationId, epoch, seq, status, ts } : { op: 'end', generationId, epoch, seq, status, error, ts };
}

export class Generations {
  /** The highest epoch this process has seen for the session. */
  epoch = 0;
  active: GenState | null = null;
  /** The last generation a refused chunk failed, so a finish arriving after its gen.end learns why. */
  lastFailure: { readonly id: string; readonly code: ErrorCode } | null = null;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly deps: GenerationsDeps) {}

  /** Takes the store's active generation as the session's (its producer is not bound yet). */
  adopt(a: ActiveGeneration): void {
    // The producer gets a full idle timeout from now to come back (the gateway may have restarted).
    const gen = this.create(a.id, a.epoch, a.lastSeq, a.startOffset);
    gen.durableOffset = 0;
    gen.knownWriteTs = a.lastWriteTs;
    this.activate(gen);
  }

  /** A generation's state as the store just described it; not active until `activate`. */
  create(id: string, epoch: number, lastSeq: number, startOffset: Offset): GenState {
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

  /** Makes `gen` the active generation and starts its idle timeout. */
  activate(gen: GenState): void {
    this.active = gen;
    this.armIdleTimer();
  }

  /** No generation is active any more (it ended, or the store no longer has it). */
  deactivate(): void {
    this.active = null;
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
  }

  /** The active generation if `token` may write to it; otherwise answers the error on `link` and returns null. */
  writer(link: Link, token: TokenParts): GenState | null {
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
      this.deps.telemetry.emit({ name: 'write.fenced', session: this.deps.session, generation: token.generation, epoch: this.epoch });
      link.sendError(replies.fenced(token.generation, this.epoch), token.generation);
    } else {
      link.sendError(replies.closed(token.generation), token.generation);
    }
    return null;
  }

  /** Ends the active generation from the gateway side (timeout, refused chunk). */
  endFromGateway(gen: GenState, status: EndStatus, error?: string): void {
    if (gen.ending) return;
    gen.ending = true;
    const item = endItem(gen.id, gen.epoch, gen.nextSeq, status, error, this.deps.config.clock());
    this.deps.queueEnd(gen, status === 'timeout' ? { ...item, ifIdleSince: gen.knownWriteTs } : item);
  }

  /** (Re)starts the idle timeout of the active generation, unless it runs already. */
  armIdleTimer(): void {
    if (this.idleTimer || this.closed) return;
    const timeout = this.deps.config.generationIdleTimeoutMs;
    const check = (): void => {
      this.idleTimer = undefined;
      const gen = this.active;
      if (!gen || gen.ending || this.closed) return;
      const idleFor = this.deps.config.clock() - gen.lastActivity;
      if (idleFor >= timeout) {
        this.deps.logger.info({ sessionId: this.deps.session, generationId: gen.id }, 'generation idle, ending with timeout');
        this.endFromGateway(gen, 'timeout');
      } else {
        this.idleTimer = setTimeout(check, timeout - idleFor);
        this.idleTimer.unref();
      }
    };
    this.idleTimer = setTimeout(check, timeout);
    this.idleTimer.unref();
  }

  /** Stops the idle timeout for good (the actor closes). */
  close(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
