/**
 * Field validation and defaults for distros, profiles and systems: the one
 * schema check at the edge (API, import). Pure: no I/O.
 *
 * Each field has a spec (core/fields.ts); a spec both checks/normalises a raw
 * JSON value and documents the field (the CLI derives its flags and the
 * OpenAPI document its schemas from the same tables). The secret set and
 * redaction are core/secrets.ts. Errors are ForgeErrors that name the field
 * (`interfaces.eth1.mac_address`) and the rule it broke.
 */
import { isIP } from 'node:net';
import { ForgeError, invalid } from '../errors.js';
import { defaultDistro, defaultInterface, defaultProfile, defaultSubnet, defaultSystem } from './defaults.js';
import { LEASE_MAX, MTU_MAX, checkSubnet } from './subnet.js';
import { intToIp, ipToInt, isIPv4, maskOf } from './ipv4.js';
import { normalizeMac } from './mac.js';
import {
  ARCHES,
  BREEDS,
  INHERIT,
  INTERFACE_TYPES,
  POWER_TYPES,
  STATUSES,
  SUBNET_UNKNOWN,
  VIRT_TYPES,
} from './model.js';
import type { KindMap, NetInterface, ObjectKind, OptionDict, Subnet } from './model.js';
import { FIELDS, INTERFACE_FIELDS, LIMITS, NAME_MAX, NAME_RE, RANDOM_MAC, type FieldSpec } from './fields.js';

// ---------------------------------------------------------------- primitives

export { isIPv4 };

/** `255.255.255.0`, `/24` or `24` -> dotted netmask; undefined when not a contiguous mask. */
export function normalizeNetmask(s: string): string | undefined {
  const pfx = /^\/?(\d{1,2})$/.exec(s);
  if (pfx !== null) {
    const n = Number(pfx[1]);
    if (n > 32) return undefined;
    return intToIp(maskOf(n));
  }
  if (!isIPv4(s)) return undefined;
  const v = ipToInt(s)!;
  const inv = 2 ** 32 - 1 - v;
  // contiguous ones: the inverted mask + 1 is a power of two
  return ((inv + 1) & inv) === 0 || inv === 2 ** 32 - 1 ? s : undefined;
}

const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export function isName(s: string): boolean {
  // `.` and `..` would name the directory itself or its parent in URLs and TFTP paths.
  return s.length > 0 && s.length <= NAME_MAX && NAME_RE.test(s) && s !== '.' && s !== '..';
}

/**
 * Split a Cobbler-style option string `a=b c "d=e f"` into a dict.
 * A token without `=` is a flag (null value).
 */
export function parseOptionString(s: string): OptionDict {
  const out: OptionDict = {};
  for (const tok of shellSplit(s)) {
    const eq = tok.indexOf('=');
    if (eq === 0) throw invalid('options', `"${tok}" has no key`);
    if (eq < 0) out[tok] = null;
    else out[tok.slice(0, eq)] = tok.slice(eq + 1);
  }
  return out;
}

/** Whitespace split honouring single and double quotes (quotes removed). */
export function shellSplit(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: '"' | "'" | undefined;
  let has = false;
  for (const ch of s) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur !== '') out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
    }
  }
  if (quote !== undefined) throw invalid('options', 'unterminated quote');
  if (has || cur !== '') out.push(cur);
  return out;
}

export function parseList(s: string): string[] {
  return s.split(/[\s,]+/).filter((x) => x !== '');
}

/** Ranges `first,last` keep their comma: items are separated by blanks or semicolons. */
export function parseRangeList(s: string): string[] {
  return s.split(/[\s;]+/).filter((x) => x !== '');
}

// ---------------------------------------------------------------- field check

function checkValue(field: string, spec: FieldSpec, raw: unknown): unknown {
  if (spec.inherit === true && raw === INHERIT) return INHERIT;
  const str = (): string => {
    if (typeof raw === 'string') {
      if (raw.length > LIMITS.text) throw invalid(field, `at most ${LIMITS.text} characters (got ${raw.length})`);
      return raw.trim();
    }
    if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
    throw invalid(field, 'must be a string');
  };
  switch (spec.type) {
    case 'name': {
      const s = str();
      if (!isName(s)) throw invalid(field, `"${s}" is not a valid name (letters, digits, . _ -, at most ${NAME_MAX})`);
      return s;
    }
    case 'ref': {
      const s = str();
      if (s !== '' && !isName(s)) throw invalid(field, `"${s}" is not a valid name (letters, digits, . _ -)`);
      return s;
    }
    case 'text':
      if (typeof raw !== 'string') throw invalid(field, 'must be a string');
      if (raw.length > LIMITS.text) throw invalid(field, `at most ${LIMITS.text} characters (got ${raw.length})`);
      return raw;
    case 'time':
      if (typeof raw !== 'string') throw invalid(field, 'must be an ISO-8601 time string');
      if (raw.length > LIMITS.time) throw invalid(field, `at most ${LIMITS.time} characters`);
      return raw;
    case 'int':
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw.trim()) : NaN;
      if (!Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n))) {
        throw invalid(field, spec.type === 'int' ? 'must be a whole number' : 'must be a number');
      }
      if (spec.min !== undefined && n < spec.min) throw invalid(field, `must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) throw invalid(field, `must be at most ${spec.max}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string') {
        const v = raw.trim().toLowerCase();
        if (['1', 'true', 'yes', 'on', 'y'].includes(v)) return true;
        if (['0', 'false', 'no', 'off', 'n'].includes(v)) return false;
      }
      throw invalid(field, 'must be true or false');
    }
    case 'enum': {
      const s = str();
      if (!(spec.values ?? []).includes(s)) throw invalid(field, `must be one of ${(spec.values ?? []).join(', ')}`);
      return s;
    }
    case 'dict':
      return checkDict(field, raw);
    case 'list':
      return checkList(field, spec, raw);
    case 'ipv4': {
      const s = str();
      if (s !== '' && !isIPv4(s)) throw invalid(field, `"${s}" is not an IPv4 address`);
      return s;
    }
    case 'netmask': {
      const s = str();
      if (s === '') return s;
      const m = normalizeNetmask(s);
      if (m === undefined) throw invalid(field, `"${s}" is not a netmask`);
      return m;
    }
    case 'mac': {
      const s = str();
      if (s === '' || s.toLowerCase() === RANDOM_MAC) return s.toLowerCase();
      const m = normalizeMac(s);
      if (m === undefined) throw invalid(field, `"${s}" is not a MAC address (aa:bb:cc:dd:ee:ff)`);
      return m;
    }
    case 'hostname': {
      const s = str();
      if (s !== '' && !HOSTNAME_RE.test(s)) throw invalid(field, `"${s}" is not a valid host name`);
      return s;
    }
    case 'path': {
      const s = str();
      if (s !== '' && !s.startsWith('/') && !/^https?:\/\/[^\s]+$/.test(s)) {
        throw invalid(field, `"${s}" must be an absolute path or an http(s) URL`);
      }
      if (s.split('/').includes('..')) throw invalid(field, 'must not contain ".."');
      return s;
    }
    case 'template': {
      const s = str();
      if (s === '') return s;
      if (s.startsWith('/') || s.split('/').includes('..') || !/^[A-Za-z0-9._/-]+$/.test(s)) {
        throw invalid(field, `"${s}" must be a template path relative to the templates root`);
      }
      return s;
    }
  }
}

function checkDict(field: string, raw: unknown): OptionDict {
  if (typeof raw === 'string') {
    if (raw.length > LIMITS.dictValue * 4) throw invalid(field, `at most ${LIMITS.dictValue * 4} characters as a string`);
    try {
      return checkDict(field, parseOptionString(raw));
    } catch (e) {
      if (e instanceof ForgeError) throw invalid(field, e.message.replace(/^options: /, ''));
      throw e;
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid(field, 'must be an object of key -> string|null, or a string "a=b c"');
  }
  const out: OptionDict = {};
  const entries = Object.entries(raw);
  if (entries.length > LIMITS.dictEntries) throw invalid(field, `at most ${LIMITS.dictEntries} keys (got ${entries.length})`);
  for (const [k, v] of entries) {
    if (k.length > LIMITS.dictKey) throw invalid(`${field}.${k.slice(0, 32)}...`, `key at most ${LIMITS.dictKey} characters`);
    if (k === '' || /\s/.test(k)) throw invalid(`${field}.${k}`, 'key must be non-empty without spaces');
    if (typeof v === 'string' && v.length > LIMITS.dictValue) {
      throw invalid(`${field}.${k}`, `value at most ${LIMITS.dictValue} characters (got ${v.length})`);
    }
    if (v === null) out[k] = null;
    else if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else throw invalid(`${field}.${k}`, 'value must be a string or null');
  }
  return out;
}

function checkList(field: string, spec: FieldSpec, raw: unknown): string[] {
  const items = typeof raw === 'string' ? (spec.item === 'range' ? parseRangeList(raw) : parseList(raw)) : raw;
  if (!Array.isArray(items)) throw invalid(field, 'must be a list of strings');
  if (items.length > LIMITS.listItems) throw invalid(field, `at most ${LIMITS.listItems} items (got ${items.length})`);
  const out: string[] = [];
  for (const [i, v] of items.entries()) {
    if (typeof v !== 'string') throw invalid(`${field}[${i}]`, 'must be a string');
    if (v.length > LIMITS.listItem) throw invalid(`${field}[${i}]`, `at most ${LIMITS.listItem} characters`);
    const s = v.trim();
    if (spec.item === 'ip' && isIP(s) === 0) throw invalid(field, `"${s}" is not an IP address`);
    if (spec.item === 'ipv4' && !isIPv4(s)) throw invalid(field, `"${s}" is not an IPv4 address`);
    if (spec.item === 'name' && !isName(s)) throw invalid(field, `"${s}" is not a valid name`);
    if (spec.item === 'hostname' && !HOSTNAME_RE.test(s)) throw invalid(field, `"${s}" is not a valid domain`);
    out.push(s);
  }
  return out;
}

function asRecord(field: string, raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid(field, 'must be a JSON object');
  }
  return raw as Record<string, unknown>;
}

function checkInterface(ifname: string, raw: unknown, existing: NetInterface | undefined): NetInterface {
  const field = `interfaces.${ifname}`;
  const rec = asRecord(field, raw);
  const out = { ...(existing ?? defaultInterface()) } as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(rec)) {
    const spec = (INTERFACE_FIELDS as Record<string, FieldSpec>)[k];
    if (spec === undefined) {
      throw new ForgeError('UNKNOWN_FIELD', `${field}.${k}: not an interface field`, { field: `${field}.${k}` });
    }
    out[k] = checkValue(`${field}.${k}`, spec, v);
  }
  return out as unknown as NetInterface;
}

function checkInterfaces(
  raw: unknown,
  existing: Record<string, NetInterface> | undefined,
): Record<string, NetInterface> {
  const rec = asRecord('interfaces', raw);
  // Without `existing` (create/replace) the given map is the whole set.
  const out: Record<string, NetInterface> = existing === undefined ? {} : { ...existing };
  if (Object.keys(rec).length > LIMITS.interfaces) throw invalid('interfaces', `at most ${LIMITS.interfaces} interfaces`);
  for (const [ifname, v] of Object.entries(rec)) {
    if (!isName(ifname) || ifname.length > 64) {
      throw invalid(`interfaces.${ifname}`, 'interface name must be letters, digits, . _ - (at most 64)');
    }
    if (v === null) {
      if (existing !== undefined && out[ifname] === undefined) {
        throw new ForgeError('NOT_FOUND', `interfaces.${ifname}: no such interface`, { field: `interfaces.${ifname}` });
      }
      delete out[ifname];
      continue;
    }
    out[ifname] = checkInterface(ifname, v, out[ifname]);
  }
  if (Object.keys(out).length > LIMITS.interfaces) throw invalid('interfaces', `at most ${LIMITS.interfaces} interfaces`);
  return out;
}

function defaultsFor<K extends ObjectKind>(kind: K, name: string): KindMap[K] {
  const d = kind === 'distro' ? defaultDistro(name) : kind === 'profile' ? defaultProfile(name) : kind === 'subnet' ? defaultSubnet(name) : defaultSystem(name);
  return d as KindMap[K];
}

export interface ValidateOptions {
  /** Keep ctime/mtime from the input (import). */
  keepTimes?: boolean;
}

/**
 * Validate a complete new object (create, bulk, import): unknown fields are
 * refused, missing ones take their defaults, required ones must be present.
 */
export function validateNew<K extends ObjectKind>(kind: K, input: unknown, opts: ValidateOptions = {}): KindMap[K] {
  const rec = asRecord(kind, input);
  const specs = FIELDS[kind];
  for (const [k, s] of Object.entries(specs)) {
    if (s.required === true && (rec[k] === undefined || rec[k] === '')) {
      throw new ForgeError('MISSING_FIELD', `${k}: required for a ${kind}`, { field: k });
    }
  }
  const name = checkValue('name', specs['name']!, rec['name']) as string;
  const out = defaultsFor(kind, name) as unknown as Record<string, unknown>;
  apply(kind, out, rec, undefined, opts);
  return finish(kind, out, undefined);
}

/**
 * Apply a partial update to an existing object. For systems, `interfaces`
 * merges per interface and `{eth1: null}` deletes eth1. The name cannot
 * change here (rename does that, updating references).
 */
export function validatePatch<K extends ObjectKind>(kind: K, existing: KindMap[K], patch: unknown): KindMap[K] {
  const rec = asRecord(kind, patch);
  if (rec['name'] !== undefined && rec['name'] !== existing.name) {
    throw invalid('name', 'cannot be changed by an edit; use rename');
  }
  const out = structuredClone(existing) as unknown as Record<string, unknown>;
  apply(kind, out, rec, existing as unknown as Record<string, unknown>, {});
  // Setting parent on a profile that had a distro (or the reverse) switches it.
  if (kind === 'profile') {
    if (typeof rec['parent'] === 'string' && rec['parent'] !== '' && rec['distro'] === undefined) out['distro'] = '';
    if (typeof rec['distro'] === 'string' && rec['distro'] !== '' && rec['parent'] === undefined) out['parent'] = '';
  }
  return finish(kind, out, existing);
}

function apply(
  kind: ObjectKind,
  out: Record<string, unknown>,
  rec: Record<string, unknown>,
  existing: Record<string, unknown> | undefined,
  opts: ValidateOptions,
): void {
  const specs = FIELDS[kind];
  for (const [k, v] of Object.entries(rec)) {
    if (kind === 'system' && k === 'interfaces') {
      out[k] = checkInterfaces(v, existing === undefined ? undefined : (existing['interfaces'] as Record<string, NetInterface>));
      continue;
    }
    const spec = specs[k];
    if (spec === undefined) {
      throw new ForgeError('UNKNOWN_FIELD', `${k}: not a ${kind} field`, { field: k });
    }
    if (spec.readonly === true) {
      if (opts.keepTimes === true) out[k] = checkValue(k, spec, v);
      continue;
    }
    if (v === undefined) continue;
    out[k] = checkValue(k, spec, v);
  }
}

function finish<K extends ObjectKind>(kind: K, out: Record<string, unknown>, _existing: KindMap[K] | undefined): KindMap[K] {
  if (kind === 'profile') {
    const d = out['distro'] !== '';
    const p = out['parent'] !== '';
    if (d === p) {
      throw new ForgeError('DISTRO_XOR_PARENT', 'distro/parent: a profile needs exactly one of distro and parent', {
        field: d ? 'parent' : 'distro',
      });
    }
    if (out['parent'] === out['name']) {
      throw new ForgeError('PARENT_CYCLE', `parent: profile ${String(out['name'])} cannot be its own parent`, { field: 'parent' });
    }
  }
  if (kind === 'subnet') return checkSubnet(out as unknown as Subnet) as unknown as KindMap[K];
  if (kind === 'system') checkPower(out);
  if (kind === 'system') {
    // MACs and IPs within one system must differ too (the store checks across systems).
    const seenMac = new Map<string, string>();
    const seenIp = new Map<string, string>();
    for (const [ifname, i] of Object.entries(out['interfaces'] as Record<string, NetInterface>)) {
      if (i.mac_address !== '' && i.mac_address !== RANDOM_MAC) {
        const other = seenMac.get(i.mac_address);
        if (other !== undefined) {
          throw new ForgeError('DUPLICATE_MAC', `interfaces.${ifname}.mac_address: ${i.mac_address} is also on ${other}`, {
            field: `interfaces.${ifname}.mac_address`,
          });
        }
        seenMac.set(i.mac_address, ifname);
      }
      if (i.ip_address !== '') {
        const other = seenIp.get(i.ip_address);
        if (other !== undefined) {
          throw new ForgeError('DUPLICATE_IP', `interfaces.${ifname}.ip_address: ${i.ip_address} is also on ${other}`, {
            field: `interfaces.${ifname}.ip_address`,
          });
        }
        seenIp.set(i.ip_address, ifname);
      }
    }
  }
  return out as unknown as KindMap[K];
}

/** Power fields must fit their driver (server/power/drivers.ts reads them). */
function checkPower(out: Record<string, unknown>): void {
  const type = (out['power_type'] as string | undefined) ?? 'none';
  const addr = (out['power_address'] as string | undefined) ?? '';
  const id = (out['power_id'] as string | undefined) ?? '';
  for (const k of ['power_address', 'power_user', 'power_pass', 'power_id']) {
    const v = out[k];
    // Values reach a command line (ipmitool, virsh) as separate argv words; control
    // characters would still garble logs and the BMC session.
    if (typeof v === 'string' && /[\u0000-\u001f\u007f]/.test(v)) throw invalid(k, 'must not contain control characters');
  }
  if (type === 'none') return;
  if (addr === '' && type !== 'libvirt') throw new ForgeError('MISSING_FIELD', `power_address: required for power_type ${type}`, { field: 'power_address' });
  if (type === 'libvirt') {
    if (addr !== '' && !/^[a-z0-9+]+:\/\/[^\s]*$/.test(addr)) {
      throw invalid('power_address', `"${addr}" is not a libvirt URI (qemu:///system, qemu+ssh://host/system)`);
    }
    if (id === '') throw new ForgeError('MISSING_FIELD', 'power_id: required for power_type libvirt (the domain name)', { field: 'power_id' });
  }
  if (type === 'ipmi' && !/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(addr)) {
    throw invalid('power_address', `"${addr}" is not a BMC host[:port]`);
  }
  if (type === 'redfish') {
    let u: URL;
    try {
      u = new URL(/^[a-z]+:\/\//i.test(addr) ? addr : `https://${addr}`);
    } catch {
      throw invalid('power_address', `"${addr}" is not a Redfish URL (https://host[:port])`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw invalid('power_address', 'a Redfish address is https://host[:port] (or http:// on a trusted network)');
    if (id !== '' && !/^[A-Za-z0-9._-]+$/.test(id)) throw invalid('power_id', `"${id}" is not a Redfish system id`);
  }
}
