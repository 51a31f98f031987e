/**
 * The embedded store: SQLite through better-sqlite3 (synchronous, in
 * process). WAL journal, versioned migrations, every mutation one
 * transaction. This file opens the database and puts the rooms together:
 *
 *   sqlite/migrations.ts  the schema, append-only versions
 *   sqlite/queue.ts       the write queue (call order, group commit)
 *   sqlite/objects.ts     distros, profiles, systems and their interfaces
 *   sqlite/events.ts      lifecycle events per system
 *   sqlite/leases.ts      the durable copy of DHCP leases
 *
 * Durability: synchronous=NORMAL in WAL mode means a committed transaction
 * survives a crash of the process (it is in the WAL file when COMMIT
 * returns); only an OS crash or power loss can lose the last commits
 * (https://www.sqlite.org/pragma.html#pragma_synchronous). Set
 * FORGE_SQLITE_SYNC=FULL to fsync every commit.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ForgeEvent, KindMap, Lease, ObjectKind, System } from '../core/model.js';
import type { ExportDocument, ImportCounts, ListFilter, ListPage, NewEvent, EventOnce, RemoveOptions, Store, SystemDoc, WriteOptions } from './store.js';
import { EventRows } from './sqlite/events.js';
import { AuditRows, InstallRows, TokenRows, type AuditQuery } from './sqlite/access.js';
import type { ApiTokenInfo, AuditEntry, InstallWindow, NewAudit, Role } from '../core/access.js';
import { DiscoveryRows } from './sqlite/discovery.js';
import type { Discovered, Rule } from '../discovery/model.js';
import { LeaseRows } from './sqlite/leases.js';
import { migrate, schemaVersion } from './sqlite/migrations.js';
import { ObjectRows } from './sqlite/objects.js';
import { WriteQueue } from './sqlite/queue.js';

export { MIGRATIONS } from './sqlite/migrations.js';
export { globToRegExp, orderProfiles } from './common.js';

export interface SqliteOptions {
  /** full path of the database file */
  file: string;
  synchronous?: 'NORMAL' | 'FULL';
  /** Share one COMMIT between writes queued in the same event-loop turn (default true). */
  groupCommit?: boolean;
}

export class SqliteStore implements Store {
  readonly db: Database.Database;
  private readonly queue: WriteQueue;
  private readonly objects: ObjectRows;
  private readonly events: EventRows;
  private readonly leases: LeaseRows;
  private readonly discovery: DiscoveryRows;
  private readonly installs: InstallRows;
  private readonly tokens: TokenRows;
  private readonly audit: AuditRows;

  constructor(opts: SqliteOptions) {
    this.db = new Database(opts.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.queue = new WriteQueue(this.db, opts.groupCommit ?? true);
    this.events = new EventRows(this.db, this.queue);
    this.leases = new LeaseRows(this.db, this.queue);
    this.discovery = new DiscoveryRows(this.db, this.queue);
    this.installs = new InstallRows(this.db, this.queue);
    this.tokens = new TokenRows(this.db, this.queue);
    this.audit = new AuditRows(this.db, this.queue);
    this.objects = new ObjectRows(this.db, this.queue, {
      systemRenamed: (from, to) => {
        this.events.systemRenamed(from, to);
        this.leases.systemRenamed(from, to);
      },
      systemRemoved: (name) => this.events.systemRemoved(name),
      // install_windows follows renames and removals through its foreign key.
      netbootChanged: (name, on) => this.installs.netbootChanged(name, on),
      audited: (e) => this.audit.addSync(e),
    });
  }

  /** Schema version after migrations. */
  get schemaVersion(): number {
    return schemaVersion(this.db);
  }

  async clusterId(): Promise<string> {
    return (this.db.prepare('SELECT id FROM cluster').get() as { id: string } | undefined)?.id ?? '';
  }

  /** Group commits done and writes they carried (for benchmarks). */
  get commitStats(): { commits: number; writes: number } {
    return this.queue.commitStats;
  }

  // objects
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

  // events
  addEvent(ev: NewEvent): Promise<ForgeEvent> {
    return this.events.add(ev);
  }
  addEventOnce(ev: NewEvent, once: EventOnce): Promise<ForgeEvent | undefined> {
    return this.events.addOnce(ev, once);
  }
  async listEvents(system: string, opts?: { since?: string; limit?: number }): Promise<ForgeEvent[]> {
    return this.events.list(system, opts);
  }
  async latestEvents(): Promise<ForgeEvent[]> {
    return this.events.latest();
  }
  async eventsAfter(afterId: number, limit: number): Promise<ForgeEvent[]> {
    return this.events.after(afterId, limit);
  }

  // leases
  async getLease(mac: string): Promise<Lease | undefined> {
    return this.leases.get(mac);
  }
  async getLeaseByIp(ip: string): Promise<Lease | undefined> {
    return this.leases.getByIp(ip);
  }
  putLease(lease: Lease): Promise<void> {
    return this.leases.put(lease);
  }
  putLeases(leases: readonly Lease[]): Promise<(Error | undefined)[]> {
    return this.leases.putMany(leases);
  }
  async listLeases(): Promise<Lease[]> {
    return this.leases.list();
  }

  // discovery
  async getDiscovered(name: string): Promise<Discovered | undefined> {
    return this.discovery.get(name);
  }
  async getDiscoveredByMac(mac: string): Promise<Discovered | undefined> {
    return this.discovery.getByMac(mac);
  }
  async listDiscovered(): Promise<Discovered[]> {
    return this.discovery.list();
  }
  async countDiscovered(): Promise<number> {
    return this.discovery.count();
  }
  putDiscovered(d: Discovered): Promise<Discovered> {
    return this.discovery.put(d);
  }
  removeDiscovered(name: string): Promise<void> {
    return this.discovery.remove(name);
  }
  async listRules(): Promise<Rule[]> {
    return this.discovery.listRules();
  }
  async getRule(name: string): Promise<Rule | undefined> {
    return this.discovery.getRule(name);
  }
  putRule(rule: Rule, create: boolean): Promise<Rule> {
    return this.discovery.putRule(rule, create);
  }
  removeRule(name: string): Promise<void> {
    return this.discovery.removeRule(name);
  }

  // install windows, API tokens, audit (core/access.ts)
  async installWindow(system: string): Promise<InstallWindow | undefined> {
    return this.installs.get(system);
  }
  async installWindows(systems: readonly string[]): Promise<InstallWindow[]> {
    return systems.flatMap((s) => this.installs.get(s) ?? []);
  }
  async installWindowsPage(after: string, limit: number): Promise<InstallWindow[]> {
    return this.installs.pageAfter(after, limit);
  }
  rotateInstallToken(system: string): Promise<InstallWindow> {
    return this.installs.rotate(system);
  }
  createApiToken(role: Role, comment: string, hash: string): Promise<ApiTokenInfo> {
    return this.tokens.create(role, comment, hash);
  }
  async listApiTokens(): Promise<ApiTokenInfo[]> {
    return this.tokens.list();
  }
  async findApiToken(hash: string): Promise<ApiTokenInfo | undefined> {
    return this.tokens.byHash(hash);
  }
  revokeApiToken(id: number): Promise<ApiTokenInfo> {
    return this.tokens.revoke(id);
  }
  addAudit(e: NewAudit): Promise<void> {
    return this.audit.add(e);
  }
  async listAudit(q?: AuditQuery): Promise<AuditEntry[]> {
    return this.audit.list(q);
  }
  pruneEvents(before: string, perSystem: number, chunk: number): Promise<number> {
    return this.events.prune(before, perSystem, chunk);
  }
  pruneAudit(before: string, chunk: number): Promise<number> {
    return this.audit.prune(before, chunk);
  }

  async integrityCheck(): Promise<string> {
    const rows = this.db.pragma('integrity_check') as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join('\n');
  }

  async close(): Promise<void> {
    if (this.queue.pending) this.queue.flush();
    if (this.db.open) this.db.close();
  }
}

/** Opens (creating if needed) DATA_DIR/forge.db. */
export function openSqliteStore(
  dataDir: string,
  synchronous: 'NORMAL' | 'FULL' = 'NORMAL',
  groupCommit = true,
): SqliteStore {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return new SqliteStore({ file: join(dataDir, 'forge.db'), synchronous, groupCommit });
}
