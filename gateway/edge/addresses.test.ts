/** Whose address a request is, behind trusted proxies or not (no socket). */
import { configFromEnv } from '../config';
import { validateOptions } from '../config-file';
import { ClientAddresses, isCidr, normalizeAddress } from './addresses';

describe('client addresses', () => {
  const behind = new ClientAddresses(['10.0.0.0/8', '::1', '192.168.1.7']);

  it('without trusted proxies the peer is the client, whatever X-Forwarded-For says', () => {
    const none = new ClientAddresses(undefined);
    expect(none.trustsProxies).toBe(false);
    expect(none.resolve('203.0.113.9', '1.2.3.4')).toBe('203.0.113.9');
    expect(none.resolve('::ffff:127.0.0.1', undefined)).toBe('127.0.0.1');
  });

  it('an untrusted peer is the client: a forged X-Forwarded-For from the internet is ignored', () => {
    expect(behind.resolve('203.0.113.9', '1.2.3.4')).toBe('203.0.113.9');
  });

  it('behind a trusted proxy, the rightmost entry that is not a trusted proxy is the client', () => {
    expect(behind.resolve('10.1.2.3', '198.51.100.20')).toBe('198.51.100.20');
    // The client sent its own (forged) X-Forwarded-For: the proxy appended the address it saw.
    expect(behind.resolve('10.1.2.3', '1.1.1.1, 198.51.100.20')).toBe('198.51.100.20');
    // Two trusted hops.
    expect(behind.resolve('::ffff:10.1.2.3', '198.51.100.20, 192.168.1.7')).toBe('198.51.100.20');
    expect(behind.resolve('::1', '2001:db8::5, 10.9.9.9')).toBe('2001:db8::5');
    // Ports and brackets as some proxies write them.
    expect(behind.resolve('10.1.2.3', '198.51.100.20:4711')).toBe('198.51.100.20');
    expect(behind.resolve('10.1.2.3', '[2001:db8::7]:443')).toBe('2001:db8::7');
  });

  it('every entry trusted: the leftmost; no header: the peer; garbage stops at the last trusted hop', () => {
    expect(behind.resolve('10.1.2.3', '10.4.4.4, 10.5.5.5')).toBe('10.4.4.4');
    expect(behind.resolve('10.1.2.3', undefined)).toBe('10.1.2.3');
    expect(behind.resolve('10.1.2.3', 'unknown, 10.5.5.5')).toBe('10.5.5.5');
    expect(behind.resolve('10.1.2.3', 'not-an-address')).toBe('10.1.2.3');
  });

  it('refuses a trustProxy entry that is not an address or CIDR block', () => {
    expect(() => new ClientAddresses(['10.0.0.0/33'])).toThrow(/not an IP address or CIDR block/);
    expect(isCidr('fd00::/8')).toBe(true);
    expect(isCidr('10.0.0.0/8')).toBe(true);
    expect(isCidr('example.com')).toBe(false);
    expect(isCidr('1.2.3.4/8/9')).toBe(false);
    expect(normalizeAddress('::ffff:1.2.3.4')).toBe('1.2.3.4');
  });
});

describe('configuration', () => {
  it('trustProxy is a list of addresses and CIDR blocks in every source', () => {
    expect(() => validateOptions({ trustProxy: ['10.0.0.0/8', '::1'] }, 'spool.yaml')).not.toThrow();
    expect(() => validateOptions({ trustProxy: ['proxy.internal'] }, 'spool.yaml')).toThrow(/trustProxy.0 must be an IP address or CIDR block/);
    expect(configFromEnv({ SPOOL_TRUST_PROXY: '10.0.0.0/8, 192.168.0.1' })).toMatchObject({ trustProxy: ['10.0.0.0/8', '192.168.0.1'] });
  });
});
