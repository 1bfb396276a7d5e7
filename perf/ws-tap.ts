/**
 * An observer on the SDK's WebSocket seam: the SDK takes its WebSocket constructor as an option
 * (`SpoolClientOptions.WebSocket`), so a benchmark hands it a thin wrapper around `ws` that tells
 * it when the SDK makes a connection attempt, when a socket opens and closes, and each message
 * before and after the SDK handled it. Behaviour is the `ws` package's, untouched.
 *
 * `afterMessage` runs right after the SDK's own handler, so state the SDK changes on a frame
 * (a subscription's `live`) can be read there at the moment it changed, with no polling.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { WebSocketConstructor, WebSocketLike } from '../client';
import { SUBPROTOCOL_MSGPACK, type Subprotocol } from '../protocol/types';

/** What a tapped socket reports; every `at` is performance.now(). */
export interface SocketTap {
  /** The SDK made a connection attempt (constructed a WebSocket). */
  readonly attempt?: (at: number) => void;
  /** The socket opened: the TCP connection and the upgrade went through. */
  readonly open?: (at: number) => void;
  /** The socket closed (refused, reset or closed), after the SDK handled it. */
  readonly close?: (at: number) => void;
  /** A message arrived; called before the SDK sees it, with the subprotocol it is in. */
  readonly message?: (data: unknown, protocol: Subprotocol, at: number) => void;
  /** A message arrived and the SDK has handled it. */
  readonly afterMessage?: (at: number) => void;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type Handler = ((event: any) => void) | null;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** A WebSocket constructor for `new SpoolClient({WebSocket})` that reports to `tap`. */
export function tappedWebSocket(tap: SocketTap): WebSocketConstructor {
  return class TappedWebSocket implements WebSocketLike {
    private readonly inner: WebSocket;
    private openHandler: Handler = null;
    private closeHandler: Handler = null;
    private messageHandler: Handler = null;

    constructor(url: string, protocols: string | string[]) {
      tap.attempt?.(performance.now());
      this.inner = new WebSocket(url, protocols);
    }

    get protocol(): string {
      return this.inner.protocol;
    }

    get binaryType(): string {
      return this.inner.binaryType;
    }

    set binaryType(value: string) {
      this.inner.binaryType = value as WebSocket['binaryType'];
    }

    get onerror(): Handler {
      return this.inner.onerror as Handler;
    }

    set onerror(handler: Handler) {
      this.inner.onerror = handler;
    }

    get onopen(): Handler {
      return this.openHandler;
    }

    set onopen(handler: Handler) {
      this.openHandler = handler;
      this.inner.onopen =
        handler === null
          ? null
          : (event) => {
              tap.open?.(performance.now());
              handler(event);
            };
    }

    get onclose(): Handler {
      return this.closeHandler;
    }

    set onclose(handler: Handler) {
      this.closeHandler = handler;
      this.inner.onclose =
        handler === null
          ? null
          : (event) => {
              handler(event);
              tap.close?.(performance.now());
            };
    }

    get onmessage(): Handler {
      return this.messageHandler;
    }

    set onmessage(handler: Handler) {
      this.messageHandler = handler;
      if (handler === null) {
        this.inner.onmessage = null;
        return;
      }
      this.inner.onmessage = (event) => {
        // The subprotocol the server chose decides the decoding, as in the SDK.
        if (tap.message !== undefined) tap.message(event.data, (this.inner.protocol || SUBPROTOCOL_MSGPACK) as Subprotocol, performance.now());
        handler(event);
        tap.afterMessage?.(performance.now());
      };
    }

    send(data: string | Uint8Array): void {
      this.inner.send(data);
    }

    close(code?: number, reason?: string): void {
      this.inner.close(code, reason);
    }

    terminate(): void {
      this.inner.terminate();
    }
  };
}
