/**
 * The boot decision for one machine, as a value: install (kernel, initrd,
 * command line), local disk, or a menu. Pure: the provider gathers the facts
 * from the store, this decides, the generators in configs.ts render.
 */
import type { BootTarget, InstallEntry } from './configs.js';

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
  /** Profiles for the menu (only gathered when needed). */
  menu: InstallEntry[];
  unknownBoot: 'local' | 'menu';
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

export function decideBoot(f: TargetFacts): Decision {
  if (f.system !== undefined) return { target: fromSystem(f.system), matched: 'mac' };
  if (f.defaultSystem !== undefined) return { target: fromSystem(f.defaultSystem), matched: 'default' };
  if (f.unknownBoot === 'menu') {
    if (f.menu.length === 0) return { target: { kind: 'local', system: undefined, reason: 'no_profiles' }, matched: 'none' };
    return { target: { kind: 'menu', entries: f.menu }, matched: 'none' };
  }
  return { target: { kind: 'local', system: undefined, reason: 'unknown_machine' }, matched: 'none' };
}

/** Normalise aa:bb:.., aa-bb-.., AABBCC.. to lower-case colon form; undefined if not a MAC. */
export function normaliseMac(s: string): string | undefined {
  const hex = s.replace(/[:-]/g, '').toLowerCase();
  if (!/^[0-9a-f]{12}$/.test(hex)) return undefined;
  if (/[:-]/.test(s) && !/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(s)) return undefined;
  return hex.match(/../g)!.join(':');
}

/**
 * What a boot-file name asks for. TFTP names and HTTP paths below /boot/
 * share this grammar (leading slashes already stripped):
 *   pxelinux.cfg/01-aa-bb-..   pxelinux.cfg/default
 *   grub/grub.cfg  grub/grub.cfg-01-aa-bb-..  grub/system/aa:bb:..
 *   ipxe/aa:bb:..  ipxe/default
 *   distro/NAME/kernel  distro/NAME/initrd
 *   LOADER (undionly.kpxe, ...)  or loaders/LOADER
 */
export type BootRequest =
  | { kind: 'pxelinux'; mac: string | undefined }
  | { kind: 'grub'; mac: string | undefined }
  | { kind: 'grub-root' }
  | { kind: 'ipxe'; mac: string | undefined }
  | { kind: 'distro'; distro: string; file: 'kernel' | 'initrd' }
  | { kind: 'loader'; name: string };

export function parseBootPath(path: string): BootRequest | undefined {
  const p = path.replace(/^\/+/, '');
  if (p.includes('\0') || p.includes('\\')) return undefined;
  let m: RegExpExecArray | null;
  if (p === 'pxelinux.cfg/default') return { kind: 'pxelinux', mac: undefined };
  if ((m = /^pxelinux\.cfg\/01-([0-9a-fA-F-]{17})$/.exec(p)) !== null) {
    const mac = normaliseMac(m[1]!);
    return mac === undefined ? undefined : { kind: 'pxelinux', mac };
  }
  if (p === 'grub/grub.cfg') return { kind: 'grub-root' };
  if ((m = /^grub\/grub\.cfg-01-([0-9a-fA-F-]{17})$/.exec(p)) !== null || (m = /^grub\/(?:system|mac)\/([0-9a-fA-F:-]{17})$/.exec(p)) !== null) {
    const mac = normaliseMac(m[1]!);
    return mac === undefined ? undefined : { kind: 'grub', mac };
  }
  if (p === 'grub/default') return { kind: 'grub', mac: undefined };
  if (p === 'ipxe/default' || p === 'ipxe/default.ipxe') return { kind: 'ipxe', mac: undefined };
  if ((m = /^ipxe\/([0-9a-fA-F:-]{12,17})$/.exec(p)) !== null) {
    const mac = normaliseMac(m[1]!);
    return mac === undefined ? undefined : { kind: 'ipxe', mac };
  }
  if ((m = /^distro\/([A-Za-z0-9][A-Za-z0-9._+-]*)\/(kernel|initrd)$/.exec(p)) !== null) {
    if (m[1]!.includes('..')) return undefined;
    return { kind: 'distro', distro: m[1]!, file: m[2] as 'kernel' | 'initrd' };
  }
  if ((m = /^(?:loaders\/)?([A-Za-z0-9][A-Za-z0-9._+-]*)$/.exec(p)) !== null && !m[1]!.includes('..')) {
    return { kind: 'loader', name: m[1]! };
  }
  return undefined;
}
