/**
 * The in-memory lease index of managed mode: the hot path reads and writes
 * these maps, and every change is also written to the store. OFFERs are held
 * in memory only (RFC 2131 s4.3.1 lets a server reserve an offered address
 * without recording it).
 *
 * Durability: a binding is committed before its DHCPACK leaves (`bind`
 * resolves after the COMMIT), as Kea's memfile appends the lease line before
 * it answers. The store groups the writes of one event-loop turn into one
 * COMMIT (store/sqlite/queue.ts; PostgreSQL: store/postgres/ordered.ts), so
 * under load one commit carries every ACK of that turn.
 */
import type { LiveLeases } from '../../deps.js';
import type { Lease, LeaseState } from '../../core/model.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import { intToIp, ipToInt, type Pool } from './net.js';

export interface LeaseEntry {
  mac: string;
  ip: number;
  state: LeaseState;
  /** Unix ms. */
  expires: number;
  hostname: string;
  system: string;
}

/**
 * How long a binding waits for others to share its COMMIT (ms). One SQLite commit writes the
 * changed pages to the WAL (about three 4 KiB frames whether it carries one lease or fifty), so
 * at 3,000 ACKs/s a commit per event-loop turn was a tenth of forge's CPU (issue 21 profile);
 * the ACK waits at most this long for it. 8 ms rather than 2: under perfdhcp at 3,000 DORA/s
 * (forge and Kea interleaved, load 4-7) it gave 127-149 µs of CPU per ACK against 152-154 µs,
 * for at most 6 ms more before an ACK, which DHCP clients (retransmitting after 4 s, RFC 2131
 * s4.1) do not notice. Durability is unchanged: the ACK still waits for its commit.
 */
export const COMMIT_WINDOW_MS = 8;

/** How long a declined address stays out of the pool (RFC 2131 s4.3.3: the server must mark it unavailable). */
export const DECLINE_HOLD_MS = 10 * 60_000;

const poolKey = (p: Pool): string => `${p.subnet.cidr} ${p.first}-${p.last}`;

export class LeaseTable {
  private readonly byMac = new Map<string, LeaseEntry>();
  private readonly byIp = new Map<number, LeaseEntry>();
  /**
   * Where each pool's next hand-out starts, by the pool's range: a refresh of the settings
   * (settings.ts, every second) makes new Pool objects, and the round robin must not start over.
   */
  private readonly cursor = new Map<string, number>();
  /** Bindings waiting for the commit window to close, and the batches being committed (awaited on close). */
  private batch: { e: LeaseEntry; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private commitTimer: NodeJS.Timeout | undefined;
  private readonly writing = new Set<Promise<unknown>>();
  persistErrors = 0;

  constructor(
    private readonly store: Store | undefined,
    private readonly log: Logger,
    /**
     * Start each pool's round robin at a random address instead of its first (servers sharing
     * one pool through the database): two servers that both start at the first address would
     * ask for each other's addresses, one refused claim after another.
     */
    private readonly spread = false,
  ) {}

  /** Loads persisted leases (bound/declined ones still valid) at start. */
  async load(now: number): Promise<number> {
    if (this.store === undefined) return 0;
    let n = 0;
    for (const l of await this.store.listLeases()) {
      const ip = ipToInt(l.ip);
      if (ip === undefined || l.expires <= now || l.state === 'released' || l.state === 'offered') continue;
      this.index({ mac: l.mac, ip, state: l.state, expires: l.expires, hostname: l.hostname, system: l.system });
      n++;
    }
    return n;
  }

  private index(e: LeaseEntry): void {
    const old = this.byMac.get(e.mac);
    if (old !== undefined && this.byIp.get(old.ip) === old) this.byIp.delete(old.ip);
    const holder = this.byIp.get(e.ip);
    if (holder !== undefined && holder.mac !== e.mac && this.byMac.get(holder.mac) === holder) this.byMac.delete(holder.mac);
    this.byMac.set(e.mac, e);
    this.byIp.set(e.ip, e);
  }

  /** Leases held at `now` (offered or bound, not expired): the metrics count them per pool. */
  *held(now: number): IterableIterator<LeaseEntry> {
    for (const e of this.byIp.values()) if ((e.state === 'bound' || e.state === 'offered') && e.expires > now) yield e;
  }

  byMacAddr(mac: string): LeaseEntry | undefined {
    return this.byMac.get(mac);
  }

  byAddress(ip: number): LeaseEntry | undefined {
    return this.byIp.get(ip);
  }

  /** Whether `ip` may be given to `mac`: nobody else holds it (an expired or released lease does not count). */
  availableFor(ip: number, mac: string, now: number): boolean {
    const e = this.byIp.get(ip);
    if (e === undefined || e.mac === mac && e.state !== 'declined') return true;
    if (e.state === 'released') return true;
    return e.expires <= now;
  }

  /** Next free address of the pool for `mac` (round robin from the last hand-out), or undefined when exhausted. */
  allocate(pool: Pool, mac: string, now: number, reserved: (ip: number) => boolean): number | undefined {
    const size = pool.last - pool.first + 1;
    const key = poolKey(pool);
    let start = this.cursor.get(key) ?? (this.spread ? this.randomIn(pool) : pool.first);
    if (start < pool.first || start > pool.last) start = pool.first;
    for (let i = 0; i < size; i++) {
      const ip = pool.first + ((start - pool.first + i) % size);
      if (this.availableFor(ip, mac, now) && !reserved(ip)) {
        this.cursor.set(key, ip === pool.last ? pool.first : ip + 1);
        return ip;
      }
    }
    return undefined;
  }

  /** The next hand-out of `pool` starts at a random address (after another server's claim was met there). */
  scatter(pool: Pool): void {
    this.cursor.set(poolKey(pool), this.randomIn(pool));
  }

  private randomIn(pool: Pool): number {
    return pool.first + Math.floor(Math.random() * (pool.last - pool.first + 1));
  }

  offer(mac: string, ip: number, now: number, holdMs: number, system: string, hostname: string): void {
    const cur = this.byMac.get(mac);
    // An offer never shortens a bound lease of the same address (INIT-REBOOT after reboot).
    if (cur !== undefined && cur.ip === ip && cur.state === 'bound' && cur.expires > now) return;
    this.index({ mac, ip, state: 'offered', expires: now + holdMs, hostname, system });
  }

  /**
   * Binds `ip` to `mac` at once (the next packet sees it) and resolves when the binding is
   * committed to the store; it rejects when the store refused it. The ACK is sent only after.
   */
  bind(mac: string, ip: number, now: number, leaseMs: number, system: string, hostname: string): Promise<void> {
    const e: LeaseEntry = { mac, ip, state: 'bound', expires: now + leaseMs, hostname, system };
    this.index(e);
    return this.persist(e);
  }

  release(mac: string, ip: number, now: number): boolean {
    const e = this.byMac.get(mac);
    if (e === undefined || e.ip !== ip || e.state === 'declined') return false;
    const r: LeaseEntry = { ...e, state: 'released', expires: now };
    this.index(r);
    this.persistBehind(r);
    return true;
  }

  /** The client found `ip` in use (ARP): keep it out of the pool for a while, bound to nobody. */
  decline(mac: string, ip: number, now: number): void {
    const e: LeaseEntry = { mac: `declined:${intToIp(ip)}`, ip, state: 'declined', expires: now + DECLINE_HOLD_MS, hostname: '', system: '' };
    const cur = this.byMac.get(mac);
    if (cur !== undefined && cur.ip === ip) this.byMac.delete(mac);
    this.index(e);
    this.persistBehind({ ...e, mac });
  }

  /** Drop an outstanding offer (the client chose another server, RFC 2131 s4.3.2). */
  forgetOffer(mac: string): void {
    const e = this.byMac.get(mac);
    if (e === undefined || e.state !== 'offered') return;
    this.byMac.delete(mac);
    if (this.byIp.get(e.ip) === e) this.byIp.delete(e.ip);
  }

  get size(): number {
    return this.byMac.size;
  }

  /** Writes `e` to the store; resolves once committed. */
  private persist(e: LeaseEntry): Promise<void> {
    if (this.store === undefined) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.batch.push({ e, resolve, reject });
      this.commitTimer ??= setTimeout(() => this.commit(), COMMIT_WINDOW_MS);
    });
  }

  /** Issues the waiting writes in one turn, so the store commits them together (store/sqlite/queue.ts). */
  private commit(): void {
    if (this.commitTimer !== undefined) clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    const store = this.store;
    const batch = this.batch;
    this.batch = [];
    if (store === undefined || batch.length === 0) return;
    const row = (e: LeaseEntry): Lease => ({ mac: e.mac, ip: intToIp(e.ip), state: e.state, expires: e.expires, hostname: e.hostname, system: e.system });
    if (store.putLeases !== undefined) {
      // The whole window in one call: one write, one COMMIT, each binding told its own outcome.
      const all: Promise<unknown> = store
        .putLeases(batch.map((b) => row(b.e)))
        .then(
          (errs) => batch.forEach((b, i) => (errs[i] === undefined ? b.resolve() : b.reject(errs[i]))),
          (err: unknown) => batch.forEach((b) => b.reject(err)),
        )
        .then(() => this.writing.delete(all));
      this.writing.add(all);
      return;
    }
    const ws = batch.map(({ e, resolve, reject }) => {
      const w = store.putLease(row(e));
      w.then(resolve, reject);
      return w;
    });
    const all: Promise<unknown> = Promise.allSettled(ws).then(() => this.writing.delete(all));
    this.writing.add(all);
  }

  /** RELEASE and DECLINE get no answer (RFC 2131 s4.3.4, s4.3.3): their write is not waited for, a failure is logged. */
  private persistBehind(e: LeaseEntry): void {
    this.persist(e).catch((err: unknown) => this.persistFailed(e.mac, err));
  }

  /** Counted, and logged for the first few and every 1000th (a full disk must not flood the log). */
  persistFailed(mac: string, err: unknown): void {
    this.persistErrors++;
    if (this.persistErrors <= 5 || this.persistErrors % 1000 === 0) this.log.warn('could not persist lease', { mac, err, failed: this.persistErrors });
  }

  /** Writes what waits now and waits for every write issued so far (on close). */
  async flush(): Promise<void> {
    this.commit();
    await Promise.allSettled([...this.writing]);
  }
}

/**
 * The table as the boot events read it: bound and released leases, the ones
 * the store holds or is committing (offers never reach it).
 */
export function liveLeases(table: LeaseTable): LiveLeases {
  return {
    byAddress(ip) {
      const n = ipToInt(ip);
      const e = n === undefined ? undefined : table.byAddress(n);
      return e !== undefined && (e.state === 'bound' || e.state === 'released') ? e : undefined;
    },
  };
}
