/**
 * Kernel command line per breed (server/core/cmdline.ts): one table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyOptions, kernelCommandLine, netmaskToPrefix } from '../../server/core/cmdline.js';

const URL = 'http://10.98.0.1:8080/autoinstall/system/vm9';
const eth0Dhcp = { eth0: { mac_address: '52:54:00:00:00:01', ip_address: '', netmask: '', if_gateway: '', static: false, interface_type: 'na' } };
const eth0Static = {
  eth0: { mac_address: '52:54:00:00:00:01', ip_address: '10.98.0.9', netmask: '255.255.255.0', if_gateway: '', static: true, interface_type: 'na' },
};
const bonded = {
  bond0: { mac_address: '', ip_address: '192.168.5.9', netmask: '255.255.255.0', if_gateway: '', static: true, interface_type: 'bond' },
  eth0: { mac_address: '52:54:00:00:00:01', ip_address: '', netmask: '', if_gateway: '', static: false, interface_type: 'bond_slave', interface_master: 'bond0' },
  eth1: { mac_address: '52:54:00:00:00:02', ip_address: '10.0.0.9', netmask: '255.0.0.0', if_gateway: '10.0.0.1', static: true, interface_type: 'na' },
};

const cases: { name: string; vars: Record<string, unknown>; want: string }[] = [
  {
    name: 'redhat DHCP',
    vars: { breed: 'redhat', tree: 'http://m/rocky9', interfaces: eth0Dhcp, hostname: 'vm9.lab' },
    want: `inst.ks=${URL} inst.repo=http://m/rocky9`,
  },
  {
    name: 'redhat static adds dracut ip= and nameserver= per server',
    vars: { breed: 'redhat', tree: 'http://m/rocky9', interfaces: eth0Static, hostname: 'vm9.lab', gateway: '10.98.0.1', name_servers: ['10.98.0.2', '10.98.0.3'] },
    want: `inst.ks=${URL} inst.repo=http://m/rocky9 ip=10.98.0.9::10.98.0.1:255.255.255.0:vm9.lab:eth0:none nameserver=10.98.0.2 nameserver=10.98.0.3 ifname=eth0:52:54:00:00:00:01`,
  },
  {
    name: 'redhat: the boot interface is a NIC with a MAC, not a bond or its member; if_gateway wins',
    vars: { breed: 'redhat', tree: 'http://m/t', interfaces: bonded, hostname: 'h', gateway: '10.9.9.9' },
    want: `inst.ks=${URL} inst.repo=http://m/t ip=10.0.0.9::10.0.0.1:255.0.0.0:h:eth1:none ifname=eth1:52:54:00:00:00:02`,
  },
  {
    name: 'redhat without a tree leaves inst.repo out',
    vars: { breed: 'redhat', tree: '', interfaces: {} },
    want: `inst.ks=${URL}`,
  },
  {
    name: 'debian DHCP: auto mode, hostname and domain split from the FQDN',
    vars: { breed: 'debian', interfaces: eth0Dhcp, hostname: 'vm9.lab.example' },
    want: `auto=true priority=critical url=${URL} hostname=vm9 domain=lab.example interface=auto`,
  },
  {
    name: 'ubuntu: domain from name_servers_search when the hostname is short',
    vars: { breed: 'ubuntu', interfaces: eth0Dhcp, hostname: 'vm9', name_servers_search: ['corp.example'] },
    want: `auto=true priority=critical url=${URL} hostname=vm9 domain=corp.example interface=auto`,
  },
  {
    name: 'debian static: netcfg answers so d-i can reach the preseed',
    vars: { breed: 'debian', interfaces: eth0Static, hostname: 'vm9.lab', gateway: '10.98.0.1', name_servers: ['10.98.0.2', '10.98.0.3'] },
    want:
      `auto=true priority=critical url=${URL} hostname=vm9 domain=lab interface=auto netcfg/disable_autoconfig=true ` +
      'netcfg/get_ipaddress=10.98.0.9 netcfg/get_netmask=255.255.255.0 netcfg/get_gateway=10.98.0.1 ' +
      'netcfg/get_nameservers="10.98.0.2 10.98.0.3" netcfg/confirm_static=true',
  },
  {
    name: 'debian profile (no host): no hostname=/domain=',
    vars: { breed: 'debian', interfaces: {}, hostname: '' },
    want: `auto=true priority=critical url=${URL} interface=auto`,
  },
  {
    name: 'suse DHCP',
    vars: { breed: 'suse', tree: 'http://m/sles15', interfaces: eth0Dhcp, hostname: 'vm9' },
    want: `autoyast=${URL} install=http://m/sles15`,
  },
  {
    name: 'suse static: linuxrc ifcfg= and hostname=',
    vars: { breed: 'suse', tree: 'http://m/sles15', interfaces: eth0Static, hostname: 'vm9.lab', gateway: '10.98.0.1', name_servers: ['10.98.0.2'] },
    want: `autoyast=${URL} install=http://m/sles15 ifcfg=eth0=10.98.0.9/24,10.98.0.1,10.98.0.2 hostname=vm9.lab`,
  },
  {
    name: 'generic',
    vars: { breed: 'generic', interfaces: eth0Static },
    want: `forge.autoinstall=${URL}`,
  },
  {
    name: 'kernel_options append, replace in place, !key removes, bare flags',
    vars: {
      breed: 'redhat',
      tree: 'http://m/t',
      interfaces: {},
      kernel_options: { console: 'ttyS0,115200', 'inst.repo': 'http://other/t', quiet: null, '!inst.ks': null },
    },
    want: 'inst.repo=http://other/t console=ttyS0,115200 quiet',
  },
  {
    name: 'a value with spaces is quoted',
    vars: { breed: 'generic', interfaces: {}, kernel_options: { 'forge.note': 'a b' } },
    want: `forge.autoinstall=${URL} forge.note="a b"`,
  },
];

for (const c of cases) {
  test(`cmdline: ${c.name}`, () => {
    assert.equal(kernelCommandLine({ vars: c.vars, autoinstallUrl: URL }), c.want);
  });
}

test('applyOptions removes every occurrence of a repeated key', () => {
  assert.deepEqual(
    applyOptions([['nameserver', '1.1.1.1'], ['nameserver', '8.8.8.8'], ['quiet', null]], { '!nameserver': null }),
    [['quiet', null]],
  );
  assert.deepEqual(applyOptions([['nameserver', 'a'], ['x', '1'], ['nameserver', 'b']], { nameserver: 'c' }), [
    ['nameserver', 'c'],
    ['x', '1'],
  ]);
});

test('netmaskToPrefix', () => {
  assert.equal(netmaskToPrefix('255.255.255.0'), 24);
  assert.equal(netmaskToPrefix('255.255.252.0'), 22);
  assert.equal(netmaskToPrefix('0.0.0.0'), 0);
  assert.equal(netmaskToPrefix('255.0.255.0'), undefined);
  assert.equal(netmaskToPrefix('255.255.255'), undefined);
  assert.equal(netmaskToPrefix('300.0.0.0'), undefined);
});
