/**
 * How the Durable Streams door keeps a stream in a spool session's log (PROTOCOL §16.3). The
 * log is the only state: every fact the door needs (the stream's configuration, producer epochs
 * and seqs, Stream-Seq, closure, deletion) is an event of the session, so any gateway process,
 * after any restart, rebuilds the same stream by reading it (stream-state.ts).
 *
 * Events the door writes are `append` events (they need no generation, and their idempotency
 * key is the store's atomic dedupe), with these kinds:
 *
 *   ds.meta    priority 3   {v, path, contentType, ttlSeconds?, expiresAt?, fork?}: a stream (an
 *                           "incarnation") starts here; one per PUT that created it
 *   ds.text    priority 2   a text/* body that is valid UTF-8, as a string
 *   ds.bytes   priority 2   any other body, base64 (spool's log carries portable JSON only)
 *   ds.json    priority 2   an application/json body: the array of its messages
 *   ds.close   priority 3   the stream is closed here; data: null, or the final body ({kind, data})
 *   ds.delete  priority 3   {soft, reason}: deleted (soft: while forks still read it) or expired
 *   ds.fork / ds.unfork     in a fork registry session (refs.ts): a fork took / dropped a reference
 *
 * Keys are JSON arrays (unambiguous to read back), scoped by the incarnation `inc` (the offset
 * at which its PUT expected its ds.meta), so a stream created again after a delete starts with
 * fresh producers and dedupe:
 *
 *   ["ds", inc, "meta"]                                  the PUT (two racing PUTs store one)
 *   ["ds", inc, "p", producer, epoch, seq, streamSeq]    an idempotent producer's write
 *   ["ds", inc, "w", nonce, streamSeq]                   any other write (not idempotent)
 *   ["ds", inc, "close"]                                 a close without producer headers
 *   ["ds", inc, "delete", "soft" | "hard"]
 */
import { createHash, randomUUID } from 'node:crypto';

export const KIND_META = 'ds.meta';
export const KIND_TEXT = 'ds.text';
export const KIND_BYTES = 'ds.bytes';
export const KIND_JSON = 'ds.json';
export const KIND_CLOSE = 'ds.close';
export const KIND_DELETE = 'ds.delete';
export const KIND_FORK = 'ds.fork';
export const KIND_UNFORK = 'ds.unfork';

/** Data events: trimmed by retention like text deltas. Structure events (meta, close, delete): never trimmed. */
export const PRIORITY_DATA = 2;
export const PRIORITY_STRUCTURE = 3;

/** Where a fork's inherited data comes from. */
export interface ForkOrigin {
  /** The source's stream path (decoded, without `/v1/stream/`). */
  readonly path: string;
  readonly session: string;
  /** The source incarnation the fork reads. */
  readonly inc: string;
  /** The divergence point: a rendered offset of the source (offsets.ts). */
  readonly offset: number;
  /** Stream-Fork-Sub-Offset as requested (0 when absent); its prefix is the fork's first own event. */
  readonly subOffset: number;
}

/** The data of a `ds.meta` event: a stream's configuration, fixed at creation. */
export interface StreamMeta {
  readonly v: 1;
  readonly path: string;
  readonly contentType: string;
  readonly ttlSeconds?: number;
  readonly expiresAt?: string;
  readonly fork?: ForkOrigin;
  /** A fork's own Stream-TTL / Stream-Expires-At as its PUT asked (the values above may be inherited), for idempotent PUTs. */
  readonly requested?: { readonly ttlSeconds?: number; readonly expiresAt?: string };
}

/** One write's body as stored: a string, base64 bytes, or JSON messages. */
export type Payload =
  | { readonly kind: typeof KIND_TEXT; readonly data: string }
  | { readonly kind: typeof KIND_BYTES; readonly data: string }
  | { readonly kind: typeof KIND_JSON; readonly data: readonly unknown[] };

export interface DeleteRecord {
  readonly soft: boolean;
  readonly reason: 'deleted' | 'expired';
}

/** A producer as the log names it: the Producer-Id itself when short and printable, else its digest. */
export function producerKey(producerId: string): string {
  if (/^[\x20-\x7e]{1,64}$/.test(producerId) && !producerId.startsWith('sha256:')) return producerId;
  return `sha256:${createHash('sha256').update(producerId).digest('base64url')}`;
}

export type WriteKey =
  | { readonly type: 'meta'; readonly inc: string }
  | { readonly type: 'producer'; readonly inc: string; readonly producer: string; readonly epoch: number; readonly seq: number; readonly streamSeq: string | null }
  | { readonly type: 'plain'; readonly inc: string; readonly nonce: string; readonly streamSeq: string | null }
  | { readonly type: 'close'; readonly inc: string }
  | { readonly type: 'delete'; readonly inc: string; readonly soft: boolean };

export function encodeKey(key: WriteKey): string {
  switch (key.type) {
    case 'meta':
      return JSON.stringify(['ds', key.inc, 'meta']);
    case 'producer':
      return JSON.stringify(['ds', key.inc, 'p', key.producer, key.epoch, key.seq, key.streamSeq]);
    case 'plain':
      return JSON.stringify(['ds', key.inc, 'w', key.nonce, key.streamSeq]);
    case 'close':
      return JSON.stringify(['ds', key.inc, 'close']);
    case 'delete':
      return JSON.stringify(['ds', key.inc, 'delete', key.soft ? 'soft' : 'hard']);
  }
}

/** A fresh key for a write without producer headers. */
export function plainKey(inc: string, streamSeq: string | null): WriteKey {
  return { type: 'plain', inc, nonce: randomUUID(), streamSeq };
}

/** Reads a key the door wrote; undefined for any other key (an append through the WebSocket door). */
export function decodeKey(raw: string | undefined): WriteKey | undefined {
  if (raw === undefined || !raw.startsWith('["ds",')) return undefined;
  let parts: unknown;
  try {
    parts = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parts) || typeof parts[1] !== 'string') return undefined;
  const inc = parts[1];
  const seqOrNull = (v: unknown): string | null | undefined => (v === null ? null : typeof v === 'string' ? v : undefined);
  switch (parts[2]) {
    case 'meta':
      return { type: 'meta', inc };
    case 'p': {
      const [, , , producer, epoch, seq, streamSeq] = parts as unknown[];
      const ss = seqOrNull(streamSeq);
      if (typeof producer !== 'string' || !Number.isSafeInteger(epoch) || !Number.isSafeInteger(seq) || ss === undefined) return undefined;
      return { type: 'producer', inc, producer, epoch: epoch as number, seq: seq as number, streamSeq: ss };
    }
    case 'w': {
      const nonce = parts[3];
      const ss = seqOrNull(parts[4]);
      if (typeof nonce !== 'string' || ss === undefined) return undefined;
      return { type: 'plain', inc, nonce, streamSeq: ss };
    }
    case 'close':
      return { type: 'close', inc };
    case 'delete':
      return { type: 'delete', inc, soft: parts[3] === 'soft' };
    default:
      return undefined;
  }
}

/** The session of a fork registry: who forks the incarnation `inc` of `session` (refs.ts). */
export function refsSession(session: string, inc: string): string {
  return `.ds-refs-${createHash('sha256').update(`${session}\u0000${inc}`).digest('hex').slice(0, 40)}`;
}

export function refKey(forkSession: string, forkInc: string, op: 'add' | 'drop'): string {
  return JSON.stringify(['ds-ref', forkSession, forkInc, op]);
}

export interface ForkRef {
  readonly session: string;
  readonly inc: string;
}
