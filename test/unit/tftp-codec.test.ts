import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ackPacket,
  dataHeader,
  decode,
  decodeOrThrow,
  encode,
  errorPacket,
  negotiate,
  TftpDecodeError,
  type TftpPacket,
} from '../../server/protocol/tftp/index.js';
import { checkRequestPath } from '../../server/services/tftp/paths.js';
import { printable } from '../../server/services/tftp/transfer.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('RRQ with options decodes from its RFC 2347 bytes (as pxelinux sends it)', () => {
  // "pxelinux.0\0octet\0tsize\00\0blksize\01468\0"
  const bytes = Buffer.concat([hex('0001'), Buffer.from('pxelinux.0\0octet\0tsize\x000\0blksize\x001468\0', 'latin1')]);
  const p = decodeOrThrow(bytes);
  assert.deepEqual(p, {
    op: 'RRQ',
    filename: 'pxelinux.0',
    mode: 'octet',
    options: [
      { name: 'tsize', value: '0' },
      { name: 'blksize', value: '1468' },
    ],
  });
  assert.deepEqual(encode(p), bytes);
});

test('mode and option names are case-insensitive (RFC 1350 section 5, RFC 2347)', () => {
  const p = decodeOrThrow(Buffer.concat([hex('0001'), Buffer.from('f\0OCTET\0BlkSize\x00512\0', 'latin1')]));
  assert.equal(p.op, 'RRQ');
  if (p.op !== 'RRQ') return;
  assert.equal(p.mode, 'octet');
  assert.deepEqual(p.options, [{ name: 'blksize', value: '512' }]);
});

test('fixed layouts: DATA, ACK, ERROR, OACK golden bytes', () => {
  assert.deepEqual(encode({ op: 'DATA', block: 0xffff, data: Buffer.from('ab') }), hex('0003 ffff 6162'));
  assert.deepEqual(encode({ op: 'ACK', block: 258 }), hex('0004 0102'));
  assert.deepEqual(ackPacket(65536), hex('0004 0000'), 'block numbers wrap at 16 bits');
  assert.deepEqual(dataHeader(65537), hex('0003 0001'));
  assert.deepEqual(errorPacket(5, 'unknown transfer ID'), Buffer.concat([hex('0005 0005'), Buffer.from('unknown transfer ID\0')]));
  assert.deepEqual(errorPacket(0, 'a\0b'), Buffer.concat([hex('0005 0000'), Buffer.from('a b\0')]), 'NUL in a message is replaced');
  assert.deepEqual(
    encode({ op: 'OACK', options: [{ name: 'tsize', value: '42' }] }),
    Buffer.concat([hex('0006'), Buffer.from('tsize\x0042\0')]),
  );
  assert.deepEqual(decodeOrThrow(hex('0003 0000')), { op: 'DATA', block: 0, data: Buffer.alloc(0) });
});

test('malformed packets are typed failures, never exceptions', () => {
  const bad: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['one byte', hex('00')],
    ['opcode 0', hex('0000 6100 6f6300')],
    ['opcode 7', hex('0007')],
    ['RRQ without NUL', Buffer.concat([hex('0001'), Buffer.from('file')])],
    ['RRQ without mode', Buffer.concat([hex('0001'), Buffer.from('file\0')])],
    ['RRQ empty name', Buffer.concat([hex('0001'), Buffer.from('\0octet\0')])],
    ['RRQ dangling option', Buffer.concat([hex('0001'), Buffer.from('f\0octet\0tsize\0')])],
    ['RRQ empty option name', Buffer.concat([hex('0001'), Buffer.from('f\0octet\0\x000\0')])],
    ['short DATA', hex('0003 00')],
    ['short ACK', hex('0004 00')],
    ['long ACK', hex('0004 0000 00')],
    ['short ERROR', hex('0005 00')],
    ['too big', Buffer.alloc(65469, 1)],
  ];
  for (const [what, b] of bad) {
    const r = decode(b);
    assert.equal(r.ok, false, what);
    assert.throws(() => decodeOrThrow(b), (e: unknown) => e instanceof TftpDecodeError && e.code === 'TFTP_DECODE', what);
  }
});

test('a client ERROR without its final NUL is still understood (PXE abort)', () => {
  assert.deepEqual(decodeOrThrow(Buffer.concat([hex('0005 0000'), Buffer.from('abort')])), { op: 'ERROR', code: 0, message: 'abort' });
});

test('negotiation: only requested options are acknowledged, in the client order', () => {
  const size = 123456;
  const t = (opts: Record<string, string>, limits?: { maxBlksize: number; maxWindowsize: number; maxTimeout: number }) =>
    negotiate(
      Object.entries(opts).map(([name, value]) => ({ name, value })),
      size,
      limits,
    );
  assert.deepEqual(t({}), { blksize: 512, windowsize: 1, timeout: undefined, oack: [] });
  // No tsize unless asked (an unrequested tsize breaks EFI PXE clients).
  assert.deepEqual(t({ blksize: '1468' }).oack, [{ name: 'blksize', value: '1468' }]);
  assert.deepEqual(t({ tsize: '0' }).oack, [{ name: 'tsize', value: String(size) }]);
  assert.deepEqual(t({ windowsize: '16', blksize: '1468', timeout: '3' }).oack, [
    { name: 'windowsize', value: '16' },
    { name: 'blksize', value: '1468' },
    { name: 'timeout', value: '3' },
  ]);
  // RFC 2348: 8..65464; larger is answered with the server maximum, smaller ignored.
  assert.equal(t({ blksize: '7' }).oack.length, 0);
  assert.equal(t({ blksize: '8' }).blksize, 8);
  assert.equal(t({ blksize: '65464' }).blksize, 65464);
  assert.deepEqual(t({ blksize: '99999' }).oack, [{ name: 'blksize', value: '65464' }]);
  assert.deepEqual(t({ blksize: '9000' }, { maxBlksize: 1468, maxWindowsize: 4, maxTimeout: 5 }).oack, [{ name: 'blksize', value: '1468' }]);
  // RFC 2349 timeout 1..255, accepted only up to the server's cap (5 s by
  // default): the server may not answer another value, so a larger one is ignored.
  assert.equal(t({ timeout: '0' }).oack.length, 0);
  assert.equal(t({ timeout: '256' }).oack.length, 0);
  assert.equal(t({ timeout: '5' }).timeout, 5);
  assert.equal(t({ timeout: '6' }).timeout, undefined);
  assert.equal(t({ timeout: '255' }).timeout, undefined);
  assert.equal(t({ timeout: '255' }).oack.length, 0);
  assert.equal(t({ timeout: '255' }, { maxBlksize: 1468, maxWindowsize: 4, maxTimeout: 255 }).timeout, 255);
  // RFC 7440 windowsize 1..65535, capped by the server.
  assert.equal(t({ windowsize: '0' }).oack.length, 0);
  assert.equal(t({ windowsize: '65536' }).oack.length, 0);
  assert.equal(t({ windowsize: '65535' }).windowsize, 64);
  assert.equal(t({ windowsize: '9' }, { maxBlksize: 1468, maxWindowsize: 4, maxTimeout: 5 }).windowsize, 4);
  // Garbage values and unknown options are ignored; repeats count once.
  assert.deepEqual(t({ blksize: '1e3', multicast: '', tsize: 'x' }).oack, []);
  assert.deepEqual(
    negotiate([{ name: 'blksize', value: '1024' }, { name: 'blksize', value: '2048' }], size).oack,
    [{ name: 'blksize', value: '1024' }],
  );
  // Size unknown: tsize is not acknowledged.
  assert.deepEqual(negotiate([{ name: 'tsize', value: '0' }], undefined).oack, []);
});

test('request paths: traversal, absolute, backslash, NUL refused; a leading slash is normalised', () => {
  const ok = (s: string, rel: string) => assert.deepEqual(checkRequestPath(s), { ok: true, rel }, s);
  const no = (s: string) => assert.equal(checkRequestPath(s).ok, false, s);
  ok('pxelinux.0', 'pxelinux.0');
  ok('pxelinux.cfg/01-aa-bb-cc-dd-ee-ff', 'pxelinux.cfg/01-aa-bb-cc-dd-ee-ff');
  ok('/grub/grub.cfg', 'grub/grub.cfg');
  ok('./a//b/./c', 'a/b/c');
  ok('/etc/passwd', 'etc/passwd'); // looked up under the root, never the host file
  no('../etc/passwd');
  no('a/../../b');
  no('a/..');
  no('a\\..\\b');
  no('C:\\boot.ini');
  no('c:foo');
  no('a\0b');
  no('/');
  no('.');
  no('\xff\xfe'); // not UTF-8
  ok(Buffer.from('grüß', 'utf8').toString('latin1'), 'grüß');
});

const optionArb = fc.record({
  name: fc.stringMatching(/^[a-z0-9]{1,12}$/),
  value: fc.string({ unit: fc.integer({ min: 1, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 20 }),
});
const latin1NoNul = (min: number, max: number) =>
  fc.string({ unit: fc.integer({ min: 1, max: 255 }).map((c) => String.fromCharCode(c)), minLength: min, maxLength: max });

const packetArb: fc.Arbitrary<TftpPacket> = fc.oneof(
  fc.record({
    op: fc.constantFrom('RRQ' as const, 'WRQ' as const),
    filename: latin1NoNul(1, 64),
    mode: fc.constantFrom('octet', 'netascii', 'mail'),
    options: fc.array(optionArb, { maxLength: 6 }),
  }),
  fc.record({ op: fc.constant('DATA' as const), block: fc.integer({ min: 0, max: 0xffff }), data: fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)) }),
  fc.record({ op: fc.constant('ACK' as const), block: fc.integer({ min: 0, max: 0xffff }) }),
  fc.record({ op: fc.constant('ERROR' as const), code: fc.integer({ min: 0, max: 0xffff }), message: latin1NoNul(0, 80) }),
  fc.record({ op: fc.constant('OACK' as const), options: fc.array(optionArb, { maxLength: 6 }) }),
);

/** fast-check builds null-prototype records; rebuild as ordinary objects for deepEqual. */
function plain(p: TftpPacket): TftpPacket {
  const opts = (o: { name: string; value: string }[]) => o.map((x) => ({ name: x.name, value: x.value }));
  switch (p.op) {
    case 'RRQ':
    case 'WRQ':
      return { op: p.op, filename: p.filename, mode: p.mode, options: opts(p.options) };
    case 'DATA':
      return { op: 'DATA', block: p.block, data: p.data };
    case 'ACK':
      return { op: 'ACK', block: p.block };
    case 'ERROR':
      return { op: 'ERROR', code: p.code, message: p.message };
    case 'OACK':
      return { op: 'OACK', options: opts(p.options) };
  }
}

test('round trip: decode(encode(p)) equals p, and encode(decode(b)) equals b', () => {
  fc.assert(
    fc.property(packetArb, (p) => {
      const bytes = encode(p);
      const back = decodeOrThrow(bytes);
      assert.deepEqual(back, plain(p));
      assert.deepEqual(encode(back), bytes);
    }),
    { numRuns: 5000 },
  );
});

test('file names are made printable before they reach a log line', () => {
  assert.equal(printable('pxelinux.0'), 'pxelinux.0');
  assert.equal(printable('a\x1b[31mb\nc'), 'a\\x1b[31mb\\x0ac');
});
