/**
 * The Transport seam: ws and uWebSockets.js implement it; the connection never knows which.
 * A transport owns the listening socket, the HTTP side (metrics, health), WebSocket framing,
 * subprotocol negotiation and liveness (transport-level pings); it hands decoded-size-checked
 * messages to the handlers the gateway returns from `accept`.
 */
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Subprotocol } from '../protocol/types';

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
  /** Called for every accepted WebSocket; returns its handlers. */
  readonly accept: (socket: TransportSocket) => SocketHandlers;
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

/**
 * The subprotocol to select from those a client offered: `spool.v1` before `spool.v1.json`
 * (PROTOCOL §2.1), or null when it offered neither. The upgrade still succeeds then, so the
 * connection can tell the client UNSUPPORTED_PROTOCOL instead of a bare refusal.
 */
export function negotiateSubprotocol(offered: Iterable<string>): Subprotocol | null {
  const set = new Set(offered);
  if (set.has(SUBPROTOCOL_MSGPACK)) return SUBPROTOCOL_MSGPACK;
  if (set.has(SUBPROTOCOL_JSON)) return SUBPROTOCOL_JSON;
  return null;
}
