/**
 * The Transport seam: ws and uWebSockets.js implement it; the connection never knows which.
 * A transport owns the listening socket, the HTTP side (metrics, health), WebSocket framing,
 * subprotocol negotiation and liveness (transport-level pings); it hands decoded-size-checked
 * messages to the handlers the gateway returns from `accept`.
 */
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Subprotocol } from '../protocol/types';
import type { HttpRoute } from './http-exchange';

/** The transports spool ships, as named by `--transport` and `SPOOL_TRANSPORT`. */
export type TransportName = 'ws' | 'uws';
export const TRANSPORT_NAMES: readonly TransportName[] = ['ws', 'uws'];

/** Reads a transport name given as `source` (a flag, an environment variable); throws on anything else. */
export function parseTransportName(raw: string, source: string): TransportName {
  if ((TRANSPORT_NAMES as readonly string[]).includes(raw)) return raw as TransportName;
  throw new Error(`${source}=${raw} is not a transport; use ${TRANSPORT_NAMES.join(' or ')}`);
}

export interface TransportSocket {
  /** The negotiated subprotocol, or null when the client offered none spool speaks. */
  readonly protocol: Subprotocol | null;
  readonly remoteAddress: string;
  send(message: Uint8Array | string): void;
  /** Bytes queued toward the peer and not yet written to the kernel. */
  bufferedAmount(): number;
  /** Calls `callback` once the buffered amount falls to `lowWaterBytes` or below. */
  onceDrained(lowWaterBytes: number, callback: () => void): void;
  close(code: number, reason: string): void;
  terminate(): void;
  /**
   * Stops reading from the peer (its frames wait in kernel buffers and its writes block) until
   * resumeReading. Optional: uWebSockets.js cannot pause one WebSocket, and the edge's gate
   * queues (bounded) what arrives meanwhile instead (edge/inbound-gate.ts).
   */
  pauseReading?(): void;
  resumeReading?(): void;
}

export interface SocketHandlers {
  onMessage(message: Uint8Array | string): void;
  onClose(code: number, reason: string): void;
}

export interface HttpResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  /** WebSocket path, e.g. /v1. */
  readonly path: string;
  /**
   * Messages above this are refused by the transport itself: the socket is closed (ws: close
   * frame 1009; uWebSockets.js: dropped without a close frame, the client sees 1006).
   */
  readonly maxPayloadBytes: number;
  /**
   * A socket that answers no transport ping for this long is terminated. (uWebSockets.js counts
   * idle time in whole seconds, a multiple of 4 between 8 and 960; see uwsIdleTimeoutSeconds.)
   */
  readonly idleTimeoutMs: number;
  /** Serves plain HTTP GETs (metrics, health). */
  readonly http: (path: string) => Promise<HttpResponse>;
  /** Routes served with the whole request and a streaming response, any method (the Durable Streams door); they take precedence over `http`. */
  readonly routes?: readonly HttpRoute[];
  /** Called for every accepted WebSocket; returns its handlers. */
  readonly accept: (socket: TransportSocket) => SocketHandlers;
  /** Called when an upgrade is refused with `code` before any socket exists (for the errors metric). */
  readonly refused?: (code: 'UNSUPPORTED_PROTOCOL') => void;
  /**
   * Asked before an upgrade becomes a WebSocket (edge limits, the Origin allowlist): the HTTP
   * answer refusing it, or undefined to go on. `origin` is the request's Origin header, if any.
   */
  readonly admit?: (remoteAddress: string, origin: string | undefined) => HttpResponse | undefined;
  /**
   * The client's address of an upgrade from `peer` with this X-Forwarded-For header (trusted
   * proxies, edge/addresses.ts): what `admit` is asked with and the socket's remoteAddress.
   * Unset: the peer's address.
   */
  readonly clientAddress?: (peer: string, forwardedFor: string | undefined) => string;
  /** Serve https / wss with this certificate chain and key (PEM file paths). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /**
   * A request's line and headers (an upgrade's too) must arrive within this long, the whole request
   * within requestTimeoutMs; else 408 and the socket is closed. The ws transport (node:http) applies
   * them; uWebSockets.js drops a connection whose request is not complete within ~10 s by itself.
   */
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** TCP sockets (WebSocket and HTTP) beyond this are closed as they are accepted (ws transport). */
  readonly maxSockets?: number;
}

export interface TransportServer {
  readonly port: number;
  /** Stops accepting new connections; existing sockets stay open. Idempotent. */
  stopAccepting(): Promise<void>;
  /** Releases the listener (after sockets were closed). Idempotent. */
  close(): Promise<void>;
}

export interface Transport {
  readonly name: string;
  listen(options: ListenOptions): Promise<TransportServer>;
}

/** The subprotocols spool speaks, in the order it prefers them. */
export const SUPPORTED_SUBPROTOCOLS: readonly Subprotocol[] = [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON];

/**
 * The subprotocol to select from those a client offered: `spool.v1` before `spool.v1.json`
 * (PROTOCOL §2.1), or null when it offered neither.
 */
export function negotiateSubprotocol(offered: Iterable<string>): Subprotocol | null {
  const set = new Set(offered);
  if (set.has(SUBPROTOCOL_MSGPACK)) return SUBPROTOCOL_MSGPACK;
  if (set.has(SUBPROTOCOL_JSON)) return SUBPROTOCOL_JSON;
  return null;
}

/** The values of a Sec-WebSocket-Protocol header (absent or empty: none). */
export function offeredSubprotocols(header: string | undefined): string[] {
  if (header === undefined || header === '') return [];
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
}

/**
 * How a transport answers an upgrade request, from its Sec-WebSocket-Protocol header (PROTOCOL
 * §2.1):
 *
 *   offered spool.v1 and/or spool.v1.json  -> 101, selecting spool.v1 before spool.v1.json
 *   offered nothing (no header)            -> 101 without a subprotocol; the connection then sends
 *                                             UNSUPPORTED_PROTOCOL and closes 4001 (a client that
 *                                             offered nothing accepts a 101 without one)
 *   offered only others                    -> HTTP 400 with a JSON body, connection closed: a
 *                                             standards-compliant client fails a 101 that selects
 *                                             none of its offers ("server sent no subprotocol")
 *                                             before it could read any error frame
 */
export type UpgradeAnswer =
  | { readonly accept: true; readonly protocol: Subprotocol | null }
  | { readonly accept: false; readonly reply: HttpResponse };

export function answerUpgrade(header: string | undefined): UpgradeAnswer {
  const offered = offeredSubprotocols(header);
  const protocol = negotiateSubprotocol(offered);
  if (protocol !== null || offered.length === 0) return { accept: true, protocol };
  return { accept: false, reply: unsupportedSubprotocolReply(offered) };
}

/** Longest excerpt of the client's offer quoted back in the refusal. */
const OFFER_EXCERPT_CHARS = 200;

/** The HTTP 400 refusing an upgrade that offered only subprotocols spool does not speak. */
export function unsupportedSubprotocolReply(offered: readonly string[]): HttpResponse {
  let quoted = offered.map((p) => `'${p}'`).join(', ');
  if (quoted.length > OFFER_EXCERPT_CHARS) quoted = `${quoted.slice(0, OFFER_EXCERPT_CHARS)}…`;
  const body = {
    code: 'UNSUPPORTED_PROTOCOL',
    message: `offered subprotocol(s) ${quoted}; offer '${SUBPROTOCOL_MSGPACK}' (msgpack) or '${SUBPROTOCOL_JSON}' in Sec-WebSocket-Protocol`,
    supported: SUPPORTED_SUBPROTOCOLS,
  };
  return { status: 400, contentType: 'application/json', body: JSON.stringify(body) };
}
