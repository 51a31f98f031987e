/**
 * libvirt domain XML, built from a plain value. Pure: the same spec always
 * gives the same bytes (the golden files in test/golden/agent/ pin them and
 * `virt-xml-validate FILE domain` checks them against libvirt's schema).
 *
 * Two documents per install, as virt-install does it:
 *  - the persistent definition boots from disk;
 *  - the installer is started transiently with the same name and UUID, the
 *    distro kernel/initrd/command line (or network boot for --virt-pxe-boot),
 *    and on_reboot=destroy, so the
 *    installer's final reboot ends it instead of re-running the installer.
 * Reference: https://libvirt.org/formatdomain.html (os, events, devices).
 */
import type { DiskBus, Graphics, Machine, NetModel } from './options.js';

export type DiskSpec = {
  format: 'qcow2' | 'raw';
  bus: DiskBus;
} & (
  /** file: a qcow2/raw image; block: an LV or device. */
  | { kind: 'file' | 'block'; path: string }
  /** A volume of a libvirt storage pool, resolved by libvirt. */
  | { kind: 'volume'; pool: string; volume: string }
);

export interface NicSpec {
  mac: string;
  source: { bridge: string } | { network: string };
  model: NetModel;
}

export type BootSpec =
  | { kind: 'disk' }
  /** Network first, then disk (the PXE installer; forge answers "local boot" once netboot is off). */
  | { kind: 'network' }
  | { kind: 'kernel'; kernel: string; initrd: string; cmdline: string };

export interface DomainSpec {
  name: string;
  uuid: string;
  type: 'kvm' | 'qemu';
  memoryMiB: number;
  vcpus: number;
  disk: DiskSpec;
  /** More disks, in order (vdb, vdc, ... per bus). */
  extraDisks?: DiskSpec[];
  nics: NicSpec[];
  graphics: Graphics;
  /** The serial console is also written here (virtlogd), for failure reports. */
  consoleLog: string;
  boot: BootSpec;
  /** The installer phase: every reset ends the domain (on_reboot=destroy). */
  installer: boolean;
  /** Default pc (i440FX). */
  machine?: Machine;
  /**
   * UEFI: libvirt picks OVMF from the firmware descriptors qemu ships
   * (/usr/share/qemu/firmware) and gives the VM its own NVRAM copy of the
   * template (/var/lib/libvirt/qemu/nvram/NAME_VARS.fd). Default BIOS.
   */
  uefi?: { secureBoot: boolean };
  /** The forge system record this VM is (none for a profile install): `forge-agent vm` reports its actions there. */
  system?: string;
}

/** The metadata namespace that marks a domain as forge-made (`forge-agent vm` manages only these). */
export const FORGE_NS = 'https://forge.invalid/xmlns/agent/1';

/** XML text/attribute escaping (the five predefined entities). */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const DISK_PREFIX: Record<string, string> = { virtio: 'vd', scsi: 'sd', sata: 'sd', ide: 'hd' };

/**
 * Bus and guest device name of each disk, in order: vda, vdb, ...; sda, sdb
 * for SCSI and SATA (they share the sd names); hda, hdb for IDE. q35 has no
 * IDE controller (libvirt refuses bus='ide' there), so IDE disks go on its
 * AHCI (SATA) controller, which every installer that knows IDE also drives.
 */
export function diskTargets(buses: readonly DiskBus[], machine: Machine): { bus: string; dev: string }[] {
  const used: Record<string, number> = {};
  return buses.map((b) => {
    const bus = b === 'ide' && machine === 'q35' ? 'sata' : b;
    const prefix = DISK_PREFIX[bus] as string;
    const n = used[prefix] ?? 0;
    used[prefix] = n + 1;
    return { bus, dev: `${prefix}${String.fromCharCode(97 + n)}` };
  });
}

/**
 * The kernel command line for the installer: the record's, plus a serial
 * console when it names none, so the console log (and a crash report) holds
 * the installer's output. With graphics the last console= (the serial one)
 * stays /dev/console for the log; tty0 still shows on the screen.
 */
export function installerCmdline(cmdline: string, graphics: Graphics): string {
  const words = cmdline.trim().split(/\s+/).filter((w) => w !== '');
  if (words.some((w) => w.startsWith('console='))) return words.join(' ');
  const extra = graphics === 'none' ? ['console=ttyS0'] : ['console=tty0', 'console=ttyS0'];
  return [...words, ...extra].join(' ');
}

export function buildDomainXml(spec: DomainSpec): string {
  const o: string[] = [];
  const p = (indent: number, line: string): void => {
    o.push(' '.repeat(indent) + line);
  };
  p(0, `<domain type='${spec.type}'>`);
  p(2, `<name>${esc(spec.name)}</name>`);
  p(2, `<uuid>${esc(spec.uuid)}</uuid>`);
  p(2, `<metadata>`);
  const sys = spec.system === undefined ? '' : ` system='${esc(spec.system)}'`;
  p(4, `<forge:agent xmlns:forge='${FORGE_NS}'${sys}>${spec.installer ? 'installer' : 'persistent'}</forge:agent>`);
  p(2, `</metadata>`);
  p(2, `<memory unit='MiB'>${spec.memoryMiB}</memory>`);
  p(2, `<currentMemory unit='MiB'>${spec.memoryMiB}</currentMemory>`);
  p(2, `<vcpu placement='static'>${spec.vcpus}</vcpu>`);
  const machine = spec.machine ?? 'pc';
  p(2, spec.uefi === undefined ? `<os>` : `<os firmware='efi'>`);
  p(4, `<type arch='x86_64' machine='${machine}'>hvm</type>`);
  if (spec.uefi !== undefined) {
    // Feature requests for libvirt's firmware autoselection; enrolled-keys: the Microsoft keys, so Secure Boot is enforced.
    const sb = spec.uefi.secureBoot ? 'yes' : 'no';
    p(4, `<firmware>`);
    p(6, `<feature enabled='${sb}' name='enrolled-keys'/>`);
    p(6, `<feature enabled='${sb}' name='secure-boot'/>`);
    p(4, `</firmware>`);
  }
  switch (spec.boot.kind) {
    case 'kernel':
      p(4, `<kernel>${esc(spec.boot.kernel)}</kernel>`);
      p(4, `<initrd>${esc(spec.boot.initrd)}</initrd>`);
      p(4, `<cmdline>${esc(spec.boot.cmdline)}</cmdline>`);
      break;
    case 'network':
      p(4, `<boot dev='network'/>`);
      p(4, `<boot dev='hd'/>`);
      break;
    case 'disk':
      p(4, `<boot dev='hd'/>`);
      break;
  }
  p(2, `</os>`);
  p(2, `<features>`);
  // ACPI: the installer's poweroff must end the VM, and `virsh shutdown` must work.
  p(4, `<acpi/>`);
  p(4, `<apic/>`);
  // OVMF's Secure Boot build keeps its variable store in SMM-protected flash.
  if (spec.uefi?.secureBoot === true) p(4, `<smm state='on'/>`);
  p(2, `</features>`);
  // kvm gets the host CPU; under TCG the default model is the one qemu emulates fully.
  if (spec.type === 'kvm') p(2, `<cpu mode='host-passthrough'/>`);
  p(2, `<clock offset='utc'/>`);
  p(2, `<on_poweroff>destroy</on_poweroff>`);
  p(2, `<on_reboot>${spec.installer ? 'destroy' : 'restart'}</on_reboot>`);
  // With a pvpanic device a guest panic leaves the domain 'crashed' for the agent to see.
  p(2, `<on_crash>${spec.installer ? 'preserve' : 'restart'}</on_crash>`);
  p(2, `<devices>`);
  const disks = [spec.disk, ...(spec.extraDisks ?? [])];
  const targets = diskTargets(disks.map((x) => x.bus), machine);
  if (disks.some((x) => x.bus === 'scsi')) p(4, `<controller type='scsi' index='0' model='virtio-scsi'/>`);
  disks.forEach((d, i) => {
    const t = targets[i] as { bus: string; dev: string };
    p(4, `<disk type='${d.kind}' device='disk'>`);
    p(6, `<driver name='qemu' type='${d.format}'/>`);
    if (d.kind === 'volume') p(6, `<source pool='${esc(d.pool)}' volume='${esc(d.volume)}'/>`);
    else p(6, d.kind === 'file' ? `<source file='${esc(d.path)}'/>` : `<source dev='${esc(d.path)}'/>`);
    p(6, `<target dev='${t.dev}' bus='${t.bus}'/>`);
    p(4, `</disk>`);
  });
  for (const n of spec.nics) {
    const isBridge = 'bridge' in n.source;
    p(4, `<interface type='${isBridge ? 'bridge' : 'network'}'>`);
    p(6, `<mac address='${esc(n.mac)}'/>`);
    p(6, 'bridge' in n.source ? `<source bridge='${esc(n.source.bridge)}'/>` : `<source network='${esc(n.source.network)}'/>`);
    p(6, `<model type='${n.model}'/>`);
    p(4, `</interface>`);
  }
  p(4, `<serial type='pty'>`);
  p(6, `<log file='${esc(spec.consoleLog)}' append='off'/>`);
  p(6, `<target port='0'/>`);
  p(4, `</serial>`);
  p(4, `<console type='pty'>`);
  p(6, `<target type='serial' port='0'/>`);
  p(4, `</console>`);
  if (spec.graphics === 'vnc') {
    p(4, `<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>`);
    p(4, `<video>`);
    p(6, `<model type='vga'/>`);
    p(4, `</video>`);
  } else if (spec.graphics === 'spice') {
    p(4, `<graphics type='spice' autoport='yes' listen='127.0.0.1'/>`);
    p(4, `<video>`);
    p(6, `<model type='qxl'/>`);
    p(4, `</video>`);
  }
  p(4, `<panic model='isa'/>`);
  p(4, `<memballoon model='none'/>`);
  p(2, `</devices>`);
  p(0, `</domain>`);
  return o.join('\n') + '\n';
}
