/**
 * The quota accounts with no socket: the claim's shape, each quota's refusal and what it counts,
 * the rates' refill on a test clock, and the bounds on what is remembered.
 */
import { SpoolError } from '../../protocol/errors';
import type { SessionId } from '../../protocol/types';
import { configFromEnv } from '../config';
import { validateOptions } from '../config-file';
import { appendCharge, chunksCharge, QuotaAccount, QuotaClaimError, quotaFromClaim, Quotas, type QuotaLimits } from './quotas';

const NONE: QuotaLimits = { bytesPerMinute: 0, criticalEventsPerMinute: 0, criticalBytesPerSession: 0, criticalEventsPerSession: 0 };
const S = 's1' as SessionId;
const T = 's2' as SessionId;
const size = (data: unknown): number => String(data).length;

function account(limits: Partial<QuotaLimits>, clock = { now: 1_000_000 }): QuotaAccount {
  return new QuotaAccount('sub "u1"', { ...NONE, ...limits }, () => clock.now, 7 * 24 * 3600_000);
}

function code(error: SpoolError | undefined): string | undefined {
  return error?.code;
}

describe('the spool.quota claim', () => {
  it('reads the four quotas; missing ones are left to the gateway', () => {
    expect(quotaFromClaim(undefined)).toEqual({});
    expect(quotaFromClaim({ bytesPerMinute: 1024, criticalEventsPerSession: 0 })).toEqual({ bytesPerMinute: 1024, criticalEventsPerSession: 0 });
  });

  it('refuses another shape, an unknown name, and values that are not integers >= 0', () => {
    for (const bad of [[], 'x', null, { bytesPerDay: 1 }, { bytesPerMinute: -1 }, { bytesPerMinute: 1.5 }, { bytesPerMinute: '10' }, { criticalBytesPerSession: 2 ** 60 }]) {
      expect(() => quotaFromClaim(bad)).toThrow(QuotaClaimError);
    }
  });
});

describe('per-session critical caps', () => {
  it('refuses the critical write that would pass criticalBytesPerSession with SESSION_QUOTA_EXCEEDED, counting nothing of it', () => {
    const a = account({ criticalBytesPerSession: 100 });
    expect(a.charge(S, { bytes: 60, criticalEvents: 1, criticalBytes: 60 })).toBeUndefined();
    const refused = a.charge(S, { bytes: 60, criticalEvents: 1, criticalBytes: 60 });
    expect(refused?.code).toBe('SESSION_QUOTA_EXCEEDED');
    expect(refused?.retryable).toBe(false);
    expect(refused?.details).toMatchObject({ session: S, quota: 'criticalBytesPerSession', limit: 100 });
    // The refused 60 were not counted: 40 more still fit, and non-critical writes are not concerned.
    expect(a.charge(S, { bytes: 40, criticalEvents: 1, criticalBytes: 40 })).toBeUndefined();
    expect(a.charge(S, { bytes: 10_000, criticalEvents: 0, criticalBytes: 0 })).toBeUndefined();
    // Another session has its own room.
    expect(a.charge(T, { bytes: 100, criticalEvents: 1, criticalBytes: 100 })).toBeUndefined();
  });

  it('refuses past criticalEventsPerSession', () => {
    const a = account({ criticalEventsPerSession: 3 });
    expect(a.charge(S, { bytes: 0, criticalEvents: 2, criticalBytes: 0 })).toBeUndefined();
    expect(a.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 })).toBeUndefined();
    expect(a.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 })?.details.quota).toBe('criticalEventsPerSession');
  });

  it('forgets a session the account has not written to for the session TTL, or that was reset', () => {
    const clock = { now: 0 };
    const a = new QuotaAccount('x', { ...NONE, criticalEventsPerSession: 1 }, () => clock.now, 1000);
    expect(a.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 })).toBeUndefined();
    expect(code(a.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 }))).toBe('SESSION_QUOTA_EXCEEDED');
    clock.now = 1000;
    expect(a.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 })).toBeUndefined();
    a.forgetSession(S);
    expect(a.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 })).toBeUndefined();
  });
});

describe('rates', () => {
  it('bytesPerMinute: a minute allowance at once, then QUOTA_EXCEEDED with retryAfterMs, which is exactly when it fits again', () => {
    const clock = { now: 0 };
    const a = account({ bytesPerMinute: 6000 }, clock);
    expect(a.charge(S, { bytes: 6000, criticalEvents: 0, criticalBytes: 0 })).toBeUndefined();
    const refused = a.charge(S, { bytes: 600, criticalEvents: 0, criticalBytes: 0 });
    expect(refused?.code).toBe('QUOTA_EXCEEDED');
    expect(refused?.retryable).toBe(true);
    expect(refused?.details).toMatchObject({ quota: 'bytesPerMinute', limit: 6000, retryAfterMs: 6000 });
    clock.now += 5999;
    expect(code(a.charge(S, { bytes: 600, criticalEvents: 0, criticalBytes: 0 }))).toBe('QUOTA_EXCEEDED');
    clock.now += 1;
    expect(a.charge(S, { bytes: 600, criticalEvents: 0, criticalBytes: 0 })).toBeUndefined();
  });

  it('a write larger than the whole allowance passes on an empty bucket, and the bucket waits it off', () => {
    const clock = { now: 0 };
    const a = account({ bytesPerMinute: 1000 }, clock);
    expect(a.charge(S, { bytes: 3000, criticalEvents: 0, criticalBytes: 0 })).toBeUndefined();
    expect(a.charge(S, { bytes: 1, criticalEvents: 0, criticalBytes: 0 })?.details.retryAfterMs).toBe(120_060); // until 999 are left: 2001 bytes at 1000 a minute
  });

  it('criticalEventsPerMinute counts critical events only; a refusal by one rate counts nothing in the other', () => {
    const clock = { now: 0 };
    const a = account({ criticalEventsPerMinute: 2, bytesPerMinute: 1000 }, clock);
    expect(a.charge(S, { bytes: 100, criticalEvents: 2, criticalBytes: 0 })).toBeUndefined();
    expect(a.charge(S, { bytes: 100, criticalEvents: 0, criticalBytes: 0 })).toBeUndefined();
    const refused = a.charge(S, { bytes: 100, criticalEvents: 1, criticalBytes: 0 });
    expect(refused?.details).toMatchObject({ quota: 'criticalEventsPerMinute', retryAfterMs: 30_000 });
    // 200 bytes counted so far: 800 more fit (the refused write's 100 were not counted).
    expect(a.charge(S, { bytes: 800, criticalEvents: 0, criticalBytes: 0 })).toBeUndefined();
  });

  it('a refreshed limit applies at once', () => {
    const a = account({ bytesPerMinute: 100 });
    expect(a.charge(S, { bytes: 100, criticalEvents: 0, criticalBytes: 0 })).toBeUndefined();
    expect(code(a.charge(S, { bytes: 100, criticalEvents: 0, criticalBytes: 0 }))).toBe('QUOTA_EXCEEDED');
    a.limits = { ...a.limits, bytesPerMinute: 0 };
    expect(a.charge(S, { bytes: 100, criticalEvents: 0, criticalBytes: 0 })).toBeUndefined();
  });
});

describe('charges', () => {
  it('chunks count the frame bytes and their priority-3 items; appends are critical unless given a lower priority', () => {
    expect(chunksCharge([{ data: 'ab' }, { priority: 3, data: 'abcd' }, { priority: 2, data: 'x' }], 50, size)).toEqual({ bytes: 50, criticalEvents: 1, criticalBytes: 4 });
    expect(appendCharge(undefined, 'abc', 20, size)).toEqual({ bytes: 20, criticalEvents: 1, criticalBytes: 3 });
    expect(appendCharge(1, 'abc', 20, size)).toEqual({ bytes: 20, criticalEvents: 0, criticalBytes: 0 });
  });
});

describe('the registry', () => {
  it('one account per sub (with its latest token limits), per address, and one per connection; a reset session is forgotten by all', () => {
    const quotas = new Quotas({ defaults: { ...NONE, criticalEventsPerSession: 1 }, clock: () => 0, sessionTtlMs: 1000 });
    const a = quotas.subjectAccount('u1', {});
    expect(quotas.subjectAccount('u1', { criticalEventsPerSession: 5 })).toBe(a);
    expect(a.limits.criticalEventsPerSession).toBe(5);
    expect(quotas.subjectAccount('u2', {})).not.toBe(a);
    expect(quotas.addressAccount('10.0.0.1')).toBe(quotas.addressAccount('10.0.0.1'));
    const c = quotas.connectionAccount('c1');
    expect(c.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 })).toBeUndefined();
    expect(code(c.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 }))).toBe('SESSION_QUOTA_EXCEEDED');
    quotas.forgetSession(S);
    expect(c.charge(S, { bytes: 0, criticalEvents: 1, criticalBytes: 0 })).toBeUndefined();
    expect(quotas.size).toBe(3);
  });
});

describe('configuration', () => {
  it('the quota defaults are integers >= 0 in every source (0: no limit)', () => {
    expect(() => validateOptions({ quotaBytesPerMinute: 0, quotaCriticalEventsPerMinute: 10, quotaCriticalBytesPerSession: 1024, quotaCriticalEventsPerSession: 5 }, 'spool.yaml')).not.toThrow();
    expect(() => validateOptions({ quotaCriticalBytesPerSession: -1 }, 'spool.yaml')).toThrow(/quotaCriticalBytesPerSession must be >= 0/);
    expect(() => validateOptions({ quotaBytesPerMinute: 1.5 }, 'spool.yaml')).toThrow(/quotaBytesPerMinute must be an integer/);
    expect(configFromEnv({ SPOOL_QUOTA_CRITICAL_EVENTS_PER_SESSION: '7' })).toMatchObject({ quotaCriticalEventsPerSession: 7 });
  });
});
