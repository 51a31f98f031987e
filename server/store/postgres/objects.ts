/**
 * Distros, profiles and systems in PostgreSQL: JSON documents (TEXT, so a
 * document comes back byte for byte as written, key order included) next to
 * columns for what is queried. Each write first checks what it can in the
 * transaction, for messages that name the owner; the constraints of
 * postgres/migrations.ts are the final word when another server's
 * concurrent write passed the same check (the loser gets the same
 * DUPLICATE_* / REFERENCE_MISSING / PARENT_CYCLE error).
 */
import { randomBytes } from 'node:crypto';
import { ForgeError } from '../../errors.js';
import { randomMac } from '../../core/mac.js';
import type { Distro, KindMap, ObjectKind, Profile, Subnet, System } from '../../core/model.js';
import type { ExportDocument, ImportCounts, ListFilter, ListPage, RemoveOptions, SystemDoc, WriteOptions } from '../store.js';
import { ipToInt } from '../../core/ipv4.js';
import { parseCidr } from '../../core/subnet.js';
import { pageOf, TABLE, duplicateError, isGlob, macExhausted, matchesDoc, orderProfiles, ouiFor, outsideSubnets, overlapError, referencedError, splitFilter, storedAs } from '../common.js';
import { pgCode, type Client, type Db } from './db.js';
import { newInstallToken } from '../sqlite/access.js';
import { GroupWriter } from './batch.js';
import { AUDIT_COLS, auditRow } from './access.js';
import type { NewAudit } from '../../core/access.js';

/** SQLite GLOB (`*`, `?`, `[...]`, `[^...]`) as an anchored PostgreSQL regular expression (9.7.3). */
export function globToPgRegex(glob: string): string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += ch.replace(/[.+^${}()|\]\\]/g, '\\$&');
  }
  return `^${re}$`;
}

const nul = (v: string): string | null => (v === '' ? null : v);

/**
 * New systems (and their interfaces and open install windows) in one
 * statement: the data-modifying CTEs run as one (PostgreSQL docs 7.8.4), the
 * foreign keys and unique constraints are checked at its end, and it is its
 * own transaction, with the adds' audit rows (WriteOptions.audit) in it. `chk` is the OUTSIDE_SUBNETS rule of checkStaticInSubnets
 * (no subnet stored, or every static address strictly inside one); when it
 * fails nothing is written and the count is short, so the caller takes the
 * checked path, whose error names the field.
 */
const FAST_INSERT = `
  WITH chk AS (
    SELECT NOT EXISTS (SELECT 1 FROM subnets)
        OR NOT EXISTS (SELECT 1 FROM unnest($8::bigint[]) AS a(ip) WHERE NOT EXISTS (SELECT 1 FROM subnets WHERE network < a.ip AND broadcast > a.ip)) AS ok
  ), s AS (
    INSERT INTO systems (name, profile, data) SELECT x.name, x.profile, x.data FROM chk, unnest($1::text[], $2::text[], $3::text[]) AS x(name, profile, data) WHERE chk.ok RETURNING name
  ), i AS (
    INSERT INTO interfaces (system, ifname, mac, ip) SELECT x.system, x.ifname, x.mac, x.ip FROM chk, unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS x(system, ifname, mac, ip) WHERE chk.ok
  ), w AS (
    INSERT INTO install_windows (system, token, opened, closed) SELECT x.system, x.token, $11, NULL FROM chk, unnest($9::text[], $10::text[]) AS x(system, token) WHERE chk.ok
  ), a AS (
    INSERT INTO audit (${AUDIT_COLS}) SELECT x.* FROM chk, unnest($12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[]) AS x WHERE chk.ok
  )
  SELECT count(*) AS n FROM s`;

/**
 * FAST_INSERT's parameters for `input` (cloned, times set), or undefined when
 * a system needs what only the checked path does (a `random` MAC to choose,
 * an address that is not IPv4).
 */
interface InsertRows {
  objs: System[];
  values: unknown[];
}

/**
 * What JSON.stringify would escape differently from an array literal: a control character (JSON
 * text never holds one raw, but say so rather than assume) or a UTF-16 surrogate (JSON.stringify
 * writes a lone one as \uXXXX; an emoji's pair is left to the driver too, to keep the rule short).
 */
const NOT_PLAIN = /[\u0000-\u001f\ud800-\udfff]/;

/**
 * A text[] parameter as PostgreSQL's array literal (docs 8.15.2: each element double-quoted, `"`
 * and `\` backslash-escaped), made with JSON.stringify: for a string without control characters
 * that is exactly the quoting the pg driver's arrayString does with two regex passes per element,
 * which over each system's JSON document was a third of the driver's CPU per API add (issue 19
 * profile). Items with a control character or a surrogate are left to the driver.
 */
export function textArrayLiteral(items: readonly string[]): string | readonly string[] {
  let out = '{';
  for (let i = 0; i < items.length; i++) {
    const v = items[i]!;
    if (NOT_PLAIN.test(v)) return items;
    out += (i === 0 ? '' : ',') + JSON.stringify(v);
  }
  return out + '}';
}

/** FAST_INSERT's values with the documents column (the largest strings) as one literal. */
function withDocsLiteral(values: readonly unknown[]): unknown[] {
  const out = [...values];
  out[2] = textArrayLiteral(values[2] as string[]);
  return out;
}

/** Several InsertRows as one FAST_INSERT (column arrays end to end; the time of the first). */
function joinRows(parts: readonly InsertRows[]): unknown[] {
  if (parts.length === 1) return parts[0]!.values;
  const out = parts[0]!.values.map((v, i) => (Array.isArray(v) ? parts.flatMap((p) => p.values[i] as unknown[]) : v));
  return out;
}

function insertRows(input: readonly System[], audit?: NewAudit): InsertRows | undefined {
  const now = new Date().toISOString();
  const cols: [string[], string[], string[], string[], string[], (string | null)[], (string | null)[], number[], string[], string[]] = [[], [], [], [], [], [], [], [], [], []];
  const objs: System[] = [];
  for (const o of input) {
    // A copy with its own times; its interfaces are only read here, so they are shared, not
    // cloned (a structuredClone per add was 6 % of an API add's CPU, issue 19 profile).
    const s: System = { ...o, ctime: now, mtime: now };
    for (const [ifname, i] of Object.entries(s.interfaces)) {
      if (i.mac_address === 'random') return undefined;
      if (i.static && i.ip_address !== '') {
        const ip = ipToInt(i.ip_address);
        if (ip === undefined) return undefined;
        cols[7].push(ip);
      }
      cols[3].push(s.name);
      cols[4].push(ifname);
      cols[5].push(nul(i.mac_address));
      cols[6].push(nul(i.ip_address));
    }
    cols[0].push(s.name);
    cols[1].push(s.profile);
    cols[2].push(storedAs(s, JSON.stringify(s)));
    if (s.netboot_enabled) {
      cols[8].push(s.name);
      cols[9].push(newInstallToken());
    }
    objs.push(s);
  }
  const audits: string[][] = [[], [], [], [], [], [], [], []];
  if (audit !== undefined) auditRow(audit).forEach((v, i) => audits[i]!.push(v));
  return { objs, values: [...cols, now, ...audits] };
}

/** What other tables do when a system is renamed or removed (inside the write's transaction). */
export interface PgSystemHooks {
  systemRenamed(c: Client, from: string, to: string): Promise<void>;
  systemRemoved(c: Client, name: string): Promise<void>;
  /** A system was written with netboot turned on (created so, or off -> on) or off (on -> off). */
  netbootChanged(c: Client, name: string, on: boolean): Promise<void>;
  /** The write's audit row (WriteOptions.audit), in its transaction. */
  audited(c: Client, e: NewAudit): Promise<void>;
}

export class PgObjects {
  /**
   * Profiled at 16 API clients, an add was ~11 round trips (checks, inserts, COMMIT), each a
   * socket write waking a backend: now concurrent adds share one statement and one commit.
   */
  private readonly systemWriter = new GroupWriter<{ obj: System; rows: InsertRows; audit: NewAudit | undefined }, System>(
    async (items) => {
      const values = withDocsLiteral(joinRows(items.map((i) => i.rows)));
      // A named (prepared) statement: each pooled connection parses and plans it once, not per batch.
      const n = Number((await this.db.query<{ n: string }>(FAST_INSERT, values, 'fast_insert_systems'))[0]?.n);
      return n === items.length ? items.map((i) => i.rows.objs[0]!) : undefined;
    },
    (item) => this.db.tx(async (c) => this.audited(c, await this.createIn(c, 'system', item.obj, undefined, false), item.audit)),
  );

  constructor(
    private readonly db: Db,
    private readonly hooks: PgSystemHooks,
  ) {}

  /** Adds still in the group writer are written (close). */
  drain(): Promise<void> {
    return this.systemWriter.drain();
  }

  // ------------------------------------------------------------------ reads

  /**
   * `lock`: 'key' for writes that change or delete the name (FOR UPDATE), 'row' for
   * writes that keep it (FOR NO KEY UPDATE: foreign-key checks of other
   * transactions, which take KEY SHARE, are not blocked, so two servers
   * editing profiles that point at each other do not deadlock).
   */
  private async getIn<K extends ObjectKind>(c: Client, kind: K, name: string, lock?: 'key' | 'row'): Promise<KindMap[K] | undefined> {
    const mode = lock === 'key' ? ' FOR UPDATE' : lock === 'row' ? ' FOR NO KEY UPDATE' : '';
    const r = await c.query<{ data: string }>(`SELECT data FROM ${TABLE[kind]} WHERE name = $1${mode}`, [name]);
    const data = r.rows[0]?.data;
    return data === undefined ? undefined : (JSON.parse(data) as KindMap[K]);
  }

  async get<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    const rows = await this.db.query<{ data: string }>(`SELECT data FROM ${TABLE[kind]} WHERE name = $1`, [name], `get_${kind}`);
    const data = rows[0]?.data;
    return data === undefined ? undefined : (JSON.parse(data) as KindMap[K]);
  }

  async mustGet<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K]> {
    const o = await this.get(kind, name);
    if (o === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${name} does not exist`, { field: 'name' });
    return o;
  }

  private compile(kind: ObjectKind, filter: ListFilter) {
    const js = splitFilter(kind, filter);
    const where: string[] = [];
    const params: string[] = [];
    const cond = (col: string, v: string): string => {
      params.push(isGlob(v) ? globToPgRegex(v) : v);
      return `${col} ${isGlob(v) ? '~' : '='} $${params.length}`;
    };
    // An unset distro/parent is NULL in its column and '' in the document.
    for (const [col, v] of js.columns) where.push(v === '' ? `${col} IS NULL` : cond(col, v));
    for (const [col, v] of js.iface) where.push(`name IN (SELECT system FROM interfaces WHERE ${cond(col, v)})`);
    return { where: where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '', params, js };
  }

  async list<K extends ObjectKind>(kind: K, filter: ListFilter = {}): Promise<KindMap[K][]> {
    const { where, params, js } = this.compile(kind, filter);
    const rows = await this.db.query<{ data: string }>(`SELECT data FROM ${TABLE[kind]}${where} ORDER BY name`, params);
    const out: KindMap[K][] = [];
    for (const r of rows) {
      const o = JSON.parse(r.data) as Record<string, unknown>;
      if (matchesDoc(o, js)) out.push(o as unknown as KindMap[K]);
    }
    return out;
  }

  async listPage(kind: ObjectKind, filter: ListFilter, page: ListPage): Promise<{ rows: string[]; next: string | undefined }> {
    const { where, params, js } = this.compile(kind, filter);
    const inJs = js.jsFilters.length > 0 || js.ifaceFilters.length > 0;
    const n = params.length;
    const sql = `SELECT name, ${page.names === true && !inJs ? "'' AS data" : 'data'} FROM ${TABLE[kind]}${where === '' ? ' WHERE' : `${where} AND`} name > $${n + 1} ORDER BY name LIMIT $${n + 2}`;
    return pageOf(await this.db.query<SystemDoc & Record<string, unknown>>(sql, [...params, page.after, page.limit]), page, js);
  }

  async listNames(kind: ObjectKind, filter: ListFilter = {}): Promise<string[]> {
    const { where, params, js } = this.compile(kind, filter);
    if (js.jsFilters.length > 0 || js.ifaceFilters.length > 0) return (await this.list(kind, filter)).map((o) => o.name);
    return (await this.db.query<{ name: string }>(`SELECT name FROM ${TABLE[kind]}${where} ORDER BY name`, params)).map((r) => r.name);
  }

  /**
   * Lookups by MAC or address are what DHCP asks for every packet the
   * in-process index cannot answer (an unknown MAC, a pool address no system
   * holds): those arriving while one is in flight go together in one query
   * (one round trip for the group, store/postgres/batch.ts), as on SQLite
   * they cost no round trip at all.
   */
  private readonly lookups = {
    mac: new GroupWriter<string, System | undefined>((keys) => this.systemsBy('mac', keys), (k) => this.systemBy('mac', k)),
    ip: new GroupWriter<string, System | undefined>((keys) => this.systemsBy('ip', keys), (k) => this.systemBy('ip', k)),
  };

  private async systemBy(col: 'mac' | 'ip', v: string): Promise<System | undefined> {
    const rows = await this.db.query<{ data: string }>(
      `SELECT s.data FROM interfaces i JOIN systems s ON s.name = i.system WHERE i.${col} = $1`,
      [v],
      `system_by_${col}`,
    );
    return rows[0] === undefined ? undefined : (JSON.parse(rows[0].data) as System);
  }

  private async systemsBy(col: 'mac' | 'ip', keys: string[]): Promise<(System | undefined)[]> {
    if (keys.length === 1) return [await this.systemBy(col, keys[0]!)];
    const rows = await this.db.query<{ k: string; data: string }>(
      `SELECT i.${col} AS k, s.data FROM interfaces i JOIN systems s ON s.name = i.system WHERE i.${col} = ANY($1::text[])`,
      [[...new Set(keys)]],
      `systems_by_${col}`,
    );
    const found = new Map(rows.map((r) => [r.k, r.data]));
    return keys.map((k) => {
      const d = found.get(k);
      return d === undefined ? undefined : (JSON.parse(d) as System);
    });
  }

  systemDocs(q: { after: string; limit: number } | { names: readonly string[] }): Promise<SystemDoc[]> {
    if ('names' in q) return this.db.query<SystemDoc & Record<string, unknown>>('SELECT name, data FROM systems WHERE name = ANY($1::text[])', [q.names], 'system_docs_named');
    return this.db.query<SystemDoc & Record<string, unknown>>('SELECT name, data FROM systems WHERE name > $1 ORDER BY name LIMIT $2', [q.after, q.limit], 'system_docs_page');
  }

  findSystemByMac(mac: string): Promise<System | undefined> {
    return this.lookups.mac.write(mac);
  }

  findSystemByIp(ip: string): Promise<System | undefined> {
    return this.lookups.ip.write(ip);
  }

  async macInUse(mac: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM interfaces WHERE mac = $1', [mac], 'mac_in_use')).length > 0;
  }

  // ------------------------------------------------------------------ writes (inside transactions)

  private async exists(c: Client, kind: ObjectKind, name: string): Promise<boolean> {
    return (await c.query(`SELECT 1 FROM ${TABLE[kind]} WHERE name = $1`, [name])).rowCount! > 0;
  }

  private async owner(c: Client | Db, col: 'mac' | 'ip', v: string): Promise<{ system: string; ifname: string } | undefined> {
    const sql = `SELECT system, ifname FROM interfaces WHERE ${col} = $1`;
    const rows = 'pool' in c ? await c.query<{ system: string; ifname: string }>(sql, [v]) : (await c.query<{ system: string; ifname: string }>(sql, [v])).rows;
    return rows[0];
  }

  /** The friendly overlap check (the exclusion constraint decides races); the network's range. */
  private async checkSubnet(c: Client, s: Subnet): Promise<[number, number]> {
    const net = parseCidr(s.cidr);
    if (net === undefined) throw new ForgeError('INVALID_FIELD', `cidr: "${s.cidr}" is not an IPv4 network`, { field: 'cidr' });
    const r = await c.query<{ data: string }>('SELECT data FROM subnets WHERE network <= $1 AND broadcast >= $2 AND name <> $3 LIMIT 1', [net.broadcast, net.network, s.name]);
    if (r.rows[0] !== undefined) throw overlapError(net.cidr, JSON.parse(r.rows[0].data) as Subnet);
    return [net.network, net.broadcast];
  }

  /** A subnet row written; a concurrent overlapping write that committed first is SUBNET_OVERLAP. */
  private async writeSubnet(c: Client, s: Subnet, sql: string, values: unknown[]): Promise<void> {
    try {
      await c.query('SAVEPOINT sn');
      await c.query(sql, values);
      await c.query('RELEASE SAVEPOINT sn');
    } catch (e) {
      const code = pgCode(e);
      if (code !== '23P01' && code !== '23505') throw e;
      await c.query('ROLLBACK TO SAVEPOINT sn');
      if (code === '23505') throw new ForgeError('DUPLICATE_NAME', `name: a subnet named ${s.name} already exists`, { field: 'name' });
      throw new ForgeError('SUBNET_OVERLAP', `cidr: ${s.cidr} overlaps a subnet another server stored meanwhile`, { field: 'cidr' });
    }
  }

  /** As SQLite's: new or changed static addresses must lie in a stored subnet once any exists (imports unchecked). */
  private async checkStaticInSubnets(c: Client, s: System, old: System | undefined): Promise<void> {
    if ((await c.query('SELECT 1 FROM subnets LIMIT 1')).rowCount === 0) return;
    for (const [ifname, i] of Object.entries(s.interfaces)) {
      if (!i.static || i.ip_address === '') continue;
      const prev = old?.interfaces[ifname];
      if (prev !== undefined && prev.static && prev.ip_address === i.ip_address) continue;
      const ip = ipToInt(i.ip_address);
      if (ip === undefined || (await c.query('SELECT 1 FROM subnets WHERE network < $1 AND broadcast > $1 LIMIT 1', [ip])).rowCount === 0) throw outsideSubnets(ifname, i.ip_address);
    }
  }

  /** Friendly checks; the foreign keys and the cycle trigger decide races. */
  private async checkRefs(c: Client, kind: ObjectKind, obj: KindMap[ObjectKind]): Promise<void> {
    if (kind === 'profile') {
      const p = obj as Profile;
      if (p.distro !== '' && !(await this.exists(c, 'distro', p.distro))) {
        throw new ForgeError('REFERENCE_MISSING', `distro: ${p.distro} does not exist`, { field: 'distro' });
      }
      if (p.parent !== '' && !(await this.exists(c, 'profile', p.parent))) {
        throw new ForgeError('REFERENCE_MISSING', `parent: profile ${p.parent} does not exist`, { field: 'parent' });
      }
    } else if (kind === 'system') {
      const s = obj as System;
      if (!(await this.exists(c, 'profile', s.profile))) {
        throw new ForgeError('REFERENCE_MISSING', `profile: ${s.profile} does not exist`, { field: 'profile' });
      }
    }
  }

  /** Writes the interface rows of a system; resolves `random` MACs (mutates s). */
  private async writeInterfaces(c: Client, s: System, opts: WriteOptions | undefined): Promise<void> {
    for (const [ifname, i] of Object.entries(s.interfaces)) {
      if (i.mac_address === 'random') {
        const oui = ouiFor(opts?.randomOui, s.name);
        let mac: string | undefined;
        for (let tries = 0; tries < 64 && mac === undefined; tries++) {
          const cand = randomMac(oui, randomBytes(3));
          if ((await this.owner(c, 'mac', cand)) === undefined && !Object.values(s.interfaces).some((x) => x.mac_address === cand)) mac = cand;
        }
        if (mac === undefined) throw macExhausted(ifname, oui);
        i.mac_address = mac;
      }
      if (i.mac_address !== '') {
        const o = await this.owner(c, 'mac', i.mac_address);
        if (o !== undefined) throw duplicateError('DUPLICATE_MAC', ifname, i.mac_address, o);
      }
      if (i.ip_address !== '') {
        const o = await this.owner(c, 'ip', i.ip_address);
        if (o !== undefined) throw duplicateError('DUPLICATE_IP', ifname, i.ip_address, o);
      }
      try {
        await c.query('INSERT INTO interfaces (system, ifname, mac, ip) VALUES ($1, $2, $3, $4)', [s.name, ifname, nul(i.mac_address), nul(i.ip_address)]);
      } catch (e) {
        // Another server's transaction took the MAC/IP after our check and committed first (our
        // INSERT waited for it). This transaction is aborted now: the owner is read outside it.
        const constraint = (e as { constraint?: string }).constraint;
        if (pgCode(e) === '23505' && (constraint === 'interfaces_mac' || constraint === 'interfaces_ip')) {
          const col = constraint === 'interfaces_mac' ? 'mac' : 'ip';
          const v = col === 'mac' ? i.mac_address : i.ip_address;
          throw duplicateError(col === 'mac' ? 'DUPLICATE_MAC' : 'DUPLICATE_IP', ifname, v, await this.owner(this.db, col, v).catch(() => undefined));
        }
        throw e;
      }
    }
  }

  /** An INSERT/UPDATE whose constraint refusal (a concurrent writer won) becomes the catalogue's error; the transaction is then aborted. */
  private async guarded(c: Client, kind: ObjectKind, name: string, sql: string, values: unknown[]): Promise<void> {
    // No savepoint: a refusal aborts the transaction, which then only rolls back (one round trip less per write).
    try {
      await c.query(sql, values);
    } catch (e) {
      const code = pgCode(e);
      const constraint = (e as { constraint?: string }).constraint ?? '';
      const known = (code === '23505' && constraint.endsWith('_pkey')) || code === '23503' || (code === '23514' && constraint === 'profiles_no_parent_cycle');
      if (!known) throw e;
      if (code === '23505') throw new ForgeError('DUPLICATE_NAME', `name: a ${kind} named ${name} already exists`, { field: 'name' });
      if (code === '23514') throw new ForgeError('PARENT_CYCLE', (e as Error).message, { field: 'parent' });
      const field = constraint.includes('distro') ? 'distro' : constraint.includes('parent') ? 'parent' : constraint.includes('profile') ? 'profile' : 'name';
      throw new ForgeError('REFERENCE_MISSING', `${field}: the ${field === 'distro' ? 'distro' : 'profile'} referenced was removed by a concurrent write`, { field });
    }
  }

  private async createIn<K extends ObjectKind>(c: Client, kind: K, input: KindMap[K], opts: WriteOptions | undefined, keepTimes: boolean): Promise<KindMap[K]> {
    const obj = structuredClone(input);
    if (await this.exists(c, kind, obj.name)) {
      throw new ForgeError('DUPLICATE_NAME', `name: a ${kind} named ${obj.name} already exists`, { field: 'name' });
    }
    await this.checkRefs(c, kind, obj);
    const now = new Date().toISOString();
    if (!keepTimes || obj.ctime === '') obj.ctime = now;
    if (!keepTimes || obj.mtime === '') obj.mtime = now;
    if (kind === 'distro') {
      await this.guarded(c, kind, obj.name, 'INSERT INTO distros (name, data) VALUES ($1, $2)', [obj.name, JSON.stringify(obj)]);
    } else if (kind === 'profile') {
      const p = obj as Profile;
      await this.guarded(c, kind, p.name, 'INSERT INTO profiles (name, distro, parent, data) VALUES ($1, $2, $3, $4)', [p.name, nul(p.distro), nul(p.parent), JSON.stringify(p)]);
    } else if (kind === 'subnet') {
      const n = obj as Subnet;
      const [net, bc] = await this.checkSubnet(c, n);
      await this.writeSubnet(c, n, 'INSERT INTO subnets (name, network, broadcast, data) VALUES ($1, $2, $3, $4)', [n.name, net, bc, JSON.stringify(n)]);
    } else {
      const s = obj as System;
      if (!keepTimes) await this.checkStaticInSubnets(c, s, undefined);
      // Parent row first (interfaces reference it); its data is rewritten once random MACs are resolved.
      await this.guarded(c, kind, s.name, 'INSERT INTO systems (name, profile, data) VALUES ($1, $2, $3)', [s.name, s.profile, '{}']);
      await this.writeInterfaces(c, s, opts);
      await c.query('UPDATE systems SET data = $1 WHERE name = $2', [storedAs(s, JSON.stringify(s)), s.name]);
      if (s.netboot_enabled) await this.hooks.netbootChanged(c, s.name, true);
    }
    return obj;
  }

  private async replaceIn<K extends ObjectKind>(c: Client, kind: K, input: KindMap[K], opts: WriteOptions | undefined, old?: KindMap[K], imported = false): Promise<KindMap[K]> {
    const obj = structuredClone(input);
    const prev = old ?? (await this.getIn(c, kind, obj.name, 'row'));
    if (prev === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${obj.name} does not exist`, { field: 'name' });
    await this.checkRefs(c, kind, obj);
    obj.ctime = prev.ctime;
    obj.mtime = new Date().toISOString();
    if (kind === 'distro') {
      await c.query('UPDATE distros SET data = $1 WHERE name = $2', [JSON.stringify(obj), obj.name]);
    } else if (kind === 'profile') {
      const p = obj as Profile;
      await this.guarded(c, kind, p.name, 'UPDATE profiles SET distro = $1, parent = $2, data = $3 WHERE name = $4', [nul(p.distro), nul(p.parent), JSON.stringify(p), p.name]);
    } else if (kind === 'subnet') {
      const n = obj as Subnet;
      const [net, bc] = await this.checkSubnet(c, n);
      await this.writeSubnet(c, n, 'UPDATE subnets SET network = $1, broadcast = $2, data = $3 WHERE name = $4', [net, bc, JSON.stringify(n), n.name]);
    } else {
      const s = obj as System;
      if (!imported) await this.checkStaticInSubnets(c, s, prev as System);
      await c.query('DELETE FROM interfaces WHERE system = $1', [s.name]);
      await this.writeInterfaces(c, s, opts);
      await this.guarded(c, kind, s.name, 'UPDATE systems SET profile = $1, data = $2 WHERE name = $3', [s.profile, JSON.stringify(s), s.name]);
      if (s.netboot_enabled !== (prev as System).netboot_enabled) await this.hooks.netbootChanged(c, s.name, s.netboot_enabled);
    }
    return obj;
  }

  /**
   * Systems without `random` MACs go through the group writer (FAST_INSERT, many adds per
   * statement); anything it refuses, and every other kind, takes the checked path.
   */
  create<K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions): Promise<KindMap[K]> {
    if (kind === 'system') {
      const rows = insertRows([obj as System], opts?.audit);
      if (rows !== undefined) return this.systemWriter.write({ obj: obj as System, rows, audit: opts?.audit }) as Promise<KindMap[K]>;
    }
    return this.db.tx(async (c) => this.audited(c, await this.createIn(c, kind, obj, opts, false), opts?.audit));
  }

  /** `r`, after writing `audit` in the transaction `c`. */
  private async audited<T>(c: Client, r: T, audit: NewAudit | undefined): Promise<T> {
    if (audit !== undefined) await this.hooks.audited(c, audit);
    return r;
  }

  bulkCreate<K extends ObjectKind>(kind: K, objs: KindMap[K][], opts?: WriteOptions): Promise<number> {
    const ordered = kind === 'profile' ? orderProfiles(objs as Profile[]) : objs;
    return this.db.tx(async (c) => {
      const rows = kind === 'system' ? insertRows(ordered as System[]) : undefined;
      if (rows !== undefined) {
        // The whole batch in one statement; a refusal rolls back to the savepoint and the
        // item-by-item path below finds which item and why (the message names it).
        await c.query('SAVEPOINT bulk');
        const n = await c.query<{ n: string }>(FAST_INSERT, withDocsLiteral(rows.values)).then((r) => Number(r.rows[0]?.n), () => -1);
        if (n === ordered.length) {
          await c.query('RELEASE SAVEPOINT bulk');
          return this.audited(c, n, opts?.audit);
        }
        await c.query('ROLLBACK TO SAVEPOINT bulk');
      }
      for (const [i, o] of ordered.entries()) {
        try {
          await this.createIn(c, kind, o as KindMap[K], opts, false);
        } catch (e) {
          if (e instanceof ForgeError) {
            throw new ForgeError(e.code, `item ${i} (${o.name}): ${e.message}`, { ...(e.field === undefined ? {} : { field: e.field }), details: { index: i, name: o.name } });
          }
          throw e;
        }
      }
      return this.audited(c, ordered.length, opts?.audit);
    });
  }

  replace<K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions): Promise<KindMap[K]> {
    return this.db.tx(async (c) => this.audited(c, await this.replaceIn(c, kind, obj, opts), opts?.audit));
  }

  /** The row is locked (FOR UPDATE) from read to write: concurrent updates, from any server, queue. */
  update<K extends ObjectKind>(kind: K, name: string, fn: (current: KindMap[K]) => KindMap[K], opts?: WriteOptions): Promise<KindMap[K]> {
    return this.db.tx(async (c) => {
      const cur = await this.getIn(c, kind, name, 'row');
      if (cur === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${name} does not exist`, { field: 'name' });
      const next = fn(structuredClone(cur));
      if (next.name !== name) throw new ForgeError('INVALID_FIELD', 'name: cannot be changed by an update; use rename', { field: 'name' });
      return this.audited(c, await this.replaceIn(c, kind, next, opts, cur), opts?.audit);
    });
  }

  /** Rewrites one field of the documents whose column now holds `to` (the column followed by ON UPDATE CASCADE). */
  private async retarget(c: Client, table: string, col: string, to: string): Promise<void> {
    const rows = (await c.query<{ name: string; data: string }>(`SELECT name, data FROM ${table} WHERE ${col} = $1`, [to])).rows;
    for (const r of rows) {
      const o = JSON.parse(r.data) as Record<string, unknown>;
      o[col] = to;
      await c.query(`UPDATE ${table} SET data = $1 WHERE name = $2`, [JSON.stringify(o), r.name]);
    }
  }

  async rename(kind: ObjectKind, from: string, to: string): Promise<void> {
    await this.db.tx(async (c) => {
      const obj = await this.getIn(c, kind, from, 'key');
      if (obj === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${from} does not exist`, { field: 'name' });
      if (from === to) return;
      if (await this.exists(c, kind, to)) throw new ForgeError('DUPLICATE_NAME', `new_name: a ${kind} named ${to} already exists`, { field: 'new_name' });
      obj.name = to;
      obj.mtime = new Date().toISOString();
      try {
        await this.guarded(c, kind, to, `UPDATE ${TABLE[kind]} SET name = $1, data = $2 WHERE name = $3`, [to, JSON.stringify(obj), from]);
      } catch (e) {
        if (e instanceof ForgeError && e.code === 'DUPLICATE_NAME') throw new ForgeError('DUPLICATE_NAME', `new_name: a ${kind} named ${to} already exists`, { field: 'new_name' });
        throw e;
      }
      // Reference columns followed through ON UPDATE CASCADE; the documents follow here.
      if (kind === 'distro') await this.retarget(c, 'profiles', 'distro', to);
      else if (kind === 'profile') {
        await this.retarget(c, 'profiles', 'parent', to);
        await this.retarget(c, 'systems', 'profile', to);
      } else if (kind === 'system') await this.hooks.systemRenamed(c, from, to);
    });
  }

  remove(kind: ObjectKind, name: string, opts: RemoveOptions = {}): Promise<string[]> {
    return this.db.tx(async (c) => {
      if ((await this.getIn(c, kind, name, 'key')) === undefined) throw new ForgeError('NOT_FOUND', `${kind} ${name} does not exist`, { field: 'name' });
      const names = async (sql: string, n: string): Promise<string[]> => (await c.query<{ name: string }>(sql, [n])).rows.map((r) => r.name);
      // Dependants depth first, children before parents. A dependant another server adds
      // meanwhile makes the DELETE fail on its foreign key: the removal is then refused whole.
      const order: [ObjectKind, string][] = [];
      const visit = async (k: ObjectKind, n: string): Promise<void> => {
        if (k === 'distro') for (const p of await names('SELECT name FROM profiles WHERE distro = $1 ORDER BY name', n)) await visit('profile', p);
        else if (k === 'profile') {
          for (const p of await names('SELECT name FROM profiles WHERE parent = $1 ORDER BY name', n)) await visit('profile', p);
          for (const s of await names('SELECT name FROM systems WHERE profile = $1 ORDER BY name', n)) await visit('system', s);
        }
        order.push([k, n]);
      };
      await visit(kind, name);
      if (order.length > 1 && opts.recursive !== true) {
        const { message, deps } = referencedError(kind, name, order);
        throw new ForgeError('REFERENCED', message, { field: 'name', details: { referenced_by: deps.slice(0, 1000) } });
      }
      for (const [k, n] of order) {
        try {
          await c.query('SAVEPOINT rm');
          await c.query(`DELETE FROM ${TABLE[k]} WHERE name = $1`, [n]);
          await c.query('RELEASE SAVEPOINT rm');
        } catch (e) {
          if (pgCode(e) !== '23503') throw e;
          await c.query('ROLLBACK TO SAVEPOINT rm');
          throw new ForgeError('REFERENCED', `${k} ${n} gained a reference while it was being removed (another server's write); nothing was removed`, { field: 'name' });
        }
        if (k === 'system') await this.hooks.systemRemoved(c, n);
      }
      return order.map(([k, n]) => `${k} ${n}`);
    });
  }

  // ------------------------------------------------------------------ export / import

  /** One consistent snapshot (REPEATABLE READ): writes of other servers meanwhile are all in or all out. */
  exportAll(): Promise<ExportDocument> {
    return this.db.tx(
      async (c) => {
        const all = async <K extends ObjectKind>(k: K): Promise<KindMap[K][]> =>
          (await c.query<{ data: string }>(`SELECT data FROM ${TABLE[k]} ORDER BY name`)).rows.map((r) => JSON.parse(r.data) as KindMap[K]);
        return {
          forge_export: 1 as const,
          exported: new Date().toISOString(),
          distros: await all('distro'),
          profiles: await all('profile'),
          systems: await all('system'),
          subnets: await all('subnet'),
        };
      },
      'REPEATABLE READ',
      true,
    );
  }

  importAll(doc: ExportDocument, opts: { replace?: boolean } = {}): Promise<ImportCounts> {
    return this.db.tx(async (c) => {
      const put = async <K extends ObjectKind>(k: K, o: KindMap[K]): Promise<void> => {
        if (opts.replace === true && (await this.exists(c, k, o.name))) {
          const r = await this.replaceIn(c, k, o, undefined, undefined, true);
          if (o.ctime !== '') r.ctime = o.ctime;
          if (o.mtime !== '') r.mtime = o.mtime;
          await c.query(`UPDATE ${TABLE[k]} SET data = $1 WHERE name = $2`, [JSON.stringify(r), r.name]);
        } else {
          await this.createIn(c, k, o, undefined, true);
        }
      };
      // Subnets first: static interface addresses are checked against them.
      for (const n of doc.subnets ?? []) await put('subnet', n);
      for (const d of doc.distros) await put('distro', d);
      for (const p of orderProfiles(doc.profiles)) await put('profile', p);
      for (const s of doc.systems) await put('system', s);
      return { distros: doc.distros.length, profiles: doc.profiles.length, systems: doc.systems.length, subnets: doc.subnets?.length ?? 0 };
    });
  }
}
