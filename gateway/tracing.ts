/**
 * Spans of a gateway, when OpenTelemetry tracing is configured (otel.ts loads this module; with
 * tracing off nothing here is loaded and nothing on the hot path changes). It watches three
 * things the gateway already has, instead of threading a tracer through the actor:
 *
 *   connection ── opening / subscribing (W3C traceparent of open, subscribe or hello) ──┐
 *   store calls ── wrapStore: a span per call; opens and appends also drive ──────────┤ Tracing
 *   domain events ── emit: resume.attempt/live, generation.end, writes.failed … ──────┘
 *
 *   spool.generation (SERVER, parent: the producer's traceparent) open ──▶ gen.end (status)
 *     ├─ spool.store openGeneration
 *     └─ spool.persist (one per persisted batch: events, bytes, retries) ─ spool.store append (per attempt)
 *   spool.resume (SERVER, parent: the reader's traceparent) subscribe ──▶ live (from, to, gaps)
 *     └─ spool.store read (catch-up pages of this reader: the read that starts where it is)
 *
 * Parents are passed explicitly (no async context is needed or installed). Every map here is
 * bounded: an entry whose end never comes (a producer that vanished into another process) is
 * ended as 'abandoned' when the bound pushes it out.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import type { AppendResult, OpenRequest, OpenResult, SessionStore, WriteItem } from '../store/types';
import { decorateStore } from './store-decorator';
import type { DomainEvent, GatewayTracing } from './telemetry';

/** Entries kept per map at most (generations, pending opens and subscribes, resumes). */
const MAX_TRACKED = 10_000;

/** Store methods that get no span: the readiness probe (once a second) and teardown. */
const UNTRACED = new Set<PropertyKey>(['ping', 'close', 'watch']);

interface GenerationSpan {
  readonly id: string;
  readonly span: Span;
  readonly context: Context;
}

interface PendingBatch {
  /** The batch's first write: the flusher retries a batch with the same write objects. */
  readonly first: WriteItem | undefined;
  readonly span: Span;
  readonly context: Context;
  attempts: number;
}

interface ResumeSpan {
  readonly session: string;
  readonly span: Span;
  readonly context: Context;
  readonly from: number;
  /** The offset its next store read starts after (reads of other readers start elsewhere). */
  next: number;
}

interface PendingOpen {
  readonly context: Context;
  readonly connectionId: string;
}

/** A Map that forgets its oldest entry past MAX_TRACKED, telling `evicted`. */
class BoundedMap<V> extends Map<string, V> {
  constructor(private readonly evicted: (value: V) => void = () => {}) {
    super();
  }

  override set(key: string, value: V): this {
    this.delete(key);
    super.set(key, value);
    if (this.size > MAX_TRACKED) {
      const [oldestKey, oldest] = this.entries().next().value as [string, V];
      this.delete(oldestKey);
      this.evicted(oldest);
    }
    return this;
  }

  take(key: string): V | undefined {
    const value = this.get(key);
    if (value !== undefined) this.delete(key);
    return value;
  }
}

const abandon = (entry: { readonly span: Span }): void => {
  entry.span.setStatus({ code: SpanStatusCode.ERROR, message: 'abandoned (its end was not seen by this process)' });
  entry.span.end();
};

/** The context a W3C traceparent names (a child of the caller's span); ROOT for none or a malformed one. */
export function contextOf(traceparent: string | undefined): Context {
  if (traceparent === undefined) return ROOT_CONTEXT;
  const parent = parseTraceParent(traceparent);
  return parent === null ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, { ...parent, isRemote: true });
}

export class Tracing implements GatewayTracing {
  /** Per session, the generation span this process opened (or resumed) and has not seen end. */
  private readonly generations = new BoundedMap<GenerationSpan>(abandon);
  /** Generation opens announced by a connection, until their store call: `session\0generation`. */
  private readonly opens = new BoundedMap<PendingOpen>();
  /** Open store calls by request (a retried open is the same request object). */
  private readonly openSpans = new WeakMap<OpenRequest, GenerationSpan | null>();
  /** Subscribes announced by a connection, until their resume starts: `connection\0session`. */
  private readonly subscribes = new BoundedMap<Context>();
  /** Resumes between their attempt and live: `connection\0session`; and by session, for their reads. */
  private readonly resumes = new BoundedMap<ResumeSpan>((resume) => {
    this.unindex(resume);
    abandon(resume);
  });
  private readonly resumesBySession = new Map<string, Set<ResumeSpan>>();
  /** Per session, the batch whose store call failed and is being retried. */
  private readonly batches = new BoundedMap<PendingBatch>(abandon);

  constructor(private readonly tracer: Tracer) {}

  opening(session: string, generation: string, connectionId: string, traceparent: string | undefined): void {
    this.opens.set(`${session}\0${generation}`, { context: contextOf(traceparent), connectionId });
  }

  subscribing(session: string, connectionId: string, traceparent: string | undefined): void {
    this.subscribes.set(`${connectionId}\0${session}`, contextOf(traceparent));
  }

  emit(event: DomainEvent): void {
    switch (event.name) {
      case 'resume.attempt': {
        const key = `${event.connectionId}\0${event.session}`;
        const parent = this.subscribes.take(key) ?? ROOT_CONTEXT;
        const span = this.tracer.startSpan(
          'spool.resume',
          { kind: SpanKind.SERVER, attributes: { 'session.id': event.session, 'connection.id': event.connectionId, 'spool.resume.from': event.from } },
          parent,
        );
        const previous = this.resumes.take(key);
        if (previous) {
          this.unindex(previous);
          abandon(previous);
        }
        const resume: ResumeSpan = { session: event.session, span, context: trace.setSpan(ROOT_CONTEXT, span), from: event.from, next: event.from };
        this.resumes.set(key, resume);
        let sessionResumes = this.resumesBySession.get(event.session);
        if (!sessionResumes) this.resumesBySession.set(event.session, (sessionResumes = new Set()));
        sessionResumes.add(resume);
        return;
      }
      case 'resume.live': {
        const resume = this.resumes.take(`${event.connectionId}\0${event.session}`);
        if (!resume) return;
        this.unindex(resume);
        resume.span.setAttributes({
          'spool.resume.to': event.offset,
          'spool.resume.caught_up_offsets': event.offset - resume.from,
          'spool.resume.gaps': event.gaps,
          'spool.resume.latency_ms': event.latencyMs,
        });
        resume.span.end();
        return;
      }
      case 'generation.end':
        this.endGeneration(event.session, event.generation, event.status, event.offset);
        return;
      case 'write.fenced':
        this.generations.get(event.session)?.span.addEvent('write.fenced', { 'generation.id': event.generation, 'spool.epoch': event.epoch });
        return;
      case 'session.rewound':
        this.generations.get(event.session)?.span.addEvent('session.rewound', { 'spool.head.from': event.fromHead, 'spool.head.to': event.toHead });
        return;
      case 'writes.failed': {
        // The retry budget ran out: the batch being retried failed for good.
        const batch = this.batches.take(event.session);
        if (batch) {
          batch.span.setAttributes({ 'spool.batch.retries': batch.attempts - 1 });
          batch.span.setStatus({ code: SpanStatusCode.ERROR, message: `${event.code}: ${event.writes} writes failed` });
          batch.span.end();
        }
        return;
      }
      case 'buffer.trimmed':
        return;
    }
  }

  /** `store` with a span per call; `system` names it (db.system.name: lmdb, redis, memory …). */
  wrapStore(store: SessionStore, system: string): SessionStore {
    const traced = new Map<PropertyKey, unknown>();
    const overrides: Partial<SessionStore> = {
      openGeneration: (session, request) => this.openGeneration(store, system, session, request),
      append: (session, items) => this.append(store, system, session, items),
      reset: (session, ts) =>
        this.call(system, 'reset', session, this.contextFor(session), () => store.reset(session, ts)).then((result) => {
          if (result.status === 'reset' && result.fenced !== null) this.endGeneration(session, result.fenced, 'fenced', result.head);
          return result;
        }),
      read: (session, after, limit) => {
        const resume = this.resumeReading(session, after);
        return this.call(system, 'read', session, resume?.context ?? ROOT_CONTEXT, () => store.read(session, after, limit)).then((page) => {
          if (resume) resume.next = page.through;
          return page;
        });
      },
    };
    const decorated = decorateStore(store, overrides);
    // Every other method (meta, expire, reset, and any the interface gains) gets a span of its
    // own: a meta read serves a reader's subscribe as often as the writer, so it joins no trace.
    return new Proxy(decorated, {
      get: (target, property) => {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== 'function' || UNTRACED.has(property) || Object.prototype.hasOwnProperty.call(overrides, property)) return value;
        let wrapped = traced.get(property);
        if (wrapped === undefined) {
          const method = value as (...args: unknown[]) => Promise<unknown>;
          wrapped = (...args: unknown[]) => {
            const session = typeof args[0] === 'string' ? args[0] : undefined;
            return this.call(system, String(property), session, ROOT_CONTEXT, () => method(...args));
          };
          traced.set(property, wrapped);
        }
        return wrapped;
      },
    });
  }

  // ------------------------------------------------------------------ store calls

  private openGeneration(store: SessionStore, system: string, session: string, request: OpenRequest): Promise<OpenResult> {
    let gen = this.openSpans.get(request);
    if (gen === undefined) {
      // First attempt of this open. A re-open of the generation this process already traces
      // (a producer resuming here) gets its store span under that generation's span.
      const current = this.generations.get(session);
      const announced = this.opens.take(`${session}\0${request.generationId}`);
      if (current?.id === request.generationId) {
        gen = null;
      } else {
        const attributes: Attributes = { 'session.id': session, 'generation.id': request.generationId, 'spool.takeover': request.takeover };
        if (announced) attributes['connection.id'] = announced.connectionId;
        const span = this.tracer.startSpan('spool.generation', { kind: SpanKind.SERVER, attributes }, announced?.context ?? ROOT_CONTEXT);
        gen = { id: request.generationId, span, context: trace.setSpan(ROOT_CONTEXT, span) };
      }
      this.openSpans.set(request, gen);
    }
    const parent = gen?.context ?? this.contextFor(session);
    return this.call(system, 'openGeneration', session, parent, () => store.openGeneration(session, request)).then((result) => {
      if (gen) this.opened(session, gen, result);
      return result;
    });
  }

  private opened(session: string, gen: GenerationSpan, result: OpenResult): void {
    switch (result.status) {
      case 'opened':
        if (result.fenced !== null) this.endGeneration(session, result.fenced, 'fenced');
        gen.span.setAttribute('spool.generation.start_offset', result.startOffset);
        this.track(session, gen);
        return;
      case 'resumed':
        // Opened before this process saw it (another gateway, or before a restart): traced from here.
        gen.span.setAttributes({ 'spool.generation.resumed': true, 'spool.generation.start_offset': result.startOffset });
        this.track(session, gen);
        return;
      default:
        gen.span.setAttribute('spool.open.result', result.status);
        gen.span.setStatus({ code: SpanStatusCode.ERROR, message: `open refused: ${result.status}` });
        gen.span.end();
    }
  }

  private track(session: string, gen: GenerationSpan): void {
    const previous = this.generations.get(session);
    if (previous && previous !== gen) abandon(previous);
    this.generations.set(session, gen);
  }

  private append(store: SessionStore, system: string, session: string, items: readonly WriteItem[]): Promise<AppendResult> {
    const first = items[0];
    let batch = this.batches.take(session);
    if (batch && batch.first !== first) {
      abandon(batch);
      batch = undefined;
    }
    if (!batch) {
      let bytes = 0;
      for (const item of items) if (item.op !== 'end') bytes += item.size;
      const span = this.tracer.startSpan(
        'spool.persist',
        {
          kind: SpanKind.INTERNAL,
          attributes: { 'session.id': session, 'db.system.name': system, 'spool.batch.events': items.length, 'spool.batch.bytes': bytes, ...this.generationAttributes(session) },
        },
        this.contextFor(session),
      );
      batch = { first, span, context: trace.setSpan(ROOT_CONTEXT, span), attempts: 0 };
    }
    const current = batch;
    current.attempts += 1;
    return this.call(system, 'append', session, current.context, () => store.append(session, items)).then(
      (result) => {
        current.span.setAttributes({ 'spool.batch.retries': current.attempts - 1, 'spool.batch.stored': result.events.length, 'spool.head': result.head });
        current.span.end();
        for (let i = 0; i < items.length; i++) {
          const item = items[i] as WriteItem;
          const r = result.results[i];
          if (item.op === 'end' && (r?.status === 'ok' || r?.status === 'duplicate')) {
            this.endGeneration(session, item.generationId, r.status === 'duplicate' ? (r.endStatus ?? item.status) : item.status, r.offset);
          }
        }
        return result;
      },
      (error: unknown) => {
        // Retried by the flusher with the same writes (this span goes on), or given up (writes.failed).
        this.batches.set(session, current);
        throw error;
      },
    );
  }

  /** One store call as a CLIENT span under `parent`. */
  private call<T>(system: string, operation: string, session: string | undefined, parent: Context, run: () => Promise<T>): Promise<T> {
    const attributes: Attributes = { 'db.system.name': system, 'db.operation.name': operation };
    if (session !== undefined) attributes['session.id'] = session;
    const span = this.tracer.startSpan(`spool.store ${operation}`, { kind: SpanKind.CLIENT, attributes }, parent);
    return run().then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
        span.end();
        throw error;
      },
    );
  }

  // ------------------------------------------------------------------ helpers

  private endGeneration(session: string, generation: string, status: string, offset?: number): void {
    const gen = this.generations.get(session);
    if (gen?.id !== generation) return;
    this.generations.delete(session);
    gen.span.setAttribute('spool.generation.status', status);
    if (offset !== undefined) gen.span.setAttribute('spool.generation.end_offset', offset);
    if (status === 'error' || status === 'timeout') gen.span.setStatus({ code: SpanStatusCode.ERROR, message: `gen.end ${status}` });
    gen.span.end();
  }

  /** What a store call of `session` belongs to: its generation, when one is traced here. */
  private contextFor(session: string): Context {
    return this.generations.get(session)?.context ?? ROOT_CONTEXT;
  }

  private generationAttributes(session: string): Attributes {
    const gen = this.generations.get(session);
    return gen ? { 'generation.id': gen.id } : {};
  }

  /** The resume whose catch-up is at `after` in `session`, if any (its store read is its child). */
  private resumeReading(session: string, after: number): ResumeSpan | undefined {
    const resumes = this.resumesBySession.get(session);
    if (resumes === undefined) return undefined;
    for (const resume of resumes) if (resume.next === after) return resume;
    return undefined;
  }

  private unindex(resume: ResumeSpan): void {
    const resumes = this.resumesBySession.get(resume.session);
    resumes?.delete(resume);
    if (resumes?.size === 0) this.resumesBySession.delete(resume.session);
  }
}
