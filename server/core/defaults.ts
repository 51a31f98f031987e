/**
 * Default values of every object field. Profiles and systems default their
 * inheritable scalars to `<<inherit>>` (Cobbler's convention) so that a value
 * set higher up the chain, or in the settings, shows through.
 */
import { INHERIT } from './model.js';
import type { Distro, NetInterface, Profile, Subnet, System, VirtFields } from './model.js';

export function defaultDistro(name: string): Distro {
  return {
    name,
    comment: '',
    ctime: '',
    mtime: '',
    arch: 'x86_64',
    breed: 'generic',
    os_version: '',
    kernel: '',
    initrd: '',
    kernel_options: {},
    kernel_options_post: {},
    autoinstall_meta: {},
    boot_loaders: [],
    tree: '',
  };
}

/** Profiles and systems inherit every virt_* field until one is set (core/model.ts VirtFields). */
function inheritedVirt(): VirtFields {
  return {
    virt_type: INHERIT,
    virt_cpus: INHERIT,
    virt_ram: INHERIT,
    virt_file_size: INHERIT,
    virt_path: INHERIT,
    virt_bridge: INHERIT,
    virt_disk_driver: INHERIT,
    virt_auto_boot: INHERIT,
  };
}

export function defaultProfile(name: string): Profile {
  return {
    name,
    comment: '',
    ctime: '',
    mtime: '',
    distro: '',
    parent: '',
    autoinstall: INHERIT,
    autoinstall_meta: {},
    kernel_options: {},
    kernel_options_post: {},
    name_servers: [],
    name_servers_search: [],
    enable_ipxe: INHERIT,
    enable_menu: INHERIT,
    boot_loaders: [],
    ...inheritedVirt(),
  };
}

export function defaultInterface(): NetInterface {
  return {
    mac_address: '',
    ip_address: '',
    netmask: '',
    if_gateway: '',
    static: false,
    dns_name: '',
    mtu: 0,
    interface_type: 'na',
    interface_master: '',
    bonding_opts: '',
    static_routes: [],
  };
}

export function defaultSystem(name: string): System {
  return {
    name,
    comment: '',
    ctime: '',
    mtime: '',
    profile: '',
    hostname: '',
    gateway: '',
    name_servers: [],
    name_servers_search: [],
    netboot_enabled: true,
    status: 'production',
    autoinstall: INHERIT,
    autoinstall_meta: {},
    kernel_options: {},
    kernel_options_post: {},
    virt_pxe_boot: false,
    boot_loaders: [],
    interfaces: {},
    power_type: 'none',
    power_address: '',
    power_user: '',
    power_pass: '',
    power_id: '',
    power_ca: '',
    ...inheritedVirt(),
  };
}

export function defaultSubnet(name: string): Subnet {
  return {
    name,
    comment: '',
    ctime: '',
    mtime: '',
    cidr: '',
    range: [],
    router: '',
    dns: [],
    domain: '',
    dns_search: [],
    lease_time: 0,
    next_server: '',
    mtu: 0,
    authoritative: false,
    unknown: '',
    servers: [],
  };
}
