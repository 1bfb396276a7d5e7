/**
 * RedisStore: the SessionStore on Redis or Redis Cluster (ioredis), for many gateway processes
 * sharing one durable log per session. Create it with `openRedisStore`.
 *
 * Key layout. Every key of a session carries the hash tag `{<session>}`, so a cluster keeps
 * them all in one slot and one Lua script can update them atomically:
 *
 *   s:{id}:log      stream  the events in batches: consecutive events of one priority stored by
 *                           one call are one entry, id `<first offset>-0`, a field `e` per event
 *                           in offset order = the event without its offset, msgpack-encoded
 *                           (msgpackr plain maps, the wire protocol's encoding; gen.start/gen.end
 *                           are packed by the scripts with Redis' cmsgpack). Before batches each
 *                           event was an entry of its own: the same thing, a batch of one.
 *   s:{id}:meta     hash    epoch, head, count, bytes, criticalCount, criticalBytes,
 *                           lastWriteTs, floor0|floor1|floor2 (below), and while a generation is
 *                           active: activeId, activeEpoch, activeLastSeq, activeStartOffset,
 *                           activeLastWriteTs, activeTag (the token tag), activeSecret (the
 *                           producer secret's digest)
 *   s:{id}:p0|p1|p2 list    retention index per trimmable priority, one entry per batch:
 *                           "firstOffset:size,size,..." pushed at the tail in offset order.
 *                           Trimming takes the oldest event of the lowest priority, so only the
 *                           batch at the head of each list is ever partly trimmed: floorN in meta
 *                           is its first retained offset (0: none trimmed), and the batch's entry
 *                           and stream entry go (LPOP, XDEL) with its last event. A read knows an
 *                           event of priority N was trimmed when it lies before floorN and the
 *                           list's head batch; never a read or decode of an event to trim
 *   s:{id}:seqruns  zset    where the active generation's seqs went, one member per run of
 *                           seqs one append stored at consecutive offsets (or dropped under
 *                           pressure, §7.6): "firstSeq:firstOffset:count" scored by firstSeq
 *                           (firstOffset 0: dropped); a retransmitted seq is one
 *                           ZREVRANGEBYSCORE away. DEL when the generation ends
 *   s:{id}:seq      hash    the same, one field per seq (seq -> offset), as spool wrote it
 *                           before seq runs: read (never written) for a generation active across
 *                           the upgrade; DEL when it ends
 *   s:{id}:keys     hash    append idempotency key -> offset
 *   s:{id}:ended    hash    generation id -> "endOffset:endStatus" of ended generations
 *   s:{id}:dedupe   zset    "k:<key>" / "x:<generation>" scored by write ts; the write scripts
 *                           drop entries older than the dedupe window from keys/ended, at most
 *                           64 per call (the oldest first)
 *   s:{id}:notify   channel change notices: the new head, published by the write scripts (`deleted` by the delete script)
 *                           (PUBLISH standalone, SPUBLISH on a cluster: the hash tag puts the
 *                           shard channel on the session's shard)
 *
 * Every write that stores (or trims) something, or consumes a seq with a dropped chunk, PEXPIREs
 * all ten keys to sessionTtlMs, so a session vanishes sessionTtlMs after its last write, by
 * Redis' own expiry: `expire()` has nothing to do and returns 0. (The TTL runs on the Redis
 * server's clock from the write; the `lastWriteTs` kept in meta is informational.) Refused writes
 * change nothing and extend nothing; a resumed open only raises `activeLastWriteTs` (one HSET, no
 * TTL refresh, no notice).
 *
 * Atomicity: `openGeneration` and `append` are one Lua script each (redis-scripts.ts), loaded at
 * start and called by EVALSHA, with an EVAL fallback on NOSCRIPT (after a server restart). The epoch check runs inside
 * the script, so a paused or partitioned old owner can never write past a newer epoch (G4).
 * `read` is one script too (READ_SCRIPT: head and floors, the retention lists' heads, the entry
 * holding the first offset asked for and as many after it as hold the events asked for), so the
 * head and trim state match the events.
 *
 * Failures: any Redis failure rejects with SpoolError STORE_UNAVAILABLE (INTERNAL for a reply
 * that says the request itself is wrong). A call never waits longer than commandTimeoutMs. A
 * call that timed out has an unknown outcome (the server may still run it, e.g. when a paused
 * server resumes); retrying it is safe, because chunks dedupe by (generation, seq), appends by
 * key, and a stale epoch is fenced.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { Packr } from 'msgpackr';
import { decodeEventValue, encodeEventFields, encodeEventFieldsEndToEnd, encodeEventsFromFields } from '../protocol/codec';
import { SpoolError } from '../protocol/errors';
import type { EndStatus, Offset, Priority, SessionEvent } from '../protocol/types';
import { normalizeOptions } from './engine';
import { assembleRead } from './read';
import { NoticeHub, clusterRouting, noticeChannel, standaloneRouting } from './redis-notices';
import { APPEND_SCRIPT, DELETE_SCRIPT, ITEM, OPEN_SCRIPT, READ_SCRIPT, RESET_SCRIPT, RESULT } from './redis-scripts';
import type {
  AppendResult,
  ChangeListener,
  OpenRequest,
  OpenResult,
  ReadResult,
  DeleteResult,
  SessionDetails,
  SessionPage,
  SessionSummary,
  ResetResult,
  SessionMeta,
  SessionStore,
  StoreOptions,
  TrimmedEvent,
  WriteItem,
  WriteResult,
} from './types';

/** Where the store's Redis is: one server by URL, or a cluster by some of its nodes (`host:port`). */
export type RedisTarget = { readonly url: string } | { readonly cluster: readonly string[] };

export interface RedisStoreOptions extends Partial<StoreOptions> {
  /**
   * A command that gets no reply within this time rejects (STORE_UNAVAILABLE): nothing waits
   * forever on a hung or paused server. Its outcome is unknown; retrying is safe. @default 2000
   */
  readonly commandTimeoutMs?: number;
  /** A connection attempt (TCP and handshake) gives up after this long and is retried. @default 2000 */
  readonly connectTimeoutMs?: number;
  /** `ping()` rejects when Redis has not answered within this long. @default 1000 */
  readonly pingTimeoutMs?: number;
  /**
   * Reconnect backoff: attempt n waits a random time between reconnectMinMs and
   * min(reconnectMaxMs, reconnectMinMs * 2^n) (full jitter above a floor). Reconnecting never
   * gives up. @default 50 and 2000
   */
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /** `openRedisStore` rejects when Redis is not ready within this long. @default 10000 */
  readonly startTimeoutMs?: number;
  /** More ioredis options (password, TLS, ...). spool's own timeout and queue options win. */
  readonly redisOptions?: RedisOptions;
  /**
   * Told about every connection error (refused, reset, auth, ...) of the command connection(s)
   * ('commands') and of the pub/sub connections ('notices'), e.g. to log them. Calls fail on
   * their own as well; this is for the errors no call sees, like a subscriber that cannot connect.
   */
  readonly onConnectionError?: (error: Error, connection: 'commands' | 'notices') => void;
}

/** RedisOptions as the ioredis constructors accept them under exactOptionalPropertyTypes. */
type IoRedisOptions = RedisOptions & { replyMapping?: 'legacy' };

const DEFAULTS = { commandTimeoutMs: 2000, connectTimeoutMs: 2000, pingTimeoutMs: 1000, reconnectMinMs: 50, reconnectMaxMs: 2000, startTimeoutMs: 10_000 };

// Plain maps only, as the wire codec: any msgpack implementation can read the log.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** How many keys sessionKeys gives: every script takes them all as KEYS. */
const SESSION_KEY_COUNT = 10;

/** The ten keys of a session, in the order the scripts take them as KEYS. */
export function sessionKeys(session: string): string[] {
  const tag = `s:{${session}}`;
  return ['log', 'meta', 'p0', 'p1', 'p2', 'seq', 'keys', 'ended', 'dedupe', 'seqruns'].map((name) => `${tag}:${name}`);
}

const META = 1;

/**
 * The first offset of `priority` still retained, from the head of its retention list ("firstOffset:size,..."
 * for a batch) and the priority's floor in meta (how far that batch is trimmed); Infinity when
 * the list is empty (every event of that priority was trimmed).
 */
function firstRetained(front: string | null, floor: number): number {
  if (front === null) return Number.POSITIVE_INFINITY;
  const first = Number.parseInt(front, 10);
  return Math.max(first, floor);
}

type Client = Redis | Cluster;

/** A `chunks` header item being built: its arrays are in the header already and fill as chunks join. */
interface ChunkRun {
  readonly generationId: string;
  readonly epoch: number;
  readonly firstSeq: number;
  readonly priorities: Priority[];
  readonly tss: number[];
  readonly sizes: number[];
  /** Each chunk's body length in the run's argument: filled once the run's bodies are encoded. */
  readonly lengths: number[];
  readonly fields: Omit<SessionEvent, 'offset'>[];
  /** The run's chunks' indexes in the append's items. */
  readonly items: number[];
  /** Where the run's bodies go among the script's body arguments. */
  readonly argument: number;
}

/** A placeholder among an append's body arguments, replaced by its run's bodies before the call. */
const EMPTY_BODY = Buffer.alloc(0);

/** A session's meta hash as SessionMeta. */
function metaOf(raw: Record<string, string>): SessionMeta {
  return {
    epoch: num(raw['epoch']),
    head: num(raw['head']),
    active:
      raw['activeId'] === undefined
        ? null
        : {
            id: raw['activeId'],
            epoch: num(raw['activeEpoch']),
            lastSeq: num(raw['activeLastSeq']),
            startOffset: num(raw['activeStartOffset']),
            lastWriteTs: num(raw['activeLastWriteTs']),
          },
    count: num(raw['count']),
    bytes: num(raw['bytes']),
  };
}

/** `<master index>:<scan cursor>`, as list() hands it out. */
function parseListCursor(cursor: string): [number, string] {
  const match = /^(\d+):(\d+)$/.exec(cursor);
  if (match === null) throw new SpoolError('BAD_FRAME', `not a session listing cursor: ${JSON.stringify(cursor)}`);
  return [Number(match[1]), match[2] as string];
}

/**
 * The scripts as ioredis commands (`defineCommand`): EVALSHA once the script is known on the
 * connection, EVAL on a new connection and after NOSCRIPT (a restarted or failed-over server has
 * an empty script cache), so a script is never missing and never resent needlessly.
 */
const SCRIPTS = { spoolOpen: OPEN_SCRIPT, spoolAppend: APPEND_SCRIPT, spoolReset: RESET_SCRIPT, spoolDelete: DELETE_SCRIPT, spoolRead: READ_SCRIPT } as const;
type ScriptName = keyof typeof SCRIPTS;
type ScriptCommands = Record<`${ScriptName}Buffer`, (...args: (string | Buffer)[]) => Promise<Buffer>>;

/** Reply errors that mean "not now" rather than "never": retrying may succeed. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|MOVED|ASK|OOM|NOREPLICAS|NOSCRIPT)\b/;

function storeError(error: unknown, what: string): SpoolError {
  if (error instanceof SpoolError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const isReply = error instanceof Error && error.name === 'ReplyError';
  const code = isReply && !TRANSIENT_REPLY.test(message) ? 'INTERNAL' : 'STORE_UNAVAILABLE';
  return new SpoolError(code, `redis ${what} failed: ${message}`);
}

function backoff(minMs: number, maxMs: number): (attempt: number) => number {
  return (attempt) => {
    const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
    return Math.round(minMs + Math.random() * Math.max(0, cap - minMs));
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SpoolError('STORE_UNAVAILABLE', `redis ${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function parseEndpoint(endpoint: string): { host: string; port: number } {
  const colon = endpoint.lastIndexOf(':');
  const port = Number(endpoint.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0) throw new SpoolError('INTERNAL', `redis cluster node "${endpoint}" is not host:port`);
  return { host: endpoint.slice(0, colon), port };
}

/** Waits for `ready`, rejecting after `ms` with the last connection error. */
function whenReady(client: Client, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError = 'no answer';
    const onError = (error: Error): void => void (lastError = error.message);
    const done = (error?: SpoolError): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onReady = (): void => done();
    const timer = setTimeout(() => done(new SpoolError('STORE_UNAVAILABLE', `redis not ready within ${ms} ms: ${lastError}`)), ms);
    client.on('ready', onReady);
    client.on('error', onError);
  });
}

/**
 * Connects, waits until Redis is ready, and loads the scripts (SCRIPT LOAD on every master, so
 * a Lua error shows now and the first EVALSHA finds its script).
 */
export async function openRedisStore(target: RedisTarget, options: RedisStoreOptions = {}): Promise<RedisStore> {
  const settings = { ...DEFAULTS, ...definedOnly(options) };
  const retryDelay = backoff(settings.reconnectMinMs, settings.reconnectMaxMs);
  // Fail fast rather than queue: a command is sent only on a ready connection, is never resent
  // after a disconnect (maxRetriesPerRequest 0 rejects what was in flight), and times out. The
  // caller (the gateway's flusher) owns retries and their budget, and nothing runs later than
  // the caller was told.
  const connection: IoRedisOptions = {
    ...(options.redisOptions as IoRedisOptions | undefined),
    connectionName: options.redisOptions?.connectionName ?? 'spool',
    commandTimeout: settings.commandTimeoutMs,
    connectTimeout: settings.connectTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: retryDelay,
  };
  let client: Client;
  if ('url' in target) {
    client = new Redis(target.url, { ...connection, enableAutoPipelining: true });
  } else {
    // Cluster node connections always queue and never reconnect by themselves (the cluster
    // reconnects them), whatever is asked: the cluster-level options below bound them instead.
    const { retryStrategy: _nodeRetry, enableOfflineQueue: _nodeQueue, ...nodeOptions } = connection;
    const clusterOptions: ClusterOptions & { redisOptions: typeof nodeOptions } = {
      redisOptions: nodeOptions,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      scaleReads: 'master',
      clusterRetryStrategy: retryDelay,
    };
    client = new Cluster(target.cluster.map(parseEndpoint), clusterOptions);
  }
  // Calls see their own failures; the listener also keeps ioredis from printing them.
  const onError = options.onConnectionError;
  client.on('error', (error: Error) => onError?.(error, 'commands'));
  try {
    await whenReady(client, settings.startTimeoutMs);
    for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { numberOfKeys: SESSION_KEY_COUNT, lua });
    // Loaded now so that a script that does not compile fails here, not on the first write.
    const masters = client instanceof Cluster ? client.nodes('master') : [client];
    await Promise.all(masters.flatMap((node) => Object.values(SCRIPTS).map((lua) => node.script('LOAD', lua))));
  } catch (error) {
    client.disconnect();
    throw storeError(error, 'startup');
  }
  const subscriberOptions: IoRedisOptions = { ...connection, autoResubscribe: false, connectionName: `${connection.connectionName ?? 'spool'}:notices` };
  return new RedisStore(client, options, {
    pingTimeoutMs: settings.pingTimeoutMs,
    retryDelay,
    connectSubscriber: (node) => {
      const redis = node === undefined ? new Redis((target as { url: string }).url, subscriberOptions) : new Redis({ ...subscriberOptions, ...node });
      redis.on('error', (error: Error) => onError?.(error, 'notices'));
      return redis;
    },
  });
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

interface Wiring {
  readonly pingTimeoutMs: number;
  readonly retryDelay: (attempt: number) => number;
  /** A subscriber connection: to the standalone server (no host) or to one cluster node. */
  readonly connectSubscriber: (node?: { host: string; port: number }) => Redis;
}

type ChunkItem = Extract<WriteItem, { op: 'chunk' }>;
type EndItem = Extract<WriteItem, { op: 'end' }>;
type KeyedItem = Extract<WriteItem, { op: 'append' }>;

/** The event a chunk or append item stores, without its offset (the stream entry id holds it). */
function storedFields(item: ChunkItem | KeyedItem): Omit<SessionEvent, 'offset'> {
  // One literal per shape, no spread: a spread copy falls off V8's fast path (engine.ts, bench:engine).
  if (item.op === 'append') return { type: 'append', key: item.key, kind: item.kind, priority: item.priority, ts: item.ts, data: item.data };
  return item.kind === undefined
    ? { type: 'chunk', generationId: item.generationId, seq: item.seq, priority: item.priority, ts: item.ts, data: item.data }
    : { type: 'chunk', generationId: item.generationId, seq: item.seq, kind: item.kind, priority: item.priority, ts: item.ts, data: item.data };
}

/** A stream entry's body: the hand-written spool.v1 encoder's bytes (msgpackr's, without its per-call generality). */
function bodyOf(fields: Omit<SessionEvent, 'offset'>): Buffer {
  const bytes = encodeEventFields(fields);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A gen.end event's fields without its offset (its body is packed by the script, not sent). */
function endFields(item: EndItem): Omit<SessionEvent, 'offset'> {
  return item.error === undefined
    ? { type: 'gen.end', generationId: item.generationId, seq: item.seq, status: item.status, priority: 3, ts: item.ts }
    : { type: 'gen.end', generationId: item.generationId, seq: item.seq, status: item.status, error: item.error, priority: 3, ts: item.ts };
}

function decodeTrimmed(raw: unknown): TrimmedEvent[] {
  return (raw as [number, number, number][]).map(([offset, priority, size]) => ({ offset, priority: priority as Priority, size }));
}

function decodeResult(raw: readonly unknown[]): WriteResult {
  const [code, value, endStatus] = raw as [number, number | undefined, EndStatus | undefined];
  switch (code) {
    case RESULT.ok:
      return { status: 'ok', offset: value as number };
    case RESULT.duplicate:
      return endStatus === undefined ? { status: 'duplicate', offset: value as number } : { status: 'duplicate', offset: value as number, endStatus };
    case RESULT.fenced:
      return { status: 'fenced', epoch: value as number };
    case RESULT.closed:
      return { status: 'closed' };
    case RESULT.seqGap:
      return { status: 'seq_gap', expected: value as number };
    case RESULT.full:
      return { status: 'full' };
    case RESULT.dropped:
      return { status: 'dropped' };
    case RESULT.busy:
      return { status: 'busy', lastWriteTs: value as number };
    case RESULT.conflict:
      return { status: 'conflict', head: value as number };
    default:
      throw new SpoolError('INTERNAL', `redis append script answered unknown result code ${String(code)}`);
  }
}

function num(value: string | undefined): number {
  return value === undefined ? 0 : Number(value);
}

/** SessionStore on Redis / Redis Cluster. Create it with `openRedisStore`. */
export class RedisStore implements SessionStore {
  /** Effective options (defaults filled in, dedupe window raised to at least 2 minutes). */
  readonly options: StoreOptions;
  private readonly config: string[];
  private readonly notices: NoticeHub;
  private readonly pending = new Set<Promise<unknown>>();
  private closing: Promise<void> | null = null;

  constructor(
    private readonly client: Client,
    options: Partial<StoreOptions>,
    private readonly wiring: Wiring,
  ) {
    this.options = normalizeOptions(options);
    const { retention, sessionTtlMs, dedupeWindowMs } = this.options;
    const sharded = client instanceof Cluster;
    // ARGV 1-6 of both scripts (redis-scripts.ts); PEXPIRE takes whole milliseconds.
    this.config = [
      String(retention.maxEvents),
      String(retention.maxBytes),
      String(retention.criticalFactor),
      String(Math.max(1, Math.round(sessionTtlMs))),
      String(dedupeWindowMs),
      sharded ? 'SPUBLISH' : 'PUBLISH',
    ];
    const readHead = (session: string): Promise<Offset> => this.readHead(session);
    if (client instanceof Cluster) {
      this.notices = new NoticeHub(
        clusterRouting({ cluster: client, connect: (host, port) => wiring.connectSubscriber({ host, port }), readHead, retryDelay: wiring.retryDelay }),
      );
      // After every slots refresh, sessions whose slot moved follow it to its new owner.
      client.on('refresh', () => this.notices.reroute());
    } else {
      this.notices = new NoticeHub(standaloneRouting({ connect: () => wiring.connectSubscriber(), readHead, retryDelay: wiring.retryDelay }));
    }
  }

  meta(session: string): Promise<SessionMeta> {
    return this.run('meta', async () => metaOf((await this.client.hgetall(sessionKeys(session)[META] as string)) as Record<string, string>));
  }

  /**
   * SCAN over every master for `s:{*}:meta`; the cursor is `<master index>:<scan cursor>`. A page
   * holds what the SCAN calls it took returned (about `limit`, maybe more), in no order.
   */
  list(cursor: string | null, limit: number): Promise<SessionPage> {
    return this.run('list', async () => {
      const masters = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
      let [node, scan] = cursor === null ? [0, '0'] : parseListCursor(cursor);
      const ids: string[] = [];
      while (node < masters.length && ids.length < Math.max(1, limit)) {
        const [next, keys] = await (masters[node] as Redis).scan(scan, 'MATCH', 's:{*}:meta', 'COUNT', Math.max(10, limit * 2));
        for (const key of keys) ids.push(key.slice('s:{'.length, -'}:meta'.length));
        if (next === '0') {
          node += 1;
          scan = '0';
        } else {
          scan = next;
        }
      }
      const metas = await Promise.all(ids.map((id) => this.client.hgetall(sessionKeys(id)[META] as string)));
      const sessions: SessionSummary[] = [];
      ids.forEach((id, i) => {
        const raw = metas[i] as Record<string, string>;
        // A key that expired between the SCAN and the read is not listed.
        if (raw['head'] !== undefined) sessions.push({ id, ...metaOf(raw) });
      });
      return { sessions, cursor: node < masters.length ? `${node}:${scan}` : null };
    });
  }

  inspect(session: string): Promise<SessionDetails | null> {
    return this.run('inspect', async () => {
      // KEYS order of the scripts: log, meta, p0, p1, p2, seq, keys, ended, dedupe, seqruns.
      const keys = sessionKeys(session) as string[];
      const [raw, debug, low, normal, endedRaw] = await Promise.all([
        this.client.hgetall(keys[1] as string),
        this.client.lrange(keys[2] as string, 0, -1),
        this.client.lrange(keys[3] as string, 0, -1),
        this.client.lrange(keys[4] as string, 0, -1),
        this.client.hgetall(keys[7] as string),
      ]);
      if ((raw as Record<string, string>)['head'] === undefined) return null;
      const fields = raw as Record<string, string>;
      // Each list entry is a batch, "firstOffset:size,size,...", the front one trimmed up to its priority's floor.
      const retainedIn = (entries: string[], floor: number): number => {
        let events = 0;
        for (const entry of entries) events += entry.split(',').length;
        const front = entries[0];
        return front === undefined ? 0 : events - Math.max(0, floor - Number.parseInt(front, 10));
      };
      const endedList = Object.entries(endedRaw as Record<string, string>)
        .map(([id, value]) => {
          const sep = value.indexOf(':');
          return { id, offset: Number(value.slice(0, sep)), status: value.slice(sep + 1) as EndStatus };
        })
        .sort((a, b) => a.offset - b.offset);
      return { ...metaOf(fields), lastWriteTs: num(fields['lastWriteTs']), retained: [retainedIn(debug, num(fields['floor0'])), retainedIn(low, num(fields['floor1'])), retainedIn(normal, num(fields['floor2'])), num(fields['criticalCount'])], ended: endedList };
    });
  }

  openGeneration(session: string, request: OpenRequest): Promise<OpenResult> {
    return this.run('openGeneration', async () => {
      const args = [
        request.generationId,
        request.takeover ? '1' : '0',
        request.resumeOnly === true ? '1' : '0',
        String(request.ts),
        request.tag,
        request.resumeTag ?? '',
        request.secret ?? '',
      ];
      const reply = (await this.evalScript('spoolOpen', session, args)) as unknown[];
      switch (reply[0]) {
        case 'resumed':
          return { status: 'resumed', epoch: reply[1] as number, nextSeq: reply[2] as number, startOffset: reply[3] as Offset, tag: reply[4] as string, takeover: reply[5] === 1 };
        case 'closed':
          return { status: 'closed', endStatus: reply[1] as EndStatus, endOffset: reply[2] as Offset };
        case 'unknown':
          return { status: 'unknown' };
        case 'active':
          return { status: 'active', activeId: reply[1] as string, epoch: reply[2] as number };
        case 'full':
          return { status: 'full' };
        case 'opened': {
          const [, epoch, startOffset, fenced, fencedSeq, fencedOffset, trimmed] = reply as [string, number, Offset, string | false, number, Offset, unknown];
          const events: SessionEvent[] = [];
          if (fenced !== false) {
            events.push({ offset: fencedOffset, type: 'gen.end', generationId: fenced, seq: fencedSeq, status: 'fenced', priority: 3, ts: request.ts });
          }
          events.push({ offset: startOffset, type: 'gen.start', generationId: request.generationId, priority: 3, ts: request.ts });
          return { status: 'opened', epoch, nextSeq: 0, startOffset, events, trimmed: decodeTrimmed(trimmed), fenced: fenced === false ? null : fenced };
        }
        default:
          throw new SpoolError('INTERNAL', `redis open script answered ${JSON.stringify(reply[0])}`);
      }
    });
  }

  reset(session: string, ts: number): Promise<ResetResult> {
    return this.run('reset', async () => {
      const reply = (await this.evalScript('spoolReset', session, [String(ts)])) as unknown[];
      if (reply[0] === 'unknown') return { status: 'unknown' };
      if (reply[0] !== 'reset') throw new SpoolError('INTERNAL', `redis reset script answered ${JSON.stringify(reply[0])}`);
      const [, epoch, head, cleared, fenced] = reply as [string, number, Offset, Offset, string | false];
      const events: SessionEvent[] = [{ offset: head, type: 'session.reset', priority: 3, ts }];
      return { status: 'reset', epoch, head, cleared, fenced: fenced === false ? null : fenced, events };
    });
  }

  delete(session: string): Promise<DeleteResult> {
    return this.run('delete', async () => {
      const reply = (await this.evalScript('spoolDelete', session, [])) as unknown[];
      if (reply[0] === 'unknown') return { status: 'unknown' };
      if (reply[0] !== 'deleted') throw new SpoolError('INTERNAL', `redis delete script answered ${JSON.stringify(reply[0])}`);
      const [, epoch, head, fenced] = reply as [string, number, Offset, string | false];
      return { status: 'deleted', epoch, head, fenced: fenced === false ? null : fenced };
    });
  }

  append(session: string, items: readonly WriteItem[]): Promise<AppendResult> {
    return this.run('append', async () => {
      const header: unknown[] = [];
      const bodies: Buffer[] = [];
      // Per item: the event it stores, without its offset (it becomes the event once the script
      // gives the offset), and where its body lies among the bytes sent (for the readers' frame).
      const fieldsOf: (Omit<SessionEvent, 'offset'> | undefined)[] = new Array<Omit<SessionEvent, 'offset'> | undefined>(items.length);
      const blobOf: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(items.length);
      const startOf: number[] = new Array<number>(items.length);
      const endOf: number[] = new Array<number>(items.length);
      // Consecutive stored chunks of one generation travel as one `chunks` item (a run), their
      // bodies encoded end to end as one argument once the run is complete.
      const runs: ChunkRun[] = [];
      let run: ChunkRun | null = null;
      items.forEach((item, i) => {
        if (item.op === 'chunk' && item.drop !== true) {
          if (run === null || run.generationId !== item.generationId || run.epoch !== item.epoch || run.firstSeq + run.items.length !== item.seq) {
            run = { generationId: item.generationId, epoch: item.epoch, firstSeq: item.seq, priorities: [], tss: [], sizes: [], lengths: [], fields: [], items: [], argument: bodies.length };
            header.push([ITEM.chunks, item.generationId, item.epoch, item.seq, run.priorities, run.tss, run.sizes, run.lengths]);
            runs.push(run);
            bodies.push(EMPTY_BODY); // the run's bodies, below
          }
          const fields = storedFields(item);
          fieldsOf[i] = fields;
          run.priorities.push(item.priority);
          run.tss.push(item.ts);
          run.sizes.push(item.size);
          run.fields.push(fields);
          run.items.push(i);
          return;
        }
        run = null;
        if (item.op === 'chunk') {
          // A dropped chunk stores nothing: no body travels.
          header.push([ITEM.chunk, item.generationId, item.epoch, item.seq, item.priority, item.ts, item.size, true]);
        } else if (item.op === 'end') {
          header.push([ITEM.end, item.generationId, item.epoch, item.seq, item.status, item.ts, item.error ?? false, item.ifIdleSince ?? false]);
        } else {
          header.push([ITEM.append, item.key, item.priority, item.ts, item.size, item.ifHead ?? false]);
          const fields = storedFields(item);
          const body = bodyOf(fields);
          fieldsOf[i] = fields;
          bodies.push(body);
          blobOf[i] = body;
          startOf[i] = 0;
          endOf[i] = body.length;
        }
      });
      for (const r of runs) {
        const { bytes, ends } = encodeEventFieldsEndToEnd(r.fields);
        bodies[r.argument] = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        let start = 0;
        ends.forEach((end, j) => {
          const i = r.items[j] as number;
          r.lengths.push(end - start);
          blobOf[i] = bytes;
          startOf[i] = start;
          endOf[i] = end;
          start = end;
        });
      }
      const [head, rawResults, trimmed] = (await this.evalScript('spoolAppend', session, [packr.pack(header), ...bodies])) as [Offset, unknown[][], unknown];
      const results = rawResults.map(decodeResult);
      // The events stored now: the fields sent, with the offset the script gave (ok results come
      // in offset order). Their readers' encoding is made from the bodies sent, not encoded
      // again; a gen.end, which the script packed, is encoded here.
      const events: SessionEvent[] = [];
      const blobs: Uint8Array[] = [];
      const starts: number[] = [];
      const ends: number[] = [];
      const offsets: Offset[] = [];
      results.forEach((result, i) => {
        const item = items[i] as WriteItem;
        if (result.status !== 'ok' || (item.op === 'chunk' && item.drop === true)) return;
        let blob = blobOf[i];
        let fields = fieldsOf[i];
        if (fields === undefined || blob === undefined) {
          fields = endFields(item as EndItem);
          blob = encodeEventFields(fields);
          startOf[i] = 0;
          endOf[i] = blob.length;
        }
        const event = fields as { offset: Offset } & Omit<SessionEvent, 'offset'>;
        event.offset = result.offset;
        events.push(event as SessionEvent);
        blobs.push(blob);
        starts.push(startOf[i] as number);
        ends.push(endOf[i] as number);
        offsets.push(result.offset);
      });
      const decoded = decodeTrimmed(trimmed);
      return events.length === 0 ? { results, events, trimmed: decoded, head } : { results, events, trimmed: decoded, head, encoded: encodeEventsFromFields(blobs, starts, ends, offsets) };
    });
  }

  read(session: string, requestedAfter: Offset, limit: number): Promise<ReadResult> {
    return this.run('read', async () => {
      // A negative offset means "from the start"; clamping keeps gaps from reaching below 1.
      const after = Math.max(0, requestedAfter);
      const keys = sessionKeys(session);
      if (limit < 1) return { items: [], head: await this.readHead(session), through: after };
      // One script, so the head and the trim state match the events they come with (READ_SCRIPT).
      const commands = this.client as unknown as ScriptCommands;
      const [metaReply, fronts, entries, ended] = (await commands.spoolReadBuffer(...keys, ...this.config, noticeChannel(session), String(after + 1), String(limit))) as unknown as [
        (Buffer | null)[],
        (Buffer | null)[],
        [Buffer, Buffer[]][],
        number,
      ];
      const metaField = (i: number): number => num(metaReply[i]?.toString('latin1'));
      const head = metaField(0);
      const retainedFrom = [0, 1, 2].map((priority) => firstRetained(fronts[priority]?.toString('latin1') ?? null, metaField(priority + 1)));
      const events: SessionEvent[] = [];
      let examined = after;
      let full = false;
      for (const [id, entryFields] of entries) {
        const first = Number.parseInt(id.toString('latin1'), 10);
        for (let i = 1; i < entryFields.length; i += 2) {
          const offset = first + (i - 1) / 2;
          if (offset <= after) continue;
          if (events.length >= limit) {
            full = true;
            break;
          }
          examined = offset;
          // The stored body has every field but the offset: set it on the decoded object rather
          // than copying the object into a new one.
          const event = decodeEventValue(entryFields[i] as Buffer) as { offset: Offset } & Omit<SessionEvent, 'offset'>;
          // Trimmed: its priority's retention index starts after it (trimming goes oldest first).
          if (event.priority < 3 && offset < (retainedFrom[event.priority] as number)) continue;
          event.offset = offset;
          events.push(event as SessionEvent);
        }
        if (full) break;
      }
      if (full) return assembleRead(after, events, head, false);
      // Every entry after `after` was read: what is missing up to the head was trimmed.
      if (ended === 1) return assembleRead(after, events, head, true);
      // More entries may follow; everything up to the last offset examined was seen.
      return { ...assembleRead(after, events, examined, true), head };
    });
  }

  /** Redis expires sessions itself (key TTLs) and the write scripts prune dedupe records: nothing to do. */
  async expire(_now: number): Promise<number> {
    this.assertOpen();
    return 0;
  }

  watch(session: string, listener: ChangeListener): () => void {
    this.assertOpen();
    return this.notices.watch(session, listener);
  }

  /** PING every master within pingTimeoutMs. */
  ping(): Promise<void> {
    return this.run('ping', async () => {
      const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
      if (this.client.status !== 'ready' || nodes.length === 0) throw new SpoolError('STORE_UNAVAILABLE', `redis is ${this.client.status}`);
      await withTimeout(Promise.all(nodes.map((node) => node.ping())), this.wiring.pingTimeoutMs, 'ping');
    });
  }

  /** Stops new calls, waits for calls in flight, then closes every connection. Idempotent. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closing = (async () => {
        await Promise.allSettled([...this.pending]);
        this.notices.close();
        try {
          await this.client.quit();
        } catch {
          this.client.disconnect();
        }
      })();
    }
    return this.closing;
  }

  /** Sessions with a pub/sub subscription in this process. */
  get watchedSessions(): number {
    return this.notices.sessions;
  }

  private assertOpen(): void {
    if (this.closing !== null) throw new SpoolError('CLOSED', 'the Redis store is closed; open it again with openRedisStore');
  }

  /** Runs one call: rejects after close, maps Redis failures to SpoolErrors, and is waited for by close(). */
  private run<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const done = work().catch((error: unknown) => {
      throw storeError(error, what);
    });
    this.pending.add(done);
    const forget = (): void => void this.pending.delete(done);
    done.then(forget, forget);
    return done;
  }

  private async readHead(session: string): Promise<Offset> {
    return num((await this.client.hget(sessionKeys(session)[META] as string, 'head')) ?? undefined);
  }

  /** Runs one of the scripts on the session's keys; its reply is one msgpack value. */
  private async evalScript(name: ScriptName, session: string, args: readonly (string | Buffer)[]): Promise<unknown> {
    const commands = this.client as unknown as ScriptCommands;
    const reply = await commands[`${name}Buffer`](...sessionKeys(session), ...this.config, noticeChannel(session), ...args);
    return packr.unpack(reply as Buffer);
  }
}
