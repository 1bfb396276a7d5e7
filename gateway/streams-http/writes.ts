/**
 * Creating and appending (protocol §5.1–5.3, §4.2): PUT creates a stream (or a fork), POST
 * appends, closes, or both atomically. Each validates its headers and body first, then runs
 * under the session's lock (one writer of the stream at a time in this process), and, across
 * processes, as a compare-and-append (PROTOCOL §16.11):
 *
 *   read the stream up to head h ──▶ check (closed, content type, producer, Stream-Seq)
 *          ▲                                │ passes
 *          │ conflict: someone wrote        ▼
 *          └──────────────────────── append if head is still h ──ok──▶ answer
 *                                     (16 conflicts in a row: 503, nothing stored)
 *
 * Producer fencing follows the rule of spool's generation tokens: an older Producer-Epoch is
 * refused (403, the door's FENCED) and nothing is stored; a seq that skips ahead is refused (409,
 * its SEQ_GAP); a seq already stored is answered as a duplicate without storing it again (204).
 * The write's key names (producer, epoch, seq), so a retry that reaches the store again (the
 * first attempt's answer was lost, another process took it) is stored once: the store's dedupe.
 */
import type { SessionId } from '../../protocol/types';
import type { HttpExchange } from '../http-exchange';
import { expireLocked, requireStream, type DoorContext } from './context';
import type { StreamEntry } from './catalog';
import { H, isTrue, parseCanonicalInt, producerHeaders, type ProducerHeaders } from './headers';
import { parseOffset, renderOffset } from './offsets';
import { forkSourceName, sessionOf } from './paths';
import { BadBody, isMediaType, modeOf, payloadOf, payloadPrefix, type Mode } from './payloads';
import { catchUp, segmentsOf } from './reads';
import {
  encodeKey,
  KIND_CLOSE,
  KIND_META,
  plainKey,
  PRIORITY_DATA,
  PRIORITY_STRUCTURE,
  producerKey,
  type ForkOrigin,
  type Payload,
  type StreamMeta,
  type WriteKey,
} from './records';
import { fail, reply } from './replies';
import type { DoorWrite } from './catalog';
import { checkProducer, renderOwn, sameMediaType, tailOf, type Incarnation } from './stream-state';

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
/** Stream-Seq values are kept in write keys; longer ones are refused (PROTOCOL §16.6). */
const MAX_STREAM_SEQ_LENGTH = 128;

/** What a PUT asks for. */
interface CreateRequest {
  readonly name: string;
  readonly contentType: string | undefined;
  readonly ttlSeconds: number | undefined;
  readonly expiresAt: string | undefined;
  readonly closed: boolean;
  readonly fork: { readonly name: string; readonly session: SessionId; readonly offset: number | undefined; readonly subOffset: number } | null;
}

function parseCreate(x: HttpExchange, name: string): CreateRequest {
  const rawType = x.header(H.contentType);
  const contentType = rawType !== undefined && rawType.trim() !== '' && isMediaType(rawType) ? rawType.trim() : undefined;
  const ttlRaw = x.header(H.ttl);
  const expiresRaw = x.header(H.expiresAt);
  if (ttlRaw !== undefined && expiresRaw !== undefined) fail(400, 'send Stream-TTL or Stream-Expires-At, not both');
  let ttlSeconds: number | undefined;
  if (ttlRaw !== undefined) {
    ttlSeconds = parseCanonicalInt(ttlRaw);
    if (ttlSeconds === undefined) fail(400, `Stream-TTL ${JSON.stringify(ttlRaw)} is not a whole number of seconds (no sign, no leading zero)`);
  }
  let expiresAt: string | undefined;
  if (expiresRaw !== undefined) {
    if (!/^\d{4}-\d\d-\d\dT/.test(expiresRaw) || !Number.isFinite(Date.parse(expiresRaw))) fail(400, `Stream-Expires-At ${JSON.stringify(expiresRaw)} is not an RFC 3339 timestamp`);
    expiresAt = expiresRaw;
  }
  const from = x.header(H.forkedFrom);
  const offsetRaw = x.header(H.forkOffset);
  const subRaw = x.header(H.forkSubOffset);
  if (from === undefined) {
    if (offsetRaw !== undefined || subRaw !== undefined) fail(400, 'Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From');
    return { name, contentType, ttlSeconds, expiresAt, closed: isTrue(x.header(H.closed)), fork: null };
  }
  const sourceName = forkSourceName(from);
  if (sourceName === null) fail(400, `Stream-Forked-From ${JSON.stringify(from)} is not a stream path (/v1/stream/…)`);
  let offset: number | undefined;
  if (offsetRaw !== undefined) {
    const parsed = parseOffset(offsetRaw);
    if (parsed?.kind !== 'at') fail(400, `Stream-Fork-Offset ${JSON.stringify(offsetRaw)} is not an offset`);
    offset = parsed.offset;
  }
  let subOffset = 0;
  if (subRaw !== undefined) {
    const sub = parseCanonicalInt(subRaw);
    if (sub === undefined) fail(400, `Stream-Fork-Sub-Offset ${JSON.stringify(subRaw)} is not a non-negative integer`);
    if (sub > 0 && offset === undefined) fail(400, 'Stream-Fork-Sub-Offset > 0 needs Stream-Fork-Offset');
    subOffset = sub;
  }
  return { name, contentType, ttlSeconds, expiresAt, closed: isTrue(x.header(H.closed)), fork: { name: sourceName, session: sessionOf(sourceName), offset, subOffset } };
}

/** Whether an existing stream is what the PUT asks for (protocol §5.1: then 200, else 409). */
function sameConfig(inc: Incarnation, req: CreateRequest): boolean {
  const meta = inc.meta;
  if ((req.closed ? 1 : 0) !== (inc.closed ? 1 : 0)) return false;
  if (req.fork === null) {
    if (meta.fork) return false;
    if (!sameMediaType(req.contentType ?? DEFAULT_CONTENT_TYPE, meta.contentType)) return false;
    return req.ttlSeconds === meta.ttlSeconds && req.expiresAt === meta.expiresAt;
  }
  const fork = meta.fork;
  if (!fork || fork.path !== req.fork.name) return false;
  if (req.fork.offset !== undefined && req.fork.offset !== fork.offset) return false;
  if (req.fork.subOffset !== fork.subOffset) return false;
  if (req.contentType !== undefined && !sameMediaType(req.contentType, meta.contentType)) return false;
  const asked = meta.requested ?? {};
  return req.ttlSeconds === asked.ttlSeconds && req.expiresAt === asked.expiresAt;
}

function streamHeaders(inc: Incarnation, head: number): Record<string, string> {
  const headers: Record<string, string> = { [H.contentType]: inc.meta.contentType, [H.nextOffset]: renderOffset(tailOf(inc, head)) };
  if (inc.closed) headers[H.closed] = 'true';
  return headers;
}

export async function create(ctx: DoorContext, x: HttpExchange, name: string, session: SessionId): Promise<void> {
  const req = parseCreate(x, name);
  const body = await x.body(ctx.limits.maxBodyBytes);
  if (body === null) fail(413, `body larger than ${ctx.limits.maxBodyBytes} bytes`);
  if (req.fork?.session === session) fail(400, 'a stream cannot fork itself');
  await ctx.catalog.locked(session, async (entry) => {
    for (let attempt = 1; !(await createOnce(ctx, x, req, body, entry)); attempt++) checkAttempts(attempt);
  });
}

/**
 * One attempt of a PUT against the stream as the entry has it; false when the store had moved on
 * meanwhile (another process wrote: the entry was read again, and the caller tries again).
 */
async function createOnce(ctx: DoorContext, x: HttpExchange, req: CreateRequest, body: Uint8Array, entry: StreamEntry): Promise<boolean> {
  const { name } = req;
  const session = entry.session;
  const found = await expireLocked(ctx, entry);
  if (found.state === 'soft-deleted') fail(409, 'a stream deleted while forks still read it keeps its path until they are gone');
  if (found.state === 'native') fail(409, 'the session exists (written through the WebSocket door) and is not a stream of this door');
  if (found.state === 'stream') {
    if (!sameConfig(found.inc, req)) fail(409, 'a stream exists here with another configuration');
    reply(x, 200, streamHeaders(found.inc, entry.log.scanned));
    return true;
  }
  const inc = String(entry.log.scanned + 1);
  let meta: StreamMeta;
  let prefix: Payload | null = null;
  let origin: ForkOrigin | null = null;
  if (req.fork === null) {
    meta = withOptional({ v: 1, path: name, contentType: req.contentType ?? DEFAULT_CONTENT_TYPE }, { ttlSeconds: req.ttlSeconds, expiresAt: req.expiresAt });
  } else {
    const forked = await takeFork(ctx, req, session, inc);
    meta = forked.meta;
    prefix = forked.prefix;
    origin = forked.origin;
  }
  const mode = modeOf(meta.contentType);
  let payload: Payload | null = null;
  try {
    payload = body.byteLength > 0 ? payloadOf(body, mode, ctx.config.limits.maxDataDepth) : null;
  } catch (error) {
    await undoFork(ctx, origin, session, inc);
    if (error instanceof BadBody) fail(400, error.message);
    throw error;
  }
  const writes: DoorWrite[] = [{ key: encodeKey({ type: 'meta', inc }), kind: KIND_META, priority: PRIORITY_STRUCTURE, data: meta }];
  if (prefix) writes.push(dataWrite(plainKey(inc, null), prefix));
  if (req.closed) writes.push(closeWrite({ type: 'close', inc }, payload));
  else if (payload) writes.push(dataWrite(plainKey(inc, null), payload));
  let results;
  try {
    results = await ctx.catalog.writeIf(entry, writes);
  } catch (error) {
    await undoFork(ctx, origin, session, inc);
    throw error;
  }
  if (results === null) {
    await undoFork(ctx, origin, session, inc);
    return false;
  }
  const created = entry.log.current;
  if (results[0]?.duplicate || created === null || created.inc !== inc) {
    // Another process created it first (the same ds.meta key): as an idempotent PUT.
    const now = entry.log.current;
    if (now && !now.deleted && sameConfig(now, req)) {
      reply(x, 200, streamHeaders(now, entry.log.scanned));
      return true;
    }
    fail(409, 'a stream was created here concurrently with another configuration');
  }
  ctx.catalog.touch(entry, created);
  reply(x, 201, { ...streamHeaders(created, entry.log.scanned), location: locationOf(x) });
  return true;
}

/**
 * Attempts of one write that found the store moved on (PROTOCOL §16.11): each is a store read and
 * a conditional append; past the bound (a session other writers keep busy) the client retries.
 */
const MAX_WRITE_ATTEMPTS = 16;

function checkAttempts(attempt: number): void {
  if (attempt >= MAX_WRITE_ATTEMPTS) fail(503, `the stream changed under ${attempt} attempts of this write (other writers); retry`, { 'retry-after': '1' });
}

/**
 * Resolves a fork against its source under the source's lock: the source must be a live stream
 * (404; soft-deleted: 409) of the same content type (409), the offset within it (400), the
 * sub-offset's prefix within the first write after it (400); then records the fork's reference.
 */
async function takeFork(ctx: DoorContext, req: CreateRequest, session: SessionId, inc: string): Promise<{ meta: StreamMeta; prefix: Payload | null; origin: ForkOrigin }> {
  const fork = req.fork as NonNullable<CreateRequest['fork']>;
  return ctx.catalog.locked(fork.session, async (sourceEntry) => {
    const found = await expireLocked(ctx, sourceEntry);
    if (found.state === 'soft-deleted') fail(409, 'the source stream was deleted (forks of it still read it), it cannot be forked');
    if (found.state !== 'stream') fail(404, 'source stream not found');
    const source = found.inc;
    if (req.contentType !== undefined && !sameMediaType(req.contentType, source.meta.contentType)) fail(409, `content type differs from the source's (${source.meta.contentType})`);
    const tail = tailOf(source, sourceEntry.log.scanned);
    const offset = fork.offset ?? tail;
    if (offset > tail) fail(400, `Stream-Fork-Offset is past the source's tail ${renderOffset(tail)}`);
    const mode = modeOf(source.meta.contentType);
    let prefix: Payload | null = null;
    if (fork.subOffset > 0) {
      prefix = await firstPayloadAfter(ctx, fork.session, source, mode, offset);
      prefix = prefix && payloadPrefix(prefix, fork.subOffset, mode);
      if (prefix === null) fail(400, 'Stream-Fork-Sub-Offset is past the end of the first write after Stream-Fork-Offset');
    }
    const origin: ForkOrigin = { path: fork.name, session: fork.session, inc: source.inc, offset, subOffset: fork.subOffset };
    // Expiry (protocol §4.2): the fork's own TTL or Expires-At if it asks, else the source's.
    const own = req.ttlSeconds !== undefined || req.expiresAt !== undefined;
    const ttlSeconds = own ? req.ttlSeconds : source.meta.ttlSeconds;
    const expiresAt = own ? req.expiresAt : source.meta.expiresAt;
    const meta = withOptional(
      { v: 1 as const, path: req.name, contentType: source.meta.contentType, fork: origin, requested: withOptional({}, { ttlSeconds: req.ttlSeconds, expiresAt: req.expiresAt }) },
      { ttlSeconds, expiresAt },
    );
    await ctx.catalog.addRef(fork.session, source.inc, session, inc);
    return { meta, prefix, origin };
  });
}

async function undoFork(ctx: DoorContext, origin: ForkOrigin | null, session: SessionId, inc: string): Promise<void> {
  if (!origin) return;
  await ctx.catalog.dropRef(origin.session as SessionId, origin.inc, session, inc).catch((err: unknown) => {
    ctx.logger.warn({ sessionId: origin.session, err: String(err) }, 'durable streams: dropping the reference of a failed fork failed');
  });
}

/** The payload of the first write after stream offset `offset` of `source` (through its fork chain). */
async function firstPayloadAfter(ctx: DoorContext, session: SessionId, source: Incarnation, mode: Mode, offset: number): Promise<Payload | null> {
  const segments = await segmentsOf(ctx.catalog, { session, inc: source, mode }, offset);
  // One unit is enough: any payload is at least one byte or message, so a 1-byte bound stops after it.
  const { collector } = await catchUp(ctx, segments, 1, false);
  const unit = collector.units[0];
  if (!unit) return null;
  if ('messages' in unit) return { kind: 'ds.json', data: unit.messages };
  return payloadOf(unit.bytes, mode, Number.POSITIVE_INFINITY);
}

function dataWrite(key: WriteKey, payload: Payload): DoorWrite {
  return { key: encodeKey(key), kind: payload.kind, priority: PRIORITY_DATA, data: payload.data };
}

function closeWrite(key: WriteKey, payload: Payload | null): DoorWrite {
  return { key: encodeKey(key), kind: KIND_CLOSE, priority: PRIORITY_STRUCTURE, data: payload ? { kind: payload.kind, data: payload.data } : null };
}

function locationOf(x: HttpExchange): string {
  const host = x.header('host') ?? 'localhost';
  const proto = x.header('x-forwarded-proto')?.split(',')[0]?.trim() === 'https' ? 'https' : 'http';
  return `${proto}://${host}${x.path}`;
}

/** `base` with the defined values of `optional` (exactOptionalPropertyTypes: no `key: undefined`). */
function withOptional<T extends object, O extends object>(base: T, optional: O): T & { [K in keyof O]?: Exclude<O[K], undefined> } {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) out[k] = v;
  return out as T & { [K in keyof O]?: Exclude<O[K], undefined> };
}

// ------------------------------------------------------------------ POST

export async function append(ctx: DoorContext, x: HttpExchange, session: SessionId): Promise<void> {
  const closing = isTrue(x.header(H.closed));
  const ph = producerHeaders((n) => x.header(n));
  if (!ph.ok) fail(400, ph.message);
  const producer = ph.producer;
  const streamSeq = x.header(H.streamSeq);
  if (streamSeq !== undefined && (streamSeq === '' || streamSeq.length > MAX_STREAM_SEQ_LENGTH)) fail(400, `Stream-Seq must be 1-${MAX_STREAM_SEQ_LENGTH} characters`);
  const contentType = x.header(H.contentType);
  const body = await x.body(ctx.limits.maxBodyBytes);
  if (body === null) fail(413, `body larger than ${ctx.limits.maxBodyBytes} bytes`);
  if (body.byteLength === 0 && !closing) fail(400, 'empty body: an append needs data (or Stream-Closed: true to close)');
  if (body.byteLength > 0 && (contentType === undefined || !isMediaType(contentType))) fail(400, 'Content-Type is required with a body');
  if (ctx.catalog.pending(session) >= ctx.limits.maxPendingWrites) fail(429, `${ctx.limits.maxPendingWrites} writes to this stream are already waiting; retry`, { 'retry-after': '1' });
  const req: PostRequest = { closing, producer, streamSeq, contentType, body };
  await ctx.catalog.locked(session, async (entry) => {
    for (let attempt = 1; !(await appendOnce(ctx, x, req, entry)); attempt++) checkAttempts(attempt);
  });
}

/** What a POST asks for, validated. */
interface PostRequest {
  readonly closing: boolean;
  readonly producer: Extract<ProducerHeaders, { ok: true }>['producer'];
  readonly streamSeq: string | undefined;
  readonly contentType: string | undefined;
  readonly body: Uint8Array;
}

/**
 * One attempt of a POST: the checks against the stream as the entry has it, then the write on
 * condition that the session's head is still the entry's (PROTOCOL §16.11). False when it was not
 * (another process wrote meanwhile: the entry was read again, and the caller checks again).
 */
async function appendOnce(ctx: DoorContext, x: HttpExchange, req: PostRequest, entry: StreamEntry): Promise<boolean> {
  const { closing, producer, streamSeq, contentType, body } = req;
  const found = requireStream(await expireLocked(ctx, entry));
  if (found.state === 'native') fail(405, 'this session was written through the WebSocket door; create a stream with PUT to append over HTTP');
  const inc = found.inc;
  const pk = producer ? producerKey(producer.id) : undefined;
  const producerEcho = (seq: number): Record<string, string> => (producer ? { [H.producerEpoch]: String(producer.epoch), [H.producerSeq]: String(seq) } : {});
  const tail = (): string => renderOffset(tailOf(inc, entry.log.scanned));
  if (inc.closed) {
    const by = inc.closed.by;
    if (producer && by && by[0] === pk && by[1] === producer.epoch && by[2] === producer.seq) {
      reply(x, 204, { [H.nextOffset]: tail(), [H.closed]: 'true', ...producerEcho(producer.seq) });
      return true;
    }
    if (!producer && closing && body.byteLength === 0) {
      reply(x, 204, { [H.nextOffset]: tail(), [H.closed]: 'true' });
      return true;
    }
    fail(409, 'stream is closed', { [H.closed]: 'true', [H.nextOffset]: tail() });
  }
  if (body.byteLength > 0 && !sameMediaType(contentType as string, inc.meta.contentType)) fail(409, `Content-Type differs from the stream's (${inc.meta.contentType})`);
  if (producer) {
    const verdict = checkProducer(inc.producers.get(pk as string), producer.epoch, producer.seq);
    switch (verdict.status) {
      case 'stale':
        ctx.metrics.fencedWrites.inc();
        fail(403, `Producer-Epoch ${producer.epoch} is fenced: the producer is at epoch ${verdict.epoch}`, { [H.producerEpoch]: String(verdict.epoch) });
      case 'bad-epoch-seq':
        fail(400, `a new Producer-Epoch starts at Producer-Seq 0, not ${producer.seq}`);
      case 'gap':
        fail(409, `Producer-Seq ${producer.seq} skips ahead; expected ${verdict.expected}`, {
          [H.producerExpectedSeq]: String(verdict.expected),
          [H.producerReceivedSeq]: String(verdict.received),
        });
      case 'duplicate':
        ctx.metrics.duplicateWrites.inc();
        reply(x, 204, { [H.nextOffset]: tail(), ...producerEcho(verdict.lastSeq) });
        return true;
      case 'accept':
        break;
    }
  }
  if (streamSeq !== undefined && inc.streamSeq !== undefined && streamSeq <= inc.streamSeq) fail(409, `Stream-Seq ${JSON.stringify(streamSeq)} is not above the last one (${JSON.stringify(inc.streamSeq)})`);
  let payload: Payload | null = null;
  if (body.byteLength > 0) {
    try {
      payload = payloadOf(body, inc.mode, ctx.config.limits.maxDataDepth);
    } catch (error) {
      if (error instanceof BadBody) fail(400, error.message);
      throw error;
    }
    if (payload === null) fail(400, 'an empty JSON array appends nothing');
  }
  const key: WriteKey = producer
    ? { type: 'producer', inc: inc.inc, producer: pk as string, epoch: producer.epoch, seq: producer.seq, streamSeq: streamSeq ?? null }
    : closing && payload === null
      ? { type: 'close', inc: inc.inc }
      : plainKey(inc.inc, streamSeq ?? null);
  const write = closing ? closeWrite(key, payload) : dataWrite(key, payload as Payload);
  const written = await ctx.catalog.writeIf(entry, [write]);
  if (written === null) return false;
  const [result] = written;
  ctx.catalog.touch(entry, inc);
  const headers: Record<string, string> = { [H.nextOffset]: result ? renderOffset(renderOwn(inc, result.offset)) : tail(), ...(producer ? producerEcho(producer.seq) : {}) };
  if (closing || inc.closed) headers[H.closed] = 'true';
  // A new write by an idempotent producer is 200; a duplicate (the store had its key), a
  // close-only, and any write without producer headers are 204 (protocol §5.2, §5.2.1).
  const status = producer && payload !== null && !result?.duplicate ? 200 : 204;
  reply(x, status, headers);
  return true;
}
