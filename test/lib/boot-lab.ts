/**
 * The boot lab: a real `forge serve` inside a test LAN namespace (so its
 * DHCP and TFTP see the bridge), driven through the real CLI and curl inside
 * the namespace, plus the guest pieces the boot tests and bench/boot.ts
 * share: an "installer" initramfs that behaves like one, and a disk whose
 * boot sector announces a local boot on the serial console.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecResult, Lan } from './netns.js';
import { FORGE_BIN, installerUrl, testBootRoots } from './server.js';
import { buildInitramfs } from './guest.js';

export interface NsForge {
  url: string;
  token: string;
  dataDir: string;
  proc: ChildProcess;
  output(): string;
  /** `forge ARGS` run inside the namespace against this server. */
  cli(args: string[]): Promise<ExecResult>;
  /** JSON API call through curl inside the namespace. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** Raw GET of a URL path (text), inside the namespace. */
  text(path: string): Promise<string>;
  stop(): Promise<void>;
}

/** Where forge runs: a Lan, or any namespace Host with the address clients reach it on. */
export type ForgeHost = Pick<Lan, 'serverIp' | 'spawn' | 'exec'>;

/**
 * Start `forge serve` in the LAN namespace on lan.serverIp:port with the
 * given extra flags; resolves when it prints `forge ready:`.
 * opts.readme: the README's command line as a user types it: only --data-dir and `flags`
 * (no --listen, --server, --http-port, --log-level or test boot roots: every default as shipped).
 */
export async function startForgeIn(lan: ForgeHost, dataDir: string, flags: string[], port = 8080, timeoutMs = 30_000, opts: { readme?: boolean } = {}): Promise<NsForge> {
  const url = `http://${lan.serverIp}:${port}`;
  const args = opts.readme === true
    ? [FORGE_BIN, 'serve', '--data-dir', dataDir, ...flags]
    : [
        FORGE_BIN, 'serve',
        '--data-dir', dataDir,
        '--listen', '0.0.0.0',
        '--http-port', String(port),
        '--server', lan.serverIp,
        '--log-level', 'info',
        // Fixtures live in temp dirs and the test cache: configured as boot roots.
        ...(flags.includes('--boot-roots') ? [] : testBootRoots(dataDir).flatMap((r) => ['--boot-roots', r])),
        ...flags,
      ];
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_')));
  // FORGE_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`), as in forge-ns.ts: node flags for profiling a bench's server.
  const nodeArgs = (process.env['FORGE_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  const proc = lan.spawn(process.execPath, [...nodeArgs, ...args], { env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const start = Date.now();
    const tick = (): void => {
      if (/forge ready: /.test(out)) return resolve();
      if (proc.exitCode !== null || proc.signalCode !== null) return reject(new Error(`forge serve exited before ready:\n${out}`));
      if (Date.now() - start > timeoutMs) return reject(new Error(`forge serve not ready after ${timeoutMs} ms:\n${out}`));
      setTimeout(tick, 100);
    };
    tick();
  });
  const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();
  const env = { ...baseEnv, FORGE_SERVER: url, FORGE_TOKEN: token };
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> => {
    const a = ['-s', '-X', method, '-H', `Authorization: Bearer ${token}`, '-w', '\n%{http_code}'];
    if (body !== undefined) a.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(body));
    const r = await lan.exec('curl', [...a, url + path], { timeoutMs: 30_000 });
    const cut = r.stdout.lastIndexOf('\n');
    const text = r.stdout.slice(0, cut);
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: Number(r.stdout.slice(cut + 1)), body: parsed };
  };
  return {
    url,
    token,
    dataDir,
    proc,
    output: () => out,
    cli: (cliArgs) => lan.exec(process.execPath, [FORGE_BIN, ...cliArgs], { env, timeoutMs: 60_000 }),
    api,
    async text(path) {
      // Installer paths as an installer has them: through the system's install token.
      return (await lan.exec('curl', ['-s', await installerUrl({ url, api }, path)], { timeoutMs: 30_000 })).stdout;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * Debian 12's busybox-static 1.35 wget segfaults when given `-T SECONDS`
 * (reproduce: `busybox wget -q -T 30 -O /dev/null http://127.0.0.1:1/`),
 * and its ash runs applets before PATH, so a wget wrapper is never used.
 * Installer scripts (forge's callback snippet) try curl first: this curl
 * does what they ask of it (GET/POST a URL, -o FILE) with busybox wget.
 */
const CURL_SHIM = `#!/bin/busybox sh
out=-
url=
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2;;
    -m|-X|-H|-d|--data|--data-binary|-T|-u|-A|-e|-r|-w) shift 2;;
    -*) shift;;
    *) url="$1"; shift;;
  esac
done
[ -n "$url" ] || { echo "curl shim: no URL" >&2; exit 2; }
exec /bin/busybox wget -q -O "$out" "$url"
`;

/**
 * An initramfs that behaves like an installer: network up, read
 * `forge.autoinstall=` (or d-i's `url=`) from /proc/cmdline, fetch it, run
 * it (forge's generic script calls install start / done), power off.
 * Serial markers: `forge-guest: AUTOINSTALL OK N bytes`, `INSTALL SCRIPT OK`.
 */
export function installerInitramfs(): string {
  return buildInitramfs({
    files: { '/usr/local/bin/curl': CURL_SHIM },
    init: `export PATH=/usr/local/bin:$PATH
net_up || { say "NETWORK FAILED"; halt_now; }
u=$(arg forge.autoinstall) || u=$(arg url) || { say "NO AUTOINSTALL URL"; halt_now; }
say "fetching autoinstall $u"
if wget -q -O /tmp/ai "$u"; then
  say "AUTOINSTALL OK $(wc -c < /tmp/ai) bytes"
  if sh /tmp/ai; then say "INSTALL SCRIPT OK"; else say "INSTALL SCRIPT FAILED"; fi
else
  say "AUTOINSTALL FAILED"
fi
halt_now`,
  });
}

/** A guest that only announces it started (the benchmark's "installer kernel started" point). */
export function markerInitramfs(): string {
  return buildInitramfs({ init: 'say "INSTALLER STARTED"\nhalt_now', modules: [] });
}

export const LOCAL_DISK_MARKER = 'forge-test: booted from local disk';

/**
 * A 1 MiB raw disk whose MBR boot code writes LOCAL_DISK_MARKER to COM1 and
 * halts: proof that the firmware fell through to the local disk.
 *   xor ax,ax; mov ds,ax; cld; mov si,msg; mov dx,0x3f8
 *   l: lodsb; test al,al; jz d; out dx,al; jmp l
 *   d: cli; hlt; jmp d
 */
export function localBootDisk(dir: string): string {
  const code = Buffer.from([
    0x31, 0xc0, 0x8e, 0xd8, 0xfc, 0xbe, 0x17, 0x7c, 0xba, 0xf8, 0x03,
    0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8,
    0xfa, 0xf4, 0xeb, 0xfc,
  ]);
  const msg = Buffer.from(`\r\n${LOCAL_DISK_MARKER}\r\n\0`, 'latin1');
  const img = Buffer.alloc(1024 * 1024);
  code.copy(img, 0);
  msg.copy(img, code.length);
  img[510] = 0x55;
  img[511] = 0xaa;
  const p = join(dir, `local-${randomBytes(3).toString('hex')}.img`);
  writeFileSync(p, img);
  return p;
}

/** The README's managed-mode example, literally (`forge serve` with these flags and no others). */
export const README_MANAGED = ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200', '--dhcp-router', '10.98.0.1', '--dhcp-dns', '10.98.0.1'];

/** The Debian 12 installer's netboot set (debian-installer-12-netboot-amd64 / -arm64). */
export const DI_AMD64 = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';
export const DI_ARM64 = '/usr/lib/debian-installer/images/12/arm64/text/debian-installer/arm64';

/**
 * Kernel options for the x86 installer in a TCG VM: the serial console, and no_timer_check (on a
 * loaded host emulated time runs so slowly that the kernel's IO-APIC timer check fails and it
 * panics, "IO-APIC + timer doesn't work!"; the check says nothing about the boot under test).
 */
export const DI_KOPTS = 'console=ttyS0,115200 no_timer_check';

export interface LabEvent {
  id: number;
  type: string;
  source: string;
  time: string;
  detail: Record<string, unknown>;
}

/** A system's stored timeline, oldest first. */
export async function labEvents(forge: NsForge, name: string): Promise<LabEvent[]> {
  const r = await forge.api('GET', `/api/v1/systems/${name}/events`);
  if (r.status !== 200) throw new Error(`events of ${name}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return [...(r.body as LabEvent[])].sort((a, b) => a.time.localeCompare(b.time) || a.id - b.id);
}

export const eventTypes = (evs: LabEvent[]): string => evs.map((e) => `${e.source}:${e.type}`).join(' ');

/** d-i's screen as text (ANSI sequences and runs of blanks squeezed), for failure messages. */
export const screenText = (serial: string): string => serial.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\s+/g, ' ');

/**
 * Wait (bounded) until forge recorded `type` for the system, or the VM exited. Returns the timeline;
 * throws with the events, the VM's screen tail and forge's log tail when it did not come.
 */
export async function waitForLabEvent(forge: NsForge, name: string, type: string, vm: { serial(): string; proc: ChildProcess }, ms: number): Promise<LabEvent[]> {
  const start = Date.now();
  let evs: LabEvent[] = [];
  while (Date.now() - start < ms) {
    evs = await labEvents(forge, name);
    if (evs.some((e) => e.type === type)) return evs;
    if (vm.proc.exitCode !== null || vm.proc.signalCode !== null) break;
    await new Promise((r) => setTimeout(r, 3000));
  }
  throw new Error(`${name}: no ${type} after ${Math.round((Date.now() - start) / 1000)} s; events: ${eventTypes(evs)}\n` +
    `screen tail: ${screenText(vm.serial()).slice(-1500)}\n--- forge log tail:\n${forge.output().slice(-2500)}`);
}

/** A boot lab's teardown (after()): VMs, then forge, then the namespaces, then the temp dir. Never throws. */
export async function teardownLab(l: { vms: readonly { kill(): Promise<void> }[]; forge: NsForge | undefined; lan: Lan | undefined; dir: string }): Promise<void> {
  for (const vm of l.vms) await vm.kill().catch(() => undefined);
  await l.forge?.stop().catch(() => undefined);
  await l.lan?.destroy().catch(() => undefined);
  if (l.dir !== '') rmSync(l.dir, { recursive: true, force: true });
}

/** The link-local address a NIC with `mac` takes by modified EUI-64 (RFC 4291 appendix A), as iPXE and Linux do by default. */
export function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((x) => Number.parseInt(x, 16));
  const e = [b[0]! ^ 0x02, b[1]!, b[2]!, 0xff, 0xfe, b[3]!, b[4]!, b[5]!];
  const groups = [0, 2, 4, 6].map((i) => ((e[i]! << 8) | e[i + 1]!).toString(16));
  return `fe80::${groups.join(':')}`;
}

/** One router solicitation or advertisement tcpdump decoded: epoch ms, addresses, IP hop limit. */
export interface NdpPacket {
  t: number;
  type: 'rs' | 'ra';
  src: string;
  dst: string;
  hlim: number;
  text: string;
}

/**
 * tcpdump's ICMPv6 decoder on `iface` of `host` (router solicitations and advertisements only):
 * started before the VMs, read at the end. Ends with the namespace.
 */
export async function ndpCapture(host: Pick<Lan, 'spawn'>, iface: string): Promise<{ packets(): NdpPacket[]; raw(): string }> {
  const p = host.spawn('tcpdump', ['-i', iface, '-n', '-l', '-tt', '-vv', 'icmp6 and (ip6[40] == 133 or ip6[40] == 134)']);
  let out = '';
  let err = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const end = Date.now() + 15_000;
  while (!/listening on/.test(err)) {
    if (Date.now() > end || p.exitCode !== null) throw new Error(`tcpdump did not start on ${iface}: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const packets = (): NdpPacket[] => {
    const res: NdpPacket[] = [];
    for (const block of out.split(/\n(?=\d)/)) {
      const m = /^(\d+\.\d+) IP6 \(.*?hlim (\d+),.*?\) (\S+) > (\S+): .*?ICMP6, router (solicitation|advertisement)/s.exec(block);
      if (m === null) continue;
      res.push({ t: Math.round(Number(m[1]) * 1000), hlim: Number(m[2]), src: m[3]!, dst: m[4]!.replace(/:$/, ''), type: m[5] === 'solicitation' ? 'rs' : 'ra', text: block });
    }
    return res;
  };
  return { packets, raw: () => out };
}
