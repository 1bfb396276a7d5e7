/**
 * The scope matrix, over real WebSockets on both transports and each JWT key mode: for each
 * capability (read, write, append, takeover, admin) and each kind of token (in scope, out of
 * scope, expired, not yet valid, wrong signature, alg none, wrong algorithm, unknown kid), what
 * the gateway accepts, and that nothing of a refused operation is stored (the store is read back)
 * or delivered (a reader with every scope follows the session up to a marker appended after the
 * attempt, so everything delivered before the marker is known).
 *
 * The operation is pipelined right after the hello: frames that arrive while a JWT is verified
 * must wait for it, and run only when it verifies.
 */
import { closeCodeOf, type ErrorCode } from '../protocol/errors';
import { MemoryStore } from '../store/memory';
import { startGateway, type Gateway, type GatewayOptions } from './index';
import { confusedToken, signToken, unsecuredToken, type KeyPair } from './test-helpers/jwt';
import { jwtHarness, quiet, transportOf } from './test-helpers/jwt-gateway';
import type { AnyFrame, RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES } from './transport';

const h = jwtHarness();

type KeyMode = 'secret (HS256)' | 'public key (RS256 PEM)' | 'JWKS file (ES256 by kid)';
const KEY_MODES: readonly KeyMode[] = ['secret (HS256)', 'public key (RS256 PEM)', 'JWKS file (ES256 by kid)'];

type Capability = 'read' | 'write' | 'append' | 'takeover' | 'admin';
const CAPABILITIES: readonly Capability[] = ['read', 'write', 'append', 'takeover', 'admin'];

type TokenCase = 'in scope' | 'out of scope' | 'expired' | 'not yet valid' | 'wrong signature' | 'alg none' | 'wrong algorithm (HS/RS confusion)' | 'unknown kid';
const TOKEN_CASES: readonly TokenCase[] = ['in scope', 'out of scope', 'expired', 'not yet valid', 'wrong signature', 'alg none', 'wrong algorithm (HS/RS confusion)', 'unknown kid'];

/** How the gateway refuses each bad token at the hello. */
const REFUSED_WITH: Partial<Record<TokenCase, ErrorCode>> = {
  expired: 'TOKEN_EXPIRED',
  'not yet valid': 'UNAUTHORIZED',
  'wrong signature': 'UNAUTHORIZED',
  'alg none': 'UNAUTHORIZED',
  'wrong algorithm (HS/RS confusion)': 'UNAUTHORIZED',
  'unknown kid': 'UNAUTHORIZED',
};

function gatewayOptions(mode: KeyMode): GatewayOptions {
  switch (mode) {
    case 'secret (HS256)':
      return { jwtSecret: h.keys.secret };
    case 'public key (RS256 PEM)':
      return { jwtPublicKey: h.keys.rsaPemFile };
    case 'JWKS file (ES256 by kid)':
      return { jwks: h.keys.jwksFile };
  }
}

function signingKey(mode: KeyMode): string | KeyPair {
  switch (mode) {
    case 'secret (HS256)':
      return h.keys.secret;
    case 'public key (RS256 PEM)':
      return h.keys.rsa;
    case 'JWKS file (ES256 by kid)':
      return h.keys.ec;
  }
}

/** The token of `tokenCase` carrying `claims`, as `mode`'s gateway sees it. */
async function tokenFor(mode: KeyMode, tokenCase: TokenCase, claims: Record<string, unknown>): Promise<string> {
  const key = signingKey(mode);
  switch (tokenCase) {
    case 'in scope':
    case 'out of scope':
      return signToken(claims, { key });
    case 'expired':
      return signToken(claims, { key, expIn: -30 });
    case 'not yet valid':
      return signToken(claims, { key, nbfIn: 600 });
    case 'wrong signature':
      // Another key under the name the gateway expects (same alg, same kid).
      if (typeof key === 'string') return signToken(claims, { key: 'not-the-gateway-secret-but-32-bytes-long' });
      return signToken(claims, { key: key.alg === 'ES256' ? h.keys.strangerEc : h.keys.stranger });
    case 'alg none':
      return unsecuredToken(claims);
    case 'wrong algorithm (HS/RS confusion)':
      // A secret gateway is sent an RS256 token; a key gateway an HS256 token MACed with its public PEM.
      return typeof key === 'string' ? signToken(claims, { key: h.keys.rsa }) : confusedToken(claims, mode === 'JWKS file (ES256 by kid)' ? h.keys.rsa : key);
    case 'unknown kid':
      return signToken(claims, { key: key as KeyPair, kid: 'kid-nobody-published' });
  }
}

/** The `spool` claim that puts `capability` on `session` in scope, or just out of it. */
function claimFor(capability: Capability, session: string, inScope: boolean): Record<string, unknown> {
  const elsewhere = 'elsewhere:*';
  switch (capability) {
    case 'read':
      return inScope ? { read: [session] } : { read: [elsewhere], write: [session], takeover: [session] };
    case 'write':
      return inScope ? { write: [`${session.split(':')[0]}:*`] } : { read: [session], write: [elsewhere], takeover: [session] };
    case 'append':
      return inScope ? { write: [session] } : { read: [session], takeover: [session] };
    case 'takeover':
      return inScope ? { write: [session], takeover: [session] } : { write: [session], takeover: [elsewhere] };
    case 'admin':
      return inScope ? { admin: true } : { admin: false };
  }
}

let sessionCounter = 0;

describe.each(TRANSPORT_NAMES)('over %s', (transportName) => {
  describe.each(KEY_MODES)('JWT with a %s', (mode) => {
    let gw: Gateway;
    let store: MemoryStore;
    beforeAll(async () => {
      store = new MemoryStore();
      // The matrix presents dozens of refused tokens from one address: past the failure budget
      // (authFailureBurst, edge.test.ts) the gateway would stop checking them at all.
      gw = await startGateway({ port: 0, store, logger: quiet, transport: transportOf(transportName), authFailureBurst: 1_000_000, ...gatewayOptions(mode) });
    });
    afterAll(() => gw.close());

    /** A connection whose hello carries `token`; its hello's answer is not awaited (frames pipeline behind it). */
    async function connect(token: string): Promise<RawClient> {
      return h.hello(gw, token);
    }

    /** A connection with every scope on every session. */
    async function root(): Promise<RawClient> {
      const c = await connect(await signToken({ sub: 'root', spool: { read: ['*'], write: ['*'], takeover: ['*'] } }, { key: signingKey(mode) }));
      await c.next((f) => f.type === 'welcome');
      return c;
    }

    /** What the store holds for `session`, as [type, data] pairs. */
    async function stored(session: string): Promise<Array<[string, unknown]>> {
      return (await store.read(session as never, 0, 100)).items.map((e) => [e.type, (e as { data?: unknown; status?: string }).data ?? (e as { status?: string }).status]);
    }

    /** Everything a reader with every scope is delivered in `session` up to a marker appended now. */
    async function delivered(rootClient: RawClient, session: string): Promise<Array<[string, unknown]>> {
      const reader = await root();
      reader.send({ type: 'subscribe', id: 90, session, from: 0 });
      await reader.next((f) => f.id === 90 && f.type === 'subscribed');
      rootClient.send({ type: 'append', id: 91, session, key: 'marker', kind: 'control', data: 'marker' });
      await rootClient.next((f) => f.id === 91 && f.type === 'appended');
      const events: AnyFrame[] = [];
      while (!events.some((e) => e['key'] === 'marker')) {
        const frame = await reader.next((f) => f.type === 'events' && f['session'] === session);
        events.push(...(frame['events'] as AnyFrame[]));
      }
      return events.filter((e) => e['key'] !== 'marker').map((e) => [e['type'] as string, e['data'] ?? e['status']]);
    }

    const cases = CAPABILITIES.flatMap((capability) =>
      TOKEN_CASES.filter((c) => c !== 'unknown kid' || mode === 'JWKS file (ES256 by kid)').map((tokenCase) => [capability, tokenCase] as const),
    );

    it.each(cases)('%s × %s', async (capability, tokenCase) => {
      const session = `m${++sessionCounter}:${capability}`;
      const inScope = tokenCase === 'in scope';
      const refusedWith = REFUSED_WITH[tokenCase];
      const token = await tokenFor(mode, tokenCase, { sub: 'tester', spool: claimFor(capability, session, inScope) });
      const admin = await root();

      // What was in the session before the attempt.
      let before: Array<[string, unknown]> = [];
      if (capability === 'read' || capability === 'takeover') {
        const opened = await admin.open(session, 'seed', { secret: 'seed-producer-secret-0001' });
        expect(opened).toMatchObject({ type: 'opened' });
        if (capability === 'read') {
          admin.send({ type: 'chunk', token: opened['token'], seq: 0, data: 'seeded' });
          admin.send({ type: 'finish', id: 80, token: opened['token'], seq: 1 });
          await admin.next((f) => f.id === 80 && f.type === 'finished');
          before = [['gen.start', undefined], ['chunk', 'seeded'], ['gen.end', 'done']];
        } else {
          before = [['gen.start', undefined]];
        }
      }

      const c = await connect(token);
      switch (capability) {
        case 'read':
          c.send({ type: 'subscribe', id: 2, session, from: 0 });
          break;
        case 'write':
          c.send({ type: 'open', id: 2, session, generation: 'g', secret: 'tester-producer-secret-01' });
          break;
        case 'append':
          c.send({ type: 'append', id: 2, session, key: 'k1', kind: 'user', data: 'appended' });
          break;
        case 'takeover':
          c.send({ type: 'open', id: 2, session, generation: 'g', takeover: true });
          break;
        case 'admin':
          // No admin frame exists in protocol v1: the admin capability grants no session access.
          c.send({ type: 'subscribe', id: 2, session, from: 0 });
          c.send({ type: 'append', id: 3, session, key: 'k1', kind: 'user', data: 'appended' });
          break;
      }
      c.send({ type: 'ping', id: 9 });

      if (refusedWith !== undefined) {
        // The hello is refused and the connection closed; nothing pipelined behind it ran.
        expect(await c.next((f) => f.type === 'error')).toMatchObject({ id: 1, code: refusedWith });
        expect((await c.waitClosed()).code).toBe(closeCodeOf(refusedWith));
        expect(c.frames.map((f) => f.type)).toEqual(['error']);
        expect(await stored(session)).toEqual(before);
        expect(await delivered(admin, session)).toEqual(before);
        return;
      }

      expect(await c.next((f) => f.type === 'welcome')).toMatchObject({ id: 1, expiresInMs: expect.any(Number) });
      const answer = await c.next((f) => f.id === 2);
      let after = before;
      if (capability === 'admin' || !inScope) {
        expect(answer).toMatchObject({ type: 'error', code: 'FORBIDDEN', ref: session, retryable: false, details: { session } });
        if (capability === 'admin') expect(await c.next((f) => f.id === 3)).toMatchObject({ type: 'error', code: 'FORBIDDEN' });
        expect(await c.next((f) => f.id === 9)).toMatchObject({ type: 'pong' });
        // Refused, not cut: the connection stays open, and nothing of the session reached it.
        expect(c.closed).toBeNull();
        expect(c.frames.filter((f) => f['session'] === session && f.type !== 'error')).toEqual([]);
        if (capability === 'takeover') {
          // The displaced producer was never displaced: it still writes.
          const { token: seedToken } = await admin.open(session, 'seed', { secret: 'seed-producer-secret-0001' });
          admin.send({ type: 'chunk', token: seedToken, seq: 0, data: 'still mine' });
          expect(await admin.next((f) => f.type === 'ack' || f.type === 'error')).toMatchObject({ type: 'ack', seq: 0 });
          after = [...before, ['chunk', 'still mine']];
        }
      } else {
        switch (capability) {
          case 'read': {
            expect(answer).toMatchObject({ type: 'subscribed', session, from: 0 });
            const events: AnyFrame[] = [];
            while (events.length < 3) events.push(...((await c.next((f) => f.type === 'events'))['events'] as AnyFrame[]));
            expect(events.map((e) => [e['type'], e['data'] ?? e['status']])).toEqual(before);
            break;
          }
          case 'write': {
            expect(answer).toMatchObject({ type: 'opened', resumed: false });
            c.send({ type: 'chunks', token: answer['token'], seq: 0, items: [{ data: 'w0' }, { data: 'w1' }] });
            c.send({ type: 'finish', id: 4, token: answer['token'], seq: 2 });
            expect(await c.next((f) => f.id === 4)).toMatchObject({ type: 'finished', status: 'done' });
            after = [['gen.start', undefined], ['chunk', 'w0'], ['chunk', 'w1'], ['gen.end', 'done']];
            break;
          }
          case 'append':
            expect(answer).toMatchObject({ type: 'appended', key: 'k1', duplicate: false });
            after = [['append', 'appended']];
            break;
          case 'takeover':
            expect(answer).toMatchObject({ type: 'opened', resumed: false });
            expect(await admin.next((f) => f.type === 'error')).toMatchObject({ code: 'FENCED', ref: 'seed' });
            after = [['gen.start', undefined], ['gen.end', 'fenced'], ['gen.start', undefined]];
            break;
        }
      }
      expect(await stored(session)).toEqual(after);
      expect(await delivered(admin, session)).toEqual(after);
    });
  });
});
