/**
 * The gate between a transport socket and its connection: it stops reading from a peer that
 * does not read what it is sent, and paces one that sends frames faster than the connection's
 * rate. It is the connection's socket (everything sent goes through it) and the transport's
 * handlers (everything received comes through it); the connection knows neither limit.
 *
 *                 ┌──── drained to half the bound ────┐
 *                 ▼                                   │
 *   reading ──sent past maxBufferedBytes──▶ backed-up ──no drain within drainTimeoutMs──▶ cut
 *      │  ▲                                           └──queue full──────────────────────▶ cut
 *      │  └──── a token is back ────┐
 *      └──bucket empty──▶ throttled ┘ ──queue full──▶ that frame refused (RATE_LIMITED)
 *
 * While backed-up or throttled the socket is paused where the transport can pause it (ws: the
 * TCP socket stops being read, so the peer's frames wait in kernel buffers and its writes block),
 * and every message that still arrives (ws hands over a read it had already parsed; uWebSockets.js
 * cannot pause) waits in a bounded queue, to run in order once reading resumes. Without this a
 * peer that never reads and keeps sending frames that each earn a reply made the gateway buffer
 * the replies without bound (PROTOCOL §12.1).
 *
 * "cut": the connection is told SLOW_CONSUMER and the socket is dropped at once (a peer that does
 * not read would not read the close frame either; it sees 1006).
 */
import { SpoolError, formatBytes } from '../../protocol/errors';
import type { SocketHandlers, TransportSocket } from '../transport';
import { TokenBucket } from './token-bucket';

export interface GateOptions {
  /** Frames a second a connection may send, with one second's worth as the burst; 0 = no limit. */
  readonly maxFramesPerSecond: number;
  /** Past this many bytes queued toward the peer the gate stops reading from it; 0 = no limit. */
  readonly maxBufferedBytes: number;
  /** A backed-up connection that does not drain to half of maxBufferedBytes within this long is cut. */
  readonly drainTimeoutMs: number;
  /** Most messages (and their bytes) waiting while reading is paused. */
  readonly maxQueuedFrames: number;
  readonly maxQueuedBytes: number;
  /** Monotonic milliseconds. @default performance.now */
  readonly now?: () => number;
}

/** What the gate hands messages to: the connection. */
export interface GatedHandlers extends SocketHandlers {
  /** A message the gate does not deliver (its queue is full while throttled): answer it with `error`. */
  refuse(message: Uint8Array | string, error: SpoolError): void;
  /** The peer stopped reading: tell it `error` in case it ever reads, and drop the socket now. */
  cut(error: SpoolError): void;
}

export class InboundGate implements TransportSocket, SocketHandlers {
  readonly protocol: TransportSocket['protocol'];
  readonly remoteAddress: string;
  private handlers: GatedHandlers | undefined;
  private readonly bucket: TokenBucket | undefined;
  /** Messages that arrived while reading was paused, oldest first. */
  private queue: Array<Uint8Array | string> = [];
  private queuedBytes = 0;
  private backedUp = false;
  private drainTimer: NodeJS.Timeout | undefined;
  private throttleTimer: NodeJS.Timeout | undefined;
  private releasing = false;
  /** Cut, or closed: nothing more is delivered. */
  private done = false;
  private closed = false;

  constructor(
    private readonly socket: TransportSocket,
    private readonly options: GateOptions,
  ) {
    this.protocol = socket.protocol;
    this.remoteAddress = socket.remoteAddress;
    const rate = options.maxFramesPerSecond;
    this.bucket = rate > 0 ? new TokenBucket(rate, Math.max(1, rate), options.now ?? (() => performance.now())) : undefined;
  }

  /** The handlers messages go to (the connection, which is built around this gate). */
  attach(handlers: GatedHandlers): void {
    this.handlers = handlers;
  }

  // ------------------------------------------------------------------ TransportSocket (the connection's side)

  send(message: Uint8Array | string): void {
    this.socket.send(message);
    const max = this.options.maxBufferedBytes;
    if (!this.backedUp && max > 0 && !this.done && this.socket.bufferedAmount() > max) this.backUp();
  }

  bufferedAmount(): number {
    return this.socket.bufferedAmount();
  }

  onceDrained(lowWaterBytes: number, callback: () => void): void {
    this.socket.onceDrained(lowWaterBytes, callback);
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
  }

  terminate(): void {
    this.socket.terminate();
  }

  // ------------------------------------------------------------------ SocketHandlers (the transport's side)

  onMessage(message: Uint8Array | string): void {
    if (this.done) return;
    // Behind queued messages, or while paused, a message waits its turn.
    if (this.backedUp || this.throttleTimer !== undefined || this.queue.length > 0) {
      this.enqueue(message);
      return;
    }
    if (this.bucket !== undefined && !this.bucket.take()) {
      this.enqueue(message);
      this.throttle();
      return;
    }
    this.handlers?.onMessage(message);
  }

  onClose(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.done = true;
    clearTimeout(this.drainTimer);
    clearTimeout(this.throttleTimer);
    this.queue = [];
    this.queuedBytes = 0;
    this.handlers?.onClose(code, reason);
  }

  // ------------------------------------------------------------------ pausing

  private enqueue(message: Uint8Array | string): void {
    const bytes = typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength;
    const { maxQueuedFrames, maxQueuedBytes } = this.options;
    if (this.queue.length >= maxQueuedFrames || this.queuedBytes + bytes > maxQueuedBytes) {
      if (this.backedUp) {
        this.cut(`kept sending (more than ${maxQueuedFrames} frames or ${formatBytes(maxQueuedBytes)} waiting) while not reading its replies`);
      } else {
        const rate = this.options.maxFramesPerSecond;
        this.handlers?.refuse(
          message,
          new SpoolError('RATE_LIMITED', `more than ${rate} frames a second, and ${maxQueuedFrames} frames (or ${formatBytes(maxQueuedBytes)}) already waiting; slow down and resend`, { limit: rate }),
        );
      }
      return;
    }
    this.queue.push(message);
    this.queuedBytes += bytes;
    this.socket.pauseReading?.();
  }

  /** Waits for the next token, then runs what waits. */
  private throttle(): void {
    if (this.throttleTimer !== undefined || this.bucket === undefined) return;
    this.socket.pauseReading?.();
    this.throttleTimer = setTimeout(() => {
      this.throttleTimer = undefined;
      this.release();
    }, Math.max(1, this.bucket.msUntilToken()));
  }

  /** The peer is not reading: stop reading it, and cut it unless it drains in time. */
  private backUp(): void {
    this.backedUp = true;
    this.socket.pauseReading?.();
    const max = this.options.maxBufferedBytes;
    this.drainTimer = setTimeout(() => {
      this.cut(`did not read: more than ${formatBytes(max)} waited toward it for ${this.options.drainTimeoutMs} ms`);
    }, this.options.drainTimeoutMs);
    this.socket.onceDrained(max / 2, () => {
      if (this.done) return;
      clearTimeout(this.drainTimer);
      this.drainTimer = undefined;
      this.backedUp = false;
      this.release();
    });
  }

  /** Runs the messages that waited, in order, for as long as reading may go on; then reads again. */
  private release(): void {
    if (this.releasing) return; // a message run below sent enough to back up again, or similar
    this.releasing = true;
    try {
      while (this.queue.length > 0 && !this.done && !this.backedUp) {
        if (this.bucket !== undefined && !this.bucket.take()) {
          this.throttle();
          return;
        }
        const message = this.queue.shift() as Uint8Array | string;
        this.queuedBytes -= typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength;
        this.handlers?.onMessage(message);
      }
      if (this.queue.length === 0 && !this.backedUp && this.throttleTimer === undefined && !this.done) this.socket.resumeReading?.();
    } finally {
      this.releasing = false;
    }
  }

  private cut(why: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.drainTimer);
    clearTimeout(this.throttleTimer);
    this.queue = [];
    this.queuedBytes = 0;
    this.handlers?.cut(new SpoolError('SLOW_CONSUMER', `connection ${why}; reconnect and read what you are sent`, { limit: this.options.maxBufferedBytes }));
  }
}
