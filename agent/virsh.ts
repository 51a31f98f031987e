/**
 * What every `forge-agent vm|snapshot|snap|clone|console|job|ssh-key` command shares: virsh as the
 * way to libvirt (agent/vm.ts says why virsh and not the Node binding), forge's own domains only
 * (the <metadata> marker), the running-state test, the vm_action report to forge, and the small
 * helpers of the command line (--force, --cache-dir, positive integers, sizes).
 */
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { type ForgeApi } from './api.js';
import { sh } from './disk.js';
import { moveDisks, parseDomainXml, type DomainInfo } from './domain.js';
import { backingChain, type DiskChange } from './snapshots.js';
import type { ParsedSub } from './subcommands.js';

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

export const RUNNING = new Set(['running', 'paused', 'in shutdown', 'blocked', 'pmsuspended']);

export function isRunning(state: string | undefined): boolean {
  return state !== undefined && RUNNING.has(state);
}

export async function report(ctx: VmContext, info: DomainInfo, action: string, detail: Record<string, unknown> = {}): Promise<void> {
  if (info.system === '' || ctx.api === undefined) return;
  await ctx.api.event(info.system, 'vm_action', { action, domain: info.name, ...detail });
}

export function needForce(p: ParsedSub, what: string): void {
  if (p.flags.get('force') !== true) throw new ForgeError('NEEDS_FORCE', `${what}; add --force`, { field: 'force' });
}

export async function refuseRunning(v: Virsh, info: DomainInfo, what: string): Promise<void> {
  const st = await v.state(info.name);
  if (isRunning(st)) throw new ForgeError('VM_RUNNING', `${info.name} is ${st}: ${what} needs it stopped (forge-agent vm stop ${info.name})`, { field: 'NAME' });
}

export function human(bytes: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${u[i] as string}`;
}

/** Every file the other domains use (their disks and each disk's whole backing chain) -> the domain using it. */
export async function filesOfOthers(v: Virsh, self: string): Promise<Map<string, string>> {
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

/** Keeps the domain's definition in step with its disks: the inactive XML with the changed disk files, defined again. */
export function defineWith(v: Virsh, name: string): (changes: DiskChange[]) => Promise<void> {
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

export function tmpXml(xml: string): string {
  const f = `/tmp/forge-agent-${process.pid}-${randomUUID().slice(0, 8)}.xml`;
  writeFileSync(f, xml, { mode: 0o600 });
  return f;
}

export function cacheDirOf(p: ParsedSub): string {
  const c = p.flags.get('cache-dir');
  if (typeof c === 'string') return c;
  return process.getuid?.() === 0 ? '/var/cache/forge-agent' : join(homedir(), '.cache', 'forge-agent');
}

export function positiveInt(p: ParsedSub, flag: string, dflt: number): number {
  const v = p.flags.get(flag);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n <= 0) throw new ForgeError('USAGE', `--${flag} must be a positive integer, not '${String(v)}'`, { field: flag });
  return n;
}

export function siblingLog(info: DomainInfo, name: string): string {
  const dir = info.consoleLog !== '' ? dirname(info.consoleLog) : '/var/log/libvirt/qemu';
  return join(dir, `${name}-console.log`);
}
