/**
 * The DHCP hot path's writes on a real PostgreSQL (test/lib/postgres.ts, fsync on, as a site
 * runs it): claims and leases that arrive together go in one statement, and the outcome is
 * still the one-by-one rule (store/postgres/leases.ts).
 *
 *   - Two stores (two servers) each claim the same 150 addresses for their own clients in one
 *     turn: every address has exactly one holder, the one lease_claims names, and PostgreSQL's
 *     own counter (pg_stat_database.xact_commit) shows the claims went in a few group
 *     statements, not 300 transactions.
 *   - A group with an address or a MAC twice, a holder claiming again, an expired holder and a
 *     MAC moving to another address inside one group decide as one by one would.
 *   - Claims commit without their own WAL flush and leases with one (pg_stat_wal.wal_sync):
 *     the ACK waits for the lease's flush, which carries the claim before it.
 *   - The cluster id the DHCP probe carries (services/dhcp/probe.ts) is one per database.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openPgStore, type PgStore } from '../../server/store/postgres.js';
import { startPostgres, type PgCluster } from '../lib/postgres.js';

let cluster: PgCluster | undefined;

before(async () => {
  cluster = await startPostgres(undefined, { fsync: true });
});
after(async () => {
  await cluster?.stop();
});

const dbName = (url: string): string => /\/([^/?]+)(\?|$)/.exec(url.replace(/^postgres:\/\/[^/]*/, ''))?.[1] ?? '';
const mac = (server: number, i: number): string => `52:54:0${server}:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

/** A statistics counter of database `db`, read after every backend that wrote to it has closed (they report at exit). */
async function counter(db: string, sql: string): Promise<number> {
  await new Promise((r) => setTimeout(r, 600));
  return Number(Object.values((await cluster!.sql(db, sql))[0] ?? {})[0]);
}

test('claims from two servers in one turn: one holder per address, decided in group statements', async () => {
  const url = await cluster!.createDatabase();
  const db = dbName(url);
  const commits = `SELECT xact_commit FROM pg_stat_database WHERE datname = '${db}'`;
  const [a, b] = await Promise.all([openPgStore(url), openPgStore(url)]);
  const before = await counter(db, commits);
  const now = Date.now();
  const N = 150;
  const claims = (st: PgStore, server: number) => Array.from({ length: N }, (_, i) => st.claimAddress(`10.6.${i >> 8}.${i & 255}`, mac(server, i), now + 60_000, now));
  const [ra, rb] = await Promise.all([Promise.all(claims(a, 1)), Promise.all(claims(b, 2))]);
  await Promise.all([a.close(), b.close()]);
  const made = (await counter(db, commits)) - before;
  for (let i = 0; i < N; i++) assert.notEqual(ra[i], rb[i], `address ${i}: exactly one of the two servers holds it (${ra[i]}, ${rb[i]})`);
  const rows = await cluster!.sql(db, 'SELECT ip, mac FROM lease_claims');
  assert.equal(rows.length, N, 'one claim row per address');
  const holder = new Map(rows.map((r) => [String(r['ip']), String(r['mac'])]));
  for (let i = 0; i < N; i++) assert.equal(holder.get(`10.6.${i >> 8}.${i & 255}`), ra[i] ? mac(1, i) : mac(2, i), `address ${i}: the winner is the row's holder`);
  // One by one this is 300 transactions; grouped, a handful (plus the stores' own start-up).
  assert.ok(made < 60, `${made} transactions for ${2 * N} claims`);
});

test('a group decides as one by one: duplicates, the holder again, expiry, a MAC moving', async () => {
  const url = await cluster!.createDatabase();
  const st = await openPgStore(url);
  try {
    const now = Date.now();
    assert.equal(await st.claimAddress('10.7.0.1', 'aa:00:00:00:00:01', now + 1000, now), true);
    assert.equal(await st.claimAddress('10.7.0.2', 'aa:00:00:00:00:02', now + 5000, now), true);
    assert.equal(await st.claimAddress('10.7.0.3', 'aa:00:00:00:00:03', now + 1000, now), true);
    // The group asks at now + 1001: .3's claim has expired, .2's has not.
    const t = now + 1001;
    const r = await Promise.all([
      st.claimAddress('10.7.0.9', 'aa:00:00:00:00:09', now + 1000, t), // in flight alone; the rest queue into groups
      st.claimAddress('10.7.0.1', 'aa:00:00:00:00:01', now + 5000, t), // the holder again: longer
      st.claimAddress('10.7.0.2', 'bb:00:00:00:00:02', now + 5000, t), // held by another: refused
      st.claimAddress('10.7.0.3', 'bb:00:00:00:00:03', now + 5000, t), // expired: taken
      st.claimAddress('10.7.0.4', 'aa:00:00:00:00:02', now + 5000, t), // .2's holder moves to .4: .2 goes back
      st.claimAddress('10.7.0.5', 'cc:00:00:00:00:05', now + 5000, t),
      st.claimAddress('10.7.0.5', 'cc:00:00:00:00:06', now + 5000, t), // the same address twice: the first wins
      st.claimAddress('10.7.0.6', 'cc:00:00:00:00:07', now + 5000, t),
      st.claimAddress('10.7.0.7', 'cc:00:00:00:00:07', now + 5000, t), // the same MAC twice: it ends on .7
    ]);
    assert.deepEqual(r, [true, true, false, true, true, true, false, true, true]);
    const rows = await st.listLeases(); // leases are not claims: nothing was bound
    assert.equal(rows.length, 0);
    assert.equal(await st.claimAddress('10.7.0.2', 'dd:00:00:00:00:02', now + 5000, now), true, '.2 was given back when its MAC took .4');
    assert.equal(await st.claimAddress('10.7.0.6', 'dd:00:00:00:00:06', now + 5000, now), true, '.6 was given back when its MAC took .7');
    assert.equal(await st.claimAddress('10.7.0.1', 'dd:00:00:00:00:01', now + 5000, t), false, "the holder's second claim made it last longer");
  } finally {
    await st.close();
  }
});

test('claims commit without a WAL flush of their own, leases with one', async () => {
  const url = await cluster!.createDatabase();
  const db = dbName(url);
  const syncs = 'SELECT wal_sync FROM pg_stat_wal';
  const now = Date.now();
  const phase = async (fn: (st: PgStore) => Promise<void>): Promise<number> => {
    const st = await openPgStore(url);
    const s0 = await counter(db, syncs);
    await fn(st);
    await st.close();
    return (await counter(db, syncs)) - s0;
  };
  const claims = await phase(async (st) => {
    for (let i = 0; i < 40; i++) assert.equal(await st.claimAddress(`10.8.0.${i}`, mac(3, i), now + 60_000, now), true);
  });
  const leases = await phase(async (st) => {
    for (let i = 0; i < 40; i++) await st.putLease({ mac: mac(3, i), ip: `10.8.0.${i}`, state: 'bound', expires: now + 60_000, hostname: '', system: '' });
  });
  // Each lease waited for its flush; the claims only for the WAL writer's background flushes.
  assert.ok(leases >= 40, `40 leases one after another: ${leases} WAL flushes`);
  assert.ok(claims < 20, `40 claims one after another: ${claims} WAL flushes`);
});

test('clusterId: every server of one database has the same, another database another', async () => {
  const url = await cluster!.createDatabase();
  const [a, b] = await Promise.all([openPgStore(url), openPgStore(url)]);
  const other = await openPgStore(await cluster!.createDatabase());
  try {
    const id = await a.clusterId();
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(await b.clusterId(), id);
    assert.notEqual(await other.clusterId(), id);
  } finally {
    await Promise.all([a.close(), b.close(), other.close()]);
  }
});
