/**
 * The catalog: "which machine, which profile chain, which answer", read from
 * the store. Every caller that needs a system by MAC, a profile chain, the
 * blended variables (`dumpvars`), the effective virt type or the blended
 * boot loaders comes here: the API, the renderer, the boot service, the DHCP
 * hot path and the Cobbler XML-RPC API.
 *
 * One rule for walking a chain (`link`): nearest profile first, a profile
 * seen twice is PARENT_CYCLE, more than MAX_CHAIN links is PARENT_CYCLE, a
 * missing link is REFERENCE_MISSING. The store refuses cycles and dangling
 * references on write; these checks are for data that reached it otherwise.
 * The tolerant readers (boot loaders, virt type) treat a broken chain as "no
 * value" and fall back, because a DHCP answer or a random MAC must not fail
 * on it (the write that broke it reports the error).
 */
import { blendProfile, blendSystem, type Vars } from './core/blend.js';
import { INHERIT } from './core/model.js';
import type { Distro, NetInterface, Profile, Settings, System, VirtType } from './core/model.js';
import { ForgeError } from './errors.js';
import { windowOpen } from './core/access.js';
import type { Store } from './store/store.js';

/** Longest profile chain followed (sub-profiles of sub-profiles ...). */
export const MAX_CHAIN = 64;

export interface Chain {
  /** nearest first */
  profiles: Profile[];
  distro: Distro;
}

/** The next profile of a chain that has visited `seen` (the one rule: cycles, depth, missing links). */
async function link(store: Store, name: string, seen: Set<string>): Promise<Profile> {
  if (seen.has(name)) throw new ForgeError('PARENT_CYCLE', `parent: profiles ${[...seen].join(' -> ')} form a cycle`, { field: 'parent' });
  if (seen.size >= MAX_CHAIN) {
    throw new ForgeError('PARENT_CYCLE', `parent: profile chain ${[...seen][0]!} is longer than ${MAX_CHAIN}`, { field: 'parent' });
  }
  const first = seen.size === 0;
  seen.add(name);
  const p = await store.get('profile', name);
  if (p === undefined) throw new ForgeError('REFERENCE_MISSING', `profile: ${name} does not exist`, { field: first ? 'profile' : 'parent' });
  return p;
}

/** A profile's chain and distro. Throws REFERENCE_MISSING / PARENT_CYCLE. */
export async function chainOf(store: Store, profileName: string): Promise<Chain> {
  const profiles: Profile[] = [];
  const seen = new Set<string>();
  let name = profileName;
  for (;;) {
    const p = await link(store, name, seen);
    profiles.push(p);
    if (p.parent !== '') {
      name = p.parent;
      continue;
    }
    const distro = await store.get('distro', p.distro);
    if (distro === undefined) {
      throw new ForgeError('REFERENCE_MISSING', `distro: ${p.distro || '(none)'} of profile ${p.name} does not exist`, { field: 'distro' });
    }
    return { profiles, distro };
  }
}

/** A chain error (REFERENCE_MISSING / PARENT_CYCLE) the tolerant readers fall back on. */
function brokenChain(e: unknown): boolean {
  return e instanceof ForgeError && (e.code === 'REFERENCE_MISSING' || e.code === 'PARENT_CYCLE');
}

// ---------------------------------------------------------------- blended views

/** The system's install token while its install window is open (core/access.ts), for its URLs. */
export async function openInstallToken(store: Store, settings: Settings, name: string): Promise<string | undefined> {
  const w = await store.installWindow(name);
  return windowOpen(w, Date.now(), settings.install_grace_minutes) ? w!.token : undefined;
}

/** A system's blended variables (what templates see) and its distro; URLs carry its open install token. */
export async function systemVars(store: Store, settings: Settings, s: System): Promise<{ vars: Vars; distro: Distro }> {
  const chain = await chainOf(store, s.profile);
  const token = await openInstallToken(store, settings, s.name);
  return { vars: blendSystem(s, chain.profiles, chain.distro, settings, await store.list('subnet'), token), distro: chain.distro };
}

/** A profile's blended variables and its distro. */
export async function profileVars(store: Store, settings: Settings, name: string): Promise<{ vars: Vars; distro: Distro }> {
  const chain = await chainOf(store, name);
  return { vars: blendProfile(chain.profiles, chain.distro, settings), distro: chain.distro };
}

/** `system dumpvars`: throws NOT_FOUND for an unknown name. */
export async function blendedSystem(store: Store, settings: Settings, system: System | string): Promise<Vars> {
  const s = typeof system === 'string' ? await store.mustGet('system', system) : system;
  return (await systemVars(store, settings, s)).vars;
}

/** `profile dumpvars`: throws NOT_FOUND for an unknown name. */
export async function blendedProfile(store: Store, settings: Settings, profile: string): Promise<Vars> {
  await store.mustGet('profile', profile);
  return (await profileVars(store, settings, profile)).vars;
}

// ---------------------------------------------------------------- single blended fields (tolerant)

/**
 * The virt type a system would be installed with: its own, else the nearest
 * profile's, else the settings default. Tolerates a broken chain (the store
 * reports that error with the write).
 */
export async function effectiveVirtType(store: Store, settings: Settings, sys: Pick<System, 'virt_type' | 'profile'>): Promise<VirtType> {
  if (sys.virt_type !== INHERIT) return sys.virt_type;
  const seen = new Set<string>();
  let name = sys.profile;
  try {
    while (name !== '') {
      const p = await link(store, name, seen);
      if (p.virt_type !== INHERIT) return p.virt_type;
      name = p.parent;
    }
  } catch (e) {
    if (!brokenChain(e)) throw e;
  }
  return settings.default_virt_type;
}

/**
 * A profile's blended boot_loaders: the first non-empty list along the
 * chain, else the distro's (lists resolve as core/blend.ts resolves them).
 * A broken chain gives [] (the configured default loader).
 */
export async function bootLoadersOf(store: Store, profileName: string): Promise<string[]> {
  const seen = new Set<string>();
  let name = profileName;
  try {
    while (name !== '') {
      const p = await link(store, name, seen);
      if (p.boot_loaders.length > 0) return p.boot_loaders;
      if (p.parent === '') {
        const d = p.distro === '' ? undefined : await store.get('distro', p.distro);
        return d?.boot_loaders ?? [];
      }
      name = p.parent;
    }
  } catch (e) {
    if (!brokenChain(e)) throw e;
  }
  return [];
}

// ---------------------------------------------------------------- by MAC

export interface Resolved {
  system: System;
  iface: NetInterface | undefined;
  bootLoaders: string[];
}

/** The system owning a MAC (lower-case colon form), its interface and its blended boot_loaders. */
export async function resolveByMac(store: Store, mac: string): Promise<Resolved | undefined> {
  const system = await store.findSystemByMac(mac);
  if (system === undefined) return undefined;
  const iface = Object.values(system.interfaces).find((i) => i.mac_address.toLowerCase() === mac);
  const bootLoaders = system.boot_loaders.length > 0 ? system.boot_loaders : await bootLoadersOf(store, system.profile);
  return { system, iface, bootLoaders };
}
