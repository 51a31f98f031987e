/**
 * Two real `forge serve` processes answering one subnet from one dynamic
 * pool, on one PostgreSQL (test/lib/postgres.ts), each in a network
 * namespace of its own on one LAN bridge (A in the LAN namespace at
 * 10.98.0.1, B in another at 10.98.0.3). Kea's perfdhcp, run as two relays
 * (10.98.0.2 -> A, 10.98.0.4 -> B) at the same time, asks for three times
 * more addresses than the pool holds. Afterwards the database is the
 * judge: no address is bound to two clients in the lease table, and every
 * bound lease lies in the pool. Without the claims in the database
 * (Store.claimAddress) both servers hand out the pool from its first
 * address and this fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { createLan, type Host } from '../lib/netns.js';
import { perfStats } from '../lib/perfdhcp.js';
import { startPostgres } from '../lib/postgres.js';
import { forgeInNamespace } from '../lib/forge-ns.js';
import { openPgStore } from '../../server/store/postgres.js';

const REQ = { root: true, commands: ['ip', 'perfdhcp'] };

test('two servers, one pool, one database: perfdhcp through both, no address bound to two clients', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const cluster = await startPostgres(t);
  if (cluster === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgpgdh-'));
  const lan = await createLan('fgpgdh');
  const servers: { stop(): Promise<void>; output(): string }[] = [];
  try {
    const url = await cluster.createDatabase();
    const pool = { first: 100, last: 139 };
    // Both servers answer the subnet from the same pool, with the default start-up probe: a server
    // of the same database stays silent to it (dhcp-postgres-peers.test.ts).
    const dhcp = ['--store', url, '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', `10.98.0.${pool.first},10.98.0.${pool.last}`];
    const hostB = await lan.addClient();
    await hostB.must('ip', ['addr', 'add', '10.98.0.3/24', 'dev', 'eth0']);
    const [a, b] = await Promise.all([forgeInNamespace(lan, '10.98.0.1', join(dir, 'a'), dhcp, { timeoutMs: 30_000 }), forgeInNamespace(hostB, '10.98.0.3', join(dir, 'b'), dhcp, { timeoutMs: 30_000 })]);
    servers.push(a, b);
    const relayA = await lan.addClient();
    await relayA.must('ip', ['addr', 'add', '10.98.0.2/24', 'dev', 'eth0']);
    const relayB = await lan.addClient();
    await relayB.must('ip', ['addr', 'add', '10.98.0.4/24', 'dev', 'eth0']);
    // 120 clients (two MAC ranges) for 40 addresses, both servers at once.
    const perf = (relay: Host, server: string, macBase: string) =>
      relay.exec('perfdhcp', ['-4', '-l', 'eth0', '-r', '30', '-R', '60', '-p', '6', '-b', `mac=${macBase}`, server], { timeoutMs: 60_000 });
    const [pa, pb] = await Promise.all([perf(relayA, '10.98.0.1', '00:0c:01:00:00:00'), perf(relayB, '10.98.0.3', '00:0c:02:00:00:00')]);
    const sa = perfStats(pa.stdout);
    const sb = perfStats(pb.stdout);
    assert.ok(sa.raRecv > 0, `server A acknowledged requests:\n${pa.stdout}\n${pa.stderr}`);
    assert.ok(sb.raRecv > 0, `server B acknowledged requests:\n${pb.stdout}\n${pb.stderr}`);
    assert.ok(sa.raRecv + sb.raRecv >= 20, `the pool was handed out (${sa.raRecv} + ${sb.raRecv} ACKs)`);
    // SIGTERM: each server writes its pending leases before it exits.
    await Promise.all(servers.map((s) => s.stop()));
    const st = await openPgStore(url);
    try {
      const now = Date.now();
      const bound = (await st.listLeases()).filter((l) => l.state === 'bound' && l.expires > now);
      assert.ok(bound.length >= 20, `bound leases persisted by both servers (${bound.length})`);
      const byIp = new Map<string, string[]>();
      for (const l of bound) byIp.set(l.ip, [...(byIp.get(l.ip) ?? []), l.mac]);
      const twice = [...byIp].filter(([, macs]) => macs.length > 1);
      assert.deepEqual(twice, [], 'no address bound to two clients');
      for (const l of bound) {
        const last = Number(l.ip.split('.')[3]);
        assert.ok(l.ip.startsWith('10.98.0.') && last >= pool.first && last <= pool.last, `lease ${l.ip} in the pool`);
      }
      const macs = new Set(bound.map((l) => l.mac.slice(0, 8)));
      assert.deepEqual([...macs].sort(), ['00:0c:01', '00:0c:02'], "both relays' clients got addresses");
    } finally {
      await st.close();
    }
  } catch (e) {
    for (const s of servers) t.diagnostic(s.output().slice(-2000));
    throw e;
  } finally {
    for (const s of servers) await s.stop();
    await lan.destroy();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
