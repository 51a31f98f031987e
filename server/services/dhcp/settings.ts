/**
 * The DHCP service's view of the configuration, validated once at start:
 * subnets, pools inside them, the addresses forge answers with. A pool or
 * option outside the configured subnets is CONFIG_INVALID, so forge can never
 * hand out an address it was not given.
 */
import { networkInterfaces } from 'node:os';
import type { ForgeConfig } from '../../config.js';
import { ForgeError } from '../../errors.js';
import { inSubnet, intToIp, ipToInt, parseCidr, type Pool, type Subnet } from './net.js';

export interface DhcpSettings {
  mode: 'proxy' | 'managed';
  subnets: Subnet[];
  pools: Pool[];
  router: string;
  dns: string[];
  domain: string;
  leaseSeconds: number;
  /** Our address per subnet (server identifier, option 54), by subnet cidr. */
  serverIdBySubnet: Map<string, string>;
  /** Fallback server identifier (proxy mode, or a subnet forge has no address in). */
  serverId: string;
  /** siaddr / TFTP server when next_server is configured (nextServerFixed), else the fallback. */
  nextServer: string;
  /** next_server is configured: every client gets it; otherwise forge's address facing each client. */
  nextServerFixed: boolean;
  /** Answer INIT-REBOOT requests from clients without a record (RFC 2131 s4.3.2). */
  authoritative: boolean;
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
  /** Seconds an OFFER holds its address before it may go to another client. */
  offerHoldSeconds: number;
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

export function dhcpSettings(
  config: ForgeConfig,
  settingsNextServer: string,
  table: IfaceTable = networkInterfaces(),
): DhcpSettings {
  if (config.dhcp_mode === 'off') throw bad('dhcp_mode', 'the DHCP service is off');
  const locals = localIPv4s(table);
  const subnets: Subnet[] = [];
  for (const c of config.dhcp_subnet) {
    const s = parseCidr(c);
    if (s === undefined) throw bad('dhcp_subnet', `"${c}" is not an IPv4 CIDR with a /8../30 prefix`);
    subnets.push(s);
  }
  if (config.dhcp_mode === 'managed' && subnets.length === 0) throw bad('dhcp_subnet', 'managed mode needs at least one subnet');
  const pools: Pool[] = [];
  for (const r of config.dhcp_range) {
    const [a, b, extra] = r.split(',').map((s) => s.trim());
    const first = a === undefined ? undefined : ipToInt(a);
    const last = b === undefined ? undefined : ipToInt(b);
    if (first === undefined || last === undefined || extra !== undefined || first > last) {
      throw bad('dhcp_range', `"${r}" must be first,last IPv4 addresses in order`);
    }
    const subnet = subnets.find((s) => inSubnet(s, first) && inSubnet(s, last));
    if (subnet === undefined) throw bad('dhcp_range', `"${r}" is not inside one of the dhcp_subnet networks`);
    pools.push({ first, last, subnet });
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
    router: config.dhcp_router,
    dns: config.dhcp_dns,
    domain: config.dhcp_domain,
    leaseSeconds: Math.max(60, config.dhcp_lease_time),
    serverIdBySubnet,
    serverId,
    nextServer,
    nextServerFixed: config.next_server !== '',
    authoritative: config.dhcp_authoritative,
    localSubnet,
    port: config.dhcp_port,
    proxyPort: config.dhcp_proxy_port,
    clientPort: 68,
    localAddrs: locals,
    localBroadcasts: localBroadcasts(table),
    offerHoldSeconds: 30,
    silentSubnets: new Set(),
  };
}

/** Takes the interface-dependent parts of a fresh look at the host (links that came up or went down). */
export function refreshSettings(s: DhcpSettings, fresh: DhcpSettings): void {
  s.serverIdBySubnet.clear();
  for (const [k, v] of fresh.serverIdBySubnet) s.serverIdBySubnet.set(k, v);
  s.localAddrs.splice(0, s.localAddrs.length, ...fresh.localAddrs);
  s.localBroadcasts.splice(0, s.localBroadcasts.length, ...fresh.localBroadcasts);
  // The same Subnet objects as s.subnets: pools are matched to their subnet by identity.
  const local = s.subnets.find((n) => n.cidr === fresh.localSubnet?.cidr);
  if (local !== undefined) s.localSubnet = local;
}

export function serverIdFor(s: DhcpSettings, subnet: Subnet | undefined): string {
  return (subnet !== undefined ? s.serverIdBySubnet.get(subnet.cidr) : undefined) ?? s.serverId;
}

export { intToIp };
