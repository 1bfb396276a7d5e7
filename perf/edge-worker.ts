/**
 * A forked helper of the edge benchmark (bench-edge.ts): holds WebSocket connections that never
 * say hello (what a stranger opens for free), from a range of local loopback addresses, and
 * reports what became of them. Driven over the IPC channel:
 *
 *   parent → { type: 'open', url, count, concurrency, addresses: ['127.0.1.1', …] }
 *   worker → { type: 'opened', opened, refused: {status/code: n}, failed, closed: {closeCode: n} }
 *   parent → { type: 'report' }  worker → { type: 'report', … } (closes counted since)
 *   parent → { type: 'close' }   worker → { type: 'closed' }, then it exits
 *
 * The worker exits by itself when the parent goes away.
 */
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';

export interface IdleOpenRequest {
  readonly type: 'open';
  readonly url: string;
  readonly count: number;
  readonly concurrency: number;
  /** Local addresses to connect from, in turn (127.0.0.0/8 is all loopback on Linux). */
  readonly addresses: readonly string[];
}

export interface IdleReport {
  readonly type: 'opened' | 'report';
  /** Upgrades that became WebSockets. */
  readonly opened: number;
  /** Upgrades refused with an HTTP answer, by `status code` (the JSON body's code). */
  readonly refused: Readonly<Record<string, number>>;
  /** Attempts that failed otherwise (reset, timeout). */
  readonly failed: number;
  /** WebSockets the gateway closed, by close code (4016: evicted to make room). */
  readonly closed: Readonly<Record<string, number>>;
  readonly open: number;
}

const sockets = new Set<WebSocket>();
const refused: Record<string, number> = {};
const closed: Record<string, number> = {};
let opened = 0;
let failed = 0;

function attempt(url: string, localAddress: string): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, SUBPROTOCOL_MSGPACK, { perMessageDeflate: false, localAddress, handshakeTimeout: 30_000 });
    let settled = false;
    const settle = (): void => {
      if (!settled) {
        settled = true;
        resolve();
      }
    };
    ws.on('open', () => {
      opened++;
      sockets.add(ws);
      settle();
    });
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        let code = '';
        try {
          code = (JSON.parse(body) as { code?: string }).code ?? '';
        } catch {
          // not JSON
        }
        const key = `${res.statusCode} ${code}`.trim();
        refused[key] = (refused[key] ?? 0) + 1;
        settle();
      });
    });
    ws.on('error', () => {
      if (!settled) failed++;
      settle();
    });
    ws.on('close', (code) => {
      if (sockets.delete(ws)) closed[code] = (closed[code] ?? 0) + 1;
      settle();
    });
  });
}

function report(type: IdleReport['type']): IdleReport {
  return { type, opened, refused: { ...refused }, failed, closed: { ...closed }, open: sockets.size };
}

async function open(request: IdleOpenRequest): Promise<void> {
  let next = 0;
  const work = async (): Promise<void> => {
    while (next < request.count) {
      const address = request.addresses[next % request.addresses.length] as string;
      next++;
      await attempt(request.url, address);
    }
  };
  await Promise.all(Array.from({ length: request.concurrency }, work));
  process.send?.(report('opened'));
}

/** Set in the worker's environment: the module only acts as a worker when forked as one. */
export const EDGE_WORKER_ENV = 'SPOOL_BENCH_EDGE_WORKER';

if (process.send !== undefined && process.env[EDGE_WORKER_ENV] === '1') {
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'open') void open(message as IdleOpenRequest);
    else if (message.type === 'report') process.send?.(report('report'));
    else if (message.type === 'close') {
      for (const ws of sockets) ws.terminate();
      process.send?.({ type: 'closed' }, () => process.exit(0));
    }
  });
  process.once('disconnect', () => process.exit(0));
}
