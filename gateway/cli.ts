#!/usr/bin/env node
/**
 * The `spool` command. `spool serve [--host H] [--port P] [--data DIR] [--transport ws|uws]`;
 * flags win over the SPOOL_* environment variables, which win over the defaults. The operator's
 * commands are cli-admin.ts's, `bench` and `chaos` (from a checkout) cli-checkout.ts's.
 *
 * Exit codes, every command: 0 done; 1 failed (refused by the gateway, a failed run); 2 usage
 * (a bad flag or value, a configuration the schema refuses, not a checkout); 3 the gateway could
 * not be reached.
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ADMIN_COMMANDS, runAdminCommand } from './cli-admin';
import { CHECKOUT_COMMANDS, runCheckoutCommand } from './cli-checkout';
import { ConfigError, readConfigFile, redacted, validateOptions, type ConfigFile } from './config-file';
import { configFromEnv, resolveConfig, type GatewayOptions } from './config';
import { startGateway } from './gateway';
import { parseDurability, parseList, parseNodeList } from './config';
import { DISABLED_OBSERVABILITY, otelConfigured, otelDisabled, type Observability } from './telemetry';
import { parseTransportName } from './transport';

const USAGE = `usage: spool serve [options]                         run the gateway (options below)
       spool config print|check [--config FILE] [options]   the effective configuration / validate it
       spool sessions | inspect | tail | reset | delete | end-generation | toggles ...
                                                       operate a running gateway through its admin API
                                                       (spool <command> --help; protocol/ADMIN.md)
       spool bench | chaos [options]                   from a checkout: the benchmark, the chaos suite
                                                       (spool bench --help, spool chaos --help)
every command takes --help and --json (serve logs JSON lines; config print is JSON; config check
--json answers {"ok", "error"?}); exit codes: 0 done, 1 failed, 2 usage, 3 gateway unreachable

spool serve [--config spool.yaml|spool.json] [--host 127.0.0.1] [--port 8080] [--data ./data] [--durability commit|fsync]
                   [--transport ws|uws] [--redis redis://host:port | --redis-cluster host:port,host:port]
                   [--auth-token TOKEN | --jwt-secret SECRET | --jwt-public-key FILE | --jwks FILE|URL]
                   [--jwt-issuer ISS] [--jwt-audience AUD]

auth (one mode at most; none: anyone may do anything):
  --auth-token TOKEN     shared token: hello.token must equal it; whoever holds it may do anything
  --jwt-secret SECRET    JWT signed with HS256 and this secret (at least 32 bytes)
  --jwt-public-key FILE  JWT signed with this PEM public key (RSA: RS/PS*, EC: ES*, Ed25519: EdDSA)
  --jwks FILE|URL        JWT signed with a key of this JWKS, selected by kid (a URL is fetched and cached)
  --jwt-issuer ISS       JWT: iss must equal ISS
  --jwt-audience AUD     JWT: aud must contain AUD
  A JWT needs sub, exp and the spool claim, e.g.
    {"sub":"user-42","exp":1767225600,"spool":{"read":["user:42:*"],"write":["user:42:*"],"takeover":[],"admin":false}}
  (entries: a session id, or a prefix ending in *). Frames outside it are refused with FORBIDDEN;
  at exp the connection is closed with TOKEN_EXPIRED (4021) unless the client sent refresh.

environment: SPOOL_HOST, SPOOL_PORT, SPOOL_DATA, SPOOL_DURABILITY, SPOOL_TRANSPORT, SPOOL_REDIS_URL, SPOOL_REDIS_CLUSTER,
             SPOOL_AUTH_TOKEN, SPOOL_JWT_SECRET, SPOOL_JWT_PUBLIC_KEY, SPOOL_JWKS, SPOOL_JWT_ISSUER, SPOOL_JWT_AUDIENCE,
             SPOOL_GENERATION_IDLE_TIMEOUT_MS,
             SPOOL_SESSION_TTL_MS, SPOOL_DEDUPE_WINDOW_MS, SPOOL_HEARTBEAT_MS,
             SPOOL_SLOW_READER_TIMEOUT_MS, SPOOL_MAX_READER_BUFFERED_BYTES, SPOOL_DEGRADE_WATERMARK,
             SPOOL_RETENTION_EVENTS, SPOOL_RETENTION_BYTES, SPOOL_LOG_LEVEL
opentelemetry (README "Observability"; nothing is started without them):
             OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf | http/json | grpc),
             OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER,
             OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_SCHEDULE_DELAY, OTEL_METRIC_EXPORT_INTERVAL, OTEL_SDK_DISABLED

the edge (README "Security"; each flag also an environment variable: --max-connections is SPOOL_MAX_CONNECTIONS, ...):
  --tls-cert FILE --tls-key FILE       serve wss:// (PEM files)
  --admin-port P [--admin-host H] [--admin-token T]
                                       /metrics, /healthz, /readyz and the admin API on their own listener
                                       (then /metrics leaves the public port)
  --allowed-origins O,O                Origins whose pages may connect (https://app.example, https://*.example, null, *)
  --max-connections N (10000)          --max-connections-per-address N (256; 0: no limit)   --reserved-sockets N (64)
  --max-frames-per-second N (2000)     --max-connection-buffered-bytes N (4 MiB)   --connection-drain-timeout-ms MS (10000)
  --max-sessions-per-connection N (1024)   --max-generations-per-connection N (64)   --max-subscriptions-per-connection N (1024)
  --http-headers-timeout-ms MS (10000)  --http-request-timeout-ms MS (60000)   --auth-failure-burst N (20)   --auth-failure-rate N/s (1)
  --trust-proxy CIDR,CIDR              proxies whose X-Forwarded-For names the client address (10.0.0.0/8,::1); unset: none
  --admin-tls-cert FILE --admin-tls-key FILE   serve the admin listener over https (PEM files)

per-identity quotas (README "Security"; per JWT sub, else per connection / HTTP client address; 0: no limit;
a JWT's spool.quota {bytesPerMinute, criticalEventsPerMinute, criticalBytesPerSession, criticalEventsPerSession} overrides):
  --quota-bytes-per-minute N (256 MiB)             --quota-critical-events-per-minute N (6000)
  --quota-critical-bytes-per-session N (32 MiB)    --quota-critical-events-per-session N (50000)`;

/** Flags of the edge (README "Security"): flag -> option. Each also reads from SPOOL_<OPTION> (config.ts). */
const EDGE_FLAGS: Readonly<Record<string, { readonly option: string; readonly list?: true; readonly text?: true }>> = {
  'tls-cert': { option: 'tlsCert', text: true },
  'tls-key': { option: 'tlsKey', text: true },
  'admin-port': { option: 'adminPort' },
  'admin-host': { option: 'adminHost', text: true },
  'admin-token': { option: 'adminToken', text: true },
  'allowed-origins': { option: 'allowedOrigins', list: true },
  'max-connections': { option: 'maxConnections' },
  'max-connections-per-address': { option: 'maxConnectionsPerAddress' },
  'reserved-sockets': { option: 'reservedSockets' },
  'max-frames-per-second': { option: 'maxFramesPerSecond' },
  'max-connection-buffered-bytes': { option: 'maxConnectionBufferedBytes' },
  'connection-drain-timeout-ms': { option: 'connectionDrainTimeoutMs' },
  'max-sessions-per-connection': { option: 'maxSessionsPerConnection' },
  'max-generations-per-connection': { option: 'maxGenerationsPerConnection' },
  'max-subscriptions-per-connection': { option: 'maxSubscriptionsPerConnection' },
  'http-headers-timeout-ms': { option: 'httpHeadersTimeoutMs' },
  'http-request-timeout-ms': { option: 'httpRequestTimeoutMs' },
  'auth-failure-burst': { option: 'authFailureBurst' },
  'auth-failure-rate': { option: 'authFailureRate' },
  'trust-proxy': { option: 'trustProxy', list: true },
  'admin-tls-cert': { option: 'adminTlsCert', text: true },
  'admin-tls-key': { option: 'adminTlsKey', text: true },
  'quota-bytes-per-minute': { option: 'quotaBytesPerMinute' },
  'quota-critical-events-per-minute': { option: 'quotaCriticalEventsPerMinute' },
  'quota-critical-bytes-per-session': { option: 'quotaCriticalBytesPerSession' },
  'quota-critical-events-per-session': { option: 'quotaCriticalEventsPerSession' },
};

/** The flags of `spool serve` and `spool config`. */
const SERVE_OPTIONS = {
  config: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  data: { type: 'string' },
  durability: { type: 'string' },
  'auth-token': { type: 'string' },
  'jwt-secret': { type: 'string' },
  'jwt-public-key': { type: 'string' },
  jwks: { type: 'string' },
  'jwt-issuer': { type: 'string' },
  'jwt-audience': { type: 'string' },
  transport: { type: 'string' },
  redis: { type: 'string' },
  'redis-cluster': { type: 'string' },
  ...Object.fromEntries(Object.keys(EDGE_FLAGS).map((flag) => [flag, { type: 'string' as const }])),
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
} as const;

async function main(argv: string[]): Promise<void> {
  if (ADMIN_COMMANDS.has(argv[0] ?? '')) {
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.exitCode = await runAdminCommand(argv, {
      out: (text) => void process.stdout.write(text),
      err: (text) => void process.stderr.write(text),
      env: process.env,
      signal: stop.signal,
    });
    return;
  }
  if (CHECKOUT_COMMANDS.has(argv[0] ?? '')) {
    process.exitCode = await runCheckoutCommand(argv, { out: (text) => void process.stdout.write(text), err: (text) => void process.stderr.write(text) });
    return;
  }
  try {
    await serveOrConfig(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`spool: ${error.message}\n${USAGE.split('\n')[0]}\n`);
    process.exitCode = 2;
  }
}

/** A flag or value the command line got wrong: exit code 2. */
class UsageError extends Error {}

/** `spool serve` and `spool config print|check`. */
async function serveOrConfig(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: SERVE_OPTIONS });
  } catch (error) {
    // Unknown flags, a flag without its value.
    throw new UsageError((error as Error).message);
  }
  const { positionals, values } = parsed;
  const command = positionals[0];
  const configCommand = command === 'config' && (positionals[1] === 'print' || positionals[1] === 'check');
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (command !== 'serve' && !configCommand) {
    process.stderr.write(`${command === undefined ? 'spool: a command is needed' : `spool: unknown command ${[command, ...positionals.slice(1, command === 'config' ? 2 : 1)].join(' ')}`}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  // `config check --json`: the verdict as JSON on stdout too (the message stays on stderr).
  const refuse = (message: string): void => {
    process.stderr.write(`spool: ${message}\n`);
    if (values.json && command === 'config') process.stdout.write(`${JSON.stringify({ ok: false, error: message })}\n`);
    process.exitCode = 2;
  };
  // flags > environment > file > defaults; every source checked by one schema (config-file.ts).
  let file: ConfigFile | undefined;
  let options: Record<string, unknown>;
  try {
    file = values.config === undefined ? undefined : readConfigFile(values.config);
    const env = validateOptions(configFromEnv(process.env) as Record<string, unknown>, 'environment', envName);
    options = { ...file?.options, ...env, ...(file?.options.retention || env.retention ? { retention: { ...file?.options.retention, ...env.retention } } : {}) };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    refuse(error.message);
    return;
  }
  try {
    applyFlags(values, options);
  } catch (error) {
    // A flag's value that cannot be read (a port, a number, a transport, a durability): usage.
    throw new UsageError((error as Error).message);
  }
  try {
    validateOptions(options, 'options');
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    refuse(error.message);
    return;
  }
  if (configCommand) {
    if (positionals[1] === 'check') {
      if (values.json) process.stdout.write(`${JSON.stringify({ ok: true, config: values.config ?? null })}\n`);
      else process.stdout.write(`spool: configuration ok${values.config === undefined ? '' : ` (${values.config})`}\n`);
    } else {
      const { limits, retention, credit, ...rest } = resolveConfig(options as GatewayOptions);
      process.stdout.write(`${JSON.stringify({ ...redacted(rest), retention, credit, limits, toggles: { syncAppend: false, readOnly: false, ...file?.toggles } }, null, 2)}\n`);
    }
    return;
  }
  await serve(options, file, values.config);
}

/** The command line's flags over `options` (what the environment and the file gave). */
function applyFlags(values: ReturnType<typeof parseArgs<{ options: typeof SERVE_OPTIONS; allowPositionals: true }>>['values'], options: Record<string, unknown>): void {
  if (values.host !== undefined) options['host'] = values.host;
  if (values.port !== undefined) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port ${values.port} is not a port number`);
    options['port'] = port;
  }
  if (values.data !== undefined) options['data'] = values.data;
  if (values.durability !== undefined) options['durability'] = parseDurability(values.durability, '--durability');
  // A flag replaces the whole auth mode of the environment, so `--jwt-secret` on a host that
  // exports SPOOL_AUTH_TOKEN is one mode, not a conflict; two flags still are (startGateway says so).
  const authFlags = {
    authToken: values['auth-token'],
    jwtSecret: values['jwt-secret'],
    jwtPublicKey: values['jwt-public-key'],
    jwks: values.jwks,
  };
  if (Object.values(authFlags).some((v) => v !== undefined)) {
    for (const [key, value] of Object.entries(authFlags)) {
      if (value !== undefined) options[key] = value;
      else delete options[key];
    }
  }
  if (values['jwt-issuer'] !== undefined) options['jwtIssuer'] = values['jwt-issuer'];
  if (values['jwt-audience'] !== undefined) options['jwtAudience'] = values['jwt-audience'];
  if (values.transport !== undefined) options['transport'] = parseTransportName(values.transport, '--transport');
  if (values.redis !== undefined) options['redis'] = values.redis;
  if (values['redis-cluster'] !== undefined) options['redisCluster'] = parseNodeList(values['redis-cluster'], '--redis-cluster');
  for (const [flag, { option, list, text }] of Object.entries(EDGE_FLAGS)) {
    const raw = (values as Record<string, unknown>)[flag];
    if (typeof raw !== 'string') continue;
    if (text) options[option] = raw;
    else if (list) options[option] = parseList(raw);
    else if (raw.trim() === '' || !Number.isFinite(Number(raw))) throw new Error(`--${flag} ${raw} is not a number`);
    else options[option] = Number(raw);
  }
  if (options['redis'] !== undefined && options['redisCluster'] !== undefined) {
    throw new Error('give either --redis (SPOOL_REDIS_URL) or --redis-cluster (SPOOL_REDIS_CLUSTER), not both');
  }
}

/** `spool serve` with the effective options: runs until SIGINT/SIGTERM. */
async function serve(options: Record<string, unknown>, file: ConfigFile | undefined, configPath: string | undefined): Promise<void> {
  // One JSON log stream on stdout for the CLI and the gateway (pino; pipe it through pino-pretty
  // to read it). The CLI's own lines are logged at info whatever SPOOL_LOG_LEVEL says.
  const logger = pino({ level: process.env['SPOOL_LOG_LEVEL'] ?? 'info' });
  const cliLog = logger.child({ component: 'cli' }, { level: 'info' });
  options['logger'] = logger;
  // OpenTelemetry only when the OTEL_* environment asks for it: its SDK is not even loaded otherwise.
  let otel: (Observability & { shutdown(): Promise<void> }) | undefined;
  if (otelConfigured(process.env)) {
    otel = await (await import('./otel')).startOtel(logger);
    options['observability'] = otel;
  } else if (otelDisabled(process.env)) {
    // OTEL_SDK_DISABLED=true: no metrics either (the specification's no-op SDK for every signal).
    options['observability'] = DISABLED_OBSERVABILITY;
  }
  const gateway = await startGateway(options as GatewayOptions).catch(async (error: unknown) => {
    await otel?.shutdown();
    throw error;
  });
  if (file !== undefined) gateway.toggles.update(file.toggles);
  // SIGHUP re-reads the config file's toggles (no restart); other options need one.
  process.on('SIGHUP', () => {
    if (configPath === undefined) return;
    try {
      const toggles = gateway.toggles.update(readConfigFile(configPath).toggles);
      cliLog.info({ config: configPath, toggles }, 'SIGHUP: toggles from the config file applied (other options apply at the next start)');
    } catch (error) {
      cliLog.warn({ config: configPath, err: (error as Error).message }, 'SIGHUP: config file not applied');
    }
  });
  // Read by scripts and tests that start the CLI on port 0 (the message carries the URL).
  cliLog.info({ url: gateway.url }, `spool listening on ${gateway.url}`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    cliLog.info({ signal }, 'shutting down');
    gateway.close().then(
      // Spans still batched go out before the process ends (the gateway's close flushed its metrics).
      () => (otel ? otel.shutdown().catch(() => {}) : undefined),
    ).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** The environment variable an option comes from (as configFromEnv reads it), for messages. */
function envName(key: string): string {
  const special: Record<string, string> = { redis: 'SPOOL_REDIS_URL', retention: 'SPOOL_RETENTION_EVENTS / SPOOL_RETENTION_BYTES' };
  return special[key] ?? `SPOOL_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`spool: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
