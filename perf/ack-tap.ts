/**
 * An observer on the SDK's WebSocket seam: the SDK takes its WebSocket constructor as an option
 * (`SpoolClientOptions.WebSocket`), so the benchmark hands it a thin wrapper around `ws` that
 * reports every `ack` and `finished` frame with the moment it arrived, then passes the message
 * on untouched. The SDK has no ack callback of its own, and timing `flush()` would only sample.
 *
 * It decodes only what the tapped connections receive (acks, replies, a rare error), so the
 * cost it adds to a producer is one small msgpack decode per ack frame.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { WebSocketConstructor, WebSocketLike } from '../client';
import { decodeFrame } from '../protocol/codec';
import { SUBPROTOCOL_MSGPACK, type Subprotocol } from '../protocol/types';

/** What the tap reports: a cumulative ack (`seq`) or the end of a generation (`finished`). */
export interface AckObservation {
  readonly type: 'ack' | 'finished';
  readonly generation: string;
  /** For `ack`: every seq up to this one is durable. For `finished`: -1 (everything is). */
  readonly seq: number;
  /** performance.now() when the message was handed to the SDK. */
  readonly at: number;
}

type Handler = ((event: { data: unknown }) => void) | null;

function payloadOf(data: unknown): Uint8Array | string | null {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function observe(data: unknown, protocol: Subprotocol, onAck: (observation: AckObservation) => void): void {
  const payload = payloadOf(data);
  if (payload === null) return;
  let frame: unknown;
  try {
    frame = decodeFrame(payload, protocol);
  } catch {
    return; // the SDK will say what is wrong with it
  }
  if (typeof frame !== 'object' || frame === null) return;
  const f = frame as { type?: unknown; generation?: unknown; seq?: unknown };
  if (f.type === 'ack' && typeof f.generation === 'string' && typeof f.seq === 'number') {
    onAck({ type: 'ack', generation: f.generation, seq: f.seq, at: performance.now() });
  } else if (f.type === 'finished' && typeof f.generation === 'string') {
    onAck({ type: 'finished', generation: f.generation, seq: -1, at: performance.now() });
  }
}

/**
 * A WebSocket constructor for `new SpoolClient({WebSocket})` that reports acks to `onAck`.
 * Everything else is the `ws` package's behaviour.
 */
export function ackTappedWebSocket(onAck: (observation: AckObservation) => void): WebSocketConstructor {
  return class AckTappedWebSocket implements WebSocketLike {
    private readonly inner: WebSocket;
    private messageHandler: Handler = null;

    constructor(url: string, protocols: string | string[]) {
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

    /* eslint-disable @typescript-eslint/no-explicit-any */
    get onopen(): ((event: any) => void) | null {
      return this.inner.onopen as ((event: any) => void) | null;
    }

    set onopen(handler: ((event: any) => void) | null) {
      this.inner.onopen = handler;
    }

    get onclose(): ((event: any) => void) | null {
      return this.inner.onclose as ((event: any) => void) | null;
    }

    set onclose(handler: ((event: any) => void) | null) {
      this.inner.onclose = handler;
    }

    get onerror(): ((event: any) => void) | null {
      return this.inner.onerror as ((event: any) => void) | null;
    }

    set onerror(handler: ((event: any) => void) | null) {
      this.inner.onerror = handler;
    }
    /* eslint-enable @typescript-eslint/no-explicit-any */

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
        const protocol = (this.inner.protocol || SUBPROTOCOL_MSGPACK) as Subprotocol;
        observe(event.data, protocol, onAck);
        handler(event);
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
