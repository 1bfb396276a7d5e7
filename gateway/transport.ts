/**
 * The Transport seam: ws and uWebSockets.js implement it; the connection never knows which.
 * A transport owns the listening socket, the HTTP side (metrics, health), WebSocket framing,
 * subprotocol negotiation and liveness (transport-level pings); it hands decoded-size-checked
 * messages to the handlers the gateway returns from `accept`.
 */
import type { Subprotocol } from '../protocol/types';

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
  /** Messages above this are refused by the transport itself (close 1009); see maxFrameBytes. */
  readonly maxPayloadBytes: number;
  /** A socket that answers no transport ping for this long is terminated. */
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
