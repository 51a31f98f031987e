/**
 * The DHCP packet handler in managed and proxy mode, driven with real
 * encoded packets and a real SQLite store (no sockets: those are in
 * test/integration/dhcp-interop.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createDhcpHandler } from '../../server/services/dhcp.js';
import type { DhcpHandler, Outbound } from '../../server/services/dhcp/handler.js';
import { FLAG_BROADCAST, MessageType, Opt, decode, encode, type Packet } from '../../server/protocol/dhcp4/index.js';
import { ForgeError } from '../../server/errors.js';
import { PXE_BIOS, PXE_UEFI, clientPacket, fixture, wire, type ClientOpts } from './dhcp-fixtures.js';

const MAC = '52:54:00:aa:00:01';
const from = { address: '0.0.0.0', port: 68, localPort: 67 };

async function ask(h: DhcpHandler, o: ClientOpts, src = from): Promise<{ out: Outbound; p: Packet } | undefined> {
  const out = await h.handle({ data: wire(o), ...src });
  return out === undefined ? undefined : { out, p: decode(out.data) };
}

test('managed: a known PXE BIOS machine gets its fixed address, undionly.kpxe, and a bound lease', async () => {
  const f = await fixture();
  try {
    await f.addSystem('vm1', MAC, '10.98.0.21');
    const h = await createDhcpHandler(f.ctx);
    const offer = await ask(h, { type: MessageType.DISCOVER, mac: MAC, ...PXE_BIOS });
    assert.ok(offer);
    assert.equal(offer.p.options.messageType(), MessageType.OFFER);
    assert.equal(offer.p.yiaddr, '10.98.0.21');
    assert.equal(offer.p.siaddr, '10.98.0.1');
    assert.equal(offer.p.file, 'undionly.kpxe');
    assert.equal(offer.p.options.ip(Opt.ServerIdentifier), '10.98.0.1');
    assert.equal(offer.p.options.ip(Opt.SubnetMask), '255.255.255.0');
    assert.equal(offer.p.options.ip(Opt.Router), '10.98.0.1');
    assert.equal(offer.p.options.string(Opt.HostName), 'vm1');
    assert.equal(offer.p.options.uint32(Opt.LeaseTime), 3600);
    assert.equal(offer.out.address, '255.255.255.255');
    assert.equal(offer.out.port, 68);
    assert.deepEqual(offer.out.fallback, ['10.98.0.255']);
    const ack = await ask(h, { type: MessageType.REQUEST, mac: MAC, ...PXE_BIOS, requested: '10.98.0.21', serverId: '10.98.0.1' });
    assert.ok(ack);
    assert.equal(ack.p.options.messageType(), MessageType.ACK);
    assert.equal(ack.p.yiaddr, '10.98.0.21');
    assert.equal(ack.p.file, 'undionly.kpxe');
    // The lease was committed before the ACK was handed back (no flush: an ACKed lease is durable).
    const lease = await f.store.getLease(MAC);
    assert.equal(lease?.ip, '10.98.0.21');
    assert.equal(lease?.state, 'bound');
    assert.equal(lease?.system, 'vm1');
    assert.deepEqual(f.events.map((e) => [e.system, e.type, e.detail?.['ip'], e.detail?.['boot_file'], e.detail?.['arch']]), [
      ['vm1', 'dhcp_offer', '10.98.0.21', 'undionly.kpxe', 0],
      ['vm1', 'dhcp_ack', '10.98.0.21', 'undionly.kpxe', 0],
    ]);
  } finally {
    await f.cleanup();
  }
});

test('managed: the real iPXE ROM DISCOVER gets the HTTP script URL; UEFI gets ipxe.efi; profile chain grub gets grubx64.efi', async () => {
  const f = await fixture();
  try {
    await f.addSystem('vm1', '52:54:00:f0:9e:01', '10.98.0.22');
    await f.addSystem('vm2', MAC, '10.98.0.23');
    await f.addSystem('vm3', '52:54:00:aa:00:03', '10.98.0.24', { profile: 'deb12-grub' });
    const h = await createDhcpHandler(f.ctx);
    const golden = Buffer.from(readFileSync(fileURLToPath(new URL('../../../test/golden/dhcp/ipxe-bios-discover.hex', import.meta.url)), 'utf8').replace(/\s+/g, ''), 'hex');
    const out = await h.handle({ data: golden, ...from });
    assert.ok(out);
    const p = decode(out.data);
    assert.equal(p.yiaddr, '10.98.0.22');
    assert.equal(p.file, 'http://10.98.0.1:8080/boot/ipxe/52:54:00:f0:9e:01');
    const uefi = await ask(h, { type: MessageType.DISCOVER, mac: MAC, ...PXE_UEFI });
    assert.equal(uefi?.p.file, 'ipxe.efi');
    const grub = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:aa:00:03', ...PXE_UEFI });
    assert.equal(grub?.p.file, 'grubx64.efi');
  } finally {
    await f.cleanup();
  }
});

test('managed: UEFI HTTP boot gets a URL with option 60 HTTPClient echoed; netboot disabled gets no boot file', async () => {
  const f = await fixture();
  try {
    await f.addSystem('vm1', MAC, '10.98.0.21');
    await f.addSystem('vm2', '52:54:00:aa:00:02', '10.98.0.22', { netboot_enabled: false });
    const h = await createDhcpHandler(f.ctx);
    const r = await ask(h, { type: MessageType.DISCOVER, mac: MAC, arch: 16, vendorClass: 'HTTPClient:Arch:00016:UNDI:003001' });
    assert.equal(r?.p.options.vendorClass(), 'HTTPClient');
    assert.equal(r?.p.file, 'http://10.98.0.1:8080/boot/loaders/ipxe.efi');
    const local = await ask(h, { type: MessageType.DISCOVER, mac: '52:54:00:aa:00:02', ...PXE_BIOS });
    assert.equal(local?.p.yiaddr, '10.98.0.22');
    assert.equal(local?.p.file, '');
    assert.equal(local?.p.siaddr, '0.0.0.0');
  } finally {
    await f.cleanup();
  }
});

test('managed: unknown MACs are ignored without a pool and get a pool address (no boot file) with one', async () => {
  const f = await fixture();
  try {
    const h = await createDhcpHandler(f.ctx);
    assert.equal(await ask(h, { type: MessageType.DISCOVER, mac: MAC, ...PXE_BIOS }), undefined);
    const f2 = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.101'] });
    try {
      const h2 = await createDhcpHandler(f2.ctx);
      const r = await ask(h2, { type: MessageType.DISCOVER, mac: MAC, ...PXE_BIOS });
      assert.equal(r?.p.yiaddr, '10.98.0.100');
      assert.equal(r?.p.file, '');
      assert.equal(f2.events.length, 0, 'no events for unknown machines');
      // dhcp_unknown=default serves the default profile's loader to unknown machines.
      const f3 = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.101'], dhcp_unknown: 'default', default_profile: 'deb12-grub' });
      try {
        const h3 = await createDhcpHandler(f3.ctx);
        const u = await ask(h3, { type: MessageType.DISCOVER, mac: MAC, ...PXE_UEFI });
        assert.equal(u?.p.file, 'grubx64.efi');
      } finally {
        await f3.cleanup();
      }
    } finally {
      await f2.cleanup();
    }
  } finally {
    await f.cleanup();
  }
});

test('managed: pool exhaustion is answered sanely (no offer, counted, logged), and a release frees an address', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.101'] });
  try {
    const h = await createDhcpHandler(f.ctx);
    const macs = ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03'];
    const got: (string | undefined)[] = [];
    for (const m of macs) {
      const o = await ask(h, { type: MessageType.DISCOVER, mac: m });
      got.push(o?.p.yiaddr);
      if (o !== undefined) await ask(h, { type: MessageType.REQUEST, mac: m, requested: o.p.yiaddr, serverId: '10.98.0.1' });
    }
    assert.deepEqual(got, ['10.98.0.100', '10.98.0.101', undefined]);
    assert.equal(h.stats.exhausted, 1);
    assert.ok(f.lines.some((l) => /pool exhausted/.test(l)));
    // The same client asking again keeps its address (no new allocation).
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: macs[0]! }))?.p.yiaddr, '10.98.0.100');
    await ask(h, { type: MessageType.RELEASE, mac: macs[0]!, ciaddr: '10.98.0.100', serverId: '10.98.0.1' });
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: macs[2]! }))?.p.yiaddr, '10.98.0.100');
  } finally {
    await f.cleanup();
  }
});

test('managed, authoritative: NAK for a wrong requested address, an address off the network, and another system\'s reservation', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.110'], dhcp_authoritative: true });
  try {
    await f.addSystem('vm1', MAC, '10.98.0.21');
    await f.addSystem('vm9', '52:54:00:aa:00:09', '10.98.0.105');
    const h = await createDhcpHandler(f.ctx);
    for (const [mac, want] of [
      [MAC, '10.98.0.22'], // known system asking for something else than its reservation
      ['02:00:00:00:00:01', '10.98.0.50'], // outside the pool
      ['02:00:00:00:00:01', '192.168.7.7'], // not on this network
      ['02:00:00:00:00:01', '10.98.0.105'], // reserved for vm9
    ] as const) {
      const r = await ask(h, { type: MessageType.REQUEST, mac, requested: want });
      assert.equal(r?.p.options.messageType(), MessageType.NAK, `${mac} ${want}`);
      assert.equal(r?.p.yiaddr, '0.0.0.0');
      assert.equal(r?.out.address, '255.255.255.255');
    }
    // INIT-REBOOT with the right address is ACKed.
    const ok = await ask(h, { type: MessageType.REQUEST, mac: MAC, requested: '10.98.0.21' });
    assert.equal(ok?.p.options.messageType(), MessageType.ACK);
    // A pool client never gets vm9's reserved address.
    const seen = new Set<string>();
    for (let i = 0; i < 11; i++) {
      const o = await ask(h, { type: MessageType.DISCOVER, mac: `02:00:00:00:01:${i.toString(16).padStart(2, '0')}` });
      if (o !== undefined) seen.add(o.p.yiaddr);
    }
    assert.equal(seen.has('10.98.0.105'), false);
    assert.equal(seen.size, 10);
  } finally {
    await f.cleanup();
  }
});

test('managed: a REQUEST for another server is silent and frees the offer; DECLINE takes the address out of the pool', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.101'] });
  try {
    const h = await createDhcpHandler(f.ctx);
    const a = '02:00:00:00:00:0a';
    const b = '02:00:00:00:00:0b';
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: a }))?.p.yiaddr, '10.98.0.100');
    assert.equal(await ask(h, { type: MessageType.REQUEST, mac: a, requested: '10.98.0.100', serverId: '10.98.0.254' }), undefined);
    // b was offered .101: its DECLINE counts and takes .101 out of the pool.
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: b }))?.p.yiaddr, '10.98.0.101');
    await ask(h, { type: MessageType.DECLINE, mac: b, requested: '10.98.0.101', serverId: '10.98.0.1' });
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: b }))?.p.yiaddr, '10.98.0.100');
    assert.equal(h.stats.declines, 1);
  } finally {
    await f.cleanup();
  }
});

test('managed: a DECLINE counts only from the client that holds or was offered the address (as Kea)', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.101'] });
  try {
    const h = await createDhcpHandler(f.ctx);
    const owner = '02:00:00:00:00:0a';
    const other = '02:00:00:00:00:0b';
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: owner }))?.p.yiaddr, '10.98.0.100');
    assert.equal((await ask(h, { type: MessageType.REQUEST, mac: owner, requested: '10.98.0.100', serverId: '10.98.0.1' }))?.p.options.messageType(), MessageType.ACK);
    // Another client declines the owner's address, and a free one nobody was offered: both ignored.
    await ask(h, { type: MessageType.DECLINE, mac: other, requested: '10.98.0.100', serverId: '10.98.0.1' });
    await ask(h, { type: MessageType.DECLINE, mac: other, requested: '10.98.0.101', serverId: '10.98.0.1' });
    assert.equal(h.stats.declines, 0);
    assert.equal(h.leases.byAddress(0x0a620064)?.state, 'bound');
    // The free address is still handed out, to the client that tried to decline it.
    assert.equal((await ask(h, { type: MessageType.DISCOVER, mac: other }))?.p.yiaddr, '10.98.0.101');
    // The owner's own DECLINE counts.
    await ask(h, { type: MessageType.DECLINE, mac: owner, requested: '10.98.0.100', serverId: '10.98.0.1' });
    assert.equal(h.stats.declines, 1);
    assert.equal(h.leases.byAddress(0x0a620064)?.state, 'declined');
  } finally {
    await f.cleanup();
  }
});

test('managed: INIT-REBOOT from a client without a record gets no answer, never an ACK (RFC 2131 4.3.2); with a record, ACK or NAK', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.110'] });
  try {
    await f.addSystem('vm1', MAC, '10.98.0.21');
    const h = await createDhcpHandler(f.ctx);
    const stranger = '02:00:00:00:00:01';
    for (const want of ['10.98.0.100', '10.98.0.50', '192.168.7.7']) {
      assert.equal(await ask(h, { type: MessageType.REQUEST, mac: stranger, requested: want }), undefined, want);
    }
    assert.equal(h.stats.acks + h.stats.naks, 0);
    assert.equal(h.leases.byMacAddr(stranger), undefined);
    // A reservation is a record: ACKed for its address, NAKed for another.
    assert.equal((await ask(h, { type: MessageType.REQUEST, mac: MAC, requested: '10.98.0.21' }))?.p.options.messageType(), MessageType.ACK);
    assert.equal((await ask(h, { type: MessageType.REQUEST, mac: MAC, requested: '10.98.0.22' }))?.p.options.messageType(), MessageType.NAK);
    // A client forge leased an address to: its INIT-REBOOT is ACKed for that address, NAKed for another.
    const pc = '02:00:00:00:00:02';
    const ip = (await ask(h, { type: MessageType.DISCOVER, mac: pc }))?.p.yiaddr ?? '';
    await ask(h, { type: MessageType.REQUEST, mac: pc, requested: ip, serverId: '10.98.0.1' });
    assert.equal((await ask(h, { type: MessageType.REQUEST, mac: pc, requested: ip }))?.p.options.messageType(), MessageType.ACK);
    assert.equal((await ask(h, { type: MessageType.REQUEST, mac: pc, requested: '10.98.0.109' }))?.p.options.messageType(), MessageType.NAK);
  } finally {
    await f.cleanup();
  }
});

test('managed: a reply larger than the client accepts drops optional options in the stated order instead of going unanswered', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.110'], dhcp_dns: Array.from({ length: 60 }, (_, i) => `10.98.1.${i + 1}`), dhcp_domain: `${'d'.repeat(60)}.${'e'.repeat(60)}.test` });
  try {
    await f.addSystem('vm1', MAC, '10.98.0.21', { hostname: `${'h'.repeat(60)}.lab.test` });
    const h = await createDhcpHandler(f.ctx);
    // 60 DNS servers (242 bytes) + a 60-byte host name + a 126-byte domain + boot file: about 740 bytes.
    const r = await ask(h, { type: MessageType.DISCOVER, mac: MAC, ...PXE_BIOS });
    assert.ok(r, 'an oversized reply is trimmed, not dropped');
    assert.ok(r.out.data.length <= 548, `reply is ${r.out.data.length} bytes`);
    assert.equal(r.p.options.messageType(), MessageType.OFFER);
    assert.equal(r.p.yiaddr, '10.98.0.21');
    assert.equal(r.p.file, 'undionly.kpxe');
    assert.equal(r.p.options.ip(Opt.ServerIdentifier), '10.98.0.1');
    assert.equal(r.p.options.ip(Opt.Router), '10.98.0.1');
    assert.equal(r.p.options.uint32(Opt.LeaseTime), 3600);
    // Dropped first to last, only as many as needed: 67 (file holds it), 66, 12, 15; DNS stays.
    assert.deepEqual(r.out.dropped, [Opt.BootfileName, Opt.TftpServerName, Opt.HostName, Opt.DomainName]);
    assert.equal(r.p.options.ips(Opt.DomainNameServer)?.length, 60);
    assert.equal(r.p.options.get(Opt.BootfileName), undefined);
    assert.equal(h.stats.trimmed, 1);
    // A client announcing a large maximum message size (option 57) gets everything.
    const big = clientPacket({ type: MessageType.DISCOVER, mac: MAC, ...PXE_BIOS });
    big.options.setUint16(Opt.MaxMessageSize, 1500);
    const full = await h.handle({ data: encode(big), ...from });
    assert.ok(full);
    const fp = decode(full.data);
    assert.equal(fp.options.ips(Opt.DomainNameServer)?.length, 60);
    assert.equal(fp.options.string(Opt.DomainName), `${'d'.repeat(60)}.${'e'.repeat(60)}.test`);
    assert.equal(fp.options.string(Opt.HostName), 'h'.repeat(60));
    assert.equal(full.dropped, undefined);
  } finally {
    await f.cleanup();
  }
});

test('managed: relayed requests are answered to giaddr:67 with option 82 echoed unchanged', async () => {
  const f = await fixture({ dhcp_subnet: ['10.98.0.0/24', '10.99.0.0/24'], dhcp_range: ['10.99.0.10,10.99.0.20'] });
  try {
    const h = await createDhcpHandler(f.ctx);
    const ri = Buffer.from([1, 4, 0, 0, 0, 7, 2, 6, 1, 2, 3, 4, 5, 6]);
    const r = await ask(h, { type: MessageType.DISCOVER, mac: MAC, giaddr: '10.99.0.1', relayInfo: ri }, { address: '10.99.0.1', port: 67, localPort: 67 });
    assert.ok(r);
    assert.equal(r.out.address, '10.99.0.1');
    assert.equal(r.out.port, 67);
    assert.equal(r.p.giaddr, '10.99.0.1');
    assert.equal(r.p.yiaddr, '10.99.0.10');
    assert.equal(r.p.options.relayAgentInfo()?.toString('hex'), ri.toString('hex'));
    const codes = r.p.options.entries().map((o) => o.code);
    assert.equal(codes[codes.length - 1], Opt.RelayAgentInfo);
    // A relay from a network we do not serve is ignored.
    assert.equal(await ask(h, { type: MessageType.DISCOVER, mac: MAC, giaddr: '172.16.0.1' }), undefined);
    // A NAK through a relay has the broadcast bit set.
    const nak = await ask(h, { type: MessageType.REQUEST, mac: MAC, giaddr: '10.99.0.1', requested: '10.99.0.99' });
    assert.equal(nak?.p.options.messageType(), MessageType.NAK);
    assert.equal((nak?.p.flags ?? 0) & FLAG_BROADCAST, FLAG_BROADCAST);
  } finally {
    await f.cleanup();
  }
});

test('managed: INFORM gets configuration without an address or lease time, unicast to ciaddr', async () => {
  const f = await fixture();
  try {
    const h = await createDhcpHandler(f.ctx);
    const r = await ask(h, { type: MessageType.INFORM, mac: MAC, ciaddr: '10.98.0.77' }, { address: '10.98.0.77', port: 68, localPort: 67 });
    assert.equal(r?.p.options.messageType(), MessageType.ACK);
    assert.equal(r?.p.yiaddr, '0.0.0.0');
    assert.equal(r?.p.options.get(Opt.LeaseTime), undefined);
    assert.equal(r?.out.address, '10.98.0.77');
  } finally {
    await f.cleanup();
  }
});

test('managed: a reservation outside the configured subnets is never handed out', async () => {
  const f = await fixture();
  try {
    await f.addSystem('vm1', MAC, '192.168.50.5');
    const h = await createDhcpHandler(f.ctx);
    assert.equal(await ask(h, { type: MessageType.DISCOVER, mac: MAC, ...PXE_BIOS }), undefined);
    assert.ok(f.lines.some((l) => /outside the configured subnets/.test(l)));
  } finally {
    await f.cleanup();
  }
});

test('proxy: PXE clients get boot info with no address; others get nothing; port 4011 answers REQUESTs', async () => {
  const f = await fixture({ dhcp_mode: 'proxy', dhcp_subnet: [] });
  try {
    await f.addSystem('vm1', MAC, '');
    const h = await createDhcpHandler(f.ctx);
    const r = await ask(h, { type: MessageType.DISCOVER, mac: MAC, ...PXE_BIOS });
    assert.ok(r);
    assert.equal(r.p.options.messageType(), MessageType.OFFER);
    assert.equal(r.p.yiaddr, '0.0.0.0');
    assert.equal(r.p.siaddr, '10.98.0.1');
    assert.equal(r.p.file, 'undionly.kpxe');
    assert.equal(r.p.options.vendorClass(), 'PXEClient');
    assert.equal(r.p.options.get(Opt.LeaseTime), undefined);
    assert.equal(await ask(h, { type: MessageType.DISCOVER, mac: MAC }), undefined, 'not a PXE client');
    assert.equal(await ask(h, { type: MessageType.REQUEST, mac: MAC, ...PXE_BIOS, requested: '10.98.0.50', serverId: '10.98.0.2' }), undefined);
    assert.equal(await ask(h, { type: MessageType.DISCOVER, mac: '02:00:00:00:00:01', ...PXE_BIOS }), undefined, 'unknown MAC');
    const boot = await ask(h, { type: MessageType.REQUEST, mac: MAC, ...PXE_BIOS, userClass: 'iPXE', ciaddr: '10.98.0.50' }, { address: '10.98.0.50', port: 68, localPort: 4011 });
    assert.equal(boot?.p.options.messageType(), MessageType.ACK);
    assert.equal(boot?.p.file, 'http://10.98.0.1:8080/boot/ipxe/52:54:00:aa:00:01');
    assert.equal(boot?.out.address, '10.98.0.50');
    assert.equal(boot?.out.port, 68);
  } finally {
    await f.cleanup();
  }
});

test('malformed packets are dropped, counted and logged as DHCP_DECODE; settings errors are CONFIG_INVALID', async () => {
  const f = await fixture();
  try {
    const h = await createDhcpHandler(f.ctx);
    assert.equal(await h.handle({ data: Buffer.from('garbage'), ...from }), undefined);
    const p = wire({ type: MessageType.DISCOVER, mac: MAC });
    p[2] = 99;
    assert.equal(await h.handle({ data: p, ...from }), undefined);
    assert.equal(h.stats.malformed, 2);
    assert.ok(f.lines.some((l) => /dropped malformed packet.*DHCP_DECODE/.test(l)));
    // A BOOTREPLY or a non-Ethernet request is ignored, not answered.
    const reply = wire({ type: MessageType.DISCOVER, mac: MAC });
    reply[0] = 2;
    assert.equal(await h.handle({ data: reply, ...from }), undefined);
  } finally {
    await f.cleanup();
  }
  for (const bad of [{ dhcp_subnet: ['10.98.0.0/33'] }, { dhcp_range: ['10.97.0.1,10.97.0.9'] }, { dhcp_range: ['10.98.0.9,10.98.0.1'] }]) {
    const f2 = await fixture(bad);
    try {
      await assert.rejects(createDhcpHandler(f2.ctx), (e: unknown) => e instanceof ForgeError && e.code === 'CONFIG_INVALID');
    } finally {
      await f2.cleanup();
    }
  }
  // No subnet at all is not an error (the first one is added through the running server): nobody is answered.
  const f3 = await fixture({ dhcp_subnet: [] });
  try {
    const h = await createDhcpHandler(f3.ctx);
    assert.equal(h.settings.subnets.length, 0);
    assert.equal(await h.handle({ data: wire({ type: MessageType.DISCOVER, mac: MAC }), ...from }), undefined);
  } finally {
    await f3.cleanup();
  }
});

test('managed: bound leases survive a restart (persisted, reloaded) and stay with their client', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.101'] });
  try {
    const h1 = await createDhcpHandler(f.ctx);
    const a = '02:00:00:00:00:0a';
    const o = await ask(h1, { type: MessageType.DISCOVER, mac: a });
    assert.equal(o?.p.yiaddr, '10.98.0.100');
    await ask(h1, { type: MessageType.REQUEST, mac: a, requested: '10.98.0.100', serverId: '10.98.0.1' });
    await h1.leases.flush();
    // A new handler (a restarted server) over the same database.
    const h2 = await createDhcpHandler(f.ctx);
    assert.equal(h2.leases.size, 1);
    assert.equal((await ask(h2, { type: MessageType.DISCOVER, mac: '02:00:00:00:00:0b' }))?.p.yiaddr, '10.98.0.101');
    assert.equal((await ask(h2, { type: MessageType.DISCOVER, mac: a }))?.p.yiaddr, '10.98.0.100');
    // A third client finds the pool full.
    assert.equal(await ask(h2, { type: MessageType.DISCOVER, mac: '02:00:00:00:00:0c' }), undefined);
  } finally {
    await f.cleanup();
  }
});

test('mode off (the default) starts nothing: no socket, no answer', async () => {
  const f = await fixture({ dhcp_mode: 'off' });
  try {
    const { startDhcp } = await import('../../server/services/dhcp.js');
    const { defaults } = await import('../../server/config.js');
    assert.equal(defaults().dhcp_mode, 'off');
    assert.equal(await startDhcp(f.ctx), undefined);
    await assert.rejects(createDhcpHandler(f.ctx), (e: unknown) => e instanceof ForgeError && e.code === 'CONFIG_INVALID');
  } finally {
    await f.cleanup();
  }
});

test('managed: offers and ACKs to iPXE carry its no-ProxyDHCP flag (175.176 = 1); other clients and proxy mode do not', async () => {
  const noProxy = (p: Packet | undefined): boolean => p?.options.subOptions(Opt.IpxeEncap)?.some((s) => s.code === 176 && s.data.length === 1 && s.data[0] === 1) === true;
  const f = await fixture();
  try {
    await f.addSystem('vm1', '52:54:00:f0:9e:01', '10.98.0.22');
    await f.addSystem('vm2', MAC, '10.98.0.23');
    const h = await createDhcpHandler(f.ctx);
    // The real iPXE ROM DISCOVER (it sends option 175) and its REQUEST.
    const hex = (n: string): Buffer =>
      Buffer.from(readFileSync(fileURLToPath(new URL(`../../../test/golden/dhcp/${n}.hex`, import.meta.url)), 'utf8').replace(/\s+/g, ''), 'hex');
    const offer = await h.handle({ data: hex('ipxe-bios-discover'), ...from });
    assert.ok(offer);
    assert.ok(noProxy(decode(offer.data)), 'OFFER to iPXE has 175.176 = 1');
    // Its recorded REQUEST, pointed at this server and the offered address.
    const req = decode(hex('ipxe-bios-request'));
    req.options.setIp(Opt.ServerIdentifier, '10.98.0.1').setIp(Opt.RequestedIP, decode(offer.data).yiaddr);
    const ack = await h.handle({ data: encode(req), ...from });
    assert.equal(ack === undefined ? undefined : decode(ack.data).options.messageType(), MessageType.ACK);
    assert.ok(ack !== undefined && noProxy(decode(ack.data)), 'ACK to iPXE has 175.176 = 1');
    // A plain PXE ROM (no option 175) gets no option 175.
    const pxe = await ask(h, { type: MessageType.DISCOVER, mac: MAC, ...PXE_BIOS });
    assert.equal(pxe?.p.options.get(Opt.IpxeEncap), undefined);
  } finally {
    await f.cleanup();
  }
  const fp = await fixture({ dhcp_mode: 'proxy', dhcp_subnet: [] });
  try {
    await fp.addSystem('vm1', '52:54:00:f0:9e:01', '');
    const h = await createDhcpHandler(fp.ctx);
    const golden = Buffer.from(readFileSync(fileURLToPath(new URL('../../../test/golden/dhcp/ipxe-bios-discover.hex', import.meta.url)), 'utf8').replace(/\s+/g, ''), 'hex');
    const r = await h.handle({ data: golden, ...from });
    assert.ok(r, 'proxy mode answers the iPXE ROM');
    assert.equal(noProxy(decode(r.data)), false, 'proxy mode: forge is the ProxyDHCP server, no flag');
  } finally {
    await fp.cleanup();
  }
});

test('managed: a lease the store refuses to record is not ACKed; the retransmitted REQUEST is, once the store takes it', async () => {
  const f = await fixture({ dhcp_range: ['10.98.0.100,10.98.0.110'] });
  try {
    const h = await createDhcpHandler(f.ctx);
    const mac = '02:00:00:00:00:7e';
    const offer = await ask(h, { type: MessageType.DISCOVER, mac });
    assert.equal(offer?.p.options.messageType(), MessageType.OFFER);
    // A real SQLite refusal of lease writes (as a full disk gives SQLITE_FULL), reads unaffected.
    for (const op of ['INSERT', 'UPDATE']) f.store.db.exec(`CREATE TRIGGER refuse_${op} BEFORE ${op} ON leases BEGIN SELECT RAISE(ABORT, 'lease writes refused by the test'); END`);
    const req = { type: MessageType.REQUEST, mac, requested: offer?.p.yiaddr ?? '', serverId: '10.98.0.1' };
    assert.equal(await ask(h, req), undefined, 'no ACK for a lease that is not recorded');
    assert.equal(h.stats.unrecorded, 1);
    assert.equal(h.stats.acks, 0);
    assert.equal(await f.store.getLease(mac), undefined);
    assert.ok(f.lines.some((l) => /could not persist lease/.test(l) && /refused by the test/.test(l)), f.lines.join('\n'));
    for (const op of ['INSERT', 'UPDATE']) f.store.db.exec(`DROP TRIGGER refuse_${op}`);
    const ack = await ask(h, req);
    assert.equal(ack?.p.options.messageType(), MessageType.ACK, 'the client\'s retransmission is ACKed');
    assert.equal((await f.store.getLease(mac))?.ip, offer?.p.yiaddr);
  } finally {
    await f.cleanup();
  }
});
