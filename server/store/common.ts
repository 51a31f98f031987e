/**
 * What both store backends share and nothing else needs to know: how a list
 * filter splits into what the database matches (indexed columns, interface
 * MACs/IPs) and what is matched on the parsed document, the glob syntax, and
 * the order profiles of one batch are written in, and the text a write stored.
 */
import { ForgeError } from '../errors.js';
import type { EventType, ForgeEvent, ObjectKind, Profile, Subnet, System } from '../core/model.js';
import type { EventOnce, ListFilter, ListPage } from './store.js';

/**
 * The text a backend stored for a document it just wrote (its JSON.stringify), kept beside the
 * object it returns, so the layer right above it (the system index, store/index.ts) takes that
 * text instead of serialising the document again: one JSON.stringify of a system less per API add
 * (issue 19 profile). Backends return such objects as written and nobody changes them after.
 */
const STORED_TEXT = new WeakMap<object, string>();

/** `text`, remembered as what was stored for `obj`. */
export function storedAs(obj: object, text: string): string {
  STORED_TEXT.set(obj, text);
  return text;
}

/** The text stored for `obj` by the write that returned it, if a backend said. */
export function storedTextOf(obj: object): string | undefined {
  return STORED_TEXT.get(obj);
}

export const TABLE: Record<ObjectKind, string> = { distro: 'distros', profile: 'profiles', system: 'systems', subnet: 'subnets' };

/** Convert a shell glob (`*`, `?`) to an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** True when the value is a glob (SQLite GLOB syntax: `*`, `?`, `[...]`), else an exact match. */
export const isGlob = (v: string): boolean => /[*?[]/.test(v);

export function fieldString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Fields stored in their own column, per kind (matched by the database). */
const COLUMNS: Record<ObjectKind, readonly string[]> = {
  distro: ['name'],
  profile: ['name', 'distro', 'parent'],
  system: ['name', 'profile'],
  subnet: ['name'],
};
const IFACE_FIELDS = ['netmask', 'if_gateway', 'dns_name', 'static', 'mtu', 'interface_type'];

export interface SplitFilter {
  /** [column, value]: a column of the kind's table. */
  columns: [string, string][];
  /** [interfaces column (mac|ip), value]. */
  iface: ['mac' | 'ip', string][];
  /** Matched on each parsed document. */
  jsFilters: [string, RegExp][];
  /** Matched on any interface of a system's document. */
  ifaceFilters: [string, RegExp][];
}

export function splitFilter(kind: ObjectKind, filter: ListFilter): SplitFilter {
  const out: SplitFilter = { columns: [], iface: [], jsFilters: [], ifaceFilters: [] };
  for (const [field, glob] of Object.entries(filter)) {
    if (COLUMNS[kind].includes(field)) out.columns.push([field, glob]);
    else if (kind === 'system' && (field === 'mac_address' || field === 'ip_address')) out.iface.push([field === 'mac_address' ? 'mac' : 'ip', glob]);
    else if (kind === 'system' && IFACE_FIELDS.includes(field)) out.ifaceFilters.push([field, globToRegExp(glob)]);
    else out.jsFilters.push([field, globToRegExp(glob)]);
  }
  return out;
}

export function matchesDoc(o: Record<string, unknown>, f: Pick<SplitFilter, 'jsFilters' | 'ifaceFilters'>): boolean {
  if (!f.jsFilters.every(([k, re]) => re.test(fieldString(o[k])))) return false;
  if (f.ifaceFilters.length > 0) {
    const ifs = Object.values((o as unknown as System).interfaces) as unknown as Record<string, unknown>[];
    if (!f.ifaceFilters.every(([k, re]) => ifs.some((i) => re.test(fieldString(i[k]))))) return false;
  }
  return true;
}

/**
 * A page of stored rows (name order, at most `page.limit`) as Store.listPage
 * answers it: the filter's part SQL could not check is checked here.
 */
export function pageOf(rows: readonly { name: string; data: string }[], page: ListPage, f: Pick<SplitFilter, 'jsFilters' | 'ifaceFilters'>): { rows: string[]; next: string | undefined } {
  const inJs = f.jsFilters.length > 0 || f.ifaceFilters.length > 0;
  const out: string[] = [];
  for (const r of rows) {
    if (inJs && !matchesDoc(JSON.parse(r.data) as Record<string, unknown>, f)) continue;
    out.push(page.names === true ? r.name : r.data);
  }
  return { rows: out, next: rows.length < page.limit ? undefined : rows[rows.length - 1]!.name };
}

/** Parents before children (stable otherwise), so a batch may hold whole trees. */
export function orderProfiles(ps: readonly Profile[]): Profile[] {
  const byName = new Map(ps.map((p) => [p.name, p]));
  const out: Profile[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (p: Profile): void => {
    const s = state.get(p.name);
    if (s === 'done' || s === 'visiting') return; // a cycle is reported by the store's check
    state.set(p.name, 'visiting');
    const parent = p.parent !== '' ? byName.get(p.parent) : undefined;
    if (parent !== undefined) visit(parent);
    state.set(p.name, 'done');
    out.push(p);
  };
  for (const p of ps) visit(p);
  return out;
}

/** The random-MAC OUI for system `name` (WriteOptions.randomOui). */
export function ouiFor(randomOui: string | Record<string, string> | undefined, name: string): string {
  if (typeof randomOui === 'string') return randomOui;
  if (randomOui !== undefined && randomOui[name] !== undefined) return randomOui[name]!;
  return '52:54:00';
}

/** A cascade removal's order (dependants first) as the REFERENCED refusal, when not recursive. */
export function referencedError(kind: ObjectKind, name: string, order: [ObjectKind, string][]): { message: string; deps: string[] } {
  const deps = order.slice(0, -1).map(([k, n]) => `${k} ${n}`);
  const shown = deps.slice(0, 10).join(', ') + (deps.length > 10 ? `, ... (${deps.length} in all)` : '');
  return { message: `${kind} ${name} is referenced by ${shown}; use recursive`, deps };
}

/** DUPLICATE_MAC / DUPLICATE_IP naming the field and who has the address. */
export function duplicateError(code: 'DUPLICATE_MAC' | 'DUPLICATE_IP', ifname: string, value: string, owner: { system: string; ifname: string } | undefined): ForgeError {
  const field = `interfaces.${ifname}.${code === 'DUPLICATE_MAC' ? 'mac_address' : 'ip_address'}`;
  const by = owner === undefined ? 'another system (written at the same time)' : `system ${owner.system} (${owner.ifname})`;
  return new ForgeError(code, `${field}: ${value} is already used by ${by}`, { field });
}

export function overlapError(cidr: string, other: Pick<Subnet, 'name' | 'cidr'>): ForgeError {
  return new ForgeError('SUBNET_OVERLAP', `cidr: ${cidr} overlaps subnet ${other.name} (${other.cidr})`, { field: 'cidr', details: { subnet: other.name, cidr: other.cidr } });
}

export function outsideSubnets(ifname: string, ip: string): ForgeError {
  const field = `interfaces.${ifname}.ip_address`;
  return new ForgeError('OUTSIDE_SUBNETS', `${field}: ${ip} is not inside any stored subnet (forge subnet list)`, { field });
}

export function macExhausted(ifname: string, oui: string): ForgeError {
  return new ForgeError('MAC_EXHAUSTED', `interfaces.${ifname}.mac_address: no free MAC found under ${oui}`, { field: `interfaces.${ifname}.mac_address` });
}

/** An `events` row as either database returns it (PostgreSQL's BIGINT id arrives as a string). */
export interface EventRow {
  id: number | string;
  system: string;
  type: string;
  source: string;
  time: string;
  detail: string;
}

export function rowToEvent(r: EventRow): ForgeEvent {
  return { id: Number(r.id), system: r.system, type: r.type as EventType, source: r.source, time: r.time, detail: JSON.parse(r.detail) as Record<string, unknown> };
}

/** The detail values an EventOnce compares (strings at its keys), as one JSON object. */
export function onceMatch(detail: Record<string, unknown>, once: EventOnce): Record<string, string> {
  const m: Record<string, string> = {};
  for (const k of once.same) {
    const v = detail[k];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new Error(`addEventOnce: detail.${k} must be a string to compare`);
    m[k] = v;
  }
  return m;
}
