/**
 * forge-agent --build debootstrap end to end: real mmdebstrap from Debian's
 * archive (packages cached in /var/cache/forge-test/debootstrap/apt between
 * runs; the root tree built once per run and shared by every build here),
 * real loop devices, sgdisk, mkfs, GRUB, a real forge serve and real VMs on
 * an isolated libvirt network under qemu TCG (the lab: test/lib/agent-lab.ts):
 *  - BIOS build to a raw file (SeaBIOS): serial console reaches the login
 *    prompt; /etc/issue shows the overlay's substituted tokens and the
 *    markers of both host hooks and install-custom.sh, in build order; the
 *    guest's own first-boot report lands on forge's timeline after
 *    build_started..bootloader_done, with root's authorized_keys fingerprint;
 *    `mount` refuses while it runs, then shows the files from the disk;
 *    reinstall-grub after the boot sector was wiped, then it boots again
 *  - UEFI build to qcow2 on OVMF/q35 with a second (data) disk, from the same
 *    cached root tree, its static address in a subnet object: `mount` of the
 *    qcow2 (qemu-storage-daemon FUSE export), GRUB's EFI image deleted, then
 *    reinstall-grub on the qcow2; login prompt, first boot, the guest sees
 *    both disks and reports the network it came up with: the address with
 *    the subnet's /25, its MTU 1400, gateway, DNS and search list
 *  - refusals change nothing: an existing domain, a disk with a filesystem
 *  - failures release loop devices and mounts and define no domain: a
 *    failing hook (its output in the error), a suite the mirror lacks, SIGINT
 *    while mmdebstrap installs into the mounted disk (exit 130,
 *    BUILD_INTERRUPTED)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { guestKernel } from '../lib/guest.js';
import { agentLab, domainState, virsh, waitFor, type LabCore, type LabEvent } from '../lib/agent-lab.js';
import { BUILD_DPKG_CFG } from '../../agent/buildplan.js';

/** What this file's lab holds beside the shared lab core. */
interface BuildLab {
  overlay: string;
  hooks: string;
  badHooks: string;
  marker: string;
  keyFingerprint: string;
  secondKey: string;
  secondFingerprint: string;
}
type Lab = LabCore & BuildLab;

/** Debian's packages, kept between runs so CI is not bound by downloads. */
const APT_CACHE = process.env['FORGE_TEST_APT_CACHE'] ?? '/var/cache/forge-test/debootstrap/apt';

const L = agentLab<BuildLab>({
  prefix: 'fgb',
  reqs: { root: true, commands: ['virsh', 'qemu-img', 'qemu-system-x86_64', 'mmdebstrap', 'losetup', 'sgdisk', 'mkfs.ext4', 'mkfs.vfat', 'mkswap', 'ssh-keygen', 'dnsmasq', 'qemu-storage-daemon', 'mdel'] },
  skip: 'needs root, libvirt/qemu, mmdebstrap and the disk tools',
  async setup(core) {
    const { tag, dir, net } = core;
    mkdirSync(APT_CACHE, { recursive: true });
    const marker = `m-${randomBytes(4).toString('hex')}`;
    // The overlay: tokens in /etc/issue (agetty prints it above the login prompt), install-custom.sh.
    const overlay = join(dir, 'overlay');
    mkdirSync(join(overlay, 'etc'), { recursive: true });
    mkdirSync(join(overlay, 'root/bin'), { recursive: true });
    writeFileSync(join(overlay, 'etc/issue'), 'forge-overlay host=%HOSTNAME% distr=%DISTR% system=%SYSTEM% marker=%marker%\n');
    writeFileSync(join(overlay, 'root/bin/install-custom.sh'), '#!/bin/sh\nset -e\nrc=0; /usr/sbin/policy-rc.d || rc=$?\necho "forge-install-custom policy=$rc distr=$DISTR" >> /etc/issue\necho custom > /etc/forge-custom-marker\n');
    const hooks = join(dir, 'hooks');
    mkdirSync(hooks);
    for (const h of ['postunpack', 'postconfig']) {
      writeFileSync(join(hooks, h), `#!/bin/sh\nset -e\necho "forge-hook-${h} host=$1 suite=$3" >> "$2/etc/issue"\necho ${h} > "$2/etc/forge-hook-${h}"\n`);
      chmodSync(join(hooks, h), 0o755);
    }
    const badHooks = join(dir, 'bad-hooks');
    mkdirSync(badHooks);
    writeFileSync(join(badHooks, 'postunpack'), '#!/bin/sh\necho "hook says no to $1"\nexit 3\n');
    chmodSync(join(badHooks, 'postunpack'), 0o755);
    // root's key: the guest's first-boot report must carry its fingerprint.
    const key = join(dir, 'id_ed25519');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forge-build-test', '-f', key]);
    const pub = readFileSync(`${key}.pub`, 'utf8').trim();
    const keyFingerprint = (spawnSync('ssh-keygen', ['-lf', `${key}.pub`], { encoding: 'utf8' }).stdout.split(' ')[1] ?? '').trim();
    const key2 = join(dir, 'id2_ed25519');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forge-build-put', '-f', key2]);
    const secondFingerprint = (spawnSync('ssh-keygen', ['-lf', `${key2}.pub`], { encoding: 'utf8' }).stdout.split(' ')[1] ?? '').trim();
    const initrd = join(dir, 'unused-initrd');
    writeFileSync(initrd, 'not used by --build');
    await L.create('distros', { name: `${tag}-deb12`, kernel: guestKernel().vmlinuz, initrd, breed: 'debian', os_version: 'bookworm', arch: 'x86_64' });
    // build_method on the profile: its systems build without --build (one of them is run that way).
    await L.create('profiles', { name: `${tag}-build`, distro: `${tag}-deb12`, autoinstall_meta: { build_method: 'debootstrap', marker, ssh_authorized_keys: pub } });
    // The UEFI guest's network comes from a subnet object (netmask /25, gateway, DNS, search, MTU), as the installer path's does.
    const prefix = net.hostIp.replace(/\.1$/, '');
    await L.create('subnets', { name: `${tag}-lab`, cidr: `${prefix}.0/25`, router: net.hostIp, dns: [net.hostIp], dns_search: ['forge-lab.example'], mtu: 1400 });
    for (const sys of ['bios', 'uefi', 'fs', 'hook', 'nosuite', 'int']) {
      const name = `${tag}-${sys}`;
      core.domains.push(name);
      const mac = ['52', '54', '00', ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
      await L.create('systems', {
        name,
        profile: `${tag}-build`,
        hostname: `${sys}host`,
        virt_ram: 768,
        virt_cpus: 1,
        virt_file_size: 3,
        ...(sys === 'bios' || sys === 'fs' ? { virt_disk_driver: 'raw' } : {}),
        interfaces: { eth0: sys === 'uefi' ? { mac_address: mac, static: true, ip_address: `${prefix}.50` } : { mac_address: mac } },
      });
    }
    return { overlay, hooks, badHooks, marker, keyFingerprint, secondKey: `${key2}.pub`, secondFingerprint };
  },
});

const runAgent = (args: string[], timeoutMs: number, onStderr?: (s: string, kill: (sig: NodeJS.Signals) => void) => void): ReturnType<typeof L.agent> =>
  L.agent(args, timeoutMs, onStderr === undefined ? {} : { onStderr });
const events = (system: string): Promise<LabEvent[]> => L.events(system);
const ready = (t: import('node:test').TestContext): Lab | undefined => L.ready(t);

/** The agent's cache (root tree tarballs): per run, so every run bootstraps once for real; FORGE_TEST_BUILD_CACHE keeps it between local runs. */
const CACHE = (l: Lab): string => process.env['FORGE_TEST_BUILD_CACHE'] ?? join(l.dir, 'cache');

function buildArgs(system: string, extra: string[] = []): string[] {
  const l = L.get();
  return [
    '--system', system, '--virt', '--build', 'debootstrap', '--virt-type', 'qemu', '--nogfx',
    '--virt-network', l.net.name, '--virt-path', join(l.dir, 'disks'), '--cache-dir', CACHE(l), '--apt-cache', APT_CACHE,
    '--overlay', l.overlay, '--hooks', l.hooks, ...extra,
  ];
}

/** Nothing of a build is left on the host: no loop device on the lab's files, no mount of its tree. */
function assertReleased(system: string): void {
  const loops = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout;
  assert.ok(!loops.includes(L.get().dir), `loop devices left: ${loops}`);
  const mounts = readFileSync('/proc/mounts', 'utf8');
  assert.ok(!mounts.includes(`forge-build-${system}`), `mounts left: ${mounts.split('\n').filter((m) => m.includes('forge-build')).join('\n')}`);
  assert.equal(domainState(system), '', `no domain ${system} may be defined`);
  assert.ok(!existsSync(join(L.get().dir, 'disks', `${system}-disk01.qcow2`)), 'no disk left');
  assert.ok(!existsSync(join(L.get().dir, 'disks', `${system}-disk01.qcow2.build-raw`)), 'no build image left');
}

function consoleLog(system: string): string {
  try {
    return readFileSync(`/var/log/libvirt/qemu/${system}-console.log`, 'utf8');
  } catch {
    return '';
  }
}

const STAGES = ['build_started', 'disk_ready', 'bootstrap_done', 'hooks_done', 'bootloader_done', 'disk_boot_started', 'first_boot'];

/**
 * What would change if a build touched a (large, sparse) disk file: its inode (a replaced file), size, mtime and ctime
 * to the nanosecond (any write or truncate), and the digest of its first 64 MiB (partition table, boot code, the
 * first filesystem's superblock) and its last MiB (the backup GPT). Reading all 3 GiB twice took half a minute idle.
 */
function sha(path: string): string {
  const st = statSync(path, { bigint: true });
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    const size = Number(st.size);
    const at = (pos: number): void => void h.update(buf.subarray(0, readSync(fd, buf, 0, buf.length, pos)));
    for (let pos = 0; pos < Math.min(size, 64 << 20); pos += 1 << 20) at(pos);
    at(Math.max(0, size - (1 << 20)));
  } finally {
    closeSync(fd);
  }
  return `${h.digest('hex')} ino=${st.ino} size=${st.size} mtime=${st.mtimeNs} ctime=${st.ctimeNs}`;
}

async function loginAndFirstBoot(l: Lab, sys: string): Promise<LabEvent> {
  const fb = await waitFor(`first_boot of ${sys}`, 900_000, async () => (await events(sys)).find((e) => e.type === 'first_boot'));
  await waitFor(`login prompt of ${sys}`, 300_000, () => (/^\S+ login: /m.test(consoleLog(sys)) ? true : undefined));
  const types = (await events(sys)).map((e) => e.type).filter((t) => STAGES.includes(t));
  assert.deepEqual(types, STAGES, 'build stages then the guest\'s first boot, in order');
  assert.equal(fb.detail['authorized_keys'], l.keyFingerprint, "the guest reports root's authorized_keys fingerprint");
  return fb;
}

/** Where a long test spends its time, in its own output (CI logs): seconds since the test began at each step. */
function stopwatch(t: import('node:test').TestContext): (step: string) => void {
  const t0 = Date.now();
  return (step) => t.diagnostic(`${step} at ${Math.round((Date.now() - t0) / 1000)} s`);
}

test('--build debootstrap, BIOS, raw: login prompt, overlay tokens, hooks, install-custom.sh, first boot; mount; reinstall-grub', { timeout: 2_400_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-bios`;
  const lap = stopwatch(t);
  const run = await runAgent(buildArgs(sys), 1_500_000);
  lap('built');
  assert.equal(run.code, 0, `build failed:\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /built in [\d.]+ s \(Debian bookworm, bios\)/);
  for (const s of ['disk_ready', 'bootstrap_done', 'hooks_done', 'bootloader_done']) assert.match(run.stderr, new RegExp(`\\] ${s}`), `progress line for ${s}`);
  const disk = join(l.dir, 'disks', `${sys}-disk01.img`);
  assert.match(spawnSync('qemu-img', ['info', disk], { encoding: 'utf8' }).stdout, /file format: raw/);
  assertReleasedLoops(l);

  const fb = await loginAndFirstBoot(l, sys);
  lap('login prompt and first boot');
  assert.equal(fb.detail['hostname'], 'bioshost');
  const log = consoleLog(sys);
  // The issue file, in build order: overlay (tokens substituted), postunpack hook, install-custom.sh (services blocked), postconfig hook.
  assert.match(log, new RegExp(`forge-overlay host=bioshost distr=bookworm system=${sys} marker=${l.marker}\\s+forge-hook-postunpack host=bioshost suite=bookworm\\s+forge-install-custom policy=101 distr=bookworm\\s+forge-hook-postconfig host=bioshost suite=bookworm`));
  assert.match(log, /bioshost login:/);
  assert.doesNotMatch(log, /Linux version /, "the kernel's notices stay off the serial console (quiet)");

  // The guest marks its report done (touch + sync) after forge answered it, and says so on its console: wait for
  // that line, or the live snapshot below may capture (and its restore then lose) the guest before the mark is written.
  await waitFor(`${sys}'s first-boot mark on disk`, 300_000, () => (/forge-firstboot: reported to /.test(consoleLog(sys)) ? true : undefined));
  // mount refuses while the VM runs.
  const busy = await runAgent(['mount', '--system', sys], 60_000);
  assert.equal(busy.code, 5, busy.stderr);
  assert.match(busy.stderr, /VM_RUNNING/);
  // issue 16: a live snapshot of the running guest (memory + disk), the guest keeps running; restored, it resumes.
  const snap = await runAgent(['snapshot', 'create', sys, '--live', '--comment', 'after first boot'], 600_000);
  assert.equal(snap.code, 0, snap.stderr);
  assert.equal(domainState(sys), 'running', 'a live snapshot leaves the guest running');
  const list = await runAgent(['snapshot', 'list', sys], 60_000);
  assert.match(list.stdout, /S0 \(LAST\) \[live\].*after first boot/);
  virsh(['destroy', sys]);
  const restore = await runAgent(['snapshot', 'restore', sys, '--force'], 600_000);
  lap('live snapshot created and restored');
  assert.equal(restore.code, 0, restore.stderr);
  assert.equal(domainState(sys), 'running', 'restoring a live snapshot resumes the guest');
  virsh(['destroy', sys]);

  // issue 16: the shipped post-install job runs a script in a chroot of the built system (rescue VM).
  const script = join(l.dir, 'post-install.sh');
  writeFileSync(script, 'echo "post-install on $(cat /etc/hostname) $(dpkg-query -W -f=\'${Version}\' systemd)" > /etc/forge-post-install\n');
  const job = await runAgent(['job', 'run', sys, 'post-install', '--files', script, '--cache-dir', join(l.dir, 'cache'), '--timeout', '600'], 900_000);
  lap('post-install job (rescue VM)');
  assert.equal(job.code, 0, `${job.stdout}\n${job.stderr}`);
  assert.match(job.stdout, /post-install: running post-install.sh in a chroot of \/dev\/vda3/);

  const m = await runAgent(['mount', '--system', sys], 120_000);
  assert.equal(m.code, 0, m.stderr);
  const at = `/mnt/${sys}`;
  try {
    assert.equal(readFileSync(join(at, 'etc/forge-custom-marker'), 'utf8').trim(), 'custom');
    assert.match(readFileSync(join(at, 'etc/forge-post-install'), 'utf8'), /^post-install on bioshost \d+/);
    assert.equal(readFileSync(join(at, 'etc/forge-hook-postunpack'), 'utf8').trim(), 'postunpack');
    assert.equal(readFileSync(join(at, 'etc/forge-hook-postconfig'), 'utf8').trim(), 'postconfig');
    assert.ok(!existsSync(join(at, 'usr/sbin/policy-rc.d')), 'policy-rc.d removed after the chroot steps');
    assert.ok(existsSync(join(at, 'etc/dpkg/dpkg.cfg.d')) && !existsSync(join(at, BUILD_DPKG_CFG)), "the build's force-unsafe-io is not left in the guest's dpkg configuration");
    assert.match(readFileSync(join(at, 'etc/fstab'), 'utf8'), /^UUID=[0-9a-f-]+ \/ ext4/m);
    assert.match(readFileSync(join(at, 'boot/grub/grub.cfg'), 'utf8'), /console=ttyS0,115200n8 quiet/, "the serial console and Debian's quiet default on the kernel line");
    assert.ok(existsSync(join(at, 'var/lib/forge/firstboot.done')), 'the first-boot report ran once and marked itself done');
    const tune = spawnSync('sh', ['-c', `tune2fs -l $(findmnt -n -o SOURCE ${at})`], { encoding: 'utf8' }).stdout;
    assert.match(tune, /Maximum mount count:\s+-1/);
    assert.match(tune, /Check interval:\s+0/);
  } finally {
    const u = await runAgent(['umount', '--system', sys], 60_000);
    assert.equal(u.code, 0, u.stderr);
  }
  assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(at), 'umount released everything');
  assertReleasedLoops(l);

  // Wipe GRUB's boot code (MBR code area and the BIOS boot partition), then reinstall it. On the domain's disk as it is
  // now: after the snapshot restore above that is a qcow2 overlay of the raw file (reads of untouched clusters fall
  // through to the raw file), so both go through qemu-io on the current disk.
  const xml = virsh(['dumpxml', '--inactive', sys]);
  const cur = /<disk type='file' device='disk'>\s*<driver name='qemu' type='(\w+)'[^>]*\/>\s*<source file='([^']+)'/.exec(xml);
  assert.ok(cur !== null, xml);
  const [fmt, current] = [cur[1] as string, cur[2] as string];
  const io = (args: string[]): string => {
    const r = spawnSync('qemu-io', ['-f', fmt, ...args, current], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  io(['-c', 'write -z 0 440', '-c', 'write -z 1M 4M']);
  const mbr = (): number[] => [...io(['-r', '-c', 'read -v 0 440']).matchAll(/^[0-9a-f]{8}:((?:\s+[0-9a-f]{2})+)/gm)].flatMap((m) => (m[1] as string).trim().split(/\s+/).map((h) => parseInt(h, 16)));
  assert.equal(mbr().length, 440);
  assert.ok(mbr().every((x) => x === 0));
  const rg = await runAgent(['reinstall-grub', '--system', sys], 300_000);
  lap('reinstall-grub');
  assert.equal(rg.code, 0, rg.stderr);
  assert.ok(!mbr().every((x) => x === 0), `boot code written again:\n${rg.stdout}\n${rg.stderr}`);
  assertReleasedLoops(l);
  rmSync(`/var/log/libvirt/qemu/${sys}-console.log`, { force: true });
  virsh(['start', sys]);
  await waitFor('login prompt after reinstall-grub', 600_000, () => (/^bioshost login: /m.test(consoleLog(sys)) ? true : undefined));
  lap('login prompt after reinstall-grub');
  virsh(['destroy', sys]);

  // An existing domain is refused and nothing changes.
  const before = sha(disk);
  const again = await runAgent(buildArgs(sys), 120_000);
  assert.equal(again.code, 5, again.stderr);
  assert.match(again.stderr, /VIRT_EXISTS: domain .* already defined/);
  assert.equal(sha(disk), before, 'the disk is untouched');
  assertReleasedLoops(l);
});

function assertReleasedLoops(l: Lab): void {
  const loops = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout;
  assert.ok(!loops.includes(l.dir), `loop devices left: ${loops}`);
}

test('--build (from the profile\'s build_method), UEFI on OVMF/q35, qcow2, a data disk: login prompt and first boot', { timeout: 1_800_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-uefi`;
  const lap = stopwatch(t);
  // No --build: the profile's build_method says debootstrap.
  const args = buildArgs(sys, ['--firmware', 'uefi', '--virt-path', `${join(l.dir, 'disks')},${join(l.dir, 'disks')}`, '--virt-file-size', '3,1', '--json']).filter((a, i, all) => !(a === '--build' || all[i - 1] === '--build'));
  const run = await runAgent([...args, '--no-start'], 1_200_000);
  lap('built from the cached root tree');
  assert.equal(run.code, 0, `build failed:\n${run.stdout}\n${run.stderr}`);
  const jsonEvents = run.stdout.trim().split('\n').map((x) => JSON.parse(x) as { event: string; cached?: boolean });
  assert.deepEqual(jsonEvents.map((e) => e.event), STAGES.slice(0, -2), '--json: one line per stage (--no-start: not booted)');
  assert.equal(domainState(sys), 'shut off');
  assert.equal(jsonEvents.find((e) => e.event === 'bootstrap_done')?.cached, true, 'the root tree of the first build is shared');
  const disk = join(l.dir, 'disks', `${sys}-disk01.qcow2`);
  assert.match(spawnSync('qemu-img', ['info', disk], { encoding: 'utf8' }).stdout, /file format: qcow2/);
  const xml = virsh(['dumpxml', '--inactive', sys]);
  assert.match(xml, /<os firmware='efi'>/);
  assert.match(xml, /machine='pc-q35/);
  assert.match(xml, /-disk02\.qcow2/);
  assertReleasedLoops(l);
  // mount on a qcow2 disk (a qemu-storage-daemon FUSE export on a loop device): the built files, the network from the subnet.
  const m = await runAgent(['mount', '--system', sys], 120_000);
  assert.equal(m.code, 0, m.stderr);
  const at = `/mnt/${sys}`;
  let esp: string | undefined;
  try {
    assert.equal(readFileSync(join(at, 'etc/forge-custom-marker'), 'utf8').trim(), 'custom');
    assert.match(readFileSync(join(at, 'etc/systemd/network/10-forge-0.network'), 'utf8'), /\[Link\]\nMTUBytes=1400\n/);
    // The host has no vfat: the ESP stays unmounted, named in the warning; wipe GRUB's EFI image on it with mtools.
    esp = /\/boot\/efi \(vfat (\/dev\/loop\d+p\d+)\) not mounted/.exec(m.stderr)?.[1];
    if (esp !== undefined) {
      const del = spawnSync('mdel', ['-i', esp, '::/EFI/BOOT/BOOTX64.EFI'], { encoding: 'utf8', env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
      assert.equal(del.status, 0, del.stderr);
    }
  } finally {
    const u = await runAgent(['umount', '--system', sys], 60_000);
    assert.equal(u.code, 0, u.stderr);
  }
  assert.ok(esp !== undefined, `mount names the unmounted ESP:\n${m.stderr}`);
  assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(sys), 'umount released the mounts and the FUSE export');
  assert.equal(spawnSync('qemu-img', ['check', disk], { encoding: 'utf8' }).status, 0, 'the qcow2 is consistent after the FUSE export');
  assertReleasedLoops(l);
  // reinstall-grub on the qcow2 disk (UEFI): the EFI image is written again; the boot below proves it.
  const rg = await runAgent(['reinstall-grub', '--system', sys], 300_000);
  lap('mount, umount, reinstall-grub');
  assert.equal(rg.code, 0, rg.stderr);
  assertReleasedLoops(l);
  // issue 16: a key put into the never-booted guest (rescue VM, offline) shows in its first-boot report.
  const put = await runAgent(['ssh-key', 'put', sys, l.secondKey, '--cache-dir', join(l.dir, 'cache')], 900_000);
  lap('ssh-key put (rescue VM)');
  assert.equal(put.code, 0, `ssh-key put failed:\n${put.stdout}\n${put.stderr}`);
  assert.ok(put.stdout.includes(l.secondFingerprint), put.stdout);
  const st = await runAgent(['vm', 'start', sys], 120_000);
  assert.equal(st.code, 0, st.stderr);
  const fb = await waitFor(`first_boot of ${sys}`, 900_000, async () => (await events(sys)).find((e) => e.type === 'first_boot'));
  await waitFor(`login prompt of ${sys}`, 300_000, () => (/^\S+ login: /m.test(consoleLog(sys)) ? true : undefined));
  lap('first boot and login prompt');
  assert.equal(fb.detail['authorized_keys'], `${l.keyFingerprint},${l.secondFingerprint}`, "the record's key and the one ssh-key put added");
  const types = (await events(sys)).map((e) => e.type).filter((x) => STAGES.includes(x));
  assert.deepEqual(types, STAGES.filter((x) => x !== 'disk_boot_started'));
  assert.equal(fb.detail['disks'], 'vda,vdb', 'the guest sees its system disk and the data disk');
  assert.match(consoleLog(sys), /uefihost login:/);
  // What the booted guest's network came up with, from the interface and its subnet object: address/25, MTU, gateway, DNS, search.
  const hostIp = l.net.hostIp;
  const prefix = hostIp.replace(/\.1$/, '');
  const network = String(fb.detail['network']);
  assert.match(network, new RegExp(`^\\w+=${prefix.replace(/\./g, '\\.')}\\.50/25/mtu1400;`), network);
  assert.match(network, new RegExp(`;gw=${hostIp.replace(/\./g, '\\.')};dns=${hostIp.replace(/\./g, '\\.')};search=forge-lab\\.example$`), network);
  virsh(['destroy', sys]);
});

test('--build refuses a disk that holds a filesystem and changes nothing', { timeout: 300_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-fs`;
  const disk = join(l.dir, 'disks', `${sys}-disk01.img`);
  mkdirSync(join(l.dir, 'disks'), { recursive: true });
  spawnSync('truncate', ['-s', '64M', disk]);
  spawnSync('mkfs.ext4', ['-q', '-F', disk]);
  const before = sha(disk);
  const run = await runAgent(buildArgs(sys), 120_000);
  assert.equal(run.code, 5, run.stderr);
  assert.match(run.stderr, /VIRT_EXISTS: disk .* already exists; use --force/);
  assert.equal(sha(disk), before);
  assert.equal(domainState(sys), '');
  assertReleasedLoops(l);
  const evs = (await events(sys)).map((e) => e.type);
  assert.deepEqual(evs, ['build_started', 'agent_failed']);
});

test('--build failures release loop devices and mounts, define no domain: failing hook, missing suite, SIGINT', { timeout: 900_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const lap = stopwatch(t);
  // A failing postunpack hook stops the build with its output.
  const hook = `${l.tag}-hook`;
  const h = await runAgent([...buildArgs(hook).filter((a, i, all) => !(a === '--hooks' || all[i - 1] === '--hooks')), '--hooks', l.badHooks], 900_000);
  assert.equal(h.code, 9, h.stderr);
  assert.match(h.stderr, /BUILD_FAILED: hook .*postunpack exited 3:\s+hook says no to hookhost/);
  assertReleased(hook);
  const failed = (await events(hook)).find((e) => e.type === 'agent_failed');
  assert.match(String(failed?.detail['message']), /hook says no/);
  lap('failing hook');

  // A suite the mirror does not have: mmdebstrap's own error, nothing left.
  const ns = `${l.tag}-nosuite`;
  const n = await runAgent([...buildArgs(ns), '--suite', 'nosuchsuite'], 300_000);
  lap('missing suite');
  assert.equal(n.code, 9, n.stderr);
  assert.match(n.stderr, /BUILD_FAILED: bootstrap: mmdebstrap .* exited/);
  assert.match(n.stderr, /nosuchsuite/);
  assertReleased(ns);

  // SIGINT while mmdebstrap installs into the new disk's mounted root (--no-rootfs-cache: it bootstraps although the
  // cache has this tree), its own /proc, /sys and /dev mounted inside it: the build unwinds all of them.
  const int = `${l.tag}-int`;
  let sent = false;
  const i = await runAgent([...buildArgs(int), '--no-rootfs-cache'], 900_000, (err, kill) => {
    if (!sent && /\] bootstrap: I: installing essential packages/.test(err)) {
      sent = true;
      setTimeout(() => kill('SIGINT'), 1500);
    }
  });
  assert.ok(sent, `mmdebstrap reached its install into the mounted disk:\n${i.stderr}`);
  lap('SIGINT');
  for (const line of i.stderr.split('\n').filter((x) => /^\[\s*\d+s\]/.test(x))) t.diagnostic(line);
  assert.equal(i.code, 130, `SIGINT exits 128 + 2, as a shell reports it:\n${i.stderr}`);
  assert.match(i.stderr, /BUILD_INTERRUPTED: interrupted \(SIGINT\)/);
  assertReleased(int);
});

