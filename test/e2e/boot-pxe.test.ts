/**
 * The real thing: bare qemu VMs (TCG, no disk content, Debian's ipxe-qemu ROM
 * on the NIC) network-boot from a real `forge serve` in a LAN namespace, into
 * a real Linux kernel and an initramfs that behaves like an installer (it
 * reads forge.autoinstall= from /proc/cmdline, fetches the file and runs it;
 * forge's generic script calls install start/done). Asserted from forge's
 * own event timeline, the VM's serial console and the configs forge served.
 *
 *  1. BIOS: forge DHCP (managed) -> iPXE -> HTTP iPXE script -> kernel+initrd over HTTP;
 *     two clients of the event stream watch it (one drops and resumes with Last-Event-ID)
 *  2. UEFI (OVMF): the same through the ROM's EFI iPXE
 *  3. UEFI GRUB: DHCP -> Debian's signed grubnetx64 (TFTP) -> grub/grub.cfg -> grub/system/<mac>
 *     -> linux/initrd over TFTP (GRUB 2.06: no linuxefi)
 *  3b/3c. GRUB's retry loop: the kernel missing at the first try; forge SIGKILLed mid-kernel and started again
 *  4. pxelinux: DHCP -> pxelinux.0, ldlinux.c32, pxelinux.cfg/01-<mac>, kernel over TFTP
 *  5. Secure Boot (OVMF with Microsoft's keys, enforced): DHCP -> Microsoft-signed shim (TFTP)
 *     -> Debian-signed grubnetx64 -> per-MAC config -> Debian-signed kernel, lockdown on
 *  6. the real Debian 12 installer (debian-installer-12-netboot-amd64) over the same iPXE/HTTP
 *     path: it configures the network from forge's DHCP and fetches its preseed from forge
 *  7. proxy mode: dnsmasq (another namespace) hands out addresses, forge only boot info
 *  8. after install done (pxe_just_once) the VM from (1) boots from its local disk
 *  9. the web UI in headless chromium (inside the LAN namespace) draws a VM's timeline live as it boots
 *
 * Every boot is bounded; the namespace, forge, dnsmasq and qemu die in after().
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCommand, inCI, isRoot, need } from '../lib/env.js';
import { guestKernel } from '../lib/guest.js';
import { createLan, type Lan, type LanClient } from '../lib/netns.js';
import { startQemu, OVMF_CODE, OVMF_CODE_SB, OVMF_VARS_MS, type Vm } from '../lib/qemu.js';
import { SseParser } from '../../server/protocol/sse/codec.js';
import { installerInitramfs, localBootDisk, LOCAL_DISK_MARKER, startForgeIn, type NsForge, teardownLab } from '../lib/boot-lab.js';

const BOOT_MS = 240_000;
const DI = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';
const TEST_MS = 300_000;

interface Ev {
  id: number;
  type: string;
  source: string;
  time: string;
  detail: Record<string, unknown>;
}

let lan: Lan | undefined;
let forge: NsForge | undefined;
let dir = '';
let skipped: string | undefined;
let disk = '';
const vms: Vm[] = [];
const systems: Record<string, string> = {};

const MANAGED = [
  '--dhcp-mode', 'managed',
  '--dhcp-subnet', '10.98.0.0/24',
  '--dhcp-range', '10.98.0.100,10.98.0.150',
  '--dhcp-router', '10.98.0.1',
  // d-i asks for name servers when DHCP gives none (and then waits forever at priority=critical).
  '--dhcp-dns', '10.98.0.1',
  '--dhcp-probe-seconds', '0',
  '--tftp-port', '69',
];

before(async () => {
  // `before` cannot skip: note what is missing; each test then skips (laptop) or fails (CI, via need()).
  const missing: string[] = [];
  if (!isRoot()) missing.push('root');
  for (const c of ['qemu-system-x86_64', 'dnsmasq', 'ip', 'curl', 'cpio', 'modinfo']) if (!hasCommand(c)) missing.push(`command ${c}`);
  for (const f of ['/usr/lib/ipxe/qemu/efi-virtio.rom', OVMF_CODE, '/usr/lib/PXELINUX/pxelinux.0', '/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed']) {
    if (!existsSync(f)) missing.push(`file ${f}`);
  }
  if (missing.length > 0) {
    skipped = `needs ${missing.join(', ')}`;
    return;
  }
  dir = mkdtempSync(join(tmpdir(), 'fgboot-e2e-'));
  const kernel = guestKernel();
  const initrd = installerInitramfs();
  disk = localBootDisk(dir);
  lan = await createLan('fgboot');
  forge = await startForgeIn(lan, join(dir, 'data'), MANAGED);
  const mk = async (method: string, path: string, body: unknown): Promise<void> => {
    const r = await forge!.api(method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  };
  await mk('POST', '/api/v1/distros', { name: 'guest', kernel: kernel.vmlinuz, initrd, arch: 'x86_64', breed: 'generic', kernel_options: { console: 'ttyS0', no_timer_check: null } });
  await mk('POST', '/api/v1/profiles', { name: 'guest', distro: 'guest' });
  await mk('POST', '/api/v1/profiles', { name: 'guest-pxelinux', parent: 'guest', boot_loaders: ['pxelinux'] });
  await mk('POST', '/api/v1/profiles', { name: 'guest-grub', parent: 'guest', boot_loaders: ['grub'] });
  await mk('POST', '/api/v1/profiles', { name: 'guest-shim', parent: 'guest', boot_loaders: ['shim'] });
  if (existsSync(DI)) {
    const imp = await forge.cli(['import', '--path', DI, '--name', 'deb12']);
    assert.equal(imp.code, 0, imp.stdout + imp.stderr);
    await mk('PATCH', '/api/v1/distros/deb12', { kernel_options: { console: 'ttyS0', no_timer_check: null } });
  }
  const all = [['vm-ui', 'guest'], ['vm-bios', 'guest'], ['vm-uefi', 'guest'], ['vm-grub', 'guest-grub'], ['vm-pxelinux', 'guest-pxelinux'], ['vm-proxy', 'guest'], ['vm-shim', 'guest-shim']];
  if (existsSync(DI)) all.push(['vm-di', 'deb12']);
  for (const [name, profile] of all as [string, string][]) {
    const r = await forge.cli(['system', 'add', '--name', name, '--profile', profile, '--mac=random']);
    assert.equal(r.code, 0, `system add ${name}: ${r.stdout}${r.stderr}`);
    const s = await forge.api('GET', `/api/v1/systems/${name}`);
    const mac = Object.values((s.body as { interfaces: Record<string, { mac_address: string }> }).interfaces)[0]?.mac_address;
    assert.match(mac ?? '', /^52:54:00(:[0-9a-f]{2}){3}$/);
    systems[name] = mac!;
  }
});

after(() => teardownLab({ vms, forge, lan: lan, dir }));

function ready(t: TestContext): boolean {
  if (skipped !== undefined) {
    // Skips on a laptop; in CI (CI=true) need() throws: a missing capability fails there.
    need(t, { root: true, commands: ['qemu-system-x86_64', 'dnsmasq', 'ip', 'curl', 'cpio', 'modinfo'], files: ['/usr/lib/ipxe/qemu/efi-virtio.rom', OVMF_CODE, '/usr/lib/PXELINUX/pxelinux.0', '/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed'] });
    if (!inCI()) t.skip(skipped);
    return false;
  }
  assert.ok(lan !== undefined && forge !== undefined, 'lab did not start (see before hook)');
  return true;
}

async function events(name: string): Promise<Ev[]> {
  const r = await forge!.api('GET', `/api/v1/systems/${name}/events`);
  assert.equal(r.status, 200);
  return [...(r.body as Ev[])].sort((a, b) => a.time.localeCompare(b.time) || a.id - b.id);
}

const types = (evs: Ev[]): string => evs.map((e) => `${e.source}:${e.type}`).join(' ');

/** Boot a VM with the system's MAC until the installer's marker (or fail with the serial tail and forge's log). */
async function bootInstaller(name: string, firmware: 'bios' | 'uefi' | 'uefi-sb', withDisk = false, rateMbit?: number): Promise<string> {
  const tap = await lan!.addTap();
  // The link to the VM at a fixed rate (tc tbf on the tap's egress: everything forge sends it).
  if (rateMbit !== undefined) await lan!.must('tc', ['qdisc', 'add', 'dev', tap, 'root', 'tbf', 'rate', `${rateMbit}mbit`, 'burst', '32kb', 'latency', '400ms']);
  const vm = startQemu({ host: lan!, tap, mac: systems[name]!, firmware, memoryMiB: 384, ...(withDisk ? { disk } : {}) });
  vms.push(vm);
  try {
    return await vm.waitForSerial(/forge-guest: (INSTALL SCRIPT \w+|AUTOINSTALL FAILED|NETWORK FAILED|NO AUTOINSTALL URL)/, BOOT_MS);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- forge log tail:\n${forge!.output().slice(-3000)}`);
  } finally {
    await vm.kill();
  }
}

function assertInstalled(serial: string, evs: Ev[], opts: { config: string; kernelVia: string }): void {
  const tail = `serial tail:\n${serial.slice(-2500)}`;
  assert.ok(/forge-guest: AUTOINSTALL OK \d+ bytes/.test(serial), tail);
  assert.ok(/forge-guest: INSTALL SCRIPT OK/.test(serial), tail);
  const seq = types(evs);
  const order = [`${opts.config}:boot_config_served`, `${opts.kernelVia}:kernel_fetched`, `${opts.kernelVia}:initrd_fetched`, 'http:autoinstall_served', 'install_start', 'install_done'];
  let at = -1;
  for (const want of order) {
    const i = evs.findIndex((e, idx) => idx > at && `${e.source}:${e.type}`.endsWith(want));
    assert.ok(i > at, `event ${want} missing or out of order in: ${seq}`);
    at = i;
  }
  assert.ok(evs.some((e) => e.type === 'netboot_disabled'), `pxe_just_once: netboot_disabled expected in ${seq}`);
}

/**
 * A client of GET /api/v1/events/stream inside the LAN namespace (curl -N),
 * parsed with forge's SSE codec: the events it has received, in arrival order.
 */
function sseClient(path: string, headers: string[] = []): { events: () => Ev[]; stop: () => void } {
  const args = ['-sN', ...headers.flatMap((h) => ['-H', h]), forge!.url + path];
  const p = lan!.spawn('curl', args);
  const parser = new SseParser();
  const got: Ev[] = [];
  p.stdout?.on('data', (d: Buffer) => {
    for (const m of parser.push(d.toString())) if (m.event !== 'hello') got.push(JSON.parse(m.data) as Ev);
  });
  return { events: () => got, stop: () => void p.kill('SIGKILL') };
}

async function until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('1. BIOS: forge DHCP -> iPXE ROM -> HTTP iPXE script -> kernel + initrd over HTTP -> autoinstall fetched', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  // Two live clients of the event stream watch the boot; one drops after 3 events and resumes with Last-Event-ID.
  const live = sseClient('/api/v1/events/stream?system=vm-bios');
  const dropping = sseClient('/api/v1/events/stream?system=vm-bios');
  let resumed: ReturnType<typeof sseClient> | undefined;
  let kept: Ev[] = [];
  const dropper = (async () => {
    await until(() => dropping.events().length >= 3, BOOT_MS, () => 'three events');
    dropping.stop();
    kept = dropping.events().slice(0, 3);
  })();
  let serial: string;
  try {
    serial = await bootInstaller('vm-bios', 'bios', true);
    await dropper;
  } finally {
    dropping.stop();
  }
  const evs = await events('vm-bios');
  resumed = sseClient('/api/v1/events/stream?system=vm-bios', [`Last-Event-ID: ${kept[2]!.id}`]);
  const byId = [...evs].sort((a, b) => a.id - b.id).map((e) => e.id);
  try {
    await until(() => resumed!.events().length >= byId.length - 3 && live.events().length >= byId.length, 30_000, () => `resumed ${resumed!.events().length} of ${byId.length - 3}, live ${live.events().length} of ${byId.length}`);
  } finally {
    resumed.stop();
    live.stop();
  }
  assert.deepEqual(live.events().map((e) => e.id).slice(0, byId.length), byId, `the live client saw every event of the boot, in order: ${types(live.events())}`);
  assert.deepEqual([...kept, ...resumed.events()].map((e) => e.id), byId, 'the client that reconnected with Last-Event-ID lost none and got none twice');
  assert.ok(evs.some((e) => e.source === 'dhcp' && (e.type === 'dhcp_offer' || e.type === 'dhcp_ack')), types(evs));
  assertInstalled(serial, evs, { config: 'http', kernelVia: 'http' });
  const cfg = evs.find((e) => e.type === 'boot_config_served');
  assert.equal(cfg?.detail['file'], `ipxe/${systems['vm-bios']}`);
  const cli = await forge!.cli(['system', 'events', '--name', 'vm-bios']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /autoinstall_served/);
  assert.match(cli.stdout, /install_done/);
});

test('2. UEFI (OVMF): the same through the ROM\'s EFI iPXE', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  const serial = await bootInstaller('vm-uefi', 'uefi');
  const evs = await events('vm-uefi');
  assertInstalled(serial, evs, { config: 'http', kernelVia: 'http' });
  const offer = evs.find((e) => e.source === 'dhcp');
  assert.ok(offer !== undefined, types(evs));
  assert.match(JSON.stringify(offer.detail), /"arch":7|uefi|ipxe/i, `DHCP saw an x64 UEFI client: ${JSON.stringify(offer.detail)}`);
});

test('3. UEFI GRUB: signed grubnetx64 over TFTP, grub/grub.cfg -> per-MAC config, linux/initrd over TFTP', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  const serial = await bootInstaller('vm-grub', 'uefi');
  const evs = await events('vm-grub');
  assertInstalled(serial, evs, { config: 'tftp', kernelVia: 'tftp' });
  assert.ok(evs.some((e) => e.type === 'loader_fetched' && e.detail['file'] === 'grubx64.efi'), types(evs));
  const cfg = evs.find((e) => e.type === 'boot_config_served');
  assert.equal(cfg?.detail['file'], `grub/system/${systems['vm-grub']}`);
  assert.match(serial, /Welcome to GRUB/);
});

test('3b. GRUB tries a failed kernel download again: the kernel is missing at the first try and back before the next, and the guest boots', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  // A distro of its own whose kernel file is away while GRUB asks for it the first time.
  const guest = (await forge!.api('GET', '/api/v1/distros/guest')).body as { kernel: string; initrd: string };
  const kernel = join(dir, 'retry-vmlinuz');
  copyFileSync(guest.kernel, kernel);
  for (const [path, body] of [
    ['/api/v1/distros', { name: 'guest-retry', kernel, initrd: guest.initrd, arch: 'x86_64', breed: 'generic', kernel_options: { console: 'ttyS0', no_timer_check: null } }],
    ['/api/v1/profiles', { name: 'guest-retry', distro: 'guest-retry', boot_loaders: ['grub'] }],
  ] as const) {
    const r = await forge!.api('POST', path, body);
    assert.ok(r.status < 300, `${path}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  const add = await forge!.cli(['system', 'add', '--name', 'vm-grub-retry', '--profile', 'guest-retry', '--mac=random']);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  const s = await forge!.api('GET', '/api/v1/systems/vm-grub-retry');
  systems['vm-grub-retry'] = Object.values((s.body as { interfaces: Record<string, { mac_address: string }> }).interfaces)[0]!.mac_address;
  renameSync(kernel, `${kernel}.away`);
  const since = forge!.output().length;
  // Back once forge has refused GRUB's first request for it (TFTP file not found).
  const restore = (async () => {
    await until(() => /file not found[^\n]*distro\/guest-retry\/kernel/.test(forge!.output().slice(since)), BOOT_MS, () => 'GRUB never asked for the missing kernel');
    renameSync(`${kernel}.away`, kernel);
  })();
  const serial = await bootInstaller('vm-grub-retry', 'uefi');
  await restore;
  assert.match(serial, /forge: download failed \(try 1 of 10\); trying again in 4 s/, `GRUB's loop reported the failed try:\n${serial.slice(-2500)}`);
  assertInstalled(serial, await events('vm-grub-retry'), { config: 'tftp', kernelVia: 'tftp' });
});

/** forge's UDP ports in the LAN namespace (ss): the listeners, plus one per TFTP transfer (its own TID, RFC 1350 section 4). */
async function udpPorts(pid: number): Promise<Set<number>> {
  const r = await lan!.exec('ss', ['-uanpH'], { timeoutMs: 10_000 });
  const ports = new Set<number>();
  for (const line of r.stdout.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const m = /^\S+\s+\d+\s+\d+\s+\S+:(\d+)\s/.exec(line);
    if (m !== null) ports.add(Number(m[1]));
  }
  return ports;
}

test('3c. GRUB boots through a killed server: forge is SIGKILLed while GRUB downloads the kernel, restarted, and GRUB\'s loop fetches it again', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  const add = await forge!.cli(['system', 'add', '--name', 'vm-grub-kill', '--profile', 'guest-grub', '--mac=random']);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  const s = await forge!.api('GET', '/api/v1/systems/vm-grub-kill');
  systems['vm-grub-kill'] = Object.values((s.body as { interfaces: Record<string, { mac_address: string }> }).interfaces)[0]!.mac_address;
  const killed = forge!;
  const pid = killed.proc.pid!;
  const listeners = await udpPorts(pid);
  const from = killed.output().length;
  let over = false;
  let killedOut = '';
  // Killed mid-kernel: once GRUB's kernel transfer has started (the event, and the transfer's own UDP
  // port open); then started again on the same data. The VM's link runs at 16 Mbit/s, so the 8 MB
  // kernel takes about 4 s to send and the kill lands inside it (checked below from the killed log).
  const chaos = (async () => {
    for (; !over; await new Promise((r) => setTimeout(r, 100))) {
      const evs = await events('vm-grub-kill');
      if (!evs.some((e) => e.type === 'kernel_fetched')) continue;
      assert.ok(!evs.some((e) => e.type === 'initrd_fetched'), `the kernel was sent whole before the kill: ${types(evs)}`);
      if ([...(await udpPorts(pid))].some((p) => !listeners.has(p))) break;
    }
    if (over) return;
    killed.proc.kill('SIGKILL');
    await killed.stop();
    killedOut = killed.output().slice(from);
    forge = await startForgeIn(lan!, killed.dataDir, MANAGED);
  })();
  let serial: string;
  try {
    serial = await bootInstaller('vm-grub-kill', 'uefi', false, 16);
  } catch (e) {
    // CI r8 (stop 31): GRUB printed neither the download's failure nor a retry in 240 s. Say what
    // both servers saw: the killed one's log, and the restarted one's TFTP counters and timeline.
    over = true;
    await chaos;
    const metrics = forge === killed ? '(not restarted)' : String((await forge!.api('GET', '/metrics').catch((x: unknown) => ({ body: String(x) }))).body).split('\n').filter((l) => /^forge_tftp/.test(l)).join('\n');
    throw new Error(`${(e as Error).message}\n--- the killed forge (${killedOut === '' ? 'not killed' : 'killed'}), log tail:\n${killedOut.slice(-3000)}\n--- the restarted forge's TFTP metrics:\n${metrics}\n--- events: ${types(await events('vm-grub-kill'))}`, { cause: e });
  } finally {
    over = true;
    await chaos;
  }
  t.diagnostic(`GRUB on the console: ${serial.split('\n').filter((l) => /error|forge:/.test(l)).map((l) => l.trim()).join(' | ')}`);
  assert.notEqual(forge, killed, 'forge was killed and started again during the boot');
  const kernelSent = (out: string): boolean => out.split('\n').some((l) => /sent file/.test(l) && /distro\/guest\/kernel/.test(l));
  assert.ok(!kernelSent(killedOut), `the killed server had not sent the whole kernel:\n${killedOut.slice(-2000)}`);
  assert.ok(kernelSent(forge!.output()), `the restarted server sent the kernel:\n${forge!.output().slice(-2000)}`);
  assert.match(serial, /forge: download failed \(try 1 of 10\); trying again in 4 s/, `GRUB's loop reported the cut download:\n${serial.slice(-2500)}`);
  assertInstalled(serial, await events('vm-grub-kill'), { config: 'tftp', kernelVia: 'tftp' });
});

test('4. pxelinux: pxelinux.0, ldlinux.c32 and pxelinux.cfg/01-<mac> over TFTP, kernel over TFTP', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  const serial = await bootInstaller('vm-pxelinux', 'bios');
  const evs = await events('vm-pxelinux');
  assertInstalled(serial, evs, { config: 'tftp', kernelVia: 'tftp' });
  const loaders = evs.filter((e) => e.type === 'loader_fetched').map((e) => e.detail['file']);
  assert.ok(loaders.includes('pxelinux.0') && loaders.includes('ldlinux.c32'), `loaders: ${loaders.join(',')} in ${types(evs)}`);
  const cfg = evs.find((e) => e.type === 'boot_config_served');
  assert.equal(cfg?.detail['file'], `pxelinux.cfg/01-${systems['vm-pxelinux']!.replace(/:/g, '-')}`);
});

test('5. Secure Boot: Microsoft-signed shim -> Debian-signed GRUB -> per-MAC config -> signed kernel, over TFTP', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  if (need(t, { files: [OVMF_CODE_SB, OVMF_VARS_MS, '/usr/lib/shim/shimx64.efi.signed'] }) !== undefined) return;
  const serial = await bootInstaller('vm-shim', 'uefi-sb');
  const evs = await events('vm-shim');
  assertInstalled(serial, evs, { config: 'tftp', kernelVia: 'tftp' });
  const loaders = evs.filter((e) => e.type === 'loader_fetched').map((e) => e.detail['file']);
  assert.ok(loaders.includes('shimx64.efi') && loaders.includes('grubx64.efi'), `loaders: ${loaders.join(',')} in ${types(evs)}`);
  assert.ok(loaders.indexOf('shimx64.efi') < loaders.indexOf('grubx64.efi'), `shim loads GRUB: ${loaders.join(',')}`);
  // The kernel saw Secure Boot on (EFI variable SecureBoot=1): the chain was verified, not skipped.
  assert.match(serial, /[Ss]ecure boot enabled/, `serial tail:\n${serial.slice(-2500)}`);
});

test('6. the real Debian 12 installer boots over iPXE/HTTP, configures its network from forge and fetches its preseed', { timeout: 560_000 }, async (t) => {
  if (!ready(t)) return;
  if (!existsSync(DI)) {
    need(t, { files: [DI] });
    return;
  }
  const tap = await lan!.addTap();
  // 1 GiB: below ~768 MiB d-i enters low-memory mode and stops at a dialog before the preseed.
  const vm = startQemu({ host: lan!, tap, mac: systems['vm-di']!, firmware: 'bios', memoryMiB: 1024 });
  vms.push(vm);
  const start = Date.now();
  let evs: Ev[] = [];
  try {
    // d-i under TCG: about 3-4 minutes from power-on to the preseed request on a loaded 2-core host.
    while (Date.now() - start < 500_000) {
      evs = await events('vm-di');
      if (evs.some((e) => e.type === 'autoinstall_served' || e.type === 'autoinstall_failed')) break;
      if (vm.proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 3000));
    }
  } finally {
    const serial = vm.serial();
    await vm.kill();
    const served = evs.find((e) => e.type === 'autoinstall_served');
    const plain = serial.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\s+/g, ' ');
    assert.ok(served !== undefined, `no preseed request after ${Math.round((Date.now() - start) / 1000)} s; events: ${types(evs)}\nscreen tail: ${plain.slice(-1500)}`);
  }
  assert.match(types(evs), /http:boot_config_served.*http:kernel_fetched.*http:initrd_fetched.*dhcp:dhcp_ack.*http:autoinstall_served/);
  const preseed = await forge!.text('/autoinstall/system/vm-di');
  assert.match(preseed, /^d-i /m, 'the preseed served is a d-i preseed');
});

// Runs before 7 on purpose: test 7 puts a second DHCP server (dnsmasq) on the LAN, and forge rightly
// stays silent on a link where it heard a rival until that link loses carrier (services/dhcp/links.ts).
test('9. the web UI: a system page in headless chromium draws the boot timeline live while the VM boots', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  if (!existsSync('/usr/bin/chromium')) {
    need(t, { files: ['/usr/bin/chromium'] });
    t.skip('needs /usr/bin/chromium');
    return;
  }
  // Chromium runs inside the LAN namespace (forge listens there); playwright drives it over its pipe.
  const wrapper = join(dir, 'chromium-in-lan');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${lan!.ns} /usr/bin/chromium "$@"\n`, { mode: 0o755 });
  const { chromium } = await import('playwright-core');
  const ctx = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: wrapper,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1366, height: 768 },
  });
  try {
    const page = await ctx.newPage();
    page.setDefaultTimeout(60_000);
    await page.goto(`${forge!.url}/ui/#/system/vm-ui`);
    await page.getByRole('button', { name: 'Continue read-only' }).click();
    await page.locator('#live.on').waitFor();
    const dots = (): Promise<number> => page.locator('#timeline svg circle').count();
    assert.equal(await dots(), 0, 'no events before the boot');
    // Every picture the page draws, recorded in the page itself: a MutationObserver callback runs
    // after each task that changed the DOM, and each SSE message is its own task (HTML's
    // EventSource "queue a task" per event), so a live page shows every count from 1 up, however
    // fast the boot is. Sampling on a timer missed them when the whole boot took under a second.
    // (Page code as a string: the test build has no DOM types.)
    await page.evaluate(`(() => {
      const counts = (window.forgeDotCounts = []);
      const count = () => document.querySelectorAll('#timeline svg circle').length;
      new MutationObserver(() => {
        const n = count();
        if (counts[counts.length - 1] !== n) counts.push(n);
      }).observe(document.body, { childList: true, subtree: true });
    })()`);
    const serial = await bootInstaller('vm-ui', 'bios');
    assert.match(serial, /INSTALL SCRIPT OK/);
    const stored = await events('vm-ui');
    const end = Date.now() + 30_000;
    while ((await dots()) < stored.length && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    assert.equal(await dots(), stored.length, 'one dot per event of the boot, without a reload');
    const counts = (await page.evaluate('window.forgeDotCounts')) as number[];
    t.diagnostic(`dot counts drawn: ${counts.join(', ')}`);
    const distinct = [...new Set(counts.filter((n) => n > 0))];
    assert.ok(distinct.length >= 3, `the picture grew step by step during the boot (dot counts drawn: ${counts.join(', ')})`);
    const labels = await page.locator('#timeline svg text[data-event]').allTextContents();
    assert.deepEqual(labels, stored.sort((a, b) => a.id - b.id).map((e) => e.type));
    assert.equal(await page.locator('#stage .badge').textContent(), 'installed', 'the stage badge follows the events');
    mkdirSync(new URL('../../../test/.artifacts/ui/', import.meta.url).pathname, { recursive: true });
    await page.screenshot({ path: new URL('../../../test/.artifacts/ui/vm-boot-timeline.png', import.meta.url).pathname });
  } finally {
    await ctx.close();
  }
});

test('7. proxy mode: dnsmasq in another namespace hands out the address, forge only the boot information', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  await forge!.stop();
  // The site's DHCP server: dnsmasq on its own host (namespace) on the same bridge, no boot options.
  const site: LanClient = await lan!.addClient();
  await site.must('ip', ['addr', 'add', '10.98.0.2/24', 'dev', 'eth0']);
  const dns = site.spawn('dnsmasq', [
    '--keep-in-foreground', '--no-daemon', '--port=0', '--interface=eth0', '--bind-interfaces',
    '--dhcp-range=10.98.0.200,10.98.0.220,1h', '--no-resolv', '--no-hosts', '--leasefile-ro', '--user=root', '--log-dhcp',
  ]);
  let dnsLog = '';
  dns.stderr?.on('data', (d: Buffer) => (dnsLog += d.toString()));
  forge = await startForgeIn(lan!, join(dir, 'data'), ['--dhcp-mode', 'proxy', '--dhcp-probe-seconds', '0', '--tftp-port', '69']);
  let serial: string;
  try {
    serial = await bootInstaller('vm-proxy', 'bios');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- dnsmasq log tail:\n${dnsLog.slice(-2000)}`);
  }
  const evs = await events('vm-proxy');
  assertInstalled(serial, evs, { config: 'http', kernelVia: 'http' });
  // The address came from dnsmasq's pool, not forge.
  assert.ok(/forge-guest: network up on \w+: 10\.98\.0\.2(0\d|1\d|20)\/24/.test(serial), serial.slice(-2500));
  assert.match(dnsLog, new RegExp(`DHCPACK\\(eth0\\) 10\\.98\\.0\\.2\\d\\d ${systems['vm-proxy']}`));
  const forgeDhcp = evs.filter((e) => e.source === 'dhcp');
  for (const e of forgeDhcp) assert.ok(e.detail['ip'] === undefined || e.detail['ip'] === '', `forge gave no address in proxy mode: ${JSON.stringify(e.detail)}`);
  dns.kill('SIGKILL');
});

test('8. after install done (pxe_just_once) the same VM boots from its local disk', { timeout: TEST_MS }, async (t) => {
  if (!ready(t)) return;
  const before = await events('vm-bios');
  assert.ok(before.some((e) => e.type === 'install_done'), 'needs test 1');
  const sys = await forge!.api('GET', '/api/v1/systems/vm-bios');
  assert.equal((sys.body as { netboot_enabled: boolean }).netboot_enabled, false, 'install done turned netboot off');
  const script = await forge!.text(`/boot/ipxe/${systems['vm-bios']}`);
  assert.match(script, /^exit$/m);
  assert.doesNotMatch(script, /^kernel /m);
  const lastId = Math.max(...before.map((e) => e.id));
  const tap = await lan!.addTap();
  const vm = startQemu({ host: lan!, tap, mac: systems['vm-bios']!, firmware: 'bios', memoryMiB: 256, disk });
  vms.push(vm);
  try {
    await vm.waitForSerial(new RegExp(LOCAL_DISK_MARKER), BOOT_MS);
  } finally {
    await vm.kill();
  }
  const after = (await events('vm-bios')).filter((e) => e.id > lastId);
  assert.ok(!after.some((e) => e.type === 'kernel_fetched' || e.type === 'initrd_fetched'), `no installer after install done: ${types(after)}`);
  for (const e of after.filter((x) => x.type === 'boot_config_served')) assert.equal(e.detail['boot'], 'local');
  const st = await forge!.cli(['status']);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /^vm-bios\s+guest\s+off\s+(installed|local) \d+m/m);
});

