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
 * Install windows on a shared store are held whole (WindowTable below):
 * there is one per netboot system, a boot config needs its system's, and a
 * site boots systems it has not booted for days, so a per-name cache missed
 * on nearly every config (at a million systems, a PostgreSQL round trip in
 * ~every config: p50 0.36 ms, p99 2.9 ms, against SQLite's 39 us / 0.19 ms).
 * On SQLite the per-name cache stays: its read is a local B-tree walk.
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
  /** The whole-table window cache: kept (shared stores only), whether it answers, and the windows it holds. */
  windowTable: { kept: boolean; ready: boolean; windows: number };
}

/** Windows read per store call while the table loads (a million windows: 200 calls). */
const WINDOW_PAGE = 5000;
/** Names re-read per store call after changes. */
const WINDOW_BATCH = 1000;

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
  /** Shared stores only: every window in memory, once loaded (undefined on SQLite). */
  private readonly table: WindowTable | undefined;

  constructor(private readonly store: Store) {
    this.live = store.watchObjects === undefined;
    this.table = store.watchObjects === undefined ? undefined : new WindowTable(store);
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
        this.table?.reload();
      },
      () => {
        lost = true;
        this.live = false;
        this.dropAll();
        this.table?.off();
      },
    );
    // Resolved after LISTEN took effect, unless the first try failed (`down` said so; the
    // reconnect's `reset` turns the cache on). The table loads only while the feed is up: a
    // change it cannot hear about would stay in it.
    if (!lost) {
      this.live = true;
      this.table?.reload();
    }
  }

  async stop(): Promise<void> {
    this.live = false;
    this.dropAll();
    this.table?.off();
    await this.stopFeed?.();
    await this.table?.idle();
  }

  stats(): CacheStats {
    return { live: this.live, hits: this.hits, misses: this.misses, windowTable: { kept: this.table !== undefined, ready: this.table?.ready === true, windows: this.table?.size ?? 0 } };
  }

  /** Resolves once the window table has loaded (or at once without one); for the bench and tests. */
  windowsLoaded(): Promise<void> {
    return this.table?.loaded() ?? Promise.resolve();
  }

  /** Another server (or this one, through the feed) wrote these `KIND:NAME` rows. */
  changed(keys: readonly string[]): void {
    this.gen++;
    for (const k of keys) {
      const colon = k.indexOf(':');
      const kind = k.slice(0, colon);
      if (kind === 'window') {
        this.windows.delete(k.slice(colon + 1));
        this.table?.stale([k.slice(colon + 1)]);
      } else this.dropObjects();
    }
  }

  dropObjects(): void {
    this.gen++;
    for (const m of this.docs.values()) m.clear();
    this.subnets = undefined;
  }

  dropWindows(names: Iterable<string> | 'all'): void {
    this.gen++;
    if (names === 'all') {
      this.windows.clear();
      if (this.live) this.table?.reload();
    } else {
      const list = [...names];
      for (const n of list) this.windows.delete(n);
      this.table?.stale(list);
    }
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
      const held = this.table?.answer(s);
      if (held !== undefined) {
        if (held !== null) out.push(JSON.parse(held) as InstallWindow);
        continue;
      }
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
    const held = this.table?.answer(system);
    if (held !== undefined) {
      this.hits++;
      return held === null ? undefined : (JSON.parse(held) as InstallWindow);
    }
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
 * Every install window of a shared store, kept as the system index keeps
 * systems (store/index.ts): loaded whole in pages once the change feed is
 * up, then each name a change touches (a NOTIFY from any server, or this
 * process's own write when it returns) is marked stale and re-read in
 * batches, one re-read at a time. A name is answered from the table only
 * when the table is loaded and the name is not stale, so an answer is never
 * older than the last change this process has heard of; anything else goes
 * to the store (the per-name cache above). A change heard while its name is
 * being re-read keeps the name stale for the next round. A failed read, the
 * feed's loss and a write that can touch every window (a recursive remove,
 * an import) take the table out of use until a full reload succeeds
 * (retried every second while the feed is up).
 */
class WindowTable {
  private readonly held = new Map<string, string>();
  /** Name -> the change count when it was last marked (a re-read clears it only if unchanged since). */
  private readonly dirty = new Map<string, number>();
  private marks = 0;
  private isReady = false;
  /** Bumped by reload/off: a load or re-read of an older epoch stores nothing. */
  private epoch = 0;
  /** Between reload() and off(): changes are tracked (off, they would only pile up). */
  private active = false;
  /** A full load is wanted (reload); the loop runs it before any re-read. */
  private full = false;
  private running: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];

  constructor(private readonly store: Store) {}

  get ready(): boolean {
    return this.isReady;
  }

  get size(): number {
    return this.held.size;
  }

  /** The window's JSON, null for "none", undefined when the table cannot say. */
  answer(system: string): string | null | undefined {
    if (!this.isReady || this.dirty.has(system)) return undefined;
    return this.held.get(system) ?? null;
  }

  stale(names: readonly string[]): void {
    if (names.length === 0 || !this.active) return;
    for (const n of names) this.dirty.set(n, ++this.marks);
    this.kick();
  }

  /** Out of use, and every change forgotten (the feed is gone: the next reload starts from scratch). */
  off(): void {
    this.epoch++;
    this.active = false;
    this.full = false;
    this.isReady = false;
    this.held.clear();
    this.dirty.clear();
    clearTimeout(this.retry);
    this.retry = undefined;
  }

  /** Out of use until a full load that starts now has finished. */
  reload(): void {
    this.off();
    this.active = true;
    this.kick(true);
  }

  loaded(): Promise<void> {
    return this.isReady ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The running load or re-read, if any (stop waits for it). */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private kick(full = false): void {
    if (full) this.full = true;
    if (this.running !== undefined) return;
    const run = this.work().finally(() => {
      this.running = undefined;
      if (this.full || (this.isReady && this.dirty.size > 0)) this.kick();
    });
    this.running = run;
  }

  private async work(): Promise<void> {
    const epoch = this.epoch;
    try {
      if (this.full) {
        this.full = false;
        await this.loadAll(epoch);
        if (epoch !== this.epoch) return;
        this.isReady = true;
        for (const w of this.waiters.splice(0)) w();
      }
      if (this.isReady) await this.reread(epoch);
    } catch {
      // The table's answers would be unknown: out of use, and a full reload in a second (the
      // per-name path answers meanwhile, and it reports its own errors to its callers).
      if (epoch !== this.epoch) return;
      this.off();
      const e = this.epoch;
      this.retry = setTimeout(() => {
        if (e === this.epoch) this.reload();
      }, 1000);
      this.retry.unref();
    }
  }

  private async loadAll(epoch: number): Promise<void> {
    let after = '';
    for (;;) {
      const page = await this.store.installWindowsPage(after, WINDOW_PAGE);
      if (epoch !== this.epoch) return;
      for (const w of page) this.held.set(w.system, JSON.stringify(w));
      if (page.length < WINDOW_PAGE) return;
      after = page[page.length - 1]!.system;
    }
  }

  private async reread(epoch: number): Promise<void> {
    while (this.dirty.size > 0) {
      const batch = [...this.dirty].slice(0, WINDOW_BATCH);
      const found = await this.store.installWindows(batch.map(([n]) => n));
      if (epoch !== this.epoch) return;
      const by = new Map(found.map((w) => [w.system, w]));
      for (const [name, mark] of batch) {
        if (this.dirty.get(name) !== mark) continue; // changed again while read: the next round
        const w = by.get(name);
        if (w === undefined) this.held.delete(name);
        else this.held.set(name, JSON.stringify(w));
        this.dirty.delete(name);
      }
    }
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
