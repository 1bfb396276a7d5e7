/**
 * The default transport, on the `ws` package and node:http.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Subprotocol } from '../protocol/types';
import { nodeExchange, routeFor } from './http-exchange';
import { answerUpgrade, negotiateSubprotocol, type ListenOptions, type Transport, type TransportServer, type TransportSocket } from './transport';

const DRAIN_POLL_MS = 10;

class WsSocket implements TransportSocket {
  alive = true;
  readonly protocol: Subprotocol | null;
  readonly remoteAddress: string;

  constructor(private readonly ws: WebSocket, remoteAddress: string) {
    this.protocol = ws.protocol === SUBPROTOCOL_MSGPACK || ws.protocol === SUBPROTOCOL_JSON ? ws.protocol : null;
    this.remoteAddress = remoteAddress;
  }

  send(message: Uint8Array | string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(message, { binary: typeof message !== 'string' });
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  onceDrained(lowWaterBytes: number, callback: () => void): void {
    // ws has no public per-socket drain event; a poll only runs while a reader waits, so it
    // costs nothing on the hot path.
    const check = (): void => {
      if (this.ws.readyState !== this.ws.OPEN) return;
      if (this.ws.bufferedAmount <= lowWaterBytes) callback();
      else setTimeout(check, DRAIN_POLL_MS);
    };
    check();
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }

  ping(): void {
    this.ws.ping();
  }

  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }
}

/** A repeated header as its values joined by ', ' (how X-Forwarded-For hops append). */
function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

export const wsTransport: Transport = {
  name: 'ws',
  async listen(options: ListenOptions): Promise<TransportServer> {
    // The client address verifyClient resolved for an upgrade, read again when it becomes a WebSocket.
    const clientAddresses = new WeakMap<http.IncomingMessage, string>();
    const server = createServer(options, (req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const route = routeFor(options.routes, path);
      if (route) {
        route.handle(nodeExchange(req, res));
        return;
      }
      if (req.method !== 'GET') {
        res.writeHead(405).end();
        return;
      }
      options.http(path).then(
        (reply) => res.writeHead(reply.status, { 'content-type': reply.contentType }).end(reply.body),
        () => res.writeHead(500).end(),
      );
    });
    const wss = new WebSocketServer({
      server,
      path: options.path,
      maxPayload: options.maxPayloadBytes,
      perMessageDeflate: false,
      // An offer of only other subprotocols is refused here with HTTP 400 (answerUpgrade). A
      // request that offers none is accepted without a subprotocol (ws calls handleProtocols
      // only when something was offered), so the connection can tell it UNSUPPORTED_PROTOCOL.
      verifyClient: (info, done) => {
        const peer = info.req.socket.remoteAddress ?? '';
        const address = options.clientAddress ? options.clientAddress(peer, headerText(info.req.headers['x-forwarded-for'])) : peer;
        clientAddresses.set(info.req, address);
        const refusal = options.admit?.(address, info.origin || undefined);
        if (refusal) {
          done(false, refusal.status, refusal.body, { 'Content-Type': refusal.contentType });
          return;
        }
        const answer = answerUpgrade(info.req.headers['sec-websocket-protocol']);
        if (answer.accept) {
          done(true);
          return;
        }
        options.refused?.('UNSUPPORTED_PROTOCOL');
        // ws answers with these status, body and headers, then closes the TCP connection.
        done(false, answer.reply.status, answer.reply.body, { 'Content-Type': answer.reply.contentType });
      },
      handleProtocols: (offered) => negotiateSubprotocol(offered) ?? false,
    });
    applyRequestDeadlines(server, options);
    // Sockets past the cap are closed as they are accepted, before any byte is read.
    if (options.maxSockets !== undefined) server.maxConnections = options.maxSockets;
    const sockets = new Set<WsSocket>();
    wss.on('connection', (ws, req) => {
      const socket = new WsSocket(ws, clientAddresses.get(req) ?? req.socket.remoteAddress ?? '');
      sockets.add(socket);
      const handlers = options.accept(socket);
      ws.on('pong', () => {
        socket.alive = true;
      });
      ws.on('message', (data, isBinary) => {
        socket.alive = true;
        const message = isBinary ? (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)) : data.toString();
        handlers.onMessage(message);
      });
      ws.on('close', (code, reason) => {
        sockets.delete(socket);
        handlers.onClose(code, reason.toString());
      });
      ws.on('error', () => {
        // 'close' follows every 'error'; the connection reports it there.
      });
    });
    // One liveness timer for all sockets: ping, and terminate those that did not answer the last one.
    const heartbeat = setInterval(() => {
      for (const socket of sockets) {
        if (!socket.alive) {
          socket.terminate();
          continue;
        }
        socket.alive = false;
        socket.ping();
      }
    }, Math.max(50, Math.floor(options.idleTimeoutMs / 2)));
    heartbeat.unref();

    // ws re-emits the http server's errors on the WebSocketServer; unheard, a failed listen
    // (EADDRINUSE) would become an uncaught exception instead of the rejection below.
    wss.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const failed = (error: Error): void => {
        clearInterval(heartbeat);
        wss.close();
        reject(error);
      };
      server.once('error', failed);
      server.listen(options.port, options.host, () => {
        server.off('error', failed);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    let accepting = true;
    let closed: Promise<void> | undefined;
    return {
      port,
      async stopAccepting() {
        if (!accepting) return;
        accepting = false;
        // Refuse new upgrades; keep established sockets.
        server.removeAllListeners('upgrade');
        server.on('upgrade', (_req, raw) => raw.destroy());
      },
      close() {
        closed ??= new Promise<void>((resolve) => {
          clearInterval(heartbeat);
          for (const socket of sockets) socket.terminate();
          wss.close(() => {
            server.close(() => resolve());
            server.closeAllConnections();
          });
        });
        return closed;
      },
    };
  },
};

/** node:http, or node:https serving the certificate and key of `tls` (a TLS handshake must then finish within the headers timeout). */
function createServer(options: ListenOptions, handler: http.RequestListener): http.Server {
  if (!options.tls) return http.createServer(handler);
  return https.createServer(
    {
      cert: fs.readFileSync(options.tls.certFile),
      key: fs.readFileSync(options.tls.keyFile),
      ...(options.headersTimeoutMs !== undefined ? { handshakeTimeout: options.headersTimeoutMs } : {}),
    },
    handler,
  );
}

/**
 * A request whose line and headers (an upgrade's included) or whole body are not in within the
 * timeouts is answered 408 and its socket closed (set before listen: node:http starts its checks then).
 */
function applyRequestDeadlines(server: http.Server, options: ListenOptions): void {
  const headersTimeout = options.headersTimeoutMs;
  if (headersTimeout === undefined) return;
  server.headersTimeout = headersTimeout;
  server.requestTimeout = Math.max(headersTimeout, options.requestTimeoutMs ?? headersTimeout);
  // How often node:http looks for requests past them; its default, 30 s, would let a slow request
  // live up to 30 s past its deadline.
  (server as http.Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4)));
}
