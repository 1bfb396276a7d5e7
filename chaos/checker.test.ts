/**
 * The checker of the chaos suite, fed recorded histories (chaos/fixtures/*.json, the format the
 * runner writes for a failed scenario) in which a guarantee was broken on purpose. A checker that
 * passes any of them would let the suite pass with the feature broken.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SessionEvent } from '../protocol/types';
import { checkHistory, chunkData, formatViolation, judgeIntrusion, parseChunkData, type IntrusionRecord, type RecordedHistory, type Rule } from './checker';

interface Fixture {
  readonly description: string;
  readonly expect: { readonly ok: boolean; readonly first?: { readonly rule: Rule; readonly where: string }; readonly also?: readonly Rule[] };
  readonly history: RecordedHistory;
}

const DIR = path.join(__dirname, 'fixtures');
const load = (name: string): Fixture => JSON.parse(fs.readFileSync(path.join(DIR, name), 'utf8')) as Fixture;

describe('chaos history checker', () => {
  it('accepts a correct history: every ack in the log, every reader contiguous and exactly once', () => {
    const report = checkHistory(load('valid.json').history);
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.stats).toMatchObject({ sessions: 1, logEvents: 6, generations: 1, acksChecked: 2, appendsChecked: 1, readers: 2, stints: 3, delivered: 12 });
  });

  const broken: Array<[string, string]> = [
    ['ack-before-durable.json', 'an ack whose event never appears (acking before the store resolved)'],
    ['write-after-fence.json', 'an event stored after fencing (the epoch check skipped)'],
    ['duplicate-delivery.json', 'a duplicate delivery'],
    ['silent-hole.json', 'a silent hole'],
    ['two-gen-ends.json', 'two gen.end for one generation'],
    ['gap-without-retention.json', 'a gap with no retention pressure configured'],
    ['gap-over-retained.json', 'a gap over events the log still holds'],
    ['content-replaced.json', "a second writer's chunk stored under the producer's seq (issue 9)"],
  ];

  it.each(broken)('%s: %s fails the check and names the first bad event', (file) => {
    const fixture = load(file);
    const report = checkHistory(fixture.history);
    expect(report.ok).toBe(false);
    const first = report.violations[0];
    expect(first).toBeDefined();
    expect({ rule: first?.rule, where: first?.where }).toEqual(fixture.expect.first);
    for (const rule of fixture.expect.also ?? []) expect(report.violations.map((v) => v.rule)).toContain(rule);
    const text = formatViolation(first!, fixture.history.scenario, fixture.history.seed);
    expect(text).toContain(`[${first!.rule}] in scenario fixture (seed 42)`);
    expect(text).toContain(`first bad event: ${JSON.stringify(first!.event)}`);
    expect(text).toContain('reproduce: npm run chaos -- --scenario fixture --seed 42');
  });

  it('names the very event that broke the guarantee', () => {
    expect(checkHistory(load('write-after-fence.json').history).violations[0]?.event).toMatchObject({ offset: 6, type: 'chunk', generationId: 'A', seq: 2 });
    expect(checkHistory(load('ack-before-durable.json').history).violations[0]?.event).toEqual({ seq: 2, offset: 5 });
    expect(checkHistory(load('duplicate-delivery.json').history).violations[0]?.event).toMatchObject({ offset: 4, seq: 1 });
    expect(checkHistory(load('silent-hole.json').history).violations[0]?.message).toMatch(/offsets 4-4 skipped without a gap before chunk s0-g0\/2 @5/);
    expect(checkHistory(load('two-gen-ends.json').history).violations[0]?.event).toMatchObject({ offset: 7, type: 'gen.end', status: 'timeout' });
  });

  it('accepts trimmed ranges reported as gaps under retention pressure, and an acked chunk that was trimmed', () => {
    const history = load('valid.json').history;
    const log = history.logs['s0']!;
    const trimmedLog = [...log.slice(0, 3), { type: 'gap' as const, from: 4, to: 4, reason: 'trimmed' as const }, ...log.slice(4)];
    const report = checkHistory({
      ...history,
      retentionPressure: true,
      logs: { s0: trimmedLog },
      // One reader got offset 4 before it was trimmed, the other only the gap.
      readers: [
        { id: 'early', session: 's0', stints: [{ from: 0, items: log }] },
        { id: 'late', session: 's0', stints: [{ from: 0, items: trimmedLog }] },
      ],
    });
    expect(report.violations).toEqual([]);
  });

  it('reports a reader that never caught up, a stint that resumed from the wrong offset, and an event it was never sent', () => {
    const history = load('valid.json').history;
    const log = history.logs['s0']!;
    const rules = (readers: RecordedHistory['readers']): Rule[] => checkHistory({ ...history, readers }).violations.map((v) => v.rule);
    expect(rules([{ id: 'r', session: 's0', stints: [{ from: 0, items: log.slice(0, 4) }] }])).toEqual(['unresumed']);
    expect(rules([{ id: 'r', session: 's0', stints: [{ from: 0, items: log.slice(0, 3) }, { from: 2, items: log.slice(2) }] }])).toContain('resume-seam');
    const phantom: SessionEvent = { offset: 7, type: 'chunk', generationId: 's0-g0', seq: 3, priority: 2, ts: 0, data: chunkData('s0-g0', 3, 'xx') };
    // Seq 3 was never written by its producer either: content-mismatch names the same event.
    expect(rules([{ id: 'r', session: 's0', stints: [{ from: 0, items: [...log, phantom] }] }])).toEqual(['phantom-event', 'content-mismatch']);
  });

  it('reports a chunk stored twice and a chunk stored under the wrong seq', () => {
    const history = load('valid.json').history;
    const log = history.logs['s0']!;
    const twice = [...log.slice(0, 5), { ...log[4]!, offset: 6 }, { ...log[5]!, offset: 7 }];
    expect(checkHistory({ ...history, readers: [], producers: [], logs: { s0: twice } }).violations.map((v) => v.rule)).toContain('duplicate-stored');
    const swapped = log.map((e) => (e.type !== 'gap' && e.offset === 4 ? { ...e, data: chunkData('s0-g0', 2, 'xx') } : e));
    expect(checkHistory({ ...history, readers: [], logs: { s0: swapped } }).violations[0]).toMatchObject({ rule: 'wrong-event', where: 'log' });
    expect(parseChunkData(chunkData('g-1', 17, 'pad'))).toEqual({ generation: 'g-1', seq: 17 });
  });

  it('content-mismatch: a chunk whose bytes are not what its producer wrote is reported in the log and at every reader that got it', () => {
    expect(checkHistory(load('valid.json').history).stats.contentChecked).toBe(9); // 3 stored, 3 + 3 delivered: all compared, none differ
    const { intrusions: _answers, ...history } = load('content-replaced.json').history;
    const report = checkHistory(history);
    expect(report.violations.map((v) => [v.rule, v.where])).toEqual([
      ['content-mismatch', 'log'],
      ['content-mismatch', 'reader s0.r0'],
      ['content-mismatch', 'reader s0.r1'],
    ]);
    expect(report.violations[0]?.event).toMatchObject({ offset: 4, generationId: 's0-g0', seq: 1, data: 's0-g0#1|intruder' });
    // Same data, another priority: still not what the producer wrote.
    const valid = load('valid.json').history;
    const reprioritised = valid.logs['s0']!.map((e) => (e.type === 'chunk' && e.seq === 2 ? { ...e, priority: 1 as const } : e));
    expect(checkHistory({ ...valid, readers: [], logs: { s0: reprioritised } }).violations.map((v) => v.rule)).toEqual(['content-mismatch']);
    // A stored chunk at a seq its producer never wrote is someone else's too.
    const shorter = valid.producers.map((p) => ({ ...p, written: p.written!.slice(0, 2) }));
    const never = checkHistory({ ...valid, readers: [], producers: shorter });
    expect(never.violations.map((v) => v.message)).toEqual([expect.stringMatching(/s0-g0\/2 @5 .*never wrote seq 2/)]);
  });

  it('intruder-accepted: the second writer must be refused; faults that leave an attempt unanswered judge nothing', () => {
    const history = load('valid.json').history;
    const attempt = (answer: string): IntrusionRecord => ({ session: 's0', generation: 's0-g0', attempt: 'open-no-token', answer });
    const refusals = ['GENERATION_ACTIVE', 'FENCED', 'BAD_FRAME', 'GENERATION_CLOSED', 'STORE_UNAVAILABLE', 'SHUTTING_DOWN', 'no-answer'];
    const report = checkHistory({ ...history, intrusions: refusals.map(attempt) });
    expect(report.violations).toEqual([]);
    expect(report.stats.intrusions).toBe(refusals.length);
    for (const answer of ['opened', 'ack', 'finished', 'SEQ_GAP', 'FLOW_CONTROL', 'INTERNAL']) {
      expect(judgeIntrusion(answer)).toBe('accepted');
      expect(checkHistory({ ...history, intrusions: [attempt(answer)] }).violations.map((v) => [v.rule, v.where])).toEqual([['intruder-accepted', 'second writer on s0-g0']]);
    }
  });

  describe('a session reset (PROTOCOL §10.5)', () => {
    const ev = (offset: number, type: SessionEvent['type'], extra: Partial<SessionEvent> = {}): SessionEvent => ({ offset, type, priority: 3, ts: 1000 + offset, ...extra });
    const chunk = (offset: number, generationId: string, seq: number): SessionEvent => ev(offset, 'chunk', { generationId, seq, priority: 2 });
    // g0 streams 3 chunks (2-4) and is fenced by the reset @5; g1 starts after it and finishes.
    const before = [ev(1, 'gen.start', { generationId: 'g0' }), chunk(2, 'g0', 0), chunk(3, 'g0', 1), chunk(4, 'g0', 2)];
    const reset = ev(5, 'session.reset');
    const after = [ev(6, 'gen.start', { generationId: 'g1' }), chunk(7, 'g1', 0), ev(8, 'gen.end', { generationId: 'g1', seq: 1, status: 'done' })];
    const gap = { type: 'gap' as const, from: 1, to: 4, reason: 'trimmed' as const };
    const history = (g0Acks: { seq: number; offset: number }[]): RecordedHistory => ({
      scenario: 'fixture',
      seed: 42,
      retentionPressure: false,
      producers: [
        { session: 's0', generation: 'g0', via: 'sdk', takeover: false, acks: g0Acks, outcome: 'fenced' },
        { session: 's0', generation: 'g1', via: 'sdk', takeover: false, acks: [{ seq: 0, offset: 7 }], finished: { offset: 8, status: 'done' }, outcome: 'finished' },
      ],
      appends: [],
      readers: [
        // Live through the reset, and subscribed after it from the start.
        { id: 's0.r0', session: 's0', stints: [{ from: 0, items: [...before, reset, ...after] }] },
        { id: 's0.r1', session: 's0', stints: [{ from: 0, items: [gap, reset, ...after] }] },
      ],
      logs: { s0: [gap, reset, ...after] },
    });

    it('accepts the removed range as the reset\'s gap, in the log and for readers, with no retention pressure', () => {
      const report = checkHistory(history([{ seq: 2, offset: 4 }]));
      expect(report.violations).toEqual([]);
    });

    it('refuses an ack of a generation of before the reset at an offset after it', () => {
      const report = checkHistory(history([{ seq: 2, offset: 4 }, { seq: 3, offset: 9 }]));
      expect(report.violations.map((v) => [v.rule, v.where])).toContainEqual(['ack-after-fence', 'producer g0']);
    });

    it('accepts a finished generation whose gen.end the reset removed, and still checks one the log holds', () => {
      const h = history([{ seq: 2, offset: 4 }]);
      const finishedBefore = { ...h.producers[0]!, finished: { offset: 4, status: 'done' as const }, outcome: 'finished' as const };
      expect(checkHistory({ ...h, producers: [finishedBefore, h.producers[1]!] }).violations).toEqual([]);
      const wrong = { ...h.producers[1]!, finished: { offset: 8, status: 'error' as const } };
      expect(checkHistory({ ...h, producers: [h.producers[0]!, wrong] }).violations.map((v) => v.rule)).toEqual(['finish-mismatch']);
    });

    it('still refuses a gap without retention pressure that no reset explains', () => {
      const h = history([{ seq: 2, offset: 4 }]);
      const report = checkHistory({ ...h, logs: { s0: [gap, ev(5, 'append', { key: 'k' }), ...after] }, readers: [] });
      expect(report.violations.map((v) => v.rule)).toContain('unexpected-gap');
    });
  });
});

describe('chaos history checker: a session delete (PROTOCOL §10.6, incarnations)', () => {
  const ev = (offset: number, type: SessionEvent['type'], extra: Partial<SessionEvent> = {}): SessionEvent => ({ offset, type, priority: 3, ts: 1000 + offset, ...extra });
  const chunk = (offset: number, generationId: string, seq: number): SessionEvent => ev(offset, 'chunk', { generationId, seq, priority: 2, data: chunkData(generationId, seq, 'x') });
  // Incarnation 0: a user message, g0 streaming two chunks; deleted at head 4 (g0 fenced).
  const old = [ev(1, 'append', { key: 'k0' }), ev(2, 'gen.start', { generationId: 'g0' }), chunk(3, 'g0', 0), chunk(4, 'g0', 1)];
  // Incarnation 1, written after the delete: offsets from 1 again.
  const fresh = [ev(1, 'append', { key: 'k1' }), ev(2, 'gen.start', { generationId: 'g1' }), chunk(3, 'g1', 0), ev(4, 'gen.end', { generationId: 'g1', seq: 1, status: 'done' })];
  type Reader = RecordedHistory['readers'][number];
  const reader = (id: string, stints: Reader['stints']): Reader => ({ id, session: 's0', stints });
  const history = (changes: Partial<RecordedHistory> = {}): RecordedHistory => ({
    scenario: 'fixture',
    seed: 42,
    retentionPressure: false,
    producers: [
      { session: 's0', generation: 'g0', via: 'sdk', takeover: false, acks: [{ seq: 1, offset: 4 }], outcome: 'failed', errorCode: 'SESSION_DELETED', error: 'SESSION_DELETED: deleted' },
      { session: 's0', generation: 'g1', via: 'sdk', takeover: false, acks: [{ seq: 0, offset: 3 }], finished: { offset: 4, status: 'done' }, outcome: 'finished', incarnation: 1 },
    ],
    appends: [
      { session: 's0', key: 'k0', offset: 1 },
      { session: 's0', key: 'k1', offset: 1, incarnation: 1 },
    ],
    readers: [
      // Live through the delete: its terminal answer, then the new incarnation from the start.
      reader('s0.r0', [{ from: 0, items: old, end: 'SESSION_DELETED' }, { from: 0, items: fresh }]),
      // On a process that missed the notice: SESSION_REWOUND is its terminal answer.
      reader('s0.r1', [{ from: 0, items: old.slice(0, 3), end: 'SESSION_REWOUND' }, { from: 0, items: fresh }]),
      // Away during the delete: its SDK resubscribed from 3 and the new incarnation reached past it.
      reader('s0.r2', [{ from: 0, items: [...old.slice(0, 3), ...fresh.slice(3)], breaks: [3] }]),
    ],
    logs: { s0: fresh },
    deletes: [{ session: 's0', incarnation: 0, head: 4, fenced: 'g0' }],
    ...changes,
  });
  const rules = (h: RecordedHistory): Array<[Rule, string]> => checkHistory(h).violations.map((v) => [v.rule, v.where]);

  it('accepts offsets used again after a delete: terminal answers, a reconnect into the new incarnation, each incarnation checked on its own', () => {
    const report = checkHistory(history());
    expect(report.violations).toEqual([]);
    expect(report.stats).toMatchObject({ incarnations: 2, terminalAnswers: 2, silentSwitches: 1, readers: 3, acksChecked: 1, appendsChecked: 1 });
    // Without the delete record the same history breaks every rule that assumes one log.
    expect(rules({ ...history(), deletes: [] }).map(([rule]) => rule)).toEqual(expect.arrayContaining(['ack-mismatch', 'wrong-event', 'unexpected-terminal']));
  });

  it('stale-incarnation: an event of the deleted incarnation delivered after the terminal answer', () => {
    const stale = reader('s0.r0', [{ from: 0, items: old.slice(0, 2), end: 'SESSION_DELETED' }, { from: 0, items: [...old.slice(2), ...fresh] }]);
    const report = checkHistory(history({ readers: [stale] }));
    expect(report.violations[0]).toMatchObject({ rule: 'stale-incarnation', where: 'reader s0.r0', event: { offset: 3, generationId: 'g0', seq: 0 } });
    // Or after the reader had been given the new incarnation's events.
    const back = reader('s0.r2', [{ from: 0, items: [...old.slice(0, 3), fresh[3]!, chunk(5, 'g0', 2)], breaks: [3] }]);
    expect(rules(history({ readers: [back] }))).toContainEqual(['stale-incarnation', 'reader s0.r2']);
  });

  it('stale-incarnation: a generation of the deleted incarnation written into the next one', () => {
    const log = [...fresh, chunk(5, 'g0', 2)];
    expect(rules(history({ logs: { s0: log }, readers: [] }))).toContainEqual(['stale-incarnation', 'log']);
  });

  it('missed-terminal: a subscription that moved on to the new incarnation with its connection up', () => {
    const silent = reader('s0.r2', [{ from: 0, items: [...old.slice(0, 3), ...fresh.slice(3)], breaks: [] }]);
    expect(rules(history({ readers: [silent] }))).toEqual([['missed-terminal', 'reader s0.r2']]);
  });

  it('unexpected-terminal: SESSION_DELETED where nothing was deleted', () => {
    const h = history({ producers: [], appends: [], deletes: [], logs: { s0: old } });
    expect(rules({ ...h, readers: [reader('s0.r0', [{ from: 0, items: old.slice(0, 2), end: 'SESSION_DELETED' }, { from: 0, items: old }])] })).toContainEqual(['unexpected-terminal', 'reader s0.r0']);
  });

  it('ack-after-delete and phantom-event: nothing of the deleted incarnation past the head its delete answered', () => {
    const h = history();
    const late = { ...h.producers[0]!, acks: [{ seq: 1, offset: 4 }, { seq: 2, offset: 5 }] };
    expect(rules({ ...h, producers: [late, h.producers[1]!] })).toContainEqual(['ack-after-delete', 'producer g0']);
    const phantom = reader('s0.r0', [{ from: 0, items: [...old, chunk(5, 'g0', 2)], end: 'SESSION_DELETED' }, { from: 0, items: fresh }]);
    expect(rules(history({ readers: [phantom] }))).toContainEqual(['phantom-event', 'reader s0.r0']);
  });

  it('delete-answer: the producer the delete caught must be told SESSION_DELETED, SESSION_REWOUND, GENERATION_CLOSED or FENCED', () => {
    const h = history();
    for (const code of ['GENERATION_CLOSED', 'FENCED', 'SESSION_REWOUND']) {
      expect(rules({ ...h, producers: [{ ...h.producers[0]!, errorCode: code }, h.producers[1]!] })).toEqual([]);
    }
    expect(rules({ ...h, producers: [{ ...h.producers[0]!, errorCode: 'STORE_UNAVAILABLE' }, h.producers[1]!] })).toEqual([['delete-answer', 'producer g0']]);
  });

  it('readers of a deleted incarnation must agree with each other and with its acks', () => {
    // s0.r1 was given g0/0 twice (@3 and @4), where s0.r0 and g0's ack say @4 holds g0/1.
    const twice = [...old.slice(0, 3), chunk(4, 'g0', 0)];
    const report = checkHistory(history({ readers: [reader('s0.r1', [{ from: 0, items: twice, end: 'SESSION_DELETED' }, { from: 0, items: fresh }]), reader('s0.r0', [{ from: 0, items: old, end: 'SESSION_DELETED' }, { from: 0, items: fresh }])] }));
    expect(report.violations.map((v) => [v.rule, v.where])).toEqual([
      ['duplicate-stored', 'incarnation 0'],
      ['ack-mismatch', 'producer g0'],
      ['wrong-event', 'reader s0.r0'],
    ]);
  });

  it('unresumed: a reader left in the deleted incarnation never reached the final log', () => {
    expect(rules(history({ readers: [reader('s0.r0', [{ from: 0, items: old }])] }))).toEqual([['unresumed', 'reader s0.r0']]);
  });
});
