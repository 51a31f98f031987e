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

  async put(lease: Lease): Promise<void> {
    await this.queue.write(() => this.putSt.run(lease));
  }

  list(): Lease[] {
    return (this.db.prepare('SELECT * FROM leases ORDER BY ip').all() as (Lease & { state: LeaseState })[]).map((l) => ({ ...l }));
  }

  /** Inside a write: leases follow a renamed system. */
  systemRenamed(from: string, to: string): void {
    this.renameSystem.run(to, from);
  }
}
