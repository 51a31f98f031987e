/**
 * The router-advertisement policy (services/ra.ts) as values: which links get RAs, the radvd
 * configuration written for them, and what each ipv6_ra mode does when radvd is missing. The
 * advertisement on the wire is checked with rdisc6 and tcpdump in test/integration/ipv6-ra.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ForgeError } from '../../server/errors.js';
import { memoryLogger } from '../../server/log.js';
import type { DhcpLinkStatus } from '../../server/services/dhcp/links.js';
import { findRadvd, linkLocalState, sweepRunDirs, radvdConfig, radvdLaunch, radvdRunDir, raInterfaces, startRouterAdvertiser } from '../../server/services/ra.js';

const link = (state: DhcpLinkStatus['state'], iface: string, subnet = '10.98.0.0/24'): DhcpLinkStatus => ({ subnet, interface: iface, address: '', state, since: '' });

test('only links managed DHCP is serving get RAs: not probing, rival, elsewhere, relayed or no-carrier ones', () => {
  const links = [
    link('serving', 'br1', '10.1.0.0/24'),
    link('probing', 'br2'),
    link('rival', 'br3'),
    link('elsewhere', 'br4'),
    link('relayed', ''),
    link('no-carrier', 'br5'),
    link('serving', 'br0', '10.0.0.0/24'),
    // Two subnets on one bridge: one interface section.
    link('serving', 'br0', '10.0.1.0/24'),
  ];
  assert.deepEqual(raInterfaces(links), ['br0', 'br1']);
  // A name radvd's grammar would not take unquoted (or one too long for Linux) is never written.
  assert.deepEqual(raInterfaces([link('serving', 'a b'), link('serving', 'x'.repeat(16)), link('serving', 'br0;}')]), []);
  assert.deepEqual(raInterfaces([]), []);
  // Loopback (a subnet served on 127.0.0.0/8, as some tests do): no RA, no radvd.
  assert.deepEqual(raInterfaces([link('serving', 'lo', '127.0.0.0/8')]), []);
  assert.deepEqual(raInterfaces([link('serving', 'lo0'), link('serving', 'br0')], (i) => i === 'lo0'), ['br0']);
});

test('the radvd configuration: solicited unicast only, no prefix, no M/O flags, router lifetime 0, hop limit unspecified', () => {
  const c = radvdConfig(['br0', 'eth1']);
  for (const i of ['br0', 'eth1']) assert.match(c, new RegExp(`^interface ${i} \\{$`, 'm'));
  assert.equal(c.match(/AdvSendAdvert on;/g)?.length, 2);
  assert.equal(c.match(/UnicastOnly on;/g)?.length, 2, 'no unsolicited multicast RA');
  assert.equal(c.match(/AdvDefaultLifetime 0;/g)?.length, 2, 'not a default router (RFC 4861 s6.2.5)');
  assert.equal(c.match(/AdvCurHopLimit 0;/g)?.length, 2);
  assert.equal(c.match(/AdvManagedFlag off;/g)?.length, 2);
  assert.equal(c.match(/AdvOtherConfigFlag off;/g)?.length, 2);
  assert.doesNotMatch(c, /prefix|route |RDNSS|DNSSL/, 'says nothing hosts could configure from');
  assert.equal(radvdConfig([]).match(/interface/g), null);
});

test('ipv6_ra: off starts nothing; on without radvd refuses to start naming the field; auto without radvd warns and starts nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-ra-'));
  try {
    const log = memoryLogger('debug');
    const deps = (mode: 'auto' | 'on' | 'off') => ({ config: { ipv6_ra: mode, data_dir: dir }, log, links: () => [link('serving', 'br0')] });
    assert.equal(startRouterAdvertiser(deps('off'), '/nonexistent/radvd'), undefined);
    assert.throws(
      () => startRouterAdvertiser(deps('on'), null),
      (e: unknown) => e instanceof ForgeError && e.code === 'CONFIG_INVALID' && e.field === 'ipv6_ra' && /radvd/.test(e.message),
    );
    assert.equal(startRouterAdvertiser(deps('auto'), null), undefined);
    assert.ok(log.lines.some((l) => /radvd is not installed/.test(l) && /--ipv6-ra off/.test(l)), log.lines.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('findRadvd looks in PATH, then the sbin directories a non-root PATH lacks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-ra-path-'));
  try {
    const found = findRadvd(dir);
    // Either the system's radvd (sbin) or none: never something in an empty directory.
    assert.ok(found === undefined || /^\/(usr\/(local\/)?)?sbin\/radvd$/.test(found), String(found));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('radvd dies with forge: as root setpriv drops to the radvd user with CAP_NET_RAW only and sets the parent-death signal; files move where that user can reach them', () => {
  const base = { radvd: '/usr/sbin/radvd', dataDir: '/var/lib/forge', runDir: '/run' };
  const user = { uid: 105, gid: 65534 };
  const root = radvdLaunch({ ...base, setpriv: '/usr/bin/setpriv', root: true, user });
  assert.equal(root.file, '/usr/bin/setpriv');
  assert.equal(root.pdeathsig, true);
  const sep = root.args.indexOf('--');
  const opts = root.args.slice(0, sep);
  // The uid change happens inside setpriv; radvd's own --username would clear PR_SET_PDEATHSIG.
  assert.deepEqual(opts.slice(opts.indexOf('--reuid'), opts.indexOf('--reuid') + 4), ['--reuid', '105', '--regid', '65534']);
  for (const o of ['--clear-groups', '--no-new-privs']) assert.ok(opts.includes(o), o);
  assert.equal(opts[opts.indexOf('--ambient-caps') + 1], '+net_raw');
  assert.equal(opts[opts.indexOf('--bounding-set') + 1], '-all,+net_raw');
  assert.equal(opts[opts.indexOf('--pdeathsig') + 1], 'TERM');
  assert.deepEqual(root.args.slice(sep + 1, sep + 2), ['/usr/sbin/radvd']);
  assert.ok(!root.args.includes('--username'), 'radvd itself changes no uid');
  assert.deepEqual(root.owner, user);
  assert.equal(root.dir, radvdRunDir('/run', '/var/lib/forge'));
  assert.match(root.dir, /^\/run\/forge\/radvd-[0-9a-f]{16}$/);
  assert.notEqual(radvdRunDir('/run', '/var/lib/forge2'), root.dir, 'one directory per data_dir');
  assert.equal(radvdRunDir('/run', '/var/lib/forge/'), root.dir, 'the same data_dir spelt differently');
  const conf = root.args[root.args.indexOf('--config') + 1];
  assert.equal(conf, `${root.dir}/radvd.conf`);
  assert.equal(root.args[root.args.indexOf('--pidfile') + 1], `${root.dir}/radvd.pid`);

  // Not root: the same user throughout, only the parent-death signal; files stay in data_dir.
  const user2 = radvdLaunch({ ...base, setpriv: '/usr/bin/setpriv', root: false, user });
  assert.deepEqual(user2.args.slice(0, 4), ['--pdeathsig', 'TERM', '--', '/usr/sbin/radvd']);
  assert.equal(user2.dir, '/var/lib/forge/radvd');
  assert.equal(user2.owner, undefined);
  // Root without a radvd user: radvd stays root (as before), still tied to forge.
  assert.deepEqual(radvdLaunch({ ...base, setpriv: '/usr/bin/setpriv', root: true, user: undefined }).args.slice(0, 2), ['--pdeathsig', 'TERM']);
  // No setpriv: radvd alone, dropping to its user itself; not tied to forge (the pid file is the fallback).
  const bare = radvdLaunch({ ...base, setpriv: undefined, root: true, user });
  assert.equal(bare.file, '/usr/sbin/radvd');
  assert.equal(bare.pdeathsig, false);
  assert.deepEqual(bare.args.slice(-2), ['--username', 'radvd']);
  assert.equal(bare.dir, '/var/lib/forge/radvd');
});

test('linkLocalState reads /proc/net/if_inet6: valid, tentative (DAD, RFC 4862 s5.4), none; other scopes and interfaces ignored', () => {
  const text = [
    'fd000000000000000000000000000002 04 40 00 82     br0',
    'fe8000000000000000fc00fffe000001 05 40 20 c0     br1',
    'fe8000000000000000fc00fffe000002 04 40 20 80     br0',
    'fe8000000000000000fc00fffe000003 06 40 20 88     br2',
    '00000000000000000000000000000001 01 80 10 80       lo',
  ].join('\n');
  assert.equal(linkLocalState(text, 'br0'), 'valid');
  assert.equal(linkLocalState(text, 'br1'), 'tentative');
  assert.equal(linkLocalState(text, 'br2'), 'none', 'DAD failed: no usable link-local address');
  assert.equal(linkLocalState(text, 'lo'), 'none', 'host scope is not link-local');
  assert.equal(linkLocalState(text, 'br'), 'none', 'whole names only');
  assert.equal(linkLocalState('', 'br0'), 'none');
});

test('sweepRunDirs removes only the radvd directories whose forge and radvd are both gone, never its own', () => {
  const parent = mkdtempSync(join(tmpdir(), 'forge-ra-run-'));
  try {
    const mk = (name: string, forgePid?: number, radvdPid?: number): string => {
      const d = join(parent, name);
      mkdirSync(d);
      if (forgePid !== undefined) writeFileSync(join(d, 'forge.pid'), `${forgePid}\n`);
      if (radvdPid !== undefined) writeFileSync(join(d, 'radvd.pid'), `${radvdPid}\n`);
      return d;
    };
    const live = new Set([100, 200]);
    const own = mk('radvd-0000000000000001', 999);
    const deadBoth = mk('radvd-0000000000000002', 300, 301);
    const liveForge = mk('radvd-0000000000000003', 100);
    const liveRadvd = mk('radvd-0000000000000004', 302, 200);
    const none = mk('radvd-0000000000000005');
    const other = mk('not-radvd', 300);
    const removed = sweepRunDirs(parent, own, (p) => live.has(p)).sort();
    assert.deepEqual(removed, [deadBoth, none].sort());
    for (const d of [own, liveForge, liveRadvd, other]) assert.ok(existsSync(d), d);
    assert.deepEqual(sweepRunDirs(join(parent, 'missing'), own), []);
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
