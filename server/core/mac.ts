/**
 * MAC addresses: normalisation and random generation. Pure.
 *
 * A random MAC takes the OUI of the virtualisation platform the machine runs
 * on, so that hypervisors and operators recognise it. Cobbler always uses
 * Xen's prefix because the system's virt type is never passed down (a FIXME
 * in its source, collisions in cobbler#3729); forge passes it.
 */
import type { VirtType } from './model.js';

/** IEEE OUIs registered to the platforms (QEMU/KVM and libvirt share 52:54:00). */
export const OUI: Record<VirtType, string> = {
  kvm: '52:54:00',
  qemu: '52:54:00',
  xenpv: '00:16:3e',
  vmware: '00:50:56',
};

export function ouiFor(virtType: string | undefined): string {
  if (virtType !== undefined && Object.prototype.hasOwnProperty.call(OUI, virtType)) {
    return OUI[virtType as VirtType];
  }
  return OUI.kvm;
}

/**
 * Accepts `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` and
 * `aabbccddeeff`; returns lower-case colon form, or undefined when invalid.
 */
export function normalizeMac(input: string): string | undefined {
  const s = input.trim().toLowerCase();
  let hex: string;
  if (/^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/.test(s)) hex = s.replace(/[:-]/g, '');
  else if (/^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/.test(s)) hex = s.replace(/\./g, '');
  else if (/^[0-9a-f]{12}$/.test(s)) hex = s;
  else return undefined;
  return hex.match(/../g)!.join(':');
}

export function isMac(s: string): boolean {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(s);
}

/**
 * A MAC with the given OUI and three host bytes taken from `random` (at least
 * 3 bytes). For the VMware OUI the fourth byte is kept in 0x00-0x3f: VMware
 * reserves that range for manually assigned addresses of its 00:50:56 block.
 */
export function randomMac(oui: string, random: Uint8Array): string {
  if (random.length < 3) throw new RangeError('randomMac needs 3 random bytes');
  const b = [random[0]!, random[1]!, random[2]!];
  if (oui === OUI.vmware) b[0] = b[0]! & 0x3f;
  return `${oui}:${b.map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}
