/**
 * The forge object model: distros, profiles, systems (with interfaces),
 * events and DHCP leases. Field names follow Cobbler's (snake_case) so that
 * operators' habits, the CLI flags (`--virt-ram` <-> `virt_ram`) and the
 * template variables all line up.
 *
 * Pure types and constants only: no I/O. Validation lives in core/validate.ts,
 * inheritance in core/blend.ts.
 */

/** The marker a profile/system field holds to take its parent's value. */
export const INHERIT = '<<inherit>>';
export type Inherit = typeof INHERIT;

export const OBJECT_KINDS = ['distro', 'profile', 'system', 'subnet'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

export const BREEDS = ['redhat', 'debian', 'ubuntu', 'suse', 'generic'] as const;
export type Breed = (typeof BREEDS)[number];

export const ARCHES = ['x86_64', 'i386', 'aarch64', 'ppc64le', 's390x'] as const;
export type Arch = (typeof ARCHES)[number];

export const VIRT_TYPES = ['kvm', 'qemu', 'xenpv', 'vmware'] as const;
export type VirtType = (typeof VIRT_TYPES)[number];

/** Power drivers (Cobbler's power_type, reduced to the ones forge drives itself). */
export const POWER_TYPES = ['none', 'libvirt', 'ipmi', 'redfish'] as const;
export type PowerType = (typeof POWER_TYPES)[number];

export const STATUSES = ['development', 'testing', 'acceptance', 'production'] as const;
export type SystemStatus = (typeof STATUSES)[number];

/**
 * A key/value dict such as kernel_options or autoinstall_meta.
 * A `null` value is a flag without a value (`quiet`); a `!key` entry deletes
 * `key` inherited from a parent when blending.
 */
export type OptionDict = Record<string, string | null>;

/** Fields every object has. */
export interface BaseObject {
  name: string;
  comment: string;
  /** ISO-8601 creation and modification times, set by the store. */
  ctime: string;
  mtime: string;
}

export interface Distro extends BaseObject {
  arch: Arch;
  breed: Breed;
  os_version: string;
  /** Path on the server, or an http(s) URL. */
  kernel: string;
  initrd: string;
  kernel_options: OptionDict;
  kernel_options_post: OptionDict;
  autoinstall_meta: OptionDict;
  boot_loaders: string[];
  /** Install tree served over HTTP (set by `forge import`), or ''. */
  tree: string;
}

/** Scalar fields of profiles and systems may hold INHERIT (the default). */
export type Inheritable<T> = T | Inherit;

export interface VirtFields {
  virt_type: Inheritable<VirtType>;
  virt_cpus: Inheritable<number>;
  /** MiB */
  virt_ram: Inheritable<number>;
  /** GiB */
  virt_file_size: Inheritable<number>;
  virt_path: Inheritable<string>;
  virt_bridge: Inheritable<string>;
  virt_disk_driver: Inheritable<'raw' | 'qcow2'>;
  virt_auto_boot: Inheritable<boolean>;
}

export interface Profile extends BaseObject, VirtFields {
  /** Exactly one of distro and parent is non-empty. */
  distro: string;
  parent: string;
  /** Template name relative to the templates root, e.g. `preseed/default.seed`. */
  autoinstall: Inheritable<string>;
  autoinstall_meta: OptionDict;
  kernel_options: OptionDict;
  kernel_options_post: OptionDict;
  name_servers: string[];
  name_servers_search: string[];
  enable_ipxe: Inheritable<boolean>;
  enable_menu: Inheritable<boolean>;
  boot_loaders: string[];
}

export const INTERFACE_TYPES = ['na', 'bond', 'bond_slave', 'bridge', 'bridge_slave'] as const;
export type InterfaceType = (typeof INTERFACE_TYPES)[number];

export interface NetInterface {
  /** Lower-case colon form aa:bb:cc:dd:ee:ff, or '' when unknown. */
  mac_address: string;
  ip_address: string;
  netmask: string;
  if_gateway: string;
  static: boolean;
  dns_name: string;
  /** 0 = unset (default MTU). */
  mtu: number;
  interface_type: InterfaceType;
  interface_master: string;
  bonding_opts: string;
  static_routes: string[];
}

export interface System extends BaseObject, VirtFields {
  profile: string;
  hostname: string;
  gateway: string;
  name_servers: string[];
  name_servers_search: string[];
  netboot_enabled: boolean;
  status: SystemStatus;
  autoinstall: Inheritable<string>;
  autoinstall_meta: OptionDict;
  kernel_options: OptionDict;
  kernel_options_post: OptionDict;
  virt_pxe_boot: boolean;
  boot_loaders: string[];
  /** Keyed by interface name (eth0, ...). */
  interfaces: Record<string, NetInterface>;
  /** How forge powers the machine (server/power/). */
  power_type: PowerType;
  /** libvirt URI, BMC host[:port] or Redfish https:// URL. */
  power_address: string;
  power_user: string;
  /** Secret: never in anonymous reads, blended variables or logs. */
  power_pass: string;
  /** libvirt domain name or Redfish system id ('' = the BMC's only system). */
  power_id: string;
  /** PEM file on the server to verify a Redfish BMC's certificate with ('' = the system CAs). */
  power_ca: string;
}

/**
 * What a stored subnet does with machines forge has no system for: '' takes the
 * server's dhcp_unknown; ignore, discover (the discovery image) or default
 * (default_profile) decide for this subnet only.
 */
export const SUBNET_UNKNOWN = ['', 'ignore', 'discover', 'default'] as const;
export type SubnetUnknown = (typeof SUBNET_UNKNOWN)[number];

/**
 * A network forge serves (managed DHCP) or knows (interface defaults): the
 * options its clients get and the defaults of the system interfaces on it.
 * Empty values fall back to the serve-wide dhcp_* settings (README "Subnets").
 */
export interface Subnet extends BaseObject {
  /** Network in CIDR form, normalised to its network address (10.96.0.0/24). */
  cidr: string;
  /** Dynamic pools, each `first,last` inside cidr. */
  range: string[];
  /** Option 3; '' = dhcp_router when it lies inside cidr, else none. */
  router: string;
  /** Option 6; [] = dhcp_dns. */
  dns: string[];
  /** Option 15; '' = dhcp_domain. */
  domain: string;
  /** Option 119 (RFC 3397); [] = none. */
  dns_search: string[];
  /** Seconds (option 51); 0 = dhcp_lease_time. */
  lease_time: number;
  /** siaddr / TFTP server; '' = next_server, else forge's address facing the client. */
  next_server: string;
  /** Option 26 interface MTU; 0 = not sent. */
  mtu: number;
  /** Answer INIT-REBOOT requests of clients without a record (RFC 2131 s4.3.2). */
  authoritative: boolean;
  /** Machines without a system on this subnet. */
  unknown: SubnetUnknown;
  /**
   * The forge servers (their server_name) that answer this subnet's DHCP; [] = every server
   * (one server, or several answering it together). README "Sites with several servers".
   */
  servers: string[];
}

export type ForgeObject = Distro | Profile | System | Subnet;
export interface KindMap {
  distro: Distro;
  profile: Profile;
  system: System;
  subnet: Subnet;
}

/**
 * Server-wide settings: the last link of the blending chain.
 * Loaded from config (see server/config.ts), not from the store.
 */
export interface Settings {
  /** Address installers use to reach forge (host or host:port for HTTP). */
  server: string;
  http_port: number;
  next_server: string;
  pxe_just_once: boolean;
  /** Minutes the install token still works after netboot is turned off (core/access.ts). */
  install_grace_minutes: number;
  default_name_servers: string[];
  default_name_servers_search: string[];
  default_virt_type: VirtType;
  default_virt_cpus: number;
  default_virt_ram: number;
  default_virt_file_size: number;
  default_virt_path: string;
  default_virt_bridge: string;
  default_virt_disk_driver: 'raw' | 'qcow2';
  kernel_options: OptionDict;
  autoinstall_meta: OptionDict;
}

/** Lifecycle events recorded per system (the install timeline): the table and each type's detail are in core/events.ts. */
export { EVENT_TYPES, type EventType } from './events.js';
import type { EventType } from './events.js';

export interface ForgeEvent {
  id: number;
  /** System name the event belongs to. */
  system: string;
  type: EventType;
  /** What recorded it: dhcp, tftp, http, api, agent, cli. */
  source: string;
  /** ISO-8601 time. */
  time: string;
  /** Structured detail; core/events.ts EventDetails says what each type carries. */
  detail: Record<string, unknown>;
}

export type LeaseState = 'offered' | 'bound' | 'released' | 'declined';

export interface Lease {
  mac: string;
  ip: string;
  state: LeaseState;
  /** Unix ms. */
  expires: number;
  hostname: string;
  /** Name of the system this lease belongs to, or '' for dynamic leases. */
  system: string;
}
