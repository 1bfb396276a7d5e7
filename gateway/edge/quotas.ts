/**
 * Per-identity write quotas (README "Security", PROTOCOL §12.2): what one writer may add, so that
 * no single identity can fill a session with critical events until it answers SESSION_FULL to
 * everyone (critical events are never trimmed, G7), nor the store at an unbounded rate.
 *
 *   bytesPerMinute            data bytes written, all sessions          QUOTA_EXCEEDED (retryable,
 *   criticalEventsPerMinute   priority-3 events written, all sessions    details.retryAfterMs)
 *   criticalBytesPerSession   priority-3 data bytes in one session       SESSION_QUOTA_EXCEEDED
 *   criticalEventsPerSession  priority-3 events in one session            (not retryable)
 *
 * Each is a non-negative integer, 0 = no limit. A JWT may set any of them in its `spool.quota`
 * claim; the gateway's defaults (config.ts `quota*`) fill in the others. Who an account belongs to:
 *
 *   jwt mode            the token's `sub`: every connection and HTTP request of it, in this process
 *   open, shared token  each WebSocket connection on its own; HTTP writes per client address
 *
 * Counted at the door, on what it accepts: a write refused there (FORBIDDEN, BAD_FRAME, a quota)
 * counts nothing and stores nothing. A write the session refuses afterwards (FENCED, SEQ_GAP,
 * SESSION_FULL) still counts. Accounts live in this process's memory: a gateway process counts
 * what reached it (N processes behind a balancer allow up to N times the rates), and a restart
 * starts them over.
 *
 * The rates are leaky buckets holding one minute's worth: an idle identity may write a minute's
 * allowance at once, then at the rate. A single write larger than the whole allowance passes on
 * an empty bucket (and the bucket waits it off), so no write is refused forever by a rate.
 */
import { SpoolError, formatBytes } from '../../protocol/errors';
import type { SessionId } from '../../protocol/types';

/** The four quotas; 0 = no limit. */
export interface QuotaLimits {
  readonly bytesPerMinute: number;
  readonly criticalEventsPerMinute: number;
  readonly criticalBytesPerSession: number;
  readonly criticalEventsPerSession: number;
}

export const QUOTA_NAMES: readonly (keyof QuotaLimits)[] = ['bytesPerMinute', 'criticalEventsPerMinute', 'criticalBytesPerSession', 'criticalEventsPerSession'];

/** What one write adds: all its data bytes, and how many of its events (and their bytes) are critical. */
export interface WriteCharge {
  readonly bytes: number;
  readonly criticalEvents: number;
  readonly criticalBytes: number;
}

/** A `spool.quota` claim that does not have the documented shape (the token is refused). */
export class QuotaClaimError extends Error {
  override readonly name = 'QuotaClaimError';
}

/**
 * Reads `spool.quota`: an object of the four names, each a non-negative integer (0: no limit);
 * a missing name takes the gateway's default. Undefined claim: {}.
 */
export function quotaFromClaim(claim: unknown): Partial<QuotaLimits> {
  if (claim === undefined) return {};
  if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) throw new QuotaClaimError('spool.quota must be an object of quotas');
  const out: Partial<Record<keyof QuotaLimits, number>> = {};
  for (const [name, value] of Object.entries(claim as Record<string, unknown>)) {
    if (!(QUOTA_NAMES as readonly string[]).includes(name)) throw new QuotaClaimError(`spool.quota.${name.slice(0, 40)} is not a quota (${QUOTA_NAMES.join(', ')})`);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new QuotaClaimError(`spool.quota.${name} must be an integer >= 0 (0: no limit)`);
    out[name as keyof QuotaLimits] = value;
  }
  return out;
}

/** The minute a rate quota is counted over. */
const MINUTE_MS = 60_000;

/**
 * A leaky bucket of one minute's allowance: `level` drains at limit per minute; a charge fits
 * while the level plus it stays within the limit, or when the bucket is empty. The limit is read
 * at each charge, so a refreshed token's new quota applies at once.
 */
class MinuteRate {
  private level = 0;
  private last: number;

  constructor(now: number) {
    this.last = now;
  }

  /** 0 when `amount` fits now (and is counted), else the ms until it would. */
  charge(amount: number, limit: number, now: number, count: boolean): number {
    this.drain(limit, now);
    if (this.level === 0 || this.level + amount <= limit) {
      if (count) this.level += amount;
      return 0;
    }
    const target = Math.max(0, limit - amount);
    return Math.max(1, Math.ceil(((this.level - target) * MINUTE_MS) / limit));
  }

  /** True when nothing is owed: the account can be forgotten without giving anything away. */
  empty(limit: number, now: number): boolean {
    this.drain(limit, now);
    return this.level === 0;
  }

  private drain(limit: number, now: number): void {
    const elapsed = now - this.last;
    this.last = now;
    if (elapsed <= 0 || this.level === 0) return;
    this.level = limit > 0 ? Math.max(0, this.level - (elapsed * limit) / MINUTE_MS) : 0;
  }
}

/** What an account added to one session. */
interface SessionUsage {
  criticalEvents: number;
  criticalBytes: number;
  lastWrite: number;
}

/** Sessions whose usage one account remembers; past it the least recently written is forgotten. */
const MAX_SESSIONS_PER_ACCOUNT = 4096;
/** Accounts of identities (and addresses) a registry remembers; past it the least recently used are forgotten. */
const MAX_ACCOUNTS = 65_536;

/** One identity's (or connection's, or address's) counts. */
export class QuotaAccount {
  private readonly bytes: MinuteRate;
  private readonly critical: MinuteRate;
  private readonly sessions = new Map<SessionId, SessionUsage>();

  constructor(
    /** Who: `sub "…"`, `connection …`, `address …` (for messages and logs). */
    readonly who: string,
    /** The limits in force; a refreshed token replaces them. */
    public limits: QuotaLimits,
    private readonly clock: () => number,
    /** A session's usage is forgotten when the account has not written to it for this long (the session's TTL). */
    private readonly sessionTtlMs: number,
  ) {
    const now = clock();
    this.bytes = new MinuteRate(now);
    this.critical = new MinuteRate(now);
  }

  /**
   * Counts `charge` against every quota, or counts nothing and returns the refusal: the per-session
   * caps first (they are final), then the rates.
   */
  charge(session: SessionId, charge: WriteCharge): SpoolError | undefined {
    const limits = this.limits;
    const now = this.clock();
    let usage = this.sessions.get(session);
    if (usage !== undefined && now - usage.lastWrite >= this.sessionTtlMs) {
      this.sessions.delete(session);
      usage = undefined;
    }
    if (charge.criticalEvents > 0 || charge.criticalBytes > 0) {
      const events = (usage?.criticalEvents ?? 0) + charge.criticalEvents;
      const bytes = (usage?.criticalBytes ?? 0) + charge.criticalBytes;
      if (limits.criticalEventsPerSession > 0 && events > limits.criticalEventsPerSession) {
        return this.sessionRefusal(session, 'criticalEventsPerSession', `${limits.criticalEventsPerSession} critical events`);
      }
      if (limits.criticalBytesPerSession > 0 && bytes > limits.criticalBytesPerSession) {
        return this.sessionRefusal(session, 'criticalBytesPerSession', `${formatBytes(limits.criticalBytesPerSession)} of critical events`);
      }
    }
    // Both rates are asked before either counts, so a refusal counts nothing.
    const bytesWait = limits.bytesPerMinute > 0 ? this.bytes.charge(charge.bytes, limits.bytesPerMinute, now, false) : 0;
    const criticalWait = limits.criticalEventsPerMinute > 0 && charge.criticalEvents > 0 ? this.critical.charge(charge.criticalEvents, limits.criticalEventsPerMinute, now, false) : 0;
    if (bytesWait > 0) return this.rateRefusal('bytesPerMinute', `${formatBytes(limits.bytesPerMinute)} a minute`, bytesWait);
    if (criticalWait > 0) return this.rateRefusal('criticalEventsPerMinute', `${limits.criticalEventsPerMinute} critical events a minute`, criticalWait);
    if (limits.bytesPerMinute > 0) this.bytes.charge(charge.bytes, limits.bytesPerMinute, now, true);
    if (limits.criticalEventsPerMinute > 0 && charge.criticalEvents > 0) this.critical.charge(charge.criticalEvents, limits.criticalEventsPerMinute, now, true);
    if (charge.criticalEvents > 0 || charge.criticalBytes > 0) {
      if (usage === undefined) {
        usage = { criticalEvents: 0, criticalBytes: 0, lastWrite: now };
        if (this.sessions.size >= MAX_SESSIONS_PER_ACCOUNT) this.sessions.delete(this.sessions.keys().next().value as SessionId);
      } else {
        this.sessions.delete(session); // re-inserted: the map's order is least recently written first
      }
      usage.criticalEvents += charge.criticalEvents;
      usage.criticalBytes += charge.criticalBytes;
      usage.lastWrite = now;
      this.sessions.set(session, usage);
    }
    return undefined;
  }

  /** Forgets what the account added to `session` (its log was reset or deleted through this gateway). */
  forgetSession(session: SessionId): void {
    this.sessions.delete(session);
  }

  /** True when forgetting the account gives nothing away: no session usage, both rates drained. */
  idle(): boolean {
    const now = this.clock();
    return this.sessions.size === 0 && this.bytes.empty(this.limits.bytesPerMinute, now) && this.critical.empty(this.limits.criticalEventsPerMinute, now);
  }

  private sessionRefusal(session: SessionId, quota: keyof QuotaLimits, what: string): SpoolError {
    return new SpoolError(
      'SESSION_QUOTA_EXCEEDED',
      `${this.who} has written ${what} to session ${session} (${quota}); the write was not stored. Other writers of the session are not affected`,
      { session, quota, limit: this.limits[quota] },
    );
  }

  private rateRefusal(quota: keyof QuotaLimits, what: string, retryAfterMs: number): SpoolError {
    return new SpoolError('QUOTA_EXCEEDED', `${this.who} may write ${what} (${quota}); retry in ${retryAfterMs} ms`, {
      quota,
      limit: this.limits[quota],
      retryAfterMs,
    });
  }
}

export interface QuotasOptions {
  /** The gateway's quotas for identities whose token sets none (and for open and shared-token gateways). */
  readonly defaults: QuotaLimits;
  /** Milliseconds; the gateway's clock (tests move it). */
  readonly clock: () => number;
  readonly sessionTtlMs: number;
}

/**
 * The accounts of one gateway process: one per JWT `sub` (shared by its connections and HTTP
 * requests) and one per client address for HTTP writes without a `sub`; connections of open and
 * shared-token gateways hold accounts of their own (`connectionAccount`), forgotten with them.
 */
export class Quotas {
  private readonly accounts = new Map<string, QuotaAccount>();
  /** Accounts of open connections (each released when its connection closes). */
  private readonly connectionAccounts = new Set<QuotaAccount>();

  constructor(private readonly options: QuotasOptions) {}

  /** The limits of an identity: its claim's, the gateway's defaults for the rest. */
  limitsOf(claim: Partial<QuotaLimits>): QuotaLimits {
    return { ...this.options.defaults, ...claim };
  }

  /** The account of JWT subject `sub`, with the limits of its latest token. */
  subjectAccount(sub: string, claim: Partial<QuotaLimits>): QuotaAccount {
    return this.shared(`sub\u0000${sub}`, `sub ${JSON.stringify(sub.slice(0, 100))}`, this.limitsOf(claim));
  }

  /** The account of HTTP writes from `address` on a gateway without identities. */
  addressAccount(address: string): QuotaAccount {
    return this.shared(`address\u0000${address}`, `address ${address}`, this.options.defaults);
  }

  /** An account of a WebSocket connection's own (open and shared-token gateways); `release` it when the connection closes. */
  connectionAccount(connectionId: string): QuotaAccount {
    const account = new QuotaAccount(`connection ${connectionId}`, this.options.defaults, this.options.clock, this.options.sessionTtlMs);
    this.connectionAccounts.add(account);
    return account;
  }

  /** The connection of a `connectionAccount` closed. */
  release(account: QuotaAccount): void {
    this.connectionAccounts.delete(account);
  }

  /** A session was reset or deleted through this gateway: what every account added to it is forgotten. */
  forgetSession(session: SessionId): void {
    for (const account of this.accounts.values()) account.forgetSession(session);
    for (const account of this.connectionAccounts) account.forgetSession(session);
  }

  /** Accounts remembered (identities and addresses). */
  get size(): number {
    return this.accounts.size;
  }

  private shared(key: string, who: string, limits: QuotaLimits): QuotaAccount {
    let account = this.accounts.get(key);
    if (account !== undefined) {
      account.limits = limits;
      this.accounts.delete(key); // re-inserted: least recently used first
      this.accounts.set(key, account);
      return account;
    }
    if (this.accounts.size >= MAX_ACCOUNTS) this.forgetSome();
    account = new QuotaAccount(who, limits, this.options.clock, this.options.sessionTtlMs);
    this.accounts.set(key, account);
    return account;
  }

  /** Forgets idle accounts; if none is, the least recently used eighth (bounded memory under a spray of identities). */
  private forgetSome(): void {
    for (const [key, account] of this.accounts) if (account.idle()) this.accounts.delete(key);
    if (this.accounts.size < MAX_ACCOUNTS) return;
    let drop = Math.ceil(this.accounts.size / 8);
    for (const key of this.accounts.keys()) {
      if (drop-- <= 0) break;
      this.accounts.delete(key);
    }
  }
}

/** The priority whose events are never trimmed (G7): what the critical quotas count. */
const CRITICAL = 3;

/**
 * What a `chunk`/`chunks` frame of `frameBytes` adds: the frame's bytes, and its priority-3 items
 * (their data sized as retention sizes it). `size` is gateway/size.ts dataSize, passed in so this
 * file needs no encoder.
 */
export function chunksCharge(items: readonly { readonly priority?: number; readonly data: unknown }[], frameBytes: number, size: (data: unknown) => number): WriteCharge {
  let criticalEvents = 0;
  let criticalBytes = 0;
  for (const item of items) {
    if (item.priority !== CRITICAL) continue;
    criticalEvents++;
    criticalBytes += size(item.data);
  }
  return { bytes: frameBytes, criticalEvents, criticalBytes };
}

/** What an `append` adds (its priority defaults to critical, PROTOCOL §8). */
export function appendCharge(priority: number | undefined, data: unknown, frameBytes: number, size: (data: unknown) => number): WriteCharge {
  if ((priority ?? CRITICAL) !== CRITICAL) return { bytes: frameBytes, criticalEvents: 0, criticalBytes: 0 };
  return { bytes: frameBytes, criticalEvents: 1, criticalBytes: size(data) };
}

/** What an `open` that may start a generation adds: its `gen.start` and the `gen.end` that will end it (so a finish is never refused). */
export const OPEN_CHARGE: WriteCharge = { bytes: 0, criticalEvents: 2, criticalBytes: 0 };
