/**
 * The fast transport, on uWebSockets.js (the npm build `@trufflesuite/uws-js-unofficial`, whose
 * native binaries load on Node 20). Same contract as transport-ws.ts; the connection never
 * knows which one it has.
 *
 * uWebSockets.js rules kept here (breaking them throws or crashes natively):
 * - A WebSocket or HttpResponse must not be used after its close / abort: uws throws "Invalid
 *   access of closed uWS.WebSocket". Each socket carries a `closed` flag set in the close
 *   handler, and every method checks it; each HTTP reply checks its `aborted` flag.
 * - The ArrayBuffer given to `message` is valid only until the handler returns (uws neuters and
 *   reuses it): binary messages are copied into a Buffer, text messages decoded to a string,
 *   before the connection sees them.
 * - `ws.end()` / `ws.close()` run the close handler synchronously, inside the caller. The
 *   connection hears of the close on a microtask instead, so it never sees its own close
 *   re-entrantly (ws reports closes asynchronously too) — and a socket closed from inside
 *   `accept` (UNSUPPORTED_PROTOCOL) is reported after `accept` returned its handlers.
 * - `idleTimeout` must be 0 or 8..960 seconds (uws aborts the process otherwise); see
 *   uwsIdleTimeoutSeconds.
 *
 * Where the wire behaviour differs from ws (pinned by transport.test.ts / gateway.test.ts):
 * - A message past `maxPayloadBytes`: uws drops the TCP connection without a close frame; the
 *   client sees 1006, where ws sends 1009. The gateway keeps running either way.
 * - Liveness: uws pings a socket that was silent for (idleTimeout − margin) and drops it after
 *   idleTimeout, in whole seconds with 4 s granularity, instead of ws's ping every heartbeatMs.
 *
 *   socket:  open ──(client / server close, idle timeout, oversize)──▶ closed
 *                      close handler: closed = true, drop drain waiters, onClose on a microtask
 */
import { STATUS_CODES } from 'node:http';
import type * as Uws from '@trufflesuite/uws-js-unofficial';
import type { Subprotocol } from '../protocol/types';
import { uwsExchange } from './http-exchange';
import {
  answerUpgrade,
  type HttpResponse,
  type ListenOptions,
  type SocketHandlers,
  type Transport,
  type TransportServer,
  type TransportSocket,
} from './transport';
import { watchFdExhaustion } from './edge/fd-limit';

export const UWS_PACKAGE = '@trufflesuite/uws-js-unofficial';

/** The part of the uWebSockets.js module this transport uses. */
export type UwsModule = Pick<typeof Uws, 'App' | 'SSLApp' | 'us_listen_socket_close' | 'us_socket_local_port' | 'DISABLED'>;

/** `TemplatedApp.close()` (closes every socket of the app) exists in this build but not in its typings. */
type UwsApp = Uws.TemplatedApp & { close(): void };

interface UserData {
  readonly protocol: Subprotocol | null;
  /** The client's address, resolved at the upgrade (trusted proxies). */
  readonly remoteAddress: string;
  socket: UwsSocket | null;
}

/** `ws.send` results: 1 sent, 0 queued as backpressure, 2 dropped (past maxBackpressure). */
const SEND_DROPPED = 2;

const utf8 = new TextDecoder();

class UwsSocket implements TransportSocket {
  closed = false;
  handlers: SocketHandlers | null = null;
  private drainWaiters: Array<{ readonly lowWaterBytes: number; readonly callback: () => void }> = [];

  constructor(
    private readonly ws: Uws.WebSocket<UserData>,
    readonly protocol: Subprotocol | null,
    readonly remoteAddress: string,
  ) {}

  send(message: Uint8Array | string): void {
    if (this.closed) return;
    if (this.ws.send(message, typeof message !== 'string') === SEND_DROPPED) {
      // Cannot happen with maxBackpressure 0 (see listen); if a build ever drops anyway, losing
      // a frame silently would break resume, so the socket goes and the client resumes instead.
      this.terminate();
    }
  }

  bufferedAmount(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount();
  }

  onceDrained(lowWaterBytes: number, callback: () => void): void {
    if (this.closed) return;
    if (this.ws.getBufferedAmount() <= lowWaterBytes) callback();
    else this.drainWaiters.push({ lowWaterBytes, callback });
  }

  /** uws `drain` handler: the backlog shrank; wake the waiters whose low-water mark it reached. */
  drained(): void {
    if (this.closed || this.drainWaiters.length === 0) return;
    const buffered = this.ws.getBufferedAmount();
    const ready = this.drainWaiters.filter((w) => buffered <= w.lowWaterBytes);
    if (ready.length === 0) return;
    this.drainWaiters = this.drainWaiters.filter((w) => buffered > w.lowWaterBytes);
    // A callback may send (growing the backlog again) or close the socket; both are safe here.
    for (const waiter of ready) waiter.callback();
  }

  close(code: number, reason: string): void {
    if (!this.closed) this.ws.end(code, reason);
  }

  terminate(): void {
    if (!this.closed) this.ws.close();
  }

  /** uws `close` handler. The ws object must not be touched from here on. */
  onClosed(code: number, reason: string): void {
    this.closed = true;
    this.drainWaiters = [];
    queueMicrotask(() => this.handlers?.onClose(code, reason));
  }
}

/**
 * uws's idle timeout for `idleTimeoutMs`: whole seconds, rounded down to a multiple of 4 (its
 * timer granularity) so a silent socket never lives longer than asked, within the 8..960 s
 * uws accepts. Below 8 s the transport cannot follow the heartbeat and uses 8 s.
 */
export function uwsIdleTimeoutSeconds(idleTimeoutMs: number): number {
  const seconds = Math.floor(idleTimeoutMs / 4000) * 4;
  return Math.min(960, Math.max(8, seconds));
}

function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? ''}`.trim();
}

/** A Transport on the given uWebSockets.js module (see loadUwsTransport to load it). */
export function createUwsTransport(uws: UwsModule): Transport {
  return {
    name: 'uws',
    async listen(options: ListenOptions): Promise<TransportServer> {
      const app = (options.tls ? uws.SSLApp({ cert_file_name: options.tls.certFile, key_file_name: options.tls.keyFile }) : uws.App()) as UwsApp;
      const sockets = new Set<UwsSocket>();
      let accepting = true;

      for (const route of options.routes ?? []) {
        // More static segments than '/*': uws prefers this pattern for the paths it matches.
        app.any(`${route.prefix}*`, (res, req) => route.handle(uwsExchange(res, req, STATUS_CODES)));
      }
      app.get('/*', (res, req) => {
        // req lives only during this call; res until it is answered or aborted.
        const path = req.getUrl();
        let aborted = false;
        res.onAborted(() => {
          aborted = true;
        });
        const reply = (r: HttpResponse): void => {
          if (aborted) return;
          res.cork(() => {
            res.writeStatus(statusLine(r.status)).writeHeader('content-type', r.contentType).end(r.body);
          });
        };
        options.http(path).then(reply, () => reply({ status: 500, contentType: 'text/plain', body: '' }));
      });
      app.any('/*', (res) => {
        res.writeStatus(statusLine(405)).end();
      });

      app.ws<UserData>(options.path, {
        compression: uws.DISABLED,
        maxPayloadLength: options.maxPayloadBytes,
        idleTimeout: uwsIdleTimeoutSeconds(options.idleTimeoutMs),
        sendPingsAutomatically: true,
        // 0 = no limit. Past a nonzero maxBackpressure uws *drops* sends (returns 2) instead of
        // queueing them, which would be a silent hole in a reader's stream. The gateway bounds
        // what it queues itself (maxReaderBufferedBytes, producer credit), as it does over ws.
        maxBackpressure: 0,
        upgrade: (res, req, context) => {
          if (!accepting) {
            // An HTTP keep-alive connection opened before stopAccepting may still ask to upgrade.
            res.writeStatus(statusLine(503)).end('', true);
            return;
          }
          const peer = utf8.decode(res.getRemoteAddressAsText());
          const remoteAddress = options.clientAddress ? options.clientAddress(peer, req.getHeader('x-forwarded-for') || undefined) : peer;
          const refusal = options.admit?.(remoteAddress, req.getHeader('origin') || undefined);
          if (refusal) {
            res.writeStatus(statusLine(refusal.status)).writeHeader('content-type', refusal.contentType).end(refusal.body, true);
            return;
          }
          // uws reads an absent header as '': no offer, accepted without a subprotocol.
          const answer = answerUpgrade(req.getHeader('sec-websocket-protocol'));
          if (!answer.accept) {
            options.refused?.('UNSUPPORTED_PROTOCOL');
            const { status, contentType, body } = answer.reply;
            res.writeStatus(statusLine(status)).writeHeader('content-type', contentType).end(body, true);
            return;
          }
          const userData: UserData = { protocol: answer.protocol, remoteAddress, socket: null };
          res.upgrade(userData, req.getHeader('sec-websocket-key'), answer.protocol ?? '', req.getHeader('sec-websocket-extensions'), context);
        },
        open: (ws) => {
          const data = ws.getUserData();
          const socket = new UwsSocket(ws, data.protocol, data.remoteAddress);
          data.socket = socket;
          sockets.add(socket);
          socket.handlers = options.accept(socket);
        },
        message: (ws, message, isBinary) => {
          const socket = ws.getUserData().socket;
          if (!socket || socket.closed) return;
          // Copy now: uws reuses `message` once this handler returns.
          socket.handlers?.onMessage(isBinary ? Buffer.from(new Uint8Array(message)) : utf8.decode(message));
        },
        drain: (ws) => {
          ws.getUserData().socket?.drained();
        },
        close: (ws, code, message) => {
          const socket = ws.getUserData().socket;
          if (!socket) return;
          sockets.delete(socket);
          socket.onClosed(code, utf8.decode(message));
        },
      });

      const listenOn = (port: number): Uws.us_listen_socket | false => {
        let socket: Uws.us_listen_socket | false = false;
        app.listen(options.host, port, (ls) => {
          socket = ls; // uws calls back synchronously
        });
        return socket;
      };
      let listenSocket = listenOn(options.port);
      if (!listenSocket) {
        app.close();
        throw new Error(`uWebSockets.js could not listen on ${options.host}:${options.port} (address in use or not available)`);
      }
      const port = uws.us_socket_local_port(listenSocket);
      let listening = true;
      const stopListening = (): void => {
        accepting = false;
        fdWatch.stop();
        if (!listening) return;
        listening = false;
        uws.us_listen_socket_close(listenSocket);
      };
      // Out of file descriptors, uws's accept fails and is retried at once, forever, at 100 % CPU:
      // stop listening until descriptors are free again (clients meanwhile see refused connects).
      const fdWatch = watchFdExhaustion(
        () => {
          if (!listening) return;
          listening = false;
          uws.us_listen_socket_close(listenSocket);
        },
        () => {
          if (listening || !accepting) return true;
          // Tried again at every probe until it works. (uws sets SO_REUSEPORT only when given a
          // port: on port 0 (tests) the port cannot be listened on again while connections live.)
          const ls = listenOn(port);
          if (!ls) return false;
          listenSocket = ls;
          listening = true;
          return true;
        },
      );
      let closed: Promise<void> | undefined;
      return {
        port,
        async stopAccepting() {
          // Closing the listen socket refuses new connections; established sockets stay.
          stopListening();
        },
        close() {
          closed ??= (async () => {
            for (const socket of [...sockets]) socket.terminate();
            stopListening();
            // Also ends HTTP keep-alive connections, which would otherwise keep the process alive.
            app.close();
          })();
          return closed;
        },
      };
    },
  };
}

/** True for the native uWebSockets.js module, false for the package's slow JS stand-in. */
function isNativeUws(mod: unknown): mod is UwsModule {
  const m = mod as Partial<Record<keyof UwsModule, unknown>> | null;
  // The package falls back, with a console warning, to a JavaScript emulation on top of `ws`
  // when its binary does not load; that one lacks the native constants such as DISABLED.
  return (
    typeof m === 'object' &&
    m !== null &&
    typeof m.App === 'function' &&
    typeof m.us_listen_socket_close === 'function' &&
    typeof m.us_socket_local_port === 'function' &&
    typeof m.DISABLED === 'number'
  );
}

/**
 * Loads uWebSockets.js and returns the transport on it. Throws (with the reason) when the
 * module cannot be loaded or only its JavaScript stand-in loaded; selectTransport turns that
 * into a warning and the ws transport. `load` is a seam for tests.
 */
export function loadUwsTransport(load: () => unknown = () => require('@trufflesuite/uws-js-unofficial')): Transport {
  let mod: unknown;
  try {
    mod = load();
  } catch (error) {
    throw new Error(`${UWS_PACKAGE} could not be loaded: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!isNativeUws(mod)) throw new Error(`${UWS_PACKAGE} loaded without its native binary for this platform and Node ABI`);
  return createUwsTransport(mod);
}
