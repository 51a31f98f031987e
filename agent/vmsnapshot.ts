/**
 * `forge-agent snapshot create|list|restore|delete` and the restore of LAST at `vm start` when a
 * disk file is missing (seed 004): the domain side of agent/snapshots.ts (which owns the images
 * and their metadata): live snapshots' memory, redefining the domain on its new disk files.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { moveDisks, parseDomainXml, type DomainInfo } from './domain.js';
import { createSnapshot, deleteSnapshot, LAST, listSnapshots, restoreSnapshot, snapshotRoot, type SnapshotKind, type SnapshotMeta } from './snapshots.js';
import type { ParsedSub } from './subcommands.js';
import { defineWith, filesOfOthers, forgeDomain, human, isRunning, needForce, refuseRunning, report, tmpXml, Virsh, type VmContext } from './virsh.js';

/** Seed 004: a VM whose disk is gone but which has snapshots gets LAST back before it starts. */
export async function restoreMissing(v: Virsh, ctx: VmContext, info: DomainInfo): Promise<boolean> {
  const missing = info.disks.filter((d) => d.device === 'disk' && d.type === 'file' && d.source !== '' && !existsSync(d.source));
  if (missing.length === 0) return false;
  let root: string;
  try {
    root = snapshotRoot(info);
  } catch {
    return false;
  }
  const rows = listSnapshots(root);
  if (rows.length === 0) return false;
  const last = rows.find((r) => r.last) ?? rows.at(-1);
  ctx.io.err(`${info.name}: disk ${missing.map((d) => d.source).join(', ')} missing; restoring snapshot LAST (${last?.name ?? '?'}) first`);
  const { meta } = await restoreSnapshot(root, LAST, { disks: info.disks, used: new Set((await filesOfOthers(v, info.name)).keys()), apply: defineWith(v, info.name) });
  await report(ctx, info, 'snapshot_restore', { snapshot: meta.name, reason: 'disk missing at start' });
  return true;
}

/**
 * Starts the guest saved in a live snapshot's memory file on the VM's disks
 * as they are now: the saved XML names the disk files at save time, which an
 * overlay snapshot or a restore has replaced (virsh restore --xml may change
 * host-side paths, not the guest ABI).
 */
export async function resumeSaved(v: Virsh, name: string, memoryFile: string, meta: SnapshotMeta): Promise<void> {
  const now = parseDomainXml(await v.xml(name, true)).disks;
  const map = new Map<string, { file: string; format: string }>();
  for (const s of meta.disks) {
    const d = now.find((x) => x.target === s.target);
    if (d !== undefined && d.source !== s.source) map.set(s.source, { file: d.source, format: d.format });
  }
  if (map.size === 0) {
    await v.run(['restore', memoryFile], 3_600_000);
    return;
  }
  const f = tmpXml(moveDisks(await v.run(['save-image-dumpxml', memoryFile]), map));
  try {
    await v.run(['restore', memoryFile, '--xml', f], 3_600_000);
  } finally {
    rmSync(f, { force: true });
  }
}

export async function snapshotCreate(v: Virsh, ctx: VmContext, p: ParsedSub): Promise<void> {
  const [name, snap] = p.args as [string, string | undefined];
  const info = await forgeDomain(v, name);
  const live = p.flags.get('live') === true;
  const st = await v.state(name);
  const comment = typeof p.flags.get('comment') === 'string' ? (p.flags.get('comment') as string) : '';
  if (comment.length > 1000) throw new ForgeError('USAGE', '--comment: at most 1000 characters', { field: 'comment' });
  if (isRunning(st) && !live) {
    throw new ForgeError('VM_RUNNING', `${name} is ${st}: a disk snapshot needs it stopped; add --live to snapshot it running, with its memory`, { field: 'NAME' });
  }
  if (live && !isRunning(st)) throw new ForgeError('USAGE', `--live: ${name} is not running (a stopped VM gets a disk snapshot without --live)`, { field: 'live' });
  const k = p.flags.get('kind') ?? 'auto';
  if (k !== 'auto' && k !== 'reflink' && k !== 'overlay') throw new ForgeError('USAGE', `--kind must be one of auto|reflink|overlay, not '${String(k)}'`, { field: 'kind' });
  const { meta } = await createSnapshot(info, {
    name: snap,
    comment,
    now: ctx.now(),
    ...(k === 'auto' ? {} : { kind: k as SnapshotKind }),
    apply: defineWith(v, name),
    ...(live
      ? {
          saveMemory: async (file: string) => {
            // virsh save stops the guest with its memory in FILE; the disks are then quiescent to copy.
            await v.run(['save', name, file, '--running'], 3_600_000);
          },
        }
      : {}),
  });
  if (live) {
    // Resume at once from the state just saved, on the disks as they now are (an overlay's new file).
    await resumeSaved(v, name, join(snapshotRoot(info), meta.name, 'memory.save'), meta);
  }
  const kinds = [...new Set(meta.disks.map((d) => d.kind))].join('+');
  ctx.io.out(`${name}: snapshot ${meta.name} created${meta.memory ? ' (live, with memory)' : ''} as ${kinds === 'overlay' ? 'a qcow2 overlay' : kinds === 'reflink' ? 'a reflink copy' : `${kinds} disks`} (LAST -> ${meta.name})`);
  await report(ctx, info, 'snapshot_create', { snapshot: meta.name, comment: meta.comment, live: meta.memory, kind: kinds });
}

export async function snapshotList(v: Virsh, ctx: VmContext, name: string): Promise<void> {
  const info = await forgeDomain(v, name);
  const rows = listSnapshots(snapshotRoot(info));
  if (rows.length === 0) {
    ctx.io.out(`${name} has no snapshots`);
    return;
  }
  const table = [['NAME', 'TIME', 'SIZE', 'KIND', 'COMMENT'], ...rows.map((r) => [
    `${r.name}${r.last ? ' (LAST)' : ''}${r.memory ? ' [live]' : ''}${r.deleting ? ' [half deleted: run snapshot delete again]' : ''}`, r.time, human(r.size), [...new Set(r.disks.map((d) => d.kind))].join('+'), r.comment,
  ])];
  const w = table[0]!.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length)));
  for (const r of table) ctx.io.out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i] as number))).join('  '));
}

export async function snapshotRestore(v: Virsh, ctx: VmContext, p: ParsedSub): Promise<void> {
  const [name, snap] = p.args as [string, string | undefined];
  const info = await forgeDomain(v, name);
  await refuseRunning(v, info, 'snapshot restore');
  const disks = info.disks.filter((d) => d.device === 'disk' && d.type === 'file');
  if (disks.some((d) => existsSync(d.source))) needForce(p, `restoring replaces the current disks of ${name} (take a snapshot first to keep them)`);
  const { meta, memoryFile } = await restoreSnapshot(snapshotRoot(info), snap ?? LAST, {
    disks: info.disks, used: new Set((await filesOfOthers(v, name)).keys()), apply: defineWith(v, name),
  });
  if (memoryFile !== undefined) {
    await resumeSaved(v, name, memoryFile, meta);
    ctx.io.out(`${name}: restored snapshot ${meta.name} and resumed it (live snapshot)`);
  } else {
    ctx.io.out(`${name}: restored snapshot ${meta.name}`);
  }
  await report(ctx, info, 'snapshot_restore', { snapshot: meta.name });
}

export async function snapshotDelete(v: Virsh, ctx: VmContext, p: ParsedSub): Promise<void> {
  const [name, snap] = p.args as [string, string];
  const info = await forgeDomain(v, name);
  const root = snapshotRoot(info);
  needForce(p, `deleting snapshot ${snap} of ${name} loses it`);
  const meta = await deleteSnapshot(root, snap, {
    disks: info.disks.filter((d) => d.device === 'disk' && d.type === 'file').map((d) => d.source),
    usedBy: await filesOfOthers(v, name),
    apply: defineWith(v, name),
  });
  const last = listSnapshots(root).find((r) => r.last);
  ctx.io.out(`${name}: snapshot ${meta.name} deleted${last !== undefined ? ` (LAST -> ${last.name})` : ''}`);
  await report(ctx, info, 'snapshot_delete', { snapshot: meta.name });
}

