/**
 * The operator's commands of the `spool` CLI, talking to a running gateway's admin API
 * (protocol/ADMIN.md) over HTTP:
 *
 *   spool sessions [--limit N] [--cursor C] [--all]
 *   spool inspect <session>
 *   spool tail <session> [--from N] [--follow]
 *   spool reset <session>
 *   spool delete <session>
 *   spool end-generation <session> <generation> --status done|error|aborted [--error TEXT]
 *   spool toggles [--set key=value]...
 *
 * Every command takes `--admin-url URL` (env SPOOL_ADMIN_URL, default http://127.0.0.1:9091),
 * `--admin-token TOKEN` (env SPOOL_ADMIN_TOKEN, sent as a bearer token), `--json` (machine
 * output: one JSON document, or one JSON line per event for tail) and `--help`.
 *
 * Exit codes: 0 done; 1 the gateway refused (its error code is printed); 2 usage; 3 the gateway
 * could not be reached.
 */
import { parseArgs } from 'node:util';

export const ADMIN_COMMANDS: ReadonlySet<string> = new Set(['sessions', 'inspect', 'tail', 'reset', 'delete', 'end-generation', 'toggles']);

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9091';

export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

const HELP: Record<string, string> = {
  sessions: 'spool sessions [--limit N] [--cursor C] [--all]   list sessions (id, head, epoch, events, active generation)',
  inspect: 'spool inspect <session>                          a session in detail: retention per priority, generations, state here',
  tail: 'spool tail <session> [--from N] [--follow]        print the log after offset N (default 0); --follow waits for more',
  reset: 'spool reset <session>                            empty the log (offsets continue after a session.reset event)',
  delete: 'spool delete <session>                           delete the session whole (readers and producer get SESSION_DELETED)',
  'end-generation': 'spool end-generation <session> <generation> --status done|error|aborted [--error TEXT]',
  toggles: 'spool toggles [--set key=value]...                show or change runtime toggles (syncAppend, readOnly, degradeWatermark, maxReaderBufferedBytes, slowReaderTimeoutMs, logLevel)',
};

const COMMON = `common options: --admin-url URL (SPOOL_ADMIN_URL, default ${DEFAULT_ADMIN_URL}), --admin-token TOKEN (SPOOL_ADMIN_TOKEN), --json, --help
exit codes: 0 done, 1 refused by the gateway, 2 usage, 3 gateway unreachable`;

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Stops `tail --follow` (SIGINT in the real CLI). */
  readonly signal?: AbortSignal;
}

class UsageError extends Error {}

class Refused extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

class Unreachable extends Error {}

/** Runs one admin command; resolves with its exit code. */
export async function runAdminCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const command = argv[0] as string;
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv.slice(1),
      allowPositionals: true,
      options: {
        'admin-url': { type: 'string' },
        'admin-token': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        all: { type: 'boolean' },
        from: { type: 'string' },
        follow: { type: 'boolean', short: 'f' },
        status: { type: 'string' },
        error: { type: 'string' },
        set: { type: 'string', multiple: true },
      },
    }));
  } catch (error) {
    io.err(`spool ${command}: ${(error as Error).message}\n${HELP[command] ?? ''}\n`);
    return EXIT.usage;
  }
  if (values['help'] === true) {
    io.out(`${HELP[command]}\n${COMMON}\n`);
    return EXIT.ok;
  }
  const api = new AdminClient(
    (values['admin-url'] as string | undefined) ?? io.env['SPOOL_ADMIN_URL'] ?? DEFAULT_ADMIN_URL,
    (values['admin-token'] as string | undefined) ?? io.env['SPOOL_ADMIN_TOKEN'],
  );
  const json = values['json'] === true;
  try {
    switch (command) {
      case 'sessions':
        return await sessions(api, values, json, io);
      case 'inspect':
        return print(await api.call('GET', `/admin/sessions/${sessionArg(positionals, command)}`), json, io);
      case 'tail':
        return await tail(api, sessionArg(positionals, command), values, json, io);
      case 'reset':
        return print(await api.call('POST', `/admin/sessions/${sessionArg(positionals, command)}/reset`), json, io);
      case 'delete':
        return print(await api.call('DELETE', `/admin/sessions/${sessionArg(positionals, command)}`), json, io);
      case 'end-generation': {
        const session = sessionArg(positionals, command);
        const generation = positionals[1];
        if (generation === undefined) throw new UsageError('a generation id is required');
        const status = values['status'];
        if (typeof status !== 'string') throw new UsageError('--status done|error|aborted is required');
        const body = values['error'] === undefined ? { status } : { status, error: values['error'] };
        return print(await api.call('POST', `/admin/sessions/${session}/generations/${encodeURIComponent(generation)}/end`, body), json, io);
      }
      case 'toggles': {
        const sets = (values['set'] as string[] | undefined) ?? [];
        if (sets.length === 0) return print(await api.call('GET', '/admin/toggles'), json, io);
        return print(await api.call('PUT', '/admin/toggles', parseToggles(sets)), json, io);
      }
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`spool ${command}: ${error.message}\n${HELP[command] ?? ''}\n`);
      return EXIT.usage;
    }
    if (error instanceof Refused) {
      io.err(`spool ${command}: ${error.code} (HTTP ${error.status}): ${error.message}\n`);
      return EXIT.refused;
    }
    if (error instanceof Unreachable) {
      io.err(`spool ${command}: ${error.message}\n`);
      return EXIT.unreachable;
    }
    throw error;
  }
}

function sessionArg(positionals: readonly string[], command: string): string {
  const session = positionals[0];
  if (session === undefined || session === '') throw new UsageError(`spool ${command} needs a session id`);
  return encodeURIComponent(session);
}

function parseToggles(sets: readonly string[]): Record<string, unknown> {
  const change: Record<string, unknown> = {};
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set takes key=value, got ${JSON.stringify(set)}`);
    const raw = set.slice(eq + 1);
    // true/false and numbers as JSON; the gateway checks each value and names what it refuses.
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    change[set.slice(0, eq)] = value;
  }
  return change;
}

function print(body: unknown, json: boolean, io: CliIo): number {
  io.out(json ? `${JSON.stringify(body)}\n` : `${human(body)}\n`);
  return EXIT.ok;
}

/** Readable text: `key: value` lines, nested values as compact JSON. */
function human(body: unknown): string {
  if (body === null || typeof body !== 'object') return String(body);
  return Object.entries(body as Record<string, unknown>)
    .map(([key, value]) => `${key}: ${value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value)}`)
    .join('\n');
}

interface Page {
  readonly sessions: readonly { readonly id: string; readonly head: number; readonly epoch: number; readonly count: number; readonly active: { readonly id: string } | null; readonly readersHere: number }[];
  readonly cursor: string | null;
}

async function sessions(api: AdminClient, values: Record<string, unknown>, json: boolean, io: CliIo): Promise<number> {
  let cursor = (values['cursor'] as string | undefined) ?? null;
  const limit = (values['limit'] as string | undefined) ?? '100';
  const all = values['all'] === true;
  const listed: Page['sessions'][number][] = [];
  for (;;) {
    const query = new URLSearchParams({ limit });
    if (cursor !== null) query.set('cursor', cursor);
    const page = (await api.call('GET', `/admin/sessions?${query.toString()}`)) as Page;
    listed.push(...page.sessions);
    cursor = page.cursor;
    if (!all || cursor === null) break;
  }
  if (json) {
    io.out(`${JSON.stringify({ sessions: listed, cursor })}\n`);
    return EXIT.ok;
  }
  for (const s of listed) io.out(`${s.id}\thead ${s.head}\tepoch ${s.epoch}\tevents ${s.count}\tactive ${s.active?.id ?? '-'}\treaders here ${s.readersHere}\n`);
  if (cursor !== null) io.out(`(more: --cursor ${cursor})\n`);
  return EXIT.ok;
}

interface EventsPage {
  readonly items: readonly ({ readonly type: string; readonly offset?: number; readonly from?: number; readonly to?: number } & Record<string, unknown>)[];
  readonly head: number;
  readonly through: number;
}

async function tail(api: AdminClient, session: string, values: Record<string, unknown>, json: boolean, io: CliIo): Promise<number> {
  const fromText = (values['from'] as string | undefined) ?? '0';
  let after = Number(fromText);
  if (!Number.isSafeInteger(after) || after < 0) throw new UsageError(`--from takes an offset >= 0, got ${JSON.stringify(fromText)}`);
  const follow = values['follow'] === true;
  while (!io.signal?.aborted) {
    const query = new URLSearchParams({ after: String(after), limit: '500' });
    if (follow) query.set('wait', '25000');
    const page = (await api.call('GET', `/admin/sessions/${session}/events?${query.toString()}`, undefined, io.signal)) as EventsPage;
    for (const item of page.items) io.out(json ? `${JSON.stringify(item)}\n` : `${line(item)}\n`);
    after = Math.max(after, page.through);
    if (!follow && after >= page.head) break;
  }
  return EXIT.ok;
}

function line(item: EventsPage['items'][number]): string {
  if (item.type === 'gap') return `${item.from}-${item.to}\tgap (${String(item['reason'])})`;
  const who = [item['generationId'], item['seq'] === undefined ? undefined : `#${String(item['seq'])}`, item['key'], item['status']].filter((x) => x !== undefined).join(' ');
  const data = item['data'] === undefined ? '' : `\t${typeof item['data'] === 'string' ? item['data'] : JSON.stringify(item['data'])}`;
  return `${item.offset}\t${item.type}${who ? ` ${who}` : ''}${data}`;
}

/** The admin API over HTTP (fetch): JSON in and out, errors as Refused / Unreachable. */
class AdminClient {
  constructor(
    private readonly base: string,
    private readonly token: string | undefined,
  ) {}

  async call(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.base), {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      if (signal?.aborted) return { items: [], head: 0, through: 0 };
      throw new Unreachable(`cannot reach the admin API at ${this.base}: ${(error as Error).message}`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      throw new Refused(response.status, 'BAD_RESPONSE', `the admin API answered non-JSON: ${text.slice(0, 200)}`);
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
      throw new Refused(response.status, error?.code ?? 'HTTP_ERROR', error?.message ?? text.slice(0, 200));
    }
    return parsed;
  }
}
