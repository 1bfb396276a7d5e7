/**
 * A spool gateway in its own OS process (the real CLI), so tests can kill it with SIGKILL and
 * start it again on the same data dir and port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

/**
 * Children still running. The one intentional global of this file: a runner that dies (an
 * exception, SIGINT/SIGTERM turned into exit) must not leave gateway processes behind, and an
 * 'exit' hook can only reach them through module state.
 */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL'); // works on stopped (SIGSTOPped) processes too
  });
}

export interface GatewayProcessOptions {
  readonly port: number;
  readonly data: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Serve the admin listener (health, /metrics, the admin API) on this port (`SPOOL_ADMIN_PORT`). */
  readonly adminPort?: number;
  /** How long to wait for the "listening" line. @default 20000 */
  readonly startTimeoutMs?: number;
}

export class GatewayProcess {
  private child: ChildProcess | null = null;
  private output = '';

  constructor(private readonly options: GatewayProcessOptions) {}

  get url(): string {
    return `ws://127.0.0.1:${this.options.port}/v1`;
  }

  /** The admin listener's base URL, when it has one. */
  get adminUrl(): string | undefined {
    return this.options.adminPort === undefined ? undefined : `http://127.0.0.1:${this.options.adminPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the CLI and resolves once it printed that it listens. */
  async start(): Promise<void> {
    if (this.child) throw new Error('gateway process already running');
    const child = spawn(
      process.execPath,
      [path.join(ROOT, 'chaos', 'run-ts.js'), path.join(ROOT, 'gateway', 'cli.ts'), 'serve', '--port', String(this.options.port), '--data', this.options.data],
      {
        cwd: ROOT,
        env: { ...process.env, SPOOL_LOG_LEVEL: 'warn', ...this.options.env, ...(this.options.adminPort === undefined ? {} : { SPOOL_ADMIN_PORT: String(this.options.adminPort) }) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    track(child);
    const timeoutMs = this.options.startTimeoutMs ?? 20_000;
    this.output += `--- start ${new Date().toISOString()}\n`;
    let fresh: string | null = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`gateway did not start within ${timeoutMs} ms:\n${this.output}`));
      }, timeoutMs);
      const onData = (data: Buffer): void => {
        this.append(data);
        // Only this run's output counts: after a restart the old "listening" line is still in the log.
        if (fresh === null) return;
        fresh += data.toString();
        if (fresh.includes('spool listening on')) {
          fresh = null;
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (data: Buffer) => this.append(data));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`gateway exited (${code ?? signal}) before listening:\n${this.output}`));
      });
    });
  }

  /** SIGKILL, then start again on the same port, data dir and environment. */
  async restart(): Promise<void> {
    await this.kill9();
    await this.start();
  }

  /** SIGSTOP: the process keeps its sockets and answers nothing until `resume()`. */
  pause(): void {
    if (this.child?.pid !== undefined) process.kill(this.child.pid, 'SIGSTOP');
  }

  /** SIGCONT. */
  resume(): void {
    if (this.child?.pid !== undefined) process.kill(this.child.pid, 'SIGCONT');
  }

  /** True between a successful start() and the next kill9()/terminate(). */
  get running(): boolean {
    return this.child !== null;
  }

  /** The Prometheus text of GET /metrics (on the admin listener when there is one: it moves there). */
  async metrics(): Promise<string> {
    const response = await fetch(`${this.adminUrl ?? `http://127.0.0.1:${this.options.port}`}/metrics`, { signal: AbortSignal.timeout(2000) });
    return response.text();
  }

  /** SIGKILL: no shutdown, no flush. Resolves once the process is gone. */
  async kill9(): Promise<void> {
    await this.stop('SIGKILL');
  }

  /** SIGTERM: graceful shutdown. */
  async terminate(): Promise<void> {
    await this.stop('SIGTERM');
  }

  /** Everything the process printed so far (for failure messages). */
  get log(): string {
    return this.output;
  }

  /** Keeps the last 64 KiB of output: a long soak must not grow the test process without bound. */
  private append(data: Buffer): void {
    this.output += data.toString();
    if (this.output.length > 128 * 1024) this.output = this.output.slice(-64 * 1024);
  }

  private async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
      // A stopped process cannot act on SIGTERM; wake it (SIGKILL works on stopped ones anyway).
      if (signal !== 'SIGKILL') child.kill('SIGCONT');
    });
  }
}
