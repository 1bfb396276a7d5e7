/**
 * Cross-process change notices for the Redis store (`SessionStore.watch`).
 *
 * The write scripts publish the new head on the session's channel `s:{id}:notify` (PUBLISH on a
 * standalone server, SPUBLISH on a cluster, where the `{id}` hash tag puts the channel on the
 * session's shard). This hub keeps ONE subscription per session per process, however many
 * listeners watch it, on dedicated subscriber connections ("links"): one for a standalone
 * server, one per master for a cluster (sharded pub/sub is served by the slot's owner only).
 *
 * Notices are never silently lost while a link is up, because a subscription is confirmed
 * before it counts, and every (re)subscription is followed by a read of the head:
 *
 *   watch(s) ──▶ link ready? ──no──▶ wait for 'ready' ─┐
 *                   │ yes                             │  (reconnect: every session of the link)
 *                   ▼                                 ▼
 *          SUBSCRIBE / SSUBSCRIBE, wait for the confirmation ──fails──▶ retry with backoff
 *                   │ confirmed
 *                   ▼
 *          read the head, notify it (heals notices missed while unsubscribed)
 *
 * On a cluster, a slot that moves (Redis answers MOVED or pushes an unsolicited sunsubscribe,
 * ioredis emits 'moved') triggers a slots refresh; after every refresh each session whose slot
 * has a new owner moves to that owner's link and goes through the same subscribe-then-heal path.
 */
import type { Cluster, Redis } from 'ioredis';
import type { Offset } from '../protocol/types';
import { notifyAll } from './notices';
import type { ChangeListener } from './types';

/** How sessions map to subscriber links. */
export interface NoticeRouting {
  /** 'classic' (SUBSCRIBE, standalone) or 'sharded' (SSUBSCRIBE, cluster). */
  readonly mode: 'classic' | 'sharded';
  /** The link a channel belongs on now ('' for the standalone server), or null if unknown (no slot map yet). */
  ownerOf(channel: string): string | null;
  /** Opens a subscriber connection to a link's server. */
  connect(owner: string): Redis;
  /** Reads a session's head with the command connection. */
  readHead(session: string): Promise<Offset>;
  /** Reconnect delay for a subscription that failed while its link is up. */
  retryDelay(attempt: number): number;
  /** A link was told its slot moved (cluster): refresh the slot map, which calls `reroute()`. */
  moved(): void;
}

interface Entry {
  readonly session: string;
  readonly channel: string;
  readonly listeners: Set<ChangeListener>;
  link: Link | null;
  /** Confirmed by the server on the link's current connection, and healed after it. */
  subscribed: boolean;
  /**
   * Bumped whenever the subscription may have been lost (moved to another link, connection
   * closed, slot moved): a confirmation that started before does not count.
   */
  epoch: number;
}

/** One dedicated subscriber connection and the sessions routed to it. */
class Link {
  readonly entries = new Set<Entry>();
  retryAttempt = 0;
  retryTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly owner: string,
    readonly redis: Redis,
  ) {}

  get ready(): boolean {
    return this.redis.status === 'ready';
  }
}

function invalidate(entry: Entry): void {
  entry.subscribed = false;
  entry.epoch += 1;
}

/** The largest number of channels sent in one SUBSCRIBE. */
const SUBSCRIBE_BATCH = 512;

export function noticeChannel(session: string): string {
  return `s:{${session}}:notify`;
}

export class NoticeHub {
  private readonly entries = new Map<string, Entry>();
  private readonly links = new Map<string, Link>();
  private closed = false;

  constructor(private readonly routing: NoticeRouting) {}

  /** Sessions with at least one listener (one subscription each). */
  get sessions(): number {
    return this.entries.size;
  }

  watch(session: string, listener: ChangeListener): () => void {
    const channel = noticeChannel(session);
    let entry = this.entries.get(channel);
    if (entry === undefined) {
      entry = { session, channel, listeners: new Set(), link: null, subscribed: false, epoch: 0 };
      this.entries.set(channel, entry);
      this.route(entry);
    }
    // A wrapper, so the same function watched twice is two subscriptions, each removed once.
    const own: ChangeListener = (notice) => listener(notice);
    entry.listeners.add(own);
    const watched = entry;
    return () => {
      if (!watched.listeners.delete(own) || watched.listeners.size > 0) return;
      this.entries.delete(watched.channel);
      this.detach(watched);
    };
  }

  /**
   * Moves every session whose slot changed owner (cluster: call after each slots refresh) and
   * routes sessions that had no owner yet.
   */
  reroute(): void {
    if (this.closed) return;
    for (const entry of this.entries.values()) {
      const owner = this.routing.ownerOf(entry.channel);
      if (owner === null || entry.link?.owner === owner) continue;
      this.detach(entry);
      this.route(entry);
    }
    for (const link of [...this.links.values()]) {
      // A link left with nothing to serve (its node lost its slots, or is gone) is closed; a
      // later watch opens it again if needed.
      if (link.entries.size === 0) this.closeLink(link);
      else if (link.ready) {
        const pending = [...link.entries].filter((entry) => !entry.subscribed);
        if (pending.length > 0) void this.subscribe(link, pending);
      }
    }
  }

  /** Closes every subscriber connection. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of [...this.links.values()]) this.closeLink(link);
    this.entries.clear();
  }

  private route(entry: Entry): void {
    const owner = this.routing.ownerOf(entry.channel);
    // No slot map yet: the next reroute (after the cluster's first refresh) places it.
    if (owner === null || this.closed) return;
    const link = this.linkFor(owner);
    entry.link = link;
    invalidate(entry);
    link.entries.add(entry);
    if (link.ready) void this.subscribe(link, [entry]);
  }

  private detach(entry: Entry): void {
    const link = entry.link;
    entry.link = null;
    invalidate(entry);
    if (link === null) return;
    link.entries.delete(entry);
    // Best effort: a connection that drops forgets its subscriptions anyway.
    if (link.ready) {
      const unsubscribe = this.routing.mode === 'sharded' ? link.redis.sunsubscribe(entry.channel) : link.redis.unsubscribe(entry.channel);
      unsubscribe.catch(() => undefined);
    }
  }

  private linkFor(owner: string): Link {
    const existing = this.links.get(owner);
    if (existing !== undefined) return existing;
    const redis = this.routing.connect(owner);
    const link = new Link(owner, redis);
    this.links.set(owner, link);
    const deliver = (channel: string, message: string): void => this.deliver(channel, message);
    redis.on(this.routing.mode === 'sharded' ? 'smessage' : 'message', deliver);
    redis.on('ready', () => {
      if (this.links.get(owner) !== link) return;
      link.retryAttempt = 0;
      void this.subscribe(link, [...link.entries]);
    });
    redis.on('close', () => {
      for (const entry of link.entries) invalidate(entry);
    });
    // ioredis emits 'moved' for a MOVED answer to SSUBSCRIBE and for the unsolicited
    // sunsubscribe a node pushes when it loses a slot (which channel, it does not say). Every
    // session of the link is subscribed again after the slot map is refreshed: on its new owner
    // if it moved; on this link otherwise, which is harmless if it did not move and answers
    // MOVED again if the refreshed map was still stale, so the map is refreshed until it is not.
    redis.on('moved', () => {
      for (const entry of link.entries) invalidate(entry);
      this.routing.moved();
    });
    return link;
  }

  private deliver(channel: string, message: string): void {
    const entry = this.entries.get(channel);
    if (entry === undefined) return;
    if (message === 'deleted') {
      notifyAll(entry.listeners, 0, true);
      return;
    }
    const head = Number(message);
    if (!Number.isSafeInteger(head)) return;
    notifyAll(entry.listeners, head);
  }

  /**
   * Subscribes `entries` on `link`, then reads and notifies each one's head. Entries that moved,
   * were unwatched or whose link dropped meanwhile are skipped after every await.
   */
  private async subscribe(link: Link, entries: readonly Entry[]): Promise<void> {
    const current = (entry: Entry): boolean => entry.link === link && this.entries.get(entry.channel) === entry && !this.closed;
    let failed = false;
    for (const batch of this.batches(entries)) {
      const channels = batch.map((entry) => entry.channel);
      const epochs = batch.map((entry) => entry.epoch);
      try {
        if (this.routing.mode === 'sharded') await link.redis.ssubscribe(...channels);
        else await link.redis.subscribe(...channels);
      } catch {
        failed = true;
        continue;
      }
      const confirmed = batch.filter((entry, i) => current(entry) && entry.epoch === epochs[i]);
      const confirmedEpochs = confirmed.map((entry) => entry.epoch);
      const heads = await Promise.allSettled(confirmed.map((entry) => this.routing.readHead(entry.session)));
      confirmed.forEach((entry, i) => {
        const head = heads[i];
        if (!current(entry)) return;
        if (head === undefined || head.status === 'rejected') {
          failed = true;
          return;
        }
        // Notified even if the subscription was lost meanwhile (a notice too many is harmless);
        // counted as subscribed only if nothing invalidated it since it was sent.
        if (entry.epoch === confirmedEpochs[i]) entry.subscribed = true;
        // Sent even for head 0: a session the server no longer has (it restarted without its
        // data, or the keys expired) is how a watcher learns its head went back (G9).
        notifyAll(entry.listeners, head.value);
      });
      // Subscriptions invalidated while in flight are sent again: by the retry below while the
      // link is up, and after 'ready' or the next reroute otherwise.
      if (batch.some((entry, i) => current(entry) && !entry.subscribed && entry.epoch !== epochs[i])) failed = true;
    }
    if (failed) this.scheduleRetry(link);
  }

  /** Sharded subscriptions must share a slot per SSUBSCRIBE: one channel per call there. */
  private batches(entries: readonly Entry[]): Entry[][] {
    const size = this.routing.mode === 'sharded' ? 1 : SUBSCRIBE_BATCH;
    const batches: Entry[][] = [];
    for (let i = 0; i < entries.length; i += size) batches.push(entries.slice(i, i + size));
    return batches;
  }

  /** Retries the unconfirmed subscriptions of a link that is up; a link that is down retries on 'ready'. */
  private scheduleRetry(link: Link): void {
    if (link.retryTimer !== null || this.closed) return;
    link.retryAttempt += 1;
    link.retryTimer = setTimeout(() => {
      link.retryTimer = null;
      if (this.links.get(link.owner) !== link || !link.ready) return;
      const pending = [...link.entries].filter((entry) => !entry.subscribed);
      if (pending.length > 0) void this.subscribe(link, pending);
    }, this.routing.retryDelay(link.retryAttempt));
    link.retryTimer.unref();
  }

  private closeLink(link: Link): void {
    if (this.links.get(link.owner) === link) this.links.delete(link.owner);
    if (link.retryTimer !== null) clearTimeout(link.retryTimer);
    link.retryTimer = null;
    for (const entry of link.entries) {
      entry.link = null;
      invalidate(entry);
    }
    link.entries.clear();
    link.redis.removeAllListeners('ready');
    link.redis.removeAllListeners('message');
    link.redis.removeAllListeners('smessage');
    link.redis.removeAllListeners('moved');
    link.redis.disconnect();
  }
}

/** Routing for a standalone server: one link, classic pub/sub. */
export function standaloneRouting(options: {
  connect(): Redis;
  readHead(session: string): Promise<Offset>;
  retryDelay(attempt: number): number;
}): NoticeRouting {
  return {
    mode: 'classic',
    ownerOf: () => '',
    connect: () => options.connect(),
    readHead: options.readHead,
    retryDelay: options.retryDelay,
    moved: () => undefined,
  };
}

/** Routing for a cluster: one link per master that owns a watched session's slot. */
export function clusterRouting(options: {
  cluster: Cluster;
  connect(host: string, port: number): Redis;
  readHead(session: string): Promise<Offset>;
  retryDelay(attempt: number): number;
}): NoticeRouting {
  const { cluster } = options;
  return {
    mode: 'sharded',
    ownerOf: (channel) => cluster.slots[keySlot(channel)]?.[0] ?? null,
    connect: (owner) => {
      const colon = owner.lastIndexOf(':');
      return options.connect(owner.slice(0, colon), Number(owner.slice(colon + 1)));
    },
    readHead: options.readHead,
    retryDelay: options.retryDelay,
    // The cluster emits 'refresh' when done; the store reroutes then.
    moved: () => cluster.refreshSlotsCache(),
  };
}

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for key slots. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** The cluster slot of a key or shard channel (hash tag rules included), 0..16383. */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b); // '{'
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  return crc & 0x3fff;
}
