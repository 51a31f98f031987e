/**
 * `forge-agent --build debootstrap`: the decisions as values (seeds 000 "KVM
 * host creator" and 001 "vmbootstrap"). Pure: from the blended record and the
 * command line to a BuildPlan, and from the plan to the exact commands the
 * builder runs (so the LVM and partitioning steps are golden-tested without
 * device-mapper). agent/build.ts carries them out.
 */
import { createHash } from 'node:crypto';
import { ForgeError } from '../server/errors.js';
import type { Firmware } from './options.js';
import type { DiskTarget } from './plan.js';

export type Layout = 'gpt' | 'split';

/** Debian/Ubuntu release numbers as os_version may hold them, to suite names (distro-info-data's debian.csv, ubuntu.csv). */
const SUITES: Record<string, string> = {
  '9': 'stretch', '10': 'buster', '11': 'bullseye', '12': 'bookworm', '13': 'trixie', '14': 'forky',
  '18.04': 'bionic', '20.04': 'focal', '22.04': 'jammy', '24.04': 'noble', '24.10': 'oracular', '25.04': 'plucky', '25.10': 'questing', '26.04': 'resolute',
};
/**
 * Ubuntu suites (as mmdebstrap's get_suite_by_vendor knows them: its built-in list, distro-info-data's
 * ubuntu.csv, debootstrap's scripts linked to gutsy); a distro of breed ubuntu is Ubuntu whatever its suite.
 */
const UBUNTU_SUITES = new Set(['bionic', 'focal', 'jammy', 'kinetic', 'lunar', 'mantic', 'noble', 'oracular', 'plucky', 'questing', 'resolute']);
/**
 * Ubuntu's archive keyring where debootstrap (scripts/gutsy `keyring`) and mmdebstrap
 * (get_keyring_by_suite) look for it. Debian 12 does not ship it (Ubuntu's ubuntu-keyring package does):
 * the build checks it exists before it starts, or takes the record's `keyring`.
 */
export const UBUNTU_KEYRING = '/usr/share/keyrings/ubuntu-archive-keyring.gpg';

/** Packages every built guest gets: init, kernel, both GRUB platforms, ssh, ip (users and the first-boot report's network line), fsck. */
export const BASE_PACKAGES = [
  'systemd-sysv', 'udev', 'kmod', 'e2fsprogs', 'initramfs-tools', 'openssh-server', 'iproute2',
  'grub-pc-bin', 'grub-efi-amd64-bin', 'grub2-common',
] as const;

export interface BuildNic {
  mac: string;
  /** '' = DHCP */
  ip: string;
  prefix: number;
  gateway: string;
  /** 0 = the link's default (DHCP's option 26 may still set it) */
  mtu: number;
}

export interface BuildPlan {
  suite: string;
  ubuntu: boolean;
  mirror: string;
  keyring: string | undefined;
  packages: string[];
  hostname: string;
  system: string;
  locale: string;
  timezone: string;
  sshKeys: string[];
  nameServers: string[];
  dnsSearch: string[];
  nics: BuildNic[];
  /** Overlay tokens: %KEY% -> value. */
  tokens: Record<string, string>;
  overlayDir: string;
  hooksDir: string;
  firmware: Firmware;
  layout: Layout;
  /** Where the guest reports its first boot (GET/POST, forge's install callback). */
  firstbootUrl: string | undefined;
  /** Key of the root filesystem tarball cache: same inputs, same tree. */
  rootfsKey: string;
}

function s(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' && v !== '<<inherit>>' ? v : undefined;
}

/** Cobbler-style lists: a JSON array, or a string split on commas, semicolons, newlines or blanks. */
export function wordList(v: unknown, sep: RegExp = /[\s,;]+/): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string').map((x) => x.trim()).filter((x) => x !== '');
  if (typeof v !== 'string') return [];
  return v.split(sep).map((x) => x.trim()).filter((x) => x !== '');
}

function prefixOf(mask: string): number {
  if (/^\d+$/.test(mask)) return Number(mask);
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return 24;
  return parts.reduce((n, p) => n + ((p >>> 0).toString(2).match(/1/g)?.length ?? 0), 0);
}

/** Suite from os_version (a name or a release number) or the record's `suite` key. */
export function suiteOf(v: Record<string, unknown>): string {
  const raw = s(v['suite']) ?? s(v['os_version']);
  if (raw === undefined) throw new ForgeError('MISSING_FIELD', "no suite: the distro's os_version (or autoinstall_meta suite) must name a Debian/Ubuntu release", { field: 'os_version' });
  const name = SUITES[raw] ?? raw.toLowerCase();
  if (!/^[a-z][a-z0-9-]{1,30}$/.test(name)) throw new ForgeError('INVALID_FIELD', `os_version '${raw}' is not a Debian/Ubuntu suite name`, { field: 'os_version' });
  return name;
}

export interface BuildOptions {
  domain: string;
  firmware: Firmware;
  suite?: string | undefined;
  mirror?: string | undefined;
  overlayDir?: string | undefined;
  hooksDir?: string | undefined;
  layout?: Layout | undefined;
  server: string;
  targetKind: 'system' | 'profile';
}

/** The blended record (GET .../blended, autoinstall_meta keys top-level) to a build plan. */
export function planBuild(v: Record<string, unknown>, o: BuildOptions): BuildPlan {
  const suite = o.suite ?? suiteOf(v);
  const ubuntu = UBUNTU_SUITES.has(suite) || s(v['breed']) === 'ubuntu';
  // The record's tree is a mirror when it is one over http(s); a file tree (an unpacked ISO) is not.
  const tree = s(v['tree']);
  const mirror = o.mirror ?? s(v['mirror']) ?? (tree !== undefined && /^https?:\/\//.test(tree) ? tree : ubuntu ? 'http://archive.ubuntu.com/ubuntu' : 'http://deb.debian.org/debian');
  if (!/^(https?|file):\/\/\S+$/.test(mirror)) throw new ForgeError('INVALID_FIELD', `mirror '${mirror}' is not an http(s) or file URL`, { field: 'mirror' });
  const packages = wordList(v['packages']);
  for (const p of packages) if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw new ForgeError('INVALID_FIELD', `packages: '${p}' is not a Debian package name`, { field: 'packages' });
  const name = s(v['name']) ?? o.domain;
  const hostname = (s(v['hostname']) ?? o.domain).split('.')[0] as string;
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(hostname)) throw new ForgeError('INVALID_FIELD', `hostname '${hostname}' is not a valid host name (RFC 1123 2.1)`, { field: 'hostname' });
  const timezone = s(v['timezone']) ?? 'Etc/UTC';
  if (!/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/.test(timezone)) throw new ForgeError('INVALID_FIELD', `timezone '${timezone}' is not a zoneinfo name`, { field: 'timezone' });
  const locale = s(v['lang']) ?? s(v['locale']) ?? 'C.UTF-8';
  if (!/^[A-Za-z0-9_.@-]+$/.test(locale)) throw new ForgeError('INVALID_FIELD', `lang '${locale}' is not a locale name`, { field: 'lang' });
  const sshKeys = wordList(v['ssh_authorized_keys'], /[\n;]+/);
  const nics: BuildNic[] = [];
  const ifs = v['interfaces'];
  if (typeof ifs === 'object' && ifs !== null && !Array.isArray(ifs)) {
    for (const [, i] of Object.entries(ifs as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
      if (typeof i !== 'object' || i === null) continue;
      const r = i as Record<string, unknown>;
      const mac = s(r['mac_address'])?.toLowerCase();
      if (mac === undefined) continue;
      // As the installer path's templates do (snippets/preseed/network, late_interfaces): static needs
      // static=true and an address; netmask, gateway and MTU are the interface's, which the server's
      // blend fills from the interface's subnet object (core/blend.ts applySubnets) when unset.
      const ip = r['static'] === true ? s(r['ip_address']) ?? '' : '';
      const mtu = typeof r['mtu'] === 'number' && Number.isInteger(r['mtu']) ? r['mtu'] : 0;
      if (mtu !== 0 && (mtu < 68 || mtu > 65535)) throw new ForgeError('INVALID_FIELD', `interfaces: mtu ${mtu} of ${mac} is outside 68..65535 (RFC 791, RFC 2132 9.15)`, { field: 'mtu' });
      nics.push({ mac, ip, prefix: prefixOf(s(r['netmask']) ?? '24'), gateway: s(r['if_gateway']) ?? s(v['gateway']) ?? '', mtu });
    }
  }
  const tokens: Record<string, string> = {};
  const meta = v['autoinstall_meta'];
  if (typeof meta === 'object' && meta !== null) {
    for (const [k, x] of Object.entries(meta as Record<string, unknown>)) if (typeof x === 'string' || typeof x === 'number') tokens[k] = String(x);
  }
  Object.assign(tokens, { DISTR: suite, SUITE: suite, HOSTNAME: hostname, SYSTEM: name });
  const profile = s(v['profile_name']) ?? s(v['profile']) ?? name;
  const keyring = s(v['keyring']) ?? (ubuntu ? UBUNTU_KEYRING : undefined);
  // The kernel: Debian's linux-image-amd64; Ubuntu's linux-image-virtual (the kernel for VMs, in main).
  // Ubuntu: ubuntu-keyring too, so apt inside the guest trusts Ubuntu's archive (mmdebstrap's --keyring is
  // used by the bootstrap only and not copied in; Debian's apt depends on debian-archive-keyring itself).
  const all = [...BASE_PACKAGES, ...(ubuntu ? ['linux-image-virtual', 'ubuntu-keyring'] : ['linux-image-amd64']), ...packages];
  const rootfsKey = createHash('sha256').update(JSON.stringify({ suite, mirror, keyring, all, v: 1 })).digest('hex').slice(0, 16);
  return {
    suite,
    ubuntu,
    mirror,
    keyring,
    packages: all,
    hostname,
    system: name,
    locale,
    timezone,
    sshKeys,
    nameServers: wordList(v['name_servers']),
    dnsSearch: wordList(v['name_servers_search']),
    nics,
    tokens,
    overlayDir: o.overlayDir ?? s(v['overlay']) ?? `/etc/forge/overlay/${profile}`,
    hooksDir: o.hooksDir ?? s(v['hooks']) ?? '/etc/forge/hooks',
    firmware: o.firmware,
    layout: o.layout ?? (s(v['layout']) === 'split' ? 'split' : 'gpt'),
    firstbootUrl: o.targetKind === 'system' && o.server !== '' ? `${o.server}${installPath(v)}/api/v1/systems/${encodeURIComponent(name)}/firstboot` : undefined,
    rootfsKey,
  };
}

/**
 * The install token path (`/i/TOKEN`) of the record's install_base_url, or '' outside its
 * install window. forge answers install callbacks, first boot included, only under that path
 * while the system is being installed (netboot on, or install_grace_minutes after), so the
 * guest's report goes to the server the agent reached, under the record's token.
 */
export function installPath(v: Record<string, unknown>): string {
  const m = /(\/i\/[^/\s]+)$/.exec(s(v['install_base_url']) ?? '');
  return m?.[1] ?? '';
}

/** Replace %KEY% for every token (unknown %WORDS% stay as they are). */
export function substituteTokens(text: string, tokens: Record<string, string>): string {
  return text.replace(/%([A-Za-z_][A-Za-z0-9_]*)%/g, (m, k: string) => tokens[k] ?? m);
}

export interface Partition {
  /** 1-based number on the disk. */
  n: number;
  role: 'biosboot' | 'esp' | 'swap' | 'root' | 'boot';
  /** MiB; 0 = the rest */
  sizeMiB: number;
  /** sgdisk type code */
  type: string;
}

/** Seed 000's GPT: GRUB's BIOS boot partition (4 MiB) or an ESP, swap (1020 MiB), root (the rest). */
export function partitions(firmware: Firmware, layout: Layout): Partition[] {
  if (layout === 'split') {
    // seed 001: the boot disk holds /boot (and GRUB in front of it); root is a whole second disk.
    return firmware === 'uefi'
      ? [{ n: 1, role: 'esp', sizeMiB: 64, type: 'EF00' }, { n: 2, role: 'boot', sizeMiB: 0, type: '8300' }]
      : [{ n: 1, role: 'biosboot', sizeMiB: 4, type: 'EF02' }, { n: 2, role: 'boot', sizeMiB: 0, type: '8300' }];
  }
  return [
    firmware === 'uefi' ? { n: 1, role: 'esp', sizeMiB: 64, type: 'EF00' } : { n: 1, role: 'biosboot', sizeMiB: 4, type: 'EF02' },
    { n: 2, role: 'swap', sizeMiB: 1020, type: '8200' },
    { n: 3, role: 'root', sizeMiB: 0, type: '8300' },
  ];
}

/** `sgdisk` arguments creating the table on DEV (sectors aligned at 1 MiB). */
export function sgdiskArgs(parts: readonly Partition[], dev: string): string[] {
  const a = ['--clear'];
  for (const p of parts) a.push('-n', `${p.n}:0:${p.sizeMiB === 0 ? '0' : `+${p.sizeMiB}M`}`, '-t', `${p.n}:${p.type}`, '-c', `${p.n}:${p.role}`);
  a.push(dev);
  return a;
}

/** Commands making the filesystems: mkfs per partition role, fsck by time and count off (seed 000). */
export function mkfsCommands(role: Partition['role'], dev: string, label: string): string[][] {
  switch (role) {
    case 'biosboot':
      return [];
    case 'esp':
      return [['mkfs.vfat', '-n', 'EFI', dev]];
    case 'swap':
      return [['mkswap', '-L', `${label}-swap`.slice(0, 15), dev]];
    case 'root':
    case 'boot':
      return [['mkfs.ext4', '-q', '-F', '-L', `${label}-${role}`.slice(0, 16), dev], ['tune2fs', '-c', '0', '-i', '0', dev]];
  }
}

/** The volumes a build needs: seed 000's one disk, or seed 001's boot + root volumes. */
export function buildVolumes(t: DiskTarget, domain: string, layout: Layout): { role: 'disk' | 'boot' | 'root'; target: DiskTarget }[] {
  if (layout === 'gpt') return [{ role: 'disk', target: t }];
  switch (t.kind) {
    case 'lvm':
      return [{ role: 'boot', target: { kind: 'lvm', vg: t.vg, lv: `${domain}-boot` } }, { role: 'root', target: { kind: 'lvm', vg: t.vg, lv: `${domain}-root` } }];
    case 'dir':
      return [{ role: 'boot', target: { kind: 'file', path: `${t.dir}/${domain}-boot.img` } }, { role: 'root', target: { kind: 'file', path: `${t.dir}/${domain}-root.img` } }];
    default:
      throw new ForgeError('USAGE', '--layout split needs --virt-path DIR or a volume group (it makes two volumes)', { field: 'layout' });
  }
}

/** Sizes for the split layout: /boot 512 MiB, root the rest of the requested size. */
export function volumeSizeMiB(role: 'disk' | 'boot' | 'root', totalGiB: number): number {
  if (role === 'boot') return 512;
  if (role === 'root') return Math.max(1024, Math.round(totalGiB * 1024) - 512);
  return Math.round(totalGiB * 1024);
}

/**
 * LVM for a build (seed 000): create `<name>-disk01` unless it exists; an
 * existing volume is reused when it is empty (users pre-size it), replaced
 * only with --force when it holds data. `state` is what lvs/blkid found.
 */
export function lvmCommands(vg: string, lv: string, sizeMiB: number, state: 'absent' | 'empty' | 'data', force: boolean): string[][] {
  if (state === 'absent') return [['lvcreate', '-y', '-W', 'y', '-n', lv, '-L', `${sizeMiB}M`, vg]];
  if (state === 'empty') return [];
  if (!force) throw new ForgeError('VIRT_EXISTS', `logical volume ${vg}/${lv} holds data; use --force to overwrite it`, { field: 'virt-path' });
  return [];
}

/** dpkg's configuration while the build runs (removed before the tree is packed). */
export const BUILD_DPKG_CFG = 'etc/dpkg/dpkg.cfg.d/99forge-build-unsafe-io';

/** mmdebstrap arguments: Debian packages only, packages cached in APTCACHE between runs. */
export function mmdebstrapArgs(p: BuildPlan, out: string, aptCache: string | undefined): string[] {
  // --format=directory: OUT is the new disk's mounted root filesystem (empty but for lost+found, which mmdebstrap(1) allows).
  const a = ['--mode=root', '--variant=required', '--format=directory', `--include=${p.packages.join(',')}`,
    // dpkg fsyncs every file it unpacks unless told --force-unsafe-io (dpkg(1)); the build writes a disk nothing boots
    // until forge has synced and unmounted it, so a crash loses the build either way, and the fsyncs were a sixth of
    // mmdebstrap's time here (docs/benchmarks.md). mkosi's Debian builds set the same option for the same reason. A setup hook, not
    // --dpkgopt: mmdebstrap(1) keeps --dpkgopt in the image for good ("use hooks for temporary configuration options"),
    // and the guest's own dpkg must stay safe, so the last hook removes it again.
    `--setup-hook=mkdir -p "$1"/etc/dpkg/dpkg.cfg.d && echo force-unsafe-io > "$1"/${BUILD_DPKG_CFG}`];
  if (p.keyring !== undefined) a.push(`--keyring=${p.keyring}`);
  // Ubuntu's kernel, GRUB and ssh are in main; universe for the record's own packages (debootstrap's gutsy script takes main only).
  if (p.ubuntu) a.push('--components=main,universe');
  if (aptCache !== undefined) {
    // mmdebstrap(1), "cache downloaded packages": sync the archive dir in before apt runs and out at the end.
    a.push('--skip=download/empty', '--skip=essential/unlink',
      '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
      `--setup-hook=sync-in ${aptCache} /var/cache/apt/archives/`,
      `--customize-hook=sync-out /var/cache/apt/archives ${aptCache}`,
      '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb');
  }
  a.push(`--customize-hook=rm -f "$1"/${BUILD_DPKG_CFG}`, INITRAMFS_ONCE, p.suite, out, p.mirror);
  return a;
}

/**
 * The environment mmdebstrap runs in. INITRD=No: the kernel package's postinst hook
 * (/etc/kernel/postinst.d/initramfs-tools) skips `update-initramfs -c`; otherwise the kernel's
 * initramfs is made twice, once when the kernel is configured and again when dpkg runs the
 * update-initramfs trigger that kmod, udev, e2fsprogs, klibc-utils and dmsetup activate after it
 * (measured: two "Generating" lines per build). INITRAMFS_ONCE then makes it once, last.
 */
export const MMDEBSTRAP_ENV: Readonly<Record<string, string>> = { INITRD: 'No' };

/**
 * The last customize hook: one initramfs per installed kernel, with everything installed (the
 * trigger's `update-initramfs -u` found none to update). Nothing when a kernel hook made one
 * anyway, or when the tree has no initramfs-tools (another generator brings its own hook).
 */
export const INITRAMFS_ONCE = `--customize-hook=chroot "$1" sh -c 'command -v update-initramfs >/dev/null || exit 0; ls /boot/initrd.img-* >/dev/null 2>&1 || update-initramfs -c -k all'`;

/** systemd-networkd files, one per NIC matched by MAC: DHCP unless the record gives a static address. */
export function networkdFiles(p: BuildPlan): Record<string, string> {
  const files: Record<string, string> = {};
  const nics = p.nics.length > 0 ? p.nics : [{ mac: '', ip: '', prefix: 24, gateway: '', mtu: 0 }];
  nics.forEach((n, i) => {
    const lines = ['[Match]', n.mac !== '' ? `MACAddress=${n.mac}` : 'Name=en* eth*', ''];
    // systemd.network(5) [Link] MTUBytes=: set before the link is configured (a DHCP MTU option does not override it).
    if (n.mtu > 0) lines.push('[Link]', `MTUBytes=${n.mtu}`, '');
    lines.push('[Network]');
    if (n.ip === '') lines.push('DHCP=yes');
    else {
      lines.push(`Address=${n.ip}/${n.prefix}`);
      if (n.gateway !== '') lines.push(`Gateway=${n.gateway}`);
    }
    for (const d of p.nameServers) lines.push(`DNS=${d}`);
    if (p.dnsSearch.length > 0) lines.push(`Domains=${p.dnsSearch.join(' ')}`);
    files[`/etc/systemd/network/10-forge-${i}.network`] = lines.join('\n') + '\n';
  });
  return files;
}

/**
 * The guest's /etc/resolv.conf (resolv.conf(5): nameserver lines, at most 3 are used, then one
 * search line) when the record (or its subnet, through the server's blend) names DNS servers;
 * undefined: copy the host's.
 */
export function resolvConf(p: BuildPlan): string | undefined {
  if (p.nameServers.length === 0) return undefined;
  return [...p.nameServers.map((d) => `nameserver ${d}`), ...(p.dnsSearch.length > 0 ? [`search ${p.dnsSearch.join(' ')}`] : [])].join('\n') + '\n';
}

/** GRUB's defaults: the serial console on the kernel line (and GRUB's own menu on the serial port too). */
export function grubDefaults(): string {
  return [
    'GRUB_DEFAULT=0',
    'GRUB_TIMEOUT=1',
    'GRUB_DISTRIBUTOR=forge',
    // Debian's own default (grub2's debian/default/grub, what d-i installs): kernel messages below warnings stay off the
    // serial console, which under emulation (TCG) is written byte by byte and slowed the build's guest boot.
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet"',
    'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"',
    'GRUB_TERMINAL="console serial"',
    'GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"',
    'GRUB_DISABLE_OS_PROBER=true',
    '',
  ].join('\n');
}

/** fstab by UUID (mount(8) UUID=). */
export function fstab(entries: { uuid: string; mount: string; type: string; pass: number }[]): string {
  const lines = ['# written by forge-agent --build'];
  for (const e of entries) {
    lines.push(e.type === 'swap' ? `UUID=${e.uuid} none swap sw 0 0` : `UUID=${e.uuid} ${e.mount} ${e.type} ${e.type === 'vfat' ? 'umask=0077,nofail' : 'errors=remount-ro'} 0 ${e.pass}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * The guest's first-boot report to forge (the callback an installed system
 * makes): once, after the network is up, POST with what the guest sees
 * (host name, kernel, root's authorized_keys fingerprints). curl when the
 * guest has it, else bash's /dev/tcp (http only), so the minimal image needs
 * no extra package.
 */
export function firstbootScript(url: string): string {
  return `#!/bin/bash
# forge first-boot report (forge-agent --build); runs once, then disables itself.
url=${shellQuote(url)}
keys=""
if [ -s /root/.ssh/authorized_keys ]; then
  keys=$(ssh-keygen -lf /root/.ssh/authorized_keys 2>/dev/null | awk '{print $2}' | paste -sd, - | sed 's/+/%2B/g')
fi
disks=$(ls /sys/block | grep -v -e '^loop' -e '^ram' -e '^sr' | paste -sd, -)
# What the network came up with: each link's IPv4 address and MTU, the default route, the DNS servers and search list.
net=""
for d in /sys/class/net/*; do
  n=\${d##*/}; [ "$n" = lo ] && continue
  a=$(ip -4 -o addr show dev "$n" scope global 2>/dev/null | awk '{print $4}' | paste -sd+ -)
  net="$net$n=\${a:-none}/mtu$(cat "$d/mtu");"
done
gw=$(ip -4 route show default 2>/dev/null | awk '{print $3; exit}')
dns=$(awk '/^nameserver/{print $2}' /etc/resolv.conf | paste -sd+ -)
search=$(awk '/^search/{$1=""; print substr($0,2)}' /etc/resolv.conf | tr ' ' '+')
net="\${net}gw=$gw;dns=$dns;search=$search"
body="hostname=$(hostname)&kernel=$(uname -r)&authorized_keys=$keys&disks=$disks&network=$(printf %s "$net" | sed -e 's/+/%2B/g' -e 's/;/%3B/g' -e 's/=/%3D/g' -e 's|/|%2F|g')"
send() {
  if command -v curl >/dev/null; then curl -fsS -m 20 -o /dev/null --data "$body" "$url"; return; fi
  hp=\${url#http://}; hp=\${hp%%/*}; path=/\${url#http://*/}
  host=\${hp%%:*}; port=80; [ "$hp" != "$host" ] && port=\${hp#*:}
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'POST %s HTTP/1.0\\r\\nHost: %s\\r\\nContent-Type: application/x-www-form-urlencoded\\r\\nContent-Length: %d\\r\\n\\r\\n%s' "$path" "$hp" "\${#body}" "$body" >&3
  read -r status code rest <&3
  exec 3>&-
  [ "$code" = 200 ]
}
for i in $(seq 1 60); do
  if send; then
    # on disk before anything else happens: a power cut must not make it report twice
    mkdir -p /var/lib/forge && touch /var/lib/forge/firstboot.done && sync
    echo "forge-firstboot: reported to $url" > /dev/console
    exit 0
  fi
  sleep 2
done
echo "forge-firstboot: could not reach $url" > /dev/console
exit 1
`;
}

export const FIRSTBOOT_UNIT = `[Unit]
Description=Report the first boot to forge
Wants=network-online.target
After=network-online.target
ConditionPathExists=!/var/lib/forge/firstboot.done

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/forge-firstboot

[Install]
WantedBy=multi-user.target
`;

export function shellQuote(x: string): string {
  return `'${x.replace(/'/g, `'\\''`)}'`;
}
