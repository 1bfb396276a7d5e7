/**
 * Who a connection is: the gateway's one auth mode, and the verification of `hello.token` (and of
 * a `refresh`'s token) into an Identity whose Scopes every frame is authorized against.
 *
 *   open          no credential configured: anyone may do anything (a laptop, a test)
 *   shared-token  `authToken`: one secret for everything, compared in constant time
 *   jwt           `jwtSecret` (HS256) | `jwtPublicKey` (RS/PS/ES/EdDSA, PEM) | `jwks` (file or URL):
 *                 a JWT with `sub`, `exp` and the `spool` claim (scopes.ts)
 *
 * Exactly one mode; giving two is a configuration error. The algorithms a JWT may use are pinned
 * by the key: HS256 with a secret and only with a secret, the public key's own algorithms with a
 * key or a key set. `alg: none` never verifies, an HS256 token signed with a public key's PEM as
 * its secret is refused (HS is not among a key's algorithms), and a `kid` the key set does not
 * hold is refused after one reload of the set.
 */
import { createHash, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type FlattenedJWSInput,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { SpoolError } from '../protocol/errors';
import { QuotaClaimError, quotaFromClaim, type QuotaLimits } from './edge/quotas';
import { ScopeClaimError, Scopes } from './scopes';

/** The gateway's one way of telling who a connection is. */
export type AuthMode = 'open' | 'shared-token' | 'jwt';

/** Who a connection is and what it may do. */
export interface Identity {
  /** The JWT's `sub`; undefined on open and shared-token gateways. */
  readonly subject: string | undefined;
  readonly scopes: Scopes;
  /** When the credential expires (ms since the epoch, the JWT's `exp`); undefined: never. */
  readonly expiresAt: number | undefined;
  /** The quotas the JWT's `spool.quota` sets (edge/quotas.ts); the gateway's defaults fill in the rest. */
  readonly quota: Partial<QuotaLimits>;
}

/** Verifies the token a client presents. Open and shared-token gateways answer synchronously. */
export interface Authenticator {
  readonly mode: AuthMode;
  /**
   * The identity `token` proves, or a thrown/rejected SpoolError: UNAUTHORIZED (missing, malformed,
   * badly signed, not yet valid, wrong issuer/audience, malformed claim), TOKEN_EXPIRED, or
   * AUTH_UNAVAILABLE (the key set could not be fetched: nothing is wrong with the token).
   */
  verify(token: string | undefined): Identity | Promise<Identity>;
}

/** The auth settings of GatewayConfig (config.ts documents each). */
export interface AuthOptions {
  readonly authToken?: string;
  readonly jwtSecret?: string;
  readonly jwtPublicKey?: string;
  readonly jwks?: string;
  readonly jwtIssuer?: string;
  readonly jwtAudience?: string;
  /** After the key set was (re)loaded, an unknown `kid` triggers no new load for this long. */
  readonly jwksCooldownMs: number;
  readonly clock: () => number;
}

/** HS256 keys shorter than the hash are weak (RFC 7518 §3.2 requires at least 256 bits). */
export const MIN_JWT_SECRET_BYTES = 32;
/** A key set is reloaded at least this often, so a key removed from it stops verifying. */
const JWKS_MAX_AGE_MS = 10 * 60_000;
/** A key set URL that does not answer within this long fails the verification (AUTH_UNAVAILABLE). */
const JWKS_FETCH_TIMEOUT_MS = 5_000;

const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const EC_ALGORITHMS: Record<string, string> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const EDDSA_ALGORITHMS = ['EdDSA', 'Ed25519'];
/** What a key set's keys may sign with: every asymmetric algorithm, never HS*. */
const ASYMMETRIC_ALGORITHMS = [...RSA_ALGORITHMS, ...Object.values(EC_ALGORITHMS), ...EDDSA_ALGORITHMS];

/** Which mode the options select; throws when they name more than one (or JWT settings without a JWT key). */
export function authModeOf(options: Omit<AuthOptions, 'clock' | 'jwksCooldownMs'>): AuthMode {
  const given = [
    options.authToken !== undefined ? '--auth-token (SPOOL_AUTH_TOKEN)' : undefined,
    options.jwtSecret !== undefined ? '--jwt-secret (SPOOL_JWT_SECRET)' : undefined,
    options.jwtPublicKey !== undefined ? '--jwt-public-key (SPOOL_JWT_PUBLIC_KEY)' : undefined,
    options.jwks !== undefined ? '--jwks (SPOOL_JWKS)' : undefined,
  ].filter((s): s is string => s !== undefined);
  if (given.length > 1) throw new Error(`give one auth mode, not ${given.length}: ${given.join(', ')}`);
  const jwt = options.jwtSecret !== undefined || options.jwtPublicKey !== undefined || options.jwks !== undefined;
  if (!jwt && (options.jwtIssuer !== undefined || options.jwtAudience !== undefined)) {
    throw new Error('--jwt-issuer and --jwt-audience need a JWT key: --jwt-secret, --jwt-public-key or --jwks');
  }
  if (jwt) return 'jwt';
  return options.authToken !== undefined ? 'shared-token' : 'open';
}

/** Builds the authenticator the options select (reads the key file or key set file once here). */
export async function createAuthenticator(options: AuthOptions, logger: Logger): Promise<Authenticator> {
  const mode = authModeOf(options);
  if (mode === 'open') return OPEN;
  if (mode === 'shared-token') return sharedToken(options.authToken as string);
  const key = await jwtKey(options, logger);
  return new JwtAuthenticator(key.key, key.algorithms, options);
}

// ------------------------------------------------------------------ open and shared token

const EVERYONE: Identity = { subject: undefined, scopes: Scopes.ALL, expiresAt: undefined, quota: {} };

const OPEN: Authenticator = { mode: 'open', verify: () => EVERYONE };

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * One shared secret. Compared as SHA-256 digests with timingSafeEqual: the digests have a fixed
 * length whatever was sent, so neither the comparison nor a length check reveals how much of a
 * guess was right.
 */
export function sharedToken(secret: string): Authenticator {
  if (secret.length === 0) throw new Error('--auth-token (SPOOL_AUTH_TOKEN) must not be empty');
  const expected = digest(secret);
  return {
    mode: 'shared-token',
    verify(token) {
      if (token === undefined) throw new SpoolError('UNAUTHORIZED', 'hello.token is required');
      if (!timingSafeEqual(digest(token), expected)) throw new SpoolError('UNAUTHORIZED', 'hello.token is not valid');
      return EVERYONE;
    },
  };
}

// ------------------------------------------------------------------ JWT

type VerifyKey = Uint8Array | KeyObject | JWTVerifyGetKey;

/** A key set could not be fetched or read: not the token's fault (AUTH_UNAVAILABLE). */
class KeySetUnavailable extends Error {
  override readonly name = 'KeySetUnavailable';
}

async function jwtKey(options: AuthOptions, logger: Logger): Promise<{ key: VerifyKey; algorithms: string[] }> {
  if (options.jwtSecret !== undefined) {
    const secret = new TextEncoder().encode(options.jwtSecret);
    if (secret.length < MIN_JWT_SECRET_BYTES) {
      throw new Error(`--jwt-secret (SPOOL_JWT_SECRET) is ${secret.length} bytes; HS256 needs at least ${MIN_JWT_SECRET_BYTES} (256 bits)`);
    }
    return { key: secret, algorithms: ['HS256'] };
  }
  if (options.jwtPublicKey !== undefined) {
    const pem = await readPemOrFile(options.jwtPublicKey);
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (error) {
      throw new Error(`--jwt-public-key (SPOOL_JWT_PUBLIC_KEY) is not a PEM public key: ${(error as Error).message}`);
    }
    return { key, algorithms: algorithmsOf(key) };
  }
  const source = options.jwks as string;
  if (/^https?:\/\//i.test(source)) {
    const remote = createRemoteJWKSet(new URL(source), {
      cooldownDuration: options.jwksCooldownMs,
      cacheMaxAge: JWKS_MAX_AGE_MS,
      timeoutDuration: JWKS_FETCH_TIMEOUT_MS,
    });
    const key: JWTVerifyGetKey = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (error) {
        throw keySetFailure(error);
      }
    };
    return { key, algorithms: ASYMMETRIC_ALGORITHMS };
  }
  const file = new JwksFile(source, options, logger);
  await file.load();
  return { key: (header, token) => file.key(header, token), algorithms: ASYMMETRIC_ALGORITHMS };
}

/** A key that selects nothing for this token stays the token's fault; anything else is the key set's. */
function keySetFailure(error: unknown): unknown {
  if (
    error instanceof joseErrors.JWKSNoMatchingKey ||
    error instanceof joseErrors.JWKSMultipleMatchingKeys ||
    error instanceof joseErrors.JOSEAlgNotAllowed ||
    error instanceof joseErrors.JOSENotSupported ||
    error instanceof joseErrors.JWSInvalid
  ) {
    return error;
  }
  return new KeySetUnavailable(`the key set could not be fetched: ${error instanceof Error ? error.message : String(error)}`);
}

async function readPemOrFile(value: string): Promise<string> {
  if (value.trimStart().startsWith('-----BEGIN')) return value;
  try {
    return await readFile(value, 'utf8');
  } catch (error) {
    throw new Error(`--jwt-public-key (SPOOL_JWT_PUBLIC_KEY): cannot read ${value}: ${(error as Error).message}`);
  }
}

/** The algorithms a public key can verify, and no other (so no HS256 with its PEM as a secret). */
function algorithmsOf(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return RSA_ALGORITHMS;
    case 'rsa-pss':
      return RSA_ALGORITHMS.filter((a) => a.startsWith('PS'));
    case 'ec': {
      const alg = EC_ALGORITHMS[key.asymmetricKeyDetails?.namedCurve ?? ''];
      if (alg !== undefined) return [alg];
      throw new Error(`--jwt-public-key: EC curve ${key.asymmetricKeyDetails?.namedCurve} is not one of P-256, P-384, P-521`);
    }
    case 'ed25519':
      return EDDSA_ALGORITHMS;
    default:
      throw new Error(`--jwt-public-key: a ${key.asymmetricKeyType} key cannot verify JWTs here; use RSA, EC (P-256/384/521) or Ed25519`);
  }
}

/**
 * A key set in a file, rotated by `kid`: a token naming a `kid` the set does not hold reloads the
 * file (at most once per cooldown) before it is refused, and the file is reread when older than
 * JWKS_MAX_AGE_MS so a key taken out of it stops verifying. A reload that fails keeps the keys
 * already loaded (and logs why).
 */
class JwksFile {
  private set: ((header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKeyLike>) | undefined;
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly options: AuthOptions,
    private readonly logger: Logger,
  ) {}

  /** Reads and checks the file; throws a configuration error when it is not a usable key set. */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      throw new Error(`--jwks (SPOOL_JWKS): cannot read ${this.path}: ${(error as Error).message}`);
    }
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(text) as JSONWebKeySet;
    } catch {
      throw new Error(`--jwks (SPOOL_JWKS): ${this.path} is not JSON`);
    }
    if (typeof jwks !== 'object' || jwks === null || !Array.isArray(jwks.keys)) throw new Error(`--jwks (SPOOL_JWKS): ${this.path} has no "keys" array`);
    for (const key of jwks.keys) {
      if (key.kty === 'oct') throw new Error(`--jwks (SPOOL_JWKS): ${this.path} holds a symmetric key (kty oct); a shared secret belongs in --jwt-secret`);
    }
    this.set = createLocalJWKSet(jwks);
    this.loadedAt = this.options.clock();
  }

  async key(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKeyLike> {
    if (this.options.clock() - this.loadedAt >= JWKS_MAX_AGE_MS) await this.reload();
    try {
      return await (this.set as NonNullable<JwksFile['set']>)(header, token);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey) || this.options.clock() - this.loadedAt < this.options.jwksCooldownMs) throw error;
      await this.reload();
      return (this.set as NonNullable<JwksFile['set']>)(header, token);
    }
  }

  private reload(): Promise<void> {
    this.loading ??= this.load()
      .catch((error: unknown) => {
        // Keep verifying with the keys we have; try the file again after the cooldown.
        this.loadedAt = this.options.clock();
        this.logger.warn({ err: String(error) }, 'key set reload failed; keeping the loaded keys');
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }
}

type CryptoKeyLike = Awaited<ReturnType<ReturnType<typeof createLocalJWKSet>>>;

/** Verifies JWTs with one key (or key set) and reads their `spool` claim. */
class JwtAuthenticator implements Authenticator {
  readonly mode = 'jwt' as const;

  constructor(
    private readonly key: VerifyKey,
    private readonly algorithms: string[],
    private readonly options: AuthOptions,
  ) {}

  async verify(token: string | undefined): Promise<Identity> {
    if (token === undefined || token === '') throw new SpoolError('UNAUTHORIZED', 'hello.token is required: a JWT');
    const verifyOptions: JWTVerifyOptions = {
      algorithms: this.algorithms,
      requiredClaims: ['sub', 'exp'],
      currentDate: new Date(this.options.clock()),
      ...(this.options.jwtIssuer !== undefined ? { issuer: this.options.jwtIssuer } : {}),
      ...(this.options.jwtAudience !== undefined ? { audience: this.options.jwtAudience } : {}),
    };
    let payload: Record<string, unknown>;
    try {
      // One call site per key shape: jwtVerify's overloads take a key or a key resolver, not a union.
      const result =
        typeof this.key === 'function' ? await jwtVerify(token, this.key, verifyOptions) : await jwtVerify(token, this.key, verifyOptions);
      payload = result.payload;
    } catch (error) {
      throw refusal(error);
    }
    const sub = payload['sub'];
    if (typeof sub !== 'string' || sub.length === 0) throw new SpoolError('UNAUTHORIZED', 'the token has no sub');
    let scopes: Scopes;
    let quota: Partial<QuotaLimits>;
    try {
      scopes = Scopes.fromClaim(payload['spool']);
      quota = quotaFromClaim((payload['spool'] as Record<string, unknown>)['quota']);
    } catch (error) {
      if (error instanceof ScopeClaimError || error instanceof QuotaClaimError) throw new SpoolError('UNAUTHORIZED', `the token's ${error.message}`);
      throw error;
    }
    return { subject: sub, scopes, expiresAt: (payload['exp'] as number) * 1000, quota };
  }
}

/** The SpoolError a failed verification is answered with. Messages name what to fix, never key material. */
function refusal(error: unknown): SpoolError {
  if (error instanceof joseErrors.JWTExpired) return new SpoolError('TOKEN_EXPIRED', 'the token has expired (exp); fetch a new one');
  if (error instanceof KeySetUnavailable) return new SpoolError('AUTH_UNAVAILABLE', `${error.message}; reconnect later`);
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return new SpoolError('UNAUTHORIZED', 'the token is not valid yet (nbf)');
    return new SpoolError('UNAUTHORIZED', `the token's ${error.claim} claim is ${error.reason === 'missing' ? 'missing' : 'not accepted'}`);
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return new SpoolError('UNAUTHORIZED', 'the token is signed with an algorithm this gateway does not accept');
  if (error instanceof joseErrors.JWKSNoMatchingKey) return new SpoolError('UNAUTHORIZED', 'no key of the key set matches the token (kid)');
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return new SpoolError('UNAUTHORIZED', 'the token signature does not verify');
  if (error instanceof joseErrors.JOSEError) return new SpoolError('UNAUTHORIZED', 'the token is not a valid JWT');
  return new SpoolError('UNAUTHORIZED', 'the token could not be verified');
}
