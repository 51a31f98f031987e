/**
 * The front door as a new user meets it: `npm pack` ships the built output
 * (prepack builds; the bin entries are in the tarball), and scripts/setup.sh
 * runs in a bare root shell with no sudo on PATH, while a non-root user
 * without sudo gets a clear message. setup.sh's system commands (apt-get,
 * npm, systemctl) are replaced by recorders on PATH: the test is about the
 * script's own logic, not about installing packages on the test machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = new URL('../../../', import.meta.url).pathname;

test('npm pack (prepack builds; not re-run here, other tests read dist) ships dist (bin entries included), not the TypeScript sources', () => {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string>; dependencies: Record<string, string> };
  assert.equal(pkg.scripts['prepack'], 'npm run build');
  assert.equal(pkg.dependencies['axios'], undefined, 'axios is not a dependency (forge uses fetch)');
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const files = (JSON.parse(out.slice(out.indexOf('['))) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  for (const bin of Object.values(pkg.bin)) assert.ok(files.includes(bin), `${bin} is packed`);
  assert.ok(files.includes('templates/kickstart/default.ks') || files.some((f) => f.startsWith('templates/')), 'templates are packed');
  assert.ok(!files.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'no TypeScript sources');
  assert.ok(!files.some((f) => f.startsWith('dist/test/')), 'no tests');
});

function fakeBin(dir: string, name: string, body: string): void {
  writeFileSync(join(dir, name), `#!/bin/bash\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
}

function runSetup(opts: { uid: number; sudo: boolean }): { status: number | null; stderr: string; calls: string[] } {
  const root = mkdtempSync(join(tmpdir(), 'forge-setup-'));
  try {
    mkdirSync(join(root, 'repo/scripts'), { recursive: true });
    cpSync(join(repo, 'scripts/setup.sh'), join(root, 'repo/scripts/setup.sh'));
    cpSync(join(repo, 'scripts/forge.service'), join(root, 'repo/scripts/forge.service'));
    const bin = join(root, 'bin');
    mkdirSync(bin);
    const log = join(root, 'calls');
    const rec = `echo "$(basename "$0") $*" >> ${log}`;
    for (const c of ['apt-get', 'npm', 'systemctl', 'tee', 'mkdir']) fakeBin(bin, c, `${rec}\ncat >/dev/null 2>&1 || true`);
    fakeBin(bin, 'id', `echo ${opts.uid}`);
    fakeBin(bin, 'forge', `${rec}\necho '# completion'`);
    fakeBin(bin, 'forge-agent', rec);
    fakeBin(bin, 'node', `exec ${process.execPath} "$@"`);
    if (opts.sudo) fakeBin(bin, 'sudo', `${rec}\n"$@"`);
    // Only the recorders and the basic tools, no sudo unless asked.
    const sys = join(root, 'sys');
    mkdirSync(sys);
    for (const t of ['bash', 'cat', 'sed', 'dirname', 'basename', 'env', 'echo']) {
      const which = spawnSync('bash', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
      if (which.startsWith('/')) fakeBin(sys, t, `exec ${which} "$@"`);
    }
    const r = spawnSync('/bin/bash', [join(root, 'repo/scripts/setup.sh')], { env: { PATH: `${bin}:${sys}`, HOME: root }, encoding: 'utf8' });
    let calls: string[] = [];
    try {
      calls = readFileSync(log, 'utf8').trim().split('\n');
    } catch {
      /* nothing ran */
    }
    return { status: r.status, stderr: r.stderr, calls };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('setup.sh in a bare root shell: no sudo anywhere, packages, build, link and completion', () => {
  const r = runSetup({ uid: 0, sudo: false });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!r.calls.some((c) => c.startsWith('sudo')), 'never calls sudo');
  assert.ok(r.calls.some((c) => /^apt-get install .*bash-completion/.test(c)), r.calls.join('\n'));
  assert.ok(r.calls.includes('npm ci --no-audit --no-fund'));
  assert.ok(r.calls.includes('npm run build'));
  assert.ok(r.calls.some((c) => c.startsWith('npm link')));
  assert.ok(r.calls.includes('forge completion bash'));
  assert.ok(r.calls.includes('tee /etc/bash_completion.d/forge'));
});

test('setup.sh as a user: sudo for the system-wide steps; without sudo, a clear message', () => {
  const r = runSetup({ uid: 1000, sudo: true });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.calls.includes('sudo apt-get update -qq'), r.calls.join('\n'));
  assert.ok(r.calls.some((c) => c.startsWith('sudo npm link')));
  assert.ok(r.calls.includes('npm ci --no-audit --no-fund'), 'npm ci runs as the user');
  const n = runSetup({ uid: 1000, sudo: false });
  assert.equal(n.status, 1);
  assert.match(n.stderr, /run it as root/);
  assert.deepEqual(n.calls, [], 'nothing ran');
});
