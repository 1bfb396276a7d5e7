/**
 * A spool gateway in its own OS process, for the pressure benchmark: the load generator (SDK
 * producers and readers, thousands of client sockets) must not share the gateway's event loop,
 * CPU time or heap, or every figure would measure both at once.
 *
 * chaos/gateway-process.ts does the same for the chaos suites, but perf/ may not import chaos/
 * (dependency rule), and it only runs from the TypeScript sources (it starts
 * `chaos/run-ts.js gateway/cli.ts` relative to its own directory, which under dist/ does not
 * exist). This one runs the compiled CLI when it is compiled itself and the sources through
 * chaos/run-ts.js under jest, listens on port 0 (the child prints its URL), and adds what a
 * benchmark needs: the child's RSS from /proc, its CPU time, its /metrics, and a forced GC
 * before a memory sample (gateway-main.ts).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

/** Resident memory of a process from /proc/<pid>/status, in bytes. */
export interface ProcMemory {
  /** VmRSS: everything resident (anonymous + file-backed, e.g. LMDB's memory map, + shared). */
  readonly rss: number;
  /** RssAnon: heap, stacks, native buffers; what the process itself allocated. */
  readonly rssAnon: number;
  /** RssFile: resident pages of mapped files (code, LMDB data file). */
  readonly rssFile: number;
}

/** Reads /proc/<pid>/status. Throws when the process is gone. */
export function procMemory(pid: number): ProcMemory {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    return match === null ? 0 : Number(match[1]) * 1024;
  };
  return { rss: kb('VmRSS'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
}

/** CPU seconds of a process, NaN when it cannot be read (no pid, process gone, not Linux). */
export function cpuSecondsOf(pid: number | null | undefined): number {
  if (pid === null || pid === undefined) return Number.NaN;
  try {
    return cpuSeconds(pid);
  } catch {
    return Number.NaN;
  }
}

let clockTicks: number | undefined;

/** User + system CPU seconds a process has used, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** How to start a perf/ entry point in a child process: compiled, or the sources through run-ts. */
export function entryArgs(name: string): string[] {
  if (__filename.endsWith('.ts')) {
    const root = path.resolve(__dirname, '..');
    return [path.join(root, 'chaos', 'run-ts.js'), path.join(root, 'perf', `${name}.ts`)];
  }
  return [path.join(__dirname, `${name}.js`)];
}

export interface ChildGatewayOptions {
  /** LMDB directory (the caller creates and removes it). */
  readonly data: string;
  /** `--transport`. @default 'ws' */
  readonly transport?: 'ws' | 'uws';
  /** `--port`: a restart reuses the port its clients reconnect to. @default 0 (a free port) */
  readonly port?: number;
  /** Extra environment (SPOOL_RETENTION_EVENTS, SPOOL_REDIS_URL, SPOOL_DURABILITY, …). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra `spool serve` arguments (`--config FILE` for options no variable sets). */
  readonly args?: readonly string[];
  /**
   * The child writes a V8 CPU profile (`.cpuprofile`) into this directory when it exits.
   * @default SPOOL_GATEWAY_CPU_PROF of this process (none when unset)
   */
  readonly cpuProfileDir?: string;
  /** @default 30000 */
  readonly startTimeoutMs?: number;
}

const LOG_LIMIT = 64 * 1024;

interface GcReply {
  readonly type: 'gc';
  readonly id: number;
  readonly collected: boolean;
  readonly memory: NodeJS.MemoryUsage;
}

export class ChildGateway {
  private output = '';
  private nextGcId = 1;
  private readonly gcWaiters = new Map<number, (reply: GcReply) => void>();
  private readonly exited: Promise<void>;
  private stopping: Promise<void> | undefined;
  url = '';
  port = 0;
  /** The transport the child reports it listens with (a failed uws load falls back to ws). */
  transport = '';

  private constructor(private readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.on('message', (message: unknown) => {
      const reply = message as GcReply;
      if (reply?.type !== 'gc') return;
      this.gcWaiters.get(reply.id)?.(reply);
      this.gcWaiters.delete(reply.id);
    });
  }

  /** Starts the child and resolves once it listens. */
  static async start(options: ChildGatewayOptions): Promise<ChildGateway> {
    // SPOOL_GATEWAY_CPU_PROF=DIR: the child writes a V8 CPU profile into DIR when it exits
    // (read it with perf/profile-top.ts), for any benchmark that runs a gateway child.
    const profileDir = options.cpuProfileDir ?? process.env['SPOOL_GATEWAY_CPU_PROF'];
    const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
    const args = ['--expose-gc', ...profile, ...entryArgs('gateway-main'), 'serve', '--port', String(options.port ?? 0), '--data', options.data, '--transport', options.transport ?? 'ws', ...(options.args ?? [])];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, SPOOL_LOG_LEVEL: 'info', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const gateway = new ChildGateway(child);
    const timeoutMs = options.startTimeoutMs ?? 30_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`gateway child did not listen within ${timeoutMs} ms:\n${gateway.log}`)), timeoutMs);
        // Two lines: the CLI's "spool listening on URL" and the gateway's info log line naming
        // the transport it listens with; pino may write the latter after the former.
        const onData = (data: Buffer): void => {
          gateway.append(data);
          const listening = /spool listening on (ws:\/\/[^:\s]+:(\d+)\/v1)/.exec(gateway.output);
          const transport = /"transport":"(\w+)"[^\n]*"msg":"spool gateway listening"/.exec(gateway.output);
          if (listening === null || transport === null) return;
          gateway.url = listening[1] as string;
          gateway.port = Number(listening[2]);
          gateway.transport = transport[1] as string;
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          child.stdout?.on('data', (more: Buffer) => gateway.append(more));
          resolve();
        };
        child.stdout?.on('data', onData);
        child.stderr?.on('data', (data: Buffer) => gateway.append(data));
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`gateway child exited (${String(code ?? signal)}) before listening:\n${gateway.log}`));
        });
      });
    } catch (error) {
      await gateway.stop();
      throw error;
    }
    return gateway;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** What the child printed (the last 64 KiB). */
  get log(): string {
    return this.output;
  }

  memory(): ProcMemory {
    return procMemory(this.pid);
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  /** GET /metrics (Prometheus text). */
  metrics(): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: this.port, path: '/metrics', timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${String(res.statusCode)}`))));
      });
      req.on('timeout', () => req.destroy(new Error('/metrics did not answer within 10 s')));
      req.on('error', reject);
    });
  }

  /** Runs a full GC in the child and returns its process.memoryUsage() right after. */
  gc(timeoutMs = 30_000): Promise<{ readonly collected: boolean; readonly memory: NodeJS.MemoryUsage }> {
    const id = this.nextGcId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.gcWaiters.delete(id);
        reject(new Error(`gateway child did not answer a gc request within ${timeoutMs} ms`));
      }, timeoutMs);
      this.gcWaiters.set(id, (reply) => {
        clearTimeout(timer);
        resolve({ collected: reply.collected, memory: reply.memory });
      });
      this.child.send({ type: 'gc', id });
    });
  }

  /** SIGKILL at once (a crash: nothing flushed, no close frames); resolves when the child is gone. */
  kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    return this.exited;
  }

  /** SIGTERM (graceful), SIGKILL if it is still there after `graceMs`. Idempotent. */
  stop(graceMs = 15_000): Promise<void> {
    this.stopping ??= (async () => {
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill('SIGTERM');
        const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
        await this.exited;
        clearTimeout(timer);
      }
    })();
    return this.stopping;
  }

  private append(data: Buffer): void {
    this.output += data.toString();
    if (this.output.length > LOG_LIMIT) this.output = this.output.slice(-LOG_LIMIT);
  }
}

/**
 * The highest VmRSS of process `pid` seen by sampling /proc/<pid>/status every `everyMs` from
 * now until `stop()`, which takes one last sample and returns the peak in bytes (0 when no
 * sample could be read). A sample of a process already gone is skipped.
 */
export function samplePeakRss(pid: number, everyMs = 100): { stop(): number } {
  let peak = 0;
  const sample = (): void => {
    try {
      peak = Math.max(peak, procMemory(pid).rss);
    } catch {
      // gone (or not Linux): nothing to add
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** One unlabelled sample (`name value`) from Prometheus text; NaN when absent. */
export function metricValue(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match === null ? Number.NaN : Number(match[1]);
}
