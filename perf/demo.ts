/**
 * `npm run demo`: one chat turn through spool, with the reader's network cut halfway.
 *
 *   producer SpoolClient ───────────────────────────▶ gateway (embedded LMDB, temp dir)
 *   reader SpoolClient ──▶ TCP proxy (cut halfway) ──▶        │
 *
 * The producer appends the user message, then streams a fake LLM response (text deltas at
 * priority 2, interleaved reasoning at 1 and debug at 0) through a generation, honouring
 * backpressure. The reader follows the session from offset 0; when it has half the events the
 * proxy destroys its sockets and refuses reconnects for a moment; the producer waits for that
 * cut before it writes the second half, so the cut lands mid-stream however fast or slow either
 * side is. The SDK reconnects and resumes from its last offset on its own. At the end the demo
 * checks that every event arrived exactly once, in contiguous offsets, and prints the
 * conversation and the counts.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { SpoolClient, type Generation, type SessionEvent, type Subscription, type SubscriptionItem } from '../client';
import { startGateway, type Gateway } from '../gateway';
import { runMain } from './report';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';
import { deferred, sleep, withTimeout } from './workload';

const USER_MESSAGE = 'Why does a chat app need a durable log between the model and the screen?';

const ANSWER =
  'Because the screen is the least reliable part of the system. A laptop lid closes, a train ' +
  'enters a tunnel, a browser tab is throttled in the background, and the WebSocket carrying the ' +
  'answer quietly dies halfway through a sentence. If the tokens only ever lived in that socket, ' +
  'they are gone, and the user is left with half a paragraph and a spinner that never stops. A ' +
  'durable log changes the question from "did I receive everything?" to "what is the last offset ' +
  'I saw?". Every delta the model produces is written once, acknowledged only after it is stored, ' +
  'and given a place in the session that never changes. A reader that drops simply asks for ' +
  'everything after its last offset, gets the part it missed from storage, and then continues ' +
  'with the live tail without a seam, without duplicates, and without holes. Low priority ' +
  'material such as reasoning traces and debug output can be trimmed first when space runs ' +
  'short, but even then the reader is told exactly which range was removed instead of being ' +
  'left to guess. The producer gets the same promise from the other side: when it reconnects it ' +
  'learns the highest sequence number that is durable and resends only what follows.';

const REASONING = [
  'The user asks about reliability, not storage engines.',
  'Lead with the failure a user actually sees.',
  'Explain offsets before mentioning resume.',
  'Mention the producer side too, briefly.',
  'Keep it to one paragraph.',
];

/** What `runDemo` found; `ok` is false when anything was lost, duplicated or out of order. */
export interface DemoReport {
  readonly ok: boolean;
  /** Human-readable reasons `ok` is false (empty when it is true). */
  readonly problems: readonly string[];
  readonly session: string;
  readonly userMessage: string;
  readonly assistantText: string;
  /** Events the log should hold: the user message, gen.start, every chunk, gen.end. */
  readonly expectedEvents: number;
  /** Events (not gaps) the reader's consumer received. */
  readonly eventsReceived: number;
  /** Events whose offset was at or below the highest offset received before them. */
  readonly duplicates: number;
  /** Gap items received plus offsets skipped silently. */
  readonly gaps: number;
  /** Times the reader's connection was re-established through the proxy after the first. */
  readonly reconnects: number;
  /** Reconnect attempts the proxy refused during the simulated outage. */
  readonly refusedAttempts: number;
  /** Offsets received form 1, 2, … lastOffset with nothing missing or repeated. */
  readonly contiguous: boolean;
  readonly lastOffset: number;
  /** Subscriptions the gateway counted as resumes from an offset > 0 (`spool_resume_attempts_total`). */
  readonly gatewayResumes: number;
  /** Offset of the last event the reader had received when its connection was cut. */
  readonly cutAtOffset: number | undefined;
  readonly chunks: { readonly text: number; readonly reasoning: number; readonly debug: number };
  /** Status of the generation's gen.end as the reader saw it. */
  readonly endStatus: string | undefined;
  readonly elapsedMs: number;
}

export interface DemoOptions {
  /** Progress lines (the CLI prints them; tests pass nothing). */
  readonly log?: (line: string) => void;
  /** Pause after each text delta, like a model emitting tokens. @default 3 */
  readonly tokenDelayMs?: number;
  /** How long the proxy refuses reconnects after the cut. @default 250 */
  readonly outageMs?: number;
  /** Give up waiting for the reader after this long. @default 20000 */
  readonly timeoutMs?: number;
}

interface Planned {
  readonly kind: 'text' | 'reasoning' | 'debug';
  readonly priority: 0 | 1 | 2;
  readonly data: unknown;
}

/** Splits the answer into token-like deltas and interleaves reasoning and debug chunks. */
export function planChunks(): Planned[] {
  const deltas: string[] = [];
  for (const word of ANSWER.match(/\S+\s*/g) ?? []) {
    // Long words arrive in two pieces, as sub-word tokens do.
    if (word.trim().length > 7) deltas.push(word.slice(0, 4), word.slice(4));
    else deltas.push(word);
  }
  const plan: Planned[] = [];
  let reasoning = 0;
  deltas.forEach((delta, i) => {
    if (i % 3 === 0) {
      const thought = REASONING[reasoning++ % REASONING.length] as string;
      plan.push({ kind: 'reasoning', priority: 1, data: thought });
    }
    plan.push({ kind: 'text', priority: 2, data: delta });
    if (i % 4 === 3) plan.push({ kind: 'debug', priority: 0, data: { tokens: i + 1, t: Math.round(performance.now()) } });
  });
  return plan;
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

/**
 * Writes the planned chunks, honouring backpressure, then finishes the generation. Before chunk
 * `pause.at` it waits for `pause.until` (the reader's cut).
 */
async function produce(gen: Generation, plan: readonly Planned[], tokenDelayMs: number, pause: { readonly at: number; readonly until: Promise<void> }): Promise<number> {
  for (const [index, chunk] of plan.entries()) {
    if (index === pause.at) await pause.until;
    if (!gen.write(chunk.data, { kind: chunk.kind, priority: chunk.priority })) await gen.drained();
    if (chunk.kind === 'text' && tokenDelayMs > 0) await sleep(tokenDelayMs);
  }
  const result = await gen.finish();
  return result.offset;
}

interface ReaderResult {
  readonly events: SessionEvent[];
  readonly duplicates: number;
  readonly gapItems: number;
  readonly holes: number;
  readonly cutAtOffset: number | undefined;
  readonly sawEnd: boolean;
}

/** Follows the session until the generation's gen.end; cuts the proxy after `cutAfter` events. */
async function read(
  sub: Subscription,
  generationId: () => string | undefined,
  cutAfter: number,
  cut: (offset: number, buffered: number) => void,
  onResumed: (offset: number) => void,
): Promise<ReaderResult> {
  const events: SessionEvent[] = [];
  let maxOffset = 0;
  let duplicates = 0;
  let gapItems = 0;
  let holes = 0;
  let cutAtOffset: number | undefined;
  let beforeResume = -1; // items the SDK had buffered when the cut came: they precede the resume
  let sawEnd = false;
  for await (const item of sub as AsyncIterable<SubscriptionItem>) {
    if (item.type === 'gap') {
      gapItems++;
      maxOffset = Math.max(maxOffset, item.to);
      continue;
    }
    if (item.offset <= maxOffset) duplicates++;
    else {
      holes += item.offset - maxOffset - 1;
      maxOffset = item.offset;
    }
    events.push(item);
    if (beforeResume === 0) onResumed(item.offset);
    if (beforeResume >= 0) beforeResume--;
    if (cutAtOffset === undefined && events.length >= cutAfter) {
      cutAtOffset = item.offset;
      beforeResume = sub.buffered;
      cut(item.offset, sub.buffered);
    }
    if (item.type === 'gen.end' && item.generationId === generationId()) {
      sawEnd = true;
      break; // leaving the loop closes the subscription
    }
  }
  return { events, duplicates, gapItems, holes, cutAtOffset, sawEnd };
}

/**
 * Runs the demo end to end (gateway, proxy, producer, reader) and cleans everything up.
 * Never throws for a lost or duplicated event: that is reported in `problems`.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const say = options.log ?? ((): void => undefined);
  const tokenDelayMs = options.tokenDelayMs ?? 3;
  const outageMs = options.outageMs ?? 250;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const started = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-demo-'));
  const session = `demo-${randomUUID().slice(0, 8)}`;
  const plan = planChunks();
  const expectedEvents = 1 + 1 + plan.length + 1; // user message, gen.start, chunks, gen.end
  const problems: string[] = [];

  let gateway: Gateway | undefined;
  let proxy: TcpProxy | undefined;
  let producer: SpoolClient | undefined;
  let reader: SpoolClient | undefined;
  try {
    gateway = await startGateway({ port: 0, data: dir, logger: pino({ level: 'warn' }) });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: gateway.port });
    const proxyRef = proxy;
    say(`gateway ${gateway.url} (embedded LMDB in ${dir}); the reader connects through a TCP proxy on :${proxy.port}`);

    producer = new SpoolClient({ url: gateway.url });
    reader = new SpoolClient({ url: `ws://127.0.0.1:${proxy.port}/v1`, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });

    let gen: Generation | undefined;
    let cutAt = 0;
    const cutAfter = Math.floor(expectedEvents / 2);
    const cutDone = deferred();
    const sub = reader.subscribe(session, { from: 0 });
    const reading = read(
      sub,
      () => gen?.id,
      cutAfter,
      (offset, buffered) => {
        cutAt = performance.now();
        const sockets = proxyRef.cut(outageMs);
        cutDone.resolve(); // the producer writes the second half now
        say(
          `cut the reader's connection at offset ${offset} (${plural(sockets, 'TCP connection')} destroyed, ${plural(buffered, 'event')} already in the SDK's buffer); reconnects refused for ${outageMs} ms`,
        );
      },
      (offset) => say(`reader resumed by itself: offset ${offset} arrived ${Math.round(performance.now() - cutAt)} ms after the cut`),
    );

    const appended = await producer.append(session, { key: 'user-message-1', kind: 'user', data: { role: 'user', text: USER_MESSAGE } });
    say(`user message appended at offset ${appended.offset}`);
    gen = producer.generation(session);
    say(`streaming ${plan.length} chunks (${plan.filter((c) => c.kind === 'text').length} text deltas, reasoning and debug interleaved) into generation ${gen.id}`);
    // The user message and gen.start come first: this many chunks make the events the cut waits for.
    const pause = { at: cutAfter - 2, until: cutDone.promise };
    const endOffset = await withTimeout(produce(gen, plan, tokenDelayMs, pause), timeoutMs, 'the producer');
    say(`generation finished: gen.end durable at offset ${endOffset}`);

    let result: ReaderResult;
    try {
      result = await withTimeout(reading, timeoutMs, 'the reader');
    } catch (error) {
      sub.close();
      throw error;
    }

    // ------------------------------------------------------------------ verify
    const { events } = result;
    const offsets = events.map((e) => e.offset);
    const contiguous = result.duplicates === 0 && result.holes === 0 && result.gapItems === 0 && offsets.every((o, i) => o === i + 1);
    const lastOffset = offsets[offsets.length - 1] ?? 0;
    if (!result.sawEnd) problems.push('the reader never saw the generation end');
    if (result.duplicates > 0) problems.push(`${result.duplicates} events were delivered twice`);
    if (result.holes > 0) problems.push(`${result.holes} offsets were skipped without a gap`);
    if (result.gapItems > 0) problems.push(`${result.gapItems} gaps reported (nothing should have been trimmed)`);
    if (events.length !== expectedEvents) problems.push(`the reader received ${events.length} events, expected ${expectedEvents}`);
    if (lastOffset !== endOffset) problems.push(`the reader's last offset is ${lastOffset}, the gen.end the producer was told about is at ${endOffset}`);

    const users = events.filter((e) => e.type === 'append' && e.kind === 'user');
    if (users.length !== 1) problems.push(`the user message arrived ${users.length} times`);
    const userMessage = String((users[0]?.data as { text?: unknown } | undefined)?.text ?? '');

    const chunks = events.filter((e) => e.type === 'chunk' && e.generationId === gen?.id);
    const seen = new Set<number>();
    chunks.forEach((chunk, i) => {
      const seq = chunk.seq ?? -1;
      if (seen.has(seq)) problems.push(`chunk seq ${seq} arrived twice`);
      seen.add(seq);
      if (seq !== i) return;
      const planned = plan[seq];
      if (planned === undefined || planned.kind !== chunk.kind || JSON.stringify(planned.data) !== JSON.stringify(chunk.data)) {
        problems.push(`chunk seq ${seq} arrived with different content`);
      }
    });
    if (seen.size !== plan.length || chunks.some((c, i) => c.seq !== i)) {
      problems.push(`chunks are not seq 0..${plan.length - 1} in order (got ${seen.size} distinct)`);
    }
    const assistantText = chunks
      .filter((c) => c.kind === 'text')
      .map((c) => String(c.data))
      .join('');
    if (assistantText !== ANSWER) problems.push('the reassembled assistant text differs from what was written');
    const end = events.find((e) => e.type === 'gen.end' && e.generationId === gen?.id);
    if (end?.status !== 'done') problems.push(`gen.end status is ${String(end?.status)}, expected done`);

    const reconnects = Math.max(0, proxy.passed - 1);
    if (result.cutAtOffset === undefined) problems.push('the reader was never cut');
    else if (reconnects < 1) problems.push('the reader never reconnected after the cut');

    return {
      ok: problems.length === 0,
      problems,
      session,
      userMessage,
      assistantText,
      expectedEvents,
      eventsReceived: events.length,
      duplicates: result.duplicates,
      gaps: result.gapItems + result.holes,
      reconnects,
      refusedAttempts: proxy.refused,
      gatewayResumes: Number(/^spool_resume_attempts_total (\S+)$/m.exec(await gateway.metrics.render())?.[1] ?? 0),
      contiguous,
      lastOffset,
      cutAtOffset: result.cutAtOffset,
      chunks: {
        text: chunks.filter((c) => c.kind === 'text').length,
        reasoning: chunks.filter((c) => c.kind === 'reasoning').length,
        debug: chunks.filter((c) => c.kind === 'debug').length,
      },
      endStatus: end?.status,
      elapsedMs: performance.now() - started,
    };
  } finally {
    await reader?.close();
    await producer?.close();
    await proxy?.close();
    await gateway?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line.length > 0 ? `${line} ${word}` : word;
  }
  if (line.length > 0) lines.push(line);
  return lines.join(`\n${indent}`);
}

/** Prints a report the way `npm run demo` shows it. */
export function formatDemoReport(report: DemoReport): string {
  const row = (label: string, value: string): string => `  ${label.padEnd(18)}${value}`;
  return [
    '',
    `  user      > ${wrap(report.userMessage, 76, '              ')}`,
    `  assistant > ${wrap(report.assistantText, 76, '              ')}`,
    '',
    row('events received', `${report.eventsReceived} (expected ${report.expectedEvents}: user message, gen.start, ${report.chunks.text} text + ${report.chunks.reasoning} reasoning + ${report.chunks.debug} debug chunks, gen.end)`),
    row('duplicates', String(report.duplicates)),
    row('gaps', String(report.gaps)),
    row('reconnects', `${report.reconnects} (${plural(report.refusedAttempts, 'attempt')} refused during the outage; the gateway counted ${plural(report.gatewayResumes, 'resume')} from an offset)`),
    row('offsets', `1..${report.lastOffset} ${report.contiguous ? 'contiguous' : 'NOT contiguous'}`),
    row('generation end', `${String(report.endStatus)} at offset ${report.lastOffset}`),
    row('elapsed', `${Math.round(report.elapsedMs)} ms`),
    '',
    report.ok ? 'OK: nothing lost, nothing duplicated.' : `FAILED:\n${report.problems.map((p) => `  - ${p}`).join('\n')}`,
  ].join('\n');
}

if (require.main === module) {
  runMain('demo', async () => {
    const report = await runDemo({ log: (line) => console.log(`- ${line}`) });
    console.log(formatDemoReport(report));
    return report.ok ? 0 : 1;
  });
}
