/**
 * Verification of tokens into identities, with no socket: the auth modes and their configuration
 * errors, the algorithms each key pins, the `spool` claim and how its entries match sessions.
 * (authorization.test.ts drives the same rules through real gateways.)
 */
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { SpoolError, type ErrorCode } from '../protocol/errors';
import { authModeOf, createAuthenticator, type AuthOptions, type Authenticator, type Identity } from './auth';
import { MAX_SCOPE_ENTRIES, ScopeClaimError, Scopes } from './scopes';
import { confusedToken, makeTestKeys, publicJwk, signToken, unsecuredToken, type TestKeys } from './test-helpers/jwt';

const quiet = pino({ level: 'silent' });
let keys: TestKeys;
beforeAll(async () => {
  keys = await makeTestKeys();
});
afterAll(() => keys.cleanup());

const BASE: AuthOptions = { jwksCooldownMs: 0, clock: Date.now };
const CLAIM = { sub: 'user-42', spool: { read: ['user:42:*'], write: ['user:42:chat-1'], takeover: [], admin: false } };

async function refusal(authenticator: Authenticator, token: string | undefined): Promise<ErrorCode> {
  try {
    await authenticator.verify(token);
  } catch (error) {
    expect(error).toBeInstanceOf(SpoolError);
    return (error as SpoolError).code;
  }
  throw new Error('the token was accepted');
}

describe('auth modes', () => {
  it('no credential configured is an open gateway: anything is let in with every scope', async () => {
    const auth = await createAuthenticator(BASE, quiet);
    expect(auth.mode).toBe('open');
    const identity = auth.verify(undefined) as Identity;
    expect(identity.scopes.allows('write', 'any')).toBe(true);
    expect(identity.scopes.allows('admin', 'any')).toBe(true);
  });

  it('giving two auth modes is a configuration error that names both', async () => {
    await expect(createAuthenticator({ ...BASE, authToken: 'x', jwtSecret: keys.secret }, quiet)).rejects.toThrow(/one auth mode, not 2: --auth-token.*--jwt-secret/);
    expect(() => authModeOf({ jwtPublicKey: 'a.pem', jwks: 'b.json' })).toThrow(/--jwt-public-key.*--jwks/);
    expect(() => authModeOf({ jwtSecret: 's', jwtPublicKey: 'a.pem', jwks: 'b.json', authToken: 't' })).toThrow(/not 4/);
  });

  it('issuer or audience without a JWT key is a configuration error', () => {
    expect(() => authModeOf({ jwtIssuer: 'https://idp' })).toThrow(/need a JWT key/);
    expect(() => authModeOf({ authToken: 't', jwtAudience: 'spool' })).toThrow(/need a JWT key/);
  });

  it('refuses a JWT secret shorter than 256 bits, an unreadable key file, and a key set with a symmetric key', async () => {
    await expect(createAuthenticator({ ...BASE, jwtSecret: 'short' }, quiet)).rejects.toThrow(/5 bytes; HS256 needs at least 32/);
    await expect(createAuthenticator({ ...BASE, jwtPublicKey: path.join(keys.dir, 'missing.pem') }, quiet)).rejects.toThrow(/cannot read/);
    const oct = path.join(keys.dir, 'oct.json');
    fs.writeFileSync(oct, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'x' }] }));
    await expect(createAuthenticator({ ...BASE, jwks: oct }, quiet)).rejects.toThrow(/symmetric key/);
  });

  describe('shared token', () => {
    it('accepts exactly the token, refuses any other (whatever its length) and a missing one with UNAUTHORIZED', async () => {
      const auth = await createAuthenticator({ ...BASE, authToken: 'sesame' }, quiet);
      expect(auth.mode).toBe('shared-token');
      expect((auth.verify('sesame') as Identity).scopes.allows('takeover', 's')).toBe(true);
      // Digests of equal length are compared, so a shorter or longer guess is refused, never thrown on.
      for (const guess of ['', 's', 'sesam', 'sesame!', 'Sesame', 'x'.repeat(10_000)]) expect(await refusal(auth, guess)).toBe('UNAUTHORIZED');
      expect(await refusal(auth, undefined)).toBe('UNAUTHORIZED');
    });
  });
});

describe('JWT verification', () => {
  it('HS256 with the secret: sub, exp and the claim make the identity', async () => {
    const auth = await createAuthenticator({ ...BASE, jwtSecret: keys.secret }, quiet);
    const identity = await auth.verify(await signToken(CLAIM, { key: keys.secret, expIn: 30 }));
    expect(identity.subject).toBe('user-42');
    expect(identity.expiresAt).toBeGreaterThan(Date.now() + 25_000);
    expect(identity.scopes.allows('read', 'user:42:anything')).toBe(true);
    expect(identity.scopes.allows('write', 'user:42:chat-1')).toBe(true);
    expect(identity.scopes.allows('write', 'user:42:chat-2')).toBe(false);
  });

  it.each([
    ['RS256 (RSA PEM)', 'rsa'],
    ['ES256 (P-256 PEM)', 'ec'],
    ['EdDSA (Ed25519 PEM)', 'ed'],
  ] as const)('a public key verifies %s tokens and refuses HS256 signed with its PEM, alg none and another key', async (_name, which) => {
    const key = keys[which];
    const file = { rsa: keys.rsaPemFile, ec: keys.ecPemFile, ed: keys.edPemFile }[which];
    const auth = await createAuthenticator({ ...BASE, jwtPublicKey: file }, quiet);
    expect((await auth.verify(await signToken(CLAIM, { key }))).subject).toBe('user-42');
    expect(await refusal(auth, await confusedToken(CLAIM, key))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, unsecuredToken(CLAIM))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, await signToken(CLAIM, { key: keys.stranger }))).toBe('UNAUTHORIZED');
  });

  it('the PEM text itself may be given instead of a file', async () => {
    const auth = await createAuthenticator({ ...BASE, jwtPublicKey: keys.ec.pem }, quiet);
    expect((await auth.verify(await signToken(CLAIM, { key: keys.ec }))).subject).toBe('user-42');
  });

  it('a secret gateway refuses RS256 tokens and alg none', async () => {
    const auth = await createAuthenticator({ ...BASE, jwtSecret: keys.secret }, quiet);
    expect(await refusal(auth, await signToken(CLAIM, { key: keys.rsa }))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, unsecuredToken(CLAIM))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, await signToken(CLAIM, { key: 'another-secret-of-at-least-32-bytes!!' }))).toBe('UNAUTHORIZED');
  });

  it('a JWKS file verifies each of its keys by kid and refuses an unknown kid, a stranger under a known kid and HS/RS confusion', async () => {
    const auth = await createAuthenticator({ ...BASE, jwks: keys.jwksFile }, quiet);
    for (const key of [keys.rsa, keys.ec, keys.ed]) expect((await auth.verify(await signToken(CLAIM, { key }))).subject).toBe('user-42');
    expect(await refusal(auth, await signToken(CLAIM, { key: keys.rsa, kid: 'rsa-404' }))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, await signToken(CLAIM, { key: keys.stranger }))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, await confusedToken(CLAIM, keys.rsa))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, unsecuredToken(CLAIM))).toBe('UNAUTHORIZED');
  });

  it('a JWKS file is reread when a token names a kid it does not hold (rotation by kid)', async () => {
    const file = path.join(keys.dir, 'rotating.json');
    fs.writeFileSync(file, JSON.stringify({ keys: [await publicJwk(keys.rsa)] }));
    const auth = await createAuthenticator({ ...BASE, jwks: file }, quiet);
    const rotated = { ...keys.stranger, kid: 'rsa-2' };
    const token = await signToken(CLAIM, { key: rotated });
    expect(await refusal(auth, token)).toBe('UNAUTHORIZED');
    fs.writeFileSync(file, JSON.stringify({ keys: [await publicJwk(keys.rsa), await publicJwk(rotated)] }));
    expect((await auth.verify(token)).subject).toBe('user-42');
    expect((await auth.verify(await signToken(CLAIM, { key: keys.rsa }))).subject).toBe('user-42');
  });

  it.each([
    ['expired', 'TOKEN_EXPIRED', { expIn: -10 }],
    ['not yet valid', 'UNAUTHORIZED', { nbfIn: 60 }],
    ['without exp', 'UNAUTHORIZED', { withExp: false }],
  ] as const)('a token %s is refused with %s', async (_name, code, options) => {
    const auth = await createAuthenticator({ ...BASE, jwtSecret: keys.secret }, quiet);
    expect(await refusal(auth, await signToken(CLAIM, { key: keys.secret, ...options }))).toBe(code);
  });

  it('checks iss and aud when configured', async () => {
    const auth = await createAuthenticator({ ...BASE, jwtSecret: keys.secret, jwtIssuer: 'https://idp.example', jwtAudience: 'spool' }, quiet);
    const good = await signToken({ ...CLAIM, iss: 'https://idp.example', aud: ['spool', 'other'] }, { key: keys.secret });
    expect((await auth.verify(good)).subject).toBe('user-42');
    expect(await refusal(auth, await signToken({ ...CLAIM, iss: 'https://evil.example', aud: 'spool' }, { key: keys.secret }))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, await signToken({ ...CLAIM, iss: 'https://idp.example', aud: 'other' }, { key: keys.secret }))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, await signToken(CLAIM, { key: keys.secret }))).toBe('UNAUTHORIZED');
  });

  it('refuses a token without sub, without the spool claim, or with a malformed claim', async () => {
    const auth = await createAuthenticator({ ...BASE, jwtSecret: keys.secret }, quiet);
    const sign = (claims: Record<string, unknown>): Promise<string> => signToken(claims, { key: keys.secret });
    expect(await refusal(auth, await sign({ spool: CLAIM.spool }))).toBe('UNAUTHORIZED');
    expect(await refusal(auth, await sign({ sub: 'u' }))).toBe('UNAUTHORIZED');
    for (const spool of [[], 'read', { read: 'user:42:*' }, { write: [1] }, { read: ['a*b'] }, { read: ['bad id'] }, { admin: 'yes' }, { read: Array(MAX_SCOPE_ENTRIES + 1).fill('s') }]) {
      expect(await refusal(auth, await sign({ sub: 'u', spool }))).toBe('UNAUTHORIZED');
    }
    expect(await refusal(auth, undefined)).toBe('UNAUTHORIZED');
    expect(await refusal(auth, 'not.a.jwt')).toBe('UNAUTHORIZED');
  });
});

describe('scopes', () => {
  const scopes = Scopes.fromClaim({ read: ['user:42:*', 'shared'], write: ['user:42:chat-1'], takeover: ['*'], admin: true });

  it.each([
    ['read', 'user:42:chat-1', true],
    ['read', 'user:42:', true],
    ['read', 'user:420', false],
    ['read', 'user:4', false],
    ['read', 'shared', true],
    ['read', 'shared2', false],
    ['write', 'user:42:chat-1', true],
    ['write', 'user:42:chat-10', false],
    ['write', 'shared', false],
    ['takeover', 'anything', true],
    ['admin', 'anything', true],
  ] as const)('%s on %s: %s', (capability, session, allowed) => {
    expect(scopes.allows(capability, session)).toBe(allowed);
  });

  it('grants only what the claim spells out: missing lists are empty, a missing admin is false', () => {
    const empty = Scopes.fromClaim({});
    for (const capability of ['read', 'write', 'takeover', 'admin'] as const) expect(empty.allows(capability, 's')).toBe(false);
  });

  it('refuses entries that are neither a session id nor a prefix ending in *', () => {
    for (const entry of ['', '**', 'a*b', 'a b', 'x'.repeat(129), 'é*', 1, null]) {
      expect(() => Scopes.fromClaim({ read: [entry] })).toThrow(ScopeClaimError);
    }
    expect(() => Scopes.fromClaim(undefined)).toThrow(/no spool claim/);
  });
});
