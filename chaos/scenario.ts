/**
 * Chaos scenarios as data: a topology, a workload, a schedule of faults, a duration and a seed.
 * One runner (runner.ts) runs any of them; scenarios.ts holds the catalogue.
 *
 *   const scenario: Scenario = {
 *     name: 'redis-ws-3gw-links',
 *     topology: { store: 'redis', transport: 'ws', gateways: 3, mode: 'child' },
 *     workload: { sessions: 6, readersPerSession: 2, chunksPerSecond: 150, chunksPerGeneration: 300 },
 *     faults: [{ on: 'client', after: 500, every: 200, reset: true, probability: 0.1 }],
 *     durationMs: 12_000,
 *     seed: 7,
 *   };
 */
import type { Fault as LinkFault } from './fault-proxy';

export type StoreKind = 'lmdb' | 'redis';
export type TransportKind = 'ws' | 'uws';

export interface Topology {
  readonly store: StoreKind;
  readonly transport: TransportKind;
  /** Gateway processes (LMDB is embedded: exactly 1). */
  readonly gateways: number;
  /**
   * 'inproc': gateways run in the runner's process (their TelemetrySink is recorded);
   * 'child': each gateway is its own OS process (`kill -9`, SIGSTOP; counters from /metrics).
   * @default 'child'
   */
  readonly mode?: 'inproc' | 'child';
}

/** Gateway settings a scenario may change (the rest are the gateway's defaults). */
export interface GatewaySettings {
  /** retention.maxEvents: set it low to put the sessions under retention pressure (gaps allowed). */
  readonly retentionEvents?: number;
  readonly sessionTtlMs?: number;
  /** Transport ping interval; clients drop a silent socket after two. @default 1000 in chaos runs */
  readonly heartbeatMs?: number;
  /** A generation whose producer vanished ends `timeout` after this. @default 4000 in chaos runs */
  readonly generationIdleTimeoutMs?: number;
}

export interface Workload {
  readonly sessions: number;
  /** SDK readers per session, each on its own client, following from offset 0. */
  readonly readersPerSession: number;
  /** What each session's producer writes per second while the scenario runs. */
  readonly chunksPerSecond: number;
  /** Chunks per generation; the producer opens generations one after another until durationMs. */
  readonly chunksPerGeneration: number;
  /** Size range of a chunk's text. @default [8, 64] */
  readonly chunkBytes?: readonly [number, number];
  /** Share of chunks written at priority 1 (reasoning) rather than 2. @default 0.2 */
  readonly lowPriorityShare?: number;
  /** Idempotent user-message appends (priority 3) before each generation, each sent twice. @default 1 */
  readonly appendsPerGeneration?: number;
  /**
   * Durable Streams streams (`h0`, `h1`, …) written by an HTTP idempotent producer and read by an
   * HTTP SSE reader, both through the fault proxies (http-streams.ts, checked by http-check.ts). @default 0
   */
  readonly httpStreams?: number;
}

/** Where a fault lands, and what it does. Timing fields are shared by all. */
export interface Timing {
  /** First firing, ms after the workload starts. */
  readonly after: number;
  /** Fire again every this many ms (± `jitter` share, from the seed) until the duration ends or `times` is reached. */
  readonly every?: number;
  readonly times?: number;
  /** @default 0.3 */
  readonly jitter?: number;
}

/** A fault on the proxies between clients and gateways. */
export type ClientLinkFault = Timing & {
  readonly on: 'client';
  /** Whose connections: producers' upload sockets, readers' sockets, or both. @default 'all' */
  readonly who?: 'producers' | 'readers' | 'all';
  /** Only the proxies in front of this gateway. @default all */
  readonly gateway?: number;
} & Omit<LinkFault, 'after' | 'refuse'>;

/** A fault on the proxies between gateways and Redis. */
export type RedisLinkFault = Timing & {
  readonly on: 'redis-link';
  readonly gateway?: number;
} & Omit<LinkFault, 'after' | 'refuse'>;

/** A fault of the Redis server itself. Exactly one of the fields. */
export type RedisFault = Timing & {
  readonly on: 'redis';
  /** SIGSTOP the server for this long. */
  readonly sigstopMs?: number;
  /** `CLIENT PAUSE ms WRITE|ALL`. */
  readonly clientPause?: { readonly ms: number; readonly mode: 'WRITE' | 'ALL' };
  /** SIGKILL the server, restart it (same port and AOF) after this long. */
  readonly killDownMs?: number;
};

/** A fault of a gateway process (mode 'child'). Exactly one of the fields. */
export type GatewayFault = Timing & {
  readonly on: 'gateway';
  /** Which gateway. @default a seeded choice */
  readonly index?: number;
  /** SIGKILL, restart on the same port and data after this long. */
  readonly kill9DownMs?: number;
  /** SIGSTOP for this long (a paused owner: its writes must be fenced if someone took over meanwhile). */
  readonly sigstopMs?: number;
  /** SIGTERM (graceful: SHUTTING_DOWN to every client), restart after this long. */
  readonly terminateDownMs?: number;
};

/** Faults driven through the clients. Exactly one of the fields. */
export type ClientFault = Timing & {
  readonly on: 'clients';
  /**
   * Disconnect storm: this share of all client connections is reset at once, and this share of
   * the readers closes its client and resumes from its saved offset on a new one (seeded choice
   * of gateway).
   */
  readonly disconnectStorm?: number;
  /** Takeover during streaming: a new generation with `takeover` displaces a streaming producer, through another gateway when there is one. */
  readonly takeover?: boolean;
  /**
   * Duplicate retransmission storm: a raw-protocol producer writes a generation of this many
   * chunks sending every frame 1–4 times, re-sending old ranges and skipping ahead (SEQ_GAP),
   * then keeps writing with its stale token after being taken over.
   */
  readonly duplicateStorm?: number;
  /**
   * Second writer (issue 9): a raw-protocol client names this many other producers' active
   * generations and tries to get into them without their token (none, a forged one, a wrong
   * secret, a stale one when the workload holds one; chunk/chunks/finish with tokens it was never
   * given). It never asks for takeover. Every answer must be a refusal (checker: intruder-accepted).
   */
  readonly secondWriter?: number;
  /**
   * An operator resets a session while it streams (issue 13, PROTOCOL §10.5): `POST
   * /admin/sessions/{id}/reset` on the admin listener of a gateway that is up, which runs it
   * through the session's single writer. Its producer is fenced and opens the next generation;
   * readers get the reset's gap and `session.reset` event.
   */
  readonly sessionReset?: boolean;
  /**
   * An operator deletes a session while it streams (issue 13, PROTOCOL §10.6): `DELETE
   * /admin/sessions/{id}` on a gateway that is up (again on another one if that gateway dies
   * before answering). The session's producer waits for the answer before it writes again, so
   * everything it writes afterwards is the session's next incarnation (offsets from 1); readers
   * get SESSION_DELETED (or SESSION_REWOUND, OFFSET_OUT_OF_RANGE where they missed it) and follow
   * the new incarnation from the start (checker: incarnations).
   */
  readonly sessionDelete?: boolean;
};

export type ScheduledFault = ClientLinkFault | RedisLinkFault | RedisFault | GatewayFault | ClientFault;

/** Extra assertions of a scenario (telemetry and cleanup, issue 5 item 4). */
export interface Expectations {
  /** Disconnects must show up as resume.attempt then resume.live (mode 'inproc'). */
  readonly resumeTelemetry?: boolean;
  /** Retention must have trimmed something (buffer.trimmed / spool_buffer_trimmed_total > 0). */
  readonly trimmed?: boolean;
  /** Redis: ended generations leave no `s:{id}:seq` or `s:{id}:seqruns`; after the session TTL no key of the session is left. */
  readonly redisCleanup?: boolean;
}

export interface Scenario {
  readonly name: string;
  readonly topology: Topology;
  readonly workload: Workload;
  readonly faults: readonly ScheduledFault[];
  /** How long producers write and faults fire; then the runner drains, reads the log and checks. */
  readonly durationMs: number;
  readonly seed: number;
  readonly gateway?: GatewaySettings;
  readonly expect?: Expectations;
}

/** The name a fault is counted under in the summary, e.g. `client-link:reset`, `redis:sigstop`. */
export function faultKinds(fault: ScheduledFault): string[] {
  switch (fault.on) {
    case 'client':
    case 'redis-link': {
      const prefix = fault.on === 'client' ? 'client-link' : 'redis-link';
      const kinds: string[] = [];
      if (fault.delayMs !== undefined) kinds.push('latency');
      if (fault.bandwidthBytesPerSec !== undefined) kinds.push('bandwidth');
      if (fault.blackholeMs !== undefined) kinds.push('blackhole');
      if (fault.reset) kinds.push('reset');
      if (fault.halfClose) kinds.push('half-close');
      if (fault.refuseMs !== undefined) kinds.push('refuse');
      return kinds.map((k) => `${prefix}:${k}`);
    }
    case 'redis':
      if (fault.sigstopMs !== undefined) return ['redis:sigstop'];
      if (fault.clientPause !== undefined) return [`redis:client-pause-${fault.clientPause.mode.toLowerCase()}`];
      if (fault.killDownMs !== undefined) return ['redis:kill-restart'];
      return [];
    case 'gateway':
      if (fault.kill9DownMs !== undefined) return ['gateway:kill9-restart'];
      if (fault.sigstopMs !== undefined) return ['gateway:sigstop'];
      if (fault.terminateDownMs !== undefined) return ['gateway:terminate-restart'];
      return [];
    case 'clients':
      if (fault.disconnectStorm !== undefined) return ['clients:disconnect-storm'];
      if (fault.takeover) return ['clients:takeover'];
      if (fault.duplicateStorm !== undefined) return ['clients:duplicate-storm'];
      if (fault.secondWriter !== undefined) return ['clients:second-writer'];
      if (fault.sessionReset) return ['clients:session-reset'];
      if (fault.sessionDelete) return ['clients:session-delete'];
      return [];
  }
}

/** Every fault kind the CI budget must inject at least once (issue 5, "Done when"). */
export const REQUIRED_FAULT_KINDS: readonly string[] = [
  'client-link:latency',
  'client-link:bandwidth',
  'client-link:blackhole',
  'client-link:reset',
  'client-link:half-close',
  'redis-link:latency',
  'redis-link:bandwidth',
  'redis-link:blackhole',
  'redis-link:reset',
  'redis-link:half-close',
  'redis:sigstop',
  'redis:client-pause-write',
  'redis:client-pause-all',
  'redis:kill-restart',
  'gateway:kill9-restart',
  'clients:disconnect-storm',
  'clients:takeover',
  'clients:duplicate-storm',
  'clients:second-writer',
  'clients:session-reset',
  'clients:session-delete',
];

/** Throws with a message naming the field when a scenario cannot run as written. */
export function validateScenario(s: Scenario): void {
  const fail = (what: string): never => {
    throw new Error(`scenario ${s.name}: ${what}`);
  };
  const mode = s.topology.mode ?? 'child';
  if (!/^[A-Za-z0-9._-]{1,60}$/.test(s.name)) fail('name must be 1-60 chars of [A-Za-z0-9._-]');
  if (!Number.isInteger(s.seed)) fail('seed must be an integer');
  if (!(s.durationMs > 0 && s.durationMs <= 3_600_000)) fail('durationMs must be in (0, 1 h]');
  if (!(Number.isInteger(s.topology.gateways) && s.topology.gateways >= 1 && s.topology.gateways <= 8)) fail('topology.gateways must be 1..8');
  if (s.topology.store === 'lmdb' && s.topology.gateways !== 1) fail('LMDB is embedded: exactly one gateway');
  const w = s.workload;
  if (!(w.sessions >= 1 && w.sessions <= 200)) fail('workload.sessions must be 1..200');
  if (!(w.readersPerSession >= 0 && w.readersPerSession <= 10)) fail('workload.readersPerSession must be 0..10');
  if (!(w.chunksPerSecond > 0 && w.chunksPerGeneration >= 1)) fail('workload rates must be positive');
  if (w.httpStreams !== undefined && !(Number.isInteger(w.httpStreams) && w.httpStreams >= 0 && w.httpStreams <= 50)) fail('workload.httpStreams must be 0..50');
  for (const f of s.faults) {
    if (faultKinds(f).length === 0) fail(`fault ${JSON.stringify(f)} does nothing`);
    if (f.every !== undefined && !(f.every >= 20)) fail('fault.every must be >= 20 ms');
    if ((f.on === 'redis' || f.on === 'redis-link') && s.topology.store !== 'redis') fail(`${f.on} faults need store 'redis'`);
    if (f.on === 'gateway' && mode !== 'child') fail("gateway faults need topology.mode 'child'");
    if ((f.on === 'client' || f.on === 'redis-link') && f.gateway !== undefined && f.gateway >= s.topology.gateways) fail('fault.gateway out of range');
    if (f.on === 'gateway' && f.index !== undefined && f.index >= s.topology.gateways) fail('fault.index out of range');
    if (f.on === 'clients' && f.secondWriter !== undefined && !(Number.isInteger(f.secondWriter) && f.secondWriter >= 1 && f.secondWriter <= 20)) fail('fault.secondWriter must be 1..20 generations');
  }
  if (s.expect?.resumeTelemetry && mode !== 'inproc') fail("expect.resumeTelemetry needs topology.mode 'inproc'");
  if (s.expect?.redisCleanup && (s.topology.store !== 'redis' || s.gateway?.sessionTtlMs === undefined)) fail('expect.redisCleanup needs Redis and gateway.sessionTtlMs');
}
