/**
 * W3C trace context from the app into the gateway (PROTOCOL §3.4): `hello`, `open` and
 * `subscribe` may carry a `traceparent`, so the gateway's spans of a generation or a resume are
 * children of the app's span. The SDK does not depend on OpenTelemetry: the app hands it the
 * value, or a function that reads the current one, e.g. with `@opentelemetry/api`:
 *
 * ```ts
 * import { context, propagation } from '@opentelemetry/api';
 * const traceparent = (): string | undefined => {
 *   const carrier: Record<string, string> = {};
 *   propagation.inject(context.active(), carrier);
 *   return carrier['traceparent'];
 * };
 * const client = new SpoolClient({ url, traceparent });
 * ```
 */
import { log, type Logger } from './util';

/** A W3C `traceparent` value, or a function returning the current one (undefined: none). */
export type TraceparentOption = string | (() => string | undefined);

/** The gateway ignores longer values (PROTOCOL §3.4); the SDK does not send them. */
const MAX_TRACEPARENT_CHARS = 256;

/**
 * The traceparent `option` stands for now: the string itself, or what the function returns. A
 * function that throws, or a value that is not a string of at most 256 chars, gives none (and a
 * warning): trace context never stops a write or a read.
 */
export function resolveTraceparent(option: TraceparentOption | undefined, logger: Logger | undefined): string | undefined {
  if (option === undefined) return undefined;
  let value: unknown;
  try {
    value = typeof option === 'function' ? option() : option;
  } catch (error) {
    log(logger, 'warn', 'spool: the traceparent function failed; sending none', { error: String(error) });
    return undefined;
  }
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string' || value.length > MAX_TRACEPARENT_CHARS) {
    log(logger, 'warn', `spool: traceparent must be a string of at most ${MAX_TRACEPARENT_CHARS} chars; sending none`);
    return undefined;
  }
  return value;
}
