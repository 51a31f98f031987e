/**
 * The networked store: PostgreSQL through `pg` (node-postgres), for sites
 * where several forge servers share one database. Same contract as
 * store/sqlite.ts: every mutation one transaction, the referential rules
 * decided by the database (so two servers cannot both win), versioned
 * migrations. The rooms:
 *
 *   postgres/db.ts          pool, transactions, retries, connection errors
 *   postgres/migrations.ts  the schema, append-only versions
 *   postgres/objects.ts     distros, profiles, systems and their interfaces
 *   postgres/events.ts      lifecycle events, and the LISTEN/NOTIFY feed
 *   postgres/leases.ts      the durable copy of DHCP leases, and the address claims (group commits)
 *   postgres/discovery.ts   discovered machines and discovery rules
 *
 * Durability is PostgreSQL's: a COMMIT that returned is on the server's WAL
 * (synchronous_commit=on, the default), except a DHCP address claim's, which
 * nothing is acknowledged on (postgres/leases.ts ASYNC_COMMIT).
 */
import { PgAccess } from './postgres/access.js';
import type { ApiTokenInfo, AuditEntry, InstallWindow, NewAudit, Role } from '../core/access.js';
import type { ForgeEvent, KindMap, Lease, ObjectKind, System } from '../core/model.js';
import type { Discovered, Rule } from '../discovery/model.js';
import { ForgeError } from '../errors.js';
import type { ExportDocument, ImportCounts, ListFilter, ListPage, NewEvent, EventOnce, RemoveOptions, Store, SystemDoc, WriteOptions } from './store.js';
import { Db, redactUrl } from './postgres/db.js';
import { PgDiscovery } from './postgres/discovery.js';
import { PgEvents } from './postgres/events.js';
import { PgLeases } from './postgres/leases.js';
import { migratePg, pgSchemaVersion } from './postgres/migrations.js';
import { PgObjects } from './postgres/objects.js';
import { watchChannel, watchSystems } from './postgres/changes.js';

/** Channel of migration 7: `KIND:NAME` of every distro, profile, subnet and install window written. */
const OBJECTS_CHANNEL = 'forge_objects';

export { PG_MIGRATIONS } from './postgres/migrations.js';
export { redactUrl } from './postgres/db.js';

/** True for a `store` value that names a PostgreSQL database. */
export const isPostgresUrl = (v: string): boolean => /^postgres(ql)?:\/\//i.test(v);

export class PgStore implements Store {
  private readonly objects: PgObjects;
  private readonly events: PgEvents;
  private readonly leases: PgLeases;
  private readonly discovery: PgDiscovery;
  private readonly access: PgAccess;
  private readonly watchers = new Set<() => Promise<void>>();

  constructor(readonly db: Db) {
    this.events = new PgEvents(db);
    this.leases = new PgLeases(db);
    this.discovery = new PgDiscovery(db);
    this.access = new PgAccess(db);
    this.objects = new PgObjects(db, {
      systemRenamed: async (c, from, to) => {
        await this.events.systemRenamed(c, from, to);
        await this.leases.systemRenamed(c, from, to);
      },
      systemRemoved: (c, name) => this.events.systemRemoved(c, name),
      netbootChanged: (c, name, on) => this.access.netbootChanged(c, name, on),
      audited: (c, e) => this.access.addAuditIn(c, e),
    });
  }

  /** The database URL without its password. */
  get where(): string {
    return this.db.where;
  }

  // install windows, API tokens, audit (core/access.ts)
  installWindow(system: string): Promise<InstallWindow | undefined> {
    return this.access.installWindow(system);
  }
  installWindows(systems: readonly string[]): Promise<InstallWindow[]> {
    return this.access.installWindows(systems);
  }
  installWindowsPage(after: string, limit: number): Promise<InstallWindow[]> {
    return this.access.installWindowsPage(after, limit);
  }
  rotateInstallToken(system: string): Promise<InstallWindow> {
    return this.access.rotate(system);
  }
  createApiToken(role: Role, comment: string, hash: string): Promise<ApiTokenInfo> {
    return this.access.createToken(role, comment, hash);
  }
  listApiTokens(): Promise<ApiTokenInfo[]> {
    return this.access.listTokens();
  }
  findApiToken(hash: string): Promise<ApiTokenInfo | undefined> {
    return this.access.tokenByHash(hash);
  }
  revokeApiToken(id: number): Promise<ApiTokenInfo> {
    return this.access.revokeToken(id);
  }
  addAudit(e: NewAudit): Promise<void> {
    return this.access.addAudit(e);
  }
  listAudit(q?: { since?: string; object?: string; limit?: number }): Promise<AuditEntry[]> {
    return this.access.listAudit(q);
  }
  pruneEvents(before: string, perSystem: number, chunk: number): Promise<number> {
    return this.access.pruneEvents(before, perSystem, chunk);
  }
  pruneAudit(before: string, chunk: number): Promise<number> {
    return this.access.pruneAudit(before, chunk);
  }

  schemaVersion(): Promise<number> {
    return pgSchemaVersion(this.db);
  }

  private cluster: Promise<string> | undefined;
  clusterId(): Promise<string> {
    this.cluster ??= this.db.query<{ id: string }>('SELECT id FROM cluster').then(
      (r) => r[0]?.id ?? '',
      (e: unknown) => {
        this.cluster = undefined;
        throw e;
      },
    );
    return this.cluster;
  }

  list<K extends ObjectKind>(kind: K, filter?: ListFilter): Promise<KindMap[K][]> {
    return this.objects.list(kind, filter);
  }
  listNames(kind: ObjectKind, filter?: ListFilter): Promise<string[]> {
    return this.objects.listNames(kind, filter);
  }
  listPage(kind: ObjectKind, filter: ListFilter, page: ListPage): Promise<{ rows: string[]; next: string | undefined }> {
    return this.objects.listPage(kind, filter, page);
  }
  get<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    return this.objects.get(kind, name);
  }
  mustGet<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K]> {
    return this.objects.mustGet(kind, name);
  }
  create<K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions): Promise<KindMap[K]> {
    return this.objects.create(kind, obj, opts);
  }
  bulkCreate<K extends ObjectKind>(kind: K, objs: KindMap[K][], opts?: WriteOptions): Promise<number> {
    return this.objects.bulkCreate(kind, objs, opts);
  }
  replace<K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions): Promise<KindMap[K]> {
    return this.objects.replace(kind, obj, opts);
  }
  update<K extends ObjectKind>(kind: K, name: string, fn: (current: KindMap[K]) => KindMap[K], opts?: WriteOptions): Promise<KindMap[K]> {
    return this.objects.update(kind, name, fn, opts);
  }
  rename(kind: ObjectKind, from: string, to: string): Promise<void> {
    return this.objects.rename(kind, from, to);
  }
  remove(kind: ObjectKind, name: string, opts?: RemoveOptions): Promise<string[]> {
    return this.objects.remove(kind, name, opts);
  }
  systemDocs(q: { after: string; limit: number } | { names: readonly string[] }): Promise<SystemDoc[]> {
    return this.objects.systemDocs(q);
  }
  async watchSystems(fn: (names: string[], own: string[]) => void, reset: () => void): Promise<() => Promise<void>> {
    const stop = await watchSystems(this.db.url, fn, reset, (pid) => this.db.ownBackend(pid));
    this.watchers.add(stop);
    return async () => {
      this.watchers.delete(stop);
      await stop();
    };
  }
  async watchObjects(fn: (keys: string[]) => void, reset: () => void, down: () => void): Promise<() => Promise<void>> {
    const stop = await watchChannel(this.db.url, OBJECTS_CHANNEL, fn, reset, down);
    this.watchers.add(stop);
    return async () => {
      this.watchers.delete(stop);
      await stop();
    };
  }
  findSystemByMac(mac: string): Promise<System | undefined> {
    return this.objects.findSystemByMac(mac);
  }
  findSystemByIp(ip: string): Promise<System | undefined> {
    return this.objects.findSystemByIp(ip);
  }
  macInUse(mac: string): Promise<boolean> {
    return this.objects.macInUse(mac);
  }
  exportAll(): Promise<ExportDocument> {
    return this.objects.exportAll();
  }
  importAll(doc: ExportDocument, opts?: { replace?: boolean }): Promise<ImportCounts> {
    return this.objects.importAll(doc, opts);
  }

  addEvent(ev: NewEvent): Promise<ForgeEvent> {
    return this.events.add(ev);
  }
  addEventOnce(ev: NewEvent, once: EventOnce): Promise<ForgeEvent | undefined> {
    return this.events.addOnce(ev, once);
  }
  listEvents(system: string, opts?: { since?: string; limit?: number }): Promise<ForgeEvent[]> {
    return this.events.list(system, opts);
  }
  latestEvents(): Promise<ForgeEvent[]> {
    return this.events.latest();
  }
  eventsAfter(afterId: number, limit: number): Promise<ForgeEvent[]> {
    return this.events.after(afterId, limit);
  }
  watchEvents(fn: (ev: ForgeEvent) => void, onError: (e: unknown) => void = () => undefined): () => Promise<void> {
    const stop = this.events.watch(fn, onError);
    this.watchers.add(stop);
    return async () => {
      this.watchers.delete(stop);
      await stop();
    };
  }

  claimAddress(ip: string, mac: string, expires: number, now: number): Promise<boolean> {
    return this.leases.claim(ip, mac, expires, now);
  }
  freeAddress(ip: string, mac: string, holdUntil?: number): Promise<void> {
    return this.leases.free(ip, mac, holdUntil);
  }
  getLease(mac: string): Promise<Lease | undefined> {
    return this.leases.get(mac);
  }
  getLeaseByIp(ip: string): Promise<Lease | undefined> {
    return this.leases.getByIp(ip);
  }
  putLease(lease: Lease): Promise<void> {
    return this.leases.put(lease);
  }
  listLeases(): Promise<Lease[]> {
    return this.leases.list();
  }

  getDiscovered(name: string): Promise<Discovered | undefined> {
    return this.discovery.get(name);
  }
  getDiscoveredByMac(mac: string): Promise<Discovered | undefined> {
    return this.discovery.getByMac(mac);
  }
  listDiscovered(): Promise<Discovered[]> {
    return this.discovery.list();
  }
  countDiscovered(): Promise<number> {
    return this.discovery.count();
  }
  putDiscovered(d: Discovered): Promise<Discovered> {
    return this.discovery.put(d);
  }
  removeDiscovered(name: string): Promise<void> {
    return this.discovery.remove(name);
  }
  listRules(): Promise<Rule[]> {
    return this.discovery.listRules();
  }
  getRule(name: string): Promise<Rule | undefined> {
    return this.discovery.getRule(name);
  }
  putRule(rule: Rule, create: boolean): Promise<Rule> {
    return this.discovery.putRule(rule, create);
  }
  removeRule(name: string): Promise<void> {
    return this.discovery.removeRule(name);
  }

  /**
   * PostgreSQL checks its own pages; what can be checked from here is that
   * the referential rules hold (they are constraints, so this finds nothing
   * unless one was dropped by hand).
   */
  async integrityCheck(): Promise<string> {
    const bad = await this.db.query<{ problem: string }>(`
      SELECT 'interface of missing system ' || i.system AS problem FROM interfaces i LEFT JOIN systems s ON s.name = i.system WHERE s.name IS NULL
      UNION ALL SELECT 'system ' || s.name || ' has missing profile ' || s.profile FROM systems s LEFT JOIN profiles p ON p.name = s.profile WHERE p.name IS NULL
      LIMIT 100`);
    return bad.length === 0 ? 'ok' : bad.map((r) => r.problem).join('\n');
  }

  async close(): Promise<void> {
    for (const stop of [...this.watchers]) await stop();
    await this.objects.drain();
    await this.access.drain();
    await this.events.drain();
    await this.leases.drain();
    await this.db.close();
  }
}

/**
 * Connects to `url`, migrates the schema and returns the store; a database
 * that cannot be reached is STORAGE_UNAVAILABLE naming the URL (never its
 * password) and the cause.
 */
export async function openPgStore(url: string, opts: { poolSize?: number } = {}): Promise<PgStore> {
  const db = new Db(url, opts.poolSize ?? 10);
  try {
    await db.query('SELECT 1');
    await migratePg(db);
  } catch (e) {
    await db.close().catch(() => undefined);
    if (e instanceof ForgeError) throw e;
    throw new ForgeError('STORAGE_UNAVAILABLE', `PostgreSQL at ${redactUrl(url)}: ${redactUrl((e as Error).message)}`, { field: 'store', cause: e });
  }
  return new PgStore(db);
}
