/**
 * forge-agent command line: Koan's option names and meanings, parsed into a
 * plain value. Pure: no I/O; the environment and "is stdout a terminal" are
 * passed in so the tests can pin every default.
 */
import { ForgeError } from '../server/errors.js';

export type VirtTypeChoice = 'kvm' | 'qemu' | 'auto';
export type Graphics = 'vnc' | 'spice' | 'none';
export type DiskBus = 'virtio' | 'scsi' | 'ide';
export type NetModel = 'virtio' | 'e1000';
export type Firmware = 'uefi' | 'bios';
export type Machine = 'q35' | 'pc';

export interface AgentOptions {
  help: boolean;
  version: boolean;
  server: string;
  token: string | undefined;
  /** What to install: a system (its MACs) or a profile (random MACs, --virt-name). */
  target: { kind: 'system' | 'profile'; name: string } | undefined;
  list: 'systems' | 'profiles' | undefined;
  virt: boolean;
  virtName: string | undefined;
  /** undefined: the record's virt_type decides (auto when the record has none). */
  virtType: VirtTypeChoice | undefined;
  virtPath: string | undefined;
  /** GiB (of the first disk) */
  virtFileSize: number | undefined;
  /** GiB per disk, from a,b,...; empty when not given. */
  virtFileSizes: number[];
  virtBridge: string | undefined;
  virtNetwork: string | undefined;
  graphics: Graphics;
  diskBus: DiskBus;
  netModel: NetModel;
  /** undefined: bios, or uefi when --secure-boot asks for it. */
  firmware: Firmware | undefined;
  secureBoot: boolean;
  /** undefined: q35 for UEFI guests, pc for BIOS ones. */
  machine: Machine | undefined;
  /** undefined: the record's virt_auto_boot decides. */
  autoBoot: boolean | undefined;
  /** undefined: the record's virt_pxe_boot decides. */
  pxeBoot: boolean | undefined;
  /** Follow the installer and boot the disk afterwards (Koan --vm-poll). */
  poll: boolean;
  force: boolean;
  display: boolean;
  /** Seconds the installer may run under --vm-poll. */
  timeout: number;
  connect: string;
  cacheDir: string;
  /** Where libvirt (virtlogd) writes the serial console logs. */
  logDir: string;
  /** Extra installer kernel options overriding the server's (koan --kopts). */
  kopts?: string | undefined;
  /** --build: debootstrap builds without an installer; installer forces the installer path; undefined: the record's build_method decides. */
  build?: 'debootstrap' | 'installer' | undefined;
  suite?: string | undefined;
  mirror?: string | undefined;
  overlayDir?: string | undefined;
  hooksDir?: string | undefined;
  layout?: 'gpt' | 'split' | undefined;
  /** apt's package cache kept between builds (default CACHE/apt). */
  aptCache?: string | undefined;
  /** Events as JSON lines on stdout. */
  json?: boolean;
  /** --build: define the domain, do not start it. */
  noStart?: boolean;
  /** --build: use and keep the pristine root tree of a first build in CACHE/rootfs for the next build of the same suite, mirror and packages (default on; --no-rootfs-cache: bootstrap every time). */
  rootfsCache: boolean;
}

interface FlagSpec {
  long: string;
  short?: string;
  /** Takes a value (`--x V` or `--x=V`). */
  value: boolean;
  help: string;
}

const FLAGS: readonly FlagSpec[] = [
  { long: 'server', short: 's', value: true, help: 'forge server URL (env FORGE_SERVER), e.g. http://forge:8080' },
  { long: 'token', value: true, help: 'API token for reporting events (env FORGE_TOKEN)' },
  { long: 'system', short: 'y', value: true, help: 'install this system record (its MACs, virt settings)' },
  { long: 'profile', short: 'p', value: true, help: 'install a VM from this profile (random MAC; needs --virt-name)' },
  { long: 'list', short: 'l', value: true, help: 'list systems|profiles on the server and exit' },
  { long: 'virt', short: 'v', value: false, help: 'create and install a virtual machine' },
  { long: 'virt-name', short: 'V', value: true, help: 'domain name (default: the system name)' },
  { long: 'virt-type', short: 'T', value: true, help: 'kvm|qemu|auto (default: the record, else auto)' },
  { long: 'virt-path', short: 'P', value: true, help: 'DIR (qcow2 file) | VG (LVM) | /dev/... (existing device) | pool:NAME | FILE.qcow2; a,b,... for several disks' },
  { long: 'virt-file-size', value: true, help: 'disk size in GiB (default: the record); a,b,... per disk' },
  { long: 'virt-bridge', short: 'B', value: true, help: 'host bridge for the NICs (default: the record); a,b,... per NIC' },
  { long: 'virt-network', value: true, help: 'libvirt network for the NICs instead of a bridge; a,b,... per NIC' },
  { long: 'firmware', value: true, help: 'uefi|bios (default bios); uefi: OVMF with a per-VM NVRAM copy' },
  { long: 'secure-boot', value: false, help: 'UEFI with Secure Boot enforced (Microsoft keys enrolled; q35 + SMM)' },
  { long: 'machine', value: true, help: 'q35|pc (default q35 for uefi, pc for bios)' },
  { long: 'nogfx', short: 'n', value: false, help: 'no graphical console (serial only); same as --graphics none' },
  { long: 'graphics', value: true, help: 'vnc|spice|none (default vnc)' },
  { long: 'qemu-disk-type', value: true, help: 'virtio|scsi|ide (default virtio)' },
  { long: 'qemu-net-type', value: true, help: 'virtio|e1000 (default virtio)' },
  { long: 'virt-auto-boot', value: false, help: 'start the domain when the host boots' },
  { long: 'virt-pxe-boot', value: false, help: 'boot the installer from the network (PXE) instead of kernel+initrd' },
  { long: 'vm-poll', short: 'w', value: false, help: 'wait for the installer, then boot the disk (default on a terminal)' },
  { long: 'no-wait', value: false, help: 'start the installer and return' },
  { long: 'force', value: false, help: 'replace an existing domain of the same name and overwrite its disk' },
  { long: 'display', short: 'D', value: false, help: 'print the domain XML and the actions; change nothing' },
  { long: 'timeout', value: true, help: 'seconds the installer may run under --vm-poll (default 3600)' },
  { long: 'connect', value: true, help: 'libvirt URI (default qemu:///system)' },
  { long: 'cache-dir', value: true, help: 'kernel/initrd cache (default /var/cache/forge-agent as root)' },
  { long: 'log-dir', value: true, help: 'serial console logs (default /var/log/libvirt/qemu)' },
  { long: 'kopts', value: true, help: "extra installer kernel options, replacing the server's of the same key (koan --kopts)" },
  { long: 'build', value: true, help: "debootstrap: build the VM without an installer (mmdebstrap, overlay, hooks, GRUB); installer: the installer path (default: the record's build_method)" },
  { long: 'suite', value: true, help: "--build: Debian/Ubuntu suite (default: the distro's os_version)" },
  { long: 'mirror', value: true, help: "--build: package mirror URL (default: the record's mirror or tree, else deb.debian.org)" },
  { long: 'overlay', value: true, help: '--build: overlay directory copied into the guest with %TOKEN% substitution (default /etc/forge/overlay/PROFILE)' },
  { long: 'hooks', value: true, help: '--build: directory of host hooks postunpack, postconfig (default /etc/forge/hooks)' },
  { long: 'layout', value: true, help: '--build: gpt (one disk: BIOS boot or ESP, swap, root; default) | split (seed 001: NAME-boot + NAME-root volumes)' },
  { long: 'apt-cache', value: true, help: "--build: apt's package cache kept between builds (default CACHE/apt)" },
  { long: 'json', value: false, help: '--build: print the events as JSON lines on stdout' },
  { long: 'no-start', value: false, help: '--build: define the domain but do not boot it (forge-agent vm start NAME later)' },
  { long: 'no-rootfs-cache', value: false, help: '--build: bootstrap every time, neither using nor keeping a copy of the root tree (default: the first build of a suite, mirror and package set keeps its pristine tree in CACHE/rootfs, and later builds unpack it instead of bootstrapping)' },
  { long: 'help', short: 'h', value: false, help: 'this help' },
  { long: 'version', value: false, help: 'print the forge-agent version and exit' },
];

/** Long option names forge-agent parses (agent/koan.ts translates koan's before parsing). */
export const FLAG_NAMES: ReadonlySet<string> = new Set(FLAGS.map((f) => f.long));

export function helpText(): string {
  const lines = [
    'usage: forge-agent --server URL (--list systems|profiles | --system NAME --virt [options] | --profile NAME --virt --virt-name NAME [options])',
    '',
    'Koan-style two-phase install: the installer runs as a transient domain with the distro',
    'kernel, initrd and autoinstall command line; the persistent domain then boots from disk.',
    '',
  ];
  for (const f of FLAGS) {
    const names = `${f.short !== undefined ? `-${f.short}, ` : '    '}--${f.long}${f.value ? ' V' : ''}`;
    lines.push(`  ${names.padEnd(26)} ${f.help}`);
  }
  return lines.join('\n') + '\n';
}

function usage(msg: string, field?: string): ForgeError {
  return new ForgeError('USAGE', msg, field === undefined ? {} : { field });
}

function oneOf<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw usage(`--${flag} must be one of ${allowed.join('|')}, not '${v}'`, flag);
}

function positiveNumber(flag: string, v: string, integer: boolean): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw usage(`--${flag} must be a positive ${integer ? 'integer' : 'number'}, not '${v}'`, flag);
  }
  return n;
}

export interface ParseEnv {
  env: Record<string, string | undefined>;
  /** Config files and environment, merged (agent/config.ts); flags win over it. */
  config?: ReadonlyMap<string, string | true>;
  isTTY: boolean;
  isRoot: boolean;
  home: string;
}

/** Parse argv (without node and script). Throws ForgeError USAGE. */
export function parseOptions(argv: readonly string[], penv: ParseEnv): AgentOptions {
  const byLong = new Map(FLAGS.map((f) => [f.long, f]));
  const byShort = new Map(FLAGS.filter((f) => f.short !== undefined).map((f) => [f.short as string, f]));
  const seen = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      if (eq >= 0) inline = arg.slice(eq + 1);
      spec = byLong.get(name);
      if (spec === undefined) throw usage(`unknown option --${name} (see --help)`, name);
    } else if (arg.startsWith('-') && arg.length === 2) {
      spec = byShort.get(arg.slice(1));
      if (spec === undefined) throw usage(`unknown option ${arg} (see --help)`, arg);
    } else {
      throw usage(`unexpected argument '${arg}' (see --help)`);
    }
    if (spec.value) {
      let v = inline;
      if (v === undefined) {
        v = argv[i + 1];
        i++;
      }
      if (v === undefined) throw usage(`--${spec.long} needs a value`, spec.long);
      seen.set(spec.long, v);
    } else {
      if (inline !== undefined) throw usage(`--${spec.long} takes no value`, spec.long);
      seen.set(spec.long, true);
    }
  }
  for (const [k, v] of penv.config ?? []) if (!seen.has(k)) seen.set(k, v);
  const str = (k: string): string | undefined => {
    const v = seen.get(k);
    return typeof v === 'string' ? v : undefined;
  };
  const flag = (k: string): boolean => seen.get(k) === true;

  const help = flag('help');
  const version = flag('version');
  const server = (str('server') ?? penv.env['FORGE_SERVER'] ?? '').replace(/\/+$/, '');
  const token = str('token') ?? penv.env['FORGE_TOKEN'];
  const system = str('system');
  const profile = str('profile');
  const listRaw = str('list');
  const list = listRaw === undefined ? undefined : oneOf('list', listRaw, ['systems', 'profiles'] as const);

  if (system !== undefined && profile !== undefined) throw usage('give only one of --system and --profile', 'system');
  const target =
    system !== undefined ? { kind: 'system' as const, name: system } : profile !== undefined ? { kind: 'profile' as const, name: profile } : undefined;

  if (!help && !version) {
    if (server === '') throw usage('no server: give --server URL or set FORGE_SERVER', 'server');
    if (!/^https?:\/\/[^/\s]+/.test(server)) throw usage(`--server must be an http(s) URL, not '${server}'`, 'server');
    if (list === undefined && target === undefined) throw usage('nothing to do: give --list, --system or --profile (see --help)');
    if (target !== undefined && !flag('virt')) throw usage('only --virt installs are supported: add --virt', 'virt');
    if (target?.kind === 'profile' && str('virt-name') === undefined) throw usage('--profile needs --virt-name for the new domain', 'virt-name');
  }
  if (flag('vm-poll') && flag('no-wait')) throw usage('give only one of --vm-poll and --no-wait', 'vm-poll');
  if (str('virt-bridge') !== undefined && str('virt-network') !== undefined) {
    throw usage('give only one of --virt-bridge and --virt-network', 'virt-bridge');
  }
  const virtName = str('virt-name');
  if (virtName !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(virtName)) {
    throw usage(`--virt-name '${virtName}': letters, digits, '.', '_', '-' (at most 64)`, 'virt-name');
  }

  let graphics: Graphics = 'vnc';
  const g = str('graphics');
  if (g !== undefined) graphics = oneOf('graphics', g, ['vnc', 'spice', 'none'] as const);
  if (flag('nogfx')) {
    if (g !== undefined && graphics !== 'none') throw usage(`--nogfx contradicts --graphics ${graphics}`, 'nogfx');
    graphics = 'none';
  }

  const fw = str('firmware');
  const firmware = fw === undefined ? (flag('secure-boot') ? 'uefi' : undefined) : oneOf('firmware', fw, ['uefi', 'bios'] as const);
  if (flag('secure-boot') && firmware === 'bios') throw usage('--secure-boot needs --firmware uefi', 'secure-boot');
  const mc = str('machine');
  const machine = mc === undefined ? undefined : oneOf('machine', mc, ['q35', 'pc'] as const);
  // OVMF's Secure Boot build keeps its variables in SMM-protected flash, which only q35 has.
  if (flag('secure-boot') && machine === 'pc') throw usage('--secure-boot needs --machine q35 (SMM)', 'machine');
  const vt = str('virt-type');
  const fs = str('virt-file-size');
  const to = str('timeout');
  const dt = str('qemu-disk-type');
  const nt = str('qemu-net-type');
  const b = str('build');
  const lay = str('layout');
  return {
    help,
    version,
    server,
    token: token === '' ? undefined : token,
    target,
    list,
    virt: flag('virt'),
    virtName,
    virtType: vt === undefined ? undefined : oneOf('virt-type', vt, ['kvm', 'qemu', 'auto'] as const),
    virtPath: str('virt-path'),
    virtFileSize: fs === undefined ? undefined : positiveNumber('virt-file-size', fs.split(',')[0] ?? '', false),
    virtFileSizes: fs === undefined ? [] : fs.split(',').map((x) => positiveNumber('virt-file-size', x.trim(), false)),
    virtBridge: str('virt-bridge'),
    virtNetwork: str('virt-network'),
    graphics,
    diskBus: dt === undefined ? 'virtio' : oneOf('qemu-disk-type', dt, ['virtio', 'scsi', 'ide'] as const),
    netModel: nt === undefined ? 'virtio' : oneOf('qemu-net-type', nt, ['virtio', 'e1000'] as const),
    firmware,
    secureBoot: flag('secure-boot'),
    machine,
    autoBoot: flag('virt-auto-boot') ? true : undefined,
    pxeBoot: flag('virt-pxe-boot') ? true : undefined,
    // Koan polls when asked; forge also polls by default when someone is watching.
    poll: flag('vm-poll') ? true : flag('no-wait') ? false : penv.isTTY,
    force: flag('force'),
    display: flag('display'),
    timeout: to === undefined ? 3600 : positiveNumber('timeout', to, true),
    connect: str('connect') ?? penv.env['LIBVIRT_DEFAULT_URI'] ?? 'qemu:///system',
    cacheDir: str('cache-dir') ?? (penv.isRoot ? '/var/cache/forge-agent' : `${penv.home}/.cache/forge-agent`),
    logDir: str('log-dir') ?? '/var/log/libvirt/qemu',
    kopts: str('kopts'),
    build: b === undefined ? undefined : oneOf('build', b, ['debootstrap', 'installer'] as const),
    suite: str('suite'),
    mirror: str('mirror'),
    overlayDir: str('overlay'),
    hooksDir: str('hooks'),
    layout: lay === undefined ? undefined : oneOf('layout', lay, ['gpt', 'split'] as const),
    aptCache: str('apt-cache'),
    json: flag('json'),
    noStart: flag('no-start'),
    rootfsCache: !flag('no-rootfs-cache'),
  };
}
