/**
 * Boot loaders: where the binaries TFTP and HTTP hand to firmware come from.
 *
 * forge copies nothing (Cobbler's `mkloaders` copied loaders into the TFTP
 * root and went stale on package upgrades): it serves the files the Debian
 * packages install, in place, unless config `loaders` names another path.
 * `forge loaders` reports which are present and which package provides
 * each missing one.
 */
import { statSync } from 'node:fs';

export type LoaderFirmware = 'bios' | 'uefi';

export interface LoaderSpec {
  /** The name clients ask for over TFTP / HTTP (/boot/loaders/NAME). */
  name: string;
  firmware: LoaderFirmware;
  /** Debian package that installs it. */
  package: string;
  /** Candidate paths, first existing wins. */
  paths: string[];
  summary: string;
}

const SYSLINUX_BIOS = '/usr/lib/syslinux/modules/bios';

/**
 * The loaders forge knows. Names are the TFTP file names of the brief:
 * pxelinux.0 needs ldlinux.c32 next to it (syslinux 5+), menu.c32 needs
 * libutil.c32; grubx64.efi is Debian's signed network GRUB image whose
 * prefix is `/grub` on the TFTP server (so it reads grub/grub.cfg).
 */
export const LOADERS: readonly LoaderSpec[] = [
  { name: 'undionly.kpxe', firmware: 'bios', package: 'ipxe', paths: ['/usr/lib/ipxe/undionly.kpxe'], summary: 'iPXE for BIOS PXE ROMs (chains to HTTP)' },
  { name: 'ipxe.efi', firmware: 'uefi', package: 'ipxe', paths: ['/usr/lib/ipxe/ipxe.efi'], summary: 'iPXE for x64 UEFI' },
  { name: 'snponly.efi', firmware: 'uefi', package: 'ipxe', paths: ['/usr/lib/ipxe/snponly.efi'], summary: 'iPXE for x64 UEFI using the firmware network driver' },
  { name: 'pxelinux.0', firmware: 'bios', package: 'pxelinux', paths: ['/usr/lib/PXELINUX/pxelinux.0'], summary: 'PXELINUX (TFTP only)' },
  { name: 'lpxelinux.0', firmware: 'bios', package: 'pxelinux', paths: ['/usr/lib/PXELINUX/lpxelinux.0'], summary: 'PXELINUX with HTTP support' },
  { name: 'ldlinux.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/ldlinux.c32`], summary: 'PXELINUX core module' },
  { name: 'menu.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/menu.c32`], summary: 'PXELINUX text menu' },
  { name: 'vesamenu.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/vesamenu.c32`], summary: 'PXELINUX graphical menu' },
  { name: 'libutil.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/libutil.c32`], summary: 'library needed by menu.c32' },
  { name: 'libcom32.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/libcom32.c32`], summary: 'library needed by menu.c32 and chain.c32' },
  { name: 'chain.c32', firmware: 'bios', package: 'syslinux-common', paths: [`${SYSLINUX_BIOS}/chain.c32`], summary: 'PXELINUX chain loader (local disk)' },
  {
    name: 'grubx64.efi',
    firmware: 'uefi',
    package: 'grub-efi-amd64-signed',
    paths: ['/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed'],
    summary: 'signed network GRUB for x64 UEFI (reads grub/grub.cfg)',
  },
  { name: 'shimx64.efi', firmware: 'uefi', package: 'shim-signed', paths: ['/usr/lib/shim/shimx64.efi.signed'], summary: 'Secure Boot shim (loads grubx64.efi)' },
];

export interface LoaderStatus {
  name: string;
  firmware: LoaderFirmware;
  package: string;
  summary: string;
  /** The path served, or '' when missing. */
  path: string;
  size: number;
  /** `config` when the path came from config `loaders`. */
  origin: 'package' | 'config' | 'missing';
}

function fileSize(p: string): number | undefined {
  try {
    const st = statSync(p);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Look every known loader up (config overrides first), plus any extra names
 * the config adds. `exists` is injectable so the table logic is testable
 * without the packages.
 */
export function findLoaders(
  overrides: Record<string, string> = {},
  exists: (p: string) => number | undefined = fileSize,
): LoaderStatus[] {
  const out: LoaderStatus[] = [];
  const known = new Set<string>();
  for (const spec of LOADERS) {
    known.add(spec.name);
    const base = { name: spec.name, firmware: spec.firmware, package: spec.package, summary: spec.summary };
    const ov = overrides[spec.name];
    if (ov !== undefined && ov !== '') {
      const size = exists(ov);
      out.push({ ...base, path: size === undefined ? '' : ov, size: size ?? 0, origin: size === undefined ? 'missing' : 'config' });
      continue;
    }
    let found = false;
    for (const p of spec.paths) {
      const size = exists(p);
      if (size !== undefined) {
        out.push({ ...base, path: p, size, origin: 'package' });
        found = true;
        break;
      }
    }
    if (!found) out.push({ ...base, path: '', size: 0, origin: 'missing' });
  }
  for (const [name, p] of Object.entries(overrides)) {
    if (known.has(name) || !isLoaderName(name)) continue;
    const size = exists(p);
    out.push({
      name,
      firmware: name.endsWith('.efi') ? 'uefi' : 'bios',
      package: '(config)',
      summary: 'site loader from config',
      path: size === undefined ? '' : p,
      size: size ?? 0,
      origin: size === undefined ? 'missing' : 'config',
    });
  }
  return out;
}

/** A loader name is a plain file name: no directories, no dot files. */
export function isLoaderName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(name) && !name.includes('..');
}

/** Path of one loader, or undefined when unknown or missing (stats only that loader). */
export function loaderPath(
  name: string,
  overrides: Record<string, string> = {},
  exists: (p: string) => number | undefined = fileSize,
): { path: string; size: number } | undefined {
  if (!isLoaderName(name)) return undefined;
  const ov = overrides[name];
  const spec = LOADERS.find((l) => l.name === name);
  const candidates = ov !== undefined && ov !== '' ? [ov] : (spec?.paths ?? []);
  for (const p of candidates) {
    const size = exists(p);
    if (size !== undefined) return { path: p, size };
  }
  return undefined;
}
