/** The `leases` table in PostgreSQL: the durable copy of DHCP leases, written in call order. */
import type { Lease, LeaseState } from '../../core/model.js';
import type { Client, Db } from './db.js';
import { GroupWriter } from './batch.js';
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

/**
 * A claim's transaction commits without waiting for its WAL flush
 * (synchronous_commit off for it alone: set_config(..., true) is local to
 * the statement's transaction, PostgreSQL docs 30.4 "Asynchronous Commit").
 * Nothing is acknowledged on a claim alone: an ACK waits for the lease's own
 * commit, which is synchronous, and flushing the WAL up to that commit record
 * flushes every record before it, the claim's among them. A crash can lose a
 * claim only when no ACK was sent for it, and such an address is free to give.
 * Every server sees a claim at its commit, flushed or not.
 */
const ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true) AS async";

interface Claim {
  ip: string;
  mac: string;
  expires: number;
  now: number;
}

/**
 * The DHCP hot path's writes on PostgreSQL, each a group commit: the claims
 * (one per OFFER and ACK of a pool address) and the leases (one per ACK,
 * committed before the ACK leaves) that arrive while a statement is in flight
 * go together in the next one, one round trip and one WAL flush for the whole
 * group (store/postgres/batch.ts), as SQLite's write queue commits every
 * binding of its 8 ms window at once. One statement each, so no BEGIN/COMMIT
 * round trips either: a statement is its own transaction.
 */
export class PgLeases {
  private readonly writes: OrderedWrites<Lease, undefined>;
  private readonly claims: GroupWriter<Claim, boolean>;

  constructor(private readonly db: Db) {
    this.writes = new OrderedWrites(
      db,
      async (c, batch) => {
        // One MAC twice in a batch: the later state wins, as it would one by one.
        const last = [...new Map(batch.map((l) => [l.mac, l])).values()];
        await c.query(
          `INSERT INTO leases (mac, ip, state, expires, hostname, system)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
           ON CONFLICT (mac) DO UPDATE SET ip = excluded.ip, state = excluded.state, expires = excluded.expires,
             hostname = excluded.hostname, system = excluded.system`,
          [last.map((l) => l.mac), last.map((l) => l.ip), last.map((l) => l.state), last.map((l) => l.expires), last.map((l) => l.hostname), last.map((l) => l.system)],
        );
        return batch.map(() => undefined);
      },
      500,
      true,
    );
    this.claims = new GroupWriter(
      (batch) => this.claimGroup(batch),
      (c) => this.claimOne(c),
    );
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

  /** Whether `mac` now holds `ip` in the database (a group of claims goes in one statement, see claimGroup). */
  claim(ip: string, mac: string, expires: number, now: number): Promise<boolean> {
    return this.claims.write({ ip, mac, expires, now });
  }

  /**
   * One statement, so one implicit transaction: the upsert takes the row of
   * the address (or waits for the other server's transaction that has it)
   * and changes it only when it is free (expired) or already this MAC's;
   * this MAC's claims on other addresses are dropped (a client holds one).
   */
  private async claimOne(c: Claim): Promise<boolean> {
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
       SELECT count(*) AS n, ${ASYNC_COMMIT} FROM c`,
      [c.ip, c.mac, c.expires, c.now],
      'lease_claim',
    );
    return Number(rows[0]?.n ?? 0) === 1;
  }

  /**
   * The claims of a group, each with claimOne's rule, and an answer per
   * claim. A group is cut where an address or a MAC comes again (one
   * statement cannot change a row twice, and the order between the two
   * would be lost); the parts run one after another, each one statement.
   */
  private async claimGroup(batch: Claim[]): Promise<boolean[]> {
    const out: boolean[] = [];
    let part: Claim[] = [];
    const ips = new Set<string>();
    const macs = new Set<string>();
    for (const c of batch) {
      if (ips.has(c.ip) || macs.has(c.mac)) {
        out.push(...(await this.claimPart(part)));
        part = [];
        ips.clear();
        macs.clear();
      }
      part.push(c);
      ips.add(c.ip);
      macs.add(c.mac);
    }
    out.push(...(await this.claimPart(part)));
    return out;
  }

  /**
   * Claims of distinct addresses and MACs in one statement, with the outcome
   * of running them one by one in some order. The upsert's row locks are the
   * arbiter across servers, as for one claim. A MAC that won drops its other
   * claims, except an address this statement just gave to another MAC.
   * Expiry is judged at the part's earliest `now`: an address that expired
   * within its few milliseconds is refused, never taken early.
   */
  private async claimPart(part: Claim[]): Promise<boolean[]> {
    if (part.length === 1) return [await this.claimOne(part[0]!)];
    const now = Math.min(...part.map((c) => c.now));
    const rows = await this.db.query<{ ips: string[] }>(
      `WITH c AS (
         INSERT INTO lease_claims (ip, mac, expires)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
         ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac,
           expires = CASE WHEN lease_claims.mac = excluded.mac THEN GREATEST(lease_claims.expires, excluded.expires) ELSE excluded.expires END
         WHERE lease_claims.mac = excluded.mac OR lease_claims.expires <= $4
         RETURNING ip, mac
       ), others AS (
         DELETE FROM lease_claims l USING c WHERE l.mac = c.mac AND l.ip <> c.ip AND l.ip NOT IN (SELECT ip FROM c)
       )
       SELECT array(SELECT ip FROM c) AS ips, ${ASYNC_COMMIT}`,
      [part.map((c) => c.ip), part.map((c) => c.mac), part.map((c) => c.expires), now],
      'lease_claim_group',
    );
    const won = new Set(rows[0]?.ips ?? []);
    return part.map((c) => won.has(c.ip));
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

  async drain(): Promise<void> {
    await this.claims.drain();
    await this.writes.drain();
  }
}
