/**
 * What `forge status` calls a served subnet forge has no running address in
 * (services/dhcp/links.ts unattached): the link without carrier of the host
 * interface that holds an address in it, else a subnet reached only through a
 * relay, named once one was heard. hostAddresses reads the real host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { need } from '../lib/env.js';
import { parseCidr } from '../../server/core/subnet.js';
import { hostAddresses, unattached } from '../../server/services/dhcp/links.js';

const east = parseCidr('10.99.0.0/24')!;

test('a subnet without a running address: no-carrier when an interface holds an address in it, else relayed', () => {
  const host = [
    { ifname: 'lo', address: '127.0.0.1' },
    { ifname: 'br0', address: '10.98.0.1' },
  ];
  assert.deepEqual(unattached(parseCidr('10.98.0.0/24')!, host, undefined), { state: 'no-carrier', interface: 'br0' });
  assert.deepEqual(unattached(parseCidr('10.98.0.0/24')!, host, '10.98.0.50'), { state: 'no-carrier', interface: 'br0' }, 'a down link of our own stays a link, relay or not');
  assert.deepEqual(unattached(east, host, undefined), { state: 'relayed', interface: '' });
  assert.deepEqual(unattached(east, host, '10.99.0.1'), { state: 'relayed', interface: '', relay: '10.99.0.1' });
  // The network and broadcast addresses are not host addresses of the subnet (core/subnet.ts inNetwork).
  assert.equal(unattached(east, [{ ifname: 'x', address: '10.99.0.255' }], undefined).state, 'relayed');
});

test("without the host's configured addresses, only a relay heard says relayed", () => {
  assert.deepEqual(unattached(east, undefined, undefined), { state: 'no-carrier', interface: '' });
  assert.deepEqual(unattached(east, undefined, '10.99.0.1'), { state: 'relayed', interface: '', relay: '10.99.0.1' });
});

test('hostAddresses reads the configured addresses of this host (iproute2), loopback included', async (t) => {
  if (need(t, { commands: ['ip'] }) !== undefined) return;
  const a = await hostAddresses();
  assert.ok(a !== undefined, 'ip -j -4 addr show answered');
  assert.ok(a.some((x) => x.ifname === 'lo' && x.address === '127.0.0.1'), JSON.stringify(a));
});
