/**
 * Cobbler 3.3 data directories written by tests, in the layout Cobbler's file
 * serializer writes (collections/KIND/NAME.json, one object per file, the
 * item's attributes without the leading underscore, unresolved values such as
 * `<<inherit>>` kept) and with every attribute a 3.3 item carries, so the
 * importer sees what a real /var/lib/cobbler holds, not a trimmed sample.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Rec = Record<string, unknown>;
const I = '<<inherit>>';

function itemBase(name: string, extra: Rec): Rec {
  return {
    name,
    uid: `${name.replace(/[^a-z0-9]/g, '')}0123456789abcdef`.slice(0, 32),
    ctime: 1700000000.25,
    mtime: 1700000100.5,
    depth: 0,
    comment: '',
    owners: I,
    kernel_options: {},
    kernel_options_post: {},
    autoinstall_meta: {},
    fetchable_files: {},
    boot_files: {},
    template_files: {},
    mgmt_classes: [],
    mgmt_parameters: {},
    is_subobject: false,
    ...extra,
  };
}

export function distro(name: string, extra: Rec = {}): Rec {
  return itemBase(name, {
    arch: 'x86_64',
    breed: 'redhat',
    os_version: 'rhel9',
    kernel: `/var/www/cobbler/distro_mirror/${name}/images/pxeboot/vmlinuz`,
    initrd: `/var/www/cobbler/distro_mirror/${name}/images/pxeboot/initrd.img`,
    boot_loaders: I,
    redhat_management_key: '',
    source_repos: [],
    tree_build_time: 0.0,
    remote_boot_kernel: '',
    remote_grub_kernel: '',
    remote_boot_initrd: '',
    remote_grub_initrd: '',
    supported_boot_loaders: ['grub', 'pxe', 'ipxe'],
    owners: ['admin'],
    ...extra,
  });
}

export function profile(name: string, extra: Rec = {}): Rec {
  return itemBase(name, {
    parent: '',
    distro: '',
    autoinstall: I,
    boot_loaders: I,
    dhcp_tag: '',
    enable_ipxe: I,
    enable_menu: I,
    name_servers: [],
    name_servers_search: [],
    filename: '',
    proxy: I,
    redhat_management_key: I,
    repos: [],
    server: I,
    menu: '',
    virt_auto_boot: I,
    virt_bridge: I,
    virt_cpus: 1,
    virt_disk_driver: I,
    virt_file_size: I,
    virt_path: '',
    virt_ram: I,
    virt_type: I,
    kernel_options: I,
    kernel_options_post: I,
    autoinstall_meta: I,
    boot_files: I,
    fetchable_files: I,
    mgmt_classes: I,
    mgmt_parameters: I,
    ...extra,
  });
}

export function iface(extra: Rec = {}): Rec {
  return {
    bonding_opts: '',
    bridge_opts: '',
    cnames: [],
    connected_mode: false,
    dhcp_tag: '',
    dns_name: '',
    if_gateway: '',
    interface_master: '',
    interface_type: 'na',
    ip_address: '',
    ipv6_address: '',
    ipv6_default_gateway: '',
    ipv6_mtu: '',
    ipv6_prefix: '',
    ipv6_secondaries: [],
    ipv6_static_routes: [],
    mac_address: '',
    management: false,
    mtu: '',
    netmask: '',
    static: false,
    static_routes: [],
    virt_bridge: I,
    ...extra,
  };
}

export function system(name: string, extra: Rec = {}): Rec {
  return itemBase(name, {
    interfaces: {},
    ipv6_autoconfiguration: false,
    repos_enabled: false,
    autoinstall: I,
    boot_loaders: I,
    enable_ipxe: I,
    gateway: '',
    hostname: '',
    image: '',
    ipv6_default_device: '',
    name_servers: [],
    name_servers_search: [],
    netboot_enabled: false,
    filename: I,
    power_address: '',
    power_id: '',
    power_pass: '',
    power_type: '',
    power_user: '',
    power_options: '',
    power_identity_file: '',
    profile: '',
    proxy: I,
    redhat_management_key: I,
    server: I,
    status: '',
    virt_auto_boot: I,
    virt_cpus: I,
    virt_disk_driver: I,
    virt_file_size: I,
    virt_path: I,
    virt_pxe_boot: false,
    virt_ram: I,
    virt_type: I,
    serial_device: -1,
    serial_baud_rate: -1,
    kernel_options: I,
    kernel_options_post: I,
    autoinstall_meta: I,
    boot_files: I,
    fetchable_files: I,
    mgmt_classes: I,
    mgmt_parameters: I,
    ...extra,
  });
}

export function repo(name: string, extra: Rec = {}): Rec {
  return itemBase(name, {
    arch: 'x86_64',
    breed: 'yum',
    mirror: `http://mirror.example/${name}/`,
    mirror_locally: false,
    keep_updated: true,
    priority: 99,
    rpm_list: [],
    createrepo_flags: I,
    environment: {},
    os_version: '',
    proxy: I,
    yumopts: {},
    rsyncopts: {},
    apt_components: [],
    apt_dists: [],
    mirror_type: 'baseurl',
    owners: ['admin'],
    ...extra,
  });
}

export function menu(name: string, extra: Rec = {}): Rec {
  return itemBase(name, { parent: '', display_name: name, ...extra });
}

export interface CobblerDir {
  distros?: Rec[];
  profiles?: Rec[];
  systems?: Rec[];
  repos?: Rec[];
  menus?: Rec[];
  images?: Rec[];
  /** settings.yaml text */
  settings?: string;
  /** settings.d/NAME -> text */
  settingsD?: Record<string, string>;
}

export function writeCobblerDir(dir: string, d: CobblerDir): void {
  for (const kind of ['distros', 'profiles', 'systems', 'repos', 'menus', 'images'] as const) {
    const sub = join(dir, 'collections', kind);
    mkdirSync(sub, { recursive: true });
    for (const o of d[kind] ?? []) writeFileSync(join(sub, `${String(o['name'])}.json`), JSON.stringify(o, null, 4));
  }
  if (d.settings !== undefined) writeFileSync(join(dir, 'settings.yaml'), d.settings);
  if (d.settingsD !== undefined) {
    mkdirSync(join(dir, 'settings.d'), { recursive: true });
    for (const [n, t] of Object.entries(d.settingsD)) writeFileSync(join(dir, 'settings.d', n), t);
  }
}
