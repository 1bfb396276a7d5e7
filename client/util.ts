/**
 * Small helpers shared by the SDK's modules. Everything here runs in Node and in a browser or
 * Electron renderer: no Buffer, no process, timers' `unref` only where it exists.
 */

/** Where the SDK reports state changes and trouble. Console-compatible: `(message, fields)`. */
export interface Logger {
  debug?(message: string, fields?: Record<string, unknown>): void;
  info?(message: string, fields?: Record<string, unknown>): void;
  warn?(message: string, fields?: Record<string, unknown>): void;
  error?(message: string, fields?: Record<string, unknown>): void;
}

/** Logger method names the SDK calls. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Logs through an optional, possibly partial logger; never throws. */
export function log(logger: Logger | undefined, level: LogLevel, message: string, fields?: Record<string, unknown>): void {
  const fn = logger?.[level];
  if (fn === undefined) return;
  // A throwing logger must never break the protocol state machine that called it.
  try {
    if (fields === undefined) fn.call(logger, message);
    else fn.call(logger, message, fields);
  } catch {
    /* ignored on purpose */
  }
}

/** Backoff for reconnects and retries of retryable errors. */
export interface ReconnectOptions {
  /** First backoff ceiling. @default 100 */
  readonly initialDelayMs?: number;
  /** Largest backoff ceiling. @default 5000 */
  readonly maxDelayMs?: number;
}

/** Resolved backoff delays. */
export interface Backoff {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

/** The documented reconnect defaults. */
export const DEFAULT_BACKOFF: Backoff = { initialDelayMs: 100, maxDelayMs: 5000 };

/** Fills in the defaults of a `reconnect` option. */
export function resolveBackoff(options: ReconnectOptions | false | undefined): Backoff {
  if (options === false || options === undefined) return DEFAULT_BACKOFF;
  return {
    initialDelayMs: options.initialDelayMs ?? DEFAULT_BACKOFF.initialDelayMs,
    maxDelayMs: options.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs,
  };
}

/**
 * Full-jitter exponential backoff: a uniform delay in [0, min(max, initial * 2^failures)).
 * Full jitter spreads a crowd of clients that lost the same gateway at the same instant.
 */
export function jitteredDelay(failures: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxDelayMs, backoff.initialDelayMs * 2 ** Math.min(failures, 30));
  return Math.floor(random() * ceiling);
}

/**
 * The wait before retrying after a retryable `error`: full jitter (jitteredDelay), but never
 * before the error's `details.retryAfterMs` (a rate quota says when it has room again, PROTOCOL §12.2).
 */
export function retryDelay(failures: number, backoff: Backoff, error?: { readonly details: { readonly retryAfterMs?: number } }, random: () => number = Math.random): number {
  const jittered = jitteredDelay(failures, backoff, random);
  const after = error?.details.retryAfterMs;
  return typeof after === 'number' && after > 0 ? Math.max(after, jittered) : jittered;
}

/**
 * The wait before the next reconnect attempt of a connection that has been down for `downForMs`:
 * uniform in [0, ceiling) (full jitter), where the ceiling follows the outage's length rather
 * than the number of failed attempts: max(initial, downForMs / 2), at most max.
 *
 * Why not the attempt count: attempts against a refused port fail in a millisecond, so after a
 * 200 ms outage a count-based ceiling has already doubled two or three times and the first
 * attempt after the network returns comes hundreds of ms late. Tied to the outage's length, a
 * short drop is retried within ~initial of its end, a long one backs off just as far (ceiling
 * `max` after 2 × max), and the attempts of a crowd cut at the same instant stay spread uniformly
 * over a window that widens with the outage, so they never return in step. A client makes about
 * 2 + 4·ln(downForMs / (2 × initial)) attempts over an outage (≈ 20 over 10 s with the defaults).
 */
export function reconnectDelay(downForMs: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxDelayMs, Math.max(backoff.initialDelayMs, downForMs / 2));
  return Math.floor(random() * ceiling);
}

/** A timer handle in Node or a browser. */
export type Timer = ReturnType<typeof setTimeout>;

/** A timer that does not keep a Node process alive (no-op in browsers, which have no unref). */
export function unrefTimer<T>(timer: T): T {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

/** A promise with its settle functions, for one waiter of many (flush, drain, finish). */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** Creates a Deferred. */
export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A random generation id inside the protocol's id alphabet (`[A-Za-z0-9._:-]`). */
export function randomId(): string {
  const uuid = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto?.randomUUID?.();
  if (uuid !== undefined) return uuid;
  // Fallback for old runtimes: 128 bits from Math.random is fine for a collision-free id, not a secret.
  let id = '';
  for (let i = 0; i < 4; i++) id += Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, '0');
  return id;
}

/**
 * A producer secret for an open (PROTOCOL §7.1): 128 bits from the platform's CSPRNG, as 32 hex
 * chars. Undefined where there is none (Math.random is guessable, and a guessable secret proves
 * nothing): such a producer whose first `opened` is lost gets GENERATION_ACTIVE on its retry.
 */
export function randomSecret(): string | undefined {
  const crypto = (globalThis as { crypto?: { getRandomValues?: (array: Uint8Array) => Uint8Array } }).crypto;
  if (crypto?.getRandomValues === undefined) return undefined;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let hex = '';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

/** Node's native UTF-8 length when there is one (several times faster than the loop below). */
const nativeByteLength = (globalThis as { Buffer?: { byteLength(text: string, encoding: 'utf8'): number } }).Buffer?.byteLength;

/** UTF-8 byte length of a string without allocating (TextEncoder per write would). */
export function utf8Length(text: string): number {
  if (nativeByteLength !== undefined) return nativeByteLength(text, 'utf8');
  return utf8LengthOf(text);
}

/** The same in plain JS (browsers), exported for its test. */
export function utf8LengthOf(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4; // surrogate pair: one 4-byte code point
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Bytes a chunk's data counts for against credit and the high-water mark. Exact for strings and
 * binary (what chat streams carry); an estimate via JSON for structured data, which is close to
 * (and for msgpack a little over) its encoded size, so the SDK errs on the safe side of credit.
 */
export function sizeOf(data: unknown): number {
  if (typeof data === 'string') return utf8Length(data);
  if (data === null || data === undefined || typeof data === 'boolean') return 1;
  if (typeof data === 'number') return 9;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') return (data as ArrayBuffer).byteLength;
  try {
    const json = JSON.stringify(data);
    return json === undefined ? 1 : utf8Length(json);
  } catch {
    return 64; // not JSON-able (BigInt, cycles): the codec decides; count a nominal size
  }
}

/** Receives one kind of event of an Emitter. */
export type Listener<T> = (event: T) => void;

/**
 * A tiny typed listener set for the SDK's observability events (no Node EventEmitter: the SDK
 * runs in browsers). Unused, it costs one field and one undefined check per emit; emitters
 * also test `has()` before building a payload, so an event nobody listens to allocates nothing.
 * A listener that throws is logged and never breaks the protocol state machine that emitted.
 */
export class Emitter<Events extends object> {
  private listeners: Map<keyof Events, Set<Listener<never>>> | undefined;

  constructor(
    private readonly names: ReadonlyArray<keyof Events>,
    private readonly owner: string,
    private readonly logger: Logger | undefined,
  ) {}

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    if (!this.names.includes(event)) throw new TypeError(`${this.owner} has no event ${String(event)} (events: ${this.names.join(', ')})`);
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    this.listeners ??= new Map();
    let set = this.listeners.get(event);
    if (set === undefined) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.listeners?.get(event)?.delete(listener as Listener<never>);
  }

  /** Whether anybody listens to `event`: test it before building an event's payload. */
  has(event: keyof Events): boolean {
    const set = this.listeners?.get(event);
    return set !== undefined && set.size > 0;
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.listeners?.get(event);
    if (set === undefined || set.size === 0) return;
    for (const listener of [...set] as Array<Listener<Events[K]>>) {
      try {
        listener(payload);
      } catch (error) {
        log(this.logger, 'warn', `${this.owner}: a ${String(event)} listener threw`, { error: String(error) });
      }
    }
  }
}

/**
 * The part of `AbortSignal` the SDK uses (browser, Node and polyfills all fit): typed
 * structurally so the SDK needs neither DOM nor Node typings of its own.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

const LONE_SURROGATE_GLOBAL = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Diagnostic text fit for the wire: lone surrogates replaced (the gateway refuses them) and cut
 * to `max` UTF-16 units without splitting a surrogate pair. '' stays '' (callers omit it).
 */
export function wireText(text: string, max: number): string {
  let clean = text.replace(LONE_SURROGATE_GLOBAL, '\ufffd');
  if (clean.length > max) {
    const cut = clean.charCodeAt(max - 1);
    clean = clean.slice(0, cut >= 0xd800 && cut <= 0xdbff ? max - 1 : max);
  }
  return clean;
}

/** The text of an abort reason: an Error's message, a string as is, anything else stringified. */
export function reasonText(reason: unknown): string {
  if (reason === undefined || reason === null) return '';
  if (typeof reason === 'string') return reason;
  if (typeof reason === 'object') {
    const { name, message } = reason as { name?: unknown; message?: unknown };
    if (typeof message === 'string' && message !== '') return message;
    if (typeof name === 'string') return name;
  }
  try {
    return String(reason);
  } catch {
    return ''; // an object whose toString throws has no text worth sending
  }
}
