/**
 * `forge-agent --system vm9 --virt --build debootstrap`: a VM without an
 * installer (seeds 000 "KVM host creator" and 001 "vmbootstrap"):
 *   1. disk: a raw file on a loop device (losetup -P; qcow2 is converted at
 *      the end), an existing device or an LVM volume `<name>-disk01`
 *   2. GPT (agent/buildplan.ts partitions), swap, ext4 with fsck by time and
 *      count off
 *   3. mmdebstrap from Debian packages (apt cache kept between runs; the
 *      root tree is cached as a tarball keyed by suite, mirror and packages)
 *   4. overlay with %TOKEN% substitution, resolv.conf, hostname
 *   5. host hook postunpack; chroot with policy-rc.d blocking services:
 *      locale, time zone, ssh keys, network, first-boot report,
 *      install.sh, install-custom.sh; policy-rc.d restored; hook postconfig
 *   6. fstab by UUID, GRUB (BIOS or UEFI) with the serial console
 *   7. unmount, release the loop device, define the domain and boot it
 * Every stage is an event on the system's timeline (build_started,
 * disk_ready, bootstrap_done, hooks_done, bootloader_done; the guest itself
 * reports first_boot). Whatever fails (or Ctrl-C) unwinds what this run made:
 * mounts, loop devices, new disks; the domain is defined only at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ForgeError } from '../server/errors.js';
import type { AgentEvent, ForgeApi } from './api.js';
import { buildVolumes, firstbootScript, FIRSTBOOT_UNIT, fstab, grubDefaults, installPath, lvmCommands, mkfsCommands, mmdebstrapArgs, MMDEBSTRAP_ENV, networkdFiles, partitions, planBuild, resolvConf, UBUNTU_KEYRING, sgdiskArgs, substituteTokens, volumeSizeMiB, type BuildPlan, type Partition } from './buildplan.js';
import { persistentXml } from './flow.js';
import { diskSpec, holdsData, prepareDisk, removeDisk } from './disk.js';
import type { DiskSpec, NicSpec } from './domxml.js';
import type { AgentOptions } from './options.js';
import { parseBlended, planInstall, type DiskTarget, type InstallPlan } from './plan.js';
import type { VirtHost } from './libvirt.js';

export type BuildEvent = 'build_started' | 'disk_ready' | 'bootstrap_done' | 'hooks_done' | 'bootloader_done' | 'disk_boot_started' | 'agent_failed';

export interface BuildDeps {
  api: ForgeApi;
  connectVirt(): Promise<VirtHost>;
  resolveVirtType(requested: 'kvm' | 'qemu' | 'auto', kernel: string | undefined, virsh: (args: string[]) => Promise<string>): Promise<{ type: 'kvm' | 'qemu'; warning: string | undefined }>;
  out(line: string): void;
  err(line: string): void;
  uuid(): string;
  randomMac(): string;
  /** stderr is a terminal: progress lines while long stages run. */
  tty: boolean;
}

/** A running child process the SIGINT handler can stop. */
let current: ChildProcess | undefined;
let interrupted = false;

/** Ctrl-C during a build: stop the running command; the build then unwinds and exits 130. */
export function interruptBuild(): void {
  interrupted = true;
  stop(current, 'SIGTERM');
}

/**
 * Signal a step's whole process group (each step runs in its own, see run()). mmdebstrap's main process, sent TERM
 * alone, only logs "received signal TERM: waiting for setup..." and waits for its worker, which goes on to finish the
 * whole bootstrap (measured: a ^C at "installing essential packages" took effect 75 s later, when mmdebstrap was done);
 * the worker and its apt and dpkg get TERM too this way, and mmdebstrap then cleans up and exits at once.
 */
function stop(c: ChildProcess | undefined, sig: NodeJS.Signals): void {
  if (c?.pid === undefined) return;
  try {
    process.kill(-c.pid, sig);
  } catch {
    c.kill(sig);
  }
}

function checkInterrupted(): void {
  if (interrupted) throw new ForgeError('BUILD_INTERRUPTED', 'interrupted (SIGINT); everything this build made was released', { details: { reason: 'interrupted' } });
}

/** Run a command; output collected (and passed to `line` as it comes). Throws BUILD_FAILED naming the step. */
export function run(cmd: string, args: string[], o: { step: string; env?: Record<string, string>; line?: (l: string) => void; allowFail?: boolean; timeoutMs?: number } = { step: '' }): Promise<{ code: number; output: string }> {
  checkInterrupted();
  return new Promise((resolve, reject) => {
    // detached: its own process group, so a stop reaches everything the step started (stop()).
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(o.env ?? {}) }, detached: true });
    current = c;
    let output = '';
    let partial = '';
    const onData = (d: string): void => {
      output += d;
      if (output.length > 1 << 20) output = output.slice(-(1 << 19));
      if (o.line !== undefined) {
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) o.line(l);
      }
    };
    c.stdout.setEncoding('utf8').on('data', onData);
    c.stderr.setEncoding('utf8').on('data', onData);
    const timer = o.timeoutMs === undefined ? undefined : setTimeout(() => stop(c, 'SIGKILL'), o.timeoutMs);
    c.on('error', (e) => {
      current = undefined;
      if (timer !== undefined) clearTimeout(timer);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && o.allowFail === true) {
        resolve({ code: 127, output: `${cmd}: not installed` });
        return;
      }
      reject(code === 'ENOENT' ? new ForgeError('VIRT_UNAVAILABLE', `${cmd} is not installed (needed by the ${o.step} step of --build)`) : e);
    });
    c.on('close', (code, signal) => {
      current = undefined;
      if (timer !== undefined) clearTimeout(timer);
      if (interrupted) {
        reject(new ForgeError('BUILD_INTERRUPTED', `interrupted (SIGINT) during ${o.step}; everything this build made was released`, { details: { reason: 'interrupted' } }));
        return;
      }
      const rc = code ?? (signal !== null ? 128 : 1);
      if (rc !== 0 && o.allowFail !== true) {
        reject(new ForgeError('BUILD_FAILED', `${o.step}: ${cmd} ${args.join(' ')} exited ${rc}${signal !== null ? ` (${signal})` : ''}:\n${output.trim().split('\n').slice(-25).join('\n')}`, { details: { step: o.step, output: output.slice(-8192) } }));
        return;
      }
      resolve({ code: rc, output });
    });
  });
}

async function out1(cmd: string, args: string[], step: string): Promise<string> {
  return (await run(cmd, args, { step })).output.trim();
}

/** Undo actions in reverse order of doing; each runs even when an earlier one failed. */
class Unwind {
  private readonly steps: { what: string; undo: () => Promise<void> }[] = [];
  push(what: string, undo: () => Promise<void>): void {
    this.steps.push({ what, undo });
  }
  /** Drop an undo step (the thing is now meant to stay). */
  keep(what: string): void {
    const i = this.steps.findIndex((s) => s.what === what);
    if (i >= 0) this.steps.splice(i, 1);
  }
  async popTo(what: string): Promise<void> {
    while (this.steps.length > 0) {
      const s = this.steps.pop() as { what: string; undo: () => Promise<void> };
      await s.undo();
      if (s.what === what) return;
    }
  }
  async all(warn: (m: string) => void): Promise<void> {
    const was = interrupted;
    interrupted = false; // cleanup commands must run
    while (this.steps.length > 0) {
      const s = this.steps.pop() as { what: string; undo: () => Promise<void> };
      try {
        await s.undo();
      } catch (e) {
        warn(`cleanup: could not ${s.what}: ${(e as Error).message}`);
      }
    }
    interrupted = was;
  }
}

function copyTree(src: string, dst: string, tokens: Record<string, string>): number {
  let n = 0;
  for (const name of readdirSync(src)) {
    const s = join(src, name);
    const d = join(dst, name);
    const st = lstatSync(s);
    if (st.isSymbolicLink()) {
      rmSync(d, { force: true });
      symlinkSync(readlinkSync(s), d);
    } else if (st.isDirectory()) {
      mkdirSync(d, { recursive: true });
      chmodSync(d, st.mode & 0o7777);
      n += copyTree(s, d, tokens);
    } else if (st.isFile()) {
      const buf = readFileSync(s);
      // Tokens only in text files (no NUL byte in them), as seed 000's sed over the copied tree.
      const text = buf.length < 4 << 20 && !buf.includes(0);
      rmSync(d, { force: true });
      writeFileSync(d, text ? substituteTokens(buf.toString('utf8'), tokens) : buf);
      chmodSync(d, st.mode & 0o7777);
      n++;
    }
  }
  return n;
}

function dirBytes(dir: string): number {
  let n = 0;
  try {
    for (const f of readdirSync(dir)) {
      try {
        const st = statSync(join(dir, f));
        n += st.isDirectory() ? dirBytes(join(dir, f)) : st.size;
      } catch {
        // vanished while counting
      }
    }
  } catch {
    return 0;
  }
  return n;
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/** Hook executables in HOOKS: `postunpack` (or seed 000's `postunpack.sh`), `postconfig`. */
export function findHook(dir: string, name: string): string | undefined {
  for (const f of [name, `${name}.sh`]) {
    const p = join(dir, f);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return undefined;
}

type PathDisk = Extract<DiskSpec, { path: string }>;

export interface BuildResult {
  domain: string;
  disk: string;
  seconds: number;
  rootfsCached: boolean;
}

/** Target disk and temp raw image for a file target. */
function fileSpec(t: DiskTarget, domain: string, format: 'qcow2' | 'raw', role: 'disk' | 'boot' | 'root'): string | undefined {
  if (t.kind === 'file') return t.path;
  if (t.kind === 'dir') return `${t.dir === '/' ? '' : t.dir}/${domain}-${role === 'disk' ? 'disk01' : role}.${format === 'qcow2' ? 'qcow2' : 'img'}`;
  return undefined;
}

export async function runBuild(opts: AgentOptions, deps: BuildDeps): Promise<BuildResult> {
  if (opts.target === undefined) throw new ForgeError('USAGE', 'no --system or --profile');
  interrupted = false;
  const t0 = Date.now();
  const blended = await deps.api.blended(opts.target.kind, opts.target.name);
  const rec = parseBlended(blended);
  const ip: InstallPlan = planInstall(opts, rec);
  const plan: BuildPlan = planBuild(blended as Record<string, unknown>, {
    domain: ip.domain, firmware: ip.firmware, suite: opts.suite, mirror: opts.mirror, overlayDir: opts.overlayDir, hooksDir: opts.hooksDir, layout: opts.layout, server: opts.server, targetKind: ip.targetKind,
  });
  const reportTo = ip.targetKind === 'system' ? ip.system : undefined;
  if (plan.firstbootUrl !== undefined && installPath(blended as Record<string, unknown>) === '') {
    deps.err(`forge-agent: warning: system ${ip.system} is outside its install window (netboot off), so forge will refuse its first-boot report; turn netboot on (forge system edit --name ${ip.system} --netboot-enabled true) to have first_boot recorded`);
  }
  const elapsed = (): string => `${Math.round((Date.now() - t0) / 1000)}s`;
  const report = async (type: BuildEvent, detail: Record<string, unknown>): Promise<void> => {
    if (opts.json) deps.out(JSON.stringify({ event: type, time: new Date().toISOString(), system: ip.system, domain: ip.domain, ...detail }));
    else if (type !== 'agent_failed') deps.err(`[${elapsed().padStart(5)}] ${type}${detail['summary'] !== undefined ? `: ${String(detail['summary'])}` : ''}`);
    if (reportTo !== undefined) await deps.api.event(reportTo, type as AgentEvent, { domain: ip.domain, ...detail });
  };
  if (ip.disk.kind === 'pool') throw new ForgeError('USAGE', '--build: a pool volume cannot be attached to a loop device; use a directory, a file, a VG or a device', { field: 'virt-path' });
  if (plan.keyring !== undefined && !existsSync(plan.keyring)) {
    throw new ForgeError('INVALID_FIELD', `keyring ${plan.keyring} does not exist${plan.keyring === UBUNTU_KEYRING ? ` (Ubuntu suite ${plan.suite}: Ubuntu's ubuntu-keyring package provides it; Debian 12 does not ship it)` : ''}; set autoinstall_meta keyring to an OpenPGP keyring that signs ${plan.mirror}`, { field: 'keyring' });
  }
  if (opts.overlayDir !== undefined && !existsSync(opts.overlayDir)) throw new ForgeError('INVALID_FIELD', `overlay directory ${opts.overlayDir} does not exist`, { field: 'overlay' });
  if (opts.hooksDir !== undefined && !existsSync(opts.hooksDir)) throw new ForgeError('INVALID_FIELD', `hooks directory ${opts.hooksDir} does not exist`, { field: 'hooks' });

  const nics: NicSpec[] = ip.nics.map((n) => ({ ...n, mac: n.mac === 'random' ? deps.randomMac() : n.mac }));
  if (plan.nics.length === 0) plan.nics = nics.map((n) => ({ mac: n.mac, ip: '', prefix: 24, gateway: '', mtu: 0 }));
  const virt = await deps.connectVirt();
  const undo = new Unwind();
  let started = false;
  try {
    started = true;
    await report('build_started', { suite: plan.suite, mirror: plan.mirror, firmware: plan.firmware, layout: plan.layout, summary: `${ip.domain}: Debian ${plan.suite} from ${plan.mirror}, ${plan.firmware}` });
    if ((await virt.state(ip.domain)) !== undefined) {
      if (!opts.force) throw new ForgeError('VIRT_EXISTS', `domain ${ip.domain} is already defined; use --force to replace it`, { field: 'virt-name' });
    }
    const decision = await deps.resolveVirtType(ip.virtType, undefined, (a) => virt.virsh(a));
    if (decision.warning !== undefined && ip.virtType !== 'auto') deps.err(decision.warning);

    // ---- 1. volumes: files, devices or LVs, each on a loop device (partitions as loopNpM)
    const vols = buildVolumes(ip.disk, ip.domain, plan.layout);
    interface Vol { role: 'disk' | 'boot' | 'root'; final: PathDisk; raw: string; loop: string; convert: boolean }
    const made: Vol[] = [];
    for (const v of vols) {
      const sizeMiB = volumeSizeMiB(v.role, ip.diskGiB);
      let raw: string;
      let final: PathDisk;
      let convert = false;
      const fpath = fileSpec(v.target, ip.domain, ip.diskFormat, v.role);
      if (fpath !== undefined) {
        if (existsSync(fpath)) {
          if (!opts.force) throw new ForgeError('VIRT_EXISTS', `disk ${fpath} already exists; use --force to overwrite it`, { field: 'virt-path' });
        }
        const format = fpath.endsWith('.qcow2') ? 'qcow2' : 'raw';
        convert = format === 'qcow2';
        raw = convert ? `${fpath}.build-raw` : `${fpath}.build`;
        mkdirSync(dirname(fpath), { recursive: true });
        rmSync(raw, { force: true });
        // A new sparse file is all zeros: nothing to wipe.
        await run('truncate', ['-s', `${sizeMiB}M`, raw], { step: 'disk' });
        undo.push(`remove ${raw}`, async () => rmSync(raw, { force: true }));
        final = { kind: 'file', path: fpath, format, bus: ip.diskBus };
      } else if (v.target.kind === 'lvm') {
        const lvPath = `/dev/${v.target.vg}/${v.target.lv}`;
        const present = (await run('lvs', ['--noheadings', `${v.target.vg}/${v.target.lv}`], { step: 'disk', allowFail: true })).code === 0;
        const state = !present ? 'absent' : holdsData(lvPath) ? 'data' : 'empty';
        for (const c of lvmCommands(v.target.vg, v.target.lv, sizeMiB, state, opts.force)) await run(c[0] as string, c.slice(1), { step: 'disk' });
        if (state === 'absent') {
          const lv = `${v.target.vg}/${v.target.lv}`;
          undo.push(`remove ${lv}`, async () => void (await run('lvremove', ['-f', lv], { step: 'cleanup' })));
        }
        raw = lvPath;
        final = { kind: 'block', path: lvPath, format: 'raw', bus: ip.diskBus };
      } else if (v.target.kind === 'device') {
        if (!existsSync(v.target.path) || !statSync(v.target.path).isBlockDevice()) throw new ForgeError('INVALID_FIELD', `${v.target.path} is not a block device`, { field: 'virt-path' });
        if (!opts.force && holdsData(v.target.path)) throw new ForgeError('VIRT_EXISTS', `data on ${v.target.path}; use --force to overwrite it`, { field: 'virt-path' });
        raw = v.target.path;
        final = { kind: 'block', path: v.target.path, format: 'raw', bus: ip.diskBus };
      } else {
        throw new ForgeError('USAGE', `--build: unsupported disk target ${v.target.kind}`, { field: 'virt-path' });
      }
      const loop = await out1('losetup', ['-P', '-f', '--show', raw], 'disk');
      undo.push(`detach ${loop}`, async () => void (await run('losetup', ['-d', loop], { step: 'cleanup' })));
      if (fpath === undefined) {
        // An LV or device may hold old tables and filesystems: the first GiB is zeroed (seed 000).
        await run('dd', ['if=/dev/zero', `of=${loop}`, 'bs=1M', `count=${Math.min(1024, sizeMiB)}`, 'conv=fsync', 'status=none'], { step: 'disk' });
      }
      made.push({ role: v.role, final, raw, loop, convert });
    }

    // ---- 2. partitions and filesystems
    const bootVol = made.find((m) => m.role !== 'root') as Vol;
    const parts = partitions(plan.firmware, plan.layout);
    await run('sgdisk', sgdiskArgs(parts, bootVol.loop), { step: 'partition' });
    await run('partx', ['-u', bootVol.loop], { step: 'partition', allowFail: true });
    const devOf = (p: Partition): string => `${bootVol.loop}p${p.n}`;
    const fsList: { role: Partition['role']; dev: string }[] = parts.map((p) => ({ role: p.role, dev: devOf(p) }));
    const rootVol = made.find((m) => m.role === 'root');
    if (rootVol !== undefined) fsList.push({ role: 'root', dev: rootVol.loop });
    for (const f of fsList) {
      for (let i = 0; i < 50 && !existsSync(f.dev); i++) await new Promise((r) => setTimeout(r, 100));
      for (const c of mkfsCommands(f.role, f.dev, plan.hostname)) await run(c[0] as string, c.slice(1), { step: 'filesystems' });
    }
    const uuid = async (dev: string): Promise<string> => out1('blkid', ['-s', 'UUID', '-o', 'value', dev], 'filesystems');
    const rootDev = (fsList.find((f) => f.role === 'root') as { dev: string }).dev;
    await report('disk_ready', { disk: bootVol.final.path, partitions: parts.map((p) => p.role), summary: `${bootVol.final.path} on ${bootVol.loop}: ${parts.map((p) => p.role).join(', ')}${rootVol !== undefined ? ' + root volume' : ''}` });

    // ---- 3. mount and bootstrap
    const mnt = mkdtempSync(`/run/forge-build-${ip.domain}-`);
    undo.push(`remove ${mnt}`, async () => rmSync(mnt, { recursive: true, force: true }));
    const mounted: string[] = [];
    const mount = async (args: string[], at: string): Promise<void> => {
      mkdirSync(at, { recursive: true });
      await run('mount', [...args, at], { step: 'mount' });
      mounted.push(at);
      undo.push(`unmount ${at}`, async () => {
        // -R: whatever an interrupted mmdebstrap left mounted inside the new root (its /proc, /dev, /sys) goes too.
        const r = await run('umount', ['-R', at], { step: 'cleanup', allowFail: true });
        if (r.code !== 0) await run('umount', ['-R', '-l', at], { step: 'cleanup' });
        mounted.splice(mounted.indexOf(at), 1);
      });
    };
    await mount([rootDev], mnt);
    const bootPart = fsList.find((f) => f.role === 'boot');
    // The ESP is never mounted on the build host (a host kernel may lack vfat): GRUB's EFI image
    // is written into it with mtools (installGrub).
    const esp = fsList.find((f) => f.role === 'esp');

    const aptCache = opts.aptCache ?? join(opts.cacheDir, 'apt');
    mkdirSync(aptCache, { recursive: true });
    const rootfsDir = join(opts.cacheDir, 'rootfs');
    mkdirSync(rootfsDir, { recursive: true });
    const tarball = join(rootfsDir, `${plan.suite}-${plan.rootfsKey}.tar`);
    const rootfsCached = opts.rootfsCache && existsSync(tarball);
    const aptBefore = dirBytes(aptCache);
    if (rootfsCached) {
      if (bootPart !== undefined) await mount([bootPart.dev], join(mnt, 'boot'));
      await run('tar', ['-C', mnt, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarball], { step: 'bootstrap' });
    } else {
      // Straight into the mounted root filesystem, as vmdb2 and seed 000 debootstrap into theirs: mmdebstrap(1)
      // takes a directory that is empty but for ext4's lost+found. (Through a temporary tree and a tarball, as
      // before, every file was written twice more: mmdebstrap's tar, then its unpacking into the image.)
      let lastLine = '';
      // apt downloads into the new root's archives directory: what it holds is what was fetched so far.
      const archives = (): number => dirBytes(join(mnt, 'var/cache/apt/archives'));
      const tick = setInterval(() => {
        if (deps.tty) deps.err(`[${elapsed().padStart(5)}] bootstrap: ${lastLine} (${mib(Math.max(0, archives() - aptBefore))} of packages)`);
      }, 10_000);
      try {
        await run('mmdebstrap', mmdebstrapArgs(plan, mnt, aptCache), { step: 'bootstrap', env: { ...MMDEBSTRAP_ENV }, line: (l) => {
          lastLine = l.trim().slice(0, 80);
          // mmdebstrap's own phase lines ("I: downloading packages with apt...", "I: installing remaining packages
          // inside the chroot...") are its stages: each is a progress line with the elapsed time, so a slow build
          // shows where it spends its time (docs/bench/build.md reads them).
          if (!opts.json && /^I: [a-z]/.test(lastLine)) deps.err(`[${elapsed().padStart(5)}] bootstrap: ${lastLine}`);
        } });
      } finally {
        clearInterval(tick);
      }
      if (opts.rootfsCache) {
        // The pristine tree (nothing of this VM in it yet) becomes the cache the next build of the same
        // suite, mirror and packages unpacks instead of bootstrapping.
        const tmp = mkdtempSync(join(rootfsDir, '.tmp-'));
        undo.push(`remove ${tmp}`, async () => rmSync(tmp, { recursive: true, force: true }));
        const part = join(tmp, 'rootfs.tar');
        await run('tar', ['-C', mnt, '--numeric-owner', '--xattrs', '--xattrs-include=*', '--one-file-system', '--exclude=./lost+found', '-cpf', part, '.'], { step: 'bootstrap' });
        renameSync(part, tarball);
        await undo.popTo(`remove ${tmp}`);
        if (!opts.json) deps.err(`[${elapsed().padStart(5)}] bootstrap: root tree kept for the next build (${mib(statSync(tarball).size)}, ${tarball})`);
      }
      if (bootPart !== undefined) {
        // /boot's own filesystem (seed 001's layout): what mmdebstrap put in the root's /boot moves onto it.
        const staged = join(mnt, '.forge-boot');
        renameSync(join(mnt, 'boot'), staged);
        await mount([bootPart.dev], join(mnt, 'boot'));
        await run('cp', ['-a', `${staged}/.`, join(mnt, 'boot')], { step: 'bootstrap' });
        rmSync(staged, { recursive: true, force: true });
      }
    }
    if (esp !== undefined) mkdirSync(join(mnt, 'boot/efi'), { recursive: true });
    const fetched = Math.max(0, dirBytes(aptCache) - aptBefore);
    await report('bootstrap_done', { suite: plan.suite, cached: rootfsCached, bytes_fetched: fetched, summary: `Debian ${plan.suite}${rootfsCached ? ' (root tree from the cache)' : ''}, ${mib(fetched)} fetched` });

    // ---- 4. overlay, resolv.conf, hostname
    let overlayFiles = 0;
    if (existsSync(plan.overlayDir)) overlayFiles = copyTree(plan.overlayDir, mnt, plan.tokens);
    rmSync(join(mnt, 'etc/resolv.conf'), { force: true });
    const resolv = resolvConf(plan);
    if (resolv !== undefined) {
      writeFileSync(join(mnt, 'etc/resolv.conf'), resolv);
    } else if (existsSync('/etc/resolv.conf')) {
      writeFileSync(join(mnt, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
    }
    writeFileSync(join(mnt, 'etc/hostname'), `${plan.hostname}\n`);
    writeFileSync(join(mnt, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${plan.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);

    // ---- 5. hooks and chroot
    const hookEnv = { FORGE_SYSTEM: plan.system, FORGE_HOSTNAME: plan.hostname, FORGE_MOUNT: mnt, FORGE_SUITE: plan.suite };
    const hook = async (name: string): Promise<string | undefined> => {
      const h = findHook(plan.hooksDir, name);
      if (h === undefined) return undefined;
      const r = await run(h, [plan.hostname, mnt, plan.suite], { step: `hook ${name}`, env: hookEnv, allowFail: true });
      if (r.code !== 0) throw new ForgeError('BUILD_FAILED', `hook ${h} exited ${r.code}:\n${r.output.trim().split('\n').slice(-25).join('\n')}`, { field: 'hooks', details: { step: `hook ${name}`, output: r.output.slice(-8192) } });
      return h;
    };
    const ranHooks: string[] = [];
    const h1 = await hook('postunpack');
    if (h1 !== undefined) ranHooks.push(h1);

    await mount(['-t', 'proc', 'proc'], join(mnt, 'proc'));
    await mount(['-t', 'sysfs', 'sysfs'], join(mnt, 'sys'));
    await mount(['--bind', '/dev'], join(mnt, 'dev'));
    await mount(['-t', 'devpts', 'devpts', '-o', 'newinstance,ptmxmode=0666'], join(mnt, 'dev/pts'));
    const policy = join(mnt, 'usr/sbin/policy-rc.d');
    const savedPolicy = existsSync(policy) ? readFileSync(policy) : undefined;
    // invoke-rc.d(8): exit 101 = action forbidden; no daemon starts inside the build host.
    writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    const restorePolicy = async (): Promise<void> => {
      if (savedPolicy !== undefined) writeFileSync(policy, savedPolicy, { mode: 0o755 });
      else rmSync(policy, { force: true });
    };
    undo.push('restore policy-rc.d', restorePolicy);

    for (const [p, text] of Object.entries(networkdFiles(plan))) {
      mkdirSync(dirname(join(mnt, p)), { recursive: true });
      writeFileSync(join(mnt, p), text);
    }
    if (plan.firstbootUrl !== undefined) {
      mkdirSync(join(mnt, 'usr/local/sbin'), { recursive: true });
      writeFileSync(join(mnt, 'usr/local/sbin/forge-firstboot'), firstbootScript(plan.firstbootUrl), { mode: 0o755 });
      writeFileSync(join(mnt, 'etc/systemd/system/forge-firstboot.service'), FIRSTBOOT_UNIT);
    }
    if (plan.sshKeys.length > 0) {
      mkdirSync(join(mnt, 'root/.ssh'), { recursive: true, mode: 0o700 });
      const ak = join(mnt, 'root/.ssh/authorized_keys');
      const have = existsSync(ak) ? readFileSync(ak, 'utf8') : '';
      writeFileSync(ak, have + plan.sshKeys.filter((k) => !have.includes(k)).map((k) => `${k}\n`).join(''), { mode: 0o600 });
    }
    const setup = `set -e
echo "LANG=${plan.locale}" > /etc/default/locale
if [ "${plan.locale}" != C.UTF-8 ] && [ -x /usr/sbin/locale-gen ]; then
  echo "${plan.locale} UTF-8" >> /etc/locale.gen; locale-gen
fi
[ -e /usr/share/zoneinfo/${plan.timezone} ] || { echo "timezone ${plan.timezone}: no such zone in /usr/share/zoneinfo"; exit 1; }
ln -sf /usr/share/zoneinfo/${plan.timezone} /etc/localtime
echo ${plan.timezone} > /etc/timezone
# The root tree may come from the cache: every VM gets its own ssh host keys and machine id.
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
systemctl enable systemd-networkd.service
# The build set locale, time zone and host name; systemd-firstboot must not prompt on the console.
systemctl mask systemd-firstboot.service
${plan.firstbootUrl !== undefined ? 'systemctl enable forge-firstboot.service' : ''}
`;
    writeFileSync(join(mnt, 'tmp/forge-setup.sh'), setup);
    const chrootEnv = { DISTR: plan.suite, HOSTNAME: plan.hostname, FORGE_SYSTEM: plan.system, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C.UTF-8', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
    await run('chroot', [mnt, '/bin/sh', '/tmp/forge-setup.sh'], { step: 'chroot setup', env: chrootEnv });
    rmSync(join(mnt, 'tmp/forge-setup.sh'), { force: true });
    const scripts: string[] = [];
    for (const s of ['root/bin/install.sh', 'root/bin/install-custom.sh']) {
      if (!existsSync(join(mnt, s))) continue;
      await run('chroot', [mnt, '/bin/sh', `/${s}`], { step: `chroot /${s}`, env: chrootEnv });
      scripts.push(`/${s}`);
    }
    await undo.popTo('restore policy-rc.d');
    const h2 = await hook('postconfig');
    if (h2 !== undefined) ranHooks.push(h2);
    await report('hooks_done', { hooks: ranHooks, scripts, overlay_files: overlayFiles, summary: `overlay ${overlayFiles} file(s), hooks ${ranHooks.length > 0 ? ranHooks.join(' ') : 'none'}, scripts ${scripts.length > 0 ? scripts.join(' ') : 'none'}` });

    // ---- 6. fstab, kernel, GRUB
    const entries: { uuid: string; mount: string; type: string; pass: number }[] = [{ uuid: await uuid(rootDev), mount: '/', type: 'ext4', pass: 1 }];
    if (bootPart !== undefined) entries.push({ uuid: await uuid(bootPart.dev), mount: '/boot', type: 'ext4', pass: 2 });
    if (esp !== undefined) entries.push({ uuid: await uuid(esp.dev), mount: '/boot/efi', type: 'vfat', pass: 2 });
    const swap = fsList.find((f) => f.role === 'swap');
    if (swap !== undefined) entries.push({ uuid: await uuid(swap.dev), mount: 'none', type: 'swap', pass: 0 });
    writeFileSync(join(mnt, 'etc/fstab'), fstab(entries));
    writeFileSync(join(mnt, 'etc/default/grub'), grubDefaults());
    await installGrub(mnt, plan.firmware === 'uefi' ? (esp as { dev: string }).dev : bootVol.loop, plan.firmware, chrootEnv);
    const cfg = readFileSync(join(mnt, 'boot/grub/grub.cfg'), 'utf8');
    const rootUuid = (entries[0] as { uuid: string }).uuid;
    if (!cfg.includes(`root=UUID=${rootUuid}`) || !cfg.includes('console=ttyS0')) {
      throw new ForgeError('BUILD_FAILED', `grub.cfg does not boot root=UUID=${rootUuid} with console=ttyS0`, { details: { step: 'bootloader' } });
    }
    const kernel = readdirSync(join(mnt, 'boot')).filter((f) => f.startsWith('vmlinuz-')).sort().pop() ?? '';
    await report('bootloader_done', { firmware: plan.firmware, kernel, root_uuid: rootUuid, summary: `GRUB ${plan.firmware === 'uefi' ? 'x86_64-efi (removable path)' : 'i386-pc'}, ${kernel}, root=UUID=${rootUuid}` });

    // ---- 7. release, convert, define and boot
    await run('sync', [], { step: 'unmount' });
    while (mounted.length > 0) await undo.popTo(`unmount ${mounted[mounted.length - 1] as string}`);
    for (const m of made) {
      await undo.popTo(`detach ${m.loop}`);
      if (m.final.kind !== 'file') continue;
      const finalPath = m.final.path;
      if (m.convert) {
        await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', m.raw, `${finalPath}.build`], { step: 'convert' });
        rmSync(m.raw, { force: true });
        undo.keep(`remove ${m.raw}`);
        undo.push(`remove ${finalPath}.build`, async () => rmSync(`${finalPath}.build`, { force: true }));
      }
      // The finished image replaces an existing one (--force) only now.
      renameSync(`${finalPath}.build`, finalPath);
      undo.keep(`remove ${finalPath}.build`);
      undo.keep(`remove ${m.raw}`);
      chmodSync(finalPath, 0o644);
    }
    await undo.popTo(`remove ${mnt}`);
    if ((await virt.state(ip.domain)) !== undefined) {
      deps.err(`replacing existing domain ${ip.domain} (--force)`);
      await virt.destroy(ip.domain);
      await virt.undefine(ip.domain);
    }
    // Data disks after the system disk (--virt-path a,b): empty, made as the installer path makes them.
    const disks: DiskSpec[] = made.map((m) => m.final);
    for (const [i, d] of ip.extraDisks.entries()) {
      const spec = diskSpec(d.target, ip.domain, d.format, ip.diskBus, i + 2);
      const extra = await prepareDisk(d.target, spec, d.gib, opts.force, (a) => virt.virsh(a));
      if (d.target.kind !== 'device') undo.push(`remove data disk ${i + 2}`, async () => removeDisk(d.target, extra, (a) => virt.virsh(a)));
      disks.push(extra);
    }
    const base = {
      name: ip.domain, uuid: deps.uuid(), type: decision.type, memoryMiB: ip.memoryMiB, vcpus: ip.vcpus, disk: disks[0] as DiskSpec, nics, graphics: ip.graphics, machine: ip.machine,
      ...(disks.length > 1 ? { extraDisks: disks.slice(1) } : {}),
      ...(ip.firmware === 'uefi' ? { uefi: { secureBoot: ip.secureBoot } } : {}),
      ...(ip.targetKind === 'system' ? { system: ip.system } : {}),
    };
    checkInterrupted();
    await virt.define(persistentXml(ip, base));
    try {
      if (ip.autoBoot) await virt.autostart(ip.domain, true);
      if (opts.noStart !== true) await virt.start(ip.domain);
    } catch (e) {
      await virt.undefine(ip.domain).catch(() => undefined);
      throw e;
    }
    for (const i of ip.extraDisks.keys()) undo.keep(`remove data disk ${i + 2}`);
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    if (opts.noStart === true) {
      if (!opts.json) deps.out(`${ip.domain}: built in ${seconds} s (Debian ${plan.suite}, ${plan.firmware}); defined, not started (forge-agent vm start ${ip.domain})`);
      return { domain: ip.domain, disk: (disks[0] as PathDisk).path, seconds, rootfsCached };
    }
    await report('disk_boot_started', { console_log: ip.consoleLog, seconds, build: 'debootstrap', summary: `${ip.domain} booting (virsh console ${ip.domain}, log ${ip.consoleLog})` });
    if (!opts.json) deps.out(`${ip.domain}: built in ${seconds} s (Debian ${plan.suite}, ${plan.firmware}); booting from ${(disks[0] as PathDisk).path} (virsh console ${ip.domain})`);
    return { domain: ip.domain, disk: (disks[0] as PathDisk).path, seconds, rootfsCached };
  } catch (e) {
    await undo.all((m) => deps.err(`warning: ${m}`));
    if (started) {
      const fe = e instanceof ForgeError ? e : new ForgeError('INTERNAL', (e as Error).message ?? String(e));
      await report('agent_failed', { code: fe.code, message: fe.message.slice(0, 2000), build: 'debootstrap' });
    }
    throw e;
  } finally {
    await virt.close();
  }
}

/**
 * GRUB into the mounted tree. BIOS: `grub-install --target=i386-pc DISK` (boot code in the MBR,
 * core.img in the BIOS boot partition). UEFI: what `grub-install --removable` does, without
 * mounting the ESP (TARGET: the ESP partition): the x86_64-efi modules into /boot/grub, an EFI
 * image from grub-mkimage whose early config finds the root by UUID, written with mtools to the
 * firmware's fallback path EFI/BOOT/BOOTX64.EFI (UEFI 2.x 3.5.1.1: no boot variable needed).
 */
export async function installGrub(mnt: string, target: string, firmware: 'uefi' | 'bios', env: Record<string, string>): Promise<void> {
  const rootDev = (await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', mnt], { step: 'bootloader' })).output.trim();
  const uuid = (await run('blkid', ['-s', 'UUID', '-o', 'value', rootDev], { step: 'bootloader' })).output.trim();
  if (firmware === 'uefi') {
    const mods = join(mnt, 'boot/grub/x86_64-efi');
    rmSync(mods, { recursive: true, force: true });
    mkdirSync(mods, { recursive: true });
    for (const f of readdirSync(join(mnt, 'usr/lib/grub/x86_64-efi'))) {
      if (/\.(mod|lst)$/.test(f)) writeFileSync(join(mods, f), readFileSync(join(mnt, 'usr/lib/grub/x86_64-efi', f)));
    }
    writeFileSync(join(mnt, 'tmp/forge-grub-early.cfg'), `search.fs_uuid ${uuid} root\nset prefix=($root)'/boot/grub'\n`);
    try {
      await run('chroot', [mnt, 'grub-mkimage', '-O', 'x86_64-efi', '-o', '/tmp/forge-BOOTX64.EFI', '-c', '/tmp/forge-grub-early.cfg', '-p', '/boot/grub',
        'part_gpt', 'part_msdos', 'ext2', 'fat', 'search', 'search_fs_uuid', 'normal', 'configfile', 'linux', 'echo', 'serial', 'terminal', 'efi_gop', 'all_video'], { step: 'bootloader', env });
      // mkfs.vfat's geometry on a loop partition trips mtools' sanity check; the filesystem is fine.
      const mt = { MTOOLS_SKIP_CHECK: '1' };
      await run('mmd', ['-D', 's', '-i', target, '::/EFI'], { step: 'bootloader', allowFail: true, env: mt });
      await run('mmd', ['-D', 's', '-i', target, '::/EFI/BOOT'], { step: 'bootloader', allowFail: true, env: mt });
      await run('mcopy', ['-o', '-i', target, join(mnt, 'tmp/forge-BOOTX64.EFI'), '::/EFI/BOOT/BOOTX64.EFI'], { step: 'bootloader', env: mt });
    } finally {
      rmSync(join(mnt, 'tmp/forge-grub-early.cfg'), { force: true });
      rmSync(join(mnt, 'tmp/forge-BOOTX64.EFI'), { force: true });
    }
  } else {
    await run('chroot', [mnt, 'grub-install', '--target=i386-pc', '--boot-directory=/boot', '--no-floppy', target], { step: 'bootloader', env });
  }
  // grub-mkconfig's 10_linux writes root=UUID= only when /dev/disk/by-uuid/UUID exists, which
  // needs udev; without it (a build host, a container) it would write root=/dev/loopNpM. So for
  // this run GRUB_DEVICE names the root by UUID (default/grub.d is sourced after grub-probe ran).
  const dropIn = join(mnt, 'etc/default/grub.d/zz-forge-build-root.cfg');
  mkdirSync(dirname(dropIn), { recursive: true });
  writeFileSync(dropIn, `GRUB_DEVICE=UUID=${uuid}\n`);
  try {
    await run('chroot', [mnt, 'grub-mkconfig', '-o', '/boot/grub/grub.cfg'], { step: 'bootloader', env });
  } finally {
    rmSync(dropIn, { force: true });
  }
}

