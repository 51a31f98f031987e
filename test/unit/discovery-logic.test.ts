/**
 * Pure parts of discovery: the inventory schema check (fuzzed: any JSON is
 * either a valid inventory or a ForgeError naming a field), the facts rules
 * see, the rule verdicts (priority order, max), and the rate limiter's buckets.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { ForgeError } from '../../server/errors.js';
import { checkInventory, factsOf } from '../../server/discovery/model.js';
import { RateLimiter } from '../../server/discovery/ratelimit.js';
import { checkRule, judge } from '../../server/discovery/service.js';
import type { Rule } from '../../server/discovery/model.js';

const inv = {
  mac: '52-54-00-AA-BB-CC',
  interfaces: [{ name: 'eth0', mac: '52:54:00:aa:bb:cc', link: true }],
  vendor: 'QEMU', product: 'Standard PC (Q35 + ICH9, 2009)', serial: 'S1', uuid: 'u', cpus: 4, ram_mib: 8192,
  disks: [{ name: 'vda', size_gib: 20, rotational: false }, { name: 'vdb', size_gib: 100.5, rotational: true }],
  firmware: 'uefi',
};

test('facts: counts and sums from the inventory; the MAC normalised', () => {
  const f = factsOf(checkInventory(inv));
  assert.equal(f['mac'], '52:54:00:aa:bb:cc');
  assert.equal(f['disks.count'], 2);
  assert.equal(f['disks.total_gib'], 120.5);
  assert.equal(f['disks.largest_gib'], 100.5);
  assert.equal(f['disks.rotational'], 1);
  assert.equal(f['nics.up'], 1);
  assert.equal(f['firmware'], 'uefi');
});

test('fuzz: any JSON value is a valid inventory or a ForgeError naming the field', () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.record({ mac: fc.oneof(fc.string(), fc.constant(inv.mac)), cpus: fc.jsonValue(), disks: fc.jsonValue(), interfaces: fc.jsonValue(), firmware: fc.jsonValue() }, { requiredKeys: [] })), (v) => {
      try {
        const i = checkInventory(v);
        assert.match(i.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      } catch (e) {
        assert.ok(e instanceof ForgeError, String(e));
        assert.ok(typeof e.field === 'string' && e.field !== '', e.message);
      }
    }),
    { numRuns: 3000 },
  );
});

test('verdicts: by priority, a rule at its max does not fire, the next match does', () => {
  const d = { name: 'disc-x', facts: factsOf(checkInventory(inv)) };
  const rules: Rule[] = [
    checkRule({ name: 'b', priority: 20, match: 'ram_mib >= 4096', profile: 'p2', hostname: 'big-{serial}' }),
    { ...checkRule({ name: 'a', priority: 10, match: 'firmware == "uefi"', profile: 'p1', max: 2 }), used: 2 },
    checkRule({ name: 'c', priority: 5, match: 'cpus > 64', profile: 'p3' }),
  ];
  const { verdicts, fires } = judge(rules, d);
  assert.deepEqual(verdicts.map((v) => [v.rule, v.matched, v.exhausted]), [['c', false, false], ['a', true, true], ['b', true, false]]);
  assert.equal(fires?.rule, 'b');
  assert.equal(fires?.hostname, 'big-s1');
  assert.throws(() => checkRule({ name: 'x', match: 'ram_mib>1', profile: 'p', hostname: '{nope}' }), /unknown fact/);
  assert.throws(() => checkRule({ name: 'x', match: 'ram_mib>1', profile: 'p', priority: -1 }), (e: unknown) => e instanceof ForgeError && e.field === 'priority');
  assert.throws(() => checkRule({ name: 'x', match: 'ram_mib>1' }), (e: unknown) => e instanceof ForgeError && e.field === 'profile');
});

test('rate limiter: burst, refill over time, a global ceiling, a bounded client table', () => {
  let now = 0;
  const rl = new RateLimiter({ perMinute: 60, burst: 3, totalPerMinute: 5, maxClients: 2 }, () => now);
  assert.deepEqual([rl.allow('a'), rl.allow('a'), rl.allow('a'), rl.allow('a')], [true, true, true, false]);
  now += 1000; // one token back for a
  assert.equal(rl.allow('a'), true);
  assert.equal(rl.allow('b'), true);
  assert.equal(rl.allow('c'), false, 'the global bucket (5) is empty');
  now += 60_000;
  assert.equal(rl.allow('c'), true);
});
