/**
 * The catalogue of chaos scenarios, as data. `CI_BUDGET` is what `npm run chaos` runs (and what
 * `--soak` cycles through with fresh seeds): together they cover every fault kind of
 * REQUIRED_FAULT_KINDS, on LMDB and Redis, over ws and uWebSockets.js, with well over 1,000
 * injected faults, in about five minutes on two cores.
 *
 * Sizes are chosen for that machine: a handful of sessions, two readers each, 100-200 chunks/s
 * per session, 10-12 s of faults per scenario (one or two 10 s gate windows).
 */
import type { ScheduledFault, Scenario, Workload } from './scenario';

const STANDARD: Workload = { sessions: 5, readersPerSession: 2, chunksPerSecond: 150, chunksPerGeneration: 250, appendsPerGeneration: 1 };

/** Frequent small faults on the client links: resets, latency, throttling, blackholes, half-closes. */
function clientLinkChurn(scale = 1): ScheduledFault[] {
  return [
    { on: 'client', after: 200, every: 250 / scale, reset: true, probability: 0.08 },
    { on: 'client', after: 300, every: 400 / scale, delayMs: 80, forMs: 300, probability: 0.5 },
    { on: 'client', after: 700, every: 1500 / scale, bandwidthBytesPerSec: 128 * 1024, forMs: 600, probability: 0.5 },
    { on: 'client', after: 900, every: 1800 / scale, blackholeMs: 500, probability: 0.3 },
    { on: 'client', after: 1100, every: 2000 / scale, halfClose: true, direction: 'up', probability: 0.15 },
    { on: 'client', after: 1600, every: 2400 / scale, halfClose: true, direction: 'down', probability: 0.15 },
  ];
}

/** Frequent small faults on the gateway→Redis links. */
function redisLinkChurn(scale = 1): ScheduledFault[] {
  return [
    { on: 'redis-link', after: 400, every: 600 / scale, delayMs: 40, forMs: 300, probability: 0.5 },
    { on: 'redis-link', after: 800, every: 1500 / scale, bandwidthBytesPerSec: 256 * 1024, forMs: 500 },
    { on: 'redis-link', after: 1000, every: 1700 / scale, reset: true, probability: 0.3 },
    { on: 'redis-link', after: 1300, every: 2300 / scale, blackholeMs: 400, probability: 0.5 },
    { on: 'redis-link', after: 1700, every: 2900 / scale, halfClose: true, direction: 'down', probability: 0.3 },
  ];
}

/** A second writer naming two streaming generations without their token, every 2.5 s or so. */
const SECOND_WRITER: ScheduledFault = { on: 'clients', after: 1200, every: 2500, secondWriter: 2 };

/** An operator resetting a streaming session through the gateway's single writer (issue 13). */
const SESSION_RESETS: ScheduledFault = { on: 'clients', after: 1700, every: 3000, sessionReset: true };

/** An operator deleting a streaming session: producer and readers go on in its next incarnation (issue 13). */
const SESSION_DELETES: ScheduledFault = { on: 'clients', after: 2400, every: 3000, sessionDelete: true };

/** Takeovers during streaming, duplicate storms, disconnect storms and second writers. */
function clientDriven(): ScheduledFault[] {
  return [
    { on: 'clients', after: 1500, every: 3000, disconnectStorm: 0.3 },
    { on: 'clients', after: 2200, every: 2800, takeover: true },
    { on: 'clients', after: 800, every: 3500, duplicateStorm: 120 },
    SECOND_WRITER,
  ];
}

export const CI_BUDGET: readonly Scenario[] = [
  {
    name: 'lmdb-ws-links',
    topology: { store: 'lmdb', transport: 'ws', gateways: 1, mode: 'inproc' },
    workload: STANDARD,
    faults: [...clientLinkChurn(), ...clientDriven(), SESSION_RESETS, SESSION_DELETES],
    durationMs: 11_000,
    seed: 101,
    expect: { resumeTelemetry: true },
  },
  {
    name: 'lmdb-uws-links',
    topology: { store: 'lmdb', transport: 'uws', gateways: 1, mode: 'inproc' },
    workload: STANDARD,
    faults: [...clientLinkChurn(), ...clientDriven()],
    durationMs: 11_000,
    seed: 102,
    expect: { resumeTelemetry: true },
  },
  {
    name: 'lmdb-ws-kill9',
    topology: { store: 'lmdb', transport: 'ws', gateways: 1, mode: 'child' },
    workload: { ...STANDARD, httpStreams: 2 },
    faults: [
      ...clientLinkChurn(),
      { on: 'gateway', after: 2000, every: 3500, kill9DownMs: 300 },
      { on: 'clients', after: 1200, every: 3000, takeover: true },
      { on: 'clients', after: 600, every: 4000, duplicateStorm: 100 },
      SECOND_WRITER,
    ],
    durationMs: 11_000,
    seed: 103,
  },
  {
    name: 'lmdb-uws-process',
    topology: { store: 'lmdb', transport: 'uws', gateways: 1, mode: 'child' },
    workload: STANDARD,
    faults: [
      ...clientLinkChurn(),
      { on: 'gateway', after: 1500, kill9DownMs: 200 },
      { on: 'gateway', after: 4500, sigstopMs: 1200 },
      { on: 'gateway', after: 7500, terminateDownMs: 200 },
      { on: 'clients', after: 2500, every: 3000, disconnectStorm: 0.4 },
    ],
    durationMs: 11_000,
    seed: 104,
  },
  {
    name: 'lmdb-ws-retention',
    topology: { store: 'lmdb', transport: 'ws', gateways: 1, mode: 'inproc' },
    workload: { ...STANDARD, lowPriorityShare: 0.4 },
    gateway: { retentionEvents: 400 },
    faults: [...clientLinkChurn(), ...clientDriven()],
    durationMs: 10_000,
    seed: 105,
    expect: { trimmed: true, resumeTelemetry: true },
  },
  {
    name: 'redis-ws-3gw-links',
    topology: { store: 'redis', transport: 'ws', gateways: 3, mode: 'child' },
    workload: STANDARD,
    faults: [...clientLinkChurn(), ...redisLinkChurn(), ...clientDriven()],
    durationMs: 11_000,
    seed: 201,
  },
  {
    name: 'redis-uws-3gw-links',
    topology: { store: 'redis', transport: 'uws', gateways: 3, mode: 'child' },
    workload: STANDARD,
    faults: [...clientLinkChurn(), ...redisLinkChurn(), ...clientDriven()],
    durationMs: 11_000,
    seed: 202,
  },
  {
    name: 'redis-ws-server-faults',
    topology: { store: 'redis', transport: 'ws', gateways: 2, mode: 'child' },
    workload: STANDARD,
    faults: [
      ...redisLinkChurn(),
      { on: 'client', after: 200, every: 300, reset: true, probability: 0.08 },
      { on: 'redis', after: 1500, sigstopMs: 1200 },
      { on: 'redis', after: 4000, clientPause: { ms: 800, mode: 'WRITE' } },
      { on: 'redis', after: 6000, clientPause: { ms: 600, mode: 'ALL' } },
      { on: 'redis', after: 8000, killDownMs: 400 },
      { on: 'clients', after: 2500, every: 3000, takeover: true },
      { on: 'clients', after: 1000, every: 4000, duplicateStorm: 100 },
    ],
    durationMs: 11_000,
    seed: 203,
  },
  {
    name: 'redis-uws-server-faults',
    topology: { store: 'redis', transport: 'uws', gateways: 2, mode: 'child' },
    workload: STANDARD,
    faults: [
      ...redisLinkChurn(),
      { on: 'client', after: 200, every: 300, reset: true, probability: 0.08 },
      { on: 'redis', after: 1200, killDownMs: 500 },
      { on: 'redis', after: 3500, clientPause: { ms: 700, mode: 'ALL' } },
      { on: 'redis', after: 5500, sigstopMs: 1000 },
      { on: 'redis', after: 8000, clientPause: { ms: 900, mode: 'WRITE' } },
      { on: 'clients', after: 1800, every: 3000, disconnectStorm: 0.3 },
      { on: 'clients', after: 2500, every: 3000, takeover: true },
    ],
    durationMs: 11_000,
    seed: 204,
  },
  {
    name: 'redis-ws-gateway-faults',
    topology: { store: 'redis', transport: 'ws', gateways: 3, mode: 'child' },
    workload: { ...STANDARD, httpStreams: 3 },
    faults: [
      ...clientLinkChurn(),
      { on: 'gateway', after: 1500, every: 3000, kill9DownMs: 300 },
      { on: 'gateway', after: 3000, every: 4000, sigstopMs: 1000 },
      { on: 'clients', after: 1800, every: 2000, takeover: true },
      { on: 'clients', after: 700, every: 3000, duplicateStorm: 100 },
      SECOND_WRITER,
    ],
    durationMs: 11_000,
    seed: 205,
  },
  {
    name: 'redis-uws-retention',
    topology: { store: 'redis', transport: 'uws', gateways: 2, mode: 'inproc' },
    workload: { ...STANDARD, lowPriorityShare: 0.4 },
    gateway: { retentionEvents: 400 },
    faults: [...clientLinkChurn(), ...redisLinkChurn(), ...clientDriven(), SESSION_RESETS],
    durationMs: 10_000,
    seed: 206,
    expect: { trimmed: true, resumeTelemetry: true },
  },
  {
    name: 'redis-ws-ttl-cleanup',
    topology: { store: 'redis', transport: 'ws', gateways: 1, mode: 'inproc' },
    workload: { ...STANDARD, sessions: 4 },
    gateway: { sessionTtlMs: 6000 },
    faults: [
      { on: 'client', after: 200, every: 250, reset: true, probability: 0.1 },
      { on: 'client', after: 300, every: 400, delayMs: 60, forMs: 300, probability: 0.5 },
      { on: 'redis-link', after: 400, every: 500, delayMs: 30, forMs: 300, probability: 0.5 },
      { on: 'redis-link', after: 1000, every: 1500, reset: true, probability: 0.3 },
      { on: 'clients', after: 2000, every: 2500, takeover: true },
    ],
    durationMs: 8_000,
    seed: 207,
    expect: { redisCleanup: true, resumeTelemetry: true },
  },
  {
    name: 'redis-ws-storms',
    topology: { store: 'redis', transport: 'ws', gateways: 2, mode: 'child' },
    workload: { ...STANDARD, sessions: 6 },
    faults: [
      { on: 'client', after: 200, every: 200, reset: true, probability: 0.1 },
      { on: 'clients', after: 800, every: 1200, disconnectStorm: 0.5 },
      { on: 'clients', after: 1000, every: 1500, takeover: true },
      { on: 'clients', after: 500, every: 2000, duplicateStorm: 150 },
      { on: 'redis-link', after: 600, every: 700, delayMs: 50, forMs: 300 },
    ],
    durationMs: 11_000,
    seed: 208,
  },
  {
    // Session lifecycle under process faults (issue 13): operators reset and delete sessions
    // through the admin API of either gateway while producers stream, takeovers displace them and
    // a gateway is killed with -9 (a delete asked of it then goes to the other one). Readers follow
    // each session across its incarnations; the checker cuts the history at every delete.
    name: 'redis-ws-lifecycle',
    topology: { store: 'redis', transport: 'ws', gateways: 2, mode: 'child' },
    workload: STANDARD,
    faults: [
      ...clientLinkChurn(),
      { on: 'gateway', after: 1800, every: 2500, kill9DownMs: 300 },
      { on: 'clients', after: 1200, every: 2000, takeover: true },
      { on: 'clients', after: 1000, every: 1700, sessionReset: true },
      { on: 'clients', after: 1500, every: 1300, sessionDelete: true },
      SECOND_WRITER,
    ],
    durationMs: 8_000,
    seed: 209,
  },
];

/** A scenario of the catalogue by name. */
export function findScenario(name: string): Scenario | undefined {
  return CI_BUDGET.find((s) => s.name === name);
}
