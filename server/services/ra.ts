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
 *   auto  (default) as above when radvd is installed; without it a warning says what it costs;
 *   on    the same, and forge refuses to start when radvd is missing (field ipv6_ra);
 *   off   never.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { delimiter, join } from 'node:path';
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
  for (const dir of [...path.split(delimiter).filter((d) => d !== ''), '/usr/sbin', '/sbin', '/usr/local/sbin']) {
    const p = join(dir, 'radvd');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
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
export function startRouterAdvertiser(deps: RaDeps, radvd: string | null = findRadvd() ?? null): Service | undefined {
  const mode = deps.config.ipv6_ra;
  if (mode === 'off') return undefined;
  const log = deps.log.child('ra');
  if (radvd === null) {
    if (mode === 'on') throw new ForgeError('CONFIG_INVALID', 'ipv6_ra is on but radvd is not installed (Debian package radvd)', { field: 'ipv6_ra' });
    log.warn('radvd is not installed: no IPv6 router advertisement on the served links, so iPXE ROMs wait for IPv6 router discovery (about 16 s in Debian 12\'s qemu ROM) before booting; install radvd or set --ipv6-ra off to silence this');
    return undefined;
  }
  const dir = join(deps.config.data_dir, 'radvd');
  const conf = join(dir, 'radvd.conf');
  const pidfile = join(dir, 'radvd.pid');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  killStale(pidfile, conf, log);

  let current = '';
  let child: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;
  let failures = 0;
  let restartAt = 0;
  let closed = false;

  const launch = (ifaces: string[]): void => {
    // radvd refuses a configuration others may write.
    writeFileSync(conf, radvdConfig(ifaces), { mode: 0o644 });
    const args = ['--nodaemon', '--config', conf, '--pidfile', pidfile, '--logmethod', 'stderr'];
    // As root, radvd drops to its own Debian user after opening the raw socket.
    if (process.getuid?.() === 0 && hasUser('radvd')) args.push('--username', 'radvd');
    const started = Date.now();
    const p = spawn(radvd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
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
      log.warn('radvd could not be started', { path: radvd, err: e });
      end(null, null);
    });
    p.on('exit', end);
    log.info('sending IPv6 router advertisements (no prefix, router lifetime 0) in answer to solicitations', { interfaces: ifaces.join(' '), radvd });
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

  const tick = async (): Promise<void> => {
    if (closed || stopping !== undefined) return;
    const ifaces = raInterfaces(deps.links(), isLoopback);
    const want = ifaces.join(' ');
    if (want === current && (child !== undefined || want === '')) return;
    if (child === undefined && want !== '' && Date.now() < restartAt) return;
    if (child !== undefined) {
      await stop();
      if (want === '') log.info('no served link: router advertisements stopped');
    }
    current = want;
    if (want !== '' && !closed) launch(ifaces);
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
    async close() {
      closed = true;
      clearInterval(timer);
      await stop();
      rmSync(pidfile, { force: true });
    },
  };
}

function hasUser(name: string): boolean {
  try {
    return readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.startsWith(`${name}:`));
  } catch {
    return false;
  }
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
