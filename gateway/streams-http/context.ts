/**
 * What the door's handlers share, and the lookups every handler starts with: the stream a
 * request names, brought up to date, with expiry applied (an expired stream is deleted, under
 * its session's lock, when a request first finds it expired).
 */
import type { Logger } from 'pino';
import type { SessionId } from '../../protocol/types';
import type { GatewayConfig } from '../config';
import type { ActorRegistry } from '../registry';
import type { Metrics } from '../telemetry';
import type { StreamCatalog, StreamEntry } from './catalog';
import { fail } from './replies';
import type { Incarnation } from './stream-state';

/** The door's settings (config.ts documents each). */
export interface DoorLimits {
  readonly longPollMs: number;
  readonly maxBodyBytes: number;
  readonly maxReadBytes: number;
  readonly sseMaxMs: number;
  /** Writes one session may have waiting for its lock in this process; past it, 429. */
  readonly maxPendingWrites: number;
}

export interface DoorContext {
  readonly catalog: StreamCatalog;
  readonly registry: ActorRegistry;
  readonly config: GatewayConfig;
  readonly logger: Logger;
  readonly limits: DoorLimits;
  /** Whether responses may be cached by shared caches (no auth: nothing is user-specific). */
  readonly publicCache: boolean;
  /** Ends every live response (long-poll, SSE): the gateway is closing. */
  readonly live: Set<() => void>;
  /** The gateway's counters: the door's fenced and duplicate writes count with the WebSocket door's. */
  readonly metrics: Pick<Metrics, 'fencedWrites' | 'duplicateWrites'>;
}

/** The state of the stream a request names. */
export type Found =
  | { readonly state: 'stream'; readonly entry: StreamEntry; readonly inc: Incarnation }
  | { readonly state: 'native'; readonly entry: StreamEntry }
  | { readonly state: 'missing' }
  | { readonly state: 'soft-deleted' };

/** The stream of `session`, up to date, expired ones deleted first. */
export async function find(ctx: DoorContext, session: SessionId): Promise<Found> {
  const entry = await ctx.catalog.fresh(session);
  const found = classify(entry);
  if (found.state === 'stream' && ctx.catalog.expired(entry, found.inc)) {
    return ctx.catalog.locked(session, (locked) => expireLocked(ctx, locked));
  }
  return found;
}

/** Like find, for a caller that holds the session's lock. */
export async function expireLocked(ctx: DoorContext, entry: StreamEntry): Promise<Found> {
  const found = classify(entry);
  if (found.state !== 'stream' || !ctx.catalog.expired(entry, found.inc)) return found;
  const soft = await ctx.catalog.remove(entry, found.inc, 'expired');
  return soft ? { state: 'soft-deleted' } : { state: 'missing' };
}

function classify(entry: StreamEntry): Found {
  const inc = entry.log.current;
  if (inc === null) return entry.log.native ? { state: 'native', entry } : { state: 'missing' };
  if (inc.deleted) return inc.deleted.soft ? { state: 'soft-deleted' } : { state: 'missing' };
  return { state: 'stream', entry, inc };
}

/** The stream, or the 404 / 410 the protocol answers instead. */
export function requireStream(found: Found): Extract<Found, { state: 'stream' | 'native' }> {
  if (found.state === 'missing') fail(404, 'stream not found');
  if (found.state === 'soft-deleted') fail(410, 'stream deleted; forks of it still read its data');
  return found;
}
