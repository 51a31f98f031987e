/**
 * The in-process object cache: distros, profiles, the subnet list and
 * install windows, read from memory by the paths that run per request
 * (boot configs, DHCP's boot loaders, autoinstall renders, validate).
 * Profiled on PostgreSQL, a boot config was four round trips (profile,
 * distro, install window, subnets), each a socket write that wakes a
 * backend: ~1.5 ms of CPU per request against 0.8 ms on SQLite. These
 * tables are small and change rarely; systems are store/index.ts's.
 *
 * Kept right by two feeds, as the system index is:
 *   - this process's writes go through the wrapper below, which drops what
 *     a write can have touched when it returns (a distro/profile/subnet
 *     write drops all three kinds: renames and removals cascade; a system
 *     write drops that system's window);
 *   - other servers' writes arrive as PostgreSQL NOTIFYs at commit
 *     (migration 7, `KIND:NAME`); while that feed is down nothing is
 *     cached, and when it is back everything is dropped.
 * A read that started before a drop is not stored (generation check), so
 * a slow read can never put back what a write just replaced. Documents are
 * kept as JSON text and parsed per read: callers get their own copy.
 *
 * What the cache can hold back, as the index can: a change made on another
 * server in the milliseconds before its notification arrives. The API's
 * reads by name (`mustGet`, listings) always go to the store.
 */
import type { InstallWindow } from '../core/access.js';
import type { KindMap, ObjectKind } from '../core/model.js';
import type { ExportDocument, ImportCounts, ListFilter, RemoveOptions, Store, WriteOptions } from './store.js';
import { overlayStore } from './overlay.js';

type Cached = 'distro' | 'profile' | 'subnet';
const CACHED: ReadonlySet<string> = new Set<Cached>(['distro', 'profile', 'subnet']);
/** Entries per map at most; a full map starts again (a site with more profiles than this is not the common case). */
const MAX_ENTRIES = 100_000;

export interface CacheStats {
  live: boolean;
  hits: number;
  misses: number;
}

export class ObjectCache {
  private readonly docs = new Map<Cached, Map<string, string | null>>([['distro', new Map()], ['profile', new Map()], ['subnet', new Map()]]);
  private subnets: string | undefined;
  private readonly windows = new Map<string, string | null>();
  /** Bumped by every drop: a read that began under another generation is not stored. */
  private gen = 0;
  /** False while a shared store's feed is down (or not yet up): nothing is cached then. */
  private live: boolean;
  private stopFeed: (() => Promise<void>) | undefined;
  private hits = 0;
  private misses = 0;

  constructor(private readonly store: Store) {
    this.live = store.watchObjects === undefined;
  }

  /** Listens when the store is shared; resolves once listening (or after a failed first try: the cache then stays off until the feed is back). */
  async start(): Promise<void> {
    if (this.store.watchObjects === undefined) return;
    let lost = false;
    this.stopFeed = await this.store.watchObjects(
      (keys) => this.changed(keys),
      () => {
        this.dropAll();
        this.live = true;
      },
      () => {
        lost = true;
        this.live = false;
        this.dropAll();
      },
    );
    // Resolved after LISTEN took effect, unless the first try failed (`down` said so; the
    // reconnect's `reset` turns the cache on).
    if (!lost) this.live = true;
  }

  async stop(): Promise<void> {
    this.live = false;
    this.dropAll();
    await this.stopFeed?.();
  }

  stats(): CacheStats {
    return { live: this.live, hits: this.hits, misses: this.misses };
  }

  /** Another server (or this one, through the feed) wrote these `KIND:NAME` rows. */
  changed(keys: readonly string[]): void {
    this.gen++;
    for (const k of keys) {
      const colon = k.indexOf(':');
      const kind = k.slice(0, colon);
      if (kind === 'window') this.windows.delete(k.slice(colon + 1));
      else this.dropObjects();
    }
  }

  dropObjects(): void {
    this.gen++;
    for (const m of this.docs.values()) m.clear();
    this.subnets = undefined;
  }

  dropWindows(names: Iterable<string> | 'all'): void {
    this.gen++;
    if (names === 'all') this.windows.clear();
    else for (const n of names) this.windows.delete(n);
  }

  dropAll(): void {
    this.dropObjects();
    this.dropWindows('all');
  }

  private put<V>(map: Map<string, V>, gen: number, key: string, v: V): void {
    if (!this.live || gen !== this.gen) return;
    if (map.size >= MAX_ENTRIES) map.clear();
    map.set(key, v);
  }

  async get<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    const map = this.docs.get(kind as Cached);
    if (map === undefined) return this.store.get(kind, name);
    const hit = map.get(name);
    if (hit !== undefined) {
      this.hits++;
      return hit === null ? undefined : (JSON.parse(hit) as KindMap[K]);
    }
    this.misses++;
    const gen = this.gen;
    const v = await this.store.get(kind, name);
    this.put(map, gen, name, v === undefined ? null : JSON.stringify(v));
    return v;
  }

  /** Every subnet (no filter); other lists go to the store. */
  async list<K extends ObjectKind>(kind: K, filter?: ListFilter): Promise<KindMap[K][]> {
    if (kind !== 'subnet' || (filter !== undefined && Object.keys(filter).length > 0)) return this.store.list(kind, filter);
    if (this.subnets !== undefined) {
      this.hits++;
      return JSON.parse(this.subnets) as KindMap[K][];
    }
    this.misses++;
    const gen = this.gen;
    const v = await this.store.list(kind);
    if (this.live && gen === this.gen) this.subnets = JSON.stringify(v);
    return v;
  }

  /** Several windows in one store read (those not held); validate primes a page of systems with it. */
  async installWindows(systems: readonly string[]): Promise<InstallWindow[]> {
    const out: InstallWindow[] = [];
    const ask: string[] = [];
    for (const s of systems) {
      const hit = this.windows.get(s);
      if (hit === undefined) ask.push(s);
      else if (hit !== null) out.push(JSON.parse(hit) as InstallWindow);
    }
    this.hits += systems.length - ask.length;
    this.misses += ask.length;
    if (ask.length === 0) return out;
    const gen = this.gen;
    const found = await this.store.installWindows(ask);
    const by = new Map(found.map((w) => [w.system, w]));
    for (const s of ask) this.put(this.windows, gen, s, by.has(s) ? JSON.stringify(by.get(s)) : null);
    return [...out, ...found];
  }

  async installWindow(system: string): Promise<InstallWindow | undefined> {
    const hit = this.windows.get(system);
    if (hit !== undefined) {
      this.hits++;
      return hit === null ? undefined : (JSON.parse(hit) as InstallWindow);
    }
    this.misses++;
    const gen = this.gen;
    const w = await this.store.installWindow(system);
    this.put(this.windows, gen, system, w === undefined ? null : JSON.stringify(w));
    return w;
  }
}

/**
 * `store` with distro/profile gets, the unfiltered subnet list and install
 * windows answered by `cache`, and every write followed by the drop of what
 * it can have touched (before its promise resolves, failed or not).
 */
export function cachedStore(store: Store, cache: ObjectCache): Store {
  const after = async <T>(p: Promise<T>, drop: () => void): Promise<T> => {
    try {
      return await p;
    } finally {
      drop();
    }
  };
  /** What a write of `kind` touching `names` can have changed. */
  const dropper = (kind: ObjectKind, names: () => Iterable<string> | 'all'): (() => void) =>
    CACHED.has(kind)
      ? () => {
          // A profile or distro removed recursively takes systems (and their windows) with it.
          cache.dropObjects();
          cache.dropWindows('all');
        }
      : kind === 'system'
        ? () => cache.dropWindows(names())
        : () => undefined;
  const overrides: Partial<Store> = {
    get: (kind, name) => cache.get(kind, name),
    list: (kind, filter) => cache.list(kind, filter),
    installWindow: (system) => cache.installWindow(system),
    installWindows: (systems) => cache.installWindows(systems),
    rotateInstallToken: (system) => after(store.rotateInstallToken(system), () => cache.dropWindows([system])),
    create: <K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions) => after(store.create(kind, obj, opts), dropper(kind, () => [obj.name])),
    bulkCreate: <K extends ObjectKind>(kind: K, objs: KindMap[K][], opts?: WriteOptions) => after(store.bulkCreate(kind, objs, opts), dropper(kind, () => objs.map((o) => o.name))),
    replace: <K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions) => after(store.replace(kind, obj, opts), dropper(kind, () => [obj.name])),
    update: <K extends ObjectKind>(kind: K, name: string, fn: (current: KindMap[K]) => KindMap[K], opts?: WriteOptions) =>
      after(store.update(kind, name, fn, opts), dropper(kind, () => [name])),
    rename: (kind: ObjectKind, from: string, to: string) => after(store.rename(kind, from, to), dropper(kind, () => [from, to])),
    remove: (kind: ObjectKind, name: string, opts?: RemoveOptions) => after(store.remove(kind, name, opts), dropper(kind, () => [name])),
    importAll: (doc: ExportDocument, opts?: { replace?: boolean }): Promise<ImportCounts> => after(store.importAll(doc, opts), () => cache.dropAll()),
    close: async () => {
      await cache.stop();
      await store.close();
    },
  };
  return overlayStore(store, overrides);
}
