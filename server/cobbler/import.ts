/**
 * Cobbler 3.x data -> forge objects. Pure: the caller reads the files
 * (cobbler/read.ts) and sends the resulting document to forge's all-or-nothing
 * import (POST /api/v1/import).
 *
 * Cobbler's file serializer (cobbler/modules/serializers/file.py) writes one
 * JSON file per object under collections/{distros,profiles,systems,repos,
 * menus,images}/NAME.json: the item's own attributes without the leading
 * underscore (items/item.py to_dict), unresolved: a field holding
 * `<<inherit>>` takes the parent's value, dicts may hold `!key` entries.
 * forge's fields mirror Cobbler's, so most values move as they are; what forge
 * has no field for is listed, object by object and field by field, with the
 * reason. Bookkeeping Cobbler derives (uid, depth, caches) is dropped silently.
 */
import { INHERIT } from '../core/model.js';
import type { Distro, NetInterface, OptionDict, Profile, System } from '../core/model.js';
import { defaultDistro, defaultInterface, defaultProfile, defaultSystem } from '../core/defaults.js';
import type { ExportDocument } from '../store/store.js';
import { validateNew } from '../core/validate.js';
import { ForgeError } from '../errors.js';

export type Rec = Record<string, unknown>;

export interface CobblerData {
  distros: Rec[];
  profiles: Rec[];
  systems: Rec[];
  repos: Rec[];
  menus: Rec[];
  images: Rec[];
  /** settings.yaml merged with settings.d/*.settings (later files win). */
  settings: Rec;
  /** Problems found while reading (unreadable file, bad JSON/YAML). */
  readErrors: { file: string; message: string }[];
}

/** One thing forge could not take over. */
export interface Unmapped {
  /** `distro NAME`, `profile NAME`, `system NAME`, `repo NAME`, `menu NAME`, `image NAME`, `settings` */
  object: string;
  /** Dotted field (`interfaces.bmc0`, `power_type`), or '' for the whole object. */
  field: string;
  /** The Cobbler value, as JSON (truncated). */
  value: string;
  reason: string;
}

export interface ImportPlan {
  doc: ExportDocument;
  unmapped: Unmapped[];
  /** forge serve configuration keys taken from Cobbler's settings (for /etc/forge/forge.json). */
  config: Record<string, unknown>;
}

/** Bookkeeping Cobbler derives or keeps for itself: never reported. */
const IGNORED = new Set([
  'uid', 'depth', 'is_subobject', 'inmemory', 'cached_dict', 'has_initialized', 'last_cached_mtime',
  'children', 'tree_build_time', 'supported_boot_loaders', 'remote_boot_kernel', 'remote_grub_kernel',
  'remote_boot_initrd', 'remote_grub_initrd', 'cache', 'ctime', 'mtime', 'name',
]);

const REASONS: Record<string, string> = {
  mgmt_classes: 'forge has no configuration-management classes; put what templates need into autoinstall_meta',
  mgmt_parameters: 'forge has no configuration-management parameters; put what templates need into autoinstall_meta',
  owners: 'forge authorises with token roles, not per-object owners',
  redhat_management_key: 'forge has no Red Hat management (Spacewalk/Uyuni) registration field; use autoinstall_meta in a template',
  template_files: 'forge does not serve per-object config files (Cobbler template_files)',
  boot_files: 'forge does not serve per-object boot files',
  fetchable_files: 'forge does not serve per-object fetchable files',
  source_repos: 'forge has no repo objects',
  proxy: 'forge has no per-object proxy field; set it in a template through autoinstall_meta',
  server: 'forge uses one server address for all objects (forge serve --server)',
  next_server_v4: 'forge uses one next-server for all objects (forge serve --next-server)',
  next_server_v6: 'forge has no DHCPv6',
  filename: 'forge picks the boot loader per client firmware (forge serve --bios-loader/--uefi-loader)',
  dhcp_tag: 'forge has no DHCP tags',
  menu: 'forge has no menu objects; every profile with enable_menu appears in the boot menu',
  display_name: 'forge has no display names; the menu shows the profile name',
  ipv6_autoconfiguration: 'forge configures IPv4 only',
  ipv6_default_device: 'forge configures IPv4 only',
  repos_enabled: 'forge has no repo objects; repos go into the repos variable of the profile',
  serial_device: 'forge has no serial console field; add console=ttySN,BAUD to kernel_options',
  serial_baud_rate: 'forge has no serial console field; add console=ttySN,BAUD to kernel_options',
  enable_ipxe: 'forge decides iPXE per profile, not per system',
  image: 'forge has no image objects',
  parent: 'forge distros have no parent',
};
const POWER_REASON = 'a Cobbler power setting forge does not drive (forge: libvirt, ipmi, redfish)';

/** Cobbler fence-agent names -> forge's power drivers (forge drives IPMI as lanplus). */
export const POWER_TYPE_MAP: Record<string, System['power_type']> = {
  ipmilanplus: 'ipmi', ipmilan: 'ipmi', ipmitool: 'ipmi', ipmi: 'ipmi',
  redfish: 'redfish', virsh: 'libvirt', libvirt: 'libvirt',
};

function reasonFor(field: string): string {
  if (field.startsWith('power_')) return POWER_REASON;
  if (field.startsWith('ipv6_')) return 'forge configures IPv4 only';
  return REASONS[field] ?? 'forge has no such field';
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** Values that mean "not set" in Cobbler: never worth reporting. */
function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === INHERIT || v === false || v === -1) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v).length === 0;
  return false;
}

class Ctx {
  readonly unmapped: Unmapped[] = [];
  constructor(readonly object: string) {}
  lost(field: string, value: unknown, reason = reasonFor(field)): void {
    this.unmapped.push({ object: this.object, field, value: show(value), reason });
  }
}

function str(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return '';
}

/** Cobbler option dicts: a dict, an `a=b c` string, or `<<inherit>>`. */
function optionDict(c: Ctx, field: string, v: unknown): OptionDict {
  if (v === undefined || v === null || v === '' || v === INHERIT) return {};
  let raw: Record<string, unknown>;
  if (typeof v === 'string') {
    raw = {};
    for (const tok of v.split(/\s+/).filter((t) => t !== '')) {
      const i = tok.indexOf('=');
      const k = i < 0 ? tok : tok.slice(0, i);
      const val = i < 0 ? null : tok.slice(i + 1);
      const cur = raw[k];
      raw[k] = cur === undefined ? val : [...(Array.isArray(cur) ? cur : [cur]), val];
    }
  } else if (typeof v === 'object' && !Array.isArray(v)) raw = v as Record<string, unknown>;
  else {
    c.lost(field, v, 'not a dict or an a=b string');
    return {};
  }
  const out: OptionDict = {};
  for (const [k, x] of Object.entries(raw)) {
    if (x === null || x === undefined || x === '') out[k] = x === '' ? '' : null;
    else if (Array.isArray(x)) {
      // console=tty0 console=ttyS0: forge keeps one value per key; the kernel's
      // last console= is /dev/console, so the last one is kept.
      const vals = x.map((e) => (e === null ? null : str(e)));
      out[k] = vals[vals.length - 1] ?? null;
      c.lost(`${field}.${k}`, x, `forge keeps one value per key; kept the last (${show(out[k])})`);
    } else if (typeof x === 'object') c.lost(`${field}.${k}`, x, 'nested values are not supported');
    else out[k] = str(x);
  }
  return out;
}

function stringList(v: unknown): string[] {
  if (v === undefined || v === null || v === INHERIT) return [];
  if (Array.isArray(v)) return v.map(str).filter((s) => s !== '');
  if (typeof v === 'string') return v.split(/[\s,]+/).filter((s) => s !== '');
  return [];
}

function bool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') {
    if (/^(1|true|yes|on|y)$/i.test(v)) return true;
    if (/^(0|false|no|off|n|)$/i.test(v)) return false;
  }
  return undefined;
}

function isoTime(v: unknown): string {
  return typeof v === 'number' && v > 0 && Number.isFinite(v) ? new Date(Math.round(v * 1000)).toISOString() : '';
}

const ARCH_MAP: Record<string, Distro['arch']> = {
  x86_64: 'x86_64', i386: 'i386', i686: 'i386', aarch64: 'aarch64', arm64: 'aarch64',
  ppc64le: 'ppc64le', ppc64el: 'ppc64le', s390x: 's390x',
};
const BREED_MAP: Record<string, Distro['breed']> = {
  redhat: 'redhat', debian: 'debian', ubuntu: 'ubuntu', suse: 'suse', generic: 'generic',
};
const VIRT_TYPE_MAP: Record<string, Profile['virt_type']> = { kvm: 'kvm', qemu: 'qemu', xenpv: 'xenpv', vmware: 'vmware' };
const IFTYPE_MAP: Record<string, NetInterface['interface_type']> = {
  na: 'na', '': 'na', bond: 'bond', bond_slave: 'bond_slave', bridge: 'bridge', bridge_slave: 'bridge_slave',
};
const STATUS_VALUES = new Set(['development', 'testing', 'acceptance', 'production']);

type VirtKey = 'virt_type' | 'virt_cpus' | 'virt_ram' | 'virt_file_size' | 'virt_path' | 'virt_bridge' | 'virt_disk_driver' | 'virt_auto_boot';

/** virt_* of a profile or system: `<<inherit>>` and '' stay inherited. */
function virtFields(c: Ctx, rec: Rec, into: Pick<Profile, VirtKey>): Set<string> {
  const used = new Set<string>(['virt_type', 'virt_cpus', 'virt_ram', 'virt_file_size', 'virt_path', 'virt_bridge', 'virt_disk_driver', 'virt_auto_boot']);
  const t = str(rec['virt_type']);
  if (t !== '' && t !== INHERIT) {
    const m = VIRT_TYPE_MAP[t];
    if (m !== undefined) into.virt_type = m;
    else if (t === 'auto') c.lost('virt_type', t, 'forge has no "auto" virt type; left inherited (forge-agent --virt-type auto picks kvm when the host offers it)');
    else c.lost('virt_type', t, `forge virt types are kvm, qemu, xenpv, vmware; left inherited`);
  }
  const num = (k: 'virt_cpus' | 'virt_ram' | 'virt_file_size', integer: boolean): void => {
    const v = rec[k];
    if (v === undefined || v === null || v === '' || v === INHERIT) return;
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < 0) c.lost(k, v, 'not a valid number; left inherited');
    else if (n === 0 && k !== 'virt_file_size') return;
    else into[k] = n;
  };
  num('virt_cpus', true);
  num('virt_ram', true);
  num('virt_file_size', false);
  for (const k of ['virt_path', 'virt_bridge'] as const) {
    const v = str(rec[k]);
    if (v !== '' && v !== INHERIT) into[k] = v;
  }
  const d = str(rec['virt_disk_driver']);
  if (d === 'raw' || d === 'qcow2') into.virt_disk_driver = d;
  else if (d !== '' && d !== INHERIT) c.lost('virt_disk_driver', d, 'forge disk drivers are raw and qcow2; left inherited');
  const ab = rec['virt_auto_boot'];
  if (ab !== undefined && ab !== INHERIT && ab !== '') {
    const b = bool(ab);
    if (b === undefined) c.lost('virt_auto_boot', ab, 'not a boolean; left inherited');
    else into.virt_auto_boot = b;
  }
  return used;
}

function reportRest(c: Ctx, rec: Rec, used: Set<string>): void {
  for (const [k, v] of Object.entries(rec)) {
    if (used.has(k) || IGNORED.has(k) || isEmpty(v)) continue;
    if (k === 'owners' && Array.isArray(v) && v.length === 1 && v[0] === 'admin') continue; // Cobbler's default
    c.lost(k, v);
  }
}

function mapDistro(rec: Rec): { obj?: Distro; c: Ctx } {
  const name = str(rec['name']);
  const c = new Ctx(`distro ${name}`);
  const d = defaultDistro(name);
  const arch = ARCH_MAP[str(rec['arch'])];
  if (arch === undefined) {
    c.lost('', str(rec['arch']), `architecture ${show(rec['arch'])} is not one forge boots (${Object.keys(ARCH_MAP).join(', ')}); distro not imported`);
    return { c };
  }
  d.arch = arch;
  const breed = BREED_MAP[str(rec['breed'])];
  if (breed === undefined) {
    d.breed = 'generic';
    c.lost('breed', rec['breed'], 'forge installs redhat, debian, ubuntu and suse families; imported as generic');
  } else d.breed = breed;
  d.os_version = str(rec['os_version']);
  d.kernel = str(rec['kernel']);
  d.initrd = str(rec['initrd']);
  d.comment = str(rec['comment']);
  d.kernel_options = optionDict(c, 'kernel_options', rec['kernel_options']);
  d.kernel_options_post = optionDict(c, 'kernel_options_post', rec['kernel_options_post']);
  d.autoinstall_meta = optionDict(c, 'autoinstall_meta', rec['autoinstall_meta']);
  d.boot_loaders = stringList(rec['boot_loaders']);
  const tree = d.autoinstall_meta['tree'];
  if (typeof tree === 'string' && /@@(http_server|server)@@|\/cblr\/links\//.test(tree)) {
    c.lost('autoinstall_meta.tree', tree, "points at Cobbler's own mirror (/cblr/links); kept as is: import the tree with forge import or set tree= to a mirror URL");
  }
  d.ctime = isoTime(rec['ctime']);
  d.mtime = isoTime(rec['mtime']);
  reportRest(c, rec, new Set(['arch', 'breed', 'os_version', 'kernel', 'initrd', 'comment', 'kernel_options', 'kernel_options_post', 'autoinstall_meta', 'boot_loaders']));
  return { obj: d, c };
}

interface RepoInfo {
  url: string;
  apt: boolean;
}

function repoTable(repos: Rec[], unmapped: Unmapped[]): Map<string, RepoInfo> {
  const out = new Map<string, RepoInfo>();
  for (const r of repos) {
    const name = str(r['name']);
    const c = new Ctx(`repo ${name}`);
    const breed = str(r['breed']);
    const url = str(r['mirror']);
    const apt = breed === 'apt';
    c.lost('', breed === '' ? name : `${breed} ${url}`, apt
      ? 'forge has no repo objects; apt repos are not carried into profiles (forge preseed reads mirror settings from autoinstall_meta)'
      : 'forge has no repo objects; the mirror URL goes into the repos variable (repos="name=url;...") of each profile that lists it');
    if (bool(r['mirror_locally']) === true) c.lost('mirror_locally', true, 'forge does not mirror repos; profiles get the upstream mirror URL');
    for (const [k, v] of Object.entries(r)) {
      if (['name', 'mirror', 'breed', 'mirror_locally', 'comment', 'arch', 'owners'].includes(k) || IGNORED.has(k) || isEmpty(v)) continue;
      c.lost(k, v, 'a repo setting forge cannot express in a kickstart repo line');
    }
    unmapped.push(...c.unmapped);
    out.set(name, { url, apt });
  }
  return out;
}

function mapProfile(rec: Rec, repos: Map<string, RepoInfo>): { obj: Profile; c: Ctx } {
  const name = str(rec['name']);
  const c = new Ctx(`profile ${name}`);
  const p = defaultProfile(name);
  p.comment = str(rec['comment']);
  p.parent = str(rec['parent']);
  p.distro = p.parent === '' ? str(rec['distro']) : '';
  if (p.parent !== '' && str(rec['distro']) !== '' && str(rec['distro']) !== INHERIT) {
    c.lost('distro', rec['distro'], 'a sub-profile takes the distro of its parent in forge');
  }
  const ai = str(rec['autoinstall']);
  if (ai !== '' && ai !== INHERIT) p.autoinstall = ai;
  p.autoinstall_meta = optionDict(c, 'autoinstall_meta', rec['autoinstall_meta']);
  p.kernel_options = optionDict(c, 'kernel_options', rec['kernel_options']);
  p.kernel_options_post = optionDict(c, 'kernel_options_post', rec['kernel_options_post']);
  p.name_servers = stringList(rec['name_servers']);
  p.name_servers_search = stringList(rec['name_servers_search']);
  for (const k of ['enable_ipxe', 'enable_menu'] as const) {
    const v = rec[k];
    if (v === undefined || v === INHERIT || v === '') continue;
    const b = bool(v);
    if (b === undefined) c.lost(k, v, 'not a boolean; left inherited');
    else p[k] = b;
  }
  p.boot_loaders = stringList(rec['boot_loaders']);
  const used = virtFields(c, rec, p);
  // Cobbler repos -> forge's `repos` variable (kickstart repo lines).
  const names = stringList(rec['repos']);
  const lines: string[] = [];
  for (const r of names) {
    const info = repos.get(r);
    if (info === undefined) c.lost(`repos.${r}`, r, 'no such repo in collections/repos');
    else if (info.apt) c.lost(`repos.${r}`, r, 'apt repo: not carried (see repo ' + r + ')');
    else if (info.url === '') c.lost(`repos.${r}`, r, 'the repo has no mirror URL');
    else lines.push(`${r}=${info.url}`);
  }
  if (lines.length > 0) {
    if (p.autoinstall_meta['repos'] !== undefined) c.lost('repos', names, 'autoinstall_meta already sets repos; Cobbler repos not added');
    else p.autoinstall_meta['repos'] = lines.join(';');
  }
  p.ctime = isoTime(rec['ctime']);
  p.mtime = isoTime(rec['mtime']);
  for (const k of ['distro', 'parent', 'comment', 'autoinstall', 'autoinstall_meta', 'kernel_options', 'kernel_options_post', 'name_servers', 'name_servers_search', 'enable_ipxe', 'enable_menu', 'boot_loaders', 'repos']) used.add(k);
  reportRest(c, rec, used);
  return { obj: p, c };
}

const IFACE_MAPPED = new Set(['mac_address', 'ip_address', 'netmask', 'if_gateway', 'static', 'dns_name', 'mtu', 'interface_type', 'interface_master', 'bonding_opts', 'static_routes', 'virt_bridge']);

function mapInterface(c: Ctx, ifname: string, rec: Rec): NetInterface | undefined {
  const f = `interfaces.${ifname}`;
  const type = str(rec['interface_type']).toLowerCase();
  if (type === 'bmc') {
    c.lost(f, rec['ip_address'] ?? '', `BMC interface: ${POWER_REASON}; not imported`);
    return undefined;
  }
  const i = defaultInterface();
  i.mac_address = str(rec['mac_address']).toLowerCase();
  i.ip_address = str(rec['ip_address']);
  i.netmask = str(rec['netmask']);
  i.if_gateway = str(rec['if_gateway']);
  i.static = bool(rec['static']) ?? false;
  i.dns_name = str(rec['dns_name']);
  const mtu = str(rec['mtu']);
  if (mtu !== '') {
    if (/^\d+$/.test(mtu) && Number(mtu) <= 65535) i.mtu = Number(mtu);
    else c.lost(`${f}.mtu`, rec['mtu'], 'not an MTU; left at the default');
  }
  const t = IFTYPE_MAP[type];
  if (t !== undefined) {
    i.interface_type = t;
    i.interface_master = str(rec['interface_master']);
  } else if (type === 'bonded_bridge_slave') {
    // A bond that is itself a bridge port: forge models the bond, not the bridge membership.
    i.interface_type = 'bond';
    c.lost(`${f}.interface_type`, type, `forge has no bonded_bridge_slave; imported as a bond, bridge membership (master ${show(rec['interface_master'])}) dropped`);
  } else {
    c.lost(`${f}.interface_type`, type, 'forge interface types are na, bond, bond_slave, bridge, bridge_slave; imported as na');
  }
  i.bonding_opts = str(rec['bonding_opts']);
  i.static_routes = stringList(rec['static_routes']);
  for (const [k, v] of Object.entries(rec)) {
    if (IFACE_MAPPED.has(k) || isEmpty(v)) continue;
    const why = k === 'bridge_opts' ? 'forge has no bridge options' : k === 'cnames' ? 'forge has no DNS management (CNAMEs)' : k === 'management' ? 'forge has no management-interface flag' : reasonFor(k);
    c.lost(`${f}.${k}`, v, why);
  }
  return i;
}

/**
 * Cobbler's power_* -> forge's. Taken only when forge's driver rules accept
 * them together (core/validate.ts); otherwise reported and left off, so one
 * incomplete BMC record does not stop the whole import.
 */
function mapPower(c: Ctx, rec: Rec, s: System): void {
  const type = str(rec['power_type']);
  if (type === '') return;
  const t = POWER_TYPE_MAP[type];
  if (t === undefined) {
    c.lost('power_type', type, `forge drives power with libvirt, ipmi (ipmitool lanplus) and redfish; ${type} not imported`);
    return;
  }
  if (type === 'ipmilan') c.lost('power_type', type, 'forge drives IPMI as lanplus (IPMI 2.0); imported as ipmi');
  const trial: System = { ...s, power_type: t, power_address: str(rec['power_address']), power_user: str(rec['power_user']), power_pass: str(rec['power_pass']), power_id: str(rec['power_id']) };
  try {
    validateNew('system', trial);
  } catch (e) {
    if (e instanceof ForgeError && (e.field ?? '').startsWith('power_')) {
      c.lost(e.field ?? 'power_type', rec[e.field ?? 'power_type'] ?? '', `power settings not imported: ${e.message}`);
      return;
    }
  }
  Object.assign(s, { power_type: trial.power_type, power_address: trial.power_address, power_user: trial.power_user, power_pass: trial.power_pass, power_id: trial.power_id });
}

function mapSystem(rec: Rec): { obj?: System; c: Ctx } {
  const name = str(rec['name']);
  const c = new Ctx(`system ${name}`);
  const s = defaultSystem(name);
  s.profile = str(rec['profile']);
  if (s.profile === '') {
    c.lost('image', rec['image'] ?? '', str(rec['image']) !== '' ? 'forge has no image objects; system not imported' : 'no profile; system not imported');
    return { c };
  }
  s.comment = str(rec['comment']);
  s.hostname = str(rec['hostname']);
  s.gateway = str(rec['gateway']);
  s.name_servers = stringList(rec['name_servers']);
  s.name_servers_search = stringList(rec['name_servers_search']);
  s.netboot_enabled = bool(rec['netboot_enabled']) ?? false;
  const st = str(rec['status']);
  if (STATUS_VALUES.has(st)) s.status = st as System['status'];
  else if (st !== '') c.lost('status', st, 'forge statuses are development, testing, acceptance, production; left at production');
  const ai = str(rec['autoinstall']);
  if (ai !== '' && ai !== INHERIT) s.autoinstall = ai;
  s.autoinstall_meta = optionDict(c, 'autoinstall_meta', rec['autoinstall_meta']);
  s.kernel_options = optionDict(c, 'kernel_options', rec['kernel_options']);
  s.kernel_options_post = optionDict(c, 'kernel_options_post', rec['kernel_options_post']);
  s.virt_pxe_boot = bool(rec['virt_pxe_boot']) ?? false;
  s.boot_loaders = stringList(rec['boot_loaders']);
  const used = virtFields(c, rec, s);
  mapPower(c, rec, s);
  for (const k of ['power_type', 'power_address', 'power_user', 'power_pass', 'power_id']) used.add(k);
  const ifaces = rec['interfaces'];
  if (typeof ifaces === 'object' && ifaces !== null && !Array.isArray(ifaces)) {
    for (const [ifname, raw] of Object.entries(ifaces as Record<string, unknown>)) {
      if (typeof raw !== 'object' || raw === null) {
        c.lost(`interfaces.${ifname}`, raw, 'not an interface record');
        continue;
      }
      const i = mapInterface(c, ifname, raw as Rec);
      if (i === undefined) continue;
      s.interfaces[ifname] = i;
      // Cobbler keeps virt_bridge per interface; forge has one per system (its first NIC).
      const vb = str((raw as Rec)['virt_bridge']);
      if (vb !== '' && vb !== INHERIT) {
        if (s.virt_bridge === INHERIT) s.virt_bridge = vb;
        else if (s.virt_bridge !== vb) c.lost(`interfaces.${ifname}.virt_bridge`, vb, `forge has one virt_bridge per system (${s.virt_bridge} kept)`);
      }
    }
  }
  s.ctime = isoTime(rec['ctime']);
  s.mtime = isoTime(rec['mtime']);
  for (const k of ['profile', 'comment', 'hostname', 'gateway', 'name_servers', 'name_servers_search', 'netboot_enabled', 'status', 'autoinstall', 'autoinstall_meta', 'kernel_options', 'kernel_options_post', 'virt_pxe_boot', 'boot_loaders', 'interfaces']) used.add(k);
  reportRest(c, rec, used);
  return { obj: s, c };
}

/** Cobbler settings -> forge serve configuration keys. */
function mapSettings(settings: Rec, unmapped: Unmapped[]): Record<string, unknown> {
  const c = new Ctx('settings');
  const config: Record<string, unknown> = {};
  const take: Record<string, (v: unknown) => void> = {
    server: (v) => (config['server'] = str(v)),
    http_port: (v) => (config['http_port'] = Number(v)),
    next_server_v4: (v) => (config['next_server'] = str(v)),
    next_server: (v) => (config['next_server'] = str(v)),
    pxe_just_once: (v) => (config['pxe_just_once'] = bool(v) ?? false),
    default_name_servers: (v) => (config['dhcp_dns'] = stringList(v)),
    default_name_servers_search: (v) => {
      const l = stringList(v);
      config['dhcp_domain'] = l[0] ?? '';
      if (l.length > 1) c.lost('default_name_servers_search', v, `forge hands out one DHCP domain (${l[0]} kept)`);
    },
  };
  const advice: Record<string, string> = {
    autoinstall_templates_dir: 'convert the templates there with forge template convert into forge serve --templates-dir',
    autoinstall_snippets_dir: 'convert the snippets there with forge template convert into forge serve --snippets-dir',
    default_password_crypted: 'set autoinstall_meta root_password_hash=... on the root profiles (forge templates read root_password_hash)',
    manage_dhcp: 'forge serves DHCP itself: forge serve --dhcp-mode managed|proxy',
    manage_dhcp_v4: 'forge serves DHCP itself: forge serve --dhcp-mode managed|proxy',
    kernel_options: 'forge has no server-wide kernel options; put them on the distros',
    default_virt_type: 'forge-agent defaults: --virt-type, or set virt_type on the root profiles',
    default_virt_ram: 'set virt_ram on the root profiles',
    default_virt_file_size: 'set virt_file_size on the root profiles',
    default_virt_bridge: 'set virt_bridge on the root profiles (or forge-agent --virt-bridge)',
    default_virt_disk_driver: 'set virt_disk_driver on the root profiles',
    autoinstall: 'the default template: set autoinstall on the root profiles',
  };
  for (const [k, v] of Object.entries(settings)) {
    const f = take[k];
    if (f !== undefined) {
      if (v !== null && v !== undefined && v !== '') f(v);
      continue;
    }
    const a = advice[k];
    if (a !== undefined && !isEmpty(v)) c.lost(k, v, a);
  }
  // Everything else in settings.yaml configures Cobbler's own services (LDAP,
  // puppet, reposync, buildiso, ...): summarised, not listed key by key.
  const rest = Object.keys(settings).filter((k) => take[k] === undefined && advice[k] === undefined);
  if (rest.length > 0) c.lost('', `${rest.length} keys`, `Cobbler service settings with no forge equivalent: ${rest.slice(0, 12).join(', ')}${rest.length > 12 ? ', ...' : ''}`);
  unmapped.push(...c.unmapped);
  return config;
}

/**
 * The whole plan. Objects forge cannot hold are left out with a reason, and
 * so is everything that depends on them (a profile of a left-out distro, a
 * system of a left-out profile), so the document imports as one consistent
 * whole.
 */
export function planImport(data: CobblerData): ImportPlan {
  const unmapped: Unmapped[] = [];
  for (const e of data.readErrors) unmapped.push({ object: e.file, field: '', value: '', reason: e.message });
  const distros: Distro[] = [];
  for (const r of data.distros) {
    const { obj, c } = mapDistro(r);
    unmapped.push(...c.unmapped);
    if (obj !== undefined) distros.push(obj);
  }
  const repos = repoTable(data.repos, unmapped);
  const haveDistro = new Set(distros.map((d) => d.name));
  const mapped = data.profiles.map((r) => mapProfile(r, repos));
  for (const m of mapped) unmapped.push(...m.c.unmapped);
  // Keep profiles whose chain reaches a kept distro.
  const byName = new Map(mapped.map((m) => [m.obj.name, m.obj]));
  const ok = new Map<string, boolean>();
  const reaches = (name: string, seen: Set<string>): boolean => {
    const known = ok.get(name);
    if (known !== undefined) return known;
    const p = byName.get(name);
    let r = false;
    if (p !== undefined && !seen.has(name)) {
      seen.add(name);
      r = p.parent !== '' ? reaches(p.parent, seen) : haveDistro.has(p.distro);
    }
    ok.set(name, r);
    return r;
  };
  const profiles: Profile[] = [];
  for (const m of mapped) {
    if (reaches(m.obj.name, new Set())) profiles.push(m.obj);
    else {
      const via = m.obj.parent !== '' ? `parent ${m.obj.parent}` : `distro ${m.obj.distro}`;
      unmapped.push({ object: `profile ${m.obj.name}`, field: '', value: show(via), reason: `${via} is missing or was not imported; profile not imported` });
    }
  }
  const haveProfile = new Set(profiles.map((p) => p.name));
  const systems: System[] = [];
  for (const r of data.systems) {
    const { obj, c } = mapSystem(r);
    unmapped.push(...c.unmapped);
    if (obj === undefined) continue;
    if (!haveProfile.has(obj.profile)) {
      unmapped.push({ object: `system ${obj.name}`, field: '', value: show(obj.profile), reason: `profile ${obj.profile} is missing or was not imported; system not imported` });
      continue;
    }
    systems.push(obj);
  }
  for (const m of data.menus) {
    unmapped.push({ object: `menu ${str(m['name'])}`, field: '', value: show(m['display_name'] ?? ''), reason: REASONS['menu']! });
  }
  for (const i of data.images) {
    unmapped.push({ object: `image ${str(i['name'])}`, field: '', value: show(i['file'] ?? ''), reason: 'forge has no image objects (ISO/virt images); not imported' });
  }
  const config = mapSettings(data.settings, unmapped);
  return { doc: { forge_export: 1, exported: new Date().toISOString(), distros, profiles, systems }, unmapped, config };
}
