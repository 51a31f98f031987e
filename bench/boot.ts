/**
 * Boot benchmark.
 *
 * 1. Power-on to installer-kernel-start for the same VM (qemu TCG, BIOS,
 *    virtio NIC with Debian's iPXE ROM, same MAC) loading the same kernel and
 *    initrd (Debian 12's installer: linux + initrd.gz from
 *    debian-installer-12-netboot-amd64), in one run:
 *      - forge as shipped: managed DHCP -> iPXE script over HTTP -> kernel + initrd over HTTP,
 *        with forge's router advertisement (ipv6_ra auto, services/ra.ts) ending the ROM's IPv6 wait
 *      - dnsmasq: DHCP + TFTP -> pxelinux.0 -> kernel + initrd over TFTP (the classic setup)
 *      - forge with --ipv6-ra off: what the ROM's IPv6 wait costs forge's path
 *      - dnsmasq with the same RA on the link (radvd with forge's configuration): the classic
 *        path without that wait, so the comparison shows what is left besides the RA
 *    FORGE_BENCH_BOOT_RUNS repeats (default 3), the four paths interleaved in each, the load
 *    average recorded beside every boot.
 *    "Kernel start" = the kernel's first console line (`Linux version`) on the serial port.
 * 2. 50 clients fetching kernel + initrd over HTTP at once from `forge serve`
 *    on loopback: aggregate MB/s.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { debBinary } from './debs.js';
import { createLan, type Lan } from '../test/lib/netns.js';
import { startQemu } from '../test/lib/qemu.js';
import { linkLocalOf, startForgeIn } from '../test/lib/boot-lab.js';
import { findRadvd, radvdConfig } from '../server/services/ra.js';
import { startForge } from '../test/lib/server.js';

const DI = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';
const KERNEL = join(DI, 'linux');
const INITRD = join(DI, 'initrd.gz');
const MAC = '52:54:00:fb:00:01';
const BOOT_TIMEOUT_MS = 300_000;
const VM_LL = linkLocalOf(MAC);
const VM_RS = new RegExp(`${VM_LL} > ff02::2: ICMP6, router solicitation`);
const RUNS = Math.max(1, Number(process.env['FORGE_BENCH_BOOT_RUNS'] ?? '3') || 3);

interface BootResult {
  ms: number;
  deliverMs: number;
  marks: Map<string, number>;
  /** 1-minute load average when the VM started. */
  load: number;
  solicitations: number;
}

interface BootRun {
  path: string;
  repeat: number;
  load: number;
  solicitations: number;
  marks: Map<string, number>;
  /** qemu start -> kernel banner. */
  ms: number;
  /** First boot file asked of the server (iPXE script / pxelinux.0) -> kernel banner. */
  deliverMs: number;
}

interface Timed {
  t0: number;
  load: number;
  /** Router solicitations of the VM's ROM before its first boot file request. */
  solicitations: number;
  kernelAt: number;
  /** Milestones (ms after qemu start) from the console and a packet capture on the bridge. */
  marks: Map<string, number>;
}

/**
 * Milestones of one boot, from a packet capture on the bridge (tcpdump, epoch timestamps,
 * payload heads for HTTP request lines) and from the serial console (first time each pattern
 * appears). First occurrence of each wins.
 */
const WIRE: [string, RegExp][] = [
  ['DHCP DISCOVER/REQUEST seen (first)', /BOOTP\/DHCP, Request/],
  ['DHCP reply sent (first)', /BOOTP\/DHCP, Reply/],
  // The VM's own (its ROM's link-local address): the other machine on the bridge solicits too.
  ['IPv6 router solicitation (first, iPXE ipv6conf)', VM_RS],
  ['IPv6 router advertisement to the VM', new RegExp(`> (${VM_LL}|ff02::1): ICMP6, router advertisement`)],
  ['TFTP RRQ pxelinux.0', /RRQ "[^"]*pxelinux\.0"/],
  ['TFTP RRQ kernel', /RRQ "[^"]*(linux|\/kernel)"/],
  ['TFTP RRQ initrd', /RRQ "[^"]*(initrd\.gz|\/initrd)"/],
  ['HTTP GET iPXE script', /GET \/boot\/ipxe\//],
  ['HTTP GET kernel', /GET \/boot\/distro\/[^/]+\/kernel/],
  ['HTTP GET initrd', /GET \/boot\/distro\/[^/]+\/initrd/],
];
const CONSOLE: [string, RegExp][] = [
  // SeaBIOS, the iPXE ROM and pxelinux print to the (absent) VGA only; the kernel prints to ttyS0.
  ['console: kernel banner', /Linux version \d/],
];

function capture(lan: Lan, t0: () => number, marks: Map<string, number>): { stop: () => void; solicitations: () => number } {
  const dump = lan.spawn('tcpdump', ['-i', 'br0', '-n', '-l', '-tt', '-A', '-s', '300', 'udp port 67 or udp port 69 or icmp6 or (tcp port 8080 and tcp[((tcp[12] & 0xf0) >> 2)] = 0x47)']);
  let buf = '';
  let stamp = 0;
  let rs = 0;
  dump.stdout?.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^(\d{10}\.\d{6}) /.exec(line);
      if (m !== null) stamp = Number(m[1]) * 1000;
      for (const [name, re] of WIRE) if (!marks.has(name) && re.test(line) && stamp > 0) marks.set(name, stamp - t0());
      // The ROM's solicitations before its first boot file request (after it, the kernel's).
      if (VM_RS.test(line) && !marks.has('HTTP GET iPXE script') && !marks.has('TFTP RRQ pxelinux.0')) rs++;
    }
  });
  return { stop: () => void dump.kill('SIGTERM'), solicitations: () => rs };
}

/** Start the VM and time until the kernel prints its banner on the serial console. */
async function timeToKernel(lan: Lan): Promise<Timed> {
  const tap = await lan.addTap();
  const marks = new Map<string, number>();
  let t0 = Date.now();
  const cap = capture(lan, () => t0, marks);
  await new Promise((r) => setTimeout(r, 500)); // tcpdump attached before the VM starts
  t0 = Date.now();
  const load = loadavg()[0]!;
  const vm = startQemu({ host: lan, tap, mac: MAC, firmware: 'bios', memoryMiB: 512 });
  try {
    for (;;) {
      const s = vm.serial();
      for (const [name, re] of CONSOLE) if (!marks.has(name) && re.test(s)) marks.set(name, Date.now() - t0);
      if (/Linux version \d/.test(s)) {
        await new Promise((r) => setTimeout(r, 300)); // let the capture's last lines arrive
        return { t0, load, kernelAt: Date.now() - 300, marks, solicitations: cap.solicitations() };
      }
      if (Date.now() - t0 > BOOT_TIMEOUT_MS) throw new Error(`no kernel start within ${BOOT_TIMEOUT_MS} ms; serial tail: ${s.slice(-500)}`);
      if (vm.proc.exitCode !== null) throw new Error(`qemu exited before the kernel started; serial: ${s.slice(-500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    cap.stop();
    await vm.kill();
    await lan.exec('ip', ['link', 'del', tap]);
  }
}

/**
 * The RA forge sends (services/ra.ts radvdConfig: solicited unicast only, router lifetime 0, no
 * prefix, no M/O flags) from Debian's radvd, for the dnsmasq path: the classic setup without the
 * ROM's IPv6 wait. The installed radvd (forge uses it), else one unpacked into the bench cache.
 */
function startRadvd(lan: Lan, dir: string): ChildProcess {
  const bin = findRadvd() ?? debBinary('radvd', 'usr/sbin/radvd');
  const conf = join(dir, 'radvd.conf');
  writeFileSync(conf, radvdConfig(['br0']), { mode: 0o644 });
  return lan.spawn(bin, ['-n', '-C', conf, '-p', join(dir, 'radvd.pid'), '-m', 'stderr']);
}

async function forgeRun(lan: Lan, dir: string, loader: 'ipxe' | 'pxelinux', ra: 'auto' | 'off'): Promise<BootResult> {
  const data = join(dir, `forge-${loader}-${Date.now()}`);
  // The probe is skipped: on a site the provisioning link is up (and probed) long before a machine
  // boots; here each boot's tap brings it up anew. Everything else as shipped (ipv6_ra auto).
  const forge = await startForgeIn(lan, data, [
    '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.150',
    '--dhcp-router', '10.98.0.1', '--dhcp-probe-seconds', '0', '--tftp-port', '69', '--log-level', 'info', '--ipv6-ra', ra,
  ]);
  try {
    const ok = async (m: string, p: string, b: unknown): Promise<void> => {
      const r = await forge.api(m, p, b);
      if (r.status >= 300) throw new Error(`${m} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    };
    await ok('POST', '/api/v1/distros', { name: 'd12', kernel: KERNEL, initrd: INITRD, arch: 'x86_64', breed: 'debian', kernel_options: { console: 'ttyS0' } });
    await ok('POST', '/api/v1/profiles', { name: 'd12', distro: 'd12', ...(loader === 'pxelinux' ? { boot_loaders: ['pxelinux'] } : {}) });
    await ok('POST', '/api/v1/systems', { name: 'bench', profile: 'd12', interfaces: { eth0: { mac_address: MAC } } });
    if (ra === 'auto') {
      // forge's advertiser follows the link state (polled every second): radvd is up before the VM.
      // Wait for `ready` (radvd wrote its pid file, after reading its configuration and opening its
      // socket; the bridge has carrier and a valid link-local address), not for the spawn's log line:
      // a VM started between the two can solicit before radvd listens, and the ROM's next
      // solicitation comes seconds later (the +3.8 s seen once).
      const end = Date.now() + 20_000;
      while (!/router advertisements ready/.test(forge.output())) {
        if (Date.now() > end) throw new Error(`forge started no router advertisements:\n${forge.output().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    {
      const t = await timeToKernel(lan);
      const evs = (await forge.api('GET', '/api/v1/systems/bench/events')).body as { type: string; time: string }[];
      const first = evs.filter((e) => e.type === 'boot_config_served' || e.type === 'loader_fetched').map((e) => Date.parse(e.time));
      const start = first.length > 0 ? Math.min(...first) : t.t0;
      // The access log line is written when the response has been handed to the socket.
      const done = /^(\S+Z) info forge\.http\.access: request .*path=\/boot\/distro\/[^/ ]+\/initrd .*status=200/m.exec(forge.output());
      if (done !== null) t.marks.set('HTTP initrd response done (access log)', Date.parse(done[1]!) - t.t0);
      for (const e of evs) {
        const k = `forge event: ${e.type}`;
        const at = Date.parse(e.time) - t.t0;
        if (!t.marks.has(k) && at >= 0) t.marks.set(k, at);
      }
      return { ms: t.kernelAt - t.t0, deliverMs: t.kernelAt - start, marks: t.marks, load: t.load, solicitations: t.solicitations };
    }
  } finally {
    await forge.stop();
  }
}

async function dnsmasqRun(lan: Lan, dir: string, withRa = false): Promise<BootResult> {
  const root = join(dir, 'tftproot');
  if (!existsSync(root)) {
    mkdirSync(join(root, 'pxelinux.cfg'), { recursive: true });
    symlinkSync('/usr/lib/PXELINUX/pxelinux.0', join(root, 'pxelinux.0'));
    symlinkSync('/usr/lib/syslinux/modules/bios/ldlinux.c32', join(root, 'ldlinux.c32'));
    symlinkSync(KERNEL, join(root, 'linux'));
    symlinkSync(INITRD, join(root, 'initrd.gz'));
    // The same command line forge generates for a debian breed (minus the host-specific URL).
    writeFileSync(join(root, 'pxelinux.cfg', 'default'), 'DEFAULT install\nPROMPT 0\nTIMEOUT 0\nLABEL install\n  KERNEL linux\n  APPEND initrd=initrd.gz auto=true priority=critical console=ttyS0\n');
  }
  const dns = lan.spawn('dnsmasq', [
    '--keep-in-foreground', '--no-daemon', '--port=0', '--interface=br0', '--bind-interfaces',
    '--dhcp-range=10.98.0.50,10.98.0.60,1h', '--no-resolv', '--no-hosts', '--leasefile-ro', '--user=root',
    '--enable-tftp', `--tftp-root=${root}`, '--dhcp-boot=pxelinux.0,,10.98.0.1', '--log-facility=-',
  ]);
  // dnsmasq logs `sent .../pxelinux.0 to IP` when that (42 KB) transfer ends: the start of delivery.
  let loaderAt = 0;
  let initrdAt = 0;
  const onLog = (d: Buffer): void => {
    if (loaderAt === 0 && /sent \S*pxelinux\.0 to/.test(d.toString())) loaderAt = Date.now();
    if (initrdAt === 0 && /sent \S*initrd\.gz to/.test(d.toString())) initrdAt = Date.now();
  };
  dns.stdout?.on('data', onLog);
  dns.stderr?.on('data', onLog);
  const ra = withRa ? startRadvd(lan, dir) : undefined;
  try {
    await new Promise((r) => setTimeout(r, 500));
    const t = await timeToKernel(lan);
    if (loaderAt > 0) t.marks.set('dnsmasq log: pxelinux.0 sent (transfer done)', loaderAt - t.t0);
    if (initrdAt > 0) t.marks.set('dnsmasq log: initrd sent (transfer done)', initrdAt - t.t0);
    return { ms: t.kernelAt - t.t0, deliverMs: t.kernelAt - (loaderAt || t.t0), marks: t.marks, load: t.load, solicitations: t.solicitations };
  } finally {
    if (ra !== undefined) {
      ra.kill('SIGTERM');
      await new Promise((r) => (ra.exitCode !== null ? r(null) : ra.once('close', r)));
    }
    dns.kill('SIGKILL');
    await new Promise((r) => dns.once('close', r));
  }
}

/** 50 clients (or `clients`) fetch kernel and initrd at once; aggregate MB/s. */
async function httpFanout(clients: number): Promise<{ clients: number; bytes: number; ms: number; mbps: number; perClientMs: number[] }> {
  const srv = await startForge();
  try {
    const r = await srv.api('POST', '/api/v1/distros', { name: 'd12', kernel: KERNEL, initrd: INITRD, arch: 'x86_64', breed: 'debian' });
    if (r.status >= 300) throw new Error(JSON.stringify(r.body));
    const fetchAll = (path: string): Promise<number> =>
      new Promise((resolve, reject) => {
        httpGet(`${srv.url}${path}`, { agent: false }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
          res.on('error', reject);
        }).on('error', reject);
      });
    const t0 = Date.now();
    const per: number[] = [];
    const sizes = await Promise.all(
      Array.from({ length: clients }, async () => {
        const s = Date.now();
        const n = (await fetchAll('/boot/distro/d12/kernel')) + (await fetchAll('/boot/distro/d12/initrd'));
        per.push(Date.now() - s);
        return n;
      }),
    );
    const ms = Date.now() - t0;
    const bytes = sizes.reduce((a, b) => a + b, 0);
    return { clients, bytes, ms, mbps: bytes / 1e6 / (ms / 1000), perClientMs: per.sort((a, b) => a - b) };
  } finally {
    await srv.stop();
  }
}

function version(cmd: string, args: string[], re: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return re.exec(out)?.[1] ?? out.split('\n')[0] ?? '?';
  } catch {
    return '?';
  }
}

function pkg(name: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', name], { encoding: 'utf8' });
  } catch {
    return '?';
  }
}

const s1 = (ms: number): string => (ms / 1000).toFixed(1);

const PATHS = [
  "forge: iPXE script + kernel/initrd over HTTP, forge's RA (as shipped)",
  'dnsmasq: pxelinux + kernel/initrd over TFTP',
  'forge: the same with --ipv6-ra off (the ROM waits for IPv6)',
  'dnsmasq: pxelinux + TFTP, the same RA on the link (radvd)',
] as const;

function bootPath(i: number, lan: Lan, dir: string): Promise<BootResult> {
  if (i === 0) return forgeRun(lan, dir, 'ipxe', 'auto');
  if (i === 1) return dnsmasqRun(lan, dir);
  if (i === 2) return forgeRun(lan, dir, 'ipxe', 'off');
  return dnsmasqRun(lan, dir, true);
}

export async function run(): Promise<string> {
  const size = (p: string): number => readFileSync(p).length;
  const out: string[] = ['## Boot: power-on to installer kernel, and HTTP fan-out', ''];
  if (!existsSync(KERNEL)) return out.concat(['Skipped: debian-installer-12-netboot-amd64 is not installed.']).join('\n');
  const kMB = (size(KERNEL) / 1e6).toFixed(1);
  const iMB = (size(INITRD) / 1e6).toFixed(1);
  const load = loadavg()[0]!.toFixed(2);

  const dir = mkdtempSync(join(tmpdir(), 'fgboot-bench-'));
  const runs: BootRun[] = [];
  let lan: Lan | undefined;
  try {
    lan = await createLan('fgbootb');
    // Another machine on the provisioning network: the bridge keeps its carrier between boots (each
    // boot's tap is removed after it; a bridge whose last port went away is NO-CARRIER), as a site's
    // provisioning link is up before a machine boots, so forge serves it (and advertises) at once.
    await lan.addClient();
    for (let i = 0; i < RUNS; i++) {
      // Each repeat starts one path later, so no path always follows the same one.
      for (let k = 0; k < PATHS.length; k++) {
        const p = (i + k) % PATHS.length;
        const r = await bootPath(p, lan, dir);
        runs.push({ path: PATHS[p]!, repeat: i + 1, ...r });
        console.error(`bench boot: repeat ${i + 1} ${PATHS[p]}: ${s1(r.ms)} s (load ${r.load.toFixed(1)})`);
      }
    }
  } finally {
    await lan?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const byPath = new Map<string, BootRun[]>(PATHS.map((p) => [p, runs.filter((r) => r.path === p)]));
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const med = (i: number, k: 'ms' | 'deliverMs'): number => median(byPath.get(PATHS[i]!)!.map((r) => r[k]));
  const one = (i: number, rep: number): BootRun | undefined => runs.find((r) => r.path === PATHS[i] && r.repeat === rep);
  const pct = (a: number, b: number): string => `${((a / b) * 100).toFixed(0)}%`;

  out.push(
    `Same VM (qemu ${version('qemu-system-x86_64', ['--version'], /version (\S+)/)}, TCG, BIOS, 512 MiB, virtio-net with ipxe-qemu ${pkg('ipxe-qemu')}),`,
    `same MAC, same Debian 12 installer kernel (${kMB} MB) and initrd.gz (${iMB} MB), in one network namespace, in one run.`,
    `Time from qemu start to the kernel's first console line. dnsmasq ${version('dnsmasq', ['--version'], /version (\S+)/)}, pxelinux ${pkg('pxelinux')}, radvd ${pkg('radvd')}.`,
    `${RUNS} repeats, the four paths interleaved (each repeat starts one path later); load average at start ${load}, at the end ${loadavg()[0]!.toFixed(2)} (2 shared cores).`,
    '',
    '| path | runs | power-on -> kernel start (s) | first boot file -> kernel start (s) | load at each start |',
    '|---|---:|---:|---:|---:|',
  );
  for (const [path, xs] of byPath) out.push(`| ${path} | ${xs.length} | ${xs.map((r) => s1(r.ms)).join(', ')} | ${xs.map((r) => s1(r.deliverMs)).join(', ')} | ${xs.map((r) => r.load.toFixed(1)).join(', ')} |`);
  out.push(
    '',
    "Every boot in the order run: the ROM's router solicitations before its first boot file request (6 when its IPv6 configurator runs to",
    'its timeout; 1-2 when an RA ends it) and when that request came:',
    '',
    '| repeat | path | load | ROM solicitations | first RA to the VM (s) | first boot file asked (s) | power-on -> kernel (s) |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...runs.map((r) => {
      const first = r.marks.get('HTTP GET iPXE script') ?? r.marks.get('TFTP RRQ pxelinux.0') ?? NaN;
      const ra = r.marks.get('IPv6 router advertisement to the VM');
      return `| ${r.repeat} | (${PATHS.indexOf(r.path as (typeof PATHS)[number]) + 1}) | ${r.load.toFixed(1)} | ${r.solicitations} | ${ra === undefined ? '-' : s1(ra)} | ${s1(first)} | ${s1(r.ms)} |`;
    }),
    '',
    'Per repeat, power-on -> kernel, forge (1) over dnsmasq (2), and with the RA on both links (1) over (4):',
    '',
    '| repeat | (1) / (2) | (1) / (4) | (3) / (2): forge without its RA |',
    '|---:|---:|---:|---:|',
  );
  for (let i = 1; i <= RUNS; i++) {
    const [a, b, c, d] = [0, 1, 2, 3].map((p) => one(p, i)?.ms ?? NaN) as [number, number, number, number];
    out.push(`| ${i} | ${(a / b).toFixed(2)}x | ${(a / d).toFixed(2)}x | ${(c / b).toFixed(2)}x |`);
  }
  // The timeline of the first repeat of each path: where the seconds go.
  const paths = [...PATHS];
  const names = [...new Set(paths.flatMap((p) => [...(byPath.get(p)?.[0]?.marks.keys() ?? [])]))];
  const at = (p: string, n: string): number => byPath.get(p)?.[0]?.marks.get(n) ?? NaN;
  names.sort((a, b) => Math.min(...paths.map((p) => at(p, a)).filter(Number.isFinite)) - Math.min(...paths.map((p) => at(p, b)).filter(Number.isFinite)));
  const gap = (p: number, from: string, to: string): string => s1(at(paths[p]!, to) - at(paths[p]!, from));
  out.push(
    '',
    "Timeline of the first repeat of each path, seconds after qemu start (packet capture on the bridge with tcpdump, the serial console, forge's events, dnsmasq's log):",
    '',
    `| milestone | ${paths.map((_, i) => `(${i + 1})`).join(' | ')} |`,
    `|---|${paths.map(() => '---:|').join('')}`,
    ...names.map((n) => `| ${n} | ${paths.map((p) => (Number.isFinite(at(p, n)) ? s1(at(p, n)) : '')).join(' | ')} |`),
    '',
    ...paths.map((p, i) => `(${i + 1}) ${p}`),
  );
  out.push(
    '',
    `Power-on to kernel, medians: forge as shipped takes **${pct(med(0, 'ms'), med(1, 'ms'))}** of the dnsmasq + pxelinux/TFTP time (target: at most 50%);`,
    `without its RA ${pct(med(2, 'ms'), med(1, 'ms'))}; against dnsmasq with the same RA on its link ${pct(med(0, 'ms'), med(3, 'ms'))}.`,
    `The part the boot server controls (first boot file asked -> kernel start) takes ${pct(med(0, 'deliverMs'), med(1, 'deliverMs'))} of dnsmasq's.`,
    `In the timeline, forge's ACK -> the ROM's script request: ${gap(0, 'forge event: dhcp_ack', 'HTTP GET iPXE script')} s with forge's RA (1), ${gap(2, 'forge event: dhcp_ack', 'HTTP GET iPXE script')} s without (3),`,
    'where the iPXE ROM solicits routers until its IPv6 configurator times out (15.75 s of ROM time in this 2019 build) before it acts on',
    "the DHCP answer; the first solicited RA without M/O flags ends it (iPXE ndp.c). pxelinux is loaded by the same ROM after the same wait.",
    'What limits these figures: qemu TCG on 2 cores shared with other engineers\' VMs and tests; one VM boot is',
    'CPU-bound emulation, so a busy minute stretches one path and not another (see the load column): read ratios per repeat.',
    '',
  );

  const fan = await httpFanout(50);
  out.push(
    '### 50 clients fetching kernel + initrd over HTTP at once',
    '',
    'One `forge serve` on loopback; 50 concurrent Node HTTP clients in another process, each GET kernel then initrd (no keep-alive).',
    '',
    '| clients | total | wall | aggregate | fastest client | slowest client |',
    '|---:|---:|---:|---:|---:|---:|',
    `| ${fan.clients} | ${(fan.bytes / 1e6).toFixed(0)} MB | ${s1(fan.ms)} s | **${fan.mbps.toFixed(0)} MB/s** | ${s1(fan.perClientMs[0]!)} s | ${s1(fan.perClientMs[fan.perClientMs.length - 1]!)} s |`,
  );
  return out.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  run().then(
    (s) => console.log(s),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
