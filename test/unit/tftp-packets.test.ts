/**
 * DATA datagram images (server/services/tftp/packets.ts, issue 21): every datagram of an image
 * equals what the codec encodes for that block (RFC 1350 section 5, block numbers rolling over
 * at 65536, the empty last block of an exact multiple, RFC 2348 blksizes), segments included;
 * the cache stays within its byte bound, drops the least recently used first, replaces an image
 * whose file bytes changed and refuses one larger than the bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PacketCache, PacketImage } from '../../server/services/tftp/packets.js';
import { decode, encode } from '../../server/protocol/tftp/index.js';

function expected(data: Buffer, blksize: number, n: number): Buffer {
  const from = (n - 1) * blksize;
  return encode({ op: 'DATA', block: n & 0xffff, data: data.subarray(Math.min(from, data.length), Math.min(from + blksize, data.length)) });
}

test('every datagram of an image is the codec\'s DATA packet of that block, across segments and sizes', () => {
  for (const [size, blksize] of [
    [0, 512],
    [1, 512],
    [511, 512],
    [512, 512],
    [1468 * 2048, 1468], // exact multiple spanning two segments: ends with an empty block
    [1468 * 2048 + 7, 1468],
    [3000, 8],
    [100_000, 65464],
  ] as const) {
    const data = randomBytes(size);
    const img = new PacketImage(data, blksize);
    assert.equal(img.blocks, Math.floor(size / blksize) + 1, `blocks of ${size}/${blksize}`);
    // In a scattered order, so segments are built out of order too.
    const order = Array.from({ length: img.blocks }, (_, i) => i + 1).sort((a, b) => ((a * 7919) % 101) - ((b * 7919) % 101));
    for (const n of order) assert.deepEqual(img.datagram(n), expected(data, blksize, n), `block ${n} of ${size}/${blksize}`);
    assert.equal(img.datagram(img.blocks).length - 4, size % blksize, 'the last block carries the remainder (0 for an exact multiple)');
  }
});

test('block numbers roll over to 0 after 65535 (the wire carries n mod 65536)', () => {
  const data = randomBytes(8 * 65537 + 3);
  const img = new PacketImage(data, 8);
  for (const n of [65535, 65536, 65537, 65538]) {
    const r = decode(img.datagram(n));
    assert.ok(r.ok && r.packet.op === 'DATA');
    assert.equal(r.packet.block, n % 65536, `block ${n}`);
    assert.deepEqual(Buffer.from(r.packet.data), data.subarray((n - 1) * 8, n * 8));
  }
});

test('the cache keeps to its bound, least recently used out first; changed bytes get a new image; too large is refused', () => {
  const a = randomBytes(1000);
  const b = randomBytes(1000);
  const c = randomBytes(1000);
  const per = 1000 + 4 * 2; // 512-byte blocks: 2 blocks
  const cache = new PacketCache(per * 2);
  const ia = cache.get('/a', a, 512);
  const ib = cache.get('/b', b, 512);
  assert.ok(ia !== undefined && ib !== undefined);
  assert.equal(cache.get('/a', a, 512), ia, 'a hit is the same image');
  assert.equal(cache.bytes, per * 2);
  // /b is now the least recently used: /c pushes it out, not /a.
  assert.ok(cache.get('/c', c, 512) !== undefined);
  assert.equal(cache.size, 2);
  assert.ok(cache.bytes <= cache.maxBytes);
  assert.equal(cache.get('/a', a, 512), ia);
  assert.notEqual(cache.get('/b', b, 512), ib, '/b was dropped and is made again');
  // The same path with other bytes (the file was replaced): a new image of the new bytes.
  const a2 = randomBytes(1000);
  const ia2 = cache.get('/a', a2, 512);
  assert.ok(ia2 !== undefined && ia2 !== ia);
  assert.deepEqual(ia2.datagram(1), expected(a2, 512, 1));
  // Another blksize is another image.
  assert.ok(cache.get('/a', a2, 1000) !== ia2);
  assert.ok(cache.bytes <= cache.maxBytes, `bytes ${cache.bytes} within ${cache.maxBytes}`);
  assert.equal(cache.get('/big', randomBytes(per * 3), 512), undefined, 'larger than the bound: no image');
});
