/**
 * The second writer (issue 9): a raw-protocol client that, while sessions stream, names other
 * producers' active generations (ids are not secrets: readers see them in events) and tries to
 * get into them without their token. It never asks for `takeover` (takeovers are a fault kind of
 * their own). Per target, one request at a time, each answer recorded:
 *
 *   open {session, generation}                            no token          → GENERATION_ACTIVE {epoch}
 *   open {…, secret: <random, well-formed>}               a wrong secret    → GENERATION_ACTIVE
 *   open {…, resume: {token: v1/<epoch>/s/g/<random>}}    a forged token    → GENERATION_ACTIVE
 *   open {…, resume: {token: v1/<epoch - 1>/s/g/<…>}}     forged and older  → FENCED
 *   chunk, chunks, finish with the forged token; chunk with a token without its tag
 *     (seqs around the producer's, content that is not the producer's)   → BAD_FRAME
 *
 * and, when the workload holds a token a takeover made stale (a raw storm's displaced writer):
 *
 *   open {…, resume: {token: <stale>}}                    → FENCED (§7.1 rule 2)
 *   chunk, finish with the stale token                    → BAD_FRAME
 *
 * (GENERATION_CLOSED whenever the target ended meanwhile.) The checker's `intruder-accepted`
 * rule judges the answers; `opened`, `ack` or `finished` anywhere on this connection is a
 * violation. Should the gateway ever answer `opened`, the second writer does what an intruder
 * would: it writes at `nextSeq` with the token it was handed, so the damage also shows in the
 * log and at the readers (`content-mismatch`).
 */
import { RawClient, type AnyFrame } from '../gateway/test-helpers/raw-client';
import { chunkData, judgeIntrusion, type IntrusionRecord } from './checker';
import type { GatewayNode } from './topology';
import { between, nextFrame, withTimeout } from './util';

/** What the second writer reports to: the workload's records. */
export interface SecondWriterHost {
  rawFrames: number;
  readonly intrusions: IntrusionRecord[];
}

/** A generation to get into, as the workload knows it. */
export interface IntrusionTarget {
  readonly session: string;
  readonly generation: string;
  /** Chunks its producer has written so far (its next seq). */
  readonly written: number;
  /** The highest seq acknowledged to its producer. */
  readonly acked: number;
}

/** A token the workload saw before a takeover displaced its generation. */
export interface StaleToken {
  readonly session: string;
  readonly generation: string;
  readonly token: string;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const OPEN_TIMEOUT_MS = 4000;
const FRAME_TIMEOUT_MS = 2000;
/** Unanswered requests in a row after which the gateway is taken to be down (killed, stopped). */
const MAX_SILENT = 2;
/** Frame types that would mean the gateway let the second writer in. */
const ADMITTED = new Set(['opened', 'ack', 'finished']);

export class SecondWriter {
  private client: RawClient | undefined;
  private nextId = 700_000;
  private silent = 0;
  /** Answers already recorded (the rest of the connection's admitting frames are swept at the end). */
  private readonly judged = new Set<AnyFrame>();

  constructor(
    private readonly host: SecondWriterHost,
    private readonly gateway: GatewayNode,
    private readonly rand: () => number,
    private readonly targets: readonly IntrusionTarget[],
    private readonly stale: StaleToken | undefined,
  ) {}

  async run(): Promise<void> {
    const first = this.targets[0] ?? this.stale;
    try {
      this.client = await withTimeout(RawClient.connect(this.gateway.url), 5000, `second writer connect to gateway ${this.gateway.index}`);
    } catch {
      if (first) this.record(first, 'connect', 'no-answer');
      return;
    }
    this.client.ws.on('error', () => undefined);
    try {
      for (const target of this.targets) await this.intrude(target);
      if (this.stale) await this.withStale(this.stale);
      // Anything admitting that arrived late or between the answers waited for still counts.
      if (!this.client.closed) {
        const id = this.nextId++;
        this.client.send({ type: 'ping', id });
        await this.client.next((f) => f.type === 'pong' && f['id'] === id, FRAME_TIMEOUT_MS).catch(() => undefined);
      }
      for (const frame of this.client.frames) {
        if (!ADMITTED.has(frame.type) || this.judged.has(frame)) continue;
        const generation = (frame['generation'] as string | undefined) ?? '?';
        const session = [...this.targets, ...(this.stale ? [this.stale] : [])].find((t) => t.generation === generation)?.session ?? first?.session ?? '?';
        this.record({ session, generation }, 'unsolicited', frame.type, undefined, frame);
      }
    } finally {
      this.client.close();
    }
  }

  private async intrude(t: IntrusionTarget): Promise<void> {
    const base = { type: 'open', session: t.session, generation: t.generation };
    const bare = await this.request(t, 'open-no-token', base);
    if (await this.exploited(t, bare)) return;
    const details = (bare?.['details'] ?? {}) as { epoch?: unknown };
    const epoch = typeof details.epoch === 'number' && details.epoch >= 1 ? details.epoch : 1;
    if (await this.exploited(t, await this.request(t, 'open-wrong-secret', { ...base, secret: this.tag() }))) return;
    const forged = `v1/${epoch}/${t.session}/${t.generation}/${this.tag()}`;
    if (await this.exploited(t, await this.request(t, 'open-forged-token', { ...base, resume: { token: forged } }))) return;
    if (epoch > 1) {
      const older = `v1/${epoch - 1}/${t.session}/${t.generation}/${this.tag()}`;
      if (await this.exploited(t, await this.request(t, 'open-forged-older-token', { ...base, resume: { token: older } }))) return;
    }
    const [below, at, above] = this.seqsAround(t);
    await this.request(t, 'chunk-forged-token', { type: 'chunk', token: forged, seq: at, ...this.item(t.generation, at) }, at);
    await this.request(t, 'chunks-forged-token', { type: 'chunks', token: forged, seq: below, items: this.items(t.generation, below, Math.min(at - below + 2, 8)) }, below);
    await this.request(t, 'chunk-untagged-token', { type: 'chunk', token: `v1/${epoch}/${t.session}/${t.generation}`, seq: above, ...this.item(t.generation, above) }, above);
    await this.request(t, 'finish-forged-token', { type: 'finish', token: forged, seq: at }, at);
  }

  private async withStale(s: StaleToken): Promise<void> {
    const t: IntrusionTarget = { session: s.session, generation: s.generation, written: 0, acked: -1 };
    if (await this.exploited(t, await this.request(t, 'open-stale-token', { type: 'open', session: s.session, generation: s.generation, resume: { token: s.token } }))) return;
    await this.request(t, 'chunk-stale-token', { type: 'chunk', token: s.token, seq: 0, ...this.item(s.generation, 0) }, 0);
    await this.request(t, 'finish-stale-token', { type: 'finish', token: s.token, seq: 0 }, 0);
  }

  /**
   * The gateway let the second writer in: write what an intruder would, at `nextSeq`, with the
   * token it was handed (recorded, and visible to the checker as content that is not the
   * producer's). True when that happened: the target's other attempts are moot.
   */
  private async exploited(t: IntrusionTarget, answer: AnyFrame | undefined): Promise<boolean> {
    if (answer?.type !== 'opened') return false;
    const seq = answer['nextSeq'] as number;
    await this.request(t, 'chunks-after-opened', { type: 'chunks', token: answer['token'], seq, items: this.items(t.generation, seq, 2) }, seq);
    return true;
  }

  /** Sends one frame and records its answer: an error code, an admitting frame's type, or `no-answer`. */
  private async request(t: Pick<IntrusionTarget, 'session' | 'generation'>, attempt: string, frame: Record<string, unknown>, seq?: number): Promise<AnyFrame | undefined> {
    const client = this.client;
    if (!client || client.closed || this.silent >= MAX_SILENT) return undefined;
    const id = frame['type'] === 'open' || frame['type'] === 'finish' ? this.nextId++ : undefined;
    try {
      client.send(id === undefined ? frame : { ...frame, id });
      this.host.rawFrames += 1;
    } catch {
      return undefined; // the socket is going down
    }
    // Chunk frames carry no id: their answer is the next error or ack without one.
    const matches = (f: AnyFrame): boolean => (f.type === 'error' || ADMITTED.has(f.type)) && f['id'] === id;
    const answer = await nextFrame(client, matches, id === undefined ? FRAME_TIMEOUT_MS : OPEN_TIMEOUT_MS);
    this.silent = answer ? 0 : this.silent + 1;
    if (answer) this.judged.add(answer);
    const code = answer === undefined ? 'no-answer' : answer.type === 'error' ? String(answer['code']) : answer.type;
    this.record(t, attempt, code, seq, answer);
    return answer;
  }

  private record(t: Pick<IntrusionTarget, 'session' | 'generation'>, attempt: string, answer: string, seq?: number, frame?: AnyFrame): void {
    this.host.intrusions.push({
      session: t.session,
      generation: t.generation,
      attempt,
      ...(seq !== undefined ? { seq } : {}),
      answer,
      ...(frame !== undefined && judgeIntrusion(answer) === 'accepted' ? { frame } : {}),
    });
  }

  /** A seq already acknowledged (a duplicate), the producer's next one, and one past it. */
  private seqsAround(t: IntrusionTarget): [number, number, number] {
    const at = Math.max(0, t.written);
    const below = Math.max(0, Math.min(at, t.acked) - between(this.rand, 0, 2));
    return [below, at, at + between(this.rand, 1, 3)];
  }

  /** What no producer of the workload writes: the right (generation, seq), someone else's bytes. */
  private item(generation: string, seq: number): { kind: string; data: string } {
    return { kind: 'text', data: chunkData(generation, seq, 'second-writer') };
  }

  private items(generation: string, from: number, count: number): Array<{ kind: string; data: string }> {
    return Array.from({ length: Math.max(1, count) }, (_, i) => this.item(generation, from + i));
  }

  /** 22 chars of base64url: the shape of a gateway tag (128 bits) or a producer's secret. */
  private tag(): string {
    let out = '';
    for (let i = 0; i < 22; i++) out += BASE64URL[Math.floor(this.rand() * 64)] as string;
    return out;
  }
}
