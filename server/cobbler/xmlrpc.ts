/**
 * Cobbler's XML-RPC API at /cobbler_api, for the clients that talk to it:
 * koan (never logs in: ping, get_*, get_*_as_rendered, get_*_for_koan),
 * Ansible's community.general.cobbler_system / cobbler_sync and scripts
 * (version, login, token_check, find_*, get_*_handle, new_X, modify_X, save_X,
 * remove_*, sync). Shapes follow Cobbler 3.3's remote.py (cobbler/shapes.ts);
 * the method table below is the whole surface: anything else is a fault
 * naming the method.
 *
 * Policy:
 * - reads are anonymous, as in Cobbler; every write needs the token `login`
 *   returns, checked on every call (Cobbler once let writes through without
 *   one: CVE-2018-1000226);
 * - `login(user, password)` succeeds when the password is forge's API token
 *   (DATA_DIR/token); the user name is not checked (forge has one
 *   credential, not users); the session token it returns is the forge token;
 * - anonymous reads go through `readView`, the one place where forge's rules
 *   for secrets apply to this API;
 * - an unknown name in get_X_as_rendered or get_X_for_koan answers {} (koan says
 *   "No entry/entries found"), in get_<kind> '~' (Cobbler's None);
 * - edits are kept per handle until save_*, then written in one store
 *   transaction (all or nothing, validated like the REST API); pending
 *   handles are bounded in number and age.
 */
import { randomBytes } from 'node:crypto';
import { Router, text } from 'express';
import type { Request, Response } from 'express';
import type { Settings } from '../core/model.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { blendProfile, blendSystem } from '../core/blend.js';
import type { Vars } from '../core/blend.js';
import type { Distro, ForgeObject, KindMap, ObjectKind, Profile, System } from '../core/model.js';
import type { ForgeConfig } from '../config.js';
import { assertDistroConfined, bootRootsOf } from '../boot/confine.js';
import { OBJECT_KINDS } from '../core/model.js';
import { validateNew, validatePatch } from '../core/validate.js';
import { FIELDS, INTERFACE_FIELDS } from '../core/fields.js';
import { filterRefusal, redact, redactVars } from '../core/secrets.js';
import { POWER_TYPE_MAP } from './import.js';
import { VERSION } from '../core/version.js';
import { ForgeError } from '../errors.js';
import { chainOf } from '../catalog.js';
import { clientOf, type Auth } from '../auth.js';
import { allows, type TokenPrincipal } from '../core/access.js';
import { decodeCall, encodeFault, encodeResponse, XmlRpcDecodeError } from '../protocol/xmlrpc/codec.js';
import type { XmlRpcValue } from '../protocol/xmlrpc/codec.js';
import type { ListFilter } from '../store/store.js';
import { rawRecord, renderedRecord, stripNone } from './shapes.js';
import type { CobblerRecord } from './shapes.js';

/** Largest request body accepted (the endpoint is anonymous; koan's and Ansible's calls are a few KiB). */
export const XMLRPC_BODY_LIMIT = 256 * 1024;
/** The Cobbler API level forge answers as (remote.py version(): major + minor/10). */
export const COBBLER_API_VERSION = 3.3;
const MAX_PENDING = 1000;
const PENDING_TTL_MS = 60 * 60 * 1000;

/** Fault codes: Cobbler answers every error with faultCode 1; forge keeps 1 and says what went wrong. */
const FAULT = 1;

export class Fault extends Error {}

interface Pending {
  kind: ObjectKind;
  /** Existing object's name, or undefined for new_* */
  name: string | undefined;
  patch: Record<string, unknown>;
  at: number;
}

/** Cobbler's pre-3.0 attribute names that clients still send. */
const ALIASES: Record<string, string> = {
  kickstart: 'autoinstall',
  ks_meta: 'autoinstall_meta',
  kopts: 'kernel_options',
  kopts_post: 'kernel_options_post',
  kernel_options_post: 'kernel_options_post',
};

/** modify_interface keys: Cobbler strips _ and - from the field part (items/network_interface.py). */
const IFACE_KEYS: Record<string, keyof typeof INTERFACE_FIELDS> = {
  macaddress: 'mac_address',
  ipaddress: 'ip_address',
  netmask: 'netmask',
  ifgateway: 'if_gateway',
  static: 'static',
  dnsname: 'dns_name',
  mtu: 'mtu',
  interfacetype: 'interface_type',
  interfacemaster: 'interface_master',
  bondingopts: 'bonding_opts',
  staticroutes: 'static_routes',
};

function why(field: string): string {
  if (field.startsWith('power_')) return 'not a power field forge drives (power_type, power_address, power_user, power_pass, power_id)';
  if (field.startsWith('ipv6')) return 'forge configures IPv4 only';
  return 'forge has no such field';
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Fault(`${what} must be a string`);
  return v;
}

/**
 * The read view of an object for this caller. Authenticated callers see
 * everything; anonymous ones (koan) get what forge's REST API shows an
 * anonymous reader. Kept as one function so forge's secret rules apply here
 * and in REST alike.
 */
export function readView(kind: ObjectKind, o: ForgeObject, authenticated: boolean): CobblerRecord {
  // Redacted before the Cobbler shape: that shape flattens autoinstall_meta into an `a=b c=d` string.
  return stripNone(rawRecord(kind, authenticated ? o : redact(kind, o))) as CobblerRecord;
}

/** What the XML-RPC API uses. */
export interface CobblerApiDeps {
  store: Store;
  settings: Settings;
  /** Tokens and roles (api/auth.ts): login's password is any API token; writes need an admin one. */
  auth: Auth;
  log: Logger;
  /** boot_roots and data_dir: distro files are confined (boot/confine.ts), as on the REST API. */
  config: Pick<ForgeConfig, 'boot_roots' | 'data_dir'>;
}

export class CobblerApi {
  private readonly pending = new Map<string, Pending>();
  constructor(private readonly ctx: CobblerApiDeps) {}

  /** The token's principal (undefined: no such token). */
  async principal(token: unknown): Promise<TokenPrincipal | undefined> {
    return typeof token === 'string' && token !== '' ? this.ctx.auth.principalOf(token) : undefined;
  }

  /** A read or admin token: reads show secrets. */
  private async authed(token: unknown): Promise<boolean> {
    const p = await this.principal(token);
    return p !== undefined && allows(p, 'read');
  }

  private async requireToken(token: unknown): Promise<void> {
    const p = await this.principal(token);
    if (p === undefined) throw new Fault('invalid token: log in with login(user, FORGE_TOKEN) and pass the token it returns');
    if (!allows(p, 'admin')) throw new Fault(`token ${p.id} has role ${p.role}: writes need an admin token`);
  }

  private kindOf(what: unknown): ObjectKind | 'repo' | 'image' | 'menu' {
    const w = str(what, 'the object type');
    // Cobbler has no subnet objects: its API keeps to the three it knows.
    if (w !== 'subnet' && (OBJECT_KINDS as readonly string[]).includes(w)) return w as ObjectKind;
    if (w === 'repo' || w === 'image' || w === 'menu') return w;
    throw new Fault(`forge has no ${w} objects (distro, profile, system; repo, image and menu lists are empty)`);
  }

  async getItems(what: unknown, token?: unknown): Promise<CobblerRecord[]> {
    const kind = this.kindOf(what);
    if (kind === 'repo' || kind === 'image' || kind === 'menu') return [];
    const authed = (await this.authed(token));
    return (await this.ctx.store.list(kind)).map((o) => readView(kind, o, authed));
  }

  async getItem(what: unknown, name: unknown, token?: unknown): Promise<CobblerRecord | string> {
    const kind = this.kindOf(what);
    if (kind === 'repo' || kind === 'image' || kind === 'menu') return '~';
    const o = await this.ctx.store.get(kind, str(name, 'name'));
    return o === undefined ? '~' : readView(kind, o, (await this.authed(token)));
  }

  async findItems(what: unknown, criteria: unknown, expand: unknown, token?: unknown): Promise<(CobblerRecord | string)[]> {
    const kind = this.kindOf(what);
    if (kind === 'repo' || kind === 'image' || kind === 'menu') return [];
    const filter: ListFilter = {};
    if (criteria !== undefined && criteria !== null && criteria !== '~') {
      if (typeof criteria !== 'object' || Array.isArray(criteria) || Buffer.isBuffer(criteria)) throw new Fault('criteria must be a struct of field: glob');
      for (const [k0, v] of Object.entries(criteria as Record<string, unknown>)) {
        const k = ALIASES[k0] ?? k0;
        const known = k in FIELDS[kind] || (kind === 'system' && (k === 'mac_address' || k === 'ip_address'));
        if (!known) throw new Fault(`find_${kind}: ${k0}: ${why(k0)} to search on`);
        const refused = filterRefusal(kind, k, (await this.authed(token)) || (await this.authed(expand)));
        if (refused !== undefined) throw new Fault(`find_${kind}: ${k0}: ${refused}`);
        filter[k] = k === 'mac_address' ? String(v).toLowerCase() : String(v);
      }
    }
    // Cobbler: find_<kind>(criteria, expand, token); Ansible passes the token as
    // `expand`, which is truthy and so asks for whole records.
    const full = expand !== undefined && expand !== false && expand !== 0 && expand !== '' && expand !== '~';
    if (!full) return (await this.ctx.store.listNames(kind, filter)).sort();
    const authed = (await this.authed(token)) || (await this.authed(expand));
    return (await this.ctx.store.list(kind, filter)).map((o) => readView(kind, o, authed));
  }

  private async blendBoth(kind: 'system' | 'profile', obj: ForgeObject): Promise<{ vars: Vars; plain: Vars }> {
    const { settings, store } = this.ctx;
    const profileName = kind === 'system' ? (obj as System).profile : obj.name;
    const chain = await chainOf(store, profileName);
    const noMeta = <T extends { autoinstall_meta: unknown }>(x: T): T => ({ ...x, autoinstall_meta: {} });
    const plainSettings = { ...settings, autoinstall_meta: {} };
    if (kind === 'system') {
      const s = obj as System;
      const subnets = await store.list('subnet');
      return {
        vars: blendSystem(s, chain.profiles, chain.distro, settings, subnets),
        plain: blendSystem(noMeta(s), chain.profiles.map(noMeta), noMeta(chain.distro), plainSettings, subnets),
      };
    }
    return {
      vars: blendProfile(chain.profiles, chain.distro, settings),
      plain: blendProfile(chain.profiles.map((p: Profile) => noMeta(p)), noMeta(chain.distro), plainSettings),
    };
  }

  async rendered(kind: 'system' | 'profile', name: unknown, token?: unknown): Promise<CobblerRecord> {
    const o = await this.ctx.store.get(kind, str(name, 'name'));
    if (o === undefined) return {};
    const { vars, plain } = await this.blendBoth(kind, o);
    if ((await this.authed(token))) return renderedRecord(kind, vars, plain, o);
    return renderedRecord(kind, redactVars(vars), redactVars(plain), redact(kind, o));
  }

  async blendedData(profile: unknown, system: unknown, token?: unknown): Promise<CobblerRecord> {
    const p = typeof profile === 'string' && profile !== '' && profile !== '~' ? profile : undefined;
    const s = typeof system === 'string' && system !== '' && system !== '~' ? system : undefined;
    if (p === undefined && s === undefined) throw new Fault('internal error, no system or profile specified');
    const kind = p !== undefined ? 'profile' : 'system';
    const r = await this.rendered(kind, p ?? s, token);
    if (Object.keys(r).length === 0) throw new Fault(`${kind} not found: ${p ?? s ?? ''}`);
    return r;
  }

  // ------------------------------------------------------------- editing

  private sweep(): void {
    const now = Date.now();
    for (const [k, p] of this.pending) if (now - p.at > PENDING_TTL_MS) this.pending.delete(k);
  }

  private newHandle(kind: ObjectKind, name: string | undefined): string {
    this.sweep();
    if (this.pending.size >= MAX_PENDING) throw new Fault(`more than ${MAX_PENDING} unsaved edits are open; save or wait an hour`);
    const key = name === undefined ? `___NEW___${kind}::${randomBytes(12).toString('hex')}` : `${kind}::${name}::${randomBytes(6).toString('hex')}`;
    this.pending.set(key, { kind, name, patch: {}, at: Date.now() });
    return key;
  }

  async handle(kind: ObjectKind, name: unknown, token: unknown): Promise<string> {
    // Cobbler >= 3.4 drops the token here (Ansible then calls get_system_handle(name)).
    if (token !== undefined) await this.requireToken(token);
    const n = str(name, 'name');
    if ((await this.ctx.store.get(kind, n)) === undefined) throw new Fault(`internal error, unknown ${kind} name ${n}`);
    return this.newHandle(kind, n);
  }

  async newItem(kind: ObjectKind, token: unknown): Promise<string> {
    await this.requireToken(token);
    return this.newHandle(kind, undefined);
  }

  private pendingFor(kind: ObjectKind, id: unknown): Pending {
    const p = this.pending.get(str(id, 'object id'));
    if (p === undefined || p.kind !== kind) throw new Fault(`no open ${kind} edit ${String(id)} (get a handle with new_${kind} or get_${kind}_handle)`);
    p.at = Date.now();
    return p;
  }

  private async currentInterfaces(p: Pending): Promise<Record<string, unknown>> {
    const stored = p.name === undefined ? undefined : ((await this.ctx.store.get('system', p.name)) as System | undefined);
    const base: Record<string, unknown> = stored === undefined ? {} : structuredClone(stored.interfaces) as unknown as Record<string, unknown>;
    const pi = (p.patch['interfaces'] ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(pi)) {
      if (v === null) delete base[k];
      else base[k] = { ...((base[k] as Record<string, unknown> | undefined) ?? {}), ...(v as Record<string, unknown>) };
    }
    return base;
  }

  async modify(kind: ObjectKind, id: unknown, attribute: unknown, arg: unknown, token: unknown): Promise<boolean> {
    await this.requireToken(token);
    const p = this.pendingFor(kind, id);
    const attr0 = str(attribute, 'attribute').replace(/-/g, '_');
    if (kind === 'system' && attr0 === 'modify_interface') {
      if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) throw new Fault('modify_interface takes a struct {"macaddress-eth0": "..."}');
      const ifs = (p.patch['interfaces'] ?? {}) as Record<string, Record<string, unknown> | null>;
      for (const [key, v] of Object.entries(arg as Record<string, unknown>)) {
        const dash = key.indexOf('-');
        if (dash <= 0) throw new Fault(`modify_interface: ${key}: keys are FIELD-INTERFACE, e.g. macaddress-eth0`);
        const f = key.slice(0, dash).replace(/[-_]/g, '').toLowerCase();
        const ifname = key.slice(dash + 1);
        const field = IFACE_KEYS[f];
        if (field === undefined) {
          if (f === 'virtbridge') {
            p.patch['virt_bridge'] = v;
            continue;
          }
          throw new Fault(`modify_interface: ${key}: ${why(f)} (forge interface fields: ${Object.keys(IFACE_KEYS).join(', ')}, virtbridge)`);
        }
        ifs[ifname] = { ...(ifs[ifname] ?? {}), [field]: v };
      }
      p.patch['interfaces'] = ifs;
      return true;
    }
    if (kind === 'system' && attr0 === 'delete_interface') {
      const ifname = typeof arg === 'string' ? arg : str((arg as Record<string, unknown> | null)?.['interface'], 'interface');
      const ifs = (p.patch['interfaces'] ?? {}) as Record<string, unknown>;
      ifs[ifname] = null;
      p.patch['interfaces'] = ifs;
      return true;
    }
    if (kind === 'system' && attr0 === 'rename_interface') {
      const a = (arg ?? {}) as Record<string, unknown>;
      const from = str(a['interface'], 'interface');
      const to = str(a['rename_interface'], 'rename_interface');
      const cur = await this.currentInterfaces(p);
      if (cur[from] === undefined) throw new Fault(`rename_interface: no interface ${from}`);
      const ifs = (p.patch['interfaces'] ?? {}) as Record<string, unknown>;
      ifs[to] = cur[from];
      ifs[from] = null;
      p.patch['interfaces'] = ifs;
      return true;
    }
    const attr = ALIASES[attr0] ?? attr0;
    if (attr === 'name' && p.name !== undefined) {
      if (arg !== p.name) throw new Fault(`name: forge renames with forge ${kind} rename (or POST /api/v1/${kind}s/NAME/rename), not modify`);
      return true;
    }
    if (!(attr in FIELDS[kind]) || FIELDS[kind][attr]?.readonly === true) {
      if (kind === 'system' && attr in INTERFACE_FIELDS) throw new Fault(`${attr}: an interface field: use modify_interface {"${attr.replace(/_/g, '')}-eth0": ...}`);
      throw new Fault(`${kind} ${attr0}: ${why(attr0)}`);
    }
    // Cobbler's fence-agent names for power_type (ipmilanplus, virsh, ...) -> forge's drivers.
    if (attr === 'power_type' && typeof arg === 'string') {
      const t = arg === '' ? 'none' : POWER_TYPE_MAP[arg] ?? arg;
      p.patch[attr] = t;
      return true;
    }
    p.patch[attr] = arg === '~' ? '' : arg;
    return true;
  }

  async save(kind: ObjectKind, id: unknown, token: unknown): Promise<boolean> {
    await this.requireToken(token);
    const key = str(id, 'object id');
    const p = this.pendingFor(kind, key);
    try {
      if (p.name === undefined) {
        const obj = validateNew(kind, p.patch) as KindMap[typeof kind];
        if (kind === 'distro') assertDistroConfined(obj as Distro, bootRootsOf(this.ctx.config));
        await this.ctx.store.create(kind, obj);
      } else {
        const patch = p.patch;
        await this.ctx.store.update(kind, p.name, (cur) => {
          const next = validatePatch(kind, cur, patch);
          if (kind === 'distro') assertDistroConfined(next as Distro, bootRootsOf(this.ctx.config));
          return next;
        });
      }
    } catch (e) {
      if (e instanceof ForgeError) throw new Fault(`${e.code}: ${e.message}`);
      throw e;
    }
    this.pending.delete(key);
    return true;
  }

  async remove(kind: ObjectKind, name: unknown, token: unknown, recursive: unknown): Promise<boolean> {
    await this.requireToken(token);
    try {
      await this.ctx.store.remove(kind, str(name, 'name'), { recursive: recursive === undefined || recursive === true || recursive === 1 });
    } catch (e) {
      if (e instanceof ForgeError) throw new Fault(`${e.code}: ${e.message}`);
      throw e;
    }
    return true;
  }

  settings(): CobblerRecord {
    const s = this.ctx.settings;
    return stripNone({
      server: s.server.replace(/:\d+$/, ''),
      http_port: s.http_port,
      next_server_v4: s.next_server,
      pxe_just_once: s.pxe_just_once,
      default_name_servers: s.default_name_servers,
      default_name_servers_search: s.default_name_servers_search,
      default_virt_type: s.default_virt_type,
      default_virt_ram: s.default_virt_ram,
      default_virt_file_size: s.default_virt_file_size,
      default_virt_bridge: s.default_virt_bridge,
      default_virt_disk_driver: s.default_virt_disk_driver,
      kernel_options: s.kernel_options,
    }) as CobblerRecord;
  }

  /** The method table: every call forge answers. */
  async call(method: string, a: XmlRpcValue[]): Promise<unknown> {
    const per = /^(get|find|new|modify|save|remove)_(distro|profile|system|repo|image|menu)(s|_handle|_as_rendered|_for_koan)?$/.exec(method);
    switch (method) {
      case 'ping':
        return true;
      case 'version':
        return COBBLER_API_VERSION;
      case 'extended_version':
        return { version: '3.3.0', version_tuple: [3, 3, 0], gitdate: '', gitstamp: '', builddate: '', forge: VERSION };
      case 'login':
        if (typeof a[1] !== 'string' || (await this.principal(a[1])) === undefined) throw new Fault(`login failed (${typeof a[0] === 'string' ? a[0] : ''}): the password is a forge API token (DATA_DIR/token or forge token create)`);
        return a[1];
      case 'logout':
        return true;
      case 'token_check':
        return (await this.authed(a[0]));
      case 'check_access':
      case 'check_access_no_fail':
        return (await this.authed(a[0])) ? 1 : 0;
      case 'sync':
      case 'sync_dhcp':
        await this.requireToken(a[0]);
        this.ctx.log.info('XML-RPC sync: nothing to do (forge makes boot files, DHCP answers and autoinstall files when machines ask)', { method });
        return true;
      case 'get_settings':
        return this.settings();
      case 'get_items':
        return this.getItems(a[0], a[1]);
      case 'get_item':
        return this.getItem(a[0], a[1], a[4]);
      case 'get_item_names':
        return (await this.getItems(a[0])).map((r) => r['name']);
      case 'find_items':
        return this.findItems(a[0], a[1], a[3] ?? true);
      case 'get_item_handle':
        return this.handle(this.objectKind(a[0]), a[1], a[2]);
      case 'get_blended_data':
        return this.blendedData(a[0], a[1]);
      default:
        break;
    }
    if (per !== null) {
      const [, verb, what, suffix] = per as unknown as [string, string, 'distro' | 'profile' | 'system' | 'repo' | 'image' | 'menu', string | undefined];
      if (verb === 'get' && suffix === 's') return this.getItems(what, a[2]);
      if (verb === 'get' && suffix === undefined) return this.getItem(what, a[0], a[3]);
      if (verb === 'get' && (suffix === '_as_rendered' || suffix === '_for_koan')) {
        if (what === 'system' || what === 'profile') return this.rendered(what, a[0], a[1]);
        if (what === 'distro') {
          const d = await this.getItem('distro', a[0], a[1]);
          return typeof d === 'string' ? {} : d;
        }
        return {};
      }
      if (verb === 'get' && suffix === '_handle') return this.handle(this.objectKind(what), a[0], a[1]);
      if (verb === 'find' && suffix === undefined) return this.findItems(what, a[0], a[1], a[2]);
      const k = this.objectKind(what);
      if (verb === 'new' && suffix === undefined) return this.newItem(k, a[0]);
      if (verb === 'modify' && suffix === undefined) return this.modify(k, a[0], a[1], a[2], a[3]);
      if (verb === 'save' && suffix === undefined) return this.save(k, a[0], a[1]);
      if (verb === 'remove' && suffix === undefined) return this.remove(k, a[0], a[1], a[2]);
    }
    if (method === 'new_subprofile') return this.newItem('profile', a[0]);
    throw new Fault(`method ${method} is not supported by forge's Cobbler API (README: Migrating from Cobbler)`);
  }

  private objectKind(what: unknown): ObjectKind {
    const k = this.kindOf(what);
    if (k === 'repo' || k === 'image' || k === 'menu') throw new Fault(`forge has no ${k} objects to edit`);
    return k;
  }
}

/** POST /cobbler_api: decode, call, encode; every failure is an XML-RPC fault, never a crash. */
/** XML-RPC methods that change something (audited like REST writes). */
const XMLRPC_WRITE = /^(new|modify|save|remove|copy|rename)_|^(sync|sync_dhcp|xapi_object_edit|background_\w+|power_system)$/;

/** The audit entry of a successful XML-RPC write: the principal of the token among its parameters. */
async function auditCall(api: CobblerApi, ctx: CobblerApiDeps, req: Request, method: string, params: XmlRpcValue[]): Promise<void> {
  let p: TokenPrincipal | undefined;
  for (const v of params) if (typeof v === 'string' && (p = await api.principal(v)) !== undefined) break;
  if (p === undefined) return;
  const m = /_(distro|profile|system)$/.exec(method);
  const name = params.find((v): v is string => typeof v === 'string' && !/^forge_|^[A-Za-z0-9_-]{32,}$/.test(v) && !v.startsWith('___'));
  await ctx.store
    .addAudit({ actor: p.id, role: p.role, client: clientOf(req), action: `xmlrpc ${method}`, object_type: m?.[1] ?? '', object: m !== null ? name ?? '' : '', detail: {} })
    .catch(() => undefined);
}

export function cobblerApiRouter(ctx: CobblerApiDeps): Router {
  const api = new CobblerApi(ctx);
  const log = ctx.log.child('xmlrpc');
  const r = Router();
  const body = text({ type: () => true, limit: XMLRPC_BODY_LIMIT });
  const reply = (res: Response, xml: string): void => {
    res.type('text/xml').send(xml);
  };
  r.post('/cobbler_api', (req: Request, res: Response, next) => {
    body(req, res, (err?: unknown) => {
      if (err !== undefined) {
        const tooLarge = (err as { type?: unknown }).type === 'entity.too.large';
        res.setHeader('Connection', 'close');
        res.status(tooLarge ? 413 : 400);
        reply(res, encodeFault(FAULT, tooLarge ? `request body larger than ${XMLRPC_BODY_LIMIT} bytes` : `unreadable request body: ${String((err as Error).message)}`));
        return;
      }
      void (async () => {
        let method = '?';
        try {
          const raw: unknown = req.body;
          const call = decodeCall(typeof raw === 'string' ? raw : '');
          method = call.method;
          const result = await api.call(call.method, call.params);
          if (XMLRPC_WRITE.test(call.method)) await auditCall(api, ctx, req, call.method, call.params);
          reply(res, encodeResponse(stripNone(result) as XmlRpcValue));
        } catch (e) {
          if (e instanceof Fault || e instanceof XmlRpcDecodeError) {
            reply(res, encodeFault(FAULT, e instanceof XmlRpcDecodeError ? `not an XML-RPC call: ${e.message}` : e.message));
            return;
          }
          if (e instanceof ForgeError) {
            reply(res, encodeFault(FAULT, `${e.code}: ${e.message}`));
            return;
          }
          log.error('XML-RPC call failed', { method, err: e instanceof Error ? e.stack ?? e.message : String(e) });
          reply(res, encodeFault(FAULT, 'internal error (see the forge server log)'));
        }
      })().catch(next);
    });
  });
  r.all('/cobbler_api', (_req, res) => {
    res.status(405).setHeader('Allow', 'POST');
    reply(res, encodeFault(FAULT, 'XML-RPC calls are POST requests'));
  });
  return r;
}
