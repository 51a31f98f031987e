/**
 * The in-process system index: MAC -> system and IP -> system answered from
 * memory, for the paths that run per packet or per boot request (DHCP,
 * TFTP/HTTP boot configs, discovery). On PostgreSQL every such lookup was a
 * round trip (p99 4.9 ms at 100,000 systems under load); from memory it is a
 * Map lookup and a JSON.parse of the stored document.
 *
 * Kept fresh by two feeds into one refresh loop:
 *   - this process's own writes go through the wrapper below, and a write's
 *     promise resolves only after the index has re-read what it touched (a
 *     client that adds a system and then PXE-boots it is never told "unknown");
 *   - other servers' writes arrive as the names PostgreSQL NOTIFYs at commit
 *     (store/postgres/changes.ts, migration 6), re-read in batches; the
 *     NOTIFYs of this process's own connections are not re-read.
 * Re-reads are serialised, so a later read is never overwritten by an
 * earlier one; the documents are the database's, never rebuilt here.
 *
 * A MAC or address the index does not hold:
 *   - on a store only this process writes (SQLite: the data directory's
 *     lock admits one forge, and every system write goes through
 *     indexedStore below) the miss is the answer once the index is loaded:
 *     an unknown DHCP client costs no store query. It stops being the
 *     answer the moment a re-read fails (then every lookup goes to the store
 *     until a full reload succeeds, retried every second);
 *   - on a shared store (PostgreSQL, watchSystems) it falls through to the
 *     store: a system added on another server a moment ago, before its
 *     notification arrived, is found at once.
 * Everything goes to the store while the index is still loading. What the
 * index can hold back is a change to a system it already knows, made on
 * another server in the milliseconds before its notification arrives.
 */
import type { KindMap, ObjectKind, System } from '../core/model.js';
import type { ExportDocument, ImportCounts, RemoveOptions, Store, SystemDoc, WriteOptions } from './store.js';
import { overlayStore } from './overlay.js';
import { storedTextOf } from './common.js';

const PAGE = 5000;

export interface IndexStats {
  ready: boolean;
  systems: number;
  macs: number;
  ips: number;
  /** Lookups answered from memory, and those that went to the store. */
  hits: number;
  misses: number;
  /** Whether a miss is the answer (store written by this process only, index loaded, no failed re-read). */
  authoritative: boolean;
  /** Misses answered "none" from memory (no store query). */
  absent: number;
}

/** Delay before a full reload after a failed re-read. */
const RETRY_MS = 1000;

export class SystemIndex {
  private readonly docs = new Map<string, string>();
  private readonly byMac = new Map<string, string>();
  private readonly byIp = new Map<string, string>();
  /** name -> the MACs and IPs it holds in the maps (what to take out when it changes). */
  private readonly keys = new Map<string, { macs: string[]; ips: string[] }>();
  private ready = false;
  private dirty = new Set<string>();
  /** Documents this process just created, as stored, waiting for the refresh loop. */
  private readonly known = new Map<string, { data: string; doc: System | undefined }>();
  private reloadWanted = false;
  private loop: Promise<void> | undefined;
  private stopFeed: (() => Promise<void>) | undefined;
  private closed = false;
  private hits = 0;
  private misses = 0;
  private absent = 0;
  /** Only this process writes the store (no change feed to listen to). */
  private readonly exclusive: boolean;
  private retry: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly store: Store,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {
    this.exclusive = store.watchSystems === undefined;
  }

  /** Listens (when the store is shared), then loads in the background; lookups go to the store until loaded. */
  async start(): Promise<void> {
    if (this.store.watchSystems !== undefined) {
      this.stopFeed = await this.store.watchSystems(
        // Only other servers' writes: every write of this process's own connections goes through
        // indexedStore below, which applies it (create) or re-reads it (the rest) after its
        // commit, so re-reading it again at its NOTIFY was a SELECT per batch for nothing (issue
        // 19, API adds). A later write by another server notifies after it (commit order) and is
        // re-read as before.
        (names) => void (names.length > 0 ? this.refresh(names).catch(this.onError) : undefined),
        () => void this.reload().catch(this.onError),
      );
    }
    void this.reload().catch(this.onError);
  }

  /** Resolves when the first load (and what queued behind it) is done. */
  async loaded(): Promise<void> {
    while (!this.ready && !this.closed) await (this.loop ?? new Promise((r) => setTimeout(r, 10)));
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.stopFeed?.();
    await this.loop?.catch(() => undefined);
  }

  stats(): IndexStats {
    return {
      ready: this.ready, systems: this.docs.size, macs: this.byMac.size, ips: this.byIp.size,
      hits: this.hits, misses: this.misses, authoritative: this.ready && this.exclusive, absent: this.absent,
    };
  }

  /** The system holding `mac` as the index has it (no fall-through; tests and `forge status`). */
  peekMac(mac: string): string | undefined {
    return this.byMac.get(mac.toLowerCase());
  }

  peekIp(ip: string): string | undefined {
    return this.byIp.get(ip);
  }

  /**
   * Whether the index knows no system holds `mac` (or `ip`), synchronously: true only where a miss
   * is the answer (loaded, exclusive, no failed re-read), exactly when findSystemByMac would
   * resolve undefined without asking the store. DHCP asks per packet, so an unknown client costs
   * no store call and no promise (issue 21 profile). Counted like findSystemByMac's absent answers.
   */
  absentMac(mac: string): boolean {
    return this.absentIn(this.byMac, mac.toLowerCase());
  }

  absentIp(ip: string): boolean {
    return this.absentIn(this.byIp, ip);
  }

  /** from()'s null, without parsing the document of a key it holds. */
  private absentIn(map: Map<string, string>, key: string): boolean {
    if (!this.ready || !this.exclusive) return false;
    const name = map.get(key);
    if (name !== undefined && this.docs.has(name)) return false;
    this.absent++;
    return true;
  }

  /** Re-reads these systems (absent ones leave the index); resolves once applied. */
  refresh(names: Iterable<string>): Promise<void> {
    for (const n of names) this.dirty.add(n);
    return this.kick();
  }

  /**
   * A system this process just created, with the document as stored: applied in the refresh
   * loop's order without a re-read (on PostgreSQL the re-read was a SELECT per write batch,
   * issue 19 profile of API adds), nor at its commit's NOTIFY (this process's own). A write of
   * another server after it notifies after it and is re-read as every other write is.
   */
  created(name: string, data: string, doc?: System): Promise<void> {
    // `doc`: the object `data` is the text of, so applying it needs no JSON.parse.
    this.known.set(name, { data, doc });
    return this.kick();
  }

  /** Everything again (after a feed gap, an import, a profile rename). */
  reload(): Promise<void> {
    this.reloadWanted = true;
    return this.kick();
  }

  private kick(): Promise<void> {
    // One loop at a time; a call while it runs is served by its next round.
    const run = async (): Promise<void> => {
      try {
        await rounds();
      } catch (e) {
        // What the failed read was to apply is unknown: nothing is answered from memory
        // (hits could be stale, misses wrong) until a full reload succeeds.
        this.ready = false;
        this.reloadWanted = true;
        if (!this.closed && this.retry === undefined) {
          this.retry = setTimeout(() => {
            this.retry = undefined;
            void this.kick().catch(this.onError);
          }, RETRY_MS);
          this.retry.unref();
        }
        throw e;
      }
    };
    const rounds = async (): Promise<void> => {
      while (!this.closed && (this.reloadWanted || this.dirty.size > 0 || this.known.size > 0)) {
        if (this.reloadWanted) {
          this.reloadWanted = false;
          this.dirty.clear();
          this.known.clear();
          await this.loadAll();
          continue;
        }
        // A name also waiting for a re-read gets the re-read (the database's newest).
        for (const [n, d] of this.known) if (!this.dirty.has(n)) this.apply(n, d.data, d.doc);
        this.known.clear();
        const names = [...this.dirty];
        this.dirty.clear();
        for (let i = 0; i < names.length; i += PAGE) {
          const chunk = names.slice(i, i + PAGE);
          const found = new Map((await this.store.systemDocs({ names: chunk })).map((d) => [d.name, d.data]));
          for (const n of chunk) this.apply(n, found.get(n));
        }
      }
    };
    const prev = this.loop ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(run);
    this.loop = next;
    void next.finally(() => {
      if (this.loop === next) this.loop = undefined;
    }).catch(() => undefined);
    return next;
  }

  private async loadAll(): Promise<void> {
    const seen = new Set<string>();
    let after = '';
    for (;;) {
      const page: SystemDoc[] = await this.store.systemDocs({ after, limit: PAGE });
      for (const d of page) {
        seen.add(d.name);
        this.apply(d.name, d.data);
      }
      if (page.length < PAGE || this.closed) break;
      after = page[page.length - 1]!.name;
    }
    for (const n of [...this.docs.keys()]) if (!seen.has(n)) this.apply(n, undefined);
    this.ready = true;
  }

  private apply(name: string, data: string | undefined, doc?: System): void {
    const old = this.keys.get(name);
    // The text the index already holds, its keys still pointing here (a re-read of this process's
    // own write, which the commit's NOTIFY brings): nothing to parse or change. A key another
    // system took meanwhile in the index is set again below, as before.
    if (data !== undefined && old !== undefined && this.docs.get(name) === data && old.macs.every((m) => this.byMac.get(m) === name) && old.ips.every((a) => this.byIp.get(a) === name)) return;
    if (old !== undefined) {
      for (const m of old.macs) if (this.byMac.get(m) === name) this.byMac.delete(m);
      for (const a of old.ips) if (this.byIp.get(a) === name) this.byIp.delete(a);
    }
    if (data === undefined) {
      this.docs.delete(name);
      this.keys.delete(name);
      return;
    }
    const s = doc ?? (JSON.parse(data) as System);
    const k = { macs: [] as string[], ips: [] as string[] };
    for (const i of Object.values(s.interfaces)) {
      if (i.mac_address !== '') k.macs.push(i.mac_address.toLowerCase());
      if (i.ip_address !== '') k.ips.push(i.ip_address);
    }
    for (const m of k.macs) this.byMac.set(m, name);
    for (const a of k.ips) this.byIp.set(a, name);
    this.docs.set(name, data);
    this.keys.set(name, k);
  }

  /** The system, null when the index knows there is none, undefined when the store must say. */
  private from(map: Map<string, string>, key: string): System | null | undefined {
    if (!this.ready) return undefined;
    const name = map.get(key);
    const data = name === undefined ? undefined : this.docs.get(name);
    if (data !== undefined) return JSON.parse(data) as System;
    return this.exclusive ? null : undefined;
  }

  private async lookup(map: Map<string, string>, key: string, ask: () => Promise<System | undefined>): Promise<System | undefined> {
    const hit = this.from(map, key);
    if (hit === null) {
      this.absent++;
      return undefined;
    }
    if (hit !== undefined) {
      this.hits++;
      return hit;
    }
    this.misses++;
    return ask();
  }

  findSystemByMac(mac: string): Promise<System | undefined> {
    return this.lookup(this.byMac, mac.toLowerCase(), () => this.store.findSystemByMac(mac));
  }

  findSystemByIp(ip: string): Promise<System | undefined> {
    return this.lookup(this.byIp, ip, () => this.store.findSystemByIp(ip));
  }
}

/**
 * `store` with findSystemByMac/findSystemByIp answered by `index`, and every
 * write that can touch a system followed by the index's re-read before its
 * promise resolves. Everything else is the store's, unchanged (the API's
 * reads by name still go to the store: an edit on another server is what
 * the next API read shows).
 */
export function indexedStore(store: Store, index: SystemIndex): Store {
  const after = async <T>(p: Promise<T>, names: (r: T) => Iterable<string> | 'all'): Promise<T> => {
    const r = await p;
    const n = names(r);
    await (n === 'all' ? index.reload() : index.refresh(n));
    return r;
  };
  const touches = (kind: ObjectKind): boolean => kind === 'system';
  const overrides: Partial<Store> = {
    findSystemByMac: (mac) => index.findSystemByMac(mac),
    findSystemByIp: (ip) => index.findSystemByIp(ip),
    create: <K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions) => {
      const p = store.create(kind, obj, opts);
      // The created document is what the store wrote: the backend's stored text when it kept it
      // (store/common.ts storedAs), else JSON.stringify of it, which is that text.
      return touches(kind) ? p.then(async (o) => (await index.created(o.name, storedTextOf(o) ?? JSON.stringify(o), o as System), o)) : p;
    },
    bulkCreate: <K extends ObjectKind>(kind: K, objs: KindMap[K][], opts?: WriteOptions) => {
      const p = store.bulkCreate(kind, objs, opts);
      return touches(kind) ? after(p, () => objs.map((o) => o.name)) : p;
    },
    replace: <K extends ObjectKind>(kind: K, obj: KindMap[K], opts?: WriteOptions) => {
      const p = store.replace(kind, obj, opts);
      return touches(kind) ? after(p, (o) => [o.name]) : p;
    },
    update: <K extends ObjectKind>(kind: K, name: string, fn: (current: KindMap[K]) => KindMap[K], opts?: WriteOptions) => {
      const p = store.update(kind, name, fn, opts);
      return touches(kind) ? after(p, () => [name]) : p;
    },
    // A profile's rename rewrites its systems' documents (their profile field): all again.
    rename: (kind: ObjectKind, from: string, to: string) => after(store.rename(kind, from, to), () => (kind === 'system' ? [from, to] : kind === 'profile' ? 'all' : [])),
    remove: (kind: ObjectKind, name: string, opts?: RemoveOptions) =>
      after(store.remove(kind, name, opts), (gone) => gone.filter((g) => g.startsWith('system ')).map((g) => g.slice('system '.length))),
    importAll: (doc: ExportDocument, opts?: { replace?: boolean }): Promise<ImportCounts> => after(store.importAll(doc, opts), () => 'all'),
    close: async () => {
      await index.stop();
      await store.close();
    },
  };
  return overlayStore(store, overrides);
}
