/**
 * Snapshots of a forge VM, the way VM for ALT (seed 004) and VMK (seed 002)
 * keep them: copies of the disk files in a directory beside the first disk,
 * `NAME.snapshots/SNAP/`, one copy per disk (named by its guest device) and a
 * meta.json; `LAST` is a symlink to the newest. Copies are made with
 * `cp --reflink=auto --sparse=always`: instant and sharing blocks on btrfs or
 * XFS (VMK's reflink snapshots), a sparse full copy elsewhere. A live
 * snapshot also keeps the VM's memory (`virsh save`, libvirt's own format),
 * so restoring it resumes the guest where it was.
 *
 * The naming rules are pure (nextSnapshotName, checkSnapshotName); the rest
 * is file work, all-or-nothing: a snapshot is written into `.tmp-SNAP` and
 * renamed into place, a restore copies into `DISK.restore-tmp` and renames
 * over the disk only when every copy succeeded.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { sh } from './disk.js';
import type { DomainDisk, DomainInfo } from './domain.js';

export const LAST = 'LAST';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface SnapshotDisk {
  target: string;
  /** The disk file the copy belongs to. */
  source: string;
  format: string;
  /** File name of the copy inside the snapshot directory. */
  file: string;
}

export interface SnapshotMeta {
  name: string;
  /** ISO-8601 */
  time: string;
  comment: string;
  disks: SnapshotDisk[];
  /** A live snapshot: memory.save holds the running guest (virsh save). */
  memory: boolean;
}

export interface SnapshotRow extends SnapshotMeta {
  /** Bytes the snapshot's files occupy on disk (allocated blocks, so sparse and shared copies count what they use). */
  size: number;
  last: boolean;
}

/** S0, S1, ...: one past the highest S<n> there is (so a deleted S1 is not reused while S2 exists). */
export function nextSnapshotName(existing: readonly string[]): string {
  let max = -1;
  for (const n of existing) {
    const m = /^S(\d+)$/.exec(n);
    if (m !== null) max = Math.max(max, Number(m[1]));
  }
  return `S${max + 1}`;
}

export function checkSnapshotName(name: string): string {
  if (name === LAST) throw new ForgeError('USAGE', `snapshot name LAST is reserved (it points at the newest snapshot)`, { field: 'SNAP' });
  if (!NAME_RE.test(name)) throw new ForgeError('USAGE', `snapshot name '${name}': letters, digits, '.', '_', '-' (at most 64)`, { field: 'SNAP' });
  return name;
}

/** The disks a snapshot copies: file-backed disks (cdroms and installer media are not the VM's state). */
export function snapshotDisks(info: DomainInfo): DomainDisk[] {
  const disks = info.disks.filter((d) => d.device === 'disk');
  for (const d of disks) {
    if (d.type !== 'file' || d.source === '') {
      throw new ForgeError('VIRT_FAILED', `disk ${d.target} of ${info.name} is a ${d.type} disk; snapshots cover file disks (qcow2/raw images) only`, { field: d.target });
    }
  }
  if (disks.length === 0) throw new ForgeError('VIRT_FAILED', `${info.name} has no disk to snapshot`);
  return disks;
}

export function snapshotRoot(info: DomainInfo): string {
  const d = snapshotDisks(info)[0] as DomainDisk;
  return join(dirname(d.source), `${info.name}.snapshots`);
}

export async function copyFile(src: string, dst: string): Promise<void> {
  await sh('cp', ['--reflink=auto', '--sparse=always', src, dst], 3_600_000);
}

function allocated(path: string): number {
  let total = 0;
  for (const f of readdirSync(path)) {
    const st = statSync(join(path, f));
    total += st.blocks * 512;
  }
  return total;
}

function lastTarget(root: string): string | undefined {
  try {
    return readlinkSync(join(root, LAST));
  } catch {
    return undefined;
  }
}

function setLast(root: string, name: string | undefined): void {
  rmSync(join(root, LAST), { force: true });
  if (name !== undefined) symlinkSync(name, join(root, LAST));
}

function readMeta(dir: string): SnapshotMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as SnapshotMeta;
    return typeof m.name === 'string' && Array.isArray(m.disks) ? m : undefined;
  } catch {
    return undefined;
  }
}

export function listSnapshots(root: string): SnapshotRow[] {
  if (!existsSync(root)) return [];
  const last = lastTarget(root);
  const rows: SnapshotRow[] = [];
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const meta = readMeta(join(root, e.name));
    if (meta === undefined) continue;
    rows.push({ ...meta, size: allocated(join(root, e.name)), last: e.name === last });
  }
  return rows.sort((a, b) => a.time.localeCompare(b.time) || a.name.localeCompare(b.name, 'en', { numeric: true }));
}

/** LAST or a name -> the snapshot's metadata; NOT_FOUND naming what there is. */
export function findSnapshot(root: string, name: string): SnapshotMeta {
  const real = name === LAST ? lastTarget(root) : name;
  const rows = listSnapshots(root);
  const hit = rows.find((r) => r.name === real);
  if (hit === undefined) {
    const have = rows.map((r) => r.name).join(', ') || 'none';
    throw new ForgeError('NOT_FOUND', `no snapshot ${name}${name === LAST ? '' : ''} (snapshots: ${have})`, { field: 'SNAP' });
  }
  return hit;
}

export interface CreateOptions {
  name: string | undefined;
  comment: string;
  now: Date;
  /** Writes the running guest's memory to this file and stops it (virsh save); called before the disks are copied. */
  saveMemory?: (file: string) => Promise<void>;
}

export async function createSnapshot(info: DomainInfo, o: CreateOptions): Promise<SnapshotMeta> {
  const disks = snapshotDisks(info);
  const root = snapshotRoot(info);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const existing = listSnapshots(root).map((r) => r.name);
  const name = o.name === undefined ? nextSnapshotName(existing) : checkSnapshotName(o.name);
  if (existing.includes(name) || existsSync(join(root, name))) throw new ForgeError('VIRT_EXISTS', `snapshot ${name} of ${info.name} exists (delete it first)`, { field: 'SNAP' });
  const tmp = join(root, `.tmp-${name}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  try {
    if (o.saveMemory !== undefined) await o.saveMemory(join(tmp, 'memory.save'));
    const out: SnapshotDisk[] = [];
    for (const d of disks) {
      const file = `${d.target}.${d.format === 'raw' ? 'img' : d.format || 'img'}`;
      await copyFile(d.source, join(tmp, file));
      out.push({ target: d.target, source: d.source, format: d.format, file });
    }
    const meta: SnapshotMeta = { name, time: o.now.toISOString(), comment: o.comment, disks: out, memory: o.saveMemory !== undefined };
    writeFileSync(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    renameSync(tmp, join(root, name));
    setLast(root, name);
    return meta;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Copies the snapshot's disks back over the VM's (all or nothing). Returns the memory file of a live snapshot. */
export async function restoreSnapshot(root: string, name: string): Promise<{ meta: SnapshotMeta; memoryFile: string | undefined }> {
  const meta = findSnapshot(root, name);
  const dir = join(root, meta.name);
  const staged: { tmp: string; dest: string }[] = [];
  try {
    for (const d of meta.disks) {
      const tmp = join(dirname(d.source), `.${basename(d.source)}.restore-tmp`);
      mkdirSync(dirname(d.source), { recursive: true });
      await copyFile(join(dir, d.file), tmp);
      staged.push({ tmp, dest: d.source });
    }
  } catch (e) {
    for (const s of staged) rmSync(s.tmp, { force: true });
    throw e;
  }
  for (const s of staged) renameSync(s.tmp, s.dest);
  return { meta, memoryFile: meta.memory ? join(dir, 'memory.save') : undefined };
}

export function deleteSnapshot(root: string, name: string): SnapshotMeta {
  const meta = findSnapshot(root, name);
  const wasLast = lastTarget(root) === meta.name;
  rmSync(join(root, meta.name), { recursive: true, force: true });
  if (wasLast) setLast(root, listSnapshots(root).at(-1)?.name);
  return meta;
}
