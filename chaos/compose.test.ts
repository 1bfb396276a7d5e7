/**
 * docker-compose.yml's topology without Docker (this machine has no daemon): the two gateway
 * services' command and environment, read from the compose file, run as local processes of the
 * real CLI against a private redis-server started with the compose file's redis arguments, and
 * an OTLP/HTTP receiver standing in for the collector. Only what names another container is
 * rewritten (redis:6379, otel-collector:4318, the port to a free one, 0.0.0.0 to loopback).
 * Both gateways must serve one session: written through one, read live through the other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parse } from 'yaml';
import { RawClient, type AnyFrame } from '../gateway/test-helpers/raw-client';
import { startRedis, stopAllRedis } from '../store/test-helpers/redis-server';
import { freePort } from './fault-proxy';

jest.setTimeout(60_000);

const ROOT = path.resolve(__dirname, '..');

interface ComposeService {
  readonly command?: readonly string[];
  readonly environment?: Readonly<Record<string, string>>;
  readonly ports?: readonly string[];
}

function readCompose(): Record<string, ComposeService> {
  const text = fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
  return (parse(text, { merge: true }) as { services: Record<string, ComposeService> }).services;
}

/** A gateway service of the compose file as a local process (the CLI from source, as the image runs it compiled). */
class ServiceProcess {
  private output = '';
  private child: ChildProcess | undefined;

  constructor(
    readonly name: string,
    private readonly command: readonly string[],
    private readonly env: Readonly<Record<string, string>>,
  ) {}

  get port(): number {
    return Number(this.env['SPOOL_PORT']);
  }

  async start(timeoutMs = 30_000): Promise<void> {
    // The machine's own SPOOL_* / OTEL_* must not leak in: the service's environment is the compose file's.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SPOOL_') && !k.startsWith('OTEL_')));
    const child = spawn(process.execPath, [path.join(ROOT, 'chaos', 'run-ts.js'), path.join(ROOT, 'gateway', 'cli.ts'), ...this.command], {
      cwd: ROOT,
      env: { ...inherited, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} did not listen within ${timeoutMs} ms:\n${this.output}`)), timeoutMs);
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
        reject(new Error(`${this.name} exited (${String(code ?? signal)}) before listening:\n${this.output}`));
      });
    });
  }

  /** SIGTERM (graceful: flushes its OTLP metrics) and wait for the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
      child.kill('SIGTERM');
    });
  }

  get log(): string {
    return this.output;
  }
}

/** Stands in for the collector: counts OTLP/HTTP requests and keeps their bodies (protobuf, read as bytes). */
async function otlpSink(): Promise<{ port: number; requests: Array<{ path: string; type: string; body: Buffer }>; close(): Promise<void> }> {
  const requests: Array<{ path: string; type: string; body: Buffer }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', type: String(req.headers['content-type']), body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { port: (server.address() as { port: number }).port, requests, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
afterAll(() => stopAllRedis());

it('runs the compose file’s two gateways on one Redis: a session written through one is read live through the other', async () => {
  const services = readCompose();
  const redisCommand = services['redis']?.command ?? [];
  expect(redisCommand).toEqual(expect.arrayContaining(['--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction']));
  const redis = await startRedis({ args: redisCommand.slice(1) });
  cleanups.push(() => redis.stop());
  const collector = await otlpSink();
  cleanups.push(() => collector.close());

  const gateways: ServiceProcess[] = [];
  for (const name of ['gateway-1', 'gateway-2']) {
    const service = services[name];
    expect(service?.command).toEqual(['serve']);
    const env: Record<string, string> = { ...(service?.environment ?? {}) };
    expect(env['SPOOL_REDIS_URL']).toBe('redis://redis:6379');
    env['SPOOL_REDIS_URL'] = redis.url;
    env['SPOOL_HOST'] = '127.0.0.1';
    env['SPOOL_PORT'] = String(await freePort());
    env['SPOOL_LOG_LEVEL'] = 'warn';
    expect(env['OTEL_EXPORTER_OTLP_ENDPOINT']).toBe('http://otel-collector:4318');
    env['OTEL_EXPORTER_OTLP_ENDPOINT'] = `http://127.0.0.1:${collector.port}`;
    const gateway = new ServiceProcess(name, service?.command ?? [], env);
    cleanups.push(() => gateway.stop());
    gateways.push(gateway);
  }
  await Promise.all(gateways.map((g) => g.start()));
  const [one, two] = gateways as [ServiceProcess, ServiceProcess];

  for (const gateway of gateways) {
    // What the image's HEALTHCHECK and a load balancer ask.
    expect((await fetch(`http://127.0.0.1:${gateway.port}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${gateway.port}/readyz`)).status).toBe(200);
  }

  // A reader on gateway-2, live before anything is written.
  const reader = await RawClient.connect(`ws://127.0.0.1:${two.port}/v1`);
  cleanups.push(() => reader.close());
  reader.send({ type: 'subscribe', id: 1, session: 'compose-s', from: 0 });
  await reader.next((f) => f.type === 'live' && f['session'] === 'compose-s');

  // A producer on gateway-1.
  const producer = await RawClient.connect(`ws://127.0.0.1:${one.port}/v1`);
  cleanups.push(() => producer.close());
  const opened = await producer.open('compose-s', 'g');
  expect(opened).toMatchObject({ type: 'opened' });
  producer.send({ type: 'chunks', token: opened['token'], seq: 0, items: [{ data: 'across' }, { data: 'two' }, { data: 'gateways' }] });
  await producer.next((f) => f.type === 'ack' && f['seq'] === 2);
  producer.send({ type: 'finish', id: 2, token: opened['token'], seq: 3 });
  expect(await producer.next((f) => f.id === 2)).toMatchObject({ type: 'finished', status: 'done' });

  const delivered: AnyFrame[] = [];
  while (!delivered.some((e) => e.type === 'gen.end')) {
    const frame = await reader.next((f) => f.type === 'events' && f['session'] === 'compose-s');
    delivered.push(...(frame['events'] as AnyFrame[]));
  }
  expect(delivered.map((e) => [e['offset'], e.type, e['data']])).toEqual([
    [1, 'gen.start', undefined],
    [2, 'chunk', 'across'],
    [3, 'chunk', 'two'],
    [4, 'chunk', 'gateways'],
    [5, 'gen.end', undefined],
  ]);

  // A graceful stop flushes each gateway's metrics to the collector, over OTLP http/protobuf as configured.
  expect(await one.stop()).toBe(0);
  expect(await two.stop()).toBe(0);
  const metrics = collector.requests.filter((r) => r.path === '/v1/metrics');
  expect(metrics.every((r) => r.type === 'application/x-protobuf')).toBe(true);
  for (const instance of ['gateway-1', 'gateway-2']) {
    expect(metrics.some((r) => r.body.includes(instance) && r.body.includes('spool_generations_ended_total'))).toBe(true);
  }
});
