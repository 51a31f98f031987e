/**
 * Managed mode: forge owns the addresses of its subnets (RFC 2131 s4.3: DISCOVER, REQUEST,
 * DECLINE, RELEASE, INFORM). Options come from the subnet the client is on (giaddr's subnet for
 * relayed requests); the server identifier is forge's address facing the client.
 */
import { MessageType, Opt, Options, encodeDomainSearch, ipToBytes, macOf, replyTo, type Packet } from '../../protocol/dhcp4/index.js';
import type { Arrival, DhcpHandler, Inbound } from './handler.js';
import { ZERO } from './handler.js';
import { inSubnet, intToIp, ipToInt, type Pool, type Subnet } from './net.js';
import { addressReply, type Addressing, type Outbound } from './reply.js';
import { DECLINE_HOLD_MS } from './leases.js';
import type { Resolved } from '../../catalog.js';

const LOOKUP_TTL_MS = 1000;

/** Bound on the addresses remembered as another server's (a /16 pool's worth). */
const ELSEWHERE_MAX = 65_536;

/** A subnet's reply option values as bytes, shared by its replies (Options.setShared: never changed). */
interface SubnetBytes {
  leaseTime: Buffer;
  renewal: Buffer;
  rebinding: Buffer;
  mask: Buffer;
  router: Buffer | undefined;
  dns: Buffer | undefined;
  domain: Buffer | undefined;
  search: Buffer | undefined;
  mtu: Buffer | undefined;
}

export class ManagedDhcp {
  private reservedCache = new Set<number>();
  /** Addresses no system reserves (negative lookups), cleared with reservedCache. */
  private freeCache = new Set<number>();
  private reservedAt = 0;
  /**
   * Pool addresses another server's claim holds (a refused claim), with when to ask again:
   * the round robin skips them without asking the database each time. Only allocation reads
   * this; a client asking for such an address by name (REQUEST, option 50) still goes to the
   * database, which may say it is this client's (it moved from the other server).
   */
  private readonly elsewhere = new Map<number, number>();

  /** Whether the store is shared and claims addresses (PostgreSQL), read once: not per address. */
  private readonly sharedClaims: boolean;

  constructor(private readonly h: DhcpHandler) {
    this.sharedClaims = h.ctx.store.claimAddress !== undefined;
  }

  handle(p: Packet, mt: number, msg: Inbound, arrival: Arrival): Promise<Outbound | undefined> | undefined {
    switch (mt) {
      case MessageType.DISCOVER:
        return this.discover(p, arrival);
      case MessageType.REQUEST:
        return this.request(p, arrival);
      case MessageType.DECLINE:
        return this.decline(p);
      case MessageType.RELEASE:
        return this.release(p);
      case MessageType.INFORM:
        return this.inform(p, msg, arrival);
      default:
        return this.h.ignore();
    }
  }

  private get s(): DhcpHandler['settings'] {
    return this.h.settings;
  }

  /** The reserved address of a known interface, when it lies in this client's subnet. */
  private reservation(resolved: Resolved | undefined, subnet: Subnet): number | undefined {
    const ipStr = resolved?.iface?.ip_address ?? '';
    if (ipStr === '') return undefined;
    const ip = ipToInt(ipStr);
    if (ip === undefined || !inSubnet(subnet, ip)) {
      if (ip === undefined || !this.s.subnets.some((n) => inSubnet(n, ip))) {
        this.h.log.warn('reservation outside the configured subnets is not handed out', { system: resolved?.system.name, ip: ipStr });
      }
      return undefined;
    }
    return ip;
  }

  /** By cidr: a refresh (settings.ts) replaces the Subnet objects while a request is in flight. */
  private poolsOf(subnet: Subnet): Pool[] {
    return this.s.pools.filter((pl) => pl.subnet.cidr === subnet.cidr);
  }

  private inPools(subnet: Subnet, ip: number): boolean {
    return this.poolsOf(subnet).some((pl) => ip >= pl.first && ip <= pl.last);
  }

  /**
   * Whether a system other than `mac`'s reserves `ip`: from the last second's answers without a
   * promise, else from the store (the fast path of every pool address checked, issue 21 profile).
   */
  private reservedByOther(ip: number, mac: string): boolean | Promise<boolean> {
    const now = this.h.now();
    if (now - this.reservedAt > LOOKUP_TTL_MS) {
      this.reservedCache = new Set();
      this.freeCache = new Set();
      this.reservedAt = now;
    }
    if (this.reservedCache.has(ip)) return true;
    if (this.freeCache.has(ip)) return false;
    if (this.h.ctx.absent?.ip(intToIp(ip)) === true) return false;
    return this.reservedInStore(ip, mac);
  }

  private async reservedInStore(ip: number, mac: string): Promise<boolean> {
    const owner = await this.h.ctx.store.findSystemByIp(intToIp(ip));
    if (owner === undefined) {
      this.freeCache.add(ip);
      return false;
    }
    if (Object.values(owner.interfaces).some((i) => i.mac_address.toLowerCase() === mac && i.ip_address === intToIp(ip))) return false;
    this.reservedCache.add(ip);
    return true;
  }

  /**
   * A store several servers share (PostgreSQL) decides who holds a dynamic
   * address: the local lease table only knows this server's hand-outs, so
   * every offer and ACK of a pool address is also claimed in the database
   * and a refused claim means another server gave it to another client.
   */
  private claim(ip: number, mac: string, expires: number): boolean | Promise<boolean> {
    // No shared store (SQLite): the local table decides, no promise per address.
    if (!this.sharedClaims || !this.h.claims) return true;
    const st = this.h.ctx.store;
    return st.claimAddress === undefined ? true : st.claimAddress(intToIp(ip), mac, expires, this.h.now());
  }

  /** Not reserved for another system, and claimed (claim): a boolean when both are known without the store. */
  private freeAndClaimed(ip: number, mac: string, expires: number): boolean | Promise<boolean> {
    const r = this.reservedByOther(ip, mac);
    if (r === true) return false;
    if (r !== false) return r.then((reserved) => !reserved && this.claim(ip, mac, expires));
    return this.claim(ip, mac, expires);
  }

  /** RELEASE / DECLINE told to the shared store (not awaited: the client expects no answer). */
  private unclaim(ip: number, mac: string, holdUntil?: number): void {
    const st = this.h.ctx.store;
    if (st.freeAddress === undefined || !this.h.claims) return;
    st.freeAddress(intToIp(ip), mac, holdUntil).catch((e: unknown) => this.h.log.warn('could not free the address in the shared store', { mac, ip: intToIp(ip), err: e }));
  }

  /** The address this client should have in `subnet`, or undefined (no address for it). */
  private async chooseAddress(p: Packet, mac: string, subnet: Subnet, resolved: Resolved | undefined): Promise<number | undefined> {
    const res = this.reservation(resolved, subnet);
    if (res !== undefined) return res;
    const now = this.h.now();
    const hold = now + this.s.offerHoldSeconds * 1000;
    const leases = this.h.leases;
    const cur = leases.byMacAddr(mac);
    // `f === true || (f !== false && await f)`: an await only for a promise (an await of a plain
    // boolean still costs a microtask turn; several per packet showed in the issue 21 profile).
    if (cur !== undefined && cur.state !== 'declined' && this.inPools(subnet, cur.ip) && leases.availableFor(cur.ip, mac, now)) {
      const f = this.freeAndClaimed(cur.ip, mac, hold);
      if (f === true || (f !== false && (await f))) return cur.ip;
    }
    const want = p.options.ip(Opt.RequestedIP);
    const wantN = want === undefined ? undefined : ipToInt(want);
    if (wantN !== undefined && this.inPools(subnet, wantN) && leases.availableFor(wantN, mac, now)) {
      const f = this.freeAndClaimed(wantN, mac, hold);
      if (f === true || (f !== false && (await f))) return wantN;
    }
    const skip = (x: number): boolean => {
      if (this.reservedCache.has(x)) return true;
      const until = this.elsewhere.get(x);
      if (until === undefined) return false;
      if (until > now) return true;
      this.elsewhere.delete(x);
      return false;
    };
    for (const pool of this.poolsOf(subnet)) {
      const size = pool.last - pool.first + 1;
      for (let tries = 0; tries < size; tries++) {
        const ip = leases.allocate(pool, mac, now, skip);
        if (ip === undefined) break;
        const r = this.reservedByOther(ip, mac);
        if (r === true || (r !== false && (await r))) continue;
        const c = this.claim(ip, mac, hold);
        if (c === true || (c !== false && (await c))) return ip;
        // Another server holds it: remember that for one offer hold, and carry on from a random
        // address, away from where that server is handing out (leases.ts scatter).
        if (this.elsewhere.size >= ELSEWHERE_MAX) this.elsewhere.clear();
        this.elsewhere.set(ip, now + this.s.offerHoldSeconds * 1000);
        leases.scatter(pool);
      }
    }
    return undefined;
  }

  /**
   * Options every managed OFFER/ACK carries (RFC 2131 s4.3.1 table 3), from the client's subnet
   * (the directly attached one, or giaddr's for relayed requests): a system's own gateway and
   * name servers win over the subnet's.
   */
  private leaseOptions(r: Packet, subnet: Subnet, arrival: Arrival, withLease: boolean, resolved: Resolved | undefined): void {
    const site = subnet.site;
    const o = r.options;
    const b = this.subnetBytes(subnet);
    o.setIp(Opt.ServerIdentifier, this.h.serverIdFor(arrival));
    if (withLease) {
      o.setShared(Opt.LeaseTime, b.leaseTime);
      o.setShared(Opt.RenewalTime, b.renewal);
      o.setShared(Opt.RebindingTime, b.rebinding);
    }
    o.setShared(Opt.SubnetMask, b.mask);
    const router = resolved?.iface?.if_gateway || resolved?.system.gateway || '';
    if (router === '') {
      if (b.router !== undefined) o.setShared(Opt.Router, b.router);
    } else if (ipToInt(router) !== undefined) o.setIp(Opt.Router, router);
    if (resolved !== undefined && resolved.system.name_servers.length > 0) {
      const dnsOk = resolved.system.name_servers.filter((x) => ipToInt(x) !== undefined);
      if (dnsOk.length > 0) o.setIps(Opt.DomainNameServer, dnsOk);
    } else if (b.dns !== undefined) o.setShared(Opt.DomainNameServer, b.dns);
    if (b.domain !== undefined) o.setShared(Opt.DomainName, b.domain);
    // RFC 3397 search list; among the first options dropped when the reply is too big (reply.ts DROP_ORDER).
    if (b.search !== undefined) o.setShared(Opt.DomainSearch, b.search);
    // RFC 2132 s5.1: the MTU of the client's interface, at least 68.
    if (b.mtu !== undefined) o.setShared(Opt.InterfaceMtu, b.mtu);
    const host = resolved?.system.hostname || resolved?.iface?.dns_name || '';
    if (host !== '') o.setString(Opt.HostName, host.split('.')[0] ?? host);
  }

  /**
   * The option values of a subnet's replies, encoded once per Subnet object (a settings refresh
   * makes new ones, so an edit shows within its second) instead of per reply (issue 21 profile).
   */
  private readonly bytes = new WeakMap<Subnet, SubnetBytes>();

  private subnetBytes(subnet: Subnet): SubnetBytes {
    const hit = this.bytes.get(subnet);
    if (hit !== undefined) return hit;
    const site = subnet.site;
    const one = (set: (o: Options) => void, code: number): Buffer | undefined => {
      const o = new Options();
      set(o);
      return o.get(code);
    };
    const u32 = (v: number): Buffer => {
      const x = Buffer.alloc(4);
      x.writeUInt32BE(v >>> 0);
      return x;
    };
    const dnsOk = site.dns.filter((x) => ipToInt(x) !== undefined);
    let search: Buffer | undefined;
    if (site.dns_search.length > 0) {
      try {
        search = encodeDomainSearch(site.dns_search);
      } catch (e) {
        this.h.log.warn('dns_search not sent', { subnet: site.name, err: e });
      }
    }
    const b: SubnetBytes = {
      leaseTime: u32(site.lease_time),
      renewal: u32(Math.floor(site.lease_time / 2)),
      rebinding: u32(Math.floor((site.lease_time * 7) / 8)),
      mask: ipToBytes(intToIp(subnet.mask)),
      router: site.router !== '' && ipToInt(site.router) !== undefined ? ipToBytes(site.router) : undefined,
      dns: dnsOk.length > 0 ? one((o) => o.setIps(Opt.DomainNameServer, dnsOk), Opt.DomainNameServer) : undefined,
      domain: site.domain !== '' ? Buffer.from(site.domain, 'latin1') : undefined,
      search,
      mtu: site.mtu >= 68 ? one((o) => o.setUint16(Opt.InterfaceMtu, site.mtu), Opt.InterfaceMtu) : undefined,
    };
    this.bytes.set(subnet, b);
    return b;
  }

  private addressing(arrival: Arrival, extra: Partial<Addressing> = {}): Addressing {
    const sub = arrival.subnet;
    const via = sub !== undefined ? this.s.serverIdBySubnet.get(sub.cidr) : undefined;
    return {
      serverPort: this.s.port,
      clientPort: this.s.clientPort,
      broadcasts: sub !== undefined ? [intToIp(sub.broadcast)] : this.s.localBroadcasts,
      ...(via !== undefined ? { via } : {}),
      ...extra,
    };
  }

  private send(req: Packet, r: Packet, arrival: Arrival, extra: Partial<Addressing> = {}): Outbound | undefined {
    return addressReply(req, r, this.addressing(arrival, extra)) ?? this.h.tooBig(req);
  }

  private async discover(p: Packet, arrival: Arrival): Promise<Outbound | undefined> {
    const mac = macOf(p);
    const subnet = arrival.subnet;
    if (subnet === undefined) return this.h.ignore();
    const rb = this.h.resolve(mac, arrival);
    const { resolved, bootSystem } = rb instanceof Promise ? await rb : rb;
    const plan = this.h.plan(p, bootSystem, arrival);
    // Unknown MACs get a dynamic address only when a pool exists; without one they are ignored.
    const ip = await this.chooseAddress(p, mac, subnet, resolved);
    if (ip === undefined) {
      if (this.poolsOf(subnet).length > 0 && (resolved === undefined || this.reservation(resolved, subnet) === undefined)) {
        this.h.stats.exhausted++;
        if (this.h.stats.exhausted <= 20 || this.h.stats.exhausted % 1000 === 0) this.h.log.warn('no free address for client (pool exhausted)', { mac, subnet: subnet.cidr });
      }
      return this.h.ignore();
    }
    const now = this.h.now();
    this.h.leases.offer(mac, ip, now, this.s.offerHoldSeconds * 1000, resolved?.system.name ?? '', resolved?.system.hostname ?? '');
    const r = replyTo(p);
    r.yiaddr = intToIp(ip);
    r.options.setUint8(Opt.MessageType, MessageType.OFFER);
    this.leaseOptions(r, subnet, arrival, true, resolved);
    const boot = this.h.applyPlan(p, r, plan, arrival);
    const out = this.send(p, r, arrival);
    if (out === undefined) return undefined;
    this.h.stats.offers++;
    this.h.record('dhcp_offer', p, resolved, r.yiaddr, boot, plan);
    this.h.log.debug('OFFER', { mac, ip: r.yiaddr, boot: boot ?? '', relay: p.giaddr });
    return out;
  }

  private nak(p: Packet, arrival: Arrival, why: string): Outbound | undefined {
    this.h.stats.naks++;
    const r = replyTo(p);
    r.options.setUint8(Opt.MessageType, MessageType.NAK);
    r.options.setIp(Opt.ServerIdentifier, this.h.serverIdFor(arrival));
    r.options.setString(Opt.Message, why);
    this.h.log.debug('NAK', { mac: macOf(p), why });
    return this.send(p, r, arrival, { nak: true });
  }

  private async request(p: Packet, arrival: Arrival): Promise<Outbound | undefined> {
    const mac = macOf(p);
    const subnet = arrival.subnet;
    const serverId = p.options.ip(Opt.ServerIdentifier);
    const requested = p.options.ip(Opt.RequestedIP);
    if (subnet === undefined) {
      // A relay from a network we do not serve (or no local subnet): not ours to judge, stay
      // silent (RFC 2131 s4.3.2: a server without a record of the client must not NAK).
      return this.h.ignore();
    }
    if (serverId !== undefined && serverId !== this.h.serverIdFor(arrival) && !this.h.ourIds().includes(serverId)) {
      // SELECTING another server's offer (RFC 2131 s4.3.2): free ours, stay silent.
      this.h.leases.forgetOffer(mac);
      return this.h.ignore();
    }
    // The address the client wants: option 50 (SELECTING / INIT-REBOOT) or ciaddr (RENEWING / REBINDING).
    const wantStr = requested ?? (p.ciaddr !== ZERO ? p.ciaddr : undefined);
    const want = wantStr === undefined ? undefined : ipToInt(wantStr);
    if (want === undefined) return this.h.ignore();
    const rb = this.h.resolve(mac, arrival);
    const { resolved, bootSystem } = rb instanceof Promise ? await rb : rb;
    const reserved = this.reservation(resolved, subnet);
    const now = this.h.now();
    const initReboot = serverId === undefined && requested !== undefined && p.ciaddr === ZERO;
    if (initReboot && reserved === undefined && !subnet.site.authoritative) {
      // RFC 2131 s4.3.2 INIT-REBOOT: "If the DHCP server has no record of this client, then it
      // MUST remain silent". A record is a lease forge granted or offered this MAC, or a
      // reservation; never ACK an address forge did not hand out (unless authoritative).
      const rec = this.h.leases.byMacAddr(mac);
      if (rec === undefined || rec.state === 'released' || rec.state === 'declined') {
        this.h.log.debug('INIT-REBOOT from a client without a record: silent (RFC 2131 s4.3.2)', { mac, requested });
        return this.h.ignore();
      }
      if (rec.ip !== want) return this.nak(p, arrival, 'requested address is not the one this client was given');
    }
    if (!inSubnet(subnet, want)) return this.nak(p, arrival, 'address not on this network');
    let ok: boolean;
    if (reserved !== undefined) ok = want === reserved;
    else {
      const f = this.inPools(subnet, want) && this.h.leases.availableFor(want, mac, now) && this.freeAndClaimed(want, mac, now + subnet.site.lease_time * 1000);
      ok = f === true || (f !== false && (await f));
    }
    if (!ok) return this.nak(p, arrival, 'requested address not available');
    const host = resolved?.system.hostname ?? '';
    const r = replyTo(p);
    r.ciaddr = p.ciaddr;
    r.yiaddr = intToIp(want);
    r.options.setUint8(Opt.MessageType, MessageType.ACK);
    this.leaseOptions(r, subnet, arrival, true, resolved);
    const plan = this.h.plan(p, bootSystem, arrival);
    const boot = this.h.applyPlan(p, r, plan, arrival);
    const out = this.send(p, r, arrival);
    if (out === undefined) return undefined;
    try {
      // Committed before the ACK leaves: an acknowledged lease survives a crash (leases.ts).
      await this.h.leases.bind(mac, want, now, subnet.site.lease_time * 1000, resolved?.system.name ?? '', host);
    } catch (e) {
      // Not recorded, so not acknowledged: the client retransmits its REQUEST (RFC 2131 s4.1: retransmission is the client's job).
      this.h.leases.persistFailed(mac, e);
      this.h.stats.unrecorded++;
      return undefined;
    }
    this.h.stats.acks++;
    this.h.record('dhcp_ack', p, resolved, r.yiaddr, boot, plan);
    this.h.log.debug('ACK', { mac, ip: r.yiaddr, boot: boot ?? '', relay: p.giaddr });
    return out;
  }

  private decline(p: Packet): undefined {
    const mac = macOf(p);
    const ip = ipToInt(p.options.ip(Opt.RequestedIP) ?? '');
    const sid = p.options.ip(Opt.ServerIdentifier);
    if (ip === undefined || (sid !== undefined && !this.h.ourIds().includes(sid))) return this.h.ignore();
    if (!this.s.subnets.some((n) => inSubnet(n, ip))) return this.h.ignore();
    // Only the client holding or offered the address may decline it (Kea does the same): any
    // other client could otherwise take addresses out of the pool one DECLINE at a time.
    const holder = this.h.leases.byAddress(ip);
    if (holder === undefined || holder.mac !== mac || (holder.state !== 'offered' && holder.state !== 'bound')) {
      this.h.log.debug('DECLINE from a client that neither holds nor was offered the address: ignored', { mac, ip: intToIp(ip) });
      return this.h.ignore();
    }
    this.h.stats.declines++;
    this.h.log.warn('client declined an address (in use on the network?)', { mac, ip: intToIp(ip) });
    this.h.leases.decline(mac, ip, this.h.now());
    this.unclaim(ip, mac, this.h.now() + DECLINE_HOLD_MS);
    return undefined;
  }

  private release(p: Packet): undefined {
    const ip = ipToInt(p.ciaddr);
    if (ip === undefined || p.ciaddr === ZERO) return this.h.ignore();
    if (this.h.leases.release(macOf(p), ip, this.h.now())) {
      this.h.stats.releases++;
      this.unclaim(ip, macOf(p));
    }
    return undefined;
  }

  private async inform(p: Packet, msg: Inbound, arrival: Arrival): Promise<Outbound | undefined> {
    // RFC 2131 s4.3.5: configuration without an address or lease time, sent to ciaddr.
    const subnet = arrival.subnet;
    if (subnet === undefined) return this.h.ignore();
    const rb = this.h.resolve(macOf(p), arrival);
    const { resolved, bootSystem } = rb instanceof Promise ? await rb : rb;
    const r = replyTo(p);
    r.ciaddr = p.ciaddr;
    r.options.setUint8(Opt.MessageType, MessageType.ACK);
    this.leaseOptions(r, subnet, arrival, false, resolved);
    this.h.applyPlan(p, r, this.h.plan(p, bootSystem, arrival), arrival);
    const out = this.send(p, r, arrival, { toSender: { address: msg.address, port: msg.port } });
    if (out !== undefined) this.h.stats.informs++;
    return out;
  }
}
