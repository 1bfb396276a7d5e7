/**
 * Generation tokens. A token binds a generation to the session's writer epoch at the moment it
 * was opened; it is opaque to clients (they echo it), the gateway parses it.
 *
 *   "v1/<epoch>/<session>/<generation>"   ('/' is outside the id alphabet)
 */
import { isGenerationId, isSessionId, type GenerationId, type SessionId } from './types';

const EPOCH_PATTERN = /^[1-9][0-9]{0,15}$/;

export interface TokenParts {
  readonly epoch: number;
  readonly session: SessionId;
  readonly generation: GenerationId;
}

export function encodeToken(parts: TokenParts): string {
  return `v1/${parts.epoch}/${parts.session}/${parts.generation}`;
}

/** Returns undefined for anything that is not a well-formed token. */
export function parseToken(token: string): TokenParts | undefined {
  const fields = token.split('/');
  if (fields.length !== 4 || fields[0] !== 'v1') return undefined;
  const [, epochText, session, generation] = fields;
  // Canonical decimal only: Number() would also accept ' 1', '0x1', '1e0', '+1', '1.0', so two
  // different strings would name the same token (and a parsed token would not re-encode to itself).
  if (epochText === undefined || !EPOCH_PATTERN.test(epochText)) return undefined;
  const epoch = Number(epochText);
  if (!Number.isSafeInteger(epoch)) return undefined;
  if (!isSessionId(session) || !isGenerationId(generation)) return undefined;
  return { epoch, session, generation };
}
