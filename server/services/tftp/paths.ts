/**
 * Request path policy for the TFTP server: pure checks first, then the one
 * filesystem step (realpath confinement).
 *
 * Decision on a leading `/`: it is stripped and the rest is looked up under
 * the root, as tftpd-hpa (`-s`, chroot) and dnsmasq (`--tftp-root`) do. GRUB's
 * tftp module sends names like `/grub/grub.cfg` and some PXE configs use
 * `/pxelinux.0`, while pxelinux asks for relative names. This is safe because
 * the stripped name goes through every other rule here (no `..`, no
 * backslash, no NUL, realpath inside the root): `/etc/passwd` becomes
 * `etc/passwd` under the root, never the host's file.
 */
import { realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';

export type PathCheck = { ok: true; rel: string } | { ok: false; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks a file name as it came off the wire (latin1, one char per byte) and
 * returns the normalised relative path (segments joined by `/`, no `.` or
 * empty segments). Refusals are access violations (TFTP error 2).
 */
export function checkRequestPath(wireName: string): PathCheck {
  let name: string;
  try {
    name = utf8.decode(Buffer.from(wireName, 'latin1'));
  } catch {
    return { ok: false, reason: 'file name is not valid UTF-8' };
  }
  if (name.includes('\0')) return { ok: false, reason: 'NUL in file name' };
  if (name.includes('\\')) return { ok: false, reason: 'backslash in file name' };
  // Windows drive letters (`C:...`) have no meaning here and hint at an attack.
  if (/^[A-Za-z]:/.test(name)) return { ok: false, reason: 'drive letter in file name' };
  const segments: string[] = [];
  for (const seg of name.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') return { ok: false, reason: '`..` segment in file name' };
    segments.push(seg);
  }
  if (segments.length === 0) return { ok: false, reason: 'empty file name' };
  return { ok: true, rel: segments.join('/') };
}

export type RootLookup =
  | { kind: 'file'; path: string; size: number }
  | { kind: 'missing' }
  | { kind: 'refused'; reason: string };

/**
 * Finds `rel` under `realRoot` (already a realpath). Symlinks are followed,
 * and refused when the real path leaves the root.
 */
export async function lookupInRoot(realRoot: string, rel: string): Promise<RootLookup> {
  let real: string;
  try {
    real = await realpath(join(realRoot, rel));
  } catch {
    return { kind: 'missing' };
  }
  const prefix = realRoot.endsWith(sep) ? realRoot : realRoot + sep;
  if (!real.startsWith(prefix)) return { kind: 'refused', reason: 'real path leaves the TFTP root' };
  try {
    const st = await stat(real);
    if (!st.isFile()) return { kind: 'missing' };
    return { kind: 'file', path: real, size: st.size };
  } catch {
    return { kind: 'missing' };
  }
}
