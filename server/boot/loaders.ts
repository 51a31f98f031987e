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

import { LOADERS, type Firmware, type LoaderSpec } from '../core/loaders.js';

export { LOADERS, type LoaderSpec };

export interface LoaderStatus {
  name: string;
  firmware: Firmware;
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
