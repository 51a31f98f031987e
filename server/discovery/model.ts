/**
 * Discovered machines and discovery rules. Pure types and the inventory
 * schema check: what the discovery image POSTs is untrusted input from
 * anyone on the network (the image holds no secret), so every field is
 * checked by shape and bounded, unknown fields are refused.
 */
import { normalizeMac } from '../core/mac.js';
import { ForgeError, invalid } from '../errors.js';
import type { Facts } from '../rules/expr.js';

export interface NicFacts {
  name: string;
  mac: string;
  link: boolean;
}

export interface DiskFacts {
  name: string;
  size_gib: number;
  model: string;
  rotational: boolean;
}

/** What the discovery image reports (POST /api/v1/discover). */
export interface Inventory {
  /** The MAC it PXE-booted from. */
  mac: string;
  interfaces: NicFacts[];
  vendor: string;
  product: string;
  serial: string;
  uuid: string;
  cpus: number;
  cpu_model: string;
  arch: string;
  ram_mib: number;
  disks: DiskFacts[];
  firmware: 'bios' | 'uefi';
}

export type Instruction = 'wait' | 'reboot' | 'kexec' | 'poweroff';

export interface Discovered {
  /** disc-525400aabbcc (from the boot MAC). */
  name: string;
  mac: string;
  /** discovered: waiting; provisioned: a system was made from it. */
  status: 'discovered' | 'provisioned';
  inventory: Inventory;
  facts: Facts;
  first_seen: string;
  last_seen: string;
  reports: number;
  /** What the image does at its next poll. */
  instruction: Instruction;
  /** System made from it, and by which rule ('' = by hand). */
  system: string;
  rule: string;
}

export interface Rule {
  name: string;
  /** Lower runs first. */
  priority: number;
  match: string;
  profile: string;
  /** Host name (and system name) template: web-{serial}. '' = the discovered name. */
  hostname: string;
  /** Fire at most this many times (0 = no limit). */
  max: number;
  used: number;
  comment: string;
}

export const INVENTORY_LIMITS = { body: 64 * 1024, text: 256, interfaces: 64, disks: 128 } as const;

const INVENTORY_KEYS = ['mac', 'interfaces', 'vendor', 'product', 'serial', 'uuid', 'cpus', 'cpu_model', 'arch', 'ram_mib', 'disks', 'firmware'];

function rec(field: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(field, 'must be a JSON object');
  return v as Record<string, unknown>;
}

function text(field: string, v: unknown, required = false): string {
  if (v === undefined && !required) return '';
  if (typeof v !== 'string') throw invalid(field, 'must be a string');
  if (v.length > INVENTORY_LIMITS.text) throw invalid(field, `at most ${INVENTORY_LIMITS.text} characters`);
  // DMI strings come from firmware; keep them printable.
  if (/[\u0000-\u001f\u007f]/.test(v)) throw invalid(field, 'must not contain control characters');
  return v.trim();
}

function int(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(field, `must be a whole number ${min}..${max}`);
  return v;
}

function mac(field: string, v: unknown): string {
  const m = typeof v === 'string' ? normalizeMac(v) : undefined;
  if (m === undefined) throw invalid(field, 'must be a MAC address (aa:bb:cc:dd:ee:ff)');
  return m;
}

function only(field: string, r: Record<string, unknown>, keys: readonly string[]): void {
  for (const k0 of Object.keys(r)) {
    if (keys.includes(k0)) continue;
    // An empty or huge key still gets a field name an operator can read.
    const k = k0 === '' ? '(empty key)' : k0.slice(0, 64);
    const f = field === '' ? k : `${field}.${k}`;
    throw new ForgeError('UNKNOWN_FIELD', `${f}: not an inventory field`, { field: f });
  }
}

/** Check an inventory report; throws a ForgeError naming the field. */
export function checkInventory(raw: unknown): Inventory {
  const r = rec('body', raw);
  only('', r, INVENTORY_KEYS);
  const ifs = r['interfaces'] ?? [];
  if (!Array.isArray(ifs) || ifs.length > INVENTORY_LIMITS.interfaces) throw invalid('interfaces', `must be a list of at most ${INVENTORY_LIMITS.interfaces}`);
  const disks = r['disks'] ?? [];
  if (!Array.isArray(disks) || disks.length > INVENTORY_LIMITS.disks) throw invalid('disks', `must be a list of at most ${INVENTORY_LIMITS.disks}`);
  const fw = r['firmware'] ?? 'bios';
  if (fw !== 'bios' && fw !== 'uefi') throw invalid('firmware', 'must be bios or uefi');
  return {
    mac: mac('mac', r['mac']),
    interfaces: ifs.map((x: unknown, i: number) => {
      const f = `interfaces[${i}]`;
      const n = rec(f, x);
      only(f, n, ['name', 'mac', 'link']);
      if (n['link'] !== undefined && typeof n['link'] !== 'boolean') throw invalid(`${f}.link`, 'must be true or false');
      return { name: text(`${f}.name`, n['name'], true), mac: mac(`${f}.mac`, n['mac']), link: n['link'] === true };
    }),
    vendor: text('vendor', r['vendor']),
    product: text('product', r['product']),
    serial: text('serial', r['serial']),
    uuid: text('uuid', r['uuid']),
    cpus: int('cpus', r['cpus'] ?? 1, 1, 65536),
    cpu_model: text('cpu_model', r['cpu_model']),
    arch: text('arch', r['arch'] ?? 'x86_64'),
    ram_mib: int('ram_mib', r['ram_mib'] ?? 0, 0, 1 << 30),
    disks: disks.map((x: unknown, i: number) => {
      const f = `disks[${i}]`;
      const d = rec(f, x);
      only(f, d, ['name', 'size_gib', 'model', 'rotational']);
      const size = d['size_gib'];
      if (typeof size !== 'number' || !Number.isFinite(size) || size < 0 || size > 1 << 30) throw invalid(`${f}.size_gib`, 'must be a number of GiB');
      if (d['rotational'] !== undefined && typeof d['rotational'] !== 'boolean') throw invalid(`${f}.rotational`, 'must be true or false');
      return { name: text(`${f}.name`, d['name'], true), size_gib: size, model: text(`${f}.model`, d['model']), rotational: d['rotational'] === true };
    }),
    firmware: fw,
  };
}

/** The facts rules see (rules/expr.ts FACTS), from an inventory. */
export function factsOf(inv: Inventory): Facts {
  const sizes = inv.disks.map((d) => d.size_gib);
  return {
    ram_mib: inv.ram_mib,
    cpus: inv.cpus,
    cpu_model: inv.cpu_model,
    arch: inv.arch,
    vendor: inv.vendor,
    product: inv.product,
    serial: inv.serial,
    uuid: inv.uuid,
    firmware: inv.firmware,
    mac: inv.mac,
    'disks.count': inv.disks.length,
    'disks.total_gib': Math.round(sizes.reduce((a, b) => a + b, 0) * 100) / 100,
    'disks.largest_gib': sizes.length === 0 ? 0 : Math.max(...sizes),
    'disks.rotational': inv.disks.filter((d) => d.rotational).length,
    'nics.count': inv.interfaces.length,
    'nics.up': inv.interfaces.filter((n) => n.link).length,
  };
}

export function discoveredName(mac: string): string {
  return `disc-${mac.replace(/:/g, '')}`;
}
