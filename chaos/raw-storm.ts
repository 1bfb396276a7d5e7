/**
 * Duplicate retransmission storms with a stale writer, written frame by frame with the raw
 * protocol client (the SDK never misbehaves on purpose; this does, within the protocol).
 */
import { RawClient, type AnyFrame } from '../gateway/test-helpers/raw-client';
import { chunkData, chunkDigest, type LiveProducerRecord } from './checker';
import type { StaleToken } from './second-writer';
import type { GatewayNode } from './topology';
import { between, nextFrame, pick, sleep, withTimeout } from './util';

/** What a storm reports to: the workload's records. */
export interface StormHost {
  readonly anomalies: string[];
  rawFrames: number;
  recordProducer(session: string, generation: string, takeover: boolean): LiveProducerRecord;
  /** A writer was displaced by a takeover: its token is stale (the second writer tries it). */
  noteStaleToken(token: StaleToken): void;
}

/** A raw-protocol producer's connection state (the client and token change on a reconnect). */
interface RawProducer {
  client: RawClient;
  token: string;
  readonly gateway: GatewayNode;
  readonly generation: string;
  readonly record: LiveProducerRecord;
}

/**
 * A duplicate retransmission storm by hand-written frames, in a session of its own:
 *
 *   A opens, streams half its chunks sending every frame 1–4 times, re-sending old ranges and
 *   now and then a frame that skips ahead (SEQ_GAP), waits for its acks (resending from the
 *   last ack, reconnecting and resuming when needed); then B takes over through another gateway
 *   while A keeps writing the second half with its stale token (every one must be FENCED and
 *   none stored); B writes a few duplicated chunks and finishes twice (same `finished`).
 */
export class RawStorm {
  private readonly keepalive = new Set<RawClient>();
  /** The storm's producer records by generation: `range` writes down what each frame carries. */
  private readonly records = new Map<string, LiveProducerRecord>();
  private openId = 600_000;

  constructor(
    private readonly workload: StormHost,
    private readonly gateways: readonly GatewayNode[],
    private readonly rand: () => number,
    private readonly session: string,
    private readonly chunks: number,
  ) {}

  async run(): Promise<void> {
    const ping = setInterval(() => {
      for (const c of this.keepalive) if (!c.closed) c.send({ type: 'ping' });
    }, 400);
    try {
      await this.storm();
    } finally {
      clearInterval(ping);
      for (const c of this.keepalive) c.close();
    }
  }

  /** Connects to the gateway, retrying while it is down (killed, restarting): bounded. */
  private async connect(gateway: GatewayNode): Promise<RawClient> {
    let client: RawClient | undefined;
    for (let attempt = 0; client === undefined; attempt++) {
      try {
        client = await withTimeout(RawClient.connect(gateway.url), 5_000, `raw connect to gateway ${gateway.index}`);
      } catch (error) {
        if (attempt >= 40) throw error;
        await sleep(250);
      }
    }
    client.ws.on('error', () => undefined);
    this.keepalive.add(client);
    return client;
  }

  private send(client: RawClient, frame: Record<string, unknown>): void {
    if (client.closed) return;
    try {
      client.send(frame);
      this.workload.rawFrames += 1;
    } catch {
      // the socket is going down; ensureAcked reconnects
    }
  }

  private range(generation: string, token: string, from: number, count: number): Record<string, unknown> {
    const items = Array.from({ length: count }, (_, i) => ({ kind: 'text', data: chunkData(generation, from + i, 'raw') }));
    const record = this.records.get(generation);
    if (record) items.forEach((item, i) => (record.written[from + i] = chunkDigest(item)));
    return { type: 'chunks', token, seq: from, items };
  }

  private async storm(): Promise<void> {
    const n = this.gateways.length;
    const ga = pick(this.rand, this.gateways);
    const gb = this.gateways[(ga.index + 1) % n] as GatewayNode;
    const genA = `${this.session}-a`;
    const genB = `${this.session}-b`;
    const recA = this.workload.recordProducer(this.session, genA, false);
    this.records.set(genA, recA);
    const half = Math.max(1, Math.floor(this.chunks / 2));
    const a: RawProducer = { client: await this.connect(ga), token: '', gateway: ga, generation: genA, record: recA };
    const opened = await this.openFirst(a, {});
    if (opened.type !== 'opened') throw new Error(`raw open of ${genA} answered ${JSON.stringify(opened)}`);
    a.token = opened['token'] as string;

    let seq = 0;
    while (seq < half) {
      const count = Math.min(between(this.rand, 1, 6), half - seq);
      const copies = between(this.rand, 1, 4);
      for (let c = 0; c < copies; c++) this.send(a.client, this.range(genA, a.token, seq, count));
      if (seq > 0 && this.rand() < 0.25) {
        const from = Math.floor(this.rand() * seq);
        this.send(a.client, this.range(genA, a.token, from, Math.min(between(this.rand, 1, 8), seq - from)));
      }
      if (this.rand() < 0.1) this.send(a.client, this.range(genA, a.token, seq + count + 2, 1)); // SEQ_GAP: not stored
      seq += count;
      if (seq % 48 < count) await this.ensureAcked(a, seq - 1);
    }
    await this.ensureAcked(a, half - 1);
    this.collectAcks(a.client, recA);

    // B takes over while A is still streaming; A keeps writing with its stale token.
    const recB = this.workload.recordProducer(this.session, genB, true);
    this.records.set(genB, recB);
    const b: RawProducer = { client: await this.connect(gb), token: '', gateway: gb, generation: genB, record: recB };
    const openedB = await this.openFirst(b, { takeover: true });
    if (openedB.type !== 'opened') throw new Error(`raw takeover open of ${genB} answered ${JSON.stringify(openedB)}`);
    b.token = openedB['token'] as string;
    this.workload.noteStaleToken({ session: this.session, generation: genA, token: a.token });
    const fencedBefore = a.client.frames.filter((f) => f.type === 'error' && f['code'] === 'FENCED').length;
    for (let s = half; s < this.chunks; s++) {
      const copies = between(this.rand, 1, 3);
      for (let c = 0; c < copies; c++) this.send(a.client, this.range(genA, a.token, s, 1));
    }
    const finishId = 900_000 + Math.floor(this.rand() * 1000);
    this.send(a.client, { type: 'finish', id: finishId, token: a.token, seq: this.chunks });
    if (!a.client.closed) {
      const answer = await nextFrame(a.client, (f) => f['id'] === finishId, 15_000);
      // FENCED, or (§7.7) `finished` with the status it really ended with: fenced.
      const fencedAnswer = (answer?.type === 'error' && answer['code'] === 'FENCED') || (answer?.type === 'finished' && answer['status'] === 'fenced');
      if (answer && !fencedAnswer) {
        this.workload.anomalies.push(`${genA}: stale finish after takeover answered ${JSON.stringify(answer)}`);
      }
    }
    this.collectAcks(a.client, recA);
    const fenced = a.client.frames.filter((f) => f.type === 'error' && f['code'] === 'FENCED').length - fencedBefore;
    recA.outcome = fenced > 0 || a.client.closed ? 'fenced' : 'failed';
    if (recA.outcome === 'failed') recA.error = 'stale writer was never told FENCED';

    for (let s = 0; s < 10; s++) {
      this.send(b.client, this.range(genB, b.token, s, 1));
      if (this.rand() < 0.5) this.send(b.client, this.range(genB, b.token, Math.floor(this.rand() * (s + 1)), 1));
    }
    await this.ensureAcked(b, 9);
    this.collectAcks(b.client, recB);
    const first = await this.finish(b, 10);
    recB.finished = first;
    recB.outcome = 'finished';
    // A repeated finish on the same connection answers the original outcome (§7.7).
    if (!b.client.closed) {
      const id = 800_999;
      this.send(b.client, { type: 'finish', id, token: b.token, seq: 10 });
      const again = await nextFrame(b.client, (f) => f['id'] === id, 10_000);
      if (again && (again.type !== 'finished' || again['offset'] !== first.offset)) {
        this.workload.anomalies.push(`${genB}: a repeated finish answered ${JSON.stringify(again)}, the first finished @${first.offset}`);
      }
    }
    this.collectAcks(b.client, recB);
  }

  /**
   * Finishes after `seq` chunks, as a producer must: on silence or a dropped socket it reconnects,
   * resumes, and asks again; a generation that meanwhile ended answers how (GENERATION_CLOSED
   * with status and offset), which is the outcome.
   */
  private async finish(p: RawProducer, seq: number): Promise<{ offset: number; status: 'done' }> {
    for (let attempt = 0; attempt < 10; attempt++) {
      if (p.client.closed) {
        this.collectAcks(p.client, p.record);
        await sleep(300);
        const client = await this.connect(p.gateway).catch(() => undefined);
        if (!client) continue;
        const reopened = await this.open(client, p.generation, { resume: { token: p.token } });
        p.client = client;
        if (reopened.type === 'error' && reopened['code'] === 'GENERATION_CLOSED') {
          const details = (reopened['details'] ?? {}) as { status?: string; offset?: number };
          if (details.status === 'done' && typeof details.offset === 'number') return { offset: details.offset, status: 'done' };
          throw new Error(`${p.generation} ended ${JSON.stringify(details)} while finishing`);
        }
        if (reopened.type !== 'opened') continue;
        p.token = reopened['token'] as string;
      }
      const id = 800_000 + attempt;
      this.send(p.client, { type: 'finish', id, token: p.token, seq });
      const answer = await nextFrame(p.client, (f) => f['id'] === id, 3000);
      if (answer?.type === 'finished') return { offset: answer['offset'] as number, status: 'done' };
      if (answer?.type === 'error' && answer['code'] === 'SEQ_GAP') await this.ensureAcked(p, seq - 1);
      else if (answer?.type === 'error' && answer['retryable'] !== true) throw new Error(`finish of ${p.generation} answered ${JSON.stringify(answer)}`);
    }
    throw new Error(`finish of ${p.generation} never answered`);
  }

  /**
   * A generation's first open, with the secret a producer sends so that a retry whose `opened` was
   * lost (the gateway killed between the two) resumes it (§7.1); on a connection that died, it
   * reconnects to the same gateway and asks again (bounded).
   */
  private async openFirst(p: RawProducer, extra: Record<string, unknown>): Promise<AnyFrame> {
    const secret = `${p.generation}_storm_secret_0123456789`.slice(0, 128);
    let answer: AnyFrame | undefined;
    for (let attempt = 0; attempt < 10; attempt++) {
      if (p.client.closed) {
        await sleep(300);
        const client = await this.connect(p.gateway).catch(() => undefined);
        if (!client) continue;
        p.client = client;
      }
      answer = await this.open(p.client, p.generation, { ...extra, secret });
      if (answer.type === 'opened' || !p.client.closed) return answer;
    }
    return answer ?? { type: 'error', code: 'CLOSED', retryable: true, message: `no connection to gateway ${p.gateway.index}` };
  }

  /**
   * `open`, retried after a retryable error (STORE_UNAVAILABLE while Redis is away), as a producer
   * must. A connection that closes first answers CLOSED at once rather than after the timeout.
   */
  private async open(client: RawClient, generation: string, extra: Record<string, unknown>): Promise<AnyFrame> {
    for (let attempt = 0; ; attempt++) {
      const id = this.openId++;
      this.send(client, { type: 'open', id, session: this.session, generation, ...extra });
      const answer = (await nextFrame(client, (f) => f['id'] === id && (f.type === 'opened' || f.type === 'error'), 20_000)) ?? {
        type: 'error',
        code: client.closed ? 'CLOSED' : 'TIMEOUT',
        retryable: true,
        message: `no answer to open ${generation}`,
      };
      if (answer.type === 'opened' || answer['retryable'] !== true || attempt >= 40 || client.closed) return answer;
      await sleep(250);
    }
  }

  /** Acks of `record`'s generation in `client`'s frames, appended once each (frames are kept). */
  private collectAcks(client: RawClient, record: LiveProducerRecord): void {
    const seen = new Set(record.acks.map((a) => `${a.seq}@${a.offset}`));
    for (const f of client.frames) {
      if (f.type !== 'ack' || f['generation'] !== record.generation) continue;
      const key = `${f['seq'] as number}@${f['offset'] as number}`;
      if (seen.has(key)) continue;
      seen.add(key);
      record.acks.push({ seq: f['seq'] as number, offset: f['offset'] as number });
    }
  }

  private highestAck(client: RawClient, generation: string): number {
    let best = -1;
    for (const f of client.frames) if (f.type === 'ack' && f['generation'] === generation) best = Math.max(best, f['seq'] as number);
    return best;
  }

  /**
   * Waits for the ack of `target`; on silence resends from the last ack, and when the socket
   * died reconnects (same gateway, which may have restarted) and resumes with the token.
   */
  private async ensureAcked(p: RawProducer, target: number): Promise<void> {
    for (let attempt = 0; attempt < 12; attempt++) {
      if (this.highestAck(p.client, p.generation) >= target) return;
      if (!p.client.closed) {
        const got = await nextFrame(p.client, (f) => f.type === 'ack' && f['generation'] === p.generation && (f['seq'] as number) >= target, 2500);
        if (got) return;
      }
      if (p.client.closed) {
        this.collectAcks(p.client, p.record);
        await sleep(300);
        const client = await this.connect(p.gateway).catch(() => undefined);
        if (!client) continue;
        const reopened = await this.open(client, p.generation, { resume: { token: p.token } }).catch(() => undefined);
        if (!reopened || reopened.type !== 'opened') {
          client.close();
          continue;
        }
        p.client = client;
        p.token = reopened['token'] as string;
        const next = reopened['nextSeq'] as number;
        if (next > target) {
          // Durable but the ack was lost with the socket: resend the last one for its offset (G2).
          this.send(client, this.range(p.generation, p.token, target, 1));
          continue;
        }
        for (let s = next; s <= target; s += 32) this.send(client, this.range(p.generation, p.token, s, Math.min(32, target - s + 1)));
        continue;
      }
      const from = this.highestAck(p.client, p.generation) + 1;
      for (let s = from; s <= target; s += 32) this.send(p.client, this.range(p.generation, p.token, s, Math.min(32, target - s + 1)));
    }
    throw new Error(`raw producer ${p.generation}: seq ${target} never acknowledged`);
  }
}
