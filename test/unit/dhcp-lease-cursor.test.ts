/**
 * The lease table's round robin (services/dhcp/leases.ts allocate), pure logic without a
 * store: the settings refresh (every second) builds new Pool objects for the same ranges, and
 * the hand-outs must carry on where they were rather than start at the first address again
 * (a walk over every held address per DISCOVER, and for servers sharing a pool a claim refused
 * by the database for each of the other server's addresses). A table that spreads (a shared
 * store) starts at a random address of the pool and `scatter` moves it elsewhere in the pool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryLogger } from '../../server/log.js';
import { LeaseTable } from '../../server/services/dhcp/leases.js';
import type { Pool, Subnet } from '../../server/services/dhcp/net.js';

const subnet = { cidr: '10.98.0.0/24' } as Subnet;
const pool = (): Pool => ({ first: 100, last: 199, subnet });
const mac = (i: number): string => `52:54:00:00:00:${i.toString(16).padStart(2, '0')}`;

test('the round robin carries on across refreshed Pool objects of the same range', () => {
  const t = new LeaseTable(undefined, memoryLogger());
  const now = Date.now();
  const got: number[] = [];
  for (let i = 0; i < 5; i++) {
    // A new object each time, as settings.ts makes on every refresh.
    const ip = t.allocate(pool(), mac(i), now, () => false)!;
    t.offer(mac(i), ip, now, 60_000, '', '');
    got.push(ip);
  }
  assert.deepEqual(got, [100, 101, 102, 103, 104]);
  // An address given back is not handed out again before the round robin comes round.
  t.forgetOffer(mac(0));
  assert.equal(t.allocate(pool(), mac(9), now, () => false), 105);
});

test('a spreading table starts at a random address of the pool and scatter moves it', () => {
  const starts = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const t = new LeaseTable(undefined, memoryLogger(), true);
    const ip = t.allocate(pool(), mac(1), Date.now(), () => false)!;
    assert.ok(ip >= 100 && ip <= 199, `${ip} in the pool`);
    starts.add(ip);
  }
  // 20 starts over 100 addresses all equal has probability 100^-19.
  assert.ok(starts.size > 1, 'not every table starts at the same address');
  const t = new LeaseTable(undefined, memoryLogger(), true);
  const seen = new Set<number>();
  for (let i = 0; i < 20; i++) {
    t.scatter(pool());
    const ip = t.allocate(pool(), mac(1), Date.now(), () => false)!;
    assert.ok(ip >= 100 && ip <= 199);
    seen.add(ip);
  }
  assert.ok(seen.size > 1, 'scatter moves the next hand-out');
  const plain = new LeaseTable(undefined, memoryLogger());
  assert.equal(plain.allocate(pool(), mac(1), Date.now(), () => false), 100, 'a single server hands out from the first address');
});
