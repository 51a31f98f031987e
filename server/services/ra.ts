/**
 * IPv6 router advertisements on the links managed DHCP serves, so that PXE ROMs stop waiting for
 * IPv6 autoconfiguration.
 *
 * Why: iPXE (every qemu NIC ROM, Debian's ipxe-qemu 2019 build) runs its IPv6 configurator beside
 * DHCPv4 from link-up and `ifconf` returns only when both ended (usr/ifmgmt.c). Without a router
 * the IPv6 one solicits until its retry timer gives up: 15.75 s in that build (3.875 s in iPXE
 * since 2020). The first solicited RA ends it at once when it carries neither the M nor the O flag
 * (net/ndp.c ipv6conf_rx_router_advertisement; the router lifetime is only stored), so one RA
 * that says nothing removes the wait.
 *
 * What is sent (RFC 4861 section 4.2): hop limit 255 (radvd), Cur Hop Limit 0 (unspecified),
 * M = O = 0, Router Lifetime 0 (RFC 4861 section 6.2.5: not a default router, so no host routes
 * through forge), no prefix option (no host takes an address), only the source link-layer address
 * option. Only in answer to a Router Solicitation, unicast to the soliciting address (radvd's
 * `UnicastOnly`: never an unsolicited multicast RA, and no final RA on stop), and only on the
 * interfaces of links whose state is `serving` (links.ts): managed mode, a directly attached
 * subnet, no rival DHCP server. Proxy mode, relayed subnets and silenced links get nothing.
 *
 * How: Node has no raw ICMPv6 socket (an RA is ICMPv6 from a link-local address with hop limit
 * 255, RFC 4861 section 6.1.2), so forge writes a configuration for Debian's radvd and supervises
 * it (restart with backoff, stopped with forge), rather than shipping a native addon or a helper
 * that would need a compiler on every install.
 *
 * radvd ends with forge even when forge is SIGKILLed: it is started through util-linux's
 * `setpriv --pdeathsig TERM`, so the kernel sends it SIGTERM when forge's main thread (which
 * forks it: libuv spawns on the loop thread) dies (prctl(2) PR_SET_PDEATHSIG). The kernel clears
 * that setting when the process changes its effective uid (prctl(2)), so radvd's own `--username`
 * drop would undo it: as root, setpriv itself switches to Debian's `radvd` user before radvd
 * starts, keeping only CAP_NET_RAW (ambient, for radvd's raw ICMPv6 socket; bounding set and
 * no_new_privs so nothing regains more). That user cannot reach data_dir (0700), so radvd's
 * configuration and pid file then live in /run/forge/radvd-HASH (root-owned /run, one directory
 * per data_dir). radvd needs no other privilege with this configuration: it writes interface
 * sysctls only for AdvCurHopLimit/AdvLinkMTU/AdvReachableTime/AdvRetransTimer values, all unset
 * (radvd interface.c setup_iface -> privsep).
 *
 * Carrier and address changes need no restart: radvd listens on netlink and re-initialises an
 * interface on RTM_NEWLINK/RTM_NEWADDR (radvd netlink.c process_netlink_msg -> touch_iface), and
 * cannot send from a tentative link-local address (RFC 4862 section 5.4: DAD) until it is valid.
 * A solicitation that arrives while the bridge's link-local address is still tentative goes
 * unanswered, and the ROM's next one comes on its retry timer; `forge status` shows each link's
 * RA state (carrier, link-local address, radvd) so that wait is visible.
 *
 *   auto  (default) as above when radvd is installed; without it a warning says what it costs;
 *   on    the same, and forge refuses to start when radvd is missing (field ipv6_ra);
 *   off   never.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, chownSync, constants, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import type { ForgeConfig, Ipv6RaMode } from '../config.js';
import { ForgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DhcpLinkStatus } from './dhcp/links.js';
import type { Service } from './service.js';

export type { Ipv6RaMode };

/** Interface names radvd's configuration grammar takes unquoted (Linux IFNAMSIZ is 16 with the NUL). */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * The interfaces that get RAs: those of links managed DHCP is serving, sorted, each once; never a
 * loopback interface (a subnet served on 127.0.0.0/8 has no PXE client and no link to advertise on).
 */
export function raInterfaces(links: readonly DhcpLinkStatus[], loopback: (ifname: string) => boolean = (i) => i === 'lo'): string[] {
  return [...new Set(links.filter((l) => l.state === 'serving' && IFNAME.test(l.interface) && !loopback(l.interface)).map((l) => l.interface))].sort();
}

/** Whether the host's interface `ifname` is a loopback one (Node marks its addresses internal). */
function isLoopback(ifname: string): boolean {
  return ifname === 'lo' || (networkInterfaces()[ifname] ?? []).some((a) => a.internal);
}

/** radvd.conf for `ifaces` (each already checked against IFNAME): see the header for each line's reason. */
export function radvdConfig(ifaces: readonly string[]): string {
  const lines = ['# Written by forge serve (ipv6_ra); rewritten whenever the served links change.'];
  for (const i of ifaces) {
    lines.push(
      `interface ${i} {`,
      '  AdvSendAdvert on;',
      // Answer solicitations only, by unicast; no unsolicited or final multicast RA.
      '  UnicastOnly on;',
      // RFC 4861 section 4.2: 0 = unspecified; hosts keep their own hop limit.
      '  AdvCurHopLimit 0;',
      // RFC 4861 section 6.2.5: router lifetime 0, forge is not a default router.
      '  AdvDefaultLifetime 0;',
      // No DHCPv6: iPXE ends IPv6 configuration on this RA instead of starting DHCPv6.
      '  AdvManagedFlag off;',
      '  AdvOtherConfigFlag off;',
      '  AdvSourceLLAddress on;',
      '};',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** radvd's path: PATH, then the sbin directories a non-root PATH lacks; undefined when not installed. */
export function findRadvd(path: string = process.env['PATH'] ?? ''): string | undefined {
  return findCommand('radvd', path);
}

/** util-linux's setpriv (Debian: essential, /usr/bin); undefined when missing. */
export function findSetpriv(path: string = process.env['PATH'] ?? ''): string | undefined {
  return findCommand('setpriv', path);
}

function findCommand(name: string, path: string): string | undefined {
  for (const dir of [...path.split(delimiter).filter((d) => d !== ''), '/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin']) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** How radvd is started: the command, where its files live, and whether it dies with forge. */
export interface RadvdLaunch {
  file: string;
  args: string[];
  /** Directory of radvd.conf and radvd.pid. */
  dir: string;
  /** Owner to give `dir` (the user radvd runs as, when that is not forge's). */
  owner?: { uid: number; gid: number };
  /** SIGTERM from the kernel when forge dies (setpriv --pdeathsig). */
  pdeathsig: boolean;
}

export interface RadvdLaunchInput {
  radvd: string;
  /** undefined: setpriv is not installed. */
  setpriv: string | undefined;
  root: boolean;
  /** Debian's radvd user, when it exists. */
  user: { uid: number; gid: number } | undefined;
  dataDir: string;
  /** The root-owned runtime directory (/run) for a radvd that runs as its own user. */
  runDir: string;
}

/** The per-data_dir directory under `runDir` a radvd running as its own user reads and writes. */
export function radvdRunDir(runDir: string, dataDir: string): string {
  return join(runDir, 'forge', `radvd-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16)}`);
}

/**
 * The radvd command line (pure; see the header for why each part). As root with setpriv and the
 * radvd user: setpriv drops to that user with CAP_NET_RAW only and sets the parent-death signal
 * last, after the uid change that would clear it. Without root (or without the user): setpriv
 * only sets the parent-death signal. Without setpriv: radvd alone (its own --username drop as
 * root), and a SIGKILLed forge leaves it running until the next start ends it (pid file).
 */
export function radvdLaunch(o: RadvdLaunchInput): RadvdLaunch {
  const ownUser = o.root && o.user !== undefined;
  const dir = ownUser && o.setpriv !== undefined ? radvdRunDir(o.runDir, o.dataDir) : join(o.dataDir, 'radvd');
  const conf = join(dir, 'radvd.conf');
  const radvdArgs = ['--nodaemon', '--config', conf, '--pidfile', join(dir, 'radvd.pid'), '--logmethod', 'stderr'];
  if (o.setpriv === undefined) {
    return { file: o.radvd, args: ownUser ? [...radvdArgs, '--username', 'radvd'] : radvdArgs, dir, pdeathsig: false };
  }
  const drop =
    ownUser && o.user !== undefined
      ? [
          '--reuid', String(o.user.uid), '--regid', String(o.user.gid), '--clear-groups',
          '--inh-caps', '-all,+net_raw', '--ambient-caps', '+net_raw', '--bounding-set', '-all,+net_raw', '--no-new-privs',
        ]
      : [];
  return {
    file: o.setpriv,
    args: [...drop, '--pdeathsig', 'TERM', '--', o.radvd, ...radvdArgs],
    dir,
    ...(ownUser && o.user !== undefined ? { owner: o.user } : {}),
    pdeathsig: true,
  };
}

/** One served interface's RA state, for `forge status`. */
export interface RaLinkStatus {
  interface: string;
  /**
   * answering: radvd runs and the interface has carrier and a valid link-local address;
   * no-carrier; tentative: its link-local address is still in duplicate address detection (RFC
   * 4862 section 5.4), so solicitations go unanswered; no-link-local; starting: radvd is being
   * (re)started.
   */
  state: 'answering' | 'no-carrier' | 'tentative' | 'no-link-local' | 'starting';
  /** ISO time of the last state change forge saw (polled once a second). */
  since: string;
  /** radvd's pid, while it runs. */
  pid?: number;
}

/** The RA part of GET /api/v1/status. */
export interface RaStatus {
  mode: Ipv6RaMode;
  /** Why nothing is sent at all (off, radvd missing, not managed mode). */
  note?: string;
  links: RaLinkStatus[];
}

/** Link-local address flags of /proc/net/if_inet6 (linux include/uapi/linux/if_addr.h). */
const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;

/**
 * The link-local state of `ifname` from /proc/net/if_inet6 text (pure): `valid` when one
 * link-scope (0x20) address is neither tentative nor failed DAD.
 */
export function linkLocalState(ifInet6: string, ifname: string): 'valid' | 'tentative' | 'none' {
  let tentative = false;
  for (const line of ifInet6.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[5] !== ifname || f[3] !== '20') continue;
    const flags = Number.parseInt(f[4] ?? '', 16);
    if ((flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) === 0) return 'valid';
    if ((flags & IFA_F_TENTATIVE) !== 0) tentative = true;
  }
  return tentative ? 'tentative' : 'none';
}

/** The interface's state as radvd would find it (carrier first, then its link-local address). */
function interfaceState(ifname: string, radvdRunning: boolean): RaLinkStatus['state'] {
  let carrier = '';
  try {
    carrier = readFileSync(`/sys/class/net/${ifname}/carrier`, 'utf8').trim();
  } catch {
    // down interfaces refuse the read (EINVAL)
  }
  if (carrier !== '1') return 'no-carrier';
  let inet6 = '';
  try {
    inet6 = readFileSync('/proc/net/if_inet6', 'utf8');
  } catch {
    // IPv6 disabled
  }
  const ll = linkLocalState(inet6, ifname);
  if (ll === 'tentative') return 'tentative';
  if (ll === 'none') return 'no-link-local';
  return radvdRunning ? 'answering' : 'starting';
}

/** The router advertiser: a Service with its per-link state. */
export interface RouterAdvertiser extends Service {
  status(): RaStatus;
}

export interface RaDeps {
  config: Pick<ForgeConfig, 'ipv6_ra' | 'data_dir'>;
  log: Logger;
  /** Managed DHCP's links (DhcpService.links). */
  links: () => DhcpLinkStatus[];
}

const POLL_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

/**
 * Starts the advertiser when ipv6_ra allows it; undefined when off or (auto) radvd is missing
 * (`radvd` null: not installed).
 * Throws CONFIG_INVALID naming ipv6_ra when it is `on` and radvd is missing.
 */
export function startRouterAdvertiser(
  deps: RaDeps,
  radvd: string | null = findRadvd() ?? null,
  setpriv: string | undefined = findSetpriv(),
): RouterAdvertiser | undefined {
  const mode = deps.config.ipv6_ra;
  if (mode === 'off') return undefined;
  const log = deps.log.child('ra');
  if (radvd === null) {
    if (mode === 'on') throw new ForgeError('CONFIG_INVALID', 'ipv6_ra is on but radvd is not installed (Debian package radvd)', { field: 'ipv6_ra' });
    log.warn('radvd is not installed: no IPv6 router advertisement on the served links, so iPXE ROMs wait for IPv6 router discovery (about 16 s in Debian 12\'s qemu ROM) before booting; install radvd or set --ipv6-ra off to silence this');
    return undefined;
  }
  const how = radvdLaunch({ radvd, setpriv, root: process.getuid?.() === 0, user: radvdUser(), dataDir: deps.config.data_dir, runDir: '/run' });
  const dir = how.dir;
  const conf = join(dir, 'radvd.conf');
  const pidfile = join(dir, 'radvd.pid');
  if (how.owner !== undefined) {
    // /run/forge must be searchable by radvd's user; its per-data_dir directory is radvd's own
    // (it writes its pid file there) while the configuration stays root's.
    mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
    chmodSync(dirname(dir), 0o755);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Which forge owns the directory: a SIGKILLed forge cannot remove it, the next start sweeps it.
    writeFileSync(join(dir, 'forge.pid'), `${process.pid}\n`, { mode: 0o644 });
    chownSync(dir, how.owner.uid, how.owner.gid);
    for (const gone of sweepRunDirs(dirname(dir), dir)) log.debug('removed the radvd directory of a forge that is gone', { dir: gone });
  } else mkdirSync(dir, { recursive: true, mode: 0o700 });
  killStale(pidfile, conf, log);
  if (!how.pdeathsig) log.warn('setpriv (util-linux) is missing: radvd cannot be tied to forge\'s life, so a killed forge leaves it running until the next start ends it');

  let current = '';
  let child: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;
  let failures = 0;
  let restartAt = 0;
  let closed = false;
  /** Each served interface's last state and when it changed (for status and the log). */
  const seen = new Map<string, { state: RaLinkStatus['state']; since: string }>();

  const launch = (ifaces: string[]): void => {
    // radvd refuses a configuration others may write; it must read it as its own user (not umask's).
    writeFileSync(conf, radvdConfig(ifaces), { mode: 0o644 });
    chmodSync(conf, 0o644);
    const started = Date.now();
    const p = spawn(how.file, how.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = p;
    let tail = '';
    p.stderr?.setEncoding('utf8').on('data', (d: string) => {
      tail = (tail + d).slice(-2000);
      for (const line of d.split('\n')) {
        const msg = line.replace(/^\[[^\]]*\]\s*radvd\s*\(\d+\):\s*/, '').trim();
        // radvd warns that forwarding is off: true and intended, forge is not a router.
        if (msg !== '' && !/forwarding/.test(msg)) log.debug('radvd', { line: msg });
      }
    });
    let ended = false;
    const end = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (ended) return;
      ended = true;
      if (child === p) child = undefined;
      if (closed || p.killed) return;
      failures = Date.now() - started > 60_000 ? 1 : failures + 1;
      const wait = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** (failures - 1));
      restartAt = Date.now() + wait;
      current = '';
      log.warn('radvd exited; restarting', { code: code ?? '', signal: signal ?? '', restart_in_ms: wait, stderr: tail.trim().split('\n').slice(-3).join(' | ') });
    };
    p.on('error', (e) => {
      log.warn('radvd could not be started', { path: how.file, err: e });
      end(null, null);
    });
    p.on('exit', end);
    log.info('sending IPv6 router advertisements (no prefix, router lifetime 0) in answer to solicitations', { interfaces: ifaces.join(' '), radvd, config: conf });
  };

  const stop = async (): Promise<void> => {
    const p = child;
    if (p === undefined || p.exitCode !== null) return;
    stopping ??= new Promise<void>((resolve) => {
      const t = setTimeout(() => p.kill('SIGKILL'), 3000);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      p.kill('SIGTERM');
    }).finally(() => {
      stopping = undefined;
    });
    await stopping;
  };

  /** Records each served interface's state; a change is logged so a boot's timeline shows it. */
  const observe = (ifaces: readonly string[]): void => {
    // radvd writes its pid file after it has read the configuration and opened its socket
    // (radvd.c main), so a pid file naming the child is the sign it started.
    const running = child !== undefined && child.exitCode === null && stopping === undefined && pidFileNames(pidfile, child.pid);
    for (const i of [...seen.keys()]) if (!ifaces.includes(i)) seen.delete(i);
    for (const i of ifaces) {
      const state = interfaceState(i, running);
      const was = seen.get(i);
      if (was?.state === state) continue;
      seen.set(i, { state, since: new Date().toISOString() });
      if (state === 'answering') log.info('router advertisements ready', { interface: i });
      else if (was !== undefined) log.info('router advertisements not ready', { interface: i, state });
    }
  };

  const tick = async (): Promise<void> => {
    if (closed || stopping !== undefined) return;
    const ifaces = raInterfaces(deps.links(), isLoopback);
    const want = ifaces.join(' ');
    if (!(want === current && (child !== undefined || want === '')) && !(child === undefined && want !== '' && Date.now() < restartAt)) {
      if (child !== undefined) {
        await stop();
        if (want === '') log.info('no served link: router advertisements stopped');
      }
      current = want;
      if (want !== '' && !closed) launch(ifaces);
    }
    observe(ifaces);
  };

  let busy = false;
  const poll = (): void => {
    if (busy) return;
    busy = true;
    tick()
      .catch((e: unknown) => log.warn('router advertisement check failed', { err: e }))
      .finally(() => {
        busy = false;
      });
  };
  const timer = setInterval(poll, POLL_MS);
  timer.unref();
  poll();

  return {
    name: 'ra',
    endpoints: ['icmpv6 router advertisements (radvd) on served links'],
    status(): RaStatus {
      const pid = child?.exitCode === null ? child.pid : undefined;
      return {
        mode,
        links: [...seen].map(([i, v]) => ({ interface: i, state: v.state, since: v.since, ...(pid !== undefined && v.state === 'answering' ? { pid } : {}) })),
      };
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await stop();
      rmSync(pidfile, { force: true });
      if (how.owner !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function pidFileNames(pidfile: string, pid: number | undefined): boolean {
  try {
    return pid !== undefined && Number.parseInt(readFileSync(pidfile, 'utf8').trim(), 10) === pid;
  } catch {
    return false;
  }
}

/** Whether a process `pid` exists (EPERM: it does, as another user's). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function pidIn(file: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes the radvd-* directories under `parent` (/run/forge) that killed forges left: neither
 * the forge named in its forge.pid nor the radvd named in its radvd.pid is alive. `keep` (this
 * forge's own) is never touched. Returns what it removed.
 */
export function sweepRunDirs(parent: string, keep: string, alive: (pid: number) => boolean = isAlive): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(parent).filter((n) => /^radvd-[0-9a-f]{16}$/.test(n));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const d = join(parent, n);
    if (d === keep) continue;
    const owners = [pidIn(join(d, 'forge.pid')), pidIn(join(d, 'radvd.pid'))].filter((p): p is number => p !== undefined);
    if (owners.some(alive)) continue;
    rmSync(d, { recursive: true, force: true });
    removed.push(d);
  }
  return removed;
}

/** Debian's radvd system user (its primary group is nogroup), from /etc/passwd. */
function radvdUser(): { uid: number; gid: number } | undefined {
  try {
    for (const l of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = l.split(':');
      if (f[0] === 'radvd') {
        const uid = Number.parseInt(f[2] ?? '', 10);
        const gid = Number.parseInt(f[3] ?? '', 10);
        if (Number.isInteger(uid) && Number.isInteger(gid) && uid > 0) return { uid, gid };
      }
    }
  } catch {
    // no passwd file
  }
  return undefined;
}

/** A radvd a killed forge left running with this configuration would hold the pid file: end it. */
function killStale(pidfile: string, conf: string, log: Logger): void {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidfile, 'utf8').trim(), 10);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (cmd.some((a) => a.endsWith('radvd')) && cmd.includes(conf)) {
      process.kill(pid, 'SIGTERM');
      log.info('ended the radvd a previous forge left running', { pid });
    }
  } catch {
    // gone already
  }
  rmSync(pidfile, { force: true });
}
