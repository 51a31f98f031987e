/** Subnets and pools for DHCP (numbers are unsigned 32-bit; the integer helpers are core/ipv4.ts). */
import { intToIp, ipToInt, maskOf } from '../../core/ipv4.js';

export { intToIp, ipToInt, maskOf };

export interface Subnet {
  cidr: string;
  network: number;
  prefix: number;
  mask: number;
  broadcast: number;
}

export function parseCidr(s: string): Subnet | undefined {
  const [ip, p] = s.trim().split('/');
  const n = ip === undefined ? undefined : ipToInt(ip);
  const prefix = p !== undefined && /^\d{1,2}$/.test(p) ? Number(p) : NaN;
  if (n === undefined || !(prefix >= 8 && prefix <= 30)) return undefined;
  const mask = maskOf(prefix);
  const network = (n & mask) >>> 0;
  return { cidr: `${intToIp(network)}/${prefix}`, network, prefix, mask, broadcast: (network | ~mask) >>> 0 };
}

/** A usable host address of the subnet (not the network or broadcast address). */
export function inSubnet(s: Subnet, ip: number): boolean {
  return ((ip & s.mask) >>> 0) === s.network && ip !== s.network && ip !== s.broadcast;
}

export interface Pool {
  first: number;
  last: number;
  subnet: Subnet;
}
