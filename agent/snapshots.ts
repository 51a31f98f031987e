/**
 * Disk snapshots of a forge VM, the way VM for ALT (seed 004) names them and
 * VMK (seed 002) makes them, in one of two kinds per disk:
 *
 *  - reflink: where the disk's filesystem clones files (btrfs, XFS made with
 *    reflink=1: `cp --reflink=always` succeeds), the snapshot is a clone of
 *    the disk file in `NAME.snapshots/SNAP/`. It costs no data blocks until
 *    the guest writes, the disk file stays where it is, and restore clones it
 *    back (VMK's snapshots).
 *  - overlay (everywhere else): a qcow2 external snapshot. The disk file is
 *    frozen as the snapshot's image and the domain's disk becomes a new qcow2
 *    overlay on it (`qemu-img create -b IMAGE -F FMT`, QEMU's docs/interop/
 *    qcow2.txt "backing file"), so the snapshot costs one empty overlay and
 *    the guest's later writes, never a copy. The chain is kept by forge-agent
 *    with qemu-img, because libvirt 9.0 cannot revert or delete external
 *    snapshots itself; the caller keeps the domain XML in step (the disk's
 *    file and driver type, see `DiskChange`).
 *
 * Restore replaces the disk with a fresh overlay on the snapshot's image
 * (overlay) or a clone of the snapshot's copy (reflink); the replaced disk is
 * dropped (it never is a snapshot's image: an overlay snapshot moves the disk
 * to a new file). Delete keeps every chain consistent: each file backed by
 * the deleted image (the disk, later snapshots' images, clones of them) is
 * rebased onto the image's own backing file with `qemu-img rebase` (safe
 * mode: the data the image held is copied into the child), then the image is
 * removed. An image in another domain's chain is never deleted.
 *
 * A live snapshot also keeps the VM's memory (`virsh save`, libvirt's own
 * format), so restoring it resumes the guest where it was.
 *
 * Naming rules are pure (nextSnapshotName, checkSnapshotName); the file work
 * is all-or-nothing: a snapshot is written into `.tmp-SNAP` and renamed into
 * place only after the caller applied the disk changes; a restore stages every
 * new disk file before any is renamed over the old one.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { sh } from './disk.js';
import type { DomainDisk, DomainInfo } from './domain.js';

export const LAST = 'LAST';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export type SnapshotKind = 'reflink' | 'overlay';

export interface SnapshotDisk {
  target: string;
  /** The domain's disk file when the snapshot was taken (what a live snapshot's saved XML names). */
  source: string;
  /** Format of the image. */
  format: string;
  /** The frozen file: the former disk (overlay) or the clone in the snapshot directory (reflink). */
  image: string;
  kind: SnapshotKind;
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
  /**
   * Bytes the snapshot occupies on disk (allocated blocks): an overlay
   * snapshot's image holds only what the guest wrote before the snapshot
   * after the one before it; a reflink clone shares its blocks with the disk
   * until either is written, which st_blocks cannot tell (the size counts
   * them as if copied).
   */
  size: number;
  last: boolean;
  /** A delete of it stopped half way (DELETING is in its directory): it cannot be restored, only deleted again. */
  deleting: boolean;
}

/**
 * The journal of a snapshot delete, in the snapshot's directory: written before the first image is changed, gone
 * with the directory when the delete is done. Its files are what the delete will remove (merged overlays), so a
 * delete run again after a failure (the domain's redefine, say) finishes the job without leaving any behind.
 */
const DELETING = 'deleting.json';

/** A domain disk that now lives in another file or format (the domain XML must follow). */
export interface DiskChange {
  target: string;
  from: string;
  file: string;
  format: string;
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

/** The disks a snapshot covers: file-backed disks (cdroms and installer media are not the VM's state). */
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

/**
 * `DIR/NAME.snapshots` beside the VM's first disk. After overlay snapshots
 * the disk lives in a file next to the original one, so the directory stays
 * where the first snapshot put it.
 */
export function snapshotRoot(info: DomainInfo): string {
  const d = snapshotDisks(info)[0] as DomainDisk;
  return join(dirname(d.source), `${info.name}.snapshots`);
}

export async function copyFile(src: string, dst: string): Promise<void> {
  await sh('cp', ['--reflink=auto', '--sparse=always', src, dst], 3_600_000);
}

/** A clone sharing the source's blocks, or false where the filesystem cannot (ext4, tmpfs, across filesystems). */
export async function reflinkCopy(src: string, dst: string): Promise<boolean> {
  try {
    await sh('cp', ['--reflink=always', src, dst], 3_600_000);
    return true;
  } catch (e) {
    rmSync(dst, { force: true });
    if (e instanceof ForgeError && /clone|reflink|not supported|Invalid cross-device/i.test(e.message)) return false;
    throw e;
  }
}

/** What qemu-img says of an image: format, virtual size, its direct backing file (absolute, '' when none). */
export async function imageInfo(file: string): Promise<{ format: string; virtualSize: number; backing: string; backingFormat: string }> {
  // -U: a running VM's disk is locked by qemu; reading its header is still safe.
  const j = JSON.parse(await sh('qemu-img', ['info', '-U', '--output=json', file])) as Record<string, unknown>;
  const b = j['full-backing-filename'] ?? j['backing-filename'];
  return {
    format: String(j['format'] ?? ''),
    virtualSize: Number(j['virtual-size'] ?? 0),
    backing: typeof b === 'string' ? b : '',
    backingFormat: typeof j['backing-filename-format'] === 'string' ? (j['backing-filename-format'] as string) : '',
  };
}

/** Every file of a disk's backing chain, the disk first (qemu-img info --backing-chain). */
export async function backingChain(file: string): Promise<string[]> {
  try {
    const j = JSON.parse(await sh('qemu-img', ['info', '-U', '--backing-chain', '--output=json', file])) as unknown;
    const list = Array.isArray(j) ? (j as Record<string, unknown>[]) : [j as Record<string, unknown>];
    return list.map((x) => String(x['filename'] ?? '')).filter((f) => f !== '');
  } catch {
    return existsSync(file) ? [file] : [];
  }
}

/**
 * The file an overlay snapshot moves disk `source` to: `STEM.N.qcow2` beside
 * the original, N the first number free (STEM without an earlier `.N`), so
 * the disk's name keeps saying which VM and disk it is.
 */
export function overlayPath(source: string, exists: (f: string) => boolean = existsSync): string {
  const stem = basename(source, extname(source)).replace(/\.\d+$/, '');
  for (let n = 1; ; n++) {
    const f = join(dirname(source), `${stem}.${n}.qcow2`);
    if (!exists(f)) return f;
  }
}

function allocated(path: string): number {
  try {
    return statSync(path).blocks * 512;
  } catch {
    return 0;
  }
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

interface LegacyDisk {
  target: string;
  source: string;
  format: string;
  file?: string;
  image?: string;
  kind?: SnapshotKind;
}

function readMeta(dir: string): SnapshotMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Omit<SnapshotMeta, 'disks'> & { disks: LegacyDisk[] };
    if (typeof m.name !== 'string' || !Array.isArray(m.disks)) return undefined;
    // Snapshots of earlier versions were copies in the directory: the reflink kind (a copy, restored by copying).
    const disks = m.disks.map((d): SnapshotDisk => ({
      target: d.target, source: d.source, format: d.format, image: d.image ?? join(dir, d.file ?? ''), kind: d.kind ?? 'reflink',
    }));
    return { ...m, disks };
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
    const dir = join(root, e.name);
    const meta = readMeta(dir);
    if (meta === undefined) continue;
    // The directory's own files (meta, memory, reflink clones) and the overlay images kept elsewhere.
    let size = readdirSync(dir).reduce((n, f) => n + allocated(join(dir, f)), 0);
    for (const d of meta.disks) if (dirname(d.image) !== dir) size += allocated(d.image);
    rows.push({ ...meta, size, last: e.name === last, deleting: existsSync(join(dir, DELETING)) });
  }
  return rows.sort((a, b) => a.time.localeCompare(b.time) || a.name.localeCompare(b.name, 'en', { numeric: true }));
}

/** LAST or a name -> the snapshot's metadata; NOT_FOUND naming what there is. */
export function findSnapshot(root: string, name: string): SnapshotRow {
  const real = name === LAST ? lastTarget(root) : name;
  const rows = listSnapshots(root);
  const hit = rows.find((r) => r.name === real);
  if (hit === undefined) {
    const have = rows.map((r) => r.name).join(', ') || 'none';
    throw new ForgeError('NOT_FOUND', `no snapshot ${name} (snapshots: ${have})`, { field: 'SNAP' });
  }
  return hit;
}

/** Every file some snapshot of the VM holds as its image. */
function snapshotImages(root: string): Set<string> {
  return new Set(listSnapshots(root).flatMap((r) => r.disks.map((d) => d.image)));
}

export interface CreateOptions {
  name: string | undefined;
  comment: string;
  now: Date;
  /** reflink|overlay, or auto (undefined): reflink where the filesystem clones, else overlay. */
  kind?: SnapshotKind;
  /** Writes the running guest's memory to this file and stops it (virsh save); called before the disks are touched. */
  saveMemory?: (file: string) => Promise<void>;
  /** Points the domain at its new disk files (virsh define); the snapshot exists only once this succeeded. */
  apply(changes: DiskChange[]): Promise<void>;
}

export async function createSnapshot(info: DomainInfo, o: CreateOptions): Promise<{ meta: SnapshotMeta; changes: DiskChange[] }> {
  const disks = snapshotDisks(info);
  const root = snapshotRoot(info);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const existing = listSnapshots(root).map((r) => r.name);
  const name = o.name === undefined ? nextSnapshotName(existing) : checkSnapshotName(o.name);
  if (existing.includes(name) || existsSync(join(root, name))) throw new ForgeError('VIRT_EXISTS', `snapshot ${name} of ${info.name} exists (delete it first)`, { field: 'SNAP' });
  for (const d of disks) {
    if (!existsSync(d.source)) throw new ForgeError('NOT_FOUND', `disk ${d.target} of ${info.name} (${d.source}) is missing: nothing to snapshot (snapshot restore puts one back)`, { field: d.target });
  }
  const tmp = join(root, `.tmp-${name}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  const made: string[] = [];
  try {
    if (o.saveMemory !== undefined) await o.saveMemory(join(tmp, 'memory.save'));
    const out: SnapshotDisk[] = [];
    const changes: DiskChange[] = [];
    for (const d of disks) {
      const format = d.format || (await imageInfo(d.source)).format || 'raw';
      const file = `${d.target}.${format === 'raw' ? 'img' : format}`;
      if (o.kind !== 'overlay' && (await reflinkCopy(d.source, join(tmp, file)))) {
        out.push({ target: d.target, source: d.source, format, image: join(root, name, file), kind: 'reflink' });
        continue;
      }
      if (o.kind === 'reflink') {
        throw new ForgeError('USAGE', `--kind reflink: the filesystem of ${d.source} cannot clone files (btrfs, or XFS made with reflink=1, can); leave --kind out for a qcow2 overlay`, { field: 'kind' });
      }
      // The disk is frozen where it is; the guest writes to a new overlay from now on.
      const ov = overlayPath(d.source, (f) => existsSync(f) || made.includes(f));
      await sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', d.source, '-F', format, ov]);
      made.push(ov);
      out.push({ target: d.target, source: d.source, format, image: d.source, kind: 'overlay' });
      changes.push({ target: d.target, from: d.source, file: ov, format: 'qcow2' });
    }
    const meta: SnapshotMeta = { name, time: o.now.toISOString(), comment: o.comment, disks: out, memory: o.saveMemory !== undefined };
    writeFileSync(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    if (changes.length > 0) await o.apply(changes);
    renameSync(tmp, join(root, name));
    setLast(root, name);
    return { meta, changes };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    for (const f of made) rmSync(f, { force: true });
    throw e;
  }
}

export interface RestoreOptions {
  /** The domain's disks now (their files may be missing). */
  disks: DomainDisk[];
  /** Files other domains use (disks and their chains): never replaced. */
  used: Set<string>;
  apply(changes: DiskChange[]): Promise<void>;
}

/**
 * Gives the VM the snapshot's disks: a new overlay on each overlay image, a
 * clone of each reflink copy (all or nothing). The disk file is reused when
 * it is the VM's own; the old contents are dropped. Returns the memory file
 * of a live snapshot and the changes made to the domain's disks.
 */
export async function restoreSnapshot(root: string, name: string, o: RestoreOptions): Promise<{ meta: SnapshotMeta; memoryFile: string | undefined; changes: DiskChange[] }> {
  const meta = findSnapshot(root, name);
  if (meta.deleting) throw incomplete(meta.name);
  const images = snapshotImages(root);
  const staged: { tmp: string; dest: string; old: string }[] = [];
  const changes: DiskChange[] = [];
  try {
    for (const s of meta.disks) {
      if (!existsSync(s.image)) throw new ForgeError('NOT_FOUND', `snapshot ${meta.name}: the image of ${s.target} (${s.image}) is missing`, { field: 'SNAP' });
      const cur = o.disks.find((d) => d.target === s.target);
      const now = cur?.source ?? s.source;
      // Never overwrite a snapshot's image or another domain's file: the VM gets a new file then.
      const dest = images.has(now) || o.used.has(now) ? overlayPath(now) : now;
      const tmp = join(dirname(dest), `.${basename(dest)}.restore-tmp`);
      rmSync(tmp, { force: true });
      if (s.kind === 'overlay') await sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', s.image, '-F', s.format, tmp]);
      else await copyFile(s.image, tmp);
      staged.push({ tmp, dest, old: now });
      const format = s.kind === 'overlay' ? 'qcow2' : s.format;
      if (dest !== now || format !== (cur?.format ?? '')) changes.push({ target: s.target, from: now, file: dest, format });
    }
    for (const s of staged) renameSync(s.tmp, s.dest);
    if (changes.length > 0) await o.apply(changes);
  } catch (e) {
    for (const s of staged) rmSync(s.tmp, { force: true });
    throw e;
  }
  return { meta, memoryFile: meta.memory ? join(root, meta.name, 'memory.save') : undefined, changes };
}

export interface DeleteOptions {
  /** The domain's disk files now. */
  disks: string[];
  /** Files in other domains' chains -> the domain using each. */
  usedBy: Map<string, string>;
  /** Points the domain at the merged file when its disk was committed into the deleted image. */
  apply(changes: DiskChange[]): Promise<void>;
}

function rewriteMeta(root: string, from: string, to: string, format: string): void {
  for (const r of listSnapshots(root)) {
    if (!r.disks.some((d) => d.image === from)) continue;
    const disks = r.disks.map((d) => (d.image === from ? { ...d, image: to, format } : d));
    const meta: SnapshotMeta = { name: r.name, time: r.time, comment: r.comment, disks, memory: r.memory };
    writeFileSync(join(root, r.name, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  }
}

/**
 * Deletes a snapshot and keeps every chain whole. When one file sits on the
 * snapshot's image (the usual chain: the VM's disk, or the next snapshot's
 * image), that file is committed into the image (`qemu-img commit`: only
 * its own clusters are written) and the image takes its place: the files on
 * top of it are re-pointed (`qemu-img rebase -u`, header only: the data is
 * the same), the domain's disk or the other snapshot's image becomes the
 * merged file. So deleting a VM's only snapshot gives it back its original
 * disk file and format. When several files sit on the image (snapshots
 * restored and branched), each is rebased onto the image's own backing file
 * (safe mode: the image's data is copied into each), then the image goes.
 * An image in another domain's chain is refused.
 */
function incomplete(name: string): ForgeError {
  return new ForgeError('SNAPSHOT_INCOMPLETE', `snapshot ${name}: an earlier delete stopped half way (its image already holds later writes, so it cannot be restored); run snapshot delete ${name} again to finish it`, { field: 'SNAP' });
}

export async function deleteSnapshot(root: string, name: string, o: DeleteOptions): Promise<SnapshotMeta> {
  const meta = findSnapshot(root, name);
  const journal = join(root, meta.name, DELETING);
  const resumed = ((): string[] => {
    try {
      const j = JSON.parse(readFileSync(journal, 'utf8')) as { drop?: unknown };
      return Array.isArray(j.drop) ? j.drop.filter((f): f is string => typeof f === 'string') : [];
    } catch {
      return [];
    }
  })();
  const others = listSnapshots(root).filter((r) => r.name !== meta.name);
  const keep = new Set(others.flatMap((r) => r.disks.map((d) => d.image)));
  for (const d of meta.disks) {
    const user = o.usedBy.get(d.image);
    if (user !== undefined) throw new ForgeError('VIRT_IN_USE', `snapshot ${meta.name}: its image ${d.image} is in the backing chain of domain ${user}'s disk; remove or flatten that first`, { field: 'SNAP' });
  }
  const files = [...new Set([...o.disks, ...keep])].filter((f) => existsSync(f));
  const backing = new Map<string, string>();
  for (const f of files) backing.set(f, (await imageInfo(f)).backing);
  const changes: DiskChange[] = [];
  // A resumed delete: what the first run merged (and meant to remove) goes now, unless something still uses it.
  const drop: string[] = resumed.filter((f) => !o.disks.includes(f) && !keep.has(f) && !o.usedBy.has(f));
  // Written before each image changes: a failure from then on leaves the snapshot marked, never restorable as if whole.
  const record = (): void => writeFileSync(journal, JSON.stringify({ since: new Date().toISOString(), drop }) + '\n');
  for (const d of meta.disks) {
    if (keep.has(d.image) || !existsSync(d.image)) continue; // still another snapshot's (an older copy's) image
    const children = files.filter((f) => f !== d.image && backing.get(f) === d.image);
    // (A reflink copy lives in the snapshot's own directory, which goes: it never takes a child's place.)
    const only = children.length === 1 && dirname(d.image) !== join(root, meta.name) ? (children[0] as string) : undefined;
    if (only !== undefined) {
      drop.push(only);
      record();
      await sh('qemu-img', ['commit', '-q', '-f', 'qcow2', '-d', only], 3_600_000);
      for (const g of files.filter((f) => backing.get(f) === only)) {
        await sh('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', d.image, '-F', d.format, g]);
        backing.set(g, d.image);
      }
      if (o.disks.includes(only)) changes.push({ target: d.target, from: only, file: d.image, format: d.format });
      rewriteMeta(root, only, d.image, d.format);
      continue;
    }
    const info = await imageInfo(d.image);
    drop.push(d.image);
    record();
    for (const f of children) {
      // Safe rebase: the clusters the image held and its backing does not are written into the child.
      await sh('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-b', info.backing, ...(info.backing === '' ? [] : ['-F', info.backingFormat || (await imageInfo(info.backing)).format]), f], 3_600_000);
      backing.set(f, info.backing);
    }
  }
  if (changes.length > 0) {
    try {
      await o.apply(changes);
    } catch (e) {
      // The chain is whole (the domain still reads its overlay, which sits on the merged image), but the domain was
      // not moved onto the merged file: the snapshot stays, marked, until a second delete finishes.
      throw new ForgeError('SNAPSHOT_INCOMPLETE', `snapshot ${meta.name}: merged, but the domain could not be pointed at the merged disk (${(e as Error).message.split('\n')[0] ?? ''}); the VM's disks are unchanged and consistent; run snapshot delete ${meta.name} again to finish`, { field: 'SNAP' });
    }
  }
  const wasLast = lastTarget(root) === meta.name;
  for (const f of drop) if (dirname(f) !== join(root, meta.name)) rmSync(f, { force: true });
  rmSync(join(root, meta.name), { recursive: true, force: true });
  if (wasLast) setLast(root, listSnapshots(root).at(-1)?.name);
  return meta;
}
