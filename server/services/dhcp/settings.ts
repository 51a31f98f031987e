/**
 * The DHCP service's view of the configuration: subnets, pools inside them,
 * the addresses forge answers with. The serve flags (dhcp_subnet, dhcp_range,
 * dhcp_router, ...) are validated once at start: a pool or option outside the
 * configured subnets is CONFIG_INVALID, so forge can never hand out an address
 * it was not given. Stored subnets (forge subnet add; validated when written)
 * are merged in on every refresh: a stored subnet replaces a flag subnet it
 * overlaps, and its empty fields take the flag values (core/subnet.ts).
 */
import { networkInterfaces } from 'node:os';
import type { ForgeConfig } from '../../config.js';
import { ForgeError } from '../../errors.js';
import type { Subnet as StoredSubnet } from '../../core/model.js';
import { answersSubnet, effectiveSubnet, overlaps, parseRange, type SubnetFallback } from '../../core/subnet.js';
import { defaultSubnet } from '../../core/defaults.js';
import { inSubnet, intToIp, ipToInt, parseCidr, type Pool, type Subnet } from './net.js';

export interface DhcpSettings {
  mode: 'proxy' | 'managed';
  /** Stored subnets first, then the flag subnets no stored one overlaps. */
  subnets: Subnet[];
  pools: Pool[];
  /** Our address per subnet (server identifier, option 54), by subnet cidr. */
  serverIdBySubnet: Map<string, string>;
  /** Fallback server identifier (proxy mode, or a subnet forge has no address in). */
  serverId: string;
  /** siaddr / TFTP server when next_server is configured (nextServerFixed), else the fallback. */
  nextServer: string;
  /** next_server is configured: every client gets it; otherwise forge's address facing each client. */
  nextServerFixed: boolean;
  /** The subnet a broadcast without giaddr came from: the one holding one of our addresses. */
  localSubnet: Subnet | undefined;
  port: number;
  proxyPort: number;
  clientPort: number;
  /** Our non-loopback IPv4 addresses. */
  localAddrs: string[];
  /** Directed broadcast addresses of our interfaces (fallback when 255.255.255.255 has no route). */
  localBroadcasts: string[];
  /** Subnets whose directly attached link is being probed or has a rival: direct requests are not answered. */
  silentSubnets: Set<string>;
  /** The relay (giaddr, RFC 2131 section 4.1) last heard for each subnet cidr: `forge status` names it. */
  relays: Map<string, string>;
  /** Seconds an OFFER holds its address before it may go to another client. */
  offerHoldSeconds: number;
  /**
   * The store's cluster id (Store.clusterId), read once at start: the start-up probe carries it
   * and a probe carrying it comes from a server of the same data (probe.ts). '' until read.
   */
  cluster: string;
}

export type IfaceTable = ReturnType<typeof networkInterfaces>;

function localBroadcasts(table: IfaceTable): string[] {
  const out = new Set<string>();
  for (const list of Object.values(table)) {
    for (const a of list ?? []) {
      if (a.family !== 'IPv4' || a.internal || a.cidr === null) continue;
      const s = parseCidr(a.cidr);
      if (s !== undefined) out.add(intToIp(s.broadcast));
    }
  }
  return [...out];
}

function localIPv4s(table: IfaceTable): string[] {
  const out: string[] = [];
  for (const list of Object.values(table)) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  }
  return out;
}

const bad = (field: string, msg: string): ForgeError => new ForgeError('CONFIG_INVALID', `${field}: ${msg}`, { field });

/** The serve-wide values stored subnets fall back to. */
export function fallbackOf(config: ForgeConfig): SubnetFallback {
  return {
    dhcp_router: config.dhcp_router,
    dhcp_dns: config.dhcp_dns,
    dhcp_domain: config.dhcp_domain,
    dhcp_lease_time: config.dhcp_lease_time,
    dhcp_authoritative: config.dhcp_authoritative,
    next_server: config.next_server,
    dhcp_unknown: config.dhcp_unknown,
  };
}

/**
 * `stored`: the subnet objects of the store (validated on write; one that no
 * longer parses is skipped). Managed mode may start without any subnet (the
 * CLI that adds the first one needs a running server); it answers nobody until
 * one is added, and says so at start (dhcp.ts).
 */
export function dhcpSettings(
  config: ForgeConfig,
  settingsNextServer: string,
  table: IfaceTable = networkInterfaces(),
  stored: readonly StoredSubnet[] = [],
): DhcpSettings {
  if (config.dhcp_mode === 'off') throw bad('dhcp_mode', 'the DHCP service is off');
  const locals = localIPv4s(table);
  const fallback = fallbackOf(config);
  const flagNets: Subnet[] = [];
  for (const c of config.dhcp_subnet) {
    const s = parseCidr(c);
    if (s === undefined) throw bad('dhcp_subnet', `"${c}" is not an IPv4 CIDR with a /8../30 prefix`);
    flagNets.push({ ...s, source: 'flags', site: effectiveSubnet({ ...defaultSubnet(''), cidr: s.cidr }, fallback), answered: true, servers: [] });
  }
  const flagRanges: { r: string; first: number; last: number }[] = [];
  for (const r of config.dhcp_range) {
    const p = parseRange(r);
    if (p === undefined || r.includes('-')) throw bad('dhcp_range', `"${r}" must be first,last IPv4 addresses in order`);
    if (!flagNets.some((s) => inSubnet(s, p.first) && inSubnet(s, p.last))) throw bad('dhcp_range', `"${r}" is not inside one of the dhcp_subnet networks`);
    flagRanges.push({ r, ...p });
  }
  const storedNets: Subnet[] = [];
  const storedRanges = new Map<Subnet, { first: number; last: number }[]>();
  for (const o of stored) {
    const net = parseCidr(o.cidr);
    if (net === undefined) continue;
    const n: Subnet = { ...net, source: 'store', site: effectiveSubnet(o, fallback), answered: answersSubnet(o, config.server_name), servers: [...o.servers] };
    storedNets.push(n);
    storedRanges.set(n, o.range.map(parseRange).filter((x): x is { first: number; last: number } => x !== undefined));
  }
  // A stored subnet replaces the flag subnet it overlaps (README "Subnets").
  const subnets = [...storedNets, ...flagNets.filter((f) => !storedNets.some((n) => overlaps(n, f)))];
  const pools: Pool[] = [];
  for (const subnet of subnets) {
    const own = storedRanges.get(subnet) ?? [];
    // A stored subnet without ranges takes the dhcp_range pools that lie inside it.
    const ranges = own.length > 0 ? own : flagRanges.filter((r) => inSubnet(subnet, r.first) && inSubnet(subnet, r.last));
    for (const r of ranges) pools.push({ first: r.first, last: r.last, subnet });
  }
  const serverIdBySubnet = new Map<string, string>();
  let localSubnet: Subnet | undefined;
  for (const s of subnets) {
    const mine = locals.find((ip) => inSubnet(s, ipToInt(ip) ?? -1));
    if (mine !== undefined) {
      serverIdBySubnet.set(s.cidr, mine);
      localSubnet ??= s;
    }
  }
  if (localSubnet === undefined && subnets.length === 1) localSubnet = subnets[0];
  const serverId =
    (config.next_server !== '' ? config.next_server : undefined) ??
    serverIdBySubnet.values().next().value ??
    (settingsNextServer !== '' ? settingsNextServer : undefined) ??
    locals[0] ??
    '0.0.0.0';
  for (const [f, v] of [
    ['next_server', config.next_server],
    ['dhcp_router', config.dhcp_router],
  ] as const) {
    if (v !== '' && ipToInt(v) === undefined) throw bad(f, `"${v}" is not an IPv4 address`);
  }
  for (const d of config.dhcp_dns) if (ipToInt(d) === undefined) throw bad('dhcp_dns', `"${d}" is not an IPv4 address`);
  const nextServer = config.next_server !== '' ? config.next_server : settingsNextServer !== '' && ipToInt(settingsNextServer) !== undefined ? settingsNextServer : serverId;
  if (ipToInt(serverId) === undefined) throw bad('next_server', `no usable server address (got "${serverId}")`);
  return {
    mode: config.dhcp_mode,
    subnets,
    pools,
    serverIdBySubnet,
    serverId,
    nextServer,
    nextServerFixed: config.next_server !== '',
    localSubnet,
    port: config.dhcp_port,
    proxyPort: config.dhcp_proxy_port,
    clientPort: 68,
    localAddrs: locals,
    localBroadcasts: localBroadcasts(table),
    offerHoldSeconds: 30,
    cluster: '',
    silentSubnets: new Set(),
    relays: new Map(),
  };
}

/**
 * Takes a fresh look at the host and the store: the interface-dependent parts (links that came
 * up or went down) and the subnets and pools (stored subnets added, edited or removed).
 */
export function refreshSettings(s: DhcpSettings, fresh: DhcpSettings): void {
  s.subnets = fresh.subnets;
  s.pools = fresh.pools;
  s.serverIdBySubnet.clear();
  for (const [k, v] of fresh.serverIdBySubnet) s.serverIdBySubnet.set(k, v);
  s.localAddrs.splice(0, s.localAddrs.length, ...fresh.localAddrs);
  s.localBroadcasts.splice(0, s.localBroadcasts.length, ...fresh.localBroadcasts);
  if (fresh.localSubnet !== undefined) s.localSubnet = fresh.localSubnet;
  else if (s.localSubnet !== undefined && !s.subnets.some((n) => n.cidr === s.localSubnet?.cidr)) s.localSubnet = undefined;
}

export function serverIdFor(s: DhcpSettings, subnet: Subnet | undefined): string {
  return (subnet !== undefined ? s.serverIdBySubnet.get(subnet.cidr) : undefined) ?? s.serverId;
}

export { intToIp };
