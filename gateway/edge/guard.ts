/**
 * The edge's accounting of who is connected: WebSocket connections in total and per remote
 * address, the `Origin` allowlist, and the failed-authentication budget of each address. A
 * transport asks `admit` before it upgrades a request, so a refused client costs one HTTP answer
 * and no WebSocket; the gateway tells the guard when connections open, say hello and close.
 *
 *   upgrade ──Origin not allowed──▶ HTTP 403 ORIGIN_NOT_ALLOWED
 *      │ ──address at its cap────▶ HTTP 429 ADDRESS_LIMIT
 *      │ ──gateway at its cap────▶ the oldest connection still awaiting hello is closed to make
 *      │                           room (HANDSHAKE_REQUIRED); if none is, HTTP 503 CONNECTION_LIMIT
 *      └──▶ admitted: counted from `opened` to `closed`
 *
 * Connections that have not said hello are the ones a stranger opens for free (no credential),
 * so they give way to new ones when the gateway is full: idle sockets cannot lock out clients.
 */
import { ERROR_REGISTRY, type ErrorCode } from '../../protocol/errors';
import type { HttpResponse } from '../transport';
import { TokenBucket } from './token-bucket';

export interface EdgeLimits {
  /** WebSocket connections in total. */
  readonly maxConnections: number;
  /** WebSocket connections from one remote address; 0 = no limit. */
  readonly maxConnectionsPerAddress: number;
  /** Origins whose pages may open a WebSocket (`Origin` header); undefined = any. */
  readonly allowedOrigins?: readonly string[] | undefined;
  /** Failed authentications an address may have in a burst, and recovers per second. */
  readonly authFailureBurst: number;
  readonly authFailureRate: number;
}

/** A counted connection, as the guard needs it. */
export interface EdgeConnection {
  readonly remoteAddress: string;
  /** Closes the connection to make room (it had not said hello). */
  evict(): void;
}

/** Addresses whose failure budget is remembered; past it the fullest buckets are forgotten first. */
const MAX_TRACKED_ADDRESSES = 65_536;

export class EdgeGuard {
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  /** Counted connections (value: still awaiting hello), in the order they opened. */
  private readonly counted = new Map<EdgeConnection, boolean>();
  /** Connections awaiting hello, oldest first (insertion order). */
  private readonly awaitingHello = new Set<EdgeConnection>();
  private readonly authFailures = new Map<string, TokenBucket>();
  private readonly origins: OriginAllowlist | undefined;
  private readonly now = (): number => performance.now();

  constructor(private readonly limits: EdgeLimits) {
    this.origins = limits.allowedOrigins !== undefined ? new OriginAllowlist(limits.allowedOrigins) : undefined;
  }

  /** WebSocket connections counted now. */
  get connections(): number {
    return this.total;
  }

  /**
   * Whether an upgrade from `remoteAddress` (with the request's `Origin`, if any) may become a
   * WebSocket: undefined when it may, else the HTTP answer refusing it.
   */
  admit(remoteAddress: string, origin: string | undefined): Refusal | undefined {
    if (origin !== undefined && origin !== '' && this.origins && !this.origins.allows(origin)) {
      return refusal(403, 'ORIGIN_NOT_ALLOWED', `Origin ${JSON.stringify(origin.slice(0, 200))} is not in the gateway's allowedOrigins`);
    }
    const perAddress = this.limits.maxConnectionsPerAddress;
    if (perAddress > 0 && (this.perAddress.get(remoteAddress) ?? 0) >= perAddress) {
      return refusal(429, 'ADDRESS_LIMIT', `${perAddress} connections from this address already (maxConnectionsPerAddress); close one or retry later`);
    }
    if (this.total >= this.limits.maxConnections && !this.evictOne()) {
      return refusal(503, 'CONNECTION_LIMIT', `the gateway holds its maximum of ${this.limits.maxConnections} connections (maxConnections); retry later`);
    }
    return undefined;
  }

  /** A WebSocket was accepted: counted until `closed`, evictable until `welcomed`. */
  opened(connection: EdgeConnection): void {
    this.total++;
    this.perAddress.set(connection.remoteAddress, (this.perAddress.get(connection.remoteAddress) ?? 0) + 1);
    this.counted.set(connection, true);
    this.awaitingHello.add(connection);
  }

  /** The connection said hello and was welcomed: no longer evictable. */
  welcomed(connection: EdgeConnection): void {
    this.awaitingHello.delete(connection);
  }

  /** The connection closed (idempotent; an evicted connection was uncounted when evicted). */
  closed(connection: EdgeConnection): void {
    this.uncount(connection);
  }

  /** Whether `remoteAddress` may try to authenticate now (its failure budget is not spent). */
  mayAuthenticate(remoteAddress: string): boolean {
    const bucket = this.authFailures.get(remoteAddress);
    return bucket === undefined || bucket.msUntilToken() === 0;
  }

  /** A token from `remoteAddress` was refused: one failure spent from its budget. */
  authFailed(remoteAddress: string): void {
    let bucket = this.authFailures.get(remoteAddress);
    if (bucket === undefined) {
      if (this.authFailures.size >= MAX_TRACKED_ADDRESSES) this.forgetRecovered();
      bucket = new TokenBucket(this.limits.authFailureRate, Math.max(1, this.limits.authFailureBurst), this.now);
      this.authFailures.set(remoteAddress, bucket);
    }
    bucket.take();
  }

  /** Closes the oldest connection still awaiting hello, uncounting it now; false when there is none. */
  private evictOne(): boolean {
    for (const connection of this.awaitingHello) {
      this.uncount(connection);
      connection.evict();
      return true;
    }
    return false;
  }

  private uncount(connection: EdgeConnection): void {
    if (!this.counted.delete(connection)) return;
    this.awaitingHello.delete(connection);
    this.total--;
    const left = (this.perAddress.get(connection.remoteAddress) ?? 1) - 1;
    if (left > 0) this.perAddress.set(connection.remoteAddress, left);
    else this.perAddress.delete(connection.remoteAddress);
  }

  /** Drops the budgets that recovered in full; if none did, the oldest half (bounded memory under a spray of addresses). */
  private forgetRecovered(): void {
    for (const [address, bucket] of this.authFailures) if (bucket.full()) this.authFailures.delete(address);
    if (this.authFailures.size < MAX_TRACKED_ADDRESSES) return;
    let drop = this.authFailures.size / 2;
    for (const address of this.authFailures.keys()) {
      if (drop-- <= 0) break;
      this.authFailures.delete(address);
    }
  }
}

/** An upgrade refused with a registry code: the HTTP answer, and the code (for the errors metric). */
export type Refusal = HttpResponse & { readonly code: ErrorCode };

/** The HTTP answer refusing an upgrade with a registry code (PROTOCOL §12.1). */
export function refusal(status: number, code: ErrorCode, message: string): Refusal {
  return {
    code,
    status,
    contentType: 'application/json',
    body: JSON.stringify({ code, message, retryable: ERROR_REGISTRY[code].retryable }),
  };
}

/**
 * Origins allowed to open a WebSocket. An entry is an origin (`https://app.example.com`, with its
 * port when not the default), `https://*.example.com` for every subdomain of example.com (not
 * example.com itself), `null` for the literal `Origin: null` (sandboxed pages, file:// in some
 * browsers), or `*` for any. Compared case-insensitively, without a trailing slash.
 */
export class OriginAllowlist {
  private readonly exact = new Set<string>();
  private readonly suffixes: Array<{ readonly scheme: string; readonly suffix: string }> = [];
  private readonly any: boolean;

  constructor(entries: readonly string[]) {
    let any = false;
    for (const raw of entries) {
      const entry = normalizeOrigin(raw);
      if (entry === '') continue;
      if (entry === '*') {
        any = true;
        continue;
      }
      const wildcard = /^([a-z][a-z0-9+.-]*:\/\/)\*(\.[^/]+)$/.exec(entry);
      if (wildcard) this.suffixes.push({ scheme: wildcard[1] as string, suffix: wildcard[2] as string });
      else this.exact.add(entry);
    }
    this.any = any;
  }

  allows(origin: string): boolean {
    if (this.any) return true;
    const o = normalizeOrigin(origin);
    if (this.exact.has(o)) return true;
    for (const { scheme, suffix } of this.suffixes) {
      if (o.startsWith(scheme) && o.endsWith(suffix) && o.length > scheme.length + suffix.length) return true;
    }
    return false;
  }
}

function normalizeOrigin(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, '');
}
