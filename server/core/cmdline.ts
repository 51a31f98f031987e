/**
 * The kernel command line per breed, computed in one place (owned by the
 * autoinstall rendering work). Pure: blended variables in, a string out.
 *
 * Per breed (see shared notes, cobbler-koan-reference.md):
 *  - redhat:  `inst.ks=URL inst.repo=TREE`; a static boot interface adds the
 *             dracut form `ip=IP::GW:NETMASK:HOST:IFACE:none`, one
 *             `nameserver=DNS` per server and `ifname=IFACE:MAC` (dracut.cmdline(7)).
 *  - debian/ubuntu: `auto=true priority=critical url=URL hostname=H domain=D
 *             interface=auto` (d-i "auto" mode, installation-guide B.2.3);
 *             a static boot interface adds the netcfg answers d-i needs
 *             before it can fetch the preseed file at all.
 *  - ubuntu 20.04+ (subiquity, core/installer.ts): `ip=dhcp` (or the static
 *             initramfs-tools form `ip=IP::GW:MASK:HOST::none` with
 *             `BOOTIF=01-MAC` naming the device, nfsroot.txt / initramfs-tools(7)),
 *             `url=ISO` + `root=/dev/ram0 ramdisk_size=...` when the distro
 *             has an iso_url (casper loads the live ISO), `cloud-config-url=/dev/null`
 *             (cloud-init would otherwise also fetch casper's url=),
 *             `autoinstall ds=nocloud-net;s=SEED/` (cloud-init NoCloud).
 *             The `;` stays in the one word; GRUB's config writer quotes it
 *             (boot/configs.ts grubWord), iPXE only splits on a whole `;` token.
 *  - suse 16+ (Agama): `inst.auto=URL` (+ `inst.install_url=TREE`), static
 *             boot NICs as the dracut `ip=` form like redhat.
 *  - suse:    `autoyast=URL install=TREE`; a static boot interface adds
 *             linuxrc `ifcfg=IFACE=IP/PREFIX,GW,DNS` and `hostname=`.
 *  - generic: `forge.autoinstall=URL` (forge's own test installers).
 * Then the blended kernel_options: a key already present replaces the
 * breed's value in place, a new key is appended, `!key` removes key.
 *
 * The boot interface is the first interface by name with a MAC that is
 * neither a bond/bridge nor one of their members; `ip=` is only emitted when that interface is static, because
 * dracut brings up only the interfaces named by `ip=` and a DHCP boot NIC
 * would otherwise be left down.
 */
import { installerFormat } from './installer.js';
import type { OptionDict } from './model.js';

export interface CmdlineInput {
  /** Blended variables of a system or profile (see core/blend.ts). */
  vars: Record<string, unknown>;
  /** Absolute URL of the autoinstall file for this system/profile. */
  autoinstallUrl: string;
  /** NoCloud seed directory URL (ending in /) for cloud-init based installers; defaults to autoinstallUrl's. */
  seedUrl?: string;
}

/** An ordered list of kernel arguments; `null` value = bare flag (`quiet`). */
export type KernelArgs = [string, string | null][];

export function optionsToString(opts: OptionDict): string {
  return argsToString(Object.entries(opts).filter(([k]) => !k.startsWith('!')));
}

/** Kernel parameters with whitespace in their value are double-quoted (kernel-parameters.txt). */
export function argsToString(args: KernelArgs): string {
  return args
    .map(([k, v]) => {
      if (v === null) return k;
      return /\s/.test(v) ? `${k}="${v.replace(/"/g, '')}"` : `${k}=${v}`;
    })
    .join(' ');
}

interface Iface {
  name: string;
  mac: string;
  ip: string;
  netmask: string;
  gateway: string;
  static: boolean;
  type: string;
}

/** eth2 < eth10. */
const NATURAL = new Intl.Collator('en', { numeric: true }).compare;

const str = (x: unknown): string => (typeof x === 'string' ? x : typeof x === 'number' ? String(x) : '');
const strList = (x: unknown): string[] =>
  Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string' && s !== '') : typeof x === 'string' && x !== '' ? x.split(/[\s,]+/).filter((s) => s !== '') : [];

function interfaces(vars: Record<string, unknown>): Iface[] {
  const raw = vars['interfaces'];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return [];
  const out: Iface[] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'object' || v === null) continue;
    const i = v as Record<string, unknown>;
    out.push({
      name,
      mac: str(i['mac_address']),
      ip: str(i['ip_address']),
      netmask: str(i['netmask']),
      gateway: str(i['if_gateway']),
      static: i['static'] === true,
      type: str(i['interface_type']),
    });
  }
  return out.sort((a, b) => NATURAL(a.name, b.name));
}

/** The interface the installer boots from (see the module comment). */
export function bootInterface(vars: Record<string, unknown>): Iface | undefined {
  const candidates = interfaces(vars).filter((i) => i.type !== 'bond_slave' && i.type !== 'bridge_slave');
  // A NIC that can PXE-boot has a MAC; bonds and bridges (no MAC of their own) come last.
  return candidates.find((i) => i.mac !== '' && (i.type === 'na' || i.type === '')) ?? candidates[0];
}

/** 255.255.255.0 -> 24; an invalid mask gives undefined. */
export function netmaskToPrefix(mask: string): number | undefined {
  const parts = mask.split('.');
  if (parts.length !== 4) return undefined;
  let bits = 0;
  let seenZero = false;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    for (let b = 7; b >= 0; b--) {
      const one = ((n >> b) & 1) === 1;
      if (one && seenZero) return undefined;
      if (one) bits++;
      else seenZero = true;
    }
  }
  return bits;
}

function splitHost(vars: Record<string, unknown>): { host: string; domain: string } {
  const fqdn = str(vars['hostname']);
  const dot = fqdn.indexOf('.');
  const search = strList(vars['name_servers_search']);
  if (dot > 0) return { host: fqdn.slice(0, dot), domain: fqdn.slice(dot + 1) };
  return { host: fqdn, domain: search[0] ?? '' };
}

/** The breed's own arguments, before kernel_options are applied. */
export function breedArgs(input: CmdlineInput): KernelArgs {
  const { vars, autoinstallUrl: url } = input;
  const breed = str(vars['breed']);
  const tree = str(vars['tree']);
  const boot = bootInterface(vars);
  const gateway = boot !== undefined ? boot.gateway || str(vars['gateway']) : '';
  const dns = strList(vars['name_servers']);
  const staticBoot = boot !== undefined && boot.static && boot.ip !== '' && boot.netmask !== '';
  const { host, domain } = splitHost(vars);
  const args: KernelArgs = [];
  const format = installerFormat(breed, str(vars['os_version']));
  const dracutStatic = (): void => {
    if (!staticBoot || boot === undefined) return;
    args.push(['ip', `${boot.ip}::${gateway}:${boot.netmask}:${str(vars['hostname'])}:${boot.name}:none`]);
    for (const d of dns) args.push(['nameserver', d]);
    // ip= names an interface; the installer kernel's names (ens3, ...) need
    // not match the record's (eth0), so bind the name to the MAC (dracut
    // ifname=, which Anaconda carries over to the installed system).
    if (boot.mac !== '') args.push(['ifname', `${boot.name}:${boot.mac}`]);
  };
  if (format === 'autoinstall') {
    const seed = input.seedUrl ?? `${url.replace('/autoinstall/', '/cloud-init/')}/`;
    if (staticBoot && boot !== undefined) {
      // klibc ipconfig: client::gw:mask:host:device:autoconf; an empty device
      // plus BOOTIF picks the NIC by MAC (initramfs-tools' configure_networking).
      args.push(['ip', `${boot.ip}::${gateway}:${boot.netmask}:${host}::none`]);
      if (boot.mac !== '') args.push(['BOOTIF', `01-${boot.mac.toLowerCase().replace(/:/g, '-')}`]);
      if (dns.length > 0) args.push(['nameserver', dns[0]!]);
    } else {
      args.push(['ip', 'dhcp']);
    }
    const iso = str(vars['iso_url']);
    if (iso !== '') args.push(['root', '/dev/ram0'], ['ramdisk_size', '1500000'], ['url', iso]);
    args.push(['cloud-config-url', '/dev/null'], ['autoinstall', null], ['ds', `nocloud-net;s=${seed}`]);
    return args;
  }
  if (format === 'agama') {
    args.push(['inst.auto', url]);
    if (tree !== '') args.push(['inst.install_url', tree]);
    dracutStatic();
    return args;
  }
  switch (breed) {
    case 'redhat': {
      args.push(['inst.ks', url]);
      if (tree !== '') args.push(['inst.repo', tree]);
      dracutStatic();
      break;
    }
    case 'debian':
    case 'ubuntu': {
      args.push(['auto', 'true'], ['priority', 'critical'], ['url', url]);
      if (host !== '') args.push(['hostname', host]);
      if (domain !== '') args.push(['domain', domain]);
      args.push(['interface', 'auto']);
      if (staticBoot && boot !== undefined) {
        // d-i must reach the network before it can read the preseed file.
        args.push(
          ['netcfg/disable_autoconfig', 'true'],
          ['netcfg/get_ipaddress', boot.ip],
          ['netcfg/get_netmask', boot.netmask],
        );
        if (gateway !== '') args.push(['netcfg/get_gateway', gateway]);
        if (dns.length > 0) args.push(['netcfg/get_nameservers', dns.join(' ')]);
        args.push(['netcfg/confirm_static', 'true']);
      }
      break;
    }
    case 'suse': {
      args.push(['autoyast', url]);
      if (tree !== '') args.push(['install', tree]);
      if (staticBoot && boot !== undefined) {
        const prefix = netmaskToPrefix(boot.netmask);
        const ipPart = prefix === undefined ? boot.ip : `${boot.ip}/${prefix}`;
        // linuxrc: ifcfg=IFACE=IP/PREFIX,GATEWAY,NAMESERVERS (space separated lists inside quotes)
        args.push(['ifcfg', `${boot.name}=${[ipPart, gateway, dns.join(' ')].join(',').replace(/,+$/, '')}`]);
        if (host !== '') args.push(['hostname', str(vars['hostname'])]);
      }
      break;
    }
    default:
      args.push(['forge.autoinstall', url]);
  }
  return args;
}

/** Apply an OptionDict to an argument list: replace in place, append, or `!key` remove. */
export function applyOptions(base: KernelArgs, opts: OptionDict): KernelArgs {
  let out: KernelArgs = base.map(([k, v]) => [k, v]);
  for (const [key, value] of Object.entries(opts)) {
    if (key.startsWith('!')) {
      const gone = key.slice(1);
      out = out.filter(([k]) => k !== gone);
      continue;
    }
    const first = out.findIndex(([k]) => k === key);
    if (first === -1) {
      out.push([key, value]);
    } else {
      out[first] = [key, value];
      out = out.filter(([k], i) => k !== key || i === first);
    }
  }
  return out;
}

function optionDict(x: unknown): OptionDict {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return {};
  const out: OptionDict = {};
  for (const [k, v] of Object.entries(x as Record<string, unknown>)) {
    if (v === null || typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
  }
  return out;
}

export function kernelArgs(input: CmdlineInput): KernelArgs {
  return applyOptions(breedArgs(input), optionDict(input.vars['kernel_options']));
}

export function kernelCommandLine(input: CmdlineInput): string {
  return argsToString(kernelArgs(input));
}
