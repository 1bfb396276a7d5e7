/**
 * The gateway's log lines as an operator reads them: a real `spool serve` process at
 * SPOOL_LOG_LEVEL=debug whose stdout is parsed line by line. Every line, from start to shutdown,
 * is one JSON object (pino); refused frames and protocol errors are logged with their code and
 * ids (connection, session, generation, request, remote address); connection open and close
 * carry the remote address; lines about a traced frame carry its trace id.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RawClient } from '../gateway/test-helpers/raw-client';

jest.setTimeout(60_000);

const ROOT = path.resolve(__dirname, '..');

type Line = Record<string, unknown> & { readonly msg: string; readonly level: number };

/** A `spool serve` child whose stdout lines are kept parsed (and those that are not JSON, apart). */
class LoggedGateway {
  readonly lines: Line[] = [];
  readonly notJson: string[] = [];
  stderr = '';
  url = '';
  private pending = '';
  private readonly waiters: Array<() => void> = [];
  private readonly exited: Promise<number | null>;

  constructor(private readonly child: ChildProcess) {
    child.stdout?.on('data', (data: Buffer) => {
      this.pending += data.toString();
      let newline: number;
      while ((newline = this.pending.indexOf('\n')) >= 0) {
        const text = this.pending.slice(0, newline);
        this.pending = this.pending.slice(newline + 1);
        try {
          this.lines.push(JSON.parse(text) as Line);
        } catch {
          this.notJson.push(text);
        }
      }
      for (const wake of this.waiters.splice(0)) wake();
    });
    child.stderr?.on('data', (data: Buffer) => (this.stderr += data.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(data: string): Promise<LoggedGateway> {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SPOOL_') && !k.startsWith('OTEL_')));
    const child = spawn(process.execPath, [path.join(ROOT, 'chaos', 'run-ts.js'), path.join(ROOT, 'gateway', 'cli.ts'), 'serve', '--port', '0', '--data', data], {
      cwd: ROOT,
      env: { ...inherited, SPOOL_LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const gateway = new LoggedGateway(child);
    const listening = await gateway.line((l) => l.msg.startsWith('spool listening on'), 30_000);
    gateway.url = String(listening['url']);
    return gateway;
  }

  /** The first line matching `match`, waiting for it. */
  async line(match: (line: Line) => boolean, timeoutMs = 20_000): Promise<Line> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such log line within ${timeoutMs} ms; got:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** SIGTERM (graceful shutdown); resolves with the exit code. */
  stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

const traceparent = (traceId: string, spanId: string): string => `00-${traceId}-${spanId}-01`;
const HELLO_TRACE = 'a'.repeat(31) + '1';
const OPEN_TRACE = 'b'.repeat(31) + '2';
const TAKEOVER_TRACE = 'c'.repeat(31) + '3';

let gateway: LoggedGateway | undefined;
let data = '';
beforeEach(() => {
  data = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-logs-'));
});
afterEach(() => {
  gateway?.kill();
  gateway = undefined;
  fs.rmSync(data, { recursive: true, force: true });
});

it('at debug, refused frames are logged with their code and ids, connections with their remote address, traced frames with their trace id; every stdout line is JSON, shutdown included', async () => {
  gateway = await LoggedGateway.start(data);
  const client = await RawClient.connect(gateway.url, undefined, false);
  client.send({ type: 'hello', id: 1, protocol: 1, traceparent: traceparent(HELLO_TRACE, '1'.repeat(16)) });
  const welcome = await client.next((f) => f.type === 'welcome');
  const connectionId = String(welcome['connectionId']);
  const ours = (line: Line): boolean => line['connectionId'] === connectionId;

  // Open: one line, with the open's ids and its own trace (not the hello's).
  client.send({ type: 'open', id: 2, session: 'logs-s', generation: 'logs-g', traceparent: traceparent(OPEN_TRACE, '2'.repeat(16)) });
  await client.next((f) => f.id === 2 && f.type === 'opened');
  expect(await gateway.line((l) => ours(l) && l.msg === 'generation opened')).toMatchObject({
    level: 20,
    sessionId: 'logs-s',
    generationId: 'logs-g',
    requestId: 2,
    traceId: OPEN_TRACE,
    remoteAddress: '127.0.0.1',
  });

  // A frame the validator refuses: BAD_FRAME with the request id and the session it named.
  client.send({ type: 'subscribe', id: 3, session: 'logs-s', from: 'later' });
  expect(await client.next((f) => f.id === 3)).toMatchObject({ type: 'error', code: 'BAD_FRAME' });
  expect(await gateway.line((l) => ours(l) && l.msg === 'error sent' && l['requestId'] === 3)).toMatchObject({
    level: 20,
    code: 'BAD_FRAME',
    sessionId: 'logs-s',
    remoteAddress: '127.0.0.1',
    // It carries no traceparent of its own: the hello's trace is the connection's.
    traceId: HELLO_TRACE,
  });

  // A refusal the session's actor answers later: the open of a second generation while the first is active.
  client.send({ type: 'open', id: 4, session: 'logs-s', generation: 'logs-g2', traceparent: traceparent(TAKEOVER_TRACE, '3'.repeat(16)) });
  expect(await client.next((f) => f.id === 4)).toMatchObject({ type: 'error', code: 'GENERATION_ACTIVE' });
  expect(await gateway.line((l) => ours(l) && l.msg === 'error sent' && l['requestId'] === 4)).toMatchObject({
    code: 'GENERATION_ACTIVE',
    sessionId: 'logs-s',
    generationId: 'logs-g2',
    traceId: TAKEOVER_TRACE,
    remoteAddress: '127.0.0.1',
  });

  // A chunk on a token this connection never opened: named by the generation its token spells.
  client.send({ type: 'chunk', token: `v1/9/logs-s/logs-g9/${'t'.repeat(22)}`, seq: 0, data: 'x' });
  expect(await client.next((f) => f.type === 'error' && f['ref'] === 'logs-g9')).toMatchObject({ code: 'BAD_FRAME' });
  expect(await gateway.line((l) => ours(l) && l.msg === 'error sent' && l['generationId'] === 'logs-g9')).toMatchObject({ code: 'BAD_FRAME', sessionId: 'logs-s' });

  // Bytes that are no frame at all: logged with the connection and address, nothing more to name.
  client.sendRaw(Buffer.from([0xc1]));
  await client.next((f) => f.type === 'error' && f['code'] === 'BAD_FRAME' && f.id === undefined);
  await gateway.line((l) => ours(l) && l.msg === 'error sent' && l['code'] === 'BAD_FRAME' && l['requestId'] === undefined && l['generationId'] === undefined);

  client.close();
  await client.waitClosed();
  const opened = await gateway.line((l) => ours(l) && l.msg === 'connection opened');
  expect(opened).toMatchObject({ level: 20, remoteAddress: '127.0.0.1' });
  expect(await gateway.line((l) => ours(l) && l.msg === 'connection closed')).toMatchObject({ level: 20, remoteAddress: '127.0.0.1' });

  expect(await gateway.stop()).toBe(0);
  await gateway.line((l) => l.msg === 'spool gateway closed');
  expect(gateway.notJson).toEqual([]);
  // No line names an id under another field name than the documented ones.
  for (const line of gateway.lines) for (const old of ['session', 'generation', 'connection']) expect(line).not.toHaveProperty(old);
});
