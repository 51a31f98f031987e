/**
 * Seed 001's maintenance verbs for a stopped forge VM: `mount` (every
 * filesystem of its disks under /mnt/NAME, found through the root's fstab by
 * UUID), `umount`, and `reinstall-grub` (GRUB into the disk again, BIOS or
 * UEFI as the domain boots). Raw files, LVs and devices go on loop devices
 * (losetup -P). A qcow2 (or any other format qemu reads) is first exported as
 * a raw image through FUSE by qemu-storage-daemon (qemu-storage-daemon(1),
 * `--export type=fuse`: the image appears as a regular file of its virtual
 * size, writes go to the qcow2), and that file goes on the loop device. So no
 * nbd kernel module is needed. The daemon holds qemu's image lock while it
 * runs, so the VM cannot start on a mounted disk; umount stops it (SIGTERM:
 * it flushes and closes the image) and waits for it to exit.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { installGrub, run } from './build.js';
import { forgeDomain, isRunning, type Virsh } from './virsh.js';

interface MountState {
  name: string;
  root: string;
  loops: string[];
  /** qemu-storage-daemon FUSE exports (qcow2 disks): pid and the exported raw file. */
  exports?: { pid: number; file: string }[];
  /** Mount points, in mount order. */
  mounts: string[];
  firmware: 'uefi' | 'bios';
  /** The ESP partition (from fstab's /boot/efi), mounted or not. */
  esp?: string;
}

const STATE_DIR = '/run/forge-agent';
const stateFile = (name: string): string => join(STATE_DIR, `mount-${name}.json`);

async function out(cmd: string, args: string[], step: string): Promise<string> {
  return (await run(cmd, args, { step })).output.trim();
}

/** fstab lines `UUID=... MOUNTPOINT TYPE ...` other than / and swap, shortest mount point first. */
export function fstabMounts(fstab: string): { uuid: string; mount: string; type: string }[] {
  const res: { uuid: string; mount: string; type: string }[] = [];
  for (const line of fstab.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || (f[0] as string).startsWith('#')) continue;
    const m = /^UUID=([0-9A-Fa-f-]+)$/.exec(f[0] as string);
    if (m === null || f[1] === '/' || f[2] === 'swap' || !(f[1] as string).startsWith('/')) continue;
    res.push({ uuid: (m[1] as string).toLowerCase(), mount: f[1] as string, type: f[2] as string });
  }
  return res.sort((a, b) => a.mount.split('/').length - b.mount.split('/').length);
}

/** Mount the stopped VM's filesystems at /mnt/NAME (or `at`). */
export async function mountVm(v: Virsh, name: string, err: (s: string) => void, at = `/mnt/${name}`): Promise<MountState> {
  const info = await forgeDomain(v, name);
  if (isRunning(await v.state(name))) throw new ForgeError('VM_RUNNING', `${name} is running; stop it first (forge-agent vm stop ${name}): its filesystems must not be mounted twice`, { field: 'NAME' });
  if (existsSync(stateFile(name))) throw new ForgeError('VIRT_EXISTS', `${name} is already mounted (${(JSON.parse(readFileSync(stateFile(name), 'utf8')) as MountState).root}); forge-agent umount ${name} first`, { field: 'NAME' });
  const disks = info.disks.filter((d) => d.device === 'disk' && d.source !== '');
  const formatted = disks.filter((d) => d.format !== '' && d.format !== 'raw');
  if (formatted.length > 0) fuseExportPossible(name, formatted[0]?.source ?? '', formatted[0]?.format ?? '');
  const st: MountState = { name, root: at, loops: [], exports: [], mounts: [], firmware: info.firmware };
  try {
    for (const [i, d] of disks.entries()) {
      const file = d.format !== '' && d.format !== 'raw' ? await fuseExport(st, d.source, d.format, i) : d.source;
      st.loops.push(await out('losetup', ['-P', '-f', '--show', file], 'mount'));
    }
    // The partition nodes (loopNpM) can lag behind losetup on a busy host: rescan, then wait for
    // them while the disk carries a partition table.
    for (const l of st.loops) {
      const table = (await run('blkid', ['-p', '-s', 'PTTYPE', '-o', 'value', l], { step: 'mount', allowFail: true })).output.trim();
      if (table === '') continue;
      await run('partx', ['-u', l], { step: 'mount', allowFail: true });
      const base = l.replace('/dev/', '');
      for (let i = 0; i < 100 && !readdirSync('/dev').some((f) => f.startsWith(`${base}p`)); i++) await new Promise((r) => setTimeout(r, 100));
    }
    // Candidates: every partition of every disk, or the whole disk when it has none (seed 001's root volume).
    const cands: string[] = [];
    for (const l of st.loops) {
      const base = l.replace('/dev/', '');
      const parts = readdirSync('/dev').filter((f) => f.startsWith(`${base}p`)).map((f) => `/dev/${f}`).sort();
      cands.push(...(parts.length > 0 ? parts : [l]));
    }
    const uuids = new Map<string, string>();
    for (const c of cands) {
      const r = await run('blkid', ['-s', 'UUID', '-o', 'value', c], { step: 'mount', allowFail: true });
      if (r.code === 0 && r.output.trim() !== '') uuids.set(r.output.trim().toLowerCase(), c);
    }
    mkdirSync(at, { recursive: true });
    let rootDev: string | undefined;
    for (const c of cands) {
      const r = await run('mount', [c, at], { step: 'mount', allowFail: true });
      if (r.code !== 0) continue;
      if (existsSync(join(at, 'etc/fstab'))) {
        rootDev = c;
        st.mounts.push(at);
        break;
      }
      await run('umount', [at], { step: 'mount' });
    }
    if (rootDev === undefined) throw new ForgeError('NOT_FOUND', `no root filesystem (one with /etc/fstab) on the disks of ${name}: ${cands.join(', ')}`, { field: 'NAME' });
    for (const m of fstabMounts(readFileSync(join(at, 'etc/fstab'), 'utf8'))) {
      const dev = uuids.get(m.uuid);
      if (dev !== undefined && m.mount === '/boot/efi') st.esp = dev;
      if (dev === undefined) {
        err(`warning: ${m.mount}: no filesystem with UUID ${m.uuid} on the disks of ${name}`);
        continue;
      }
      const p = join(at, m.mount);
      mkdirSync(p, { recursive: true });
      const r = await run('mount', [dev, p], { step: 'mount', allowFail: true });
      if (r.code !== 0) {
        // e.g. the ESP on a host kernel without vfat: the rest is still useful.
        err(`warning: ${m.mount} (${m.type} ${dev}) not mounted: ${r.output.trim().split('\n')[0] ?? ''}`);
        continue;
      }
      st.mounts.push(p);
    }
    mkdirSync(STATE_DIR, { recursive: true });
    writeFileSync(stateFile(name), JSON.stringify(st));
    return st;
  } catch (e) {
    await release(st);
    throw e;
  }
}

/** Why a non-raw disk cannot be exported here, as an error naming what to do; nothing when it can. */
function fuseExportPossible(name: string, source: string, format: string): void {
  const why = !existsSync('/dev/fuse')
    ? 'there is no /dev/fuse (load the fuse module: modprobe fuse)'
    : !['/usr/bin/qemu-storage-daemon', '/usr/local/bin/qemu-storage-daemon'].some((f) => existsSync(f))
      ? 'qemu-storage-daemon is not installed (Debian package qemu-system-common)'
      : undefined;
  if (why !== undefined) throw new ForgeError('USAGE', `${source} is ${format}: a loop device reads raw images only, and exporting it as raw through FUSE needs qemu-storage-daemon, but ${why}; or run forge-agent job run ${name} post-install (the rescue VM) instead`, { field: 'NAME' });
}

/**
 * Export disk `source` (qemu format `format`) as a raw file through FUSE; returns the file.
 * Options in qemu's JSON form, so no file name needs QemuOpts comma escaping.
 */
async function fuseExport(st: MountState, source: string, format: string, i: number): Promise<string> {
  mkdirSync(STATE_DIR, { recursive: true });
  const file = join(STATE_DIR, `export-${st.name}-${i}.raw`);
  const pidFile = `${file}.pid`;
  // qemu-storage-daemon(1): a FUSE export's mountpoint must be an existing regular file.
  writeFileSync(file, '');
  rmSync(pidFile, { force: true });
  const r = await run('qemu-storage-daemon', [
    '--blockdev', JSON.stringify({ driver: 'file', 'node-name': 'file0', filename: source }),
    '--blockdev', JSON.stringify({ driver: format, 'node-name': 'disk0', file: 'file0' }),
    '--export', JSON.stringify({ type: 'fuse', id: 'exp0', 'node-name': 'disk0', mountpoint: file, writable: true }),
    '--pidfile', pidFile, '--daemonize',
  ], { step: 'mount', allowFail: true });
  if (r.code !== 0) {
    rmSync(file, { force: true });
    throw new ForgeError('VIRT_FAILED', `qemu-storage-daemon could not export ${source} (${format}) through FUSE: ${r.output.trim().split('\n').slice(-3).join(' ')}`, { field: 'NAME' });
  }
  st.exports?.push({ pid: Number(readFileSync(pidFile, 'utf8').trim()), file });
  rmSync(pidFile, { force: true });
  if (statSync(file).size === 0) throw new ForgeError('VIRT_FAILED', `the FUSE export of ${source} is empty`, { field: 'NAME' });
  return file;
}

/** The process runs (a zombie does not count: a daemon's exit may wait for a pid 1 that never reaps it). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function release(st: MountState): Promise<void> {
  for (const m of [...st.mounts].reverse()) {
    const r = await run('umount', [m], { step: 'umount', allowFail: true });
    if (r.code !== 0) await run('umount', ['-l', m], { step: 'umount' });
  }
  for (const l of st.loops) await run('losetup', ['-d', l], { step: 'umount', allowFail: true });
  for (const e of st.exports ?? []) {
    // SIGTERM: qemu-storage-daemon flushes the image, removes the FUSE mount and exits.
    if (alive(e.pid)) process.kill(e.pid, 'SIGTERM');
    for (let i = 0; i < 300 && alive(e.pid); i++) await new Promise((r) => setTimeout(r, 100));
    if (alive(e.pid)) throw new ForgeError('VIRT_FAILED', `qemu-storage-daemon (pid ${e.pid}) exporting ${e.file} did not exit within 30 s of SIGTERM`, { field: 'NAME' });
    if (readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === e.file)) await run('umount', [e.file], { step: 'umount', allowFail: true });
    rmSync(e.file, { force: true });
  }
  rmSync(stateFile(st.name), { force: true });
}

export async function umountVm(name: string): Promise<MountState> {
  if (!existsSync(stateFile(name))) throw new ForgeError('NOT_FOUND', `${name} is not mounted by forge-agent (no ${stateFile(name)})`, { field: 'NAME' });
  const st = JSON.parse(readFileSync(stateFile(name), 'utf8')) as MountState;
  await release(st);
  return st;
}

/** GRUB into the stopped VM's disk again (seed 001's "re-install Grub"). */
export async function reinstallGrub(v: Virsh, name: string, err: (s: string) => void): Promise<string> {
  const at = `/run/forge-agent/grub-${name}`;
  const st = await mountVm(v, name, err, at);
  const binds: string[] = [];
  try {
    for (const [src, dst, args] of [['proc', 'proc', ['-t', 'proc']], ['sysfs', 'sys', ['-t', 'sysfs']], ['/dev', 'dev', ['--bind']]] as const) {
      await run('mount', [...args, src, join(at, dst)], { step: 'reinstall-grub' });
      binds.push(join(at, dst));
    }
    if (st.firmware === 'uefi' && st.esp === undefined) throw new ForgeError('NOT_FOUND', `${name} boots UEFI but its fstab names no /boot/efi partition found on its disks`, { field: 'NAME' });
    await installGrub(at, st.firmware === 'uefi' ? (st.esp as string) : (st.loops[0] as string), st.firmware, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8' });
    return st.firmware;
  } finally {
    for (const b of binds.reverse()) await run('umount', [b], { step: 'reinstall-grub', allowFail: true });
    await release(st);
    rmSync(at, { recursive: true, force: true });
  }
}
