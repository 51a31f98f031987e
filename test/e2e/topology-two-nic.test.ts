/**
 * A two-NIC install server, set up the way the README says, boots the real Debian 12 installer.
 *
 * The server namespace has a management NIC (mgmt0, 192.168.77.2/24) holding the default route and
 * a provisioning bridge (br0, 10.98.0.1/24) whose VM ports (taps) no qemu holds yet: NO-CARRIER,
 * its route "linkdown".
 * `forge serve` is started then, with the README's managed-mode line and nothing else (no
 * --server, no --next-server, no --listen, the default 3 s probe, default ports: HTTP 8080, TFTP 69).
 * Then a BIOS VM (SeaBIOS + the NIC's iPXE ROM) and a UEFI VM (OVMF + the ROM's EFI iPXE) start on
 * the bridge at the same time, get their address from forge, chain to forge's iPXE script, load
 * the Debian 12 installer (debian-installer-12-netboot-amd64) over HTTP, configure the network
 * from forge's DHCP and fetch their preseed. The test stops there (the preseed fetch is the point
 * where a wrong server address would have broken the install).
 *
 * Proven from forge's own records: the event timeline (DHCP ack, boot config, kernel, initrd,
 * preseed, in order) with the local address each preseed request arrived on, and the HTTP access
 * log (`server=` field): every boot and autoinstall request came in on the bridge address, none
 * on 127.0.0.1 or the management address.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { createLan, type Lan } from '../lib/netns.js';
import { startQemu, OVMF_CODE, type Vm } from '../lib/qemu.js';
import { DI_AMD64, DI_KOPTS, README_MANAGED, eventTypes, linkLocalOf, ndpCapture, startForgeIn, waitForLabEvent, type LabEvent, type NsForge, teardownLab } from '../lib/boot-lab.js';

const MGMT = '192.168.77.2';
/** d-i under TCG, two at once on a shared 2-core host: about 3-5 minutes from power-on to the preseed request. */
const PRESEED_MS = 600_000;

let lan: Lan | undefined;
let forge: NsForge | undefined;
let dir = '';
const vms: Vm[] = [];

after(() => teardownLab({ vms, forge, lan: lan, dir }));

test('two-NIC host, README flags, server up before any VM: a BIOS and a UEFI VM PXE-boot the Debian 12 installer and fetch their preseed over the bridge', { timeout: PRESEED_MS + 120_000 }, async (t) => {
  if (need(t, { root: true, commands: ['qemu-system-x86_64', 'ip', 'curl', 'tcpdump', 'radvd'], files: [`${DI_AMD64}/linux`, `${DI_AMD64}/initrd.gz`, '/usr/lib/ipxe/qemu/efi-virtio.rom', OVMF_CODE] }) !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'fgtwonic-'));
  lan = await createLan('fg2nic');
  await lan.addUplink({ address: MGMT, gateway: '192.168.77.1', prefixLen: 24 });
  // The VMs' tap devices exist on the bridge (as a hypervisor's do) but no qemu holds them yet:
  // every port is down, so the bridge has no carrier. (A bridge with no port at all reports carrier.)
  const taps = { 'di-bios': await lan.addTap(), 'di-uefi': await lan.addTap() };
  const link = await lan.must('ip', ['-o', 'link', 'show', 'br0']);
  assert.match(link, /NO-CARRIER/, 'premise: the provisioning bridge has no carrier before the first VM');
  assert.match(await lan.must('ip', ['route', 'show', 'default']), new RegExp(`via 192\\.168\\.77\\.1 dev mgmt0`));

  forge = await startForgeIn(lan, join(dir, 'data'), README_MANAGED, 8080, 30_000, { readme: true });
  const f = forge;
  assert.doesNotMatch(f.output(), /CONFIG_INVALID|ENETUNREACH/);
  assert.doesNotMatch(f.output(), /base URL for installers: http:\/\/(127\.0\.0\.1|192\.168\.77\.2)/);

  const cli = async (args: string[]): Promise<void> => {
    const r = await f.cli(args);
    assert.equal(r.code, 0, `forge ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  };
  await cli(['import', '--path', DI_AMD64, '--name', 'deb12']);
  await cli(['profile', 'add', '--name', 'deb12-lab', '--distro', 'deb12', '--kernel-options', DI_KOPTS]);
  const macs: Record<string, string> = {};
  for (const name of ['di-bios', 'di-uefi']) {
    await cli(['system', 'add', '--name', name, '--profile', 'deb12-lab', '--mac=random']);
    const s = await f.api('GET', `/api/v1/systems/${name}`);
    macs[name] = Object.values((s.body as { interfaces: Record<string, { mac_address: string }> }).interfaces)[0]!.mac_address;
  }

  // Router solicitations and advertisements on the bridge, from before the first VM.
  const ndp = await ndpCapture(lan, 'br0');

  // Both VMs at once (1 GiB each: below ~768 MiB d-i stops at a low-memory dialog before the preseed).
  const boot = async (name: 'di-bios' | 'di-uefi', firmware: 'bios' | 'uefi'): Promise<{ vm: Vm; evs: LabEvent[] }> => {
    const vm = startQemu({ host: lan!, tap: taps[name], mac: macs[name]!, firmware, memoryMiB: 1024 });
    vms.push(vm);
    const evs = await waitForLabEvent(f, name, 'autoinstall_served', vm, PRESEED_MS);
    await vm.kill();
    return { vm, evs };
  };
  const settled = await Promise.allSettled([boot('di-bios', 'bios'), boot('di-uefi', 'uefi')]);
  const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => (s.reason as Error).message);
  assert.deepEqual(failed, [], failed.join('\n\n'));
  const [bios, uefi] = settled.map((s) => (s as PromiseFulfilledResult<{ vm: Vm; evs: LabEvent[] }>).value) as [{ vm: Vm; evs: LabEvent[] }, { vm: Vm; evs: LabEvent[] }];
  assert.match(f.output(), /probe: no other DHCP server answered; serving this link/, 'the bridge was probed once it had carrier (default probe)');

  for (const [name, r] of [['di-bios', bios], ['di-uefi', uefi]] as const) {
    const seq = eventTypes(r.evs);
    assert.match(seq, /dhcp:dhcp_ack.*http:boot_config_served.*http:kernel_fetched.*http:initrd_fetched.*dhcp:dhcp_ack.*http:autoinstall_served/, `${name}: iPXE's DHCP, script, kernel, initrd, then d-i's own DHCP and the preseed: ${seq}`);
    const served = r.evs.find((e) => e.type === 'autoinstall_served')!;
    assert.equal(served.detail['server'], '10.98.0.1:8080', `${name}: the preseed request arrived on the bridge address: ${JSON.stringify(served.detail)}`);
    assert.match(String(served.detail['client']), /^(::ffff:)?10\.98\.0\.(1\d\d|200)$/, `${name}: from the client's leased address: ${JSON.stringify(served.detail)}`);
    for (const e of r.evs.filter((x) => x.source === 'http')) assert.doesNotMatch(JSON.stringify(e.detail), /127\.0\.0\.1|192\.168\.77\./, `${name}: ${e.type}`);
  }
  const uefiDhcp = uefi.evs.filter((e) => e.source === 'dhcp');
  assert.ok(uefiDhcp.some((e) => /"arch":7\b/.test(JSON.stringify(e.detail))), `the UEFI VM identified itself as x64 UEFI (arch 7): ${JSON.stringify(uefiDhcp.map((e) => e.detail))}`);

  // The ROMs' IPv6 wait (services/ra.ts): forge's RA (README default ipv6_ra auto) reached each
  // ROM before it asked for its script, and the ROM stopped soliciting then (iPXE ndp.c: the
  // first solicited RA without M/O flags ends IPv6 configuration); without it, iPXE solicits on
  // until its configurator times out (15.75 s in this ROM) and only then asks for the script.
  const brLl = /inet6 (fe80::[0-9a-f:]+)/.exec(await lan.must('ip', ['-6', '-o', 'addr', 'show', 'dev', 'br0', 'scope', 'link']))?.[1];
  assert.ok(brLl !== undefined, 'the bridge has a link-local address');
  for (const [name, r] of [['di-bios', bios], ['di-uefi', uefi]] as const) {
    const ll = linkLocalOf(macs[name]!);
    const scriptAt = Date.parse(r.evs.find((e) => e.type === 'boot_config_served')!.time);
    const pk = ndp.packets();
    const ras = pk.filter((p) => p.type === 'ra' && p.dst === ll);
    const rom = pk.filter((p) => p.type === 'rs' && p.src === ll && p.t < scriptAt);
    const wire = `${name} (${ll}):\n${ndp.raw().slice(-4000)}`;
    assert.ok(rom.length >= 1, `the ROM solicited a router: ${wire}`);
    const ra = ras[0];
    assert.ok(ra !== undefined && ra.t < scriptAt, `forge's RA reached the ROM before its script request: ${wire}`);
    assert.equal(ra.hlim, 255, ra.text);
    assert.equal(ra.src, brLl, ra.text);
    assert.match(ra.text, /router lifetime 0s/, ra.text);
    // One solicitation may cross the RA on the wire; more would mean the ROM kept waiting.
    const after = rom.filter((p) => p.t > ra.t);
    assert.ok(after.length <= 1, `the ROM stopped soliciting after forge's RA (${after.length} more): ${wire}`);
    t.diagnostic(`${name}: ${rom.length} ROM solicitation(s); forge's RA ${ra.t - rom[0]!.t} ms after the first; script request ${scriptAt - ra.t} ms after the RA`);
  }

  // The access log: every boot/autoinstall request came in on the bridge address, never on loopback or mgmt0.
  const access = f.output().split('\n').filter((l) => /http\.access: request /.test(l) && /path=(\/i\/[^/ ]+)?\/(boot|autoinstall)\//.test(l));
  for (const name of ['di-bios', 'di-uefi']) {
    // Installer URLs carry the install token since issue 13: path=/i/TOKEN/autoinstall/...
    const pre = access.filter((l) => new RegExp(`path=(/i/[^/ ]+)?/autoinstall/system/${name} `).test(l));
    assert.ok(pre.length >= 1, `${name}: the preseed request is in the access log:\n${access.join('\n')}`);
    for (const l of pre) assert.match(l, /server=10\.98\.0\.1:8080 /, l);
  }
  const kernels = access.filter((l) => /path=\/boot\/distro\/deb12\/kernel /.test(l));
  assert.ok(kernels.length >= 2, `both kernels were fetched over HTTP:\n${access.join('\n')}`);
  for (const l of access) assert.doesNotMatch(l, /server=(127\.0\.0\.1|192\.168\.77\.2):/, l);
});
