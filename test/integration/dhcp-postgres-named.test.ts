/**
 * Subnets name the servers that answer them, on real sockets: two real `forge serve` processes
 * (`--server-name a`, `--server-name b`) on one PostgreSQL, each in a namespace of its own on one
 * LAN bridge (A 10.98.0.11, B 10.98.0.12, both on the link of 10.98.0.0/24), started with the
 * default start-up probe. Through the real CLI: `lab` (10.98.0.0/24) names a, `east`
 * (10.99.0.0/24, behind a relay) names b, `both` (10.97.0.0/24, behind the relay) names nobody.
 *
 *   - a broadcast DISCOVER on the shared link is answered by A only (B sees it and stays silent);
 *   - a relayed DISCOVER of east sent to both is answered by B only, one of lab's relayed to both
 *     by A only;
 *   - a relayed DISCOVER of `both` is answered by both (today's behaviour for an unnamed subnet),
 *     with two different addresses (the claims in the database);
 *   - `forge status` on B says its link of lab is answered by a, and B's /metrics count packets
 *     received and no offer made for the subnets it does not answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { createLan, type Host } from '../lib/netns.js';
import { startPostgres } from '../lib/postgres.js';
import { forgeInNamespace, type NsForge } from '../lib/forge-ns.js';
import { FORGE_BIN } from '../lib/server.js';
import { exchange, packet, waitFor } from '../lib/dhcp-raw.js';
import { MessageType, Opt } from '../../server/protocol/dhcp4/index.js';

const REQ = { root: true, commands: ['ip', 'curl'] };
const PORT = 8080;

test('subnets name their servers: each of two servers on one database answers only the subnets that name it or nobody', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const cluster = await startPostgres(t);
  if (cluster === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgpgnm-'));
  const lan = await createLan('fgpgnm');
  const forges: NsForge[] = [];
  try {
    const url = await cluster.createDatabase();
    const relay = await lan.addClient();
    for (const a of ['10.98.0.2/24', '10.99.0.1/24', '10.97.0.1/24']) await relay.must('ip', ['addr', 'add', a, 'dev', 'eth0']);
    const hosts: Host[] = [];
    for (const [name, ip] of [['a', '10.98.0.11'], ['b', '10.98.0.12']] as const) {
      const h = await lan.addClient();
      await h.must('ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      for (const net of ['10.99.0.0/24', '10.97.0.0/24']) await h.must('ip', ['route', 'add', net, 'via', '10.98.0.2']);
      // README "Sites with several servers": the same store, a name each; the default probe.
      forges.push(await forgeInNamespace(h, ip, join(dir, name), ['--store', url, '--dhcp-mode', 'managed', '--server-name', name, '--http-port', String(PORT), '--log-level', 'info'], { timeoutMs: 30_000 }));
      hosts.push(h);
    }
    const [a, b] = forges as [NsForge, NsForge];
    const [hostA, hostB] = hosts as [Host, Host];
    const cli = async (h: Host, ip: string, name: string, args: string[]): Promise<string> => {
      const token = readFileSync(join(dir, name, 'token'), 'utf8').trim();
      const r = await h.exec(process.execPath, [FORGE_BIN, ...args], { env: { ...process.env, FORGE_SERVER: `http://${ip}:${PORT}`, FORGE_TOKEN: token }, timeoutMs: 30_000 });
      assert.equal(r.code, 0, `${args.join(' ')}\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    await cli(hostA, '10.98.0.11', 'a', ['subnet', 'add', '--name', 'lab', '--cidr', '10.98.0.0/24', '--range', '10.98.0.100,10.98.0.119', '--servers', 'a']);
    await cli(hostB, '10.98.0.12', 'b', ['subnet', 'add', '--name', 'east', '--cidr', '10.99.0.0/24', '--range', '10.99.0.100,10.99.0.119', '--router', '10.99.0.1', '--servers', 'b']);
    await cli(hostA, '10.98.0.11', 'a', ['subnet', 'add', '--name', 'both', '--cidr', '10.97.0.0/24', '--range', '10.97.0.100,10.97.0.119', '--router', '10.97.0.1']);
    assert.match(await cli(hostB, '10.98.0.12', 'b', ['subnet', 'report', '--name', 'lab']), /^Servers +: a$/m);

    // A probes its link of lab (nobody answers: B does not answer lab) and serves it; B never probes it.
    await waitFor(a.output, /serving this link/, 30_000, "A's probe of lab");
    await waitFor(b.output, /subnet answered by other servers/, 30_000, 'B leaving lab to a');
    assert.doesNotMatch(b.output(), /probing for other DHCP servers/, 'B does not probe a link it does not answer');

    const serverIds = (rs: Awaited<ReturnType<typeof exchange>>): string[] => rs.map((r) => r.p.options.ip(Opt.ServerIdentifier) ?? '?').sort();
    // 1. A broadcast on the shared link: both servers receive it, only A (named by lab) answers.
    const client = await lan.addClient();
    // No address yet, like a PXE client: the limited broadcast leaves through eth0.
    await client.must('ip', ['route', 'add', 'default', 'dev', 'eth0']);
    const direct = await exchange(client, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', listenMs: 2500 }, [packet({ type: MessageType.DISCOVER, mac: '52:54:00:98:00:01', xid: 0x9801 })]);
    assert.deepEqual(serverIds(direct), ['10.98.0.11'], 'only A answers lab on the wire');
    assert.match(direct[0]!.p.yiaddr, /^10\.98\.0\.1[01]\d$/);

    // 2. Relayed requests of each subnet sent to both servers.
    const ask = async (giaddr: string, to: string, mac: string, xid: number) =>
      exchange(relay, { bind: giaddr, bindPort: 67, to, listenMs: 1500 }, [packet({ type: MessageType.DISCOVER, mac, xid, giaddr })]);
    const eastA = await ask('10.99.0.1', '10.98.0.11', '52:54:00:99:00:01', 0x9901);
    const eastB = await ask('10.99.0.1', '10.98.0.12', '52:54:00:99:00:01', 0x9902);
    assert.deepEqual([eastA.length, serverIds(eastB)], [0, ['10.98.0.12']], 'east (names b): A silent, B answers');
    assert.match(eastB[0]!.p.yiaddr, /^10\.99\.0\.1[01]\d$/);
    const labA = await ask('10.98.0.2', '10.98.0.11', '52:54:00:98:00:02', 0x9803);
    const labB = await ask('10.98.0.2', '10.98.0.12', '52:54:00:98:00:02', 0x9804);
    assert.deepEqual([serverIds(labA), labB.length], [['10.98.0.11'], 0], 'lab relayed (names a): A answers, B silent');
    const bothA = await ask('10.97.0.1', '10.98.0.11', '52:54:00:97:00:01', 0x9701);
    const bothB = await ask('10.97.0.1', '10.98.0.12', '52:54:00:97:00:02', 0x9702);
    assert.deepEqual([serverIds(bothA), serverIds(bothB)], [['10.98.0.11'], ['10.98.0.12']], 'both (names nobody): each server answers');
    assert.notEqual(bothA[0]!.p.yiaddr, bothB[0]!.p.yiaddr, 'two clients, two addresses, whichever server offered');

    // 3. What B says about it: forge status, and its counters.
    const status = await cli(hostB, '10.98.0.12', 'b', ['status']);
    assert.match(status, /DHCP of server b:/);
    assert.match(status, /10\.98\.0\.0\/24\s+eth0\s+10\.98\.0\.12\s+elsewhere \(answered by a\)/, status);
    assert.match(await cli(hostA, '10.98.0.11', 'a', ['status']), /10\.98\.0\.0\/24\s+eth0\s+10\.98\.0\.11\s+serving/);
    const metrics = (await hostB.must('curl', ['-sf', '-m', '5', `http://10.98.0.12:${PORT}/metrics`])).split('\n');
    const count = (re: RegExp): number => metrics.filter((l) => re.test(l)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    assert.ok(count(/^forge_dhcp_received_packets_total /) >= 4, 'B received the broadcast and the relayed requests');
    assert.equal(count(/^forge_dhcp_packets_total\{.*result="offer"/), 2, 'B offered only east and both');
  } catch (e) {
    for (const f of forges) t.diagnostic(f.output().slice(-3000));
    throw e;
  } finally {
    for (const f of forges) await f.stop();
    await lan.destroy();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
