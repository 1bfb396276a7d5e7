/**
 * Generation tokens. A token binds a generation to the session's writer epoch at the moment it
 * was opened; it is opaque to clients (they echo it), the gateway parses it.
 *
 *   "v1/<epoch>/<session>/<generation>"   ('/' is outside the id alphabet)
 */
import { isGenerationId, isSessionId, type GenerationId, type SessionId } from './types';

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
  const epoch = Number(epochText);
  if (!Number.isSafeInteger(epoch) || epoch < 1) return undefined;
  if (!isSessionId(session) || !isGenerationId(generation)) return undefined;
  return { epoch, session, generation };
}
