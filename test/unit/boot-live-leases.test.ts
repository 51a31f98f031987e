/**
 * The boot events name a system by its client address through the DHCP
 * server's in-memory lease table from the moment it is bound, before its
 * write is committed (the table is what every lookup reads first).
 * Real SQLite store, real LeaseTable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootService, type BootDeps } from '../../server/boot/provider.js';
import { memoryLogger } from '../../server/log.js';
import { LeaseTable, liveLeases } from '../../server/services/dhcp/leases.js';
import { ipToInt } from '../../server/services/dhcp/net.js';
import { openSqliteStore } from '../../server/store/sqlite.js';

test('a lease bound a moment ago names its system before the store has it; offers do not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fg-live-'));
  const store = openSqliteStore(dir);
  try {
    const table = new LeaseTable(store, memoryLogger());
    const ip = (s: string): number => ipToInt(s)!;
    // Not awaited yet: the store commits the write in a later turn of the event loop.
    const committed = table.bind('52:54:00:00:00:01', ip('10.98.0.100'), Date.now(), 3_600_000, 'vm1', 'vm1');
    table.offer('52:54:00:00:00:02', ip('10.98.0.101'), Date.now(), 30_000, 'vm2', 'vm2');
    assert.equal(await store.getLeaseByIp('10.98.0.100'), undefined, 'the store does not have the lease yet');

    const withoutLive = new BootService({ store } as unknown as BootDeps);
    assert.equal(await withoutLive.systemByAddress('10.98.0.100'), undefined);

    const boot = new BootService({ store, liveLeases: liveLeases(table) } as unknown as BootDeps);
    assert.equal(await boot.systemByAddress('10.98.0.100'), 'vm1');
    assert.equal(await boot.systemByAddress('::ffff:10.98.0.100'), 'vm1', 'IPv4-mapped address from a dual-stack socket');
    assert.equal(await boot.systemByAddress('10.98.0.101'), undefined, 'an offer is not a lease');
    assert.equal(await boot.systemByAddress('10.98.0.102'), undefined);

    await committed;
    assert.equal((await store.getLeaseByIp('10.98.0.100'))?.system, 'vm1', 'once bind resolves, the store has it');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
