/**
 * recentLeases: the address DHCP just acknowledged names the system for the
 * boot-file events until the batched lease write reaches the store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noteRecentLease, recentLeaseSystem, RECENT_LEASE_MS, type ServerContext } from '../../server/context.js';

const ctx = (): ServerContext => ({ recentLeases: new Map() }) as unknown as ServerContext;

test('an acknowledged address names its system, the newest ACK wins, and it expires', () => {
  const c = ctx();
  noteRecentLease(c, '10.98.0.100', 'vm1', 1_000);
  assert.equal(recentLeaseSystem(c, '10.98.0.100', 1_500), 'vm1');
  assert.equal(recentLeaseSystem(c, '10.98.0.101', 1_500), undefined);
  noteRecentLease(c, '10.98.0.100', 'vm2', 2_000);
  assert.equal(recentLeaseSystem(c, '10.98.0.100', 2_001), 'vm2');
  assert.equal(recentLeaseSystem(c, '10.98.0.100', 2_000 + RECENT_LEASE_MS), undefined, 'the stored lease takes over');
});

test('proxy mode (no address handed out) notes nothing, and old entries are dropped as new ones come', () => {
  const c = ctx();
  noteRecentLease(c, '', 'vm1', 1_000);
  assert.equal(c.recentLeases!.size, 0);
  noteRecentLease(c, '10.0.0.1', 'a', 0);
  noteRecentLease(c, '10.0.0.2', 'b', RECENT_LEASE_MS + 1);
  assert.deepEqual([...c.recentLeases!.keys()], ['10.0.0.2']);
  const none = { } as ServerContext;
  noteRecentLease(none, '10.0.0.3', 'c');
  assert.equal(recentLeaseSystem(none, '10.0.0.3'), undefined);
});
