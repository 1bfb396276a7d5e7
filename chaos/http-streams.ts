/**
 * The Durable Streams door in a chaos run: per stream, an HTTP producer and an HTTP SSE reader,
 * both through the gateways' fault proxies (the same links the WebSocket clients use), with their
 * records for http-check.ts.
 *
 *   producer  POST batches of JSON items {s, n} with idempotent-producer headers (one request in
 *             flight, like the protocol's own pipelining with maxInFlight 1); a request that
 *             fails (reset, timeout, a killed gateway, 5xx) is sent again with the same
 *             (epoch, seq), to the next gateway; ends with a close (Stream-Closed, next seq)
 *   reader    `@durable-streams/client` stream({live: 'sse'}) from -1, reopened from the offset
 *             after its last batch whenever its connection breaks, on the next gateway; ends at
 *             the close (EOF)
 *
 * Streams are the sessions `h0`, `h1`, … (`/v1/stream/h<i>`), created before the faults start.
 */
import { DurableStream } from '@durable-streams/client';
import type { Scenario } from './scenario';
import type { ChaosTopology } from './topology';
import { between, sleep } from './util';

/** One stored batch as its producer learned it. */
export interface HttpAck {
  readonly seq: number;
  readonly items: readonly number[];
  /** 200: the stream offset of the batch's event; 204 (a duplicate): undefined. */
  readonly offset: string | undefined;
  readonly status: 200 | 204;
}

export interface HttpProducerRecord {
  readonly session: string;
  readonly acks: HttpAck[];
  /** Requests that failed and were sent again. */
  retries: number;
  closed: boolean;
  /** Answers no correct gateway gives a sequential producer (403, 409, 400). */
  readonly anomalies: string[];
}

export interface HttpReaderRecord {
  readonly session: string;
  /** Every item delivered, in delivery order (the `n` of each {s, n}). */
  readonly delivered: number[];
  /** Connections opened (1 + reconnects). */
  connections: number;
  /** Reached the close (EOF). */
  ended: boolean;
}

const REQUEST_TIMEOUT_MS = 3000;
const PRODUCER = 'chaos-http';

export class HttpStreams {
  readonly producers: HttpProducerRecord[] = [];
  readonly readers: HttpReaderRecord[] = [];
  private readonly loops: Array<Promise<void>> = [];
  private readonly readerLoops: Array<Promise<void>> = [];
  private readonly abort = new AbortController();
  private stopProducing = false;

  constructor(
    private readonly scenario: Scenario,
    private readonly topology: ChaosTopology,
    private readonly rand: () => number,
  ) {}

  /** Session ids of the streams. */
  sessions(): string[] {
    return Array.from({ length: this.scenario.workload.httpStreams ?? 0 }, (_, i) => `h${i}`);
  }

  private base(kind: 'producer' | 'reader', index: number): string {
    const nodes = this.topology.gateways;
    const node = nodes[index % nodes.length] as (typeof nodes)[number];
    const ws = kind === 'producer' ? node.producerUrl : node.readerUrl;
    return `${ws.replace(/^ws:/, 'http:').replace(/\/v1$/, '')}/v1/stream`;
  }

  /** Creates the streams (directly, before any fault), then starts readers and producers. */
  async start(): Promise<void> {
    const direct = `${(this.topology.gateways[0] as { url: string }).url.replace(/^ws:/, 'http:').replace(/\/v1$/, '')}/v1/stream`;
    for (const session of this.sessions()) {
      const created = await fetch(`${direct}/${session}`, { method: 'PUT', headers: { 'content-type': 'application/json' } });
      if (created.status !== 201) throw new Error(`PUT ${session}: ${created.status} ${await created.text()}`);
    }
    this.sessions().forEach((session, i) => {
      const reader: HttpReaderRecord = { session, delivered: [], connections: 0, ended: false };
      this.readers.push(reader);
      this.readerLoops.push(this.read(reader, i));
      const producer: HttpProducerRecord = { session, acks: [], retries: 0, closed: false, anomalies: [] };
      this.producers.push(producer);
      this.loops.push(this.produce(producer, i));
    });
  }

  /** Stops the producers after their request in flight, closes every stream; resolves when done (bounded by the caller). */
  async finishProducing(): Promise<void> {
    this.stopProducing = true;
    await Promise.all(this.loops);
  }

  /** Waits for every reader to reach the close; returns the sessions whose reader did not within `timeoutMs`. */
  async finishReading(timeoutMs: number): Promise<string[]> {
    const done = Promise.all(this.readerLoops).then(() => true);
    const finished = await Promise.race([done, sleep(timeoutMs).then(() => false)]);
    if (!finished) this.abort.abort();
    return this.readers.filter((r) => !r.ended).map((r) => r.session);
  }

  close(): void {
    this.stopProducing = true;
    this.abort.abort();
  }

  private async produce(record: HttpProducerRecord, index: number): Promise<void> {
    let n = 0;
    for (let seq = 0; ; seq++) {
      const closing = this.stopProducing;
      const items = closing ? [] : Array.from({ length: between(this.rand, 1, 20) }, () => n++);
      const body = closing ? undefined : JSON.stringify(items.map((i) => ({ s: record.session, n: i })));
      const headers: Record<string, string> = { 'producer-id': PRODUCER, 'producer-epoch': '0', 'producer-seq': String(seq) };
      if (closing) headers['stream-closed'] = 'true';
      else headers['content-type'] = 'application/json';
      for (let attempt = 0; ; attempt++) {
        if (this.abort.signal.aborted) return;
        const url = `${this.base('producer', index + attempt)}/${record.session}`;
        let response: Response;
        try {
          response = await fetch(url, { method: 'POST', headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]) });
          await response.arrayBuffer();
        } catch {
          record.retries++;
          await sleep(between(this.rand, 5, 50));
          continue;
        }
        if (response.status >= 500 || response.status === 429) {
          record.retries++;
          await sleep(between(this.rand, 20, 100));
          continue;
        }
        if (closing) {
          if (response.status !== 204) record.anomalies.push(`close (seq ${seq}) answered ${response.status}`);
          record.closed = true;
          return;
        }
        if (response.status === 200 || response.status === 204) {
          record.acks.push({ seq, items, offset: response.status === 200 ? (response.headers.get('stream-next-offset') ?? undefined) : undefined, status: response.status });
          break;
        }
        record.anomalies.push(`seq ${seq} answered ${response.status} (${response.headers.get('producer-expected-seq') ?? ''})`);
        return;
      }
      // A small random pause between batches: a rate, not a synchronisation.
      await sleep(between(this.rand, 5, 25));
    }
  }

  private async read(record: HttpReaderRecord, index: number): Promise<void> {
    let offset = '-1';
    for (let attempt = 0; !this.abort.signal.aborted; attempt++) {
      let sawClose: () => void = () => undefined;
      const closedBatch = new Promise<void>((resolve) => {
        sawClose = resolve;
      });
      try {
        record.connections++;
        const stream = new DurableStream({ url: `${this.base('reader', index + attempt)}/${record.session}`, contentType: 'application/json' });
        const res = await stream.stream<{ s: string; n: number }>({ offset, live: 'sse', signal: this.abort.signal, sseResilience: { logWarnings: false } });
        res.subscribeJson((batch) => {
          for (const item of batch.items) record.delivered.push(item.n);
          offset = batch.offset;
          if (batch.streamClosed) sawClose();
        });
        await res.closed;
        if (res.streamClosed) {
          // `closed` can resolve before the subscriber got the last batch: wait for the batch that
          // says closed, boundedly. A reader that reconnected after the last item may get the close
          // with no batch at all (it saw Stream-Closed): it reached the close too. Whether it got
          // every item is the checker's to judge (delivered against the log).
          await Promise.race([closedBatch, sleep(3_000)]);
          record.ended = true;
          return;
        }
      } catch {
        // Reopened below from the offset after the last batch taken.
      }
      await sleep(between(this.rand, 10, 60));
    }
  }
}
