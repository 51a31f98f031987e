/** Subnets and pools for DHCP (numbers are unsigned 32-bit; the integer and network helpers are core/ipv4.ts and core/subnet.ts). */
import { intToIp, ipToInt, maskOf } from '../../core/ipv4.js';
import { inNetwork, parseCidr, type EffectiveSubnet, type Network } from '../../core/subnet.js';

export { intToIp, ipToInt, maskOf, parseCidr };

/** A served subnet: its network and what its clients get. */
export interface Subnet extends Network {
  /** Router, DNS, domain, lease time, ... (core/subnet.ts effectiveSubnet). */
  site: EffectiveSubnet;
  /** `flags`: the implicit subnet of --dhcp-subnet; `store`: a stored subnet object. */
  source: 'flags' | 'store';
  /**
   * This server answers DHCP here (core/subnet.ts answersSubnet: the stored subnet's `servers`
   * name it or nobody; flag subnets always). A subnet answered elsewhere stays in the list so a
   * client on it is matched to it (and ignored) rather than to another subnet.
   */
  answered: boolean;
  /** The stored subnet's `servers` ([] = every server). */
  servers: string[];
}

/** A usable host address of the subnet (not the network or broadcast address). */
export const inSubnet: (s: Network, ip: number) => boolean = inNetwork;

export interface Pool {
  first: number;
  last: number;
  subnet: Subnet;
}
