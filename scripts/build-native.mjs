#!/usr/bin/env node
// Builds forge's optional native data path (binding.gyp) with the node-gyp
// that ships with npm, against the headers npm is configured with (nodedir).
// Incremental: configure once, then `build` recompiles only what changed.
// A host without a C compiler still gets a working forge (JavaScript path);
// CI=true or FORGE_NATIVE_REQUIRED=1 makes a failed build fail, so CI always
// tests the native path and never silently falls back.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('../', import.meta.url).pathname;
const required = process.env.CI === 'true' || process.env.FORGE_NATIVE_REQUIRED === '1';

function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  // npm's own copy, beside the npm that runs this script or the system one.
  const candidates = [
    process.env.npm_execpath ? join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js') : '',
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  return candidates.find((c) => c !== '' && existsSync(c)) ?? null;
}

function fail(msg) {
  if (required) {
    console.error(`build-native: ${msg}`);
    process.exit(1);
  }
  console.error(`build-native: ${msg}; forge will use its JavaScript data path`);
  process.exit(0);
}

const gyp = nodeGyp();
if (gyp === null) fail('node-gyp not found (it ships with npm)');
const run = (args) => spawnSync(process.execPath, [gyp, ...args, '--loglevel=warn'], { cwd: root, stdio: 'inherit' });
if (!existsSync(join(root, 'build', 'Makefile')) || !existsSync(join(root, 'build', 'config.gypi'))) {
  const c = run(['configure']);
  if (c.status !== 0) fail(`node-gyp configure failed (exit ${c.status})`);
}
const b = run(['build']);
if (b.status !== 0) fail(`node-gyp build failed (exit ${b.status})`);
