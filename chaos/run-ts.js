'use strict';
/**
 * Runs a TypeScript entry point in a plain `node` child process without a build step:
 *   node chaos/run-ts.js gateway/cli.ts serve --port 1234
 * A require hook compiles .ts with @swc/core, the compiler jest already uses. Chaos tests start
 * gateways through it so that they always run the source under test, never a stale dist/.
 */
const path = require('path');
require('../store/test-helpers/register-ts');

const entry = process.argv[2];
if (!entry) {
  process.stderr.write('usage: node chaos/run-ts.js <entry.ts> [args...]\n');
  process.exit(2);
}
// The entry sees itself as argv[1] and as require.main, as under plain node, so an entry that
// runs only `if (require.main === module)` (the perf benchmarks) runs here too.
process.argv.splice(1, 2, path.resolve(entry));
require('module').runMain();
