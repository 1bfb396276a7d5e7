/**
 * A forked helper of the pressure benchmark: holds open WebSocket connections that said hello
 * (and nothing else), so the benchmark can measure the gateway's memory per open connection.
 * Spreading 10,000 client sockets over a few of these keeps each under the file-descriptor
 * limit and out of the load generator's event loop. Driven over the IPC channel:
 *
 *   parent → { type: 'open', url, count, concurrency }
 *   worker → { type: 'opened', opened, failed, firstError? }   (every socket welcomed, or failed)
 *   parent → { type: 'close' }
 *   worker → { type: 'closed' }, then it exits
 *
 * The worker exits by itself when the parent goes away.
 */
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../protocol/codec';
import { PROTOCOL_VERSION, SUBPROTOCOL_MSGPACK, type Frame } from '../protocol/types';

export interface OpenRequest {
  readonly type: 'open';
  readonly url: string;
  readonly count: number;
  /** Handshakes in flight at once. */
  readonly concurrency: number;
}

export interface OpenedReply {
  readonly type: 'opened';
  readonly opened: number;
  readonly failed: number;
  readonly firstError?: string;
}

const HELLO = encodeFrame({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'spool-bench-conn' } as Frame, SUBPROTOCOL_MSGPACK);
const WELCOME_TIMEOUT_MS = 30_000;

const sockets: WebSocket[] = [];

/** One connection: open, hello, wait for welcome. Resolves with an error message or null. */
function connect(url: string): Promise<string | null> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, SUBPROTOCOL_MSGPACK, { perMessageDeflate: false });
    let settled = false;
    const settle = (error: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error !== null) ws.terminate();
      else sockets.push(ws);
      resolve(error);
    };
    const timer = setTimeout(() => settle(`no welcome within ${WELCOME_TIMEOUT_MS} ms`), WELCOME_TIMEOUT_MS);
    ws.on('open', () => ws.send(HELLO));
    ws.once('message', (data: Buffer) => {
      const frame = decodeFrame(new Uint8Array(data), SUBPROTOCOL_MSGPACK) as { type?: string; code?: string };
      settle(frame.type === 'welcome' ? null : `answered ${String(frame.type)} ${String(frame.code ?? '')}`);
    });
    ws.on('error', (error) => settle(error.message));
    ws.on('close', (code) => settle(`closed (${code}) before welcome`));
  });
}

async function open(request: OpenRequest): Promise<OpenedReply> {
  let next = 0;
  let opened = 0;
  let failed = 0;
  let firstError: string | undefined;
  const lane = async (): Promise<void> => {
    while (next < request.count) {
      next++;
      const error = await connect(request.url);
      if (error === null) opened++;
      else {
        failed++;
        firstError ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, request.concurrency) }, lane));
  return firstError === undefined ? { type: 'opened', opened, failed } : { type: 'opened', opened, failed, firstError };
}

function closeAll(): void {
  for (const ws of sockets.splice(0)) ws.terminate();
}

/** Set by the parent when it forks a worker; importing this file elsewhere (for its types) does nothing. */
export const WORKER_ENV = 'SPOOL_BENCH_CONN_WORKER';

if (process.send !== undefined && process.env[WORKER_ENV] === '1') {
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'open') {
      void open(message as OpenRequest).then((reply) => process.send?.(reply));
    } else if (message.type === 'close') {
      closeAll();
      process.send?.({ type: 'closed' }, () => process.exit(0));
    }
  });
  process.once('disconnect', () => {
    closeAll();
    process.exit(0);
  });
}
