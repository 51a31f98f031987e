/**
 * The `leases` table: DHCP leases as the DHCP server last wrote them (the
 * live table is services/dhcp/leases.ts; this is its durable copy).
 */
import type Database from 'better-sqlite3';
import type { Lease, LeaseState } from '../../core/model.js';
import type { WriteQueue } from './queue.js';

export class LeaseRows {
  private readonly getSt: Database.Statement;
  private readonly getByIpSt: Database.Statement;
  private readonly putSt: Database.Statement;
  private readonly renameSystem: Database.Statement;

  constructor(
    private readonly db: Database.Database,
    private readonly queue: WriteQueue,
  ) {
    this.putSt = db.prepare(
      `INSERT INTO leases (mac, ip, state, expires, hostname, system) VALUES (@mac, @ip, @state, @expires, @hostname, @system)
       ON CONFLICT(mac) DO UPDATE SET ip = excluded.ip, state = excluded.state, expires = excluded.expires,
         hostname = excluded.hostname, system = excluded.system`,
    );
    this.getSt = db.prepare('SELECT * FROM leases WHERE mac = ?');
    this.getByIpSt = db.prepare('SELECT * FROM leases WHERE ip = ? ORDER BY expires DESC LIMIT 1');
    this.renameSystem = db.prepare('UPDATE leases SET system = ? WHERE system = ?');
  }

  get(mac: string): Lease | undefined {
    return this.getSt.get(mac) as Lease | undefined;
  }

  getByIp(ip: string): Lease | undefined {
    return this.getByIpSt.get(ip) as Lease | undefined;
  }

  /**
   * The leases of the write now queued last, if any: puts of one event-loop turn (a commit window's
   * ACKs, services/dhcp/leases.ts) join it, so N leases cost one write of N upserts instead of N
   * writes, each with its SAVEPOINT and RELEASE (issue 21 profile). Joined only while it is the
   * queue's last write, so writes still apply in call order.
   */
  private open: { run: () => unknown; items: { lease: Lease; resolve: () => void; reject: (e: unknown) => void }[] } | undefined;

  put(lease: Lease): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const cur = this.open;
      if (cur !== undefined && this.queue.isLast(cur.run)) {
        cur.items.push({ lease, resolve, reject });
        return;
      }
      const batch: NonNullable<LeaseRows['open']> = { run: () => undefined, items: [{ lease, resolve, reject }] };
      // Each upsert is atomic on its own (SQLite statement atomicity), so one that fails fails only
      // its lease, as its own write would; the others are acknowledged after the COMMIT.
      batch.run = (): unknown[] => {
        if (this.open === batch) this.open = undefined;
        return batch.items.map((i) => this.upsert(i.lease));
      };
      this.open = batch;
      this.queue.write(batch.run).then(
        (errs) => (errs as (Error | undefined)[]).forEach((e, n) => (e === undefined ? batch.items[n]!.resolve() : batch.items[n]!.reject(e))),
        (e: unknown) => {
          if (this.open === batch) this.open = undefined;
          for (const i of batch.items) i.reject(e);
        },
      );
    });
  }

  /** Leases as one write: each upsert's error or undefined, in order, after the COMMIT (Store.putLeases). */
  putMany(leases: readonly Lease[]): Promise<(Error | undefined)[]> {
    return this.queue.write(() => leases.map((l) => this.upsert(l)));
  }

  /** One upsert, atomic on its own (SQLite statement atomicity): its error, or undefined. */
  private upsert(lease: Lease): Error | undefined {
    try {
      this.putSt.run(lease);
      return undefined;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  list(): Lease[] {
    return (this.db.prepare('SELECT * FROM leases ORDER BY ip').all() as (Lease & { state: LeaseState })[]).map((l) => ({ ...l }));
  }

  /** Inside a write: leases follow a renamed system. */
  systemRenamed(from: string, to: string): void {
    this.renameSystem.run(to, from);
  }
}
