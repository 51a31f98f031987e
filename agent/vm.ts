/**
 * `forge-agent vm|snapshot|snap|clone|console|job|ssh-key ...`: managing the VMs
 * forge-agent made (seed 002 VMK, seed 004 VM for ALT). Only domains carrying
 * forge's <metadata> marker are touched; every action is also recorded as a
 * `vm_action` event on the VM's forge system record (best effort: a VM
 * installed from a profile has no record, and without a server or token
 * the warning says so once).
 *
 * libvirt is driven through `virsh` here: these commands need nothing the
 * Node binding has and virsh lacks, and they then work where the binding is
 * not built.
 */
import { spawn } from 'node:child_process';
import { createHash, randomInt, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, extname, join, resolve as resolvePath } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { HttpForgeApi, type ForgeApi } from './api.js';
import { sh } from './disk.js';
import { moveDisks, parseDomainXml, retargetDomainXml, type DomainInfo } from './domain.js';
import { randomMac } from './plan.js';
import { backingChain, copyFile, createSnapshot, deleteSnapshot, findSnapshot, LAST, listSnapshots, restoreSnapshot, snapshotRoot, type DiskChange, type SnapshotKind, type SnapshotMeta } from './snapshots.js';
import type { ParsedSub } from './subcommands.js';
import { exitStatus, follow, hookScript, rescueDomainXml, resolveJob, stageJob, type JobSource } from './jobs.js';
import { rescueSystem } from './rescue.js';
import { mountVm, reinstallGrub, umountVm } from './maint.js';

export interface VmIo {
  out(s: string): void;
  err(s: string): void;
}

export interface VmContext {
  uri: string;
  api: ForgeApi | undefined;
  io: VmIo;
  now(): Date;
  /** Console attach (tests drive it under a pty). */
  attachConsole(uri: string, name: string): Promise<number>;
}

export class Virsh {
  constructor(readonly uri: string) {}
  run(args: string[], timeoutMs = 120_000): Promise<string> {
    return sh('virsh', ['-q', '-c', this.uri, ...args], timeoutMs);
  }
  async state(name: string): Promise<string | undefined> {
    try {
      return (await this.run(['domstate', name])).trim();
    } catch (e) {
      if (e instanceof ForgeError && /failed to get domain|not found|no domain/i.test(e.message)) return undefined;
      throw e;
    }
  }
  async names(): Promise<string[]> {
    return (await this.run(['list', '--all', '--name'])).split('\n').map((s) => s.trim()).filter((s) => s !== '');
  }
  async xml(name: string, inactive = false): Promise<string> {
    return this.run(['dumpxml', ...(inactive ? ['--inactive'] : []), name]);
  }
}

/** The forge VM NAME, or NOT_FORGE_DOMAIN (a foreign domain of that name is never touched). */
export async function forgeDomain(v: Virsh, name: string): Promise<DomainInfo> {
  const state = await v.state(name);
  if (state === undefined) throw new ForgeError('NOT_FORGE_DOMAIN', `no domain ${name} on ${v.uri}`, { field: 'NAME' });
  const info = parseDomainXml(await v.xml(name));
  if (!info.forge) throw new ForgeError('NOT_FORGE_DOMAIN', `domain ${name} was not made by forge-agent (no forge marker in its metadata); use virsh for it`, { field: 'NAME' });
  return info;
}

const RUNNING = new Set(['running', 'paused', 'in shutdown', 'blocked', 'pmsuspended']);

export function isRunning(state: string | undefined): boolean {
  return state !== undefined && RUNNING.has(state);
}

async function report(ctx: VmContext, info: DomainInfo, action: string, detail: Record<string, unknown> = {}): Promise<void> {
  if (info.system === '' || ctx.api === undefined) return;
  await ctx.api.event(info.system, 'vm_action', { action, domain: info.name, ...detail });
}

function graphicsText(info: DomainInfo): string {
  return info.graphics.map((g) => (g.port > 0 ? `${g.type}://${g.listen || '127.0.0.1'}:${g.port}` : `${g.type} (when running)`)).join(' ') || 'none';
}

function needForce(p: ParsedSub, what: string): void {
  if (p.flags.get('force') !== true) throw new ForgeError('NEEDS_FORCE', `${what}; add --force`, { field: 'force' });
}

async function refuseRunning(v: Virsh, info: DomainInfo, what: string): Promise<void> {
  const st = await v.state(info.name);
  if (isRunning(st)) throw new ForgeError('VM_RUNNING', `${info.name} is ${st}: ${what} needs it stopped (forge-agent vm stop ${info.name})`, { field: 'NAME' });
}

function human(bytes: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${u[i] as string}`;
}

async function vmList(v: Virsh, ctx: VmContext): Promise<void> {
  const rows: string[][] = [['NAME', 'STATE', 'SYSTEM', 'DISKS', 'MACS', 'CONSOLE', 'GRAPHICS']];
  for (const n of await v.names()) {
    let info: DomainInfo;
    try {
      info = parseDomainXml(await v.xml(n));
    } catch {
      continue; // a transient domain that ended between list and dumpxml
    }
    if (!info.forge) continue;
    const st = (await v.state(n)) ?? 'gone';
    rows.push([
      n,
      st,
      info.system || '-',
      info.disks.filter((d) => d.device === 'disk').map((d) => `${d.target}=${d.source || d.type}`).join(',') || '-',
      info.macs.join(',') || '-',
      info.consolePty || (isRunning(st) ? 'pty' : '-'),
      graphicsText(info),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) ctx.io.out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join('  '));
}

async function vmInfo(v: Virsh, ctx: VmContext, name: string): Promise<void> {
  const info = await forgeDomain(v, name);
  const st = await v.state(name);
  const o = ctx.io.out;
  o(`name:      ${info.name}`);
  o(`uuid:      ${info.uuid}`);
  o(`state:     ${st ?? 'gone'}`);
  o(`system:    ${info.system || '- (no forge record)'}`);
  o(`firmware:  ${info.firmware}  machine: ${info.machine}`);
  for (const d of info.disks) o(`disk:      ${d.target} (${d.bus}, ${d.device}, ${d.format || '?'}) ${d.source || d.type}${d.source !== '' && !existsSync(d.source) ? '  [MISSING]' : ''}`);
  for (const m of info.macs) o(`mac:       ${m}`);
  o(`console:   ${info.consolePty || '-'} (forge-agent console ${info.name}); log ${info.consoleLog || '-'}`);
  o(`graphics:  ${graphicsText(info)}`);
  let snaps = 'none';
  try {
    const rows = listSnapshots(snapshotRoot(info));
    if (rows.length > 0) snaps = rows.map((r) => (r.last ? `${r.name} (LAST)` : r.name)).join(', ');
  } catch {
    snaps = 'not supported for these disks';
  }
  o(`snapshots: ${snaps}`);
}

/** Seed 004: a VM whose disk is gone but which has snapshots gets LAST back before it starts. */
async function restoreMissing(v: Virsh, ctx: VmContext, info: DomainInfo): Promise<boolean> {
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

/** Keeps the domain's definition in step with its disks: the inactive XML with the changed disk files, defined again. */
function defineWith(v: Virsh, name: string): (changes: DiskChange[]) => Promise<void> {
  return async (changes) => {
    const xml = moveDisks(await v.xml(name, true), new Map(changes.map((c) => [c.from, { file: c.file, format: c.format }])));
    const f = tmpXml(xml);
    try {
      await v.run(['define', f]);
    } finally {
      rmSync(f, { force: true });
    }
  };
}

/**
 * Starts the guest saved in a live snapshot's memory file on the VM's disks
 * as they are now: the saved XML names the disk files at save time, which an
 * overlay snapshot or a restore has replaced (virsh restore --xml may change
 * host-side paths, not the guest ABI).
 */
async function resumeSaved(v: Virsh, name: string, memoryFile: string, meta: SnapshotMeta): Promise<void> {
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

async function vmStart(v: Virsh, ctx: VmContext, name: string): Promise<void> {
  const info = await forgeDomain(v, name);
  const st = await v.state(name);
  if (isRunning(st)) throw new ForgeError('VM_RUNNING', `${name} is already ${st}`, { field: 'NAME' });
  await restoreMissing(v, ctx, info);
  await v.run(['start', name]);
  ctx.io.out(`${name} started (console: forge-agent console ${name})`);
  await report(ctx, info, 'start');
}

async function waitOff(v: Virsh, name: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    const st = await v.state(name);
    if (!isRunning(st)) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function vmStop(v: Virsh, ctx: VmContext, p: ParsedSub, name: string): Promise<void> {
  const info = await forgeDomain(v, name);
  const t = p.flags.get('timeout');
  const seconds = typeof t === 'string' ? Number(t) : 120;
  if (!Number.isInteger(seconds) || seconds <= 0) throw new ForgeError('USAGE', `--timeout must be a positive integer, not '${String(t)}'`, { field: 'timeout' });
  if (!isRunning(await v.state(name))) {
    ctx.io.out(`${name} is not running`);
    return;
  }
  await v.run(['shutdown', name]);
  if (!(await waitOff(v, name, seconds * 1000))) {
    throw new ForgeError('VIRT_FAILED', `${name} did not power off within ${seconds} s (the guest may ignore ACPI); forge-agent vm kill ${name} --force pulls the plug`);
  }
  ctx.io.out(`${name} stopped`);
  await report(ctx, info, 'stop');
}

async function vmKill(v: Virsh, ctx: VmContext, p: ParsedSub, name: string): Promise<void> {
  const info = await forgeDomain(v, name);
  if (!isRunning(await v.state(name))) {
    ctx.io.out(`${name} is not running`);
    return;
  }
  needForce(p, `kill powers ${name} off at once: writes the guest has not flushed are lost`);
  await v.run(['destroy', name]);
  ctx.io.out(`${name} killed`);
  await report(ctx, info, 'kill');
}

/** Every file the other domains use (their disks and each disk's whole backing chain) -> the domain using it. */
async function filesOfOthers(v: Virsh, self: string): Promise<Map<string, string>> {
  const used = new Map<string, string>();
  for (const n of await v.names()) {
    if (n === self) continue;
    let xml: string;
    try {
      xml = await v.xml(n);
    } catch {
      continue;
    }
    for (const d of parseDomainXml(xml).disks) {
      if (d.source === '') continue;
      used.set(d.source, n);
      if (d.backing !== '') used.set(d.backing, n);
      if (d.type === 'file' && d.device === 'disk') for (const f of await backingChain(d.source)) used.set(f, n);
    }
  }
  return used;
}

async function vmDestroy(v: Virsh, ctx: VmContext, p: ParsedSub, name: string): Promise<void> {
  const info = await forgeDomain(v, name);
  const removeDisks = p.flags.get('remove-disks') === true;
  needForce(p, removeDisks ? `destroy --remove-disks deletes the domain ${name}, its disks and snapshots` : `destroy removes the domain definition of ${name}`);
  // Files other domains run on or over (their chains) stay.
  const others = await filesOfOthers(v, name);
  let snapRoot: string | undefined;
  try {
    snapRoot = snapshotRoot(info);
  } catch {
    snapRoot = undefined;
  }
  // Overlay snapshots keep their images beside the disks, outside the snapshot directory.
  const images = snapRoot === undefined ? [] : [...new Set(listSnapshots(snapRoot).flatMap((r) => r.disks.map((d) => d.image)))];
  if (isRunning(await v.state(name))) await v.run(['destroy', name]);
  const nvram = info.firmware === 'uefi' ? ['--nvram'] : [];
  await v.run(['undefine', name, ...nvram]);
  const removed: string[] = [];
  const kept: string[] = [];
  if (removeDisks) {
    for (const d of info.disks.filter((x) => x.device === 'disk')) {
      if (d.type !== 'file' || d.source === '') {
        kept.push(`${d.target} (${d.type} disk: remove it with its own tools)`);
        continue;
      }
      if (others.has(d.source)) {
        kept.push(`${d.source} (used by another domain)`);
        continue;
      }
      rmSync(d.source, { force: true });
      removed.push(d.source);
    }
    for (const f of images) {
      if (snapRoot !== undefined && f.startsWith(`${snapRoot}/`)) continue; // reflink copies go with the directory
      if (others.has(f)) {
        kept.push(`${f} (used by another domain)`);
        continue;
      }
      if (!existsSync(f)) continue;
      rmSync(f, { force: true });
      removed.push(f);
    }
    if (snapRoot !== undefined && existsSync(snapRoot)) {
      rmSync(snapRoot, { recursive: true, force: true });
      removed.push(snapRoot);
    }
  }
  ctx.io.out(`${name} destroyed${removed.length > 0 ? `; removed ${removed.join(', ')}` : ''}`);
  for (const k of kept) ctx.io.err(`kept ${k}`);
  await report(ctx, info, 'destroy', { removed_disks: removed, kept });
}

async function snapshotCreate(v: Virsh, ctx: VmContext, p: ParsedSub): Promise<void> {
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

async function snapshotList(v: Virsh, ctx: VmContext, name: string): Promise<void> {
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

async function snapshotRestore(v: Virsh, ctx: VmContext, p: ParsedSub): Promise<void> {
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

async function snapshotDelete(v: Virsh, ctx: VmContext, p: ParsedSub): Promise<void> {
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

function tmpXml(xml: string): string {
  const f = `/tmp/forge-agent-${process.pid}-${randomUUID().slice(0, 8)}.xml`;
  writeFileSync(f, xml, { mode: 0o600 });
  return f;
}

function newMacs(info: DomainInfo): Map<string, string> {
  const taken = new Set(info.macs);
  const m = new Map<string, string>();
  for (const mac of info.macs) {
    let n = randomMac((k) => randomInt(k));
    while (taken.has(n)) n = randomMac((k) => randomInt(k));
    taken.add(n);
    m.set(mac, n);
  }
  return m;
}

function siblingLog(info: DomainInfo, name: string): string {
  const dir = info.consoleLog !== '' ? dirname(info.consoleLog) : '/var/log/libvirt/qemu';
  return join(dir, `${name}-console.log`);
}

async function snapRun(v: Virsh, ctx: VmContext, name: string, snap: string | undefined): Promise<void> {
  let info = await forgeDomain(v, name);
  await refuseRunning(v, info, 'snap run (the overlay must sit on a disk nobody writes)');
  // On a snapshot: the throwaway overlay sits on the snapshot's frozen image instead of the disk.
  const on = snap === undefined ? undefined : findSnapshot(snapshotRoot(info), snap);
  if (on === undefined && (await restoreMissing(v, ctx, info))) info = await forgeDomain(v, name);
  const runName = `${name}-snap`;
  if ((await v.state(runName)) !== undefined) throw new ForgeError('VIRT_EXISTS', `a domain ${runName} exists already (another snap run?)`);
  const disks = new Map<string, { file: string; format: string }>();
  const overlays: string[] = [];
  const cleanup = (): void => {
    for (const f of overlays) rmSync(f, { force: true });
  };
  try {
    for (const d of info.disks.filter((x) => x.device === 'disk')) {
      if (d.type !== 'file') throw new ForgeError('VIRT_FAILED', `disk ${d.target} is a ${d.type} disk; snap run needs file disks`);
      const img = on?.disks.find((s) => s.target === d.target);
      if (on !== undefined && img === undefined) throw new ForgeError('NOT_FOUND', `snapshot ${on.name} has no image of disk ${d.target}`, { field: 'SNAP' });
      const ov = join(dirname(d.source), `.${basename(d.source, extname(d.source))}.snap-run.qcow2`);
      await sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', img?.image ?? d.source, '-F', (img?.format ?? d.format) || 'raw', ov]);
      overlays.push(ov);
      disks.set(d.source, { file: ov, format: 'qcow2' });
    }
    const xml = retargetDomainXml(await v.xml(name, true), {
      name: runName, uuid: randomUUID(), disks, macs: newMacs(info), consoleLog: siblingLog(info, runName), system: info.system, role: 'snap-run', dropNvram: true,
    });
    const f = tmpXml(xml);
    try {
      await v.run(['create', f]);
    } finally {
      rmSync(f, { force: true });
    }
    const stop = (): void => {
      void v.run(['destroy', runName]).catch(() => undefined);
    };
    process.once('SIGINT', stop);
    ctx.io.out(`${runName} running on a throwaway overlay of ${name}${on === undefined ? '' : ` at snapshot ${on.name}`}; it is discarded when the guest shuts down (console: forge-agent console ${runName})`);
    await report(ctx, info, 'snap_run', { domain_copy: runName, ...(on === undefined ? {} : { snapshot: on.name }) });
    while ((await v.state(runName)) !== undefined) await new Promise((r) => setTimeout(r, 1000));
    process.removeListener('SIGINT', stop);
    ctx.io.out(`${runName} shut down; overlay discarded`);
  } finally {
    cleanup();
  }
}

function cloneFile(src: string, from: string, to: string, target: string): string {
  // The clone's disk is one new file: an overlay's `.N` (agent/snapshots.ts overlayPath) is not carried over.
  const b = basename(src).replace(/\.\d+(\.qcow2)$/, '$1');
  const nb = b.includes(from) ? b.split(from).join(to) : `${to}-${target}${extname(b) || '.img'}`;
  return join(dirname(src), nb);
}

async function clone(v: Virsh, ctx: VmContext, from: string, to: string): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(to)) throw new ForgeError('USAGE', `NEWNAME '${to}': letters, digits, '.', '_', '-' (at most 64)`, { field: 'NEWNAME' });
  const info = await forgeDomain(v, from);
  await refuseRunning(v, info, 'clone (a running disk is not a consistent copy; snapshot it with --live, or stop it)');
  if ((await v.state(to)) !== undefined) throw new ForgeError('VIRT_EXISTS', `a domain ${to} exists already`, { field: 'NEWNAME' });
  const disks = new Map<string, { file: string; format: string }>();
  for (const d of info.disks.filter((x) => x.device === 'disk')) {
    if (d.type !== 'file') throw new ForgeError('VIRT_FAILED', `disk ${d.target} is a ${d.type} disk; clone copies file disks only`);
    const nf = cloneFile(d.source, from, to, d.target);
    if (existsSync(nf)) throw new ForgeError('VIRT_EXISTS', `${nf} exists already`, { field: 'NEWNAME' });
    disks.set(d.source, { file: nf, format: d.format });
  }
  const macs = newMacs(info);
  // The record first: it fails cleanly (DUPLICATE_NAME, no server) before any disk is copied.
  let system = '';
  if (info.system !== '') {
    if (ctx.api?.system === undefined || ctx.api.copySystem === undefined) {
      throw new ForgeError('SERVER_UNAVAILABLE', `${from} is forge system ${info.system}: give --server (or FORGE_SERVER) and a token to copy its record`, { field: 'server' });
    }
    const rec = await ctx.api.system(info.system);
    if (rec === undefined) throw new ForgeError('NOT_FOUND', `system ${info.system} (of domain ${from}) is not on the server`);
    const ifMacs: Record<string, string> = {};
    const ifs = rec['interfaces'];
    if (typeof ifs === 'object' && ifs !== null) {
      for (const [ifname, i] of Object.entries(ifs as Record<string, unknown>)) {
        const mac = typeof i === 'object' && i !== null ? String((i as Record<string, unknown>)['mac_address'] ?? '').toLowerCase() : '';
        const nm = macs.get(mac);
        if (nm !== undefined) ifMacs[ifname] = nm;
      }
    }
    await ctx.api.copySystem(info.system, to, ifMacs);
    system = to;
  }
  const made: string[] = [];
  try {
    for (const [src, dst] of disks) {
      made.push(dst.file);
      if ((await backingChain(src)).length > 1) {
        // A disk on a snapshot chain: the clone gets it flattened into one qcow2 of its own (allocated data only), so
        // it never depends on the source's snapshot images (which the source may delete or destroy).
        await sh('qemu-img', ['convert', '-q', '-O', 'qcow2', src, dst.file], 3_600_000);
        dst.format = 'qcow2';
      } else {
        await copyFile(src, dst.file);
      }
    }
    const xml = retargetDomainXml(await v.xml(from, true), {
      name: to, uuid: randomUUID(), disks, macs, consoleLog: siblingLog(info, to), system, role: 'persistent', dropNvram: true,
    });
    const f = tmpXml(xml);
    try {
      await v.run(['define', f]);
    } finally {
      rmSync(f, { force: true });
    }
  } catch (e) {
    for (const m of made) rmSync(m, { force: true });
    throw e;
  }
  ctx.io.out(`${to}: cloned from ${from} (MACs ${[...macs.values()].join(', ') || 'none'}${system !== '' ? `; forge system ${system}` : ''})`);
  await report(ctx, info, 'clone_source', { clone: to });
  const cloned = parseDomainXml(await v.xml(to));
  await report(ctx, cloned, 'cloned', { source: from, source_system: info.system });
}

async function consoleCmd(v: Virsh, ctx: VmContext, p: ParsedSub, name: string): Promise<number> {
  const info = await forgeDomain(v, name);
  if (p.flags.get('log') === true) {
    if (info.consoleLog === '' || !existsSync(info.consoleLog)) throw new ForgeError('NOT_FOUND', `${name} has no console log yet (${info.consoleLog || 'none configured'})`);
    process.stdout.write(readFileSync(info.consoleLog));
    return 0;
  }
  if (!isRunning(await v.state(name))) throw new ForgeError('VIRT_FAILED', `${name} is not running (forge-agent vm start ${name}); its last boot: forge-agent console --log ${name}`);
  await report(ctx, info, 'console');
  ctx.io.err(`connected to ${name}'s serial console; Ctrl-] leaves`);
  return ctx.attachConsole(v.uri, name);
}

/** `virsh console` owns the terminal (raw mode, Ctrl-] as its escape). */
export function virshConsole(uri: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn('virsh', ['-c', uri, 'console', name], { stdio: 'inherit' });
    c.on('error', reject);
    c.on('close', (code) => resolve(code ?? 1));
  });
}

function cacheDirOf(p: ParsedSub): string {
  const c = p.flags.get('cache-dir');
  if (typeof c === 'string') return c;
  return process.getuid?.() === 0 ? '/var/cache/forge-agent' : join(homedir(), '.cache', 'forge-agent');
}

function positiveInt(p: ParsedSub, flag: string, dflt: number): number {
  const v = p.flags.get(flag);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n <= 0) throw new ForgeError('USAGE', `--${flag} must be a positive integer, not '${String(v)}'`, { field: flag });
  return n;
}

interface JobOptions {
  timeoutSec: number;
  mirror: string | undefined;
  files: string[];
  cacheDir: string;
  type: 'qemu' | 'kvm';
  /** Extra content for the in share: relative path -> text (ssh-key put's keys). */
  inFiles?: Record<string, string>;
}

/** Runs one job against the stopped VM; returns the out directory. Throws JOB_FAILED on a failure or timeout. */
async function runJob(v: Virsh, ctx: VmContext, info: DomainInfo, src: JobSource, o: JobOptions): Promise<string> {
  await refuseRunning(v, info, `job ${src.name} (its disks go into the rescue VM)`);
  const rescueName = `${info.name}-job`;
  if ((await v.state(rescueName)) !== undefined) throw new ForgeError('VIRT_EXISTS', `a domain ${rescueName} exists already (another job running?)`);
  const rescue = await rescueSystem(o.cacheDir, (m) => ctx.io.err(m));
  const firstDisk = info.disks.find((d) => d.device === 'disk' && d.source !== '');
  const base = firstDisk !== undefined && firstDisk.type === 'file' ? dirname(firstDisk.source) : '/var/lib/libvirt/images';
  const stamp = ctx.now().toISOString().replace(/[:.]/g, '-');
  const run = stageJob(src, join(base, `${info.name}.jobs`, `${src.name}-${stamp}`), o.files);
  for (const [rel, text] of Object.entries(o.inFiles ?? {})) {
    mkdirSync(dirname(join(run.indir, rel)), { recursive: true, mode: 0o755 });
    writeFileSync(join(run.indir, rel), text, { mode: 0o644 });
  }
  const env = { HOSTDIR: src.dir !== '' ? src.dir : run.workdir, WORKDIR: run.workdir, INDIR: run.indir, OUTDIR: run.outdir, VM: info.name, JOB: src.name };
  const hook = async (kind: 'pre' | 'post'): Promise<void> => {
    const f = src.dir === '' ? '' : join(src.dir, `${src.name}.${kind}`);
    if (f === '' || !existsSync(f)) return;
    ctx.io.err(`forge-agent: running ${src.name}.${kind} on the host`);
    const code = await hookScript(f, env, (s) => void process.stdout.write(s));
    if (code !== 0) throw new ForgeError('JOB_FAILED', `${src.name}.${kind} exited with status ${code} (work dir ${run.workdir})`);
  };
  await hook('pre');
  const consoleLog = siblingLog(info, rescueName);
  const xml = rescueDomainXml({ name: rescueName, vm: info, rescue, job: src.name, run, mirror: o.mirror, consoleLog, type: o.type, memoryMiB: 512 });
  const f = tmpXml(xml);
  try {
    await v.run(['create', f]);
  } finally {
    rmSync(f, { force: true });
  }
  ctx.io.err(`forge-agent: rescue VM ${rescueName} running job ${src.name} (timeout ${o.timeoutSec} s)`);
  const t0 = Date.now();
  let offset = 0;
  const write = (b: Buffer): void => void process.stdout.write(b);
  for (;;) {
    offset = follow(consoleLog, offset, write);
    if ((await v.state(rescueName)) === undefined) break;
    if (Date.now() - t0 > o.timeoutSec * 1000) {
      await v.run(['destroy', rescueName]).catch(() => '');
      await report(ctx, info, 'job', { job: src.name, result: 'timeout', outdir: run.outdir });
      throw new ForgeError('JOB_FAILED', `job ${src.name} did not finish within ${o.timeoutSec} s: the rescue VM was stopped (partial output in ${join(run.outdir, 'job.log')})`, { field: 'timeout' });
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  follow(consoleLog, offset, write);
  const status = exitStatus(run.outdir);
  if (status !== 0) {
    await report(ctx, info, 'job', { job: src.name, result: 'failed', status: status ?? null, outdir: run.outdir });
    throw new ForgeError('JOB_FAILED', status === undefined
      ? `job ${src.name}: the rescue system ended without a job status (see the console output above, ${consoleLog})`
      : `job ${src.name} exited with status ${status} (log ${join(run.outdir, 'job.log')})`);
  }
  await hook('post');
  await report(ctx, info, 'job', { job: src.name, result: 'ok', outdir: run.outdir });
  ctx.io.out(`${info.name}: job ${src.name} done; results in ${run.outdir}`);
  return run.outdir;
}

function jobOptions(p: ParsedSub): JobOptions {
  const mirror = p.flags.get('mirror');
  if (typeof mirror === 'string' && !(existsSync(mirror) && statSync(mirror).isDirectory())) throw new ForgeError('USAGE', `--mirror ${mirror} is not a directory`, { field: 'mirror' });
  const files = p.flags.get('files');
  const vt = p.flags.get('virt-type') ?? 'qemu';
  if (vt !== 'qemu' && vt !== 'kvm') throw new ForgeError('USAGE', `--virt-type must be one of qemu|kvm, not '${String(vt)}'`, { field: 'virt-type' });
  return {
    timeoutSec: positiveInt(p, 'timeout', 600),
    mirror: typeof mirror === 'string' ? resolvePath(mirror) : undefined,
    files: typeof files === 'string' ? files.split(',').map((x) => x.trim()).filter((x) => x !== '') : [],
    cacheDir: cacheDirOf(p),
    type: vt,
  };
}

/** OpenSSH's fingerprint: SHA256: and the unpadded base64 of the key blob's sha256 (ssh-keygen -l). */
export function sshFingerprint(line: string): string | undefined {
  const m = /^(?:\S+ )?((?:ssh|ecdsa|sk)-\S+) ([A-Za-z0-9+/]+={0,2})(?: .*)?$/.exec(line.trim());
  if (m === null) return undefined;
  const blob = Buffer.from(m[2] as string, 'base64');
  if (blob.length < 16) return undefined;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

async function sshKeyPut(v: Virsh, ctx: VmContext, p: ParsedSub): Promise<void> {
  const [name, ...files] = p.args as [string, ...string[]];
  const info = await forgeDomain(v, name);
  await refuseRunning(v, info, 'ssh-key put (the root filesystem is changed offline)');
  let keyFiles = files;
  if (keyFiles.length === 0) {
    const dir = join(homedir(), '.ssh');
    keyFiles = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.pub')).map((f) => join(dir, f)) : [];
    if (keyFiles.length === 0) throw new ForgeError('USAGE', `no KEYFILE given and no ${dir}/*.pub`, { field: 'KEYFILE' });
  }
  const inFiles: Record<string, string> = {};
  const prints: string[] = [];
  keyFiles.forEach((kf, i) => {
    if (!existsSync(kf)) throw new ForgeError('NOT_FOUND', `key file ${kf} does not exist`, { field: 'KEYFILE' });
    const lines = readFileSync(kf, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const l of lines) {
      const fp = sshFingerprint(l);
      if (fp === undefined) throw new ForgeError('INVALID_FIELD', `${kf}: '${l.slice(0, 40)}...' is not an OpenSSH public key`, { field: 'KEYFILE' });
      prints.push(fp);
    }
    if (lines.length === 0) throw new ForgeError('INVALID_FIELD', `${kf} holds no public key`, { field: 'KEYFILE' });
    inFiles[`keys/${i}-${basename(kf)}${kf.endsWith('.pub') ? '' : '.pub'}`] = lines.join('\n') + '\n';
  });
  const o = { ...jobOptions(p), inFiles };
  await runJob(v, ctx, info, resolveJob('add-ssh-keys'), o);
  ctx.io.out(`${name}: root's authorized_keys has ${prints.join(', ')}`);
  await report(ctx, info, 'ssh_key_put', { fingerprints: prints });
}

export function vmContext(p: ParsedSub, env: Record<string, string | undefined>, io: VmIo): VmContext {
  const str = (k: string): string | undefined => {
    const v = p.flags.get(k);
    return typeof v === 'string' ? v : undefined;
  };
  const server = (str('server') ?? env['FORGE_SERVER'] ?? '').replace(/\/+$/, '');
  const token = str('token') ?? env['FORGE_TOKEN'];
  if (server !== '' && !/^https?:\/\/[^/\s]+/.test(server)) throw new ForgeError('USAGE', `--server must be an http(s) URL, not '${server}'`, { field: 'server' });
  return {
    uri: str('connect') ?? env['LIBVIRT_DEFAULT_URI'] ?? 'qemu:///system',
    api: server === '' ? undefined : new HttpForgeApi(server, token === '' ? undefined : token, (m) => io.err(`warning: ${m}`)),
    io,
    now: () => new Date(),
    attachConsole: virshConsole,
  };
}

/** NAME as the argument or --system NAME (seed 001's habit). */
function vmName(p: ParsedSub): string {
  const f = p.flags.get('system');
  const n = typeof f === 'string' ? f : p.args[0];
  if (n === undefined || n === '') throw new ForgeError('USAGE', `${p.spec.path.join(' ')}: give the VM as NAME or --system NAME`, { field: 'system' });
  return n;
}

export async function runSub(p: ParsedSub, ctx: VmContext): Promise<number> {
  const v = new Virsh(ctx.uri);
  const a = p.args;
  switch (p.spec.path.join(' ')) {
    case 'vm list':
      await vmList(v, ctx);
      return 0;
    case 'vm info':
      await vmInfo(v, ctx, a[0] as string);
      return 0;
    case 'vm start':
      await vmStart(v, ctx, a[0] as string);
      return 0;
    case 'vm stop':
      await vmStop(v, ctx, p, a[0] as string);
      return 0;
    case 'vm kill':
      await vmKill(v, ctx, p, a[0] as string);
      return 0;
    case 'vm destroy':
      await vmDestroy(v, ctx, p, a[0] as string);
      return 0;
    case 'snapshot create':
      await snapshotCreate(v, ctx, p);
      return 0;
    case 'snapshot list':
      await snapshotList(v, ctx, a[0] as string);
      return 0;
    case 'snapshot restore':
      await snapshotRestore(v, ctx, p);
      return 0;
    case 'snapshot delete':
      await snapshotDelete(v, ctx, p);
      return 0;
    case 'snap run':
      await snapRun(v, ctx, a[0] as string, a[1]);
      return 0;
    case 'clone':
      await clone(v, ctx, a[0] as string, a[1] as string);
      return 0;
    case 'console':
      return consoleCmd(v, ctx, p, a[0] as string);
    case 'job run': {
      const info = await forgeDomain(v, a[0] as string);
      await runJob(v, ctx, info, resolveJob(a[1] as string), jobOptions(p));
      return 0;
    }
    case 'ssh-key put':
      await sshKeyPut(v, ctx, p);
      return 0;
    case 'mount': {
      const st = await mountVm(v, vmName(p), (m) => ctx.io.err(m));
      ctx.io.out(`${st.name}: mounted at ${st.mounts.join(', ')} (forge-agent umount ${st.name} when done)`);
      return 0;
    }
    case 'umount': {
      const st = await umountVm(vmName(p));
      ctx.io.out(`${st.name}: unmounted ${st.mounts.length} filesystem(s), released ${st.loops.join(', ')}`);
      return 0;
    }
    case 'reinstall-grub': {
      const name = vmName(p);
      const info = await forgeDomain(v, name);
      const fw = await reinstallGrub(v, name, (m) => ctx.io.err(m));
      ctx.io.out(`${name}: GRUB reinstalled (${fw === 'uefi' ? 'x86_64-efi' : 'i386-pc'}) and grub.cfg regenerated`);
      await report(ctx, info, 'reinstall_grub', { firmware: fw });
      return 0;
    }
    default:
      throw new ForgeError('INTERNAL', `${p.spec.path.join(' ')}: in the command table without a handler`);
  }
}
