/**
 * startGateway: wires config, store, actor registry, transport and HTTP endpoints into one
 * running gateway, and takes it down gracefully.
 */
import { randomUUID } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { WS_PATH, type SessionId } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import type { SessionStore } from '../store/types';
import { AdminApi } from './admin-api';
import { AdminServer, adminAuthorizer, type AdminRouteReply } from './admin-server';
import { createAuthenticator, type Authenticator } from './auth';
import { resolveConfig, type GatewayConfig, type GatewayOptions } from './config';
import { Connection } from './connection';
import { createEdge } from './edge/edge';
import type { ClientAddresses } from './edge/addresses';
import type { EdgeGuard } from './edge/guard';
import { Quotas } from './edge/quotas';
import { ActorRegistry } from './registry';
import { meteredStore } from './metered-store';
import { Metrics, noopSink, PROMETHEUS_CONTENT_TYPE, teeSink } from './telemetry';
import type { HttpResponse, TransportServer } from './transport';
import { Toggles } from './toggles';
import { selectTransport } from './transports';
import { StreamsDoor } from './streams-http/door';
import type { DeleteOutcome, ResetOutcome } from './write-results';

export type GatewayState = 'starting' | 'running' | 'closing' | 'closed';

export interface Gateway {
  /** ws://host:port/v1 */
  readonly url: string;
  readonly port: number;
  readonly config: GatewayConfig;
  readonly metrics: Metrics;
  readonly store: SessionStore;
  readonly state: GatewayState;
  /**
   * Empties a session's log through its single writer (PROTOCOL §10.5): after every write queued
   * before it, fencing its active generation; offsets continue after a `session.reset` event.
   */
  resetSession(session: string): Promise<ResetOutcome>;
  /**
   * Deletes a session through its single writer (PROTOCOL §10.6): after every write queued before
   * it; its producer and readers, on every gateway, get SESSION_DELETED; every key goes.
   */
  deleteSession(session: string): Promise<DeleteOutcome>;
  /** The admin API (protocol/ADMIN.md), for whichever listener serves admin traffic. */
  readonly admin: AdminApi;
  /** The admin listener (`adminPort`), to which more routes can be added; undefined without one. */
  readonly adminServer: AdminServer | undefined;
  /** The admin listener's port (adminPort 0 picks one). */
  readonly adminPort: number | undefined;
  /** Runtime toggles (toggles.ts): also changed through the admin API. */
  readonly toggles: Toggles;
  /** Graceful: stop accepting, make queued writes durable, close sockets with SHUTTING_DOWN. Idempotent. */
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const config = resolveConfig(options);
  const logger: Logger = config.logger ?? pino({ level: process.env['SPOOL_LOG_LEVEL'] ?? 'info' });
  // First, so an auth misconfiguration (two modes, an unreadable key) fails before a store opens.
  const authenticator = await createAuthenticator(config, logger);
  const ownsStore = config.store === undefined;
  const store = config.store ?? (await openConfiguredStore(config, logger));
  // OpenTelemetry export and spans when `spool serve` found OTEL_* configuration (otel.ts); else /metrics only.
  const observability = config.observability;
  const metrics = new Metrics(observability ? { readers: observability.metricReaders, resource: observability.resource, disabled: observability.disabled === true } : {});
  const tracing = observability?.tracing;
  const telemetry = tracing ? teeSink(config.telemetry ?? noopSink, tracing) : (config.telemetry ?? noopSink);
  // Disabled metrics (OTEL_SDK_DISABLED=true) meter no store call either: the code path is gone, not idle.
  const metered = metrics.disabled ? store : meteredStore(store, metrics, config.clock);
  const toggles = new Toggles(config, logger);
  // Each toggle is a metric, so dashboards show when it was on.
  metrics.gauge('spool_toggle_sync_append', '1 while every write is flushed and acked on its own (no batching)', () => (toggles.syncAppend ? 1 : 0));
  metrics.gauge('spool_toggle_read_only', '1 while new generations and appends are refused (maintenance / drain)', () => (toggles.readOnly ? 1 : 0));
  metrics.gauge('spool_toggle_degrade_watermark', 'Queued writes past which debug chunks are dropped at the door (0: never)', () => toggles.degradeWatermark);
  metrics.gauge('spool_toggle_max_reader_buffered_bytes', 'Bytes queued toward a reader past which it is paused (reader limit)', () => toggles.maxReaderBufferedBytes);
  metrics.gauge('spool_toggle_slow_reader_timeout_ms', 'How long a paused reader may take to drain before SLOW_CONSUMER (reader limit)', () => toggles.slowReaderTimeoutMs);
  metrics.gauge('spool_toggle_log_level', "The log level as pino numbers it (10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal, 100 silent)", () => logger.levels.values[toggles.logLevel] ?? SILENT_LEVEL);
  const registry = new ActorRegistry(tracing ? tracing.wrapStore(metered, storeSystem(config)) : metered, config, metrics, telemetry, logger, toggles);
  const connections = new Set<Connection>();
  let state: GatewayState = 'starting';
  // Per-identity write quotas (edge/quotas.ts): this process's accounts, by JWT sub (or connection / address).
  const quotas = new Quotas({
    defaults: {
      bytesPerMinute: config.quotaBytesPerMinute,
      criticalEventsPerMinute: config.quotaCriticalEventsPerMinute,
      criticalBytesPerSession: config.quotaCriticalBytesPerSession,
      criticalEventsPerSession: config.quotaCriticalEventsPerSession,
    },
    clock: config.clock,
    sessionTtlMs: config.sessionTtlMs,
  });
  metrics.gauge('spool_quota_accounts', 'Per-identity quota accounts remembered (JWT subjects and HTTP client addresses)', () => quotas.size);

  metrics.gauge('spool_sessions_active', 'Session actors loaded in this process', () => registry.size);
  metrics.gauge('spool_connections_active', 'Open client connections', () => connections.size);
  metrics.gauge('spool_persistence_queue_depth', 'Writes queued for the store, all sessions', () => registry.queueDepth());
  // RSS-based: what the process grew by since it started (before any session), per session
  // loaded; 0 with none. Includes everything sessions cost (heap, buffers, sockets' native state).
  const baselineRss = process.memoryUsage.rss();
  metrics.gauge(
    'spool_memory_bytes_per_session',
    'Resident memory (RSS) gained since the gateway started, divided by the session actors loaded',
    () => (registry.size ? Math.max(0, Math.round((process.memoryUsage.rss() - baselineRss) / registry.size)) : 0),
    'By',
  );
  metrics.gauge('spool_store_ready', '1 while the store answers the readiness probe, 0 while it does not', () => (storeReady ? 1 : 0));

  const healthz = (): HttpResponse => ({ status: 200, contentType: 'text/plain', body: 'ok\n' });
  const readyz = (): HttpResponse =>
    state === 'running' && storeReady
      ? { status: 200, contentType: 'text/plain', body: 'ready\n' }
      : { status: 503, contentType: 'text/plain', body: state === 'running' ? 'store unavailable\n' : `${state}\n` };
  const metricsText = async (): Promise<HttpResponse> => ({ status: 200, contentType: PROMETHEUS_CONTENT_TYPE, body: await metrics.render() });
  const http = async (path: string): Promise<HttpResponse> => {
    switch (path) {
      case '/metrics':
        // With an admin listener, /metrics is served there only (behind the admin credential).
        if (config.adminPort !== undefined) break;
        return metricsText();
      case '/healthz':
        return healthz();
      case '/readyz':
        return readyz();
    }
    return { status: 404, contentType: 'text/plain', body: 'not found\n' };
  };

  const transport = selectTransport(config.transport, logger);
  const edge = createEdge(config, logger, (code) => metrics.errorsSent.inc(1, { code }));
  // The Durable Streams door (PROTOCOL §16): HTTP under /v1/stream/, over the same session actors.
  const streams = config.streams ? new StreamsDoor({ registry, store: metered, config, logger, authenticator, metrics, quotas, addresses: edge.addresses }) : null;
  let server: TransportServer;
  try {
    server = await transport.listen({
      host: config.host,
      port: config.port,
      path: WS_PATH,
      // Frames between maxFrameBytes and this get a FRAME_TOO_LARGE answer and the socket stays
      // open; past it the transport drops the socket (it will not buffer arbitrary input).
      maxPayloadBytes: config.limits.maxFrameBytes * 4,
      idleTimeoutMs: config.heartbeatMs * 2,
      http,
      ...(streams ? { routes: [streams.route] } : {}),
      refused: (code) => metrics.errorsSent.inc(1, { code }),
      ...edge.listen,
      accept: (transportSocket) => {
        // Every frame in and out passes the edge's gate: a peer that stops reading stops being read.
        const socket = edge.gate(transportSocket);
        const connection = new Connection({
          id: randomUUID(),
          socket,
          config,
          registry,
          authenticator,
          metrics,
          ...(tracing ? { tracing } : {}),
          logger,
          edge: edge.guard,
          quotas,
          onClosed: (c) => {
            connections.delete(c);
            edge.guard.closed(c);
          },
        });
        socket.attach(connection);
        edge.guard.opened(connection);
        connections.add(connection);
        if (state !== 'running') connection.shutdown();
        return socket;
      },
    });
  } catch (error) {
    if (ownsStore) await store.close();
    await metrics.close();
    throw error;
  }
  const admin = new AdminApi({ store, registry, toggles, cleared: (session) => quotas.forgetSession(session) });
  // The admin listener (--admin-port): health, metrics and the admin API, off the public port.
  const adminServer = config.adminPort === undefined ? undefined : adminListener(config, logger, authenticator, edge.guard, edge.addresses, admin, { healthz, readyz, metricsText });
  let adminPort: number | undefined;
  try {
    adminPort = await adminServer?.listen();
  } catch (error) {
    await server.close();
    if (ownsStore) await store.close();
    await metrics.close();
    throw error;
  }

  // Readiness follows the store: a load balancer stops sending clients to a gateway whose
  // store is unreachable, and sends them again once it answers.
  let storeReady = true;
  const probe = setInterval(() => {
    store.ping().then(
      () => {
        if (!storeReady) logger.info('store reachable again: ready');
        storeReady = true;
      },
      (err: unknown) => {
        if (storeReady) logger.warn({ err: String(err) }, 'store unreachable: not ready');
        storeReady = false;
      },
    );
  }, config.readinessIntervalMs);
  probe.unref();

  const expirer = setInterval(() => {
    store.expire(config.clock()).catch((err: unknown) => logger.warn({ err: String(err) }, 'session expiry failed'));
  }, config.expireIntervalMs);
  expirer.unref();

  state = 'running';
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  logger.info(
    { port: server.port, host: config.host, transport: transport.name, store: ownsStore ? describeStore(config) : 'external', auth: authenticator.mode },
    'spool gateway listening',
  );

  let closing: Promise<void> | undefined;
  return {
    url: `${config.tlsCert !== undefined ? 'wss' : 'ws'}://${host}:${server.port}${WS_PATH}`,
    port: server.port,
    config,
    metrics,
    store,
    get state() {
      return state;
    },
    admin,
    adminServer,
    adminPort,
    toggles,
    resetSession(session) {
      return new Promise<ResetOutcome>((resolve, reject) => registry.with(session as SessionId, (actor) => actor.reset().then(resolve, reject), reject)).then((outcome) => {
        quotas.forgetSession(session as SessionId);
        return outcome;
      });
    },
    deleteSession(session) {
      return new Promise<DeleteOutcome>((resolve, reject) => registry.with(session as SessionId, (actor) => actor.delete().then(resolve, reject), reject)).then((outcome) => {
        quotas.forgetSession(session as SessionId);
        return outcome;
      });
    },
    close() {
      closing ??= (async () => {
        state = 'closing';
        clearInterval(expirer);
        clearInterval(probe);
        await server.stopAccepting();
        // Live HTTP reads end (clients come back from their offsets); new requests get 503.
        streams?.close();
        // Refuse new frames first, so nothing arrives after the drain below; acks of what is
        // queued still reach producers; then every client is told to reconnect elsewhere/later.
        for (const connection of connections) connection.beginShutdown();
        await registry.close(config.shutdownTimeoutMs);
        for (const connection of connections) connection.shutdown();
        await server.close();
        await adminServer?.close();
        if (ownsStore) await store.close();
        await metrics.close();
        state = 'closed';
        logger.info('spool gateway closed');
      })();
      return closing;
    },
  };
}

/**
 * The admin listener: /healthz and /readyz open (probes), /metrics and the admin API under /admin/
 * behind the admin credential (admin-server.ts), refused credentials throttled per address.
 */
function adminListener(
  config: GatewayConfig,
  logger: Logger,
  authenticator: Authenticator,
  guard: EdgeGuard,
  addresses: ClientAddresses,
  admin: AdminApi,
  pages: { healthz(): HttpResponse; readyz(): HttpResponse; metricsText(): Promise<HttpResponse> },
): AdminServer {
  const text = (r: HttpResponse): AdminRouteReply => ({ status: r.status, text: r.body, contentType: r.contentType });
  return new AdminServer({
    host: config.adminHost,
    port: config.adminPort ?? 0,
    authorize: adminAuthorizer(config.adminToken, authenticator),
    failures: guard,
    clientAddress: (peer, forwardedFor) => addresses.resolve(peer, forwardedFor),
    ...(config.adminTlsCert !== undefined && config.adminTlsKey !== undefined ? { tls: { certFile: config.adminTlsCert, keyFile: config.adminTlsKey } } : {}),
    logger,
    headersTimeoutMs: config.httpHeadersTimeoutMs,
    requestTimeoutMs: config.httpRequestTimeoutMs,
  })
    .route('GET', '/healthz', () => text(pages.healthz()), { open: true })
    .route('GET', '/readyz', () => text(pages.readyz()), { open: true })
    .route('GET', '/metrics', async () => text(await pages.metricsText()))
    .route('*', '/admin/*', (request) => admin.handle(request));
}

/** The log level gauge's value for `silent`, which pino does not number (its levels are 10 trace … 60 fatal). */
const SILENT_LEVEL = 100;

/** The store the configuration names: Redis Cluster, Redis, or LMDB under `data` (the default). */
async function openConfiguredStore(config: GatewayConfig, logger: Logger): Promise<SessionStore> {
  const options = { retention: config.retention, sessionTtlMs: config.sessionTtlMs, dedupeWindowMs: config.dedupeWindowMs };
  const onConnectionError = (err: unknown, role: string): void => logger.warn({ err: String(err), role }, 'redis connection error');
  if (config.redisCluster || config.redis) {
    // Loaded only for Redis: ioredis and its dependencies cost an LMDB gateway ~6 MB of RSS for nothing.
    const { openRedisStore } = await import('../store/redis');
    if (config.redisCluster) return openRedisStore({ cluster: config.redisCluster }, { ...options, onConnectionError });
    return openRedisStore({ url: config.redis as string }, { ...options, onConnectionError });
  }
  return openLmdbStore({ path: config.data, durability: config.durability, ...options });
}

/** The store's db.system.name for spans. */
function storeSystem(config: GatewayConfig): string {
  if (config.store) return 'external';
  return config.redis || config.redisCluster ? 'redis' : 'lmdb';
}

function describeStore(config: GatewayConfig): string {
  if (config.redisCluster) return `redis cluster ${config.redisCluster.join(',')}`;
  if (config.redis) return `redis ${config.redis.replace(/\/\/[^@]*@/, '//***@')}`;
  return `lmdb ${config.data} (durability ${config.durability})`;
}
