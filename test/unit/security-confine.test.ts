/**
 * Boot-root rules on a real directory tree (realpath, symlinks): what may
 * be served and which roots may be configured.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootRootsOf, defaultBootRoots, rootRule, whyRefused } from '../../server/boot/confine.js';

test('paths: inside a root yes; /etc, DATA_DIR, symlinks out, / and outside no', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-confine-'));
  try {
    const root = join(dir, 'srv');
    const data = join(dir, 'data');
    mkdirSync(join(root, 'deb12'), { recursive: true });
    mkdirSync(join(data, 'distros'), { recursive: true });
    symlinkSync('/etc', join(root, 'etc'));
    symlinkSync(data, join(root, 'data'));
    const roots = { roots: [root, join(data, 'distros')], dataDir: data };
    assert.equal(whyRefused(join(root, 'deb12', 'linux'), roots), undefined, 'a file not created yet is judged by its parent');
    assert.equal(whyRefused(join(data, 'distros', 'x', 'linux'), roots), undefined);
    assert.match(whyRefused('/etc/shadow', roots) ?? '', /\/etc is never served/);
    assert.match(whyRefused(join(root, 'etc', 'shadow'), roots) ?? '', /resolves to \/etc\/shadow/);
    assert.match(whyRefused(join(data, 'token'), roots) ?? '', /data directory/);
    assert.match(whyRefused(join(root, 'data', 'token'), roots) ?? '', /data directory.*resolves to/);
    assert.match(whyRefused(join(root, 'deb12', '..', '..', 'data', 'forge.db'), roots) ?? '', /data directory/);
    assert.match(whyRefused('/', roots) ?? '', /"\/" is never served/);
    assert.match(whyRefused('/usr/share/doc', roots) ?? '', /outside the boot roots/);
    assert.match(whyRefused('relative/linux', roots) ?? '', /absolute/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('roots: never /, /etc, /root, /proc, /sys, or DATA_DIR; defaults are sane', () => {
  const data = '/var/lib/forge';
  for (const r of ['/', '/etc', '/etc/forge', '/root', '/proc', '/sys', '/dev', data, `${data}/cache`]) {
    assert.ok(rootRule(r, data) !== undefined, r);
  }
  assert.equal(rootRule(`${data}/distros`, data), undefined);
  assert.equal(rootRule('/srv/forge', data), undefined);
  assert.ok(rootRule('srv', data) !== undefined, 'relative');
  for (const r of defaultBootRoots(data)) assert.equal(rootRule(r, data), undefined, r);
  assert.ok(defaultBootRoots(data).includes('/usr/lib/debian-installer'));
  assert.deepEqual(bootRootsOf({ boot_roots: [], data_dir: data }).roots, defaultBootRoots(data));
  assert.deepEqual(bootRootsOf({ boot_roots: ['/x'], data_dir: data }).roots, ['/x']);
});
