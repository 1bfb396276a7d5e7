/**
 * Whose address a request is (README "Security", PROTOCOL §12.1): the peer's, or, behind proxies
 * the operator trusts (`trustProxy`), the client's as X-Forwarded-For names it. The per-address
 * connection cap, the failed-authentication throttle and the HTTP write quotas count this address.
 *
 *   peer not trusted                   → the peer (X-Forwarded-For is ignored: anyone can send one)
 *   peer trusted, X-Forwarded-For a, b → walk from the right: the first entry that is not a
 *                                        trusted proxy is the client; all trusted → the leftmost
 *   peer trusted, no header            → the peer
 *
 * The rightmost untrusted entry is the one the nearest trusted proxy wrote (the address it saw);
 * entries to its left were sent by the client and prove nothing. An entry that is not an IP
 * address ends the walk at the last trusted hop, so garbage cannot mint fresh "addresses".
 */
import { BlockList, isIP } from 'node:net';

/** An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as dual-stack sockets report IPv4 peers) read as IPv4. */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? (mapped[1] as string) : address;
}

/** An address or CIDR block (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`, `::1`). */
export function isCidr(entry: string): boolean {
  return parseCidr(entry) !== undefined;
}

function parseCidr(entry: string): { readonly address: string; readonly prefix: number; readonly family: 'ipv4' | 'ipv6' } | undefined {
  const [raw, bits, extra] = entry.trim().split('/');
  if (raw === undefined || extra !== undefined) return undefined;
  const address = normalizeAddress(raw);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (bits !== undefined) {
    if (!/^\d{1,3}$/.test(bits)) return undefined;
    prefix = Number(bits);
    if (prefix > max) return undefined;
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** One X-Forwarded-For entry as an address: `1.2.3.4`, `1.2.3.4:567`, `::1`, `[::1]:567`; undefined when it is none. */
function forwardedAddress(entry: string): string | undefined {
  let value = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(value);
  if (bracketed) value = bracketed[1] as string;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(value)) value = value.slice(0, value.lastIndexOf(':'));
  value = normalizeAddress(value);
  return isIP(value) === 0 ? undefined : value;
}

/** Resolves the client address of a request from its peer and X-Forwarded-For. */
export class ClientAddresses {
  private readonly trusted: BlockList | undefined;

  /** @param trustProxy addresses and CIDR blocks of trusted proxies; undefined or empty: trust none. */
  constructor(trustProxy: readonly string[] | undefined) {
    if (trustProxy === undefined || trustProxy.length === 0) return;
    const list = new BlockList();
    for (const entry of trustProxy) {
      const cidr = parseCidr(entry);
      if (cidr === undefined) throw new Error(`trustProxy: ${JSON.stringify(entry)} is not an IP address or CIDR block (10.0.0.0/8, ::1)`);
      list.addSubnet(cidr.address, cidr.prefix, cidr.family);
    }
    this.trusted = list;
  }

  /** Whether any proxy is trusted (else every address is its peer's). */
  get trustsProxies(): boolean {
    return this.trusted !== undefined;
  }

  /** The client's address: see the table at the top of this file. */
  resolve(peer: string, forwardedFor: string | undefined): string {
    const peerAddress = normalizeAddress(peer);
    if (this.trusted === undefined || forwardedFor === undefined || forwardedFor === '' || !this.isTrusted(peerAddress)) return peerAddress;
    const entries = forwardedFor.split(',');
    let client = peerAddress;
    for (let i = entries.length - 1; i >= 0; i--) {
      const address = forwardedAddress(entries[i] as string);
      if (address === undefined) return client;
      client = address;
      if (!this.isTrusted(address)) return address;
    }
    return client;
  }

  private isTrusted(address: string): boolean {
    const version = isIP(address);
    return version !== 0 && (this.trusted as BlockList).check(address, version === 4 ? 'ipv4' : 'ipv6');
  }
}
