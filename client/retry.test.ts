/**
 * How the SDK reads refusals it may retry: an error frame's code from a newer gateway keeps the
 * gateway's `retryable`, and a retry never comes before the error's `retryAfterMs` (rate quotas).
 */
import { SpoolError } from '../protocol';
import { errorFromFrame } from './connection';
import { retryDelay } from './util';

describe('errors from the gateway', () => {
  it('a known code is read with the registry: QUOTA_EXCEEDED retryable with its retryAfterMs, SESSION_QUOTA_EXCEEDED not', () => {
    const rate = errorFromFrame({ type: 'error', code: 'QUOTA_EXCEEDED', message: 'm', retryable: true, details: { retryAfterMs: 1500, quota: 'bytesPerMinute' } });
    expect(rate).toMatchObject({ code: 'QUOTA_EXCEEDED', retryable: true, details: { retryAfterMs: 1500 } });
    expect(errorFromFrame({ type: 'error', code: 'SESSION_QUOTA_EXCEEDED', message: 'm', retryable: false })).toMatchObject({ code: 'SESSION_QUOTA_EXCEEDED', retryable: false });
  });

  it('a code this SDK does not know is INTERNAL named in the message, retried only when the gateway says it may be', () => {
    const frame = { type: 'error' as const, message: 'over a limit of the future', details: {} };
    const final = errorFromFrame({ ...frame, code: 'SOME_FUTURE_LIMIT' as never, retryable: false });
    expect(final).toBeInstanceOf(SpoolError);
    expect(final).toMatchObject({ code: 'INTERNAL', retryable: false });
    expect(final.message).toMatch(/^SOME_FUTURE_LIMIT: /);
    expect(errorFromFrame({ ...frame, code: 'SOME_FUTURE_LIMIT' as never, retryable: true })).toMatchObject({ code: 'INTERNAL', retryable: true });
  });
});

describe('retryDelay', () => {
  const backoff = { initialDelayMs: 100, maxDelayMs: 5000 };

  it('is full jitter without retryAfterMs, and never less than retryAfterMs with it', () => {
    expect(retryDelay(0, backoff, undefined, () => 0.5)).toBe(50);
    expect(retryDelay(0, backoff, new SpoolError('STORE_UNAVAILABLE', 'x'), () => 0.5)).toBe(50);
    expect(retryDelay(0, backoff, new SpoolError('QUOTA_EXCEEDED', 'x', { retryAfterMs: 1200 }), () => 0.5)).toBe(1200);
    // A long backoff already past it stays as it is.
    expect(retryDelay(10, backoff, new SpoolError('QUOTA_EXCEEDED', 'x', { retryAfterMs: 1200 }), () => 0.9)).toBe(4500);
  });
});
