/**
 * The SDK installs alone (issue 13, part 7). The spool-client package (packages/client) is
 * built from client/ and protocol/, packed with `npm pack` next to the server package, and
 * installed into an empty project outside this repository with nothing but its tarball (and
 * `ws`, the optional peer Node 20 needs). There a TypeScript consumer typechecks under
 * moduleResolution node16 (ESM and CommonJS) and bundler, runs on Node against a real gateway
 * process, and a page bundled from the installed package by esbuild runs in headless Chromium
 * (Debian's /usr/bin/chromium, driven by playwright-core) while that gateway is killed with
 * SIGKILL and started again mid-stream: producer and reader resume exactly once.
 *
 * Printed (never asserted as speed): the client-only node_modules size and install time, and the
 * browser bundle's size minified and gzipped. Asserted: the install brings msgpackr's tree only,
 * stays under 5 MB and compiles nothing; the server tarball has no tests, chaos or perf.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { ReadItem } from '../protocol/types';
import { freePort } from './fault-proxy';
import { GatewayProcess } from './gateway-process';
import { checkSessionHistory } from './history';
import { readUntilEnded } from './reader';

const ROOT = path.resolve(__dirname, '..');
const PACKAGE = path.join(ROOT, 'packages', 'client');
const FIXTURES = path.join(PACKAGE, 'test');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const MB = 1024 * 1024;

interface Ran {
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs a command to completion; a failure carries its output. */
function run(file: string, args: readonly string[], cwd: string, timeoutMs = 120_000): Promise<Ran> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, timeout: timeoutMs, maxBuffer: 64 * MB, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${file} ${args.join(' ')} (in ${cwd}) failed: ${error.message}\n${stdout.slice(-4000)}\n${stderr.slice(-4000)}`));
      else resolve({ stdout, stderr, ms: performance.now() - started });
    });
  });
}

interface Packed {
  readonly filename: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly string[];
}

/** `npm pack --json` into `into`. Scripts are not run: the client is built just before, the server by `npm ci`/`npm run build`. */
async function pack(dir: string, into: string): Promise<Packed> {
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', into], dir);
  const [result] = JSON.parse(stdout) as Array<{ filename: string; size: number; unpackedSize: number; files: Array<{ path: string }> }>;
  if (result === undefined) throw new Error(`npm pack in ${dir} reported nothing: ${stdout}`);
  return { filename: path.join(into, result.filename), size: result.size, unpackedSize: result.unpackedSize, files: result.files.map((f) => f.path) };
}

/** Bytes of every file under `dir` (apparent size) and on disk (allocated blocks), symlinks not followed. */
function treeSize(dir: string): { bytes: number; disk: number } {
  let bytes = 0;
  let disk = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const stat = fs.lstatSync(path.join(entry.parentPath, entry.name));
    bytes += stat.size;
    disk += stat.blocks * 512;
  }
  return { bytes, disk };
}

/** Directories a native compile (node-gyp) would have left under `dir`. */
function nativeBuildDirs(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isDirectory() && (entry.name === 'Release' || entry.name === 'Debug') && path.basename(entry.parentPath) === 'build')
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/** Package paths (`node_modules/x`, `node_modules/@s/y`) npm installed, from its hidden lockfile. */
function installedPackages(app: string): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
  return Object.keys(lock.packages)
    .filter((p) => p.startsWith('node_modules/'))
    .map((p) => p.slice('node_modules/'.length));
}

const rootManifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string } | string>;
  dependencies: Record<string, string>;
};
const clientManifest = JSON.parse(fs.readFileSync(path.join(PACKAGE, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  exports: unknown;
};

/** Every file path named in a package.json `exports` value (conditions nested at any depth). */
function exportTargets(value: unknown): string[] {
  if (typeof value === 'string') return [path.posix.normalize(value)];
  if (value === null || typeof value !== 'object') return [];
  return Object.values(value).flatMap(exportTargets);
}

/** What packages/client/test/page.ts puts on `window` (typed here: the page imports the installed package). */
interface PageWindow {
  spoolRun(run: { url: string; session: string; half: number; atKill: number; total: number }): Promise<{
    items: unknown[];
    finished: { offset: number; status: string };
    reconnects: string[];
    ackedAtKill: number;
    userAgent: string;
    nativeWebSocket: boolean;
  }>;
  spoolContinue(): void;
}

const cleanups: Array<() => Promise<void> | void> = [];
let tmp = '';
let app = '';
let clientTarball: Packed;
let serverTarball: Packed;
let install: { ms: number; bytes: number; disk: number; packages: string[]; closure: Set<string>; withWs: number };
let gateway: GatewayProcess;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-sdk-package-'));
  cleanups.push(() => fs.rmSync(tmp, { recursive: true, force: true }));

  await run(process.execPath, [path.join(PACKAGE, 'build.mjs')], PACKAGE);
  [clientTarball, serverTarball] = await Promise.all([pack(PACKAGE, tmp), pack(ROOT, tmp)]);

  // A project with nothing in it, outside this repository so nothing resolves from our node_modules.
  app = path.join(tmp, 'app');
  fs.mkdirSync(path.join(app, 'src'), { recursive: true });
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'sdk-consumer', version: '1.0.0', private: true }, null, 2));
  const npmInstall = ['install', '--no-audit', '--no-fund', '--prefer-offline'];
  const installed = await run('npm', [...npmInstall, clientTarball.filename], app);
  const size = treeSize(path.join(app, 'node_modules'));
  const packages = installedPackages(app);
  const closure = dependencyClosure(app, 'spool-client');
  await run('npm', [...npmInstall, `ws@${rootManifest.dependencies['ws'] ?? 'latest'}`], app);
  install = { ms: installed.ms, ...size, packages, closure, withWs: treeSize(path.join(app, 'node_modules')).bytes };

  // The consumer, as ESM and CommonJS under node16 (emitted to out/), and under bundler with the page.
  fs.copyFileSync(path.join(FIXTURES, 'consumer.mts'), path.join(app, 'src', 'consumer.mts'));
  fs.copyFileSync(path.join(FIXTURES, 'consumer.mts'), path.join(app, 'src', 'consumer.cts'));
  fs.copyFileSync(path.join(FIXTURES, 'page.ts'), path.join(app, 'src', 'page.ts'));
  // The declarations name a timer type, which a program gets from the DOM lib or @types/node;
  // the DOM lib keeps this project free of anything but the package.
  const strict = { target: 'es2022', lib: ['es2022', 'dom'], types: [], strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, skipLibCheck: false };
  fs.writeFileSync(
    path.join(app, 'tsconfig.node16.json'),
    JSON.stringify({ compilerOptions: { ...strict, module: 'node16', moduleResolution: 'node16', outDir: 'out' }, files: ['src/consumer.mts', 'src/consumer.cts'] }),
  );
  fs.writeFileSync(
    path.join(app, 'tsconfig.bundler.json'),
    JSON.stringify({ compilerOptions: { ...strict, module: 'esnext', moduleResolution: 'bundler', noEmit: true }, files: ['src/consumer.mts', 'src/page.ts'] }),
  );

  gateway = new GatewayProcess({ port: await freePort(), data: path.join(tmp, 'data'), startTimeoutMs: 60_000 });
  cleanups.push(() => gateway.kill9());
  await gateway.start();
}, 300_000);

afterAll(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('spool-client, the SDK as its own package', () => {
  it('its tarball holds the ESM, CommonJS and browser builds, the declarations and the README, and every exports target', () => {
    const allowed = /^(package\.json|README\.md|LICENSE|dist\/(index\.mjs|index\.cjs|node\.mjs|index\.d\.mts|types\/(client|protocol)\/[\w-]+\.d\.ts))$/;
    expect(clientTarball.files.filter((file) => !allowed.test(file))).toEqual([]);
    for (const target of exportTargets(clientManifest.exports)) expect(clientTarball.files).toContain(target);
    // Only what the SDK needs: msgpackr (the range the server uses: one codec), ws an optional peer.
    expect(clientManifest.dependencies).toEqual({ msgpackr: rootManifest.dependencies['msgpackr'] });
    expect(Object.keys(clientManifest.peerDependencies)).toEqual(['ws']);
    expect(clientManifest.peerDependenciesMeta['ws']?.optional).toBe(true);
  });

  it('installs alone into an empty project: msgpackr and its optional accelerator only, under 5 MB, nothing compiled', () => {
    console.log(
      `spool-client alone: node_modules ${(install.bytes / MB).toFixed(2)} MB (${(install.disk / MB).toFixed(2)} MB on disk), ` +
        `${install.packages.length} packages [${install.packages.join(', ')}], installed in ${(install.ms / 1000).toFixed(1)} s; ` +
        `with ws ${(install.withWs / MB).toFixed(2)} MB. Tarball ${(clientTarball.size / 1024).toFixed(0)} KiB ` +
        `(${(clientTarball.unpackedSize / 1024).toFixed(0)} KiB unpacked); server tarball ${(serverTarball.size / 1024).toFixed(0)} KiB, ${serverTarball.files.length} files`,
    );
    // Nothing but spool-client's own dependency tree (msgpackr, and msgpackr's optional
    // prebuilt accelerator) and none of the server's dependencies.
    expect(install.packages.map((p) => packageName(app, p)).filter((name) => !install.closure.has(name))).toEqual([]);
    for (const server of Object.keys(rootManifest.dependencies).filter((d) => d !== 'msgpackr')) expect(install.packages).not.toContain(server);
    expect(install.bytes).toBeLessThan(5 * MB);
    expect(nativeBuildDirs(path.join(app, 'node_modules'))).toEqual([]);
  });

  it('the server tarball carries the runtime only: no tests, chaos, perf or sources', () => {
    const offending = serverTarball.files.filter((file) => /(^|\/)(chaos|perf|test-helpers|node_modules)\/|\.(test|conformance)\.|(?<!\.d)\.ts$/.test(file));
    expect(offending).toEqual([]);
    const outside = serverTarball.files.filter((file) => !/^(package\.json|README\.md|LICENSE|dist\/(protocol|store|gateway|client)\/.+|protocol\/[A-Z]+\.md)$/.test(file));
    expect(outside).toEqual([]);
    // What `spool/client`, `spool/gateway`, … and the `spool` bin point at is in it (a stale or
    // missing build fails here: run `npm run build`).
    const targets = [...exportTargets(rootManifest.exports).filter((t) => t !== 'package.json'), ...Object.values(rootManifest.bin).map((b) => path.posix.normalize(b))];
    for (const target of targets) expect(serverTarball.files).toContain(target);
    expect(serverTarball.files).toContain('protocol/PROTOCOL.md');
  });

  it("`import { SpoolClient } from 'spool/client'` still works for the full package", async () => {
    // Package self-reference resolves `spool/…` through this package's own exports, as an installed copy would.
    const { stdout } = await run(process.execPath, ['-e', "const { SpoolClient, SpoolError } = require('spool/client'); console.log(typeof SpoolClient, typeof SpoolError, require.resolve('spool/client'))"], ROOT);
    expect(stdout.trim()).toBe(`function function ${path.join(ROOT, 'dist', 'client', 'index.js')}`);
  });

  it('a TypeScript consumer typechecks against the installed package under moduleResolution node16 (ESM and CommonJS) and bundler', async () => {
    await run(process.execPath, [TSC, '-p', 'tsconfig.node16.json'], app);
    await run(process.execPath, [TSC, '-p', 'tsconfig.bundler.json'], app);
    expect(fs.existsSync(path.join(app, 'out', 'consumer.mjs'))).toBe(true);
    expect(fs.existsSync(path.join(app, 'out', 'consumer.cjs'))).toBe(true);
  });

  it.each(['consumer.mjs', 'consumer.cjs'])('the compiled consumer (%s) streams and reads a generation through a gateway on Node, finding ws by itself', async (file) => {
    const session = `node-${path.extname(file).slice(1)}`;
    const { stdout } = await run(process.execPath, [path.join('out', file), gateway.url, session], app, 60_000);
    const result = JSON.parse(stdout) as { finished: { status: string }; items: ReadItem[]; refused: string };
    expect(result.finished.status).toBe('done');
    expect(checkSessionHistory(result.items, { generations: 1, chunksPerGeneration: 100 }).violations).toEqual([]);
    expect(result.refused).toBe('BAD_FRAME');
  });

  it('in headless Chromium, a bundled page streams and follows a session through gateway kill -9 and restart, every chunk exactly once', async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} not found: the SDK's browser test runs in Debian's Chromium. Install it with: apt-get install -y chromium`);
    }

    // The SDK alone, as an app's bundler sees it (browser conditions), and the page that uses it.
    const sdk = await esbuild.build({ stdin: { contents: "export * from 'spool-client';", resolveDir: app }, bundle: true, minify: true, platform: 'browser', format: 'esm', target: 'es2022', write: false, metafile: true, logLevel: 'silent' });
    const sdkBytes = sdk.outputFiles[0]?.contents ?? new Uint8Array();
    const sdkInputs = Object.keys(sdk.metafile.inputs);
    const bundle = await esbuild.build({ entryPoints: [path.join(app, 'src', 'page.ts')], absWorkingDir: app, bundle: true, minify: true, platform: 'browser', format: 'iife', target: 'es2022', write: false, logLevel: 'silent' });
    const pageScript = bundle.outputFiles[0]?.contents ?? new Uint8Array();
    console.log(
      `spool-client browser bundle (esbuild, minified): ${(sdkBytes.length / 1024).toFixed(1)} KiB, ${(zlib.gzipSync(sdkBytes, { level: 9 }).length / 1024).toFixed(1)} KiB gzipped ` +
        `(with msgpackr; inputs: ${[...new Set(sdkInputs.map((i) => /node_modules\/((@[^/]+\/)?[^/]+)/.exec(i)?.[1] ?? i))].join(', ')}); test page ${(pageScript.length / 1024).toFixed(1)} KiB`,
    );
    expect(sdkInputs.some((input) => input.includes('node_modules/spool-client/dist/index.mjs'))).toBe(true);
    expect(sdkInputs.filter((input) => /node_modules\/ws\//.test(input))).toEqual([]);

    const server = http.createServer((req, res) => {
      if (req.url === '/page.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(pageScript);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>spool-client</title><script src="/page.js"></script>');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-chromium-'));
    cleanups.push(() => fs.rmSync(profile, { recursive: true, force: true }));
    const context: BrowserContext = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
    cleanups.push(() => context.close());
    const page: Page = context.pages()[0] ?? (await context.newPage());
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('console', (message) => {
      // Chromium logs each refused WebSocket while the gateway is down: expected, not an error of the page.
      if (message.type() === 'error' && !/^WebSocket connection to .* failed/.test(message.text())) pageErrors.push(message.text());
    });

    // The page reports its phases through a binding; each phase is awaited with a timeout.
    const reported = new Map<string, { acked: number; received: number }>();
    const waiters = new Map<string, () => void>();
    await page.exposeFunction('spoolProgress', (progress: { phase: string; acked: number; received: number }) => {
      reported.set(progress.phase, progress);
      waiters.get(progress.phase)?.();
    });
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);

    const session = 'browser';
    const shape = { url: gateway.url, session, half: 100, atKill: 150, total: 300 };
    const running = page.evaluate((run) => (window as unknown as PageWindow).spoolRun(run), shape);
    running.catch(() => undefined); // observed below; a failure also ends the phase waits
    const phase = (name: string, timeoutMs = 60_000): Promise<void> =>
      Promise.race([
        new Promise<void>((resolve, reject) => {
          if (reported.has(name)) return resolve();
          const timer = setTimeout(() => reject(new Error(`the page did not reach '${name}' within ${timeoutMs} ms; page errors: ${pageErrors.join('; ')}`)), timeoutMs);
          waiters.set(name, () => {
            clearTimeout(timer);
            resolve();
          });
        }),
        running.then(() => {
          throw new Error(`the page finished before '${name}'`);
        }),
      ]);

    await phase('written');
    await gateway.kill9();
    await page.evaluate(() => (window as unknown as PageWindow).spoolContinue());
    await phase('queued');
    await gateway.start();
    const result = await running;

    expect(pageErrors).toEqual([]);
    expect(result.userAgent).toMatch(/Chrome/);
    expect(result.nativeWebSocket).toBe(true);
    expect(result.finished.status).toBe('done');
    // Killed mid-stream: the producer had not written everything, the reader had seen the first part.
    expect(reported.get('written')?.received).toBeGreaterThanOrEqual(shape.half);
    expect(result.ackedAtKill).toBeLessThan(shape.atKill);
    // Both the generation's upload connection and the reader's came back after the kill.
    expect(result.reconnects.some((name) => name.startsWith('generation'))).toBe(true);
    expect(result.reconnects.some((name) => !name.startsWith('generation'))).toBe(true);

    const browserItems = result.items as ReadItem[];
    expect(checkSessionHistory(browserItems, { generations: 1, chunksPerGeneration: shape.total }).violations).toEqual([]);
    const seqs = browserItems.flatMap((item) => (item.type === 'chunk' ? [(item.data as { seq: number }).seq] : []));
    expect(seqs).toEqual(Array.from({ length: shape.total }, (_, i) => i));
    // What the page saw is the durable log, as a Node reader reads it after the restart.
    const durable = await readUntilEnded(gateway.url, session, 1);
    const key = (items: readonly ReadItem[]): string[] => items.map((item) => (item.type === 'gap' ? `gap ${item.from}-${item.to}` : `${item.offset} ${item.type} ${String(item.seq ?? '')}`));
    expect(key(browserItems)).toEqual(key(durable));
  });
});

/** The name in the package.json of an installed package path (`x`, `@s/y`, `x/node_modules/z`). */
function packageName(appDir: string, installed: string): string {
  return (JSON.parse(fs.readFileSync(path.join(appDir, 'node_modules', installed, 'package.json'), 'utf8')) as { name: string }).name;
}

/** Names of `root` and everything its installed manifests depend on (optional dependencies included). */
function dependencyClosure(appDir: string, root: string): Set<string> {
  const names = new Set<string>();
  const visit = (name: string): void => {
    if (names.has(name)) return;
    names.add(name);
    const file = path.join(appDir, 'node_modules', name, 'package.json');
    if (!fs.existsSync(file)) return; // an optional dependency for another platform
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    for (const dependency of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) visit(dependency);
  };
  visit(root);
  return names;
}
