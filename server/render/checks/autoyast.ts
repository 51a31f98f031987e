/**
 * Structural AutoYaST checks, shared by `forge validate` and the tests.
 * Encoded from the AutoYaST schema's RELAX NG (compact) sources for the
 * sections forge emits in detail (SLE 15 SP6/SP7 yast2-schema is assembled
 * from them): yast2-network src/autoyast-rnc/networking.rnc and
 * yast2-bootloader src/autoyast-rnc/bootloader.rnc. Rules:
 *  - the root is <profile> in the yast2ns namespace, config:type in the
 *    configns namespace, with values boolean|integer|list|symbol; a boolean
 *    holds true/false, an integer digits;
 *  - lists the schema declares `LIST, x+` hold at least one x: net-udev
 *    (rule), nameservers (nameserver), searchlist (search), routes (route),
 *    modules (module_entry), s390-devices (device), initrd_modules, sections;
 *  - networking, dns, interface, rule, route, bootloader and bootloader/global
 *    hold only the elements the schema names, and a route has a destination;
 *  - bootloader/global/serial is a GRUB 2 `serial` command (--unit, --speed,
 *    --word, --parity, --stop, --port; numbers where GRUB wants numbers);
 *  - the other sections forge emits, with each child's type as the schema
 *    gives it (SECTIONS below): yast2-autoinstallation src/autoyast-rnc/
 *    general.rnc, partitioning.rnc, software.rnc, scripts.rnc; yast2-users
 *    users.rnc; yast2-services-manager services-manager.rnc; yast2-country
 *    keyboard.rnc, language.rnc, timezone.rnc. common.rnc makes the type
 *    attribute (t, type or config:type) required for BOOLEAN, INTEGER, SYMBOL
 *    and LIST and optional for MAP and STRING, so a typed child without it
 *    is refused, as the schema does;
 *  - a hands-off install: general/mode/confirm false, a partitioning drive,
 *    software, users with root.
 */
import { child, childrenNamed, parseXml, XmlError, type XmlElement } from './xml.js';

export interface Problem {
  line: number;
  message: string;
}

const YAST_NS = 'http://www.suse.com/1.0/yast2ns';
const CONFIG_NS = 'http://www.suse.com/1.0/configns';

/** Lists the schema declares with `+` (one or more) and what they hold. */
const NONEMPTY_LISTS: Record<string, string> = {
  'net-udev': 'rule', nameservers: 'nameserver', searchlist: 'search', routes: 'route', modules: 'module_entry',
  's390-devices': 'device', initrd_modules: 'initrd_module', sections: 'section',
};

const WIRELESS = [
  'wireless_auth_mode', 'wireless_ap', 'wireless_bitrate', 'wireless_ca_cert', 'wireless_channel', 'wireless_client_cert',
  'wireless_client_key', 'wireless_client_key_password', 'wireless_default_key', 'wireless_eap_auth', 'wireless_eap_mode',
  'wireless_essid', 'wireless_frequency', 'wireless_key', 'wireless_key_0', 'wireless_key_1', 'wireless_key_2', 'wireless_key_3',
  'wireless_key_length', 'wireless_mode', 'wireless_nick', 'wireless_nwid', 'wireless_peap_version', 'wireless_power',
  'wireless_wpa_anonid', 'wireless_wpa_identity', 'wireless_wpa_password', 'wireless_wpa_psk',
];

/** Element -> the children networking.rnc / bootloader.rnc allow (path-qualified where names repeat). */
const ALLOWED: Record<string, string[]> = {
  networking: ['setup_before_proposal', 'start_immediately', 'keep_install_network', 'virt_bridge_proposal', 'backend', 'ipv6', 'managed',
    'strict_IP_check_timeout', 'interfaces', 'modules', 'dhcp_options', 'routing', 'dns', 's390-devices', 'net-udev'],
  'networking/dns': ['dhcp_hostname', 'write_hostname', 'resolv_conf_policy', 'hostname', 'domain', 'nameservers', 'searchlist'],
  'networking/interfaces': ['interface', 'listentry'],
  'networking/interfaces/interface': ['device', 'name', 'description', 'lladdr', 'bootproto', 'startmode', 'ifplugd_priority', 'usercontrol',
    'dhclient_set_hostname', 'ipaddr', 'prefixlen', 'remote_ipaddr', 'netmask', 'bonding_master',
    ...Array.from({ length: 10 }, (_, i) => `bonding_slave${i}`), 'bonding_module_opts', 'aliases', 'broadcast', 'network', 'mtu',
    'ethtool_options', 'wireless', ...WIRELESS, 'bridge', 'bridge_ports', 'bridge_stp', 'bridge_forward_delay', 'bridge_forwarddelay',
    'etherdevice', 'vlan_id', 'dhclient_set_down_link', 'dhclient_set_default_route', 'zone', 'firewall'],
  'networking/net-udev': ['rule', 'listentry'],
  'networking/net-udev/rule': ['rule', 'value', 'name'],
  'networking/routing': ['ip_forward', 'ipv4_forward', 'ipv6_forward', 'routes'],
  'networking/routing/routes': ['route', 'listentry'],
  'networking/routing/routes/route': ['destination', 'netmask', 'device', 'gateway', 'extrapara'],
  bootloader: ['activate', 'global', 'initrd_modules', 'loader_device', 'loader_type', 'location', 'repl_mbr', 'device_map', 'sections'],
  'bootloader/global': ['append', 'append_failsafe', 'cryptodisk', 'distributor', 'gfxbackground', 'gfxmode', 'gfxtheme', 'failsafe_disabled',
    'hiddenmenu', 'os_prober', 'secure_boot', 'update_nvram', 'xen_append', 'xen_kernel_append', 'boot_custom', 'generic_mbr', 'trusted_grub',
    'serial', 'terminal', 'lines_cache_id', 'timeout', 'gfxmenu', 'default', 'activate', 'boot_root', 'boot_boot', 'boot_extended', 'boot_mbr',
    'stage1_dev', 'cpu_mitigations', 'password', 'vgamode'],
};

/** A child's type in the .rnc sources: common.rnc's STRING, BOOLEAN, INTEGER, SYMBOL, MAP, LIST. */
type Kind = 'string' | 'boolean' | 'integer' | 'symbol' | 'map' | 'list';
const B = 'boolean', I = 'integer', S = 'string', Y = 'symbol', M = 'map', L = 'list';

/** Element path -> the children its .rnc allows, with their types (see the header for the sources). */
const SECTIONS: Record<string, Record<string, Kind>> = {
  general: { mode: M, 'ask-list': L, 'semi-automatic': L, 'minimal-configuration': B, 'signature-handling': M, self_update: B,
    self_update_url: S, proposals: L, storage: M, wait: M, cio_ignore: B },
  'general/mode': { activate_systemd_default_target: B, confirm: B, confirm_base_product_license: B, final_halt: B, final_reboot: B,
    final_restart_services: B, forceboot: B, halt: B, max_systemd_wait: I, ntp_sync_time_before_installation: S, second_stage: B },
  'general/signature-handling': { accept_unsigned_file: B, accept_file_without_checksum: B, accept_verification_failed: B,
    accept_unknown_gpg_key: B, import_gpg_key: B, accept_non_trusted_gpg_key: B },
  partitioning: { drive: M },
  'partitioning/drive': { device: S, initialize: B, is_lvm_vg: B, lvm2: B, keep_unknown_lv: B, pesize: S, type: Y, use: S, imsmdriver: Y,
    disklabel: S, enable_snapshots: B, skip_list: L, partitions: L, raid_options: M, bcache_options: M, btrfs_options: M },
  'partitioning/drive/partitions': { partition: M },
  'partitioning/drive/partitions/partition': { create: B, crypt: S, crypt_fs: B, crypt_method: Y, crypt_key: S, crypt_pbkdf: Y,
    crypt_label: S, crypt_cipher: S, crypt_key_size: I, crypt_pervasive_apqns: L, crypt_pervasive_key_type: S, filesystem: Y, format: B,
    fs_options: M, fstopt: S, label: S, uuid: S, loop_fs: B, lv_name: S, lvm_group: S, mkfs_options: S, mount: S, mountby: Y,
    filesystem_id: I, partition_id: I, partition_nr: I, partition_type: S, resize: B, raid_type: S, region: L, size: S, stripes: I,
    stripesize: I, pool: B, used_pool: S, subvolumes_prefix: S, device_order: L, raid_name: S, raid_options: M, subvolumes: L,
    create_subvolumes: B, bcache_backing_for: S, bcache_caching_for: L, btrfs_name: S, quotas: B },
  software: { kernel: S, packages: L, 'post-packages': L, 'post-patterns': L, 'remove-packages': L, patterns: L, 'remove-patterns': L,
    products: L, 'remove-products': L, do_online_update: B, install_recommended: B, instsource: S },
  ...Object.fromEntries([['packages', 'package'], ['post-packages', 'package'], ['remove-packages', 'package'], ['patterns', 'pattern'],
    ['post-patterns', 'pattern'], ['remove-patterns', 'pattern'], ['products', 'product'], ['remove-products', 'product']]
    .map(([l, item]) => [`software/${l!}`, { [item!]: S }])),
  scripts: { 'chroot-scripts': L, 'post-scripts': L, 'pre-scripts': L, 'init-scripts': L, 'postpartitioning-scripts': L },
  ...Object.fromEntries(['chroot-scripts', 'post-scripts', 'pre-scripts', 'init-scripts', 'postpartitioning-scripts'].map((l) => [`scripts/${l}`, { script: M }])),
  ...Object.fromEntries(['post-scripts', 'pre-scripts', 'postpartitioning-scripts'].map((l) => [`scripts/${l}/script`,
    { filename: S, interpreter: S, location: S, source: S, debug: B, feedback: B, feedback_type: S, 'param-list': L, rerun: B, notification: S }])),
  'scripts/chroot-scripts/script': { chrooted: B, filename: S, interpreter: S, location: S, source: S, debug: B, feedback: B, feedback_type: S,
    'param-list': L, rerun: B, notification: S },
  // An init script has no interpreter (scripts.rnc autoinstall-init-script): it is always a shell script.
  'scripts/init-scripts/script': { debug: B, filename: S, location: S, source: S },
  users: { user: M },
  'users/user': { encrypted: B, fullname: S, surname: S, forename: S, gid: S, home: S, home_btrfs_subvolume: B, shell: S, uid: S,
    user_password: S, username: S, group: S, groups: S, password_settings: M, authorized_keys: L },
  'users/user/authorized_keys': { authorized_key: S },
  'services-manager': { default_target: S, services: M },
  'services-manager/services': { disable: L, enable: L, on_demand: L },
  ...Object.fromEntries(['disable', 'enable', 'on_demand'].map((l) => [`services-manager/services/${l}`, { service: S }])),
  keyboard: { keyboard_values: M, keymap: S },
  language: { language: S, languages: S },
  timezone: { hwclock: S, timezone: S },
};

/** Lists in SECTIONS whose .rnc says `item+` (one or more); the others may be empty. */
const NONEMPTY_PATHS = new Set([
  ...['packages', 'post-packages', 'remove-packages', 'patterns', 'post-patterns', 'remove-patterns', 'products', 'remove-products'].map((l) => `software/${l}`),
  ...['chroot-scripts', 'post-scripts', 'pre-scripts', 'init-scripts', 'postpartitioning-scripts'].map((l) => `scripts/${l}`),
]);

/** Top-level sections that are lists (partitioning.rnc, users.rnc: LIST, drive* / user*). */
const TOP_LISTS = new Set(['partitioning', 'users']);

/** The item name of a list in SECTIONS (its one child), so `listentry` items are checked as that. */
function listItem(path: string): string | undefined {
  const cut = path.lastIndexOf('/');
  const isList = cut < 0 ? TOP_LISTS.has(path) : SECTIONS[path.slice(0, cut)]?.[path.slice(cut + 1)] === 'list';
  const kids = SECTIONS[path];
  return isList && kids !== undefined ? Object.keys(kids)[0] : undefined;
}

/** Values networking.rnc / bootloader.rnc / timezone.rnc restrict to a choice. */
const CHOICES: Record<string, string[]> = {
  'networking/interfaces/interface/bridge': ['yes', 'no'],
  'networking/interfaces/interface/bridge_stp': ['on', 'off'],
  'networking/interfaces/interface/firewall': ['yes', 'no'],
  'networking/interfaces/interface/dhclient_set_default_route': ['yes', 'no'],
  'bootloader/global/cpu_mitigations': ['nosmt', 'auto', 'off', 'manual'],
  'timezone/hwclock': ['localtime', 'UTC'],
};

/** GRUB 2 `serial` options (GRUB manual, "serial"): name -> value rule. */
const GRUB_SERIAL: Record<string, RegExp> = {
  unit: /^\d+$/, port: /^(0x[0-9a-fA-F]+|\d+|[a-z]+)$/, speed: /^\d+$/, word: /^[5-8]$/, parity: /^(no|odd|even)$/, stop: /^[12]$/,
  base_clock: /^\d+$/, rtscts: /^(on|off)$/,
};

export function checkGrubSerial(cmd: string): string[] {
  const out: string[] = [];
  const words = cmd.trim().split(/\s+/);
  if (words[0] !== 'serial') out.push(`serial: not a GRUB serial command: "${cmd}"`);
  for (const w of words.slice(1)) {
    const m = /^--([a-z_-]+)=(.*)$/.exec(w);
    if (m === null) {
      // GRUB also takes a bare unit/port word (serial com0).
      if (!/^(com|efi)\d+$/.test(w)) out.push(`serial: "${w}" is not --option=value`);
      continue;
    }
    const rule = GRUB_SERIAL[m[1]!.replace(/-/g, '_')];
    if (rule === undefined) out.push(`serial: GRUB has no --${m[1]} option`);
    else if (!rule.test(m[2]!)) out.push(`serial: --${m[1]}=${m[2]} is not valid (${rule.source})`);
  }
  return out;
}

export function checkAutoyast(text: string): Problem[] {
  const problems: Problem[] = [];
  const p = (line: number, message: string): void => {
    problems.push({ line, message });
  };
  if (/\{\{|\}\}|\{%|%\}|\{#|#\}/.test(text)) p(1, 'leftover template syntax');
  let root: XmlElement;
  try {
    root = parseXml(text);
  } catch (e) {
    if (e instanceof XmlError) return [{ line: e.line, message: `not well-formed XML: ${e.message}` }];
    throw e;
  }
  if (root.name !== 'profile') p(root.line, `root element is <${root.name}>, not <profile>`);
  if (root.attrs['xmlns'] !== YAST_NS) p(root.line, `profile is not in the ${YAST_NS} namespace`);
  const cfg = Object.entries(root.attrs).find(([, v]) => v === CONFIG_NS)?.[0]?.replace(/^xmlns:/, '');
  if (cfg === undefined) p(root.line, `no xmlns:config="${CONFIG_NS}"`);

  const walk = (el: XmlElement, path: string): void => {
    const type = cfg !== undefined ? el.attrs[`${cfg}:type`] : undefined;
    if (type !== undefined) {
      if (!['boolean', 'integer', 'list', 'symbol'].includes(type)) p(el.line, `${path}: config:type "${type}" is not boolean, integer, list or symbol`);
      if (type === 'boolean' && !/^(true|false)$/.test(el.text.trim())) p(el.line, `${path}: boolean "${el.text.trim()}" is not true or false`);
      if (type === 'integer' && !/^-?\d+$/.test(el.text.trim())) p(el.line, `${path}: integer "${el.text.trim()}" is not a number`);
    }
    const item = listItem(path);
    const listOf = SECTIONS[path] !== undefined ? item : NONEMPTY_LISTS[el.name];
    if (listOf !== undefined && el.children.length === 0 && (SECTIONS[path] === undefined || NONEMPTY_PATHS.has(path))) {
      p(el.line, `${path}: element "${el.name}" incomplete (the schema wants at least one ${listOf})`);
    }
    const allowed = ALLOWED[path] ?? (SECTIONS[path] !== undefined ? [...Object.keys(SECTIONS[path]), ...(item !== undefined ? ['listentry'] : [])] : undefined);
    if (allowed !== undefined) {
      for (const c of el.children) if (!allowed.includes(c.name)) p(c.line, `${path}: element "${c.name}" not allowed here`);
    }
    const kids = SECTIONS[path];
    if (kids !== undefined) {
      for (const c of el.children) {
        const want = kids[c.name === 'listentry' && item !== undefined ? item : c.name];
        if (want === undefined) continue;
        const given = c.attrs['t'] ?? c.attrs['type'] ?? (cfg !== undefined ? c.attrs[`${cfg}:type`] : undefined);
        // common.rnc: BOOLEAN, INTEGER, SYMBOL and LIST require the type attribute; MAP and STRING may carry their own.
        if (want !== 'string' && want !== 'map' && given !== want) {
          p(c.line, `${path}/${c.name}: needs config:type="${want}" (the schema's ${want.toUpperCase()})${given !== undefined ? `, not "${given}"` : ''}`);
        } else if ((want === 'string' || want === 'map') && given !== undefined && given !== want) {
          p(c.line, `${path}/${c.name}: is a ${want.toUpperCase()} in the schema, not config:type="${given}"`);
        }
      }
    }
    const choice = CHOICES[path];
    if (choice !== undefined && !choice.includes(el.text.trim())) p(el.line, `${path}: "${el.text.trim()}" is not one of ${choice.join(', ')}`);
    if (path === 'networking/routing/routes/route' && child(el, 'destination') === undefined) p(el.line, `${path}: a route needs a destination`);
    if (path === 'bootloader/global/serial') for (const m of checkGrubSerial(el.text)) p(el.line, m);
    for (const c of el.children) {
      // Items of a list are <listentry> or their own name; rules are written for the name.
      const name = c.name === 'listentry' && listOf !== undefined ? listOf : c.name;
      walk(c, path === '' ? name : `${path}/${name}`);
    }
  };
  for (const c of root.children) {
    const given = c.attrs['t'] ?? c.attrs['type'] ?? (cfg !== undefined ? c.attrs[`${cfg}:type`] : undefined);
    if (TOP_LISTS.has(c.name) && given !== 'list') p(c.line, `${c.name}: needs config:type="list" (the schema's LIST)`);
    walk(c, c.name);
  }

  const general = child(root, 'general');
  const confirm = general !== undefined ? child(child(general, 'mode') ?? general, 'confirm') : undefined;
  if (confirm === undefined || confirm.text.trim() !== 'false') p(root.line, 'general/mode/confirm is not false: the install would stop for confirmation');
  const part = child(root, 'partitioning');
  if (part === undefined || childrenNamed(part, 'drive').length === 0) p(root.line, 'no partitioning/drive');
  if (child(root, 'software') === undefined) p(root.line, 'no software section');
  const users = child(root, 'users');
  if (users === undefined || !childrenNamed(users, 'user').some((u) => child(u, 'username')?.text.trim() === 'root')) p(root.line, 'no users/user for root');
  if (child(root, 'bootloader') === undefined) p(root.line, 'no bootloader section');
  return problems;
}
