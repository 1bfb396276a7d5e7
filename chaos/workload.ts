/**
 * The workload of a chaos run, and its recorder: SDK producers streaming generations into
 * every session, SDK readers following every session, and the client-driven faults (takeover
 * during streaming, disconnect storms, raw duplicate retransmission storms with stale writers,
 * a second writer trying to get into other producers' generations without their token).
 * Everything observed lands in the records the checker reads (checker.ts), including what every
 * producer wrote per seq (a digest) and every answer the second writer got.
 */
import { SpoolClient, type Generation, type Subscription } from '../client';
import type { ReadItem } from '../protocol/types';
import { chunkData, chunkDigest, type AppendRecord, type DeleteRecord, type IntrusionRecord, type LiveProducerRecord, type ReaderRecord, type ReaderStint } from './checker';
import { TERMINAL_ANSWERS } from './incarnations';
import { adminCall } from './operator';
import type { Scenario } from './scenario';
import { RawStorm } from './raw-storm';
import { SecondWriter, type IntrusionTarget, type StaleToken } from './second-writer';
import type { ChaosTopology, GatewayNode } from './topology';
import { between, errorCode, mulberry32, pick, sleep, withTimeout } from './util';

const RECONNECT = { initialDelayMs: 20, maxDelayMs: 400 };
const TICK_MS = 20;
/** A resume slower than this fails the gate (issue 5). */
export const RESUME_LIMIT_MS = 5000;

/** One reader's resume, from the loss (or the restart) to `live` again. */
export interface ResumeRecord {
  readonly reader: string;
  readonly cause: 'reconnect' | 'restart';
  readonly start: number;
  /** Undefined while still open. */
  end?: number;
}

interface SessionState {
  readonly id: string;
  readonly index: number;
  readonly client: SpoolClient;
  generations: number;
  current: { gen: Generation; record: LiveProducerRecord } | undefined;
  takeover: Promise<void> | undefined;
  loop: Promise<void> | undefined;
  /** Deletes answered so far: what the producer writes now is this incarnation of the session. */
  incarnation: number;
  /** An operator's reset or delete under way (one at a time per session). A delete holds the producer back. */
  operation: { readonly kind: 'reset' | 'delete'; readonly done: Promise<void> } | undefined;
  /** Second writers naming one of its generations right now (no delete meanwhile: one would let them create it). */
  intruders: number;
}

export class ChaosWorkload {
  readonly producers: LiveProducerRecord[] = [];
  readonly appends: AppendRecord[] = [];
  /** Every answer the second writer got. */
  readonly intrusions: IntrusionRecord[] = [];
  readonly readerRecords: ReaderRecord[] = [];
  readonly resumes: ResumeRecord[] = [];
  /** Sessions deleted by the operator fault, in order. */
  readonly deletes: DeleteRecord[] = [];
  /** Things that went wrong outside the checker's records (failed appends, raw storm trouble). */
  readonly anomalies: string[] = [];
  clientReconnects = 0;
  rawFrames = 0;
  private readonly sessions: SessionState[] = [];
  private readonly readers: ChaosReader[] = [];
  private readonly clients = new Set<SpoolClient>();
  private readonly background = new Set<Promise<void>>();
  private endAt = 0;
  private takeovers = 0;
  private storms = 0;
  /** Tokens of generations a takeover displaced (raw storms know theirs), for the second writer. */
  private readonly staleTokens: StaleToken[] = [];
  /** The second writer's own choices, so adding it leaves the rest of a seed's choices as they were. */
  private readonly intruderRand: () => number;
  /** The operator's choices of gateway (resets, deletes). */
  private readonly operatorRand: () => number;
  private monitor: NodeJS.Timeout | undefined;

  constructor(
    private readonly scenario: Scenario,
    private readonly topology: ChaosTopology,
    private readonly rand: () => number,
  ) {
    this.intruderRand = mulberry32(scenario.seed ^ 0x2d3a11);
    this.operatorRand = mulberry32(scenario.seed ^ 0x0de1e7e);
  }

  /** Starts readers first (so they follow from the very beginning), then producers. */
  start(t0: number): void {
    this.endAt = t0 + this.scenario.durationMs;
    const { workload } = this.scenario;
    const n = this.topology.gateways.length;
    for (let i = 0; i < workload.sessions; i++) {
      const id = `s${i}`;
      for (let j = 0; j < workload.readersPerSession; j++) {
        const reader = new ChaosReader(this, `${id}.r${j}`, id, this.topology.gateways, (i + j + 1) % n);
        this.readers.push(reader);
        this.readerRecords.push(reader.record);
        reader.startStint(0);
      }
    }
    for (let i = 0; i < workload.sessions; i++) {
      const id = `s${i}`;
      const client = this.client((this.topology.gateways[i % n] as GatewayNode).producerUrl);
      const state: SessionState = { id, index: i, client, generations: 0, current: undefined, takeover: undefined, loop: undefined, incarnation: 0, operation: undefined, intruders: 0 };
      this.sessions.push(state);
      state.loop = this.produce(state);
    }
    // Resolves client-side resumes: a reader's resume ends when its subscription is live again.
    this.monitor = setInterval(() => {
      const now = Date.now();
      for (const reader of this.readers) reader.poll(now);
    }, 25);
  }

  /** A client of the workload (closed at the end), counting its reconnects. */
  client(url: string): SpoolClient {
    const client = new SpoolClient({ url, reconnect: RECONNECT });
    client.on('reconnect', () => {
      this.clientReconnects += 1;
    });
    this.clients.add(client);
    return client;
  }

  forget(client: SpoolClient): void {
    this.clients.delete(client);
    client.destroy();
  }

  // ------------------------------------------------------------------ producers

  private async produce(state: SessionState): Promise<void> {
    const { workload } = this.scenario;
    const perTick = (workload.chunksPerSecond * TICK_MS) / 1000;
    const [minBytes, maxBytes] = workload.chunkBytes ?? [8, 64];
    const lowShare = workload.lowPriorityShare ?? 0.2;
    while (Date.now() < this.endAt) {
      for (;;) {
        if (state.takeover) await state.takeover;
        else if (state.operation?.kind === 'delete') await state.operation.done;
        else break;
      }
      const n = state.generations++;
      await this.userMessages(state, n);
      const id = `${state.id}-g${n}`;
      const record = this.producerRecord(state.id, id, 'sdk', false);
      const gen = state.client.generation(state.id, { id });
      gen.on('ack', (a) => record.acks.push({ seq: a.seq, offset: a.offset }));
      state.current = { gen, record };
      try {
        let credit = 0;
        for (let seq = 0; seq < workload.chunksPerGeneration && Date.now() < this.endAt; ) {
          credit += perTick;
          while (credit >= 1 && seq < workload.chunksPerGeneration) {
            credit -= 1;
            const priority = this.rand() < lowShare ? 1 : 2;
            const pad = 'x'.repeat(between(this.rand, minBytes, maxBytes));
            const chunk = { kind: priority === 1 ? 'reasoning' : 'text', priority, data: chunkData(id, seq, pad) };
            record.written[seq] = chunkDigest(chunk);
            const ok = gen.write(chunk.data, { kind: chunk.kind, priority });
            seq += 1;
            if (!ok) await gen.drained();
          }
          await sleep(TICK_MS);
        }
        const finished = await gen.finish({ timeoutMs: 30_000 });
        record.finished = { offset: finished.offset, status: finished.status };
        record.outcome = 'finished';
      } catch (error) {
        this.settleFailed(record, error);
      } finally {
        state.current = undefined;
      }
      if (record.outcome === 'failed') await sleep(200);
    }
  }

  private producerRecord(session: string, generation: string, via: 'sdk' | 'raw', takeover: boolean): LiveProducerRecord {
    const incarnation = this.sessions.find((s) => s.id === session)?.incarnation ?? 0;
    const record: LiveProducerRecord = { session, generation, via, takeover, acks: [], written: [], outcome: 'running', ...(incarnation > 0 ? { incarnation } : {}) };
    this.producers.push(record);
    return record;
  }

  private settleFailed(record: LiveProducerRecord, error: unknown): void {
    const code = errorCode(error);
    record.outcome = code === 'FENCED' ? 'fenced' : 'failed';
    record.error = code === 'FENCED' ? code : `${code}: ${error instanceof Error ? error.message : ''}`;
    record.errorCode = code;
  }

  /** Idempotent user messages before a generation: each sent twice at once, stored once (G2). */
  private async userMessages(state: SessionState, n: number): Promise<void> {
    const count = this.scenario.workload.appendsPerGeneration ?? 1;
    for (let k = 0; k < count; k++) {
      const key = `${state.id}-m${n}-${k}`;
      const input = { key, kind: 'user', data: { text: `question ${n}.${k}` } };
      try {
        const [a, b] = await withTimeout(Promise.all([state.client.append(state.id, input), state.client.append(state.id, input)]), 30_000, `append ${key}`);
        const incarnation = state.incarnation > 0 ? { incarnation: state.incarnation } : {};
        this.appends.push({ session: state.id, key, offset: a.offset, ...incarnation });
        if (b.offset !== a.offset) this.appends.push({ session: state.id, key, offset: b.offset, ...incarnation });
      } catch (error) {
        this.anomalies.push(`append ${key} in ${state.id} failed: ${errorCode(error)}`);
      }
    }
  }

  // ------------------------------------------------------------------ client-driven faults

  /**
   * Takeover during streaming: a new generation with `takeover` displaces a streaming producer,
   * through another gateway when there is one. Returns false when no producer is streaming.
   */
  takeover(): boolean {
    const candidates = this.sessions.filter((s) => s.current && !s.takeover && s.operation?.kind !== 'delete' && s.current.gen.state === 'open' && s.current.record.acks.length > 0);
    if (candidates.length === 0 || Date.now() > this.endAt - 500) return false;
    const state = pick(this.rand, candidates);
    const k = this.takeovers++;
    const n = this.topology.gateways.length;
    const gateway = this.topology.gateways[(state.index + 1) % n] as GatewayNode;
    const run = async (): Promise<void> => {
      const client = this.client(gateway.producerUrl);
      const id = `${state.id}-t${k}`;
      const record = this.producerRecord(state.id, id, 'sdk', true);
      const gen = client.generation(state.id, { id, takeover: true });
      gen.on('ack', (a) => record.acks.push({ seq: a.seq, offset: a.offset }));
      try {
        for (let seq = 0; seq < 20; seq++) {
          const data = chunkData(id, seq, 'takeover');
          record.written[seq] = chunkDigest({ kind: 'text', data });
          gen.write(data, { kind: 'text' });
        }
        const finished = await gen.finish({ timeoutMs: 30_000 });
        record.finished = { offset: finished.offset, status: finished.status };
        record.outcome = 'finished';
      } catch (error) {
        this.settleFailed(record, error);
      } finally {
        this.forget(client);
      }
    };
    const done = run().finally(() => {
      if (state.takeover === done) state.takeover = undefined;
    });
    state.takeover = done;
    this.track(done);
    return true;
  }

  /** Disconnect storm: this share of the readers closes its client and resumes on a new one from its saved offset. */
  restartReaders(share: number): number {
    let restarted = 0;
    for (const reader of this.readers) {
      if (this.rand() < share && reader.restart(Math.floor(this.rand() * this.topology.gateways.length))) restarted += 1;
    }
    return restarted;
  }

  /** Duplicate retransmission storm with a stale writer, in a session of its own (see RawStorm). */
  duplicateStorm(chunks: number): void {
    const k = this.storms++;
    const storm = new RawStorm(this, this.topology.gateways, this.rand, `dup${k}`, chunks);
    this.track(storm.run());
  }

  /**
   * Second writer: a raw-protocol client on a gateway that is up names `count` generations other
   * producers are streaming (opened and acknowledged, so an open naming one can never create it)
   * and tries to get into them without their token, plus a stale token if the workload holds one
   * (see SecondWriter). Returns false when no producer is streaming.
   */
  secondWriter(count: number): boolean {
    // A generation of a deleted incarnation is forgotten (PROTOCOL §10.6): naming it would create it.
    const current = (p: LiveProducerRecord): boolean => {
      const state = this.sessions.find((s) => s.id === p.session);
      return state === undefined || (state.operation?.kind !== 'delete' && state.incarnation === (p.incarnation ?? 0));
    };
    const streaming = this.producers.filter((p) => p.outcome === 'running' && p.acks.length > 0 && p.finished === undefined && current(p));
    const gateways = this.topology.gateways.filter((g) => g.up);
    if (streaming.length === 0 || gateways.length === 0 || Date.now() > this.endAt - 500) return false;
    const rand = this.intruderRand;
    const targets: IntrusionTarget[] = [];
    while (targets.length < count && streaming.length > 0) {
      const [p] = streaming.splice(Math.floor(rand() * streaming.length), 1) as [LiveProducerRecord];
      targets.push({ session: p.session, generation: p.generation, written: p.written.length, acked: Math.max(-1, ...p.acks.map((a) => a.seq)) });
    }
    const stale = this.staleTokens.length > 0 ? pick(rand, this.staleTokens) : undefined;
    const named = this.sessions.filter((s) => targets.some((t) => t.session === s.id) || s.id === stale?.session);
    for (const s of named) s.intruders += 1;
    const run = new SecondWriter(this, pick(rand, gateways), rand, targets, stale).run();
    this.track(
      run.finally(() => {
        for (const s of named) s.intruders -= 1;
      }),
    );
    return true;
  }

  /** @internal A raw storm's writer was displaced: its token is stale from now on. */
  noteStaleToken(token: StaleToken): void {
    this.staleTokens.push(token);
  }

  /** @internal */
  track(promise: Promise<void>): void {
    const tracked = promise.catch((error: unknown) => {
      this.anomalies.push(`background task failed: ${errorCode(error)}`);
    });
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }

  /**
   * An operator resets or deletes a session whose producer is streaming and has been acked (seeded
   * choice), through the admin API of a gateway that is up (PROTOCOL §10.5, §10.6). One operation
   * per session at a time, none while a takeover or a second writer is at it. A delete holds the
   * session's producer back until it is answered, so what it writes next is the next incarnation.
   * Returns false when no session qualifies.
   */
  operate(kind: 'reset' | 'delete'): boolean {
    const candidates = this.sessions.filter(
      (s) =>
        s.current &&
        !s.takeover &&
        !s.operation &&
        s.intruders === 0 &&
        s.current.gen.state === 'open' &&
        s.current.record.acks.length > 0 &&
        // Not yet told its incarnation was deleted: the session may be empty.
        (s.current.record.incarnation ?? 0) === s.incarnation,
    );
    if (candidates.length === 0 || Date.now() > this.endAt - 500) return false;
    const state = pick(this.rand, candidates);
    const done = (kind === 'reset' ? this.reset(state) : this.delete(state)).finally(() => {
      if (state.operation?.done === done) state.operation = undefined;
    });
    state.operation = { kind, done };
    this.track(done);
    return true;
  }

  private async reset(state: SessionState): Promise<void> {
    const answer = await adminCall(this.topology.gateways, this.operatorRand, 'POST', `/admin/sessions/${state.id}/reset`);
    // No answer: the gateway died under it (it may or may not have reset; either is a legal history).
    if (answer !== undefined && answer.status !== 200) this.anomalies.push(`reset of ${state.id} answered ${answer.status} ${JSON.stringify(answer.body)}`);
  }

  /**
   * Deletes until some gateway answers: a gateway killed under the request may or may not have
   * deleted (one atomic store step); asking another one then answers 200 or, if it had, 404.
   * Nothing else writes the session meanwhile, so neither deletes anything of the next incarnation.
   */
  private async delete(state: SessionState): Promise<void> {
    const incarnation = state.incarnation;
    const deadline = Date.now() + 30_000;
    let record: DeleteRecord | undefined;
    while (record === undefined) {
      const answer = await adminCall(this.topology.gateways, this.operatorRand, 'DELETE', `/admin/sessions/${state.id}`);
      if (answer?.status === 200) {
        const body = answer.body as { head: number; fenced: string | null };
        record = { session: state.id, incarnation, head: body.head, fenced: body.fenced };
      } else if (answer?.status === 404) {
        record = { session: state.id, incarnation };
      } else if (Date.now() > deadline) {
        this.anomalies.push(`delete of ${state.id} got no answer in 30 s (last: ${answer === undefined ? 'no gateway answered' : `${answer.status} ${JSON.stringify(answer.body)}`})`);
        record = { session: state.id, incarnation };
      } else {
        await sleep(200);
      }
    }
    this.deletes.push(record);
    state.incarnation = incarnation + 1;
  }

  recordProducer(session: string, generation: string, takeover: boolean): LiveProducerRecord {
    return this.producerRecord(session, generation, 'raw', takeover);
  }

  /** @internal */
  resumeStarted(record: ResumeRecord): void {
    this.resumes.push(record);
  }

  // ------------------------------------------------------------------ the end

  /** Waits (bounded) for every producer loop and background task to end. Returns what did not. */
  async finishProducing(timeoutMs: number): Promise<string[]> {
    const loops = this.sessions.map((s) => s.loop ?? Promise.resolve());
    try {
      await withTimeout(Promise.all([...loops, ...this.background]), timeoutMs, 'producers to finish');
      return [];
    } catch {
      const stuck = this.sessions.filter((s) => s.current).map((s) => `producer of ${s.id} still at ${s.current?.record.generation} (${s.current?.gen.state})`);
      for (const s of this.sessions) s.current?.gen.destroy();
      return stuck.length > 0 ? stuck : ['background tasks (takeovers, storms) did not finish'];
    }
  }

  /** Every session the workload wrote, storms included. */
  sessionIds(): string[] {
    return [...new Set([...this.sessions.map((s) => s.id), ...this.producers.map((p) => p.session)])];
  }

  /**
   * Tells readers where each session's final log ends (its last item); resolves with the readers
   * that did not reach it in time.
   */
  async stopReaders(ends: ReadonlyMap<string, ReadItem | undefined>, timeoutMs: number): Promise<string[]> {
    await Promise.all(this.readers.map((r) => r.stopAt(ends.get(r.session), timeoutMs)));
    return this.readers.filter((r) => !r.reached).map((r) => `reader ${r.id} stopped at ${r.position} of ${endOffset(ends.get(r.session))}`);
  }

  async close(): Promise<void> {
    if (this.monitor) clearInterval(this.monitor);
    for (const reader of this.readers) reader.close();
    for (const client of this.clients) client.destroy();
    this.clients.clear();
  }
}

/** One reader of one session across stints; records everything it was given. */
/** The offset an item ends at (a gap's last offset); 0 for none. */
function endOffset(item: ReadItem | undefined): number {
  if (item === undefined) return 0;
  return item.type === 'gap' ? item.to : item.offset;
}

/** Whether a reader's last item is the final log's last one (its offset alone is not enough: a delete reuses offsets). */
function sameEnd(a: ReadItem | undefined, b: ReadItem | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.type === 'gap' || b.type === 'gap') return a.type === b.type && endOffset(a) === endOffset(b);
  return a.offset === b.offset && a.type === b.type && a.generationId === b.generationId && a.seq === b.seq && a.key === b.key;
}

class ChaosReader {
  readonly record: ReaderRecord;
  private client: SpoolClient | undefined;
  private sub: Subscription | undefined;
  private resume: ResumeRecord | undefined;
  /** The final log's last item, once the run is draining; undefined before (and for an empty log: see `stopping`). */
  private target: ReadItem | undefined;
  private stopping = false;
  /** The last item delivered in this incarnation (across stints; cleared by a terminal answer). */
  private last: ReadItem | undefined;
  private finished = false;
  private onFinished: (() => void) | undefined;
  private restarts = 0;
  reached = false;

  constructor(
    private readonly workload: ChaosWorkload,
    readonly id: string,
    readonly session: string,
    private readonly gateways: readonly GatewayNode[],
    private gateway: number,
  ) {
    this.record = { id, session, stints: [] };
  }

  /** Where the consumer is: the resume point of the next stint. */
  get position(): number {
    return this.sub?.offset ?? this.record.stints[this.record.stints.length - 1]?.from ?? 0;
  }

  startStint(from: number): void {
    const node = this.gateways[this.gateway] as GatewayNode;
    const client = this.workload.client(node.readerUrl);
    const stint: ReaderStint = { from, gateway: this.gateway, items: [], breaks: [] };
    client.on('state', ({ previous, state }) => {
      if (previous !== 'open' || state === 'open' || this.finished || client !== this.client) return;
      // Items the subscription already holds came over the lost connection; what follows them, over the next.
      stint.breaks?.push(stint.items.length + sub.buffered);
      this.beginResume('reconnect');
    });
    const sub = client.subscribe(this.session, { from });
    this.record.stints.push(stint);
    this.client = client;
    this.sub = sub;
    void this.consume(sub, stint);
  }

  private async consume(sub: Subscription, stint: ReaderStint): Promise<void> {
    try {
      for await (const item of sub) {
        stint.items.push(item as ReadItem);
        this.last = item as ReadItem;
        if (this.atTarget()) {
          this.finish();
          return;
        }
      }
    } catch (error) {
      if (this.finished || sub !== this.sub) return;
      const code = errorCode(error);
      stint.end = code;
      if (this.restarts >= 20) return;
      if (TERMINAL_ANSWERS.has(code)) {
        // The session was deleted (PROTOCOL §10.6; the operator's answer may not be in yet):
        // subscribe again from the start, as apps that reuse session ids must. The checker holds
        // the next subscription to the next incarnation, and a terminal answer to a delete.
        this.last = undefined;
        this.restart(this.gateway, 0);
        return;
      }
      // A non-retryable subscription error: note it and resume on a new client (bounded).
      this.workload.anomalies.push(`reader ${this.id}: subscription failed with ${code} at ${sub.offset}`);
      await sleep(100);
      this.restart(this.gateway);
    }
  }

  /** At the final log's end: the same last item (a delete reuses offsets, so an offset alone could be another incarnation's). */
  private atTarget(): boolean {
    return this.stopping && this.position === endOffset(this.target) && sameEnd(this.last, this.target);
  }

  /** Closes the client and resumes from the saved offset (or `from`) on a new one (disconnect storm, terminal answer). */
  restart(gateway: number, from = this.sub?.offset ?? 0): boolean {
    if (this.finished || !this.sub || !this.client) return false;
    this.restarts += 1;
    this.beginResume('restart');
    this.sub.close();
    this.workload.forget(this.client);
    this.gateway = gateway;
    this.startStint(from);
    return true;
  }

  private beginResume(cause: ResumeRecord['cause']): void {
    if (this.resume || this.finished) return;
    this.resume = { reader: this.id, cause, start: Date.now() };
    this.workload.resumeStarted(this.resume);
  }

  /** A resume ends when the subscription is live again. */
  poll(now: number): void {
    if (this.resume && this.sub?.live) {
      this.resume.end = now;
      this.resume = undefined;
    }
  }

  stopAt(target: ReadItem | undefined, timeoutMs: number): Promise<void> {
    this.target = target;
    this.stopping = true;
    if (this.finished) return Promise.resolve();
    if (this.atTarget()) {
      this.finish();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.close();
        resolve();
      }, timeoutMs);
      this.onFinished = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private finish(): void {
    this.reached = true;
    // Caught up with the final head: whatever resume was under way has succeeded.
    if (this.resume) this.resume.end = Date.now();
    this.resume = undefined;
    this.close();
  }

  close(): void {
    if (this.finished) return;
    this.finished = true;
    // A resume still open at the end stays open: the gate reports it as unresumed.
    this.sub?.close();
    if (this.client) this.workload.forget(this.client);
    this.onFinished?.();
  }
}
