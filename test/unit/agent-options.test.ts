/**
 * forge-agent's pure decisions: Koan's command line, the install plan from a
 * blended record, disk targets from --virt-path, the installer verdict of each
 * poll, and --virt-type auto.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ForgeError } from '../../server/errors.js';
import { helpText, parseOptions, type ParseEnv } from '../../agent/options.js';
import { diskTarget, judgeInstaller, parseBlended, planInstall, randomMac, STATE } from '../../agent/plan.js';
import { decideVirtType } from '../../agent/virttype.js';

const ENV: ParseEnv = { env: {}, isTTY: false, isRoot: true, home: '/root' };
const S = ['--server', 'http://forge:8080'];

function usageError(argv: string[], re: RegExp, penv: ParseEnv = ENV): void {
  assert.throws(() => parseOptions(argv, penv), (e: unknown) => e instanceof ForgeError && e.code === 'USAGE' && e.exit === 2 && re.test(e.message));
}

test('options: Koan long and short names mean the same', () => {
  const long = parseOptions([...S, '--system', 'vm9', '--virt', '--virt-name', 'x', '--virt-type', 'qemu', '--virt-path', '/srv/vms', '--virt-bridge', 'br0', '--nogfx', '--vm-poll', '--display'], ENV);
  const short = parseOptions(['-s', 'http://forge:8080', '-y', 'vm9', '-v', '-V', 'x', '-T', 'qemu', '-P', '/srv/vms', '-B', 'br0', '-n', '-w', '-D'], ENV);
  assert.deepEqual(short, long);
  assert.equal(long.graphics, 'none');
  assert.equal(long.poll, true);
  assert.equal(long.virtType, 'qemu');
  assert.deepEqual(long.target, { kind: 'system', name: 'vm9' });
});

test('options: defaults, env and --opt=value', () => {
  const o = parseOptions(['--system=vm9', '--virt'], { ...ENV, env: { FORGE_SERVER: 'http://f:1/', FORGE_TOKEN: 'tok' } });
  assert.equal(o.server, 'http://f:1');
  assert.equal(o.token, 'tok');
  assert.equal(o.connect, 'qemu:///system');
  assert.equal(o.graphics, 'vnc');
  assert.equal(o.diskBus, 'virtio');
  assert.equal(o.netModel, 'virtio');
  assert.equal(o.timeout, 3600);
  assert.equal(o.virtType, undefined, 'the record decides');
  assert.equal(o.autoBoot, undefined);
  assert.equal(o.cacheDir, '/var/cache/forge-agent');
  assert.equal(parseOptions([...S, '-y', 'a', '-v'], { ...ENV, isRoot: false, home: '/home/u' }).cacheDir, '/home/u/.cache/forge-agent');
  assert.equal(parseOptions([...S, '-y', 'a', '-v', '--token', 'x'], { ...ENV, env: { FORGE_TOKEN: 'y' } }).token, 'x');
});

test('options: --vm-poll is the default on a terminal, --no-wait turns it off', () => {
  assert.equal(parseOptions([...S, '-y', 'a', '-v'], { ...ENV, isTTY: true }).poll, true);
  assert.equal(parseOptions([...S, '-y', 'a', '-v'], { ...ENV, isTTY: false }).poll, false);
  assert.equal(parseOptions([...S, '-y', 'a', '-v', '--no-wait'], { ...ENV, isTTY: true }).poll, false);
  usageError([...S, '-y', 'a', '-v', '--no-wait', '--vm-poll'], /only one of --vm-poll and --no-wait/);
});

test('options: bad command lines are USAGE errors that name the problem', () => {
  usageError(['-y', 'a', '-v'], /no server/);
  usageError(['--server', 'forge:8080', '-y', 'a', '-v'], /http\(s\) URL/);
  usageError([...S], /nothing to do/);
  usageError([...S, '-y', 'a'], /add --virt/);
  usageError([...S, '-y', 'a', '-p', 'b', '-v'], /only one of --system and --profile/);
  usageError([...S, '-p', 'b', '-v'], /--profile needs --virt-name/);
  usageError([...S, '-y', 'a', '-v', '--virt-type', 'xen'], /kvm\|qemu\|auto/);
  usageError([...S, '-y', 'a', '-v', '--graphics', 'sdl'], /vnc\|spice\|none/);
  usageError([...S, '-y', 'a', '-v', '--graphics', 'vnc', '--nogfx'], /contradicts/);
  usageError([...S, '-y', 'a', '-v', '--qemu-disk-type', 'nvme'], /virtio\|scsi\|ide/);
  usageError([...S, '-y', 'a', '-v', '--qemu-net-type', 'rtl8139'], /virtio\|e1000/);
  usageError([...S, '-y', 'a', '-v', '--virt-file-size', '-3'], /positive number/);
  usageError([...S, '-y', 'a', '-v', '--timeout', '1.5'], /positive integer/);
  usageError([...S, '-y', 'a', '-v', '--virt-bridge', 'br0', '--virt-network', 'default'], /only one of --virt-bridge/);
  usageError([...S, '-y', 'a', '-v', '--virt-name', 'bad name'], /--virt-name/);
  usageError([...S, '-y', 'a', '-v', '--bogus'], /unknown option --bogus/);
  usageError([...S, '-y', 'a', '-v', '-x'], /unknown option -x/);
  usageError([...S, '-y'], /--system needs a value/);
  usageError([...S, '-y', 'a', '-v', 'stray'], /unexpected argument 'stray'/);
  usageError([...S, '-y', 'a', '--virt=yes'], /takes no value/);
  usageError([...S, '--list', 'images'], /systems\|profiles/);
  // --help needs nothing else
  assert.equal(parseOptions(['--help'], ENV).help, true);
  assert.match(helpText(), /--virt-path V\s+DIR \(qcow2 file\) \| VG \(LVM\) \| \/dev\/\.\.\. \(existing device\) \| pool:NAME/);
});

const BLENDED = {
  name: 'vm9',
  distro_name: 'deb12',
  breed: 'debian',
  kernel_url: 'http://forge/boot/distro/deb12/kernel',
  initrd_url: 'http://forge/boot/distro/deb12/initrd',
  kernel_cmdline: 'url=http://forge/autoinstall/system/vm9',
  interfaces: {
    eth10: { mac_address: '52:54:00:00:00:10' },
    eth2: { mac_address: '52:54:00:00:00:02' },
    bond0: { mac_address: '', interface_type: 'bond' },
    eth1: { mac_address: '' },
  },
  virt_type: 'kvm',
  virt_ram: '<<inherit>>',
  default_virt_ram: 2048,
  virt_cpus: 2,
  virt_file_size: 8,
  virt_path: '',
  virt_bridge: 'br-lab',
  virt_auto_boot: true,
  virt_pxe_boot: false,
};

test('plan: the record decides what the command line leaves open', () => {
  const rec = parseBlended(BLENDED);
  assert.deepEqual(rec.macs.map((m) => m.ifname), ['eth1', 'eth2', 'eth10'], 'natural order, bond masters skipped');
  const plan = planInstall(parseOptions([...S, '-y', 'vm9', '-v'], ENV), rec);
  assert.equal(plan.domain, 'vm9');
  assert.equal(plan.memoryMiB, 2048, 'inherit falls back to the settings default');
  assert.equal(plan.vcpus, 2);
  assert.equal(plan.diskGiB, 8);
  assert.equal(plan.virtType, 'auto', "the record's kvm (Cobbler's default) means: kvm when it works");
  assert.equal(plan.autoBoot, true);
  assert.deepEqual(plan.nics.map((n) => n.mac), ['random', '52:54:00:00:00:02', '52:54:00:00:00:10']);
  assert.deepEqual(plan.nics[0]?.source, { bridge: 'br-lab' });
  assert.deepEqual(plan.disk, { kind: 'dir', dir: '/var/lib/libvirt/images' });
  assert.equal(plan.installLog, '/var/log/libvirt/qemu/vm9-install.log');
});

test('plan: the command line wins over the record', () => {
  const rec = parseBlended(BLENDED);
  const plan = planInstall(parseOptions([...S, '-y', 'vm9', '-v', '-T', 'kvm', '-V', 'other', '--virt-network', 'lab', '--virt-file-size', '2', '-P', 'vg0', '--virt-pxe-boot'], ENV), rec);
  assert.equal(plan.domain, 'other');
  assert.equal(plan.virtType, 'kvm');
  assert.deepEqual(plan.nics[1]?.source, { network: 'lab' });
  assert.equal(plan.diskGiB, 2);
  assert.deepEqual(plan.disk, { kind: 'lvm', vg: 'vg0', lv: 'other-disk01' });
  assert.equal(plan.diskFormat, 'raw');
  assert.equal(plan.pxeBoot, true);
  const q = planInstall(parseOptions([...S, '-y', 'vm9', '-v'], ENV), parseBlended({ ...BLENDED, virt_type: 'qemu' }));
  assert.equal(q.virtType, 'qemu');
});

test('plan: a PXE install of a system whose netboot is off is warned about', () => {
  const off = planInstall(parseOptions([...S, '-y', 'vm9', '-v', '--virt-pxe-boot'], ENV), parseBlended({ ...BLENDED, netboot_enabled: false }));
  assert.match(off.warnings.join('\n'), /netboot is disabled for system vm9.*--netboot-enabled true/);
  assert.deepEqual(planInstall(parseOptions([...S, '-y', 'vm9', '-v'], ENV), parseBlended({ ...BLENDED, netboot_enabled: false })).warnings, [], 'kernel boot does not need netboot');
  assert.deepEqual(planInstall(parseOptions([...S, '-y', 'vm9', '-v', '--virt-pxe-boot'], ENV), parseBlended({ ...BLENDED, netboot_enabled: true })).warnings, []);
});

test('plan: a profile install gets a random MAC and the --virt-name', () => {
  const rec = parseBlended({ ...BLENDED, name: 'deb12-web', interfaces: {} });
  const plan = planInstall(parseOptions([...S, '-p', 'deb12-web', '-v', '-V', 'scratch1'], ENV), rec);
  assert.equal(plan.domain, 'scratch1');
  assert.equal(plan.targetKind, 'profile');
  assert.deepEqual(plan.nics.map((n) => n.mac), ['random']);
  assert.match(randomMac(() => 0xab), /^52:54:00:ab:ab:ab$/);
});

test('plan: a blended record without kernel or name is rejected at the boundary', () => {
  assert.throws(() => parseBlended([]), /not a JSON object/);
  assert.throws(() => parseBlended({ ...BLENDED, kernel_url: undefined }), (e: unknown) => e instanceof ForgeError && e.field === 'kernel_url');
  assert.throws(() => parseBlended({ ...BLENDED, name: 7 }), /'name'/);
});

test('disk targets: --virt-path syntax (Koan), plus pool:NAME', () => {
  assert.deepEqual(diskTarget('/srv/vms/', 'a'), { kind: 'dir', dir: '/srv/vms' });
  assert.deepEqual(diskTarget('/srv/vms/a.qcow2', 'a'), { kind: 'file', path: '/srv/vms/a.qcow2' });
  assert.deepEqual(diskTarget('vg0', 'a'), { kind: 'lvm', vg: 'vg0', lv: 'a-disk01' });
  assert.deepEqual(diskTarget('vg0:root', 'a'), { kind: 'lvm', vg: 'vg0', lv: 'root' });
  assert.deepEqual(diskTarget('/dev/vg0', 'a'), { kind: 'lvm', vg: 'vg0', lv: 'a-disk01' });
  assert.deepEqual(diskTarget('/dev/vg0/data', 'a'), { kind: 'device', path: '/dev/vg0/data' });
  assert.deepEqual(diskTarget('/dev/sdb', 'a'), { kind: 'device', path: '/dev/sdb' });
  assert.deepEqual(diskTarget('/dev/mapper/x', 'a'), { kind: 'device', path: '/dev/mapper/x' });
  assert.deepEqual(diskTarget('pool:default', 'a'), { kind: 'pool', pool: 'default', volume: 'a-disk01.qcow2' });
  assert.throws(() => diskTarget('pool:../x', 'a'), /bad pool name/);
  assert.throws(() => diskTarget('relative/dir', 'a'), /not a directory/);
});

test('installer verdicts: running waits, shutoff finishes, panic/crash/timeout fail', () => {
  assert.deepEqual(judgeInstaller(STATE.running, 1000, 60_000, 'booting'), { kind: 'wait' });
  assert.deepEqual(judgeInstaller(STATE.blocked, 1000, 60_000, ''), { kind: 'wait' });
  assert.deepEqual(judgeInstaller(STATE.shutoff, 1000, 60_000, 'reboot: Power down'), { kind: 'finished' });
  assert.deepEqual(judgeInstaller(undefined, 1000, 60_000, ''), { kind: 'finished' }, 'a transient-only domain is gone when done');
  const crashed = judgeInstaller(STATE.crashed, 1000, 60_000, '');
  assert.equal(crashed.kind === 'failed' && crashed.reason, 'crashed');
  const panic = judgeInstaller(STATE.running, 1000, 60_000, '[ 1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n');
  assert.equal(panic.kind === 'failed' && panic.reason, 'panic', 'a hung panicked kernel fails at once, not at the timeout');
  assert.match(panic.kind === 'failed' ? panic.message : '', /Attempted to kill init/);
  const panicReboot = judgeInstaller(STATE.shutoff, 1000, 60_000, 'Kernel panic - not syncing: VFS: Unable to mount root fs\nRebooting in 1 seconds..');
  assert.equal(panicReboot.kind === 'failed' && panicReboot.reason, 'panic', 'panic=N + on_reboot=destroy looks like a finish but is not');
  const to = judgeInstaller(STATE.running, 60_000, 60_000, '');
  assert.equal(to.kind === 'failed' && to.reason, 'timeout');
});

test('--virt-type auto: kvm only when libvirt offers it AND the probe guest boots', () => {
  assert.equal(decideVirtType('auto', { libvirtOffersKvm: true, probe: 'ok', detail: '' }).type, 'kvm');
  const broken = decideVirtType('auto', { libvirtOffersKvm: true, probe: 'failed', detail: 'no kernel banner within 8000 ms' });
  assert.equal(broken.type, 'qemu');
  assert.match(broken.warning ?? '', /WARNING: using plain QEMU.*SLOW/);
  assert.match(broken.warning ?? '', /probe guest did not run \(no kernel banner/);
  const none = decideVirtType('auto', { libvirtOffersKvm: false, probe: 'skipped', detail: 'no /dev/kvm' });
  assert.equal(none.type, 'qemu');
  assert.match(none.warning ?? '', /libvirt does not offer kvm \(no \/dev\/kvm\)/);
  assert.deepEqual(decideVirtType('qemu', { libvirtOffersKvm: true, probe: 'ok', detail: '' }).warning, undefined, 'an explicit qemu is not warned about');
  const forced = decideVirtType('kvm', { libvirtOffersKvm: false, probe: 'skipped', detail: 'x' });
  assert.equal(forced.type, 'kvm', 'an explicit kvm is honoured');
  assert.match(forced.warning ?? '', /will fail to start/);
});

test('plan: firmware, machine, several disks and a network per NIC; the record\'s comma lists are the defaults', () => {
  const rec = parseBlended({ ...BLENDED, virt_path: '/images,/data', virt_file_size: '4,30', virt_bridge: 'br-a,br-b' });
  const plan = planInstall(parseOptions([...S, '-y', 'vm9', '-v'], ENV), rec);
  assert.equal(plan.firmware, 'bios');
  assert.equal(plan.machine, 'pc');
  assert.deepEqual(plan.disk, { kind: 'dir', dir: '/images' });
  assert.equal(plan.diskGiB, 4);
  assert.deepEqual(plan.extraDisks, [{ target: { kind: 'dir', dir: '/data' }, gib: 30, format: 'qcow2' }]);
  assert.deepEqual(plan.nics.map((n) => n.source), [{ bridge: 'br-a' }, { bridge: 'br-b' }, { bridge: 'br-b' }], 'NICs beyond the list take its last entry');
  const u = planInstall(parseOptions([...S, '-y', 'vm9', '-v', '--firmware', 'uefi', '--virt-path', '/a,vg0,pool:p', '--virt-file-size', '9', '--virt-network', 'lab'], ENV), rec);
  assert.equal(u.machine, 'q35', 'UEFI guests default to q35');
  assert.equal(u.secureBoot, false);
  assert.deepEqual(u.extraDisks.map((d) => [d.target, d.gib, d.format]), [
    [{ kind: 'lvm', vg: 'vg0', lv: 'vm9-disk02' }, 9, 'raw'],
    [{ kind: 'pool', pool: 'p', volume: 'vm9-disk03.qcow2' }, 9, 'qcow2'],
  ]);
  assert.ok(u.nics.every((n) => 'network' in n.source && n.source.network === 'lab'));
  const sb = parseOptions([...S, '-y', 'vm9', '-v', '--secure-boot'], ENV);
  assert.equal(sb.firmware, 'uefi', '--secure-boot implies UEFI');
  assert.throws(() => parseOptions([...S, '-y', 'vm9', '-v', '--secure-boot', '--machine', 'pc'], ENV), /--secure-boot needs --machine q35/);
  assert.throws(() => parseOptions([...S, '-y', 'vm9', '-v', '--secure-boot', '--firmware', 'bios'], ENV), /--secure-boot needs --firmware uefi/);
  assert.throws(() => parseOptions([...S, '-y', 'vm9', '-v', '--firmware', 'efi'], ENV), /--firmware must be one of uefi\|bios/);
  assert.throws(() => parseOptions([...S, '-y', 'vm9', '-v', '--virt-file-size', '4,x'], ENV), /--virt-file-size must be a positive number, not 'x'/);
  assert.throws(() => planInstall(parseOptions([...S, '-y', 'vm9', '-v', '--virt-path', ','], ENV), rec), /--virt-path names no disk/);
});
