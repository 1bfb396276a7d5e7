/**
 * The edge's pieces without sockets: the token bucket on a hand-driven clock, the Origin
 * allowlist, the connection cap under a file descriptor limit, and the guard's counting.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { resolveConfig } from '../config';
import { createEdge } from './edge';
import { connectionCapUnder, FD_OVERHEAD, softFdLimit } from './fd-limit';
import { EdgeGuard, OriginAllowlist, type EdgeConnection } from './guard';
import { TokenBucket } from './token-bucket';

describe('TokenBucket', () => {
  it('allows a burst of its capacity, then one token per 1/rate seconds, never more than the capacity saved up', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 3, () => now);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
    expect(bucket.msUntilToken()).toBe(100);
    now += 99;
    expect(bucket.take()).toBe(false);
    now += 1;
    expect(bucket.take()).toBe(true);
    now += 60_000;
    expect(bucket.full()).toBe(true);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
  });
});

describe('OriginAllowlist', () => {
  const list = new OriginAllowlist(['https://App.example/', 'https://*.example.org', 'http://localhost:5173', 'null']);
  it.each([
    ['https://app.example', true],
    ['HTTPS://APP.EXAMPLE', true],
    ['https://app.example:443', false],
    ['http://app.example', false],
    ['https://app.example.evil', false],
    ['https://chat.example.org', true],
    ['https://a.b.example.org', true],
    ['https://example.org', false],
    ['https://evilexample.org', false],
    ['https://chat.example.org:8443', false],
    ['http://localhost:5173', true],
    ['http://localhost:5174', false],
    ['null', true],
  ])('%s: %s', (origin, allowed) => {
    expect(list.allows(origin)).toBe(allowed);
  });

  it('* allows any origin', () => {
    expect(new OriginAllowlist(['*']).allows('https://anything.example')).toBe(true);
  });
});

describe('file descriptors', () => {
  it('reads the soft limit from /proc/self/limits, and nothing where there is no such file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-limits-'));
    const file = path.join(dir, 'limits');
    fs.writeFileSync(file, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n');
    expect(softFdLimit(file)).toBe(1024);
    fs.writeFileSync(file, 'Max open files            unlimited            unlimited            files\n');
    expect(softFdLimit(file)).toBeUndefined();
    expect(softFdLimit(path.join(dir, 'missing'))).toBeUndefined();
    fs.rmSync(dir, { recursive: true });
  });

  it('keeps maxConnections under the limit with the reserved sockets and the overhead to spare', () => {
    expect(connectionCapUnder(undefined, 10_000, 64)).toBe(10_000);
    expect(connectionCapUnder(1_000_000, 10_000, 64)).toBe(10_000);
    expect(connectionCapUnder(1024, 10_000, 64)).toBe(1024 - 64 - FD_OVERHEAD);
    expect(connectionCapUnder(100, 10_000, 64)).toBe(1);
  });

  it('a gateway whose limit is lower enforces the lowered cap and says so', () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const edge = createEdge(resolveConfig({ maxConnections: 10_000, reservedSockets: 64 }), logger, () => {}, 1024);
    expect(edge.maxConnections).toBe(1024 - 64 - FD_OVERHEAD);
    expect(edge.listen.maxSockets).toBe(1024 - FD_OVERHEAD);
    expect(lines.join('')).toContain('maxConnections lowered');
  });

  it('refuses half a TLS configuration', () => {
    expect(() => createEdge(resolveConfig({ tlsCert: 'cert.pem' }), pino({ level: 'silent' }), () => {}, undefined)).toThrow(/--tls-key/);
  });
});

describe('EdgeGuard', () => {
  const connection = (remoteAddress: string): EdgeConnection & { evicted: boolean } => {
    const c = {
      remoteAddress,
      evicted: false,
      evict: () => {
        c.evicted = true;
      },
    };
    return c;
  };
  const limits = { maxConnections: 2, maxConnectionsPerAddress: 0, authFailureBurst: 2, authFailureRate: 1 };

  it('counts until closed; at the cap evicts the oldest connection awaiting hello, and refuses when every one said hello', () => {
    const guard = new EdgeGuard(limits);
    const a = connection('a');
    const b = connection('b');
    guard.opened(a);
    guard.opened(b);
    guard.welcomed(b);
    expect(guard.admit('c', undefined)).toBeUndefined();
    expect(a.evicted).toBe(true);
    expect(guard.connections).toBe(1);
    guard.closed(a); // its close arrives later: already uncounted
    expect(guard.connections).toBe(1);
    const c = connection('c');
    guard.opened(c);
    guard.welcomed(c);
    expect(guard.admit('d', undefined)?.code).toBe('CONNECTION_LIMIT');
    guard.closed(b);
    expect(guard.admit('d', undefined)).toBeUndefined();
  });

  it('spends an address failure budget and lets it recover', () => {
    const guard = new EdgeGuard(limits);
    guard.authFailed('x');
    expect(guard.mayAuthenticate('x')).toBe(true);
    guard.authFailed('x');
    expect(guard.mayAuthenticate('x')).toBe(false);
    expect(guard.mayAuthenticate('y')).toBe(true);
  });
});
