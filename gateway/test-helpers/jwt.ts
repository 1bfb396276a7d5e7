/**
 * Keys and tokens for auth tests: an HS256 secret, RSA / EC P-256 / Ed25519 key pairs (PEM files
 * and a JWKS file with a `kid` each), a second RSA key for wrong signatures, and signing helpers
 * for well-formed, expired, not-yet-valid and forged tokens (`alg: none`, HS256 signed with a
 * public key's PEM).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, SignJWT, type JWK, type JWTPayload } from 'jose';

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** SPKI PEM of the public key. */
  readonly pem: string;
  readonly alg: string;
  readonly kid: string;
}

export interface TestKeys {
  readonly dir: string;
  readonly secret: string;
  readonly rsa: KeyPair;
  readonly ec: KeyPair;
  readonly ed: KeyPair;
  /** RSA and P-256 keys in no key set, named like the real ones (kid rsa-1, ec-1): wrong signatures. */
  readonly stranger: KeyPair;
  readonly strangerEc: KeyPair;
  /** Files: rsa.pem, ec.pem, ed.pem, jwks.json (rsa, ec, ed). */
  readonly rsaPemFile: string;
  readonly ecPemFile: string;
  readonly edPemFile: string;
  readonly jwksFile: string;
  /** Removes the files. */
  cleanup(): void;
}

function pair(type: 'rsa' | 'ec' | 'ed25519', alg: string, kid: string): KeyPair {
  const { privateKey, publicKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  return { privateKey, publicKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), alg, kid };
}

/** A JWK of the public half, with its kid and alg. */
export async function publicJwk(key: KeyPair): Promise<JWK> {
  return { ...(await exportJWK(key.publicKey)), kid: key.kid, alg: key.alg, use: 'sig' };
}

export async function makeTestKeys(): Promise<TestKeys> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-jwt-'));
  const rsa = pair('rsa', 'RS256', 'rsa-1');
  const ec = pair('ec', 'ES256', 'ec-1');
  const ed = pair('ed25519', 'EdDSA', 'ed-1');
  const stranger = pair('rsa', 'RS256', 'rsa-1');
  const strangerEc = pair('ec', 'ES256', 'ec-1');
  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  return {
    dir,
    secret: 'spool-test-secret-of-at-least-32-bytes!',
    rsa,
    ec,
    ed,
    stranger,
    strangerEc,
    rsaPemFile: write('rsa.pem', rsa.pem),
    ecPemFile: write('ec.pem', ec.pem),
    edPemFile: write('ed.pem', ed.pem),
    jwksFile: write('jwks.json', JSON.stringify({ keys: await Promise.all([rsa, ec, ed].map(publicJwk)) })),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface SignOptions {
  /** HS256 with this secret (a string), or the key pair's alg with its private key. */
  readonly key: string | Uint8Array | KeyPair;
  /** Overrides the key pair's kid; null: no kid header. */
  readonly kid?: string | null;
  /** Seconds from now (may be negative). @default 60 */
  readonly expIn?: number;
  /** Seconds from now; absent: no nbf. */
  readonly nbfIn?: number;
  /** The absolute exp (seconds since the epoch), instead of expIn. */
  readonly exp?: number;
  /** Left out of the token when false. @default true */
  readonly withExp?: boolean;
}

/** A signed JWT with `sub` and the `spool` claim given (and any other claims). */
export async function signToken(claims: JWTPayload, options: SignOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const { key } = options;
  const secret = typeof key === 'string' ? new TextEncoder().encode(key) : key instanceof Uint8Array ? key : undefined;
  const alg = secret !== undefined ? 'HS256' : (key as KeyPair).alg;
  const kid = options.kid === null ? undefined : (options.kid ?? (secret === undefined ? (key as KeyPair).kid : undefined));
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT', ...(kid !== undefined ? { kid } : {}) }).setIssuedAt(now);
  if (options.withExp !== false) jwt = jwt.setExpirationTime(options.exp ?? now + (options.expIn ?? 60));
  if (options.nbfIn !== undefined) jwt = jwt.setNotBefore(now + options.nbfIn);
  return jwt.sign(secret ?? (key as KeyPair).privateKey);
}

/** An unsecured JWT (`alg: none`, empty signature): must never verify. */
export function unsecuredToken(claims: JWTPayload): string {
  const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iat: now, exp: now + 60, ...claims })}.`;
}

/** HS256 signed with a public key's PEM text as the HMAC secret: the classic key-confusion forgery. */
export function confusedToken(claims: JWTPayload, key: KeyPair): Promise<string> {
  return signToken(claims, { key: new TextEncoder().encode(key.pem), kid: key.kid });
}
