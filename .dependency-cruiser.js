/**
 * Dependency rules of spool (DESIGN §4). Run by `npm run lint`:
 *
 *   depcruise --config .dependency-cruiser.js protocol store gateway client chaos perf
 *
 * Allowed edges between folders (production code):
 *
 *   gateway ──▶ store ──▶ protocol
 *      └──────────────────▶ protocol ◀── client
 *   chaos, perf ──▶ anything          nothing ──▶ chaos, perf
 *
 * Test code (`*.test.ts`, `*.conformance.ts`, anything under a `test-helpers/` folder):
 *   - obeys the same folder rules as the folder it sits in, so a test can never make
 *     protocol/, store/ or client/ depend on gateway/ (or protocol/ on store/, …);
 *   - with one exception: tests under gateway/ may import client/, because the natural
 *     integration test drives a real gateway through the real SDK, and gateway/ is the top
 *     layer, so the edge points down the stack, never up. (The reverse, a client test that
 *     starts a gateway, belongs in gateway/, chaos/ or perf/.)
 *   - may import devDependencies (jest, fast-check) and Node core modules.
 * Production code never imports test code, so nothing test-only ships.
 *
 * Beyond the folder rules: no cycles (type-only imports count: they are edges of the design
 * too); no unresolvable imports (a typo'd path must not slip past the folder rules); no npm
 * package missing from package.json; no devDependency in shipped code; and protocol/ + client/
 * stay browser-safe (no Node core modules), because the SDK runs in a browser/Electron
 * renderer (DESIGN §4). chaos/ and perf/ are tools, not shipped: they may use anything.
 */

/** Test code: specs, the store conformance suite, and shared test helpers. */
const TEST = '(^|/)(test-helpers/|[^/]+[.](test|conformance)[.]ts$)';
const FOLDERS = ['protocol', 'store', 'gateway', 'client', 'chaos', 'perf'];

/** A rule forbidding production files of `from` to import the folders `to`. */
function layer(name, from, to, comment) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: `^${from}/`, pathNot: TEST },
    to: { path: `^(${to.join('|')})/` },
  };
}

/** The same rule for the test files of `from`. */
function testLayer(name, from, to, comment) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: [`^${from}/.*[.](test|conformance)[.]ts$`, `^${from}/(|.*/)test-helpers/`] },
    to: { path: `^(${to.join('|')})/` },
  };
}

const others = (...allowed) => FOLDERS.filter((f) => !allowed.includes(f));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'DESIGN §4: dependencies point one way; a cycle (type-only imports included) is a design error.',
      from: {},
      to: { circular: true },
    },

    // ---------------------------------------------------------------- production code
    layer('protocol-imports-nothing', 'protocol', others('protocol'), 'protocol/ is the wire contract: it imports nothing from the other folders.'),
    layer('store-imports-only-protocol', 'store', others('store', 'protocol'), 'store/ imports protocol types only.'),
    layer('gateway-imports-store-protocol', 'gateway', others('gateway', 'store', 'protocol'), 'gateway/ imports store/ and protocol/ only.'),
    layer('client-imports-only-protocol', 'client', others('client', 'protocol'), 'client/ (the SDK) imports protocol/ only.'),
    {
      name: 'nothing-imports-chaos',
      severity: 'error',
      comment: 'chaos/ may import anything; nothing imports it.',
      from: { pathNot: '^chaos/' },
      to: { path: '^chaos/' },
    },
    {
      name: 'nothing-imports-perf',
      severity: 'error',
      comment: 'perf/ may import anything; nothing imports it.',
      from: { pathNot: '^perf/' },
      to: { path: '^perf/' },
    },
    {
      name: 'production-never-imports-tests',
      severity: 'error',
      comment: 'Shipped code must not depend on specs, the conformance suite or test helpers.',
      from: { path: '^(protocol|store|gateway|client)/', pathNot: TEST },
      to: { path: TEST },
    },

    // ---------------------------------------------------------------- test code
    testLayer('protocol-tests-import-nothing', 'protocol', others('protocol'), 'Tests may not make protocol/ depend on another folder.'),
    testLayer('store-tests-import-only-protocol', 'store', others('store', 'protocol'), 'Tests may not make store/ depend on gateway/ or client/.'),
    // gateway tests may also import client/ (see the header comment).
    testLayer('gateway-tests-import-store-protocol-client', 'gateway', others('gateway', 'store', 'protocol', 'client'), 'Gateway tests may import store/, protocol/ and client/.'),
    testLayer('client-tests-import-only-protocol', 'client', others('client', 'protocol'), 'Tests may not make client/ depend on gateway/ or store/; put gateway+client tests in gateway/, chaos/ or perf/.'),

    // ---------------------------------------------------------------- packages
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve to a file could hide a forbidden edge.',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-non-package-json',
      severity: 'error',
      comment: 'Every npm package used must be declared in package.json.',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-dev-dep',
      severity: 'error',
      comment: 'Shipped code (protocol, store, gateway, client) must not need a devDependency at run time.',
      from: { path: '^(protocol|store|gateway|client)/', pathNot: TEST },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'], pathNot: 'node_modules/@types/' },
    },
    {
      name: 'browser-safe-sdk',
      severity: 'error',
      comment:
        'client/ and protocol/ run in a browser/Electron renderer (DESIGN §4): no Node core modules. ' +
        'Take what you need (WebSocket constructor, clock, …) as an option instead.',
      from: { path: '^(protocol|client)/', pathNot: TEST },
      to: { dependencyTypes: ['core'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Count `import type` edges too: a type-only cycle or upward import is still a design error.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.d.ts', '.js', '.json'],
    },
    skipAnalysisNotInRules: true,
    reporterOptions: { text: { highlightFocused: true } },
  },
};
