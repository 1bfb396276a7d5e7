/**
 * A bare protocol client for gateway tests: sends frames as given and waits for frames by
 * predicate (with a timeout), so tests pin the wire behaviour independently of the SDK.
 */
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../protocol/codec';
import { SUBPROTOCOL_MSGPACK, type Frame, type Subprotocol } from '../../protocol/types';

// Loose on purpose: tests also read events and malformed answers through it.
export type AnyFrame = Record<string, any> & { type: string };

export class RawClient {
  readonly frames: AnyFrame[] = [];
  private cursor = 0;
  private waiters: Array<{ match: (f: AnyFrame) => boolean; resolve: (f: AnyFrame) => void }> = [];
  closed: { code: number; reason: string } | null = null;
  private closeWaiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket, readonly protocol: Subprotocol) {
    ws.on('message', (data, isBinary) => {
      const frame = decodeFrame(isBinary ? new Uint8Array(data as Buffer) : data.toString(), protocol) as AnyFrame;
      this.frames.push(frame);
      for (const w of [...this.waiters]) {
        if (w.match(frame)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(frame);
        }
      }
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.closeWaiters) w();
    });
  }

  static async connect(url: string, protocol: Subprotocol | string[] = SUBPROTOCOL_MSGPACK, hello = true, options: WebSocket.ClientOptions = {}): Promise<RawClient> {
    const ws = new WebSocket(url, protocol, options);
    // Listening from the 'open' event itself: a frame or a close that came in the same read as
    // the upgrade (a gateway that answers at once, or a slow machine) is emitted before any
    // continuation of an awaited promise runs, and would otherwise be lost.
    const client = await new Promise<RawClient>((resolve, reject) => {
      ws.once('open', () => resolve(new RawClient(ws, (ws.protocol || 'spool.v1.json') as Subprotocol)));
      ws.once('error', reject);
    });
    if (hello) {
      client.send({ type: 'hello', protocol: 1 });
      await client.next((f) => f.type === 'welcome');
    }
    return client;
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(encodeFrame(frame as unknown as Frame, this.protocol));
  }

  sendRaw(data: Buffer | string): void {
    this.ws.send(data);
  }

  /** The first frame after the last one consumed that matches, waiting for it if needed. */
  next(match: (f: AnyFrame) => boolean, timeoutMs = 20_000): Promise<AnyFrame> {
    for (let i = this.cursor; i < this.frames.length; i++) {
      const frame = this.frames[i] as AnyFrame;
      if (match(frame)) {
        this.cursor = i + 1;
        return Promise.resolve(frame);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`));
      }, timeoutMs);
      const done = (frame: AnyFrame): void => {
        clearTimeout(timer);
        this.cursor = this.frames.indexOf(frame) + 1;
        resolve(frame);
      };
      this.waiters.push({ match, resolve: done });
    });
  }

  async open(session: string, generation: string, extra: Record<string, unknown> = {}): Promise<AnyFrame> {
    const id = Math.floor(Math.random() * 1e9);
    this.send({ type: 'open', id, session, generation, ...extra });
    return this.next((f) => f.id === id && (f.type === 'opened' || f.type === 'error'));
  }

  waitClosed(timeoutMs = 20_000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve(this.closed as { code: number; reason: string });
      });
    });
  }

  /** Reads a session from `from` until `live`, returning events and gaps in arrival order. */
  async readAll(session: string, from: number | 'start' = 0): Promise<AnyFrame[]> {
    const id = Math.floor(Math.random() * 1e9);
    this.send({ type: 'subscribe', id, session, from });
    await this.next((f) => f.id === id && f.type === 'subscribed');
    const items: AnyFrame[] = [];
    for (;;) {
      const frame = await this.next((f) => f.session === session && (f.type === 'events' || f.type === 'gap' || f.type === 'live'));
      if (frame.type === 'live') break;
      if (frame.type === 'gap') items.push(frame);
      else items.push(...(frame['events'] as AnyFrame[]));
    }
    this.send({ type: 'unsubscribe', session });
    return items;
  }

  close(): void {
    this.ws.close();
  }
}
