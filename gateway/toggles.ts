/**
 * Runtime toggles: gateway settings an operator changes without a restart, through the admin API
 * (`GET/PUT /admin/toggles`, protocol/ADMIN.md). Session actors read them on every use, so a
 * change applies to the next write of every session.
 *
 *   syncAppend        every write flushed and acked on its own: no batching, no linger (the
 *                     emergency fallback when batching is suspected)
 *   readOnly          maintenance / drain: new generations and appends are refused with
 *                     READ_ONLY (retryable); reads are served and open generations may finish
 *   degradeWatermark  queued writes past which debug chunks are dropped at the door (0: never)
 *   maxReaderBufferedBytes, slowReaderTimeoutMs
 *                     the reader limits (PROTOCOL §9.4): bytes queued toward a reader past which
 *                     it is paused, and how long a paused reader may take to drain
 *   logLevel          the gateway's log level (pino's: fatal … trace, or silent)
 */
import { SpoolError } from '../protocol/errors';

/** pino's levels, and `silent`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What the readers of every session read on each use (readers.ts). */
export interface ReaderLimits {
  readonly maxReaderBufferedBytes: number;
  readonly slowReaderTimeoutMs: number;
}

export interface ToggleValues extends ReaderLimits {
  readonly syncAppend: boolean;
  readonly readOnly: boolean;
  readonly degradeWatermark: number;
  readonly logLevel: LogLevel;
}

/** The values the toggles start from (the gateway's configuration). */
export interface ToggleDefaults extends ReaderLimits {
  readonly degradeWatermark: number;
}

/** The logger whose level the `logLevel` toggle sets (a pino logger). */
export interface LevelledLogger {
  level: string;
}

/** Every toggle's name, as the admin API, the CLI and the config file's `toggles` take it. */
export const TOGGLE_NAMES: readonly (keyof ToggleValues)[] = ['syncAppend', 'readOnly', 'degradeWatermark', 'maxReaderBufferedBytes', 'slowReaderTimeoutMs', 'logLevel'];

export class Toggles implements ToggleValues {
  syncAppend = false;
  readOnly = false;
  degradeWatermark: number;
  maxReaderBufferedBytes: number;
  slowReaderTimeoutMs: number;

  constructor(
    initial: ToggleDefaults,
    private readonly logger?: LevelledLogger,
  ) {
    this.degradeWatermark = initial.degradeWatermark;
    this.maxReaderBufferedBytes = initial.maxReaderBufferedBytes;
    this.slowReaderTimeoutMs = initial.slowReaderTimeoutMs;
  }

  /** The logger's level (`info` without a logger). */
  get logLevel(): LogLevel {
    const level = this.logger?.level;
    return (LOG_LEVELS as readonly string[]).includes(level ?? '') ? (level as LogLevel) : 'info';
  }

  get values(): ToggleValues {
    return {
      syncAppend: this.syncAppend,
      readOnly: this.readOnly,
      degradeWatermark: this.degradeWatermark,
      maxReaderBufferedBytes: this.maxReaderBufferedBytes,
      slowReaderTimeoutMs: this.slowReaderTimeoutMs,
      logLevel: this.logLevel,
    };
  }

  /** Applies a partial update after checking every field of it; unknown keys are refused by name. */
  update(change: unknown): ToggleValues {
    if (change === null || typeof change !== 'object' || Array.isArray(change)) throw new SpoolError('BAD_FRAME', 'toggles must be a JSON object');
    const next = { ...this.values };
    for (const [key, value] of Object.entries(change)) {
      switch (key) {
        case 'syncAppend':
        case 'readOnly':
          if (typeof value !== 'boolean') throw new SpoolError('BAD_FRAME', `${key} must be true or false, got ${JSON.stringify(value)}`);
          next[key] = value;
          break;
        case 'degradeWatermark':
          if (!Number.isSafeInteger(value) || (value as number) < 0) throw new SpoolError('BAD_FRAME', `degradeWatermark must be an integer >= 0 (0: never degrade), got ${JSON.stringify(value)}`);
          next.degradeWatermark = value as number;
          break;
        case 'maxReaderBufferedBytes':
        case 'slowReaderTimeoutMs':
          if (!Number.isSafeInteger(value) || (value as number) < 1) throw new SpoolError('BAD_FRAME', `${key} must be an integer >= 1, got ${JSON.stringify(value)}`);
          next[key] = value as number;
          break;
        case 'logLevel':
          if (!(LOG_LEVELS as readonly unknown[]).includes(value)) throw new SpoolError('BAD_FRAME', `logLevel must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
          next.logLevel = value as LogLevel;
          break;
        default:
          throw new SpoolError('BAD_FRAME', `unknown toggle ${JSON.stringify(key)} (known: ${TOGGLE_NAMES.join(', ')})`);
      }
    }
    this.syncAppend = next.syncAppend;
    this.readOnly = next.readOnly;
    this.degradeWatermark = next.degradeWatermark;
    this.maxReaderBufferedBytes = next.maxReaderBufferedBytes;
    this.slowReaderTimeoutMs = next.slowReaderTimeoutMs;
    if (this.logger !== undefined && next.logLevel !== this.logLevel) this.logger.level = next.logLevel;
    return this.values;
  }

  /** READ_ONLY for a write that would start something new while the gateway is read-only. */
  refuseNew(what: string): SpoolError | null {
    return this.readOnly ? new SpoolError('READ_ONLY', `the gateway is read-only for maintenance: ${what} refused; retry later or through another gateway`) : null;
  }
}
