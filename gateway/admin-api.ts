/**
 * The admin API (protocol/ADMIN.md): JSON over HTTP for an operator or an app's backend — list
 * and inspect sessions, reset or delete one, end a stuck generation, read and change the runtime
 * toggles. Every change goes through
 * the session's single writer (the actor), exactly like a producer's writes, so it is never
 * overtaken by writes queued before it nor overtakes writes queued after it.
 *
 * This file knows requests and answers, not sockets: whatever listener serves admin traffic
 * (and authenticates it) hands it `AdminRequest`s and writes back the `AdminResponse`.
 */
import { SpoolError, type ErrorCode } from '../protocol/errors';
import { isSessionId, type SessionId } from '../protocol/types';
import type { SessionStore } from '../store/types';
import type { ActorRegistry } from './registry';
import type { Toggles } from './toggles';

export interface AdminRequest {
  readonly method: string;
  /** The path without the query string, still percent-encoded. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** The parsed JSON body (undefined when there was none). */
  readonly body: unknown;
}

export interface AdminResponse {
  readonly status: number;
  readonly body: unknown;
}

/** Sessions per listing page: the default, and the most one page may ask for. */
export const ADMIN_PAGE_DEFAULT = 100;
export const ADMIN_PAGE_MAX = 1000;
/** The longest an events request may wait for something new. */
export const ADMIN_WAIT_MAX_MS = 60_000;

const ENDABLE = ['done', 'error', 'aborted'] as const;

/** HTTP status of each error an admin call can end with. */
const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  BAD_FRAME: 400,
  FORBIDDEN: 403,
  GENERATION_CLOSED: 409,
  STORE_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
};

export class AdminApi {
  constructor(
    private readonly deps: {
      readonly store: SessionStore;
      readonly registry: ActorRegistry;
      readonly toggles: Toggles;
      /** A session was reset or deleted here (the per-identity quotas forget what was written to it). */
      readonly cleared?: (session: SessionId) => void;
    },
  ) {}

  /** A reset's or delete's result, once `deps.cleared` was told. */
  private async clearing<T>(session: SessionId, result: Promise<T>): Promise<T> {
    const done = await result;
    this.deps.cleared?.(session);
    return done;
  }

  /** The answer to `request`, or null when its path is not the admin API's. */
  async handle(request: AdminRequest): Promise<AdminResponse | null> {
    const parts = request.path.split('/').filter((part) => part !== '');
    if (parts[0] !== 'admin' || (parts[1] !== 'sessions' && parts[1] !== 'toggles')) return null;
    try {
      if (parts[1] === 'toggles') {
        if (parts.length !== 2) return notFound(request);
        if (request.method === 'GET') return { status: 200, body: this.deps.toggles.values };
        if (request.method === 'PUT') return { status: 200, body: this.deps.toggles.update(request.body) };
        return notFound(request);
      }
      const session = parts[2] === undefined ? undefined : sessionOf(parts[2]);
      if (session === undefined) {
        if (request.method === 'GET' && parts.length === 2) return await this.list(request.query);
        return notFound(request);
      }
      if (parts.length === 3) {
        if (request.method === 'GET') return await this.inspect(session);
        if (request.method === 'DELETE') return outcome(await this.clearing(session, this.deps.registry.run(session, (actor) => actor.delete())));
        return notFound(request);
      }
      if (request.method === 'GET' && parts.length === 4 && parts[3] === 'events') return await this.events(session, request.query);
      if (request.method === 'POST' && parts.length === 4 && parts[3] === 'reset') return outcome(await this.clearing(session, this.deps.registry.run(session, (actor) => actor.reset())));
      if (request.method === 'POST' && parts.length === 6 && parts[3] === 'generations' && parts[5] === 'end') {
        return await this.endGeneration(session, decodeURIComponent(parts[4] as string), request.body);
      }
      return notFound(request);
    } catch (error) {
      const spoolError = error instanceof SpoolError ? error : new SpoolError('INTERNAL', String(error));
      return { status: STATUS_OF[spoolError.code] ?? 500, body: { error: { code: spoolError.code, message: spoolError.message } } };
    }
  }

  private async list(query: URLSearchParams): Promise<AdminResponse> {
    const limit = integerParam(query, 'limit', ADMIN_PAGE_DEFAULT, 1, ADMIN_PAGE_MAX);
    const page = await this.deps.store.list(query.get('cursor'), limit);
    const sessions = page.sessions.map((summary) => ({ ...summary, readersHere: this.deps.registry.peek(summary.id as SessionId)?.readerCount ?? 0 }));
    return { status: 200, body: { sessions, cursor: page.cursor } };
  }

  /**
   * A page of the session's log after `after` (events and gaps, as readers get them). With
   * `wait=MS` and nothing after `after` yet, answers when something arrives or MS passed: `tail
   * --follow` is a loop of these.
   */
  private async events(session: SessionId, query: URLSearchParams): Promise<AdminResponse> {
    const after = integerParam(query, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = integerParam(query, 'limit', ADMIN_PAGE_DEFAULT, 1, ADMIN_PAGE_MAX);
    const waitMs = integerParam(query, 'wait', 0, 0, ADMIN_WAIT_MAX_MS);
    const store = this.deps.store;
    let page = await store.read(session, after, limit);
    if (page.items.length === 0 && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          stop();
          resolve();
        };
        const timer = setTimeout(done, waitMs);
        const stop = store.watch(session, (notice) => {
          if (notice.head > after || notice.deleted === true) done();
        });
      });
      page = await store.read(session, after, limit);
    }
    return { status: 200, body: page };
  }

  private async inspect(session: SessionId): Promise<AdminResponse> {
    const details = await this.deps.store.inspect(session);
    if (details === null) return { status: 404, body: { error: { code: 'NOT_FOUND', message: `no session ${session}` } } };
    const actor = this.deps.registry.peek(session);
    return { status: 200, body: { id: session, ...details, here: { loaded: actor !== undefined, readers: actor?.readerCount ?? 0, queueDepth: actor?.queueDepth ?? 0 } } };
  }

  private async endGeneration(session: SessionId, generation: string, body: unknown): Promise<AdminResponse> {
    const { status, error } = (body ?? {}) as { status?: unknown; error?: unknown };
    if (!ENDABLE.includes(status as (typeof ENDABLE)[number])) throw new SpoolError('BAD_FRAME', `status must be one of ${ENDABLE.join(', ')}, got ${JSON.stringify(status)}`);
    if (error !== undefined && typeof error !== 'string') throw new SpoolError('BAD_FRAME', 'error must be a string');
    const finished = await this.deps.registry.run(session, (actor) => actor.endGeneration(generation, status as (typeof ENDABLE)[number], error as string | undefined));
    return { status: 200, body: { generation: finished.generation, status: finished.status, offset: finished.offset } };
  }
}

function integerParam(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const text = query.get(name);
  if (text === null) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new SpoolError('BAD_FRAME', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function sessionOf(encoded: string): SessionId {
  let id: string;
  try {
    id = decodeURIComponent(encoded);
  } catch {
    throw new SpoolError('BAD_FRAME', `the session id in the path is not valid percent-encoding: ${encoded}`);
  }
  if (!isSessionId(id)) throw new SpoolError('BAD_FRAME', `not a session id: ${JSON.stringify(id)}`);
  return id;
}

/** A reset's or delete's outcome: 404 when there was no such session. */
function outcome(result: { readonly status: string }): AdminResponse {
  if (result.status === 'unknown') return { status: 404, body: { error: { code: 'NOT_FOUND', message: 'no such session' } } };
  return { status: 200, body: result };
}

function notFound(request: AdminRequest): AdminResponse {
  return { status: 404, body: { error: { code: 'NOT_FOUND', message: `no admin route ${request.method} ${request.path}` } } };
}
