/**
 * Fixtures for the forge-agent VM tests (real libvirt, real forge serve):
 *  - an isolated libvirt network (no <forward>: traffic only between the host
 *    and its own VMs) with its own bridge and subnet, removed afterwards;
 *  - busybox "installer" initramfs images that behave like an installer
 *    (fetch forge.autoinstall=URL and run it), crash, or hang;
 *  - a small bootable disk image (syslinux on FAT, no partition table) whose
 *    "firstboot" initramfs reports to forge and powers off.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, type TestContext } from 'node:test';
import { need } from './env.js';
import { buildInitramfs, guestKernel } from './guest.js';
import { startForgeIn } from './boot-lab.js';
import { run } from './netns.js';
import { apiRequest, runCli, startForge, type ForgeServer } from './server.js';

export const AGENT_BIN = new URL('../../agent/main.js', import.meta.url).pathname;

export function virsh(args: string[], opts: { allowFail?: boolean } = {}): string {
  const r = spawnSync('virsh', ['-q', '-c', 'qemu:///system', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0 && opts.allowFail !== true) throw new Error(`virsh ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/**
 * Under qemu:///system qemu runs as libvirt-qemu. When /dev/kvm is root-only
 * (no udev in a container), libvirt finds its cached qemu capabilities
 * "KVM enabled when probing, but not available now" and re-probes qemu on
 * every domain start (~40 s here). udev's rule (root:kvm 0660) fixes that;
 * the agent still treats kvm as unusable unless its probe guest boots.
 */
export function udevKvmPermissions(): void {
  if (!existsSync('/dev/kvm')) return;
  const st = statSync('/dev/kvm');
  if ((st.mode & 0o060) === 0o060) return;
  spawnSync('chgrp', ['kvm', '/dev/kvm']);
  spawnSync('chmod', ['0660', '/dev/kvm']);
}

export interface LabNetwork {
  name: string;
  bridge: string;
  hostIp: string;
  destroy(): void;
}

/**
 * A transient, isolated libvirt network with DHCP (libvirt's dnsmasq) on a
 * random /24. `bootp(hostIp)` sets the DHCP boot file name (RFC 2132 option
 * 67 / BOOTP file): an http:// URL is fetched directly by the NIC's iPXE ROM.
 */
export function createNetwork(prefix: string, bootp?: (hostIp: string) => string, opts: { dhcp?: boolean } = {}): LabNetwork {
  for (let attempt = 0; attempt < 5; attempt++) {
    const rand = randomBytes(2).toString('hex');
    const name = `${prefix}-${rand}`;
    const bridge = `${prefix}${rand}`.slice(0, 15);
    const b = randomBytes(2);
    const net = `10.${200 + ((b[0] as number) % 50)}.${b[1] as number}`;
    const xml = `<network>
  <name>${name}</name>
  <bridge name='${bridge}' stp='off'/>
  <ip address='${net}.1' netmask='255.255.255.0'>${opts.dhcp === false ? '' : `
    <dhcp><range start='${net}.100' end='${net}.200'/>${bootp === undefined ? '' : `<bootp file='${bootp(`${net}.1`)}'/>`}</dhcp>`}
  </ip>
</network>
`;
    const file = `/tmp/${name}.xml`;
    writeFileSync(file, xml);
    const r = spawnSync('virsh', ['-q', '-c', 'qemu:///system', 'net-create', file], { encoding: 'utf8', timeout: 60_000 });
    rmSync(file, { force: true });
    if (r.status === 0) {
      return {
        name,
        bridge,
        hostIp: `${net}.1`,
        destroy: () => void virsh(['net-destroy', name], { allowFail: true }),
      };
    }
    if (!/already|in use|conflict/i.test(r.stderr)) throw new Error(`virsh net-create: ${r.stderr}`);
  }
  throw new Error('could not find a free subnet for the test network');
}

/** Remove a domain of any kind, quietly. */
export function removeDomain(name: string): void {
  virsh(['destroy', name], { allowFail: true });
  virsh(['undefine', name], { allowFail: true });
}

export function domainState(name: string): string {
  return virsh(['domstate', name], { allowFail: true }).trim();
}

/** The installer: like a real one it reads the autoinstall URL from the command line and runs what forge renders. */
export const INSTALLER_INIT = `net_up || halt_now
url=$(arg forge.autoinstall)
say "autoinstall $url"
if wget -q -O /tmp/install.sh "$url"; then
  sh /tmp/install.sh && say "install script ok" || say "install script failed"
else
  say "autoinstall fetch failed"
fi
halt_now`;

/** An installer whose init exits: the kernel panics ("Attempted to kill init!"). */
export const CRASH_INIT = `say "installer crashing"
exit 1`;

/** An installer that never finishes. */
export const HANG_INIT = `say "installer hanging"
while true; do sleep 60; done`;

/** The installed system's init: tell forge about the first boot, then power off. */
export const FIRSTBOOT_INIT = `net_up
fb=$(arg forge.firstboot)
if wget -q -O /dev/null --post-data "" "$fb"; then say "firstboot reported"; else say "firstboot report failed"; fi
halt_now`;

/** The install step the site snippet dir puts into forge's generic script: write the image to the disk. */
export function installSnippet(): string {
  return `# forge-agent e2e: write the prepared bootable image to the first disk
img="$FORGE_URL/tree/{{ distro_name }}/{{ system_name }}.img"
echo "forge-installer: writing disk from $img" > /dev/console
wget -q -O - "$img" | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null
sync
echo "forge-installer: disk written" > /dev/console
`;
}

/**
 * Debian's busybox-static 1.35 `wget -T N` segfaults (seen: the shipped
 * callback_fn snippet's `wget -q -T 30` died with SIGSEGV in the guest), so
 * the installer carries a minimal `curl` (what forge_callback prefers) that
 * maps the callback's `curl -fsS -m N -X POST -o FILE URL` onto wget without -T.
 */
export const CURL_SHIM = `#!/bin/sh
url=""; out=/dev/null; post=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift ;;
    -m) shift ;;
    -X) [ "$2" = POST ] && post=1; shift ;;
    -*) ;;
    *) url="$1" ;;
  esac
  shift
done
if [ -n "$post" ]; then exec wget -q -O "$out" --post-data "" "$url"; fi
exec wget -q -O "$out" "$url"
`;

export function initrdFor(init: string): string {
  return buildInitramfs({ init, files: { '/usr/bin/curl': CURL_SHIM } });
}

/**
 * A bootable disk image: FAT without a partition table (a "superfloppy"),
 * syslinux's boot sector and ldlinux, the kernel and the firstboot initramfs.
 */
export function buildDiskImage(dir: string, system: string, firstbootUrl: string): string {
  const kernel = guestKernel();
  const fb = initrdFor(FIRSTBOOT_INIT);
  const img = join(dir, `${system}.img`);
  rmSync(img, { force: true });
  execFileSync('truncate', ['-s', '32M', img]);
  execFileSync('mkfs.vfat', ['-n', 'FORGEVM', img], { stdio: 'ignore' });
  execFileSync('syslinux', ['--install', img]);
  const cfg = join(dir, `${system}.syslinux.cfg`);
  writeFileSync(cfg, `DEFAULT forge\nPROMPT 0\nTIMEOUT 0\nLABEL forge\n  KERNEL vmlinuz\n  INITRD fb.gz\n  APPEND console=ttyS0 quiet no_timer_check forge.firstboot=${firstbootUrl}\n`);
  execFileSync('mcopy', ['-i', img, kernel.vmlinuz, '::vmlinuz']);
  execFileSync('mcopy', ['-i', img, fb, '::fb.gz']);
  execFileSync('mcopy', ['-i', img, cfg, '::syslinux.cfg']);
  return img;
}

/** A directory qemu (user libvirt-qemu) can traverse. */
export function labDir(prefix: string): string {
  const dir = `/var/lib/libvirt/images/${prefix}-${randomBytes(3).toString('hex')}`;
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  return dir;
}

/** A random locally administered MAC in qemu/KVM's OUI 52:54:00 (what libvirt gives its guests). */
export function labMac(): string {
  return ['52', '54', '00', ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** Poll `probe` until it returns a value (every `everyMs`), or fail naming `what`. */
export async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined, everyMs = 1000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface AgentRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LabEvent {
  type: string;
  source: string;
  detail: Record<string, unknown>;
  id: number;
  time: string;
}

/** What every agent e2e lab holds: its network, directory, forge server and the domains to remove. */
export interface LabCore {
  net: LabNetwork;
  dir: string;
  srv: ForgeServer;
  /** forge's URL on the lab network (what the agent and the guests use). */
  base: string;
  /** Unique prefix of this run's object and domain names. */
  tag: string;
  /** Domains removed (with their NVRAM and logs) after the file's tests. */
  domains: string[];
}

export interface LabSpec<X> {
  /** Prefix of the network, directory and tag names (a few letters). */
  prefix: string;
  /** Tools the tests need (need(): skip on a laptop, fail under CI=true). */
  reqs: { root?: boolean; commands?: string[] };
  /** What a skip says when a tool is missing. */
  skip: string;
  /** The network's DHCP boot file (see createNetwork), given the host's address and forge's HTTP port. */
  bootp?: (hostIp: string, port: number) => string;
  /** Extra `forge serve` flags (forge on the host listens on the lab network's host address). */
  serveArgs?: (dir: string) => string[];
  /**
   * forge answers DHCP on the lab network (no libvirt DHCP there): started
   * as the README's managed-mode line says, with nothing else but --data-dir
   * (no --server, --listen, port or probe flag), in a network namespace of
   * its own whose veth is a port of the lab bridge (NET.2), so that its DHCP
   * socket sees this bridge only. Boot files go under DATA/distros (a
   * default boot root).
   */
  managedDhcp?: boolean;
  /** The file's own fixtures: objects on the server, images, keys. */
  setup(core: LabCore): Promise<X>;
}

export interface AgentLab<X> {
  /** The lab for a test, or undefined after the test was skipped (a missing tool off CI). */
  ready(t: TestContext): (LabCore & X) | undefined;
  /** The lab (throws before setup). */
  get(): LabCore & X;
  /** The API on the lab network with the server's token. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** POST an object; asserts it was created. */
  create(kind: string, obj: Record<string, unknown>): Promise<void>;
  /** A system's timeline, oldest first. */
  events(system: string): Promise<LabEvent[]>;
  /** Run forge-agent against the lab's server (no FORGE_* from the host but the tests' rescue kernel). */
  agent(args: string[], timeoutMs: number, opts?: { onStderr?: (s: string, kill: (sig: NodeJS.Signals) => void) => void }): Promise<AgentRun>;
  /** The environment forge-agent runs with (also for agent runs under a pty). */
  agentEnv(): NodeJS.ProcessEnv;
}

/**
 * `forge serve` with the README's managed DHCP line for the lab network, in
 * a namespace `NETNAME-f` joined to the lab bridge by a veth (forge at NET.2,
 * the host at NET.1 as router and DNS). Returned as a ForgeServer the host
 * reaches at http://NET.2:8080 (forge's default port); stop() also deletes
 * the namespace (and with it the veth).
 */
async function managedForge(net: LabNetwork, dataDir: string): Promise<ForgeServer> {
  const prefix = net.hostIp.replace(/\.1$/, '');
  const ns = `${net.name}-f`;
  const id = randomBytes(3).toString('hex');
  const [a, b] = [`fa${id}`, `fb${id}`];
  const ip = async (...args: string[]): Promise<void> => {
    const r = await run('ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  };
  const host = {
    serverIp: `${prefix}.2`,
    exec: (cmd: string, args: string[], o?: Parameters<typeof run>[2]) => run('ip', ['netns', 'exec', ns, cmd, ...args], o),
    spawn: (cmd: string, args: string[], o?: import('node:child_process').SpawnOptions) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...o }),
  };
  await ip('netns', 'add', ns);
  try {
    await ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    await ip('link', 'set', b, 'netns', ns);
    await ip('link', 'set', a, 'master', net.bridge, 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'link', 'set', b, 'name', 'eth0');
    await ip('-n', ns, 'addr', 'add', `${prefix}.2/24`, 'dev', 'eth0');
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    mkdirSync(dataDir, { recursive: true });
    const flags = ['--dhcp-mode', 'managed', '--dhcp-subnet', `${prefix}.0/24`, '--dhcp-range', `${prefix}.100,${prefix}.200`, '--dhcp-router', `${prefix}.1`, '--dhcp-dns', `${prefix}.1`];
    const f = await startForgeIn(host, dataDir, flags, 8080, 60_000, { readme: true });
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_'))), FORGE_SERVER: f.url, FORGE_TOKEN: f.token };
    return {
      url: f.url,
      port: 8080,
      token: f.token,
      dataDir,
      proc: f.proc,
      output: f.output,
      cli: (args, e = {}, o = {}) => runCli(args, { ...env, ...e }, o),
      api: (method, path, body, o = {}) => apiRequest(f.url, f.token, method, path, body, { timeoutMs: 30_000, ...o }),
      async stop() {
        await f.stop();
        await run('ip', ['netns', 'del', ns]);
      },
      async kill() {
        f.proc.kill('SIGKILL');
      },
    };
  } catch (e) {
    await run('ip', ['netns', 'pids', ns]).then((r) => r.stdout.split(/\s+/).filter((x) => /^\d+$/.test(x)).forEach((pid) => process.kill(Number(pid), 'SIGKILL')));
    await run('ip', ['netns', 'del', ns]);
    throw e;
  }
}

/**
 * The one lab of the agent e2e files: registers node:test before/after
 * hooks that check the tools, start libvirtd's isolated network, a lab
 * directory qemu can read and a real `forge serve` on the network's host
 * address, run the file's own setup, and afterwards remove every domain (with
 * NVRAM and, unless FORGE_AGENT_KEEP_LOGS is set, its logs), the server, the
 * network and the directory. A failed setup cleans up what it made.
 */
export function agentLab<X>(spec: LabSpec<X>): AgentLab<X> {
  let lab: (LabCore & X) | undefined;
  let skipReason: string | undefined;
  const get = (): LabCore & X => {
    if (lab === undefined) throw new Error('the agent lab is not set up');
    return lab;
  };

  before(async () => {
    // need() wants a TestContext; here the check is done by hand and reported by each test's ready().
    const probe = spawnSync('sh', ['-c', (spec.reqs.commands ?? []).map((c) => `command -v ${c} >/dev/null`).join(' && ') || 'true']);
    if ((spec.reqs.root === true && process.getuid?.() !== 0) || probe.status !== 0) {
      skipReason = spec.skip;
      return;
    }
    if (spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { timeout: 30_000 }).status !== 0) {
      skipReason = 'libvirtd is not running (start virtlogd -d and libvirtd -d)';
      return;
    }
    udevKvmPermissions();
    const tag = `${spec.prefix}${randomBytes(2).toString('hex')}`;
    const port = 20000 + randomInt(20000);
    const net = createNetwork(spec.prefix, spec.bootp === undefined ? undefined : (ip) => (spec.bootp as (h: string, p: number) => string)(ip, port), { dhcp: spec.managedDhcp !== true });
    const dir = labDir(spec.prefix);
    let srv: ForgeServer | undefined;
    try {
      srv = spec.managedDhcp === true ? await managedForge(net, join(dir, 'forge')) : await startForge({ args: ['--listen', net.hostIp, '--server', net.hostIp, '--http-port', String(port), ...(spec.serveArgs?.(dir) ?? [])] });
      const core: LabCore = { net, dir, srv, base: srv.url.startsWith('http://127.') ? `http://${net.hostIp}:${srv.port}` : srv.url, tag, domains: [] };
      lab = core as LabCore & X; // setup() may use the lab's api/create before its own fields exist
      lab = { ...core, ...(await spec.setup(core)) };
      lab.domains = core.domains;
    } catch (e) {
      await srv?.stop();
      net.destroy();
      rmSync(dir, { recursive: true, force: true });
      lab = undefined;
      throw e;
    }
  });

  after(async () => {
    if (lab === undefined) return;
    for (const d of lab.domains) {
      removeDomain(d);
      virsh(['undefine', '--nvram', d], { allowFail: true }); // a UEFI domain keeps its definition without --nvram
      if (process.env['FORGE_AGENT_KEEP_LOGS'] === undefined) {
        for (const suffix of ['-install', '-console', '']) rmSync(`/var/log/libvirt/qemu/${d}${suffix}.log`, { force: true });
      }
    }
    await lab.srv.stop();
    lab.net.destroy();
    rmSync(lab.dir, { recursive: true, force: true });
  });

  const api = (method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> =>
    apiRequest(get().base, get().srv.token, method, path, body, { timeoutMs: 30_000 });

  const agentEnv = (): NodeJS.ProcessEnv => {
    const l = get();
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_')));
    // The rescue system reuses the tests' extracted Debian kernel instead of downloading it again.
    return { ...env, FORGE_SERVER: l.base, FORGE_TOKEN: l.srv.token, FORGE_AGENT_RESCUE_KERNEL_DIR: dirname(dirname(guestKernel().vmlinuz)) };
  };

  return {
    ready(t) {
      if (need(t, spec.reqs) !== undefined) return undefined;
      if (skipReason !== undefined) {
        need(t, { files: [`/nonexistent/${skipReason}`] });
        return undefined;
      }
      assert.ok(lab !== undefined, 'lab setup failed');
      return lab;
    },
    get,
    api,
    async create(kind, obj) {
      const r = await api('POST', `/api/v1/${kind}`, obj);
      assert.ok(r.status === 200 || r.status === 201, `create ${kind} ${String(obj['name'])}: ${r.status} ${JSON.stringify(r.body)}`);
    },
    async events(system) {
      const r = await api('GET', `/api/v1/systems/${system}/events`);
      assert.equal(r.status, 200, `events of ${system}: ${JSON.stringify(r.body)}`);
      return [...(r.body as LabEvent[])].sort((a, b) => a.time.localeCompare(b.time) || a.id - b.id);
    },
    agentEnv,
    agent(args, timeoutMs, opts = {}) {
      return new Promise((resolve, reject) => {
        const p = spawn(process.execPath, [AGENT_BIN, ...args], { env: agentEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        p.stderr.setEncoding('utf8').on('data', (d: string) => {
          stderr += d;
          opts.onStderr?.(stderr, (sig) => p.kill(sig));
        });
        const timer = setTimeout(() => {
          p.kill('SIGKILL');
          reject(new Error(`forge-agent ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        p.on('error', reject);
        p.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? -1, stdout, stderr });
        });
      });
    },
  };
}
