/**
 * Boot-file names: the grammar TFTP names and HTTP paths below /boot/ share.
 * (The boot decisions themselves are in core/bootplan.ts.)
 */
import { normalizeMac } from '../core/mac.js';

/**
 * What a boot-file name asks for. TFTP names and HTTP paths below /boot/
 * share this grammar (leading slashes already stripped):
 *   pxelinux.cfg/01-aa-bb-..   pxelinux.cfg/default
 *   grub/grub.cfg  grub/grub.cfg-01-aa-bb-..  grub/system/aa:bb:..
 *     (also below debian-installer/ARCH/grub/: the prefix built into the Debian installer's
 *     network GRUB images, e.g. grubaa64.efi from debian-installer-12-netboot-arm64)
 *   ipxe/aa:bb:..  ipxe/default
 *   distro/NAME/kernel  distro/NAME/initrd
 *   discovery/kernel  discovery/initrd (the discovery image)
 *   LOADER (undionly.kpxe, ...)  or loaders/LOADER
 */
export type BootRequest =
  | { kind: 'pxelinux'; mac: string | undefined }
  | { kind: 'grub'; mac: string | undefined }
  | { kind: 'grub-root' }
  | { kind: 'ipxe'; mac: string | undefined }
  | { kind: 'distro'; distro: string; file: 'kernel' | 'initrd' }
  | { kind: 'discovery'; file: 'kernel' | 'initrd' }
  | { kind: 'loader'; name: string };

export function parseBootPath(path: string): BootRequest | undefined {
  const p = path.replace(/^\/+/, '').replace(/^debian-installer\/(?:amd64|arm64|i386)\/grub\//, 'grub/');
  if (p.includes('\0') || p.includes('\\')) return undefined;
  let m: RegExpExecArray | null;
  if (p === 'pxelinux.cfg/default') return { kind: 'pxelinux', mac: undefined };
  if ((m = /^pxelinux\.cfg\/01-([0-9a-fA-F-]{17})$/.exec(p)) !== null) {
    const mac = normalizeMac(m[1]!);
    return mac === undefined ? undefined : { kind: 'pxelinux', mac };
  }
  if (p === 'grub/grub.cfg') return { kind: 'grub-root' };
  if ((m = /^grub\/grub\.cfg-01-([0-9a-fA-F-]{17})$/.exec(p)) !== null || (m = /^grub\/(?:system|mac)\/([0-9a-fA-F:-]{17})$/.exec(p)) !== null) {
    const mac = normalizeMac(m[1]!);
    return mac === undefined ? undefined : { kind: 'grub', mac };
  }
  if (p === 'grub/default') return { kind: 'grub', mac: undefined };
  if (p === 'ipxe/default' || p === 'ipxe/default.ipxe') return { kind: 'ipxe', mac: undefined };
  if ((m = /^ipxe\/([0-9a-fA-F:-]{12,17})$/.exec(p)) !== null) {
    const mac = normalizeMac(m[1]!);
    return mac === undefined ? undefined : { kind: 'ipxe', mac };
  }
  if ((m = /^discovery\/(kernel|initrd)$/.exec(p)) !== null) return { kind: 'discovery', file: m[1] as 'kernel' | 'initrd' };
  if ((m = /^distro\/([A-Za-z0-9][A-Za-z0-9._+-]*)\/(kernel|initrd)$/.exec(p)) !== null) {
    if (m[1]!.includes('..')) return undefined;
    return { kind: 'distro', distro: m[1]!, file: m[2] as 'kernel' | 'initrd' };
  }
  if ((m = /^(?:loaders\/)?([A-Za-z0-9][A-Za-z0-9._+-]*)$/.exec(p)) !== null && !m[1]!.includes('..')) {
    return { kind: 'loader', name: m[1]! };
  }
  return undefined;
}
