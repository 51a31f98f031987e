/**
 * `forge import`: recognise an install tree or netboot tree on disk.
 *
 *  - Debian/Ubuntu netboot: a directory with `linux` + `initrd.gz`
 *    (e.g. /usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64,
 *    or the root of a netboot.tar.gz: debian-installer/ARCH/linux);
 *    Debian install media: install.amd/vmlinuz + install.amd/initrd.gz.
 *  - Red Hat family: `.treeinfo` with images/pxeboot/vmlinuz + initrd.img.
 *  - SUSE: boot/ARCH/loader/linux + boot/ARCH/loader/initrd.
 * The reading is behind a tiny FS port so the rules are table-tested.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Arch, Breed } from './core/model.js';
import { ForgeError } from './errors.js';

export interface TreeFs {
  isFile(p: string): boolean;
  isDir(p: string): boolean;
  read(p: string): string | undefined;
  list(p: string): string[];
}

export const realFs: TreeFs = {
  isFile: (p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  },
  isDir: (p) => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return false;
    }
  },
  read: (p) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  },
  list: (p) => {
    try {
      return readdirSync(p).sort();
    } catch {
      return [];
    }
  },
};

export interface DetectedTree {
  layout: 'debian-netboot' | 'debian-media' | 'ubuntu-live' | 'redhat' | 'suse';
  breed: Breed;
  arch: Arch;
  os_version: string;
  kernel: string;
  initrd: string;
  /** Directory served as /tree/NAME/. */
  tree: string;
  /** ubuntu-live: a live-server ISO file found in the tree directory (casper's url= must name an ISO). */
  iso?: string;
}

/** What import looks for, in the IMPORT_UNRECOGNISED message. */
export const LOOKED_FOR = [
  'Debian/Ubuntu netboot: linux + initrd.gz (also under debian-installer/ARCH/ or ubuntu-installer/ARCH/)',
  'Debian media: install.amd/vmlinuz + install.amd/initrd.gz',
  'Ubuntu live server (subiquity): casper/vmlinuz + casper/initrd',
  'Red Hat: .treeinfo + images/pxeboot/vmlinuz + images/pxeboot/initrd.img',
  'SUSE: boot/ARCH/loader/linux + boot/ARCH/loader/initrd',
];

const DEB_ARCH: Record<string, Arch> = { amd64: 'x86_64', i386: 'i386', arm64: 'aarch64', ppc64el: 'ppc64le', s390x: 's390x' };

function archFromPath(p: string): Arch | undefined {
  for (const seg of p.split('/').reverse()) {
    const a = DEB_ARCH[seg];
    if (a !== undefined) return a;
    if (seg === 'x86_64' || seg === 'aarch64' || seg === 'ppc64le' || seg === 's390x' || seg === 'i386') return seg;
  }
  return undefined;
}

/** INI-style .treeinfo: section -> key -> value. */
export function parseTreeinfo(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec !== null) {
      section = sec[1]!.trim();
      out[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0) (out[section] ??= {})[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

function debianVersion(p: string): string {
  const m = /\/images\/(\d+)\//.exec(p) ?? /(?:^|[/-])(\d{1,2}(?:\.\d+)?)(?:[/-]|$)/.exec(p);
  return m?.[1] ?? '';
}

function detectDebian(dir: string, fs: TreeFs): DetectedTree | undefined {
  const candidates: string[] = [dir];
  for (const inst of ['debian-installer', 'ubuntu-installer']) {
    const base = join(dir, inst);
    if (fs.isDir(base)) for (const a of fs.list(base)) candidates.push(join(base, a));
  }
  for (const c of candidates) {
    if (fs.isFile(join(c, 'linux')) && fs.isFile(join(c, 'initrd.gz'))) {
      const breed: Breed = /ubuntu/i.test(c) || fs.isDir(join(dir, 'ubuntu-installer')) ? 'ubuntu' : 'debian';
      return {
        layout: 'debian-netboot',
        breed,
        arch: archFromPath(c) ?? 'x86_64',
        os_version: debianVersion(c),
        kernel: join(c, 'linux'),
        initrd: join(c, 'initrd.gz'),
        tree: dir,
      };
    }
  }
  for (const [sub, arch] of [['install.amd', 'x86_64'], ['install.a64', 'aarch64'], ['install.386', 'i386']] as const) {
    if (fs.isFile(join(dir, sub, 'vmlinuz')) && fs.isFile(join(dir, sub, 'initrd.gz'))) {
      const info = fs.read(join(dir, '.disk', 'info')) ?? '';
      const ver = /\b(\d+(?:\.\d+)*)\b/.exec(info)?.[1] ?? '';
      return {
        layout: 'debian-media',
        breed: /ubuntu/i.test(info) ? 'ubuntu' : 'debian',
        arch,
        os_version: ver,
        kernel: join(dir, sub, 'vmlinuz'),
        initrd: join(dir, sub, 'initrd.gz'),
        tree: dir,
      };
    }
  }
  return undefined;
}

/**
 * An Ubuntu live-server tree (the ISO mounted or copied): casper/vmlinuz and
 * casper/initrd, version from .disk/info ("Ubuntu-Server 24.04.1 LTS ...").
 * The installer netboots by loading the whole ISO (casper url=ISO), so an
 * .iso file next to the tree is remembered for the distro's iso_url.
 */
function detectUbuntuLive(dir: string, fs: TreeFs): DetectedTree | undefined {
  const k = join(dir, 'casper', 'vmlinuz');
  const initrd = ['initrd', 'initrd.gz', 'initrd.lz'].map((n) => join(dir, 'casper', n)).find((p) => fs.isFile(p));
  if (!fs.isFile(k) || initrd === undefined) return undefined;
  const info = fs.read(join(dir, '.disk', 'info')) ?? '';
  const iso = fs.list(dir).find((n) => n.toLowerCase().endsWith('.iso'));
  const found: DetectedTree = {
    layout: 'ubuntu-live',
    breed: 'ubuntu',
    arch: /arm64|aarch64/i.test(info) ? 'aarch64' : 'x86_64',
    os_version: /\b(\d{2}\.\d{2})(?:\.\d+)?\b/.exec(info)?.[1] ?? '',
    kernel: k,
    initrd,
    tree: dir,
  };
  if (iso !== undefined) found.iso = iso;
  return found;
}

function detectRedhat(dir: string, fs: TreeFs): DetectedTree | undefined {
  const k = join(dir, 'images', 'pxeboot', 'vmlinuz');
  const i = join(dir, 'images', 'pxeboot', 'initrd.img');
  const ti = fs.read(join(dir, '.treeinfo'));
  if (ti === undefined || !fs.isFile(k) || !fs.isFile(i)) return undefined;
  const info = parseTreeinfo(ti);
  const arch = info['general']?.['arch'] ?? info['tree']?.['arch'] ?? '';
  const version = info['release']?.['version'] ?? info['general']?.['version'] ?? '';
  return {
    layout: 'redhat',
    breed: 'redhat',
    arch: (['x86_64', 'i386', 'aarch64', 'ppc64le', 's390x'] as const).find((a) => a === arch) ?? 'x86_64',
    os_version: version,
    kernel: k,
    initrd: i,
    tree: dir,
  };
}

function detectSuse(dir: string, fs: TreeFs): DetectedTree | undefined {
  for (const a of ['x86_64', 'aarch64', 'ppc64le', 's390x', 'i386'] as const) {
    const base = join(dir, 'boot', a, 'loader');
    if (fs.isFile(join(base, 'linux')) && fs.isFile(join(base, 'initrd'))) {
      const content = fs.read(join(dir, 'content')) ?? fs.read(join(dir, 'media.1', 'products')) ?? '';
      const ver = /VERSION\s+(\S+)/.exec(content)?.[1] ?? /\s(\d+(?:\.\d+)*)\s*$/m.exec(content)?.[1] ?? '';
      return { layout: 'suse', breed: 'suse', arch: a, os_version: ver, kernel: join(base, 'linux'), initrd: join(base, 'initrd'), tree: dir };
    }
  }
  return undefined;
}

/** Recognise the tree at `path`; IMPORT_UNRECOGNISED names what was looked for. */
export function detectTree(path: string, fs: TreeFs = realFs): DetectedTree {
  const dir = resolve(path);
  if (!fs.isDir(dir)) throw new ForgeError('IMPORT_UNRECOGNISED', `${dir} is not a directory`, { field: 'path' });
  const found = detectRedhat(dir, fs) ?? detectSuse(dir, fs) ?? detectUbuntuLive(dir, fs) ?? detectDebian(dir, fs);
  if (found === undefined) {
    throw new ForgeError('IMPORT_UNRECOGNISED', `no install or netboot tree recognised at ${dir}; looked for:\n  ${LOOKED_FOR.join('\n  ')}`, {
      field: 'path',
      details: { looked_for: LOOKED_FOR },
    });
  }
  return found;
}
