/**
 * The browser side of the package test (chaos/sdk-package.test.ts): a page script that imports
 * spool-client as an app would, bundled by esbuild for the browser and run in headless Chromium
 * with the browser's own WebSocket. It streams one generation while following the same session,
 * and the test kills the gateway with SIGKILL mid-stream and starts it again:
 *
 *   page                                     test (Node)
 *   chunks [0, half) written, flushed,
 *   all seen by the reader
 *   chunks [half, atKill) written, not
 *   awaited ─────── spoolProgress('written') ──▶ kill -9 the gateway, wait for its exit
 *                 ◀── spoolContinue() ─────────
 *   chunks [atKill, total) written while
 *   the gateway is down ─ spoolProgress('queued') ─▶ start it again: same port, same data dir
 *   finish() resolves; the reader reaches gen.end
 *   spoolRun() returns what the reader saw ────▶ every chunk once, in order; reconnects happened
 */
import { SpoolClient, isGap, type FinishResult, type SubscriptionItem } from 'spool-client';

export interface PageProgress {
  readonly phase: 'written' | 'queued';
  /** Highest seq acknowledged as durable so far (-1: none). */
  readonly acked: number;
  /** Chunks the reader has received so far. */
  readonly received: number;
}

export interface PageRun {
  readonly url: string;
  readonly session: string;
  readonly half: number;
  readonly atKill: number;
  readonly total: number;
}

export interface PageResult {
  readonly items: SubscriptionItem[];
  readonly finished: FinishResult;
  /** Connections that came back after a loss (`SpoolClient.on('reconnect')`), by name. */
  readonly reconnects: string[];
  readonly ackedAtKill: number;
  readonly userAgent: string;
  readonly nativeWebSocket: boolean;
}

declare global {
  interface Window {
    /** Exposed by the test (a Playwright binding): tells it which phase the page reached. */
    spoolProgress(progress: PageProgress): Promise<void>;
    /** Called by the test once the gateway is dead. */
    spoolContinue(): void;
    spoolRun(run: PageRun): Promise<PageResult>;
  }
}

async function spoolRun({ url, session, half, atKill, total }: PageRun): Promise<PageResult> {
  const client = new SpoolClient({ url, reconnect: { initialDelayMs: 20, maxDelayMs: 250 } });
  const reconnects: string[] = [];
  client.on('reconnect', (event) => reconnects.push(event.connection));
  try {
    const items: SubscriptionItem[] = [];
    let received = 0;
    let seen: { readonly count: number; readonly resolve: () => void } | undefined;
    const subscription = client.subscribe(session, { from: 'start' });
    const reading = (async () => {
      for await (const item of subscription) {
        items.push(item);
        if (isGap(item)) continue;
        if (item.type === 'chunk' && ++received === seen?.count) seen.resolve();
        if (item.type === 'gen.end') break;
      }
    })();

    const generation = client.generation(session, { id: 'browser-generation' });
    let acked = -1;
    generation.on('ack', (ack) => (acked = ack.seq));
    const write = (seq: number): boolean => generation.write({ seq, text: `token ${seq} ` });

    for (let seq = 0; seq < half; seq++) write(seq);
    await generation.flush();
    if (received < half) await new Promise<void>((resolve) => (seen = { count: half, resolve }));

    for (let seq = half; seq < atKill; seq++) write(seq);
    const resumed = new Promise<void>((resolve) => (window.spoolContinue = resolve));
    const ackedAtKill = acked;
    await window.spoolProgress({ phase: 'written', acked, received });
    await resumed;

    // Queued in the SDK while nothing listens (well under its high-water mark; a write past it
    // would still queue, and drained() would wait for the restart that waits for us).
    for (let seq = atKill; seq < total; seq++) write(seq);
    await window.spoolProgress({ phase: 'queued', acked, received });
    const finished = await generation.finish({ timeoutMs: 60_000 });
    await reading;
    subscription.close();
    return { items, finished, reconnects, ackedAtKill, userAgent: navigator.userAgent, nativeWebSocket: typeof WebSocket === 'function' };
  } finally {
    await client.close();
  }
}

window.spoolRun = spoolRun;
