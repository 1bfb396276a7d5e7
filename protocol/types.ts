/**
 * Wire types of protocol v1. `PROTOCOL.md` is the normative text; these types are its shape.
 */
import type { ErrorCode, ErrorDetails } from './errors';

declare const sessionBrand: unique symbol;
declare const generationBrand: unique symbol;

/** A session id: 1–128 chars of `[A-Za-z0-9._:-]`, chosen by the client. */
export type SessionId = string & { readonly [sessionBrand]: true };
/** A generation id: same alphabet as a session id, chosen by the client, unique per response. */
export type GenerationId = string & { readonly [generationBrand]: true };
/**
 * An event's position in its session: 1, 2, 3 …; 0 means "before the first event".
 * Kept a plain number (not branded): offsets are computed with constantly, and a brand on a
 * number costs a cast at every `+ 1` without catching a mix-up that tests would not.
 */
export type Offset = number;

export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export function isSessionId(value: unknown): value is SessionId {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
export function isGenerationId(value: unknown): value is GenerationId {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/** 0 debug · 1 low · 2 normal · 3 critical. Only 0–2 are ever trimmed. */
export type Priority = 0 | 1 | 2 | 3;
export const PRIORITY_DEBUG = 0;
export const PRIORITY_LOW = 1;
export const PRIORITY_NORMAL = 2;
export const PRIORITY_CRITICAL = 3;

export type EndStatus = 'done' | 'error' | 'aborted' | 'fenced' | 'timeout';
export const END_STATUSES: readonly EndStatus[] = ['done', 'error', 'aborted', 'fenced', 'timeout'];
/** The statuses a producer may ask for in `finish`; the others are the gateway's to give. */
export const FINISH_STATUSES: readonly EndStatus[] = ['done', 'error', 'aborted'];

/** `session.reset`: everything before it was removed by a reset (PROTOCOL §10.5); the log goes on after it. */
export type EventType = 'gen.start' | 'chunk' | 'gen.end' | 'append' | 'session.reset';

/** One entry of a session's log, as stored and as delivered to readers. */
export interface SessionEvent {
  readonly offset: Offset;
  readonly type: EventType;
  readonly generationId?: string;
  readonly seq?: number;
  readonly kind?: string;
  readonly priority: Priority;
  /** Milliseconds since the epoch at which the gateway accepted the event. */
  readonly ts: number;
  readonly data?: unknown;
  /** On `gen.end` only. */
  readonly status?: EndStatus;
  /** On `gen.end` with status `error`: what went wrong. */
  readonly error?: string;
  /** On `append` only: its idempotency key. */
  readonly key?: string;
}

export type GapReason = 'trimmed' | 'expired';
/** A removed range of offsets, inclusive on both ends. */
export interface Gap {
  readonly type: 'gap';
  readonly from: Offset;
  readonly to: Offset;
  readonly reason: GapReason;
}

/** What a reader receives: an event or an explicit gap. */
export type ReadItem = SessionEvent | Gap;

export function isGap(item: ReadItem): item is Gap {
  return item.type === 'gap';
}

/** Producer flow-control credit, per generation: bounds on unacknowledged chunks. */
export interface Credit {
  readonly frames: number;
  readonly bytes: number;
}

/** Limits the gateway announces in `welcome` so a client can stay inside them. */
export interface AnnouncedLimits {
  readonly maxFrameBytes: number;
  readonly maxBatchItems: number;
}

export interface ChunkItem {
  readonly kind?: string;
  readonly priority?: Priority;
  readonly data: unknown;
}

// ---------------------------------------------------------------- client -> gateway

export interface HelloFrame {
  readonly type: 'hello';
  readonly id?: number;
  /** Protocol version the client speaks; must be 1. */
  readonly protocol: number;
  readonly token?: string;
  readonly client?: string;
  /**
   * W3C Trace Context `traceparent` (`00-<trace-id>-<parent-id>-<flags>`), optional: the gateway's
   * spans for this frame continue the caller's trace (PROTOCOL §3.4). A value that does not parse
   * is ignored, as W3C Trace Context asks; at most 256 characters.
   */
  readonly traceparent?: string;
}
export interface OpenFrame {
  readonly type: 'open';
  readonly id?: number;
  readonly session: SessionId;
  readonly generation: GenerationId;
  readonly resume?: { readonly token: string };
  readonly takeover?: boolean;
  /**
   * A secret the producer drew for this generation (16–128 chars of base64url). Sent with the
   * first open and repeated by a retry of it whose `opened` was lost, it proves the retry comes
   * from the same producer (PROTOCOL §7.1). The gateway keeps only a digest of it.
   */
  readonly secret?: string;
  /**
   * W3C Trace Context `traceparent` (`00-<trace-id>-<parent-id>-<flags>`), optional: the gateway's
   * spans for this frame continue the caller's trace (PROTOCOL §3.4). A value that does not parse
   * is ignored, as W3C Trace Context asks; at most 256 characters.
   */
  readonly traceparent?: string;
}
export interface ChunkFrame {
  readonly type: 'chunk';
  readonly token: string;
  readonly seq: number;
  readonly kind?: string;
  readonly priority?: Priority;
  readonly data: unknown;
}
export interface ChunksFrame {
  readonly type: 'chunks';
  readonly token: string;
  readonly seq: number;
  readonly items: readonly ChunkItem[];
}
export interface FinishFrame {
  readonly type: 'finish';
  readonly id?: number;
  readonly token: string;
  /** The seq the end occupies: the number of chunks the generation holds (last chunk seq + 1). */
  readonly seq: number;
  readonly status?: 'done' | 'error' | 'aborted';
  readonly error?: string;
}
export interface AppendFrame {
  readonly type: 'append';
  readonly id?: number;
  readonly session: SessionId;
  readonly key: string;
  readonly kind: string;
  readonly priority?: Priority;
  readonly data: unknown;
}
export interface SubscribeFrame {
  readonly type: 'subscribe';
  readonly id?: number;
  readonly session: SessionId;
  /** Deliver events with offset > from; 'start' = 0; 'now' = from the current head. */
  readonly from: Offset | 'start' | 'now';
  /**
   * W3C Trace Context `traceparent` (`00-<trace-id>-<parent-id>-<flags>`), optional: the gateway's
   * spans for this frame continue the caller's trace (PROTOCOL §3.4). A value that does not parse
   * is ignored, as W3C Trace Context asks; at most 256 characters.
   */
  readonly traceparent?: string;
}
export interface UnsubscribeFrame {
  readonly type: 'unsubscribe';
  readonly id?: number;
  readonly session: SessionId;
}
export interface PingFrame {
  readonly type: 'ping';
  readonly id?: number;
}
/**
 * A new credential for the open connection, before the current one expires (PROTOCOL §4.5): same
 * `sub`, scopes replaced by the new token's. Answered by `refreshed`.
 */
export interface RefreshFrame {
  readonly type: 'refresh';
  readonly id?: number;
  readonly token: string;
}

export type ClientFrame =
  | HelloFrame
  | OpenFrame
  | ChunkFrame
  | ChunksFrame
  | FinishFrame
  | AppendFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PingFrame
  | RefreshFrame;

export type ClientFrameType = ClientFrame['type'];

// ---------------------------------------------------------------- gateway -> client

export interface WelcomeFrame {
  readonly type: 'welcome';
  readonly id?: number;
  readonly connectionId: string;
  readonly protocol: 1;
  readonly limits: AnnouncedLimits;
  readonly credit: Credit;
  readonly heartbeatMs: number;
  /**
   * Milliseconds until the connection's token expires and the gateway closes it with
   * TOKEN_EXPIRED, unless a `refresh` replaces it first. Absent: the credential does not expire.
   */
  readonly expiresInMs?: number;
}
export interface OpenedFrame {
  readonly type: 'opened';
  readonly id?: number;
  readonly session: SessionId;
  readonly generation: GenerationId;
  readonly token: string;
  /** The next seq the gateway expects: every seq below it is durable. */
  readonly nextSeq: number;
  /** Offset of the generation's `gen.start`. */
  readonly offset: Offset;
  readonly resumed: boolean;
}
export interface AckFrame {
  readonly type: 'ack';
  readonly generation: GenerationId;
  /** Cumulative: every seq up to and including this one is durable. */
  readonly seq: number;
  /** Offset of chunk `seq`. */
  readonly offset: Offset;
  /** Priority-0 chunks of this generation dropped at the door since the previous ack. */
  readonly dropped?: number;
}
export interface FinishedFrame {
  readonly type: 'finished';
  readonly id?: number;
  readonly generation: GenerationId;
  readonly status: EndStatus;
  /** Offset of the `gen.end`. */
  readonly offset: Offset;
}
export interface AppendedFrame {
  readonly type: 'appended';
  readonly id?: number;
  readonly session: SessionId;
  readonly key: string;
  readonly offset: Offset;
  readonly duplicate: boolean;
}
export interface SubscribedFrame {
  readonly type: 'subscribed';
  readonly id?: number;
  readonly session: SessionId;
  /** The offset delivery starts after. */
  readonly from: Offset;
  readonly head: Offset;
}
export interface EventsFrame {
  readonly type: 'events';
  readonly session: SessionId;
  readonly events: readonly SessionEvent[];
}
export interface GapFrame {
  readonly type: 'gap';
  readonly session: SessionId;
  readonly from: Offset;
  readonly to: Offset;
  readonly reason: GapReason;
}
export interface LiveFrame {
  readonly type: 'live';
  readonly session: SessionId;
  readonly offset: Offset;
}
export interface UnsubscribedFrame {
  readonly type: 'unsubscribed';
  readonly id?: number;
  readonly session: SessionId;
}
export interface PongFrame {
  readonly type: 'pong';
  readonly id?: number;
}
/** Answer to `refresh`: the connection now holds the new token. */
export interface RefreshedFrame {
  readonly type: 'refreshed';
  readonly id?: number;
  /** As `welcome.expiresInMs`, for the new token. */
  readonly expiresInMs?: number;
}
export interface ErrorFrame {
  readonly type: 'error';
  /** The `id` of the request this answers, when it had one. */
  readonly id?: number;
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
  /** What the error is about: a generation id, a session id or a token. */
  readonly ref?: string;
  readonly details?: ErrorDetails;
}

export type ServerFrame =
  | WelcomeFrame
  | OpenedFrame
  | AckFrame
  | FinishedFrame
  | AppendedFrame
  | SubscribedFrame
  | EventsFrame
  | GapFrame
  | LiveFrame
  | UnsubscribedFrame
  | PongFrame
  | RefreshedFrame
  | ErrorFrame;

export type Frame = ClientFrame | ServerFrame;

/** WebSocket subprotocols: msgpack binary frames, or JSON text frames for debugging. */
export const SUBPROTOCOL_MSGPACK = 'spool.v1';
export const SUBPROTOCOL_JSON = 'spool.v1.json';
export type Subprotocol = typeof SUBPROTOCOL_MSGPACK | typeof SUBPROTOCOL_JSON;
export const PROTOCOL_VERSION = 1;
export const WS_PATH = '/v1';
