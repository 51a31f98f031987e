/**
 * Field validation and defaults for distros, profiles and systems: the one
 * schema check at the edge (API, import). Pure: no I/O.
 *
 * Each field has a spec; a spec both checks/normalises a raw JSON value and
 * documents the field (the CLI derives its flags and the OpenAPI document its
 * schemas from the same tables). Errors are ForgeErrors that name the field
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

export type FieldType =
  | 'name'
  | 'ref'
  | 'text'
  | 'int'
  | 'number'
  | 'bool'
  | 'enum'
  | 'dict'
  | 'list'
  | 'ipv4'
  | 'netmask'
  | 'mac'
  | 'hostname'
  | 'path'
  | 'template'
  | 'time';

export interface FieldSpec {
  type: FieldType;
  doc: string;
  /** Accepts `<<inherit>>`. */
  inherit?: boolean;
  values?: readonly string[];
  /** list item rule */
  item?: 'ip' | 'ipv4' | 'text' | 'name' | 'hostname' | 'range';
  min?: number;
  max?: number;
  /** Must be given on create. */
  required?: boolean;
  /** Set by the store, ignored on input except import. */
  readonly?: boolean;
  /** A credential: masked in anonymous reads, left out of blended variables and logs. */
  secret?: boolean;
}

export const NAME_RE = /^[A-Za-z0-9._-]+$/;
export const NAME_MAX = 128;

/**
 * Length limits of every free-form value (characters). A dict value holds a
 * password hash or an ssh public key (a 16k-bit RSA key is ~2.8k), a text
 * field a comment or a path; nothing legitimate comes near these, and with
 * them one object stays far below the 1 MB body limit's order of magnitude.
 */
export const LIMITS = {
  text: 4096,
  path: 4096,
  dictKey: 256,
  dictValue: 65536,
  dictEntries: 1024,
  listItems: 1024,
  listItem: 4096,
  interfaces: 64,
  time: 64,
} as const;

const base: Record<string, FieldSpec> = {
  name: { type: 'name', doc: 'unique name ([A-Za-z0-9._-], at most 128 characters)', required: true },
  comment: { type: 'text', doc: 'free-form comment' },
  ctime: { type: 'time', doc: 'creation time (set by the server)', readonly: true },
  mtime: { type: 'time', doc: 'modification time (set by the server)', readonly: true },
};

const virt: Record<string, FieldSpec> = {
  virt_type: { type: 'enum', values: VIRT_TYPES, inherit: true, doc: 'kvm, qemu, xenpv or vmware' },
  virt_cpus: { type: 'int', min: 1, max: 4096, inherit: true, doc: 'virtual CPUs' },
  virt_ram: { type: 'int', min: 1, max: 16 * 1024 * 1024, inherit: true, doc: 'RAM in MiB' },
  virt_file_size: { type: 'number', min: 0, max: 1024 * 1024, inherit: true, doc: 'disk size in GiB' },
  virt_path: { type: 'text', inherit: true, doc: 'disk location: directory, LVM volume group, /dev path or pool:NAME' },
  virt_bridge: { type: 'text', inherit: true, doc: 'host bridge for the NIC' },
  virt_disk_driver: { type: 'enum', values: ['raw', 'qcow2'], inherit: true, doc: 'raw or qcow2' },
  virt_auto_boot: { type: 'bool', inherit: true, doc: 'start the VM when the host boots' },
};

export const FIELDS: { [K in ObjectKind]: Record<string, FieldSpec> } = {
  distro: {
    ...base,
    arch: { type: 'enum', values: ARCHES, doc: 'architecture' },
    breed: { type: 'enum', values: BREEDS, doc: 'installer family' },
    os_version: { type: 'text', doc: 'OS version, e.g. bookworm, rhel9' },
    kernel: { type: 'path', required: true, doc: 'kernel: absolute path on the server or http(s) URL' },
    initrd: { type: 'path', required: true, doc: 'initrd: absolute path on the server or http(s) URL' },
    kernel_options: { type: 'dict', doc: 'kernel command line options (a=b c)' },
    kernel_options_post: { type: 'dict', doc: 'kernel options of the installed system' },
    autoinstall_meta: { type: 'dict', doc: 'template variables (a=b c=d)' },
    boot_loaders: { type: 'list', item: 'name', doc: 'boot loaders (ipxe, pxe, grub, shim)' },
    tree: { type: 'path', doc: 'install tree URL or path' },
  },
  profile: {
    ...base,
    distro: { type: 'ref', doc: 'distro (exactly one of distro and parent)' },
    parent: { type: 'ref', doc: 'parent profile (exactly one of distro and parent)' },
    autoinstall: { type: 'template', inherit: true, doc: 'template, relative to the templates root' },
    autoinstall_meta: { type: 'dict', doc: 'template variables (a=b c=d)' },
    kernel_options: { type: 'dict', doc: 'kernel command line options (a=b c)' },
    kernel_options_post: { type: 'dict', doc: 'kernel options of the installed system' },
    name_servers: { type: 'list', item: 'ip', doc: 'DNS servers' },
    name_servers_search: { type: 'list', item: 'hostname', doc: 'DNS search domains' },
    enable_ipxe: { type: 'bool', inherit: true, doc: 'boot through iPXE' },
    enable_menu: { type: 'bool', inherit: true, doc: 'show in the PXE menu' },
    boot_loaders: { type: 'list', item: 'name', doc: 'boot loaders (ipxe, pxe, grub, shim)' },
    ...virt,
  },
  system: {
    ...base,
    profile: { type: 'ref', required: true, doc: 'profile' },
    hostname: { type: 'hostname', doc: 'host name' },
    gateway: { type: 'ipv4', doc: 'default gateway' },
    name_servers: { type: 'list', item: 'ip', doc: 'DNS servers' },
    name_servers_search: { type: 'list', item: 'hostname', doc: 'DNS search domains' },
    netboot_enabled: { type: 'bool', doc: 'PXE boot into the installer (false: boot locally)' },
    status: { type: 'enum', values: STATUSES, doc: 'development, testing, acceptance or production' },
    autoinstall: { type: 'template', inherit: true, doc: 'template, relative to the templates root' },
    autoinstall_meta: { type: 'dict', doc: 'template variables (a=b c=d)' },
    kernel_options: { type: 'dict', doc: 'kernel command line options (a=b c)' },
    kernel_options_post: { type: 'dict', doc: 'kernel options of the installed system' },
    virt_pxe_boot: { type: 'bool', doc: 'install the VM by PXE instead of kernel+initrd' },
    boot_loaders: { type: 'list', item: 'name', doc: 'boot loaders (ipxe, pxe, grub, shim)' },
    power_type: { type: 'enum', values: POWER_TYPES, doc: 'power driver: none, libvirt, ipmi or redfish' },
    power_address: { type: 'text', doc: 'libvirt URI (qemu:///system, qemu+ssh://host/system), BMC host[:port], or Redfish https://host[:port]' },
    power_user: { type: 'text', doc: 'BMC user name' },
    power_pass: { type: 'text', secret: true, doc: 'BMC password (secret: masked in anonymous reads)' },
    power_id: { type: 'text', doc: 'libvirt domain name, or Redfish system id (default: the only system)' },
    power_ca: { type: 'path', doc: 'PEM CA file to verify a Redfish BMC certificate (default: system CAs)' },
    ...virt,
  },
  subnet: {
    ...base,
    cidr: { type: 'text', required: true, doc: 'network in CIDR form (10.96.0.0/24), /8 to /30; must not overlap another subnet' },
    range: { type: 'list', item: 'range', doc: 'dynamic pool(s) as first,last inside cidr (several: "a,b c,d")' },
    router: { type: 'ipv4', doc: 'option 3 router, inside cidr (empty: dhcp_router when inside cidr)' },
    dns: { type: 'list', item: 'ipv4', doc: 'option 6 DNS servers (empty: dhcp_dns)' },
    domain: { type: 'hostname', doc: 'option 15 domain name (empty: dhcp_domain)' },
    dns_search: { type: 'list', item: 'hostname', doc: 'option 119 DNS search list (RFC 3397)' },
    lease_time: { type: 'int', min: 0, max: LEASE_MAX, doc: 'lease time in seconds, 60 or more (0: dhcp_lease_time)' },
    next_server: { type: 'ipv4', doc: 'siaddr / TFTP server for this subnet (empty: next_server, else forge\'s address facing the client)' },
    mtu: { type: 'int', min: 0, max: MTU_MAX, doc: 'option 26 interface MTU, 68 or more (0: not sent)' },
    authoritative: { type: 'bool', doc: 'ACK/NAK INIT-REBOOT requests of clients forge has no record of (RFC 2131 4.3.2)' },
    unknown: { type: 'enum', values: SUBNET_UNKNOWN, doc: 'machines without a system: ignore, discover or default (empty: dhcp_unknown)' },
    servers: { type: 'list', item: 'name', doc: 'forge servers (their server_name) that answer DHCP here (empty: every server)' },
  },
};

/*
 * The secret set, defined here only (REST, XML-RPC and the UI's reads all go
 * through `redact`/`redactVars`): fields whose spec says `secret: true`
 * (power_pass), and autoinstall_meta keys that name a credential
 * (`isSecretMetaKey`). ssh public keys are not secrets: they are published
 * by design (authorized_keys, the rendered files).
 */

/** Names of the secret fields of a kind. */
export function secretFields(kind: ObjectKind): string[] {
  return Object.entries(FIELDS[kind]).filter(([, s]) => s.secret === true).map(([k]) => k);
}

/**
 * True for an autoinstall_meta key that holds a secret: root_password_hash
 * (the Cobbler default_password_crypted), and any key ending in _password,
 * _password_hash, _secret or _token (user_password, grub_password_hash,
 * wifi_secret, registration_token).
 */
export function isSecretMetaKey(key: string): boolean {
  return key === 'root_password_hash' || /_(password|password_hash|secret|token)$/.test(key);
}

/** The value secret fields show in anonymous reads. */
export const MASK = '********';

function masked(v: unknown): unknown {
  return typeof v === 'string' && v !== '' ? MASK : v;
}

/** A copy of an autoinstall_meta dict with its secret values masked. */
function redactMeta(meta: unknown): unknown {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return meta;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta as Record<string, unknown>)) out[k] = isSecretMetaKey(k) ? masked(v) : v;
  return out;
}

/** A copy of the object with every non-empty secret field and secret autoinstall_meta value masked. */
export function redact<T>(kind: ObjectKind, obj: T): T {
  const out = { ...(obj as Record<string, unknown>) };
  for (const k of secretFields(kind)) out[k] = masked(out[k]);
  if ('autoinstall_meta' in out) out['autoinstall_meta'] = redactMeta(out['autoinstall_meta']);
  return out as T;
}

/**
 * A copy of blended variables (dumpvars) with secrets masked: the blend
 * promotes autoinstall_meta keys to the top level, so both places are masked.
 */
export function redactVars<T extends Record<string, unknown>>(vars: T): T {
  const out: Record<string, unknown> = { ...vars };
  for (const k of Object.keys(out)) {
    if (isSecretMetaKey(k) || k === 'power_pass') out[k] = masked(out[k]);
    else if (typeof out[k] === 'string') out[k] = maskInstallTokens(out[k]);
  }
  if ('autoinstall_meta' in out) out['autoinstall_meta'] = redactMeta(out['autoinstall_meta']);
  return out as T;
}

/** An install token inside a URL (core/access.ts: BASE/i/TOKEN/...). */
const INSTALL_TOKEN_IN_URL = /\/i\/[0-9a-f]{32}(?=\/|$)/g;

/** A string with any install token in it masked (anonymous reads of blended URLs and kernel command lines). */
export function maskInstallTokens(v: string): string {
  return v.replace(INSTALL_TOKEN_IN_URL, `/i/${MASK}`);
}

/**
 * Blended variables with every secret value emptied (not masked): what an
 * anonymous profile render gets (templates treat '' as "not set": root
 * password locked, no token).
 */
export function withoutSecrets<T extends Record<string, unknown>>(vars: T): T {
  const out: Record<string, unknown> = { ...vars };
  for (const k of Object.keys(out)) if ((isSecretMetaKey(k) || k === 'power_pass') && typeof out[k] === 'string') out[k] = '';
  const meta = out['autoinstall_meta'];
  if (meta !== null && typeof meta === 'object' && !Array.isArray(meta)) {
    out['autoinstall_meta'] = Object.fromEntries(Object.entries(meta as Record<string, unknown>).map(([k, v]) => [k, isSecretMetaKey(k) && typeof v === 'string' ? '' : v]));
  }
  return out as T;
}

/**
 * Why an anonymous (or any) caller may not filter on a field, or undefined
 * when it may. Secret fields are never filterable (a glob would guess them
 * one request at a time); autoinstall_meta is filterable only with the token,
 * because it may hold secret values.
 */
export function filterRefusal(kind: ObjectKind, field: string, authenticated: boolean): string | undefined {
  if (secretFields(kind).includes(field)) return 'a secret field cannot be filtered on';
  if (field === 'autoinstall_meta' && !authenticated) return 'filtering on autoinstall_meta needs the token (it may hold secrets: root_password_hash, *_password, *_secret, *_token)';
  return undefined;
}

export const INTERFACE_FIELDS: Record<keyof NetInterface, FieldSpec> = {
  mac_address: { type: 'mac', doc: 'MAC address, or "random" on create/edit' },
  ip_address: { type: 'ipv4', doc: 'IPv4 address' },
  netmask: { type: 'netmask', doc: 'netmask (255.255.255.0 or 24)' },
  if_gateway: { type: 'ipv4', doc: 'gateway of this interface' },
  static: { type: 'bool', doc: 'static configuration instead of DHCP' },
  dns_name: { type: 'hostname', doc: 'DNS name' },
  mtu: { type: 'int', min: 0, max: 65535, doc: 'MTU (0: default)' },
  interface_type: { type: 'enum', values: INTERFACE_TYPES, doc: 'na, bond, bond_slave, bridge, bridge_slave' },
  interface_master: { type: 'text', doc: 'bond/bridge master interface' },
  bonding_opts: { type: 'text', doc: 'bonding options' },
  static_routes: { type: 'list', item: 'text', doc: 'static routes (net/prefix:gateway)' },
};

/** The value a system interface's mac_address holds to ask for a random MAC. */
export const RANDOM_MAC = 'random';

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
