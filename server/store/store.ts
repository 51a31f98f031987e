/**
 * The storage port, async: the embedded default is SQLite (store/sqlite.ts),
 * the networked one PostgreSQL for sites with several servers
 * (store/postgres.ts); test/integration/store-contract.test.ts holds both
 * to this contract. Every mutating call is one transaction: it either
 * happens whole or throws a ForgeError and changes nothing.
 *
 * Implementations validate referential rules (unique names per kind, unique
 * MACs and IPs across systems, references exist, no parent cycles) because
 * only they can check them atomically. Field-level validation happens before,
 * at the edge (core/validate.ts).
 */
import type { Discovered, Rule } from '../discovery/model.js';
import type { ApiTokenInfo, AuditEntry, InstallWindow, NewAudit, Role } from '../core/access.js';
import type { ForgeEvent, EventType, KindMap, Lease, ObjectKind } from '../core/model.js';

export interface ListPage {
  after: string;
  limit: number;
  /** Names instead of documents. */
  names?: boolean;
}

export interface SystemDoc {
  name: string;
  data: string;
}

export interface ListFilter {
  /** Exact-match or glob (`*`, `?`) on top-level fields, or `mac_address`/`ip_address` of any interface. */
  [field: string]: string;
}

export interface RemoveOptions {
  /** Also remove what references the object (profiles, sub-profiles, systems). */
  recursive?: boolean;
}

export interface NewEvent {
  system: string;
  type: EventType;
  source: string;
  detail?: Record<string, unknown>;
  /** Defaults to now. */
  time?: string;
}

/**
 * addEventOnce's condition: record only when the system has no event of the same type at or
 * after `since` whose detail holds the same string values at the keys `same` (a key the new
 * event's detail lacks is not compared).
 */
export interface EventOnce {
  since: string;
  same: readonly string[];
}

/**
 * Options of the object-writing calls. System interfaces whose mac_address
 * is `random` get a free MAC chosen inside the same transaction as the write,
 * with the OUI given here (per system name when a record, else one for all;
 * default 52:54:00). The caller picks the OUI from the blended virt_type.
 */
export interface WriteOptions {
  /**
   * The audit row of this write, written in its transaction: an acknowledged write always has
   * its row, a refused one none (the API then records the refusal after the response).
   */
  audit?: NewAudit;
  randomOui?: string | Record<string, string>;
}

export interface ExportDocument {
  forge_export: 1;
  exported: string;
  distros: KindMap['distro'][];
  profiles: KindMap['profile'][];
  systems: KindMap['system'][];
  /** Absent in exports made before subnets existed. */
  subnets?: KindMap['subnet'][];
}

export interface ImportCounts {
  distros: number;
  profiles: number;
  systems: number;
  subnets: number;
}

export interface Store {
  list<K extends ObjectKind>(kind: K, filter?: ListFilter): Promise<KindMap[K][]>;
  /** Names only, same filter semantics as list (cheap at 100k objects). */
  listNames(kind: ObjectKind, filter?: ListFilter): Promise<string[]>;
  /**
   * One page of a listing in name order, for streaming it: the stored JSON
   * documents (or the names, with `names`) matching `filter` among the next
   * `limit` stored rows after the name `after`. `next` is where the page
   * ended (give it as `after` for the next page), undefined after the last.
   */
  listPage(kind: ObjectKind, filter: ListFilter, page: ListPage): Promise<{ rows: string[]; next: string | undefined }>;
  get<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K] | undefined>;
  /** Throws NOT_FOUND. */
  mustGet<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K]>;
  /** `obj` is complete (defaults already applied); ctime/mtime are set here. */
  create<K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions): Promise<KindMap[K]>;
  /** All or nothing: either every object is created or none. */
  bulkCreate<K extends ObjectKind>(kind: K, objs: KindMap[K][], opts?: WriteOptions): Promise<number>;
  /** Replace the stored object with `obj` (same name). */
  replace<K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions): Promise<KindMap[K]>;
  /**
   * Read-modify-write in one transaction: `fn` gets the stored object and
   * returns the new one (same name), or throws to change nothing. Throws
   * NOT_FOUND. Concurrent partial updates of one object cannot lose each
   * other's changes.
   */
  update<K extends ObjectKind>(kind: K, name: string, fn: (current: KindMap[K]) => KindMap[K], opts?: WriteOptions): Promise<KindMap[K]>;
  /**
   * Renaming updates references (profiles -> distro/parent, systems -> profile, events).
   * Subnets: no object names them (interfaces belong to one by address); writes refuse a
   * CIDR overlapping another subnet (SUBNET_OVERLAP), and once any subnet exists a system
   * write refuses a new or changed static address outside all of them (OUTSIDE_SUBNETS).
   */
  rename(kind: ObjectKind, from: string, to: string): Promise<void>;
  remove(kind: ObjectKind, name: string, opts?: RemoveOptions): Promise<string[]>;

  findSystemByMac(mac: string): Promise<KindMap['system'] | undefined>;
  findSystemByIp(ip: string): Promise<KindMap['system'] | undefined>;
  /**
   * Stored system documents as written (JSON text), for in-process indexes
   * (store/index.ts) and streamed listings: a page by name after `after`, or
   * the ones named (absent names are left out).
   */
  systemDocs(q: { after: string; limit: number } | { names: readonly string[] }): Promise<SystemDoc[]>;
  /**
   * Only a store several servers share has it: the names of systems any
   * server writes from now on (created, changed, renamed from or to,
   * removed), soon after each commit, in commit order; `reset` when some may
   * have been missed (the feed reconnected). Resolves with the stop function
   * once listening (what is read after that misses no write). `own`: the
   * names this process's own connections wrote (the rest are in `names`).
   */
  watchSystems?(fn: (names: string[], own: string[]) => void, reset: () => void): Promise<() => Promise<void>>;
  /**
   * Shared stores only (PostgreSQL): `KIND:NAME` (distro, profile, subnet, window) of every
   * such row any server commits; `down` when the feed is lost, `reset` once it is back (some
   * may have been missed). For store/cache.ts.
   */
  watchObjects?(fn: (keys: string[]) => void, reset: () => void, down: () => void): Promise<() => Promise<void>>;
  /** All MACs in use (for --mac=random collision checks). */
  macInUse(mac: string): Promise<boolean>;
  /**
   * The identity of this store's data (32 hex digits, made by its migration): every server of
   * one database has the same, two SQLite files never. The DHCP probe carries it.
   */
  clusterId(): Promise<string>;

  addEvent(ev: NewEvent): Promise<ForgeEvent>;
  /**
   * addEvent unless `once` finds the same event already recorded (undefined then). Decided in
   * the database, in call order with this server's other events: of several servers (or calls)
   * racing to record one event, exactly one records it (an installer's retried callback).
   */
  addEventOnce(ev: NewEvent, once: EventOnce): Promise<ForgeEvent | undefined>;
  listEvents(system: string, opts?: { since?: string; limit?: number }): Promise<ForgeEvent[]>;
  /** Latest event per system (for `forge status`). */
  latestEvents(): Promise<ForgeEvent[]>;
  /** Events of every system with id > afterId, oldest first (event stream replay). */
  eventsAfter(afterId: number, limit: number): Promise<ForgeEvent[]>;
  /**
   * Only a store several servers share has it: every event committed from
   * now on by any server, in id order (the event stream's one source then).
   * Returns the stop function.
   */
  watchEvents?(fn: (ev: ForgeEvent) => void, onError?: (e: unknown) => void): () => Promise<void>;

  /**
   * Only a store several servers share has these two. An address of a
   * dynamic pool is held for one MAC until `expires` (Unix ms: an offer's
   * hold, then the lease), decided by the database, so two servers answering
   * one subnet never hand one address to two clients. True when `mac` now
   * holds `ip` (a hold of its own is extended, never shortened; its holds of
   * other addresses are given back); false when another MAC holds it past `now`.
   */
  claimAddress?(ip: string, mac: string, expires: number, now: number): Promise<boolean>;
  /** `mac` gives `ip` back (RELEASE), or, with `holdUntil`, it is held for nobody until then (DECLINE). */
  freeAddress?(ip: string, mac: string, holdUntil?: number): Promise<void>;

  getLease(mac: string): Promise<Lease | undefined>;
  getLeaseByIp(ip: string): Promise<Lease | undefined>;
  putLease(lease: Lease): Promise<void>;
  /**
   * Several leases as one write (one COMMIT, resolved after it): for each, in order, undefined
   * when stored or the error of its upsert, which fails alone as its own putLease would. DHCP's
   * commit window hands its batch over in one call (issue 21 profile: a promise, a timing and a
   * queued item per lease before). Optional: without it each lease is a putLease.
   */
  putLeases?(leases: readonly Lease[]): Promise<(Error | undefined)[]>;
  listLeases(): Promise<Lease[]>;

  exportAll(): Promise<ExportDocument>;
  /** Replaces nothing: objects whose names exist are a DUPLICATE_NAME error unless `replace`. All or nothing. */
  importAll(doc: ExportDocument, opts?: { replace?: boolean }): Promise<ImportCounts>;

  // discovery (server/discovery/)
  getDiscovered(name: string): Promise<Discovered | undefined>;
  getDiscoveredByMac(mac: string): Promise<Discovered | undefined>;
  listDiscovered(): Promise<Discovered[]>;
  countDiscovered(): Promise<number>;
  /** Insert, or replace the record with the same MAC. */
  putDiscovered(d: Discovered): Promise<Discovered>;
  removeDiscovered(name: string): Promise<void>;
  /** By priority, then name. */
  listRules(): Promise<Rule[]>;
  getRule(name: string): Promise<Rule | undefined>;
  /** `create`: DUPLICATE_NAME when it exists; else insert or replace. */
  putRule(rule: Rule, create: boolean): Promise<Rule>;
  removeRule(name: string): Promise<void>;

  // security (core/access.ts)
  /** The system's install token and window (undefined: netboot never on since migration 4). */
  installWindow(system: string): Promise<InstallWindow | undefined>;
  /** A new install token and an open window (reinstall). Netboot on/off moves the window by itself (in the object write). */
  rotateInstallToken(system: string): Promise<InstallWindow>;
  /** The windows of these systems (those that have one), in one read: validate's page of systems. */
  installWindows(systems: readonly string[]): Promise<InstallWindow[]>;
  /** Up to `limit` windows of the systems named after `after`, in name order: store/cache.ts loads the whole table with it. */
  installWindowsPage(after: string, limit: number): Promise<InstallWindow[]>;
  /** `hash`: hex SHA-256 of the token (the token itself is never stored). */
  createApiToken(role: Role, comment: string, hash: string): Promise<ApiTokenInfo>;
  listApiTokens(): Promise<ApiTokenInfo[]>;
  /** The live token with this digest (revoked ones are not found). */
  findApiToken(hash: string): Promise<ApiTokenInfo | undefined>;
  /** Throws NOT_FOUND. Revoking twice is not an error. */
  revokeApiToken(id: number): Promise<ApiTokenInfo>;
  addAudit(e: NewAudit): Promise<void>;
  /** Newest `limit` (default 1000) entries matching, oldest first. `object`: TYPE/NAME, TYPE or NAME. */
  listAudit(q?: { since?: string; object?: string; limit?: number }): Promise<AuditEntry[]>;
  /** One retention step (at most `chunk` deletions): events older than `before`, and beyond `perSystem` per system. */
  pruneEvents(before: string, perSystem: number, chunk: number): Promise<number>;
  pruneAudit(before: string, chunk: number): Promise<number>;

  integrityCheck(): Promise<string>;
  close(): Promise<void>;
}
