/**
 * Gateway configuration: every limit is an option with a documented default (README lists them).
 */
import type { Logger } from 'pino';
import { DEFAULT_LIMITS, type ProtocolLimits } from '../protocol/limits';
import type { Credit } from '../protocol/types';
import { DEFAULT_STORE_OPTIONS, type Retention, type SessionStore } from '../store/types';
import type { Observability, TelemetrySink } from './telemetry';
import { parseTransportName, type Transport, type TransportName } from './transport';

export interface GatewayConfig {
  /** @default '127.0.0.1' */
  readonly host: string;
  /** 0 picks a free port. @default 8080 */
  readonly port: number;
  /** Directory of the embedded LMDB store. @default './data' */
  readonly data: string;
  /**
   * When the LMDB store acknowledges a write. 'commit': committed and handed to the OS (survives
   * a crash of spool, `kill -9`, not a power loss or kernel crash). 'fsync': also flushed to disk
   * (survives power loss), at the cost of waiting for a disk flush per commit batch. @default 'commit'
   */
  readonly durability: Durability;
  /** A store to use instead of opening one from `redis`/`redisCluster`/`data` (tests, embedding). */
  readonly store?: SessionStore;
  /** Redis URL (`redis://host:port`); when set, sessions live in Redis instead of LMDB. @default unset */
  readonly redis?: string;
  /** Redis Cluster seed nodes (`host:port`); when set, sessions live in the cluster. @default unset */
  readonly redisCluster?: readonly string[];
  /** How often the store is pinged for /readyz. @default 1000 */
  readonly readinessIntervalMs: number;
  /**
   * 'ws' (the `ws` package), 'uws' (uWebSockets.js; falls back to ws with a warning when it
   * cannot load here) or a Transport object. @default 'ws'
   */
  readonly transport: Transport | TransportName;
  /**
   * Shared-token mode: `hello.token` must equal it (compared in constant time), and whoever holds
   * it may do anything. For single-user setups. At most one of authToken, jwtSecret, jwtPublicKey
   * and jwks may be set (README "Security"). @default unset
   */
  readonly authToken?: string;
  /** JWT mode, HS256: the shared secret (at least 32 bytes) tokens are signed with. @default unset */
  readonly jwtSecret?: string;
  /**
   * JWT mode, one public key: a PEM file path (or the PEM text itself). Tokens may use the key's
   * own algorithms only (RSA: RS/PS 256-512, EC: the curve's ES*, Ed25519: EdDSA). @default unset
   */
  readonly jwtPublicKey?: string;
  /**
   * JWT mode, a key set rotated by `kid`: a JWKS file path, or an http(s) URL fetched and cached
   * (reloaded when a token names an unknown `kid`, at most once per jwksCooldownMs, and every
   * 10 min). @default unset
   */
  readonly jwks?: string;
  /** JWT mode: when set, a token's `iss` must equal it. @default unset (not checked) */
  readonly jwtIssuer?: string;
  /** JWT mode: when set, a token's `aud` must contain it. @default unset (not checked) */
  readonly jwtAudience?: string;
  /** After the key set was (re)loaded, a token with an unknown `kid` reloads it again only after this long. @default 30000 */
  readonly jwksCooldownMs: number;
  readonly limits: ProtocolLimits;
  /** Per-generation unacked chunks/bytes a producer may have in flight. @default 1024 frames, 1 MiB */
  readonly credit: Credit;
  /** A connection that sends no hello within this long is closed with HANDSHAKE_REQUIRED. @default 10000 */
  readonly handshakeTimeoutMs: number;
  // ---------------------------------------------------------------- the edge (README "Security")
  /**
   * WebSocket connections in total. Past it, a new upgrade closes the oldest connection that has not
   * sent hello yet (HANDSHAKE_REQUIRED) or, with none, is refused with HTTP 503 CONNECTION_LIMIT.
   * Lowered at start to fit the process's file descriptor limit (minus reservedSockets and 256).
   * @default 10000
   */
  readonly maxConnections: number;
  /** WebSocket connections from one remote address; past it HTTP 429 ADDRESS_LIMIT. 0 = no limit (behind a proxy). @default 256 */
  readonly maxConnectionsPerAddress: number;
  /** TCP sockets kept beyond maxConnections for plain HTTP (/healthz, /readyz, /metrics) on the WebSocket port (ws transport). @default 64 */
  readonly reservedSockets: number;
  /**
   * Origins whose pages may open a WebSocket (exact `https://app.example.com`, `https://*.example.com`,
   * `null`, `*`); an upgrade with another `Origin` gets HTTP 403 ORIGIN_NOT_ALLOWED. Requests
   * without an Origin (non-browser clients) are not affected. @default unset (any origin)
   */
  readonly allowedOrigins?: readonly string[];
  /** A request's line and headers (an upgrade's included) must arrive within this long; else 408 (ws transport). @default 10000 */
  readonly httpHeadersTimeoutMs: number;
  /** A whole HTTP request (with its body) must arrive within this long; else 408 (ws transport). @default 60000 */
  readonly httpRequestTimeoutMs: number;
  /** Frames a second per connection (a token bucket holding one second's worth); past it reading pauses, then RATE_LIMITED. 0 = no limit. @default 2000 */
  readonly maxFramesPerSecond: number;
  /**
   * Past this many bytes queued toward a connection's peer, the gateway stops reading from it until
   * they drain to half; one that does not drain within connectionDrainTimeoutMs is cut (SLOW_CONSUMER).
   * Keep it above maxReaderBufferedBytes. @default 4 MiB
   */
  readonly maxConnectionBufferedBytes: number;
  /** @default 10000 */
  readonly connectionDrainTimeoutMs: number;
  /** Sessions one connection may hold a subscription or an open generation in; past it SESSION_LIMIT. @default 1024 */
  readonly maxSessionsPerConnection: number;
  /** Generations opened on one connection and not finished on it; past it `open` gets GENERATION_LIMIT. @default 64 */
  readonly maxGenerationsPerConnection: number;
  /** Subscriptions per connection; past it `subscribe` gets SUBSCRIPTION_LIMIT. @default 1024 */
  readonly maxSubscriptionsPerConnection: number;
  /** Refused tokens (hello or refresh) one remote address may present in a burst; past it hellos get AUTH_THROTTLED unchecked. @default 20 */
  readonly authFailureBurst: number;
  /** Refused tokens per second an address recovers. @default 1 */
  readonly authFailureRate: number;
  /**
   * Proxies whose X-Forwarded-For is believed (addresses or CIDR blocks, IPv4 or IPv6, e.g.
   * `10.0.0.0/8,::1`). When a request's peer is one of them, the client's address is the rightmost
   * X-Forwarded-For entry that is not itself a trusted proxy, and the per-address caps, the
   * failed-authentication throttle and HTTP quotas count that address. @default unset (the peer's address is the client's)
   */
  readonly trustProxy?: readonly string[];
  // ---------------------------------------------------------------- per-identity quotas (edge/quotas.ts)
  /**
   * Data bytes an identity may write per minute, all sessions (a JWT's spool.quota.bytesPerMinute
   * overrides it; open and shared-token gateways count per connection). Past it QUOTA_EXCEEDED
   * (retryable, details.retryAfterMs). 0 = no limit. @default 256 MiB
   */
  readonly quotaBytesPerMinute: number;
  /** Critical (priority 3) events an identity may write per minute, all sessions; an open counts 2. 0 = no limit. @default 6000 */
  readonly quotaCriticalEventsPerMinute: number;
  /**
   * Critical data bytes one identity may add to one session; past it SESSION_QUOTA_EXCEEDED (not
   * retryable). Keep it under retention.maxBytes × criticalFactor (128 MiB by default), so no single
   * identity can fill a session's critical room. 0 = no limit. @default 32 MiB
   */
  readonly quotaCriticalBytesPerSession: number;
  /** Critical events one identity may add to one session (keep it under retention.maxEvents × criticalFactor). 0 = no limit. @default 50000 */
  readonly quotaCriticalEventsPerSession: number;
  /** Serve wss:// (and https) with this PEM certificate chain file; needs tlsKey. @default unset */
  readonly tlsCert?: string;
  /** The PEM private key file of tlsCert. @default unset */
  readonly tlsKey?: string;
  /**
   * A second, plain-HTTP listener for /metrics, /healthz, /readyz (and the admin API); when set,
   * /metrics is served there only. @default unset
   */
  readonly adminPort?: number;
  /** @default '127.0.0.1' */
  readonly adminHost: string;
  /** Serve the admin listener over https with this PEM certificate chain file; needs adminTlsKey. @default unset (plain http) */
  readonly adminTlsCert?: string;
  /** The PEM private key file of adminTlsCert. @default unset */
  readonly adminTlsKey?: string;
  /**
   * The bearer token /metrics (and admin routes) on the admin port require. Without it: a JWT
   * whose spool.admin is true (JWT mode), the shared token (shared-token mode), nothing (open mode).
   * @default unset
   */
  readonly adminToken?: string;
  /** Transport ping interval; a silent socket is dropped after two. @default 15000 */
  readonly heartbeatMs: number;
  /** A generation with no frame for this long ends with `gen.end timeout`. @default 30000 */
  readonly generationIdleTimeoutMs: number;
  /** An actor with no work, readers or open generation is evicted after this long. @default 60000 */
  readonly sessionIdleMs: number;
  /** Most events per store append. @default 512 */
  readonly maxBatchEvents: number;
  /** Most data bytes per store append. @default 1 MiB */
  readonly maxBatchBytes: number;
  /** Wait this long for more writes, only when writes are already queued behind a flush. @default 0 */
  readonly lingerMs: number;
  /** Retry a failing store for this long before answering STORE_UNAVAILABLE. @default 10000 */
  readonly storeRetryBudgetMs: number;
  /** After the budget is spent, fail writes fast for this long before probing again. @default 1000 */
  readonly storeProbeIntervalMs: number;
  /** Recent events kept in memory per session for readers. @default 1024 events, 1 MiB */
  readonly hotBufferEvents: number;
  readonly hotBufferBytes: number;
  /** Past this many bytes buffered toward a reader, live pushes stop until it drains. @default 1 MiB */
  readonly maxReaderBufferedBytes: number;
  /**
   * A reader paused past maxReaderBufferedBytes whose socket does not drain within this long is
   * closed with SLOW_CONSUMER (retryable; it resubscribes from its offset). 0 = never. Keep it
   * under the heartbeat's drop (2 × heartbeatMs): a reader that stopped reading answers no pings
   * either, and would otherwise be dropped without learning why. @default 10000
   */
  readonly slowReaderTimeoutMs: number;
  /**
   * Past this many writes of a session waiting for the store, new priority-0 (debug) chunks are
   * dropped at the door, counted and reported in the ack; nothing of priority >= 1 ever is.
   * 0 disables. @default 512
   */
  readonly degradeWatermark: number;
  /** Writes one session may have waiting for the store; appends past it get RATE_LIMITED. @default 16384 */
  readonly maxQueuedWrites: number;
  /** Events per store read while a reader catches up. @default 512 */
  readonly readPageEvents: number;
  readonly retention: Retention;
  /** @default 7 days */
  readonly sessionTtlMs: number;
  /** @default 24 h (never under 2 min) */
  readonly dedupeWindowMs: number;
  /** How often expired sessions are removed. @default 60000 */
  readonly expireIntervalMs: number;
  /** How long close() waits for queued writes to become durable. @default 10000 */
  readonly shutdownTimeoutMs: number;
  /** Serve the Durable Streams protocol under /v1/stream/ on the gateway's port (PROTOCOL §16). @default true */
  readonly streams: boolean;
  /** Durable Streams: a long-poll at the tail answers 204 after waiting this long for data. @default 30000 */
  readonly streamsLongPollMs: number;
  /** Durable Streams: largest PUT/POST body; past it, 413. @default 8 MiB */
  readonly streamsMaxBodyBytes: number;
  /** Durable Streams: most data bytes in one catch-up or long-poll answer (at least one write). @default 1 MiB */
  readonly streamsMaxReadBytes: number;
  /** Durable Streams: an SSE response ends after this long; the client reconnects from its offset (protocol §10.2). @default 60000 */
  readonly streamsSseMaxMs: number;
  readonly telemetry?: TelemetrySink;
  /** OpenTelemetry export and tracing (otel.ts, from the OTEL_* environment of `spool serve`). @default unset: /metrics only */
  readonly observability?: Observability;
  readonly logger?: Logger;
  /** Milliseconds since the epoch. @default Date.now */
  readonly clock: () => number;
}

export type Durability = 'commit' | 'fsync';

/** Reads a durability setting given as `source` (a flag, an environment variable); throws on anything else. */
export function parseDurability(raw: string, source: string): Durability {
  if (raw === 'commit' || raw === 'fsync') return raw;
  throw new Error(`${source}=${raw} is not a durability; use commit or fsync`);
}

export const DEFAULT_CONFIG: GatewayConfig = {
  host: '127.0.0.1',
  port: 8080,
  data: './data',
  durability: 'commit',
  transport: 'ws',
  readinessIntervalMs: 1_000,
  limits: DEFAULT_LIMITS,
  credit: { frames: 1024, bytes: 1024 * 1024 },
  jwksCooldownMs: 30_000,
  handshakeTimeoutMs: 10_000,
  maxConnections: 10_000,
  maxConnectionsPerAddress: 256,
  reservedSockets: 64,
  httpHeadersTimeoutMs: 10_000,
  httpRequestTimeoutMs: 60_000,
  maxFramesPerSecond: 2_000,
  maxConnectionBufferedBytes: 4 * 1024 * 1024,
  connectionDrainTimeoutMs: 10_000,
  maxSessionsPerConnection: 1024,
  maxGenerationsPerConnection: 64,
  maxSubscriptionsPerConnection: 1024,
  authFailureBurst: 20,
  authFailureRate: 1,
  quotaBytesPerMinute: 256 * 1024 * 1024,
  quotaCriticalEventsPerMinute: 6_000,
  quotaCriticalBytesPerSession: 32 * 1024 * 1024,
  quotaCriticalEventsPerSession: 50_000,
  adminHost: '127.0.0.1',
  heartbeatMs: 15_000,
  generationIdleTimeoutMs: 30_000,
  sessionIdleMs: 60_000,
  maxBatchEvents: 512,
  maxBatchBytes: 1024 * 1024,
  lingerMs: 0,
  storeRetryBudgetMs: 10_000,
  storeProbeIntervalMs: 1_000,
  hotBufferEvents: 1024,
  hotBufferBytes: 1024 * 1024,
  maxReaderBufferedBytes: 1024 * 1024,
  slowReaderTimeoutMs: 10_000,
  degradeWatermark: 512,
  maxQueuedWrites: 16_384,
  readPageEvents: 512,
  retention: DEFAULT_STORE_OPTIONS.retention,
  sessionTtlMs: DEFAULT_STORE_OPTIONS.sessionTtlMs,
  dedupeWindowMs: DEFAULT_STORE_OPTIONS.dedupeWindowMs,
  expireIntervalMs: 60_000,
  shutdownTimeoutMs: 10_000,
  streams: true,
  streamsLongPollMs: 30_000,
  streamsMaxBodyBytes: 8 * 1024 * 1024,
  streamsMaxReadBytes: 1024 * 1024,
  streamsSseMaxMs: 60_000,
  clock: Date.now,
};

export type GatewayOptions = Partial<Omit<GatewayConfig, 'limits' | 'retention'>> & {
  readonly limits?: Partial<ProtocolLimits>;
  readonly retention?: Partial<Retention>;
};

export function resolveConfig(options: GatewayOptions): GatewayConfig {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  return {
    ...DEFAULT_CONFIG,
    ...defined,
    limits: { ...DEFAULT_CONFIG.limits, ...options.limits },
    retention: { ...DEFAULT_CONFIG.retention, ...options.retention },
  } as GatewayConfig;
}

/** Reads SPOOL_* environment variables (the CLI's flags win over them). */
export function configFromEnv(env: NodeJS.ProcessEnv): GatewayOptions {
  const num = (name: string): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error(`${name}=${raw} is not a number`);
    return value;
  };
  const options: Record<string, unknown> = {
    host: env['SPOOL_HOST'] || undefined,
    port: num('SPOOL_PORT'),
    data: env['SPOOL_DATA'] || undefined,
    durability: env['SPOOL_DURABILITY'] ? parseDurability(env['SPOOL_DURABILITY'], 'SPOOL_DURABILITY') : undefined,
    redis: env['SPOOL_REDIS_URL'] || undefined,
    redisCluster: env['SPOOL_REDIS_CLUSTER'] ? parseNodeList(env['SPOOL_REDIS_CLUSTER'], 'SPOOL_REDIS_CLUSTER') : undefined,
    transport: env['SPOOL_TRANSPORT'] ? parseTransportName(env['SPOOL_TRANSPORT'], 'SPOOL_TRANSPORT') : undefined,
    authToken: env['SPOOL_AUTH_TOKEN'] || undefined,
    jwtSecret: env['SPOOL_JWT_SECRET'] || undefined,
    jwtPublicKey: env['SPOOL_JWT_PUBLIC_KEY'] || undefined,
    jwks: env['SPOOL_JWKS'] || undefined,
    jwtIssuer: env['SPOOL_JWT_ISSUER'] || undefined,
    jwtAudience: env['SPOOL_JWT_AUDIENCE'] || undefined,
    generationIdleTimeoutMs: num('SPOOL_GENERATION_IDLE_TIMEOUT_MS'),
    sessionTtlMs: num('SPOOL_SESSION_TTL_MS'),
    dedupeWindowMs: num('SPOOL_DEDUPE_WINDOW_MS'),
    heartbeatMs: num('SPOOL_HEARTBEAT_MS'),
    slowReaderTimeoutMs: num('SPOOL_SLOW_READER_TIMEOUT_MS'),
    maxReaderBufferedBytes: num('SPOOL_MAX_READER_BUFFERED_BYTES'),
    degradeWatermark: num('SPOOL_DEGRADE_WATERMARK'),
    maxConnections: num('SPOOL_MAX_CONNECTIONS'),
    maxConnectionsPerAddress: num('SPOOL_MAX_CONNECTIONS_PER_ADDRESS'),
    reservedSockets: num('SPOOL_RESERVED_SOCKETS'),
    allowedOrigins: env['SPOOL_ALLOWED_ORIGINS'] ? parseList(env['SPOOL_ALLOWED_ORIGINS']) : undefined,
    httpHeadersTimeoutMs: num('SPOOL_HTTP_HEADERS_TIMEOUT_MS'),
    httpRequestTimeoutMs: num('SPOOL_HTTP_REQUEST_TIMEOUT_MS'),
    maxFramesPerSecond: num('SPOOL_MAX_FRAMES_PER_SECOND'),
    maxConnectionBufferedBytes: num('SPOOL_MAX_CONNECTION_BUFFERED_BYTES'),
    connectionDrainTimeoutMs: num('SPOOL_CONNECTION_DRAIN_TIMEOUT_MS'),
    maxSessionsPerConnection: num('SPOOL_MAX_SESSIONS_PER_CONNECTION'),
    maxGenerationsPerConnection: num('SPOOL_MAX_GENERATIONS_PER_CONNECTION'),
    maxSubscriptionsPerConnection: num('SPOOL_MAX_SUBSCRIPTIONS_PER_CONNECTION'),
    authFailureBurst: num('SPOOL_AUTH_FAILURE_BURST'),
    authFailureRate: num('SPOOL_AUTH_FAILURE_RATE'),
    trustProxy: env['SPOOL_TRUST_PROXY'] ? parseList(env['SPOOL_TRUST_PROXY']) : undefined,
    quotaBytesPerMinute: num('SPOOL_QUOTA_BYTES_PER_MINUTE'),
    quotaCriticalEventsPerMinute: num('SPOOL_QUOTA_CRITICAL_EVENTS_PER_MINUTE'),
    quotaCriticalBytesPerSession: num('SPOOL_QUOTA_CRITICAL_BYTES_PER_SESSION'),
    quotaCriticalEventsPerSession: num('SPOOL_QUOTA_CRITICAL_EVENTS_PER_SESSION'),
    tlsCert: env['SPOOL_TLS_CERT'] || undefined,
    tlsKey: env['SPOOL_TLS_KEY'] || undefined,
    adminPort: num('SPOOL_ADMIN_PORT'),
    adminHost: env['SPOOL_ADMIN_HOST'] || undefined,
    adminToken: env['SPOOL_ADMIN_TOKEN'] || undefined,
    adminTlsCert: env['SPOOL_ADMIN_TLS_CERT'] || undefined,
    adminTlsKey: env['SPOOL_ADMIN_TLS_KEY'] || undefined,
    streams: env['SPOOL_STREAMS'] ? parseSwitch(env['SPOOL_STREAMS'], 'SPOOL_STREAMS') : undefined,
    streamsLongPollMs: num('SPOOL_STREAMS_LONG_POLL_MS'),
  };
  const maxEvents = num('SPOOL_RETENTION_EVENTS');
  const maxBytes = num('SPOOL_RETENTION_BYTES');
  if (maxEvents !== undefined || maxBytes !== undefined) {
    options['retention'] = Object.fromEntries(
      Object.entries({ maxEvents, maxBytes }).filter(([, v]) => v !== undefined),
    );
  }
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as GatewayOptions;
}

/** Reads an on/off setting given as `source`: 1/0, true/false, on/off. */
export function parseSwitch(raw: string, source: string): boolean {
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'on', 'yes'].includes(value)) return true;
  if (['0', 'false', 'off', 'no'].includes(value)) return false;
  throw new Error(`${source}=${raw} is not on or off; use 1 or 0`);
}

/** Parses `host:port,host:port` (cluster seed nodes). */
export function parseNodeList(raw: string, source: string): string[] {
  const nodes = raw
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n.length > 0);
  for (const node of nodes) {
    if (!/^[^:\s]+:\d{1,5}$/.test(node)) throw new Error(`${source}: '${node}' is not host:port`);
  }
  if (nodes.length === 0) throw new Error(`${source}: no nodes given`);
  return nodes;
}

/** Parses a comma-separated list (allowed origins), dropping empty entries. */
export function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
}
