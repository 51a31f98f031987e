/**
 * The in-memory lease index of managed mode: the hot path reads and writes
 * these maps, and every change is also written to the store. OFFERs are held
 * in memory only (RFC 2131 s4.3.1 lets a server reserve an offered address
 * without recording it).
 *
 * Durability: a binding is committed before its DHCPACK leaves (`bind`
 * resolves after the COMMIT), as Kea's memfile appends the lease line before
 * it answers. Group commit (`persist`): a binding made while no commit is in
 * flight is committed at the end of its event-loop turn, with every other
 * binding of that turn; bindings made while a commit is in flight wait for it
 * and go in the next one. So a lone client's REQUEST costs one commit and no
 * wait (an 8 ms window before gave every ACK 5-8 ms, issue 21), and under load
 * the batches grow with the load by themselves: one commit per commit time.
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
  /** Bindings waiting for the next commit, and the commit in flight (awaited on close). */
  private batch: { e: LeaseEntry; resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** A commit of `batch` is scheduled for the end of this event-loop turn. */
  private scheduled = false;
  /** A commit was issued and has not settled: new bindings gather in `batch` for the next one. */
  private inFlight = false;
  private readonly writing = new Set<Promise<unknown>>();
  /** Commits issued and bindings they carried (benchmarks: the batch sizes group commit formed). */
  readonly commitStats = { commits: 0, bindings: 0 };
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
      if (!this.inFlight && !this.scheduled) {
        // setImmediate, not now: the datagrams libuv read in this turn (up to 32 per socket) are
        // each handled through to their bind before the check phase, so they share this commit.
        this.scheduled = true;
        setImmediate(this.commitNext);
      }
    });
  }

  /** Commits what waits, unless a commit is in flight (its end starts the next one). */
  private readonly commitNext = (): void => {
    this.scheduled = false;
    const store = this.store;
    if (this.inFlight || store === undefined || this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.inFlight = true;
    this.commitStats.commits++;
    this.commitStats.bindings += batch.length;
    const row = (e: LeaseEntry): Lease => ({ mac: e.mac, ip: intToIp(e.ip), state: e.state, expires: e.expires, hostname: e.hostname, system: e.system });
    const done = (): void => {
      this.writing.delete(all);
      this.inFlight = false;
      // What arrived during this commit goes in the next one at once: under load that is
      // one commit per commit time, each carrying what the previous one kept waiting.
      this.commitNext();
    };
    let all: Promise<unknown>;
    if (store.putLeases !== undefined) {
      // The whole batch in one call: one write, one COMMIT, each binding told its own outcome.
      all = store
        .putLeases(batch.map((b) => row(b.e)))
        .then(
          (errs) => batch.forEach((b, i) => (errs[i] === undefined ? b.resolve() : b.reject(errs[i]))),
          (err: unknown) => batch.forEach((b) => b.reject(err)),
        )
        .then(done);
    } else {
      all = Promise.allSettled(
        batch.map(({ e, resolve, reject }) => {
          const w = store.putLease(row(e));
          w.then(resolve, reject);
          return w;
        }),
      ).then(done);
    }
    this.writing.add(all);
  };

  /** RELEASE and DECLINE get no answer (RFC 2131 s4.3.4, s4.3.3): their write is not waited for, a failure is logged. */
  private persistBehind(e: LeaseEntry): void {
    this.persist(e).catch((err: unknown) => this.persistFailed(e.mac, err));
  }

  /** Counted, and logged for the first few and every 1000th (a full disk must not flood the log). */
  persistFailed(mac: string, err: unknown): void {
    this.persistErrors++;
    if (this.persistErrors <= 5 || this.persistErrors % 1000 === 0) this.log.warn('could not persist lease', { mac, err, failed: this.persistErrors });
  }

  /** Writes what waits now and waits until every binding made so far is committed (on close). */
  async flush(): Promise<void> {
    this.commitNext();
    while (this.writing.size > 0) {
      await Promise.allSettled([...this.writing]);
      this.commitNext();
    }
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
