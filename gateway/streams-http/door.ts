/**
 * The Durable Streams door (DESIGN §11, PROTOCOL §16): the HTTP protocol of Durable Streams on
 * the gateway's own port, under /v1/stream/, over the same session actors as the WebSocket door.
 * This file routes a request: CORS preflight, the stream it names, the caller's identity and
 * scopes (read for GET/HEAD, write for PUT/POST/DELETE, read on the source of a fork), then the
 * handler (writes.ts, live.ts, and HEAD/DELETE here); every refusal is answered by replies.ts.
 */
import type { Logger } from 'pino';
import { SpoolError } from '../../protocol/errors';
import type { SessionId } from '../../protocol/types';
import type { Authenticator, Identity } from '../auth';
import type { GatewayConfig } from '../config';
import type { ClientAddresses } from '../edge/addresses';
import { OriginAllowlist } from '../edge/guard';
import type { Quotas } from '../edge/quotas';
import type { HttpExchange, HttpHeaders, HttpRoute } from '../http-exchange';
import type { ActorRegistry } from '../registry';
import type { Metrics } from '../telemetry';
import type { SessionStore } from '../../store/types';
import { StreamCatalog } from './catalog';
import { expireLocked, find, requireStream, type DoorContext, type DoorLimits } from './context';
import { bearerToken, H, isTrue, PREFLIGHT_HEADERS } from './headers';
import { read, readParams, type Readable } from './live';
import { renderOffset } from './offsets';
import { forkSourceName, RESERVED_PREFIX, sessionOf, STREAM_PREFIX, streamName } from './paths';
import { fail, failureOf, HttpFailure, reply, replyFailure } from './replies';
import { tailOf } from './stream-state';
import { append, create } from './writes';

export interface StreamsDoorDeps {
  readonly registry: ActorRegistry;
  readonly store: SessionStore;
  readonly config: GatewayConfig;
  readonly logger: Logger;
  readonly authenticator: Authenticator;
  readonly metrics: Metrics;
  /** Per-identity write quotas (edge/quotas.ts): PUT and POST bodies count against them. Unset: none. */
  readonly quotas?: Quotas;
  /** Whose address a request is (trusted proxies): the quota account of a request without a JWT sub. */
  readonly addresses?: ClientAddresses;
}

export class StreamsDoor {
  readonly route: HttpRoute;
  private readonly ctx: DoorContext;
  private closing = false;
  /** Browser origins allowed (config.allowedOrigins, as for WebSocket upgrades); unset: any. */
  private readonly origins: OriginAllowlist | undefined;

  constructor(private readonly deps: StreamsDoorDeps) {
    const config = deps.config;
    const limits: DoorLimits = {
      longPollMs: config.streamsLongPollMs,
      maxBodyBytes: config.streamsMaxBodyBytes,
      maxReadBytes: config.streamsMaxReadBytes,
      sseMaxMs: config.streamsSseMaxMs,
      maxPendingWrites: 1024,
    };
    this.ctx = {
      catalog: new StreamCatalog({ registry: deps.registry, store: deps.store, config, logger: deps.logger }),
      registry: deps.registry,
      config,
      logger: deps.logger,
      limits,
      publicCache: deps.authenticator.mode === 'open',
      live: new Set(),
      metrics: deps.metrics,
    };
    const live = this.ctx.live;
    deps.metrics.gauge('spool_streams_live_reads', 'Long-poll and SSE reads open on the Durable Streams door', () => live.size);
    this.origins = config.allowedOrigins !== undefined ? new OriginAllowlist(config.allowedOrigins) : undefined;
    this.route = {
      prefix: STREAM_PREFIX,
      handle: (x) => {
        const { exchange, refused } = this.cors(x);
        void this.handle(exchange, refused);
      },
    };
  }

  /** Ends live reads (long-poll answers, SSE responses end) and stops taking requests. Idempotent. */
  close(): void {
    this.closing = true;
    for (const stop of [...this.ctx.live]) stop();
    this.ctx.live.clear();
    this.ctx.catalog.close();
  }

  /**
   * With an origin allowlist, a browser request from another origin is refused (403, before
   * anything else, preflights too) and an allowed one is answered for its origin only; without
   * one, responses say `Access-Control-Allow-Origin: *`. Requests without Origin (not from a
   * browser page) are not concerned.
   */
  private cors(x: HttpExchange): { exchange: HttpExchange; refused: boolean } {
    const origin = x.header('origin');
    if (this.origins === undefined || origin === undefined) return { exchange: x, refused: false };
    const allowed = this.origins.allows(origin);
    const rewrite = (headers: HttpHeaders): HttpHeaders => {
      const out: Record<string, string> = { ...headers, vary: 'origin' };
      if (allowed) out['access-control-allow-origin'] = origin;
      else delete out['access-control-allow-origin'];
      return out;
    };
    // The exchange's other members are its own closures: only the two heads are rewritten.
    const exchange: HttpExchange = Object.create(x) as HttpExchange;
    Object.assign(exchange, {
      reply: (status: number, headers: HttpHeaders, body?: Uint8Array | string) => x.reply(status, rewrite(headers), body),
      start: (status: number, headers: HttpHeaders) => x.start(status, rewrite(headers)),
    });
    return { exchange, refused: !allowed };
  }

  private async handle(x: HttpExchange, originRefused: boolean): Promise<void> {
    try {
      if (originRefused) fail(403, `Origin ${JSON.stringify((x.header('origin') ?? '').slice(0, 200))} is not in the gateway's allowedOrigins`);
      if (x.method === 'OPTIONS') {
        x.reply(204, PREFLIGHT_HEADERS);
        return;
      }
      if (this.closing) fail(503, 'gateway is shutting down', { 'retry-after': '1' });
      const name = streamName(x.path);
      if (name === null) fail(400, `not a stream path: ${x.path}`);
      if (name.startsWith(RESERVED_PREFIX)) fail(501, 'the reserved subscription APIs (__ds/) are not implemented by this server');
      const session = sessionOf(name);
      const identity = await this.identify(x);
      switch (x.method) {
        case 'PUT': {
          this.authorize(identity, 'write', session);
          const from = x.header(H.forkedFrom);
          const source = from === undefined ? null : forkSourceName(from);
          if (source !== null) this.authorize(identity, 'read', sessionOf(source));
          await create(this.ctx, this.charging(x, identity, session, 1), name, session);
          return;
        }
        case 'POST':
          this.authorize(identity, 'write', session);
          await append(this.ctx, this.charging(x, identity, session, 0), session);
          return;
        case 'GET':
          this.authorize(identity, 'read', session);
          await this.get(x, session);
          return;
        case 'HEAD':
          this.authorize(identity, 'read', session);
          await this.head(x, session);
          return;
        case 'DELETE':
          this.authorize(identity, 'write', session);
          await this.remove(x, session);
          return;
        default:
          fail(405, `${x.method} is not a Durable Streams method`, { allow: 'GET, HEAD, PUT, POST, DELETE, OPTIONS' });
      }
    } catch (error) {
      if (x.closed) return;
      if (error instanceof HttpFailure) replyFailure(x, error);
      else if (error instanceof SpoolError) replyFailure(x, failureOf(error));
      else {
        this.deps.logger.error({ path: x.path, method: x.method, err: error instanceof Error ? error.stack : String(error) }, 'durable streams: request failed');
        replyFailure(x, new HttpFailure(500, 'internal error'));
      }
    }
  }

  private async identify(x: HttpExchange): Promise<Identity> {
    return this.deps.authenticator.verify(bearerToken(x.header('authorization')));
  }

  /**
   * The exchange whose body, once read, counts against the writer's quotas (its JWT sub's account,
   * else its client address's): QUOTA_EXCEEDED (429, Retry-After) or SESSION_QUOTA_EXCEEDED (507)
   * before anything is stored. `structureEvents`: the critical records the request writes besides
   * its data (a PUT's stream metadata); with Stream-Closed the data rides in the critical close record.
   */
  private charging(x: HttpExchange, identity: Identity, session: SessionId, structureEvents: number): HttpExchange {
    const quotas = this.deps.quotas;
    if (quotas === undefined) return x;
    const closing = isTrue(x.header(H.closed));
    const exchange: HttpExchange = Object.create(x) as HttpExchange;
    Object.assign(exchange, {
      body: async (limitBytes: number) => {
        const body = await x.body(limitBytes);
        if (body === null) return body;
        const account =
          identity.subject !== undefined
            ? quotas.subjectAccount(identity.subject, identity.quota)
            : quotas.addressAccount(this.deps.addresses?.resolve(x.remoteAddress, x.header('x-forwarded-for')) ?? x.remoteAddress);
        const refused = account.charge(session, {
          bytes: body.byteLength,
          criticalEvents: structureEvents + (closing ? 1 : 0),
          criticalBytes: closing ? body.byteLength : 0,
        });
        if (refused !== undefined) throw refused;
        return body;
      },
    });
    return exchange;
  }

  private authorize(identity: Identity, capability: 'read' | 'write', session: SessionId): void {
    if (!identity.scopes.allows(capability, session)) fail(403, `this token may not ${capability} ${session}`);
  }

  private async readable(session: SessionId): Promise<Readable> {
    const found = requireStream(await find(this.ctx, session));
    const head = found.entry.log.scanned;
    if (found.state === 'native') {
      return { entry: found.entry, view: { session, inc: null, mode: 'json' }, contentType: 'application/json', tail: head, closed: false, start: 0, tag: `n${session}` };
    }
    const inc = found.inc;
    return {
      entry: found.entry,
      view: { session, inc, mode: inc.mode },
      contentType: inc.meta.contentType,
      tail: tailOf(inc, head),
      closed: inc.closed !== null,
      start: inc.meta.fork ? 0 : inc.metaOffset,
      tag: `${inc.inc}.${inc.createdTs}`,
    };
  }

  private async get(x: HttpExchange, session: SessionId): Promise<void> {
    const params = readParams(x.query);
    const stream = await this.readable(session);
    // A read restarts the TTL window when it begins (protocol §5.1), live or not.
    if (stream.view.inc) this.ctx.catalog.touch(stream.entry, stream.view.inc);
    await read(this.ctx, x, stream, params);
  }

  private async head(x: HttpExchange, session: SessionId): Promise<void> {
    const stream = await this.readable(session);
    const headers: Record<string, string> = { [H.contentType]: stream.contentType, [H.nextOffset]: renderOffset(stream.tail), 'cache-control': 'no-store' };
    const meta = stream.view.inc?.meta;
    if (meta?.ttlSeconds !== undefined) headers[H.ttl] = String(meta.ttlSeconds);
    if (meta?.expiresAt !== undefined) headers[H.expiresAt] = meta.expiresAt;
    if (stream.closed) headers[H.closed] = 'true';
    reply(x, 200, headers);
  }

  private async remove(x: HttpExchange, session: SessionId): Promise<void> {
    await this.ctx.catalog.locked(session, async (entry) => {
      const found = requireStream(await expireLocked(this.ctx, entry));
      if (found.state === 'native') fail(405, 'this session was written through the WebSocket door; the door deletes only streams it created');
      await this.ctx.catalog.remove(entry, found.inc, 'deleted');
      reply(x, 204, {});
    });
  }
}
