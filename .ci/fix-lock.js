#!/usr/bin/env node
/*
 * The npm registry reachable here does not serve every platform build of optional native
 * packages (@swc/core-darwin-*, @msgpackr-extract/*-win32-*, ...), so `npm install` writes a
 * lock without them and `npm ci` then refuses the lock as out of sync. This adds a lock entry
 * (version, os, cpu, optional) for each missing one; npm ci skips them on other platforms.
 * Run it after every `npm install <pkg>`:  node .ci/fix-lock.js
 */
const fs = require('fs');
const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
const pk = lock.packages;
let added = 0;
for (const [p, entry] of Object.entries(pk)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies || {})) {
    const key = (p ? p + '/' : '') + 'node_modules/' + name;
    const top = 'node_modules/' + name;
    if (pk[key] || pk[top]) continue;
    const os = /darwin/.test(name) ? ['darwin'] : /win32/.test(name) ? ['win32'] : /linux/.test(name) ? ['linux'] : /freebsd/.test(name) ? ['freebsd'] : undefined;
    const cpu = /arm64/.test(name) ? ['arm64'] : /x64/.test(name) ? ['x64'] : /ia32/.test(name) ? ['ia32'] : /ppc64/.test(name) ? ['ppc64'] : /s390x/.test(name) ? ['s390x'] : /arm/.test(name) ? ['arm'] : undefined;
    pk[top] = { version, ...(entry.dev ? { dev: true } : {}), optional: true, ...(os ? { os } : {}), ...(cpu ? { cpu } : {}) };
    added++;
  }
}
fs.writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n');
console.log('added', added);
