/**
 * The two boot decisions, side by side, as values computed by pure functions
 * (pixiecore's Booter.BootSpec, matchbox's selector):
 *
 *   1. DHCP stage (`bootPlan`): which loader, from where, for one DHCP client.
 *      The DHCP service translates a BootPlan into packet fields.
 *   2. Boot-config stage (`decideBoot`): what the per-MAC iPXE script, GRUB or
 *      pxelinux config says: install, local disk, or a menu. boot/configs.ts
 *      renders it.
 *
 * Both read one policy for machines forge has no system for (`unknownPolicy`:
 * ignore, discover or default, the client's subnet's setting winning over the
 * global one), so they cannot disagree: whenever the DHCP stage hands an
 * unknown machine a loader, the config stage gives it something to boot
 * (`discover`: the discovery image; `default`: the `default` system, a menu,
 * or default_profile), never "local".
 * This module knows nothing of packets, sockets or the store.
 *
 * Firmware is recognised from RFC 4578 option 93 (client system architecture),
 * the PXE vendor class (option 60, `PXEClient:Arch:xxxxx:...` carries the same
 * number when option 93 is missing) and iPXE's user class (option 77 "iPXE")
 * or its encapsulated option 175.
 */

import { LOADER_FILES, type Firmware, type LoaderName } from './loaders.js';

export { LOADER_FILES, type Firmware, type LoaderName };

export interface BootClient {
  /** Lower-case aa:bb:cc:dd:ee:ff. */
  mac: string;
  /** Option 93, first entry; undefined when absent. */
  arch: number | undefined;
  /** Option 77 classes (RFC 3004 list or one bare string). */
  userClasses: readonly string[];
  /** Option 60. */
  vendorClass: string | undefined;
  /** Option 175 present (only iPXE sends it). */
  ipxeOption: boolean;
}

/** What the decision needs of a system; boot_loaders already blended (system -> profiles -> distro). */
export interface BootSystem {
  name: string;
  netboot_enabled: boolean;
  boot_loaders: readonly string[];
  /** The system's profile, for event detail. */
  profile?: string;
}

export interface BootConfig {
  /** e.g. http://10.98.0.1:8080, no trailing slash. */
  baseUrl: string;
  /** siaddr / TFTP server address. */
  nextServer: string;
  bios_loader: 'ipxe' | 'pxelinux';
  uefi_loader: 'ipxe' | 'grub' | 'shim';
  dhcp_unknown: UnknownMode;
  default_profile: string;
  /** The unknown-machine setting of the client's subnet ('' or absent: the global dhcp_unknown). */
  subnet_unknown?: UnknownMode | '';
}

export type BootPlan =
  /** No reply at all (unknown machine and policy `ignore`). */
  | { kind: 'ignore'; reason: string }
  /** Known client, but no network boot: address only (managed) / no reply (proxy). */
  | { kind: 'local'; reason: string }
  /** A loader over TFTP. */
  | { kind: 'tftp'; file: string; nextServer: string; loader: LoaderName; firmware: Firmware }
  /** iPXE already running: hand it its HTTP script, never a loader again (no chain-load loop). */
  | { kind: 'ipxe'; url: string }
  /** UEFI HTTP boot: a full URL, and option 60 "HTTPClient" echoed (UEFI spec 2.5+, s24.7). */
  | { kind: 'http'; url: string; vendorClass: 'HTTPClient'; loader: LoaderName };

/** RFC 4578 s2.1 / IANA "Processor Architecture Types". */
export const ARCH = {
  BIOS: 0,
  IA32_EFI: 6,
  X64_EFI: 7,
  EBC: 9,
  /** 64-bit ARM UEFI (PXE), and its HTTP-boot variant. */
  ARM64_EFI: 11,
  X86_HTTP: 15,
  X64_HTTP: 16,
  ARM64_HTTP: 19,
} as const;

/** Architecture from option 93, else from a PXE vendor class `PXEClient:Arch:00007:...`. */
export function clientArch(c: Pick<BootClient, 'arch' | 'vendorClass'>): number | undefined {
  if (c.arch !== undefined) return c.arch;
  const m = /^(?:PXEClient|HTTPClient):Arch:(\d{5})/.exec(c.vendorClass ?? '');
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

export function isPxeVendorClass(vc: string | undefined): boolean {
  return vc !== undefined && (vc.startsWith('PXEClient') || vc.startsWith('HTTPClient'));
}

export function isIpxe(c: Pick<BootClient, 'userClasses' | 'ipxeOption'>): boolean {
  return c.ipxeOption || c.userClasses.includes('iPXE');
}

function normaliseLoader(v: string): LoaderName | undefined {
  const s = v.trim().toLowerCase();
  if (s === 'ipxe') return 'ipxe';
  if (s === 'pxelinux' || s === 'pxe') return 'pxelinux';
  if (s === 'grub') return 'grub';
  if (s === 'shim') return 'shim';
  return undefined;
}

/**
 * The loader for a firmware: the first blended boot_loaders entry that this
 * firmware can run (grub is UEFI-only here, pxelinux BIOS-only), else the
 * configured default; on arm64, where Debian packages no iPXE, an `ipxe`
 * default means GRUB.
 */
export function chooseLoader(firmware: Firmware, loaders: readonly string[], cfg: Pick<BootConfig, 'bios_loader' | 'uefi_loader'>): LoaderName {
  for (const l of loaders) {
    const n = normaliseLoader(l);
    if (n !== undefined && LOADER_FILES[firmware][n] !== undefined) return n;
  }
  const dflt = firmware === 'bios' ? cfg.bios_loader : cfg.uefi_loader;
  return LOADER_FILES[firmware][dflt] !== undefined ? dflt : 'grub';
}

// ---------------------------------------------------------------- unknown machines

/**
 * What forge does with a MAC no system has:
 *   ignore    no DHCP answer; a machine sent by another DHCP server gets the
 *             `default` system, or unknown_boot's menu/local disk
 *   discover  a loader, then the discovery image (it reports its facts; rules enlist it)
 *   default   a loader (default_profile's boot_loaders), then the `default`
 *             system, else unknown_boot=menu's menu, else default_profile
 */
export const UNKNOWN_MODES = ['ignore', 'discover', 'default'] as const;
export type UnknownMode = (typeof UNKNOWN_MODES)[number];

/** What the configuration says about machines forge has no system for. */
export interface UnknownPolicy {
  mode: UnknownMode;
  /** DHCP stage: answer an unknown PXE client with a loader at all. */
  answer: boolean;
  /** DHCP stage: the profile whose boot_loaders an unknown client gets (mode default). */
  dhcpProfile: string | undefined;
  /** Boot-config stage, when no system named `default` exists (modes ignore, default): a menu of profiles, or not. */
  config: 'menu' | 'local';
  /** Mode default without a `default` system or menu: install this profile. */
  defaultProfile: string | undefined;
}

export function unknownPolicy(
  cfg: { dhcp_unknown: UnknownMode; default_profile: string; unknown_boot?: 'local' | 'menu' },
  subnetUnknown?: UnknownMode | '',
): UnknownPolicy {
  const mode: UnknownMode = subnetUnknown !== undefined && subnetUnknown !== '' ? subnetUnknown : cfg.dhcp_unknown;
  const profile = mode === 'default' && cfg.default_profile !== '' ? cfg.default_profile : undefined;
  return {
    mode,
    // `default` without a profile has nothing to boot an unknown machine with: stay silent.
    answer: mode === 'discover' || profile !== undefined,
    dhcpProfile: profile,
    config: cfg.unknown_boot ?? 'local',
    defaultProfile: profile,
  };
}

// ---------------------------------------------------------------- 1. DHCP stage

export function bootPlan(client: BootClient, system: BootSystem | undefined, cfg: BootConfig): BootPlan {
  if (system === undefined && !unknownPolicy(cfg, cfg.subnet_unknown).answer) {
    return { kind: 'ignore', reason: 'unknown MAC' };
  }
  if (system !== undefined && !system.netboot_enabled) return { kind: 'local', reason: 'netboot disabled' };

  const arch = clientArch(client);
  const ipxe = isIpxe(client);
  const httpBoot = client.vendorClass?.startsWith('HTTPClient') === true || arch === ARCH.X64_HTTP || arch === ARCH.X86_HTTP || arch === ARCH.ARM64_HTTP;
  if (!ipxe && !httpBoot && !isPxeVendorClass(client.vendorClass) && client.arch === undefined) {
    return { kind: 'local', reason: 'not a network boot client' };
  }
  const loaders = system?.boot_loaders ?? [];

  let firmware: Firmware;
  if (arch === undefined || arch === ARCH.BIOS) firmware = 'bios';
  else if (arch === ARCH.X64_EFI || arch === ARCH.EBC || arch === ARCH.X64_HTTP) firmware = 'uefi';
  else if (arch === ARCH.ARM64_EFI || arch === ARCH.ARM64_HTTP) firmware = 'arm64-uefi';
  else if (ipxe) firmware = 'bios'; // iPXE on another platform still runs an HTTP script
  else return { kind: 'local', reason: `unsupported client architecture ${arch}` };
  // The discovery image is x86-64 (Debian's linux-image-amd64): an unknown arm64 machine is not
  // sent a loader that would only lead it to a kernel it cannot run.
  if (system === undefined && firmware === 'arm64-uefi' && unknownPolicy(cfg, cfg.subnet_unknown).mode === 'discover') {
    return { kind: 'ignore', reason: 'unknown MAC: no discovery image for arm64' };
  }

  const loader = chooseLoader(firmware, loaders, cfg);
  const macPath = client.mac.toLowerCase();

  // iPXE is already the loader: give it the script. A pxelinux or GRUB choice still gets its
  // TFTP loader (neither is iPXE, so the chain cannot loop back here).
  if (ipxe && loader === 'ipxe') return { kind: 'ipxe', url: `${cfg.baseUrl}/boot/ipxe/${macPath}` };

  if (httpBoot) {
    // HTTP boot is UEFI's (x64, or arm64 for arch 19): a vendor class alone means x64.
    const fw: Firmware = firmware === 'arm64-uefi' ? firmware : 'uefi';
    const l: LoaderName = loader === 'grub' || loader === 'shim' ? loader : chooseLoader(fw, [], { bios_loader: 'ipxe', uefi_loader: 'ipxe' });
    return { kind: 'http', url: `${cfg.baseUrl}/boot/loaders/${LOADER_FILES[fw][l]!}`, vendorClass: 'HTTPClient', loader: l };
  }
  const file = LOADER_FILES[firmware][loader];
  if (file === undefined) return { kind: 'local', reason: `no ${loader} loader for ${firmware}` };
  return { kind: 'tftp', file, nextServer: cfg.nextServer, loader, firmware };
}

// ---------------------------------------------------------------- 2. boot-config stage

export interface InstallEntry {
  /** Menu label / id: the system or profile name. */
  label: string;
  distro: string;
  /** Full kernel command line (from core/cmdline.ts), without initrd=. */
  cmdline: string;
  /** Boot forge's discovery image instead of the distro's kernel and initrd. */
  image?: 'discovery';
}

/** What a generated boot config does: install, boot the local disk, or offer a menu. */
export type BootTarget =
  | ({ kind: 'install'; system: string | undefined; profile: string } & InstallEntry)
  | { kind: 'local'; system: string | undefined; reason: 'netboot_disabled' | 'unknown_machine' | 'no_profiles' }
  | { kind: 'menu'; entries: InstallEntry[] }
  /** An unknown machine under policy `discover`: the discovery image (an entry with image 'discovery'). */
  | ({ kind: 'discover'; system: undefined } & InstallEntry);

export interface SystemFacts {
  name: string;
  netboot_enabled: boolean;
  profile: string;
  distro: string;
  cmdline: string;
}

export interface TargetFacts {
  /** The system owning the client's MAC, if any. */
  system: SystemFacts | undefined;
  /** The system named `default`, if any (served to unknown machines). */
  defaultSystem: SystemFacts | undefined;
  /** Profiles for the menu (only gathered when needed: see unknownNeeds). */
  menu: InstallEntry[];
  unknown: UnknownPolicy;
  /** default_profile's entry (policy default; gathered when unknownNeeds says `profile`). */
  defaultProfile?: InstallEntry;
  /** The discovery image's kernel command line (policy discover; see discoveryCmdline). */
  discoveryCmdline?: string;
}

export interface Decision {
  target: BootTarget;
  /** How the machine was matched: events are recorded only for `mac`. */
  matched: 'mac' | 'default' | 'none';
}

function fromSystem(s: SystemFacts): BootTarget {
  if (!s.netboot_enabled) return { kind: 'local', system: s.name, reason: 'netboot_disabled' };
  return { kind: 'install', system: s.name, profile: s.profile, label: s.name, distro: s.distro, cmdline: s.cmdline };
}

/** What decideBoot will want gathered for this machine (reading every profile for a menu is not free). */
export function unknownNeeds(f: Pick<TargetFacts, 'system' | 'defaultSystem' | 'unknown'>): 'menu' | 'profile' | 'discovery' | undefined {
  if (f.system !== undefined) return undefined;
  if (f.unknown.mode === 'discover') return 'discovery';
  if (f.defaultSystem !== undefined) return undefined;
  if (f.unknown.config === 'menu') return 'menu';
  return f.unknown.defaultProfile !== undefined ? 'profile' : undefined;
}

/** Whether decideBoot will want the menu entries. */
export function needsMenu(f: Pick<TargetFacts, 'system' | 'defaultSystem' | 'unknown'>): boolean {
  return unknownNeeds(f) === 'menu';
}

/**
 * The discovery image's command line: where forge is (the address the machine
 * reached forge on) and which NIC booted (when the loader said its MAC).
 */
export function discoveryCmdline(baseUrl: string, mac: string | undefined, kernelOptions: string): string {
  return [kernelOptions.trim(), `forge.url=${baseUrl}`, ...(mac !== undefined ? [`forge.mac=${mac}`] : [])].filter((w) => w !== '').join(' ');
}

export function decideBoot(f: TargetFacts): Decision {
  if (f.system !== undefined) return { target: fromSystem(f.system), matched: 'mac' };
  if (f.unknown.mode === 'discover') {
    return { target: { kind: 'discover', system: undefined, label: 'discovery', distro: '', image: 'discovery', cmdline: f.discoveryCmdline ?? '' }, matched: 'none' };
  }
  if (f.defaultSystem !== undefined) return { target: fromSystem(f.defaultSystem), matched: 'default' };
  if (f.unknown.config === 'menu') {
    if (f.menu.length === 0) return { target: { kind: 'local', system: undefined, reason: 'no_profiles' }, matched: 'none' };
    return { target: { kind: 'menu', entries: f.menu }, matched: 'none' };
  }
  if (f.defaultProfile !== undefined) {
    const p = f.defaultProfile;
    return { target: { kind: 'install', system: undefined, profile: p.label, label: p.label, distro: p.distro, cmdline: p.cmdline }, matched: 'none' };
  }
  return { target: { kind: 'local', system: undefined, reason: 'unknown_machine' }, matched: 'none' };
}
