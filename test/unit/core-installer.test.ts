/**
 * Which installer a breed + os_version means, the kickstart feature gate,
 * and the network config v2 / Agama builders' refusals (pure functions).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installerFormat, kickstartFeatures, parseOsVersion } from '../../server/core/installer.js';
import { NetplanError, agamaConnections, networkConfigV2 } from '../../server/core/netplan.js';
import { kernelCommandLine } from '../../server/core/cmdline.js';

test('breed and os_version decide the installer', () => {
  const cases: [string, string, string][] = [
    ['ubuntu', '24.04', 'autoinstall'], ['ubuntu', '20.04', 'autoinstall'], ['ubuntu', 'jammy', 'autoinstall'], ['ubuntu', 'focal', 'autoinstall'],
    ['ubuntu', '18.04', 'preseed'], ['ubuntu', 'bionic', 'preseed'], ['ubuntu', '', 'preseed'],
    ['suse', '16.0', 'agama'], ['suse', 'sles16', 'agama'], ['suse', 'leap16.0', 'agama'], ['suse', 'sles15sp6', 'autoyast'], ['suse', '15.6', 'autoyast'],
    ['redhat', 'rhel9', 'kickstart'], ['debian', 'bookworm', 'preseed'], ['generic', '', 'generic'],
  ];
  for (const [b, v, want] of cases) assert.equal(installerFormat(b, v), want, `${b} ${v}`);
  assert.deepEqual(parseOsVersion('redhat', 'fedora41'), { major: 41, minor: 0, family: 'fedora' });
  assert.deepEqual(parseOsVersion('redhat', '9.4'), { major: 9, minor: 4, family: 'redhat' });
});

test('--ipv4-dns-search from RHEL 9 and Fedora 39 (pykickstart F39_Network), not RHEL 8 or unknown', () => {
  for (const [v, want] of [['rhel8', false], ['8.10', false], ['rhel9', true], ['10.0', true], ['fedora38', false], ['fedora39', true], ['', false]] as const) {
    assert.equal(kickstartFeatures(v).dnsSearch, want, v);
  }
});

test('kernel command line: Ubuntu autoinstall and Agama', () => {
  const base = { breed: 'ubuntu', os_version: '22.04', hostname: 'u9.lab', interfaces: { eth0: { mac_address: '52:54:00:AA:00:09', interface_type: 'na' } } };
  assert.equal(
    kernelCommandLine({ vars: base, autoinstallUrl: 'http://f/autoinstall/system/u9', seedUrl: 'http://f/cloud-init/system/u9/' }),
    'ip=dhcp cloud-config-url=/dev/null autoinstall ds=nocloud-net;s=http://f/cloud-init/system/u9/',
  );
  const iso = { ...base, iso_url: 'http://f/tree/noble/ubuntu.iso', name_servers: ['10.0.0.1'], gateway: '10.0.0.1',
    interfaces: { eth0: { mac_address: '52:54:00:AA:00:09', interface_type: 'na', static: true, ip_address: '10.0.0.9', netmask: '255.255.255.0' } } };
  assert.equal(
    kernelCommandLine({ vars: iso, autoinstallUrl: 'http://f/autoinstall/system/u9', seedUrl: 'http://f/cloud-init/system/u9/' }),
    'ip=10.0.0.9::10.0.0.1:255.255.255.0:u9::none BOOTIF=01-52-54-00-aa-00-09 nameserver=10.0.0.1 root=/dev/ram0 ramdisk_size=1500000 url=http://f/tree/noble/ubuntu.iso cloud-config-url=/dev/null autoinstall ds=nocloud-net;s=http://f/cloud-init/system/u9/',
  );
  assert.equal(kernelCommandLine({ vars: { breed: 'suse', os_version: '16.0', tree: 'http://f/tree/s16' }, autoinstallUrl: 'http://f/autoinstall/system/a' }), 'inst.auto=http://f/autoinstall/system/a inst.install_url=http://f/tree/s16');
});

test('network builders refuse what they cannot express, naming the field', () => {
  const bond = { interfaces: { bond0: { interface_type: 'bond', bonding_opts: 'mode=active-backup frobnicate=1' }, eth0: { interface_type: 'bond_slave', interface_master: 'bond0', mac_address: '52:54:00:00:00:01' } } };
  assert.throws(() => networkConfigV2(bond), (e: unknown) => e instanceof NetplanError && /interfaces\.bond0\.bonding_opts: netplan has no bond parameter for "frobnicate"/.test(e.message));
  assert.throws(() => agamaConnections({ interfaces: { bond0: { interface_type: 'bond', bonding_opts: 'mode=7' } } }), /Agama bond mode must be one of/);
  assert.throws(() => networkConfigV2({ interfaces: { 'eth9.5': { interface_type: 'na' } } }), /no interface eth9/);
  assert.throws(() => networkConfigV2({ interfaces: { eth0: { interface_type: 'na', static: true, ip_address: '10.0.0.1', netmask: '255.0.255.0' } } }), /netmask: "255\.0\.255\.0" is not a netmask/);
});
