/**
 * Blending: the variables of a system or profile after inheritance, with
 * Cobbler's semantics (cobbler/utils.py blender/__consolidate):
 *
 *   settings  <  distro  <  root profile  <  ...  <  profile  <  system
 *
 * - a field holding `<<inherit>>` defers to what the chain above says;
 * - dicts (kernel_options, autoinstall_meta, ...) merge, the child winning;
 *   a `!key` entry in a child deletes `key` inherited from above;
 * - lists extend and de-duplicate (order kept, first occurrence wins);
 * - other scalars are overwritten by the child;
 * - autoinstall_meta keys are promoted to top-level variables (so templates
 *   say `tree`, not `autoinstall_meta.tree`).
 * - a system interface whose address lies in a stored subnet takes the
 *   subnet's netmask, router (if_gateway) and MTU where it sets none; the
 *   first such interface (by name) also gives the system its gateway, name
 *   servers and search list when the system and its profiles set none, and
 *   the `subnet` variable (name, cidr, netmask, router, dns, domain, ...).
 * The result is what `forge ... dumpvars` prints and what templates see.
 * Pure: the caller loads the chain and the subnets.
 */
import { installBaseUrl } from './access.js';
import { kernelCommandLine } from './cmdline.js';
import { intToIp } from './ipv4.js';
import { INHERIT } from './model.js';
import type { Distro, NetInterface, Profile, Settings, Subnet, System } from './model.js';
import { parseCidr, subnetOfIp } from './subnet.js';

export type Vars = Record<string, unknown>;

/** Fields that name an object or its links rather than carry a value to inherit. */
// power_pass: a BMC credential has no business in a template (rendered files are public).
const NOT_BLENDED = new Set(['name', 'comment', 'ctime', 'mtime', 'distro', 'parent', 'profile', 'interfaces', 'power_pass']);

function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merge one dict layer into `into` (mutated): child wins, `!key` deletes. */
export function mergeDict(into: Record<string, unknown>, layer: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(layer)) {
    if (k.startsWith('!')) delete into[k.slice(1)];
    else into[k] = v;
  }
  return into;
}

function dedupe(xs: unknown[]): unknown[] {
  const seen = new Set<string>();
  const out: unknown[] = [];
  for (const x of xs) {
    const key = JSON.stringify(x);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(x);
    }
  }
  return out;
}

/** Apply one layer of the chain onto the accumulated variables (mutated). */
export function applyLayer(vars: Vars, layer: object): Vars {
  for (const [k, v] of Object.entries(layer)) {
    if (NOT_BLENDED.has(k) || v === INHERIT || v === undefined) continue;
    if (isDict(v)) {
      const cur = vars[k];
      vars[k] = mergeDict(isDict(cur) ? { ...cur } : {}, v);
    } else if (Array.isArray(v)) {
      const cur = vars[k];
      vars[k] = dedupe([...(Array.isArray(cur) ? cur : []), ...v]);
    } else {
      vars[k] = v;
    }
  }
  return vars;
}

/**
 * A deep copy of a JSON value (settings, a system's interfaces: what the store parsed or the
 * config built), so a blend never shares a dict or list with its inputs. structuredClone did
 * this through the host's serializer: 13 % of a boot config's CPU and most of what it allocated
 * (issue 19 profile); this walks plain objects and arrays and copies nothing else deeper.
 */
export function jsonCopy<T>(v: T): T {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map((x: unknown) => jsonCopy(x)) as T;
  const out: Record<string, unknown> = {};
  for (const k in v) if (Object.prototype.hasOwnProperty.call(v, k)) out[k] = jsonCopy((v as Record<string, unknown>)[k]);
  return out as T;
}

function settingsLayer(settings: Settings): Vars {
  // Assigned onto the copy, not an object literal spreading it: the spread literal's objects
  // survived scavenges (3-4 MB promoted per young GC in a loop of blends, issue 19 --trace-gc-nvp),
  // these die young.
  const vars: Vars = jsonCopy(settings) as unknown as Vars;
  vars['virt_type'] = settings.default_virt_type;
  vars['virt_cpus'] = settings.default_virt_cpus;
  vars['virt_ram'] = settings.default_virt_ram;
  vars['virt_file_size'] = settings.default_virt_file_size;
  vars['virt_path'] = settings.default_virt_path;
  vars['virt_bridge'] = settings.default_virt_bridge;
  vars['virt_disk_driver'] = settings.default_virt_disk_driver;
  vars['virt_auto_boot'] = false;
  vars['autoinstall'] = '';
  vars['enable_ipxe'] = true;
  vars['enable_menu'] = true;
  vars['kernel_options'] = { ...settings.kernel_options };
  vars['kernel_options_post'] = {};
  vars['autoinstall_meta'] = { ...settings.autoinstall_meta };
  vars['boot_loaders'] = [];
  vars['name_servers'] = [];
  vars['name_servers_search'] = [];
  return vars;
}

/**
 * `chain` is the profile and its parents, nearest first:
 * [profile, parent, grandparent, ...]; the last one names the distro.
 */
function blendChain(chain: readonly Profile[], distro: Distro, settings: Settings): Vars {
  const vars = settingsLayer(settings);
  applyLayer(vars, distro);
  for (let i = chain.length - 1; i >= 0; i--) applyLayer(vars, chain[i]!);
  return vars;
}

function finish(vars: Vars, settings: Settings, distro: Distro, autoinstallPath: string, installToken?: string): Vars {
  // Settings' name servers are a fallback, not a prefix of every list.
  if ((vars['name_servers'] as unknown[]).length === 0) vars['name_servers'] = [...settings.default_name_servers];
  if ((vars['name_servers_search'] as unknown[]).length === 0) {
    vars['name_servers_search'] = [...settings.default_name_servers_search];
  }
  const meta = vars['autoinstall_meta'];
  if (isDict(meta)) for (const [k, v] of Object.entries(meta)) vars[k] = v;

  const baseUrl = baseUrlOf(settings);
  vars['base_url'] = baseUrl;
  vars['distro_name'] = distro.name;
  // Install URLs carry the system's install token while it is in its install window
  // (core/access.ts): BASE/i/TOKEN/autoinstall/..., callbacks and the NoCloud seed alike.
  const installBase = installBaseUrl(baseUrl, installToken);
  vars['install_base_url'] = installBase;
  // Cobbler templates build every forge URL from http_server ("http://%s/cblr/svc/op/nopxe/system/%s"):
  // during the window it carries the token path, and forge serves boot files under it too.
  vars['http_server'] = installBase.replace(/^http:\/\//, '');
  vars['autoinstall_url'] = `${installBase}/autoinstall/${autoinstallPath}`;
  // NoCloud seed (cloud-init, Ubuntu autoinstall): a directory URL, so the trailing slash.
  vars['cloud_init_url'] = `${installBase}/cloud-init/${autoinstallPath}/`;
  vars['kernel_url'] = `${baseUrl}/boot/distro/${encodeURIComponent(distro.name)}/kernel`;
  vars['initrd_url'] = `${baseUrl}/boot/distro/${encodeURIComponent(distro.name)}/initrd`;
  vars['kernel_cmdline'] = kernelCommandLine({ vars, autoinstallUrl: vars['autoinstall_url'] as string, seedUrl: vars['cloud_init_url'] as string });
  return vars;
}

export function blendProfile(chain: readonly Profile[], distro: Distro, settings: Settings): Vars {
  const profile = chain[0];
  if (profile === undefined) throw new RangeError('blendProfile needs at least one profile');
  const vars = blendChain(chain, distro, settings);
  vars['name'] = profile.name;
  vars['profile_name'] = profile.name;
  vars['system_name'] = '';
  vars['hostname'] = '';
  vars['interfaces'] = {};
  return finish(vars, settings, distro, `profile/${encodeURIComponent(profile.name)}`);
}

/**
 * The settings, distro and profile layers of a chain, blended once for many
 * systems of one profile (`forge validate`): pass it to blendSystem as
 * `chainVars`. Read-only: blendSystem works on a copy.
 */
export function blendChainOnce(chain: readonly Profile[], distro: Distro, settings: Settings): Readonly<Vars> {
  return blendChain(chain, distro, settings);
}

/**
 * A copy of a chain blend as blendChain would hand it to one system: every
 * dict and list at the top is its own (the layers above only ever replace
 * top-level values, so deeper ones are never written by the blend).
 */
function copyChain(chainVars: Readonly<Vars>): Vars {
  const out: Vars = {};
  for (const [k, v] of Object.entries(chainVars)) out[k] = Array.isArray(v) ? [...(v as unknown[])] : isDict(v) ? { ...v } : v;
  return out;
}

/**
 * `installToken`: the system's token while its install window is open (catalog.ts), else none in URLs.
 * `chainVars`: blendChainOnce(chain, distro, settings), when the caller blends many systems of one
 * profile; the result is the same (test/unit/core-blend-chain.test.ts).
 */
export function blendSystem(
  system: System, chain: readonly Profile[], distro: Distro, settings: Settings, subnets: readonly Subnet[] = [], installToken?: string, chainVars?: Readonly<Vars>,
): Vars {
  const vars = chainVars !== undefined ? copyChain(chainVars) : blendChain(chain, distro, settings);
  applyLayer(vars, system);
  vars['name'] = system.name;
  vars['system_name'] = system.name;
  vars['profile_name'] = system.profile;
  const ifaces: Record<string, NetInterface> = jsonCopy(system.interfaces);
  applySubnets(vars, ifaces, subnets);
  vars['interfaces'] = ifaces;
  // Cobbler also exposes per-interface values as `mac_address_eth0`, ...
  for (const [ifname, i] of Object.entries(ifaces)) {
    for (const [k, v] of Object.entries(i)) vars[`${k}_${ifname}`] = v;
  }
  const firstDns = Object.values(ifaces).find((i) => i.dns_name !== '')?.dns_name;
  vars['hostname'] = system.hostname !== '' ? system.hostname : firstDns ?? system.name;
  return finish(vars, settings, distro, `system/${encodeURIComponent(system.name)}`, installToken);
}

/** Subnet defaults of interfaces and of the system (see the module comment). Mutates both. */
function applySubnets(vars: Vars, ifaces: Record<string, NetInterface>, subnets: readonly Subnet[]): void {
  if (subnets.length === 0) return;
  let first: Subnet | undefined;
  for (const ifname of Object.keys(ifaces).sort()) {
    const i = ifaces[ifname]!;
    const s = i.ip_address !== '' ? subnetOfIp(subnets, i.ip_address) : undefined;
    if (s === undefined) continue;
    const net = parseCidr(s.cidr);
    if (i.netmask === '' && net !== undefined) i.netmask = intToIp(net.mask);
    if (i.if_gateway === '') i.if_gateway = s.router;
    if (i.mtu === 0) i.mtu = s.mtu;
    vars[`subnet_${ifname}`] = s.name;
    first ??= s;
  }
  if (first === undefined) return;
  const net = parseCidr(first.cidr);
  vars['subnet'] = {
    name: first.name,
    cidr: first.cidr,
    netmask: net === undefined ? '' : intToIp(net.mask),
    router: first.router,
    dns: [...first.dns],
    domain: first.domain,
    dns_search: [...first.dns_search],
    mtu: first.mtu,
    next_server: first.next_server,
  };
  if (vars['gateway'] === '' || vars['gateway'] === undefined) vars['gateway'] = first.router;
  if ((vars['name_servers'] as unknown[]).length === 0) vars['name_servers'] = [...first.dns];
  if ((vars['name_servers_search'] as unknown[]).length === 0) {
    vars['name_servers_search'] = first.dns_search.length > 0 ? [...first.dns_search] : first.domain !== '' ? [first.domain] : [];
  }
}

/**
 * `http://HOST:PORT` installers use; `server` may already carry a port
 * (`forge.example:80`), then http_port is not added.
 */
export function baseUrlOf(settings: Pick<Settings, 'server' | 'http_port'>): string {
  const s = settings.server;
  const hasPort = /^\[.*\]:\d+$/.test(s) || (/:\d+$/.test(s) && s.split(':').length === 2);
  if (hasPort) return `http://${s}`;
  const host = s.includes(':') && !s.startsWith('[') ? `[${s}]` : s;
  return `http://${host}:${settings.http_port}`;
}
