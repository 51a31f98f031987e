/**
 * The boot loaders forge knows, as one table: what clients ask for, for which
 * firmware, from which Debian package. The DHCP decision's loader file names
 * (LOADER_FILES) are derived from it, so the two cannot drift. Pure data;
 * finding the files on disk is boot/loaders.ts.
 */

/** Loader names as stored in boot_loaders (Cobbler's values; `pxe` is Cobbler's name for pxelinux). */
export type LoaderName = 'ipxe' | 'pxelinux' | 'grub' | 'shim';
/** bios and uefi are x86 (uefi: x64 UEFI); arm64-uefi is 64-bit ARM UEFI (RFC 4578 arch 11). */
export type Firmware = 'bios' | 'uefi' | 'arm64-uefi';

const SYSLINUX_BIOS = '/usr/lib/syslinux/modules/bios';
/**
 * arm64 on a Debian host of another architecture: grub-efi-arm64-signed and shim-signed's arm64
 * build are arm64-only packages, but debian-installer-12-netboot-arm64 (Architecture: all) ships
 * both signed images: grubaa64.efi (Debian-signed network GRUB, prefix /debian-installer/arm64/grub)
 * and bootnetaa64.efi (Microsoft-signed shim, which loads grubaa64.efi from the same directory).
 */
const DI_ARM64 = '/usr/lib/debian-installer/images/12/arm64/text/debian-installer/arm64';

export interface LoaderSpec {
  /** The name clients ask for over TFTP / HTTP (/boot/loaders/NAME). */
  name: string;
  firmware: Firmware;
  /** The boot_loaders value this file is the first stage of, on its firmware (LOADER_FILES). */
  stage?: LoaderName;
  /** Debian package that installs it. */
  package: string;
  /** Candidate paths, first existing wins. */
  paths: string[];
  summary: string;
}

/**
 * The loaders forge knows. Names are the TFTP file names of the brief:
 * pxelinux.0 needs ldlinux.c32 next to it (syslinux 5+), menu.c32 needs
 * libutil.c32; grubx64.efi is Debian's signed network GRUB image whose
 * prefix is `/grub` on the TFTP server (so it reads grub/grub.cfg).
 */
export const LOADERS: readonly LoaderSpec[] = [
  { name: 'undionly.kpxe', stage: 'ipxe', firmware: 'bios', package: 'ipxe', paths: ['/usr/lib/ipxe/undionly.kpxe'], summary: 'iPXE for BIOS PXE ROMs (chains to HTTP)' },
  { name: 'ipxe.efi', stage: 'ipxe', firmware: 'uefi', package: 'ipxe', paths: ['/usr/lib/ipxe/ipxe.efi'], summary: 'iPXE for x64 UEFI' },
  { name: 'snponly.efi', firmware: 'uefi', package: 'ipxe', paths: ['/usr/lib/ipxe/snponly.efi'], summary: 'iPXE for x64 UEFI using the firmware network driver' },
  { name: 'pxelinux.0', stage: 'pxelinux', firmware: 'bios', package: 'pxelinux', paths: ['/usr/lib/PXELINUX/pxelinux.0'], summary: 'PXELINUX (TFTP only)' },
  { name: 'lpxelinux.0', firmware: 'bios', package: 'pxelinux', paths: ['/usr/lib/PXELINUX/lpxelinux.0'], summary: 'PXELINUX with HTTP support' },
  { name: 'ldlinux.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/ldlinux.c32`], summary: 'PXELINUX core module' },
  { name: 'menu.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/menu.c32`], summary: 'PXELINUX text menu' },
  { name: 'vesamenu.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/vesamenu.c32`], summary: 'PXELINUX graphical menu' },
  { name: 'libutil.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/libutil.c32`], summary: 'library needed by menu.c32' },
  { name: 'libcom32.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/libcom32.c32`], summary: 'library needed by menu.c32 and chain.c32' },
  { name: 'chain.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/chain.c32`], summary: 'PXELINUX chain loader (local disk)' },
  {
    name: 'grubx64.efi',
    stage: 'grub',
    firmware: 'uefi',
    package: 'grub-efi-amd64-signed',
    paths: ['/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed'],
    summary: 'signed network GRUB for x64 UEFI (reads grub/grub.cfg)',
  },
  // shim (Secure Boot): Microsoft-signed shimx64.efi fetches grubx64.efi from the
  // same TFTP directory (or HTTP path), which then reads the same grub/ configs.
  { name: 'shimx64.efi', stage: 'shim', firmware: 'uefi', package: 'shim-signed', paths: ['/usr/lib/shim/shimx64.efi.signed'], summary: 'Secure Boot shim (loads grubx64.efi)' },
  {
    name: 'grubaa64.efi',
    stage: 'grub',
    firmware: 'arm64-uefi',
    // Installable on any Debian host (Architecture: all); grub-efi-arm64-signed's file wins on an arm64 host.
    package: 'debian-installer-12-netboot-arm64',
    paths: ['/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed', `${DI_ARM64}/grubaa64.efi`],
    summary: 'signed network GRUB for arm64 UEFI (reads grub/grub.cfg or debian-installer/arm64/grub/grub.cfg)',
  },
  {
    name: 'shimaa64.efi',
    stage: 'shim',
    firmware: 'arm64-uefi',
    package: 'debian-installer-12-netboot-arm64',
    paths: ['/usr/lib/shim/shimaa64.efi.signed', `${DI_ARM64}/bootnetaa64.efi`],
    summary: 'Secure Boot shim for arm64 (loads grubaa64.efi)',
  },
];

/** The first-stage file of each loader per firmware, from the table. */
export const LOADER_FILES: Record<Firmware, Partial<Record<LoaderName, string>>> = { bios: {}, uefi: {}, 'arm64-uefi': {} };
for (const l of LOADERS) if (l.stage !== undefined) LOADER_FILES[l.firmware][l.stage] = l.name;
