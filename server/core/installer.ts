/**
 * Which installer (and so which file format) a distro's breed and
 * os_version mean, and the few version-dependent installer features the
 * templates need. Pure decisions as values: one place answers "what does
 * Ubuntu 18.04 read" or "does this Anaconda take --ipv4-dns-search".
 *
 *  - redhat  -> Anaconda kickstart (every version).
 *  - debian  -> debian-installer preseed.
 *  - ubuntu  -> 20.04 and later: subiquity autoinstall (cloud-init user-data
 *               with an `autoinstall:` key, read through NoCloud);
 *               older (18.04 and before, or no version): debian-installer preseed.
 *  - suse    -> 16 and later (SLES 16, Leap 16): Agama JSON profile;
 *               15 and before: AutoYaST XML.
 *  - generic -> forge's shell script.
 */
import type { Breed } from './model.js';

export type InstallerFormat = 'kickstart' | 'preseed' | 'autoyast' | 'autoinstall' | 'agama' | 'generic';

export interface OsVersion {
  /** First number in os_version ("rhel9" -> 9, "9.4" -> 9, "22.04" -> 22, "sles15sp6" -> 15), or undefined. */
  major: number | undefined;
  /** Second number when written as MAJOR.MINOR ("22.04" -> 4), else 0. */
  minor: number;
  /** 'fedora' for Fedora (os_version says fedora, or a major of 20 and more on redhat), else the breed. */
  family: string;
}

/** Ubuntu codenames people put in os_version instead of numbers. */
const UBUNTU_CODENAMES: Record<string, [number, number]> = {
  trusty: [14, 4], xenial: [16, 4], bionic: [18, 4], focal: [20, 4], jammy: [22, 4], noble: [24, 4],
  oracular: [24, 10], plucky: [25, 4], questing: [25, 10],
};

export function parseOsVersion(breed: string, osVersion: string): OsVersion {
  const v = osVersion.toLowerCase();
  let major: number | undefined;
  let minor = 0;
  const m = /(\d+)(?:\.(\d+))?/.exec(v);
  if (m !== null) {
    major = Number(m[1]);
    minor = m[2] !== undefined ? Number(m[2]) : 0;
  } else if (breed === 'ubuntu') {
    const c = Object.entries(UBUNTU_CODENAMES).find(([name]) => v.includes(name));
    if (c !== undefined) [major, minor] = c[1];
  }
  // RHEL and its rebuilds are below 20; Fedora releases are 20 and up.
  const family = breed === 'redhat' && (v.includes('fedora') || /^f\d/.test(v) || (major !== undefined && major >= 20)) ? 'fedora' : breed;
  return { major, minor, family };
}

export function installerFormat(breed: Breed | string, osVersion: string): InstallerFormat {
  const v = parseOsVersion(breed, osVersion);
  switch (breed) {
    case 'redhat':
      return 'kickstart';
    case 'debian':
      return 'preseed';
    case 'ubuntu':
      return v.major !== undefined && v.major >= 20 ? 'autoinstall' : 'preseed';
    case 'suse':
      return v.major !== undefined && v.major >= 16 ? 'agama' : 'autoyast';
    default:
      return 'generic';
  }
}

/**
 * Kickstart features that depend on the Anaconda (pykickstart) version.
 * `network --ipv4-dns-search` exists from pykickstart's F39_Network, which
 * RHEL 9 and RHEL 10 use; RHEL 8 uses F27_Network (no such option).
 * Without a version the answer is the conservative one (RHEL 8 rules).
 */
export function kickstartFeatures(osVersion: string): { dnsSearch: boolean } {
  const v = parseOsVersion('redhat', osVersion);
  if (v.major === undefined) return { dnsSearch: false };
  return { dnsSearch: v.family === 'fedora' ? v.major >= 39 : v.major >= 9 };
}
