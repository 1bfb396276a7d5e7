/**
 * Micro-benchmark of the strict msgpack pre-check (protocol/msgpack-check.ts) and the JSON
 * duplicate-name check (protocol/json-check.ts): ns per frame for the decoder alone vs
 * check + decoder, on typical producer frames. Also compares the pure-JS UTF-8 check with
 * Node's isUtf8 on non-ASCII strings (protocol/ cannot use the latter: it runs in browsers).
 *
 *   node chaos/run-ts.js perf/bench-decode.ts
 */
import { isUtf8 } from 'node:buffer';
import { Packr } from 'msgpackr';
import { checkJsonNames } from '../protocol/json-check';
import { checkMsgpack } from '../protocol/msgpack-check';
import { isWellFormedUtf8 } from '../protocol/utf8';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
const TOKEN = 'v1/3/chat-1/gen.42';

const textItems = Array.from({ length: 64 }, (_, i) => ({ kind: 'text', data: `token ${i} of a streamed answer, about 40 c` }));
const nestedItems = Array.from({ length: 64 }, (_, i) => ({
  kind: 'tool',
  data: { tool: 'search', call: i, args: { q: 'weather in Zürich', n: [1, 2.5, null, true], opts: { lang: 'de', safe: false } } },
}));
const frames = {
  'chunks, 64 text items': { type: 'chunks', token: TOKEN, seq: 100, items: textItems },
  'chunks, 64 nested-object items': { type: 'chunks', token: TOKEN, seq: 100, items: nestedItems },
  'chunk, one 40-char text': { type: 'chunk', token: TOKEN, seq: 100, kind: 'text', data: 'token 1 of a streamed answer, about 40 c' },
};

/** ns per call of `fn`, best of 5 rounds of `n` calls (after a warm-up round). */
function time(fn: () => unknown, n: number): number {
  let best = Infinity;
  for (let round = 0; round < 6; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    const ns = Number(process.hrtime.bigint() - t0) / n;
    if (round > 0) best = Math.min(best, ns);
  }
  return best;
}

const rows: string[] = [];
for (const [name, frame] of Object.entries(frames)) {
  const bytes = packr.pack(frame);
  const text = JSON.stringify(frame);
  const n = name.startsWith('chunks') ? 20_000 : 500_000;
  const unpack = time(() => packr.unpack(bytes), n);
  const both = time(() => (checkMsgpack(bytes), packr.unpack(bytes)), n);
  const check = time(() => checkMsgpack(bytes), n);
  const parse = time(() => JSON.parse(text), n);
  const parseBoth = time(() => (JSON.parse(text), checkJsonNames(text)), n);
  rows.push(
    `${name} (${bytes.length} B msgpack, ${text.length} chars JSON)\n` +
      `  msgpack: unpack ${unpack.toFixed(0)} ns, check ${check.toFixed(0)} ns, check+unpack ${both.toFixed(0)} ns (+${((100 * (both - unpack)) / unpack).toFixed(0)}%)\n` +
      `  JSON:    parse ${parse.toFixed(0)} ns, parse+names ${parseBoth.toFixed(0)} ns (+${((100 * (parseBoth - parse)) / parse).toFixed(0)}%)`,
  );
}
for (const length of [8, 40, 400, 4000]) {
  const bytes = Buffer.from('é€😀a'.repeat(Math.ceil(length / 4)).slice(0, length));
  const n = 2_000_000 / Math.max(1, length / 8);
  const js = time(() => isWellFormedUtf8(bytes, 0, bytes.length), n);
  const node = time(() => isUtf8(bytes.subarray(0, bytes.length)), n);
  rows.push(`non-ASCII string of ${bytes.length} B: pure-JS ${js.toFixed(0)} ns, node isUtf8(subarray) ${node.toFixed(0)} ns`);
}
process.stdout.write(`${rows.join('\n')}\n`);
