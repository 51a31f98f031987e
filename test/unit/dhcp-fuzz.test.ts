/**
 * Fuzzing with fast-check: random and mutated packets (mutations of the real
 * firmware captures and of well-formed packets of every message type) through
 * the decoder and through the handlers of managed and proxy mode, called
 * directly. Nothing may throw out of the handler, no promise may be left
 * rejected, and whatever managed mode offers must lie inside the configured
 * reservations and pool. FUZZ_RUNS scales the run counts (default: 100,000 each).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { DecodeError, Opt, decode, encode, type Packet } from '../../server/protocol/dhcp4/index.js';
import { createDhcpHandler } from '../../server/services/dhcp.js';
import type { DhcpHandler } from '../../server/services/dhcp/handler.js';
import { clientPacket, fixture, type Fixture } from './dhcp-fixtures.js';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 100_000);
const GOLDEN = fileURLToPath(new URL('../../../test/golden/dhcp/', import.meta.url));
const goldens = readdirSync(GOLDEN)
  .filter((f) => f.endsWith('.hex'))
  .map((f) => Buffer.from(readFileSync(GOLDEN + f, 'utf8').replace(/\s+/g, ''), 'hex'));

let unhandled = 0;
const onUnhandled = (): void => void unhandled++;
process.on('unhandledRejection', onUnhandled);
after(() => process.off('unhandledRejection', onUnhandled));

const MACS = ['52:54:00:aa:00:01', '52:54:00:aa:00:02', '52:54:00:aa:00:03', '02:00:00:00:00:01', '02:00:00:00:00:02', '52:54:00:f0:9e:01'];
const IPS = ['0.0.0.0', '10.98.0.1', '10.98.0.21', '10.98.0.100', '10.98.0.103', '10.98.0.255', '10.99.0.1', '192.168.1.1', '255.255.255.255'];

/** Well-formed client packets of every type with interesting field values. */
const wellFormed: fc.Arbitrary<Buffer> = fc
  .record({
    type: fc.integer({ min: 0, max: 12 }),
    mac: fc.constantFrom(...MACS),
    xid: fc.integer({ min: 0, max: 0xffffffff }),
    arch: fc.option(fc.constantFrom(0, 6, 7, 9, 10, 11, 16, 0xffff), { nil: undefined }),
    vendorClass: fc.option(fc.constantFrom('PXEClient:Arch:00000:UNDI:002001', 'PXEClient:Arch:00007:UNDI:003016', 'HTTPClient', 'PXEClient', 'udhcp', ''), { nil: undefined }),
    userClass: fc.option(fc.constantFrom('iPXE', 'foo', ''), { nil: undefined }),
    requested: fc.option(fc.constantFrom(...IPS), { nil: undefined }),
    serverId: fc.option(fc.constantFrom(...IPS), { nil: undefined }),
    ciaddr: fc.option(fc.constantFrom(...IPS), { nil: undefined }),
    giaddr: fc.option(fc.constantFrom(...IPS), { nil: undefined }),
    relayInfo: fc.option(fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)), { nil: undefined }),
    flags: fc.constantFrom(0, 0x8000, 0xffff),
    extra: fc.array(fc.record({ code: fc.integer({ min: 1, max: 254 }), data: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 6 }),
  })
  .map((r) => {
    const p = clientPacket(r);
    for (const e of r.extra) p.options.append(e.code, e.data);
    try {
      return encode(p);
    } catch {
      return encode(clientPacket(r));
    }
  });

const seeds = fc.oneof(fc.constantFrom(...goldens), wellFormed);

type Mutation =
  | { k: 'flip'; at: number; v: number }
  | { k: 'truncate'; at: number }
  | { k: 'append'; bytes: Uint8Array }
  | { k: 'splice'; at: number; bytes: Uint8Array }
  | { k: 'optlen'; at: number; v: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ k: fc.constant('splice' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  // Aim at the option area: corrupt lengths and codes (52 overload, 53, 82, 93...).
  fc.record({ k: fc.constant('optlen' as const), at: fc.integer({ min: 240, max: 420 }), v: fc.constantFrom(0, 1, 2, 3, 52, 53, 82, 93, 175, 255) }),
);

function mutate(buf: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(buf);
  for (const m of ms) {
    if (b.length === 0 && m.k !== 'append') continue;
    switch (m.k) {
      case 'flip':
      case 'optlen':
        b[m.at % b.length] = m.v;
        break;
      case 'truncate':
        b = b.subarray(0, m.at % (b.length + 1));
        break;
      case 'append':
        b = Buffer.concat([b, m.bytes]);
        break;
      case 'splice': {
        const at = m.at % (b.length + 1);
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      }
    }
  }
  return b;
}

const packets: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 700 }).map((u) => Buffer.from(u)) },
  { weight: 3, arbitrary: fc.tuple(seeds, fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([s, ms]) => mutate(s, ms)) },
  { weight: 3, arbitrary: wellFormed },
);

function meaning(p: Packet): unknown {
  return {
    ...p,
    chaddr: p.chaddr.toString('hex'),
    options: p.options.entries().filter((o) => o.code !== Opt.Overload).map((o) => [o.code, o.data.toString('hex')]),
  };
}

test(`decoder: ${RUNS} random and mutated packets either decode and round-trip or raise DecodeError`, () => {
  let decoded = 0;
  fc.assert(
    fc.property(packets, (buf) => {
      let p: Packet;
      try {
        p = decode(buf);
      } catch (e) {
        if (!(e instanceof DecodeError) || e.code !== 'DHCP_DECODE') throw e;
        return;
      }
      decoded++;
      // Whatever decodes re-encodes (no 548 limit: requests may be larger) and means the same.
      const again = decode(encode(p));
      assert.deepEqual(meaning(again), meaning(p));
    }),
    { numRuns: RUNS, seed: Number(process.env['FUZZ_SEED'] ?? 4242) },
  );
  assert.ok(decoded > RUNS / 4, `enough inputs decoded to exercise the handler paths (${decoded})`);
});

async function handlerFuzz(mode: 'managed' | 'proxy'): Promise<void> {
  const f: Fixture = await fixture(
    mode === 'managed'
      ? { dhcp_subnet: ['10.98.0.0/24', '10.99.0.0/24'], dhcp_range: ['10.98.0.100,10.98.0.103', '10.99.0.10,10.99.0.12'] }
      : { dhcp_mode: 'proxy', dhcp_subnet: [] },
  );
  try {
    await f.addSystem('vm1', MACS[0]!, '10.98.0.21');
    await f.addSystem('vm2', MACS[1]!, '10.98.0.101', { netboot_enabled: false });
    await f.addSystem('vm3', MACS[2]!, '192.168.9.9', { boot_loaders: ['grub'] });
    const allowed = new Set(['10.98.0.21', '10.98.0.100', '10.98.0.101', '10.98.0.102', '10.98.0.103', '10.99.0.10', '10.99.0.11', '10.99.0.12']);
    const h: DhcpHandler = await createDhcpHandler(f.ctx);
    let replies = 0;
    await fc.assert(
      fc.asyncProperty(packets, fc.constantFrom(67, 4011), async (buf, localPort) => {
        const out = await h.handle({ data: buf, address: '10.98.0.77', port: 68, localPort });
        if (out === undefined) return;
        replies++;
        const r = decode(out.data);
        assert.equal(r.op, 2);
        if (mode === 'proxy') assert.equal(r.yiaddr, '0.0.0.0', 'proxy mode never assigns addresses');
        else if (r.yiaddr !== '0.0.0.0') assert.ok(allowed.has(r.yiaddr), `offered ${r.yiaddr} outside reservations and pools`);
      }),
      { numRuns: RUNS, seed: Number(process.env['FUZZ_SEED'] ?? 4242) },
    );
    await h.leases.flush();
    assert.equal(h.stats.received, RUNS);
    assert.equal(h.stats.errors, 0, `handler faults: ${f.lines.filter((l) => /failed/.test(l)).slice(0, 3).join('\n')}`);
    assert.ok(h.stats.malformed > 0 && replies > 0, `both drops (${h.stats.malformed}) and replies (${replies}) were exercised`);
    for (const l of await f.store.listLeases()) if (l.state === 'bound') assert.ok(allowed.has(l.ip), `persisted lease ${l.ip}`);
  } finally {
    await f.cleanup();
  }
}

test(`managed handler: ${RUNS} random and mutated packets, no fault, never an address outside the configuration`, async () => {
  await handlerFuzz('managed');
});

test(`proxy handler: ${RUNS} random and mutated packets, no fault, never an address`, async () => {
  await handlerFuzz('proxy');
});

test('no unhandled rejection during fuzzing', async () => {
  await new Promise((r) => setImmediate(r));
  assert.equal(unhandled, 0);
});
