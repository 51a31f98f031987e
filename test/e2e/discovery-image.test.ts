/**
 * The machine lifecycle end to end, on one real `forge serve` (managed DHCP,
 * TFTP, HTTP) in a LAN namespace with `--dhcp-unknown discover`, booted for
 * real under qemu TCG:
 *
 *  1. Two bare VMs with unknown MACs and their own DMI serials (-smbios type=1)
 *     PXE-boot from forge with no hand-made config: forge's DHCP gives the iPXE
 *     ROM its script, the script the discovery image forge built at start
 *     (Debian's linux-image + busybox-static + kexec-tools). Both report their
 *     facts (disks from virtio and IDE controllers with size, model and
 *     rotational); a rule enlists the big one, whose profile allows kexec: the
 *     image kexecs into the installer kernel (qemu -no-reboot: a reboot would
 *     end the VM), which fetches its autoinstall and reaches install start.
 *     The small one matches no rule and stays discovered, polling; provisioned
 *     by hand with a profile that does not allow kexec, it is told to reboot,
 *     PXE-boots again as a known system and reaches its installer too.
 *  2. `forge system reinstall` on a libvirt domain (qemu:///system, its NIC on
 *     a bridge joined to the LAN) whose system is installed (netboot off: it
 *     boots its local disk): netboot on, power cycle, the domain PXE-boots into
 *     the installer and reaches install start; every step on its timeline.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { hasCommand, inCI, isRoot, need } from '../lib/env.js';
import { guestKernel } from '../lib/guest.js';
import { createLan, must, type Lan } from '../lib/netns.js';
import { startQemu, type Vm } from '../lib/qemu.js';
import { installerInitramfs, localBootDisk, LOCAL_DISK_MARKER, startForgeIn, type NsForge } from '../lib/boot-lab.js';
import { labDir, removeDomain, virsh } from '../lib/agent-lab.js';

const BOOT_MS = 420_000;
const COMMANDS = ['qemu-system-x86_64', 'ip', 'curl', 'cpio', 'modinfo', 'virsh'];
const FILES = ['/usr/lib/ipxe/qemu/efi-virtio.rom', '/bin/busybox', '/sbin/kexec'];

interface Ev {
  id: number;
  type: string;
  source: string;
  time: string;
}
interface DiscoveredRec {
  name: string;
  status: string;
  system: string;
  facts: Record<string, unknown>;
  inventory: { interfaces: { mac: string; link: boolean }[]; disks: { name: string; size_gib: number; model: string; rotational: boolean }[] };
}

let lan: Lan | undefined;
let forge: NsForge | undefined;
let dir = '';
let skipped: string | undefined;
const vms: Vm[] = [];

function mac(): string {
  return ['52', '54', '00', ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

async function waitFor<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n--- forge log tail:\n${forge?.output().slice(-3000) ?? ''}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function cli(args: string[]): Promise<string> {
  const r = await forge!.cli(args);
  assert.equal(r.code, 0, `forge ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function discovered(): Promise<DiscoveredRec[]> {
  return (await forge!.api('GET', '/api/v1/discovered')).body as DiscoveredRec[];
}

async function events(system: string): Promise<Ev[]> {
  const r = await forge!.api('GET', `/api/v1/systems/${system}/events`);
  assert.equal(r.status, 200);
  return [...(r.body as Ev[])].sort((a, b) => a.time.localeCompare(b.time) || a.id - b.id);
}

/** Each wanted `source:type` (or `type`) appears, in this order, after the event `from` (index). */
function assertInOrder(evs: Ev[], want: string[], from = -1): void {
  const seq = evs.map((e) => `${e.source}:${e.type}`).join(' ');
  let at = from;
  for (const w of want) {
    const i = evs.findIndex((e, idx) => idx > at && (`${e.source}:${e.type}` === w || e.type === w));
    assert.ok(i > at, `event ${w} missing or out of order in: ${seq}`);
    at = i;
  }
}

before(async () => {
  const missing = [...COMMANDS.filter((c) => !hasCommand(c)).map((c) => `command ${c}`), ...FILES.filter((f) => !existsSync(f)).map((f) => `file ${f}`)];
  if (!isRoot()) missing.push('root');
  if (missing.length > 0) {
    skipped = `needs ${missing.join(', ')}`;
    return;
  }
  dir = mkdtempSync(join(tmpdir(), 'fglife-e2e-'));
  const kernel = guestKernel();
  lan = await createLan('fglife');
  // README's discovery setup: managed DHCP, unknown MACs discover. The image's kernel comes from the
  // linux-image package the guest kernels are (already extracted in the test cache: not downloaded twice).
  forge = await startForgeIn(lan, join(dir, 'data'), [
    '--dhcp-mode', 'managed',
    '--dhcp-subnet', '10.98.0.0/24',
    '--dhcp-range', '10.98.0.100,10.98.0.150',
    '--dhcp-router', '10.98.0.1',
    '--dhcp-probe-seconds', '0',
    '--tftp-port', '69',
    '--dhcp-unknown', 'discover',
    '--discovery-kernel-dir', dirname(dirname(kernel.vmlinuz)),
  ], 8080, 180_000);
  const mk = async (method: string, path: string, body: unknown): Promise<void> => {
    const r = await forge!.api(method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  };
  // no_timer_check: the IO-APIC timer check can panic a TCG guest on a loaded host (seen here at load 17).
  await mk('POST', '/api/v1/distros', { name: 'guest', kernel: kernel.vmlinuz, initrd: installerInitramfs(), arch: 'x86_64', breed: 'generic', kernel_options: { console: 'ttyS0', no_timer_check: null } });
  await mk('POST', '/api/v1/profiles', { name: 'guest', distro: 'guest' });
  await mk('POST', '/api/v1/profiles', { name: 'guest-kexec', parent: 'guest', autoinstall_meta: { discovery_kexec: 'true' } });
});

after(async () => {
  for (const vm of vms) await vm.kill().catch(() => undefined);
  await forge?.stop().catch(() => undefined);
  await lan?.destroy();
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function ready(t: TestContext): boolean {
  if (skipped !== undefined) {
    need(t, { root: true, commands: COMMANDS, files: FILES });
    if (!inCI()) t.skip(skipped);
    return false;
  }
  assert.ok(lan !== undefined && forge !== undefined, 'lab did not start (see before hook)');
  return true;
}

describe('machine lifecycle on real boots', () => {
  test('unknown MACs PXE-boot the discovery image; a rule enlists one, which kexecs into its installer; the other stays discovered until provisioned, then reboots into its installer', { timeout: 2 * BOOT_MS }, async (t) => {
    if (!ready(t)) return;
    await cli(['rule', 'add', '--name', 'web', '--priority', '10', '--match', 'ram_mib>=900 && disks.count>=2 && nics.up>=1 && product~"Standard PC*"',
      '--profile', 'guest-kexec', '--hostname', 'web-{serial}']);
    const vdisk = join(dir, 'vd.img');
    const sdisk = join(dir, 'sd.img');
    writeFileSync(vdisk, '');
    truncateSync(vdisk, 2 * 1024 ** 3);
    writeFileSync(sdisk, '');
    truncateSync(sdisk, 1024 ** 3);
    const bigMac = mac();
    const smallMac = mac();
    const big = startQemu({
      host: lan!, tap: await lan!.addTap(), mac: bigMac, memoryMiB: 1024, disk: vdisk,
      extraArgs: [
        '-smbios', 'type=1,manufacturer=QEMU,serial=WEB0042',
        // An IDE disk that says it is an SSD (rotation_rate=1: ATA IDENTIFY word 217), with a model name.
        '-drive', `if=none,id=d1,format=raw,file=${sdisk}`, '-device', 'ide-hd,drive=d1,bus=ide.0,model=FORGE-SSD,rotation_rate=1',
      ],
    });
    vms.push(big);
    const small = startQemu({ host: lan!, tap: await lan!.addTap(), mac: smallMac, memoryMiB: 512, noReboot: false, extraArgs: ['-smbios', 'type=1,manufacturer=QEMU,serial=SMALL01'] });
    vms.push(small);

    // The big one: enlisted by the rule, told kexec, straight into the installer kernel (no reboot: -no-reboot would end qemu).
    const serial = await big.waitForSerial(/forge-guest: (INSTALL SCRIPT \w+|AUTOINSTALL FAILED|NETWORK FAILED)/, BOOT_MS).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- forge log tail:\n${forge!.output().slice(-3000)}`);
    });
    assert.match(serial, /forge-discovery: network up on \S+ \(/);
    assert.match(serial, /forge-discovery: forge says kexec/);
    assert.match(serial, /forge-discovery: kexec: starting the installer kernel/);
    assert.doesNotMatch(serial, /rebooting/);
    const afterKexec = serial.slice(serial.indexOf('kexec: starting the installer kernel'));
    assert.match(afterKexec, /forge-guest: init started, kernel /, 'the installer kernel booted after the kexec');
    assert.match(afterKexec, /forge-guest: AUTOINSTALL OK \d+ bytes/);
    assert.match(afterKexec, /forge-guest: INSTALL SCRIPT OK/);
    const sys = (await forge!.api('GET', '/api/v1/systems/web-web0042')).body as { profile: string; interfaces: Record<string, { mac_address: string }> };
    assert.equal(sys.profile, 'guest-kexec');
    assert.equal(sys.interfaces['eth0']?.mac_address, bigMac);
    // Its timeline: enlisted by discovery, the installer's kernel and initrd fetched (by the image, for the kexec), install start and done.
    assertInOrder(await events('web-web0042'), ['discovery:enlisted', 'kernel_fetched', 'initrd_fetched', 'http:autoinstall_served', 'install_start', 'install_done']);
    const d1 = (await discovered()).find((x) => x.facts['serial'] === 'WEB0042');
    assert.ok(d1 !== undefined);
    assert.equal(d1.status, 'provisioned');
    assert.equal(d1.system, 'web-web0042');
    // Disks from both controllers: the virtio one (rotational, as virtio-blk reports) and the IDE SSD with its model.
    assert.deepEqual(
      [...d1.inventory.disks].sort((a, b) => a.name.localeCompare(b.name)),
      [
        { name: 'sda', size_gib: 1, model: 'FORGE-SSD', rotational: false },
        { name: 'vda', size_gib: 2, model: '', rotational: true },
      ],
    );
    assert.equal(d1.facts['disks.count'], 2);
    assert.equal(d1.facts['disks.total_gib'], 3);

    // The small one: reported, no rule fires, keeps polling.
    const d2 = await waitFor('SMALL01 to report', BOOT_MS, async () => (await discovered()).find((x) => x.facts['serial'] === 'SMALL01'));
    assert.equal(d2.status, 'discovered');
    assert.equal(d2.facts['vendor'], 'QEMU');
    assert.match(String(d2.facts['product']), /^Standard PC/);
    assert.equal(d2.facts['mac'], smallMac);
    assert.equal(d2.facts['firmware'], 'bios');
    assert.equal(d2.facts['disks.count'], 0);
    assert.deepEqual(d2.inventory.interfaces.map((i) => [i.mac, i.link]), [[smallMac, true]]);
    const list = await cli(['discovered', 'list']);
    assert.match(list, new RegExp(`${d2.name}\\s+${smallMac}\\s+discovered\\s+QEMU\\s+Standard PC.*SMALL01`));
    assert.match(list, new RegExp(`disc-${bigMac.replace(/:/g, '')}\\s+${bigMac}\\s+provisioned.*web-web0042`));
    assert.match(await cli(['rule', 'test', '--discovered', d2.name]), /no rule fires/);
    const polls = (): number => (small.serial().match(/forge-discovery: reported/g) ?? []).length;
    assert.equal(polls(), 1);
    assert.equal(small.proc.exitCode, null, 'the unmatched machine keeps waiting');

    // Provisioned by hand with a profile without discovery_kexec: told reboot; qemu resets, PXE again, now known: its installer.
    await cli(['discovered', 'provision', '--name', d2.name, '--profile', 'guest', '--hostname', 'small01']);
    const s2 = await small.waitForSerial(/forge-guest: (INSTALL SCRIPT \w+|AUTOINSTALL FAILED|NETWORK FAILED)/, BOOT_MS);
    assert.match(s2, /forge-discovery: forge says reboot: rebooting/);
    assert.doesNotMatch(s2, /forge says kexec/);
    assert.match(s2.slice(s2.indexOf('forge says reboot')), /forge-guest: INSTALL SCRIPT OK/);
    assertInOrder(await events('small01'), ['discovery:enlisted', 'dhcp_offer', 'boot_config_served', 'kernel_fetched', 'initrd_fetched', 'http:autoinstall_served', 'install_start', 'install_done']);
  });

  test('forge system reinstall: an installed libvirt domain power-cycles into PXE, its installer reaches install start, every step on its timeline', { timeout: 2 * BOOT_MS }, async (t) => {
    if (!ready(t)) return;
    // A bridge in this namespace for libvirt's tap, joined to the LAN's bridge by a veth pair: forge's DHCP
    // (inside the LAN namespace) is the only one the domain hears.
    const id = randomBytes(3).toString('hex');
    const br = `fglb${id}`;
    const va = `fgla${id}`;
    const vb = `fglc${id}`;
    const dom = `forge-life-${id}`;
    const ldir = labDir('forge-life');
    const log = `/var/log/libvirt/qemu/${dom}-console.log`;
    try {
      await must('ip', ['link', 'add', br, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
      await must('ip', ['link', 'set', br, 'up']);
      await must('ip', ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb]);
      await must('ip', ['link', 'set', vb, 'master', br, 'up']);
      await must('ip', ['link', 'set', va, 'netns', lan!.ns]);
      await lan!.must('ip', ['link', 'set', va, 'master', 'br0', 'up']);
      const m = mac();
      const disk = localBootDisk(ldir);
      execFileSync('chmod', ['0644', disk]);
      copyFileSync(disk, join(ldir, 'disk.img'));
      writeFileSync(join(ldir, 'dom.xml'), `<domain type='qemu'>
  <name>${dom}</name>
  <memory unit='MiB'>384</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/><boot dev='hd'/></os>
  <on_reboot>restart</on_reboot>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${ldir}/disk.img'/><target dev='vda' bus='virtio'/></disk>
    <interface type='bridge'><source bridge='${br}'/><mac address='${m}'/><model type='virtio'/></interface>
    <serial type='pty'><log file='${log}' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
`);
      virsh(['define', join(ldir, 'dom.xml')]);
      await cli(['system', 'add', '--name', 'vm-re', '--profile', 'guest', '--mac', m, '--netboot-enabled', 'false',
        '--power-type', 'libvirt', '--power-address', 'qemu:///system', '--power-id', dom]);
      const consoleText = (): string => (existsSync(log) ? readFileSync(log, 'latin1') : '');
      const waitConsole = (re: RegExp, what: string): Promise<string> =>
        waitFor(what, BOOT_MS, async () => {
          const s = consoleText();
          return re.test(s) ? s : undefined;
        }).catch((e: unknown) => {
          throw new Error(`${(e as Error).message}\n--- console tail:\n${consoleText().slice(-3000)}`);
        });

      // Installed: netboot off, forge's DHCP gives an address but no boot file; the firmware boots the disk.
      assert.equal(await cli(['system', 'poweron', '--name', 'vm-re']).then((s) => s.trim()), 'vm-re: power_on');
      await waitConsole(new RegExp(LOCAL_DISK_MARKER), 'the installed system (local disk) to boot');
      const before = (await events('vm-re')).length;

      assert.equal((await cli(['system', 'reinstall', '--name', 'vm-re'])).trim(), 'vm-re: netboot_enabled, power_reboot');
      const text = await waitConsole(/forge-guest: (INSTALL SCRIPT \w+|AUTOINSTALL FAILED|NETWORK FAILED)/, 'the installer after reinstall');
      assert.match(text, /forge-guest: AUTOINSTALL OK \d+ bytes/);
      assert.match(text, /forge-guest: INSTALL SCRIPT OK/);
      const evs = await events('vm-re');
      assertInOrder(evs, ['power:reinstall_requested', 'power:power_reboot', 'dhcp_offer', 'dhcp_ack', 'boot_config_served', 'kernel_fetched', 'initrd_fetched', 'http:autoinstall_served', 'install_start', 'install_done'], before - 1);
    } finally {
      removeDomain(dom);
      await must('ip', ['link', 'del', vb]).catch(() => undefined);
      await must('ip', ['link', 'del', br]).catch(() => undefined);
      rmSync(ldir, { recursive: true, force: true });
      rmSync(log, { force: true });
    }
  });
});
