/**
 * Servers of one database are not each other's rivals; every other DHCP server still is. Real
 * `forge serve` processes and Debian's dnsmasq, each in a network namespace of its own on one
 * LAN bridge, PostgreSQL from test/lib/postgres.ts, README "Sites with several servers" taken
 * literally: the same `--store`, `--dhcp-subnet` and `--dhcp-range` on both, the default
 * start-up probe (no `--dhcp-probe-seconds 0`).
 *
 *   - A (10.98.0.11) starts and serves; B (10.98.0.12) starts after it on the same database:
 *     B's probe reaches A, which stays silent to a probe of its own cluster (the probe carries
 *     the database's cluster id, option 43), so B serves too: a broadcast DISCOVER gets an
 *     OFFER from each, of two different addresses.
 *   - C (10.98.0.13), a forge of another database (its own SQLite) on the same link: A and B
 *     answer its probe like any client's, so C is silent on the link and names them as rivals.
 *   - dnsmasq (10.98.0.2) on the link, then D (10.98.0.14) on A's and B's database: D names
 *     dnsmasq as its rival, not A or B, and stays silent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { need } from '../lib/env.js';
import { createLan, type Host } from '../lib/netns.js';
import { startPostgres } from '../lib/postgres.js';
import { forgeInNamespace, type NsForge } from '../lib/forge-ns.js';
import { exchange, packet, waitFor } from '../lib/dhcp-raw.js';
import { MessageType, Opt } from '../../server/protocol/dhcp4/index.js';

const REQ = { root: true, commands: ['ip', 'dnsmasq'] };
const PORT = 8080;

test('servers of one database answer one subnet with the default probe; another database and dnsmasq are rivals', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const cluster = await startPostgres(t);
  if (cluster === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgpgpr-'));
  const lan = await createLan('fgpgpr');
  const forges: NsForge[] = [];
  let dnsmasq: ChildProcess | undefined;
  try {
    const url = await cluster.createDatabase();
    // README's managed line, on the shared store.
    const readme = ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200', '--dhcp-router', '10.98.0.1', '--dhcp-dns', '10.98.0.1'];
    const start = async (name: string, ip: string, store: string[]): Promise<[NsForge, Host]> => {
      const h = await lan.addClient();
      await h.must('ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      const f = await forgeInNamespace(h, ip, join(dir, name), [...store, ...readme, '--server-name', name, '--http-port', String(PORT), '--log-level', 'info'], { timeoutMs: 30_000 });
      forges.push(f);
      return [f, h];
    };
    const links = async (h: Host, ip: string): Promise<{ subnet: string; state: string; rival?: string }[]> => {
      const st = await h.must(process.execPath, ['-e', `fetch('http://${ip}:${PORT}/api/v1/status').then((r) => r.text()).then((t) => console.log(t))`]);
      return (JSON.parse(st) as { dhcp_links: { subnet: string; state: string; rival?: string }[] }).dhcp_links;
    };
    const client = await lan.addClient();
    await client.must('ip', ['route', 'add', 'default', 'dev', 'eth0']);
    let xid = 0x7e000000;
    const discover = async (mac: string) =>
      (await exchange(client, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', listenMs: 2500 }, [packet({ type: MessageType.DISCOVER, mac, xid: xid++ })])).map((r) => ({
        id: r.p.options.ip(Opt.ServerIdentifier) ?? '?',
        ip: r.p.yiaddr,
      }));

    // 1. A, then B on the same database.
    const [a] = await start('a', '10.98.0.11', ['--store', url]);
    await waitFor(a.output, /probe: no other DHCP server answered; serving this link/, 30_000, "A's probe");
    const [b, hostB] = await start('b', '10.98.0.12', ['--store', url]);
    await waitFor(b.output, /probe: no other DHCP server answered; serving this link|another DHCP server answers/, 30_000, "B's probe");
    assert.match(b.output(), /probe: no other DHCP server answered; serving this link/, 'B: A is a peer, not a rival');
    assert.equal((await links(hostB, '10.98.0.12'))[0]?.state, 'serving');
    const both = await discover('52:54:00:7e:00:01');
    assert.deepEqual(both.map((o) => o.id).sort(), ['10.98.0.11', '10.98.0.12'], 'both servers answer the link');
    assert.notEqual(both[0]?.ip, both[1]?.ip, 'with two different addresses (claimed in the database)');

    // 2. A forge of another database on the same link: A and B are its rivals.
    const [c, hostC] = await start('c', '10.98.0.13', []);
    await waitFor(c.output, /another DHCP server answers on this link|no other DHCP server answered/, 30_000, "C's probe");
    assert.match(c.output(), /another DHCP server answers on this link: not answering there/, c.output());
    const cl = (await links(hostC, '10.98.0.13'))[0];
    assert.equal(cl?.state, 'rival');
    assert.match(cl?.rival ?? '', /10\.98\.0\.1[12]/, 'C names A or B');
    const three = await discover('52:54:00:7e:00:02');
    assert.deepEqual(three.map((o) => o.id).sort(), ['10.98.0.11', '10.98.0.12'], 'C stays silent');

    // 3. dnsmasq on the link, then D on A's and B's database: dnsmasq is D's rival, A and B are not.
    const dh = await lan.addClient();
    await dh.must('ip', ['addr', 'add', '10.98.0.2/24', 'dev', 'eth0']);
    dnsmasq = dh.spawn('dnsmasq', ['--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=eth0', '--bind-interfaces', '--dhcp-range=10.98.0.50,10.98.0.60,255.255.255.0,1h', `--dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`, '--no-ping']);
    let dlog = '';
    dnsmasq.stderr?.on('data', (d: Buffer) => (dlog += d.toString()));
    dnsmasq.stdout?.on('data', (d: Buffer) => (dlog += d.toString()));
    await waitFor(() => dlog, /DHCP, IP range|started, version/, 10_000, 'dnsmasq');
    const [d, hostD] = await start('d', '10.98.0.14', ['--store', url]);
    await waitFor(d.output, /another DHCP server answers on this link|no other DHCP server answered/, 30_000, "D's probe");
    const dl = (await links(hostD, '10.98.0.14'))[0];
    assert.equal(dl?.state, 'rival', d.output());
    assert.equal(dl?.rival, '10.98.0.2', 'only dnsmasq is a rival: A and B are peers');
  } catch (e) {
    for (const f of forges) t.diagnostic(f.output().slice(-2500));
    throw e;
  } finally {
    dnsmasq?.kill('SIGTERM');
    for (const f of forges) await f.stop();
    await lan.destroy();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
