/**
 * The DHCP packet handler: bytes in, at most one reply out. No sockets here,
 * so tests and the fuzzer call it directly. It never throws: malformed
 * packets are dropped, counted and logged; any other fault is caught,
 * counted and logged too.
 *
 * Managed mode follows RFC 2131 s4.3 (DISCOVER/REQUEST/DECLINE/RELEASE/INFORM);
 * proxy mode follows the PXE 2.1 spec's proxyDHCP (s2.2.3): offers to PXE
 * clients with no address, answers on the boot-server port 4011.
 */
import {
  BOOTREQUEST,
  DEFAULT_MAX_LEN,
  FLAG_BROADCAST,
  MessageType,
  Opt,
  encode,
  macOf,
  replyTo,
  tryDecode,
  type Packet,
} from '../../protocol/dhcp4/index.js';
import { bootPlan, clientArch, isPxeVendorClass, unknownPolicy, type BootConfig, type BootPlan, type BootSystem } from '../../core/bootplan.js';
import type { ForgeConfig } from '../../config.js';
import type { BaseUrl, RecordEvent } from '../../deps.js';
import type { Store } from '../../store/store.js';
import type { Logger } from '../../log.js';
import { ForgeError } from '../../errors.js';
import { LeaseTable } from './leases.js';
import { inSubnet, intToIp, ipToInt, type Pool, type Subnet } from './net.js';
import { serverIdFor, type DhcpSettings } from './settings.js';
import { bootLoadersOf, resolveByMac, type Resolved } from '../../catalog.js';

export interface Inbound {
  data: Buffer;
  /** Sender address and port. */
  address: string;
  port: number;
  /** Our port it arrived on (dhcp_port or dhcp_proxy_port). */
  localPort: number;
}

export interface Outbound {
  data: Buffer;
  address: string;
  port: number;
  /**
   * Where to send instead when `address` is 255.255.255.255 and the host has no route for
   * it (ENETUNREACH, e.g. a namespace without a default route): directed broadcasts.
   */
  fallback?: string[];
  /**
   * For 255.255.255.255: our address on the client's segment. A socket bound to it sends the
   * limited broadcast out of that interface (Linux picks the device owning the bound source
   * address), with no route needed; UEFI PXE (EDK II) accepts only limited broadcasts.
   */
  via?: string;
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
  errors: number;
}

const BROADCAST = '255.255.255.255';
const LOOKUP_TTL_MS = 1000;
const LOOKUP_CACHE_MAX = 50_000;
const ZERO = '0.0.0.0';

/** What the handler uses (main.ts passes them; tests build them over a real store). */
export interface DhcpHandlerDeps {
  store: Store;
  log: Logger;
  record: RecordEvent;
  baseUrl: BaseUrl;
  config: Pick<ForgeConfig, 'bios_loader' | 'uefi_loader' | 'dhcp_unknown' | 'default_profile'>;
}

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
    errors: 0,
  };
  private readonly log: Logger;
  private reservedCache = new Set<number>();
  /** Addresses no system reserves (negative lookups), cleared with reservedCache. */
  private freeCache = new Set<number>();
  private reservedAt = 0;

  constructor(
    private readonly ctx: DhcpHandlerDeps,
    readonly settings: DhcpSettings,
    readonly leases: LeaseTable,
    private readonly now: () => number = Date.now,
  ) {
    this.log = ctx.log.child('dhcp');
  }

  /** Read per packet: the base URL is a provider, not a value copied at construction. */
  private get boot(): BootConfig {
    const c = this.ctx.config;
    return {
      baseUrl: this.ctx.baseUrl(),
      nextServer: this.settings.nextServer,
      bios_loader: c.bios_loader,
      uefi_loader: c.uefi_loader,
      dhcp_unknown: c.dhcp_unknown,
      default_profile: c.default_profile,
    };
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
      return await this.dispatch(d.packet, msg);
    } catch (e) {
      this.stats.errors++;
      if (this.stats.errors <= 20 || this.stats.errors % 1000 === 0) {
        this.log.error('packet handling failed', { from: `${msg.address}:${msg.port}`, mac: macOf(d.packet), err: e });
      }
      return undefined;
    }
  }

  private async dispatch(p: Packet, msg: Inbound): Promise<Outbound | undefined> {
    const mt = p.options.messageType();
    if (p.op !== BOOTREQUEST || mt === undefined || p.htype !== 1 || p.hlen !== 6) return this.ignore();
    if (this.settings.mode === 'proxy') return this.proxy(p, mt, msg);
    switch (mt) {
      case MessageType.DISCOVER:
        return this.discover(p);
      case MessageType.REQUEST:
        return this.request(p);
      case MessageType.DECLINE:
        return this.decline(p);
      case MessageType.RELEASE:
        return this.release(p);
      case MessageType.INFORM:
        return this.inform(p, msg);
      default:
        return this.ignore();
    }
  }

  private ourIds(): string[] {
    return [...this.settings.serverIdBySubnet.values(), this.settings.serverId];
  }

  private ignore(): undefined {
    this.stats.ignored++;
    return undefined;
  }

  // ------------------------------------------------------------------ boot decision

  /**
   * Store lookups are cached for LOOKUP_TTL_MS: a DISCOVER and its REQUEST (and a relay's
   * retransmissions) cost one lookup, and an edit through the API is live within a second.
   */
  private readonly lookups = new Map<string, { at: number; v: Resolved | undefined }>();

  private async lookup(mac: string): Promise<Resolved | undefined> {
    const now = this.now();
    const hit = this.lookups.get(mac);
    if (hit !== undefined && now - hit.at < LOOKUP_TTL_MS) return hit.v;
    const v = await resolveByMac(this.ctx.store, mac);
    if (this.lookups.size >= LOOKUP_CACHE_MAX) this.lookups.clear();
    this.lookups.set(mac, { at: now, v });
    return v;
  }

  private async resolve(mac: string): Promise<{ resolved: Resolved | undefined; bootSystem: BootSystem | undefined }> {
    const resolved = await this.lookup(mac);
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
    const profile = unknownPolicy(this.ctx.config).dhcpProfile;
    if (profile !== undefined) {
      return {
        resolved: undefined,
        bootSystem: { name: '', netboot_enabled: true, boot_loaders: await bootLoadersOf(this.ctx.store, profile), profile },
      };
    }
    return { resolved: undefined, bootSystem: undefined };
  }

  private plan(p: Packet, bootSystem: BootSystem | undefined): BootPlan {
    const o = p.options;
    return bootPlan(
      { mac: macOf(p), arch: o.clientArch(), userClasses: o.userClasses() ?? [], vendorClass: o.vendorClass(), ipxeOption: o.has(Opt.IpxeEncap) },
      bootSystem,
      this.boot,
    );
  }

  /** Writes the boot decision into a reply (siaddr, file, options 60/66/67). */
  private applyPlan(req: Packet, r: Packet, plan: BootPlan): string | undefined {
    const prl = req.options.parameterRequestList();
    const setFile = (file: string): void => {
      if (file.length <= 127) r.file = file;
      if (file.length > 127 || prl.includes(Opt.BootfileName)) r.options.setString(Opt.BootfileName, file);
    };
    switch (plan.kind) {
      case 'tftp':
        r.siaddr = plan.nextServer;
        if (prl.includes(Opt.TftpServerName)) r.options.setString(Opt.TftpServerName, plan.nextServer);
        setFile(plan.file);
        return plan.file;
      case 'ipxe':
        r.siaddr = this.settings.nextServer;
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

  // ------------------------------------------------------------------ managed mode

  private subnetOf(p: Packet): Subnet | undefined {
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

  /** The reserved address of a known interface, when it lies in this client's subnet. */
  private reservation(resolved: Resolved | undefined, subnet: Subnet): number | undefined {
    const ipStr = resolved?.iface?.ip_address ?? '';
    if (ipStr === '') return undefined;
    const ip = ipToInt(ipStr);
    if (ip === undefined || !inSubnet(subnet, ip)) {
      if (ip === undefined || !this.settings.subnets.some((n) => inSubnet(n, ip))) {
        this.log.warn('reservation outside the configured subnets is not handed out', { system: resolved?.system.name, ip: ipStr });
      }
      return undefined;
    }
    return ip;
  }

  private poolsOf(subnet: Subnet): Pool[] {
    return this.settings.pools.filter((pl) => pl.subnet === subnet);
  }

  private inPools(subnet: Subnet, ip: number): boolean {
    return this.poolsOf(subnet).some((pl) => ip >= pl.first && ip <= pl.last);
  }

  private async reservedByOther(ip: number, mac: string): Promise<boolean> {
    const now = this.now();
    if (now - this.reservedAt > LOOKUP_TTL_MS) {
      this.reservedCache = new Set();
      this.freeCache = new Set();
      this.reservedAt = now;
    }
    if (this.reservedCache.has(ip)) return true;
    if (this.freeCache.has(ip)) return false;
    const owner = await this.ctx.store.findSystemByIp(intToIp(ip));
    if (owner === undefined) {
      this.freeCache.add(ip);
      return false;
    }
    if (Object.values(owner.interfaces).some((i) => i.mac_address.toLowerCase() === mac && i.ip_address === intToIp(ip))) return false;
    this.reservedCache.add(ip);
    return true;
  }

  /** The address this client should have in `subnet`, or undefined (no address for it). */
  private async chooseAddress(p: Packet, mac: string, subnet: Subnet, resolved: Resolved | undefined): Promise<number | undefined> {
    const res = this.reservation(resolved, subnet);
    if (res !== undefined) return res;
    const now = this.now();
    const cur = this.leases.byMacAddr(mac);
    if (cur !== undefined && cur.state !== 'declined' && this.inPools(subnet, cur.ip) && this.leases.availableFor(cur.ip, mac, now) && !(await this.reservedByOther(cur.ip, mac))) {
      return cur.ip;
    }
    const want = p.options.ip(Opt.RequestedIP);
    const wantN = want === undefined ? undefined : ipToInt(want);
    if (wantN !== undefined && this.inPools(subnet, wantN) && this.leases.availableFor(wantN, mac, now) && !(await this.reservedByOther(wantN, mac))) {
      return wantN;
    }
    for (const pool of this.poolsOf(subnet)) {
      const size = pool.last - pool.first + 1;
      for (let tries = 0; tries < size; tries++) {
        const ip = this.leases.allocate(pool, mac, now, (x) => this.reservedCache.has(x));
        if (ip === undefined) break;
        if (!(await this.reservedByOther(ip, mac))) return ip;
      }
    }
    return undefined;
  }

  /** Options every managed OFFER/ACK carries (RFC 2131 s4.3.1 table 3). */
  private leaseOptions(r: Packet, subnet: Subnet, withLease: boolean, resolved: Resolved | undefined): void {
    const s = this.settings;
    const o = r.options;
    o.setIp(Opt.ServerIdentifier, serverIdFor(s, subnet));
    if (withLease) {
      o.setUint32(Opt.LeaseTime, s.leaseSeconds);
      o.setUint32(Opt.RenewalTime, Math.floor(s.leaseSeconds / 2));
      o.setUint32(Opt.RebindingTime, Math.floor((s.leaseSeconds * 7) / 8));
    }
    o.setIp(Opt.SubnetMask, intToIp(subnet.mask));
    const router = resolved?.iface?.if_gateway || resolved?.system.gateway || s.router;
    if (router !== '' && ipToInt(router) !== undefined) o.setIp(Opt.Router, router);
    const dns = resolved !== undefined && resolved.system.name_servers.length > 0 ? resolved.system.name_servers : s.dns;
    const dnsOk = dns.filter((x) => ipToInt(x) !== undefined);
    if (dnsOk.length > 0) o.setIps(Opt.DomainNameServer, dnsOk);
    if (s.domain !== '') o.setString(Opt.DomainName, s.domain);
    const host = resolved?.system.hostname || resolved?.iface?.dns_name || '';
    if (host !== '') o.setString(Opt.HostName, host.split('.')[0] ?? host);
  }

  private echoRelay(req: Packet, r: Packet): void {
    // RFC 3046 s2.2: the server copies option 82 into its reply unchanged.
    const ri = req.options.relayAgentInfo();
    if (ri !== undefined) r.options.set(Opt.RelayAgentInfo, ri);
  }

  private send(req: Packet, r: Packet, nak = false): Outbound {
    // Option 82 goes last, as relays expect to find and strip it (RFC 3046 s2.2).
    this.echoRelay(req, r);
    // RFC 2131 s4.1: a NAK through a relay sets the broadcast bit so the relay broadcasts it.
    if (nak && req.giaddr !== ZERO) r.flags |= FLAG_BROADCAST;
    const max = Math.max(DEFAULT_MAX_LEN, (req.options.maxMessageSize() ?? 576) - 28);
    const data = encode(r, { maxLength: max });
    // RFC 2131 s4.1: relay -> giaddr:67; NAK -> broadcast; ciaddr -> unicast; else broadcast
    // (Node cannot unicast to an unconfigured client: it would need an ARP entry for yiaddr).
    if (req.giaddr !== ZERO) return { data, address: req.giaddr, port: this.settings.port };
    if (!nak && req.ciaddr !== ZERO) return { data, address: req.ciaddr, port: this.settings.clientPort };
    const subnet = this.subnetOf(req);
    const out: Outbound = { data, address: BROADCAST, port: this.settings.clientPort, fallback: subnet !== undefined ? [intToIp(subnet.broadcast)] : this.settings.localBroadcasts };
    const via = subnet !== undefined ? this.settings.serverIdBySubnet.get(subnet.cidr) : undefined;
    if (via !== undefined) out.via = via;
    return out;
  }

  private record(type: 'dhcp_offer' | 'dhcp_ack', p: Packet, resolved: Resolved | undefined, ip: string, boot: string | undefined, plan: BootPlan): void {
    if (resolved === undefined) return;
    const detail: Record<string, unknown> = { mac: macOf(p), ip, mode: this.settings.mode, plan: plan.kind };
    const arch = clientArch({ arch: p.options.clientArch(), vendorClass: p.options.vendorClass() });
    if (arch !== undefined) detail['arch'] = arch;
    if (boot !== undefined) detail['boot_file'] = boot;
    if (p.giaddr !== ZERO) detail['relay'] = p.giaddr;
    this.ctx.record({ system: resolved.system.name, type, source: 'dhcp', detail });
  }

  private async discover(p: Packet): Promise<Outbound | undefined> {
    const mac = macOf(p);
    const subnet = this.subnetOf(p);
    if (subnet === undefined) return this.ignore();
    const { resolved, bootSystem } = await this.resolve(mac);
    const plan = this.plan(p, bootSystem);
    // Unknown MACs get a dynamic address only when a pool exists; without one they are ignored.
    const ip = await this.chooseAddress(p, mac, subnet, resolved);
    if (ip === undefined) {
      if (this.poolsOf(subnet).length > 0 && (resolved === undefined || this.reservation(resolved, subnet) === undefined)) {
        this.stats.exhausted++;
        if (this.stats.exhausted <= 20 || this.stats.exhausted % 1000 === 0) this.log.warn('no free address for client (pool exhausted)', { mac, subnet: subnet.cidr });
      }
      return this.ignore();
    }
    const now = this.now();
    this.leases.offer(mac, ip, now, this.settings.offerHoldSeconds * 1000, resolved?.system.name ?? '', resolved?.system.hostname ?? '');
    const r = replyTo(p);
    r.yiaddr = intToIp(ip);
    r.options.setUint8(Opt.MessageType, MessageType.OFFER);
    this.leaseOptions(r, subnet, true, resolved);
    const boot = this.applyPlan(p, r, plan);
    this.stats.offers++;
    this.record('dhcp_offer', p, resolved, r.yiaddr, boot, plan);
    this.log.debug('OFFER', { mac, ip: r.yiaddr, boot: boot ?? '', relay: p.giaddr });
    return this.send(p, r);
  }

  private nak(p: Packet, subnet: Subnet | undefined, why: string): Outbound {
    this.stats.naks++;
    const r = replyTo(p);
    r.options.setUint8(Opt.MessageType, MessageType.NAK);
    r.options.setIp(Opt.ServerIdentifier, serverIdFor(this.settings, subnet));
    r.options.setString(Opt.Message, why);
    this.log.debug('NAK', { mac: macOf(p), why });
    return this.send(p, r, true);
  }

  private async request(p: Packet): Promise<Outbound | undefined> {
    const mac = macOf(p);
    const subnet = this.subnetOf(p);
    const serverId = p.options.ip(Opt.ServerIdentifier);
    const requested = p.options.ip(Opt.RequestedIP);
    if (subnet === undefined) {
      // A relay from a network we do not serve (or no local subnet): not ours to judge, stay
      // silent (RFC 2131 s4.3.2: a server without a record of the client must not NAK).
      return this.ignore();
    }
    const mySid = serverIdFor(this.settings, subnet);
    if (serverId !== undefined && serverId !== mySid && !this.ourIds().includes(serverId)) {
      // SELECTING another server's offer (RFC 2131 s4.3.2): free ours, stay silent.
      this.leases.forgetOffer(mac);
      return this.ignore();
    }
    // The address the client wants: option 50 (SELECTING / INIT-REBOOT) or ciaddr (RENEWING / REBINDING).
    const wantStr = requested ?? (p.ciaddr !== ZERO ? p.ciaddr : undefined);
    const want = wantStr === undefined ? undefined : ipToInt(wantStr);
    if (want === undefined) return this.ignore();
    if (!inSubnet(subnet, want)) return this.nak(p, subnet, 'address not on this network');
    const { resolved, bootSystem } = await this.resolve(mac);
    const reserved = this.reservation(resolved, subnet);
    const now = this.now();
    let ok: boolean;
    if (reserved !== undefined) ok = want === reserved;
    else ok = this.inPools(subnet, want) && this.leases.availableFor(want, mac, now) && !(await this.reservedByOther(want, mac));
    if (!ok) return this.nak(p, subnet, 'requested address not available');
    const host = resolved?.system.hostname ?? '';
    this.leases.bind(mac, want, now, this.settings.leaseSeconds * 1000, resolved?.system.name ?? '', host);
    const r = replyTo(p);
    r.ciaddr = p.ciaddr;
    r.yiaddr = intToIp(want);
    r.options.setUint8(Opt.MessageType, MessageType.ACK);
    this.leaseOptions(r, subnet, true, resolved);
    const plan = this.plan(p, bootSystem);
    const boot = this.applyPlan(p, r, plan);
    this.stats.acks++;
    this.record('dhcp_ack', p, resolved, r.yiaddr, boot, plan);
    this.log.debug('ACK', { mac, ip: r.yiaddr, boot: boot ?? '', relay: p.giaddr });
    return this.send(p, r);
  }

  private decline(p: Packet): undefined {
    const ip = ipToInt(p.options.ip(Opt.RequestedIP) ?? '');
    const sid = p.options.ip(Opt.ServerIdentifier);
    if (ip === undefined || (sid !== undefined && !this.ourIds().includes(sid))) return this.ignore();
    if (!this.settings.subnets.some((n) => inSubnet(n, ip))) return this.ignore();
    this.stats.declines++;
    this.log.warn('client declined an address (in use on the network?)', { mac: macOf(p), ip: intToIp(ip) });
    this.leases.decline(macOf(p), ip, this.now());
    return undefined;
  }

  private release(p: Packet): undefined {
    const ip = ipToInt(p.ciaddr);
    if (ip === undefined || p.ciaddr === ZERO) return this.ignore();
    if (this.leases.release(macOf(p), ip, this.now())) this.stats.releases++;
    return undefined;
  }

  private async inform(p: Packet, msg: Inbound): Promise<Outbound | undefined> {
    // RFC 2131 s4.3.5: configuration without an address or lease time, sent to ciaddr.
    const subnet = this.subnetOf(p);
    if (subnet === undefined) return this.ignore();
    const { resolved, bootSystem } = await this.resolve(macOf(p));
    const r = replyTo(p);
    r.ciaddr = p.ciaddr;
    r.options.setUint8(Opt.MessageType, MessageType.ACK);
    this.leaseOptions(r, subnet, false, resolved);
    this.applyPlan(p, r, this.plan(p, bootSystem));
    this.stats.informs++;
    this.echoRelay(p, r);
    const data = encode(r);
    if (p.giaddr !== ZERO) return { data, address: p.giaddr, port: this.settings.port };
    const to = p.ciaddr !== ZERO ? p.ciaddr : msg.address;
    return { data, address: to, port: msg.port };
  }

  // ------------------------------------------------------------------ proxy mode

  private async proxy(p: Packet, mt: number, msg: Inbound): Promise<Outbound | undefined> {
    // proxyDHCP answers PXE clients only (option 60 PXEClient/HTTPClient) and never assigns addresses.
    if (!isPxeVendorClass(p.options.vendorClass())) return this.ignore();
    const onBootPort = msg.localPort === this.settings.proxyPort && this.settings.proxyPort !== this.settings.port;
    if (!onBootPort && mt !== MessageType.DISCOVER) return this.ignore();
    if (onBootPort && mt !== MessageType.REQUEST && mt !== MessageType.INFORM && mt !== MessageType.DISCOVER) return this.ignore();
    const mac = macOf(p);
    const { resolved, bootSystem } = await this.resolve(mac);
    const plan = this.plan(p, bootSystem);
    if (plan.kind === 'ignore' || plan.kind === 'local') return this.ignore();
    const r = replyTo(p);
    r.options.setUint8(Opt.MessageType, onBootPort ? MessageType.ACK : MessageType.OFFER);
    r.options.setIp(Opt.ServerIdentifier, this.settings.serverId);
    if (onBootPort) r.ciaddr = p.ciaddr;
    r.options.setString(Opt.VendorClass, plan.kind === 'http' ? 'HTTPClient' : 'PXEClient');
    // PXE 2.1 s2.2.3 option 43 sub-option 6 (discovery control) = 8: skip boot server
    // discovery and boot the file in this packet (as pixiecore does).
    if (plan.kind !== 'http') r.options.set(Opt.VendorSpecific, Buffer.of(6, 1, 8, 255));
    const uuid = p.options.get(Opt.ClientUuid);
    if (uuid !== undefined) r.options.set(Opt.ClientUuid, uuid);
    r.sname = this.settings.nextServer;
    const boot = this.applyPlan(p, r, plan);
    if (plan.kind === 'ipxe' || plan.kind === 'http') r.siaddr = this.settings.nextServer;
    if (onBootPort) this.stats.acks++;
    else this.stats.offers++;
    this.record(onBootPort ? 'dhcp_ack' : 'dhcp_offer', p, resolved, '', boot, plan);
    this.echoRelay(p, r);
    const data = encode(r);
    if (onBootPort) return { data, address: p.ciaddr !== ZERO ? p.ciaddr : msg.address, port: msg.port };
    if (p.giaddr !== ZERO) return { data, address: p.giaddr, port: this.settings.port };
    return { data, address: BROADCAST, port: this.settings.clientPort, fallback: this.settings.localBroadcasts };
  }
}
