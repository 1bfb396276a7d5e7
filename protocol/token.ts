/**
 * Generation tokens. A token binds a generation to the session's writer epoch at the moment it
 * was opened, plus a tag: an unguessable value the gateway drew for that epoch and the store
 * remembers with the active generation. The epoch fences stale writers; the tag proves that a
 * client resuming a generation holds what the gateway answered to its producer (generation ids
 * and epochs are visible to readers and in errors, so without it a token could be forged). It is
 * opaque to clients (they echo it); the gateway parses it.
 *
 *   "v1/<epoch>/<session>/<generation>/<tag>"   ('/' is outside the id and tag alphabets)
 */
import { isGenerationId, isSessionId, type GenerationId, type SessionId } from './types';

const EPOCH_PATTERN = /^[1-9][0-9]{0,15}$/;

/** A tag: 16–64 chars of base64url. The gateway draws 128 random bits (22 chars). */
export const TAG_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

export interface TokenParts {
  readonly epoch: number;
  readonly session: SessionId;
  readonly generation: GenerationId;
  readonly tag: string;
}

export function encodeToken(parts: TokenParts): string {
  return `v1/${parts.epoch}/${parts.session}/${parts.generation}/${parts.tag}`;
}

/** Returns undefined for anything that is not a well-formed token. */
export function parseToken(token: string): TokenParts | undefined {
  const fields = token.split('/');
  if (fields.length !== 5 || fields[0] !== 'v1') return undefined;
  const [, epochText, session, generation, tag] = fields;
  // Canonical decimal only: Number() would also accept ' 1', '0x1', '1e0', '+1', '1.0', so two
  // different strings would name the same token (and a parsed token would not re-encode to itself).
  if (epochText === undefined || !EPOCH_PATTERN.test(epochText)) return undefined;
  const epoch = Number(epochText);
  if (!Number.isSafeInteger(epoch)) return undefined;
  if (!isSessionId(session) || !isGenerationId(generation)) return undefined;
  if (tag === undefined || !TAG_PATTERN.test(tag)) return undefined;
  return { epoch, session, generation, tag };
}
