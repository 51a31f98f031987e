/** The `leases` table in PostgreSQL: the durable copy of DHCP leases, written in call order. */
import type { Lease, LeaseState } from '../../core/model.js';
import type { Client, Db } from './db.js';
import { OrderedWrites } from './ordered.js';

interface LeaseRow {
  mac: string;
  ip: string;
  state: string;
  expires: string;
  hostname: string;
  system: string;
}

const toLease = (r: LeaseRow): Lease => ({ mac: r.mac, ip: r.ip, state: r.state as LeaseState, expires: Number(r.expires), hostname: r.hostname, system: r.system });

export class PgLeases {
  private readonly writes: OrderedWrites<Lease, undefined>;

  constructor(private readonly db: Db) {
    this.writes = new OrderedWrites(db, async (c, batch) => {
      // One MAC twice in a batch: the later state wins, as it would one by one.
      const last = new Map(batch.map((l) => [l.mac, l]));
      for (const l of last.values()) {
        await c.query(
          `INSERT INTO leases (mac, ip, state, expires, hostname, system) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (mac) DO UPDATE SET ip = excluded.ip, state = excluded.state, expires = excluded.expires,
             hostname = excluded.hostname, system = excluded.system`,
          [l.mac, l.ip, l.state, l.expires, l.hostname, l.system],
        );
      }
      return batch.map(() => undefined);
    });
  }

  async get(mac: string): Promise<Lease | undefined> {
    const r = (await this.db.query<LeaseRow>('SELECT * FROM leases WHERE mac = $1', [mac], 'lease_get'))[0];
    return r === undefined ? undefined : toLease(r);
  }

  async getByIp(ip: string): Promise<Lease | undefined> {
    const r = (await this.db.query<LeaseRow>('SELECT * FROM leases WHERE ip = $1 ORDER BY expires DESC LIMIT 1', [ip], 'lease_by_ip'))[0];
    return r === undefined ? undefined : toLease(r);
  }

  async put(lease: Lease): Promise<void> {
    await this.writes.write(lease);
  }

  async list(): Promise<Lease[]> {
    return (await this.db.query<LeaseRow>('SELECT * FROM leases ORDER BY ip')).map(toLease);
  }

  async systemRenamed(c: Client, from: string, to: string): Promise<void> {
    await c.query('UPDATE leases SET system = $1 WHERE system = $2', [to, from]);
  }

  drain(): Promise<void> {
    return this.writes.drain();
  }
}
