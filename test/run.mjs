#!/usr/bin/env node
// Runs the compiled test suite with node's built-in test runner, one process per file.
//   node test/run.mjs                  every tier: unit, integration, e2e
//   node test/run.mjs unit e2e         only those tiers (directories under dist/test/)
//   node test/run.mjs --jobs 1         one file at a time (default 2, or FORGE_TEST_JOBS)
//   node test/run.mjs --record         merge this run's per-file times into test/durations.json
//   node test/run.mjs dist/test/e2e/boot-pxe.test.js   only the files named
//
// Why two lanes: most of the e2e tier's wall time is a TCG guest on one core while
// the other sits idle, or a test waiting for a lease, a probe or an installer. Two
// files at a time fill both cores; files are started longest first (test/durations.json,
// recorded from a CI-like run) so the last file to finish is a short one.
// Every file's namespaces, bridges, libvirt networks and domains, ports and
// PostgreSQL clusters carry random names, so two files never share one. A file that
// cannot share the machine (it measures an ordering against the clock) says
// `forge-test: exclusive` in its opening comment and runs alone, before the others.
// Each file's output is held and printed whole when it ends, so the log reads file by
// file; a start line is printed at once, so a CI log shows what is running.
import { readdirSync, statSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { spawn } from 'node:child_process';

const repo = new URL('..', import.meta.url).pathname;
const root = join(repo, 'dist/test');
const durationsFile = join(repo, 'test/durations.json');
const artifacts = join(repo, 'test/.artifacts');

const args = process.argv.slice(2);
let jobs = Number(process.env['FORGE_TEST_JOBS'] ?? 2);
let record = false;
const selectors = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--jobs') jobs = Number(args[++i]);
  else if (a.startsWith('--jobs=')) jobs = Number(a.slice('--jobs='.length));
  else if (a === '--record') record = true;
  else if (a === '--help' || a === '-h') {
    console.log(readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1, 8).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  } else selectors.push(a);
}
if (!Number.isInteger(jobs) || jobs < 1) {
  console.error(`--jobs / FORGE_TEST_JOBS: a whole number of at least 1 expected, got ${jobs}`);
  process.exit(2);
}

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

const files = [];
const tiers = selectors.filter((s) => !s.endsWith('.js'));
const named = selectors.filter((s) => s.endsWith('.js')).map((s) => resolve(s));
for (const f of named) {
  if (!existsSync(f)) {
    console.error(`no such test file: ${f} (did the build run?)`);
    process.exit(1);
  }
  files.push(f);
}
if (tiers.length > 0 || named.length === 0) files.push(...(tiers.length > 0 ? tiers : ['unit', 'integration', 'e2e']).flatMap((t) => walk(join(root, t))));
if (files.length === 0) {
  console.error(`no test files found for: ${selectors.join(', ') || 'unit, integration, e2e'} (did the build run?)`);
  process.exit(1);
}

const key = (f) => relative(root, f);
/** Seconds per file from the last recorded run; a file not on record gets its tier's guess. */
const recorded = existsSync(durationsFile) ? JSON.parse(readFileSync(durationsFile, 'utf8')) : {};
const GUESS = { e2e: 150, integration: 20, unit: 3 };
const expected = (f) => recorded[key(f)] ?? GUESS[key(f).split('/')[0]] ?? 10;
const alone = files.filter((f) => readFileSync(f, 'utf8').slice(0, 2000).includes('forge-test: exclusive'));
const exclusive = (f) => alone.includes(f);
const shared = files.filter((f) => !exclusive(f)).sort((a, b) => expected(b) - expected(a));

const t0 = Date.now();
const stamp = () => {
  const s = Math.round((Date.now() - t0) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
const results = [];

function runFile(f) {
  return new Promise((done) => {
    const started = Date.now();
    console.log(`[${stamp()}] ▶ ${key(f)}${exclusive(f) ? ' (alone)' : ''}`);
    const chunks = [];
    const child = spawn(
      process.execPath,
      // A per-test ceiling: a hung test fails after 20 minutes instead of eating CI's 90.
      // The VM files take 2-5 minutes on an idle machine; the ceiling is for hangs, not speed.
      ['--test', '--test-timeout=1200000', '--test-reporter=spec', f],
      { stdio: ['ignore', 'pipe', 'pipe'], env: process.env },
    );
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    child.on('close', (code, signal) => {
      const seconds = (Date.now() - started) / 1000;
      const out = Buffer.concat(chunks).toString('utf8');
      const count = (label) => {
        const m = new RegExp(`^ℹ ${label} (\\d+)$`, 'm').exec(out);
        return m === null ? 0 : Number(m[1]);
      };
      const ok = code === 0;
      results.push({ file: key(f), seconds, ok, tests: count('tests'), pass: count('pass'), fail: count('fail'), skipped: count('skipped'), todo: count('todo'), cancelled: count('cancelled') });
      process.stdout.write(out.endsWith('\n') || out === '' ? out : `${out}\n`);
      console.log(`[${stamp()}] ${ok ? '✔' : '✖'} ${key(f)} ${seconds.toFixed(1)} s${ok ? '' : ` (exit ${code ?? signal})`}\n`);
      done();
    });
  });
}

for (const f of alone) await runFile(f);
const queue = [...shared];
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) await runFile(f);
  }),
);

const wall = (Date.now() - t0) / 1000;
results.sort((a, b) => b.seconds - a.seconds);
const sum = (k) => results.reduce((n, r) => n + r[k], 0);
console.log(`per file, longest first (${jobs} at a time):`);
for (const r of results) console.log(`  ${r.ok ? ' ' : '✖'} ${r.seconds.toFixed(1).padStart(7)} s  ${r.file}  (${r.tests} tests${r.fail > 0 ? `, ${r.fail} failed` : ''}${r.skipped > 0 ? `, ${r.skipped} skipped` : ''})`);
const failed = results.filter((r) => !r.ok);
console.log(`\nℹ files ${results.length}\nℹ tests ${sum('tests')}\nℹ pass ${sum('pass')}\nℹ fail ${sum('fail')}\nℹ cancelled ${sum('cancelled')}\nℹ skipped ${sum('skipped')}\nℹ todo ${sum('todo')}`);
console.log(`ℹ wall ${(wall / 60).toFixed(1)} min for ${(sum('seconds') / 60).toFixed(1)} min of files`);
if (failed.length > 0) console.log(`✖ failed files: ${failed.map((r) => r.file).join(', ')}`);

const times = Object.fromEntries(results.map((r) => [r.file, Math.round(r.seconds)]));
mkdirSync(artifacts, { recursive: true });
writeFileSync(join(artifacts, 'durations.json'), `${JSON.stringify(times, null, 2)}\n`);
if (record) {
  const merged = { ...recorded, ...times };
  const sorted = Object.fromEntries(Object.keys(merged).sort().map((k) => [k, merged[k]]));
  writeFileSync(durationsFile, `${JSON.stringify(sorted, null, 2)}\n`);
  console.log(`recorded ${results.length} files' times in test/durations.json`);
}
process.exit(failed.length > 0 ? 1 : 0);
