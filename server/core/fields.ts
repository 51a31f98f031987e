/**
 * The field tables of distros, profiles, systems, subnets and interfaces:
 * each spec checks/normalises a raw JSON value (core/validate.ts) and
 * documents the field (the CLI derives its flags and the OpenAPI document
 * its schemas from the same tables), and marks the secret ones
 * (core/secrets.ts). Values only.
 */
import { LEASE_MAX, MTU_MAX } from './subnet.js';
import { ARCHES, BREEDS, INTERFACE_TYPES, POWER_TYPES, STATUSES, SUBNET_UNKNOWN, VIRT_TYPES } from './model.js';
import type { NetInterface, ObjectKind } from './model.js';

export type FieldType =
  | 'name'
  | 'ref'
  | 'text'
  | 'int'
  | 'number'
  | 'bool'
  | 'enum'
  | 'dict'
  | 'list'
  | 'ipv4'
  | 'netmask'
  | 'mac'
  | 'hostname'
  | 'path'
  | 'template'
  | 'time';

export interface FieldSpec {
  type: FieldType;
  doc: string;
  /** Accepts `<<inherit>>`. */
  inherit?: boolean;
  values?: readonly string[];
  /** list item rule */
  item?: 'ip' | 'ipv4' | 'text' | 'name' | 'hostname' | 'range';
  min?: number;
  max?: number;
  /** Must be given on create. */
  required?: boolean;
  /** Set by the store, ignored on input except import. */
  readonly?: boolean;
  /** A credential: masked in anonymous reads, left out of blended variables and logs. */
  secret?: boolean;
}

export const NAME_RE = /^[A-Za-z0-9._-]+$/;
export const NAME_MAX = 128;

/**
 * Length limits of every free-form value (characters). A dict value holds a
 * password hash or an ssh public key (a 16k-bit RSA key is ~2.8k), a text
 * field a comment or a path; nothing legitimate comes near these, and with
 * them one object stays far below the 1 MB body limit's order of magnitude.
 */
export const LIMITS = {
  text: 4096,
  path: 4096,
  dictKey: 256,
  dictValue: 65536,
  dictEntries: 1024,
  listItems: 1024,
  listItem: 4096,
  interfaces: 64,
  time: 64,
} as const;

const base: Record<string, FieldSpec> = {
  name: { type: 'name', doc: 'unique name ([A-Za-z0-9._-], at most 128 characters)', required: true },
  comment: { type: 'text', doc: 'free-form comment' },
  ctime: { type: 'time', doc: 'creation time (set by the server)', readonly: true },
  mtime: { type: 'time', doc: 'modification time (set by the server)', readonly: true },
};

const virt: Record<string, FieldSpec> = {
  virt_type: { type: 'enum', values: VIRT_TYPES, inherit: true, doc: 'kvm, qemu, xenpv or vmware' },
  virt_cpus: { type: 'int', min: 1, max: 4096, inherit: true, doc: 'virtual CPUs' },
  virt_ram: { type: 'int', min: 1, max: 16 * 1024 * 1024, inherit: true, doc: 'RAM in MiB' },
  virt_file_size: { type: 'number', min: 0, max: 1024 * 1024, inherit: true, doc: 'disk size in GiB' },
  virt_path: { type: 'text', inherit: true, doc: 'disk location: directory, LVM volume group, /dev path or pool:NAME' },
  virt_bridge: { type: 'text', inherit: true, doc: 'host bridge for the NIC' },
  virt_disk_driver: { type: 'enum', values: ['raw', 'qcow2'], inherit: true, doc: 'raw or qcow2' },
  virt_auto_boot: { type: 'bool', inherit: true, doc: 'start the VM when the host boots' },
};

export const FIELDS: { [K in ObjectKind]: Record<string, FieldSpec> } = {
  distro: {
    ...base,
    arch: { type: 'enum', values: ARCHES, doc: 'architecture' },
    breed: { type: 'enum', values: BREEDS, doc: 'installer family' },
    os_version: { type: 'text', doc: 'OS version, e.g. bookworm, rhel9' },
    kernel: { type: 'path', required: true, doc: 'kernel: absolute path on the server or http(s) URL' },
    initrd: { type: 'path', required: true, doc: 'initrd: absolute path on the server or http(s) URL' },
    kernel_options: { type: 'dict', doc: 'kernel command line options (a=b c)' },
    kernel_options_post: { type: 'dict', doc: 'kernel options of the installed system' },
    autoinstall_meta: { type: 'dict', doc: 'template variables (a=b c=d)' },
    boot_loaders: { type: 'list', item: 'name', doc: 'boot loaders (ipxe, pxe, grub, shim)' },
    tree: { type: 'path', doc: 'install tree URL or path' },
  },
  profile: {
    ...base,
    distro: { type: 'ref', doc: 'distro (exactly one of distro and parent)' },
    parent: { type: 'ref', doc: 'parent profile (exactly one of distro and parent)' },
    autoinstall: { type: 'template', inherit: true, doc: 'template, relative to the templates root' },
    autoinstall_meta: { type: 'dict', doc: 'template variables (a=b c=d)' },
    kernel_options: { type: 'dict', doc: 'kernel command line options (a=b c)' },
    kernel_options_post: { type: 'dict', doc: 'kernel options of the installed system' },
    name_servers: { type: 'list', item: 'ip', doc: 'DNS servers' },
    name_servers_search: { type: 'list', item: 'hostname', doc: 'DNS search domains' },
    enable_ipxe: { type: 'bool', inherit: true, doc: 'boot through iPXE' },
    enable_menu: { type: 'bool', inherit: true, doc: 'show in the PXE menu' },
    boot_loaders: { type: 'list', item: 'name', doc: 'boot loaders (ipxe, pxe, grub, shim)' },
    ...virt,
  },
  system: {
    ...base,
    profile: { type: 'ref', required: true, doc: 'profile' },
    hostname: { type: 'hostname', doc: 'host name' },
    gateway: { type: 'ipv4', doc: 'default gateway' },
    name_servers: { type: 'list', item: 'ip', doc: 'DNS servers' },
    name_servers_search: { type: 'list', item: 'hostname', doc: 'DNS search domains' },
    netboot_enabled: { type: 'bool', doc: 'PXE boot into the installer (false: boot locally)' },
    status: { type: 'enum', values: STATUSES, doc: 'development, testing, acceptance or production' },
    autoinstall: { type: 'template', inherit: true, doc: 'template, relative to the templates root' },
    autoinstall_meta: { type: 'dict', doc: 'template variables (a=b c=d)' },
    kernel_options: { type: 'dict', doc: 'kernel command line options (a=b c)' },
    kernel_options_post: { type: 'dict', doc: 'kernel options of the installed system' },
    virt_pxe_boot: { type: 'bool', doc: 'install the VM by PXE instead of kernel+initrd' },
    boot_loaders: { type: 'list', item: 'name', doc: 'boot loaders (ipxe, pxe, grub, shim)' },
    power_type: { type: 'enum', values: POWER_TYPES, doc: 'power driver: none, libvirt, ipmi or redfish' },
    power_address: { type: 'text', doc: 'libvirt URI (qemu:///system, qemu+ssh://host/system), BMC host[:port], or Redfish https://host[:port]' },
    power_user: { type: 'text', doc: 'BMC user name' },
    power_pass: { type: 'text', secret: true, doc: 'BMC password (secret: masked in anonymous reads)' },
    power_id: { type: 'text', doc: 'libvirt domain name, or Redfish system id (default: the only system)' },
    power_ca: { type: 'path', doc: 'PEM CA file to verify a Redfish BMC certificate (default: system CAs)' },
    ...virt,
  },
  subnet: {
    ...base,
    cidr: { type: 'text', required: true, doc: 'network in CIDR form (10.96.0.0/24), /8 to /30; must not overlap another subnet' },
    range: { type: 'list', item: 'range', doc: 'dynamic pool(s) as first,last inside cidr (several: "a,b c,d")' },
    router: { type: 'ipv4', doc: 'option 3 router, inside cidr (empty: dhcp_router when inside cidr)' },
    dns: { type: 'list', item: 'ipv4', doc: 'option 6 DNS servers (empty: dhcp_dns)' },
    domain: { type: 'hostname', doc: 'option 15 domain name (empty: dhcp_domain)' },
    dns_search: { type: 'list', item: 'hostname', doc: 'option 119 DNS search list (RFC 3397)' },
    lease_time: { type: 'int', min: 0, max: LEASE_MAX, doc: 'lease time in seconds, 60 or more (0: dhcp_lease_time)' },
    next_server: { type: 'ipv4', doc: 'siaddr / TFTP server for this subnet (empty: next_server, else forge\'s address facing the client)' },
    mtu: { type: 'int', min: 0, max: MTU_MAX, doc: 'option 26 interface MTU, 68 or more (0: not sent)' },
    authoritative: { type: 'bool', doc: 'ACK/NAK INIT-REBOOT requests of clients forge has no record of (RFC 2131 4.3.2)' },
    unknown: { type: 'enum', values: SUBNET_UNKNOWN, doc: 'machines without a system: ignore, discover or default (empty: dhcp_unknown)' },
    servers: { type: 'list', item: 'name', doc: 'forge servers (their server_name) that answer DHCP here (empty: every server)' },
  },
};

export const INTERFACE_FIELDS: Record<keyof NetInterface, FieldSpec> = {
  mac_address: { type: 'mac', doc: 'MAC address, or "random" on create/edit' },
  ip_address: { type: 'ipv4', doc: 'IPv4 address' },
  netmask: { type: 'netmask', doc: 'netmask (255.255.255.0 or 24)' },
  if_gateway: { type: 'ipv4', doc: 'gateway of this interface' },
  static: { type: 'bool', doc: 'static configuration instead of DHCP' },
  dns_name: { type: 'hostname', doc: 'DNS name' },
  mtu: { type: 'int', min: 0, max: 65535, doc: 'MTU (0: default)' },
  interface_type: { type: 'enum', values: INTERFACE_TYPES, doc: 'na, bond, bond_slave, bridge, bridge_slave' },
  interface_master: { type: 'text', doc: 'bond/bridge master interface' },
  bonding_opts: { type: 'text', doc: 'bonding options' },
  static_routes: { type: 'list', item: 'text', doc: 'static routes (net/prefix:gateway)' },
};

/** The value a system interface's mac_address holds to ask for a random MAC. */
export const RANDOM_MAC = 'random';
