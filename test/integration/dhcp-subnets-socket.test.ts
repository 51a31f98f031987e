/**
 * Stored subnets through real sockets: a real `forge serve` started as the README's Subnets
 * section says (`forge subnet add ...`, then `forge serve --dhcp-mode managed`: no --server, no
 * probe flag) in a namespace, with clients in namespaces of their own:
 *
 *   - dhclient on the directly attached subnet gets that subnet's router, DNS, domain, search list
 *     (option 119 parsed by dhclient itself), MTU and lease time;
 *   - hand-built relayed requests (giaddr of two other stored subnets, from port 67 of a relay
 *     namespace) each get their own subnet's options, and perfdhcp through that relay address
 *     completes DORA exchanges; `forge status` shows those subnets as relayed (never no-carrier),
 *     naming the relay once one was heard;
 *   - RFC 2131 details on the wire: a DECLINE from a non-owner is ignored (the owner still gets its
 *     ACK), a reply over the client's option 57 is trimmed (option 119 dropped first, the rest
 *     kept, within 576 bytes), an INIT-REBOOT from an unknown client is unanswered on a plain
 *     subnet and answered on an authoritative one;
 *   - a rival DHCP server (dnsmasq) silences forge on its link; once it stops, the re-probe finds
 *     the link clear and forge answers there again (log, dhcp_rival_gone event, forge status).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { need } from '../lib/env.js';
import { createLan, type Lan, type LanClient } from '../lib/netns.js';
import { FORGE_BIN } from '../lib/server.js';
import { perfStats } from '../lib/perfdhcp.js';
import { MessageType, Opt, decodeDomainSearch, type Packet } from '../../server/protocol/dhcp4/index.js';
import { exchange, packet, waitFor } from '../lib/dhcp-raw.js';

const REQ = { root: true, commands: ['ip', 'dhclient', 'perfdhcp', 'dnsmasq'] };

interface Serve {
  proc: ChildProcess;
  out(): string;
  cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** `forge serve` with the given flags inside the LAN namespace, its own data dir; the CLI talks to it over the namespace's loopback. */
async function serve(lan: Lan, dir: string, flags: string[]): Promise<Serve> {
  const proc = lan.spawn(process.execPath, [FORGE_BIN, 'serve', '--data-dir', dir, '--tftp-enabled', 'false', ...flags]);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out, /forge ready:|exited/, 30_000, 'forge ready');
  assert.match(out, /forge ready:/);
  const token = readFileSync(join(dir, 'token'), 'utf8').trim();
  return {
    proc,
    out: () => out,
    // The CLI runs in the namespace too (the server's loopback is there).
    cli: (args) => lan.exec(process.execPath, [FORGE_BIN, ...args], { env: { ...process.env, FORGE_SERVER: 'http://127.0.0.1:8080', FORGE_TOKEN: token }, timeoutMs: 30_000 }),
  };
}

const ipsOf = (p: Packet, code: number): string[] => {
  const b = p.options.get(code);
  return b === undefined ? [] : Array.from({ length: b.length / 4 }, (_, i) => [...b.subarray(i * 4, i * 4 + 4)].join('.'));
};
const str = (p: Packet, code: number): string | undefined => {
  const b = p.options.get(code);
  return b === undefined ? undefined : Buffer.from(b).toString('latin1');
};
const byXid = (rs: { p: Packet; size: number }[], xid: number): { p: Packet; size: number } | undefined => rs.find((r) => r.p.xid === xid);

test('stored subnets on real sockets, README literal: dhclient on the attached subnet, relayed clients of two subnets, perfdhcp through the relay, DECLINE/option 57/INIT-REBOOT on the wire', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgsub-'));
  const lan = await createLan('fgsub');
  try {
    // The relay: a namespace on the bridge at 10.98.0.50 that also holds the relayed subnets' gateway addresses.
    const relay = await lan.addClient();
    await relay.must('ip', ['addr', 'add', '10.98.0.50/24', 'dev', 'eth0']);
    await relay.must('ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'eth0']);
    await relay.must('ip', ['addr', 'add', '10.100.0.1/24', 'dev', 'eth0']);
    await lan.must('ip', ['route', 'add', '10.99.0.0/24', 'via', '10.98.0.50']);
    await lan.must('ip', ['route', 'add', '10.100.0.0/24', 'via', '10.98.0.50']);

    // README, Subnets: forge serve --dhcp-mode managed (no subnet yet: it starts and answers nobody), then forge subnet add ...
    const srv = await serve(lan, dir, ['--dhcp-mode', 'managed']);
    assert.match(srv.out(), /no subnet yet: answering nobody/);
    const add = async (args: string[]): Promise<void> => {
      const r = await srv.cli(['subnet', 'add', ...args]);
      assert.equal(r.code, 0, `${args.join(' ')}\n${r.stdout}${r.stderr}`);
    };
    const search = Array.from({ length: 30 }, (_, i) => `rack${i}.lab.example`);
    await add(['--name', 'lab', '--cidr', '10.98.0.0/24', '--range', '10.98.0.100,10.98.0.150', '--router', '10.98.0.254', '--dns', '10.98.0.53', '--domain', 'lab.example',
      '--dns-search', 'lab.example example', '--lease-time', '1800', '--mtu', '1400']);
    await add(['--name', 'east', '--cidr', '10.99.0.0/24', '--range', '10.99.0.100,10.99.0.150', '--router', '10.99.0.1', '--dns', '10.99.0.53', '--domain', 'east.example',
      '--dns-search', search.join(' ')]);
    await add(['--name', 'west', '--cidr', '10.100.0.0/24', '--range', '10.100.0.100,10.100.0.150', '--router', '10.100.0.1', '--dns', '10.100.0.53 10.100.0.54', '--domain', 'west.example',
      '--dns-search', 'west.example', '--lease-time', '900', '--authoritative']);

    // 1. dhclient on the attached subnet (after the default 3 s probe of br0 found no other server).
    await waitFor(srv.out, /serving this link/, 30_000, 'probe of br0');
    const c = await lan.addClient();
    const envFile = join(dir, 'dhclient.env');
    const script = join(dir, 'dhclient-script');
    writeFileSync(script, `#!/bin/sh\nif [ "$reason" = BOUND ]; then env | grep '^new_' > ${envFile}; fi\n`);
    chmodSync(script, 0o755);
    const conf = join(dir, 'dhclient.conf');
    writeFileSync(conf, 'request subnet-mask, routers, domain-name-servers, domain-name, domain-search, interface-mtu, dhcp-lease-time;\n');
    const dh = await c.exec('dhclient', ['-4', '-1', '-v', '-cf', conf, '-sf', script, '-lf', join(dir, 'dhclient.leases'), '-pf', join(dir, 'dhclient.pid'), 'eth0'], { timeoutMs: 60_000 });
    assert.ok(existsSync(envFile), `dhclient bound:\n${dh.stdout}${dh.stderr}\n${srv.out()}`);
    const env = Object.fromEntries(readFileSync(envFile, 'utf8').split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.match(env['new_ip_address'] ?? '', /^10\.98\.0\.1[0-4]\d$|^10\.98\.0\.150$/);
    assert.equal(env['new_routers'], '10.98.0.254');
    assert.equal(env['new_domain_name_servers'], '10.98.0.53');
    assert.equal(env['new_domain_name'], 'lab.example');
    assert.equal(env['new_domain_search'], 'lab.example. example.', 'dhclient decoded forge\'s RFC 3397 list (with its compression pointer)');
    assert.equal(env['new_interface_mtu'], '1400');
    assert.equal(env['new_dhcp_lease_time'], '1800');
    await c.exec('dhclient', ['-x', '-pf', join(dir, 'dhclient.pid'), 'eth0']);

    // forge status: the subnets with no interface of this host are relayed, not links without carrier.
    const statusShows = async (re: RegExp, what: string): Promise<string> => {
      const end = Date.now() + 20_000;
      for (;;) {
        const r = await srv.cli(['status']);
        if (re.test(r.stdout)) return r.stdout;
        if (Date.now() > end) throw new Error(`forge status: ${what} not shown in 20 s:\n${r.stdout}${r.stderr}`);
        await new Promise((res) => setTimeout(res, 500));
      }
    };
    const before = await statusShows(/10\.99\.0\.0\/24\s+-\s+-\s+relayed \(no relayed request yet\)/, 'east relayed before any relay is heard');
    assert.match(before, /10\.98\.0\.0\/24\s+br0\s+10\.98\.0\.1\s+serving/, 'the attached subnet is a served link');
    assert.doesNotMatch(before, /no-carrier/, 'no subnet reads as a link without carrier');

    // 2. Relayed requests: each subnet's own options (replies come back to giaddr:67).
    const east = await exchange(relay, { bind: '10.99.0.1', bindPort: 67, to: '10.98.0.1' }, [packet({ type: MessageType.DISCOVER, mac: '52:54:00:99:00:01', xid: 0x9901, giaddr: '10.99.0.1', maxSize: 1500 })]);
    const west = await exchange(relay, { bind: '10.100.0.1', bindPort: 67, to: '10.98.0.1' }, [packet({ type: MessageType.DISCOVER, mac: '52:54:00:a0:00:01', xid: 0xa001, giaddr: '10.100.0.1' })]);
    const e = byXid(east, 0x9901)?.p;
    const w = byXid(west, 0xa001)?.p;
    assert.ok(e && w, `relayed offers:\n${srv.out()}`);
    assert.equal(e.yiaddr, '10.99.0.100');
    assert.deepEqual([ipsOf(e, Opt.Router), ipsOf(e, Opt.DomainNameServer), str(e, Opt.DomainName)], [['10.99.0.1'], ['10.99.0.53'], 'east.example']);
    assert.deepEqual(decodeDomainSearch(e.options.get(Opt.DomainSearch)!), search, 'a long search list in several option instances (RFC 3396), whole');
    assert.equal(w.yiaddr, '10.100.0.100');
    assert.deepEqual([ipsOf(w, Opt.Router), ipsOf(w, Opt.DomainNameServer), str(w, Opt.DomainName)], [['10.100.0.1'], ['10.100.0.53', '10.100.0.54'], 'west.example']);
    assert.equal(Buffer.from(w.options.get(Opt.LeaseTime)!).readUInt32BE(0), 900);
    assert.deepEqual(ipsOf(w, Opt.ServerIdentifier), ['10.98.0.1'], 'the server identifier is the address facing the relay');
    const heard = await statusShows(/10\.100\.0\.0\/24\s+-\s+-\s+relayed \(via relay 10\.100\.0\.1\)/, 'west relayed via its relay');
    assert.match(heard, /10\.99\.0\.0\/24\s+-\s+-\s+relayed \(via relay 10\.99\.0\.1\)/, heard);

    // 3. Option 57: the same east client with a 576-byte limit; option 119 goes first, what boots stays.
    const small = byXid(await exchange(relay, { bind: '10.99.0.1', bindPort: 67, to: '10.98.0.1' }, [packet({ type: MessageType.DISCOVER, mac: '52:54:00:99:00:02', xid: 0x9902, giaddr: '10.99.0.1', maxSize: 576 })]), 0x9902);
    assert.ok(small, `a trimmed offer, not silence:\n${srv.out()}`);
    assert.ok(small.size <= 576 - 28, `reply of ${small.size} bytes fits option 57 minus IP/UDP headers`);
    assert.equal(small.p.options.get(Opt.DomainSearch), undefined, 'option 119 dropped');
    assert.deepEqual([ipsOf(small.p, Opt.Router), str(small.p, Opt.DomainName), ipsOf(small.p, Opt.DomainNameServer)], [['10.99.0.1'], 'east.example', ['10.99.0.53']], 'the options after 119 in the drop order are kept');

    // 4. DECLINE: only the client offered (or holding) the address may decline it.
    const sid = '10.98.0.1';
    const offerA = byXid(await exchange(relay, { bind: '10.99.0.1', bindPort: 67, to: '10.98.0.1' }, [packet({ type: MessageType.DISCOVER, mac: '52:54:00:99:00:0a', xid: 0x990a, giaddr: '10.99.0.1' })]), 0x990a);
    assert.ok(offerA);
    const a = offerA.p.yiaddr;
    await exchange(relay, { bind: '10.99.0.1', bindPort: 67, to: '10.98.0.1', listenMs: 500 }, [packet({ type: MessageType.DECLINE, mac: '52:54:00:99:00:0b', xid: 0x990b, giaddr: '10.99.0.1', requested: a, serverId: sid })]);
    const ackA = byXid(await exchange(relay, { bind: '10.99.0.1', bindPort: 67, to: '10.98.0.1' }, [packet({ type: MessageType.REQUEST, mac: '52:54:00:99:00:0a', xid: 0x990c, giaddr: '10.99.0.1', requested: a, serverId: sid })]), 0x990c);
    assert.equal(ackA?.p.options.messageType(), MessageType.ACK, 'a stranger\'s DECLINE did not take the address away');
    assert.equal(ackA?.p.yiaddr, a);
    // The holder's own DECLINE counts: the address leaves the pool, the next client gets another.
    await exchange(relay, { bind: '10.99.0.1', bindPort: 67, to: '10.98.0.1', listenMs: 500 }, [packet({ type: MessageType.DECLINE, mac: '52:54:00:99:00:0a', xid: 0x990d, giaddr: '10.99.0.1', requested: a, serverId: sid })]);
    const next = byXid(await exchange(relay, { bind: '10.99.0.1', bindPort: 67, to: '10.98.0.1' }, [packet({ type: MessageType.DISCOVER, mac: '52:54:00:99:00:0e', xid: 0x990e, giaddr: '10.99.0.1', requested: a })]), 0x990e);
    assert.ok(next);
    assert.notEqual(next.p.yiaddr, a, 'a declined address is not offered again at once');

    // 5. INIT-REBOOT (requested address, no server id, no ciaddr) from clients forge has no record of.
    const quiet = await exchange(relay, { bind: '10.99.0.1', bindPort: 67, to: '10.98.0.1', listenMs: 1500 }, [packet({ type: MessageType.REQUEST, mac: '52:54:00:99:00:f1', xid: 0x99f1, giaddr: '10.99.0.1', requested: '10.99.0.120' })]);
    assert.equal(byXid(quiet, 0x99f1), undefined, 'RFC 2131 4.3.2: no record, not authoritative: silent');
    const loud = await exchange(relay, { bind: '10.100.0.1', bindPort: 67, to: '10.98.0.1' }, [
      packet({ type: MessageType.REQUEST, mac: '52:54:00:a0:00:f1', xid: 0xa0f1, giaddr: '10.100.0.1', requested: '10.100.0.120' }),
      packet({ type: MessageType.REQUEST, mac: '52:54:00:a0:00:f2', xid: 0xa0f2, giaddr: '10.100.0.1', requested: '10.99.0.120' }),
    ]);
    assert.equal(byXid(loud, 0xa0f1)?.p.options.messageType(), MessageType.ACK, 'authoritative subnet: an address of its pool is ACKed');
    assert.equal(byXid(loud, 0xa0f2)?.p.options.messageType(), MessageType.NAK, 'authoritative subnet: an address of another network is NAKed');

    // 6. perfdhcp acting as the relay of the east subnet (giaddr 10.99.0.1): full exchanges.
    const perf = await relay.exec('perfdhcp', ['-4', '-l', '10.99.0.1', '-r', '10', '-R', '20', '-n', '20', '-p', '5', '10.98.0.1'], { timeoutMs: 40_000 });
    const st = perfStats(perf.stdout);
    assert.ok(st.doRecv > 0 && st.raRecv > 0, `perfdhcp through the relay address got offers and acks:\n${perf.stdout}\n${perf.stderr}`);
    srv.proc.kill('SIGTERM');
  } finally {
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rival on a served link: forge stays silent while dnsmasq answers, re-probes, and answers again once it is gone (log, event, forge status)', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgriv-'));
  const lan = await createLan('fgriv');
  try {
    const rival = await lan.addClient();
    await rival.must('ip', ['addr', 'add', '10.98.0.2/24', 'dev', 'eth0']);
    const dnsmasq = rival.spawn('dnsmasq', [
      '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=eth0', '--bind-interfaces',
      '--dhcp-range=10.98.0.50,10.98.0.60,255.255.255.0,1h', `--dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`, '--dhcp-authoritative', '--no-ping',
    ]);
    let dlog = '';
    dnsmasq.stderr?.on('data', (d: Buffer) => (dlog += d.toString()));
    await waitFor(() => dlog, /started, version|DHCP, IP range/, 10_000, 'dnsmasq start');
    // The README's managed line; only the re-probe interval is shortened (default 60 s) to keep the test short.
    const srv = await serve(lan, dir, ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200',
      '--dhcp-router', '10.98.0.1', '--dhcp-dns', '10.98.0.1', '--dhcp-reprobe-seconds', '5']);
    await waitFor(srv.out, /not answering there/, 30_000, 'rival found');
    const c = await lan.addClient();
    // No address yet: a route so the limited broadcast can leave (as a DHCP client's raw socket would).
    await c.must('ip', ['route', 'add', 'default', 'dev', 'eth0']);
    const ask = async (xid: number): Promise<{ p: Packet }[]> => exchange(c, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', listenMs: 2000 }, [packet({ type: MessageType.DISCOVER, mac: '52:54:00:77:00:01', xid })]);
    const during = await ask(0x7701);
    assert.ok(during.length > 0, 'dnsmasq answers');
    assert.ok(during.every((r) => (r.p.options.ip(Opt.ServerIdentifier) ?? '') === '10.98.0.2'), `forge is silent while the rival is there: ${during.map((r) => r.p.options.ip(Opt.ServerIdentifier)).join(' ')}`);
    const st1 = await srv.cli(['status']);
    assert.match(st1.stdout, /10\.98\.0\.0\/24\s+br0\s+10\.98\.0\.1\s+rival \(other server: 10\.98\.0\.2; next probe /, st1.stdout + st1.stderr);
    // A re-probe while it still answers keeps the link silent (and records no new rival event).
    await waitFor(srv.out, /probing again/, 20_000, 're-probe');
    dnsmasq.kill('SIGTERM');
    await waitFor(srv.out, /no longer answers; serving this link again/, 30_000, 'link back');
    const after = await ask(0x7702);
    assert.ok(after.some((r) => r.p.options.ip(Opt.ServerIdentifier) === '10.98.0.1' && r.p.yiaddr.startsWith('10.98.0.')), `forge answers again:\n${srv.out()}`);
    const st2 = await srv.cli(['status']);
    assert.match(st2.stdout, /10\.98\.0\.0\/24\s+br0\s+10\.98\.0\.1\s+serving/, st2.stdout);
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();
    const evs = await lan.must(process.execPath, ['-e', `fetch('http://127.0.0.1:8080/api/v1/events/latest',{headers:{authorization:'Bearer ${token}'}}).then(r=>r.text()).then(t=>process.stdout.write(t))`]);
    assert.match(evs, /dhcp_rival_gone/, evs);
    srv.proc.kill('SIGTERM');
  } finally {
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
