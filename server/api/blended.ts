/**
 * Loading what blending needs from the store: a system's or profile's
 * profile chain and distro. Shared by the API, the autoinstall renderer and
 * the boot-config generators (anything that wants `dumpvars`).
 */
import { blendProfile, blendSystem } from '../core/blend.js';
import type { Vars } from '../core/blend.js';
import { INHERIT } from '../core/model.js';
import type { Distro, Profile, Settings, System, VirtType } from '../core/model.js';
import { ForgeError } from '../errors.js';
import type { Store } from '../store/store.js';

export interface Chain {
  /** nearest first */
  profiles: Profile[];
  distro: Distro;
}

export async function loadChain(store: Store, profileName: string): Promise<Chain> {
  const profiles: Profile[] = [];
  const seen = new Set<string>();
  let name = profileName;
  for (;;) {
    if (seen.has(name)) throw new ForgeError('PARENT_CYCLE', `parent: profiles ${[...seen].join(' -> ')} form a cycle`, { field: 'parent' });
    seen.add(name);
    const p = await store.get('profile', name);
    if (p === undefined) {
      throw new ForgeError('REFERENCE_MISSING', `profile: ${name} does not exist`, { field: profiles.length === 0 ? 'profile' : 'parent' });
    }
    profiles.push(p);
    if (p.parent !== '') {
      name = p.parent;
      continue;
    }
    const distro = await store.get('distro', p.distro);
    if (distro === undefined) {
      throw new ForgeError('REFERENCE_MISSING', `distro: ${p.distro || '(none)'} of profile ${p.name} does not exist`, {
        field: 'distro',
      });
    }
    return { profiles, distro };
  }
}

export async function blendedSystem(store: Store, settings: Settings, system: System | string): Promise<Vars> {
  const s = typeof system === 'string' ? await store.mustGet('system', system) : system;
  const chain = await loadChain(store, s.profile);
  return blendSystem(s, chain.profiles, chain.distro, settings);
}

export async function blendedProfile(store: Store, settings: Settings, profile: string): Promise<Vars> {
  await store.mustGet('profile', profile);
  const chain = await loadChain(store, profile);
  return blendProfile(chain.profiles, chain.distro, settings);
}

/**
 * The virt type a system would be installed with: its own, else the nearest
 * profile's, else the settings default. Tolerates a missing profile (the
 * store reports that error with the write).
 */
export async function effectiveVirtType(store: Store, settings: Settings, sys: Pick<System, 'virt_type' | 'profile'>): Promise<VirtType> {
  if (sys.virt_type !== INHERIT) return sys.virt_type;
  const seen = new Set<string>();
  let name = sys.profile;
  while (name !== '' && !seen.has(name)) {
    seen.add(name);
    const p = await store.get('profile', name);
    if (p === undefined) break;
    if (p.virt_type !== INHERIT) return p.virt_type;
    name = p.parent;
  }
  return settings.default_virt_type;
}
