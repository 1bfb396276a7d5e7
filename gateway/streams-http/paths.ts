/**
 * Stream URLs and spool sessions (PROTOCOL §16.2). A stream is `/v1/stream/<name>`; `<name>` is
 * percent-decoded and may hold any character, `/` included.
 *
 *   a name that is a session id (1–128 chars of [A-Za-z0-9._:-]) not starting with '.'
 *       → that session: `/v1/stream/chat-42` is session `chat-42`, whichever door wrote it
 *   any other name
 *       → session `.ds-<first 40 hex digits of sha256(name)>`
 *
 * Session ids starting with `.ds-` are the door's (hashed names, fork registries); no name maps
 * onto one of them by the first rule.
 */
import { createHash } from 'node:crypto';
import { ID_PATTERN, type SessionId } from '../../protocol/types';

export const STREAM_PREFIX = '/v1/stream/';

/** Names under this are the protocol's reserved control APIs (§6), not streams. */
export const RESERVED_PREFIX = '__ds/';

/** A stream's name from the path of its URL; null when it is not one (bad escape, empty). */
export function streamName(path: string): string | null {
  if (!path.startsWith(STREAM_PREFIX)) return null;
  const raw = path.slice(STREAM_PREFIX.length);
  if (raw === '') return null;
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/** The name a `Stream-Forked-From` header names: a path (`/v1/stream/x`), or a full URL of this server. */
export function forkSourceName(header: string): string | null {
  let path = header.trim();
  if (/^https?:\/\//i.test(path)) {
    try {
      path = new URL(path).pathname;
    } catch {
      return null;
    }
  }
  return streamName(path);
}

export function sessionOf(name: string): SessionId {
  if (ID_PATTERN.test(name) && !name.startsWith('.')) return name as SessionId;
  return `.ds-${createHash('sha256').update(name).digest('hex').slice(0, 40)}` as SessionId;
}
