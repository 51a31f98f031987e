/**
 * Boot roots: the only directories whose files forge publishes as distro
 * kernels, initrds and install trees (over HTTP and TFTP, to anyone on the
 * provisioning network, from a server that runs as root). A path is
 * confined when its real path (symlinks resolved) lies under a configured
 * root and under none of the places that are never published: DATA_DIR
 * (token, database; DATA_DIR/distros excepted), /etc, /root, /proc, /sys,
 * and /dev. Checked when a distro is written (the error names the
 * field and the roots), when a file is served, and by `forge check`.
 */
import { realpathSync } from 'node:fs';
import { dirname, join, relative, resolve, isAbsolute, sep, basename } from 'node:path';
import { ForgeError } from '../errors.js';

/** Never published, whatever boot_roots says. */
export const NEVER_SERVED = ['/etc', '/root', '/proc', '/sys', '/dev'] as const;

/** Directory under DATA_DIR meant for distro files (the one part of DATA_DIR that may be served). */
export const distrosDirOf = (dataDir: string): string => join(dataDir, 'distros');

/**
 * The built-in roots: a site directory, DATA_DIR/distros, the Debian
 * installer netboot images (debian-installer-*-netboot-* packages), the
 * loader packages (ipxe, pxelinux, syslinux-common, grub-efi-*-signed,
 * shim-signed) and Cobbler's published tree (/var/www/cobbler: its
 * distro_mirror is where `forge import-cobbler` finds kernels, and Cobbler's
 * own web server already publishes it).
 */
export function defaultBootRoots(dataDir: string): string[] {
  return [
    '/srv/forge',
    distrosDirOf(dataDir),
    '/usr/lib/debian-installer',
    '/usr/lib/ipxe',
    '/usr/lib/PXELINUX',
    '/usr/lib/syslinux',
    '/usr/lib/grub',
    '/usr/lib/shim',
    '/var/www/cobbler',
  ];
}

export interface BootRoots {
  /** As configured (for messages). */
  readonly roots: readonly string[];
  readonly dataDir: string;
}

function within(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/** Real path of p; for a path that does not exist yet, of its deepest existing ancestor plus the rest. */
export function realOrPending(p: string): string {
  const abs = resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return abs;
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

function realRoot(p: string): string {
  return realOrPending(p);
}

/** The rule a configured root breaks, or undefined (used at startup for boot_roots and tftp_root). */
export function rootRule(root: string, dataDir: string): string | undefined {
  if (!isAbsolute(root)) return `"${root}" must be an absolute path`;
  const real = realRoot(root);
  const data = realRoot(dataDir);
  if (real === '/') return '"/" would publish the whole file system';
  for (const n of NEVER_SERVED) {
    if (within(real, n) || within(n, real)) return `"${root}" overlaps ${n}, which is never served`;
  }
  // A root above DATA_DIR is fine (its files are refused path by path); DATA_DIR itself is not.
  if (within(real, data) && !within(real, distrosDirOf(data))) {
    return `"${root}" is the data directory ${dataDir} or inside it (token, database); use ${distrosDirOf(dataDir)}`;
  }
  return undefined;
}

/** Why the path may not be served, or undefined when it may (pure but for realpath). */
export function whyRefused(path: string, roots: BootRoots): string | undefined {
  if (!isAbsolute(path)) return 'not an absolute path';
  const real = realOrPending(path);
  const data = realOrPending(roots.dataDir);
  const via = real !== resolve(path) ? ` (it resolves to ${real})` : '';
  if (real === '/') return `"/" is never served${via}`;
  for (const n of NEVER_SERVED) if (within(real, n)) return `${n} is never served${via}`;
  if (within(real, data) && !within(real, distrosDirOf(data))) return `the data directory ${roots.dataDir} is never served${via}`;
  if (!roots.roots.some((r) => within(real, realRoot(r)))) return `it is outside the boot roots${via}`;
  return undefined;
}

/** Throws PATH_OUTSIDE_ROOTS naming the field and the allowed roots. */
export function assertConfined(field: string, path: string, roots: BootRoots): void {
  const why = whyRefused(path, roots);
  if (why !== undefined) {
    throw new ForgeError('PATH_OUTSIDE_ROOTS', `${field}: ${path} cannot be served: ${why}; allowed roots (boot_roots): ${roots.roots.join(', ')}`, {
      field,
      details: { roots: roots.roots },
    });
  }
}

/** The roots in effect: `boot_roots`, or the built-in ones when it is empty. */
export function bootRootsOf(config: { boot_roots: readonly string[]; data_dir: string }): BootRoots {
  return { roots: config.boot_roots.length > 0 ? [...config.boot_roots] : defaultBootRoots(config.data_dir), dataDir: config.data_dir };
}

/** Startup check of boot_roots and tftp_root: CONFIG_INVALID naming the key and the rule. */
export function checkRootsConfig(config: { boot_roots: readonly string[]; data_dir: string; tftp_root: string }): void {
  for (const r of config.boot_roots) {
    const rule = rootRule(r, config.data_dir);
    if (rule !== undefined) throw new ForgeError('CONFIG_INVALID', `boot_roots: ${rule}`, { field: 'boot_roots' });
  }
  if (config.tftp_root !== '') {
    const rule = rootRule(config.tftp_root, config.data_dir);
    if (rule !== undefined) throw new ForgeError('CONFIG_INVALID', `tftp_root: ${rule}`, { field: 'tftp_root' });
  }
}

/** The distro fields that name server files. */
export const DISTRO_PATH_FIELDS = ['kernel', 'initrd', 'tree'] as const;

/** Check a distro's local paths (URLs are fetched, never confined here). */
export function assertDistroConfined(d: { kernel: string; initrd: string; tree: string }, roots: BootRoots): void {
  for (const f of DISTRO_PATH_FIELDS) {
    const v = d[f];
    if (v !== '' && v.startsWith('/')) assertConfined(f, v, roots);
  }
}
