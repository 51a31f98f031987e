/**
 * scripts/forge.service, the systemd unit scripts/setup.sh installs: it must
 * pass `systemd-analyze verify` without a single warning (unknown keys and bad
 * values are only warnings there, so stderr has to stay empty), and the
 * ExecStart line must be the one setup.sh rewrites to the installed forge.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';

const repo = new URL('../../../', import.meta.url).pathname;
const unit = readFileSync(join(repo, 'scripts/forge.service'), 'utf8');

test('setup.sh rewrites the ExecStart the unit has', () => {
  assert.match(unit, /^ExecStart=\/usr\/bin\/forge serve$/m);
  const setup = readFileSync(join(repo, 'scripts/setup.sh'), 'utf8');
  assert.ok(setup.includes("s#^ExecStart=/usr/bin/forge #ExecStart=$forge_bin #"), 'setup.sh sed matches the unit');
  assert.ok(setup.includes('scripts/forge.service'));
});

test('systemd-analyze verify accepts the unit without warnings', (t) => {
  if (need(t, { commands: ['systemd-analyze'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fg-unit-'));
  try {
    const verify = (text: string): { status: number | null; stderr: string } => {
      const file = join(dir, 'forge.service');
      writeFileSync(file, text);
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      return { status: r.status, stderr: r.stderr.trim() };
    };
    // As installed: ExecStart pointed at this build's forge (node + the compiled CLI).
    const cli = join(repo, 'dist/server/cli/main.js');
    const installed = unit.replace(/^ExecStart=\/usr\/bin\/forge /m, `ExecStart=${process.execPath} ${cli} `);
    const ok = verify(installed);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stderr, '', 'no warnings');
    // The check can fail: a misspelt key is reported.
    const bad = verify(installed.replace('Restart=on-failure', 'Restart=sometimes'));
    assert.match(bad.stderr, /restart/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
