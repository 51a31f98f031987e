/**
 * forge-agent --build's pure decisions: the build plan from a blended record,
 * %TOKEN% substitution, the GPT layouts, the exact LVM/sgdisk/mkfs/mmdebstrap
 * commands (golden: test/golden/agent/build-commands.txt, FORGE_UPDATE_GOLDEN=1
 * rewrites it), systemd-networkd files, fstab, the guest's first-boot script
 * (bash -n), the record's build_method, the config layers and
 * `mount`'s reading of fstab.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ForgeError } from '../../server/errors.js';
import { buildVolumes, firstbootScript, fstab, lvmCommands, mkfsCommands, mmdebstrapArgs, networkdFiles, partitions, planBuild, sgdiskArgs, substituteTokens, suiteOf, volumeSizeMiB } from '../../agent/buildplan.js';
import { configReport, layerConfig } from '../../agent/config.js';
import { fstabMounts } from '../../agent/maint.js';
import { buildMethodOf } from '../../agent/main.js';
import { parseOptions } from '../../agent/options.js';

const GOLDEN = fileURLToPath(new URL('../../../test/golden/agent/', import.meta.url));

const REC = {
  name: 'vm9',
  hostname: 'vm9.lab.example',
  os_version: '12',
  breed: 'debian',
  profile_name: 'web',
  tree: 'http://mirror.lab/debian',
  packages: 'curl, vim',
  ssh_authorized_keys: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0 a@b;ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1 c@d',
  timezone: 'Europe/Berlin',
  name_servers: ['192.0.2.53'],
  name_servers_search: ['lab.example'],
  gateway: '192.0.2.1',
  autoinstall_meta: { marker: 'x1', build_method: 'debootstrap' },
  interfaces: {
    eth1: { mac_address: '52:54:00:00:00:02', static: false },
    eth0: { mac_address: '52:54:00:00:00:01', static: true, ip_address: '192.0.2.9', netmask: '255.255.255.0', if_gateway: '' },
  },
};
const O = { domain: 'vm9', firmware: 'bios' as const, server: 'http://forge:8080', targetKind: 'system' as const };

test('build plan: suite, mirror, packages, hostname, keys, network, tokens from the record', () => {
  const p = planBuild(REC, O);
  assert.equal(p.suite, 'bookworm');
  assert.equal(p.mirror, 'http://mirror.lab/debian');
  assert.deepEqual(p.packages.slice(-3), ['linux-image-amd64', 'curl', 'vim']);
  assert.equal(p.hostname, 'vm9');
  assert.equal(p.sshKeys.length, 2);
  assert.equal(p.timezone, 'Europe/Berlin');
  assert.deepEqual(p.nics, [
    { mac: '52:54:00:00:00:01', ip: '192.0.2.9', prefix: 24, gateway: '192.0.2.1' },
    { mac: '52:54:00:00:00:02', ip: '', prefix: 24, gateway: '192.0.2.1' },
  ]);
  assert.equal(p.overlayDir, '/etc/forge/overlay/web');
  assert.equal(p.hooksDir, '/etc/forge/hooks');
  assert.equal(p.firstbootUrl, 'http://forge:8080/api/v1/systems/vm9/firstboot', 'outside the install window: no token path');
  // In the window, the report goes to the server the agent reached, under the record's install token.
  const w = planBuild({ ...REC, base_url: 'http://10.0.0.1:8080', install_base_url: 'http://10.0.0.1:8080/i/4f2a9c0d1e', }, O);
  assert.equal(w.firstbootUrl, 'http://forge:8080/i/4f2a9c0d1e/api/v1/systems/vm9/firstboot');
  assert.equal(p.tokens['DISTR'], 'bookworm');
  assert.equal(p.tokens['marker'], 'x1');
  // Same inputs, same cached root tree; another package list, another.
  assert.equal(planBuild(REC, O).rootfsKey, p.rootfsKey);
  assert.notEqual(planBuild({ ...REC, packages: 'curl' }, O).rootfsKey, p.rootfsKey);
  // A file tree is no mirror: Debian's archive then; Ubuntu suites get Ubuntu's archive.
  assert.equal(planBuild({ ...REC, tree: '/srv/iso/deb12' }, O).mirror, 'http://deb.debian.org/debian');
  const u = planBuild({ ...REC, os_version: 'noble', tree: '' }, O);
  assert.equal(u.mirror, 'http://archive.ubuntu.com/ubuntu');
  assert.ok(u.packages.includes('linux-image-virtual'));
  assert.ok(mmdebstrapArgs(u, '/x.tar', undefined).includes('--components=main,universe'));
  // A profile build has no record to report first boot to.
  assert.equal(planBuild(REC, { ...O, targetKind: 'profile' }).firstbootUrl, undefined);
});

test('build plan: bad input names the field', () => {
  const bad = (v: Record<string, unknown>, field: string): void =>
    assert.throws(() => planBuild({ ...REC, ...v }, O), (e: unknown) => e instanceof ForgeError && (e.details as { field?: string } | undefined)?.field === field || (e as ForgeError).field === field);
  bad({ os_version: '' }, 'os_version');
  bad({ os_version: 'bad suite!' }, 'os_version');
  bad({ packages: 'ok, Bad;rm -rf' }, 'packages');
  bad({ hostname: '-bad-' }, 'hostname');
  bad({ timezone: '../etc/passwd' }, 'timezone');
  bad({ mirror: 'ftp://x' }, 'mirror');
  assert.equal(suiteOf({ os_version: 'trixie' }), 'trixie');
  assert.equal(suiteOf({ os_version: '22.04' }), 'jammy');
  assert.equal(suiteOf({ os_version: '12', suite: 'sid' }), 'sid');
});

test('overlay tokens: %KEY% replaced, unknown ones kept', () => {
  assert.equal(substituteTokens('deb http://x %DISTR% main # %HOSTNAME% %nope% 100%', { DISTR: 'bookworm', HOSTNAME: 'vm9' }), 'deb http://x bookworm main # vm9 %nope% 100%');
});

test('layouts: seed 000 GPT (BIOS boot 4 MiB or ESP, swap 1020 MiB, root) and seed 001 split volumes', () => {
  assert.deepEqual(partitions('bios', 'gpt').map((p) => [p.role, p.sizeMiB, p.type]), [['biosboot', 4, 'EF02'], ['swap', 1020, '8200'], ['root', 0, '8300']]);
  assert.deepEqual(partitions('uefi', 'gpt').map((p) => p.role), ['esp', 'swap', 'root']);
  assert.deepEqual(buildVolumes({ kind: 'lvm', vg: 'vg0', lv: 'vm9-disk01' }, 'vm9', 'split').map((v) => v.target), [
    { kind: 'lvm', vg: 'vg0', lv: 'vm9-boot' },
    { kind: 'lvm', vg: 'vg0', lv: 'vm9-root' },
  ]);
  assert.throws(() => buildVolumes({ kind: 'device', path: '/dev/sdb' }, 'vm9', 'split'), /--layout split needs/);
  assert.equal(volumeSizeMiB('disk', 5), 5120);
  assert.equal(volumeSizeMiB('root', 5), 4608);
});

test('golden: the exact LVM, sgdisk, mkfs and mmdebstrap commands', () => {
  const p = planBuild(REC, O);
  const lines: string[] = [];
  const cmd = (c: string[]): void => void lines.push(c.join(' '));
  lines.push('# LVM, volume absent: created');
  lvmCommands('vg0', 'vm9-disk01', 5120, 'absent', false).forEach(cmd);
  lines.push('# LVM, volume exists and is empty: reused (nothing to run)');
  lvmCommands('vg0', 'vm9-disk01', 5120, 'empty', false).forEach(cmd);
  lines.push('# LVM, volume holds data, --force: reused and overwritten');
  lvmCommands('vg0', 'vm9-disk01', 5120, 'data', true).forEach(cmd);
  for (const fw of ['bios', 'uefi'] as const) {
    for (const layout of ['gpt', 'split'] as const) {
      lines.push(`# ${fw} ${layout}`);
      const parts = partitions(fw, layout);
      cmd(['sgdisk', ...sgdiskArgs(parts, '/dev/loop7')]);
      for (const part of parts) mkfsCommands(part.role, `/dev/loop7p${part.n}`, 'vm9').forEach(cmd);
      if (layout === 'split') mkfsCommands('root', '/dev/loop8', 'vm9').forEach(cmd);
    }
  }
  lines.push('# mmdebstrap');
  cmd(['mmdebstrap', ...mmdebstrapArgs(p, '/cache/rootfs/x.tar', '/cache/apt')]);
  const text = lines.join('\n') + '\n';
  const file = join(GOLDEN, 'build-commands.txt');
  if (process.env['FORGE_UPDATE_GOLDEN'] === '1') {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, text);
  }
  assert.equal(text, readFileSync(file, 'utf8'));
  // An LV holding data is never overwritten without --force.
  assert.throws(() => lvmCommands('vg0', 'vm9-disk01', 5120, 'data', false), (e: unknown) => e instanceof ForgeError && e.code === 'VIRT_EXISTS' && /holds data/.test(e.message));
});

test('network, fstab and the first-boot script', () => {
  const p = planBuild(REC, O);
  const files = networkdFiles(p);
  assert.equal(files['/etc/systemd/network/10-forge-0.network'], '[Match]\nMACAddress=52:54:00:00:00:01\n\n[Network]\nAddress=192.0.2.9/24\nGateway=192.0.2.1\nDNS=192.0.2.53\nDomains=lab.example\n');
  assert.match(files['/etc/systemd/network/10-forge-1.network'] as string, /DHCP=yes/);
  assert.equal(fstab([{ uuid: 'u1', mount: '/', type: 'ext4', pass: 1 }, { uuid: 'u2', mount: 'none', type: 'swap', pass: 0 }]), '# written by forge-agent --build\nUUID=u1 / ext4 errors=remount-ro 0 1\nUUID=u2 none swap sw 0 0\n');
  const sh = firstbootScript("http://forge:8080/api/v1/systems/it's/firstboot");
  const r = spawnSync('bash', ['-n'], { input: sh, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(sh, /url='http:\/\/forge:8080\/api\/v1\/systems\/it'\\''s\/firstboot'/);
});

test("build_method on the record picks the path; --build overrides", () => {
  assert.equal(buildMethodOf({ build_method: 'debootstrap' }), 'debootstrap');
  assert.equal(buildMethodOf({}), 'installer');
  assert.throws(() => buildMethodOf({ build_method: 'vmdb2' }), /build_method 'vmdb2' must be debootstrap or installer/);
  const o = parseOptions(['--server', 'http://f:1', '--system', 'vm9', '--virt', '--build', 'debootstrap', '--suite', 'trixie', '--json'], { env: {}, isTTY: false, isRoot: true, home: '/root' });
  assert.equal(o.build, 'debootstrap');
  assert.equal(o.suite, 'trixie');
  assert.equal(o.json, true);
  assert.throws(() => parseOptions(['--server', 'http://f:1', '--system', 'vm9', '--virt', '--build', 'kiwi'], { env: {}, isTTY: false, isRoot: true, home: '/root' }), /--build must be one of debootstrap\|installer/);
});

test('config layers: defaults < /etc < ~/.config < env < flags', () => {
  const files = [
    { path: '/etc/forge/agent.json', text: JSON.stringify({ server: 'http://etc:1', 'virt-path': '/etc-vms', connect: 'qemu:///session', nogfx: true }) },
    { path: '/home/u/.config/forge/agent.json', text: JSON.stringify({ 'virt-path': '/home-vms', mirror: 'http://m/debian' }) },
  ];
  const l = layerConfig(files, { FORGE_AGENT_MIRROR: 'http://env/debian', LIBVIRT_DEFAULT_URI: 'qemu:///system' });
  assert.equal(l.values.get('server'), 'http://etc:1');
  assert.equal(l.values.get('virt-path'), '/home-vms');
  assert.equal(l.values.get('mirror'), 'http://env/debian');
  assert.equal(l.source.get('mirror'), 'env FORGE_AGENT_MIRROR');
  assert.equal(l.values.get('connect'), 'qemu:///system');
  const o = parseOptions(['--system', 'vm9', '--virt', '--virt-path', '/flag-vms'], { env: {}, config: l.values, isTTY: false, isRoot: true, home: '/root' });
  assert.equal(o.server, 'http://etc:1');
  assert.equal(o.virtPath, '/flag-vms');
  assert.equal(o.mirror, 'http://env/debian');
  assert.equal(o.graphics, 'none', 'a boolean from a file');
  const report = configReport(l, new Map([['virt-path', '/flag-vms']]), { 'log-dir': '/var/log/libvirt/qemu' });
  assert.match(report, /^virt-path\s+\/flag-vms {2}\[flag\]$/m);
  assert.match(report, /^mirror\s+http:\/\/env\/debian {2}\[env FORGE_AGENT_MIRROR\]$/m);
  assert.match(report, /^server\s+http:\/\/etc:1 {2}\[\/etc\/forge\/agent.json\]$/m);
  assert.match(report, /^log-dir\s+\/var\/log\/libvirt\/qemu {2}\[default\]$/m);
  assert.throws(() => layerConfig([{ path: '/etc/forge/agent.json', text: '{"virt_path": "/x"}' }], {}), /\/etc\/forge\/agent.json: 'virt_path' is not a configurable option/);
  assert.throws(() => layerConfig([{ path: '/e.json', text: '{' }], {}), /\/e.json: not JSON/);
  assert.throws(() => layerConfig([{ path: '/e.json', text: '{"nogfx": "yes"}' }], {}), /'nogfx' must be true or false/);
});

test('mount reads the root fstab: /boot before /boot/efi, no / or swap', () => {
  assert.deepEqual(fstabMounts('# x\nUUID=AA / ext4 d 0 1\nUUID=cc /boot/efi vfat d 0 2\nUUID=bb /boot ext4 d 0 2\nUUID=dd none swap sw 0 0\n/dev/vdb /srv ext4 d 0 2\n'), [
    { uuid: 'bb', mount: '/boot', type: 'ext4' },
    { uuid: 'cc', mount: '/boot/efi', type: 'vfat' },
  ]);
});
