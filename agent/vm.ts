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
import { randomInt, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { HttpForgeApi } from './api.js';
import { sh } from './disk.js';
import { parseDomainXml, retargetDomainXml, type DomainInfo } from './domain.js';
import { randomMac } from './plan.js';
import { backingChain, copyFile, findSnapshot, LAST, listSnapshots, snapshotRoot } from './snapshots.js';
import type { ParsedSub } from './subcommands.js';
import { resolveJob } from './jobs.js';
import { mountVm, reinstallGrub, umountVm } from './maint.js';

import { siblingLog, filesOfOthers, forgeDomain, isRunning, needForce, refuseRunning, report, tmpXml, Virsh, type VmContext, type VmIo } from './virsh.js';
import { restoreMissing, snapshotCreate, snapshotDelete, snapshotList, snapshotRestore } from './vmsnapshot.js';
import { jobOptions, runJob, sshKeyPut } from './vmjobs.js';

function graphicsText(info: DomainInfo): string {
  return info.graphics.map((g) => (g.port > 0 ? `${g.type}://${g.listen || '127.0.0.1'}:${g.port}` : `${g.type} (when running)`)).join(' ') || 'none';
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

