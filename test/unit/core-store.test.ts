/**
 * What only SqliteStore has, on a real SQLite file: migrations of an old
 * file, the query plans of the MAC/IP lookups, group commit isolation
 * between writes of one batch. The Store contract both backends keep is
 * test/integration/store-contract.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ForgeError } from '../../server/errors.js';
import { MIGRATIONS, SqliteStore, globToRegExp } from '../../server/store/sqlite.js';
import { validateNew } from '../../server/core/validate.js';
import { sqliteFixture } from '../lib/sqlite-store.js';

const { tmp, seeded } = sqliteFixture('forge-store-');

test('migrations: a version-1 database with data is upgraded in place', async () => {
  const dir = tmp();
  const file = join(dir, 'forge.db');
  const v1 = new Database(file);
  v1.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)');
  v1.exec(MIGRATIONS[0]!.sql);
  v1.prepare('INSERT INTO schema_migrations VALUES (1, ?, ?)').run(MIGRATIONS[0]!.name, new Date().toISOString());
  v1.prepare('INSERT INTO systems (name, profile, data) VALUES (?, ?, ?)').run('old', 'p', '{"name":"old"}');
  v1.prepare("INSERT INTO interfaces VALUES ('old', 'eth0', '52:54:00:00:00:01', ''), ('old', 'eth1', '', '')").run();
  v1.close();
  const st = new SqliteStore({ file });
  try {
    assert.equal(st.schemaVersion, MIGRATIONS[MIGRATIONS.length - 1]!.version);
    assert.equal((await st.findSystemByMac('52:54:00:00:00:01'))?.name, 'old');
    const rows = st.db.prepare('SELECT ifname, mac, ip FROM interfaces ORDER BY ifname').all();
    assert.deepEqual(rows, [
      { ifname: 'eth0', mac: '52:54:00:00:00:01', ip: null },
      { ifname: 'eth1', mac: null, ip: null },
    ]);
    assert.equal(await st.integrityCheck(), 'ok');
  } finally {
    await st.close();
  }
  // reopening applies nothing twice
  const again = new SqliteStore({ file });
  assert.equal(again.schemaVersion, MIGRATIONS[MIGRATIONS.length - 1]!.version);
  await again.close();
});

test('migration 6: a subnet stored before subnets named their servers names nobody (every server answers it), key order kept', async () => {
  const dir = tmp();
  const file = join(dir, 'forge.db');
  const v5 = new Database(file);
  v5.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)');
  for (const m of MIGRATIONS.filter((x) => x.version <= 5)) {
    v5.exec(m.sql);
    v5.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, new Date().toISOString());
  }
  const old = { ...validateNew('subnet', { name: 'lab', cidr: '10.96.0.0/24' }) } as Record<string, unknown>;
  delete old['servers'];
  v5.prepare('INSERT INTO subnets (name, network, broadcast, data) VALUES (?, ?, ?, ?)').run('lab', 0x0a600000, 0x0a6000ff, JSON.stringify(old));
  v5.close();
  const st = new SqliteStore({ file });
  try {
    assert.deepEqual((await st.get('subnet', 'lab'))?.servers, []);
    const data = st.db.prepare("SELECT data FROM subnets WHERE name = 'lab'").pluck().get() as string;
    assert.equal(data, JSON.stringify(validateNew('subnet', { name: 'lab', cidr: '10.96.0.0/24', ctime: old['ctime'], mtime: old['mtime'] }, { keepTimes: true })), 'the document a new subnet has');
  } finally {
    await st.close();
  }
});

test('lookups by MAC and IP use the unique indexes (query plan)', async () => {
  const st = await seeded();
  try {
    const plan = (sql: string): string =>
      (st.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all('x') as { detail: string }[]).map((r) => r.detail).join('; ');
    assert.match(plan('SELECT s.data FROM interfaces i JOIN systems s ON s.name = i.system WHERE i.mac = ?'), /USING INDEX interfaces_mac/);
    assert.match(plan('SELECT s.data FROM interfaces i JOIN systems s ON s.name = i.system WHERE i.ip = ?'), /USING INDEX interfaces_ip/);
  } finally {
    await st.close();
  }
});

test('group commit: writes of one batch succeed or fail on their own', async () => {
  const st = await seeded();
  try {
    const mk = (name: string, mac: string) =>
      st.create('system', validateNew('system', { name, profile: 'p', interfaces: { eth0: { mac_address: mac } } }));
    const results = await Promise.allSettled([
      mk('a', '52:54:00:00:01:01'),
      mk('b', '52:54:00:00:01:01'), // duplicate MAC of a (same batch)
      mk('c', '52:54:00:00:01:03'),
      mk('a', '52:54:00:00:01:04'), // duplicate name
      st.create('system', validateNew('system', { name: 'e', profile: 'missing' })),
      mk('f', 'random'),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
    const codes = results.map((r) => (r.status === 'rejected' && r.reason instanceof ForgeError ? r.reason.code : ''));
    assert.deepEqual(codes, ['', 'DUPLICATE_MAC', '', 'DUPLICATE_NAME', 'REFERENCE_MISSING', '']);
    assert.deepEqual((await st.list('system')).map((s) => s.name), ['a', 'c', 'f']);
    // b's failed interface row did not leak into the index
    assert.equal((await st.findSystemByMac('52:54:00:00:01:01'))?.name, 'a');
    assert.equal(await st.findSystemByMac('52:54:00:00:01:04'), undefined);
    assert.ok(st.commitStats.writes > st.commitStats.commits, 'the writes shared commits');
  } finally {
    await st.close();
  }
});

test('globToRegExp', () => {
  assert.ok(globToRegExp('web*').test('web12'));
  assert.ok(globToRegExp('52:54:00:*').test('52:54:00:aa:bb:cc'));
  assert.ok(!globToRegExp('w?b').test('wxxb'));
  assert.ok(globToRegExp('a.b').test('a.b'));
  assert.ok(!globToRegExp('a.b').test('axb'));
});
