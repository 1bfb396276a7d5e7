/**
 * The protocol fuzzer: a gateway (in this process, on LMDB, on port 0) is sent fast-check's
 * generated messages (chaos/fuzz-frames.ts) over several connections, in batches, while a good
 * producer streams a generation to a session of its own and a good reader follows it. Each batch
 * is one property run:
 *
 *   - every frame the gateway sends is a frame of the protocol: an `error` with a registry code
 *     and that code's `retryable`, or one of the gateway's frame types;
 *   - every request that carried an id gets exactly one answer carrying it, unless its connection
 *     closed first, and a connection is only closed with a close code the registry gives a code
 *     that closes (after that error), 1009 (past the hard cap), or without a close frame (1006);
 *   - nothing unexpected happened inside: no INTERNAL error, no error logged.
 *
 * At the end: the good session lost nothing (every chunk acknowledged, read back once, in order,
 * from the reader and from the store); everything stored in any session is valid (offsets in
 * order, data that encodes and decodes equal over both subprotocols, generations well-formed);
 * /healthz answers.
 *
 * npm test runs it on both transports (chaos/fuzz.test.ts); `npm run fuzz -- --frames N --seed S
 * [--transport ws|uws]` runs the long version and prints its figures.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import pino from 'pino';
import WebSocket from 'ws';
import { decodeFrame, decodeServerFrame, encodeFrame } from '../protocol/codec';
import { ERROR_REGISTRY, codeOfClose, isErrorCode } from '../protocol/errors';
import { parseToken } from '../protocol/token';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Frame, type SessionEvent, type Subprotocol } from '../protocol/types';
import { portableData } from '../protocol/validate';
import { startGateway, type Gateway } from '../gateway';
import { openLmdbStore } from '../store/lmdb';
import type { SessionStore } from '../store/types';
import { ID, SEQ_REF, TokenRef, fuzzMessage, mutate, type FuzzMessage } from './fuzz-frames';

export interface FuzzOptions {
  readonly transport: 'ws' | 'uws';
  /** Fuzz messages to send. */
  readonly frames: number;
  readonly seed: number;
  /** Connections the batches rotate over. @default 4 */
  readonly connections?: number;
  /** Messages per property run. @default 100 */
  readonly batch?: number;
  /** Chunks the good producer streams over the run. @default frames / 20 */
  readonly goodChunks?: number;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

export interface FuzzReport {
  readonly transport: string;
  readonly seed: number;
  readonly frames: number;
  readonly unencodable: number;
  readonly replies: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly answers: Readonly<Record<string, number>>;
  readonly closes: Readonly<Record<string, number>>;
  readonly connectionsOpened: number;
  readonly sessionsStored: number;
  readonly eventsStored: number;
  readonly goodChunks: number;
  readonly durationMs: number;
  readonly rssStartMb: number;
  readonly rssPeakMb: number;
  readonly rssEndMb: number;
}

const SERVER_TYPES = new Set(['welcome', 'opened', 'ack', 'finished', 'appended', 'subscribed', 'events', 'gap', 'live', 'unsubscribed', 'pong', 'refreshed', 'error']);
const MAX_FRAME_BYTES = 16 * 1024;
const ANSWER_TIMEOUT_MS = 30_000;
const GOOD_SESSION = 'fuzz-good';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const ID_BASE = 2 ** 40;
/**
 * Ids of frames sent mutated: from another range, so no one-byte mutation (a digit of JSON, a bit
 * of a float64) turns one into an id the connection waits an answer for.
 */
const MUTATED_ID_BASE = 2 ** 50;

export interface EncodedMessage {
  /** What goes on the wire: a string is a text message, bytes a binary one. */
  readonly data: Uint8Array | string;
  /** The frame before encoding (a 'frame' message's), and the request ids given it. */
  readonly value?: Record<string, unknown>;
  readonly ids: readonly number[];
  readonly mutated: boolean;
}

/** Fills a frame template's TokenRef, SEQ_REF and ID (new ids go to `ids`). */
export type FrameResolver = (template: Record<string, unknown>, ids: number[], mutated: boolean) => Record<string, unknown>;

/**
 * A fuzz message as it goes on the wire of a `protocol` connection: a frame encoded as msgpack
 * (binary) or JSON (text; binary UTF-8 on spool.v1.json), then mutated if asked. Undefined when
 * msgpackr or JSON cannot encode its value (a bigint in JSON).
 */
export function encodeMessage(message: FuzzMessage, protocol: Subprotocol, resolve: FrameResolver): EncodedMessage | undefined {
  switch (message.kind) {
    case 'bytes':
      return { data: message.bytes, ids: [], mutated: false };
    case 'text':
      return { data: message.text, ids: [], mutated: false };
    case 'oversize':
      return { data: message.asText ? 'x'.repeat(message.size) : Buffer.alloc(message.size, 0x78), ids: [], mutated: false };
    case 'frame': {
      const ids: number[] = [];
      const value = resolve(message.value, ids, message.mutation !== undefined);
      let data: Uint8Array | string;
      try {
        data = message.asText || protocol === SUBPROTOCOL_JSON ? JSON.stringify(value) : packr.pack(value);
      } catch {
        return undefined;
      }
      if (typeof data === 'string' && protocol === SUBPROTOCOL_JSON && !message.asText) data = Buffer.from(data, 'utf8');
      if (message.mutation) data = mutate(typeof data === 'string' ? Buffer.from(data, 'utf8') : data, message.mutation);
      return { data, value, ids, mutated: message.mutation !== undefined };
    }
  }
}

/** A sent frame, for a failure message. */
function describe(value: Record<string, unknown>, wire: Uint8Array | string): string {
  const asText = typeof wire === 'string';
  let text: string;
  try {
    text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  } catch {
    text = String(value['type']);
  }
  return `${asText ? 'as text ' : ''}${text.length > 300 ? `${text.slice(0, 300)}…` : text}`;
}

/** Counts by key. */
class Tally {
  readonly counts: Record<string, number> = {};
  add(key: string, n = 1): void {
    this.counts[key] = (this.counts[key] ?? 0) + n;
  }
}

interface Shared {
  readonly url: string;
  readonly errors: Tally;
  readonly answers: Tally;
  readonly closes: Tally;
  readonly violations: string[];
  replies: number;
}

/** A tiny deterministic generator (for choices that are not fast-check's: subprotocol, hello). */
function lcg(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** One fuzzing connection: sends messages, checks what comes back, remembers its tokens. */
class FuzzConnection {
  readonly protocol: Subprotocol;
  private readonly ws: WebSocket;
  private readonly tokens: string[] = [];
  private readonly nextSeq = new Map<string, number>();
  /** Request ids sent and not answered yet. */
  private readonly pending = new Map<number, string>();
  private readonly errorCodes = new Set<string>();
  /** Request ids start far above any id fast-check draws as a literal (32-bit integers). */
  private idCounter = ID_BASE;
  private mutatedIdCounter = MUTATED_ID_BASE;
  /** Ids answered (a second answer is a violation). A mutated frame's id may come back changed: unknown ids are not. */
  private readonly answered = new Map<number, string>();
  private waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | null = null;
  private readonly opened: Promise<void>;

  constructor(
    private readonly shared: Shared,
    readonly name: string,
    random: () => number,
  ) {
    this.protocol = random() < 0.5 ? SUBPROTOCOL_MSGPACK : SUBPROTOCOL_JSON;
    this.ws = new WebSocket(shared.url, [this.protocol]);
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => this.received(isBinary ? new Uint8Array(data as Buffer) : (data as Buffer).toString()));
    this.ws.on('close', (code, reason) => this.onClosed(code, reason.toString()));
    this.opened = new Promise((resolve) => {
      this.ws.once('open', () => resolve());
      this.ws.once('close', () => resolve());
    });
    // Most connections say hello first; some fuzz the handshake itself.
    if (random() < 0.85) this.pendingHello = true;
  }

  private pendingHello = false;

  async ready(): Promise<void> {
    await this.opened;
    if (this.pendingHello && this.open) {
      this.pendingHello = false;
      this.send({ kind: 'frame', value: { type: 'hello', protocol: 1, id: ID, client: 'fuzz' }, asText: false });
    }
  }

  get open(): boolean {
    return this.closed === null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one fuzz message; false when it could not be encoded (msgpackr or JSON refused the value). */
  send(message: FuzzMessage): boolean {
    if (!this.open) return true;
    const encoded = encodeMessage(message, this.protocol, (template, ids, mutated) => this.resolve(template, ids, template, mutated));
    if (!encoded) return false;
    // chunk and chunks are answered by acks, not by id: an id on one is echoed only if the frame is
    // refused. A mutated frame's id may not survive the mutation: not waited for either.
    const { value } = encoded;
    if (value && !encoded.mutated && value['type'] !== 'chunk' && value['type'] !== 'chunks') for (const id of encoded.ids) this.pending.set(id, describe(value, encoded.data));
    this.ws.send(encoded.data, { binary: typeof encoded.data !== 'string' });
    return true;
  }

  /** The template with TokenRef, SEQ_REF and ID replaced by what this connection knows. */
  private resolve(template: Record<string, unknown>, ids: number[], frame: Record<string, unknown>, mutated: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const token = template['token'] instanceof TokenRef ? this.token(template['token']) : template['token'];
    for (const [key, field] of Object.entries(template)) {
      if (field === ID) {
        const id = mutated ? ++this.mutatedIdCounter : ++this.idCounter;
        ids.push(id);
        out[key] = id;
      } else if (field instanceof TokenRef) {
        out[key] = this.token(field);
      } else if (field === SEQ_REF) {
        const seq = typeof token === 'string' ? (this.nextSeq.get(token) ?? 0) : 0;
        out[key] = seq;
        const count = frame['type'] === 'chunks' ? (Array.isArray(frame['items']) ? frame['items'].length : 0) : frame['type'] === 'chunk' ? 1 : 0;
        if (typeof token === 'string') this.nextSeq.set(token, seq + count);
      } else if (key === 'resume' && typeof field === 'object' && field !== null && !Array.isArray(field)) {
        out[key] = this.resolve(field as Record<string, unknown>, ids, frame, mutated);
      } else if (field !== undefined) {
        out[key] = field;
      }
    }
    return out;
  }

  private token(ref: TokenRef): string {
    if (this.tokens.length === 0) return 'v1/1/fz-a/g1/AAAAAAAAAAAAAAAAAAAAAA';
    return this.tokens[ref.n % this.tokens.length] as string;
  }

  /** Resolves once every request sent has its answer, or the connection closed; a violation after ANSWER_TIMEOUT_MS. */
  async settle(): Promise<void> {
    if (this.pending.size === 0 || this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.waiters.push(resolve)),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.shared.violations.push(`${this.name} (${this.protocol}): no answer within ${ANSWER_TIMEOUT_MS} ms to ${[...this.pending].slice(0, 3).map(([id, frame]) => `#${id - ID_BASE} ${frame}`).join(', ')}`);
          this.pending.clear();
          resolve();
        }, ANSWER_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }

  private received(message: Uint8Array | string): void {
    this.shared.replies++;
    let frame: Record<string, unknown>;
    try {
      frame = decodeServerFrame(message, this.protocol) as Record<string, unknown>;
    } catch {
      this.violation(`undecodable message from the gateway: ${String(message).slice(0, 80)}`);
      return;
    }
    if (typeof frame !== 'object' || frame === null || typeof frame['type'] !== 'string' || !SERVER_TYPES.has(frame['type'])) {
      this.violation(`not a gateway frame: ${JSON.stringify(frame).slice(0, 200)}`);
      return;
    }
    const type = frame['type'];
    if (type === 'error') {
      const code = frame['code'];
      if (!isErrorCode(code)) {
        this.violation(`error with a code outside the registry: ${JSON.stringify(frame).slice(0, 200)}`);
        return;
      }
      if (frame['retryable'] !== ERROR_REGISTRY[code].retryable || typeof frame['message'] !== 'string') this.violation(`error frame not as the registry says: ${JSON.stringify(frame).slice(0, 200)}`);
      if (code === 'INTERNAL') this.violation(`INTERNAL error: ${JSON.stringify(frame).slice(0, 300)}`);
      this.shared.errors.add(code);
      this.errorCodes.add(code);
      // A SEQ_GAP names the seq the gateway expects: count from there on.
      if (code === 'SEQ_GAP' && typeof frame['ref'] === 'string') {
        const expected = (frame['details'] as { expectedSeq?: unknown } | undefined)?.expectedSeq;
        for (const token of this.tokens) if (parseToken(token)?.generation === frame['ref'] && typeof expected === 'number') this.nextSeq.set(token, expected);
      }
    } else {
      this.shared.answers.add(type);
    }
    if (type === 'opened' && typeof frame['token'] === 'string' && !this.tokens.includes(frame['token'])) {
      this.tokens.push(frame['token']);
      if (typeof frame['nextSeq'] === 'number') this.nextSeq.set(frame['token'], frame['nextSeq']);
    }
    const id = frame['id'];
    if (typeof id === 'number' && type !== 'events' && type !== 'gap' && type !== 'live') {
      const first = this.answered.get(id);
      if (first !== undefined) this.violation(`a second answer to request #${id - ID_BASE}: ${JSON.stringify(frame).slice(0, 200)}; the first: ${first}`);
      const request = this.pending.get(id);
      if (request !== undefined) {
        this.pending.delete(id);
        this.answered.set(id, `${JSON.stringify(frame).slice(0, 200)} to ${request}`);
      }
      if (this.pending.size === 0) this.wake();
    }
  }

  private onClosed(code: number, reason: string): void {
    this.closed = { code, reason };
    this.shared.closes.add(String(code));
    this.pending.clear();
    this.wake();
    if (code === 1000 || code === 1006 || code === 1009 || code === 1005) return;
    const registryCode = codeOfClose(code);
    if (registryCode === undefined || !ERROR_REGISTRY[registryCode].closes) {
      this.violation(`closed with ${code} (${reason}), not a close code of the registry`);
    } else if (!this.errorCodes.has(registryCode) && registryCode !== 'SLOW_CONSUMER') {
      this.violation(`closed with ${code} (${registryCode}) without the error frame first`);
    }
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  private violation(what: string): void {
    this.shared.violations.push(`${this.name} (${this.protocol}): ${what}`);
  }
}

/** A producer streaming one generation and a reader following it, who must lose nothing. */
class GoodSession {
  private producer!: WebSocket;
  private reader!: WebSocket;
  private token = '';
  private sent = 0;
  acked = -1;
  readonly read: unknown[] = [];
  private readonly waiters: Array<() => void> = [];
  private finished: unknown;

  async start(url: string): Promise<void> {
    this.reader = await openSocket(url);
    this.reader.on('message', (data) => {
      const frame = decodeFrame(new Uint8Array(data as Buffer), SUBPROTOCOL_MSGPACK) as Record<string, unknown>;
      if (frame['type'] === 'events') for (const e of frame['events'] as SessionEvent[]) if (e.type === 'chunk') this.read.push(e.data);
      this.wake();
    });
    this.reader.send(encodeFrame({ type: 'hello', protocol: 1 } as Frame, SUBPROTOCOL_MSGPACK));
    this.reader.send(encodeFrame({ type: 'subscribe', session: GOOD_SESSION, from: 'start' } as Frame, SUBPROTOCOL_MSGPACK));
    this.producer = await openSocket(url);
    this.producer.on('message', (data) => {
      const frame = decodeFrame(new Uint8Array(data as Buffer), SUBPROTOCOL_MSGPACK) as Record<string, unknown>;
      if (frame['type'] === 'opened') this.token = frame['token'] as string;
      else if (frame['type'] === 'ack') this.acked = Math.max(this.acked, frame['seq'] as number);
      else if (frame['type'] === 'finished') this.finished = frame;
      else if (frame['type'] === 'error') this.finished = frame;
      this.wake();
    });
    this.producer.send(encodeFrame({ type: 'hello', protocol: 1 } as Frame, SUBPROTOCOL_MSGPACK));
    this.producer.send(encodeFrame({ type: 'open', id: 1, session: GOOD_SESSION, generation: 'good-1' } as Frame, SUBPROTOCOL_MSGPACK));
    await this.until(() => this.token !== '', 'the good producer opened');
  }

  /** Streams `count` more chunks. */
  step(count: number): void {
    for (let i = 0; i < count; i++, this.sent++) {
      this.producer.send(encodeFrame({ type: 'chunk', token: this.token, seq: this.sent, data: { n: this.sent, text: `good chunk ${this.sent}` } } as Frame, SUBPROTOCOL_MSGPACK));
    }
  }

  /** Finishes and checks: every chunk acked, read once in order; returns how many. */
  async finish(store: SessionStore): Promise<number> {
    this.producer.send(encodeFrame({ type: 'finish', id: 2, token: this.token, seq: this.sent } as Frame, SUBPROTOCOL_MSGPACK));
    await this.until(() => this.finished !== undefined, 'the good producer finished');
    const expected = Array.from({ length: this.sent }, (_, n) => ({ n, text: `good chunk ${n}` }));
    if ((this.finished as { type?: string }).type !== 'finished') throw new Error(`the good session's finish was answered ${JSON.stringify(this.finished)}`);
    if (this.acked !== this.sent - 1) throw new Error(`the good producer got acks up to ${this.acked} of ${this.sent} chunks`);
    await this.until(() => this.read.length >= this.sent, `the good reader read ${this.sent} chunks`);
    if (!isDeepStrictEqual(this.read, expected)) throw new Error(`the good reader read ${this.read.length} chunks, not the ${this.sent} sent, once each in order`);
    const stored: unknown[] = [];
    for (const event of await readAll(store, GOOD_SESSION)) if (event.type === 'chunk') stored.push(event.data);
    if (!isDeepStrictEqual(stored, expected)) throw new Error(`the store holds ${stored.length} chunks of the good session, not the ${this.sent} sent, in order`);
    this.producer.close();
    this.reader.close();
    return this.sent;
  }

  private until(condition: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (condition()) return resolve();
      const timer = setTimeout(() => reject(new Error(`${what}: not within ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS);
      const check = (): void => {
        if (!condition()) {
          this.waiters.push(check);
          return;
        }
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [SUBPROTOCOL_MSGPACK]);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Every event of a session, from the store. */
async function readAll(store: SessionStore, session: string): Promise<SessionEvent[]> {
  const events: SessionEvent[] = [];
  let after = 0;
  for (;;) {
    const page = await store.read(session, after, 512);
    for (const item of page.items) if (item.type !== 'gap') events.push(item as SessionEvent);
    if (page.through <= after || page.through >= page.head) break;
    after = page.through;
  }
  return events;
}

/** What is wrong with a session's stored events (empty: nothing). */
function checkStored(session: string, events: readonly SessionEvent[]): string[] {
  const problems: string[] = [];
  let last = 0;
  const gens = new Map<string, { started: boolean; ended: boolean; seq: number }>();
  for (const event of events) {
    const at = `${session}@${event.offset}`;
    if (!(event.offset > last)) problems.push(`${at}: offset not after ${last}`);
    last = event.offset;
    try {
      if (event.data !== undefined) portableData(event.data, 'data', 64);
      for (const protocol of [SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON] as const) {
        const back = (decodeFrame(encodeFrame({ type: 'append', session: 's', key: 'k', kind: 'k', data: event.data ?? null } as Frame, protocol), protocol) as { data: unknown }).data;
        if (!isDeepStrictEqual(back, event.data ?? null) && !(Object.is(event.data, -0) && back === 0)) problems.push(`${at}: data does not read back equal over ${protocol}`);
      }
    } catch (error) {
      problems.push(`${at}: ${(error as Error).message}`);
    }
    if (event.generationId === undefined) continue;
    const gen = gens.get(event.generationId) ?? { started: false, ended: false, seq: 0 };
    gens.set(event.generationId, gen);
    if (event.type === 'gen.start') {
      if (gen.started) problems.push(`${at}: a second gen.start of ${event.generationId}`);
      gen.started = true;
    } else if (event.type === 'chunk') {
      if (gen.ended) problems.push(`${at}: a chunk of ${event.generationId} after its gen.end`);
      if (event.seq !== gen.seq) problems.push(`${at}: chunk seq ${event.seq} of ${event.generationId}, expected ${gen.seq}`);
      gen.seq = (event.seq ?? gen.seq) + 1;
    } else if (event.type === 'gen.end') {
      if (gen.ended) problems.push(`${at}: a second gen.end of ${event.generationId}`);
      gen.ended = true;
    }
  }
  return problems;
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const started = Date.now();
  const rssStart = process.memoryUsage.rss();
  let rssPeak = rssStart;
  const log = options.log ?? (() => {});
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-fuzz-'));
  const store = openLmdbStore({ path: dir });
  const logged: string[] = [];
  const logger = pino({ level: 'error' }, new Writable({ write: (chunk: Buffer, _enc, done) => (logged.push(chunk.toString()), done()) }));
  const gw: Gateway = await startGateway({ port: 0, store, logger, transport: options.transport, limits: { maxFrameBytes: MAX_FRAME_BYTES }, maxFramesPerSecond: 0 });
  const shared: Shared = { url: gw.url, errors: new Tally(), answers: new Tally(), closes: new Tally(), violations: [], replies: 0 };
  const random = lcg(options.seed);
  const connectionCount = options.connections ?? 4;
  const batch = options.batch ?? 100;
  const runs = Math.ceil(options.frames / batch);
  const goodTotal = options.goodChunks ?? Math.ceil(options.frames / 20);
  const good = new GoodSession();
  const connections: FuzzConnection[] = [];
  let opened = 0;
  let sent = 0;
  let unencodable = 0;
  let run = 0;
  try {
    await good.start(gw.url);
    const connection = async (slot: number): Promise<FuzzConnection> => {
      let c = connections[slot];
      if (!c || c.closed) {
        c = new FuzzConnection(shared, `connection ${++opened}`, random);
        connections[slot] = c;
      }
      await c.ready();
      return c;
    };
    const property = fc.asyncProperty(fc.array(fuzzMessage, { minLength: batch, maxLength: batch }), async (messages) => {
      const c = await connection(run % connectionCount);
      for (const message of messages) {
        if (!c.send(message)) unencodable++;
        sent++;
      }
      good.step(Math.ceil(goodTotal / runs));
      await c.settle();
      run++;
      if (run % 50 === 0) {
        rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
        log(`${options.transport}: ${sent} frames, ${shared.replies} replies, ${opened} connections, rss ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MB`);
      }
      if (shared.violations.length > 0) throw new Error(shared.violations.slice(0, 10).join('\n'));
    });
    // fc.check, not fc.assert: the report names the seed and the run, not a page of counterexample.
    const result = await fc.check(property, { numRuns: runs, seed: options.seed, endOnFailure: true });
    if (result.failed) {
      const cause = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
      throw new Error(`fuzz failed on ${options.transport} at run ${result.numRuns} of ${runs} (seed ${options.seed}, path ${result.counterexamplePath}):\n${cause}`);
    }
    await Promise.all(connections.map((c) => c.close()));
    if (shared.violations.length > 0) throw new Error(shared.violations.slice(0, 10).join('\n'));
    const goodChunks = await good.finish(store);
    const health = await fetch(`http://127.0.0.1:${gw.port}/healthz`);
    if (health.status !== 200) throw new Error(`/healthz answered ${health.status} after the fuzz`);
    if (gw.metrics.errorsSent.get({ code: 'INTERNAL' }) !== 0) throw new Error('the gateway answered INTERNAL');
    if (logged.length > 0) throw new Error(`the gateway logged errors:\n${logged.slice(0, 5).join('')}`);
    // Everything stored is valid.
    let sessions = 0;
    let events = 0;
    const problems: string[] = [];
    for (let cursor: string | null = null; ; ) {
      const page = await store.list(cursor, 500);
      for (const summary of page.sessions) {
        const stored = await readAll(store, summary.id);
        sessions++;
        events += stored.length;
        problems.push(...checkStored(summary.id, stored));
      }
      cursor = page.cursor;
      if (cursor === null) break;
    }
    if (problems.length > 0) throw new Error(`invalid events stored:\n${problems.slice(0, 10).join('\n')}`);
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    return {
      transport: options.transport,
      seed: options.seed,
      frames: sent,
      unencodable,
      replies: shared.replies,
      errors: shared.errors.counts,
      answers: shared.answers.counts,
      closes: shared.closes.counts,
      connectionsOpened: opened,
      sessionsStored: sessions,
      eventsStored: events,
      goodChunks,
      durationMs: Date.now() - started,
      rssStartMb: Math.round(rssStart / 2 ** 20),
      rssPeakMb: Math.round(rssPeak / 2 ** 20),
      rssEndMb: Math.round(process.memoryUsage.rss() / 2 ** 20),
    };
  } finally {
    await Promise.all(connections.map((c) => c.close()));
    await gw.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `npm run fuzz -- --frames N --seed S [--transport ws|uws|both] [--connections C] [--batch B]` */
async function main(argv: string[]): Promise<void> {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    args: argv,
    options: { frames: { type: 'string' }, seed: { type: 'string' }, transport: { type: 'string' }, connections: { type: 'string' }, batch: { type: 'string' } },
  });
  const frames = Number(values.frames ?? 1_000_000);
  const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
  const transports = values.transport === undefined || values.transport === 'both' ? (['ws', 'uws'] as const) : ([values.transport] as Array<'ws' | 'uws'>);
  for (const transport of transports) {
    const report = await runFuzz({
      transport,
      frames,
      seed,
      ...(values.connections !== undefined ? { connections: Number(values.connections) } : {}),
      ...(values.batch !== undefined ? { batch: Number(values.batch) } : {}),
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`fuzz failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  });
}
