/**
 * GET: catch-up, long-poll and SSE reads (protocol §5.6–5.8, §8 sentinels, §10 caching).
 *
 *   catch-up    200 with what follows the offset, up to maxReadBytes; Stream-Up-To-Date when it
 *               reached the tail; Stream-Closed when it reached the close; ETag; 304 on a match
 *   long-poll   the same, but at the tail it waits (longPollMs) for the next write: 200 with it,
 *               204 on timeout or when the stream closes; Stream-Cursor on every answer
 *   SSE         `event: data` (text, JSON array, or base64) each followed by `event: control`
 *               {streamNextOffset, streamCursor, upToDate?, streamClosed?}; ends at the close,
 *               at a trimmed range (the client reconnects and gets 410), after sseMaxMs, or when
 *               the reader falls behind past the slow-reader bounds
 */
import type { HttpExchange } from '../http-exchange';
import type { DoorContext } from './context';
import { H } from './headers';
import { parseOffset, renderOffset, responseCursor, type OffsetParam } from './offsets';
import { renderBody, sseBase64, sseData, type Mode, type Unit } from './payloads';
import { catchUp, Collector, segmentsOf, type ReadView } from './reads';
import { fail, reply } from './replies';
import { SessionTail } from './session-tail';
import type { StreamEntry } from './catalog';

/** The request's read parameters. */
interface ReadParams {
  readonly offset: OffsetParam | undefined;
  readonly live: 'long-poll' | 'sse' | null;
  readonly cursor: string | undefined;
}

export function readParams(query: string): ReadParams {
  const params = new URLSearchParams(query);
  const offsets = params.getAll('offset');
  if (offsets.length > 1) fail(400, 'one offset parameter at most');
  let offset: OffsetParam | undefined;
  if (offsets.length === 1) {
    const parsed = parseOffset(offsets[0] as string);
    if (parsed === null) fail(400, `offset ${JSON.stringify(offsets[0])} is not an offset of this server (nor -1 or now)`);
    offset = parsed;
  }
  const liveRaw = params.get('live');
  let live: ReadParams['live'] = null;
  if (liveRaw === 'long-poll' || liveRaw === 'sse') live = liveRaw;
  else if (liveRaw !== null) fail(400, `live=${liveRaw} is not a live mode (long-poll, sse)`);
  if (live !== null && offset === undefined) fail(400, `live=${live} needs an offset`);
  return { offset, live, cursor: params.get('cursor') ?? undefined };
}

/** A stream as a GET reads it: its view, its tail now, and whether it is closed. */
export interface Readable {
  readonly entry: StreamEntry;
  readonly view: ReadView;
  readonly contentType: string;
  readonly tail: number;
  readonly closed: boolean;
  /** The first offset a read renders (reads from before it start here). */
  readonly start: number;
  /** ETag prefix: the incarnation, so a stream created again never matches an old tag. */
  readonly tag: string;
}

export async function read(ctx: DoorContext, x: HttpExchange, stream: Readable, params: ReadParams): Promise<void> {
  const { view, tail } = stream;
  const now = ctx.config.clock();
  const asked = params.offset;
  const from = asked === undefined || asked.kind === 'start' ? stream.start : asked.kind === 'now' ? tail : asked.offset;
  if (from > tail) fail(400, `offset ${renderOffset(from)} is past the stream's tail ${renderOffset(tail)}`);
  const headers: Record<string, string> = { [H.contentType]: stream.contentType };
  if (params.live === 'sse') {
    await sse(ctx, x, stream, from, params.cursor);
    return;
  }
  if (params.offset?.kind === 'now' && params.live === null) {
    // Catch-up at `now`: the tail, nothing else, never cached (protocol §8).
    reply(x, 200, { ...headers, [H.nextOffset]: renderOffset(tail), [H.upToDate]: 'true', 'cache-control': 'no-store', ...(stream.closed ? { [H.closed]: 'true' } : {}) }, view.mode === 'json' ? '[]' : '');
    return;
  }
  const segments = await segmentsOf(ctx.catalog, view, Math.max(from, 0));
  const longPoll = params.live === 'long-poll';
  const { collector, tail: liveTail } = await catchUp(ctx, segments, ctx.limits.maxReadBytes, longPoll);
  if (liveTail && collector.units.length === 0) {
    await waitForData(ctx, x, collector, liveTail, now + ctx.limits.longPollMs);
  }
  liveTail?.stop();
  if (x.closed) return;
  if (collector.gone) fail(410, `offset ${renderOffset(from)} is before what retention kept of this stream`);
  if (collector.ended) fail(404, 'stream not found (deleted while read)');
  const cursor = longPoll ? { [H.cursor]: responseCursor(params.cursor, ctx.config.clock()) } : {};
  const next = renderOffset(collector.next);
  const caught = collector.caughtUp;
  const eof = collector.closed;
  if (longPoll && collector.units.length === 0) {
    // Nothing arrived: 204, at the tail (closed: EOF, no cursor needed).
    reply(x, 204, { [H.nextOffset]: next, [H.upToDate]: 'true', 'cache-control': 'no-store', ...(eof ? { [H.closed]: 'true' } : cursor) });
    return;
  }
  const etag = `"${stream.tag}:${from}:${collector.next}${eof ? ':c' : ''}"`;
  Object.assign(headers, { [H.nextOffset]: next, etag, ...cursor });
  if (caught) headers[H.upToDate] = 'true';
  if (eof) headers[H.closed] = 'true';
  // Data is immutable by position: a response with data may be cached; one at the tail may not
  // (the next write, or the close, would hide behind it).
  headers['cache-control'] = collector.units.length > 0 ? `${ctx.publicCache ? 'public' : 'private'}, max-age=60, stale-while-revalidate=300` : 'no-store';
  if (x.header('if-none-match') === etag) {
    reply(x, 304, { etag, [H.nextOffset]: next });
    return;
  }
  reply(x, 200, headers, renderBody(collector.units, view.mode));
}

/** Long-poll at the tail: waits for the next write (or the close) until `deadline`. */
async function waitForData(ctx: DoorContext, x: HttpExchange, collector: Collector, tail: SessionTail, deadline: number): Promise<void> {
  collector.follow = true;
  const stop = (): void => tail.stop();
  x.onClose(stop);
  ctx.live.add(stop);
  try {
    while (!x.closed) {
      const item = await tail.next(deadline - ctx.config.clock());
      if (item === 'timeout' || item === 'stopped') return;
      collector.feed(item);
      if (collector.units.length > 0 || collector.closed || collector.ended || collector.gone) return;
    }
  } finally {
    ctx.live.delete(stop);
  }
}

function sseEvent(type: 'data' | 'control', payload: string): string {
  // Every line of the payload gets its own data: line, so a CR or LF in the data can never end
  // the event or start a forged one (protocol §5.8; no space after the colon: a reader strips one).
  return `event: ${type}\n${payload
    .split(/\r\n|\r|\n/)
    .map((line) => `data:${line}`)
    .join('\n')}\n\n`;
}

/** How often an idle SSE response gets a control event (keeps proxies from timing it out). */
const SSE_KEEPALIVE_MS = 15_000;

async function sse(ctx: DoorContext, x: HttpExchange, stream: Readable, from: number, clientCursor: string | undefined): Promise<void> {
  const { view } = stream;
  const mode: Mode = view.mode;
  x.start(200, {
    'x-content-type-options': 'nosniff',
    'cross-origin-resource-policy': 'cross-origin',
    'access-control-allow-origin': '*',
    'access-control-expose-headers': 'stream-sse-data-encoding',
    [H.contentType]: 'text/event-stream',
    'cache-control': 'no-cache',
    ...(sseBase64(mode) ? { [H.sseEncoding]: 'base64' } : {}),
  });
  const startedAt = ctx.config.clock();
  const keepAliveMs = Math.min(SSE_KEEPALIVE_MS, ctx.limits.sseMaxMs);
  let tail: SessionTail | null = null;
  const stop = (): void => {
    tail?.stop();
    x.end();
  };
  x.onClose(stop);
  ctx.live.add(stop);
  const control = (collector: Collector): void => {
    const body: Record<string, unknown> = { streamNextOffset: renderOffset(collector.next) };
    if (collector.closed) body['streamClosed'] = true;
    else {
      body['streamCursor'] = responseCursor(clientCursor, ctx.config.clock());
      if (collector.caughtUp) body['upToDate'] = true;
    }
    x.write(sseEvent('control', JSON.stringify(body)));
  };
  const data = (units: readonly Unit[]): void => {
    if (units.length > 0) x.write(sseEvent('data', sseData(units, mode)));
  };
  try {
    const segments = await segmentsOf(ctx.catalog, view, Math.max(from, 0));
    const collector = new Collector(segments[0] as (typeof segments)[number], Number.POSITIVE_INFINITY);
    collector.follow = true;
    if (collector.closed) {
      control(collector);
      return;
    }
    for (const segment of segments) {
      if (x.closed) return;
      collector.enter(segment);
      tail = new SessionTail(ctx.registry, segment.session, x);
      tail.start(segment.after);
      for (;;) {
        const age = ctx.config.clock() - startedAt;
        if (age >= ctx.limits.sseMaxMs) return;
        const item = await tail.next(Math.min(keepAliveMs, ctx.limits.sseMaxMs - age));
        if (item === 'stopped') return;
        if (item === 'timeout') {
          if (collector.caughtUp) control(collector);
          if (view.inc) ctx.catalog.touch(stream.entry, view.inc);
          continue;
        }
        let outcome = collector.feed(item);
        // Take what else is already queued, so a catch-up batch and its `live` make one data
        // event and one control event.
        for (let more = tail.poll(); more && outcome === 'more'; more = tail.poll()) outcome = collector.feed(more);
        const units = collector.drain();
        if (collector.gone || collector.ended) return;
        if (units.length > 0 || item.kind === 'live' || collector.closed || outcome !== 'more') {
          data(units);
          if (segment.isOwn || units.length > 0) control(collector);
        }
        if (collector.closed || outcome === 'stop') return;
        if (outcome === 'segment-done') break;
      }
      tail.stop();
      tail = null;
    }
  } catch (error) {
    // The reader is told by the connection ending; it reconnects from its last control event.
    // Dropped, not ended: a reader ended for not reading (SLOW_CONSUMER) would otherwise keep
    // what is buffered toward it until it read it.
    ctx.logger.debug({ sessionId: view.session, err: String(error) }, 'durable streams: SSE read ended');
    tail?.stop();
    x.abort();
  } finally {
    ctx.live.delete(stop);
    stop();
  }
}
