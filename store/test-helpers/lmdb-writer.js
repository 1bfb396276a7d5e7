'use strict';
/**
 * Test helper, not a test: appends to an LMDB store until it is killed, printing one JSON line
 * per append only after that append resolved (committed). lmdb.test.ts kills it with SIGKILL in
 * mid-stream and checks that everything printed is readable after reopening.
 *
 * Usage: node lmdb-writer.js <dir> <sessions>
 *
 * It loads store/lmdb.ts directly: a small require hook compiles .ts files with @swc/core (the
 * compiler jest already uses), so the test needs no build step.
 */
const path = require('path');
require('./register-ts');

const { openLmdbStore } = require(path.join(__dirname, '..', 'lmdb.ts'));

const CHUNKS_PER_BATCH = 8;

async function writeSession(store, session) {
  const opened = await store.openGeneration(session, { generationId: 'g', takeover: false, ts: Date.now() });
  if (opened.status !== 'opened') throw new Error(`open ${session}: ${JSON.stringify(opened)}`);
  for (let batch = 0, seq = 0; ; batch++, seq += CHUNKS_PER_BATCH) {
    const ts = Date.now();
    const items = [];
    for (let i = 0; i < CHUNKS_PER_BATCH; i++) {
      items.push({ op: 'chunk', generationId: 'g', epoch: opened.epoch, seq: seq + i, priority: 2, ts, data: { batch, i }, size: 16 });
    }
    items.push({ op: 'append', key: `k${batch}`, kind: 'user', priority: 3, ts, data: { batch }, size: 8 });
    const written = await store.append(session, items);
    const acked = written.results.map((result, i) => {
      if (result.status !== 'ok') throw new Error(`append ${session}: ${JSON.stringify(result)}`);
      const item = items[i];
      return item.op === 'chunk' ? { offset: result.offset, seq: item.seq } : { offset: result.offset, key: item.key };
    });
    // Written synchronously to the pipe (Linux), so a line is out before the next append starts.
    process.stdout.write(`${JSON.stringify({ session, acked })}\n`);
  }
}

const [dir, sessionCount] = process.argv.slice(2);
const store = openLmdbStore({ path: dir });
const sessions = Array.from({ length: Number(sessionCount) }, (_, i) => `s${i}`);
Promise.all(sessions.map((session) => writeSession(store, session))).catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
