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
/** A lock entry names one version; an optional dependency's range (^0.1.0) gives its lowest. */
const exact = (range) => (/(\d+\.\d+\.\d+[^\s|]*)/.exec(range) || [null, range])[1];
const osOf = (name) => (/darwin/.test(name) ? ['darwin'] : /win32|windows/.test(name) ? ['win32'] : /linux/.test(name) ? ['linux'] : /freebsd/.test(name) ? ['freebsd'] : undefined);
// Entries written by an earlier version of this script: a range for a version, no os for "windows".
for (const [key, entry] of Object.entries(pk)) {
  if (!entry.optional || entry.resolved) continue;
  if (typeof entry.version === 'string' && !/^\d/.test(entry.version)) entry.version = exact(entry.version);
  const os = osOf(key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length));
  if (!entry.os && os) entry.os = os;
}
for (const [p, entry] of Object.entries(pk)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies || {})) {
    const key = (p ? p + '/' : '') + 'node_modules/' + name;
    const top = 'node_modules/' + name;
    if (pk[key] || pk[top]) continue;
    const os = osOf(name);
    const cpu = /arm64/.test(name) ? ['arm64'] : /x64/.test(name) ? ['x64'] : /ia32/.test(name) ? ['ia32'] : /ppc64/.test(name) ? ['ppc64'] : /s390x/.test(name) ? ['s390x'] : /arm/.test(name) ? ['arm'] : undefined;
    pk[top] = { version: exact(version), ...(entry.dev ? { dev: true } : {}), optional: true, ...(os ? { os } : {}), ...(cpu ? { cpu } : {}) };
    added++;
  }
}
fs.writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n');
console.log('added', added);
