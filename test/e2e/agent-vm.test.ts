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
import { spawn, execFileSync } from 'node:child_process';
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
export PS1='forge-vm# '
while true; do sh -i </dev/console >/dev/console 2>&1; done`;

const L = agentLab({
  prefix: 'fgvm',
  reqs: { root: true, commands: ['virsh', 'qemu-img', 'qemu-system-x86_64', 'cpio', 'modinfo', 'dnsmasq', 'script'] },
  skip: 'needs root, libvirt and qemu',
  async setup(core) {
    const kernel = guestKernel().vmlinuz;
    const initrd = buildInitramfs({ init: COUNTER_INIT });
    await L.create('distros', { name: `${core.tag}-d`, kernel, initrd, breed: 'generic', arch: 'x86_64' });
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

/** The counter stored on a qcow2 disk, read on the host (qemu-img dd: no guest involved). */
function diskCounter(disk: string): number {
  const raw = join(L.get().dir, `peek-${randomBytes(2).toString('hex')}.raw`);
  execFileSync('qemu-img', ['dd', '-f', 'qcow2', '-O', 'raw', 'bs=32', 'count=1', `if=${disk}`, `of=${raw}`]);
  const n = Number(readFileSync(raw).subarray(0, 32).toString('latin1').replace(/[^0-9]/g, '') || '0');
  rmSync(raw, { force: true });
  return n;
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

  await t.test('snapshot S0, boot moves the counter, restore brings it back', async () => {
    const c = await ok(['snapshot', 'create', name, '--comment', 'after first boot']);
    assert.match(c.stdout, /snapshot S0 created \(LAST -> S0\)/);
    await ok(['vm', 'start', name]);
    assert.equal(await bootCounter(name), 2);
    await killVm(name);
    const refused = await agent(['snapshot', 'restore', name]);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /NEEDS_FORCE/);
    assert.equal(diskCounter(disk), 2, 'a refused restore changes nothing');
    const r = await ok(['snapshot', 'restore', name, '--force']);
    assert.match(r.stdout, /restored snapshot S0/);
    assert.equal(diskCounter(disk), 1);
    await ok(['vm', 'start', name]);
    assert.equal(await bootCounter(name), 2, 'the restored disk boots from counter 1 again');
    await killVm(name);
  });

  await t.test('naming S1, a named snapshot, LAST, list, delete', async () => {
    assert.match((await ok(['snapshot', 'create', name])).stdout, /snapshot S1 created \(LAST -> S1\)/);
    assert.match((await ok(['snapshot', 'create', name, 'scratch', '--comment', 'to be deleted'])).stdout, /snapshot scratch created \(LAST -> scratch\)/);
    const dup = await agent(['snapshot', 'create', name, 'S1']);
    assert.equal(dup.code, 5, dup.stderr);
    const bad = await agent(['snapshot', 'create', name, 'LAST']);
    assert.equal(bad.code, 2, bad.stderr);
    const list = await ok(['snapshot', 'list', name]);
    const lines = list.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+TIME\s+SIZE\s+COMMENT/);
    assert.match(lines[1] ?? '', /^S0\s+\d{4}-\d\d-\d\dT\S+\s+\d.*after first boot$/);
    assert.match(lines[2] ?? '', /^S1\s/);
    assert.match(lines[3] ?? '', /^scratch \(LAST\)\s.*to be deleted$/);
    const refused = await agent(['snapshot', 'delete', name, 'scratch']);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match((await ok(['snapshot', 'delete', name, 'scratch', '--force'])).stdout, /snapshot scratch deleted \(LAST -> S1\)/);
    assert.doesNotMatch((await ok(['snapshot', 'list', name])).stdout, /scratch/);
  });

  await t.test('a missing disk is restored from LAST when the VM starts', async () => {
    rmSync(disk);
    assert.match((await ok(['vm', 'info', name])).stdout, /\[MISSING\]/);
    const r = await ok(['vm', 'start', name]);
    assert.match(r.stderr, /disk .* missing; restoring snapshot LAST \(S1\) first/);
    assert.equal(await bootCounter(name), 3, 'S1 held counter 2');
    await killVm(name);
  });

  await t.test('snap run boots a throwaway overlay and leaves the disk alone', async () => {
    const before = diskCounter(disk);
    const run = agent(['snap', 'run', name], 600_000);
    const copy = `${name}-snap`;
    l.domains.push(copy);
    assert.equal(await bootCounter(copy), before + 1);
    virsh(['destroy', copy]);
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /overlay discarded/);
    assert.equal(diskCounter(disk), before, 'the throwaway boot did not touch the disk');
    assert.equal(domainState(copy), '', 'the transient copy is gone');
  });

  const cloneName = `${l.tag}-cl`;
  await t.test('clone runs beside its source with its own MAC and forge record', async () => {
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
    const n = diskCounter(disk);
    await ok(['vm', 'start', name]);
    await ok(['vm', 'start', cloneName]);
    assert.equal(await bootCounter(name), n + 1);
    assert.equal(await bootCounter(cloneName), n + 1);
    assert.equal(domainState(name), 'running');
    assert.equal(domainState(cloneName), 'running');
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
    const want = ['start', 'console', 'kill', 'snapshot_create', 'start', 'kill', 'snapshot_restore', 'start', 'kill', 'snapshot_create', 'snapshot_create', 'snapshot_delete', 'snapshot_restore', 'start', 'kill', 'snap_run', 'clone_source', 'start', 'kill', 'destroy'];
    assert.deepEqual(acts, want);
  });
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
