/**
 * Subnets as values: parsing a CIDR, the rules one subnet must keep (ranges,
 * router and next_server inside its network), overlap between subnets, which
 * subnet holds an address, and the effective values a subnet gives its
 * clients once the serve-wide dhcp_* settings fill what it leaves empty.
 * Pure: the store runs the cross-object checks inside its transaction, DHCP
 * and the blend read the effective values.
 */
import { invalid } from '../errors.js';
import { intToIp, ipToInt, maskOf } from './ipv4.js';
import type { Subnet, SubnetUnknown } from './model.js';

export interface Network {
  cidr: string;
  network: number;
  prefix: number;
  mask: number;
  broadcast: number;
}

/** Prefixes forge serves: /8 to /30 (a /31 or /32 has no host addresses to lease, RFC 3021 aside). */
export const PREFIX_MIN = 8;
export const PREFIX_MAX = 30;

/** `10.96.0.7/24` -> the network 10.96.0.0/24; undefined when not IPv4/8..30. */
export function parseCidr(s: string): Network | undefined {
  const [ip, p, extra] = s.trim().split('/');
  const n = ip === undefined ? undefined : ipToInt(ip);
  const prefix = p !== undefined && /^\d{1,2}$/.test(p) ? Number(p) : NaN;
  if (extra !== undefined || n === undefined || !(prefix >= PREFIX_MIN && prefix <= PREFIX_MAX)) return undefined;
  const mask = maskOf(prefix);
  const network = (n & mask) >>> 0;
  return { cidr: `${intToIp(network)}/${prefix}`, network, prefix, mask, broadcast: (network | ~mask) >>> 0 };
}

/** A usable host address of the network (not the network or broadcast address). */
export function inNetwork(s: Network, ip: number): boolean {
  return ((ip & s.mask) >>> 0) === s.network && ip !== s.network && ip !== s.broadcast;
}

/** Two networks share an address. */
export function overlaps(a: Network, b: Network): boolean {
  return a.network <= b.broadcast && b.network <= a.broadcast;
}

/** `first,last` (or `first-last`) -> integers in order; undefined when not two IPv4 addresses in order. */
export function parseRange(r: string): { first: number; last: number } | undefined {
  const parts = r.split(/[,-]/).map((x) => x.trim());
  if (parts.length !== 2) return undefined;
  const first = ipToInt(parts[0]!);
  const last = ipToInt(parts[1]!);
  if (first === undefined || last === undefined || first > last) return undefined;
  return { first, last };
}

/** Lease time bounds (seconds): a minute to a year; 0 means "the server's dhcp_lease_time". */
export const LEASE_MIN = 60;
export const LEASE_MAX = 365 * 24 * 3600;
/** Option 26 bounds: RFC 2132 s5.1 sets 68 as the minimum; 65535 the field's maximum. 0 = not sent. */
export const MTU_MIN = 68;
export const MTU_MAX = 65535;

/**
 * The rules of one subnet on its own (validate.ts calls this after the field
 * checks): normalises cidr and range, throws INVALID_FIELD naming the field.
 */
export function checkSubnet(s: Subnet): Subnet {
  const net = parseCidr(s.cidr);
  if (net === undefined) throw invalid('cidr', `"${s.cidr}" is not an IPv4 network with a /${PREFIX_MIN}../${PREFIX_MAX} prefix (10.96.0.0/24)`);
  const range: string[] = [];
  for (const [i, r] of s.range.entries()) {
    const p = parseRange(r);
    if (p === undefined) throw invalid(`range[${i}]`, `"${r}" must be first,last IPv4 addresses in order`);
    if (!inNetwork(net, p.first) || !inNetwork(net, p.last)) throw invalid(`range[${i}]`, `"${r}" is not inside ${net.cidr} (its host addresses)`);
    range.push(`${intToIp(p.first)},${intToIp(p.last)}`);
  }
  const ranges = range.map(parseRange) as { first: number; last: number }[];
  ranges.forEach((a, i) =>
    ranges.slice(i + 1).forEach((b, j) => {
      if (a.first <= b.last && b.first <= a.last) throw invalid(`range[${i + 1 + j}]`, `"${range[i + 1 + j]!}" overlaps "${range[i]!}"`);
    }),
  );
  if (s.router !== '' && !inNetwork(net, ipToInt(s.router) ?? -1)) throw invalid('router', `${s.router} is not inside ${net.cidr}: clients could not reach it`);
  if (s.lease_time !== 0 && (s.lease_time < LEASE_MIN || s.lease_time > LEASE_MAX)) {
    throw invalid('lease_time', `must be 0 (the server's dhcp_lease_time) or ${LEASE_MIN}..${LEASE_MAX} seconds`);
  }
  if (s.mtu !== 0 && (s.mtu < MTU_MIN || s.mtu > MTU_MAX)) throw invalid('mtu', `must be 0 (not sent) or ${MTU_MIN}..${MTU_MAX} (RFC 2132 s5.1)`);
  return { ...s, cidr: net.cidr, range };
}

/** The stored subnet holding a host address, if any (the most specific one). */
export function subnetOfIp<T extends Pick<Subnet, 'cidr'>>(subnets: readonly T[], ip: string): T | undefined {
  const n = ipToInt(ip);
  if (n === undefined) return undefined;
  let best: { s: T; prefix: number } | undefined;
  for (const s of subnets) {
    const net = parseCidr(s.cidr);
    if (net !== undefined && inNetwork(net, n) && (best === undefined || net.prefix > best.prefix)) best = { s, prefix: net.prefix };
  }
  return best?.s;
}

/** The serve-wide values a stored subnet's empty fields fall back to (config dhcp_*). */
export interface SubnetFallback {
  dhcp_router: string;
  dhcp_dns: readonly string[];
  dhcp_domain: string;
  dhcp_lease_time: number;
  dhcp_authoritative: boolean;
  next_server: string;
  dhcp_unknown: string;
}

/** What a client of the subnet gets: the subnet's values, else the fallback's (router only when inside the network). */
export interface EffectiveSubnet {
  name: string;
  cidr: string;
  netmask: string;
  router: string;
  dns: string[];
  domain: string;
  dns_search: string[];
  lease_time: number;
  /** '' = forge's address facing the client. */
  next_server: string;
  mtu: number;
  authoritative: boolean;
  unknown: Exclude<SubnetUnknown, ''>;
}

export function effectiveSubnet(s: Subnet, f: SubnetFallback): EffectiveSubnet {
  const net = parseCidr(s.cidr);
  const routerOk = (r: string): boolean => r !== '' && net !== undefined && inNetwork(net, ipToInt(r) ?? -1);
  return {
    name: s.name,
    cidr: s.cidr,
    netmask: net === undefined ? '' : intToIp(net.mask),
    router: s.router !== '' ? s.router : routerOk(f.dhcp_router) ? f.dhcp_router : '',
    dns: s.dns.length > 0 ? [...s.dns] : [...f.dhcp_dns],
    domain: s.domain !== '' ? s.domain : f.dhcp_domain,
    dns_search: [...s.dns_search],
    lease_time: s.lease_time !== 0 ? s.lease_time : Math.max(LEASE_MIN, f.dhcp_lease_time),
    next_server: s.next_server !== '' ? s.next_server : f.next_server,
    mtu: s.mtu,
    authoritative: s.authoritative || f.dhcp_authoritative,
    unknown: subnetUnknownPolicy(s, f.dhcp_unknown),
  };
}

/**
 * Whether the server named `serverName` answers DHCP on subnet `s`: a subnet that names no
 * server is answered by every server (one server, or a pair answering it together); one that
 * names servers only by those.
 */
export function answersSubnet(s: Pick<Subnet, 'servers'>, serverName: string): boolean {
  return s.servers.length === 0 || s.servers.includes(serverName);
}

/**
 * The unknown-machine policy on a subnet: its own `unknown`, else the server's
 * dhcp_unknown (the discovery engineer's plan reads this one accessor).
 */
export function subnetUnknownPolicy(s: Pick<Subnet, 'unknown'> | undefined, serverPolicy: string): Exclude<SubnetUnknown, ''> {
  const own = s?.unknown ?? '';
  if (own !== '') return own;
  return serverPolicy === 'discover' || serverPolicy === 'default' ? serverPolicy : 'ignore';
}
