/**
 * Two more firmwares boot through forge, started with the README's managed-mode line and nothing
 * else (no --server, no --dhcp-probe-seconds, default ports), on one shared lab (a provisioning
 * bridge in a namespace). Each boot stops where the Linux kernel starts: that is the point the
 * firmware path under test ends (the installer after it is the same as on the other paths).
 *
 *  1. x86-64 UEFI HTTP boot: OVMF with its PXE turned off (fw_cfg opt/org.tianocore/IPv4PXESupport=no,
 *     IPv6 off; the NIC without iPXE's option ROM, so EDK II's own stack boots) tries HTTP boot:
 *     DHCP with vendor class HTTPClient (arch 16) -> forge's answer (option 60 HTTPClient echoed,
 *     the boot file a URL: UEFI 2.x section 24.7) -> OVMF fetches ipxe.efi over HTTP -> iPXE's
 *     script -> the Debian 12 installer's kernel and initrd over HTTP -> the kernel runs.
 *  2. arm64: qemu-system-aarch64 (TCG, AAVMF from qemu-efi-aarch64, cortex-a57) PXE-boots: DHCP
 *     (arch 11) -> Debian's signed network GRUB for arm64 (grubaa64.efi from
 *     debian-installer-12-netboot-arm64) over TFTP -> its built-in prefix
 *     debian-installer/arm64/grub/grub.cfg -> the per-MAC config -> the Debian 12 arm64
 *     installer's kernel and initrd over TFTP -> the kernel runs.
 *
 * Asserted from forge's timeline (the DHCP plan and boot file, loader, config, kernel and initrd
 * fetches, in order) and the VM's serial console (firmware messages, then the kernel's).
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCommand, isRoot, need } from '../lib/env.js';
import { createLan, type Lan } from '../lib/netns.js';
import { startQemu, AAVMF_CODE, OVMF_CODE, type Vm } from '../lib/qemu.js';
import { DI_AMD64, DI_KOPTS, DI_ARM64, README_MANAGED, eventTypes, labEvents, screenText, startForgeIn, type LabEvent, type NsForge, teardownLab } from '../lib/boot-lab.js';

const COMMANDS = ['qemu-system-x86_64', 'qemu-system-aarch64', 'ip', 'curl'];
const FILES = [`${DI_AMD64}/linux`, `${DI_ARM64}/linux`, `${DI_ARM64}/grubaa64.efi`, OVMF_CODE, AAVMF_CODE, '/usr/lib/ipxe/ipxe.efi'];
/** The kernel's first line on the console (x86: "Linux version"; arm64: "Booting Linux on physical CPU"). */
const KERNEL_UP = /Linux version \d+\.\d+|Booting Linux on physical CPU/;

let lan: Lan | undefined;
let forge: NsForge | undefined;
let dir = '';
let missing = false;
const vms: Vm[] = [];
const macs: Record<string, string> = {};

before(async () => {
  if (!isRoot() || !COMMANDS.every(hasCommand) || !FILES.every((f) => existsSync(f))) {
    missing = true; // each test then skips (laptop) or fails (CI) through need()
    return;
  }
  dir = mkdtempSync(join(tmpdir(), 'fgfw-'));
  lan = await createLan('fgfw');
  forge = await startForgeIn(lan, join(dir, 'data'), README_MANAGED, 8080, 30_000, { readme: true });
  const f = forge;
  const cli = async (args: string[]): Promise<void> => {
    const r = await f.cli(args);
    assert.equal(r.code, 0, `forge ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  };
  await cli(['import', '--path', DI_AMD64, '--name', 'deb12']);
  await cli(['import', '--path', DI_ARM64, '--name', 'deb12-arm64']);
  await cli(['profile', 'add', '--name', 'deb12-x86', '--distro', 'deb12', '--kernel-options', DI_KOPTS]);
  // qemu's virt machine: the console is the PL011 UART.
  await cli(['profile', 'add', '--name', 'deb12-a64', '--distro', 'deb12-arm64', '--kernel-options', 'console=ttyAMA0,115200']);
  for (const [name, profile] of [['vm-httpboot', 'deb12-x86'], ['vm-arm64', 'deb12-a64']] as const) {
    await cli(['system', 'add', '--name', name, '--profile', profile, '--mac=random']);
    const s = await f.api('GET', `/api/v1/systems/${name}`);
    macs[name] = Object.values((s.body as { interfaces: Record<string, { mac_address: string }> }).interfaces)[0]!.mac_address;
  }
});

after(() => teardownLab({ vms, forge, lan: lan, dir }));

function ready(t: TestContext): boolean {
  if (missing) {
    need(t, { root: true, commands: COMMANDS, files: FILES });
    return false;
  }
  assert.ok(lan !== undefined && forge !== undefined, 'lab did not start (see before hook)');
  return true;
}

/** Boot until the kernel's first console line; returns the serial text and the timeline. */
async function bootToKernel(name: string, o: Parameters<typeof startQemu>[0], ms: number): Promise<{ serial: string; evs: LabEvent[] }> {
  const tap = await lan!.addTap();
  const vm = startQemu({ ...o, host: lan!, tap, mac: macs[name]! });
  vms.push(vm);
  try {
    const serial = await vm.waitForSerial(KERNEL_UP, ms);
    return { serial, evs: await labEvents(forge!, name) };
  } catch (e) {
    const evs = await labEvents(forge!, name).catch(() => []);
    throw new Error(`${(e as Error).message}\nevents: ${eventTypes(evs)}\nscreen tail: ${screenText(vm.serial()).slice(-1500)}\n--- forge log tail:\n${forge!.output().slice(-2500)}`);
  } finally {
    await vm.kill();
  }
}

test('x86-64 UEFI HTTP boot: OVMF (PXE off) takes forge\'s HTTPClient answer, fetches ipxe.efi over HTTP and reaches the installer kernel', { timeout: 420_000 }, async (t) => {
  if (!ready(t)) return;
  const { serial, evs } = await bootToKernel('vm-httpboot', {
    firmware: 'uefi',
    noRom: true,
    memoryMiB: 1024,
    fwCfg: { 'opt/org.tianocore/IPv4PXESupport': 'no', 'opt/org.tianocore/IPv6PXESupport': 'no', 'opt/org.tianocore/IPv6Support': 'no' },
  }, 360_000);
  const seq = eventTypes(evs);
  // The firmware's own HTTP boot client made the first request, not PXE and not an iPXE ROM.
  assert.match(screenText(serial), /Start HTTP Boot over IPv4/, 'OVMF chose HTTP boot');
  assert.doesNotMatch(screenText(serial), /Start PXE over IPv4/, 'PXE was off');
  const first = evs.find((e) => e.source === 'dhcp');
  assert.ok(first !== undefined, seq);
  assert.equal(first.detail['plan'], 'http', `the firmware's DHCP got the HTTP-boot plan: ${JSON.stringify(first.detail)}`);
  assert.equal(first.detail['arch'], 16, 'x64 UEFI HTTP (RFC 4578 / IANA arch 16)');
  assert.equal(first.detail['boot_file'], 'http://10.98.0.1:8080/boot/loaders/ipxe.efi', 'a URL as the boot file, with the bridge address');
  assert.match(seq, /dhcp:dhcp_ack.*http:loader_fetched.*dhcp:dhcp_ack.*http:boot_config_served.*http:kernel_fetched.*http:initrd_fetched/, seq);
  const loader = evs.find((e) => e.type === 'loader_fetched');
  assert.equal(loader?.detail['file'], 'ipxe.efi', JSON.stringify(loader?.detail));
  // After ipxe.efi: iPXE's own DHCP gets the script, never a loader again.
  const ipxeDhcp = evs.filter((e) => e.source === 'dhcp' && e.id > loader!.id);
  assert.ok(ipxeDhcp.length > 0 && ipxeDhcp.every((e) => e.detail['plan'] === 'ipxe'), JSON.stringify(ipxeDhcp.map((e) => e.detail)));
});

test('arm64: AAVMF PXE-boots Debian\'s signed arm64 GRUB from forge over TFTP and reaches the Debian 12 arm64 installer kernel', { timeout: 600_000 }, async (t) => {
  if (!ready(t)) return;
  const { serial, evs } = await bootToKernel('vm-arm64', { firmware: 'aavmf', memoryMiB: 1024 }, 540_000);
  const seq = eventTypes(evs);
  const mac = macs['vm-arm64']!;
  const offer = evs.find((e) => e.source === 'dhcp');
  assert.ok(offer !== undefined, seq);
  assert.equal(offer.detail['arch'], 11, `an ARM64 UEFI client (arch 11): ${JSON.stringify(offer.detail)}`);
  assert.equal(offer.detail['plan'], 'tftp');
  assert.equal(offer.detail['boot_file'], 'grubaa64.efi');
  assert.match(seq, /dhcp:dhcp_ack.*tftp:loader_fetched.*tftp:boot_config_served.*tftp:kernel_fetched.*tftp:initrd_fetched/, seq);
  assert.equal(evs.find((e) => e.type === 'loader_fetched')?.detail['file'], 'grubaa64.efi');
  const cfg = evs.find((e) => e.type === 'boot_config_served');
  assert.equal(cfg?.detail['file'], `debian-installer/arm64/grub/system/${mac}`, 'GRUB read the per-MAC config below its built-in prefix');
  // GRUB ran forge's menu entry (its echo), then the arm64 kernel's EFI stub and the kernel itself.
  assert.match(serial, /forge: loading deb12-arm64[\s\S]*EFI stub: Booting Linux Kernel[\s\S]*Booting Linux on physical CPU/, `serial tail:\n${serial.slice(-2500)}`);
});
