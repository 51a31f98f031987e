/**
 * The VM test fixtures themselves: a real Debian kernel boots the busybox
 * initramfs under TCG, loads the NIC modules, gets an address from a DHCP
 * server (dnsmasq) inside a test LAN namespace, and powers off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { need } from '../lib/env.js';
import { buildInitramfs, guestKernel } from '../lib/guest.js';
import { createLan } from '../lib/netns.js';
import { startQemu } from '../lib/qemu.js';

test('guest kernel + busybox initramfs boot, get DHCP in a LAN namespace and power off', { timeout: 180_000 }, async (t) => {
  if (need(t, { root: true, commands: ['qemu-system-x86_64', 'dnsmasq', 'ip', 'cpio', 'modinfo'] }) !== undefined) return;
  const kernel = guestKernel();
  const initrd = buildInitramfs({
    init: `net_up && say "ADDR $(ip -4 -o addr show | awk '/eth|ens|enp/{print $4}')"
halt_now`,
  });
  const lan = await createLan('fglib');
  try {
    const dns = lan.spawn('dnsmasq', [
      '--keep-in-foreground', '--no-daemon', '--port=0', '--interface=br0', '--bind-interfaces',
      '--dhcp-range=10.98.0.50,10.98.0.60,1h', '--no-resolv', '--no-hosts', '--leasefile-ro', '--user=root',
    ]);
    assert.ok(dns.pid);
    const tap = await lan.addTap();
    const vm = startQemu({ host: lan, tap, mac: '52:54:00:aa:bb:01', kernel: kernel.vmlinuz, initrd, append: 'console=ttyS0 quiet no_timer_check', netboot: false });
    try {
      const out = await vm.waitForSerial(/forge-guest: powering off/, 150_000);
      assert.match(out, /forge-guest: init started/);
      assert.match(out, /forge-guest: ADDR 10\.98\.0\.(5\d|60)\/24/);
      const code = await vm.exited;
      assert.equal(code, 0);
    } finally {
      await vm.kill();
    }
  } finally {
    await lan.destroy();
  }
});
