/**
 * One HTTP request and its response, as a transport hands it to a route that needs more than
 * `ListenOptions.http` (a GET answered with one string): any method, request headers, a bounded
 * body, and a response that may stream (SSE, long-poll). The ws transport implements it on
 * node:http (`nodeExchange`), the uWebSockets.js transport on its HttpResponse
 * (`uwsExchange`); a route never knows which it has.
 *
 *   response:  pending ──reply()──────────────────────────▶ ended
 *                 └─────start()──▶ streaming ──end()──────▶ ended
 *   any state ──client went away──▶ closed (onClose callbacks run once; writes are dropped)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as Uws from '@trufflesuite/uws-js-unofficial';

export type HttpHeaders = Readonly<Record<string, string>>;

export interface HttpExchange {
  /** Upper case: GET, PUT, POST, HEAD, DELETE, OPTIONS, … */
  readonly method: string;
  /** The path as sent (percent-encoded), without the query. */
  readonly path: string;
  /** The query string as sent, without the `?` ('' when absent). */
  readonly query: string;
  readonly remoteAddress: string;
  /** A request header by lower-case name; a repeated header reads as its values joined by ', '. */
  header(name: string): string | undefined;
  /**
   * The whole request body. Resolves null when it is longer than `limitBytes`: the rest is read
   * and discarded (so the client still gets the answer), never buffered.
   */
  body(limitBytes: number): Promise<Uint8Array | null>;
  /** A complete response (no body on HEAD). */
  reply(status: number, headers: HttpHeaders, body?: Uint8Array | string): void;
  /** Starts a streaming response: the head now, the body by write() until end(). */
  start(status: number, headers: HttpHeaders): void;
  /** Writes body bytes of a started response; false once they are queued beyond the socket. */
  write(chunk: Uint8Array | string): boolean;
  /** Ends a started response. Idempotent. */
  end(): void;
  /** Drops the connection at once, whatever is still buffered toward the client (a reader that stopped reading). */
  abort(): void;
  /** Bytes written but not yet handed to the kernel. */
  bufferedAmount(): number;
  /** Calls `callback` once the buffered amount is at or below `lowWaterBytes` (never after close). */
  onceDrained(lowWaterBytes: number, callback: () => void): void;
  /** Calls `callback` once when the connection ends before or after the response (at once if it has). */
  onClose(callback: () => void): void;
  /** True once the client went away or the response ended. */
  readonly closed: boolean;
}

/** A route of the transport's HTTP side: every request whose path starts with `prefix`. */
export interface HttpRoute {
  readonly prefix: string;
  handle(exchange: HttpExchange): void;
}

/** The route serving `path`, if any. */
export function routeFor(routes: readonly HttpRoute[] | undefined, path: string): HttpRoute | undefined {
  return routes?.find((r) => path.startsWith(r.prefix));
}

const DRAIN_POLL_MS = 10;

/** An exchange on node:http's request and response (the ws transport). */
export function nodeExchange(req: IncomingMessage, res: ServerResponse): HttpExchange {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const closers: Array<() => void> = [];
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    for (const callback of closers.splice(0)) callback();
  };
  res.on('close', close);
  const ended = (): boolean => closed || res.writableEnded;
  return {
    method: (req.method ?? 'GET').toUpperCase(),
    path: q < 0 ? url : url.slice(0, q),
    query: q < 0 ? '' : url.slice(q + 1),
    remoteAddress: req.socket.remoteAddress ?? '',
    header(name) {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(', ') : value;
    },
    body(limitBytes) {
      return new Promise((resolve, reject) => {
        const parts: Buffer[] = [];
        let size = 0;
        let over = false;
        req.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > limitBytes) over = true;
          if (!over) parts.push(chunk);
        });
        req.on('end', () => resolve(over ? null : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)));
        req.on('error', reject);
      });
    },
    reply(status, headers, body) {
      if (ended()) return;
      res.writeHead(status, headers);
      res.end(body === undefined ? undefined : typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    },
    start(status, headers) {
      if (ended()) return;
      res.writeHead(status, headers);
      // Headers now, so a reader knows the stream is open before the first event.
      res.flushHeaders();
    },
    write(chunk) {
      if (ended()) return false;
      return res.write(chunk);
    },
    end() {
      if (!ended()) res.end();
    },
    abort() {
      res.destroy();
    },
    bufferedAmount() {
      return ended() ? 0 : res.writableLength;
    },
    onceDrained(lowWaterBytes, callback) {
      // 'drain' fires only when the writable buffer empties; a poll while a reader waits costs
      // nothing on the hot path (as the ws transport's sockets do).
      const check = (): void => {
        if (ended()) return;
        if (res.writableLength <= lowWaterBytes) callback();
        else setTimeout(check, DRAIN_POLL_MS);
      };
      check();
    },
    onClose(callback) {
      if (closed) callback();
      else closers.push(callback);
    },
    get closed() {
      return ended();
    },
  };
}

function statusLine(status: number, text: string | undefined): string {
  return `${status} ${text ?? ''}`.trim();
}

const utf8 = new TextDecoder();

/**
 * An exchange on a uWebSockets.js request (the uws transport). Everything the route may need of
 * `req` is copied here, during the handler: uws frees it when the handler returns. The response
 * must not be touched after it ended or was aborted (uws throws), so every method checks.
 * `statusText` names status codes (node:http STATUS_CODES).
 */
export function uwsExchange(res: Uws.HttpResponse, req: Uws.HttpRequest, statusText: Readonly<Record<number, string | undefined>>): HttpExchange {
  const headers = new Map<string, string>();
  req.forEach((key, value) => {
    const prior = headers.get(key);
    headers.set(key, prior === undefined ? value : `${prior}, ${value}`);
  });
  const method = req.getMethod().toUpperCase();
  const path = req.getUrl();
  const query = req.getQuery() ?? '';
  const remoteAddress = utf8.decode(res.getRemoteAddressAsText());
  const closers: Array<() => void> = [];
  let aborted = false;
  let ended = false;
  let written = 0;
  let drainWaiters: Array<{ readonly lowWaterBytes: number; readonly callback: () => void }> = [];
  const close = (): void => {
    drainWaiters = [];
    for (const callback of closers.splice(0)) callback();
  };
  res.onAborted(() => {
    aborted = true;
    close();
  });
  // The body arrives in chunks after the handler returned; collect it (bounded) from now on, so
  // no chunk is missed before body() is called.
  const bodyParts: Buffer[] = [];
  let bodySize = 0;
  let bodyDone = false;
  let bodyWaiter: (() => void) | null = null;
  let bodyLimit = Number.POSITIVE_INFINITY;
  const hasBody = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
  if (hasBody) {
    res.onData((chunk, isLast) => {
      bodySize += chunk.byteLength;
      // Copy: uws reuses the chunk's memory once this handler returns.
      if (bodySize <= bodyLimit) bodyParts.push(Buffer.from(new Uint8Array(chunk)));
      else bodyParts.length = 0;
      if (isLast) {
        bodyDone = true;
        bodyWaiter?.();
      }
    });
  } else {
    bodyDone = true;
  }
  const buffered = (): number => (aborted || ended ? 0 : Math.max(0, written - res.getWriteOffset()));
  const wakeDrained = (): void => {
    if (drainWaiters.length === 0) return;
    const amount = buffered();
    const ready = drainWaiters.filter((w) => amount <= w.lowWaterBytes);
    if (ready.length === 0) return;
    drainWaiters = drainWaiters.filter((w) => amount > w.lowWaterBytes);
    for (const waiter of ready) waiter.callback();
  };
  const writeHead = (status: number, head: HttpHeaders): void => {
    res.writeStatus(statusLine(status, statusText[status]));
    for (const [name, value] of Object.entries(head)) res.writeHeader(name, value);
  };
  return {
    method,
    path,
    query,
    remoteAddress,
    header(name) {
      return headers.get(name);
    },
    body(limitBytes) {
      bodyLimit = limitBytes;
      if (bodySize > limitBytes) bodyParts.length = 0;
      const finish = (): Uint8Array | null => (bodySize > limitBytes ? null : bodyParts.length === 1 ? (bodyParts[0] as Buffer) : Buffer.concat(bodyParts));
      if (bodyDone) return Promise.resolve(finish());
      return new Promise((resolve) => {
        bodyWaiter = () => resolve(finish());
      });
    },
    reply(status, head, body) {
      if (aborted || ended) return;
      ended = true;
      res.cork(() => {
        writeHead(status, head);
        if (method === 'HEAD') res.endWithoutBody();
        else res.end(body === undefined ? '' : body);
      });
      close();
    },
    start(status, head) {
      if (aborted || ended) return;
      res.cork(() => writeHead(status, head));
      res.onWritable(() => {
        wakeDrained();
        return true;
      });
    },
    write(chunk) {
      if (aborted || ended) return false;
      written += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
      let ok = false;
      res.cork(() => {
        ok = res.write(chunk);
      });
      return ok;
    },
    end() {
      if (aborted || ended) return;
      ended = true;
      res.cork(() => res.end());
      close();
    },
    abort() {
      // uws forbids touching a response once it ended; an ended one is uws's to flush or drop.
      if (aborted || ended) return;
      aborted = true;
      res.close();
      close();
    },
    bufferedAmount: buffered,
    onceDrained(lowWaterBytes, callback) {
      if (aborted || ended) return;
      if (buffered() <= lowWaterBytes) callback();
      else drainWaiters.push({ lowWaterBytes, callback });
    },
    onClose(callback) {
      if (aborted || ended) callback();
      else closers.push(callback);
    },
    get closed() {
      return aborted || ended;
    },
  };
}
