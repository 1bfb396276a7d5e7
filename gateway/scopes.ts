/**
 * What an identity may do, and on which sessions: the `spool` claim of a JWT (README "Security",
 * PROTOCOL §4.5).
 *
 *   { "read": ["user:42:*"], "write": ["user:42:*"], "takeover": [], "admin": false }
 *
 * An entry is an exact session id, or a prefix ending in `*` (`user:42:*` covers every session
 * id that starts with `user:42:`; `*` alone covers every session). Missing lists are empty and a
 * missing `admin` is false, so a claim grants only what it spells out.
 */
import { ID_PATTERN, type SessionId } from '../protocol/types';

/** What a frame needs: `read` (subscribe), `write` (open, chunk, chunks, finish, append), `takeover` (open with takeover), `admin`. */
export type Capability = 'read' | 'write' | 'takeover' | 'admin';

/** The session capabilities a claim lists per session pattern (`admin` is a flag, not a list). */
const SESSION_CAPABILITIES = ['read', 'write', 'takeover'] as const;
type SessionCapability = (typeof SESSION_CAPABILITIES)[number];

/** Entries per list a claim may hold; every frame is matched against them, so they are bounded. */
export const MAX_SCOPE_ENTRIES = 1000;

/** A prefix entry: up to 127 chars of the session id alphabet, then `*`. */
const PREFIX_PATTERN = /^[A-Za-z0-9._:-]{0,127}\*$/;

/** The sessions one capability covers: exact ids and prefixes. */
class SessionSet {
  static readonly EMPTY = new SessionSet(new Set(), []);
  static readonly ALL = new SessionSet(new Set(), ['']);

  constructor(
    private readonly exact: ReadonlySet<string>,
    private readonly prefixes: readonly string[],
  ) {}

  has(session: string): boolean {
    if (this.exact.has(session)) return true;
    for (const prefix of this.prefixes) if (session.startsWith(prefix)) return true;
    return false;
  }

  static parse(raw: unknown, field: string): SessionSet {
    if (raw === undefined) return SessionSet.EMPTY;
    if (!Array.isArray(raw)) throw new ScopeClaimError(`${field} must be an array of session ids or prefixes ending in *`);
    if (raw.length > MAX_SCOPE_ENTRIES) throw new ScopeClaimError(`${field} holds ${raw.length} entries, over ${MAX_SCOPE_ENTRIES}`);
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const entry of raw) {
      if (typeof entry === 'string' && ID_PATTERN.test(entry)) exact.add(entry);
      else if (typeof entry === 'string' && PREFIX_PATTERN.test(entry)) prefixes.push(entry.slice(0, -1));
      else throw new ScopeClaimError(`${field} entry ${JSON.stringify(entry)?.slice(0, 40)} is neither a session id nor a prefix ending in *`);
    }
    if (prefixes.includes('')) return SessionSet.ALL;
    return exact.size === 0 && prefixes.length === 0 ? SessionSet.EMPTY : new SessionSet(exact, prefixes);
  }
}

/** A `spool` claim that does not have the documented shape (the token is refused, never half-read). */
export class ScopeClaimError extends Error {
  override readonly name = 'ScopeClaimError';
}

/** The capabilities of one identity. Immutable; a token refresh replaces it whole. */
export class Scopes {
  /** Everything on every session: open gateways and the shared-token mode, where whoever is let in may do anything. */
  static readonly ALL = new Scopes({ read: SessionSet.ALL, write: SessionSet.ALL, takeover: SessionSet.ALL }, true);

  private constructor(
    private readonly sets: Readonly<Record<SessionCapability, SessionSet>>,
    /** The `admin` capability (no admin frame exists yet in protocol v1; kept so tokens can carry it). */
    readonly admin: boolean,
  ) {}

  /**
   * Reads the `spool` claim. Throws ScopeClaimError when it is missing or malformed: a token
   * that means to grant something must say so in the documented shape.
   */
  static fromClaim(claim: unknown): Scopes {
    if (claim === undefined) throw new ScopeClaimError('the token has no spool claim');
    if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) throw new ScopeClaimError('the spool claim must be an object {read, write, takeover, admin}');
    const c = claim as Record<string, unknown>;
    const admin = c['admin'];
    if (admin !== undefined && typeof admin !== 'boolean') throw new ScopeClaimError('spool.admin must be a boolean');
    return new Scopes(
      {
        read: SessionSet.parse(c['read'], 'spool.read'),
        write: SessionSet.parse(c['write'], 'spool.write'),
        takeover: SessionSet.parse(c['takeover'], 'spool.takeover'),
      },
      admin === true,
    );
  }

  /** Whether `capability` is granted on `session` (`admin` is not tied to a session). */
  allows(capability: Capability, session: SessionId | string): boolean {
    if (capability === 'admin') return this.admin;
    return this.sets[capability].has(session);
  }
}
