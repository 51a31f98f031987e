/**
 * Real firmware against forge's managed DHCP in a network namespace WITHOUT a
 * default route (so 255.255.255.255 has no route and forge must send limited
 * broadcasts from a socket bound to its bridge address), and with the bridge
 * still without carrier when forge starts (the VM's tap is down until qemu
 * runs, so forge has to find its address later):
 *   - OVMF with its own EDK II PXE code (NIC ROM disabled): accepts only
 *     limited broadcasts; gets its fixed address and ipxe.efi, fetches it over TFTP;
 *   - SeaBIOS with Debian's iPXE NIC ROM: gets its fixed address and, being
 *     iPXE, the HTTP script URL instead of a loader.
 * One VM at a time, software emulation, bounded waits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { need } from '../lib/env.js';
import { createLan, type Lan } from '../lib/netns.js';
import { FORGE_BIN } from '../lib/server.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import { defaultDistro, defaultInterface, defaultProfile, defaultSystem } from '../../server/core/defaults.js';
import type { ForgeEvent } from '../../server/core/model.js';

const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const WAIT_MS = 240_000;

async function eventsOf(dbFile: string, system: string): Promise<ForgeEvent[]> {
  const store = new SqliteStore({ file: dbFile });
  try {
    return await store.listEvents(system);
  } finally {
    await store.close();
  }
}

async function waitForEvent(dbFile: string, system: string, pred: (e: ForgeEvent) => boolean, ms: number, log: () => string): Promise<ForgeEvent> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const hit = (await eventsOf(dbFile, system)).find(pred);
    if (hit !== undefined) return hit;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`no matching event for ${system} in ${ms} ms; forge log tail:\n${log().slice(-3000)}`);
}

test('real firmware: OVMF EDK II PXE and the iPXE ROM get their fixed addresses and boot files from managed mode', { timeout: 2 * WAIT_MS + 60_000 }, async (t) => {
  if (need(t, { root: true, commands: ['ip', 'qemu-system-x86_64'], files: [OVMF_CODE, OVMF_VARS, '/usr/lib/ipxe/qemu/efi-virtio.rom', '/usr/lib/ipxe/ipxe.efi'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgdhcp-fw-'));
  const db = join(dir, 'forge.db');
  let lan: Lan | undefined;
  let forge: ChildProcess | undefined;
  let out = '';
  try {
    const store = new SqliteStore({ file: db });
    await store.create('distro', { ...defaultDistro('deb12'), kernel: '/srv/forge/k', initrd: '/srv/forge/i' });
    await store.create('profile', { ...defaultProfile('base'), distro: 'deb12' });
    for (const [name, mac, ip] of [['edk', '52:54:00:f0:9e:03', '10.98.0.33'], ['ipxe', '52:54:00:f0:9e:01', '10.98.0.31']] as const) {
      await store.create('system', { ...defaultSystem(name), profile: 'base', interfaces: { eth0: { ...defaultInterface(), mac_address: mac, ip_address: ip } } });
    }
    await store.close();

    lan = await createLan('fgdhcp');
    const tap = await lan.addTap();
    forge = lan.spawn(process.execPath, [
      FORGE_BIN, 'serve', '--data-dir', dir, '--listen', lan.serverIp, '--http-port', '0', '--server', lan.serverIp,
      '--log-level', 'debug', '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-probe-seconds', '0', '--tftp-port', '69',
    ]);
    forge.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    forge.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 200 && !/forge ready/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /forge ready/, out);
    const routes = await lan.must('ip', ['-4', 'route', 'show']);
    assert.doesNotMatch(routes, /default/, 'the namespace has no default route');

    /** Boots a VM until forge recorded the event (and, when given, printed `then`), then kills it. */
    const boot = async (name: string, args: string[], pred: (e: ForgeEvent) => boolean, then?: RegExp): Promise<ForgeEvent> => {
      const vm = lan!.spawn('qemu-system-x86_64', [
        '-accel', 'tcg', '-m', '256', '-smp', '1', '-display', 'none', '-vga', 'none', '-monitor', 'none', '-serial', 'null',
        '-no-reboot', '-boot', 'n', '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, ...args,
      ]);
      try {
        const ev = await waitForEvent(db, name, pred, WAIT_MS, () => out);
        for (let i = 0; then !== undefined && i < 120 && !then.test(out); i++) await new Promise((r) => setTimeout(r, 1000));
        return ev;
      } finally {
        vm.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 500));
      }
    };

    copyFileSync(OVMF_VARS, join(dir, 'vars.fd'));
    const edk = await boot('edk', [
      '-machine', 'q35', '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      '-drive', `if=pflash,format=raw,unit=1,file=${join(dir, 'vars.fd')}`,
      '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:f0:9e:03,romfile=',
    ], (e) => e.type === 'dhcp_ack', /sent file client=10\.98\.0\.33:\d+ file=ipxe\.efi/);
    assert.equal(edk.detail['ip'], '10.98.0.33');
    assert.equal(edk.detail['arch'], 7);
    assert.equal(edk.detail['boot_file'], 'ipxe.efi');
    // It accepted the ACK: it fetched the loader from forge's TFTP next.
    assert.match(out, /sent file client=10\.98\.0\.33:\d+ file=ipxe\.efi/);
    assert.match(out, /sending broadcasts from address=10\.98\.0\.1/);

    const ipxe = await boot('ipxe', ['-machine', 'pc', '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:f0:9e:01'], (e) => e.type === 'dhcp_ack');
    assert.equal(ipxe.detail['ip'], '10.98.0.31');
    assert.equal(ipxe.detail['arch'], 0);
    assert.match(String(ipxe.detail['boot_file']), /^http:\/\/10\.98\.0\.1:\d+\/boot\/ipxe\/52:54:00:f0:9e:01$/);
  } finally {
    if (forge !== undefined && forge.exitCode === null) forge.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    await lan?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('real firmware: OVMF EDK II PXE in proxy mode beside dnsmasq gets the address from dnsmasq and ipxe.efi from forge', { timeout: WAIT_MS + 60_000 }, async (t) => {
  if (need(t, { root: true, commands: ['ip', 'qemu-system-x86_64', 'dnsmasq'], files: [OVMF_CODE, OVMF_VARS, '/usr/lib/ipxe/ipxe.efi'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgdhcp-fw-'));
  const db = join(dir, 'forge.db');
  let lan: Lan | undefined;
  let out = '';
  let dnsLog = '';
  try {
    const store = new SqliteStore({ file: db });
    await store.create('distro', { ...defaultDistro('deb12'), kernel: '/srv/forge/k', initrd: '/srv/forge/i' });
    await store.create('profile', { ...defaultProfile('base'), distro: 'deb12' });
    await store.create('system', { ...defaultSystem('edk'), profile: 'base', interfaces: { eth0: { ...defaultInterface(), mac_address: '52:54:00:f0:9e:03' } } });
    await store.close();
    lan = await createLan('fgdhcp');
    const tap = await lan.addTap();
    const site = await lan.addClient();
    await site.must('ip', ['addr', 'add', '10.98.0.2/24', 'dev', 'eth0']);
    const dns = site.spawn('dnsmasq', [
      '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=eth0', '--bind-interfaces',
      '--dhcp-range=10.98.0.200,10.98.0.220,1h', '--leasefile-ro', '--log-dhcp', '--no-ping',
    ]);
    dns.stderr?.on('data', (d: Buffer) => (dnsLog += d.toString()));
    const forge = lan.spawn(process.execPath, [
      FORGE_BIN, 'serve', '--data-dir', dir, '--listen', lan.serverIp, '--http-port', '0', '--server', lan.serverIp,
      '--log-level', 'debug', '--dhcp-mode', 'proxy', '--tftp-port', '69',
    ]);
    forge.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    forge.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 200 && !/forge ready/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /forge ready/, out);
    copyFileSync(OVMF_VARS, join(dir, 'vars.fd'));
    const vm = lan.spawn('qemu-system-x86_64', [
      '-accel', 'tcg', '-m', '256', '-smp', '1', '-display', 'none', '-vga', 'none', '-monitor', 'none', '-serial', 'null',
      '-no-reboot', '-boot', 'n', '-machine', 'q35', '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      '-drive', `if=pflash,format=raw,unit=1,file=${join(dir, 'vars.fd')}`,
      '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:f0:9e:03,romfile=',
    ]);
    try {
      const sent = /sent file client=(10\.98\.0\.2\d\d):\d+ file=ipxe\.efi/;
      for (let i = 0; i < WAIT_MS / 1000 && !sent.test(out); i++) await new Promise((r) => setTimeout(r, 1000));
      const m = sent.exec(out);
      assert.ok(m, `EDK II fetched ipxe.efi from forge with a dnsmasq address; forge:\n${out.slice(-3000)}\ndnsmasq:\n${dnsLog.slice(-2000)}`);
      assert.match(dnsLog, new RegExp(`DHCPACK\\(eth0\\) ${m[1]!.replace(/\./g, '\\.')} 52:54:00:f0:9e:03`));
      const evs = await eventsOf(db, 'edk');
      const offer = evs.find((e) => e.type === 'dhcp_offer');
      assert.equal(offer?.detail['boot_file'], 'ipxe.efi');
      assert.equal(offer?.detail['ip'], '', 'proxy mode gives no address');
    } finally {
      vm.kill('SIGKILL');
    }
  } finally {
    await lan?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
