/**
 * Subnets as objects, the pure part and the DHCP handler over a real SQLite store: the rules of
 * one subnet (field named), the RFC 3397 search-list encoding, and managed DHCP taking every
 * option from the client's subnet (giaddr's for relayed requests), live after an edit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ForgeError } from '../../server/errors.js';
import { defaultSubnet } from '../../server/core/defaults.js';
import type { Subnet } from '../../server/core/model.js';
import { checkSubnet, effectiveSubnet, overlaps, parseCidr, subnetOfIp, subnetUnknownPolicy } from '../../server/core/subnet.js';
import { validateNew, validatePatch } from '../../server/core/validate.js';
import { MessageType, Opt, decode, decodeDomainSearch, encodeDomainSearch, type Packet } from '../../server/protocol/dhcp4/index.js';
import { createDhcpHandler } from '../../server/services/dhcp.js';
import type { DhcpHandler } from '../../server/services/dhcp/handler.js';
import { fixture, wire, type ClientOpts } from './dhcp-fixtures.js';
import { BootService, type BootDeps } from '../../server/boot/provider.js';

function fails(fn: () => unknown, code: string, field: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ForgeError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.field, field, e.message);
    assert.ok(e.message.startsWith(`${field}:`), e.message);
    return true;
  });
}

const sub = (o: Partial<Subnet>): Subnet => ({ ...defaultSubnet('lab'), cidr: '10.96.0.0/24', ...o });

test('subnet rules: cidr normalised, ranges/router inside, lease time and mtu bounds, each error names its field', () => {
  const ok = validateNew('subnet', { name: 'lab', cidr: '10.96.0.7/24', range: '10.96.0.100,10.96.0.200 10.96.0.210-10.96.0.220', router: '10.96.0.1', dns: '10.96.0.1 10.96.0.2', dns_search: 'lab.example example', lease_time: '3600', mtu: 9000 });
  assert.equal(ok.cidr, '10.96.0.0/24');
  assert.deepEqual(ok.range, ['10.96.0.100,10.96.0.200', '10.96.0.210,10.96.0.220']);
  assert.deepEqual(ok.dns, ['10.96.0.1', '10.96.0.2']);
  assert.equal(ok.lease_time, 3600);
  assert.equal(ok.unknown, '');
  fails(() => validateNew('subnet', { name: 'x' }), 'MISSING_FIELD', 'cidr');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/31' }), 'INVALID_FIELD', 'cidr');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0' }), 'INVALID_FIELD', 'cidr');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', range: ['10.96.1.10,10.96.1.20'] }), 'INVALID_FIELD', 'range[0]');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', range: ['10.96.0.10,10.96.0.255'] }), 'INVALID_FIELD', 'range[0]');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', range: ['10.96.0.20,10.96.0.10'] }), 'INVALID_FIELD', 'range[0]');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', range: ['10.96.0.10,10.96.0.20', '10.96.0.15,10.96.0.30'] }), 'INVALID_FIELD', 'range[1]');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.128/25', router: '10.96.0.1' }), 'INVALID_FIELD', 'router');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', lease_time: 30 }), 'INVALID_FIELD', 'lease_time');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', lease_time: 10 ** 9 }), 'INVALID_FIELD', 'lease_time');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', mtu: 67 }), 'INVALID_FIELD', 'mtu');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', mtu: 70000 }), 'INVALID_FIELD', 'mtu');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', dns: ['fe80::1'] }), 'INVALID_FIELD', 'dns');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', unknown: 'maybe' }), 'INVALID_FIELD', 'unknown');
  fails(() => validateNew('subnet', { name: 'x', cidr: '10.96.0.0/24', gateway: '10.96.0.1' }), 'UNKNOWN_FIELD', 'gateway');
  // An edit that moves the network away from its router is refused too.
  fails(() => validatePatch('subnet', ok, { cidr: '10.97.0.0/24' }), 'INVALID_FIELD', 'range[0]');
  assert.equal(validatePatch('subnet', ok, { cidr: '10.96.0.0/23' }).cidr, '10.96.0.0/23');
});

test('subnet values: overlap, most specific subnet of an address, fallbacks (router only inside), unknown policy', () => {
  const a = parseCidr('10.96.0.0/24')!;
  assert.ok(overlaps(a, parseCidr('10.96.0.128/25')!));
  assert.ok(overlaps(parseCidr('10.96.0.0/16')!, a));
  assert.ok(!overlaps(a, parseCidr('10.96.1.0/24')!));
  const subs = [sub({ name: 'big', cidr: '10.96.0.0/16' }), sub({ name: 'small', cidr: '10.96.5.0/24' })];
  assert.equal(subnetOfIp(subs, '10.96.5.9')?.name, 'small');
  assert.equal(subnetOfIp(subs, '10.96.6.9')?.name, 'big');
  assert.equal(subnetOfIp(subs, '10.96.5.255')?.name, 'big');
  assert.equal(subnetOfIp(subs, '10.97.0.1'), undefined);
  const fb = { dhcp_router: '10.96.0.1', dhcp_dns: ['9.9.9.9'], dhcp_domain: 'site.example', dhcp_lease_time: 7200, dhcp_authoritative: false, next_server: '', dhcp_unknown: 'ignore' };
  const low = effectiveSubnet(checkSubnet(sub({ cidr: '10.96.0.0/25' })), fb);
  assert.deepEqual([low.router, low.dns, low.domain, low.lease_time, low.netmask], ['10.96.0.1', ['9.9.9.9'], 'site.example', 7200, '255.255.255.128']);
  // The relay bug: the serve-wide router is not on 10.96.0.128/25, so its clients do not get it.
  const high = effectiveSubnet(checkSubnet(sub({ cidr: '10.96.0.128/25' })), fb);
  assert.equal(high.router, '');
  const own = effectiveSubnet(checkSubnet(sub({ cidr: '10.96.0.128/25', router: '10.96.0.129', dns: ['10.96.0.130'], domain: 'b.example', lease_time: 600, authoritative: true, unknown: 'discover' })), fb);
  assert.deepEqual([own.router, own.dns, own.domain, own.lease_time, own.authoritative, own.unknown], ['10.96.0.129', ['10.96.0.130'], 'b.example', 600, true, 'discover']);
  assert.equal(subnetUnknownPolicy(undefined, 'default'), 'default');
  assert.equal(subnetUnknownPolicy({ unknown: '' }, 'discover'), 'discover');
  assert.equal(subnetUnknownPolicy({ unknown: 'ignore' }, 'default'), 'ignore');
});

test('option 119 (RFC 3397 s2): the RFC example bytes, compression pointers, round trip', () => {
  // RFC 3397 s2: "eng.apple.com." and "marketing.apple.com." -> the second ends in a pointer to offset 4.
  const b = encodeDomainSearch(['eng.apple.com', 'marketing.apple.com.']);
  const want = Buffer.concat([
    Buffer.from([3]), Buffer.from('eng'), Buffer.from([5]), Buffer.from('apple'), Buffer.from([3]), Buffer.from('com'), Buffer.from([0]),
    Buffer.from([9]), Buffer.from('marketing'), Buffer.from([0xc0, 0x04]),
  ]);
  assert.equal(b.toString('hex'), want.toString('hex'));
  assert.deepEqual(decodeDomainSearch(b), ['eng.apple.com', 'marketing.apple.com']);
  const many = Array.from({ length: 40 }, (_, i) => `host${i}.rack${i % 3}.lab.example`);
  assert.deepEqual(decodeDomainSearch(encodeDomainSearch(many)), many);
  assert.throws(() => encodeDomainSearch([`${'a'.repeat(64)}.example`]), RangeError);
});

const RELAY_A = '10.96.0.1';
const RELAY_B = '10.96.0.129';

async function ask(h: DhcpHandler, o: ClientOpts, address = '0.0.0.0'): Promise<Packet | undefined> {
  const out = await h.handle({ data: wire(o), address, port: o.giaddr !== undefined ? 67 : 68, localPort: 67 });
  return out === undefined ? undefined : decode(out.data);
}

function opts(p: Packet): { router?: string; dns: string[]; domain?: string; search: string[]; mtu?: number; lease?: number; siaddr: string; mask?: string } {
  const o = p.options;
  const search = o.get(Opt.DomainSearch);
  const mtu = o.get(Opt.InterfaceMtu);
  const dns = o.get(Opt.DomainNameServer);
  return {
    ...(o.ip(Opt.Router) !== undefined ? { router: o.ip(Opt.Router)! } : {}),
    dns: dns === undefined ? [] : Array.from({ length: dns.length / 4 }, (_, i) => [...dns.subarray(i * 4, i * 4 + 4)].join('.')),
    ...(o.get(Opt.DomainName) !== undefined ? { domain: Buffer.from(o.get(Opt.DomainName)!).toString('latin1') } : {}),
    search: search === undefined ? [] : decodeDomainSearch(search),
    ...(mtu !== undefined ? { mtu: Buffer.from(mtu).readUInt16BE(0) } : {}),
    ...(o.get(Opt.LeaseTime) !== undefined ? { lease: Buffer.from(o.get(Opt.LeaseTime)!).readUInt32BE(0) } : {}),
    siaddr: p.siaddr,
    ...(o.ip(Opt.SubnetMask) !== undefined ? { mask: o.ip(Opt.SubnetMask)! } : {}),
  };
}

test('relay bug: flag subnets 10.96.0.0/25 and 10.96.0.128/25 with one --dhcp-router; the /25 behind the relay does not get a router outside it', async () => {
  const f = await fixture({ dhcp_subnet: ['10.96.0.0/25', '10.96.0.128/25'], dhcp_range: ['10.96.0.10,10.96.0.20', '10.96.0.140,10.96.0.150'], dhcp_router: '10.96.0.1', next_server: '' });
  try {
    const h = await createDhcpHandler(f.ctx);
    const a = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0a:01', giaddr: RELAY_A }, RELAY_A);
    const b = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0b:01', giaddr: RELAY_B }, RELAY_B);
    assert.ok(a && b);
    assert.equal(a.yiaddr, '10.96.0.10');
    assert.equal(opts(a).router, '10.96.0.1');
    assert.equal(b.yiaddr, '10.96.0.140');
    assert.equal(opts(b).router, undefined, 'a router outside the client subnet is never sent');
  } finally {
    await f.cleanup();
  }
});

test('stored subnets: relayed clients of two subnets each get their own router, DNS, domain, search list, MTU, lease time and next-server; edits are live', async () => {
  let clock = 1_000_000;
  const f = await fixture({ dhcp_subnet: [], dhcp_router: '', dhcp_dns: [], dhcp_domain: '', next_server: '' });
  try {
    await f.store.create('subnet', validateNew('subnet', { name: 'low', cidr: '10.96.0.0/25', range: '10.96.0.10,10.96.0.20', router: '10.96.0.1', dns: '10.96.0.2', domain: 'low.example', dns_search: 'low.example example', lease_time: 600, mtu: 1400, next_server: '10.96.0.3' }));
    await f.store.create('subnet', validateNew('subnet', { name: 'high', cidr: '10.96.0.128/25', range: '10.96.0.140,10.96.0.150', router: '10.96.0.129', dns: '10.96.0.130 10.96.0.131', domain: 'high.example', dns_search: 'high.example', lease_time: 1200 }));
    // Known PXE machines (siaddr is only set for a boot answer), one reserved, one from the pool.
    await f.addSystem('vma', '52:54:00:00:0a:01', '10.96.0.11');
    await f.addSystem('vmb', '52:54:00:00:0b:01', '');
    const pxe = { arch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001' };
    const h = await createDhcpHandler(f.ctx, () => clock);
    const a = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0a:01', giaddr: RELAY_A, ...pxe }, RELAY_A);
    const b = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0b:01', giaddr: RELAY_B, ...pxe }, RELAY_B);
    assert.ok(a && b);
    assert.equal(a.yiaddr, '10.96.0.11');
    assert.deepEqual(opts(a), { router: '10.96.0.1', dns: ['10.96.0.2'], domain: 'low.example', search: ['low.example', 'example'], mtu: 1400, lease: 600, siaddr: '10.96.0.3', mask: '255.255.255.128' });
    assert.equal(b.yiaddr, '10.96.0.140');
    const ob = opts(b);
    assert.deepEqual({ ...ob, siaddr: undefined }, { router: '10.96.0.129', dns: ['10.96.0.130', '10.96.0.131'], domain: 'high.example', search: ['high.example'], lease: 1200, siaddr: undefined, mask: '255.255.255.128' });
    assert.notEqual(ob.siaddr, '10.96.0.3', 'next_server of one subnet is not given to another');
    assert.notEqual(ob.siaddr, '0.0.0.0');
    // The REQUEST of the relayed client is ACKed with its subnet's options and lease time.
    const ack = await ask(h, { type: MessageType.REQUEST, mac: '52:54:00:00:0b:01', giaddr: RELAY_B, requested: '10.96.0.140', serverId: b.options.ip(Opt.ServerIdentifier)! }, RELAY_B);
    assert.equal(ack?.options.messageType(), MessageType.ACK);
    assert.equal(opts(ack!).router, '10.96.0.129');
    assert.equal(h.leases.byMacAddr('52:54:00:00:0b:01')?.expires, clock + 1200 * 1000);
    // Zero-sync: an edit through the store reaches DHCP once the 1 s cache expires, no restart.
    await f.store.update('subnet', 'high', (cur) => validatePatch('subnet', cur, { router: '10.96.0.254', range: '10.96.0.200,10.96.0.210' }));
    clock += 1500;
    const b2 = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0b:02', giaddr: RELAY_B }, RELAY_B);
    assert.equal(b2?.yiaddr, '10.96.0.200');
    assert.equal(opts(b2!).router, '10.96.0.254');
    // A subnet removed is no longer served; one added is.
    await f.store.remove('subnet', 'high');
    await f.store.create('subnet', validateNew('subnet', { name: 'c', cidr: '10.97.0.0/24', range: '10.97.0.50,10.97.0.60', router: '10.97.0.1' }));
    clock += 1500;
    assert.equal(await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0b:03', giaddr: RELAY_B }, RELAY_B), undefined);
    const c = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0c:01', giaddr: '10.97.0.1' }, '10.97.0.1');
    assert.equal(c?.yiaddr, '10.97.0.50');
    assert.equal(opts(c!).router, '10.97.0.1');
  } finally {
    await f.cleanup();
  }
});

test('stored subnets: a stored subnet replaces the flag subnet it overlaps; its empty fields take the flag values', async () => {
  const f = await fixture({ dhcp_subnet: ['10.98.0.0/24'], dhcp_range: ['10.98.0.100,10.98.0.110'], dhcp_router: '10.98.0.1', dhcp_dns: ['10.98.0.1'], dhcp_domain: 'lab.test' });
  try {
    await f.store.create('subnet', validateNew('subnet', { name: 'lab', cidr: '10.98.0.0/24', domain: 'stored.example' }));
    const h = await createDhcpHandler(f.ctx);
    assert.deepEqual(h.settings.subnets.map((s) => [s.cidr, s.source, s.site.name]), [['10.98.0.0/24', 'store', 'lab']]);
    const r = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0d:01', giaddr: '10.98.0.1' }, '10.98.0.1');
    assert.ok(r);
    assert.equal(r.yiaddr, '10.98.0.100', 'no range of its own: the dhcp_range inside it');
    assert.deepEqual([opts(r).router, opts(r).dns, opts(r).domain], ['10.98.0.1', ['10.98.0.1'], 'stored.example']);
  } finally {
    await f.cleanup();
  }
});

test('stored subnets: INIT-REBOOT from an unknown client is silent unless the subnet is authoritative (RFC 2131 s4.3.2); per-subnet unknown policy', async () => {
  const f = await fixture({ dhcp_subnet: [], dhcp_router: '', dhcp_dns: [], dhcp_domain: '', default_profile: 'deb12-base' });
  try {
    await f.store.create('subnet', validateNew('subnet', { name: 'quiet', cidr: '10.96.0.0/25', range: '10.96.0.10,10.96.0.20' }));
    await f.store.create('subnet', validateNew('subnet', { name: 'auth', cidr: '10.96.0.128/25', range: '10.96.0.140,10.96.0.150', authoritative: true, unknown: 'default' }));
    const h = await createDhcpHandler(f.ctx);
    const quiet = await ask(h, { type: MessageType.REQUEST, mac: '52:54:00:00:0e:01', giaddr: RELAY_A, requested: '10.96.0.15' }, RELAY_A);
    assert.equal(quiet, undefined);
    const auth = await ask(h, { type: MessageType.REQUEST, mac: '52:54:00:00:0e:02', giaddr: RELAY_B, requested: '10.96.0.141' }, RELAY_B);
    assert.equal(auth?.options.messageType(), MessageType.ACK);
    const nak = await ask(h, { type: MessageType.REQUEST, mac: '52:54:00:00:0e:03', giaddr: RELAY_B, requested: '10.96.0.5' }, RELAY_B);
    assert.equal(nak?.options.messageType(), MessageType.NAK);
    // unknown=default on "auth": an unknown PXE client gets default_profile's boot file; on "quiet" (dhcp_unknown ignore) it gets an address but no boot file.
    const pxe = { arch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001' };
    const onAuth = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0e:04', giaddr: RELAY_B, ...pxe }, RELAY_B);
    const onQuiet = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:0e:05', giaddr: RELAY_A, ...pxe }, RELAY_A);
    assert.ok(onAuth && onQuiet);
    assert.notEqual(onAuth.file, '', 'unknown=default serves a boot file');
    assert.equal(onQuiet.file, '', 'dhcp_unknown=ignore: no boot file');
  } finally {
    await f.cleanup();
  }
});

test('boot-config stage: an unknown machine gets the unknown policy of the stored subnet holding its address, as at the DHCP stage', async () => {
  const f = await fixture({ dhcp_unknown: 'ignore', default_profile: 'deb12-base' });
  try {
    await f.store.create('subnet', validateNew('subnet', { name: 'disc', cidr: '10.96.0.0/25', unknown: 'discover' }));
    await f.store.create('subnet', validateNew('subnet', { name: 'plain', cidr: '10.96.0.128/25' }));
    const boot = new BootService({ store: f.store, settings: f.ctx.settings, config: { ...f.ctx.config, unknown_boot: 'local' }, log: f.ctx.log, record: () => undefined, baseUrl: () => 'http://10.96.0.1:8080' } as unknown as BootDeps);
    const mac = '52:54:00:00:ee:01';
    assert.equal((await boot.decide(mac, '::ffff:10.96.0.20')).target.kind, 'discover', 'subnet disc says discover');
    assert.equal((await boot.decide(mac, '10.96.0.140')).target.kind, 'local', 'subnet plain takes dhcp_unknown=ignore: local disk');
    assert.equal((await boot.decide(mac)).target.kind, 'local', 'no address: the server-wide policy');
  } finally {
    await f.cleanup();
  }
});

test('subnets name their servers: answered where named or unnamed, ignored where other servers are named; a rename is live', async () => {
  let clock = 1_000_000;
  const f = await fixture({ dhcp_subnet: [], dhcp_router: '', dhcp_dns: [], dhcp_domain: '', next_server: '', server_name: 'rack1' });
  try {
    await f.store.create('subnet', validateNew('subnet', { name: 'low', cidr: '10.96.0.0/25', range: '10.96.0.10,10.96.0.20', servers: 'rack2 rack3' }));
    await f.store.create('subnet', validateNew('subnet', { name: 'high', cidr: '10.96.0.128/25', range: '10.96.0.140,10.96.0.150', servers: ['rack1'] }));
    await f.store.create('subnet', validateNew('subnet', { name: 'any', cidr: '10.97.0.0/24', range: '10.97.0.50,10.97.0.60' }));
    assert.deepEqual((await f.store.get('subnet', 'low'))?.servers, ['rack2', 'rack3'], 'stored as a list');
    assert.deepEqual((await f.store.get('subnet', 'any'))?.servers, [], 'default: every server');
    const h = await createDhcpHandler(f.ctx, () => clock);
    assert.equal(await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:1a:01', giaddr: RELAY_A }, RELAY_A), undefined, 'low names rack2 and rack3, not rack1');
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:1b:01', giaddr: RELAY_B }, RELAY_B))?.yiaddr, '10.96.0.140', 'high names rack1');
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:1c:01', giaddr: '10.97.0.1' }, '10.97.0.1'))?.yiaddr, '10.97.0.50', 'a subnet naming nobody is answered as before');
    // A REQUEST of the other servers' subnet is not answered either (no NAK: it is not ours to judge).
    assert.equal(await ask(h, { type: MessageType.REQUEST, mac: '52:54:00:00:1a:01', giaddr: RELAY_A, requested: '10.96.0.10' }, RELAY_A), undefined);
    // Naming this server is live at the next refresh, like any subnet edit.
    await f.store.update('subnet', 'low', (cur) => validatePatch('subnet', cur, { servers: 'rack2 rack1' }));
    clock += 1500;
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:00:1a:01', giaddr: RELAY_A }, RELAY_A))?.yiaddr, '10.96.0.10');
    fails(() => validateNew('subnet', { name: 'bad', cidr: '10.95.0.0/24', servers: 'ok bad/name' }), 'INVALID_FIELD', 'servers');
  } finally {
    await f.cleanup();
  }
});
