/**
 * Non-generation appends (user messages, control events) on the client's shared connection.
 * An append is idempotent by its key (G2), so one whose reply was lost in a drop is simply
 * sent again after the reconnect; the gateway answers the repeat with the original offset.
 */
import { DEFAULT_LIMITS, SpoolError, type AppendFrame, type Offset, type Priority, type ServerFrame, type SessionId } from '../protocol';
import type { Connection } from './connection';
import { deferred, log, retryDelay, type Backoff, type Deferred, type Logger, type Timer } from './util';

/** What `SpoolClient.append()` stores. */
export interface AppendInput {
  /** Idempotency key: the session stores one event per key within the dedupe window. */
  readonly key: string;
  readonly kind: string;
  readonly data: unknown;
  /** @default 3 (critical), applied by the gateway */
  readonly priority?: Priority;
}

/** What `SpoolClient.append()` resolves with. */
export interface AppendResult {
  readonly offset: Offset;
  /** True when the key had been stored before: `offset` is the original one. */
  readonly duplicate: boolean;
}

interface AppendRecord {
  readonly frame: AppendFrame;
  readonly waiter: Deferred<AppendResult>;
  /** Sent on the current socket and not yet answered. */
  inFlight: boolean;
}

/** Keeps every append until the gateway answers it, re-issuing across reconnects. */
export class Appender {
  private readonly records = new Set<AppendRecord>();
  private retryTimer: Timer | undefined;
  private retryFailures = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly connection: Connection,
    private readonly retry: Backoff,
    private readonly logger: Logger | undefined,
  ) {}

  /** Appends still waiting for an answer. */
  get size(): number {
    return this.records.size;
  }

  append(session: SessionId, input: AppendInput): Promise<AppendResult> {
    const { key, kind, data, priority } = input;
    if (typeof key !== 'string' || key.length === 0 || key.length > DEFAULT_LIMITS.maxKeyLength) {
      return Promise.reject(new SpoolError('BAD_FRAME', `key must be a string of 1-${DEFAULT_LIMITS.maxKeyLength} chars`));
    }
    if (typeof kind !== 'string' || kind.length === 0 || kind.length > DEFAULT_LIMITS.maxKindLength) {
      return Promise.reject(new SpoolError('BAD_FRAME', `kind must be a string of 1-${DEFAULT_LIMITS.maxKindLength} chars`));
    }
    if (priority !== undefined && priority !== 0 && priority !== 1 && priority !== 2 && priority !== 3) {
      return Promise.reject(new SpoolError('BAD_FRAME', 'priority must be 0, 1, 2 or 3'));
    }
    const dead = this.connection.failure;
    if (dead !== undefined) return Promise.reject(dead);
    const frame: AppendFrame = { type: 'append', session, key, kind, data, ...(priority !== undefined ? { priority } : {}) };
    const record: AppendRecord = { frame, waiter: deferred<AppendResult>(), inFlight: false };
    this.records.add(record);
    this.issue(record);
    this.connection.start();
    return record.waiter.promise;
  }

  /** @internal The connection is (again) open: send everything not answered yet. */
  onOpen(): void {
    if (this.retryTimer !== undefined) return; // the timer re-issues when it fires
    for (const record of this.records) if (!record.inFlight) this.issue(record);
  }

  /** @internal The connection dropped: replies of the old socket will never come. */
  onDown(fatal: SpoolError | undefined): void {
    for (const record of this.records) record.inFlight = false;
    if (fatal !== undefined) this.failAll(fatal);
  }

  /** Resolves once no append waits for an answer. */
  settled(): Promise<void> {
    if (this.records.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Rejects every waiting append with `error`. */
  failAll(error: SpoolError): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const records = [...this.records];
    this.records.clear();
    for (const record of records) record.waiter.reject(error);
    this.notifyIdle();
  }

  private issue(record: AppendRecord): void {
    record.inFlight = this.connection.request(record.frame, {
      resolve: (reply) => this.onReply(record, reply),
      reject: (error) => this.onError(record, error),
    });
  }

  private onReply(record: AppendRecord, reply: ServerFrame): void {
    if (!this.records.delete(record)) return;
    if (reply.type === 'appended') {
      this.retryFailures = 0;
      record.waiter.resolve({ offset: reply.offset, duplicate: reply.duplicate });
    } else {
      record.waiter.reject(new SpoolError('INTERNAL', `gateway answered append with ${reply.type}`));
    }
    this.notifyIdle();
  }

  private onError(record: AppendRecord, error: SpoolError): void {
    if (!this.records.has(record)) return;
    record.inFlight = false;
    if (!error.retryable) {
      this.records.delete(record);
      record.waiter.reject(error);
      this.notifyIdle();
      return;
    }
    log(this.logger, 'warn', `spool append ${record.frame.key}: ${error.code}, retrying after backoff`, { session: record.frame.session });
    // One timer for all appends: a store outage fails them together and they retry together.
    if (this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.onOpen();
    }, retryDelay(this.retryFailures++, this.retry, error));
  }

  private notifyIdle(): void {
    if (this.records.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
