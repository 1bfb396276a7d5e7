/**
 * WebSocket clients below any WebSocket library, for edge tests and the flood benchmark: a TCP
 * socket that does the upgrade by hand and then writes frames as given, reading nothing more (a
 * peer that never reads its replies), and an HTTP request trickled byte by byte (a slow request).
 */
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';

export interface FloodSocket {
  readonly socket: net.Socket;
  /** The HTTP status line and headers the upgrade was answered with. */
  readonly head: string;
  /** Resolves when the gateway closed (or reset) the connection. */
  readonly closed: Promise<void>;
}

export interface FloodOptions {
  readonly host?: string;
  readonly port: number;
  readonly path?: string;
  readonly protocol?: string;
  readonly localAddress?: string;
  /** Connect with TLS, trusting this CA (PEM). */
  readonly tlsCa?: string | Buffer;
}

/**
 * Opens a WebSocket by hand and returns once the 101 (or any answer) was read; from then on the
 * socket is paused: nothing the gateway sends is read, so its replies pile up on its side.
 */
export function openUnreadSocket(options: FloodOptions): Promise<FloodSocket> {
  const host = options.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    const connectOptions = { host, port: options.port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) };
    const socket: net.Socket = options.tlsCa !== undefined ? tls.connect({ ...connectOptions, ca: options.tlsCa, servername: 'localhost' }) : net.connect(connectOptions);
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', () => {});
    socket.once('close', () => reject(new Error('closed before the upgrade was answered')));
    socket.once(options.tlsCa !== undefined ? 'secureConnect' : 'connect', () => {
      socket.write(
        [
          `GET ${options.path ?? '/v1'} HTTP/1.1`,
          `Host: ${host}:${options.port}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          `Sec-WebSocket-Protocol: ${options.protocol ?? 'spool.v1'}`,
          '',
          '',
        ].join('\r\n'),
      );
    });
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      // From here on nothing is read: the kernel's buffers fill, then the gateway's.
      socket.pause();
      resolve({ socket, head: received.subarray(0, end).toString('latin1'), closed });
    };
    socket.on('data', onData);
  });
}

/** One masked client frame (RFC 6455 §5.2) with `payload` (< 126 bytes), text or binary. */
export function clientFrame(payload: Uint8Array, binary = false): Buffer {
  if (payload.length >= 126) throw new Error('clientFrame: payloads of 126 bytes and more are not needed here');
  const mask = randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = binary ? 0x82 : 0x81;
  frame[1] = 0x80 | payload.length;
  mask.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return frame;
}

/**
 * Writes `block` (many frames) again and again while the socket takes it, until it is closed or
 * `maxBytes` were written; resolves with the bytes written. Honours backpressure (waits for
 * 'drain'), so the flood sits in the gateway's buffers, not this process's.
 */
export async function flood(target: FloodSocket, block: Buffer, maxBytes = Infinity): Promise<number> {
  const { socket } = target;
  let written = 0;
  let open = !socket.destroyed;
  target.closed.then(() => {
    open = false;
  });
  while (open && written < maxBytes) {
    written += block.length;
    if (!socket.write(block)) {
      await Promise.race([new Promise<void>((resolve) => socket.once('drain', () => resolve())), target.closed]);
    }
  }
  return written;
}

/**
 * Sends `request` one byte every `intervalMs` on a fresh TCP connection and resolves, when the
 * server closes it, with what the server answered and how many bytes it had been sent.
 */
export function trickle(port: number, request: string, intervalMs: number, host = '127.0.0.1'): Promise<{ answer: string; sent: number }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    let answer = '';
    let sent = 0;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
    });
    const timer = setInterval(() => {
      if (sent < request.length && !socket.destroyed) socket.write(request.charAt(sent++));
    }, intervalMs);
    socket.once('close', () => {
      clearInterval(timer);
      resolve({ answer, sent });
    });
  });
}
