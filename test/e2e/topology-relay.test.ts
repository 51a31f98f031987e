/**
 * Clients behind a real DHCP relay, on two subnets, boot the real Debian 12 installer from forge.
 *
 *   server ns: forge, eth 10.96.0.1/24 (up0's peer), routes to both client subnets via the relay
 *   relay ns:  up0 10.96.0.2/24 (default route via forge's host), br0 10.96.10.1/24 (subnet A),
 *              br1 10.96.20.1/24 (subnet B), IP forwarding on, isc-dhcp-relay's dhcrelay
 *              (-id br0 -id br1 -iu up0 10.96.0.1): giaddr 10.96.10.1 or 10.96.20.1
 *   one VM (SeaBIOS + iPXE ROM, 1 GiB) on each bridge
 *
 * forge is started with managed-mode flags for subnet A only (no --server, no --next-server, default
 * probe, default ports); subnet B is a stored subnet (`forge subnet add`) added while it runs. Each VM must get an address from ITS subnet's pool, that subnet's router, DNS
 * server and domain (read off the wire by tcpdump's own DHCP decoder on each bridge), a boot URL
 * with forge's address facing the relay, and boot the installer to its preseed fetch (which needs
 * the right router: forge is two hops away). perfdhcp (Kea's) then runs a load through the same
 * relay.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { need } from '../lib/env.js';
import { createLan, type Host, type Lan } from '../lib/netns.js';
import { startQemu, type Vm } from '../lib/qemu.js';
import { DI_AMD64, DI_KOPTS, eventTypes, startForgeIn, waitForLabEvent, type LabEvent, type NsForge, teardownLab } from '../lib/boot-lab.js';
import { perfStats } from '../lib/perfdhcp.js';

const PRESEED_MS = 600_000;
const FORGE_IP = '10.96.0.1';
const SUBNETS = {
  a: { cidr: '10.96.10.0/24', relay: '10.96.10.1', bridge: 'br0', range: '10.96.10.100,10.96.10.200', dns: '10.96.10.1', domain: 'a.lab.example', re: /^10\.96\.10\.(1\d\d|200)$/ },
  b: { cidr: '10.96.20.0/24', relay: '10.96.20.1', bridge: 'br1', range: '10.96.20.100,10.96.20.200', dns: '10.96.20.1', domain: 'b.lab.example', re: /^10\.96\.20\.(1\d\d|200)$/ },
} as const;

let relayNs: Lan | undefined;
let forge: NsForge | undefined;
let dir = '';
const vms: Vm[] = [];

after(() => teardownLab({ vms, forge, lan: relayNs, dir }));

/** tcpdump's verbose decode of DHCP on one bridge (stopped by the namespace teardown). */
function sniff(host: Host, iface: string): { text: () => string; proc: ChildProcess } {
  const p = host.spawn('tcpdump', ['-i', iface, '-n', '-l', '-v', '-s', '0', 'udp port 67 or udp port 68']);
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return { text: () => out, proc: p };
}

/** The DHCP ACKs tcpdump decoded for a client MAC: each a block of `Option (n)` lines. */
function acksFor(dump: string, mac: string): string[] {
  return dump.split(/\n(?=\d{2}:\d{2}:\d{2}\.\d+ IP )/).filter((b) => b.includes(`Client-Ethernet-Address ${mac}`) && /DHCP-Message \(53\), length 1: ACK/.test(b));
}

test('relay: a VM on each of two subnets behind dhcrelay gets its own subnet\'s router, DNS and domain and boots the installer to its preseed; perfdhcp through the relay', { timeout: PRESEED_MS + 180_000 }, async (t) => {
  if (need(t, { root: true, commands: ['qemu-system-x86_64', 'ip', 'curl', 'dhcrelay', 'perfdhcp', 'tcpdump'], files: [`${DI_AMD64}/linux`, '/usr/lib/ipxe/qemu/pxe-virtio.rom'] }) !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'fgrelay-'));
  relayNs = await createLan('fgrly', { serverIp: SUBNETS.a.relay });
  const r = relayNs;
  await r.addBridge(SUBNETS.b.bridge, SUBNETS.b.relay, 24);
  const server = await r.addUplink({ address: '10.96.0.2', gateway: FORGE_IP, prefixLen: 24, ifname: 'up0' });
  await r.must('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  for (const s of Object.values(SUBNETS)) await server.must('ip', ['route', 'add', s.cidr, 'via', '10.96.0.2']);
  const taps = { a: await r.addTap(SUBNETS.a.bridge), b: await r.addTap(SUBNETS.b.bridge) };

  // dhcrelay in the foreground, logging each forwarded packet.
  const relay = r.spawn('dhcrelay', ['-d', '-4', '-pf', join(dir, 'dhcrelay.pid'), '-id', SUBNETS.a.bridge, '-id', SUBNETS.b.bridge, '-iu', 'up0', FORGE_IP]);
  let relayLog = '';
  relay.stdout?.on('data', (d: Buffer) => (relayLog += d.toString()));
  relay.stderr?.on('data', (d: Buffer) => (relayLog += d.toString()));
  const wire = { a: sniff(r, SUBNETS.a.bridge), b: sniff(r, SUBNETS.b.bridge) };

  // Subnet A the README's one-line way (serve flags: an implicit subnet), subnet B a stored subnet
  // object added to the running server (picked up without a restart).
  const a = SUBNETS.a;
  const b = SUBNETS.b;
  forge = await startForgeIn({ ...server, serverIp: FORGE_IP }, join(dir, 'data'), [
    '--dhcp-mode', 'managed', '--dhcp-subnet', a.cidr, '--dhcp-range', a.range, '--dhcp-router', a.relay, '--dhcp-dns', a.dns, '--dhcp-domain', a.domain,
  ], 8080, 30_000, { readme: true });
  const f = forge;
  const cli = async (args: string[]): Promise<void> => {
    const x = await f.cli(args);
    assert.equal(x.code, 0, `forge ${args.join(' ')}: ${x.stdout}${x.stderr}`);
  };
  await cli(['subnet', 'add', '--name', 'annex', '--cidr', b.cidr, '--range', b.range, '--router', b.relay, '--dns', b.dns, '--domain', b.domain]);
  await cli(['import', '--path', DI_AMD64, '--name', 'deb12']);
  await cli(['profile', 'add', '--name', 'deb12-lab', '--distro', 'deb12', '--kernel-options', DI_KOPTS]);
  const macs: Record<'a' | 'b', string> = { a: '', b: '' };
  for (const k of ['a', 'b'] as const) {
    await cli(['system', 'add', '--name', `di-${k}`, '--profile', 'deb12-lab', '--mac=random']);
    const s = await f.api('GET', `/api/v1/systems/di-${k}`);
    macs[k] = Object.values((s.body as { interfaces: Record<string, { mac_address: string }> }).interfaces)[0]!.mac_address;
  }

  const boot = async (k: 'a' | 'b'): Promise<LabEvent[]> => {
    const vm = startQemu({ host: r, tap: taps[k], mac: macs[k], firmware: 'bios', memoryMiB: 1024 });
    vms.push(vm);
    try {
      return await waitForLabEvent(f, `di-${k}`, 'autoinstall_served', vm, PRESEED_MS);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- dhcrelay:\n${relayLog.slice(-1500)}\n--- wire ${k}:\n${wire[k].text().slice(-3000)}`);
    } finally {
      await vm.kill();
    }
  };
  const results = await Promise.allSettled([boot('a'), boot('b')]);

  for (const [i, k] of (['a', 'b'] as const).entries()) {
    const s = SUBNETS[k];
    const acks = acksFor(wire[k].text(), macs[k]);
    assert.ok(acks.length > 0, `subnet ${k}: a DHCP ACK for ${macs[k]} on ${s.bridge}:\n${wire[k].text().slice(-3000)}`);
    for (const ack of acks) {
      const yiaddr = /Your-IP (\S+)/.exec(ack)?.[1] ?? '';
      assert.match(yiaddr, s.re, `subnet ${k}: the address comes from ${s.cidr}'s pool:\n${ack}`);
      assert.match(ack, new RegExp(`Server-ID \\(54\\), length 4: ${FORGE_IP.replace(/\./g, '\\.')}`), `subnet ${k}: server identifier = forge's address facing the relay:\n${ack}`);
      assert.match(ack, new RegExp(`(?:Router|Default-Gateway) \\(3\\), length 4: ${s.relay.replace(/\./g, '\\.')}\\b`), `subnet ${k}: the router of ITS subnet (${s.relay}):\n${ack}`);
      assert.match(ack, new RegExp(`Domain-Name-Server \\(6\\), length 4: ${s.dns.replace(/\./g, '\\.')}\\b`), `subnet ${k}: its subnet's DNS server:\n${ack}`);
      assert.match(ack, new RegExp(`Domain-Name \\(15\\), length \\d+: "${s.domain.replace(/\./g, '\\.')}"`), `subnet ${k}: its subnet's domain:\n${ack}`);
    }
    const res = results[i]!;
    if (res.status === 'rejected') throw res.reason as Error;
    const seq = eventTypes(res.value);
    assert.match(seq, /dhcp:dhcp_ack.*http:boot_config_served.*http:kernel_fetched.*http:initrd_fetched.*dhcp:dhcp_ack.*http:autoinstall_served/, `${k}: ${seq}`);
    for (const e of res.value.filter((x) => x.type === 'dhcp_ack')) assert.equal(e.detail['relay'], s.relay, `${k}: relayed through ${s.relay}: ${JSON.stringify(e.detail)}`);
    const served = res.value.find((e) => e.type === 'autoinstall_served')!;
    assert.equal(served.detail['server'], `${FORGE_IP}:8080`, JSON.stringify(served.detail));
    assert.match(String(served.detail['client']).replace(/^::ffff:/, ''), s.re, `${k}: the preseed was fetched from the VM's address on its subnet, routed by the relay: ${JSON.stringify(served.detail)}`);
  }
  assert.match(relayLog, /Forwarded BOOTREQUEST for .* to 10\.96\.0\.1/, `dhcrelay forwarded the requests:\n${relayLog.slice(-1500)}`);

  // perfdhcp on subnet A, sending to the relay's address: dhcrelay forwards (hops + 1) to forge.
  const c = await r.addClient();
  await c.must('ip', ['addr', 'add', '10.96.10.50/24', 'dev', 'eth0']);
  await c.must('ip', ['route', 'add', 'default', 'via', SUBNETS.a.relay]);
  const p = await c.exec('perfdhcp', ['-4', '-l', 'eth0', '-r', '10', '-R', '20', '-p', '4', SUBNETS.a.relay], { timeoutMs: 40_000 });
  const st = perfStats(p.stdout);
  assert.ok(st.doRecv > 0 && st.raRecv > 0, `perfdhcp got offers and acks through dhcrelay:\n${p.stdout}\n${p.stderr}\n--- dhcrelay:\n${relayLog.slice(-1500)}`);
  assert.ok(st.raRecv >= st.raSent * 0.9, `acks for nearly every request:\n${p.stdout}`);
  assert.ok(st.nonUnique.every((n) => n === 0), `no address handed out twice:\n${p.stdout}`);
  assert.equal(f.proc.exitCode, null, 'forge still running');
});
