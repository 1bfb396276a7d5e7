/**
 * The producer's public vocabulary: the options of a generation and of its calls, what those
 * calls resolve with, its events, and the documented defaults. The behaviour is in generation.ts.
 */
import type { EndStatus, Offset, Priority } from '../protocol';
import type { CoalesceOptions } from './coalescer';
import type { TraceparentOption } from './trace';
import type { AbortSignalLike } from './util';

/** Lifecycle of a generation; see the diagram at the top of generation.ts. */
export type GenerationState = 'opening' | 'open' | 'finishing' | 'finished' | 'failed';

/** Bounds on what a producer may have written but not yet seen acknowledged. */
export interface HighWaterMark {
  /** @default 1 MiB */
  readonly bytes?: number;
  /** @default 4096 */
  readonly items?: number;
}

/** Defaults of the producer high-water mark (the gateway's credit may lower them). */
export const DEFAULT_HIGH_WATER_MARK: Required<HighWaterMark> = { bytes: 1024 * 1024, items: 4096 };

/**
 * Default hard cap on the chunk data one generation holds unacknowledged (queued, in flight or
 * in an open merge): 64 times the default high-water mark, hours of a fast model's output.
 */
export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;

/** Options of `SpoolClient.generation()`. */
export interface GenerationOptions {
  /** The generation id; a random one by default. 1–128 chars of `[A-Za-z0-9._:-]`. */
  readonly id?: string;
  /** Displace the session's active generation (it ends with `gen.end fenced`). */
  readonly takeover?: boolean;
  /** Overrides the client's high-water mark for this generation. */
  readonly highWaterMark?: HighWaterMark;
  /** Overrides the client's `coalesce` for this generation (`{windowMs: 0}` turns it off). */
  readonly coalesce?: CoalesceOptions;
  /** Overrides the client's `maxQueuedBytes` for this generation. */
  readonly maxQueuedBytes?: number;
  /** Overrides the client's `lingerMs` for this generation (0: send at the end of the tick). */
  readonly lingerMs?: number;
  /**
   * Aborts the generation when it fires, like `abort(reason)`: the gateway ends it with
   * `gen.end aborted` (the signal's reason as `error` text, cut to 1024 chars) after the chunks
   * already written; pending `flush()`/`drained()` reject at once with SpoolError `CLOSED`
   * (`cause` = the reason) and so does every later `write()`, `flush()` and `drained()`;
   * `finish()` returns the abort's outcome. An already-aborted signal aborts at once (the
   * generation is still opened, then ended `aborted`, so readers see why it stopped). A signal
   * firing after `finish()` or `abort()` was called changes nothing. The listener is removed
   * when the generation ends.
   */
  readonly signal?: AbortSignalLike;
  /**
   * W3C trace context the gateway's `spool.generation` span continues (PROTOCOL §3.4): a
   * `traceparent` value, or a function returning the current one, called once by
   * `client.generation()` and sent in every `open` of this generation (resumes included).
   * @default the client's `traceparent`
   */
  readonly traceparent?: TraceparentOption;
}

/** A cumulative ack that advanced the durable point (`Generation.on('ack')`). */
export interface AckEvent {
  /** Every chunk up to this seq is durable. */
  readonly seq: number;
  /** Offset of chunk `seq`. */
  readonly offset: Offset;
  /** Priority-0 chunks the gateway dropped under load since the previous ack. */
  readonly dropped: number;
}

/** A lifecycle transition of a generation (`Generation.on('state')`). */
export interface GenerationStateChange {
  readonly previous: GenerationState;
  readonly state: GenerationState;
}

/** Events of a Generation and their payloads. */
export interface GenerationEvents {
  ack: AckEvent;
  state: GenerationStateChange;
}

export const GENERATION_EVENTS: ReadonlyArray<keyof GenerationEvents> = ['ack', 'state'];

/** Options of `Generation.write()`. */
export interface WriteOptions {
  readonly kind?: string;
  /** 0 debug · 1 low · 2 normal (the gateway's default) · 3 critical. */
  readonly priority?: Priority;
}

/** The cumulative ack that covers everything written before `flush()` was called. */
export interface FlushResult {
  /** Highest durable seq (-1 when nothing had been written). */
  readonly seq: number;
  /** Offset of chunk `seq` (of the generation's `gen.start` when nothing had been written). */
  readonly offset: Offset;
}

/** Options of `Generation.finish()`. */
export interface FinishOptions {
  /** @default 'done' */
  readonly status?: 'done' | 'error' | 'aborted';
  /** What went wrong, for status 'error' (or the reason of an abort). */
  readonly error?: string;
  /** Reject with SpoolError('TIMEOUT') if the gateway has not confirmed the end by then. */
  readonly timeoutMs?: number;
}

/** What `finish()` resolves with. */
export interface FinishResult {
  /** Offset of the generation's `gen.end`. */
  readonly offset: Offset;
  readonly status: EndStatus;
}
