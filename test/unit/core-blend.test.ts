import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyLayer, baseUrlOf, blendProfile, blendSystem, jsonCopy, mergeDict } from '../../server/core/blend.js';
import { defaultDistro, defaultInterface, defaultProfile, defaultSubnet, defaultSystem } from '../../server/core/defaults.js';
import { INHERIT } from '../../server/core/model.js';
import type { Distro, Profile, Settings, System } from '../../server/core/model.js';

const settings: Settings = {
  server: '10.0.0.1',
  http_port: 8080,
  next_server: '10.0.0.1',
  pxe_just_once: true,
  install_grace_minutes: 60,
  default_name_servers: ['10.0.0.53'],
  default_name_servers_search: ['example.org'],
  default_virt_type: 'kvm',
  default_virt_cpus: 1,
  default_virt_ram: 1024,
  default_virt_file_size: 8,
  default_virt_path: '/var/lib/libvirt/images',
  default_virt_bridge: 'br0',
  default_virt_disk_driver: 'qcow2',
  kernel_options: { quiet: null },
  autoinstall_meta: { site: 'lab' },
};

function distro(over: Partial<Distro> = {}): Distro {
  return { ...defaultDistro('deb12'), breed: 'debian', kernel: '/srv/linux', initrd: '/srv/initrd.gz', tree: 'http://mirror/debian', ...over };
}
function profile(name: string, over: Partial<Profile> = {}): Profile {
  return { ...defaultProfile(name), ...over };
}
function system(over: Partial<System> = {}): System {
  return { ...defaultSystem('vm9'), profile: 'web', ...over };
}

test('mergeDict: child wins, !key deletes', () => {
  const cases: [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>][] = [
    [{ a: '1' }, { b: '2' }, { a: '1', b: '2' }],
    [{ a: '1' }, { a: '2' }, { a: '2' }],
    [{ a: '1', b: '2' }, { '!a': null }, { b: '2' }],
    [{ a: '1' }, { '!zz': null }, { a: '1' }],
    [{}, { flag: null }, { flag: null }],
  ];
  for (const [into, layer, want] of cases) assert.deepEqual(mergeDict({ ...into }, layer), want, JSON.stringify([into, layer]));
});

test('applyLayer: inherit defers, lists extend and dedupe, scalars overwrite', () => {
  const cases: { name: string; vars: Record<string, unknown>; layer: Record<string, unknown>; want: Record<string, unknown> }[] = [
    { name: 'inherit keeps parent', vars: { virt_ram: 2048 }, layer: { virt_ram: INHERIT }, want: { virt_ram: 2048 } },
    { name: 'scalar overwrites', vars: { virt_ram: 2048 }, layer: { virt_ram: 4096 }, want: { virt_ram: 4096 } },
    { name: 'empty string overwrites', vars: { virt_path: '/a' }, layer: { virt_path: '' }, want: { virt_path: '' } },
    { name: 'list extends', vars: { boot_loaders: ['ipxe'] }, layer: { boot_loaders: ['grub'] }, want: { boot_loaders: ['ipxe', 'grub'] } },
    { name: 'list dedupes', vars: { boot_loaders: ['ipxe', 'grub'] }, layer: { boot_loaders: ['grub', 'pxe'] }, want: { boot_loaders: ['ipxe', 'grub', 'pxe'] } },
    { name: 'dict merges', vars: { kernel_options: { a: '1' } }, layer: { kernel_options: { b: null } }, want: { kernel_options: { a: '1', b: null } } },
    { name: 'links are not blended', vars: {}, layer: { name: 'x', parent: 'p', distro: 'd', profile: 'q', comment: 'c' }, want: {} },
  ];
  for (const c of cases) assert.deepEqual(applyLayer(structuredClone(c.vars), c.layer), c.want, c.name);
});

test('applyLayer does not mutate the parent dict', () => {
  const parent = { kernel_options: { a: '1' } };
  applyLayer(parent, { kernel_options: { b: '2' } });
  const first = parent.kernel_options;
  const next = applyLayer({ ...parent }, { kernel_options: { '!a': null } });
  assert.deepEqual(first, { a: '1', b: '2' });
  assert.deepEqual(next['kernel_options'], { b: '2' });
});

test('blendProfile: multi-level parents, nearest wins, !key across levels', () => {
  const root = profile('web', {
    distro: 'deb12',
    autoinstall: 'preseed/default.seed',
    virt_ram: 2048,
    virt_cpus: 2,
    kernel_options: { console: 'ttyS0,115200', nomodeset: null },
    autoinstall_meta: { tree: 'http://other/debian', role: 'web' },
  });
  const mid = profile('web-big', { parent: 'web', virt_ram: 4096, kernel_options: { '!nomodeset': null } });
  const leaf = profile('web-big-2', { parent: 'web-big', virt_cpus: INHERIT, autoinstall_meta: { role: 'api' } });
  const v = blendProfile([leaf, mid, root], distro({ kernel_options: { 'vga': '0' } }), settings);
  assert.equal(v['virt_ram'], 4096);
  assert.equal(v['virt_cpus'], 2);
  assert.equal(v['virt_type'], 'kvm', 'settings default when everyone inherits');
  assert.equal(v['virt_bridge'], 'br0');
  assert.equal(v['autoinstall'], 'preseed/default.seed');
  assert.deepEqual(v['kernel_options'], { quiet: null, vga: '0', console: 'ttyS0,115200' });
  // autoinstall_meta promoted to top level, child wins
  assert.equal(v['role'], 'api');
  assert.equal(v['tree'], 'http://other/debian', 'meta tree overrides the distro tree');
  assert.equal(v['site'], 'lab');
  assert.equal(v['profile_name'], 'web-big-2');
  assert.equal(v['distro_name'], 'deb12');
  assert.equal(v['breed'], 'debian');
  assert.equal(v['autoinstall_url'], 'http://10.0.0.1:8080/autoinstall/profile/web-big-2');
  assert.equal(v['kernel_url'], 'http://10.0.0.1:8080/boot/distro/deb12/kernel');
  assert.equal(v['initrd_url'], 'http://10.0.0.1:8080/boot/distro/deb12/initrd');
  assert.equal(typeof v['kernel_cmdline'], 'string');
  assert.deepEqual(v['name_servers'], ['10.0.0.53'], 'settings name servers are the fallback');
});

test('blendSystem: system overrides profile, interfaces exposed, hostname fallback', () => {
  const root = profile('web', { distro: 'deb12', virt_type: 'qemu', name_servers: ['1.1.1.1'], kernel_options: { a: '1', b: '2' } });
  const s = system({
    virt_type: INHERIT,
    virt_ram: 512,
    name_servers: ['8.8.8.8', '1.1.1.1'],
    kernel_options: { '!a': null, c: null },
    interfaces: { eth0: { ...defaultInterface(), mac_address: '52:54:00:00:00:01', dns_name: 'vm9.example.org' } },
  });
  const v = blendSystem(s, [root], distro(), settings);
  assert.equal(v['virt_type'], 'qemu');
  assert.equal(v['virt_ram'], 512);
  assert.deepEqual(v['name_servers'], ['1.1.1.1', '8.8.8.8'], 'lists extend without duplicates');
  assert.deepEqual(v['kernel_options'], { quiet: null, b: '2', c: null });
  assert.equal(v['system_name'], 'vm9');
  assert.equal(v['profile_name'], 'web');
  assert.equal(v['mac_address_eth0'], '52:54:00:00:00:01');
  assert.equal(v['hostname'], 'vm9.example.org');
  assert.equal(v['autoinstall_url'], 'http://10.0.0.1:8080/autoinstall/system/vm9');
  assert.equal(v['tree'], 'http://mirror/debian');
  assert.equal(blendSystem(system({ hostname: 'h1' }), [root], distro(), settings)['hostname'], 'h1');
  assert.equal(blendSystem(system(), [root], distro(), settings)['hostname'], 'vm9');
});

test('blend never leaves <<inherit>> in the result', () => {
  const v = blendSystem(system(), [profile('web', { distro: 'deb12' })], distro(), settings);
  for (const [k, x] of Object.entries(v)) assert.notEqual(x, INHERIT, k);
});

test('baseUrlOf: adds http_port unless server carries one', () => {
  assert.equal(baseUrlOf({ server: '10.0.0.1', http_port: 8080 }), 'http://10.0.0.1:8080');
  assert.equal(baseUrlOf({ server: 'forge.example:80', http_port: 8080 }), 'http://forge.example:80');
  assert.equal(baseUrlOf({ server: 'fd00::1', http_port: 8080 }), 'http://[fd00::1]:8080');
});

test('blendSystem: an interface in a stored subnet takes its netmask, gateway and MTU; the system its gateway, DNS and search list; the kernel line sees them', () => {
  const lab = { ...defaultSubnet('lab'), cidr: '10.96.0.128/25', router: '10.96.0.129', dns: ['10.96.0.130'], domain: 'lab.example', dns_search: ['lab.example', 'example'], mtu: 9000, next_server: '10.96.0.131' };
  const other = { ...defaultSubnet('other'), cidr: '10.97.0.0/24', router: '10.97.0.1' };
  const d = distro({ breed: 'redhat' });
  const s = system({
    interfaces: {
      eth0: { ...defaultInterface(), mac_address: '52:54:00:00:00:01', ip_address: '10.96.0.140', static: true },
      eth1: { ...defaultInterface(), mac_address: '52:54:00:00:00:02', ip_address: '10.97.0.5', netmask: '255.255.0.0', if_gateway: '10.97.0.254', static: true },
      eth2: { ...defaultInterface(), mac_address: '52:54:00:00:00:03' },
    },
  });
  const v = blendSystem(s, [profile('web', { distro: 'deb12' })], d, settings, [other, lab]);
  const ifs = v['interfaces'] as Record<string, { netmask: string; if_gateway: string; mtu: number }>;
  assert.deepEqual([ifs['eth0']?.netmask, ifs['eth0']?.if_gateway, ifs['eth0']?.mtu], ['255.255.255.128', '10.96.0.129', 9000]);
  assert.deepEqual([ifs['eth1']?.netmask, ifs['eth1']?.if_gateway, ifs['eth1']?.mtu], ['255.255.0.0', '10.97.0.254', 0], 'own values win');
  assert.deepEqual([ifs['eth2']?.netmask, ifs['eth2']?.if_gateway], ['', ''], 'no address: no subnet');
  assert.equal(v['netmask_eth0'], '255.255.255.128');
  assert.equal(v['subnet_eth0'], 'lab');
  assert.equal(v['subnet_eth1'], 'other');
  assert.equal(v['gateway'], '10.96.0.129');
  assert.deepEqual(v['name_servers'], ['10.96.0.130']);
  assert.deepEqual(v['name_servers_search'], ['lab.example', 'example']);
  assert.deepEqual(v['subnet'], { name: 'lab', cidr: '10.96.0.128/25', netmask: '255.255.255.128', router: '10.96.0.129', dns: ['10.96.0.130'], domain: 'lab.example', dns_search: ['lab.example', 'example'], mtu: 9000, next_server: '10.96.0.131' });
  // dracut's ip= carries the subnet's gateway and netmask for the static boot interface.
  assert.match(v['kernel_cmdline'] as string, /ip=10\.96\.0\.140::10\.96\.0\.129:255\.255\.255\.128:/);
  // Without subnets nothing changes, and the system's own values always win.
  const plain = blendSystem(s, [profile('web', { distro: 'deb12' })], d, settings);
  assert.equal((plain['interfaces'] as Record<string, { netmask: string }>)['eth0']?.netmask, '');
  assert.deepEqual(plain['name_servers'], ['10.0.0.53']);
  const own = blendSystem(system({ ...s, gateway: '10.96.0.200', name_servers: ['9.9.9.9'] }), [profile('web', { distro: 'deb12' })], d, settings, [lab]);
  assert.deepEqual([own['gateway'], own['name_servers']], ['10.96.0.200', ['9.9.9.9']]);
});

test('jsonCopy: a deep copy of a JSON value that shares no dict or list and reads getters (settings.server follows the request)', () => {
  const src = { a: [1, { b: ['x'] }], d: { e: { f: null } }, n: 0, s: '', t: true };
  const c = jsonCopy(src);
  assert.deepEqual(c, src);
  assert.notEqual(c.a, src.a);
  assert.notEqual(c.a[1], src.a[1]);
  assert.notEqual(c.d.e, src.d.e);
  (c.a[1] as { b: string[] }).b.push('y');
  c.d.e.f = null;
  assert.deepEqual(src.a[1], { b: ['x'] });
  let host = '10.0.0.1';
  const live = { ...settings };
  Object.defineProperty(live, 'server', { enumerable: true, get: () => host });
  host = '10.0.0.9';
  assert.equal(jsonCopy(live).server, '10.0.0.9');
  assert.equal(blendProfile([profile('p')], distro(), live)['server'], '10.0.0.9');
});

test('blendSystem shares no dict or list with the settings, the chain or the system (callers may edit what they get)', () => {
  const p = profile('p', { kernel_options: { console: 'ttyS0' }, name_servers: ['10.0.0.2'] });
  const s = system({ interfaces: { eth0: { ...defaultInterface(), mac_address: 'aa:bb:cc:dd:ee:ff', ip_address: '10.0.0.5' } } });
  const before = JSON.stringify([settings, p, s]);
  const v = blendSystem(s, [p], distro(), settings);
  (v['kernel_options'] as Record<string, unknown>)['x'] = 1;
  (v['autoinstall_meta'] as Record<string, unknown>)['x'] = 1;
  (v['name_servers'] as unknown[]).push('x');
  (v['interfaces'] as Record<string, { mtu: number }>)['eth0']!.mtu = 1;
  const again = blendSystem(s, [p], distro(), settings);
  assert.equal(JSON.stringify([settings, p, s]), before);
  assert.equal((again['kernel_options'] as Record<string, unknown>)['x'], undefined);
  assert.deepEqual(again['name_servers'], ['10.0.0.2']);
});
