/**
 * Fan-out encodes a batch once (DESIGN §3): every live reader of a session gets the same encoded
 * buffer for a batch, however many readers there are. Pinned at the transport seam, where the
 * buffers handed to each socket are recorded.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { decodeFrame } from '../protocol/codec';
import { SUBPROTOCOL_MSGPACK } from '../protocol/types';
import { openLmdbStore } from '../store/lmdb';
import { MemoryStore } from '../store/memory';
import type { SessionStore } from '../store/types';
import { startGateway, type Gateway } from './index';
import { RawClient } from './test-helpers/raw-client';
import { TRANSPORT_NAMES, type Transport, type TransportName, type TransportSocket } from './transport';
import { loadUwsTransport } from './transport-uws';
import { wsTransport } from './transport-ws';

const TRANSPORTS: Record<TransportName, Transport> = { ws: wsTransport, uws: loadUwsTransport() };
const READERS = 100;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** `inner`, with every message handed to a socket's send() recorded per socket. */
function recording(inner: Transport, sent: Array<Array<Uint8Array | string>>): Transport {
  return {
    name: inner.name,
    listen: (options) =>
      inner.listen({
        ...options,
        accept: (socket) => {
          const log: Array<Uint8Array | string> = [];
          sent.push(log);
          const recorded: TransportSocket = {
            protocol: socket.protocol,
            remoteAddress: socket.remoteAddress,
            send: (message) => {
              log.push(message);
              socket.send(message);
            },
            bufferedAmount: () => socket.bufferedAmount(),
            onceDrained: (lowWaterBytes, callback) => socket.onceDrained(lowWaterBytes, callback),
            close: (code, reason) => socket.close(code, reason),
            terminate: () => socket.terminate(),
          };
          return options.accept(recorded);
        },
      }),
  };
}

/** The memory store leaves encoding to the gateway; LMDB hands over the bytes it stored the batch as. */
const STORES: Record<string, () => SessionStore> = {
  memory: () => new MemoryStore(),
  lmdb: () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-fanout-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    return openLmdbStore({ path: dir });
  },
};

describe.each(TRANSPORT_NAMES.flatMap((t) => Object.keys(STORES).map((s) => [t, s] as const)))('over %s on %s', (transportName, storeName) => {
  it(`${READERS} live readers of a session are handed one and the same encoded buffer per batch`, async () => {
    const sent: Array<Array<Uint8Array | string>> = [];
    const gw: Gateway = await startGateway({ port: 0, store: (STORES[storeName] as () => SessionStore)(), logger: pino({ level: 'silent' }), transport: recording(TRANSPORTS[transportName], sent) });
    cleanups.push(() => gw.close());
    const readers: RawClient[] = [];
    for (let i = 0; i < READERS; i++) {
      const reader = await RawClient.connect(gw.url, SUBPROTOCOL_MSGPACK);
      cleanups.push(() => reader.close());
      reader.send({ type: 'subscribe', id: 1, session: 's', from: 'now' });
      await reader.next((f) => f.type === 'live', 20_000);
      readers.push(reader);
    }
    const producer = await RawClient.connect(gw.url, SUBPROTOCOL_MSGPACK);
    cleanups.push(() => producer.close());
    const { token } = await producer.open('s', 'g');
    const items = Array.from({ length: 10 }, (_, i) => ({ data: `chunk ${i}` }));
    producer.send({ type: 'chunks', token, seq: 0, items });
    await producer.next((f) => f.type === 'ack' && f['seq'] === 9, 20_000);
    for (const reader of readers) await reader.next((f) => f.type === 'events' && f['events'].some((e: { offset: number }) => e.offset === 11), 20_000);

    // The buffers that carried the batch (offsets 2..11), per socket that got it.
    const carriers = sent
      .map((log) => log.filter((m) => typeof m !== 'string' && carriesOffset(m, 11)))
      .filter((found) => found.length > 0);
    expect(carriers).toHaveLength(READERS);
    expect(carriers.every((found) => found.length === 1)).toBe(true);
    expect(new Set(carriers.map((found) => found[0])).size).toBe(1);
    // Whoever encoded it, the batch arrives whole and in order.
    const frame = decodeFrame(carriers[0]?.[0] as Uint8Array, SUBPROTOCOL_MSGPACK) as { events: Array<{ offset: number; seq: number; data: string }> };
    expect(frame.events.map((e) => [e.offset, e.seq, e.data])).toEqual(items.map((item, i) => [i + 2, i, item.data]));
  }, 60_000);
});

function carriesOffset(message: Uint8Array, offset: number): boolean {
  const frame = decodeFrame(message, SUBPROTOCOL_MSGPACK) as { type?: string; events?: Array<{ offset: number }> };
  return frame.type === 'events' && (frame.events ?? []).some((e) => e.offset === offset);
}
