/**
 * spool/client: the SDK producers and readers use. Runs in Node (with the `ws` package on
 * Node 20) and in a browser or Electron renderer. Imports only the protocol.
 */
export { SpoolClient, type SpoolClientOptions, type ClientEvents, type ConnectionStateChange, type ReconnectEvent } from './client';
export { DEFAULT_COALESCE_MAX_BYTES, type CoalesceOptions } from './coalescer';
export { Generation } from './generation';
export {
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_MAX_QUEUED_BYTES,
  type AckEvent,
  type GenerationEvents,
  type GenerationStateChange,
  type GenerationOptions,
  type GenerationState,
  type HighWaterMark,
  type WriteOptions,
  type FlushResult,
  type FinishOptions,
  type FinishResult,
} from './generation-types';
export { Subscription, DEFAULT_MAX_BUFFERED_ITEMS, type SubscribeOptions, type SubscriptionItem } from './subscription';
export type { AppendInput, AppendResult } from './append';
export type { TokenOption } from './token';
export type { TraceparentOption } from './trace';
export type { ConnectionState, WebSocketConstructor, WebSocketLike } from './connection';
export type { Logger, ReconnectOptions, AbortSignalLike, Listener } from './util';
export {
  SpoolError,
  ERROR_REGISTRY,
  isGap,
  type ErrorCode,
  type ErrorDetails,
  type SessionEvent,
  type Gap,
  type ReadItem,
  type Offset,
  type Priority,
  type EndStatus,
  type SessionId,
  type GenerationId,
} from '../protocol';
