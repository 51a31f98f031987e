/**
 * The links managed DHCP serves directly, each with its own rival-server state:
 *
 *   no-carrier  forge has no running interface in the subnet (a bridge before its first VM is
 *               NO-CARRIER and invisible to os.networkInterfaces()); nobody can be answered there
 *               and no rival can be heard: never a reason to stop the server;
 *   probing     the link came up: forge listens for another server before answering on it;
 *   serving     no other server answered (or dhcp_force);
 *   rival       another server answered: forge stays silent on this link (logged, an event, shown
 *               by `forge status`) and keeps serving every other link and relay.
 *
 * Links are looked at every LINK_POLL_MS, so a link that comes up is probed within seconds.
 */
import { networkInterfaces } from 'node:os';
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
  state: 'no-carrier' | 'probing' | 'serving' | 'rival';
  /** ISO time of the last state change. */
  since: string;
  /** The other servers heard, when state is rival (or was, with dhcp_force). */
  rival?: string;
}

interface Link extends DhcpLinkStatus {
  rivals: ProbeAnswer[];
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

  constructor(
    private readonly ctx: DhcpDeps,
    private readonly s: DhcpSettings,
    private readonly log: Logger,
  ) {
    for (const n of s.subnets) this.links.set(n.cidr, { subnet: n.cidr, interface: '', address: '', state: 'no-carrier', since: new Date().toISOString(), rivals: [] });
  }

  status(): DhcpLinkStatus[] {
    return [...this.links.values()].map(({ rivals, ...l }) => (rivals.length > 0 ? { ...l, rival: rivals.map((r) => r.serverId ?? r.from).join(' ') } : l));
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
      l.since = new Date().toISOString();
    }
    // Direct requests from a link that is being probed or has a rival are not answered.
    if (state === 'probing' || state === 'rival') this.s.silentSubnets.add(l.subnet);
    else this.s.silentSubnets.delete(l.subnet);
  }

  private async checkNow(): Promise<void> {
    refreshSettings(this.s, dhcpSettings(this.ctx.config, this.ctx.settings.next_server));
    const up: Link[] = [];
    for (const l of this.links.values()) {
      const address = this.s.serverIdBySubnet.get(l.subnet);
      if (address === undefined) {
        if (l.state !== 'no-carrier') this.log.info('link down: nothing to answer there until it comes up', { subnet: l.subnet, interface: l.interface });
        this.set(l, 'no-carrier');
        continue;
      }
      l.address = address;
      l.interface = ifaceOf(address);
      if (l.state === 'no-carrier') up.push(l);
    }
    if (up.length === 0) return;
    const seconds = this.ctx.config.dhcp_probe_seconds;
    if (seconds === 0) {
      for (const l of up) this.set(l, 'serving');
      return;
    }
    for (const l of up) this.set(l, 'probing');
    this.log.info('probing for other DHCP servers', { links: up.map((l) => `${l.interface} ${l.address}`).join(', '), seconds });
    const results = await probeLinks({ serverPort: this.s.port, clientPort: this.s.clientPort, seconds, links: up, ours: this.s.localAddrs });
    up.forEach((l, i) => {
      const r = results[i];
      if (r === undefined || r.state === 'no-carrier') {
        this.set(l, 'no-carrier');
        return;
      }
      if (r.state === 'clear') {
        this.log.info('probe: no other DHCP server answered; serving this link', { interface: l.interface, subnet: l.subnet });
        this.set(l, 'serving');
        return;
      }
      l.rivals = r.answers;
      const who = r.answers.map((a) => `${a.serverId ?? a.from} (offered ${a.yiaddr})`).join(', ');
      if (this.ctx.config.dhcp_force) {
        this.log.warn('another DHCP server answers on this link; answering anyway (dhcp_force)', { interface: l.interface, subnet: l.subnet, servers: who });
        this.set(l, 'serving');
      } else {
        this.log.warn('another DHCP server answers on this link: not answering there (use --dhcp-force to override)', { interface: l.interface, subnet: l.subnet, servers: who });
        this.set(l, 'rival');
      }
      this.ctx.record({ system: '', type: 'dhcp_rival', source: 'dhcp', detail: { interface: l.interface, subnet: l.subnet, servers: r.answers, answering: this.ctx.config.dhcp_force } });
    });
  }
}
