/**
 * What one connection holds in sessions, and its limits: the subscriptions it made, the
 * generations opened on it (with the tokens `opened` gave it) and the sessions these are in. A
 * stranger can make a connection hold state in as many sessions as it has frames; these bounds
 * (each with its own code) keep that state, and the actors it keeps loaded, in proportion.
 *
 *   subscription: subscribe ──▶ held ──unsubscribe, a refresh that no longer covers it──▶ gone
 *   generation:   open ──reserved──opened──▶ held (its tokens) ──finished on this connection──▶ remembered
 *                        └──the open failed──▶ gone                                  (tokens only) ──pushed out──▶ gone
 *
 * A finished generation no longer counts, but its tokens are remembered (for the last
 * maxGenerationsPerConnection finished ones) so a repeated `finish` still gets the original
 * answer. A generation that ended otherwise (fenced, timed out) stays held until the connection
 * closes: the connection is not told of those ends, and a later frame with its token must still
 * get the code that says so rather than "not opened here". The SDK opens one generation per
 * connection.
 */
import { SpoolError } from '../../protocol/errors';
import type { TokenParts } from '../../protocol/token';
import type { SessionId } from '../../protocol/types';

export interface HoldingLimits {
  readonly maxSessionsPerConnection: number;
  readonly maxGenerationsPerConnection: number;
  readonly maxSubscriptionsPerConnection: number;
}

/** Tokens kept per generation (each open or takeover of the same generation on one connection may return a new one); older ones are forgotten. */
const TOKENS_PER_GENERATION = 4;

export class Holdings {
  private readonly subscribed = new Set<SessionId>();
  /** `session/generation` → its tokens opened here, newest last. */
  private readonly generations = new Map<string, string[]>();
  /** The same for generations finished here, least recently finished first. */
  private readonly finishedGenerations = new Map<string, string[]>();
  private readonly tokens = new Map<string, TokenParts>();
  /** Sessions held, with how many subscriptions and generations hold each. */
  private readonly sessions = new Map<SessionId, number>();

  constructor(private readonly limits: HoldingLimits) {}

  /** The parts of a token an `opened` on this connection returned. */
  channel(token: string): TokenParts | undefined {
    return this.tokens.get(token);
  }

  /** The sessions subscribed to. */
  subscriptions(): SessionId[] {
    return [...this.subscribed];
  }

  /** Holds a subscription to `session` (a second subscribe replaces the first: nothing new); the refusal past a limit. */
  subscribe(session: SessionId): SpoolError | undefined {
    if (this.subscribed.has(session)) return undefined;
    const max = this.limits.maxSubscriptionsPerConnection;
    if (this.subscribed.size >= max) {
      return new SpoolError('SUBSCRIPTION_LIMIT', `this connection has ${max} subscriptions (maxSubscriptionsPerConnection); unsubscribe one first`, { limit: max, session });
    }
    const refused = this.refuseNewSession(session);
    if (refused) return refused;
    this.subscribed.add(session);
    this.hold(session);
    return undefined;
  }

  /** Drops the subscription to `session`; false when there was none. */
  unsubscribe(session: SessionId): boolean {
    if (!this.subscribed.delete(session)) return false;
    this.release(session);
    return true;
  }

  /** Reserves a generation about to be opened (nothing new when it is held already); the refusal past a limit. */
  reserveGeneration(session: SessionId, generation: string): SpoolError | undefined {
    const key = generationKey(session, generation);
    if (this.generations.has(key)) return undefined;
    const max = this.limits.maxGenerationsPerConnection;
    if (this.generations.size >= max) {
      return new SpoolError('GENERATION_LIMIT', `this connection has ${max} generations open (maxGenerationsPerConnection); finish one, or open it on a new connection`, { limit: max, session });
    }
    const refused = this.refuseNewSession(session);
    if (refused) return refused;
    this.generations.set(key, []);
    this.hold(session);
    return undefined;
  }

  /** The open of a reserved generation failed: a reservation that got no token is dropped. */
  openFailed(session: SessionId, generation: string): void {
    const key = generationKey(session, generation);
    if (this.generations.get(key)?.length === 0) this.dropGeneration(key, session);
  }

  /** `opened` gave this connection `token` for the generation in `parts`. */
  opened(token: string, parts: TokenParts): void {
    const key = generationKey(parts.session, parts.generation);
    let tokens = this.generations.get(key);
    if (tokens === undefined) {
      tokens = [];
      this.generations.set(key, tokens);
      this.hold(parts.session);
    }
    if (tokens.includes(token)) return;
    tokens.push(token);
    this.tokens.set(token, parts);
    if (tokens.length > TOKENS_PER_GENERATION) this.tokens.delete(tokens.shift() as string);
  }

  /** The generation was finished on this connection: no longer held; its tokens are remembered a while. */
  finished(parts: TokenParts): void {
    const key = generationKey(parts.session, parts.generation);
    const tokens = this.generations.get(key) ?? this.finishedGenerations.get(key);
    if (tokens === undefined) return;
    if (this.generations.delete(key)) this.release(parts.session);
    this.finishedGenerations.delete(key);
    this.finishedGenerations.set(key, tokens);
    if (this.finishedGenerations.size <= this.limits.maxGenerationsPerConnection) return;
    for (const [oldest, forgotten] of this.finishedGenerations) {
      for (const token of forgotten) this.tokens.delete(token);
      this.finishedGenerations.delete(oldest);
      return;
    }
  }

  private dropGeneration(key: string, session: SessionId): void {
    const tokens = this.generations.get(key);
    if (tokens === undefined) return;
    for (const token of tokens) this.tokens.delete(token);
    this.generations.delete(key);
    this.release(session);
  }

  private refuseNewSession(session: SessionId): SpoolError | undefined {
    const max = this.limits.maxSessionsPerConnection;
    if (this.sessions.has(session) || this.sessions.size < max) return undefined;
    return new SpoolError('SESSION_LIMIT', `this connection holds subscriptions or generations in ${max} sessions (maxSessionsPerConnection); end some first`, { limit: max, session });
  }

  private hold(session: SessionId): void {
    this.sessions.set(session, (this.sessions.get(session) ?? 0) + 1);
  }

  private release(session: SessionId): void {
    const left = (this.sessions.get(session) ?? 1) - 1;
    if (left > 0) this.sessions.set(session, left);
    else this.sessions.delete(session);
  }
}

function generationKey(session: SessionId, generation: string): string {
  // Ids are of [A-Za-z0-9._:-]: '/' cannot occur in either.
  return `${session}/${generation}`;
}
