/**
 * The DHCP warm-up (services/dhcp/warmup.ts) runs real DORA exchanges through the real handler
 * before forge answers anyone, and must leave nothing behind: no lease in the store or in the
 * service's lease table, no address claimed in a shared store, no event, no log line; the first
 * real client gets the address it would have got without it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDhcpHandler } from '../../server/services/dhcp.js';
import { warmUp } from '../../server/services/dhcp/warmup.js';
import type { LeaseTable } from '../../server/services/dhcp/leases.js';
import { createLogger } from '../../server/log.js';
import type { Store } from '../../server/store/store.js';
import { MessageType, decode } from '../../server/protocol/dhcp4/index.js';
import { PXE_BIOS, fixture, wire } from './dhcp-fixtures.js';

test('warm-up: managed exchanges are answered and ACKed, and leave no lease, claim, event or log line behind', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.199'] });
  try {
    await f.addSystem('vm1', '52:54:00:aa:00:01', '10.98.0.21');
    const real = await createDhcpHandler(f.ctx);
    const linesBefore = f.lines.length;
    // A shared store's address claims (PostgreSQL's claimAddress) must not be reached.
    const claims: string[] = [];
    const shared = new Proxy(f.store, {
      get(t, prop, r) {
        if (prop === 'claimAddress' || prop === 'freeAddress') return async (ip: string) => (claims.push(ip), true);
        if (prop === 'putLease') return async () => assert.fail('the warm-up wrote a lease');
        const v: unknown = Reflect.get(t, prop, r);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    }) as Store;
    const quiet = createLogger('error', 'warmup', () => undefined);
    let table: LeaseTable | undefined;
    const acked = await warmUp(async (leases) => {
      table = leases;
      return createDhcpHandler({ ...f.ctx, store: shared, log: quiet, record: () => undefined }, Date.now, leases);
    }, 400, 60_000);
    // 100 pool addresses, 400 exchanges: every MAC of the warm-up comes back for its address.
    assert.equal(acked, 400, 'every warm-up exchange was ACKed (the managed path ran to the end)');
    assert.ok(table !== undefined && table.size > 0 && table !== real.leases, 'the warm-up used a lease table of its own');
    assert.deepEqual(claims, []);
    assert.deepEqual(await f.store.listLeases(), []);
    assert.equal(real.leases.size, 0);
    assert.deepEqual(f.events, []);
    assert.equal(f.lines.length, linesBefore, `no log line: ${f.lines.slice(linesBefore).join('\n')}`);
    // The first real client gets the pool's first address, as without the warm-up.
    const out = await real.handle({ data: wire({ type: MessageType.DISCOVER, mac: '52:54:00:bb:00:01', ...PXE_BIOS }), address: '0.0.0.0', port: 68, localPort: 67 });
    assert.ok(out !== undefined);
    assert.equal(decode(out.data).yiaddr, '10.98.0.100');
  } finally {
    await f.cleanup();
  }
});

test('warm-up: without a pool (no dynamic range) nothing runs', async () => {
  const f = await fixture();
  try {
    const quiet = createLogger('error', 'warmup', () => undefined);
    const acked = await warmUp((leases) => createDhcpHandler({ ...f.ctx, log: quiet, record: () => undefined }, Date.now, leases), 50, 60_000);
    assert.equal(acked, 0);
    assert.deepEqual(await f.store.listLeases(), []);
  } finally {
    await f.cleanup();
  }
});
