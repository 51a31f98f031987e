/**
 * Hand-built blended variables for render tests (the shape core/blend.ts
 * produces), so the renderer, templates and golden files are tested without
 * a store. Built through core's blendSystem/blendProfile so the shape cannot
 * drift from what the server renders.
 */
import { blendProfile, blendSystem } from '../../server/core/blend.js';
import type { Distro, NetInterface, Profile, Settings, System } from '../../server/core/model.js';
import type { RenderTarget } from '../../server/render/renderer.js';
import { defaults } from '../../server/config.js';
import { settingsFromConfig } from '../../server/settings-from-config.js';

const T = '2026-01-01T00:00:00.000Z';

/** The lab's settings, derived the way the server derives them (server/settings-from-config.ts). */
export const settings: Settings = settingsFromConfig({
  ...defaults(),
  server: '10.98.0.1',
  http_port: 8080,
  pxe_just_once: true,
  dhcp_dns: ['10.98.0.1'],
  dhcp_domain: 'lab.example',
});

export function distro(name: string, breed: Distro['breed'], os_version: string, tree: string): Distro {
  return {
    name, comment: '', ctime: T, mtime: T, arch: 'x86_64', breed, os_version,
    kernel: `/srv/${name}/linux`, initrd: `/srv/${name}/initrd`,
    kernel_options: {}, kernel_options_post: {}, autoinstall_meta: {}, boot_loaders: [], tree,
  };
}

export function profile(name: string, p: Partial<Profile>): Profile {
  return {
    name, comment: '', ctime: T, mtime: T, distro: '', parent: '',
    autoinstall: '<<inherit>>', autoinstall_meta: {}, kernel_options: {}, kernel_options_post: {},
    name_servers: [], name_servers_search: [], enable_ipxe: '<<inherit>>', enable_menu: '<<inherit>>', boot_loaders: [],
    virt_type: '<<inherit>>', virt_cpus: '<<inherit>>', virt_ram: '<<inherit>>', virt_file_size: '<<inherit>>',
    virt_path: '<<inherit>>', virt_bridge: '<<inherit>>', virt_disk_driver: '<<inherit>>', virt_auto_boot: '<<inherit>>',
    ...p,
  };
}

export function nic(p: Partial<NetInterface>): NetInterface {
  return {
    mac_address: '', ip_address: '', netmask: '', if_gateway: '', static: false, dns_name: '', mtu: 0,
    interface_type: 'na', interface_master: '', bonding_opts: '', static_routes: [], ...p,
  };
}

export function system(name: string, profileName: string, p: Partial<System>): System {
  return {
    name, comment: '', ctime: T, mtime: T, profile: profileName, hostname: '', gateway: '',
    name_servers: [], name_servers_search: [], netboot_enabled: true, status: 'production',
    autoinstall: '<<inherit>>', autoinstall_meta: {}, kernel_options: {}, kernel_options_post: {}, virt_pxe_boot: false,
    boot_loaders: [], interfaces: {},
    power_type: 'none', power_address: '', power_user: '', power_pass: '', power_id: '', power_ca: '',
    virt_type: '<<inherit>>', virt_cpus: '<<inherit>>', virt_ram: '<<inherit>>', virt_file_size: '<<inherit>>',
    virt_path: '<<inherit>>', virt_bridge: '<<inherit>>', virt_disk_driver: '<<inherit>>', virt_auto_boot: '<<inherit>>',
    ...p,
  };
}

export type Format = 'kickstart' | 'preseed' | 'autoyast' | 'autoinstall' | 'cloud-config' | 'network-config' | 'agama';

/**
 * Every installer version a format's rules differ by (kickstart: pykickstart
 * handlers RHEL 8, RHEL 9, RHEL 10, Fedora): the cases are rendered for each,
 * golden files under <format>-<variant>/ (the primary distro above: <format>/).
 */
export const VARIANTS: { variant: string; format: Format; distro: Distro }[] = [
  { variant: 'kickstart-rhel8', format: 'kickstart', distro: distro('alma8', 'redhat', 'rhel8', 'http://10.98.0.1:8080/tree/alma8') },
  { variant: 'kickstart-rhel10', format: 'kickstart', distro: distro('rhel10', 'redhat', 'rhel10', 'http://10.98.0.1:8080/tree/rhel10') },
  { variant: 'kickstart-fedora42', format: 'kickstart', distro: distro('f42', 'redhat', 'fedora42', 'http://10.98.0.1:8080/tree/f42') },
];

export const FORMATS: { format: Format; template: string; distro: Distro }[] = [
  { format: 'kickstart', template: 'kickstart/default.ks', distro: distro('rocky9', 'redhat', 'rhel9', 'http://10.98.0.1:8080/tree/rocky9') },
  { format: 'preseed', template: 'preseed/default.seed', distro: distro('deb12', 'debian', 'bookworm', 'http://deb.debian.org/debian') },
  { format: 'autoyast', template: 'autoyast/default.xml', distro: distro('sles15', 'suse', 'sles15sp5', 'http://10.98.0.1:8080/tree/sles15') },
  { format: 'autoinstall', template: 'subiquity/user-data.yaml', distro: distro('ubuntu2404', 'ubuntu', '24.04', '') },
  { format: 'cloud-config', template: 'cloud-init/user-data.yaml', distro: distro('deb12cloud', 'debian', 'bookworm', '') },
  { format: 'network-config', template: 'cloud-init/network-config.yaml', distro: distro('deb12cloud', 'debian', 'bookworm', '') },
  { format: 'agama', template: 'agama/profile.json', distro: distro('sles16', 'suse', '16.0', 'http://10.98.0.1:8080/tree/sles16') },
];

/** The snippet each format's per-system override fixture (site-snippets/per_system/.../odd1) replaces. */
export const OVERRIDDEN_SNIPPET: Record<Format, string> = {
  kickstart: 'kickstart/partitioning', preseed: 'preseed/partitioning', autoyast: 'autoyast/partitioning',
  autoinstall: 'subiquity/storage', 'cloud-config': 'cloud-init/packages', 'network-config': '', agama: 'agama/storage',
};

const KEY1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE8Mk3LtvtmeD7gV2zWkL4pLR0yYy9bqj6cM1oV5i9Qy ops@forge';
const KEY2 = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDf0rge ci@forge';
/** A real ed25519 public key (gpg --quick-gen-key), armoured as apt and curtin take it. */
export const REPO_KEY = `-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaw7ebRYJKwYBBAHaRw8BAQdA05nWSqie5Npp63fLJvt/FLc1Kq1/TkYBWH+v
S75GJAe0IWZvcmdlIHRlc3QgcmVwbyA8cmVwb0Bmb3JnZS50ZXN0PoiQBBMWCAA4
FiEE9f6OfISFrAvatnpMK0KrTsH4/wwFAmsO3m0CGwMFCwkIBwIGFQoJCAsCBBYC
AwECHgECF4AACgkQK0KrTsH4/wz3NgD/Rw/0QPd1gOkkGoPpOyUStp2CEblQGkWV
DMlNcGI1X+IA/iJOu+1RK/Hk19t4bxl7EOf4nDqpS4li5rEbe2b/XQQK
=MDaz
-----END PGP PUBLIC KEY BLOCK-----\n`;
const HASH = '$6$rounds=4096$forgesalt$0mY1o4wAUZ0XoQH7s0dH3c8rQw5Q0cBq0C1mG6m7m1eX6oU5b3aZl0rT1oYbq1z8S9x3Uo4j1v0g2eE1cQ.';

export interface Case {
  id: string;
  vars: Record<string, unknown>;
  target: RenderTarget;
}

/**
 * The four representative cases, per format: single NIC DHCP, static
 * multi-NIC (with a bond where the format has one), a sub-profile override,
 * and a per-system snippet override (the snippet itself is written by the test).
 */
export function cases(f: (typeof FORMATS)[number]): Case[] {
  const d = f.distro;
  const base = profile(`${d.name}-base`, {
    distro: d.name, autoinstall: f.template,
    autoinstall_meta: { root_password_hash: HASH, ssh_authorized_keys: `${KEY1};${KEY2}`, timezone: 'Europe/Paris' },
    kernel_options: { console: 'ttyS0,115200' },
  });
  const sub = profile(`${d.name}-web`, {
    parent: base.name,
    autoinstall_meta: {
      timezone: 'America/New_York', packages: 'nginx rsync', '!ssh_authorized_keys': null, disk: 'vdb',
      repos: 'extras=http://10.98.0.1:8080/repo/extras;tools=http://10.98.0.1:8080/repo/tools',
      // preseed: a repository needs a key or an explicit trust (snippets/preseed/mirror).
      // subiquity: curtin takes the armoured key itself (snippets/subiquity/apt).
      repo_key_extras: f.format === 'autoinstall' ? REPO_KEY : 'http://10.98.0.1:8080/repo/extras/key.asc', repo_trusted_tools: 'true',
    },
    kernel_options: { '!console': null, quiet: null },
    kernel_options_post: { 'net.ifnames': '0' },
  });
  const dhcp = system('web1', base.name, {
    hostname: 'web1.lab.example',
    interfaces: { eth0: nic({ mac_address: '52:54:00:aa:00:01' }) },
  });
  const multi = system('db1', base.name, {
    hostname: 'db1.lab.example', gateway: '10.98.0.1', name_servers: ['10.98.0.2', '10.98.0.3'],
    interfaces: {
      eth0: nic({ mac_address: '52:54:00:aa:00:02', ip_address: '10.98.0.12', netmask: '255.255.255.0', static: true }),
      eth1: nic({ mac_address: '52:54:00:aa:00:03', interface_type: 'bond_slave', interface_master: 'bond0' }),
      eth2: nic({ mac_address: '52:54:00:aa:00:04', interface_type: 'bond_slave', interface_master: 'bond0' }),
      bond0: nic({ ip_address: '192.168.50.12', netmask: '255.255.255.0', static: true, interface_type: 'bond', bonding_opts: 'mode=active-backup miimon=100', mtu: 9000 }),
    },
  });
  const subSys = system('web2', sub.name, {
    hostname: 'web2.lab.example',
    interfaces: { eth0: nic({ mac_address: '52:54:00:aa:00:05' }) },
  });
  const override = system('odd1', base.name, {
    hostname: 'odd1.lab.example',
    interfaces: { eth0: nic({ mac_address: '52:54:00:aa:00:06' }) },
  });
  // No interfaces at all (a profile-like system, or one added by name only).
  const bare = system('bare1', base.name, { hostname: 'bare1.lab.example' });
  // A bridge over two NICs and a VLAN on a third, all static.
  const bridged = system('br1', base.name, {
    hostname: 'br1.lab.example', gateway: '10.98.0.1',
    interfaces: {
      eth0: nic({ mac_address: '52:54:00:aa:00:07', interface_type: 'bridge_slave', interface_master: 'br0' }),
      eth1: nic({ mac_address: '52:54:00:aa:00:08', interface_type: 'bridge_slave', interface_master: 'br0' }),
      br0: nic({ ip_address: '10.98.0.21', netmask: '255.255.255.0', static: true, interface_type: 'bridge' }),
      eth2: nic({ mac_address: '52:54:00:aa:00:09' }),
      'eth2.100': nic({ ip_address: '172.16.100.21', netmask: '255.255.255.0', static: true }),
    },
  });
  const t = (s: System, chain: Profile[]): RenderTarget => ({ kind: 'system', name: s.name, system: s.name, profiles: chain.map((p) => p.name), distro: d.name });
  return [
    { id: 'single-nic-dhcp', vars: blendSystem(dhcp, [base], d, settings), target: t(dhcp, [base]) },
    { id: 'static-multi-nic', vars: blendSystem(multi, [base], d, settings), target: t(multi, [base]) },
    { id: 'sub-profile', vars: blendSystem(subSys, [sub, base], d, settings), target: t(subSys, [sub, base]) },
    { id: 'per-system-snippet', vars: blendSystem(override, [base], d, settings), target: t(override, [base]) },
    { id: 'no-interface', vars: blendSystem(bare, [base], d, settings), target: t(bare, [base]) },
    { id: 'bridge-vlan', vars: blendSystem(bridged, [base], d, settings), target: t(bridged, [base]) },
    { id: 'profile', vars: blendProfile([base], d, settings), target: { kind: 'profile', name: base.name, system: '', profiles: [base.name], distro: d.name } },
  ];
}
