/**
 * Tree recognition for `forge import` and the loader table, over temp
 * directories shaped like the real trees (and the real d-i netboot package
 * when installed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectTree, parseTreeinfo } from '../../server/importer.js';
import { findLoaders, loaderPath, LOADERS } from '../../server/boot/loaders.js';
import { ForgeError } from '../../server/errors.js';

function tree(files: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'fgboot-import-'));
  for (const f of files) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), f.endsWith('.treeinfo') ? '[general]\narch = x86_64\n[release]\nname = Rocky Linux\nversion = 9.4\n' : 'x');
  }
  return dir;
}

test('Debian netboot tarball root: debian-installer/amd64/{linux,initrd.gz}', () => {
  const dir = tree(['debian-installer/amd64/linux', 'debian-installer/amd64/initrd.gz', 'pxelinux.0']);
  try {
    const t = detectTree(dir);
    assert.equal(t.layout, 'debian-netboot');
    assert.equal(t.breed, 'debian');
    assert.equal(t.arch, 'x86_64');
    assert.equal(t.kernel, join(dir, 'debian-installer/amd64/linux'));
    assert.equal(t.initrd, join(dir, 'debian-installer/amd64/initrd.gz'));
    assert.equal(t.tree, dir);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('Ubuntu netboot, Red Hat with .treeinfo, SUSE loader dir', () => {
  const u = tree(['ubuntu-installer/amd64/linux', 'ubuntu-installer/amd64/initrd.gz']);
  const r = tree(['.treeinfo', 'images/pxeboot/vmlinuz', 'images/pxeboot/initrd.img']);
  const s = tree(['boot/x86_64/loader/linux', 'boot/x86_64/loader/initrd']);
  try {
    assert.equal(detectTree(u).breed, 'ubuntu');
    const rt = detectTree(r);
    assert.deepEqual([rt.layout, rt.breed, rt.arch, rt.os_version], ['redhat', 'redhat', 'x86_64', '9.4']);
    assert.equal(rt.kernel, join(r, 'images/pxeboot/vmlinuz'));
    const st = detectTree(s);
    assert.deepEqual([st.layout, st.breed, st.arch], ['suse', 'suse', 'x86_64']);
    assert.equal(st.initrd, join(s, 'boot/x86_64/loader/initrd'));
  } finally {
    for (const d of [u, r, s]) rmSync(d, { recursive: true });
  }
});

test('Red Hat pxeboot images without .treeinfo are not a Red Hat tree; nothing -> IMPORT_UNRECOGNISED listing what was looked for', () => {
  const d = tree(['images/pxeboot/vmlinuz', 'images/pxeboot/initrd.img']);
  try {
    assert.throws(
      () => detectTree(d),
      (e: unknown) => e instanceof ForgeError && e.code === 'IMPORT_UNRECOGNISED' && /\.treeinfo/.test(e.message) && /initrd\.gz/.test(e.message) && /boot\/ARCH\/loader/.test(e.message),
    );
    assert.throws(() => detectTree(join(d, 'nope')), (e: unknown) => e instanceof ForgeError && e.code === 'IMPORT_UNRECOGNISED');
  } finally {
    rmSync(d, { recursive: true });
  }
});

test('the installed Debian 12 netboot package is recognised', (t) => {
  const dir = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';
  if (!existsSync(dir)) return t.skip('debian-installer-12-netboot-amd64 not installed');
  const tr = detectTree(dir);
  assert.equal(tr.breed, 'debian');
  assert.equal(tr.arch, 'x86_64');
  assert.equal(tr.os_version, '12');
  assert.equal(tr.kernel, join(dir, 'linux'));
});

test('.treeinfo parsing', () => {
  assert.deepEqual(parseTreeinfo('# c\n[general]\narch=aarch64\n\n[release]\n version = 9 \n'), { general: { arch: 'aarch64' }, release: { version: '9' } });
});

test('loaders: config overrides win, missing ones name their package, unknown/unsafe names refused', () => {
  const present = new Set(['/usr/lib/ipxe/undionly.kpxe', '/opt/my/ipxe.efi', '/opt/extra.efi']);
  const exists = (p: string): number | undefined => (present.has(p) ? 42 : undefined);
  const list = findLoaders({ 'ipxe.efi': '/opt/my/ipxe.efi', 'extra.efi': '/opt/extra.efi', '../x': '/etc/passwd' }, exists);
  const by = (n: string) => list.find((l) => l.name === n);
  assert.equal(by('undionly.kpxe')?.origin, 'package');
  assert.equal(by('ipxe.efi')?.path, '/opt/my/ipxe.efi');
  assert.equal(by('ipxe.efi')?.origin, 'config');
  assert.equal(by('pxelinux.0')?.origin, 'missing');
  assert.equal(by('pxelinux.0')?.package, 'pxelinux');
  assert.equal(by('ldlinux.c32')?.package, 'syslinux-common');
  assert.equal(by('grubx64.efi')?.package, 'grub-efi-amd64-signed');
  assert.equal(by('shimx64.efi')?.package, 'shim-signed');
  assert.equal(by('extra.efi')?.firmware, 'uefi');
  assert.equal(by('../x'), undefined);
  assert.equal(list.length, LOADERS.length + 1);
  assert.deepEqual(loaderPath('ipxe.efi', { 'ipxe.efi': '/opt/my/ipxe.efi' }, exists), { path: '/opt/my/ipxe.efi', size: 42 });
  assert.equal(loaderPath('../../etc/passwd', {}, exists), undefined);
  assert.equal(loaderPath('pxelinux.0', {}, exists), undefined);
});

test('Ubuntu live-server tree: casper/vmlinuz + casper/initrd, version from .disk/info, an .iso in the tree remembered', () => {
  const dir = tree(['casper/vmlinuz', 'casper/initrd', 'ubuntu-24.04.1-live-server-amd64.iso']);
  const bare = tree(['casper/vmlinuz', 'casper/initrd']);
  try {
    mkdirSync(join(dir, '.disk'));
    writeFileSync(join(dir, '.disk', 'info'), 'Ubuntu-Server 24.04.1 LTS "Noble Numbat" - Release amd64 (20240827)');
    const t = detectTree(dir);
    assert.deepEqual([t.layout, t.breed, t.arch, t.os_version], ['ubuntu-live', 'ubuntu', 'x86_64', '24.04']);
    assert.equal(t.kernel, join(dir, 'casper/vmlinuz'));
    assert.equal(t.initrd, join(dir, 'casper/initrd'));
    assert.equal(t.iso, 'ubuntu-24.04.1-live-server-amd64.iso');
    const b = detectTree(bare);
    assert.equal(b.layout, 'ubuntu-live');
    assert.equal(b.iso, undefined);
  } finally {
    for (const d of [dir, bare]) rmSync(d, { recursive: true });
  }
});
