/**
 * The error registry: every code spool can answer with, its WebSocket close code and whether a
 * client may retry the same operation. Clients decide to retry from the code alone.
 *
 * `closes` says whether the gateway closes the socket after sending the error frame (with
 * `closeCode`); when false the error is answered on an open connection that stays usable.
 */
export const ERROR_REGISTRY = {
  BAD_FRAME: { closeCode: 4000, retryable: false, closes: false },
  UNSUPPORTED_PROTOCOL: { closeCode: 4001, retryable: false, closes: true },
  UNAUTHORIZED: { closeCode: 4002, retryable: false, closes: true },
  FORBIDDEN: { closeCode: 4003, retryable: false, closes: false },
  FRAME_TOO_LARGE: { closeCode: 4004, retryable: false, closes: false },
  FENCED: { closeCode: 4005, retryable: false, closes: false },
  SEQ_GAP: { closeCode: 4006, retryable: true, closes: false },
  GENERATION_ACTIVE: { closeCode: 4007, retryable: false, closes: false },
  GENERATION_CLOSED: { closeCode: 4008, retryable: false, closes: false },
  SESSION_FULL: { closeCode: 4009, retryable: false, closes: false },
  FLOW_CONTROL: { closeCode: 4010, retryable: false, closes: true },
  RATE_LIMITED: { closeCode: 4011, retryable: true, closes: false },
  SLOW_CONSUMER: { closeCode: 4012, retryable: true, closes: true },
  STORE_UNAVAILABLE: { closeCode: 4013, retryable: true, closes: false },
  SHUTTING_DOWN: { closeCode: 4014, retryable: true, closes: true },
  INTERNAL: { closeCode: 4015, retryable: true, closes: false },
  HANDSHAKE_REQUIRED: { closeCode: 4016, retryable: false, closes: true },
  TIMEOUT: { closeCode: 4017, retryable: true, closes: false },
  CLOSED: { closeCode: 4018, retryable: false, closes: false },
  OFFSET_OUT_OF_RANGE: { closeCode: 4019, retryable: false, closes: false },
  SESSION_REWOUND: { closeCode: 4020, retryable: false, closes: false },
  TOKEN_EXPIRED: { closeCode: 4021, retryable: true, closes: true },
  AUTH_UNAVAILABLE: { closeCode: 4022, retryable: true, closes: true },
  SESSION_DELETED: { closeCode: 4023, retryable: false, closes: false },
  READ_ONLY: { closeCode: 4031, retryable: true, closes: false },
  CONNECTION_LIMIT: { closeCode: 4024, retryable: true, closes: true },
  ADDRESS_LIMIT: { closeCode: 4025, retryable: true, closes: true },
  ORIGIN_NOT_ALLOWED: { closeCode: 4026, retryable: false, closes: true },
  AUTH_THROTTLED: { closeCode: 4027, retryable: true, closes: true },
  SESSION_LIMIT: { closeCode: 4028, retryable: false, closes: false },
  GENERATION_LIMIT: { closeCode: 4029, retryable: false, closes: false },
  SUBSCRIPTION_LIMIT: { closeCode: 4030, retryable: false, closes: false },
  /** A rate quota of the writer's identity (per minute) is spent: retry after `details.retryAfterMs`. */
  QUOTA_EXCEEDED: { closeCode: 4032, retryable: true, closes: false },
  /** The writer's identity holds its most critical events (or bytes of them) in this session: not retryable. */
  SESSION_QUOTA_EXCEEDED: { closeCode: 4033, retryable: false, closes: false },
} as const satisfies Record<string, { closeCode: number; retryable: boolean; closes: boolean }>;

export type ErrorCode = keyof typeof ERROR_REGISTRY;

export const ERROR_CODES = Object.keys(ERROR_REGISTRY) as ErrorCode[];

/** Extra, code-specific facts an error carries (FENCED: the current epoch; SEQ_GAP: the expected seq). */
export interface ErrorDetails {
  readonly epoch?: number;
  readonly expectedSeq?: number;
  readonly limit?: number;
  readonly generation?: string;
  readonly session?: string;
  /**
   * GENERATION_CLOSED: how the generation ended and the offset of its `gen.end`, when known,
   * so a producer whose `finished` was lost learns the outcome by re-opening. (The status union
   * is spelled out rather than imported: types.ts imports this file.)
   */
  readonly status?: 'done' | 'error' | 'aborted' | 'fenced' | 'timeout';
  readonly offset?: number;
  /** SESSION_REWOUND: the session's head as the store has it now (offsets after it will be reused). */
  readonly head?: number;
  /** QUOTA_EXCEEDED: how long until the quota has room for the refused write again. */
  readonly retryAfterMs?: number;
  /** QUOTA_EXCEEDED, SESSION_QUOTA_EXCEEDED: which quota refused the write (its name in the JWT's spool.quota). */
  readonly quota?: string;
}

/** The one error class of spool: gateway, store and client all throw it, tests assert on `code`. */
export class SpoolError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: ErrorDetails;

  /**
   * @param retryable the registry's word for `code`, unless given: only for an error frame whose
   *   code this build does not know (read as INTERNAL), where the gateway's own `retryable` decides.
   */
  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, retryable: boolean = ERROR_REGISTRY[code].retryable) {
    super(message);
    this.name = 'SpoolError';
    this.code = code;
    this.retryable = retryable;
    this.details = details;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_REGISTRY, value);
}

export function closeCodeOf(code: ErrorCode): number {
  return ERROR_REGISTRY[code].closeCode;
}

/** Maps a WebSocket close code back to the registry (undefined for codes spool does not own). */
export function codeOfClose(closeCode: number): ErrorCode | undefined {
  for (const code of ERROR_CODES) if (ERROR_REGISTRY[code].closeCode === closeCode) return code;
  return undefined;
}

/** Human-readable byte counts for error messages ("2.1 MiB"). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}
