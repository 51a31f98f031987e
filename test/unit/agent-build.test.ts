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
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ForgeError } from '../../server/errors.js';
import { buildVolumes, firstbootScript, fstab, lvmCommands, mkfsCommands, mmdebstrapArgs, networkdFiles, partitions, planBuild, resolvConf, sgdiskArgs, substituteTokens, suiteOf, volumeSizeMiB } from '../../agent/buildplan.js';
import { blendSystem } from '../../server/core/blend.js';
import { defaultSubnet } from '../../server/core/defaults.js';
import { distro, nic, profile, settings, system } from '../lib/render-fixtures.js';
import { configReport, layerConfig } from '../../agent/config.js';
import { fstabMounts } from '../../agent/maint.js';
import { runBuild } from '../../agent/build.js';
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
    { mac: '52:54:00:00:00:01', ip: '192.0.2.9', prefix: 24, gateway: '192.0.2.1', mtu: 0 },
    { mac: '52:54:00:00:00:02', ip: '', prefix: 24, gateway: '192.0.2.1', mtu: 0 },
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
  assert.ok(mmdebstrapArgs(u, '/run/forge-build-vm9-x', undefined).includes('--components=main,universe'));
  // A profile build has no record to report first boot to.
  assert.equal(planBuild(REC, { ...O, targetKind: 'profile' }).firstbootUrl, undefined);
});

test("Ubuntu suites: mmdebstrap's and debootstrap's rules (keyring, mirror, components, kernel package)", () => {
  for (const os of ['jammy', '22.04', 'noble', '24.04', 'resolute']) {
    const u = planBuild({ ...REC, os_version: os, breed: 'debian', tree: '' }, O);
    assert.equal(u.ubuntu, true, os);
    // mmdebstrap get_sourceslist_by_suite: amd64 Ubuntu comes from archive.ubuntu.com/ubuntu (ports.ubuntu.com is for other arches).
    assert.equal(u.mirror, 'http://archive.ubuntu.com/ubuntu');
    // debootstrap scripts/gutsy `keyring`, mmdebstrap get_keyring_by_suite without Dpkg::Vendor::Ubuntu.
    assert.equal(u.keyring, '/usr/share/keyrings/ubuntu-archive-keyring.gpg');
    assert.ok(u.packages.includes('linux-image-virtual') && !u.packages.includes('linux-image-amd64'), "Ubuntu's VM kernel, not Debian's");
    assert.ok(u.packages.includes('ubuntu-keyring'), "apt in the guest must trust Ubuntu's archive after the build");
    const a = mmdebstrapArgs(u, '/run/forge-build-vm9-x', undefined);
    assert.ok(a.includes('--keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg'));
    assert.ok(a.includes('--components=main,universe'));
    assert.deepEqual(a.slice(-3), [u.suite, '/run/forge-build-vm9-x', 'http://archive.ubuntu.com/ubuntu']);
  }
  // Debian keeps the host's default keyring (mmdebstrap picks debian-archive-keyring) and no extra components.
  const d = planBuild(REC, O);
  assert.equal(d.keyring, undefined);
  assert.ok(!mmdebstrapArgs(d, '/run/forge-build-vm9-x', undefined).some((x) => x.startsWith('--components') || x.startsWith('--keyring')));
  // Every Ubuntu suite this host's distro-info-data knows (the list mmdebstrap reads) from bionic on is recognised.
  const csv = '/usr/share/distro-info/ubuntu.csv';
  let known: string[] = [];
  try {
    known = readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((l) => l.split(',')[2] as string);
  } catch {
    /* distro-info-data not installed */
  }
  for (const suite of known.slice(known.indexOf('bionic')).filter((x) => !['cosmic', 'disco', 'eoan', 'groovy', 'hirsute', 'impish'].includes(x))) {
    assert.equal(planBuild({ ...REC, os_version: suite, breed: 'debian' }, O).ubuntu, true, `${suite} (from ${csv})`);
  }
});

test('an Ubuntu build without Ubuntu\'s keyring on the host fails before anything is made, naming the keyring field', async () => {
  if (existsSync('/usr/share/keyrings/ubuntu-archive-keyring.gpg')) return; // the host has it: nothing to refuse
  const o = parseOptions(['--server', 'http://f:1', '--system', 'u1', '--virt', '--build', 'debootstrap', '--virt-path', '/nonexistent-dir'], { env: {}, isTTY: false, isRoot: true, home: '/root' });
  const events: string[] = [];
  const api = {
    // The server's own blend of an Ubuntu 24.04 distro.
    blended: () => Promise.resolve(blendSystem(system('u1', 'web', { interfaces: { eth0: nic({ mac_address: '52:54:00:00:00:09' }) } }), [profile('web', { distro: 'u24' })], distro('u24', 'ubuntu', 'noble', ''), settings)),
    distroFiles: () => Promise.reject(new Error('unused')),
    list: () => Promise.resolve([]),
    event: (_s: string, t: string) => {
      events.push(t);
      return Promise.resolve(true);
    },
  };
  await assert.rejects(
    runBuild(o, { api, connectVirt: () => Promise.reject(new Error('must not connect')), resolveVirtType: () => Promise.reject(new Error('unused')), out: () => undefined, err: () => undefined, uuid: () => 'u', randomMac: () => '52:54:00:00:00:09', tty: false }),
    (e: unknown) => e instanceof ForgeError && e.code === 'INVALID_FIELD' && e.field === 'keyring' && /ubuntu-archive-keyring\.gpg does not exist.*ubuntu-keyring package/.test(e.message),
  );
  assert.deepEqual(events, [], 'nothing started, nothing recorded');
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
  cmd(['mmdebstrap', ...mmdebstrapArgs(p, '/run/forge-build-vm9-x', '/cache/apt')]);
  // Ubuntu (its archive is unreachable here, so these are golden only): suite by name, by release number and by breed.
  for (const [label, rec] of [
    ['Ubuntu 22.04 by release number, Ubuntu\'s archive by default', { ...REC, os_version: '22.04', breed: 'ubuntu', tree: '' }],
    ['Ubuntu noble, a local mirror, the record\'s keyring', { ...REC, os_version: 'noble', breed: 'debian', tree: 'http://mirror.lab/ubuntu', keyring: '/etc/forge/keys/ubuntu.gpg' }],
    ['Ubuntu resolute (26.04) from a distro of breed ubuntu', { ...REC, os_version: '26.04', breed: 'ubuntu', tree: 'http://mirror.lab/ubuntu' }],
  ] as const) {
    lines.push(`# mmdebstrap, ${label}`);
    cmd(['mmdebstrap', ...mmdebstrapArgs(planBuild(rec, O), '/run/forge-build-vm9-u', '/cache/apt')]);
  }
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

/** Compare with (or, FORGE_UPDATE_GOLDEN=1, write) test/golden/agent/NAME. */
function golden(name: string, text: string): void {
  const file = join(GOLDEN, name);
  if (process.env['FORGE_UPDATE_GOLDEN'] === '1') {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, text);
  }
  assert.equal(text, readFileSync(file, 'utf8'));
}

test('golden: the guest network from the record\'s interfaces and their subnet objects (netmask, gateway, MTU, DNS, search), as the installer path takes them', () => {
  // The server's own blend (what GET /systems/NAME/blended returns) with stored subnets, then the build plan.
  const lab = { ...defaultSubnet('lab'), cidr: '10.96.0.128/25', router: '10.96.0.129', dns: ['10.96.0.130', '10.96.0.131'], domain: 'lab.example', dns_search: ['lab.example', 'example'], mtu: 1400 };
  const other = { ...defaultSubnet('other'), cidr: '10.97.0.0/24', router: '10.97.0.1', mtu: 9000 };
  const s = system('vm9', 'web', {
    hostname: 'vm9',
    interfaces: {
      eth0: nic({ mac_address: '52:54:00:00:00:01', ip_address: '10.96.0.140', static: true }),
      eth1: nic({ mac_address: '52:54:00:00:00:02', ip_address: '10.97.0.5', netmask: '255.255.0.0', if_gateway: '10.97.0.254', mtu: 1500, static: true }),
      eth2: nic({ mac_address: '52:54:00:00:00:03' }),
    },
  });
  const d = distro('deb12', 'debian', 'bookworm', 'http://deb.debian.org/debian');
  const blended = blendSystem(s, [profile('web', { distro: 'deb12' })], d, settings, [other, lab]);
  const p = planBuild(blended, O);
  assert.deepEqual(p.nics.map((n) => [n.ip, n.prefix, n.gateway, n.mtu]), [
    ['10.96.0.140', 25, '10.96.0.129', 1400],
    ['10.97.0.5', 16, '10.97.0.254', 1500],
    ['', 24, '10.96.0.129', 0],
  ], "the subnet fills what the interface leaves unset; the interface's own values win");
  assert.deepEqual([p.nameServers, p.dnsSearch], [['10.96.0.130', '10.96.0.131'], ['lab.example', 'example']]);
  const files = networkdFiles(p);
  const text = [...Object.entries(files).map(([f, t]) => `# ${f}\n${t}`), `# /etc/resolv.conf\n${resolvConf(p) ?? ''}`].join('\n');
  golden('build-network.txt', text);
  // The record's own DNS wins over the subnet's; none at all: the host's resolv.conf is copied.
  assert.equal(resolvConf(planBuild({ ...blended, name_servers: ['9.9.9.9'], name_servers_search: [] }, O)), 'nameserver 9.9.9.9\n');
  assert.equal(resolvConf(planBuild({ ...blended, name_servers: [], name_servers_search: [] }, O)), undefined);
  assert.throws(() => planBuild({ ...blended, interfaces: { eth0: { mac_address: '52:54:00:00:00:01', mtu: 20 } } }, O), (e: unknown) => e instanceof ForgeError && e.field === 'mtu');
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
