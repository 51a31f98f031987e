/** IPv4 arithmetic for subnets and pools (numbers are unsigned 32-bit). */

export function ipToInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip.trim());
  if (m === null) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

export function intToIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export interface Subnet {
  cidr: string;
  network: number;
  prefix: number;
  mask: number;
  broadcast: number;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
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
