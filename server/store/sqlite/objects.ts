/**
 * Distros, profiles and systems: JSON documents next to indexed columns for
 * what is queried (links between objects; interface MACs and IPs in their own
 * table so that a DHCP lookup by MAC is one index probe). Referential rules
 * (unique names, MACs and IPs, references exist, no parent cycles) are
 * checked here, inside the write's transaction.
 */
import type { NewAudit } from '../../core/access.js';
import type Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { ForgeError } from '../../errors.js';
import { randomMac } from '../../core/mac.js';
import type { Distro, KindMap, ObjectKind, Profile, Subnet, System } from '../../core/model.js';
import { parseCidr } from '../../core/subnet.js';
import { ipToInt } from '../../core/ipv4.js';
import type { ExportDocument, ImportCounts, ListFilter, ListPage, RemoveOptions, SystemDoc, WriteOptions } from '../store.js';
import type { WriteQueue } from './queue.js';
import { pageOf, TABLE, duplicateError, isGlob, macExhausted, matchesDoc, orderProfiles, ouiFor, outsideSubnets, overlapError, referencedError, splitFilter, storedAs } from '../common.js';

export { globToRegExp, orderProfiles } from '../common.js';

type DB = Database.Database;

/** What other tables do when a system is renamed or removed (called inside the write). */
export interface SystemHooks {
  systemRenamed(from: string, to: string): void;
  systemRemoved(name: string): void;
  /** A system was written with netboot turned on (created so, or off -> on) or off (on -> off). */
  netbootChanged(name: string, on: boolean): void;
  /** The write's audit row (WriteOptions.audit), inside the write. */
  audited(e: NewAudit): void;
}

export class ObjectRows {
  private readonly st: ReturnType<ObjectRows['prepare']>;

  constructor(
    private readonly db: DB,
    private readonly queue: WriteQueue,
    private readonly hooks: SystemHooks,
  ) {
    this.st = this.prepare();
  }

  private prepare() {
    const d = this.db;
    return {
      get: {
        distro: d.prepare('SELECT data FROM distros WHERE name = ?').pluck(),
        profile: d.prepare('SELECT data FROM profiles WHERE name = ?').pluck(),
        system: d.prepare('SELECT data FROM systems WHERE name = ?').pluck(),
        subnet: d.prepare('SELECT data FROM subnets WHERE name = ?').pluck(),
      },
      exists: {
        distro: d.prepare('SELECT 1 FROM distros WHERE name = ?').pluck(),
        profile: d.prepare('SELECT 1 FROM profiles WHERE name = ?').pluck(),
        system: d.prepare('SELECT 1 FROM systems WHERE name = ?').pluck(),
        subnet: d.prepare('SELECT 1 FROM subnets WHERE name = ?').pluck(),
      },
      insSubnet: d.prepare('INSERT INTO subnets (name, network, broadcast, data) VALUES (?, ?, ?, ?)'),
      updSubnet: d.prepare('UPDATE subnets SET network = ?, broadcast = ?, data = ? WHERE name = ?'),
      subnetOverlap: d.prepare('SELECT name, data FROM subnets WHERE network <= ? AND broadcast >= ? AND name <> ? LIMIT 1'),
      subnetCount: d.prepare('SELECT count(*) FROM subnets').pluck(),
      subnetHolding: d.prepare('SELECT 1 FROM subnets WHERE network < ? AND broadcast > ? LIMIT 1').pluck(),
      insDistro: d.prepare('INSERT INTO distros (name, data) VALUES (?, ?)'),
      insProfile: d.prepare('INSERT INTO profiles (name, distro, parent, data) VALUES (?, ?, ?, ?)'),
      insSystem: d.prepare('INSERT INTO systems (name, profile, data) VALUES (?, ?, ?)'),
      updDistro: d.prepare('UPDATE distros SET data = ? WHERE name = ?'),
      updProfile: d.prepare('UPDATE profiles SET distro = ?, parent = ?, data = ? WHERE name = ?'),
      updSystem: d.prepare('UPDATE systems SET profile = ?, data = ? WHERE name = ?'),
      insIface: d.prepare('INSERT INTO interfaces (system, ifname, mac, ip) VALUES (?, ?, ?, ?)'),
      delIfaces: d.prepare('DELETE FROM interfaces WHERE system = ?'),
      macOwner: d.prepare('SELECT system, ifname FROM interfaces WHERE mac = ?'),
      ipOwner: d.prepare('SELECT system, ifname FROM interfaces WHERE ip = ?'),
      systemByMac: d.prepare('SELECT s.data FROM interfaces i JOIN systems s ON s.name = i.system WHERE i.mac = ?').pluck(),
      systemByIp: d.prepare('SELECT s.data FROM interfaces i JOIN systems s ON s.name = i.system WHERE i.ip = ?').pluck(),
      parentOf: d.prepare('SELECT parent FROM profiles WHERE name = ?').pluck(),
      profilesOfDistro: d.prepare('SELECT name FROM profiles WHERE distro = ?').pluck(),
      childProfiles: d.prepare('SELECT name FROM profiles WHERE parent = ?').pluck(),
      systemsOfProfile: d.prepare('SELECT name FROM systems WHERE profile = ?').pluck(),
    };
  }

  /** Prepared statements by SQL text (list filters repeat the same few shapes). */
  private readonly stmtCache = new Map<string, Database.Statement>();

  private cached(sql: string): Database.Statement {
    let st = this.stmtCache.get(sql);
    if (st === undefined) {
      st = this.db.prepare(sql);
      if (this.stmtCache.size < 256) this.stmtCache.set(sql, st);
    }
    return st;
  }

  // ------------------------------------------------------------------ reads

  private getSync<K extends ObjectKind>(kind: K, name: string): KindMap[K] | undefined {
    const data = this.st.get[kind].get(name) as string | undefined;
    return data === undefined ? undefined : (JSON.parse(data) as KindMap[K]);
  }

  async get<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    return this.getSync(kind, name);
  }

  async mustGet<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K]> {
    const o = this.getSync(kind, name);
    if (o === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${name} does not exist`, { field: 'name' });
    return o;
  }

  /** A filter as SQL conditions and the part checked in JS on the parsed object. */
  private compileFilter(kind: ObjectKind, filter: ListFilter): { where: string[]; params: string[]; js: ReturnType<typeof splitFilter> } {
    const js = splitFilter(kind, filter);
    const where: string[] = [];
    const params: string[] = [];
    for (const [col, glob] of js.columns) {
      where.push(`${col} ${isGlob(glob) ? 'GLOB' : '='} ?`);
      params.push(glob);
    }
    for (const [col, glob] of js.iface) {
      // `=` uses the unique index; GLOB with wildcards scans.
      where.push(`name IN (SELECT system FROM interfaces WHERE ${col} ${isGlob(glob) ? 'GLOB' : '='} ?)`);
      params.push(glob);
    }
    return { where, params, js };
  }

  async systemDocs(q: { after: string; limit: number } | { names: readonly string[] }): Promise<SystemDoc[]> {
    if ('names' in q) {
      const one = this.cached('SELECT name, data FROM systems WHERE name = ?');
      return q.names.flatMap((n) => (one.get(n) as SystemDoc | undefined) ?? []);
    }
    return this.cached('SELECT name, data FROM systems WHERE name > ? ORDER BY name LIMIT ?').all(q.after, q.limit) as SystemDoc[];
  }

  async listPage(kind: ObjectKind, filter: ListFilter, page: ListPage): Promise<{ rows: string[]; next: string | undefined }> {
    const { where, params, js } = this.compileFilter(kind, filter);
    const inJs = js.jsFilters.length > 0 || js.ifaceFilters.length > 0;
    where.push('name > ?');
    const sql = `SELECT name, ${page.names === true && !inJs ? "'' AS data" : 'data'} FROM ${TABLE[kind]} WHERE ${where.join(' AND ')} ORDER BY name LIMIT ?`;
    const rows = this.cached(sql).all(...params, page.after, page.limit) as SystemDoc[];
    return pageOf(rows, page, js);
  }

  async list<K extends ObjectKind>(kind: K, filter: ListFilter = {}): Promise<KindMap[K][]> {
    const { where, params, js } = this.compileFilter(kind, filter);
    const sql = `SELECT data FROM ${TABLE[kind]}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY name`;
    const rows = this.cached(sql).pluck().all(...params) as string[];
    const out: KindMap[K][] = [];
    for (const r of rows) {
      const o = JSON.parse(r) as Record<string, unknown>;
      if (matchesDoc(o, js)) out.push(o as unknown as KindMap[K]);
    }
    return out;
  }

  async listNames(kind: ObjectKind, filter: ListFilter = {}): Promise<string[]> {
    const { where, params, js } = this.compileFilter(kind, filter);
    if (js.jsFilters.length > 0 || js.ifaceFilters.length > 0) return (await this.list(kind, filter)).map((o) => o.name);
    const sql = `SELECT name FROM ${TABLE[kind]}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY name`;
    return this.cached(sql).pluck().all(...params) as string[];
  }

  async findSystemByMac(mac: string): Promise<System | undefined> {
    const data = this.st.systemByMac.get(mac) as string | undefined;
    return data === undefined ? undefined : (JSON.parse(data) as System);
  }

  async findSystemByIp(ip: string): Promise<System | undefined> {
    const data = this.st.systemByIp.get(ip) as string | undefined;
    return data === undefined ? undefined : (JSON.parse(data) as System);
  }

  async macInUse(mac: string): Promise<boolean> {
    return this.st.macOwner.get(mac) !== undefined;
  }

  // ------------------------------------------------------------------ writes (sync cores, run inside transactions)

  /** Subnets may not share an address (one subnet answers each client). */
  private checkSubnetOverlap(s: Subnet): { network: number; broadcast: number } {
    const net = parseCidr(s.cidr);
    if (net === undefined) throw new ForgeError('INVALID_FIELD', `cidr: "${s.cidr}" is not an IPv4 network`, { field: 'cidr' });
    const other = this.st.subnetOverlap.get(net.broadcast, net.network, s.name) as { name: string; data: string } | undefined;
    if (other !== undefined) throw overlapError(net.cidr, JSON.parse(other.data) as Subnet);
    return { network: net.network, broadcast: net.broadcast };
  }

  /**
   * A static interface address must lie in a stored subnet once there are any
   * (checked for addresses new or changed by this write, so a subnet added
   * later does not make unrelated edits of older systems fail; an import
   * restores what was exported and is not checked).
   */
  private checkStaticInSubnets(s: System, old: System | undefined): void {
    if ((this.st.subnetCount.get() as number) === 0) return;
    for (const [ifname, i] of Object.entries(s.interfaces)) {
      if (!i.static || i.ip_address === '') continue;
      const prev = old?.interfaces[ifname];
      if (prev !== undefined && prev.static && prev.ip_address === i.ip_address) continue;
      const ip = ipToInt(i.ip_address);
      if (ip === undefined || this.st.subnetHolding.get(ip, ip) === undefined) {
        throw outsideSubnets(ifname, i.ip_address);
      }
    }
  }

  private checkRefs(kind: ObjectKind, obj: KindMap[ObjectKind]): void {
    if (kind === 'profile') {
      const p = obj as Profile;
      if (p.distro !== '' && this.st.exists.distro.get(p.distro) === undefined) {
        throw new ForgeError('REFERENCE_MISSING', `distro: ${p.distro} does not exist`, { field: 'distro' });
      }
      if (p.parent !== '') {
        if (this.st.exists.profile.get(p.parent) === undefined) {
          throw new ForgeError('REFERENCE_MISSING', `parent: profile ${p.parent} does not exist`, { field: 'parent' });
        }
        // Walk up from the new parent: reaching this profile again is a cycle.
        const seen = new Set<string>();
        let cur: string | undefined = p.parent;
        while (cur !== undefined && cur !== '') {
          if (cur === p.name) {
            throw new ForgeError('PARENT_CYCLE', `parent: ${p.parent} descends from ${p.name}; parents would form a cycle`, {
              field: 'parent',
            });
          }
          if (seen.has(cur)) break;
          seen.add(cur);
          cur = this.st.parentOf.get(cur) as string | undefined;
        }
      }
    } else if (kind === 'system') {
      const s = obj as System;
      if (this.st.exists.profile.get(s.profile) === undefined) {
        throw new ForgeError('REFERENCE_MISSING', `profile: ${s.profile} does not exist`, { field: 'profile' });
      }
    }
  }

  /** Writes the interface rows of a system; resolves `random` MACs (mutates s). */
  private writeInterfaces(s: System, opts: WriteOptions | undefined): void {
    for (const [ifname, i] of Object.entries(s.interfaces)) {
      if (i.mac_address === 'random') {
        const oui = ouiFor(opts?.randomOui, s.name);
        let mac: string | undefined;
        for (let tries = 0; tries < 64 && mac === undefined; tries++) {
          const cand = randomMac(oui, randomBytes(3));
          if (this.st.macOwner.get(cand) === undefined && !Object.values(s.interfaces).some((x) => x.mac_address === cand)) {
            mac = cand;
          }
        }
        if (mac === undefined) throw macExhausted(ifname, oui);
        i.mac_address = mac;
      }
      if (i.mac_address !== '') {
        const owner = this.st.macOwner.get(i.mac_address) as { system: string; ifname: string } | undefined;
        if (owner !== undefined) throw duplicateError('DUPLICATE_MAC', ifname, i.mac_address, owner);
      }
      if (i.ip_address !== '') {
        const owner = this.st.ipOwner.get(i.ip_address) as { system: string; ifname: string } | undefined;
        if (owner !== undefined) throw duplicateError('DUPLICATE_IP', ifname, i.ip_address, owner);
      }
      this.st.insIface.run(s.name, ifname, i.mac_address === '' ? null : i.mac_address, i.ip_address === '' ? null : i.ip_address);
    }
  }

  private createSync<K extends ObjectKind>(kind: K, input: KindMap[K], opts: WriteOptions | undefined, keepTimes: boolean): KindMap[K] {
    const obj = structuredClone(input);
    if (this.st.exists[kind].get(obj.name) !== undefined) {
      throw new ForgeError('DUPLICATE_NAME', `name: a ${kind} named ${obj.name} already exists`, { field: 'name' });
    }
    this.checkRefs(kind, obj);
    const now = new Date().toISOString();
    if (!keepTimes || obj.ctime === '') obj.ctime = now;
    if (!keepTimes || obj.mtime === '') obj.mtime = now;
    if (kind === 'distro') {
      this.st.insDistro.run(obj.name, JSON.stringify(obj));
    } else if (kind === 'profile') {
      const p = obj as Profile;
      this.st.insProfile.run(p.name, p.distro, p.parent, JSON.stringify(p));
    } else if (kind === 'subnet') {
      const n = obj as Subnet;
      const r = this.checkSubnetOverlap(n);
      this.st.insSubnet.run(n.name, r.network, r.broadcast, JSON.stringify(n));
    } else {
      const s = obj as System;
      if (!keepTimes) this.checkStaticInSubnets(s, undefined);
      // Parent row first (interfaces reference it); its data is rewritten
      // once random MACs are resolved.
      this.st.insSystem.run(s.name, s.profile, '{}');
      this.writeInterfaces(s, opts);
      this.st.updSystem.run(s.profile, storedAs(s, JSON.stringify(s)), s.name);
      if (s.netboot_enabled) this.hooks.netbootChanged(s.name, true);
    }
    return obj;
  }

  /** `imported`: an import restores objects as exported (no OUTSIDE_SUBNETS check, see checkStaticInSubnets). */
  private replaceSync<K extends ObjectKind>(kind: K, input: KindMap[K], opts: WriteOptions | undefined, imported = false): KindMap[K] {
    const obj = structuredClone(input);
    const old = this.getSync(kind, obj.name);
    if (old === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${obj.name} does not exist`, { field: 'name' });
    this.checkRefs(kind, obj);
    obj.ctime = old.ctime;
    obj.mtime = new Date().toISOString();
    if (kind === 'distro') {
      this.st.updDistro.run(JSON.stringify(obj), obj.name);
    } else if (kind === 'profile') {
      const p = obj as Profile;
      this.st.updProfile.run(p.distro, p.parent, JSON.stringify(p), p.name);
    } else if (kind === 'subnet') {
      const n = obj as Subnet;
      const r = this.checkSubnetOverlap(n);
      this.st.updSubnet.run(r.network, r.broadcast, JSON.stringify(n), n.name);
    } else {
      const s = obj as System;
      if (!imported) this.checkStaticInSubnets(s, old as System);
      this.st.delIfaces.run(s.name);
      this.writeInterfaces(s, opts);
      this.st.updSystem.run(s.profile, JSON.stringify(s), s.name);
      if (s.netboot_enabled !== (old as System).netboot_enabled) this.hooks.netbootChanged(s.name, s.netboot_enabled);
    }
    return obj;
  }

  /** `r`, after writing the audit row of `opts` (inside the write's transaction). */
  private audited<T>(r: T, opts: WriteOptions | undefined): T {
    if (opts?.audit !== undefined) this.hooks.audited(opts.audit);
    return r;
  }

  async create<K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions): Promise<KindMap[K]> {
    return this.queue.write(() => this.audited(this.createSync(kind, obj, opts, false), opts));
  }

  async bulkCreate<K extends ObjectKind>(kind: K, objs: KindMap[K][], opts?: WriteOptions): Promise<number> {
    const ordered = kind === 'profile' ? orderProfiles(objs as Profile[]) : objs;
    return this.queue.write(() => {
      for (const [i, o] of ordered.entries()) {
        try {
          this.createSync(kind, o as KindMap[K], opts, false);
        } catch (e) {
          if (e instanceof ForgeError) {
            throw new ForgeError(e.code, `item ${i} (${o.name}): ${e.message}`, {
              ...(e.field === undefined ? {} : { field: e.field }),
              details: { index: i, name: o.name },
            });
          }
          throw e;
        }
      }
      return this.audited(ordered.length, opts);
    });
  }

  async replace<K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions): Promise<KindMap[K]> {
    return this.queue.write(() => this.audited(this.replaceSync(kind, obj, opts), opts));
  }

  async update<K extends ObjectKind>(
    kind: K,
    name: string,
    fn: (current: KindMap[K]) => KindMap[K],
    opts?: WriteOptions,
  ): Promise<KindMap[K]> {
    return this.queue.write(() => {
      const cur = this.getSync(kind, name);
      if (cur === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${name} does not exist`, { field: 'name' });
      const next = fn(cur);
      if (next.name !== name) throw new ForgeError('INVALID_FIELD', 'name: cannot be changed by an update; use rename', { field: 'name' });
      return this.audited(this.replaceSync(kind, next, opts), opts);
    });
  }

  async rename(kind: ObjectKind, from: string, to: string): Promise<void> {
    await this.queue.write(() => {
      const obj = this.getSync(kind, from);
      if (obj === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${from} does not exist`, { field: 'name' });
      if (from === to) return;
      if (this.st.exists[kind].get(to) !== undefined) {
        throw new ForgeError('DUPLICATE_NAME', `new_name: a ${kind} named ${to} already exists`, { field: 'new_name' });
      }
      const now = new Date().toISOString();
      obj.name = to;
      obj.mtime = now;
      const t = TABLE[kind];
      this.db.prepare(`UPDATE ${t} SET name = ?, data = ? WHERE name = ?`).run(to, JSON.stringify(obj), from);
      if (kind === 'distro') {
        this.db
          .prepare(`UPDATE profiles SET distro = ?, data = json_set(data, '$.distro', ?) WHERE distro = ?`)
          .run(to, to, from);
      } else if (kind === 'profile') {
        this.db
          .prepare(`UPDATE profiles SET parent = ?, data = json_set(data, '$.parent', ?) WHERE parent = ?`)
          .run(to, to, from);
        this.db
          .prepare(`UPDATE systems SET profile = ?, data = json_set(data, '$.profile', ?) WHERE profile = ?`)
          .run(to, to, from);
      } else if (kind === 'system') {
        // interfaces follow through ON UPDATE CASCADE
        this.hooks.systemRenamed(from, to);
      }
    });
  }

  async remove(kind: ObjectKind, name: string, opts: RemoveOptions = {}): Promise<string[]> {
    return this.queue.write(() => {
      if (this.st.exists[kind].get(name) === undefined) {
        throw new ForgeError('NOT_FOUND', `${kind} ${name} does not exist`, { field: 'name' });
      }
      // Collect dependants depth first, children before parents.
      const order: [ObjectKind, string][] = [];
      const visit = (k: ObjectKind, n: string): void => {
        if (k === 'distro') {
          for (const p of this.st.profilesOfDistro.all(n) as string[]) visit('profile', p);
        } else if (k === 'profile') {
          for (const p of this.st.childProfiles.all(n) as string[]) visit('profile', p);
          for (const s of this.st.systemsOfProfile.all(n) as string[]) visit('system', s);
        }
        order.push([k, n]);
      };
      visit(kind, name);
      if (order.length > 1 && opts.recursive !== true) {
        const { message, deps } = referencedError(kind, name, order);
        throw new ForgeError('REFERENCED', message, {
          field: 'name',
          details: { referenced_by: deps.slice(0, 1000) },
        });
      }
      for (const [k, n] of order) {
        this.cached(`DELETE FROM ${TABLE[k]} WHERE name = ?`).run(n);
        if (k === 'system') this.hooks.systemRemoved(n);
      }
      return order.map(([k, n]) => `${k} ${n}`);
    });
  }

  // ------------------------------------------------------------------ export / import

  async exportAll(): Promise<ExportDocument> {
    return this.db.transaction(() => {
      const all = <K extends ObjectKind>(k: K): KindMap[K][] =>
        (this.db.prepare(`SELECT data FROM ${TABLE[k]} ORDER BY name`).pluck().all() as string[]).map(
          (d) => JSON.parse(d) as KindMap[K],
        );
      return {
        forge_export: 1 as const,
        exported: new Date().toISOString(),
        distros: all('distro'),
        profiles: all('profile'),
        systems: all('system'),
        subnets: all('subnet'),
      };
    })();
  }

  async importAll(
    doc: ExportDocument,
    opts: { replace?: boolean } = {},
  ): Promise<ImportCounts> {
    return this.queue.write(() => {
      const put = <K extends ObjectKind>(k: K, o: KindMap[K]): void => {
        if (opts.replace === true && this.st.exists[k].get(o.name) !== undefined) {
          const t = o.ctime;
          const m = o.mtime;
          const r = this.replaceSync(k, o, undefined, true);
          if (t !== '') r.ctime = t;
          if (m !== '') r.mtime = m;
          this.rewriteData(k, r);
        } else {
          this.createSync(k, o, undefined, true);
        }
      };
      // Subnets first: static interface addresses are checked against them.
      for (const n of doc.subnets ?? []) put('subnet', n);
      for (const d of doc.distros) put('distro', d);
      for (const p of orderProfiles(doc.profiles)) put('profile', p);
      for (const s of doc.systems) put('system', s);
      return { distros: doc.distros.length, profiles: doc.profiles.length, systems: doc.systems.length, subnets: doc.subnets?.length ?? 0 };
    });
  }

  private rewriteData<K extends ObjectKind>(kind: K, obj: KindMap[K]): void {
    this.db.prepare(`UPDATE ${TABLE[kind]} SET data = ? WHERE name = ?`).run(JSON.stringify(obj), obj.name);
  }
}
