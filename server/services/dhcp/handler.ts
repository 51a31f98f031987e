/**
 * The DHCP packet handler: bytes in, at most one reply out. No sockets here,
 * so tests and the fuzzer call it directly. It never throws: malformed
 * packets are dropped, counted and logged; any other fault is caught,
 * counted and logged too.
 *
 * This module holds what both modes share: decoding, the arrival (which of
 * forge's addresses faces the client), the store lookup and the boot
 * decision. Managed mode (RFC 2131 s4.3) is managed.ts, proxyDHCP (PXE 2.1
 * s2.2.3) is proxy.ts, and where every reply goes is reply.ts.
 */
import { BOOTREQUEST, Opt, macOf, tryDecode, type Packet } from '../../protocol/dhcp4/index.js';
import { bootPlan, clientArch, unknownPolicy, type BootConfig, type BootPlan, type BootSystem } from '../../core/bootplan.js';
import type { EventDetails } from '../../core/events.js';
import type { ForgeConfig } from '../../config.js';
import type { BaseUrl, RecordEvent } from '../../deps.js';
import type { Store } from '../../store/store.js';
import type { Logger } from '../../log.js';
import { ForgeError } from '../../errors.js';
import { atServerAddress, localAddressFor } from '../origin.js';
import type { LeaseTable } from './leases.js';
import { ManagedDhcp } from './managed.js';
import { inSubnet, ipToInt, type Subnet } from './net.js';
import { ProxyDhcp } from './proxy.js';
import { isPeerProbe } from './probe.js';
import type { Outbound } from './reply.js';
import { serverIdFor, type DhcpSettings } from './settings.js';
import { bootLoadersOf, resolveByMac, type Resolved } from '../../catalog.js';
import { subnetUnknownPolicy } from '../../core/subnet.js';

export type { Outbound } from './reply.js';

export interface Inbound {
  data: Buffer;
  /** Sender address and port. */
  address: string;
  port: number;
  /** Our port it arrived on (dhcp_port or dhcp_proxy_port). */
  localPort: number;
}

export interface DhcpStats {
  received: number;
  malformed: number;
  ignored: number;
  offers: number;
  acks: number;
  naks: number;
  releases: number;
  declines: number;
  informs: number;
  exhausted: number;
  /** Replies that did not fit the client's maximum message size even after dropping options. */
  oversized: number;
  /** Replies sent with optional options dropped to fit (reply.ts DROP_ORDER). */
  trimmed: number;
  /** ACKs not sent because the store could not record the lease (leases.ts: committed before the ACK). */
  unrecorded: number;
  errors: number;
}

/**
 * Where a request came from, as far as the answer is concerned: the subnet the client is on
 * (giaddr's for relayed requests) and forge's address facing it, which becomes the server
 * identifier, siaddr and the host of every boot URL.
 */
export interface Arrival {
  subnet: Subnet | undefined;
  /** Our address on the client's segment, or facing the relay. */
  address: string;
  /** siaddr / TFTP server: next_server when configured, else `address`. */
  nextServer: string;
}

/** What the handler uses (main.ts passes them; tests build them over a real store). */
export interface DhcpHandlerDeps {
  store: Store;
  log: Logger;
  record: RecordEvent;
  /** Read per packet, inside the request's server address (services/origin.ts). */
  baseUrl: BaseUrl;
  config: Pick<ForgeConfig, 'bios_loader' | 'uefi_loader' | 'dhcp_unknown' | 'default_profile' | 'dhcp_probe_seconds' | 'dhcp_force'> & Partial<ForgeConfig>;
  /**
   * The system index's synchronous "no system has this" (store/index.ts SystemIndex.absentMac/absentIp:
   * true only where its miss is the answer). An unknown client's lookups then cost no store call and
   * no promise (issue 21 profile); without it, or when it says false, the store is asked.
   */
  absent?: SystemAbsence;
}

export interface SystemAbsence {
  mac(mac: string): boolean;
  ip(ip: string): boolean;
}

/** What resolve() finds: the system and its interface, and what the boot decision needs of it. */
export interface ResolvedBoot {
  resolved: Resolved | undefined;
  bootSystem: BootSystem | undefined;
}

const LOOKUP_TTL_MS = 1000;
const LOOKUP_CACHE_MAX = 50_000;
export const ZERO = '0.0.0.0';
/** Option 175 with iPXE's sub-option 176 (no-pxedhcp) = 1. */
const IPXE_NO_PROXYDHCP = Buffer.from([176, 1, 1]);

export class DhcpHandler {
  readonly stats: DhcpStats = {
    received: 0,
    malformed: 0,
    ignored: 0,
    offers: 0,
    acks: 0,
    naks: 0,
    releases: 0,
    declines: 0,
    informs: 0,
    exhausted: 0,
    oversized: 0,
    trimmed: 0,
    unrecorded: 0,
    errors: 0,
  };
  readonly log: Logger;
  /**
   * Whether pool addresses are claimed in a shared store (ManagedDhcp.claim). Off only for the
   * start-up warm-up (warmup.ts), whose exchanges must not take addresses from real clients.
   */
  claims = true;
  private readonly managed: ManagedDhcp;
  private readonly proxyMode: ProxyDhcp;

  constructor(
    readonly ctx: DhcpHandlerDeps,
    readonly settings: DhcpSettings,
    readonly leases: LeaseTable,
    readonly now: () => number = Date.now,
  ) {
    this.log = ctx.log.child('dhcp');
    this.managed = new ManagedDhcp(this);
    this.proxyMode = new ProxyDhcp(this);
  }

  /** Handles one datagram. Never throws, never rejects. */
  async handle(msg: Inbound): Promise<Outbound | undefined> {
    this.stats.received++;
    const d = tryDecode(msg.data);
    if (!d.ok) {
      this.stats.malformed++;
      // The codec's DecodeError becomes the catalogue's DHCP_DECODE at this edge.
      const err = new ForgeError('DHCP_DECODE', d.error.message, { cause: d.error });
      if (this.stats.malformed <= 20 || this.stats.malformed % 1000 === 0) {
        this.log.warn('dropped malformed packet', { from: `${msg.address}:${msg.port}`, bytes: msg.data.length, code: err.code, err: err.message, dropped: this.stats.malformed });
      }
      return undefined;
    }
    try {
      const p = d.packet;
      const mt = p.options.messageType();
      if (p.op !== BOOTREQUEST || mt === undefined || p.htype !== 1 || p.hlen !== 6) return this.ignore();
      // The rival probe of a server of this store (links.ts) is not a client; any other is.
      if (isPeerProbe(p, this.settings.cluster)) return this.ignore();
      const stale = this.refresh();
      if (stale !== undefined) await stale;
      const known = this.arrivalCached(p);
      const arrival = known ?? (await this.arrival(p));
      // A subnet that names other servers is theirs to answer, direct or relayed (its `servers`).
      if (arrival.subnet !== undefined && !arrival.subnet.answered) return this.ignore();
      // A link being probed, or with another server on it, is not answered directly (links.ts).
      if (p.giaddr === ZERO && arrival.subnet !== undefined && this.settings.silentSubnets.has(arrival.subnet.cidr)) return this.ignore();
      const out = await (this.settings.mode === 'proxy' ? this.proxyMode.handle(p, mt, msg, arrival) : this.managed.handle(p, mt, msg, arrival));
      if (out?.dropped !== undefined) {
        this.stats.trimmed++;
        if (this.stats.trimmed <= 20) this.log.info('reply trimmed to the client\'s maximum message size', { mac: macOf(p), dropped: out.dropped.join(',') });
      }
      return out;
    } catch (e) {
      this.stats.errors++;
      if (this.stats.errors <= 20 || this.stats.errors % 1000 === 0) {
        this.log.error('packet handling failed', { from: `${msg.address}:${msg.port}`, mac: macOf(d.packet), err: e });
      }
      return undefined;
    }
  }

  /**
   * Stored subnets are re-read at most once per LOOKUP_TTL_MS (zero-sync: an edit through the API
   * or CLI reaches DHCP within a second, no restart). `reload` is set by createDhcpHandler.
   */
  reload: (() => Promise<void>) | undefined;
  private reloadedAt = 0;
  private reloading: Promise<void> | undefined;

  /** undefined when nothing is due (no promise on the per-packet path); else resolves once re-read. */
  refresh(force = false): Promise<void> | undefined {
    if (this.reload === undefined) return undefined;
    const now = this.now();
    if (!force && now - this.reloadedAt < LOOKUP_TTL_MS) return undefined;
    this.reloadedAt = now;
    this.reloading ??= this.reload()
      .catch((e: unknown) => this.log.warn('could not re-read the stored subnets; keeping the last ones', { err: e }))
      .finally(() => {
        this.reloading = undefined;
      });
    return this.reloading;
  }

  ignore(): undefined {
    this.stats.ignored++;
    return undefined;
  }

  /** A reply that could not be made small enough for the client: counted and logged, not sent. */
  tooBig(p: Packet): undefined {
    this.stats.oversized++;
    if (this.stats.oversized <= 20) this.log.warn('reply does not fit the client\'s maximum message size even without optional options; not sent', { mac: macOf(p) });
    return undefined;
  }

  /** All server identifiers forge answers with. */
  ourIds(): string[] {
    return [...this.settings.serverIdBySubnet.values(), this.settings.serverId];
  }

  // ------------------------------------------------------------------ arrival

  /** The subnet the client is on: giaddr's, else ciaddr's, else the directly attached one. */
  subnetOf(p: Packet): Subnet | undefined {
    const s = this.settings;
    if (p.giaddr !== ZERO) {
      const g = ipToInt(p.giaddr) ?? -1;
      return s.subnets.find((n) => inSubnet(n, g));
    }
    if (p.ciaddr !== ZERO) {
      const c = ipToInt(p.ciaddr) ?? -1;
      const n = s.subnets.find((x) => inSubnet(x, c));
      if (n !== undefined) return n;
    }
    return s.localSubnet;
  }

  /**
   * Our address facing each relay, as localAddressFor found it, for LOOKUP_TTL_MS: every relayed
   * datagram asked again (an interface table walk and a promise per packet, issue 21 profile).
   */
  private readonly relayAddress = new Map<string, { at: number; address: string | undefined }>();

  /** The arrival without waiting: direct, or through a relay looked at within LOOKUP_TTL_MS; else undefined. */
  private arrivalCached(p: Packet): Arrival | undefined {
    if (p.giaddr === ZERO) return this.arrivalVia(p, this.subnetOf(p), undefined);
    const hit = this.relayAddress.get(p.giaddr);
    if (hit === undefined || this.now() - hit.at >= LOOKUP_TTL_MS) return undefined;
    return this.arrivalVia(p, this.subnetOf(p), hit.address);
  }

  private async arrival(p: Packet): Promise<Arrival> {
    const subnet = this.subnetOf(p);
    if (p.giaddr !== ZERO) {
      // Relayed: the address the relay reaches us on (it forwarded to one of ours).
      const address = await localAddressFor(p.giaddr);
      if (this.relayAddress.size >= LOOKUP_CACHE_MAX) this.relayAddress.clear();
      this.relayAddress.set(p.giaddr, { at: this.now(), address });
      return this.arrivalVia(p, subnet, address);
    }
    return this.arrivalVia(p, subnet, undefined);
  }

  private arrivalVia(p: Packet, subnet: Subnet | undefined, relayed: string | undefined): Arrival {
    let address = relayed;
    if (p.giaddr !== ZERO) {
      if (subnet !== undefined) this.settings.relays.set(subnet.cidr, p.giaddr);
    } else if (subnet !== undefined) {
      address = this.settings.serverIdBySubnet.get(subnet.cidr);
    }
    address ??= this.settings.serverId;
    // The subnet's next_server (its own, else the serve-wide one), else forge's address facing the client.
    const fixed = subnet !== undefined ? subnet.site.next_server : this.settings.nextServerFixed ? this.settings.nextServer : '';
    const nextServer = fixed !== '' ? fixed : address;
    return { subnet, address, nextServer };
  }

  serverIdFor(arrival: Arrival): string {
    return arrival.subnet !== undefined && this.settings.serverIdBySubnet.has(arrival.subnet.cidr) ? serverIdFor(this.settings, arrival.subnet) : arrival.address;
  }

  // ------------------------------------------------------------------ boot decision

  /**
   * Store lookups are cached for LOOKUP_TTL_MS: a DISCOVER and its REQUEST (and a relay's
   * retransmissions) cost one lookup, and an edit through the API is live within a second.
   */
  private readonly lookups = new Map<string, { at: number; v: Resolved | undefined }>();

  /** The system of `mac`, without a promise when the cache or the index already knows. */
  private lookup(mac: string): Resolved | undefined | Promise<Resolved | undefined> {
    const now = this.now();
    const hit = this.lookups.get(mac);
    if (hit !== undefined && now - hit.at < LOOKUP_TTL_MS) return hit.v;
    if (this.ctx.absent?.mac(mac) === true) return undefined;
    return this.lookupStore(mac, now);
  }

  private async lookupStore(mac: string, now: number): Promise<Resolved | undefined> {
    const v = await resolveByMac(this.ctx.store, mac);
    if (this.lookups.size >= LOOKUP_CACHE_MAX) this.lookups.clear();
    this.lookups.set(mac, { at: now, v });
    return v;
  }

  /** The unknown-machine policy on the client's subnet (its `unknown`, else dhcp_unknown). */
  unknownOn(arrival: Arrival | undefined): ReturnType<typeof subnetUnknownPolicy> {
    return arrival?.subnet !== undefined ? arrival.subnet.site.unknown : subnetUnknownPolicy(undefined, this.ctx.config.dhcp_unknown);
  }

  /** The client's system and boot inputs: a value when known without the store, else a promise. */
  resolve(mac: string, arrival?: Arrival): ResolvedBoot | Promise<ResolvedBoot> {
    const r = this.lookup(mac);
    return r instanceof Promise ? r.then((v) => this.resolved(v, arrival)) : this.resolved(r, arrival);
  }

  private resolved(resolved: Resolved | undefined, arrival: Arrival | undefined): ResolvedBoot | Promise<ResolvedBoot> {
    if (resolved !== undefined) {
      return {
        resolved,
        bootSystem: {
          name: resolved.system.name,
          netboot_enabled: resolved.system.netboot_enabled,
          boot_loaders: resolved.bootLoaders,
          profile: resolved.system.profile,
        },
      };
    }
    // The client's subnet's `unknown` wins over dhcp_unknown (core/bootplan.ts unknownPolicy).
    const profile = unknownPolicy(this.ctx.config, this.unknownOn(arrival)).dhcpProfile;
    if (profile !== undefined) {
      return bootLoadersOf(this.ctx.store, profile).then((boot_loaders) => ({
        resolved: undefined,
        bootSystem: { name: '', netboot_enabled: true, boot_loaders, profile },
      }));
    }
    return { resolved: undefined, bootSystem: undefined };
  }

  plan(p: Packet, bootSystem: BootSystem | undefined, arrival: Arrival): BootPlan {
    const o = p.options;
    const cfg = this.ctx.config;
    const boot: BootConfig = {
      // Boot URLs use the address facing this client (services/origin.ts).
      baseUrl: atServerAddress(arrival.address, () => this.ctx.baseUrl()),
      nextServer: arrival.nextServer,
      bios_loader: cfg.bios_loader,
      uefi_loader: cfg.uefi_loader,
      dhcp_unknown: cfg.dhcp_unknown,
      subnet_unknown: this.unknownOn(arrival),
      default_profile: cfg.default_profile,
    };
    return bootPlan({ mac: macOf(p), arch: o.clientArch(), userClasses: o.userClasses() ?? [], vendorClass: o.vendorClass(), ipxeOption: o.has(Opt.IpxeEncap) }, bootSystem, boot);
  }

  /** Writes the boot decision into a reply (siaddr, file, options 60/66/67). */
  applyPlan(req: Packet, r: Packet, plan: BootPlan, arrival: Arrival): string | undefined {
    if (this.settings.mode === 'managed' && req.options.has(Opt.IpxeEncap)) {
      // iPXE (it alone sends option 175) holds a DHCPOFFER without "PXEClient" for 2 s waiting
      // for ProxyDHCP offers (dhcp.c DHCP_DISC_PROXY_TIMEOUT_SEC) unless the offer carries its
      // no-ProxyDHCP flag, 175.176 = 1. Managed forge answers everything itself, so no proxy
      // will come: the flag saves those 2 s of every iPXE boot. Not in proxy mode, where
      // forge is the ProxyDHCP server and the address comes from another server's offer.
      r.options.set(Opt.IpxeEncap, IPXE_NO_PROXYDHCP);
    }
    const setFile = (file: string): void => {
      if (file.length <= 127) r.file = file;
      if (file.length > 127 || req.options.requests(Opt.BootfileName)) r.options.setString(Opt.BootfileName, file);
    };
    switch (plan.kind) {
      case 'tftp':
        r.siaddr = plan.nextServer;
        if (req.options.requests(Opt.TftpServerName)) r.options.setString(Opt.TftpServerName, plan.nextServer);
        setFile(plan.file);
        return plan.file;
      case 'ipxe':
        r.siaddr = arrival.nextServer;
        setFile(plan.url);
        return plan.url;
      case 'http':
        // UEFI HTTP boot only takes an offer that echoes the vendor class (UEFI 2.5+ s24.7.2).
        r.options.setString(Opt.VendorClass, plan.vendorClass);
        setFile(plan.url);
        return plan.url;
      default:
        return undefined;
    }
  }

  record(type: 'dhcp_offer' | 'dhcp_ack', p: Packet, resolved: Resolved | undefined, ip: string, boot: string | undefined, plan: BootPlan): void {
    if (resolved === undefined) return;
    const detail: EventDetails['dhcp_offer'] = { mac: macOf(p), ip, mode: this.settings.mode, plan: plan.kind };
    const arch = clientArch({ arch: p.options.clientArch(), vendorClass: p.options.vendorClass() });
    if (arch !== undefined) detail.arch = arch;
    if (boot !== undefined) detail.boot_file = boot;
    if (p.giaddr !== ZERO) detail.relay = p.giaddr;
    this.ctx.record({ system: resolved.system.name, type, source: 'dhcp', detail });
  }
}
