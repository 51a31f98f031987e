/**
 * forge objects in the shapes Cobbler 3.3's XML-RPC API answers with. Pure.
 *
 * - raw records (get_systems, get_system, find_system with expand): the item
 *   as Cobbler's to_dict() writes it, unresolved (`<<inherit>>` kept), with
 *   the Cobbler fields forge has no equivalent for present at Cobbler's
 *   defaults, so clients that index them (Ansible's cobbler_system compares
 *   every interface field) find them;
 * - rendered records (get_system_as_rendered, get_profile_as_rendered,
 *   get_blended_data, *_for_koan): utils.blender() then utils.flatten():
 *   the chain blended, kernel_options / kernel_options_post /
 *   autoinstall_meta as `a=b c ` strings (dict_to_string), repos as one
 *   string, http_server as host or host:port (no :80), system_name /
 *   profile_name / distro_name, per-interface `FIELD_IFNAME` keys;
 * - None is sent as '~' (remote.py xmlrpc_hacks / utils.strip_none).
 *
 * What koan needs from a rendered record beyond that: `kernel`/`initrd` as
 * URLs it can download (a path starting with / would make koan build
 * Cobbler's /cobbler/images/... URL), and `autoinst` (koan >= 3) /
 * `kickstart` (older koans) as the autoinstall URL.
 */
import type { Vars } from '../core/blend.js';
import type { Distro, ForgeObject, NetInterface, ObjectKind, OptionDict, Profile, System } from '../core/model.js';

export type CobblerRecord = Record<string, unknown>;

const INHERIT = '<<inherit>>';

/** Cobbler's utils.dict_to_string: `key ` for a flag, `key=value `, quoted when the value has a space. */
export function dictToString(d: unknown): string {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return typeof d === 'string' ? d : '';
  let out = '';
  for (const [k, v] of Object.entries(d as Record<string, unknown>)) {
    const vals = Array.isArray(v) ? v : [v];
    if (vals.length === 0 || v === null || v === '' || v === undefined || v === false || v === 0) {
      out += `${k} `;
      continue;
    }
    for (const x of vals) {
      const s = String(x).trim();
      out += s.includes(' ') ? `${k}='${s}' ` : `${k}=${s} `;
    }
  }
  return out;
}

/** utils.strip_none: null -> '~', recursively; keys as strings. */
export function stripNone(v: unknown): unknown {
  if (v === null || v === undefined) return '~';
  if (Array.isArray(v)) return v.map(stripNone);
  if (typeof v === 'object' && !Buffer.isBuffer(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = stripNone(x);
    return out;
  }
  return v;
}

function epoch(iso: string): number {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : t / 1000;
}

/** Cobbler interface fields forge does not model, at Cobbler's defaults. */
const IFACE_EXTRA = {
  bridge_opts: '',
  cnames: [] as string[],
  connected_mode: false,
  dhcp_tag: '',
  ipv6_address: '',
  ipv6_default_gateway: '',
  ipv6_mtu: '',
  ipv6_prefix: '',
  ipv6_secondaries: [] as string[],
  ipv6_static_routes: [] as string[],
  management: false,
};

export function cobblerInterface(i: NetInterface, virtBridge: unknown): CobblerRecord {
  return {
    ...IFACE_EXTRA,
    bonding_opts: i.bonding_opts,
    dns_name: i.dns_name,
    if_gateway: i.if_gateway,
    interface_master: i.interface_master,
    interface_type: i.interface_type,
    ip_address: i.ip_address,
    mac_address: i.mac_address,
    mtu: i.mtu === 0 ? '' : String(i.mtu),
    netmask: i.netmask,
    static: i.static,
    static_routes: [...i.static_routes],
    virt_bridge: virtBridge,
  };
}

const ITEM_EXTRA = {
  owners: ['admin'],
  mgmt_classes: [] as string[],
  mgmt_parameters: {},
  fetchable_files: {},
  boot_files: {},
  template_files: {},
};

/** A forge object as Cobbler's unresolved to_dict(). */
export function rawRecord(kind: ObjectKind, o: ForgeObject): CobblerRecord {
  const base: CobblerRecord = {
    ...structuredClone(ITEM_EXTRA),
    ...structuredClone(o as unknown as Record<string, unknown>),
    uid: o.name,
    ctime: epoch(o.ctime),
    mtime: epoch(o.mtime),
    depth: 0,
    is_subobject: false,
  };
  if (kind === 'distro') {
    const d = o as Distro;
    return { ...base, redhat_management_key: '', source_repos: [], remote_boot_kernel: '', remote_boot_initrd: '', remote_grub_kernel: '', remote_grub_initrd: '', tree_build_time: 0, boot_loaders: d.boot_loaders.length === 0 ? INHERIT : d.boot_loaders, parent: '' };
  }
  if (kind === 'profile') {
    const p = o as Profile;
    return {
      ...base,
      depth: p.parent === '' ? 1 : 2,
      is_subobject: p.parent !== '',
      dhcp_tag: '',
      filename: '',
      menu: '',
      proxy: INHERIT,
      redhat_management_key: INHERIT,
      repos: [],
      server: INHERIT,
      boot_loaders: p.boot_loaders.length === 0 ? INHERIT : p.boot_loaders,
    };
  }
  const s = o as System;
  const interfaces: Record<string, CobblerRecord> = {};
  for (const [n, i] of Object.entries(s.interfaces)) interfaces[n] = cobblerInterface(i, n === firstInterface(s) ? s.virt_bridge : INHERIT);
  return {
    ...base,
    depth: 2,
    interfaces,
    image: '',
    enable_ipxe: INHERIT,
    filename: INHERIT,
    proxy: INHERIT,
    server: INHERIT,
    redhat_management_key: INHERIT,
    repos_enabled: false,
    ipv6_autoconfiguration: false,
    ipv6_default_device: '',
    power_type: cobblerPowerType(s.power_type),
    power_options: '',
    power_identity_file: '',
    serial_device: -1,
    serial_baud_rate: -1,
    boot_loaders: s.boot_loaders.length === 0 ? INHERIT : s.boot_loaders,
  };
}

/** forge's power driver under Cobbler's name (what a Cobbler client set and compares against). */
export function cobblerPowerType(t: System['power_type']): string {
  return t === 'none' ? '' : t === 'ipmi' ? 'ipmilanplus' : t === 'libvirt' ? 'virsh' : t;
}

function firstInterface(s: System): string | undefined {
  return Object.keys(s.interfaces)[0];
}

function hostPort(base: string): string {
  const hp = base.replace(/^https?:\/\//, '');
  return hp.endsWith(':80') ? hp.slice(0, -3) : hp;
}

/**
 * A rendered (blended, flattened) record. `vars` is forge's blend of the
 * object; `plain` the same blend without autoinstall_meta promoted to the top
 * level (Cobbler's blender does not promote: that happens in its templar).
 */
export function renderedRecord(kind: 'system' | 'profile', vars: Vars, plain: Vars, obj: ForgeObject): CobblerRecord {
  const rec: CobblerRecord = { ...structuredClone(plain) };
  const http = hostPort(String(vars['base_url'] ?? ''));
  rec['http_server'] = http;
  rec['server'] = String(vars['server'] ?? '').replace(/:\d+$/, '');
  rec['next_server_v4'] = vars['next_server'];
  rec['autoinstall_meta'] = dictToString(vars['autoinstall_meta']);
  rec['kernel_options'] = dictToString(vars['kernel_options']);
  rec['kernel_options_post'] = dictToString(vars['kernel_options_post']);
  const meta = (vars['autoinstall_meta'] ?? {}) as OptionDict;
  rec['mgmt_parameters'] = { ...meta };
  rec['mgmt_classes'] = kind === 'system' ? {} : [];
  rec['repos'] = '';
  rec['repo_data'] = [];
  rec['template_files'] = '';
  rec['boot_files'] = '';
  rec['fetchable_files'] = '';
  rec['owners'] = ['admin'];
  // koan downloads these: forge's own URLs, never a server-side path.
  rec['kernel'] = vars['kernel_url'];
  rec['initrd'] = vars['initrd_url'];
  const url = `http://${http}/cblr/svc/op/autoinstall/${kind}/${encodeURIComponent(obj.name)}`;
  rec['autoinstall'] = vars['autoinstall'];
  rec['autoinst'] = vars['autoinstall'] === '' ? '' : url;
  rec['kickstart'] = rec['autoinst'];
  rec['ks_meta'] = rec['autoinstall_meta'];
  rec['distro'] = vars['distro_name'];
  rec['distro_name'] = vars['distro_name'];
  rec['name'] = obj.name;
  rec['uid'] = obj.name;
  rec['ctime'] = epoch(obj.ctime);
  rec['mtime'] = epoch(obj.mtime);
  for (const k of ['base_url', 'autoinstall_url', 'kernel_url', 'initrd_url', 'kernel_cmdline', 'interfaces']) delete rec[k];
  if (kind === 'system') {
    const s = obj as System;
    rec['profile'] = s.profile;
    rec['profile_name'] = s.profile;
    rec['system_name'] = s.name;
    rec['image'] = '';
    const ifaces: Record<string, CobblerRecord> = {};
    for (const [n, i] of Object.entries(s.interfaces)) {
      ifaces[n] = cobblerInterface(i, vars['virt_bridge']);
    }
    rec['interfaces'] = ifaces;
    // blender: every interface field also as FIELD_IFNAME
    for (const k of Object.keys(rec)) if (/_[^_]+$/.test(k) && Object.keys(s.interfaces).some((n) => k.endsWith(`_${n}`))) delete rec[k];
    for (const [n, i] of Object.entries(ifaces)) for (const [k, v] of Object.entries(i)) rec[`${k}_${n}`] = v;
    // Cobbler's blend carries the power fields (forge's leaves power_pass out: templates are public).
    for (const k of ['power_address', 'power_id', 'power_pass', 'power_user'] as const) rec[k] = s[k];
    rec['power_type'] = cobblerPowerType(s.power_type);
    rec['power_options'] = '';
    rec['power_identity_file'] = '';
  } else {
    rec['profile_name'] = obj.name;
    delete rec['system_name'];
    delete rec['hostname'];
  }
  return stripNone(rec) as CobblerRecord;
}
