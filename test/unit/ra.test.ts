/**
 * The router-advertisement policy (services/ra.ts) as values: which links get RAs, the radvd
 * configuration written for them, and what each ipv6_ra mode does when radvd is missing. The
 * advertisement on the wire is checked with rdisc6 and tcpdump in test/integration/ipv6-ra.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ForgeError } from '../../server/errors.js';
import { memoryLogger } from '../../server/log.js';
import type { DhcpLinkStatus } from '../../server/services/dhcp/links.js';
import { findRadvd, radvdConfig, raInterfaces, startRouterAdvertiser } from '../../server/services/ra.js';

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
