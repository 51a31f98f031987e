/**
 * From a blended record (GET /api/v1/{systems|profiles}/NAME/blended) and the
 * command line to an install plan: every decision of forge-agent as a value,
 * made by pure functions, so the flow only carries it out.
 */
import { ForgeError } from '../server/errors.js';
import type { DiskBus, Firmware, Graphics, Machine, NetModel, AgentOptions } from './options.js';
import { mergeKopts } from './koan.js';

const INHERIT = '<<inherit>>';

/** The part of a blended record forge-agent uses, validated once here. */
export interface BlendedRecord {
  name: string;
  distroName: string;
  breed: string;
  kernelUrl: string;
  initrdUrl: string;
  kernelCmdline: string;
  /** Interface name -> MAC ('' when unknown), in name order. */
  macs: { ifname: string; mac: string }[];
  virtType: string | undefined;
  virtCpus: number | undefined;
  virtRam: number | undefined;
  virtFileSize: number | undefined;
  /** virt_file_size as Cobbler allows it for several disks: `5,10`. */
  virtFileSizes: number[];
  virtPath: string | undefined;
  virtBridge: string | undefined;
  virtDiskDriver: 'raw' | 'qcow2' | undefined;
  virtAutoBoot: boolean | undefined;
  virtPxeBoot: boolean | undefined;
  /** Systems only; undefined for profiles. */
  netbootEnabled: boolean | undefined;
}

function field(o: Record<string, unknown>, k: string): unknown {
  const v = o[k];
  return v === INHERIT ? undefined : v;
}

/** A blended field, else the settings default Cobbler would fall back to. */
function pick(o: Record<string, unknown>, k: string): unknown {
  const v = field(o, k);
  if (v !== undefined && v !== '' && v !== null) return v;
  const d = field(o, `default_${k}`);
  return d === '' || d === null ? undefined : d;
}

function str(o: Record<string, unknown>, k: string, required: boolean): string {
  const v = field(o, k);
  if (typeof v === 'string' && (v !== '' || !required)) return v;
  if (v === undefined && !required) return '';
  throw new ForgeError('SERVER_UNAVAILABLE', `blended record: '${k}' is missing or not a string`, { field: k });
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v)) return Number(v);
  return undefined;
}

function numList(v: unknown): number[] {
  if (typeof v === 'string' && v.includes(',')) return v.split(',').map((x) => num(x.trim())).filter((x): x is number => x !== undefined);
  const n = num(v);
  return n === undefined ? [] : [n];
}

/** `a, b,,c` -> [a, b, c]: Cobbler's comma lists (virt_path, virt_bridge). */
export function commaList(v: string): string[] {
  return v.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function bool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'yes' || v === '1') return true;
  if (v === 'false' || v === 'no' || v === '0') return false;
  return undefined;
}

function optStr(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function parseBlended(body: unknown): BlendedRecord {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ForgeError('SERVER_UNAVAILABLE', 'blended record is not a JSON object');
  }
  const o = body as Record<string, unknown>;
  const macs: { ifname: string; mac: string }[] = [];
  const ifs = o['interfaces'];
  if (typeof ifs === 'object' && ifs !== null && !Array.isArray(ifs)) {
    for (const [ifname, i] of Object.entries(ifs as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
      if (typeof i !== 'object' || i === null) continue;
      const rec = i as Record<string, unknown>;
      // Bond/bridge masters have no NIC of their own; their slaves do.
      if (rec['interface_type'] === 'bond' || rec['interface_type'] === 'bridge') continue;
      const mac = typeof rec['mac_address'] === 'string' ? rec['mac_address'].toLowerCase() : '';
      macs.push({ ifname, mac });
    }
  }
  const driver = pick(o, 'virt_disk_driver');
  return {
    name: str(o, 'name', true),
    distroName: str(o, 'distro_name', true),
    breed: str(o, 'breed', false),
    kernelUrl: str(o, 'kernel_url', true),
    initrdUrl: str(o, 'initrd_url', true),
    kernelCmdline: str(o, 'kernel_cmdline', false),
    macs,
    virtType: optStr(pick(o, 'virt_type')),
    virtCpus: num(pick(o, 'virt_cpus')),
    virtRam: num(pick(o, 'virt_ram')),
    virtFileSize: numList(pick(o, 'virt_file_size'))[0],
    virtFileSizes: numList(pick(o, 'virt_file_size')),
    virtPath: optStr(pick(o, 'virt_path')),
    virtBridge: optStr(pick(o, 'virt_bridge')),
    virtDiskDriver: driver === 'raw' || driver === 'qcow2' ? driver : undefined,
    virtAutoBoot: bool(pick(o, 'virt_auto_boot')),
    virtPxeBoot: bool(field(o, 'virt_pxe_boot')),
    netbootEnabled: bool(field(o, 'netboot_enabled')),
  };
}

/** Where the disk goes, from the syntax of --virt-path alone (Koan's rules, plus pool:). */
export type DiskTarget =
  | { kind: 'dir'; dir: string }
  | { kind: 'file'; path: string }
  | { kind: 'lvm'; vg: string; lv: string }
  | { kind: 'device'; path: string }
  | { kind: 'pool'; pool: string; volume: string };

export function diskTarget(virtPath: string, domain: string, diskNo = 1): DiskTarget {
  const p = virtPath.trim();
  const base = `${domain}-disk${String(diskNo).padStart(2, '0')}`;
  if (p.startsWith('pool:')) {
    const pool = p.slice(5);
    if (!/^[A-Za-z0-9_.-]+$/.test(pool)) throw new ForgeError('USAGE', `--virt-path pool:NAME: bad pool name '${pool}'`, { field: 'virt-path' });
    return { kind: 'pool', pool, volume: `${base}.qcow2` };
  }
  if (p.startsWith('/dev/')) {
    // /dev/VG (a volume group directory) is an LVM group, /dev/VG/LV or /dev/sdX an existing device.
    const parts = p.split('/').filter((s) => s !== '');
    if (parts.length === 2 && /^[A-Za-z0-9+_.-]+$/.test(parts[1] as string) && !/^(sd|vd|hd|xvd|nvme|mapper|md|loop|dm-)/.test(parts[1] as string)) {
      return { kind: 'lvm', vg: parts[1] as string, lv: base };
    }
    return { kind: 'device', path: p };
  }
  if (p.startsWith('/')) {
    if (/\.(qcow2|img|raw)$/.test(p)) return { kind: 'file', path: p };
    return { kind: 'dir', dir: p.replace(/\/+$/, '') || '/' };
  }
  // A bare name is an LVM volume group (Koan: `VG` or `VG:LV`).
  const [vg, lv] = p.split(':');
  if (vg === undefined || !/^[A-Za-z0-9+_.-]+$/.test(vg) || (lv !== undefined && !/^[A-Za-z0-9+_.-]+$/.test(lv))) {
    throw new ForgeError('USAGE', `--virt-path '${virtPath}' is not a directory, /dev path, VG[:LV] or pool:NAME`, { field: 'virt-path' });
  }
  return { kind: 'lvm', vg, lv: lv ?? base };
}

export interface InstallPlan {
  domain: string;
  system: string;
  targetKind: 'system' | 'profile';
  distro: string;
  virtType: 'kvm' | 'qemu' | 'auto';
  memoryMiB: number;
  vcpus: number;
  diskGiB: number;
  disk: DiskTarget;
  diskFormat: 'qcow2' | 'raw';
  diskBus: DiskBus;
  /** Disks after the first (--virt-path a,b or the record's comma list), named NAME-disk02, ... */
  extraDisks: { target: DiskTarget; gib: number; format: 'qcow2' | 'raw' }[];
  firmware: Firmware;
  secureBoot: boolean;
  machine: Machine;
  nics: { mac: string | 'random'; source: { bridge: string } | { network: string }; model: NetModel }[];
  graphics: Graphics;
  pxeBoot: boolean;
  autoBoot: boolean;
  kernelUrl: string;
  initrdUrl: string;
  cmdline: string;
  installLog: string;
  consoleLog: string;
  poll: boolean;
  timeoutSec: number;
  force: boolean;
  /** Things the operator should know before the install starts. */
  warnings: string[];
}

/** Defaults when neither the command line nor the record says (Cobbler's settings defaults). */
export const DEFAULTS = { ramMiB: 512, cpus: 1, fileSizeGiB: 5, path: '/var/lib/libvirt/images', network: 'default' } as const;

export function planInstall(opts: AgentOptions, rec: BlendedRecord): InstallPlan {
  if (opts.target === undefined) throw new ForgeError('USAGE', 'no --system or --profile');
  const domain = opts.virtName ?? rec.name;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(domain)) {
    throw new ForgeError('USAGE', `domain name '${domain}' is not usable; give --virt-name`, { field: 'virt-name' });
  }
  // The record's virt_type is usually the settings default (kvm, as in Cobbler), not a
  // decision about this host: 'kvm' there means "kvm when it works" (auto, which warns
  // loudly when it falls back). Only --virt-type kvm forces kvm.
  const recType = rec.virtType === 'qemu' ? 'qemu' : 'auto';
  const virtType = opts.virtType ?? recType;
  // One source per NIC in order (a,b,...); NICs beyond the list take its last entry.
  const sources: ({ bridge: string } | { network: string })[] =
    opts.virtNetwork !== undefined
      ? commaList(opts.virtNetwork).map((network) => ({ network }))
      : opts.virtBridge !== undefined
        ? commaList(opts.virtBridge).map((bridge) => ({ bridge }))
        : rec.virtBridge !== undefined
          ? commaList(rec.virtBridge).map((bridge) => ({ bridge }))
          : [{ network: DEFAULTS.network }];
  if (sources.length === 0) throw new ForgeError('USAGE', 'no bridge or network named for the NICs', { field: opts.virtNetwork !== undefined ? 'virt-network' : 'virt-bridge' });
  // A system's NICs keep its MACs, so the server knows the VM when it PXE-boots and calls back;
  // a profile install (or an interface without a MAC) gets one from libvirt's range.
  const macs = opts.target.kind === 'system' ? rec.macs.map((m) => m.mac) : [];
  const nics = (macs.length > 0 ? macs : ['random']).map((mac, i) => ({
    mac: mac === '' ? 'random' : mac,
    source: sources[Math.min(i, sources.length - 1)] as { bridge: string } | { network: string },
    model: opts.netModel,
  }));
  const paths = commaList(opts.virtPath ?? rec.virtPath ?? DEFAULTS.path);
  if (paths.length === 0) throw new ForgeError('USAGE', '--virt-path names no disk', { field: 'virt-path' });
  if (paths.length > 26) throw new ForgeError('USAGE', '--virt-path: at most 26 disks', { field: 'virt-path' });
  const sizes = opts.virtFileSizes.length > 0 ? opts.virtFileSizes : rec.virtFileSizes;
  const sizeOf = (i: number): number => sizes[Math.min(i, sizes.length - 1)] ?? DEFAULTS.fileSizeGiB;
  const disk = diskTarget(paths[0] as string, domain);
  const formatOf = (t: DiskTarget): 'qcow2' | 'raw' => (t.kind === 'lvm' || t.kind === 'device' ? 'raw' : rec.virtDiskDriver ?? 'qcow2');
  const extraDisks = paths.slice(1).map((p, i) => {
    const target = diskTarget(p, domain, i + 2);
    return { target, gib: sizeOf(i + 1), format: formatOf(target) };
  });
  const firmware = opts.firmware ?? 'bios';
  const pxeBoot = opts.pxeBoot ?? rec.virtPxeBoot ?? false;
  const warnings: string[] = [];
  if (pxeBoot && opts.target.kind === 'system' && rec.netbootEnabled === false) {
    // forge answers "boot from local disk" to this MAC: the new, empty disk. The installer would never end.
    warnings.push(`netboot is disabled for system ${rec.name}: over PXE forge will send the VM to its empty disk; enable it first (forge system edit --name ${rec.name} --netboot-enabled true)`);
  }
  return {
    domain,
    system: rec.name,
    targetKind: opts.target.kind,
    distro: rec.distroName,
    virtType,
    memoryMiB: Math.round(rec.virtRam ?? DEFAULTS.ramMiB),
    vcpus: Math.max(1, Math.round(rec.virtCpus ?? DEFAULTS.cpus)),
    diskGiB: sizeOf(0),
    disk,
    // An LV or device is used raw; files and pool volumes are qcow2 unless the record says raw.
    diskFormat: formatOf(disk),
    diskBus: opts.diskBus,
    extraDisks,
    firmware,
    secureBoot: opts.secureBoot,
    machine: opts.machine ?? (firmware === 'uefi' ? 'q35' : 'pc'),
    nics,
    graphics: opts.graphics,
    pxeBoot,
    autoBoot: opts.autoBoot ?? rec.virtAutoBoot ?? false,
    kernelUrl: rec.kernelUrl,
    initrdUrl: rec.initrdUrl,
    cmdline: mergeKopts(rec.kernelCmdline, opts.kopts),
    installLog: `${opts.logDir}/${domain}-install.log`,
    consoleLog: `${opts.logDir}/${domain}-console.log`,
    poll: opts.poll,
    timeoutSec: opts.timeout,
    force: opts.force,
    warnings,
  };
}

/** A locally administered unicast MAC in QEMU/KVM's 52:54:00 range (what virt-install picks). */
export function randomMac(rand: (n: number) => number): string {
  const b = [0x52, 0x54, 0x00, rand(256), rand(256), rand(256)];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export type InstallerVerdict =
  | { kind: 'wait' }
  | { kind: 'finished' }
  | { kind: 'failed'; reason: 'crashed' | 'timeout' | 'panic' | 'vanished'; message: string };

/** Domain states as libvirt numbers them (virDomainState). */
export const STATE = { nostate: 0, running: 1, blocked: 2, paused: 3, shutdown: 4, shutoff: 5, crashed: 6, pmsuspended: 7 } as const;

/**
 * One poll of the installer domain. `state` is undefined when the domain no
 * longer exists (a transient-only domain that ended). A guest without a
 * pvpanic driver reboots on panic (panic=N) and on_reboot=destroy ends it like
 * a clean finish, so the console tail is checked for the kernel's panic line.
 */
export function judgeInstaller(state: number | undefined, elapsedMs: number, timeoutMs: number, consoleTail: string): InstallerVerdict {
  if (state === STATE.crashed) return { kind: 'failed', reason: 'crashed', message: 'the installer domain crashed' };
  // A panicked kernel without panic=N hangs forever: no need to wait for the timeout.
  const m = /Kernel panic - not syncing:[^\n]*/.exec(consoleTail);
  if (m !== null) return { kind: 'failed', reason: 'panic', message: `the installer kernel panicked: ${m[0].trim()}` };
  if (state === undefined || state === STATE.shutoff) return { kind: 'finished' };
  if (elapsedMs >= timeoutMs) return { kind: 'failed', reason: 'timeout', message: `the installer did not finish within ${Math.round(timeoutMs / 1000)} s` };
  return { kind: 'wait' };
}
