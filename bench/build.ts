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
import { startMirror, type Mirror, type MirrorRequest } from './mirror.js';
import { load1 } from './proc.js';

const DI = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';
const RAM = 1024;
const DISK_GIB = 4;
const PACKAGES = [...BASE_PACKAGES, 'linux-image-amd64'];
/** Bench timeouts: generous, the machine is shared and TCG is slow. */
const BUILD_MS = 3_600_000;
const INSTALL_MS = 7_200_000;
const FORGE_ROW = 'forge-agent --build debootstrap (no root-tree or apt cache of its own)';
const VMDB2_ROW = 'vmdb2 (debootstrap minbase, same packages, layout and networkd DHCP) + virt-install --import';
const INSTALLER_ROW = 'forge-agent --virt, Debian 12 installer (d-i netboot, forge preseed, no tasks)';

interface Sample {
  what: string;
  /** seconds from the command to the guest's first_boot callback (forge paths) */
  firstBoot: number | undefined;
  /** seconds from the command to the serial console's login prompt */
  login: number;
  /** seconds the command itself ran (build / install, until it returned) */
  command: number;
  /** CPU seconds (user + system) of the command and every process it waited for (GNU time), when measured */
  cpu?: number;
  loadBefore: string;
  loadAfter: string;
  upstreamMiB: number;
  note: string;
  /** forge's own progress lines: stage -> seconds since the command started */
  stages?: Record<string, number>;
  /** The installer path when the archive cannot serve it: seconds from the command to d-i's first .udeb request (a lower bound). */
  bound?: { firstMirrorRequest: number | undefined; firstUdeb: number; udeb404: number };
  /** Work the installer would do after its udebs, done in this TCG guest (seconds): fetch and unpack the guest's own package set. */
  inGuest?: GuestWork;
}

interface GuestWork {
  packages: number;
  mib: number;
  download: number;
  unpack: number;
}

/**
 * Run CMD to its end (or until STOP aborts it: then it gets SIGINT, as a user's ^C, and the promise still resolves with its exit).
 * CPU_FILE: run it under GNU time(1), which writes the user and system CPU seconds of CMD and of every process it waited
 * for (getrusage RUSAGE_CHILDREN: mmdebstrap, apt, dpkg and the maintainer scripts; not the guest, which libvirt starts)
 * to that file; `cpu` is their sum. Not with STOP: time(1) ignores SIGINT.
 */
function runCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, log?: string, stop?: AbortSignal, cpuFile?: string): Promise<{ code: number; out: string; cpu?: number }> {
  return new Promise((resolve, reject) => {
    const timed = cpuFile !== undefined && stop === undefined;
    const p = timed ? spawn('/usr/bin/time', ['-o', cpuFile, '-f', '%U %S', cmd, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    stop?.addEventListener('abort', () => {
      p.kill('SIGINT');
      setTimeout(() => p.kill('SIGKILL'), 60_000).unref();
    }, { once: true });
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
      let cpu: number | undefined;
      if (timed) {
        const f = /^([\d.]+) ([\d.]+)\s*$/m.exec(consoleOf(cpuFile));
        if (f !== null) cpu = Number(f[1]) + Number(f[2]);
      }
      resolve({ code: code ?? -1, out, ...(cpu === undefined ? {} : { cpu }) });
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

/**
 * In the booted guest, over ssh: fetch every package the guest has installed, at its installed version, from the
 * mirror (apt-get download, after apt-get update) and unpack each into an empty tree (dpkg-deb -x). This is a strict
 * subset of what d-i's base-installer does in its TCG guest after the udebs (debootstrap there fetches, unpacks AND
 * configures at least these packages, then the kernel's initramfs and GRUB), so its time is a lower bound of that part.
 */
const GUEST_WORK = `set -e
export DEBIAN_FRONTEND=noninteractive
rm -rf /var/tmp/fb && mkdir -p /var/tmp/fb/debs /var/tmp/fb/root && cd /var/tmp/fb/debs
# --error-on=any: apt-get update exits 0 when an index fails to download (apt-get(8)), and the downloads then fail obscurely.
apt-get update -q -o Acquire::Languages=none --error-on=any
t0=$(date +%s.%N)
apt-get download -q $(dpkg-query -W -f '\${Package}=\${Version}\n') >/dev/null
t1=$(date +%s.%N)
for f in *.deb; do dpkg-deb -x "$f" ../root; done
t2=$(date +%s.%N)
echo "forge-bench packages=$(ls *.deb | wc -l) kib=$(du -sk . | cut -f1) download=$(awk "BEGIN{print $t1-$t0}") unpack=$(awk "BEGIN{print $t2-$t1}")"
cd / && rm -rf /var/tmp/fb
`;

/**
 * When the serial console first shows GRUB loading the kernel ("Loading Linux"): splits a guest's boot into firmware +
 * GRUB (before) and kernel + initramfs + userspace (after). Polled once a second, so within a second.
 */
function consoleMarks(log: string): { stop: () => number | undefined } {
  let at: number | undefined;
  const t = setInterval(() => {
    if (at === undefined && consoleOf(log).includes('Loading Linux')) at = Date.now();
  }, 1000);
  t.unref();
  return {
    stop: () => {
      clearInterval(t);
      return at;
    },
  };
}

/**
 * Why mkosi has no row. mkosi 14 (Debian 12's package) makes bootable images only for UEFI: it formats the ESP as vfat
 * and mounts it on the build host to install systemd-boot and a unified kernel image (mkosi/__init__.py mount_image,
 * install_boot_loader); there is no BIOS/GRUB path to build the same image as the others. Checked, not assumed.
 */
function mkosiNote(): string {
  const v = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'mkosi'], { encoding: 'utf8' });
  if (v.status !== 0) return 'mkosi: not measured (not installed: apt-get install mkosi systemd-container).';
  const vfat = /\bvfat\b/.test(readFileSync('/proc/filesystems', 'utf8'));
  return `mkosi ${v.stdout.trim()}: not measured. Its bootable images are UEFI-only (systemd-boot and a unified kernel image on a vfat ESP that` +
    ` it mounts on the build host), so it cannot build this BIOS/GRUB image${vfat ? '' : ', and this host\'s kernel has no vfat (/proc/filesystems; no modules can be loaded here), so `mkosi -b` stops at "mount: unknown filesystem type \'vfat\'" even for a UEFI image'}.`;
}

/**
 * Asynchronous on purpose: the mirror the guest's apt reads is a server in this same process. With spawnSync (as
 * before) the event loop stood still while ssh ran, the kernel still accepted apt's connections into the listen
 * backlog, nothing answered, and apt reported its header timeouts as "Connection failed" (apt's
 * methods/basehttp.cc BaseHttpMethod::Loop: RUN_HEADERS_IO_ERROR twice, the error itself discarded).
 */
async function guestWork(ip: string, key: string, log: string): Promise<GuestWork> {
  const r = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve, reject) => {
    const p = spawn('ssh', ['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=60', `root@${ip}`, 'sh -s'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 3_600_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ status: code ?? -1, stdout, stderr });
    });
    p.stdin.end(GUEST_WORK);
  });
  const m = /forge-bench packages=(\d+) kib=(\d+) download=([\d.]+) unpack=([\d.]+)/.exec(r.stdout);
  writeFileSync(log, `${r.stdout}\n${r.stderr}`);
  if (r.status !== 0 || m === null) throw new Error(`in-guest work on ${ip} failed (${r.status}), see ${log}: ${r.stderr.slice(0, 600)}`);
  return { packages: Number(m[1]), mib: Number(m[2]) / 1024, download: Number(m[3]), unpack: Number(m[4]) };
}

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout || r.stderr).trim().split('\n')[0] ?? '?';
}

/**
 * The vmdb2 specification: seed 000's GPT (BIOS boot 4 MiB, swap 1020 MiB, root ext4), debootstrap minbase with the same
 * packages, GRUB on the serial console. No udev here, so no /dev/disk/by-uuid: grub-mkconfig (10_linux) would then put
 * root=/dev/loopNp3 on the kernel line, which the guest does not have; a shell step gives it the by-uuid link udev would
 * have made (and removes it after). zerofree off: forge does not zero free blocks either (and zerofree is not installed).
 * The network as forge's guests get it (systemd-networkd, DHCP), so both images come up ssh-ready: without it vmdb2's
 * guest has no network at all and its login prompt does not wait for one (systemd-user-sessions is After=network.target).
 */
/**
 * Where vmdb2 spent its time, from its own log (vmdb/app.py: "%(asctime)s %(levelname)s %(message)s", whole seconds, local
 * time): each "Running step" and the heavy commands it ran ("Exec: [...]", logged when each starts), as seconds since T0.
 */
export function vmdb2Steps(log: string, t0: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of log.matchAll(/^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) INFO (?:Running step: \{'([\w-]+)': '?([^',}]*)|Exec: \[(.*))/gm)) {
    const at = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])).getTime();
    const t = Math.max(0, Math.round((at - t0) / 1000));
    let key: string | undefined;
    if (m[7] !== undefined) key = `vmdb2 step ${m[7]} ${(m[8] ?? '').slice(0, 30)}`.trim();
    else {
      const argv = [...(m[9] ?? '').matchAll(/'([^']*)'/g)].map((a) => a[1] as string);
      const heavy = argv.findIndex((a) => /^(debootstrap|apt-get|grub-install|update-grub|grub-mkconfig|update-initramfs|mkfs\.\w+|mkswap)$/.test(a));
      if (heavy >= 0) key = `vmdb2 exec ${argv.slice(heavy, heavy + 2).join(' ')}`;
    }
    if (key === undefined) continue;
    let k = key;
    for (let i = 2; k in out; i++) k = `${key} #${i}`;
    out[k] = t;
  }
  return out;
}

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
  - shell: |
      printf '[Match]\\nName=en* eth*\\n\\n[Network]\\nDHCP=yes\\n' > "$ROOT/etc/systemd/network/10-bench.network"
      chroot "$ROOT" systemctl enable systemd-networkd.service
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
    // A key for root on the built guests: the in-guest measurement logs in with it.
    const key = join(dir, 'bench-key');
    must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forge-bench', '-f', key]);
    const pub = readFileSync(`${key}.pub`, 'utf8').trim();
    await mk('profiles', { name: `${tag}-build`, distro: `${tag}-build`, autoinstall_meta: { ...meta, build_method: 'debootstrap', ssh_authorized_keys: pub } });
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
    /**
     * One forge-agent run of system SYS (ARGS after --system SYS --virt), timed to the guest's first_boot and its login
     * prompt. STOP ends the command early (SIGINT) with what was measured so far; IN_GUEST runs the in-guest work on the
     * booted guest after its login prompt (not counted in the path's figures).
     */
    const agentSample = async (what: string, sys: string, args: string[], timeoutMs: number, note: string, opts: { stop?: AbortController; t0?: number; inGuest?: boolean } = {}): Promise<Sample> => {
      const log = `/var/log/libvirt/qemu/${sys}-console.log`;
      const up0 = mirror!.upstreamBytes();
      const loadBefore = load1();
      const t0 = opts.t0 ?? Date.now();
      const marks = consoleMarks(log);
      const r = await runCmd(process.execPath, [AGENT_BIN, '--system', sys, '--virt', '--virt-type', 'qemu', '--nogfx', '--virt-network', net.name, '--virt-path', join(dir, 'disks'), ...args], env, timeoutMs, join(dir, `${sys}.agent.log`), opts.stop?.signal, join(dir, `${sys}.cpu`));
      const command = secs(t0);
      const upstreamMiB = (): number => (mirror!.upstreamBytes() - up0) / 2 ** 20;
      if (opts.stop?.signal.aborted === true) {
        marks.stop();
        removeDomain(sys);
        rmSync(join(dir, 'disks'), { recursive: true, force: true });
        const reason: unknown = opts.stop.signal.reason;
        if (typeof reason !== 'object' || reason === null || !('firstUdeb' in reason)) throw new Error(`${what} stopped: ${String(reason)}`);
        return { what, firstBoot: undefined, login: NaN, command, loadBefore, loadAfter: load1(), upstreamMiB: upstreamMiB(), note, bound: reason as NonNullable<Sample['bound']> };
      }
      if (r.code !== 0) {
        marks.stop();
        throw new Error(`forge-agent ${args.join(' ')} failed:\n${r.out.slice(-4000)}`);
      }
      await until(`first_boot of ${sys}`, BUILD_MS, () => firstBootOf(sys));
      const firstBoot = secs(t0);
      await until(`login prompt of ${sys}`, BUILD_MS, () => (/^\S+ login: /m.test(consoleOf(log)) ? true : undefined));
      const login = secs(t0);
      const loadAfter = load1();
      const grubAt = marks.stop();
      // forge's events ("[  12s] disk_ready: ...") and mmdebstrap's phases inside bootstrap ("[  40s] bootstrap: I: ...").
      const stages = Object.fromEntries([...r.out.matchAll(/^\[\s*(\d+)s\] (\w+)(?:: (I: [^\n(]*|root tree kept))?/gm)].map((m) => [m[3] !== undefined ? `bootstrap: ${(m[3]).replace(/^I: /, 'mmdebstrap ').trim().replace(/\.+$/, '')}` : m[2] as string, Number(m[1])]));
      if (grubAt !== undefined) stages['console: GRUB loads the kernel'] = Math.round((grubAt - t0) / 1000);
      let inGuest: GuestWork | undefined;
      let guestNote = '';
      if (opts.inGuest === true) {
        // Not part of this path's figures (already taken); a failure here is recorded and the sample kept.
        try {
          const ip = await until(`address of ${sys}`, 300_000, () => /\b(\d+\.\d+\.\d+\.\d+)\/\d+/.exec(spawnSync('virsh', ['-c', 'qemu:///system', 'domifaddr', sys, '--source', 'lease'], { encoding: 'utf8' }).stdout)?.[1]);
          inGuest = await guestWork(ip, key, join(mirror!.cacheDir, 'build-in-guest.log'));
        } catch (e) {
          guestNote = `; in-guest work failed: ${(e as Error).message.split('\n')[0] ?? ''}`;
          console.error(`bench build: ${(e as Error).message}`);
        }
      }
      removeDomain(sys);
      rmSync(join(dir, 'disks'), { recursive: true, force: true });
      return { what, firstBoot, login, command, ...(r.cpu === undefined ? {} : { cpu: r.cpu }), loadBefore, loadAfter, upstreamMiB: upstreamMiB(), note: note + guestNote, stages, ...(inGuest === undefined ? {} : { inGuest }) };
    };
    const forgeBuild = async (what: string, cache: string, note: string, inGuest = false): Promise<Sample> =>
      agentSample(what, await system('build'), ['--build', 'debootstrap', '--cache-dir', cache, '--overlay', emptyDir, '--hooks', emptyDir], BUILD_MS, note, { inGuest });
    /**
     * The installer path. When d-i's first .udeb request is answered 404 (the archive this machine reaches serves no
     * udebs; d-i's netboot initrd downloads its remaining components as udebs and cannot go on without them), the run is
     * stopped there and recorded as a lower bound: power-on to the first udeb request, measured.
     */
    const installer = async (): Promise<Sample> => {
      const sys = await system('di');
      const stop = new AbortController();
      const t0 = Date.now();
      const mine = (r: MirrorRequest): boolean => r.at >= t0;
      const watch = setInterval(() => {
        // d-i reaches its udebs within minutes even under load; a stall (a question no preseed answers) must not hold the VM slot for hours.
        if (Date.now() - t0 > 1_800_000) stop.abort(new Error('no .udeb request within 30 min (see the console log)'));
        const seen = mirror!.requests().filter(mine);
        const udeb = seen.find((r) => r.path.endsWith('.udeb'));
        if (udeb === undefined || udeb.status !== 404) return;
        const first = seen[0];
        stop.abort({ firstMirrorRequest: first === undefined ? undefined : (first.at - t0) / 1000, firstUdeb: (udeb.at - t0) / 1000, udeb404: seen.filter((r) => r.path.endsWith('.udeb') && r.status === 404).length });
      }, 1000);
      try {
        return await agentSample(INSTALLER_ROW, sys, ['--vm-poll', '--cache-dir', join(dir, 'di-cache'), '--timeout', String(INSTALL_MS / 1000)], INSTALL_MS + 600_000,
          'packages through the same mirror cache; d-i also installs priority important', { stop, t0 });
      } finally {
        clearInterval(watch);
      }
    };
    const vmdb2 = async (): Promise<Sample> => {
      const name = `${tag}-vmdb2`;
      domains.push(name);
      const vdir = join(dir, name); // virt-install names the pool it defines for this directory after it
      mkdirSync(vdir, { recursive: true });
      const img = join(vdir, `${name}.img`);
      // The serial console through virtlogd, as forge-agent's domains log theirs (qemu itself may not write under vdir).
      const log = `/var/log/libvirt/qemu/${name}-console.log`;
      rmSync(log, { force: true });
      const up0 = mirror!.upstreamBytes();
      const loadBefore = load1();
      const t0 = Date.now();
      const marks = consoleMarks(log);
      // vmdb2 0.26 maps a file's partitions with kpartx (device-mapper, absent here); given a
      // partitioned loop device as its image it uses the kernel's own partitions instead.
      must('truncate', ['-s', `${DISK_GIB}G`, img]);
      const dev = must('losetup', ['-f', '--show', '-P', img]).trim();
      let command = 0;
      let vlog = '';
      let cpu: number | undefined;
      try {
        const spec = join(vdir, 'spec.vmdb');
        writeFileSync(spec, vmdb2Spec(mirrorUrl, dev));
        const r = await runCmd('vmdb2', [spec, `--image=${dev}`, `--log=${join(vdir, 'vmdb2.log')}`, '--verbose'], process.env, BUILD_MS, join(vdir, 'vmdb2.out'), undefined, join(vdir, 'vmdb2.cpu'));
        command = secs(t0);
        cpu = r.cpu;
        vlog = consoleOf(join(vdir, 'vmdb2.log'));
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
      const grubAt = marks.stop();
      removeDomain(name);
      rmSync(vdir, { recursive: true, force: true });
      return {
        what: VMDB2_ROW, firstBoot: undefined, login, command, ...(cpu === undefined ? {} : { cpu }), loadBefore, loadAfter: load1(), upstreamMiB: (mirror!.upstreamBytes() - up0) / 2 ** 20, note: 'no first-boot callback: login prompt only',
        stages: { ...vmdb2Steps(vlog, t0), build_done: Math.round(command), ...(grubAt === undefined ? {} : { 'console: GRUB loads the kernel': Math.round((grubAt - t0) / 1000) }) },
      };
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
    // Interleaved rounds (forge, vmdb2, forge, vmdb2, ...): each round's two samples see about the same load. Every
    // forge sample starts with an empty cache directory of its own (no root tree or apt cache from an earlier one).
    const rounds = Number(process.env['FORGE_BENCH_BUILD_ROUNDS'] ?? '2');
    if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`FORGE_BENCH_BUILD_ROUNDS must be a whole number >= 1, not ${process.env['FORGE_BENCH_BUILD_ROUNDS'] ?? ''}`);
    for (let i = 0; i < rounds; i++) {
      const last = i === rounds - 1;
      if (only.has('forge')) await sample(FORGE_ROW, () => forgeBuild(FORGE_ROW, join(dir, `cache-${i}`), 'mmdebstrap from the mirror cache', last && only.has('installer')));
      if (only.has('vmdb2')) await sample(VMDB2_ROW, vmdb2);
    }
    if (only.has('installer')) await sample(INSTALLER_ROW, installer);
    if (only.has('warm')) await sample('forge-agent --build debootstrap, its own caches warm', () => forgeBuild('forge-agent --build debootstrap, its own caches warm', join(dir, 'cache-0'), 'the root tree and apt cache of the first timed run (same suite, mirror, packages)'));
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
  const ok = (what: string): Sample[] => samples.filter((x) => x.what === what && Number.isFinite(x.login));
  const median = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b);
    const m = Math.floor(v.length / 2);
    return v.length === 0 ? NaN : v.length % 2 === 1 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
  };
  const forge = ok(FORGE_ROW);
  const vm = ok(VMDB2_ROW);
  const inst = samples.find((x) => x.what === INSTALLER_ROW);
  const guest = samples.find((x) => x.inGuest !== undefined)?.inGuest;
  const ratio = (num: Sample[], den: Sample[], k: 'login' | 'command' | 'cpu'): string => {
    const a = num.map((x) => x[k]).filter((v): v is number => v !== undefined);
    const b = den.map((x) => x[k]).filter((v): v is number => v !== undefined);
    return a.length === 0 || b.length === 0 ? 'not measured' : `${(median(a) / median(b)).toFixed(2)}x`;
  };
  const bound = inst?.bound;
  const row = (x: Sample): string => {
    const login = x.bound !== undefined ? `> ${f(x.bound.firstUdeb)} (lower bound)` : f(x.login);
    const note = x.bound !== undefined
      ? `stopped at d-i's first .udeb request, answered 404 (${x.bound.udeb404} udeb request(s) refused); first request to the mirror at ${f(x.bound.firstMirrorRequest)} s`
      : x.note;
    return `| ${x.what} | ${f(x.command)} | ${f(x.cpu)} | ${f(x.firstBoot)} | ${login} | ${x.upstreamMiB.toFixed(1)} | ${x.loadBefore} / ${x.loadAfter} | ${note} |`;
  };
  return [
    '## forge-agent --build: command to first boot of a minimal Debian 12 VM',
    '',
    `Interleaved rounds (forge, vmdb2, forge, vmdb2, ...; one VM at a time), then the installer path, on the same machine. Same suite (bookworm), the same`,
    `packages (${PACKAGES.join(', ')}), the same VM (1 vCPU, ${RAM} MiB, ${DISK_GIB} GiB raw virtio disk, SeaBIOS, qemu TCG: no KVM here).`,
    'All packages come from one caching mirror on the lab bridge (a local reverse proxy to Debian\'s archive), warmed by an untimed forge build',
    'first; "upstream MiB" is what a run still fetched from the archive. Seconds from the command to the guest\'s first-boot callback to forge',
    'and to the login prompt on its serial console.',
    '',
    '| path | command s | command CPU s | first_boot s | login prompt s | upstream MiB | load 1 min before / after | note |',
    '|---|---|---|---|---|---|---|---|',
    ...samples.map(row),
    '',
    ...samples.filter((x) => x.stages !== undefined && Object.keys(x.stages).length > 0).map((x) => `Where "${x.what}" spent its time (forge-agent's own progress, seconds since the command): ${Object.entries(x.stages ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}; then the guest's boot to first_boot.`),
    '',
    `Medians: vmdb2 / forge to the login prompt ${ratio(vm, forge, 'login')}, build command alone ${ratio(vm, forge, 'command')}, its CPU seconds ${ratio(vm, forge, 'cpu')} (target: at least 1.0x; above 1 forge is faster).`,
    bound === undefined
      ? `Installer path / build path (to the login prompt): ${inst !== undefined && Number.isFinite(inst.login) ? ratio([inst], forge, 'login') : 'not measured'} (target: at least 5x).`
      : `Installer path: not measurable to the end here (its udebs are refused). Measured lower bound: ${f(bound.firstUdeb)} s from the command to d-i's first udeb request` +
        (guest === undefined ? '.' : `; after that d-i would at least fetch and unpack the same packages in its TCG guest, which took ${f(guest.download)} s + ${f(guest.unpack)} s in a built guest (${guest.packages} packages, ${guest.mib.toFixed(0)} MiB), so the installer path is above ${f(bound.firstUdeb + guest.download + guest.unpack)} s,`) +
        (guest === undefined || forge.length === 0 ? '' : ` ${((bound.firstUdeb + guest.download + guest.unpack) / median(forge.map((x) => x.login))).toFixed(2)}x the build path's median to the login prompt (target: at least 5x).`),
    '',
    'What differs: the installer installs priority-important packages too (d-i\'s base-installer always does) and runs in the guest under',
    'TCG, where the builders run on the host; vmdb2 uses debootstrap (minbase: the same required set as mmdebstrap\'s "required") and',
    'installs grub-pc with apt inside the chroot; its swap partition is formatted by a shell step and its network (systemd-networkd, DHCP,',
    'as forge\'s guests) by another; forge also sets locale, time zone, host name and its first-boot report. vmdb2 0.26 maps an image file\'s partitions with kpartx (device-mapper, absent here), so the',
    'bench gives it a partitioned loop device as its image (`--image=/dev/loopN`), a use vmdb2 supports.',
    '',
    mkosiNote(),
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
