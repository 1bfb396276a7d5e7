/**
 * Where a client's connections get the credential they present in `hello` and `refresh`
 * (PROTOCOL §4.6). A string is presented as is and can never be renewed; a function is asked for
 * a fresh token for every connection attempt and every in-band refresh, so an app hands the SDK
 * its token endpoint once and never deals with expiry itself.
 */

/** The `token` option: a fixed credential, or a function returning one (or a promise of one). */
export type TokenOption = string | (() => string | Promise<string>);

/** When to refresh a token that expires in `expiresInMs`: a third of its life early, at most 60 s early. */
export function refreshDelay(expiresInMs: number): number {
  return Math.max(0, expiresInMs - Math.min(60_000, expiresInMs / 3));
}

function checked(token: unknown): string {
  if (typeof token !== 'string' || token.length === 0) {
    throw new TypeError(`the token function must return a non-empty string, got ${token === '' ? 'an empty string' : typeof token}`);
  }
  return token;
}

/** One client's token: shared by all its connections, so overlapping requests make one call. */
export class TokenSource {
  private inFlight: Promise<string> | undefined;

  constructor(private readonly option: TokenOption | undefined) {
    if (option !== undefined && typeof option !== 'function') checked(option);
  }

  /** A function can hand out a new token; a string (or no token) cannot. */
  get renewable(): boolean {
    return typeof this.option === 'function';
  }

  /**
   * The token to present now: undefined when the client has none, a string, or a promise of one
   * when the function is asynchronous (calls made while one is pending share it). Throws, or
   * rejects, with what the function threw, or a TypeError when it returned no string.
   */
  get(): string | undefined | Promise<string> {
    const option = this.option;
    if (typeof option !== 'function') return option;
    if (this.inFlight !== undefined) return this.inFlight;
    const result = option();
    if (typeof result === 'string') return checked(result);
    const pending = Promise.resolve(result).then(checked);
    this.inFlight = pending;
    const clear = (): void => {
      if (this.inFlight === pending) this.inFlight = undefined;
    };
    pending.then(clear, clear);
    return pending;
  }
}
