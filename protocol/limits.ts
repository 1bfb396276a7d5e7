/**
 * Wire limits, each an option with a documented default. The gateway announces the ones a
 * client must respect in `welcome.limits`.
 */
export interface ProtocolLimits {
  /** Largest frame accepted, in bytes. Larger frames get FRAME_TOO_LARGE. @default 1 MiB */
  readonly maxFrameBytes: number;
  /** Most items in one `chunks` frame. @default 1024 */
  readonly maxBatchItems: number;
  /** Longest `kind` string. @default 64 */
  readonly maxKindLength: number;
  /** Longest idempotency `key`. @default 256 */
  readonly maxKeyLength: number;
  /** Longest `error` text on `finish`. @default 1024 */
  readonly maxErrorLength: number;
  /**
   * Deepest nesting of arrays/objects inside one `data` value (`"text"` is 0, `{"a":[1]}` is 2).
   * Bounds the recursion of every later encode (store, fanout, the other subprotocol). @default 64
   */
  readonly maxDataDepth: number;
}

export const DEFAULT_LIMITS: ProtocolLimits = {
  maxFrameBytes: 1024 * 1024,
  maxBatchItems: 1024,
  maxKindLength: 64,
  maxKeyLength: 256,
  maxErrorLength: 1024,
  maxDataDepth: 64,
};
