/**
 * The two-phase install, step by step (Koan's flow, done the way virt-install
 * does it):
 *   1. blended record -> plan (pure, agent/plan.ts)
 *   2. kernel + initrd into the cache (checked against the server's digests)
 *   3. the disk
 *   4. persistent domain defined (boots from disk); installer started as a
 *      transient domain of the same name and UUID with kernel, initrd,
 *      command line and on_reboot=destroy
 *   5. --vm-poll: follow the installer until it ends: libvirt lifecycle
 *      events (through virsh) wake the loop at once, and the domain state is
 *      also polled every second as the fallback; then start the persistent
 *      domain from its disk
 * Every step is reported to the server as an event on the system. Side effects
 * go through FlowDeps so the sequencing is unit-tested with fakes.
 */
import { ForgeError } from '../server/errors.js';
import type { AgentEvent, ForgeApi, RemoteFile } from './api.js';
import { buildDomainXml, installerCmdline, type DiskSpec, type DomainSpec, type NicSpec } from './domxml.js';
import { diskActions, diskSpec } from './disk.js';
import type { FetchResult } from './download.js';
import type { LifecycleWatch, VirtHost } from './libvirt.js';
import type { AgentOptions } from './options.js';
import { judgeInstaller, parseBlended, planInstall, type DiskTarget, type InstallPlan } from './plan.js';
import type { VirtTypeDecision } from './virttype.js';

export interface FlowDeps {
  api: ForgeApi;
  connectVirt(): Promise<VirtHost>;
  fetchFile(f: RemoteFile, label: string): Promise<FetchResult>;
  prepareDisk(t: DiskTarget, spec: DiskSpec, sizeGiB: number, force: boolean, virsh: (args: string[]) => Promise<string>): Promise<DiskSpec>;
  /** Remove a disk this run created (never an existing device). */
  removeDisk(t: DiskTarget, spec: DiskSpec, virsh: (args: string[]) => Promise<string>): Promise<void>;
  resolveVirtType(requested: 'kvm' | 'qemu' | 'auto', kernel: string | undefined, virsh: (args: string[]) => Promise<string>): Promise<VirtTypeDecision>;
  /** The last `bytes` of a file, '' when it cannot be read. */
  readTail(path: string, bytes: number): string;
  out(line: string): void;
  err(line: string): void;
  sleep(ms: number): Promise<void>;
  now(): number;
  uuid(): string;
  randomMac(): string;
  /** Poll interval; 1 s in production. */
  pollMs: number;
  /** Step timings (FORGE_AGENT_TRACE=1 prints them; the benchmark reads them). */
  trace?(step: string, ms: number): void;
}

export interface FlowResult {
  domain: string;
  virtType: 'kvm' | 'qemu';
  outcome: 'displayed' | 'installer_started' | 'disk_booted';
}

function domainSpec(plan: InstallPlan, nics: NicSpec[], disk: DiskSpec, type: 'kvm' | 'qemu', uuid: string, extraDisks: DiskSpec[] = []): Omit<DomainSpec, 'boot' | 'installer' | 'consoleLog'> {
  return {
    name: plan.domain, uuid, type, memoryMiB: plan.memoryMiB, vcpus: plan.vcpus, disk, nics, graphics: plan.graphics,
    ...(extraDisks.length > 0 ? { extraDisks } : {}),
    machine: plan.machine,
    ...(plan.firmware === 'uefi' ? { uefi: { secureBoot: plan.secureBoot } } : {}),
    ...(plan.targetKind === 'system' ? { system: plan.system } : {}),
  };
}

export function persistentXml(plan: InstallPlan, base: Omit<DomainSpec, 'boot' | 'installer' | 'consoleLog'>): string {
  return buildDomainXml({ ...base, boot: { kind: 'disk' }, installer: false, consoleLog: plan.consoleLog });
}

/**
 * The installer phase: kernel + initrd + command line, or with --virt-pxe-boot
 * the network (forge's DHCP/TFTP/iPXE decide what it boots). Either way a
 * transient domain with on_reboot=destroy, as virt-install does for --pxe too.
 */
export function installerXml(plan: InstallPlan, base: Omit<DomainSpec, 'boot' | 'installer' | 'consoleLog'>, kernel: string | undefined, initrd: string | undefined): string {
  return buildDomainXml({
    ...base,
    boot:
      plan.pxeBoot || kernel === undefined || initrd === undefined
        ? { kind: 'network' }
        : { kind: 'kernel', kernel, initrd, cmdline: installerCmdline(plan.cmdline, plan.graphics) },
    installer: true,
    consoleLog: plan.installLog,
  });
}

const TAIL_BYTES = 4096;
/** How often --vm-poll prints where the installer is. */
export const PROGRESS_EVERY_MS = 15_000;

/** `1m05s`, `12s`. */
function span(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** The last line the installer printed on its serial console, without control characters, at most 100 characters. */
export function lastConsoleLine(tail: string): string {
  const clean = tail.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
  const lines = clean.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const last = lines[lines.length - 1] ?? '';
  return last.length > 100 ? `${last.slice(0, 97)}...` : last;
}

/**
 * What --vm-poll prints while it waits: the stage forge saw (its newest
 * event for the system), the time since the installer started and the last
 * console line. Pure.
 */
export function progressLine(domain: string, elapsedMs: number, last: { type: string; time: string } | undefined, now: number, consoleTail: string): string {
  const stage = last === undefined ? 'no event from the installer yet' : `${last.type} ${span(now - Date.parse(last.time))} ago`;
  const line = lastConsoleLine(consoleTail);
  return `${domain}: installing ${span(elapsedMs)}; forge saw ${stage}${line !== '' ? `; console: ${line}` : ''}`;
}

export function withMac(url: string, mac: string | undefined): string {
  if (mac === undefined) return url;
  const u = new URL(url);
  u.searchParams.set('mac', mac);
  return u.toString();
}

export async function runInstall(opts: AgentOptions, deps: FlowDeps): Promise<FlowResult> {
  if (opts.target === undefined) throw new ForgeError('USAGE', 'no --system or --profile');
  let lap = deps.now();
  const step = (name: string): void => {
    const now = deps.now();
    deps.trace?.(name, now - lap);
    lap = now;
  };
  const rec = parseBlended(await deps.api.blended(opts.target.kind, opts.target.name));
  step('blended');
  const plan = planInstall(opts, rec);
  for (const w of plan.warnings) deps.err(`WARNING: ${w}`);
  const nics: NicSpec[] = plan.nics.map((n) => ({ ...n, mac: n.mac === 'random' ? deps.randomMac() : n.mac }));
  const disk0 = diskSpec(plan.disk, plan.domain, plan.diskFormat, plan.diskBus);
  const extra0 = plan.extraDisks.map((d, i) => diskSpec(d.target, plan.domain, d.format, plan.diskBus, i + 2));
  // Events belong to a system record; a profile install has none to report to.
  const reportTo = plan.targetKind === 'system' ? plan.system : undefined;
  const report = async (type: AgentEvent, detail: Record<string, unknown>): Promise<void> => {
    if (reportTo !== undefined) await deps.api.event(reportTo, type, { domain: plan.domain, ...detail });
  };

  if (opts.display) {
    let kernel = `${opts.cacheDir}/<sha256 of ${plan.kernelUrl}>`;
    let initrd = `${opts.cacheDir}/<sha256 of ${plan.initrdUrl}>`;
    if (!plan.pxeBoot) {
      try {
        const files = await deps.api.distroFiles(plan.distro);
        kernel = `${opts.cacheDir}/${files.kernel.sha256}`;
        initrd = `${opts.cacheDir}/${files.initrd.sha256}`;
      } catch {
        // display stays useful without the digests
      }
    }
    const type = plan.virtType === 'auto' ? 'qemu' : plan.virtType;
    const base = domainSpec(plan, nics, disk0, type, '00000000-0000-0000-0000-000000000000', extra0);
    const actions = [
      `domain ${plan.domain}: ${opts.force ? 'replace if it exists (--force)' : 'fail if it exists'}`,
      ...(plan.pxeBoot ? [] : [`download ${plan.kernelUrl} -> ${kernel}`, `download ${plan.initrdUrl} -> ${initrd}`]),
      plan.virtType === 'auto' ? 'virt type: auto (kvm if libvirt offers it and a kvm probe boots, else qemu; XML below shows qemu)' : `virt type: ${plan.virtType}`,
      ...diskActions(plan.disk, disk0, plan.diskGiB, opts.force),
      ...plan.extraDisks.flatMap((d, i) => diskActions(d.target, extra0[i] as DiskSpec, d.gib, opts.force)),
      `define persistent domain ${plan.domain} (boots from disk)`,
      `start installer as a transient domain (${plan.pxeBoot ? 'network boot: PXE' : 'kernel + initrd'}, on_reboot=destroy), console log ${plan.installLog}`,
      ...(plan.autoBoot ? [`virsh autostart ${plan.domain}`] : []),
      plan.poll ? `follow the installer (libvirt lifecycle events, polled every second) until it ends (timeout ${plan.timeoutSec} s), then start ${plan.domain} from disk` : 'return without waiting',
    ];
    deps.out('# actions (--display: nothing is changed)');
    for (const a of actions) deps.out(`- ${a}`);
    deps.out(`# persistent domain`);
    deps.out(persistentXml(plan, base));
    deps.out(`# installer domain (transient)`);
    deps.out(installerXml(plan, base, plan.pxeBoot ? undefined : kernel, plan.pxeBoot ? undefined : initrd));
    return { domain: plan.domain, virtType: type, outcome: 'displayed' };
  }

  const virt = await deps.connectVirt();
  step('connect');
  let started = false;
  // What this run made before the installer ran: undone if it never gets that far, so a
  // plain re-run works (a failed *install* keeps everything for a post-mortem).
  let createdDisk: DiskSpec | undefined;
  const createdExtra: { target: DiskTarget; spec: DiskSpec }[] = [];
  let definedDomain = false;
  let installerStarted = false;
  let watch: LifecycleWatch | undefined;
  try {
    started = true;
    await report('agent_start', { virt_type: plan.virtType, pxe: plan.pxeBoot, poll: plan.poll });
    const existing = await virt.state(plan.domain);
    if (existing !== undefined) {
      if (!opts.force) throw new ForgeError('VIRT_EXISTS', `domain ${plan.domain} is already defined; use --force to replace it`, { field: 'virt-name' });
      deps.err(`replacing existing domain ${plan.domain} (--force)`);
      await virt.destroy(plan.domain);
      await virt.undefine(plan.domain);
    }

    let kernel: string | undefined;
    let initrd: string | undefined;
    if (!plan.pxeBoot) {
      const files = await deps.api.distroFiles(plan.distro);
      // ?mac= lets forge put kernel_fetched/initrd_fetched on this system's timeline.
      const mac = nics[0]?.mac;
      kernel = (await deps.fetchFile({ ...files.kernel, url: withMac(files.kernel.url, mac) }, 'kernel')).path;
      initrd = (await deps.fetchFile({ ...files.initrd, url: withMac(files.initrd.url, mac) }, 'initrd')).path;
    }
    step('downloads');
    const decision = await deps.resolveVirtType(plan.virtType, kernel, (a) => virt.virsh(a));
    step('virt_type');
    if (decision.warning !== undefined) deps.err(decision.warning);

    const disk = await deps.prepareDisk(plan.disk, disk0, plan.diskGiB, opts.force, (a) => virt.virsh(a));
    step('disk');
    if (plan.disk.kind !== 'device') createdDisk = disk;
    const extra: DiskSpec[] = [];
    for (const [i, d] of plan.extraDisks.entries()) {
      const made = await deps.prepareDisk(d.target, extra0[i] as DiskSpec, d.gib, opts.force, (a) => virt.virsh(a));
      extra.push(made);
      if (d.target.kind !== 'device') createdExtra.push({ target: d.target, spec: made });
    }
    const base = domainSpec(plan, nics, disk, decision.type, deps.uuid(), extra);
    await virt.define(persistentXml(plan, base));
    definedDomain = true;
    step('define');
    if (plan.autoBoot) await virt.autostart(plan.domain, true);

    // Subscribed before the installer starts, so its stop cannot be missed.
    watch = plan.poll ? virt.watch?.(plan.domain) : undefined;
    const t0 = deps.now();
    await virt.createTransient(installerXml(plan, base, kernel, initrd));
    installerStarted = true;
    step('installer_start');
    await report('installer_running', { mode: plan.pxeBoot ? 'pxe' : 'kernel', virt_type: decision.type, macs: nics.map((n) => n.mac), console_log: plan.installLog });
    deps.err(`installer for ${plan.domain} running (${decision.type}); console: virsh console ${plan.domain}, log ${plan.installLog}`);
    if (!plan.poll) {
      deps.out(`installer started; after it powers off, boot the disk with: virsh start ${plan.domain}`);
      return { domain: plan.domain, virtType: decision.type, outcome: 'installer_started' };
    }

    let progressAt = 0;
    for (;;) {
      const state = await virt.state(plan.domain);
      const elapsed = deps.now() - t0;
      if (elapsed - progressAt >= PROGRESS_EVERY_MS) {
        progressAt = elapsed;
        const last = await deps.api.lastEvent?.(plan.system);
        deps.err(progressLine(plan.domain, elapsed, last, deps.now(), deps.readTail(plan.installLog, TAIL_BYTES)));
      }
      const verdict = judgeInstaller(state, elapsed, plan.timeoutSec * 1000, deps.readTail(plan.installLog, TAIL_BYTES));
      if (verdict.kind === 'finished') break;
      if (verdict.kind === 'failed') {
        await virt.destroy(plan.domain);
        const tail = deps.readTail(plan.installLog, TAIL_BYTES);
        throw new ForgeError('INSTALL_FAILED', `${plan.domain}: ${verdict.message}`, {
          details: { reason: verdict.reason, console_log: plan.installLog, console_tail: tail },
        });
      }
      if (watch !== undefined) await watch.wait(deps.pollMs);
      else await deps.sleep(deps.pollMs);
    }
    const seconds = Math.round((deps.now() - t0) / 100) / 10;
    // lifecycle_events: how many libvirt events arrived (0: found by polling).
    await report('installer_finished', { seconds, lifecycle_events: watch?.events ?? 0 });
    await virt.start(plan.domain);
    await report('disk_boot_started', { console_log: plan.consoleLog });
    deps.out(`${plan.domain}: installer finished after ${seconds} s; booting from disk (virsh console ${plan.domain})`);
    return { domain: plan.domain, virtType: decision.type, outcome: 'disk_booted' };
  } catch (e) {
    if (!installerStarted) {
      try {
        if (definedDomain) await virt.undefine(plan.domain);
        if (createdDisk !== undefined) await deps.removeDisk(plan.disk, createdDisk, (a) => virt.virsh(a));
        for (const c of createdExtra) await deps.removeDisk(c.target, c.spec, (a) => virt.virsh(a));
      } catch (cleanupError) {
        deps.err(`warning: could not undo the ${definedDomain ? 'domain definition' : 'disk'}: ${(cleanupError as Error).message}`);
      }
    }
    if (started) {
      const fe = e instanceof ForgeError ? e : new ForgeError('INTERNAL', (e as Error).message ?? String(e));
      const d = fe.details as { reason?: unknown; console_tail?: unknown } | undefined;
      await report('agent_failed', { code: fe.code, message: fe.message, ...(d?.console_tail !== undefined ? { reason: d.reason, console_tail: d.console_tail } : {}) });
    }
    throw e;
  } finally {
    watch?.close();
    await virt.close();
  }
}
