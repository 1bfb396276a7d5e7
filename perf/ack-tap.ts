/**
 * An observer on the SDK's WebSocket seam (ws-tap.ts): every `ack` and `finished` frame a
 * producer's socket receives is reported with the moment it arrived, then passed on untouched.
 * The SDK has no ack callback of its own, and timing `flush()` would only sample.
 *
 * It decodes only what the tapped connections receive (acks, replies, a rare error), so the
 * cost it adds to a producer is one small msgpack decode per ack frame.
 */
import type { WebSocketConstructor } from '../client';
import { decodeFrame } from '../protocol/codec';
import type { Subprotocol } from '../protocol/types';
import { tappedWebSocket } from './ws-tap';

/** What the tap reports: a cumulative ack (`seq`) or the end of a generation (`finished`). */
export interface AckObservation {
  readonly type: 'ack' | 'finished';
  readonly generation: string;
  /** For `ack`: every seq up to this one is durable. For `finished`: -1 (everything is). */
  readonly seq: number;
  /** performance.now() when the message was handed to the SDK. */
  readonly at: number;
}

function payloadOf(data: unknown): Uint8Array | string | null {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function observe(data: unknown, protocol: Subprotocol, at: number, onAck: (observation: AckObservation) => void): void {
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
    onAck({ type: 'ack', generation: f.generation, seq: f.seq, at });
  } else if (f.type === 'finished' && typeof f.generation === 'string') {
    onAck({ type: 'finished', generation: f.generation, seq: -1, at });
  }
}

/**
 * A WebSocket constructor for `new SpoolClient({WebSocket})` that reports acks to `onAck`.
 * Everything else is the `ws` package's behaviour.
 */
export function ackTappedWebSocket(onAck: (observation: AckObservation) => void): WebSocketConstructor {
  return tappedWebSocket({ message: (data, protocol, at) => observe(data, protocol, at, onAck) });
}
