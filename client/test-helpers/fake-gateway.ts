/**
 * A tiny hand-driven gateway for the SDK's unit tests: a real `ws` server on port 0 that does
 * the handshake and records every frame; the test plays the gateway's side by hand (opened,
 * ack, events …). Every wait has a timeout, so a broken SDK fails fast instead of hanging.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import {
  DEFAULT_LIMITS,
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  decodeFrame,
  encodeFrame,
  type Frame,
  type Subprotocol,
} from '../../protocol';

/** A decoded client frame as the fake saw it (loosely typed: tests read fields directly). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Seen = { type: string; [field: string]: any };

export interface FakeGatewayOptions {
  /** Overrides of the `welcome` frame (heartbeatMs, credit, limits). */
  readonly welcome?: Record<string, unknown>;
  /** Answer `ping` with `pong`. @default true */
  readonly pong?: boolean;
  /** Answer `hello` with `welcome`. @default true */
  readonly autoWelcome?: boolean;
}

export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Lets every queued microtask and I/O callback run once (not a sleep: no wall-clock wait). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class FakeSocket {
  /** Every frame received, pings excluded, in arrival order. */
  readonly frames: Seen[] = [];
  pings = 0;
  readonly closed: Promise<{ code: number }>;
  private unread: Seen[] = [];
  private waiters: Array<{ type: string | undefined; resolve: (frame: Seen) => void }> = [];

  constructor(
    readonly ws: WebSocket,
    readonly subprotocol: Subprotocol,
    private readonly options: FakeGatewayOptions,
  ) {
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve({ code })));
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      const frame = decodeFrame(isBinary ? new Uint8Array(bytes) : bytes.toString('utf8'), subprotocol) as Seen;
      this.onFrame(frame);
    });
  }

  send(frame: Record<string, unknown> & { type: string }): void {
    this.ws.send(encodeFrame(frame as unknown as Frame, this.subprotocol));
  }

  /** Waits for the next unread frame (of `type`, skipping none: frames of other types stay unread). */
  next(type?: string, ms = 15_000): Promise<Seen> {
    const index = this.unread.findIndex((frame) => type === undefined || frame.type === type);
    if (index >= 0) return Promise.resolve(this.unread.splice(index, 1)[0] as Seen);
    return within(new Promise<Seen>((resolve) => this.waiters.push({ type, resolve })), ms, `a ${type ?? 'any'} frame`);
  }

  /** The unread frames of `type` (consumed). */
  take(type: string): Seen[] {
    const taken = this.unread.filter((frame) => frame.type === type);
    this.unread = this.unread.filter((frame) => frame.type !== type);
    return taken;
  }

  terminate(): void {
    this.ws.terminate();
  }

  close(code: number, reason = ''): void {
    this.ws.close(code, reason);
  }

  private onFrame(frame: Seen): void {
    if (frame.type === 'ping') {
      this.pings++;
      if (this.options.pong !== false) this.send({ type: 'pong', ...(frame['id'] !== undefined ? { id: frame['id'] } : {}) });
      return;
    }
    this.frames.push(frame);
    if (frame.type === 'hello' && this.options.autoWelcome !== false) {
      this.send({
        type: 'welcome',
        connectionId: `c${Math.random().toString(36).slice(2, 8)}`,
        protocol: 1,
        limits: { maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes, maxBatchItems: DEFAULT_LIMITS.maxBatchItems },
        credit: { frames: 1024, bytes: 1024 * 1024 },
        heartbeatMs: 60_000,
        ...this.options.welcome,
      });
    }
    const index = this.waiters.findIndex((waiter) => waiter.type === undefined || waiter.type === frame.type);
    if (index >= 0) {
      const [waiter] = this.waiters.splice(index, 1);
      waiter?.resolve(frame);
    } else {
      this.unread.push(frame);
    }
  }
}

export class FakeGateway {
  readonly sockets: FakeSocket[] = [];
  private readonly pendingSockets: FakeSocket[] = [];
  private waiters: Array<(socket: FakeSocket) => void> = [];

  private constructor(
    private readonly server: WebSocketServer,
    readonly url: string,
    private readonly options: FakeGatewayOptions,
  ) {
    server.on('connection', (ws) => {
      const subprotocol = ws.protocol === SUBPROTOCOL_JSON ? SUBPROTOCOL_JSON : SUBPROTOCOL_MSGPACK;
      const socket = new FakeSocket(ws, subprotocol, this.options);
      this.sockets.push(socket);
      const waiter = this.waiters.shift();
      if (waiter !== undefined) waiter(socket);
      else this.pendingSockets.push(socket);
    });
  }

  static start(options: FakeGatewayOptions = {}): Promise<FakeGateway> {
    return new Promise((resolve, reject) => {
      const server = new WebSocketServer({
        port: 0,
        host: '127.0.0.1',
        handleProtocols: (protocols) =>
          protocols.has(SUBPROTOCOL_MSGPACK) ? SUBPROTOCOL_MSGPACK : protocols.has(SUBPROTOCOL_JSON) ? SUBPROTOCOL_JSON : false,
      });
      server.once('error', reject);
      server.once('listening', () => {
        const address = server.address();
        if (address === null || typeof address === 'string') throw new Error('unexpected server address');
        resolve(new FakeGateway(server, `ws://127.0.0.1:${address.port}/v1`, options));
      });
    });
  }

  /** The next connection not yet handed out, in order of arrival. */
  nextSocket(ms = 15_000): Promise<FakeSocket> {
    const socket = this.pendingSockets.shift();
    if (socket !== undefined) return Promise.resolve(socket);
    return within(new Promise<FakeSocket>((resolve) => this.waiters.push(resolve)), ms, 'a client connection');
  }

  /** Next connection, its hello already received (and answered unless autoWelcome is off). */
  async accept(ms = 15_000): Promise<FakeSocket> {
    const socket = await this.nextSocket(ms);
    await socket.next('hello', ms);
    return socket;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
