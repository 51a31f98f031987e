/**
 * Build benchmark (issue 15): wall time from the command to a minimal Debian 12
 * VM's first boot, three ways on the same machine in the same run:
 *  - `forge-agent --system S --virt --build debootstrap` (mmdebstrap, GRUB,
 *    domain defined and started) until the guest's first_boot callback and
 *    its serial login prompt;
 *  - the installer path: `forge-agent --system S --virt` with the real Debian
 *    12 installer (debian-installer-12-netboot-amd64) and forge's default
 *    preseed, until the installed system's first_boot callback and login;
 *  - vmdb2 (Debian's image builder: debootstrap, parted, GRUB) writing the
 *    same layout to a raw file on a loop device, then `virt-install --import`
 *    booting it, until its serial login prompt.
 * Fairness: one package source for all, a caching mirror on the lab bridge
 * (bench/mirror.ts) warmed by a first, untimed forge build, so every timed run
 * reads the same warm cache (the bytes each run still fetched from Debian's
 * archive are recorded); forge without its own root-tree and apt caches in the
 * main row; the same suite, the same package set (BASE_PACKAGES + the kernel;
 * the installer adds what d-i always installs: priority important, no tasks),
 * the same VM (1 vCPU, 1024 MiB, 4 GiB disk, virtio, SeaBIOS, qemu TCG), one VM
 * at a time, load average recorded beside each figure. Root, libvirtd running.
 * Run alone: `node dist/bench/build.js`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startForge, type ForgeServer } from '../test/lib/server.js';
import { guestKernel } from '../test/lib/guest.js';
import { AGENT_BIN, createNetwork, labDir, removeDomain, udevKvmPermissions } from '../test/lib/agent-lab.js';
import { BASE_PACKAGES } from '../agent/buildplan.js';
import { startMirror, type Mirror } from './mirror.js';
import { load1 } from './proc.js';

const DI = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';
const RAM = 1024;
const DISK_GIB = 4;
const PACKAGES = [...BASE_PACKAGES, 'linux-image-amd64'];
/** Bench timeouts: generous, the machine is shared and TCG is slow. */
const BUILD_MS = 3_600_000;
const INSTALL_MS = 7_200_000;
const FORGE_ROW = 'forge-agent --build debootstrap (no root-tree or apt cache of its own)';
const VMDB2_ROW = 'vmdb2 (debootstrap minbase, same packages and layout) + virt-install --import';
const INSTALLER_ROW = 'forge-agent --virt, Debian 12 installer (d-i netboot, forge preseed, no tasks)';

interface Sample {
  what: string;
  /** seconds from the command to the guest's first_boot callback (forge paths) */
  firstBoot: number | undefined;
  /** seconds from the command to the serial console's login prompt */
  login: number;
  /** seconds the command itself ran (build / install, until it returned) */
  command: number;
  loadBefore: string;
  loadAfter: string;
  upstreamMiB: number;
  note: string;
  /** forge's own progress lines: stage -> seconds since the command started */
  stages?: Record<string, number>;
}

function runCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, log?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const add = (d: Buffer): void => {
      out += d.toString('utf8');
      if (log !== undefined) writeFileSync(log, out);
    };
    p.stdout.on('data', add);
    p.stderr.on('data', add);
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} timed out after ${timeoutMs / 1000} s:\n${out.slice(-4000)}`));
    }, timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
  });
}

function must(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const consoleOf = (f: string): string => {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
};

/** Set once forge runs: has SYS reported its first boot? */
let firstBootOf: (sys: string) => Promise<true | undefined> = () => Promise.resolve(undefined);

const secs = (t0: number): number => (Date.now() - t0) / 1000;

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout || r.stderr).trim().split('\n')[0] ?? '?';
}

/**
 * The vmdb2 specification: seed 000's GPT (BIOS boot 4 MiB, swap 1020 MiB, root ext4), debootstrap minbase with the same
 * packages, GRUB on the serial console. No udev here, so no /dev/disk/by-uuid: grub-mkconfig (10_linux) would then put
 * root=/dev/loopNp3 on the kernel line, which the guest does not have; a shell step gives it the by-uuid link udev would
 * have made (and removes it after). zerofree off: forge does not zero free blocks either (and zerofree is not installed).
 */
function vmdb2Spec(mirror: string, dev: string): string {
  return `steps:
  - mklabel: gpt
    device: "{{ image }}"
  - mkpart: primary
    device: "{{ image }}"
    start: 1MiB
    end: 5MiB
    tag: biosboot
  - set_part_flag: "{{ image }}"
    tag: biosboot
    flag: bios_grub
  - mkpart: primary
    device: "{{ image }}"
    fs-type: linux-swap
    start: 5MiB
    end: 1025MiB
    tag: swap
  - mkpart: primary
    device: "{{ image }}"
    start: 1025MiB
    end: 100%
    tag: root
  - mkfs: ext4
    partition: root
  - mount: root
    zerofree: false
  - shell: mkswap ${dev}p2
    root-fs: root
  - debootstrap: bookworm
    mirror: ${mirror}
    target: root
    variant: minbase
    include: [${PACKAGES.join(', ')}]
  - fstab: root
  - shell: echo vmdb2host > "$ROOT/etc/hostname"
    root-fs: root
  - shell: mkdir -p /dev/disk/by-uuid && ln -sfn ../../${dev.replace('/dev/', '')}p3 "/dev/disk/by-uuid/$(blkid -s UUID -o value ${dev}p3)"
    root-fs: root
  - grub: bios
    tag: root
    image-dev: ${dev}
    console: serial
  - shell: rm -f "/dev/disk/by-uuid/$(blkid -s UUID -o value ${dev}p3)"
    root-fs: root
`;
}

export async function run(): Promise<string> {
  if (process.getuid?.() !== 0) throw new Error('bench/build needs root (loop devices, qemu:///system)');
  if (spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { timeout: 30_000 }).status !== 0) throw new Error('libvirtd is not running');
  for (const c of ['mmdebstrap', 'vmdb2', 'debootstrap', 'virt-install', 'parted']) {
    if (spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0) throw new Error(`bench/build needs ${c} (apt-get install vmdb2 mmdebstrap virtinst)`);
  }
  if (!existsSync(`${DI}/linux`)) throw new Error('bench/build needs debian-installer-12-netboot-amd64');
  udevKvmPermissions();
  const only = new Set((process.env['FORGE_BENCH_BUILD_ONLY'] ?? 'forge,vmdb2,installer').split(','));
  const net = createNetwork('fgbb');
  const dir = labDir('fgbb');
  let mirror: Mirror | undefined;
  let srv: ForgeServer | undefined;
  const samples: Sample[] = [];
  const domains: string[] = [];
  const tag = `fgbb${process.pid}`;
  try {
    mirror = await startMirror(net.hostIp, 'http://deb.debian.org/debian');
    const mirrorUrl = `${mirror.url}/debian`;
    srv = await startForge({ args: ['--listen', net.hostIp, '--server', net.hostIp, '--http-port', String(20000 + (process.pid % 20000)), '--pxe-just-once', 'true'] });
    const s = srv;
    const base = `http://${net.hostIp}:${s.port}`;
    // forge listens on the lab bridge only (guests reach it there), so the bench talks to it there too.
    const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> => {
      const res = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${s.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
    };
    const mk = async (kind: string, body: unknown): Promise<void> => {
      const r = await api('POST', `/api/v1/${kind}`, body);
      if (r.status !== 201 && r.status !== 200) throw new Error(`create ${kind}: ${JSON.stringify(r.body)}`);
    };
    firstBootOf = async (sys: string) => {
      const r = await api('GET', `/api/v1/systems/${sys}/events`);
      return Array.isArray(r.body) && (r.body as { type: string }[]).some((e) => e.type === 'first_boot') ? true : undefined;
    };
    const unused = join(dir, 'unused-initrd');
    writeFileSync(unused, 'not used by --build');
    await mk('distros', { name: `${tag}-build`, kernel: guestKernel().vmlinuz, initrd: unused, breed: 'debian', os_version: 'bookworm', arch: 'x86_64' });
    await mk('distros', { name: `${tag}-di`, kernel: `${DI}/linux`, initrd: `${DI}/initrd.gz`, breed: 'debian', os_version: 'bookworm', arch: 'x86_64' });
    const meta = { tree: mirrorUrl, install_finish: 'poweroff', serial_console: 'ttyS0,115200', tasks: 'none' };
    await mk('profiles', { name: `${tag}-build`, distro: `${tag}-build`, autoinstall_meta: { ...meta, build_method: 'debootstrap' } });
    await mk('profiles', { name: `${tag}-di`, distro: `${tag}-di`, autoinstall_meta: meta, kernel_options: { 'console': 'ttyS0,115200' } });
    let n = 0;
    const system = async (profile: 'build' | 'di'): Promise<string> => {
      const name = `${tag}-${profile}${n++}`;
      domains.push(name);
      await mk('systems', {
        name, profile: `${tag}-${profile}`, hostname: `bench${n}`, virt_ram: RAM, virt_cpus: 1, virt_file_size: DISK_GIB, virt_disk_driver: 'raw', netboot_enabled: true,
        // The installer gets a static address with the lab's host as gateway and DNS (forge puts them on d-i's kernel
        // line): libvirt's DHCP on the isolated network offers no router, and netcfg then stops at questions
        // (netcfg/no_default_route, then netcfg/get_nameservers) that no preseed line can answer in time.
        interfaces: { eth0: profile === 'di' ? { mac_address: 'random', static: true, ip_address: `${net.hostIp.replace(/\.1$/, '')}.${60 + n}`, netmask: '255.255.255.0', if_gateway: net.hostIp } : { mac_address: 'random' } },
        ...(profile === 'di' ? { name_servers: [net.hostIp] } : {}),
      });
      return name;
    };
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_'))), FORGE_SERVER: base, FORGE_TOKEN: s.token };
    const emptyDir = join(dir, 'empty');
    mkdirSync(emptyDir);
    /** One forge-agent run of system SYS (ARGS after --system SYS --virt), timed to the guest's first_boot and its login prompt. */
    const agentSample = async (what: string, sys: string, args: string[], timeoutMs: number, note: string): Promise<Sample> => {
      const log = `/var/log/libvirt/qemu/${sys}-console.log`;
      const up0 = mirror!.upstreamBytes();
      const loadBefore = load1();
      const t0 = Date.now();
      const r = await runCmd(process.execPath, [AGENT_BIN, '--system', sys, '--virt', '--virt-type', 'qemu', '--nogfx', '--virt-network', net.name, '--virt-path', join(dir, 'disks'), ...args], env, timeoutMs, join(dir, `${sys}.agent.log`));
      const command = secs(t0);
      if (r.code !== 0) throw new Error(`forge-agent ${args.join(' ')} failed:\n${r.out.slice(-4000)}`);
      await until(`first_boot of ${sys}`, BUILD_MS, () => firstBootOf(sys));
      const firstBoot = secs(t0);
      await until(`login prompt of ${sys}`, BUILD_MS, () => (/^\S+ login: /m.test(consoleOf(log)) ? true : undefined));
      const login = secs(t0);
      removeDomain(sys);
      rmSync(join(dir, 'disks'), { recursive: true, force: true });
      const stages = Object.fromEntries([...r.out.matchAll(/^\[\s*(\d+)s\] (\w+)/gm)].map((m) => [m[2] as string, Number(m[1])]));
      return { what, firstBoot, login, command, loadBefore, loadAfter: load1(), upstreamMiB: (mirror!.upstreamBytes() - up0) / 2 ** 20, note, stages };
    };
    const forgeBuild = async (what: string, cache: string, note: string): Promise<Sample> =>
      agentSample(what, await system('build'), ['--build', 'debootstrap', '--cache-dir', cache, '--overlay', emptyDir, '--hooks', emptyDir], BUILD_MS, note);
    const installer = async (): Promise<Sample> =>
      agentSample(INSTALLER_ROW, await system('di'), ['--vm-poll', '--cache-dir', join(dir, 'di-cache'), '--timeout', String(INSTALL_MS / 1000)], INSTALL_MS + 600_000,
        'packages through the same mirror cache; d-i also installs priority important');
    const vmdb2 = async (): Promise<Sample> => {
      const name = `${tag}-vmdb2`;
      domains.push(name);
      const vdir = join(dir, name); // virt-install names the pool it defines for this directory after it
      mkdirSync(vdir, { recursive: true });
      const img = join(vdir, `${name}.img`);
      // The serial console through virtlogd, as forge-agent's domains log theirs (qemu itself may not write under vdir).
      const log = `/var/log/libvirt/qemu/${name}-console.log`;
      const up0 = mirror!.upstreamBytes();
      const loadBefore = load1();
      const t0 = Date.now();
      // vmdb2 0.26 maps a file's partitions with kpartx (device-mapper, absent here); given a
      // partitioned loop device as its image it uses the kernel's own partitions instead.
      must('truncate', ['-s', `${DISK_GIB}G`, img]);
      const dev = must('losetup', ['-f', '--show', '-P', img]).trim();
      let command = 0;
      try {
        const spec = join(vdir, 'spec.vmdb');
        writeFileSync(spec, vmdb2Spec(mirrorUrl, dev));
        const r = await runCmd('vmdb2', [spec, `--image=${dev}`, `--log=${join(vdir, 'vmdb2.log')}`, '--verbose'], process.env, BUILD_MS, join(vdir, 'vmdb2.out'));
        command = secs(t0);
        if (r.code !== 0) throw new Error(`vmdb2 failed:\n${r.out.slice(-4000)}`);
      } finally {
        spawnSync('losetup', ['-d', dev]);
      }
      must('virt-install', [
        '--connect', 'qemu:///system', '--name', name, '--virt-type', 'qemu', '--memory', String(RAM), '--vcpus', '1',
        '--disk', `path=${img},format=raw,bus=virtio`, '--import', '--network', `network=${net.name},model=virtio`,
        '--graphics', 'none', '--serial', `pty,log.file=${log}`, '--osinfo', 'detect=on,require=off', '--noautoconsole',
      ]);
      await until(`login prompt of ${name}`, BUILD_MS, () => (/^\S+ login: /m.test(consoleOf(log)) ? true : undefined));
      const login = secs(t0);
      removeDomain(name);
      rmSync(vdir, { recursive: true, force: true });
      return { what: VMDB2_ROW, firstBoot: undefined, login, command, loadBefore, loadAfter: load1(), upstreamMiB: (mirror!.upstreamBytes() - up0) / 2 ** 20, note: 'no first-boot callback: login prompt only' };
    };

    // Untimed warm-up: fills the mirror cache with the build's packages (vmdb2 needs the same ones),
    // unless an earlier run left them there (pool/ files are kept; "upstream MiB" shows what was missing).
    if ((only.has('forge') || only.has('vmdb2')) && !mirror.warm()) await forgeBuild('warm-up', join(dir, 'cache-warm'), '');
    // Timed, one VM at a time. A failed sample is recorded as failed; the others still run.
    const sample = async (what: string, f: () => Promise<Sample>): Promise<void> => {
      try {
        samples.push(await f());
      } catch (e) {
        console.error(`bench build: ${what} failed: ${(e as Error).message}`);
        samples.push({ what, firstBoot: undefined, login: NaN, command: NaN, loadBefore: load1(), loadAfter: load1(), upstreamMiB: 0, note: `FAILED: ${(e as Error).message.split('\n')[0] ?? ''}` });
      }
      writeFileSync(join(mirror!.cacheDir, 'build-samples.json'), JSON.stringify(samples, null, 1));
    };
    if (only.has('forge')) await sample(FORGE_ROW, () => forgeBuild(FORGE_ROW, join(dir, 'cache-a'), 'mmdebstrap from the mirror cache'));
    if (only.has('vmdb2')) await sample(VMDB2_ROW, vmdb2);
    if (only.has('installer')) await sample(INSTALLER_ROW, installer);
    if (only.has('forge')) await sample('forge-agent --build debootstrap, its own caches warm', () => forgeBuild('forge-agent --build debootstrap, its own caches warm', join(dir, 'cache-a'), 'the root tree and apt cache of the first timed run (same suite, mirror, packages)'));
  } finally {
    for (const d of domains) {
      removeDomain(d);
      for (const f of [d, `${d}-console`, `${d}-install`]) rmSync(`/var/log/libvirt/qemu/${f}.log`, { force: true });
    }
    for (const l of spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n')) {
      const m = /^(\/dev\/loop\d+):.*\(([^)]*)\)/.exec(l);
      if (m !== null && (m[2] as string).startsWith(dir)) spawnSync('losetup', ['-d', m[1] as string]);
    }
    // virt-install --import defines a storage pool for the image's directory: remove the ones under ours.
    for (const pool of spawnSync('virsh', ['-c', 'qemu:///system', 'pool-list', '--all', '--name'], { encoding: 'utf8' }).stdout.split('\n').map((x) => x.trim()).filter((x) => x !== '')) {
      if (spawnSync('virsh', ['-c', 'qemu:///system', 'pool-dumpxml', pool], { encoding: 'utf8' }).stdout.includes(`<path>${dir}`)) {
        spawnSync('virsh', ['-c', 'qemu:///system', 'pool-destroy', pool]);
        spawnSync('virsh', ['-c', 'qemu:///system', 'pool-undefine', pool]);
      }
    }
    await srv?.stop();
    await mirror?.stop();
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(0));
  const forge = samples.find((x) => x.what === FORGE_ROW);
  const inst = samples.find((x) => x.what === INSTALLER_ROW);
  const vm = samples.find((x) => x.what === VMDB2_ROW);
  const ratio = (a: Sample | undefined, b: Sample | undefined): string => (a === undefined || b === undefined || !Number.isFinite(a.login) || !Number.isFinite(b.login) ? 'not measured' : `${(b.login / a.login).toFixed(1)}x`);
  return [
    '## forge-agent --build: command to first boot of a minimal Debian 12 VM',
    '',
    `One sample of each, run one after the other in this order (one VM at a time), on the same machine. Same suite (bookworm), the same`,
    `packages (${PACKAGES.join(', ')}), the same VM (1 vCPU, ${RAM} MiB, ${DISK_GIB} GiB raw virtio disk, SeaBIOS, qemu TCG: no KVM here).`,
    'All packages come from one caching mirror on the lab bridge (a local reverse proxy to Debian\'s archive), warmed by an untimed forge build',
    'first; "upstream MiB" is what a run still fetched from the archive. Seconds from the command to the guest\'s first-boot callback to forge',
    'and to the login prompt on its serial console.',
    '',
    '| path | command s | first_boot s | login prompt s | upstream MiB | load 1 min before / after | note |',
    '|---|---|---|---|---|---|---|',
    ...samples.map((x) => `| ${x.what} | ${f(x.command)} | ${f(x.firstBoot)} | ${f(x.login)} | ${x.upstreamMiB.toFixed(1)} | ${x.loadBefore} / ${x.loadAfter} | ${x.note} |`),
    '',
    ...samples.filter((x) => x.stages !== undefined && Object.keys(x.stages).length > 0).map((x) => `Where "${x.what}" spent its time (forge-agent's own progress, seconds since the command): ${Object.entries(x.stages ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}; then the guest's boot to first_boot.`),
    '',
    `Installer path / build path (to the login prompt): ${ratio(forge, inst)} (target: at least 5x). vmdb2 / build path: ${ratio(forge, vm)} (target: at least 1.0x).`,
    '',
    'What differs: the installer installs priority-important packages too (d-i\'s base-installer always does) and runs in the guest under',
    'TCG, where the builders run on the host; vmdb2 uses debootstrap (minbase: the same required set as mmdebstrap\'s "required") and',
    'installs grub-pc with apt inside the chroot; its swap partition is formatted by a shell step; forge also sets locale, time zone, host',
    'name, networkd and its first-boot report. vmdb2 0.26 maps an image file\'s partitions with kpartx (device-mapper, absent here), so the',
    'bench gives it a partitioned loop device as its image (`--image=/dev/loopN`), a use vmdb2 supports. mkosi was not measured.',
    '',
    `Tools (Debian package versions): ${['mmdebstrap', 'vmdb2', 'debootstrap', 'debian-installer-12-netboot-amd64', 'qemu-system-x86'].map((p) => `${p} ${version('dpkg-query', ['-W', '-f=${Version}', p])}`).join(', ')}.`,
    '',
  ].join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  run().then(
    (s) => process.stdout.write(s),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
