/**
 * Test helper, not a test: private `redis-server` processes for the store tests (and for
 * chaos/ and perf/, which may import it). Never touches the shared server on 127.0.0.1:6379.
 *
 *   const server = await startRedis({ appendonly: true });   // free port, temp dir
 *   server.pause(); server.resume();                          // SIGSTOP / SIGCONT
 *   await server.restart();                                   // same port and dir: AOF survives
 *   const cluster = await startCluster(3);                    // 3 masters, all slots assigned
 *
 * Every process is registered at once: `stopAllRedis()` (call it in afterAll) kills what is
 * left, and a process 'exit' hook SIGKILLs anything still running, so a failing test leaves no
 * redis-server behind.
 */
import { spawn, execFile, type ChildProcess } from 'child_process';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';
import Redis from 'ioredis';

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 10_000;
const POLL_MS = 25;

export interface StartRedisOptions {
  /** `--appendonly yes` (with `appendfsync always`, so an acknowledged write survives SIGKILL). @default false */
  readonly appendonly?: boolean;
  /** Extra `redis-server` arguments, e.g. ['--maxmemory', '10mb']. */
  readonly args?: readonly string[];
}

/** A private redis-server process. */
export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** Its working directory (AOF, cluster config, log). Removed by `stop()`. */
  readonly dir: string;
  /** The process id of the running server, or null between a kill and a restart. */
  readonly pid: number | null;
  /** SIGTERM (after SIGCONT, in case it is paused), wait for exit, remove the directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit; the directory stays, so `restart()` finds the AOF. */
  kill(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets but answers nothing until `resume()`. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Stops the server if it runs (SIGTERM, so Redis flushes the AOF) and starts it again on the same port and dir. */
  restart(): Promise<void>;
}

export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  /** `host:port` of every master, as `openRedisStore({ cluster })` takes them. */
  readonly endpoints: readonly string[];
  /** The port of the master that serves `slot` now. */
  ownerOf(slot: number): Promise<number>;
  /**
   * Moves `slot` with its keys to the master on `toPort` (IMPORTING/MIGRATING, MIGRATE, SETSLOT
   * NODE on every master) and waits until every master agrees on the new owner.
   */
  moveSlot(slot: number, toPort: number): Promise<void>;
  stop(): Promise<void>;
}

/** Every server started by this process and not yet stopped. */
const running = new Set<ManagedServer>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL works on stopped (paused) processes too.
  process.once('exit', () => {
    for (const server of running) server.killNow();
  });
}

/** Stops every server this process started (afterAll). */
export async function stopAllRedis(): Promise<void> {
  await Promise.all([...running].map((server) => server.stop()));
}

/** A TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error('could not read the probe port'))));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One command on a short-lived connection; rejects on any error (no retries, no queue). */
export async function command(port: number, name: string, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis({ host: HOST, port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 1000, commandTimeout: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(name, ...args);
  } finally {
    client.disconnect();
  }
}

/** Polls `check` until it returns true; rejects with `what` (and the last error) at the deadline. */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      if (await check()) return;
      lastError = null;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const reason = lastError === null ? '' : `: ${String(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}`);
    }
    await delay(POLL_MS);
  }
}

class ManagedServer implements RedisServer {
  readonly host = HOST;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: readonly string[],
  ) {}

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Spawns the process and waits until it answers PING; rejects with the log tail if it exits. */
  async start(): Promise<void> {
    const child = spawn('redis-server', [...this.args], { cwd: this.dir, stdio: 'ignore' });
    this.child = child;
    running.add(this);
    installExitHook();
    let exitCode: number | null | undefined;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        exitCode = code;
        if (this.child === child) this.child = null;
        resolve();
      });
      child.once('error', () => resolve());
    });
    try {
      await waitUntil(`redis-server on port ${this.port} to answer PING`, async () => {
        if (exitCode !== undefined) throw new Error(`redis-server exited with ${String(exitCode)}: ${this.logTail()}`);
        return (await command(this.port, 'PING')) === 'PONG';
      });
    } catch (error) {
      this.killNow();
      throw error;
    }
  }

  killNow(): void {
    if (this.child !== null && this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  async kill(): Promise<void> {
    this.killNow();
    await this.exited;
  }

  pause(): void {
    this.signal('SIGSTOP');
  }

  resume(): void {
    this.signal('SIGCONT');
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('restart after stop: the directory is gone');
    await this.terminate();
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.terminate();
    running.delete(this);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  logTail(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'redis.log'), 'utf8').split('\n').slice(-15).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGCONT (a stopped process cannot handle SIGTERM), SIGTERM, SIGKILL if it lingers. */
  private async terminate(): Promise<void> {
    const child = this.child;
    if (child === null || child.exitCode !== null) return;
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.child === null) throw new Error(`redis-server on port ${this.port} is not running`);
    this.child.kill(signal);
  }
}

function baseArgs(port: number, dir: string, appendonly: boolean): string[] {
  return [
    '--port', String(port),
    '--bind', HOST,
    '--dir', dir,
    '--logfile', path.join(dir, 'redis.log'),
    '--save', '',
    '--appendonly', appendonly ? 'yes' : 'no',
    '--appendfsync', 'always',
    '--daemonize', 'no',
    '--protected-mode', 'no',
  ];
}

async function startWithRetry(makeArgs: (port: number, dir: string) => Promise<string[]>, prefix: string): Promise<ManagedServer> {
  let lastError: unknown = null;
  // The free port can be taken between the probe and the bind: try a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    const server = new ManagedServer(port, dir, await makeArgs(port, dir));
    try {
      await server.start();
      return server;
    } catch (error) {
      lastError = error;
      await server.stop();
    }
  }
  throw lastError;
}

/** Starts a private standalone redis-server on a free port in a temp dir. */
export function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  return startWithRetry(async (port, dir) => [...baseArgs(port, dir, options.appendonly ?? false), ...(options.args ?? [])], 'spool-redis-');
}

function execFileText(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * Starts `masters` cluster-enabled servers (no replicas), joins them with `redis-cli --cluster
 * create`, and waits until every node reports `cluster_state:ok` and knows every other node.
 * The cluster bus port is chosen free too (`--cluster-port`), rather than port + 10000, which may
 * fall outside the port range for an ephemeral port.
 */
export async function startCluster(masters = 3): Promise<RedisCluster> {
  const nodes: ManagedServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startWithRetry(
          async (port, dir) => [
            ...baseArgs(port, dir, false),
            '--cluster-enabled', 'yes',
            '--cluster-config-file', path.join(dir, 'nodes.conf'),
            '--cluster-port', String(await freePort()),
            '--cluster-node-timeout', '5000',
          ],
          'spool-redis-cluster-',
        ),
      );
    }
    const endpoints = nodes.map((node) => `${HOST}:${node.port}`);
    await execFileText('redis-cli', ['--cluster', 'create', ...endpoints, '--cluster-replicas', '0', '--cluster-yes']);
    await waitUntil('every cluster node to report cluster_state:ok', async () => {
      const infos = await Promise.all(nodes.map((node) => command(node.port, 'CLUSTER', 'INFO')));
      return infos.every((info) => {
        const text = String(info);
        return text.includes('cluster_state:ok') && text.includes(`cluster_known_nodes:${masters}`) && text.includes('cluster_slots_ok:16384');
      });
    });
    const ownerOf = async (slot: number, askPort = nodes[0]?.port ?? 0): Promise<number> => {
      const ranges = (await command(askPort, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (range === undefined) throw new Error(`no master serves slot ${slot}`);
      return range[2][1];
    };
    const moveSlot = async (slot: number, toPort: number): Promise<void> => {
      const fromPort = await ownerOf(slot);
      if (fromPort === toPort) return;
      const [fromId, toId] = (await Promise.all([command(fromPort, 'CLUSTER', 'MYID'), command(toPort, 'CLUSTER', 'MYID')])) as [string, string];
      await command(toPort, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId);
      await command(fromPort, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId);
      for (;;) {
        const keys = (await command(fromPort, 'CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
        if (keys.length === 0) break;
        await command(fromPort, 'MIGRATE', HOST, toPort, '', 0, 5000, 'KEYS', ...keys);
      }
      for (const port of [toPort, fromPort, ...nodes.map((node) => node.port)]) await command(port, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId);
      await waitUntil(`every master to see slot ${slot} on port ${toPort}`, async () => {
        const owners = await Promise.all(nodes.map((node) => ownerOf(slot, node.port)));
        return owners.every((owner) => owner === toPort);
      });
    };
    return { nodes, endpoints, ownerOf, moveSlot, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
