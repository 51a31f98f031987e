/**
 * Disks for the VM: a qcow2 (or raw) file made with `qemu-img create`, an LVM
 * logical volume `<name>-disk01` made with `lvcreate` (as Cobbler's KVM host
 * creator named them), an existing block device, or a volume in a libvirt
 * storage pool (`virsh vol-create-as`). Nothing that holds data is replaced
 * without --force.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readSync, closeSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { ForgeError } from '../server/errors.js';
import type { DiskSpec } from './domxml.js';
import type { DiskBus } from './options.js';
import type { DiskTarget } from './plan.js';

const run = promisify(execFile);

export async function sh(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { code?: unknown; stderr?: string; message: string };
    if (err.code === 'ENOENT') throw new ForgeError('VIRT_UNAVAILABLE', `${cmd} is not installed (needed for this disk or libvirt operation)`);
    throw new ForgeError('VIRT_FAILED', `${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`, { cause: e });
  }
}

/** The disk as the domain XML names it, without creating anything (for --display too). */
export function diskSpec(t: DiskTarget, domain: string, format: 'qcow2' | 'raw', bus: DiskBus, diskNo = 1): DiskSpec {
  switch (t.kind) {
    case 'dir':
      return { kind: 'file', path: `${t.dir === '/' ? '' : t.dir}/${domain}-disk${String(diskNo).padStart(2, '0')}.${format === 'qcow2' ? 'qcow2' : 'img'}`, format, bus };
    case 'file':
      return { kind: 'file', path: t.path, format, bus };
    case 'lvm':
      return { kind: 'block', path: `/dev/${t.vg}/${t.lv}`, format: 'raw', bus };
    case 'device':
      return { kind: 'block', path: t.path, format: 'raw', bus };
    case 'pool':
      return { kind: 'volume', pool: t.pool, volume: t.volume, format, bus };
  }
}

/** The shell-level actions a disk needs (what --display prints). */
export function diskActions(t: DiskTarget, spec: DiskSpec, sizeGiB: number, force: boolean): string[] {
  const size = `${sizeGiB}G`;
  switch (t.kind) {
    case 'dir':
    case 'file':
      return [`${force ? 'replace' : 'create (fails if it exists)'}: qemu-img create -f ${spec.format} ${spec.kind === 'volume' ? '' : spec.path} ${size}`];
    case 'lvm':
      return [`${force ? 'replace' : 'create (fails if it exists)'}: lvcreate -y -n ${t.lv} -L ${size} ${t.vg}`];
    case 'device':
      return [`use existing device ${t.path}${force ? '' : ' (fails if it holds data)'}`];
    case 'pool':
      return [`${force ? 'replace' : 'create (fails if it exists)'}: virsh vol-create-as ${t.pool} ${t.volume} ${size} --format ${spec.format}`];
  }
}

/** The first MiB holds something other than zeros (a partition table, a filesystem, data). */
export function holdsData(dev: string): boolean {
  const fd = openSync(dev, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    const n = readSync(fd, buf, 0, buf.length, 0);
    for (let i = 0; i < n; i++) if (buf[i] !== 0) return true;
    return false;
  } finally {
    closeSync(fd);
  }
}

function exists(what: string): ForgeError {
  return new ForgeError('VIRT_EXISTS', `${what} already exists; use --force to overwrite it`, { field: 'virt-path' });
}

/** Create (or check) the disk. Returns the spec for the domain XML. */
export async function prepareDisk(t: DiskTarget, spec: DiskSpec, sizeGiB: number, force: boolean, virsh: (args: string[]) => Promise<string>): Promise<DiskSpec> {
  const size = `${sizeGiB}G`;
  switch (t.kind) {
    case 'dir':
    case 'file': {
      if (spec.kind === 'volume') throw new Error('unreachable: file disk with a volume spec');
      if (existsSync(spec.path)) {
        if (!force) throw exists(`disk ${spec.path}`);
        rmSync(spec.path, { force: true });
      }
      mkdirSync(dirname(spec.path), { recursive: true });
      await sh('qemu-img', ['create', '-q', '-f', spec.format, spec.path, size]);
      return spec;
    }
    case 'lvm': {
      const lvPath = `${t.vg}/${t.lv}`;
      let present = true;
      try {
        await sh('lvs', ['--noheadings', lvPath]);
      } catch {
        present = false;
      }
      if (present) {
        if (!force) throw exists(`logical volume ${lvPath}`);
        await sh('lvremove', ['-f', lvPath]);
      }
      await sh('lvcreate', ['-y', '-W', 'y', '-n', t.lv, '-L', size, t.vg]);
      return spec;
    }
    case 'device': {
      let st;
      try {
        st = statSync(t.path);
      } catch {
        throw new ForgeError('VIRT_FAILED', `device ${t.path} does not exist`, { field: 'virt-path' });
      }
      if (!st.isBlockDevice()) throw new ForgeError('VIRT_FAILED', `${t.path} is not a block device`, { field: 'virt-path' });
      if (!force && holdsData(t.path)) throw exists(`data on ${t.path}`);
      return spec;
    }
    case 'pool': {
      let present = true;
      try {
        await virsh(['vol-info', '--pool', t.pool, t.volume]);
      } catch {
        present = false;
      }
      if (present) {
        if (!force) throw exists(`volume ${t.volume} in pool ${t.pool}`);
        await virsh(['vol-delete', '--pool', t.pool, t.volume]);
      }
      await virsh(['vol-create-as', t.pool, t.volume, size, '--format', spec.format]);
      return spec;
    }
  }
}

/** Undo prepareDisk for a disk this run created (an existing device is never touched). */
export async function removeDisk(t: DiskTarget, spec: DiskSpec, virsh: (args: string[]) => Promise<string>): Promise<void> {
  switch (t.kind) {
    case 'dir':
    case 'file':
      if (spec.kind !== 'volume') rmSync(spec.path, { force: true });
      return;
    case 'lvm':
      await sh('lvremove', ['-f', `${t.vg}/${t.lv}`]);
      return;
    case 'pool':
      await virsh(['vol-delete', '--pool', t.pool, t.volume]);
      return;
    case 'device':
      return;
  }
}
