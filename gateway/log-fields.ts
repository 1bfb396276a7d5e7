/**
 * The names log lines give the ids they carry, and how they are read off a client frame. One
 * vocabulary for every line of the gateway (README "Logs"), so an operator can filter a session,
 * a generation, a request or a trace across components:
 *
 *   connectionId   the connection (welcome.connectionId)
 *   remoteAddress  the peer's address as the transport saw it
 *   sessionId      session id (a frame's `session`, or the session of its generation token)
 *   generationId   generation id (a frame's `generation`, or the generation of its token)
 *   requestId      the frame's `id` (its reply echoes it)
 *   traceId        the W3C trace id of the frame's `traceparent`, else of its connection's hello
 *   code           an error registry code
 *
 * Reading a frame for its ids happens only when a line is written (debug lines are checked for
 * their level first), never per chunk on the hot path.
 */
import { parseToken } from '../protocol/token';

export interface LogIds {
  sessionId?: string;
  generationId?: string;
  requestId?: number;
  traceId?: string;
}

/** `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (version 00; later versions may append fields). */
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)/;
const ZERO_TRACE = '0'.repeat(32);

/** The trace id a W3C `traceparent` names; undefined for none, a malformed one, or the all-zero id. */
export function traceIdOf(traceparent: unknown): string | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const traceId = TRACEPARENT.exec(traceparent)?.[1];
  return traceId === undefined || traceId === ZERO_TRACE ? undefined : traceId;
}

/** Longest id copied from a frame into a line: ids are at most 128 chars, a hostile frame's may be any length. */
const MAX_ID_CHARS = 128;

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value.slice(0, MAX_ID_CHARS) : undefined);

/**
 * The ids a client frame names, decoded and validated or not (a refused frame is read as far as
 * it goes): session and generation from its fields or from its generation token, its request id,
 * and the trace id of its traceparent, else of `connectionTraceparent` (the hello's).
 */
export function frameLogIds(frame: unknown, connectionTraceparent?: string): LogIds {
  const ids: LogIds = {};
  const traceId = traceIdOf(isRecord(frame) ? frame['traceparent'] : undefined) ?? traceIdOf(connectionTraceparent);
  if (traceId !== undefined) ids.traceId = traceId;
  if (!isRecord(frame)) return ids;
  const id = frame['id'];
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) ids.requestId = id;
  const token = typeof frame['token'] === 'string' && frame['type'] !== 'hello' && frame['type'] !== 'refresh' ? parseToken(frame['token']) : undefined;
  const resume = isRecord(frame['resume']) && typeof frame['resume']['token'] === 'string' ? parseToken(frame['resume']['token']) : undefined;
  const session = text(frame['session']) ?? token?.session ?? resume?.session;
  const generation = text(frame['generation']) ?? token?.generation ?? resume?.generation;
  if (session !== undefined) ids.sessionId = session;
  if (generation !== undefined) ids.generationId = generation;
  return ids;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Map);
}
