/**
 * Header names and the parsing rules of the Durable Streams protocol's request headers
 * (protocol §5, §13.2), and the headers every response of the door carries (§12.7 browser
 * security headers, CORS for browser readers on another origin).
 */
import type { HttpHeaders } from '../http-exchange';

export const H = {
  contentType: 'content-type',
  nextOffset: 'stream-next-offset',
  upToDate: 'stream-up-to-date',
  closed: 'stream-closed',
  cursor: 'stream-cursor',
  ttl: 'stream-ttl',
  expiresAt: 'stream-expires-at',
  streamSeq: 'stream-seq',
  forkedFrom: 'stream-forked-from',
  forkOffset: 'stream-fork-offset',
  forkSubOffset: 'stream-fork-sub-offset',
  producerId: 'producer-id',
  producerEpoch: 'producer-epoch',
  producerSeq: 'producer-seq',
  producerExpectedSeq: 'producer-expected-seq',
  producerReceivedSeq: 'producer-received-seq',
  sseEncoding: 'stream-sse-data-encoding',
} as const;

const EXPOSED = [
  H.nextOffset,
  H.upToDate,
  H.closed,
  H.cursor,
  H.ttl,
  H.expiresAt,
  H.producerEpoch,
  H.producerSeq,
  H.producerExpectedSeq,
  H.producerReceivedSeq,
  H.sseEncoding,
  'etag',
  'location',
  'retry-after',
].join(', ');

const ALLOWED = [
  'authorization',
  'content-type',
  'if-none-match',
  H.ttl,
  H.expiresAt,
  H.streamSeq,
  H.closed,
  H.forkedFrom,
  H.forkOffset,
  H.forkSubOffset,
  H.producerId,
  H.producerEpoch,
  H.producerSeq,
].join(', ');

/** On every response: no MIME sniffing, readable cross-origin by fetch (protocol §12.7), CORS. */
export const BASE_HEADERS: HttpHeaders = {
  'x-content-type-options': 'nosniff',
  'cross-origin-resource-policy': 'cross-origin',
  'access-control-allow-origin': '*',
  'access-control-expose-headers': EXPOSED,
};

/** The answer to a CORS preflight. */
export const PREFLIGHT_HEADERS: HttpHeaders = {
  ...BASE_HEADERS,
  'access-control-allow-methods': 'GET, HEAD, PUT, POST, DELETE, OPTIONS',
  'access-control-allow-headers': ALLOWED,
  'access-control-max-age': '600',
};

/** A non-negative decimal integer as the protocol spells it: no sign, no leading zero, ≤ 2^53 − 1. */
export function parseCanonicalInt(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^(0|[1-9]\d*)$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `Stream-Closed` counts only when it says `true` (any case); any other value is no header (§4.1). */
export function isTrue(raw: string | undefined): boolean {
  return raw !== undefined && raw.trim().toLowerCase() === 'true';
}

/** Producer headers: all three or none (§5.2.1). */
export type ProducerHeaders =
  | { readonly ok: true; readonly producer: { readonly id: string; readonly epoch: number; readonly seq: number } | null }
  | { readonly ok: false; readonly message: string };

export function producerHeaders(header: (name: string) => string | undefined): ProducerHeaders {
  const id = header(H.producerId);
  const epoch = header(H.producerEpoch);
  const seq = header(H.producerSeq);
  if (id === undefined && epoch === undefined && seq === undefined) return { ok: true, producer: null };
  if (id === undefined || epoch === undefined || seq === undefined) return { ok: false, message: 'Producer-Id, Producer-Epoch and Producer-Seq go together: send all three or none' };
  if (id === '') return { ok: false, message: 'Producer-Id must not be empty' };
  const e = parseCanonicalInt(epoch);
  const s = parseCanonicalInt(seq);
  if (e === undefined) return { ok: false, message: `Producer-Epoch ${JSON.stringify(epoch)} is not an integer 0..2^53-1` };
  if (s === undefined) return { ok: false, message: `Producer-Seq ${JSON.stringify(seq)} is not an integer 0..2^53-1` };
  return { ok: true, producer: { id, epoch: e, seq: s } };
}

/** The bearer token of an Authorization header, if it carries one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return match ? match[1] : undefined;
}
