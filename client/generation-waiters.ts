/**
 * The promises a Generation hands out, and the acknowledged progress that settles them:
 *
 *   flush()    until the cumulative ack covers every chunk written before the call (G1)
 *   drained()  until the unacknowledged chunks are back under the high-water mark
 *   finish()   until `finished` confirms the end (G6)
 *
 *   opened, ack   ──▶ the flushes now covered resolve (a prefix: their targets only grow);
 *                     after an ack, drained() too once under the mark
 *   finished      ──▶ every flush resolves (every chunk is durable then, acked or not),
 *                     drained() too, and finish()
 *   signal abort  ──▶ flush() and drained() reject; finish() reports the abort's outcome
 *   failure       ──▶ all of them reject with the generation's error
 *
 * Knows no socket, frame or window: Generation reports what was opened and acknowledged and
 * decides when to release whom. No promise or timer per chunk, one per waiting call.
 */
import type { Offset } from '../protocol';
import type { FinishResult, FlushResult } from './generation-types';
import { deferred, type Deferred } from './util';

/** Waiters of one generation's flush(), drained() and finish(). */
export class GenerationWaiters {
  private startOffset: Offset | undefined;
  /** The highest cumulative ack so far: chunks up to `seq` are durable, `seq` at `offset`. */
  private lastAck: { seq: number; offset: Offset } | undefined;
  private flushes: Array<{ target: number; waiter: Deferred<FlushResult> }> = [];
  private drains: Array<Deferred<void>> = [];
  private finishing: Deferred<FinishResult> | undefined;

  /** @param overHighWaterMark whether drained() callers must still wait */
  constructor(private readonly overHighWaterMark: () => boolean) {}

  /** Offset of the generation's `gen.start`, once the gateway has opened it. */
  get offset(): Offset | undefined {
    return this.startOffset;
  }

  /** The gateway opened the generation with its `gen.start` at `offset` (a reopen keeps the first). */
  opened(offset: Offset): void {
    this.startOffset ??= offset;
  }

  /** A cumulative ack: every chunk up to `seq` is durable, chunk `seq` at `offset`. */
  acked(seq: number, offset: Offset): void {
    if (this.lastAck === undefined || seq >= this.lastAck.seq) this.lastAck = { seq, offset };
  }

  /**
   * Resolves once the first `target` chunks are durable: at once when they already are
   * (`target` 0: once the generation is opened).
   */
  flush(target: number): Promise<FlushResult> {
    const ready = this.flushResultFor(target);
    if (ready !== undefined) return Promise.resolve(ready);
    const waiter = deferred<FlushResult>();
    this.flushes.push({ target, waiter });
    return waiter.promise;
  }

  /** Resolves at the next {@link releaseDrains} that finds the chunks under the high-water mark. */
  drained(): Promise<void> {
    const waiter = deferred<void>();
    this.drains.push(waiter);
    return waiter.promise;
  }

  /** The promise of finish(): the same one for every call. */
  finish(): Promise<FinishResult> {
    this.finishing ??= deferred<FinishResult>();
    return this.finishing.promise;
  }

  /** Resolves the flushes the acknowledged progress now covers. */
  releaseFlushes(): void {
    // Targets only grow, so the satisfied waiters are a prefix.
    let done = 0;
    for (const { target, waiter } of this.flushes) {
      const result = this.flushResultFor(target);
      if (result === undefined) break;
      waiter.resolve(result);
      done++;
    }
    if (done > 0) this.flushes = this.flushes.slice(done);
  }

  /** Resolves every drained() waiter, unless still over the high-water mark. */
  releaseDrains(): void {
    if (this.drains.length === 0 || this.overHighWaterMark()) return;
    const waiters = this.drains;
    this.drains = [];
    for (const waiter of waiters) waiter.resolve();
  }

  /**
   * After `finished` every chunk is durable even if its ack never arrived: each flush resolves
   * with the ack that covers it, else with chunk `lastSeq` (at `endOffset` when its ack is unknown).
   */
  settleFlushes(lastSeq: number, endOffset: Offset): void {
    for (const { target, waiter } of this.flushes) {
      waiter.resolve(this.flushResultFor(target) ?? { seq: lastSeq, offset: this.lastAck?.seq === lastSeq ? this.lastAck.offset : endOffset });
    }
    this.flushes = [];
  }

  /** Resolves finish() with the generation's end. */
  finished(result: FinishResult): void {
    this.finishing?.resolve(result);
  }

  /** Rejects every pending flush() and drained() with `error` (finish() is left to settle). */
  rejectFlushesAndDrains(error: Error): void {
    const flushes = this.flushes;
    const drains = this.drains;
    this.flushes = [];
    this.drains = [];
    for (const { waiter } of flushes) waiter.reject(error);
    for (const waiter of drains) waiter.reject(error);
  }

  /** Rejects every pending flush(), drained() and finish() with `error`. */
  rejectAll(error: Error): void {
    this.rejectFlushesAndDrains(error);
    this.finishing?.reject(error);
  }

  private flushResultFor(target: number): FlushResult | undefined {
    if (target === 0) return this.startOffset === undefined ? undefined : { seq: -1, offset: this.startOffset };
    if (this.lastAck !== undefined && this.lastAck.seq >= target - 1) return { seq: this.lastAck.seq, offset: this.lastAck.offset };
    return undefined;
  }
}
