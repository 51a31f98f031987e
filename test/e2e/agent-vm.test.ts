/**
 * forge-agent's VM management (issue 16; seeds 002 VMK, 004 VM for ALT) on
 * real libvirt (qemu:///system, TCG) with a real `forge serve`, on one shared
 * fixture to keep CI time modest: a forge-made domain whose tiny guest
 * (Debian kernel + busybox initramfs) keeps a boot counter in the first
 * bytes of its disk, prints it on the serial console and then offers a shell
 * there. Each boot is read back from the console log.
 *
 * Steps, in order (each depends on the one before): list/info only see
 * forge's domains; kill needs --force; snapshot S0, boot (counter moves on),
 * restore (needs --force), boot (counter back); S1, a named snapshot, LAST,
 * comments, sizes, delete; a deleted disk is restored from LAST at start;
 * the console under a pty; snap run leaves the disk alone; clone runs beside
 * its source with its own MAC and forge record; destroy --remove-disks keeps
 * a file another domain uses; every action is a vm_action event.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildDomainXml } from '../../agent/domxml.js';
import { buildInitramfs, guestKernel } from '../lib/guest.js';
import { AGENT_BIN, agentLab, domainState, labMac as mac, virsh, waitFor as waitForEvery, type AgentRun as Run } from '../lib/agent-lab.js';

/** The guest: bump the counter in the disk's first 32 bytes, say it, then a shell on the console. */
export const COUNTER_INIT = `n=$(dd if=/dev/vda bs=32 count=1 2>/dev/null | tr -dc '0-9')
[ -n "$n" ] || n=0
n=$((n+1))
printf '%-32s' "$n" | dd of=/dev/vda bs=32 count=1 conv=notrunc,fsync 2>/dev/null
sync
say "boot counter $n"
say "disks: $(ls /sys/block | grep -v -e loop -e ram | tr '\\n' ' ')"
net_up
export PS1='forge-vm# '
while true; do sh -i </dev/console >/dev/console 2>&1; done`;

const L = agentLab({
  prefix: 'fgvm',
  reqs: { root: true, commands: ['virsh', 'qemu-img', 'qemu-io', 'qemu-system-x86_64', 'cpio', 'modinfo', 'dnsmasq', 'script', 'mkfs.xfs', 'filefrag', 'losetup'] },
  skip: 'needs root, libvirt, qemu and xfsprogs',
  // The guests DHCP from forge itself, started with the README's managed line on the lab bridge.
  managedDhcp: true,
  async setup(core) {
    const kernel = guestKernel().vmlinuz;
    const initrd = buildInitramfs({ init: COUNTER_INIT });
    // README forge has default boot roots only: the distro's files go under DATA/distros.
    const files = join(core.srv.dataDir, 'distros', `${core.tag}-d`);
    mkdirSync(files, { recursive: true });
    execFileSync('cp', [kernel, join(files, 'vmlinuz')]);
    execFileSync('cp', [initrd, join(files, 'initrd.gz')]);
    await L.create('distros', { name: `${core.tag}-d`, kernel: join(files, 'vmlinuz'), initrd: join(files, 'initrd.gz'), breed: 'generic', arch: 'x86_64' });
    await L.create('profiles', { name: `${core.tag}-p`, distro: `${core.tag}-d` });
    return { kernel, initrd };
  },
});
const { events, ready } = L;

const LOGDIR = '/var/log/libvirt/qemu';

function agent(args: string[], timeoutMs = 300_000): Promise<Run> {
  return L.agent(args, timeoutMs);
}

async function ok(args: string[]): Promise<Run> {
  const r = await agent(args);
  assert.equal(r.code, 0, `forge-agent ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

const waitFor = <T>(what: string, ms: number, f: () => T | undefined | Promise<T | undefined>): Promise<T> => waitForEvery(what, ms, f, 500);

/** Boot NAME with forge-agent and return the counter its console printed. */
async function bootCounter(name: string): Promise<number> {
  const log = join(LOGDIR, `${name}-console.log`);
  await waitFor(`${name} to be started`, 60_000, () => (domainState(name) === 'running' ? true : undefined));
  const m = await waitFor(`the boot counter of ${name}`, 240_000, () => {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    const hit = /boot counter (\d+)/.exec(text);
    return hit === null ? undefined : hit;
  });
  // The counter is on the disk (dd conv=fsync) before it is printed: the VM may now be powered off.
  return Number(m[1]);
}

async function killVm(name: string): Promise<void> {
  await ok(['vm', 'kill', name, '--force']);
  await waitFor(`${name} off`, 60_000, () => (domainState(name) === 'shut off' ? true : undefined));
}

function defineVm(name: string, disk: string, system: string | undefined, macAddr: string, marked = true, format: 'qcow2' | 'raw' = 'qcow2'): void {
  const lab = L.get();
  let xml = buildDomainXml({
    name, uuid: randomUUID(), type: 'qemu', memoryMiB: 192, vcpus: 1,
    disk: { kind: 'file', path: disk, format, bus: 'virtio' },
    nics: [{ mac: macAddr, source: { network: lab.net.name }, model: 'virtio' }],
    graphics: 'vnc', consoleLog: join(LOGDIR, `${name}-console.log`),
    boot: { kind: 'kernel', kernel: lab.kernel, initrd: lab.initrd, cmdline: 'console=ttyS0 quiet no_timer_check' }, installer: false,
    ...(system === undefined ? {} : { system }),
  });
  if (!marked) xml = xml.replace(/\s*<metadata>[\s\S]*<\/metadata>/, '');
  const f = join(lab.dir, `${name}.xml`);
  writeFileSync(f, xml);
  virsh(['define', f]);
  lab.domains.push(name);
}

/** Drive `forge-agent console NAME` under a pty (script(1)): expect the prompt, run a command, leave with Ctrl-]. */
async function consoleSession(name: string): Promise<string> {
  const p = spawn('script', ['-qfec', `${process.execPath} ${AGENT_BIN} console ${name}`, '/dev/null'], {
    env: L.agentEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  p.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const closed = new Promise<number>((resolve) => p.on('close', (c) => resolve(c ?? -1)));
  try {
    await waitFor('the console to connect', 60_000, () => (/Ctrl-\] leaves/.test(out) ? true : undefined));
    // The prompt was printed before we attached: ask for a new one.
    const promptSeen = await waitFor('the guest prompt', 60_000, () => {
      if (/forge-vm# /.test(out.slice(out.indexOf('Ctrl-] leaves')))) return true;
      p.stdin.write('\r');
      return undefined;
    });
    assert.ok(promptSeen);
    p.stdin.write('echo forge-$((6*7))-ok\r');
    await waitFor('the command output', 60_000, () => (/forge-42-ok/.test(out) ? true : undefined));
    p.stdin.write('\x1d');
    const code = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-99), 30_000))]);
    assert.notEqual(code, -99, `Ctrl-] did not end the console session:\n${out}`);
    return out;
  } finally {
    if (p.exitCode === null) p.kill('SIGKILL');
  }
}

/** The counter stored on a disk (the whole backing chain), read on the host (qemu-img dd: no guest involved). */
function diskCounter(disk: string): number {
  const raw = join(L.get().dir, `peek-${randomBytes(2).toString('hex')}.raw`);
  execFileSync('qemu-img', ['dd', '-O', 'raw', 'bs=32', 'count=1', `if=${disk}`, `of=${raw}`]);
  const n = Number(readFileSync(raw).subarray(0, 32).toString('latin1').replace(/[^0-9]/g, '') || '0');
  rmSync(raw, { force: true });
  return n;
}

/** The file the domain's first disk is now (an overlay snapshot moves it). */
function activeDisk(name: string): string {
  const m = /<disk[^>]*device=.disk.[\s\S]*?<source file=.([^'"]+)./.exec(virsh(['dumpxml', '--inactive', name]));
  assert.ok(m !== null, `no file disk in ${name}`);
  return m[1] as string;
}

/** The files of a disk's backing chain, the disk first (qemu-img's own view). */
function chainOf(file: string): string[] {
  const out = execFileSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', file], { encoding: 'utf8' });
  return (JSON.parse(out) as { filename: string }[]).map((x) => x.filename);
}

/** Allocated bytes of a file (st_blocks), what it costs on the host's disk. */
function allocated(file: string): number {
  return Number(execFileSync('stat', ['-c', '%b*%B', file], { encoding: 'utf8' }).trim().split('*').reduce((a, b) => a * Number(b), 1));
}

/** A DHCP exchange forge recorded on a system's timeline. */
async function acks(system: string): Promise<{ mac: string; ip: string; time: string }[]> {
  return (await events(system)).filter((e) => e.type === 'dhcp_ack').map((e) => ({ mac: String(e.detail['mac']), ip: String(e.detail['ip']), time: e.time }));
}

test('forge-agent --firmware uefi --virt-path a,b: the installer runs on OVMF/q35 with two disks; vm info shows them', { timeout: 900_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const name = `${l.tag}-uefi`;
  l.domains.push(name);
  assert.equal((await L.api('POST', '/api/v1/systems', { name, profile: `${l.tag}-p`, interfaces: { eth0: { mac_address: mac() } } })).status, 201);
  const r = await ok([
    '--system', name, '--virt', '--virt-type', 'qemu', '--no-wait', '--nogfx', '--firmware', 'uefi',
    '--virt-path', `${l.dir},${l.dir}`, '--virt-file-size', '1', '--virt-network', l.net.name, '--cache-dir', join(l.dir, 'cache'),
  ]);
  assert.match(r.stdout, /installer started/);
  const log = join(LOGDIR, `${name}-install.log`);
  const text = await waitFor('the installer on OVMF to print its counter and disks', 600_000, () => {
    const s = existsSync(log) ? readFileSync(log, 'utf8') : '';
    return /forge-guest: disks: [^\r\n]*\r?\n/.test(s) ? s : undefined;
  });
  assert.match(text, /forge-guest: boot counter 1/);
  assert.match(text, /forge-guest: disks: vda vdb/);
  assert.match(text, /EFI stub|efi: EFI v/i, 'the kernel was started by UEFI firmware');
  virsh(['destroy', name]);
  await waitFor('the installer to end', 60_000, () => (domainState(name) === 'shut off' ? true : undefined));
  const info = await ok(['vm', 'info', name]);
  assert.match(info.stdout, /firmware:\s+uefi\s+machine: \S*q35/);
  assert.match(info.stdout, new RegExp(`disk:\\s+vda .*${name}-disk01\\.qcow2`));
  assert.match(info.stdout, new RegExp(`disk:\\s+vdb .*${name}-disk02\\.qcow2`));
  // libvirt resolved OVMF from qemu's firmware descriptors and gave this VM its own variable store.
  const nvram = `/var/lib/libvirt/qemu/nvram/${name}_VARS.fd`;
  assert.ok(existsSync(nvram), `a per-VM NVRAM copy at ${nvram}`);
  await ok(['vm', 'destroy', name, '--remove-disks', '--force']);
  assert.ok(!existsSync(nvram), 'destroy removes the NVRAM copy');
  assert.ok(!existsSync(join(l.dir, `${name}-disk02.qcow2`)));
});

test('forge-agent vm/snapshot/snap run/console/clone/destroy on one forge VM', { timeout: 1_800_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const name = `${l.tag}-vm`;
  const sys = name;
  const sysMac = mac();
  assert.equal((await L.api('POST', '/api/v1/systems', { name: sys, profile: `${l.tag}-p`, interfaces: { eth0: { mac_address: sysMac, ip_address: '' } } })).status, 201);
  const disk = join(l.dir, `${name}-disk01.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
  // 8 MiB of data past the counter: what a full copy of this disk would cost.
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 1M 8M', disk], { stdio: 'ignore' });
  defineVm(name, disk, sys, sysMac);
  // A domain forge did not make, and a forge domain running on an overlay of our disk.
  const foreign = `${l.tag}-foreign`;
  const fdisk = join(l.dir, `${foreign}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', fdisk, '16M']);
  defineVm(foreign, fdisk, undefined, mac(), false);
  const peer = `${l.tag}-peer`;
  const pdisk = join(l.dir, `${peer}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', disk, '-F', 'qcow2', pdisk]);
  defineVm(peer, pdisk, undefined, mac());

  await t.test('vm list and info see forge domains only', async () => {
    const list = await ok(['vm', 'list']);
    assert.match(list.stdout, new RegExp(`^${name}\\s+shut off\\s+${sys}\\s+vda=${disk}\\s+${sysMac}`, 'm'));
    assert.match(list.stdout, new RegExp(`^${peer}\\s`, 'm'));
    assert.doesNotMatch(list.stdout, new RegExp(foreign));
    const info = await ok(['vm', 'info', name]);
    assert.match(info.stdout, new RegExp(`system:\\s+${sys}`));
    assert.match(info.stdout, /firmware:\s+bios\s+machine: pc/);
    assert.match(info.stdout, new RegExp(`mac:\\s+${sysMac}`));
    assert.match(info.stdout, /graphics:\s+vnc/);
    const f = await agent(['vm', 'start', foreign]);
    assert.equal(f.code, 4, f.stderr);
    assert.match(f.stderr, /NOT_FORGE_DOMAIN: domain .* was not made by forge-agent/);
    assert.equal(domainState(foreign), 'shut off');
  });

  await t.test('start; kill refuses without --force', async () => {
    await ok(['vm', 'start', name]);
    assert.equal(await bootCounter(name), 1);
    const info = await ok(['vm', 'info', name]);
    assert.match(info.stdout, /graphics:\s+vnc:\/\/127\.0\.0\.1:\d+/, 'a running VM shows its VNC address');
    assert.match(info.stdout, /console:\s+\/dev\/pts\/\d+/);
    const r = await agent(['vm', 'kill', name]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /NEEDS_FORCE: .*--force/);
    assert.equal(domainState(name), 'running');
    const s = await agent(['snapshot', 'create', name]);
    assert.equal(s.code, 5, s.stderr);
    assert.match(s.stderr, /VM_RUNNING: .*--live/);
  });

  await t.test('console attaches under a pty: prompt, command, Ctrl-] leaves; --log prints the boot', async () => {
    const out = await consoleSession(name);
    assert.match(out, /forge-42-ok/);
    assert.equal(domainState(name), 'running', 'leaving the console leaves the VM running');
    const log = await ok(['console', '--log', name]);
    assert.match(log.stdout, /forge-guest: boot counter 1/);
    await killVm(name);
  });

  const overlay = join(l.dir, `${name}-disk01.1.qcow2`);
  // The default (auto) makes overlays where the lab's filesystem cannot clone files (ext4 here). On a CI host whose
  // /var/lib/libvirt/images is btrfs/XFS-reflink the default would make reflink copies: ask for overlays there, so
  // this test always covers the overlay chain (the XFS test below covers reflink).
  const probe = join(l.dir, 'reflink-probe');
  writeFileSync(probe, 'x');
  const canClone = spawnSync('cp', ['--reflink=always', probe, `${probe}.2`]).status === 0;
  rmSync(`${probe}.2`, { force: true });
  const overlayKind = canClone ? ['--kind', 'overlay'] : [];
  await t.test('snapshot S0 is a qcow2 overlay: the disk is frozen, the VM writes to a new overlay on it; boot moves the counter, restore brings it back', async () => {
    const before = allocated(disk);
    const c = await ok(['snapshot', 'create', name, '--comment', 'after first boot', ...overlayKind]);
    assert.match(c.stdout, /snapshot S0 created as a qcow2 overlay \(LAST -> S0\)/);
    // libvirt's definition follows: the domain's disk is the overlay, libvirt reads the chain from it.
    assert.equal(activeDisk(name), overlay);
    assert.deepEqual(chainOf(overlay), [overlay, disk], 'qemu-img: the overlay is backed by the snapshot (the old disk)');
    assert.equal(allocated(disk), before, 'the snapshot is the disk itself: no copy');
    assert.ok(allocated(overlay) < 1 << 20, `the overlay costs ${allocated(overlay)} bytes, a full copy ${before}`);
    assert.ok(before > 8 << 20, `premise: the disk holds ${before} bytes`);
    assert.match((await ok(['vm', 'info', name])).stdout, new RegExp(`disk:\\s+vda \\(virtio, disk, qcow2\\) ${overlay}`));
    await ok(['vm', 'start', name]);
    assert.equal(await bootCounter(name), 2);
    await killVm(name);
    assert.equal(diskCounter(disk), 1, 'the booted guest wrote to the overlay; the snapshot still holds 1');
    const refused = await agent(['snapshot', 'restore', name]);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /NEEDS_FORCE/);
    assert.equal(diskCounter(overlay), 2, 'a refused restore changes nothing');
    const r = await ok(['snapshot', 'restore', name, '--force']);
    assert.match(r.stdout, /restored snapshot S0/);
    assert.equal(activeDisk(name), overlay, 'a fresh overlay in the same file');
    assert.deepEqual(chainOf(overlay), [overlay, disk]);
    assert.equal(diskCounter(overlay), 1);
    await ok(['vm', 'start', name]);
    assert.equal(await bootCounter(name), 2, 'the restored disk boots from counter 1 again');
    await killVm(name);
  });

  await t.test('naming S1, a named snapshot, LAST, list, delete keeps the chain', async () => {
    assert.match((await ok(['snapshot', 'create', name, ...overlayKind])).stdout, /snapshot S1 created as a qcow2 overlay \(LAST -> S1\)/);
    assert.match((await ok(['snapshot', 'create', name, 'scratch', '--comment', 'to be deleted', ...overlayKind])).stdout, /snapshot scratch created as a qcow2 overlay \(LAST -> scratch\)/);
    const top = activeDisk(name);
    assert.equal(chainOf(top).length, 4, `disk <- S1 <- scratch <- VM: ${chainOf(top).join(' <- ')}`);
    const dup = await agent(['snapshot', 'create', name, 'S1']);
    assert.equal(dup.code, 5, dup.stderr);
    const bad = await agent(['snapshot', 'create', name, 'LAST']);
    assert.equal(bad.code, 2, bad.stderr);
    const list = await ok(['snapshot', 'list', name]);
    const lines = list.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+TIME\s+SIZE\s+KIND\s+COMMENT/);
    assert.match(lines[1] ?? '', /^S0\s+\d{4}-\d\d-\d\dT\S+\s+\d+\.\d MiB\s+overlay\s+after first boot$/, 'S0 holds the 8 MiB disk');
    assert.match(lines[2] ?? '', /^S1\s+\S+\s+\d+(\.\d)? KiB\s+overlay/, 'S1 holds only what the guest wrote after S0');
    assert.match(lines[3] ?? '', /^scratch \(LAST\)\s.*to be deleted$/);
    const refused = await agent(['snapshot', 'delete', name, 'scratch']);
    assert.equal(refused.code, 5, refused.stderr);
    const n = diskCounter(top);
    assert.match((await ok(['snapshot', 'delete', name, 'scratch', '--force'])).stdout, /snapshot scratch deleted \(LAST -> S1\)/);
    assert.doesNotMatch((await ok(['snapshot', 'list', name])).stdout, /scratch/);
    // The VM's overlay was committed into scratch's image, which is now the VM's disk (the domain XML followed).
    const merged = activeDisk(name);
    assert.ok(!existsSync(top), `${top} merged away`);
    assert.equal(chainOf(merged).length, 3, `disk <- S1 <- VM: ${chainOf(merged).join(' <- ')}`);
    assert.equal(diskCounter(merged), n, 'and reads the same');
    // S0 is the backing file of another domain's disk (peer): deleting it would break that disk.
    const busy = await agent(['snapshot', 'delete', name, 'S0', '--force']);
    assert.equal(busy.code, 5, busy.stderr);
    assert.match(busy.stderr, new RegExp(`VIRT_IN_USE: .*${peer}`));
  });

  await t.test('a missing disk is restored from LAST when the VM starts', async () => {
    rmSync(activeDisk(name));
    assert.match((await ok(['vm', 'info', name])).stdout, /\[MISSING\]/);
    const r = await ok(['vm', 'start', name]);
    assert.match(r.stderr, /disk .* missing; restoring snapshot LAST \(S1\) first/);
    assert.equal(await bootCounter(name), 3, 'S1 held counter 2');
    await killVm(name);
  });

  await t.test('snap run boots a throwaway overlay and leaves the disk alone', async () => {
    const before = diskCounter(activeDisk(name));
    const run = agent(['snap', 'run', name], 600_000);
    const copy = `${name}-snap`;
    l.domains.push(copy);
    assert.equal(await bootCounter(copy), before + 1);
    virsh(['destroy', copy]);
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /overlay discarded/);
    assert.equal(diskCounter(activeDisk(name)), before, 'the throwaway boot did not touch the disk');
    assert.equal(domainState(copy), '', 'the transient copy is gone');
    // On a snapshot: the throwaway overlay sits on S0's frozen image (counter 1), not on the disk.
    rmSync(join(LOGDIR, `${copy}-console.log`), { force: true }); // the first run's boot is not this one's
    const onS0 = agent(['snap', 'run', name, 'S0'], 600_000);
    assert.equal(await bootCounter(copy), 2);
    virsh(['destroy', copy]);
    const r0 = await onS0;
    assert.equal(r0.code, 0, r0.stderr);
    assert.match(r0.stdout, /at snapshot S0/);
    assert.equal(diskCounter(activeDisk(name)), before);
    assert.equal(diskCounter(disk), 1, 'nor the snapshot');
  });

  await t.test('a live snapshot keeps the running guest on a new overlay; restoring it resumes the guest', async () => {
    await ok(['vm', 'start', name]);
    const n = await bootCounter(name);
    const log = join(LOGDIR, `${name}-console.log`);
    await waitFor('the guest shell', 120_000, () => (/forge-vm# /.test(readFileSync(log, 'utf8')) ? true : undefined));
    const was = activeDisk(name);
    const c = await ok(['snapshot', 'create', name, 'live1', '--live', '--comment', 'running', ...overlayKind]);
    assert.match(c.stdout, /snapshot live1 created \(live, with memory\) as a qcow2 overlay \(LAST -> live1\)/);
    assert.equal(domainState(name), 'running', 'the guest runs on after a live snapshot');
    const now = activeDisk(name);
    assert.notEqual(now, was);
    assert.deepEqual(chainOf(now).slice(0, 2), [now, was], 'it resumed on a new overlay over the frozen disk');
    assert.ok(virsh(['dumpxml', name]).includes(now), 'the running guest writes to the new overlay');
    await killVm(name);
    const r = await ok(['snapshot', 'restore', name, 'live1', '--force']);
    assert.match(r.stdout, /restored snapshot live1 and resumed it/);
    assert.equal(domainState(name), 'running');
    const out = await consoleSession(name);
    assert.match(out, /forge-42-ok/, 'the resumed shell answers');
    assert.doesNotMatch(readFileSync(log, 'utf8'), /boot counter/, 'resumed, not booted again');
    await killVm(name);
    assert.equal(diskCounter(activeDisk(name)), n);
  });

  const cloneName = `${l.tag}-cl`;
  await t.test("clone runs beside its source with its own MAC and forge record; forge's DHCP tells them apart", async () => {
    l.domains.push(cloneName);
    const c = await ok(['clone', name, cloneName]);
    assert.match(c.stdout, new RegExp(`${cloneName}: cloned from ${name}`));
    const rec = (await L.api('GET', `/api/v1/systems/${cloneName}`)).body as { profile: string; interfaces: Record<string, { mac_address: string; ip_address: string }> };
    assert.equal(rec.profile, `${l.tag}-p`);
    const cmac = rec.interfaces['eth0']?.mac_address ?? '';
    assert.match(cmac, /^52:54:00:/);
    assert.notEqual(cmac, sysMac);
    assert.equal(rec.interfaces['eth0']?.ip_address, '');
    const xml = virsh(['dumpxml', '--inactive', cloneName]);
    assert.match(xml, new RegExp(`<mac address=.${cmac}.`));
    assert.match(xml, new RegExp(`system=.${cloneName}.`));
    assert.match(xml, new RegExp(`${l.dir}/${cloneName}-disk01.qcow2`));
    assert.deepEqual(chainOf(join(l.dir, `${cloneName}-disk01.qcow2`)), [join(l.dir, `${cloneName}-disk01.qcow2`)], "the clone's disk stands alone (the source's overlay chain flattened)");
    const n = diskCounter(activeDisk(name));
    const seen = { src: (await acks(sys)).length, cl: (await acks(cloneName)).length };
    assert.equal(seen.cl, 0);
    await ok(['vm', 'start', name]);
    await ok(['vm', 'start', cloneName]);
    assert.equal(await bootCounter(name), n + 1);
    assert.equal(await bootCounter(cloneName), n + 1);
    // Both guests run their DHCP client against forge (README managed mode on the lab bridge).
    const [sa, ca] = await waitFor('a DHCP ack on each timeline', 180_000, async () => {
      const a = (await acks(sys)).slice(seen.src);
      const b = await acks(cloneName);
      return a.length > 0 && b.length > 0 ? [a, b] : undefined;
    });
    assert.equal(domainState(name), 'running');
    assert.equal(domainState(cloneName), 'running', 'source and clone run at the same time');
    assert.ok(sa.every((x) => x.mac === sysMac), `the source's timeline has its own MAC only: ${JSON.stringify(sa)}`);
    assert.ok(ca.every((x) => x.mac === cmac), `the clone's timeline has the clone's MAC only: ${JSON.stringify(ca)}`);
    assert.notEqual(sa.at(-1)?.ip, ca.at(-1)?.ip, 'each got its own address');
    for (const [n2, ip] of [[name, sa.at(-1)?.ip], [cloneName, ca.at(-1)?.ip]] as const) {
      await waitFor(`${n2} to say it has ${ip}`, 60_000, () => (readFileSync(join(LOGDIR, `${n2}-console.log`), 'utf8').includes(`network up on eth0: ${ip}/`) ? true : undefined));
    }
    await killVm(name);
    await killVm(cloneName);
    const src = (await events(sys)).filter((e) => e.type === 'vm_action');
    const cl = (await events(cloneName)).filter((e) => e.type === 'vm_action');
    assert.ok(src.some((e) => e.detail['action'] === 'clone_source' && e.detail['clone'] === cloneName));
    assert.deepEqual(cl.map((e) => e.detail['action']), ['cloned', 'start', 'kill']);
    assert.ok(cl.every((e) => e.detail['domain'] === cloneName));
  });

  await t.test('destroy needs --force and keeps files other domains use', async () => {
    const r = await agent(['vm', 'destroy', name, '--remove-disks']);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(domainState(name), 'shut off');
    const d = await ok(['vm', 'destroy', name, '--remove-disks', '--force']);
    assert.match(d.stderr, new RegExp(`kept ${disk} \\(used by another domain\\)`));
    assert.ok(existsSync(disk), `the backing file of ${peer} stays`);
    assert.ok(!existsSync(join(l.dir, `${name}.snapshots`)), 'its snapshots are gone');
    assert.equal(domainState(name), '');
    await ok(['vm', 'destroy', cloneName, '--remove-disks', '--force']);
    assert.ok(!existsSync(join(l.dir, `${cloneName}-disk01.qcow2`)));
    assert.equal(domainState(foreign), 'shut off');
    assert.ok(existsSync(fdisk));
  });

  await t.test('every action was a vm_action event on the system', async () => {
    const acts = (await events(sys)).filter((e) => e.type === 'vm_action').map((e) => e.detail['action']);
    const want = ['start', 'console', 'kill', 'snapshot_create', 'start', 'kill', 'snapshot_restore', 'start', 'kill', 'snapshot_create', 'snapshot_create', 'snapshot_delete', 'snapshot_restore', 'start', 'kill', 'snap_run', 'snap_run',
      'start', 'snapshot_create', 'kill', 'snapshot_restore', 'console', 'kill', 'clone_source', 'start', 'kill', 'destroy'];
    assert.deepEqual(acts, want);
  });
});

/** Free bytes of the filesystem holding `path`. */
function freeBytes(path: string): number {
  const [free, size] = execFileSync('stat', ['-f', '-c', '%f %S', path], { encoding: 'utf8' }).trim().split(' ').map(Number);
  return (free as number) * (size as number);
}

test('snapshots on a filesystem that clones files (loop-mounted XFS, reflink=1) are reflink copies sharing the disk\'s blocks', { timeout: 300_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const img = join(l.dir, 'xfs.img');
  const mnt = join(l.dir, 'xfs');
  mkdirSync(mnt);
  execFileSync('truncate', ['-s', '320M', img]); // XFS's smallest filesystem is 300 MB
  execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
  execFileSync('mount', ['-o', 'loop', img, mnt]);
  try {
    const name = `${l.tag}-xfs`;
    const disk = join(mnt, `${name}-disk01.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 1M 8M', '-c', 'write -P 0x34 0 1', disk], { stdio: 'ignore' });
    defineVm(name, disk, undefined, mac());
    assert.equal(diskCounter(disk), 4);
    const free = freeBytes(mnt);
    const c = await ok(['snapshot', 'create', name, '--comment', 'on xfs']);
    assert.match(c.stdout, /snapshot S0 created as a reflink copy \(LAST -> S0\)/);
    const copy = join(mnt, `${name}.snapshots`, 'S0', 'vda.qcow2');
    assert.ok(existsSync(copy));
    assert.equal(activeDisk(name), disk, 'a reflink snapshot leaves the disk where it is');
    assert.deepEqual(chainOf(disk), [disk], 'and makes no overlay');
    // The copy's extents are shared with the disk (FIEMAP_EXTENT_SHARED, filefrag's "shared"): it cost no data blocks.
    const frag = execFileSync('filefrag', ['-v', copy], { encoding: 'utf8' });
    assert.match(frag, /shared/, frag);
    assert.ok(allocated(copy) > 8 << 20, `the copy holds the disk's ${allocated(copy)} bytes`);
    assert.ok(free - freeBytes(mnt) < 1 << 20, `the filesystem lost ${free - freeBytes(mnt)} bytes for an 8 MiB copy`);
    assert.match((await ok(['snapshot', 'list', name])).stdout, /^S0 \(LAST\)\s+\S+\s+\S+ MiB\s+reflink\s+on xfs$/m);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x37 0 1', disk], { stdio: 'ignore' });
    assert.equal(diskCounter(disk), 7);
    assert.equal(diskCounter(copy), 4, 'the snapshot did not follow the write');
    assert.equal((await agent(['snapshot', 'restore', name])).code, 5, 'restore without --force is refused');
    assert.match((await ok(['snapshot', 'restore', name, '--force'])).stdout, /restored snapshot S0/);
    assert.equal(activeDisk(name), disk);
    assert.equal(diskCounter(disk), 4);
    assert.match(execFileSync('filefrag', ['-v', disk], { encoding: 'utf8' }), /shared/, 'the restored disk is a clone of the snapshot again');
    await ok(['snapshot', 'delete', name, 'S0', '--force']);
    assert.ok(!existsSync(copy));
    assert.equal(diskCounter(disk), 4);
    await ok(['vm', 'destroy', name, '--remove-disks', '--force']);
  } finally {
    execFileSync('umount', [mnt]);
  }
});

/** A file from an ext4 image, read on the host without mounting it (debugfs). */
function ext4Cat(img: string, path: string): string {
  return execFileSync('debugfs', ['-R', `cat ${path}`, img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

test('job run in a rescue VM: .pre, job (reads /tmp/.in, writes /tmp/.out, changes the disk), .post; timeout; ssh-key put', { timeout: 1_200_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const name = `${l.tag}-job`;
  const sys = name;
  assert.equal((await L.api('POST', '/api/v1/systems', { name: sys, profile: `${l.tag}-p`, interfaces: { eth0: { mac_address: mac() } } })).status, 201);
  // An installed system's root filesystem: ext4 on the whole disk, with /etc and /bin.
  const root = join(l.dir, 'rootfs');
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'bin'), { recursive: true });
  writeFileSync(join(root, 'etc', 'hostname'), 'jobvm\n');
  const disk = join(l.dir, `${name}-disk01.img`);
  execFileSync('truncate', ['-s', '64M', disk]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', root, disk]);
  defineVm(name, disk, sys, mac(), true, 'raw');

  const jobDir = join(l.dir, 'jobs', 'touch-disk');
  mkdirSync(jobDir, { recursive: true });
  writeFileSync(join(jobDir, 'touch-disk.pre'), 'echo pre >> "$WORKDIR/order"\necho "from the host" > "$INDIR/x"\n');
  writeFileSync(join(jobDir, 'touch-disk.job'), [
    'echo "job sees INDIR=$INDIR OUTDIR=$OUTDIR MNTOPTS=$MNTOPTS"',
    'cat /tmp/.in/x > /tmp/.out/y',
    'echo "written by the job" >> /tmp/.out/y',
    'mount /dev/vda /mnt',
    'echo changed-by-job > /mnt/etc/forge-job',
    'umount /mnt',
    'echo job-finished',
  ].join('\n') + '\n');
  writeFileSync(join(jobDir, 'touch-disk.post'), 'echo post >> "$WORKDIR/order"\ncat "$OUTDIR/y" >> "$WORKDIR/order"\n');

  await t.test('the job runs with the disk attached and the shares mounted; .pre and .post in order', async () => {
    const r = await ok(['job', 'run', name, jobDir, '--cache-dir', join(l.dir, 'cache'), '--timeout', '400']);
    assert.match(r.stdout, /job sees INDIR=\/tmp\/\.in OUTDIR=\/tmp\/\.out MNTOPTS=trans=virtio/, 'the job output streams to the terminal');
    const m = /results in (\S+)/.exec(r.stdout);
    assert.ok(m !== null, r.stdout);
    const out = m[1] as string;
    assert.equal(readFileSync(join(out, 'y'), 'utf8'), 'from the host\nwritten by the job\n');
    assert.match(readFileSync(join(out, 'job.log'), 'utf8'), /job-finished/);
    assert.equal(readFileSync(join(dirname(out), 'order'), 'utf8'), 'pre\npost\nfrom the host\nwritten by the job\n');
    assert.equal(ext4Cat(disk, '/etc/forge-job'), 'changed-by-job\n');
    assert.equal(domainState(`${name}-job`), '', 'the rescue VM powered off and is gone');
  });

  await t.test('a job over its timeout is stopped with a clear error', async () => {
    const slow = join(l.dir, 'jobs', 'slow');
    mkdirSync(slow, { recursive: true });
    writeFileSync(join(slow, 'slow.job'), 'echo slow-started\nsleep 3600\n');
    writeFileSync(join(slow, 'slow.post'), 'echo post >> "$WORKDIR/order"\n');
    const r = await agent(['job', 'run', name, slow, '--cache-dir', join(l.dir, 'cache'), '--timeout', '90']);
    assert.equal(r.code, 9, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /JOB_FAILED: job slow did not finish within 90 s: the rescue VM was stopped/);
    assert.equal(domainState(`${name}-job`), '', 'the rescue VM was destroyed');
    const runs = readdirSync(join(l.dir, `${name}.jobs`)).filter((d) => d.startsWith('slow-'));
    assert.equal(runs.length, 1);
    assert.ok(!existsSync(join(l.dir, `${name}.jobs`, runs[0] as string, 'order')), '.post does not run after a failed job');
  });

  await t.test('ssh-key put adds the key offline and reports its fingerprint', async () => {
    const key = join(l.dir, 'id_test');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forge-test', '-f', key]);
    const fp = execFileSync('ssh-keygen', ['-l', '-f', `${key}.pub`], { encoding: 'utf8' }).split(' ')[1] as string;
    const r = await ok(['ssh-key', 'put', name, `${key}.pub`, '--cache-dir', join(l.dir, 'cache')]);
    assert.match(r.stdout, /added 1 key\(s\) to \/root\/\.ssh\/authorized_keys on \/dev\/vda/);
    assert.ok(r.stdout.includes(`root's authorized_keys has ${fp}`), r.stdout);
    assert.equal(ext4Cat(disk, '/root/.ssh/authorized_keys'), readFileSync(`${key}.pub`, 'utf8'));
    const again = await ok(['ssh-key', 'put', name, `${key}.pub`, '--cache-dir', join(l.dir, 'cache')]);
    assert.match(again.stdout, /added 0 key\(s\)/, 'a key already there is not added twice');
    const bad = join(l.dir, 'bad.pub');
    writeFileSync(bad, 'not a key\n');
    const b = await agent(['ssh-key', 'put', name, bad]);
    assert.equal(b.code, 3, b.stderr);
    assert.match(b.stderr, /is not an OpenSSH public key/);
    const acts = (await events(sys)).filter((e) => e.type === 'vm_action');
    assert.deepEqual(acts.map((e) => [e.detail['action'], e.detail['result'] ?? null]), [
      ['job', 'ok'], ['job', 'timeout'], ['job', 'ok'], ['ssh_key_put', null], ['job', 'ok'], ['ssh_key_put', null],
    ]);
    assert.deepEqual(acts[3]?.detail['fingerprints'], [fp]);
  });
});
