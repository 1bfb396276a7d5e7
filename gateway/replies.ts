/**
 * The errors a session actor answers with about generations, one function per kind, so every
 * refusal of the same situation carries the same code, details and wording wherever it is
 * detected (the connection's fast path, a store answer, a re-open, a retried finish).
 */
import { SpoolError, type ErrorCode } from '../protocol/errors';
import type { EndStatus, Offset } from '../protocol/types';

/** How and where a generation ended, when the store still remembers. */
export interface Ended {
  readonly status: EndStatus;
  readonly offset: Offset;
}

/**
 * FENCED: the writer of `generation` was displaced (a newer open bumped the epoch to `epoch`).
 * `by`: who displaced it, when known; `ended`: the generation's `gen.end fenced`, when it ended.
 */
export function fenced(generation: string, epoch: number | undefined, by?: string, ended?: Ended): SpoolError {
  const who = by === undefined ? 'a newer writer' : by;
  return new SpoolError('FENCED', `generation ${generation} was displaced by ${who}${epoch === undefined ? '' : ` (epoch ${epoch})`}; stop writing it`, {
    generation,
    ...(epoch !== undefined ? { epoch } : {}),
    ...(ended !== undefined ? { status: ended.status, offset: ended.offset } : {}),
  });
}

/** GENERATION_CLOSED: `generation` ended (how and where, when known), or is not open here. */
export function closed(generation: string, ended?: Ended): SpoolError {
  if (ended === undefined) return new SpoolError('GENERATION_CLOSED', `generation ${generation} is not open (it ended, or never was)`, { generation });
  return new SpoolError('GENERATION_CLOSED', `generation ${generation} already ended (${ended.status}) at offset ${ended.offset}`, {
    generation,
    status: ended.status,
    offset: ended.offset,
  });
}

/** GENERATION_CLOSED: its finish was accepted; no more chunks. */
export function finishing(generation: string): SpoolError {
  return new SpoolError('GENERATION_CLOSED', `generation ${generation} is finishing; no more chunks`, { generation });
}

/**
 * GENERATION_ACTIVE: `activeId` holds the session. `requested` is the generation the open named:
 * another one (takeover displaces it), or the active one itself, opened without proof (§7.1).
 */
export function active(session: string, requested: string, activeId: string, epoch: number): SpoolError {
  const message =
    requested === activeId
      ? `generation ${activeId} is active and this open does not prove it is its producer: resume with its token, repeat the secret of its first open, or open with takeover`
      : `generation ${activeId} is active in session ${session}; open with takeover to displace it`;
  return new SpoolError('GENERATION_ACTIVE', message, { generation: activeId, epoch });
}

/**
 * The code that failed a generation for good (a chunk refused with SESSION_FULL, its session
 * rewound: SESSION_REWOUND), repeated to its finish.
 */
export function failedBy(generation: string, code: ErrorCode, ended?: Ended): SpoolError {
  return new SpoolError(code, `generation ${generation} failed with ${code}; its finish cannot succeed`, {
    generation,
    ...(ended !== undefined ? { status: ended.status, offset: ended.offset } : {}),
  });
}
