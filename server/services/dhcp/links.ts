/**
 * The links managed DHCP serves directly, each with its own rival-server state:
 *
 *   no-carrier  an interface of the host holds an address in the subnet but is not running (a
 *               bridge before its first VM is NO-CARRIER and invisible to os.networkInterfaces());
 *               nobody can be answered there and no rival can be heard: never a reason to stop;
 *   relayed     no interface of the host is in the subnet: its clients reach forge only through a
 *               DHCP relay (giaddr, RFC 2131 section 4.1), named once one was heard. Nothing to
 *               probe: a rival there answers the relay, which forwards to every server it names;
 *   probing     the link came up: forge listens for another server before answering on it;
 *   serving     no other server answered (or dhcp_force);
 *   rival       another server answered: forge stays silent on this link (logged, an event, shown
 *               by `forge status`) and keeps serving every other link and relay. The link is probed
 *               again every dhcp_reprobe_seconds (default 60); once no other server answers, forge
 *               answers there again (logged, a dhcp_rival_gone event).
 *   elsewhere   the stored subnet names other servers (`servers`) than this one (server_name):
 *               they answer it, this server neither answers nor probes there.
 *
 * Links are looked at every LINK_POLL_MS, so a link that comes up is probed within seconds. The
 * set of links follows the subnets (stored subnets added or removed while running).
 */
import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import { ipToInt } from '../../core/ipv4.js';
import { inNetwork, parseCidr, type Network } from '../../core/subnet.js';
import type { Logger } from '../../log.js';
import type { DhcpDeps } from '../dhcp.js';
import { probeLinks, type ProbeAnswer } from './probe.js';
import { dhcpSettings, refreshSettings, type DhcpSettings } from './settings.js';

const LINK_POLL_MS = 2000;

/** One directly served link of managed DHCP. */
export interface DhcpLinkStatus {
  subnet: string;
  interface: string;
  address: string;
  state: 'no-carrier' | 'relayed' | 'probing' | 'serving' | 'rival' | 'elsewhere';
  /** The relay (giaddr) last heard for the subnet, when state is relayed. */
  relay?: string;
  /** The servers that answer the subnet, when state is elsewhere. */
  servers?: string;
  /** ISO time of the last state change. */
  since: string;
  /** The other servers heard, when state is rival (or was, with dhcp_force). */
  rival?: string;
  /** ISO time of the next probe of a rival link (dhcp_reprobe_seconds). */
  next_probe?: string;
}

interface Link extends DhcpLinkStatus {
  rivals: ProbeAnswer[];
  /** Unix ms of the next re-probe while state is rival. */
  reprobeAt: number;
}

/** An IPv4 address configured on an interface of the host, running or not. */
export interface HostAddress {
  ifname: string;
  address: string;
}

/**
 * What a served subnet is when forge has no running address in it: the link without carrier of
 * the interface that holds an address in it, else a subnet reached only through a relay (named
 * when one was heard). Without the host's configured addresses (`configured` undefined), only a
 * relay heard tells them apart.
 */
export function unattached(net: Network, configured: readonly HostAddress[] | undefined, relay: string | undefined): Pick<DhcpLinkStatus, 'state' | 'interface' | 'relay'> {
  const own = configured?.find((a) => inNetwork(net, ipToInt(a.address) ?? -1));
  if (own !== undefined) return { state: 'no-carrier', interface: own.ifname };
  if (configured === undefined && relay === undefined) return { state: 'no-carrier', interface: '' };
  return { state: 'relayed', interface: '', ...(relay !== undefined ? { relay } : {}) };
}

const run = promisify(execFile);

/**
 * Every IPv4 address configured on the host, on running interfaces or not (iproute2's JSON:
 * os.networkInterfaces() lists running interfaces only); undefined when `ip` cannot say.
 */
export async function hostAddresses(): Promise<HostAddress[] | undefined> {
  try {
    const { stdout } = await run('ip', ['-j', '-4', 'addr', 'show'], { timeout: 5000, maxBuffer: 4 << 20 });
    const out: HostAddress[] = [];
    for (const i of JSON.parse(stdout) as { ifname?: unknown; addr_info?: { local?: unknown }[] }[]) {
      for (const a of i.addr_info ?? []) if (typeof i.ifname === 'string' && typeof a.local === 'string') out.push({ ifname: i.ifname, address: a.local });
    }
    return out;
  } catch {
    return undefined;
  }
}

function ifaceOf(address: string): string {
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if ((list ?? []).some((a) => a.address === address)) return name;
  }
  return '';
}

export class LinkWatch {
  private readonly links = new Map<string, Link>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  /**
   * `reload` re-reads the host's interfaces and the stored subnets into `s` (the handler's
   * refresh); without it, the interfaces only.
   */
  constructor(
    private readonly ctx: DhcpDeps,
    private readonly s: DhcpSettings,
    private readonly log: Logger,
    private readonly reload: () => Promise<void> = async () => refreshSettings(s, dhcpSettings(ctx.config, ctx.settings.next_server)),
    private readonly now: () => number = Date.now,
    private readonly configured: () => Promise<HostAddress[] | undefined> = hostAddresses,
  ) {
    this.syncLinks();
  }

  /** One link per served subnet: new subnets start without carrier, removed ones are forgotten. */
  private syncLinks(): void {
    const cidrs = new Set(this.s.subnets.map((n) => n.cidr));
    for (const c of [...this.links.keys()]) {
      if (!cidrs.has(c)) {
        this.links.delete(c);
        this.s.silentSubnets.delete(c);
      }
    }
    for (const c of cidrs) {
      if (!this.links.has(c)) this.links.set(c, { subnet: c, interface: '', address: '', state: 'no-carrier', since: new Date(this.now()).toISOString(), rivals: [], reprobeAt: 0 });
    }
  }

  status(): DhcpLinkStatus[] {
    return [...this.links.values()].map(({ rivals, reprobeAt, ...l }) => ({
      ...l,
      ...(rivals.length > 0 ? { rival: rivals.map((r) => r.serverId ?? r.from).join(' ') } : {}),
      ...(l.state === 'rival' && reprobeAt > 0 ? { next_probe: new Date(reprobeAt).toISOString() } : {}),
    }));
  }

  start(): void {
    this.timer = setInterval(() => {
      void this.check().catch((e: unknown) => this.log.warn('link check failed', { err: e }));
    }, LINK_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /** Looks at every served subnet's link; probes those that came up. Never throws for a down link. */
  check(): Promise<void> {
    this.running ??= this.checkNow().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private set(l: Link, state: Link['state']): void {
    if (l.state !== state) {
      l.state = state;
      l.since = new Date(this.now()).toISOString();
    }
    // Direct requests from a link that is being probed or has a rival are not answered.
    if (state === 'probing' || state === 'rival') this.s.silentSubnets.add(l.subnet);
    else this.s.silentSubnets.delete(l.subnet);
  }

  private async checkNow(): Promise<void> {
    await this.reload();
    this.syncLinks();
    const up: Link[] = [];
    const again: Link[] = [];
    const now = this.now();
    const reprobe = this.ctx.config.dhcp_reprobe_seconds ?? 0;
    let host: Promise<HostAddress[] | undefined> | undefined;
    for (const l of this.links.values()) {
      const address = this.s.serverIdBySubnet.get(l.subnet);
      const subnet = this.s.subnets.find((n) => n.cidr === l.subnet);
      if (subnet !== undefined && !subnet.answered) {
        if (l.state !== 'elsewhere') this.log.info('subnet answered by other servers: not answering or probing there', { subnet: l.subnet, servers: subnet.servers.join(' ') });
        this.set(l, 'elsewhere');
        l.servers = subnet.servers.join(' ');
        l.address = address ?? '';
        l.interface = address === undefined ? '' : ifaceOf(address);
        continue;
      }
      delete l.servers;
      if (address === undefined) {
        // Read once per look, and only when some subnet has no running address.
        host ??= this.configured();
        const net = subnet ?? parseCidr(l.subnet);
        const u = net !== undefined ? unattached(net, await host, this.s.relays.get(l.subnet)) : { state: 'no-carrier' as const, interface: '' };
        if (u.state === 'no-carrier' && l.state !== 'no-carrier') this.log.info('link down: nothing to answer there until it comes up', { subnet: l.subnet, interface: u.interface });
        if (u.state === 'relayed' && l.state !== 'relayed') this.log.info('subnet reached through a relay only: answered when relayed requests arrive', { subnet: l.subnet, relay: u.relay ?? '' });
        this.set(l, u.state);
        l.interface = u.interface;
        l.address = '';
        if (u.relay !== undefined) l.relay = u.relay;
        else delete l.relay;
        continue;
      }
      delete l.relay;
      l.address = address;
      l.interface = ifaceOf(address);
      // A link that comes up, or a subnet that now names this server, is probed before it is answered.
      if (l.state === 'no-carrier' || l.state === 'relayed' || l.state === 'elsewhere') up.push(l);
      else if (l.state === 'rival' && reprobe > 0 && now >= l.reprobeAt) again.push(l);
    }
    if (up.length === 0 && again.length === 0) return;
    const seconds = this.ctx.config.dhcp_probe_seconds;
    if (seconds === 0) {
      for (const l of up) this.set(l, 'serving');
      return;
    }
    // A rival link stays silent while it is probed again (it is still 'rival' until clear).
    for (const l of up) this.set(l, 'probing');
    const probing = [...up, ...again];
    this.log.info(again.length > 0 ? 'probing again for other DHCP servers' : 'probing for other DHCP servers', { links: probing.map((l) => `${l.interface} ${l.address}`).join(', '), seconds });
    const results = await probeLinks({ serverPort: this.s.port, clientPort: this.s.clientPort, seconds, links: probing, ours: this.s.localAddrs, cluster: this.s.cluster });
    probing.forEach((l, i) => {
      const r = results[i];
      const wasRival = l.state === 'rival';
      if (r === undefined || r.state === 'no-carrier') {
        this.set(l, 'no-carrier');
        return;
      }
      if (r.state === 'clear') {
        if (wasRival) {
          const before = l.rivals;
          l.rivals = [];
          this.log.info('probe: the other DHCP server no longer answers; serving this link again', { interface: l.interface, subnet: l.subnet });
          this.ctx.record({ system: '', type: 'dhcp_rival_gone', source: 'dhcp', detail: { interface: l.interface, subnet: l.subnet, servers: before } });
        } else {
          this.log.info('probe: no other DHCP server answered; serving this link', { interface: l.interface, subnet: l.subnet });
        }
        this.set(l, 'serving');
        return;
      }
      const known = wasRival && r.answers.every((a) => l.rivals.some((b) => (b.serverId ?? b.from) === (a.serverId ?? a.from)));
      l.rivals = r.answers;
      l.reprobeAt = this.now() + reprobe * 1000;
      if (known) {
        this.log.debug('probe: the other DHCP server still answers; staying silent on this link', { interface: l.interface, subnet: l.subnet });
        return;
      }
      const who = r.answers.map((a) => `${a.serverId ?? a.from} (offered ${a.yiaddr})`).join(', ');
      if (this.ctx.config.dhcp_force) {
        this.log.warn('another DHCP server answers on this link; answering anyway (dhcp_force)', { interface: l.interface, subnet: l.subnet, servers: who });
        this.set(l, 'serving');
      } else {
        this.log.warn('another DHCP server answers on this link: not answering there (use --dhcp-force to override)', {
          interface: l.interface,
          subnet: l.subnet,
          servers: who,
          reprobe_seconds: reprobe,
        });
        this.set(l, 'rival');
      }
      this.ctx.record({ system: '', type: 'dhcp_rival', source: 'dhcp', detail: { interface: l.interface, subnet: l.subnet, servers: r.answers, answering: this.ctx.config.dhcp_force } });
    });
  }
}
