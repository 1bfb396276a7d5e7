/**
 * Short-lived JWTs through the real SDK and a real gateway, on both transports: a producer and a
 * reader keep streaming across three expiries of their tokens, and the reader's history (and the
 * store) holds every chunk exactly once, in order.
 *
 * Two ways each expiry can go:
 * - in band: the SDK refreshes before `exp` (`refresh` → `refreshed`), the connections stay up;
 * - cut at expiry: the SDK's `refresh` frames are swallowed on their way out (by a wrapper on
 *   the SDK's WebSocket seam), so the gateway cuts each connection at `exp` with TOKEN_EXPIRED
 *   and the SDK reconnects with a fresh token, resuming its generation (token + secret) and its
 *   subscription (offset) as after any drop.
 *
 * Real time drives the tokens (exp has one-second granularity; each lives 2-3 s), but nothing
 * depends on speed: each round the producer writes a burst of chunks, then keeps writing one at a
 * time (at most MAX_TRICKLE), so chunks are in flight when a token rotates, until both clients
 * have moved to a new token (an event). What was written is recorded, and exactly that must
 * arrive, however much it was.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import WebSocket from 'ws';
import { SpoolClient, type WebSocketConstructor, type WebSocketLike } from '../client';
import { startGateway, type Gateway } from '../gateway';
import { signToken } from '../gateway/test-helpers/jwt';
import { TRANSPORT_NAMES, type Transport, type TransportName } from '../gateway/transport';
import { loadUwsTransport } from '../gateway/transport-uws';
import { wsTransport } from '../gateway/transport-ws';
import { decodeServerFrame } from '../protocol/codec';
import { SUBPROTOCOL_MSGPACK, type ReadItem, type SessionEvent } from '../protocol/types';
import { checkSessionHistory } from './history';

const TRANSPORTS: Record<TransportName, Transport> = { ws: wsTransport, uws: loadUwsTransport() };
const SECRET = 'token-refresh-test-secret-32-bytes-or-more';
const ROUNDS = 4;
const CHUNKS_PER_ROUND = 200;
/** Chunks written one by one (each awaiting its ack) per round while the rotation is awaited. */
const MAX_TRICKLE = 3000;
/** Token rotations each client must go through while the stream runs. */
const EXPIRIES = ROUNDS - 1;
const WAIT_MS = 30_000;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

type Mode = 'in band' | 'cut at expiry';

/** What one client's sockets saw: its token rotations (a refreshed, or a welcome after the first), and TOKEN_EXPIRED closes. */
class TokenWatch {
  welcomes = 0;
  refreshed = 0;
  expiredCloses = 0;
  issued = 0;
  private waiters: Array<{ n: number; resolve: () => void }> = [];

  get rotations(): number {
    return Math.max(0, this.welcomes - 1) + this.refreshed;
  }

  /** Resolves once the client has moved to a new token `n` times in all. */
  rotated(n: number): Promise<void> {
    if (this.rotations >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${this.rotations} token rotations of ${n} within ${WAIT_MS} ms`)), WAIT_MS);
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  received(type: string): void {
    if (type === 'welcome') this.welcomes++;
    else if (type === 'refreshed') this.refreshed++;
    else return;
    for (const waiter of this.waiters.filter((w) => this.rotations >= w.n)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  /** A token function issuing 2-3 s JWTs with these scopes. */
  tokens(sub: string, spool: Record<string, unknown>): () => Promise<string> {
    return () => {
      this.issued++;
      return signToken({ sub, spool }, { key: SECRET, exp: Math.ceil(Date.now() / 1000) + 2 });
    };
  }
}

function frameType(data: unknown): string {
  const bytes = typeof data === 'string' ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data as Buffer);
  return String((decodeServerFrame(bytes, SUBPROTOCOL_MSGPACK) as { type?: unknown }).type);
}

/** The SDK's WebSocket seam: `ws`, watched by `watch`; in 'cut at expiry' mode `refresh` frames never leave. */
function watchedWebSocket(watch: TokenWatch, mode: Mode): WebSocketConstructor {
  /* eslint-disable @typescript-eslint/no-explicit-any */
  return class WatchedWebSocket implements WebSocketLike {
    private readonly inner: WebSocket;
    onopen: ((event: any) => void) | null = null;
    onmessage: ((event: any) => void) | null = null;
    onclose: ((event: any) => void) | null = null;
    onerror: ((event: any) => void) | null = null;

    constructor(url: string, protocols: string | string[]) {
      this.inner = new WebSocket(url, protocols);
      this.inner.onopen = (event) => this.onopen?.(event);
      this.inner.onerror = (event) => this.onerror?.(event);
      this.inner.onclose = (event) => {
        if (event.code === 4021) watch.expiredCloses++;
        this.onclose?.(event);
      };
      this.inner.onmessage = (event) => {
        watch.received(frameType(event.data));
        this.onmessage?.(event);
      };
    }
    /* eslint-enable @typescript-eslint/no-explicit-any */

    get protocol(): string {
      return this.inner.protocol;
    }
    get binaryType(): string {
      return this.inner.binaryType;
    }
    set binaryType(value: string) {
      this.inner.binaryType = value as WebSocket['binaryType'];
    }
    send(data: string | Uint8Array): void {
      if (mode === 'cut at expiry' && frameType(data) === 'refresh') return;
      this.inner.send(data);
    }
    close(code?: number, reason?: string): void {
      this.inner.close(code, reason);
    }
    terminate(): void {
      this.inner.terminate();
    }
  };
}

async function jwtGateway(transport: Transport): Promise<Gateway> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-token-refresh-'));
  const gw = await startGateway({ port: 0, data: dir, logger: pino({ level: 'silent' }), transport, jwtSecret: SECRET });
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => gw.close());
  return gw;
}

function client(gw: Gateway, watch: TokenWatch, mode: Mode, token: () => Promise<string>): SpoolClient {
  const c = new SpoolClient({ url: gw.url, token, WebSocket: watchedWebSocket(watch, mode), reconnect: { initialDelayMs: 5, maxDelayMs: 100 } });
  cleanups.push(() => c.destroy());
  return c;
}

describe.each(TRANSPORT_NAMES)('over %s', (transportName) => {
  it.each<Mode>(['in band', 'cut at expiry'])(
    `a producer and a reader stream across ${EXPIRIES} token expiries (%s): every chunk exactly once, in order`,
    async (mode) => {
      const gw = await jwtGateway(TRANSPORTS[transportName]);
      const session = 'user:7:chat-1';
      const producerWatch = new TokenWatch();
      const readerWatch = new TokenWatch();
      const producer = client(gw, producerWatch, mode, producerWatch.tokens('user-7', { write: ['user:7:*'] }));
      const reader = client(gw, readerWatch, mode, readerWatch.tokens('user-7-reader', { read: ['user:7:*'] }));

      const sub = reader.subscribe(session, { from: 0 });
      const items: ReadItem[] = [];
      const reading = (async () => {
        for await (const item of sub) {
          items.push(item);
          if (item.type === 'gen.end') return;
        }
      })();

      const expected: string[] = [];
      const gen = producer.generation(session, { id: 'long-answer' });
      const write = async (data: string): Promise<void> => {
        expected.push(data);
        if (!gen.write(data, { kind: 'text' })) await gen.drained();
      };
      for (let round = 0; round < ROUNDS; round++) {
        for (let i = 0; i < CHUNKS_PER_ROUND; i++) await write(`r${round}c${i}`);
        if (round === EXPIRIES) break;
        // Keep streaming until both clients moved to a new token once more.
        const rotated = Promise.all([producerWatch.rotated(round + 1), readerWatch.rotated(round + 1)]);
        let done = false;
        rotated.then(
          () => (done = true),
          () => (done = true),
        );
        for (let i = 0; !done && i < MAX_TRICKLE; i++) {
          await write(`r${round}t${i}`);
          await gen.flush();
        }
        await rotated;
      }
      expect(await gen.finish({ timeoutMs: WAIT_MS })).toMatchObject({ status: 'done' });
      await reading;
      sub.close();

      const report = checkSessionHistory(items as SessionEvent[], { generations: 1, chunksPerGeneration: expected.length });
      expect(report.violations).toEqual([]);
      expect(report.events).toBe(expected.length + 2);
      expect(items.filter((e) => e.type === 'chunk').map((e) => (e as SessionEvent).data)).toEqual(expected);
      const stored = (await gw.store.read(session as never, 0, 10_000)).items;
      expect(stored.filter((e) => e.type === 'chunk').map((e) => (e as SessionEvent).data)).toEqual(expected);

      for (const watch of [producerWatch, readerWatch]) {
        expect(watch.rotations).toBeGreaterThanOrEqual(EXPIRIES);
        if (mode === 'cut at expiry') {
          // Every rotation was a cut at exp and a reconnect with a fresh token.
          expect(watch.refreshed).toBe(0);
          expect(watch.expiredCloses).toBeGreaterThanOrEqual(EXPIRIES);
        } else {
          expect(watch.refreshed).toBeGreaterThanOrEqual(1);
        }
      }
    },
    90_000,
  );
});
