/**
 * What the DHCP hot path needs from the store: the system owning a MAC, its
 * interface and its blended boot_loaders (system -> profile chain -> distro;
 * the first non-empty list wins, as core/blend.ts resolves lists), and
 * whether an address is reserved by some system.
 */
import type { NetInterface, System } from '../../core/model.js';
import type { Store } from '../../store/store.js';

export interface Resolved {
  system: System;
  iface: NetInterface | undefined;
  bootLoaders: string[];
}

const MAX_CHAIN = 32;

export async function profileLoaders(store: Store, profileName: string): Promise<string[]> {
  let name = profileName;
  for (let i = 0; i < MAX_CHAIN && name !== ''; i++) {
    const p = await store.get('profile', name);
    if (p === undefined) return [];
    if (p.boot_loaders.length > 0) return p.boot_loaders;
    if (p.parent === '') {
      const d = p.distro === '' ? undefined : await store.get('distro', p.distro);
      return d?.boot_loaders ?? [];
    }
    name = p.parent;
  }
  return [];
}

export async function resolveByMac(store: Store, mac: string): Promise<Resolved | undefined> {
  const system = await store.findSystemByMac(mac);
  if (system === undefined) return undefined;
  const iface = Object.values(system.interfaces).find((i) => i.mac_address.toLowerCase() === mac);
  const bootLoaders = system.boot_loaders.length > 0 ? system.boot_loaders : await profileLoaders(store, system.profile);
  return { system, iface, bootLoaders };
}
