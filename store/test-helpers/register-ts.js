'use strict';
/**
 * Lets a plain `node` process require .ts files: a require hook compiling them with @swc/core,
 * the compiler jest already uses. For child processes started by tests (they must run the
 * source under test, never a stale dist/). Requiring this file installs the hook once.
 */
const fs = require('fs');
const { transformSync } = require('@swc/core');

if (!require.extensions['.ts']) {
  require.extensions['.ts'] = function compileTypeScript(module, filename) {
    const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
      filename,
      jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
      module: { type: 'commonjs' },
    });
    module._compile(code, filename);
  };
}
