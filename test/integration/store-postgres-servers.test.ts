/**
 * Several real `forge serve` processes on one PostgreSQL (started by
 * test/lib/postgres.ts), driven over HTTP and the real CLI the way a site
 * does: three servers, each in a network namespace of its own on one LAN
 * bridge with README's managed DHCP line and the default start-up probe
 * (a DISCOVER gets three OFFERs of three different addresses, only the
 * chosen server ACKs), an edit on one is what the other two answer at the
 * next request; the event stream of each carries the events recorded by all
 * three (LISTEN/NOTIFY); concurrent creates of one name / MAC / IP on all
 * three: exactly one wins, the other two get the conflict error naming the
 * field. Then the migration path
 * from one SQLite server: `forge export` -> `forge import-data` into a
 * PostgreSQL server and back, identical. And a database that cannot be
 * reached: `forge serve` refuses to start, naming the URL without its
 * password.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ForgeEvent } from '../../server/core/model.js';
import { startPostgres, type PgCluster } from '../lib/postgres.js';
import { apiRequest, runCli, startForge, type ForgeServer } from '../lib/server.js';
import { need } from '../lib/env.js';
import { createLan } from '../lib/netns.js';
import { forgeInNamespace, forwardInto, type NsForge, type NsForward } from '../lib/forge-ns.js';
import { exchange, packet, waitFor } from '../lib/dhcp-raw.js';
import { MessageType, Opt } from '../../server/protocol/dhcp4/index.js';
import { openStream } from '../lib/sse-stream.js';

let cluster: PgCluster | undefined;
const servers: ForgeServer[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'forge-pg-servers-'));

before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  await cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function serve(args: string[] = []): Promise<ForgeServer> {
  const s = await startForge({ args });
  servers.push(s);
  return s;
}

async function ok(s: Pick<ForgeServer, 'api'>, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await s.api(method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A forge server in a namespace of its own on the LAN, reached by the test through a forward. */
type NsServer = Pick<ForgeServer, 'url' | 'token' | 'output' | 'cli' | 'api'>;

const PORT = 8080;
// README's managed line ("Sites with several servers": the same store, subnet and range on each).
const README_LINE = ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200', '--dhcp-router', '10.98.0.1', '--dhcp-dns', '10.98.0.1'];

test('three servers on one database, each in its own namespace on one LAN as a site has them: all three answer DHCP, edits, events and conflicts are shared', async (t) => {
  if (need(t, { root: true, commands: ['ip'] }) !== undefined) return;
  const url = await cluster!.createDatabase();
  const lan = await createLan('fgpg3');
  const dir = mkdtempSync(join(tmpdir(), 'fgpg3-'));
  const forges: NsForge[] = [];
  const forwards: NsForward[] = [];
  try {
    // The operator's (and installer's) host on the LAN: every request comes from its address,
    // through whichever server it names, as an installer's would.
    const operator = await lan.addClient();
    await operator.must('ip', ['addr', 'add', '10.98.0.50/24', 'dev', 'eth0']);
    const start = async (name: string, ip: string): Promise<NsServer> => {
      const host = await lan.addClient();
      await host.must('ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      const dataDir = join(dir, name);
      const f = await forgeInNamespace(host, ip, dataDir, [...README_LINE, '--store', url, '--server-name', name, '--http-port', String(PORT), '--log-level', 'info'], { timeoutMs: 60_000 });
      forges.push(f);
      const fw = await forwardInto(operator, ip, PORT);
      forwards.push(fw);
      const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();
      return {
        url: fw.url,
        token,
        output: f.output,
        cli: (args, env = {}, o = {}) => runCli(args, { ...process.env, FORGE_SERVER: fw.url, FORGE_TOKEN: token, ...env }, o),
        api: (method, path, body, o = {}) => apiRequest(fw.url, token, method, path, body, o),
      };
    };
    // Started together, with the default start-up probe: each hears only peers of its own cluster.
    const trio = await Promise.all([start('a', '10.98.0.11'), start('b', '10.98.0.12'), start('c', '10.98.0.13')]);
    const [a, b, c] = trio as [NsServer, NsServer, NsServer];
    assert.match(a.output(), /serving \(data PostgreSQL postgres:\/\/forge@\/forge_/);
    for (const s of trio) await waitFor(s.output, /probe: no other DHCP server answered; serving this link/, 60_000, 'each serves the link');

    // DHCP on the shared link: one broadcast DISCOVER gets an OFFER from each server, and no
    // address is offered by two of them (claims are rows of the shared database).
    const client = await lan.addClient();
    await client.must('ip', ['route', 'add', 'default', 'dev', 'eth0']);
    const mac = '52:54:00:40:0f:01';
    const offers = (await exchange(client, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', listenMs: 3000 }, [packet({ type: MessageType.DISCOVER, mac, xid: 0x40f00001 })]))
      .filter((r) => r.p.options.uint8(Opt.MessageType) === MessageType.OFFER)
      .map((r) => ({ id: r.p.options.ip(Opt.ServerIdentifier) ?? '?', ip: r.p.yiaddr }));
    assert.deepEqual(offers.map((o) => o.id).sort(), ['10.98.0.11', '10.98.0.12', '10.98.0.13'], `all three answer: ${JSON.stringify(offers)}`);
    // Two servers may offer ONE client the same address: each starts at a random address of the
    // range, and a claim row already held by this MAC is this MAC's to take again (postgres/leases.ts
    // claimOne). What must never happen is an address given to two clients: checked below with a
    // second client once b has acknowledged one (CI r1 of stop 15 drew 156 twice: 1 in ~34).
    for (const o of offers) {
      const last = Number(o.ip.split('.')[3]);
      assert.ok(o.ip.startsWith('10.98.0.') && last >= 100 && last <= 200, `offer in the range: ${JSON.stringify(o)}`);
    }
    // The client takes b's offer: b acknowledges it, and every server reports that lease.
    const fromB = offers.find((o) => o.id === '10.98.0.12')!;
    const acks = (await exchange(client, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', listenMs: 3000 }, [packet({ type: MessageType.REQUEST, mac, xid: 0x40f00002, requested: fromB.ip, serverId: fromB.id })]))
      .filter((r) => r.p.options.uint8(Opt.MessageType) === MessageType.ACK);
    assert.deepEqual(acks.map((r) => [r.p.options.ip(Opt.ServerIdentifier), r.p.yiaddr]), [['10.98.0.12', fromB.ip]], 'only the chosen server acknowledges');
    // Another client on the link: all three answer it, and none offers the address b acknowledged
    // (b's lease and claim are rows every server reads).
    const mac2 = '52:54:00:40:0f:02';
    const offers2 = (await exchange(client, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', listenMs: 3000 }, [packet({ type: MessageType.DISCOVER, mac: mac2, xid: 0x40f00003 })]))
      .filter((r) => r.p.options.uint8(Opt.MessageType) === MessageType.OFFER)
      .map((r) => ({ id: r.p.options.ip(Opt.ServerIdentifier) ?? '?', ip: r.p.yiaddr }));
    assert.deepEqual(offers2.map((o) => o.id).sort(), ['10.98.0.11', '10.98.0.12', '10.98.0.13'], `all three answer the second client: ${JSON.stringify(offers2)}`);
    assert.ok(offers2.every((o) => o.ip !== fromB.ip), `${fromB.ip} is acknowledged to the first client; offered to the second: ${JSON.stringify(offers2)}`);

    const streams = await Promise.all(trio.map((s) => openStream(s.url, '', { authorization: `Bearer ${s.token}` })));
    for (const st of streams) assert.equal(st.status, 200);

    await ok(a, 'POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'generic' });
    await ok(b, 'POST', '/api/v1/profiles', { name: 'p', distro: 'd' });
    await ok(a, 'POST', '/api/v1/systems', { name: 'web1', profile: 'p', interfaces: { eth0: { mac_address: '52:54:00:40:00:01' } } });
    // An edit on one is live on the other two at the next request (no cache, no sync).
    await ok(b, 'PATCH', '/api/v1/systems/web1', { comment: 'edited on b' });
    assert.equal(((await ok(a, 'GET', '/api/v1/systems/web1')) as { comment: string }).comment, 'edited on b');
    assert.equal(((await ok(c, 'GET', '/api/v1/systems/web1')) as { comment: string }).comment, 'edited on b');
    await ok(c, 'PATCH', '/api/v1/systems/web1', { comment: 'then on c' });
    for (const s of [a, b]) assert.equal(((await ok(s, 'GET', '/api/v1/systems/web1')) as { comment: string }).comment, 'then on c');
    const list = await b.cli(['system', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /web1/);

    // Events recorded through any server reach all three servers' streams, in id order.
    const sent: ForgeEvent[] = [];
    const sources = ['server-a', 'server-b', 'server-c'];
    for (let i = 0; i < 9; i++) {
      sent.push((await ok(trio[i % 3]!, 'POST', '/api/v1/systems/web1/events', { type: 'install_start', source: sources[i % 3] })) as ForgeEvent);
    }
    const ids = sent.map((e) => e.id);
    for (const [i, st] of streams.entries()) {
      await st.waitFor(9);
      assert.deepEqual(st.events.map((e) => e.id), ids, `${'abc'[i]!}'s stream: all three servers' events`);
      assert.deepEqual(new Set(st.events.map((e) => e.source)), new Set(sources));
      st.close();
    }
    // Resuming on another server with the last id seen replays nothing twice and nothing lost.
    const resumed = await openStream(c.url, `?since_id=${ids[2]}`, { authorization: `Bearer ${c.token}` });
    await resumed.waitFor(6);
    assert.deepEqual(resumed.events.map((e) => e.id), ids.slice(3));
    resumed.close();

    // An installer's install_start callback repeated through another server (its own died, the
    // service address moved) is one event: the dedupe reads the shared timeline, not one server's memory.
    await ok(a, 'POST', '/api/v1/systems', { name: 'inst1', profile: 'p', netboot_enabled: true });
    const base = ((await ok(a, 'GET', '/api/v1/systems/inst1/blended')) as { install_base_url: string }).install_base_url;
    const path = `${new URL(base).pathname}/api/v1/systems/inst1/install/start`;
    assert.match(path, /^\/i\/[0-9a-f]{32}\/api\/v1\/systems\/inst1\/install\/start$/);
    for (const s of [a, b, c, b]) {
      const r = await fetch(s.url + path);
      assert.equal(r.status, 200, `install/start on ${s.url}: ${await r.text()}`);
    }
    const started = ((await ok(c, 'GET', '/api/v1/systems/inst1/events')) as ForgeEvent[]).filter((e) => e.type === 'install_start');
    assert.equal(started.length, 1, `one install_start for four calls through three servers: ${JSON.stringify(started)}`);
    await ok(a, 'DELETE', '/api/v1/systems/inst1');

    // Concurrent creates of one name, one MAC, one IP on all three servers: one wins, the others are told why.
    for (let round = 0; round < 5; round++) {
      const cases: [string, (side: string) => unknown, string, string][] = [
        ['DUPLICATE_NAME', () => ({ name: `same${round}`, profile: 'p' }), 'name', 'name'],
        ['DUPLICATE_MAC', (side) => ({ name: `mac${side}${round}`, profile: 'p', interfaces: { eth0: { mac_address: `52:54:00:41:00:0${round}` } } }), 'interfaces.eth0.mac_address', 'MAC'],
        ['DUPLICATE_IP', (side) => ({ name: `ip${side}${round}`, profile: 'p', interfaces: { eth0: { ip_address: `10.3.0.${round + 1}` } } }), 'interfaces.eth0.ip_address', 'IP'],
      ];
      for (const [code, body, field, what] of cases) {
        const r = await Promise.all(trio.map((s, i) => s.api('POST', '/api/v1/systems', body('abc'[i]!))));
        const statuses = r.map((x) => x.status).sort();
        assert.deepEqual(statuses, [201, 409, 409], `${what} round ${round}: ${JSON.stringify(r.map((x) => x.body))}`);
        for (const loser of r.filter((x) => x.status === 409).map((x) => x.body as { code: string; field: string; message: string })) {
          assert.equal(loser.code, code);
          assert.equal(loser.field, field);
        }
      }
    }
    const names = ((await ok(b, 'GET', '/api/v1/systems')) as { name: string }[]).map((s) => s.name);
    assert.equal(names.length, 1 + 15, 'one system per contested create');
  } catch (e) {
    for (const f of forges) t.diagnostic(f.output().slice(-2500));
    throw e;
  } finally {
    for (const fw of forwards) await fw.close();
    for (const f of forges) await f.stop();
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forge export from SQLite, import-data into PostgreSQL, and back: identical', async () => {
  const lite = await serve();
  const kernel = join(tmp, 'linux');
  writeFileSync(kernel, 'k');
  const cli = async (s: ForgeServer, args: string[], input?: string): Promise<string> => {
    const r = await s.cli(args, {}, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await cli(lite, ['distro', 'add', '--name', 'd', '--kernel', kernel, '--initrd', kernel, '--kernel-options', 'a=1 b']);
  await cli(lite, ['profile', 'add', '--name', 'p', '--distro', 'd', '--autoinstall-meta', 'tz=UTC']);
  await cli(lite, ['profile', 'add', '--name', 'child', '--parent', 'p']);
  for (let i = 0; i < 5; i++) {
    await cli(lite, ['system', 'add', '--name', `s${i}`, '--profile', i % 2 === 0 ? 'p' : 'child', '--mac', `52:54:00:50:00:0${i}`, '--ip-address', `10.4.0.${i + 1}`]);
  }
  const fromLite = await cli(lite, ['export']);
  const file = join(tmp, 'backup.json');
  writeFileSync(file, fromLite);

  const pgServer = await serve(['--store', await cluster!.createDatabase()]);
  assert.match(await cli(pgServer, ['import-data', file]), /imported 1 distros, 2 profiles, 5 systems/);
  const fromPg = await cli(pgServer, ['export']);
  const body = (s: string): string => JSON.stringify({ ...(JSON.parse(s) as Record<string, unknown>), exported: '' });
  assert.equal(body(fromPg), body(fromLite), 'PostgreSQL exports what SQLite exported');

  const back = await serve();
  writeFileSync(file, fromPg);
  await cli(back, ['import-data', file]);
  assert.equal(body(await cli(back, ['export'])), body(fromLite), 'and back to SQLite, unchanged');
  const sys = (await pgServer.api('GET', '/api/v1/systems/s3')).body as { interfaces: Record<string, { mac_address: string }> };
  assert.equal(sys.interfaces['eth0']?.mac_address, '52:54:00:50:00:03');
});

test('forge serve on an unreachable database refuses to start, naming the URL without the password', async () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_')));
  const r = await runCli(['serve', '--data-dir', join(tmp, 'dd'), '--listen', '127.0.0.1', '--http-port', '0', '--tftp-enabled', 'false', '--store', 'postgres://forge:hunter2-pw@127.0.0.1:1/forge'], env);
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stderr, /PostgreSQL at postgres:\/\/forge:\*\*\*@127\.0\.0\.1:1\/forge/);
  assert.match(r.stderr, /ECONNREFUSED/);
  assert.doesNotMatch(r.stderr + r.stdout, /hunter2/);
  const bad = await runCli(['serve', '--data-dir', join(tmp, 'dd'), '--store', 'mysql://x'], env);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /store .*postgres:\/\/ URL/);
});
