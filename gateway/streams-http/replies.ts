/**
 * How the door answers: one place that builds every response (headers every response carries,
 * errors as text with no-store), and the mapping from spool's error codes to HTTP statuses.
 */
import { ERROR_REGISTRY, type ErrorCode, type SpoolError } from '../../protocol/errors';
import type { HttpExchange, HttpHeaders } from '../http-exchange';
import { BASE_HEADERS } from './headers';

/** A request the door refuses: thrown by handlers, answered by the door. */
export class HttpFailure extends Error {
  override readonly name = 'HttpFailure';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: HttpHeaders = {},
  ) {
    super(message);
  }
}

export function fail(status: number, message: string, headers: HttpHeaders = {}): never {
  throw new HttpFailure(status, message, headers);
}

/**
 * The HTTP status of a spool error: auth and limits by code; any other retryable code (the store
 * is down, the gateway shuts down, a read-only drain) is 503 with Retry-After, the rest 500.
 */
export function failureOf(error: SpoolError): HttpFailure {
  const byCode: Partial<Record<ErrorCode, number>> = {
    UNAUTHORIZED: 401,
    TOKEN_EXPIRED: 401,
    FORBIDDEN: 403,
    RATE_LIMITED: 429,
    SESSION_FULL: 507,
    SESSION_REWOUND: 503,
    QUOTA_EXCEEDED: 429,
    SESSION_QUOTA_EXCEEDED: 507,
  };
  const status = byCode[error.code] ?? (ERROR_REGISTRY[error.code].retryable ? 503 : 500);
  // A rate quota says when it has room again; Retry-After counts whole seconds.
  const retryAfter = error.details.retryAfterMs !== undefined ? String(Math.max(1, Math.ceil(error.details.retryAfterMs / 1000))) : '1';
  return new HttpFailure(status, `${error.code}: ${error.message}`, status === 503 || status === 429 ? { 'retry-after': retryAfter } : {});
}

export function reply(x: HttpExchange, status: number, headers: HttpHeaders, body?: Uint8Array | string): void {
  x.reply(status, { ...BASE_HEADERS, ...headers }, body);
}

export function replyFailure(x: HttpExchange, failure: HttpFailure): void {
  reply(x, failure.status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...failure.headers }, `${failure.message}\n`);
}
