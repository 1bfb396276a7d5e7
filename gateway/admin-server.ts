/**
 * The admin listener (`--admin-port`): a plain node:http server of its own, apart from the
 * WebSocket port and its transports, for what operators and their tools call: /metrics, /healthz,
 * /readyz and the admin API (protocol/ADMIN.md). Health checks and scrapes keep answering here
 * whatever clients do to the public port, and the admin surface is never exposed there.
 *
 * Routes are registered by method and path pattern (`/admin/sessions/:session`, `/admin/*`); a
 * handler gets the parsed JSON body and returns a JSON answer (or text, for /metrics), or null
 * for "not mine" (404). Every route requires the admin credential unless registered `open`:
 *
 *   request ──no route──────────────────────────────▶ 404 NOT_FOUND
 *      │ ──address out of failure budget───────────▶ 429 AUTH_THROTTLED
 *      │ ──credential missing or refused───────────▶ 401 UNAUTHORIZED (spends from the budget)
 *      │ ──a JWT without spool.admin────────────────▶ 403 FORBIDDEN
 *      └──▶ handler ──throws─▶ its SpoolError's status, or 500 INTERNAL
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { SpoolError, type ErrorCode } from '../protocol/errors';
import { sharedToken, type Authenticator } from './auth';

export interface AdminRouteRequest {
  readonly method: string;
  /** The path without the query string, still percent-encoded. */
  readonly path: string;
  /** The pattern's `:name` segments, percent-decoded; `*` holds the rest of the path (encoded). */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The parsed JSON body; undefined when there was none. */
  readonly body: unknown;
  readonly remoteAddress: string;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
}

/** A JSON answer, or a text one (the Prometheus exposition of /metrics). */
export type AdminRouteReply = { readonly status: number; readonly body: unknown } | { readonly status: number; readonly text: string; readonly contentType: string };

/** Answers a request, or returns null when it is not one this route serves after all (404). */
export type AdminHandler = (request: AdminRouteRequest) => AdminRouteReply | null | Promise<AdminRouteReply | null>;

export interface AdminRouteOptions {
  /** Served without the admin credential (health checks). @default false */
  readonly open?: boolean;
}

/**
 * Checks the credential of a request (the bearer token of its Authorization header, undefined
 * without one): resolves when it grants admin, throws SpoolError UNAUTHORIZED (missing or refused)
 * or FORBIDDEN (valid, but not an admin's).
 */
export type AdminAuthorizer = (token: string | undefined) => void | Promise<void>;

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly authorize: AdminAuthorizer;
  /** Refused credentials are counted per remote address (the edge's failure budget). */
  readonly failures?: { mayAuthenticate(remoteAddress: string): boolean; authFailed(remoteAddress: string): void };
  /** The client's address of a request from `peer` with this X-Forwarded-For (trusted proxies); unset: the peer's. */
  readonly clientAddress?: (peer: string, forwardedFor: string | undefined) => string;
  /** Serve https with this PEM certificate chain and key (file paths); unset: plain http. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  readonly logger: Logger;
  /** Request line and headers, and the whole request, must arrive within these. @default 10000 / 60000 */
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** Largest request body read. @default 1 MiB */
  readonly maxBodyBytes?: number;
}

/** Concurrent connections the admin listener takes (operators and scrapers, not clients). */
const MAX_ADMIN_SOCKETS = 256;

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  BAD_FRAME: 400,
  UNAUTHORIZED: 401,
  TOKEN_EXPIRED: 401,
  FORBIDDEN: 403,
  AUTH_THROTTLED: 429,
  AUTH_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
};

interface Route {
  readonly method: string;
  readonly segments: readonly string[];
  /** The pattern ends in `*`: it matches any rest of the path. */
  readonly prefix: boolean;
  readonly handler: AdminHandler;
  readonly open: boolean;
}

export class AdminServer {
  private readonly routes: Route[] = [];
  private server: http.Server | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: AdminServerOptions) {}

  /**
   * Serves `method` (upper case, or '*' for any) on paths matching `pattern`: literal segments,
   * `:name` for one segment (percent-decoded into params.name), a final `*` for any rest. Routes
   * are tried in the order registered. Returns this, to chain.
   */
  route(method: string, pattern: string, handler: AdminHandler, options: AdminRouteOptions = {}): this {
    const segments = pattern.split('/').filter((s) => s !== '');
    const prefix = segments[segments.length - 1] === '*';
    if (prefix) segments.pop();
    this.routes.push({ method: method.toUpperCase(), segments, prefix, handler, open: options.open === true });
    return this;
  }

  /** Starts listening; resolves with the port. */
  async listen(): Promise<number> {
    const handler: http.RequestListener = (req, res) => void this.serve(req, res);
    const headersTimeout = this.options.headersTimeoutMs ?? 10_000;
    const tls = this.options.tls;
    // With TLS, the handshake must also finish within the headers timeout (as on the public port).
    const server: http.Server = tls
      ? https.createServer({ cert: fs.readFileSync(tls.certFile), key: fs.readFileSync(tls.keyFile), handshakeTimeout: headersTimeout }, handler)
      : http.createServer(handler);
    server.headersTimeout = headersTimeout;
    server.requestTimeout = Math.max(server.headersTimeout, this.options.requestTimeoutMs ?? 60_000);
    server.maxConnections = MAX_ADMIN_SOCKETS;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as AddressInfo).port;
  }

  /** Stops listening and ends its connections. Idempotent. */
  close(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    this.closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return this.closing;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const peer = req.socket.remoteAddress ?? '';
    const remoteAddress = this.options.clientAddress ? this.options.clientAddress(peer, headerOf(req, 'x-forwarded-for')) : peer;
    try {
      const url = new URL(req.url ?? '/', 'http://admin');
      const method = (req.method ?? 'GET').toUpperCase();
      const found = this.match(method, url.pathname);
      if (!found) {
        req.resume();
        reply(res, notFound(method, url.pathname));
        return;
      }
      if (!found.route.open) await this.authorize(req, remoteAddress);
      const body = await readJson(req, this.options.maxBodyBytes ?? 1024 * 1024);
      const answer = await found.route.handler({
        method,
        path: url.pathname,
        params: found.params,
        query: url.searchParams,
        body,
        remoteAddress,
        header: (name) => headerOf(req, name),
      });
      reply(res, answer ?? notFound(method, url.pathname));
    } catch (error) {
      if (error instanceof SpoolError) {
        reply(res, { status: STATUS_OF[error.code] ?? 500, body: { error: { code: error.code, message: error.message } } }, error.code === 'UNAUTHORIZED' ? { 'www-authenticate': 'Bearer' } : {});
        return;
      }
      this.options.logger.error({ err: error, url: req.url }, 'admin request failed');
      reply(res, { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } });
    }
  }

  private async authorize(req: http.IncomingMessage, remoteAddress: string): Promise<void> {
    const failures = this.options.failures;
    if (failures && !failures.mayAuthenticate(remoteAddress)) {
      throw new SpoolError('AUTH_THROTTLED', 'too many refused credentials from this address; wait, then retry with a valid one');
    }
    const authorization = headerOf(req, 'authorization');
    const bearer = authorization !== undefined && /^bearer /i.test(authorization) ? authorization.slice(7).trim() : undefined;
    try {
      await this.options.authorize(bearer);
    } catch (error) {
      if (error instanceof SpoolError && error.code === 'UNAUTHORIZED') failures?.authFailed(remoteAddress);
      throw error;
    }
  }

  private match(method: string, path: string): { route: Route; params: Record<string, string> } | undefined {
    const parts = path.split('/').filter((s) => s !== '');
    for (const route of this.routes) {
      if (route.method !== '*' && route.method !== method) continue;
      if (route.prefix ? parts.length < route.segments.length : parts.length !== route.segments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < route.segments.length && ok; i++) {
        const segment = route.segments[i] as string;
        const part = parts[i] as string;
        if (segment.startsWith(':')) {
          try {
            params[segment.slice(1)] = decodeURIComponent(part);
          } catch {
            ok = false;
          }
        } else {
          ok = segment === part;
        }
      }
      if (!ok) continue;
      if (route.prefix) params['*'] = parts.slice(route.segments.length).join('/');
      return { route, params };
    }
    return undefined;
  }
}

function headerOf(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function notFound(method: string, path: string): AdminRouteReply {
  return { status: 404, body: { error: { code: 'NOT_FOUND', message: `no admin route ${method} ${path.slice(0, 200)}` } } };
}

/** The request's body as JSON (undefined when empty); BAD_FRAME when it is not JSON or is longer than `maxBytes`. */
async function readJson(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxBytes) throw new SpoolError('BAD_FRAME', `request body past ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  if (length === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new SpoolError('BAD_FRAME', 'request body is not JSON');
  }
}

function reply(res: http.ServerResponse, answer: AdminRouteReply, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  if ('text' in answer) {
    res.writeHead(answer.status, { 'content-type': answer.contentType, ...headers }).end(answer.text);
    return;
  }
  res.writeHead(answer.status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(answer.body));
}

/**
 * Who may use the admin listener's protected routes: the bearer `adminToken` when one is set (compared
 * in constant time); in JWT mode also a JWT whose spool.admin is true. Without an admin token the
 * gateway's own mode decides: its shared token; a JWT with spool.admin; in open mode, anyone.
 */
export function adminAuthorizer(adminToken: string | undefined, authenticator: Authenticator): AdminAuthorizer {
  const adminCheck = adminToken !== undefined ? sharedToken(adminToken) : undefined;
  const missing = (): SpoolError => new SpoolError('UNAUTHORIZED', 'send the admin token (or an admin JWT) as Authorization: Bearer <token>');
  return async (token) => {
    if (adminCheck) {
      try {
        adminCheck.verify(token);
        return;
      } catch {
        if (authenticator.mode !== 'jwt') throw missing();
      }
    }
    if (authenticator.mode === 'open') return;
    if (token === undefined) throw missing();
    let identity;
    try {
      identity = await authenticator.verify(token);
    } catch (error) {
      if (error instanceof SpoolError && error.code === 'UNAUTHORIZED') throw missing();
      throw error;
    }
    if (!identity.scopes.admin) throw new SpoolError('FORBIDDEN', "the token's spool.admin is not true: it does not grant the admin API");
  };
}
