/**
 * A system's interfaces as a netplan / cloud-init network config version 2
 * document (cloud-init docs "Networking config Version 2"; netplan(5)): the
 * `network-config` a NoCloud seed serves and the `network:` section of
 * Ubuntu autoinstall. Pure: blended variables in, a plain object out.
 *
 *  - a NIC with a MAC is matched by it and renamed to the record's name
 *    (`match.macaddress` + `set-name`), so the kernel's naming does not matter;
 *  - static: `addresses: [IP/PREFIX]`, the gateway as `routes: [{to: default}]`
 *    on the interface whose subnet holds it (or its own if_gateway), the
 *    name servers and search domains; otherwise `dhcp4: true`;
 *  - bonds (`bonds:`), bridges (`bridges:`) list their members; bonding_opts
 *    map to netplan's parameter names (mode, miimon -> mii-monitor-interval, ...);
 *  - a VLAN is an interface named PARENT.ID (Cobbler's convention): `vlans:`
 *    with `id` and `link`;
 *  - members of a bond or bridge carry no addresses.
 * Errors (a bonding option netplan has no name for, a VLAN without its
 * parent) are thrown as messages naming the interface and field.
 */
import { netmaskToPrefix } from './cmdline.js';

type Obj = Record<string, unknown>;

/** Linux bonding driver option -> netplan bond parameter (netplan(5) "Properties for device type bonds"). */
const BOND_PARAMS: Record<string, { key: string; num?: boolean }> = {
  mode: { key: 'mode' },
  miimon: { key: 'mii-monitor-interval', num: true },
  lacp_rate: { key: 'lacp-rate' },
  xmit_hash_policy: { key: 'transmit-hash-policy' },
  primary: { key: 'primary' },
  updelay: { key: 'up-delay', num: true },
  downdelay: { key: 'down-delay', num: true },
  fail_over_mac: { key: 'fail-over-mac-policy' },
  ad_select: { key: 'ad-select' },
  arp_interval: { key: 'arp-interval', num: true },
  arp_ip_target: { key: 'arp-ip-targets' },
  min_links: { key: 'min-links', num: true },
  primary_reselect: { key: 'primary-reselect-policy' },
};

const NATURAL = new Intl.Collator('en', { numeric: true }).compare;
const str = (x: unknown): string => (typeof x === 'string' ? x : typeof x === 'number' ? String(x) : '');
const strList = (x: unknown): string[] => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string' && s !== '') : []);

export class NetplanError extends Error {}

function ipInSubnet(addr: string, ip: string, mask: string): boolean {
  const n = (s: string): number | undefined => {
    const p = s.split('.').map(Number);
    return p.length === 4 && p.every((x) => Number.isInteger(x) && x >= 0 && x <= 255) ? ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0 : undefined;
  };
  const a = n(addr);
  const b = n(ip);
  const m = n(mask);
  return a !== undefined && b !== undefined && m !== undefined && ((a & m) >>> 0) === ((b & m) >>> 0);
}

/** A static interface's CIDR address and the gateway it carries (its own, or the system's when its subnet holds it, once). */
function staticAddress(name: string, i: Obj, gateway: string, state: { defaultRouteGiven: boolean }): { cidr: string; gw: string } {
  const ip = str(i['ip_address']);
  const mask = str(i['netmask']);
  const prefix = netmaskToPrefix(mask);
  if (prefix === undefined) throw new NetplanError(`interfaces.${name}.netmask: "${mask}" is not a netmask`);
  const gw = str(i['if_gateway']) || (gateway !== '' && !state.defaultRouteGiven && ipInSubnet(gateway, ip, mask) ? gateway : '');
  if (gw !== '') state.defaultRouteGiven = true;
  return { cidr: `${ip}/${prefix}`, gw };
}

export function vlanOf(name: string, type: string): { parent: string; id: number } | undefined {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || (type !== 'na' && type !== '')) return undefined;
  const id = name.slice(dot + 1);
  return /^\d+$/.test(id) ? { parent: name.slice(0, dot), id: Number(id) } : undefined;
}

/** The blended network variables both builders read. */
function readNetwork(vars: Obj): { ifaces: Record<string, Obj>; names: string[]; dns: string[]; search: string[]; gateway: string } {
  const raw = vars['interfaces'];
  const ifaces = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, Obj>) : {};
  return {
    ifaces,
    names: Object.keys(ifaces).sort(NATURAL),
    dns: strList(vars['name_servers']),
    search: strList(vars['name_servers_search']),
    gateway: str(vars['gateway']),
  };
}

export function networkConfigV2(vars: Obj): Obj {
  const { ifaces, names, dns, search, gateway } = readNetwork(vars);
  const ethernets: Record<string, Obj> = {};
  const bonds: Record<string, Obj> = {};
  const bridges: Record<string, Obj> = {};
  const vlans: Record<string, Obj> = {};
  const membersOf = (master: string): string[] => names.filter((n) => str(ifaces[n]!['interface_master']) === master);
  const state = { defaultRouteGiven: false };

  for (const name of names) {
    const i = ifaces[name]!;
    const type = str(i['interface_type']) || 'na';
    const mac = str(i['mac_address']).toLowerCase();
    const dev: Obj = {};
    const vlan = vlanOf(name, type);
    if (type === 'na' && vlan === undefined && mac !== '') {
      dev['match'] = { macaddress: mac };
      dev['set-name'] = name;
    }
    if (type === 'bond_slave' || type === 'bridge_slave') {
      dev['dhcp4'] = false;
      ethernets[name] = dev;
      continue;
    }
    if (i['static'] === true && str(i['ip_address']) !== '') {
      const { cidr, gw } = staticAddress(name, i, gateway, state);
      dev['dhcp4'] = false;
      dev['addresses'] = [cidr];
      if (gw !== '') dev['routes'] = [{ to: 'default', via: gw }];
      const ns: Obj = {};
      if (dns.length > 0) ns['addresses'] = dns;
      if (search.length > 0) ns['search'] = search;
      if (Object.keys(ns).length > 0) dev['nameservers'] = ns;
    } else {
      dev['dhcp4'] = true;
    }
    const mtu = Number(i['mtu'] ?? 0);
    if (mtu > 0) dev['mtu'] = mtu;
    if (type === 'bond') {
      dev['interfaces'] = membersOf(name);
      const params: Obj = {};
      for (const w of str(i['bonding_opts']).split(/[\s,]+/).filter((s) => s !== '')) {
        const eq = w.indexOf('=');
        const k = eq === -1 ? w : w.slice(0, eq);
        const v = eq === -1 ? '' : w.slice(eq + 1);
        const p = BOND_PARAMS[k];
        if (p === undefined) throw new NetplanError(`interfaces.${name}.bonding_opts: netplan has no bond parameter for "${k}" (known: ${Object.keys(BOND_PARAMS).join(', ')})`);
        params[p.key] = p.key === 'arp-ip-targets' ? v.split(',') : p.num === true ? Number(v) : v;
      }
      if (Object.keys(params).length > 0) dev['parameters'] = params;
      bonds[name] = dev;
    } else if (type === 'bridge') {
      dev['interfaces'] = membersOf(name);
      bridges[name] = dev;
    } else if (vlan !== undefined) {
      if (ifaces[vlan.parent] === undefined) throw new NetplanError(`interfaces.${name}: a VLAN is named PARENT.ID and there is no interface ${vlan.parent}`);
      vlans[name] = { id: vlan.id, link: vlan.parent, ...dev };
    } else {
      ethernets[name] = dev;
    }
  }
  const out: Obj = { version: 2 };
  if (names.length === 0) {
    // No interfaces on record: DHCP on whatever NIC is there (en* / eth*).
    out['ethernets'] = { all: { match: { name: 'e*' }, dhcp4: true } };
    return out;
  }
  if (Object.keys(ethernets).length > 0) out['ethernets'] = ethernets;
  if (Object.keys(bonds).length > 0) out['bonds'] = bonds;
  if (Object.keys(bridges).length > 0) out['bridges'] = bridges;
  if (Object.keys(vlans).length > 0) out['vlans'] = vlans;
  return out;
}

/** Agama bond modes (profile.schema.json network.connections[].bond.mode). */
const AGAMA_BOND_MODES = ['balance-rr', 'active-backup', 'balance-xor', 'broadcast', '802.3ad', 'balance-tlb', 'balance-alb'];

/**
 * The same interfaces as Agama network connections (Agama's profile schema,
 * network.connections[]): one connection per NIC/bond/bridge/VLAN, matched
 * by MAC where known, static addresses as CIDR, members listed as ports.
 */
export function agamaConnections(vars: Obj): Obj[] {
  const { ifaces, names, dns, search, gateway } = readNetwork(vars);
  const out: Obj[] = [];
  const state = { defaultRouteGiven: false };
  const membersOf = (master: string): string[] => names.filter((n) => str(ifaces[n]!['interface_master']) === master);
  for (const name of names) {
    const i = ifaces[name]!;
    const type = str(i['interface_type']) || 'na';
    const c: Obj = { id: name, interface: name };
    const mac = str(i['mac_address']).toLowerCase();
    const vlan = vlanOf(name, type);
    if (mac !== '' && type !== 'bond' && type !== 'bridge' && vlan === undefined) c['macAddress'] = mac;
    if (type === 'bond_slave' || type === 'bridge_slave') {
      c['method4'] = 'disabled';
      c['method6'] = 'disabled';
      out.push(c);
      continue;
    }
    if (i['static'] === true && str(i['ip_address']) !== '') {
      const { cidr, gw } = staticAddress(name, i, gateway, state);
      c['method4'] = 'manual';
      c['addresses'] = [cidr];
      if (gw !== '') c['gateway4'] = gw;
      if (dns.length > 0) c['nameservers'] = dns;
      if (search.length > 0) c['dnsSearchList'] = search;
    } else {
      c['method4'] = 'auto';
    }
    c['method6'] = 'auto';
    const mtu = Number(i['mtu'] ?? 0);
    if (mtu > 0) c['mtu'] = mtu;
    if (type === 'bond') {
      const words = str(i['bonding_opts']).split(/[\s,]+/).filter((s) => s !== '');
      const mode = words.find((w) => w.startsWith('mode='))?.slice(5) ?? 'balance-rr';
      if (!AGAMA_BOND_MODES.includes(mode)) throw new NetplanError(`interfaces.${name}.bonding_opts: Agama bond mode must be one of ${AGAMA_BOND_MODES.join(', ')}, not "${mode}"`);
      const rest = words.filter((w) => !w.startsWith('mode='));
      c['bond'] = { mode, ports: membersOf(name), ...(rest.length > 0 ? { options: rest.join(' ') } : {}) };
    } else if (type === 'bridge') {
      c['bridge'] = { ports: membersOf(name) };
    } else if (vlan !== undefined) {
      if (ifaces[vlan.parent] === undefined) throw new NetplanError(`interfaces.${name}: a VLAN is named PARENT.ID and there is no interface ${vlan.parent}`);
      c['vlan'] = { id: vlan.id, parent: vlan.parent };
    }
    out.push(c);
  }
  return out;
}
