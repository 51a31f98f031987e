#!/usr/bin/env node
// Runs the compiled test suite with node's built-in test runner.
//   node test/run.mjs            every tier: unit, integration, e2e
//   node test/run.mjs unit e2e   only those tiers (directories under dist/test/)
// Files run one at a time: the integration and e2e tiers start real servers,
// network namespaces and VMs that must not compete for two cores.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const tiers = process.argv.slice(2);
const wanted = tiers.length > 0 ? tiers : ['unit', 'integration', 'e2e'];

function walk(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = wanted.flatMap((t) => walk(join(root, t)));
if (files.length === 0) {
  console.error(`no test files found for tiers: ${wanted.join(', ')} (did the build run?)`);
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  // A per-test ceiling (a whole file counts as one test): a hung test fails after
  // 20 minutes instead of eating CI's 90. The VM files take 5-8 minutes on an idle
  // machine and twice that on a loaded one; the ceiling is for hangs, not speed.
  ['--test', '--test-concurrency=1', '--test-timeout=1200000', '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: process.env },
);
process.exit(r.status ?? 1);
