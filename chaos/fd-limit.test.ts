/**
 * At the file descriptor limit: a gateway process under `ulimit -n 200` is sent idle TCP
 * connections until it can take no more. uWebSockets.js used to retry its failing accept at 100 %
 * CPU from then on; now the transport stops listening (new connects are refused at once, which is
 * what this test watches for) and listens again once descriptors are free. The ws transport's
 * node:http drops connections past its socket cap instead. Either way /healthz answers again
 * once the idle connections are gone.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';

const ROOT = path.resolve(__dirname, '..');
const FD_LIMIT = 200;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

async function startLimited(transport: string, port: number): Promise<ChildProcess> {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-fd-'));
  const command = `ulimit -n ${FD_LIMIT} && exec "${process.execPath}" chaos/run-ts.js gateway/cli.ts serve --transport ${transport} --port ${port} --data "${data}"`;
  const child = spawn('sh', ['-c', command], { cwd: ROOT, env: { ...process.env, SPOOL_LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(async () => {
    if (child.exitCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }
    fs.rmSync(data, { recursive: true, force: true });
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${output}`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('spool listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}):\n${output}`)));
  });
  return child;
}

/** Connects; resolves with the socket, or with the error code (ECONNREFUSED, or TIMEOUT after 2 s unaccepted). */
function connect(port: number): Promise<net.Socket | string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('TIMEOUT');
    }, 2_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? 'ERROR');
    });
  });
}

async function healthz(port: number): Promise<number | string> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) });
    return response.status;
  } catch (error) {
    return String((error as { cause?: { code?: string } }).cause?.code ?? error);
  }
}

/** Retries `probe` every 100 ms until it returns true, for at most `ms`. */
async function eventually(probe: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

it('uws out of file descriptors stops listening (connects refused) instead of spinning, and listens again once they are free', async () => {
  const port = await freePort();
  await startLimited('uws', port);
  const held: net.Socket[] = [];
  cleanups.push(() => held.forEach((s) => s.destroy()));
  let refused = false;
  let unanswered = 0;
  // Past the limit the kernel still completes connects into the listen backlog until the
  // gateway stops listening: keep connecting until a connect is refused (a listener that stays
  // open while it accepts nothing lets the backlog fill, and connects then go unanswered).
  for (let i = 0; i < 20 * FD_LIMIT && !refused && unanswered < 3; i++) {
    const result = await connect(port);
    if (typeof result === 'string') {
      refused = result === 'ECONNREFUSED';
      if (result === 'TIMEOUT') unanswered++;
    } else {
      held.push(result.on('error', () => {}));
    }
  }
  expect(refused).toBe(true);
  for (const socket of held.splice(0)) socket.destroy();
  await eventually(async () => (await healthz(port)) === 200, 30_000, '/healthz after the idle connections left');
}, 120_000);

it('ws out of file descriptors keeps its listener and answers /healthz again once the idle connections are cut', async () => {
  const port = await freePort();
  await startLimited('ws', port);
  const held: net.Socket[] = [];
  cleanups.push(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < 2 * FD_LIMIT; i++) {
    const result = await connect(port);
    if (typeof result !== 'string') held.push(result.on('error', () => {}));
  }
  // Past maxConnections + reservedSockets node:http closes what it accepts; the rest are cut by
  // the request deadline (httpHeadersTimeoutMs, 10 s).
  await eventually(async () => (await healthz(port)) === 200, 30_000, '/healthz while idle connections are held');
}, 120_000);
