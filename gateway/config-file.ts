/**
 * Configuration from a file, and one validation for every source (issue 13):
 *
 *   spool serve --config spool.yaml     (or .json)
 *   spool config print [--config F]     the effective configuration, secrets redacted
 *   spool config check --config F       validates and exits 0, or 2 naming what is wrong
 *
 * Precedence: flags > environment (SPOOL_*) > file > defaults. The file holds the options
 * `startGateway()` takes, by the same names (nested `retention`, `credit`, `limits`), plus
 * `toggles` (the runtime toggles' values at start, re-read on SIGHUP). Every source goes through
 * the same schema (zod): integers, ranges and units per option, and an unknown key refused with
 * its name, so `SPOOL_HEARTBEAT_MS=-5`, `retention: {maxEvents: 0}` or a typo never start a
 * gateway that behaves otherwise than its operator thinks.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_CONFIG, type GatewayOptions } from './config';
import { isCidr } from './edge/addresses';
import { LOG_LEVELS, type ToggleValues } from './toggles';

const int = (min: number, max = Number.MAX_SAFE_INTEGER): z.ZodNumber => z.number().int(`must be an integer`).min(min, `must be >= ${min}`).max(max, `must be <= ${max}`);
const ms = (min = 1): z.ZodNumber => int(min).describe('milliseconds');
const text = z.string().min(1, 'must not be empty');
const port = int(0, 65535);

/** Options a file or the environment may set, with their ranges. */
const KNOWN = {
  host: text,
  port,
  data: text,
  durability: z.enum(['commit', 'fsync']),
  transport: z.enum(['ws', 'uws']),
  redis: z.string().regex(/^rediss?:\/\/[^\s]+$/, 'must be a redis:// or rediss:// URL'),
  redisCluster: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port')).min(1, 'must name at least one node'),
  readinessIntervalMs: ms(),
  authToken: text,
  jwtSecret: z.string().min(32, 'must be at least 32 characters (HS256)'),
  jwtPublicKey: text,
  jwks: text,
  jwtIssuer: text,
  jwtAudience: text,
  jwksCooldownMs: ms(0),
  handshakeTimeoutMs: ms(),
  heartbeatMs: ms(),
  generationIdleTimeoutMs: ms(),
  sessionIdleMs: ms(),
  maxBatchEvents: int(1),
  maxBatchBytes: int(1),
  lingerMs: ms(0),
  storeRetryBudgetMs: ms(),
  storeProbeIntervalMs: ms(),
  hotBufferEvents: int(1),
  hotBufferBytes: int(1),
  maxReaderBufferedBytes: int(1),
  slowReaderTimeoutMs: ms(),
  degradeWatermark: int(0),
  maxQueuedWrites: int(1),
  readPageEvents: int(1),
  sessionTtlMs: ms(),
  dedupeWindowMs: ms(),
  expireIntervalMs: ms(),
  shutdownTimeoutMs: ms(),
  retention: z.strictObject({ maxEvents: int(1), maxBytes: int(1), criticalFactor: z.number().min(1, 'must be >= 1') }).partial(),
  credit: z.strictObject({ frames: int(1), bytes: int(1) }).partial(),
  limits: z.record(z.string(), int(1)),
  allowedOrigins: z.array(text),
  trustProxy: z.array(z.string().refine((entry) => isCidr(entry), 'must be an IP address or CIDR block (10.0.0.0/8, ::1)')),
  quotaBytesPerMinute: int(0),
  quotaCriticalEventsPerMinute: int(0),
  quotaCriticalBytesPerSession: int(0),
  quotaCriticalEventsPerSession: int(0),
  tlsCert: text,
  tlsKey: text,
  adminPort: port,
  adminHost: text,
  adminToken: text,
  adminTlsCert: text,
  adminTlsKey: text,
  streams: z.boolean(),
  streamsLongPollMs: ms(),
  streamsMaxBodyBytes: int(1),
  streamsMaxReadBytes: int(1),
  streamsSseMaxMs: ms(),
} as const;

/** Options that only code can give (objects, functions): never from a file or the environment. */
const CODE_ONLY = new Set(['store', 'logger', 'telemetry', 'observability', 'clock']);

/**
 * The schema of every settable option: the ranges above, and for an option added to
 * DEFAULT_CONFIG without one here, its default's type (a number: an integer >= 0).
 */
function optionSchema(): z.ZodObject {
  const shape: Record<string, z.ZodType> = { ...KNOWN };
  for (const [key, value] of Object.entries(DEFAULT_CONFIG)) {
    if (key in shape || CODE_ONLY.has(key)) continue;
    if (typeof value === 'number') shape[key] = int(0);
    else if (typeof value === 'boolean') shape[key] = z.boolean();
    else if (typeof value === 'string') shape[key] = text;
  }
  return z.strictObject(shape).partial();
}

const TOGGLES = z
  .strictObject({ syncAppend: z.boolean(), readOnly: z.boolean(), degradeWatermark: int(0), maxReaderBufferedBytes: int(1), slowReaderTimeoutMs: ms(), logLevel: z.enum(LOG_LEVELS) })
  .partial();

export class ConfigError extends Error {}

/** What a config file holds: gateway options, and the toggles' values at start. */
export interface ConfigFile {
  readonly options: GatewayOptions;
  readonly toggles: Partial<ToggleValues>;
}

/** Reads and validates a YAML (.yaml, .yml) or JSON (.json) config file. */
export function readConfigFile(file: string): ConfigFile {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read it: ${(error as Error).message}`);
  }
  const ext = path.extname(file).toLowerCase();
  let parsed: unknown;
  try {
    if (ext === '.json') parsed = JSON.parse(raw);
    else if (ext === '.yaml' || ext === '.yml') parsed = parseYaml(raw);
    else throw new Error('the name must end in .yaml, .yml or .json');
  } catch (error) {
    throw new ConfigError(`${file}: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) parsed = {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`${file}: must be a mapping of option names to values`);
  const { toggles, ...options } = parsed as Record<string, unknown>;
  const checkedToggles = TOGGLES.safeParse(toggles ?? {});
  if (!checkedToggles.success) throw new ConfigError(describe(file, checkedToggles.error, 'toggles'));
  return { options: validateOptions(options, file), toggles: checkedToggles.data as Partial<ToggleValues> };
}

/**
 * Checks options from one source (`source` names it in errors: a file, 'environment', 'flags')
 * and returns them as given. Unknown keys and values out of range are refused by name.
 */
export function validateOptions(options: Record<string, unknown>, source: string, names: (key: string) => string = (key) => key): GatewayOptions {
  for (const key of Object.keys(options)) {
    if (CODE_ONLY.has(key)) throw new ConfigError(`${source}: ${names(key)} can only be given in code (startGateway), not here`);
  }
  const checked = optionSchema().safeParse(options);
  if (!checked.success) throw new ConfigError(describe(source, checked.error, undefined, names));
  return options as GatewayOptions;
}

function describe(source: string, error: z.ZodError, prefix?: string, names: (key: string) => string = (key) => key): string {
  const issue = error.issues[0];
  if (issue === undefined) return `${source}: invalid`;
  const at = [prefix, ...issue.path.map(String)].filter((p) => p !== undefined);
  if (issue.code === 'unrecognized_keys') {
    const where = at.length > 0 ? ` in ${at.join('.')}` : '';
    return `${source}: unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(names(k))).join(', ')}${where}`;
  }
  const key = at.length > 0 ? (at.length === 1 ? names(at[0] as string) : at.join('.')) : '(top level)';
  return `${source}: ${key} ${issue.message}`;
}

/** The options with secrets replaced, for printing. */
export function redacted(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (CODE_ONLY.has(key) || typeof value === 'function') continue;
    out[key] = ['authToken', 'jwtSecret', 'adminToken'].includes(key) && value !== undefined ? '(set, redacted)' : value;
  }
  return out;
}
