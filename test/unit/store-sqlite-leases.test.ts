/**
 * SQLite lease writes (store/sqlite/leases.ts): the leases put in one event-loop turn are one
 * write of the group commit, not one write (SAVEPOINT, upsert, RELEASE) each; a lease whose
 * upsert fails fails alone; and a put never joins a write queued before another write, so writes
 * still apply in call order. Real SQLite in a temp dir.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lease } from '../../server/core/model.js';
import { SqliteStore } from '../../server/store/sqlite.js';

const lease = (i: number, system = ''): Lease => ({ mac: `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`, ip: `10.0.0.${i}`, state: 'bound', expires: 1_000_000 + i, hostname: `h${i}`, system });

async function withStore(fn: (s: SqliteStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fg-leases-'));
  const s = new SqliteStore({ file: join(dir, 'forge.db') });
  try {
    await fn(s);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('sqlite leases: 50 puts of one turn are one write and one commit, and all are stored', async () => {
  await withStore(async (s) => {
    const before = { ...s.commitStats };
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.putLease(lease(i + 1))));
    assert.equal(s.commitStats.writes - before.writes, 1, 'one write carries the turn\'s leases');
    assert.equal(s.commitStats.commits - before.commits, 1);
    const stored = await s.listLeases();
    assert.equal(stored.length, 50);
    assert.deepEqual(await s.getLease(lease(7).mac), lease(7));
  });
});

test('sqlite leases: a lease whose upsert fails is rejected alone, the others of its write are stored', async () => {
  await withStore(async (s) => {
    // A missing named parameter makes better-sqlite3 throw for this statement only.
    const bad = { ...lease(2), hostname: undefined } as unknown as Lease;
    const results = await Promise.allSettled([s.putLease(lease(1)), s.putLease(bad), s.putLease(lease(3))]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.deepEqual((await s.listLeases()).map((l) => l.mac).sort(), [lease(1).mac, lease(3).mac]);
  });
});

test('sqlite leases: a put after another write does not join the earlier lease write (call order kept)', async () => {
  await withStore(async (s) => {
    const before = { ...s.commitStats };
    // put, another write, put: three writes in call order, still one commit.
    const ps = [s.putLease(lease(1)), s.addEvent({ system: '', type: 'dhcp_ack', source: 'dhcp', detail: {} }), s.putLease(lease(2))];
    await Promise.all(ps);
    assert.equal(s.commitStats.writes - before.writes, 3);
    assert.equal(s.commitStats.commits - before.commits, 1);
    // The same lease put twice in one turn: the later value wins, as two writes would leave it.
    await Promise.all([s.putLease({ ...lease(5), hostname: 'first' }), s.putLease({ ...lease(5), hostname: 'second' })]);
    assert.equal((await s.getLease(lease(5).mac))?.hostname, 'second');
  });
});

test('sqlite leases: putLeases is one write and one commit, each upsert failing alone, in order', async () => {
  await withStore(async (s) => {
    const before = { ...s.commitStats };
    const bad = { ...lease(2), hostname: undefined } as unknown as Lease;
    const errs = await s.putLeases([lease(1), bad, lease(3), { ...lease(1), hostname: 'later' }]);
    assert.equal(s.commitStats.writes - before.writes, 1, 'the batch is one write');
    assert.equal(s.commitStats.commits - before.commits, 1);
    assert.deepEqual(errs.map((e) => e === undefined), [true, false, true, true]);
    assert.ok(errs[1] instanceof Error);
    assert.deepEqual((await s.listLeases()).map((l) => l.mac).sort(), [lease(1).mac, lease(3).mac]);
    // Applied in order: the later value of the same MAC wins.
    assert.equal((await s.getLease(lease(1).mac))?.hostname, 'later');
  });
});
