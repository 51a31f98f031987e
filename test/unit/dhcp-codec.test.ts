/**
 * DHCP codec: golden packets from real firmware (captured by
 * test/golden/dhcp/record.sh), decode-encode-decode round trips, RFC 3396
 * long options, option 52 overload, typed getters and typed decode errors.
 * UPDATE_GOLDEN=1 rewrites the golden text dumps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  DecodeError,
  MessageType,
  Opt,
  Options,
  decode,
  debugString,
  encode,
  macOf,
  macToChaddr,
  tryDecode,
  type Packet,
} from '../../server/protocol/dhcp4/index.js';

const GOLDEN = fileURLToPath(new URL('../../../test/golden/dhcp/', import.meta.url));
const hexFiles = readdirSync(GOLDEN).filter((f) => f.endsWith('.hex')).sort();
const load = (f: string): Buffer => Buffer.from(readFileSync(GOLDEN + f, 'utf8').replace(/\s+/g, ''), 'hex');

/** Compares everything a packet means (not byte layout: padding and End may differ). */
function same(a: Packet, b: Packet): void {
  const { options: oa, chaddr: ca, ...ha } = a;
  const { options: ob, chaddr: cb, ...hb } = b;
  assert.deepEqual(ha, hb);
  assert.deepEqual([...ca], [...cb]);
  assert.deepEqual(
    oa.entries().map((o) => [o.code, o.data.toString('hex')]),
    ob.entries().map((o) => [o.code, o.data.toString('hex')]),
  );
}

test('golden captures exist for the iPXE ROM (BIOS), OVMF with iPXE, and OVMF EDK II', () => {
  for (const n of ['ipxe-bios', 'ovmf-uefi', 'ovmf-edk2']) {
    assert.ok(hexFiles.includes(`${n}-discover.hex`), `${n}-discover.hex`);
    assert.ok(hexFiles.includes(`${n}-request.hex`), `${n}-request.hex`);
  }
});

for (const f of hexFiles) {
  test(`golden ${f}: decodes to its golden text and round-trips`, () => {
    const raw = load(f);
    const p = decode(raw);
    const text = debugString(p);
    const txt = GOLDEN + f.replace(/\.hex$/, '.txt');
    if (process.env['UPDATE_GOLDEN'] === '1' || !existsSync(txt)) writeFileSync(txt, text);
    assert.equal(text, readFileSync(txt, 'utf8'));
    const again = decode(encode(p));
    same(again, p);
    // Byte-exact for the fields and options (our encoder writes options in the order read).
    assert.equal(encode(again).toString('hex'), encode(p).toString('hex'));
  });
}

test('firmware identity is read from the real captures', () => {
  const bios = decode(load('ipxe-bios-discover.hex'));
  assert.equal(bios.options.messageType(), MessageType.DISCOVER);
  assert.equal(bios.options.clientArch(), 0);
  assert.deepEqual(bios.options.userClasses(), ['iPXE']);
  assert.ok(bios.options.has(Opt.IpxeEncap));
  assert.match(bios.options.vendorClass() ?? '', /^PXEClient:Arch:00000:UNDI:/);
  assert.deepEqual(bios.options.clientNdi(), { type: 1, major: 2, minor: 1 });
  assert.equal(macOf(bios), '52:54:00:f0:9e:01');
  const edk2 = decode(load('ovmf-edk2-discover.hex'));
  assert.equal(edk2.options.clientArch(), 7);
  assert.equal(edk2.options.userClasses(), undefined);
  assert.equal(edk2.options.has(Opt.IpxeEncap), false);
  const req = decode(load('ovmf-uefi-request.hex'));
  assert.equal(req.options.messageType(), MessageType.REQUEST);
  assert.match(req.options.ip(Opt.RequestedIP) ?? '', /^10\.231\.7\.\d+$/);
});

function base(opts: Options): Packet {
  return {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: 0xdeadbeef, secs: 3, flags: 0x8000,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '10.1.2.3',
    chaddr: macToChaddr('02:00:00:aa:bb:cc'), sname: '', file: 'pxelinux.0', options: opts,
  };
}

test('long options are split into 255-byte instances and concatenated back (RFC 3396)', () => {
  const long = Buffer.alloc(600, 0x41);
  const p = base(new Options().setUint8(Opt.MessageType, 1).set(Opt.VendorSpecific, long).setString(Opt.VendorClass, 'x'));
  const wire = encode(p);
  // Three instances of option 43 on the wire: 255 + 255 + 90.
  let count = 0;
  for (let i = 240; i < wire.length && wire[i] !== 255; ) {
    if (wire[i] === 0) { i++; continue; }
    if (wire[i] === 43) count++;
    i += 2 + (wire[i + 1] ?? 0);
  }
  assert.equal(count, 3);
  const q = decode(wire);
  assert.equal(q.options.get(Opt.VendorSpecific)?.length, 600);
  same(q, p);
});

test('option 52 overload: options in file and sname are read, in order options, file, sname', () => {
  const buf = encode(base(new Options().setUint8(Opt.MessageType, 3)));
  buf.fill(0, 44, 236);
  // options area: 52 = 3 (both), then a first part of option 77
  const opts = Buffer.from([53, 1, 3, 52, 1, 3, 77, 2, 0x61, 0x62, 255]);
  const pkt = Buffer.concat([buf.subarray(0, 240), opts]);
  // file area: option 77 continues; sname area: option 12 host name
  Buffer.from([77, 2, 0x63, 0x64, 255]).copy(pkt, 108);
  Buffer.from([12, 3, 0x66, 0x6f, 0x6f, 255]).copy(pkt, 44);
  const p = decode(pkt);
  assert.equal(p.options.string(Opt.UserClass), 'abcd');
  assert.equal(p.options.string(Opt.HostName), 'foo');
  assert.equal(p.file, '');
  assert.equal(p.sname, '');
});

test('user class: RFC 3004 list and bare string forms', () => {
  const o = new Options().set(Opt.UserClass, Buffer.from([4, ...Buffer.from('iPXE'), 3, ...Buffer.from('foo')]));
  assert.deepEqual(o.userClasses(), ['iPXE', 'foo']);
  assert.deepEqual(new Options().setString(Opt.UserClass, 'iPXE').userClasses(), ['iPXE']);
});

test('option 82 is kept raw, with sub-options readable', () => {
  const ri = Buffer.from([1, 4, 0, 0, 0, 7, 2, 3, 0xaa, 0xbb, 0xcc]);
  const p = decode(encode(base(new Options().setUint8(Opt.MessageType, 1).set(Opt.RelayAgentInfo, ri))));
  assert.equal(p.options.relayAgentInfo()?.toString('hex'), ri.toString('hex'));
  assert.deepEqual(p.options.subOptions(Opt.RelayAgentInfo)?.map((s) => s.code), [1, 2]);
  assert.match(debugString(p), /circuit-id: 00 00 00 07/);
});

test('malformed input is a DecodeError with code DHCP_DECODE', () => {
  const good = encode(base(new Options().setUint8(Opt.MessageType, 1)));
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['short', good.subarray(0, 200)],
    ['bad cookie', Buffer.concat([good.subarray(0, 236), Buffer.from([1, 2, 3, 4]), good.subarray(240)])],
    ['hlen > 16', Buffer.concat([good.subarray(0, 2), Buffer.of(17), good.subarray(3)])],
    ['option overruns', Buffer.concat([good.subarray(0, 240), Buffer.from([60, 50, 1, 2])])],
    ['option without length', Buffer.concat([good.subarray(0, 240), Buffer.from([60])])],
    ['bad overload', Buffer.concat([good.subarray(0, 240), Buffer.from([52, 1, 9, 255])])],
  ];
  for (const [name, b] of cases) {
    assert.throws(() => decode(b), (e: unknown) => e instanceof DecodeError && e.code === 'DHCP_DECODE', name);
    const r = tryDecode(b);
    assert.equal(r.ok, false, name);
  }
});

test('encode pads to 300 bytes and refuses to exceed maxLength', () => {
  const p = base(new Options().setUint8(Opt.MessageType, 2));
  assert.equal(encode(p).length, 300);
  assert.throws(() => encode(base(new Options().set(Opt.VendorSpecific, Buffer.alloc(400))), { maxLength: 548 }), RangeError);
});
