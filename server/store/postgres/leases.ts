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

  /**
   * One statement, so one implicit transaction: the upsert takes the row of
   * the address (or waits for the other server's transaction that has it)
   * and changes it only when it is free (expired) or already this MAC's.
   */
  async claim(ip: string, mac: string, expires: number, now: number): Promise<boolean> {
    const rows = await this.db.query<{ n: string }>(
      `WITH c AS (
         INSERT INTO lease_claims (ip, mac, expires) VALUES ($1, $2, $3)
         ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac,
           expires = CASE WHEN lease_claims.mac = excluded.mac THEN GREATEST(lease_claims.expires, excluded.expires) ELSE excluded.expires END
         WHERE lease_claims.mac = excluded.mac OR lease_claims.expires <= $4
         RETURNING ip
       ), others AS (
         DELETE FROM lease_claims WHERE mac = $2 AND ip <> $1 AND EXISTS (SELECT 1 FROM c)
       )
       SELECT count(*) AS n FROM c`,
      [ip, mac, expires, now],
      'lease_claim',
    );
    return Number(rows[0]?.n ?? 0) === 1;
  }

  async free(ip: string, mac: string, holdUntil?: number): Promise<void> {
    if (holdUntil === undefined) await this.db.query('DELETE FROM lease_claims WHERE ip = $1 AND mac = $2', [ip, mac]);
    else await this.db.query('UPDATE lease_claims SET mac = $3, expires = $4 WHERE ip = $1 AND mac = $2', [ip, mac, `declined:${ip}`, holdUntil]);
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
