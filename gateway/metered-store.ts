/**
 * A SessionStore that records what the store made durable into the gateway's metrics, from the
 * writes and the store's answers, so the session actor's hot path needs no metric calls of its
 * own for them: finish outcomes by status, finish latency, the wait of writes from their queue
 * to durable, chunk payload sizes, data bytes per append, and the time from a generation's open
 * to its first durable chunk. Every call passes through unchanged.
 *
 * A count here is of what this process's store calls wrote (a `gen.end` another gateway wrote is
 * counted there), so sums over a fleet of gateways count every generation once.
 */
import type { AppendResult, OpenRequest, OpenResult, ResetResult, SessionStore, WriteItem } from '../store/types';
import { decorateStore } from './store-decorator';
import type { Metrics } from './telemetry';

/** Opens waiting for their first durable chunk, at most (oldest forgotten first: G8). */
const MAX_PENDING_OPENS = 10_000;

/** `inner` with its opens and appends metered; `clock` is the one write items' `ts` were taken with. */
export function meteredStore(inner: SessionStore, metrics: Metrics, clock: () => number): SessionStore {
  const meter = new StoreMeter(metrics, clock);
  return decorateStore(inner, {
    openGeneration: (session: string, request: OpenRequest): Promise<OpenResult> =>
      inner.openGeneration(session, request).then((result) => {
        meter.opened(session, request, result);
        return result;
      }),
    append: (session: string, items: readonly WriteItem[]): Promise<AppendResult> =>
      inner.append(session, items).then((result) => {
        meter.appended(session, items, result);
        return result;
      }),
    reset: (session: string, ts: number): Promise<ResetResult> =>
      inner.reset(session, ts).then((result) => {
        // A reset ends the active generation as fenced (PROTOCOL §10.5).
        if (result.status === 'reset' && result.fenced !== null) metrics.generationsEnded.inc(1, { status: 'fenced' });
        return result;
      }),
  });
}

class StoreMeter {
  /** Per session, the generation opened through this store whose first chunk is not durable yet. */
  private readonly opens = new Map<string, { readonly generation: string; readonly openedAt: number }>();

  constructor(
    private readonly metrics: Metrics,
    private readonly clock: () => number,
  ) {}

  opened(session: string, request: OpenRequest, result: OpenResult): void {
    if (result.status !== 'opened') return;
    if (result.fenced !== null) this.metrics.generationsEnded.inc(1, { status: 'fenced' });
    this.opens.delete(session);
    this.opens.set(session, { generation: request.generationId, openedAt: request.ts });
    if (this.opens.size > MAX_PENDING_OPENS) this.opens.delete(this.opens.keys().next().value as string);
  }

  appended(session: string, items: readonly WriteItem[], result: AppendResult): void {
    const metrics = this.metrics;
    const now = this.clock();
    const open = this.opens.get(session);
    let bytes = 0;
    let oldest = now;
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as WriteItem;
      const status = result.results[i]?.status;
      if (item.ts < oldest) oldest = item.ts;
      if (item.op === 'end') {
        if (status !== 'ok') continue;
        metrics.generationsEnded.inc(1, { status: item.status });
        // A timeout has no one waiting for it: finish latency is what a finishing producer waits.
        if (item.ifIdleSince === undefined) metrics.finishLatency.observe(Math.max(0, now - item.ts) / 1000);
        if (open?.generation === item.generationId) this.opens.delete(session);
        continue;
      }
      bytes += item.size;
      if (item.op !== 'chunk' || status !== 'ok') continue;
      metrics.chunkPayloadBytes.observe(item.size);
      if (open !== undefined && open.generation === item.generationId && this.opens.get(session) === open) {
        metrics.firstDurableChunk.observe(Math.max(0, now - open.openedAt) / 1000);
        this.opens.delete(session);
      }
    }
    metrics.persistenceBatchBytes.observe(bytes);
    metrics.writeDurableLatency.observe(Math.max(0, now - oldest) / 1000);
  }
}
