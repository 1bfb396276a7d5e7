/**
 * What the session actor needs of a client connection: a place to send frames and the state
 * of its socket's send buffer. The connection implements it; the actor never sees a socket.
 */
import type { SpoolError } from '../protocol/errors';
import type { ServerFrame } from '../protocol/types';
import type { SharedFrame } from './shared-frame';

export interface Link {
  /** The connection id, for logs and telemetry. */
  readonly id: string;
  send(frame: ServerFrame): void;
  /** Sends a frame many links share; its bytes are encoded once per subprotocol, not per link. */
  sendShared(frame: SharedFrame): void;
  /** Sends an `error` frame (and closes the socket when the registry says the code closes). */
  sendError(error: SpoolError, ref?: string, requestId?: number): void;
  bufferedAmount(): number;
  onceDrained(lowWaterBytes: number, callback: () => void): void;
}
