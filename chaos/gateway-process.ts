/**
 * A spool gateway in its own OS process (the real CLI), so tests can kill it with SIGKILL and
 * start it again on the same data dir and port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

export interface GatewayProcessOptions {
  readonly port: number;
  readonly data: string;
  readonly env?: Readonly<Record<string, string>>;
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

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the CLI and resolves once it printed that it listens. */
  async start(): Promise<void> {
    if (this.child) throw new Error('gateway process already running');
    const child = spawn(
      process.execPath,
      [path.join(ROOT, 'chaos', 'run-ts.js'), path.join(ROOT, 'gateway', 'cli.ts'), 'serve', '--port', String(this.options.port), '--data', this.options.data],
      { cwd: ROOT, env: { ...process.env, SPOOL_LOG_LEVEL: 'warn', ...this.options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    const timeoutMs = this.options.startTimeoutMs ?? 20_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway did not start within ${timeoutMs} ms:\n${this.output}`)), timeoutMs);
      const onData = (data: Buffer): void => {
        this.output += data.toString();
        if (this.output.includes('spool listening on')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (data: Buffer) => (this.output += data.toString()));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`gateway exited (${code ?? signal}) before listening:\n${this.output}`));
      });
    });
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

  private async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }
}
