/**
 * DHCP interop with real clients in network namespaces, against a real
 * `forge serve` process running inside the LAN namespace (test/lib/server.ts
 * starts forge in the host namespace, where it must not bind port 67, so the
 * process is started here the same way, through lan.spawn):
 *   - udhcpc (busybox) and dhclient get their fixed addresses in managed mode,
 *     dhclient's stale address is NAKed, leases and events are persisted;
 *   - perfdhcp -r goes through the relay path (giaddr, replies to giaddr:67),
 *     and pool exhaustion is answered sanely;
 *   - the rival-server probe finds dnsmasq: forge keeps running, silent on that
 *     link (status shows it), unless --dhcp-force;
 *   - proxy mode beside dnsmasq: dnsmasq gives the address, forge the boot file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { need } from '../lib/env.js';
import { createLan, type Lan, type LanClient } from '../lib/netns.js';
import { forgeInNamespace, type NsForge as Forge } from '../lib/forge-ns.js';
import { perfStats } from '../lib/perfdhcp.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import { defaultDistro, defaultInterface, defaultProfile, defaultSystem } from '../../server/core/defaults.js';
import type { Reply, Step } from './dhcp-pxe-client.js';

const CLIENT = fileURLToPath(new URL('./dhcp-pxe-client.js', import.meta.url));
const REQ = { root: true, commands: ['ip', 'udhcpc', 'dhclient', 'perfdhcp', 'dnsmasq'] };


/** Seeds the SQLite store a forge process will open: one distro, one profile, the given systems. */
async function seed(dataDir: string, systems: { name: string; mac: string; ip: string }[]): Promise<void> {
  const store = new SqliteStore({ file: join(dataDir, 'forge.db') });
  try {
    await store.create('distro', { ...defaultDistro('deb12'), kernel: '/srv/forge/k', initrd: '/srv/forge/i' });
    await store.create('profile', { ...defaultProfile('deb12-base'), distro: 'deb12' });
    for (const s of systems) {
      await store.create('system', {
        ...defaultSystem(s.name),
        profile: 'deb12-base',
        hostname: s.name,
        interfaces: { eth0: { ...defaultInterface(), mac_address: s.mac, ip_address: s.ip } },
      });
    }
  } finally {
    await store.close();
  }
}

/** Starts `forge serve` inside the LAN namespace (debug logs: the tests read them). */
const startForgeIn = (lan: Lan, dataDir: string, args: string[], opts: { expectExit?: boolean; timeoutMs?: number } = {}): Promise<Forge> =>
  forgeInNamespace(lan, lan.serverIp, dataDir, ['--log-level', 'debug', ...args], opts);

async function pxeStep(client: LanClient, step: Step): Promise<Reply[]> {
  const r = await client.exec(process.execPath, [CLIENT, JSON.stringify(step)], { timeoutMs: step.listenMs + 10_000 });
  assert.equal(r.code, 0, `pxe client failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Reply);
}

/** dnsmasq as the site's DHCP server, in a client namespace of its own at 10.98.0.2. */
async function startDnsmasq(lan: Lan, dir: string): Promise<{ host: LanClient; proc: ChildProcess; log(): string }> {
  const host = await lan.addClient();
  await host.must('ip', ['addr', 'add', '10.98.0.2/24', 'dev', 'eth0']);
  const proc = host.spawn('dnsmasq', [
    '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=eth0', '--bind-interfaces',
    '--dhcp-range=10.98.0.50,10.98.0.60,255.255.255.0,1h', `--dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`,
    '--dhcp-authoritative', '--log-dhcp', '--no-ping',
  ]);
  let log = '';
  proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 50 && !/DHCP, sockets bound|started, version/.test(log); i++) await new Promise((r) => setTimeout(r, 100));
  return { host, proc, log: () => log };
}

const UDHCPC_SCRIPT = '#!/bin/sh\necho "udhcpc-event $1 ip=$ip router=$router"\n';

test('managed: udhcpc and dhclient get their fixed addresses, a stale address is NAKed, leases and events persist', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgdhcp-it-'));
  const lan = await createLan('fgdhcp');
  let forge: Forge | undefined;
  try {
    await seed(dir, [
      { name: 'vm-u', mac: '52:54:00:d1:00:01', ip: '10.98.0.21' },
      { name: 'vm-d', mac: '52:54:00:d1:00:02', ip: '10.98.0.22' },
    ]);
    forge = await startForgeIn(lan, dir, [
      '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.110',
      '--dhcp-router', '10.98.0.1', '--dhcp-dns', '10.98.0.1', '--dhcp-probe-seconds', '1',
    ]);
    assert.match(forge.output(), /probe: no other DHCP server answered/);

    const u = await lan.addClient({ mac: '52:54:00:d1:00:01' });
    const script = join(dir, 'udhcpc.sh');
    writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o755 });
    const r = await u.exec('udhcpc', ['-i', 'eth0', '-f', '-q', '-n', '-t', '5', '-T', '2', '-s', script], { timeoutMs: 30_000 });
    assert.match(r.stdout + r.stderr, /udhcpc-event bound ip=10\.98\.0\.21 router=10\.98\.0\.1/, r.stdout + r.stderr);

    // dhclient starts from a stale lease for 10.98.0.99: INIT-REBOOT, NAK, then DORA for its reservation.
    const d = await lan.addClient({ mac: '52:54:00:d1:00:02' });
    const lf = join(dir, 'dhclient.leases');
    writeFileSync(lf, [
      'lease {', '  interface "eth0";', '  fixed-address 10.98.0.99;', '  option subnet-mask 255.255.255.0;',
      '  option dhcp-server-identifier 10.98.0.1;', '  renew 4 2037/01/01 00:00:01;', '  rebind 4 2037/01/01 00:00:01;',
      '  expire 4 2037/01/01 00:00:01;', '}', '',
    ].join('\n'));
    const dh = d.spawn('dhclient', ['-4', '-d', '-v', '-1', '-sf', '/bin/true', '-lf', lf, '-pf', join(dir, 'dhclient.pid'), 'eth0']);
    let dout = '';
    dh.stdout?.on('data', (x: Buffer) => (dout += x.toString()));
    dh.stderr?.on('data', (x: Buffer) => (dout += x.toString()));
    for (let i = 0; i < 300 && !/bound to 10\.98\.0\.22/.test(dout); i++) await new Promise((res) => setTimeout(res, 100));
    dh.kill('SIGKILL');
    assert.match(dout, /DHCPNAK from 10\.98\.0\.1/, dout);
    assert.match(dout, /bound to 10\.98\.0\.22/, dout);
    assert.match(readFileSync(lf, 'utf8'), /fixed-address 10\.98\.0\.22;/);

    await forge.stop();
    const store = new SqliteStore({ file: join(dir, 'forge.db') });
    try {
      const leases = await store.listLeases();
      assert.deepEqual(
        leases.filter((l) => l.state === 'bound').map((l) => [l.mac, l.ip, l.system]).sort(),
        [['52:54:00:d1:00:01', '10.98.0.21', 'vm-u'], ['52:54:00:d1:00:02', '10.98.0.22', 'vm-d']],
      );
      const evs = await store.listEvents('vm-d');
      assert.ok(evs.some((e) => e.type === 'dhcp_ack' && e.source === 'dhcp' && e.detail['ip'] === '10.98.0.22'), JSON.stringify(evs));
      assert.ok((await store.listEvents('vm-u')).some((e) => e.type === 'dhcp_offer'));
    } finally {
      await store.close();
    }
  } finally {
    await forge?.stop();
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});


test('managed: perfdhcp -r through the relay path; pool exhaustion is answered sanely', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgdhcp-it-'));
  const lan = await createLan('fgdhcp');
  let forge: Forge | undefined;
  try {
    await seed(dir, [{ name: 'vm-u', mac: '52:54:00:d1:00:01', ip: '10.98.0.21' }]);
    forge = await startForgeIn(lan, dir, [
      '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.119', '--dhcp-probe-seconds', '0',
    ]);
    // perfdhcp acts as a relay: it sends from its address (giaddr) port 67 and wants the reply there.
    const relay = await lan.addClient();
    await relay.must('ip', ['addr', 'add', '10.98.0.2/24', 'dev', 'eth0']);
    const p1 = await relay.exec('perfdhcp', ['-4', '-l', 'eth0', '-r', '20', '-R', '20', '-p', '3', '10.98.0.1'], { timeoutMs: 30_000 });
    const s1 = perfStats(p1.stdout);
    assert.ok(s1.doRecv > 0 && s1.raRecv > 0, `perfdhcp got offers and acks through the relay path:\n${p1.stdout}\n${p1.stderr}`);
    assert.ok(s1.raRecv >= s1.raSent * 0.9, `acks for nearly every request:\n${p1.stdout}`);

    // 200 clients for 20 addresses: forge offers what it has, logs the exhaustion, stays up.
    const p2 = await relay.exec('perfdhcp', ['-4', '-l', 'eth0', '-r', '100', '-R', '200', '-p', '3', '-s', '7', '10.98.0.1'], { timeoutMs: 30_000 });
    const s2 = perfStats(p2.stdout);
    assert.ok(s2.doSent > s2.doRecv, `some DISCOVERs found no address:\n${p2.stdout}`);
    assert.match(forge.output(), /pool exhausted/);
    assert.equal(forge.proc.exitCode, null, 'forge is still running');
    // ... and a known machine still gets its reservation.
    const u = await lan.addClient({ mac: '52:54:00:d1:00:01' });
    const script = join(dir, 'udhcpc.sh');
    writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o755 });
    const r = await u.exec('udhcpc', ['-i', 'eth0', '-f', '-q', '-n', '-t', '5', '-T', '2', '-s', script], { timeoutMs: 30_000 });
    assert.match(r.stdout + r.stderr, /udhcpc-event bound ip=10\.98\.0\.21/);
    await forge.stop();
    const store = new SqliteStore({ file: join(dir, 'forge.db') });
    try {
      const bound = (await store.listLeases()).filter((l) => l.state === 'bound');
      assert.ok(bound.length >= 20, `leases persisted (${bound.length})`);
      assert.equal(new Set(bound.map((l) => l.ip)).size, bound.length, 'no address bound to two clients');
      for (const l of bound) {
        const last = Number(l.ip.split('.')[3]);
        assert.ok(l.ip === '10.98.0.21' || (l.ip.startsWith('10.98.0.') && last >= 100 && last <= 119), `lease ${l.ip} inside the configuration`);
      }
    } finally {
      await store.close();
    }
  } finally {
    await forge?.stop();
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('managed: a rival server found by the probe silences forge on that link without stopping it; --dhcp-force answers anyway', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgdhcp-it-'));
  const lan = await createLan('fgdhcp');
  let forge: Forge | undefined;
  try {
    await seed(dir, []);
    const dns = await startDnsmasq(lan, dir);
    const args = ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.110', '--dhcp-probe-seconds', '3'];
    forge = await startForgeIn(lan, dir, args);
    assert.match(forge.output(), /another DHCP server answers on this link: not answering there[^\n]*10\.98\.0\.2/);
    assert.match(dns.log(), /DHCPDISCOVER\(eth0\)/);
    const port = /forge ready: http:\/\/[^:]+:(\d+)/.exec(forge.output())?.[1];
    const c = await lan.addClient();
    await c.must('ip', ['route', 'add', 'default', 'dev', 'eth0']);
    const step: Step = { mac: c.mac, xid: 0x5eed0101, to: '255.255.255.255', port: 67, bindPort: 68, listenMs: 3000, type: 1 };
    const offers = await pxeStep(c, step);
    assert.ok(offers.some((o) => o.serverId === '10.98.0.2'), JSON.stringify(offers));
    assert.equal(offers.filter((o) => o.serverId === '10.98.0.1').length, 0, 'forge is silent on the rival\'s link');
    // The process kept running and says why it is silent (`forge status` reads this).
    const st = await lan.must(process.execPath, ['-e', `fetch('http://10.98.0.1:${port}/api/v1/status').then((r) => r.text()).then((t) => console.log(t))`]);
    const links = (JSON.parse(st) as { dhcp_links: { subnet: string; state: string; rival?: string }[] }).dhcp_links;
    assert.equal(links[0]?.subnet, '10.98.0.0/24');
    assert.equal(links[0]?.state, 'rival');
    assert.match(links[0]?.rival ?? '', /10\.98\.0\.2/);
    await forge.stop();
    forge = await startForgeIn(lan, dir, [...args, '--dhcp-force', 'true']);
    assert.match(forge.output(), /answering anyway \(dhcp_force\)/);
    const both = await pxeStep(c, { ...step, xid: 0x5eed0102 });
    assert.ok(both.some((o) => o.serverId === '10.98.0.1' && /^10\.98\.0\.1(0\d|10)$/.test(o.yiaddr)), `${JSON.stringify(both)}\n${forge.output()}`);
  } finally {
    await forge?.stop();
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('proxy: beside dnsmasq, a PXE client gets its address from dnsmasq and its boot file from forge (67 and 4011)', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgdhcp-it-'));
  const lan = await createLan('fgdhcp');
  let forge: Forge | undefined;
  try {
    const MAC = '52:54:00:d1:00:09';
    await seed(dir, [{ name: 'pxe1', mac: MAC, ip: '' }]);
    // No route for 255.255.255.255 in the server namespace: forge sends its limited broadcasts from
    // a socket bound to its bridge address (the client namespace needs one, for its own sends).
    const dns = await startDnsmasq(lan, dir);
    forge = await startForgeIn(lan, dir, ['--dhcp-mode', 'proxy', '--next-server', '10.98.0.1']);
    assert.match(forge.output(), /udp 0\.0\.0\.0:67 \(dhcp proxy\), udp 0\.0\.0\.0:4011 \(dhcp proxy\)/);
    const c = await lan.addClient({ mac: MAC });
    await c.must('ip', ['route', 'add', 'default', 'dev', 'eth0']);
    const base: Omit<Step, 'type'> = { mac: MAC, xid: 0x5eed0001, to: '255.255.255.255', port: 67, bindPort: 68, listenMs: 3000, arch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001' };
    const offers = await pxeStep(c, { ...base, type: 1 });
    const fromDns = offers.find((o) => o.serverId === '10.98.0.2');
    const fromForge = offers.find((o) => o.serverId === '10.98.0.1');
    assert.ok(fromDns && fromForge, `offers from both servers: ${JSON.stringify(offers)}\n${dns.log()}`);
    assert.match(fromDns.yiaddr, /^10\.98\.0\.(5\d|60)$/);
    assert.equal(fromForge.yiaddr, '0.0.0.0', 'proxyDHCP never assigns an address');
    assert.equal(fromForge.vendorClass, 'PXEClient');
    assert.equal(fromForge.siaddr, '10.98.0.1');
    assert.equal(fromForge.file, 'undionly.kpxe');
    // The client takes dnsmasq's address ...
    const acks = await pxeStep(c, { ...base, type: 3, requested: fromDns.yiaddr, serverId: '10.98.0.2' });
    assert.ok(acks.some((a) => a.type === 5 && a.yiaddr === fromDns.yiaddr), JSON.stringify(acks));
    await c.must('ip', ['addr', 'add', `${fromDns.yiaddr}/24`, 'dev', 'eth0']);
    // ... and, now running iPXE, asks forge's boot-server port for its boot file.
    const boot = await pxeStep(c, { ...base, type: 3, to: '10.98.0.1', port: 4011, ciaddr: fromDns.yiaddr, userClass: 'iPXE', broadcastFlag: false, listenMs: 2000 });
    assert.equal(boot.length, 1, JSON.stringify(boot));
    assert.equal(boot[0]?.type, 5);
    assert.equal(boot[0]?.file, `http://10.98.0.1:${/forge ready: http:\/\/[^:]+:(\d+)/.exec(forge.output())?.[1]}/boot/ipxe/${MAC}`);
    assert.match(dns.log(), /DHCPACK\(eth0\) 10\.98\.0\.\d+ 52:54:00:d1:00:09/);
    // A non-PXE client gets nothing from forge.
    const plain = await pxeStep(c, { ...base, xid: 0x5eed0002, type: 1, vendorClass: 'udhcp 1.35.0', listenMs: 2000 });
    assert.equal(plain.filter((o) => o.serverId === '10.98.0.1').length, 0);
  } finally {
    await forge?.stop();
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
