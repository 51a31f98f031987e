import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ForgeError } from '../../server/errors.js';
import {
  isIPv4,
  normalizeNetmask,
  parseOptionString,
  shellSplit,
  validateNew,
  validatePatch,
} from '../../server/core/validate.js';

function rejects(fn: () => unknown, code: string, field?: string): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ForgeError, String(e));
    assert.equal(e.code, code, e.message);
    if (field !== undefined) assert.equal(e.field, field, e.message);
    assert.ok(field === undefined || e.message.startsWith(field) || e.message.includes(field), e.message);
    return;
  }
  assert.fail(`expected ${code}`);
}

test('IPv4 and netmasks', () => {
  for (const ok of ['0.0.0.0', '10.0.0.9', '255.255.255.255']) assert.ok(isIPv4(ok), ok);
  for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.09', '1.2.3.4.5', 'a.b.c.d', '']) assert.ok(!isIPv4(bad), bad);
  const masks: [string, string | undefined][] = [
    ['255.255.255.0', '255.255.255.0'],
    ['24', '255.255.255.0'],
    ['/16', '255.255.0.0'],
    ['0', '0.0.0.0'],
    ['32', '255.255.255.255'],
    ['255.0.255.0', undefined],
    ['33', undefined],
    ['255.255.255.1', undefined],
  ];
  for (const [i, want] of masks) assert.equal(normalizeNetmask(i), want, i);
});

test('option strings: Cobbler a=b c, quotes, flags', () => {
  assert.deepEqual(parseOptionString('console=ttyS0,115200 quiet'), { console: 'ttyS0,115200', quiet: null });
  assert.deepEqual(parseOptionString(`a="b c" 'd=e f' g==h`), { a: 'b c', d: 'e f', g: '=h' });
  assert.deepEqual(parseOptionString('!quiet'), { '!quiet': null });
  assert.deepEqual(parseOptionString(''), {});
  assert.deepEqual(shellSplit(`x "" y`), ['x', '', 'y']);
  rejects(() => parseOptionString('=b'), 'INVALID_FIELD');
  rejects(() => parseOptionString('a="b'), 'INVALID_FIELD');
});

test('validateNew: defaults, normalisation, required fields', () => {
  const s = validateNew('system', {
    name: 'vm9',
    profile: 'p',
    netboot_enabled: 'no',
    virt_ram: '2048',
    name_servers: '1.1.1.1, 2001:db8::1',
    interfaces: { eth0: { mac_address: 'AA-BB-CC-DD-EE-FF', netmask: '24', mtu: '9000', static: 'yes' } },
  });
  assert.equal(s.netboot_enabled, false);
  assert.equal(s.virt_ram, 2048);
  assert.equal(s.virt_cpus, '<<inherit>>');
  assert.deepEqual(s.name_servers, ['1.1.1.1', '2001:db8::1']);
  assert.equal(s.interfaces['eth0']!.mac_address, 'aa:bb:cc:dd:ee:ff');
  assert.equal(s.interfaces['eth0']!.netmask, '255.255.255.0');
  assert.equal(s.interfaces['eth0']!.mtu, 9000);
  assert.equal(s.interfaces['eth0']!.static, true);
  assert.equal(s.interfaces['eth0']!.interface_type, 'na');
  assert.equal(s.status, 'production');

  const d = validateNew('distro', { name: 'd', kernel: 'http://mirror/linux', initrd: '/srv/initrd' });
  assert.equal(d.arch, 'x86_64');
  assert.equal(d.kernel, 'http://mirror/linux');
  const p = validateNew('profile', { name: 'p', parent: 'q', virt_ram: '<<inherit>>' });
  assert.equal(p.distro, '');
  assert.equal(p.virt_ram, '<<inherit>>');
});

test('validateNew: every rule names its field', () => {
  const cases: [string, unknown, string, string | undefined][] = [
    ['system', { name: 'a/b', profile: 'p' }, 'INVALID_FIELD', 'name'],
    ['system', { name: 'x'.repeat(129), profile: 'p' }, 'INVALID_FIELD', 'name'],
    ['system', { profile: 'p' }, 'MISSING_FIELD', 'name'],
    ['system', { name: 's' }, 'MISSING_FIELD', 'profile'],
    ['system', { name: 's', profile: 'p', virt_cpus: 0 }, 'INVALID_FIELD', 'virt_cpus'],
    ['system', { name: 's', profile: 'p', virt_cpus: 1.5 }, 'INVALID_FIELD', 'virt_cpus'],
    ['system', { name: 's', profile: 'p', status: 'live' }, 'INVALID_FIELD', 'status'],
    ['system', { name: 's', profile: 'p', hostname: 'bad_host!' }, 'INVALID_FIELD', 'hostname'],
    ['system', { name: 's', profile: 'p', gateway: '10.0.0' }, 'INVALID_FIELD', 'gateway'],
    ['system', { name: 's', profile: 'p', name_servers: ['8.8.8.8', 'dns'] }, 'INVALID_FIELD', 'name_servers'],
    ['system', { name: 's', profile: 'p', kernel_options: 5 }, 'INVALID_FIELD', 'kernel_options'],
    ['system', { name: 's', profile: 'p', kernel_options: { a: { b: 1 } } }, 'INVALID_FIELD', 'kernel_options.a'],
    ['system', { name: 's', profile: 'p', autoinstall: '../../etc/passwd' }, 'INVALID_FIELD', 'autoinstall'],
    ['system', { name: 's', profile: 'p', autoinstall: '/etc/passwd' }, 'INVALID_FIELD', 'autoinstall'],
    ['system', { name: 's', profile: 'p', interfaces: [] }, 'INVALID_FIELD', 'interfaces'],
    ['system', { name: 's', profile: 'p', interfaces: { 'bad name': {} } }, 'INVALID_FIELD', 'interfaces.bad name'],
    ['system', { name: 's', profile: 'p', interfaces: { eth0: { colour: 1 } } }, 'UNKNOWN_FIELD', 'interfaces.eth0.colour'],
    ['system', { name: 's', profile: 'p', interfaces: { eth0: { mtu: 70000 } } }, 'INVALID_FIELD', 'interfaces.eth0.mtu'],
    ['system', { name: 's', profile: 'p', interfaces: { eth0: { netmask: '255.0.255.0' } } }, 'INVALID_FIELD', 'interfaces.eth0.netmask'],
    ['system', { name: 's', profile: 'p', interfaces: { eth0: { static: 'maybe' } } }, 'INVALID_FIELD', 'interfaces.eth0.static'],
    ['system', { name: 's', profile: 'p', interfaces: { a: { ip_address: '10.0.0.1' }, b: { ip_address: '10.0.0.1' } } }, 'DUPLICATE_IP', 'interfaces.b.ip_address'],
    ['system', 'not an object', 'INVALID_FIELD', 'system'],
    ['distro', { name: 'd', kernel: '/k', initrd: '/i', breed: 'windows' }, 'INVALID_FIELD', 'breed'],
    ['distro', { name: 'd', kernel: 'ftp://x/k', initrd: '/i' }, 'INVALID_FIELD', 'kernel'],
    ['distro', { name: 'd', kernel: '/srv/../etc/k', initrd: '/i' }, 'INVALID_FIELD', 'kernel'],
    ['profile', { name: 'p', parent: 'p' }, 'PARENT_CYCLE', 'parent'],
    ['profile', { name: 'p', distro: 'd', parent: 'q' }, 'DISTRO_XOR_PARENT', undefined],
  ];
  for (const [kind, input, code, field] of cases) {
    rejects(() => validateNew(kind as 'system', input), code, field);
  }
});

test('validatePatch: partial, interface merge/delete, distro<->parent switch', () => {
  const s = validateNew('system', { name: 's', profile: 'p', interfaces: { eth0: { mac_address: '52:54:00:00:00:01', ip_address: '10.0.0.1' } } });
  const s2 = validatePatch('system', s, { interfaces: { eth0: { ip_address: '10.0.0.2' }, eth1: { mac_address: 'random' } } });
  assert.equal(s2.interfaces['eth0']!.mac_address, '52:54:00:00:00:01', 'untouched fields kept');
  assert.equal(s2.interfaces['eth0']!.ip_address, '10.0.0.2');
  assert.equal(s2.interfaces['eth1']!.mac_address, 'random');
  assert.equal(s.interfaces['eth0']!.ip_address, '10.0.0.1', 'input not mutated');
  const s3 = validatePatch('system', s2, { interfaces: { eth1: null } });
  assert.deepEqual(Object.keys(s3.interfaces), ['eth0']);
  rejects(() => validatePatch('system', s3, { interfaces: { eth9: null } }), 'NOT_FOUND', 'interfaces.eth9');
  rejects(() => validatePatch('system', s3, { name: 'other' }), 'INVALID_FIELD', 'name');
  const p = validateNew('profile', { name: 'p', distro: 'd' });
  const p2 = validatePatch('profile', p, { parent: 'q' });
  assert.equal(p2.distro, '');
  assert.equal(p2.parent, 'q');
  const p3 = validatePatch('profile', p2, { distro: 'd2' });
  assert.equal(p3.parent, '');
  rejects(() => validatePatch('profile', p, { distro: '' }), 'DISTRO_XOR_PARENT');
  rejects(() => validatePatch('profile', p, { mtime: 'x', virt_ram: -1 }), 'INVALID_FIELD', 'virt_ram');
});
