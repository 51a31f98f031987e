/**
 * Fuzzing the TFTP decoder and the server's packet handlers with fast-check:
 * >= 100,000 random and mutated packets through each, no exception, no
 * unhandled rejection, and the server still serves correct files afterwards.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { decode, encode, type TftpPacket } from '../../server/protocol/tftp/index.js';
import { TftpServer } from '../../server/services/tftp/index.js';
import { createLogger } from '../../server/log.js';
import { UdpPeer, tftpGet } from '../lib/tftp-client.js';

const RUNS = 100_000;

const rejections: unknown[] = [];
const onRejection = (e: unknown): void => {
  rejections.push(e);
};
process.on('unhandledRejection', onRejection);
after(() => {
  process.off('unhandledRejection', onRejection);
});

const names = ['a.bin', 'b.bin', 'sub/c.cfg', 'out', '../etc/passwd', '/a.bin', 'a\\b', 'missing', 'sub', ''];
const optName = fc.constantFrom('blksize', 'tsize', 'timeout', 'windowsize', 'BLKSIZE', 'multicast', 'x');
const optValue = fc.oneof(
  fc.integer({ min: -5, max: 70000 }).map(String),
  fc.constantFrom('0', '8', '65464', '65465', '1468', '', 'abc', '1e3', '99999999999'),
);
const validPacket: fc.Arbitrary<TftpPacket> = fc.oneof(
  fc.record({
    op: fc.constantFrom('RRQ' as const, 'WRQ' as const),
    filename: fc.constantFrom(...names.filter((n) => n !== '')),
    mode: fc.constantFrom('octet', 'netascii', 'mail', 'OCTET', 'bogus'),
    options: fc.array(fc.record({ name: optName, value: optValue }), { maxLength: 5 }),
  }),
  fc.record({ op: fc.constant('DATA' as const), block: fc.integer({ min: 0, max: 0xffff }), data: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)) }),
  fc.record({ op: fc.constant('ACK' as const), block: fc.integer({ min: 0, max: 0xffff }) }),
  fc.record({ op: fc.constant('ERROR' as const), code: fc.integer({ min: 0, max: 9 }), message: fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x01-\x7f]/g, 'x')) }),
  fc.record({ op: fc.constant('OACK' as const), options: fc.array(fc.record({ name: optName, value: optValue }), { maxLength: 4 }) }),
);

type Mutation = { kind: 'flip'; at: number; byte: number } | { kind: 'cut'; at: number } | { kind: 'nul'; at: number } | { kind: 'append'; bytes: Uint8Array } | { kind: 'dup'; at: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('nul' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ kind: fc.constant('dup' as const), at: fc.nat() }),
);

function mutate(buf: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(buf);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : ('at' in m ? m.at % b.length : 0);
    switch (m.kind) {
      case 'flip':
        if (b.length > 0) b[at] = m.byte;
        break;
      case 'cut':
        b = b.subarray(0, at);
        break;
      case 'nul':
        if (b.length > 0) b[at] = 0;
        break;
      case 'append':
        b = Buffer.concat([b, m.bytes]);
        break;
      case 'dup':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at)]).length > 0 ? Buffer.concat([b.subarray(0, at), b.subarray(at, at + 8), b.subarray(at)]) : b;
        break;
    }
  }
  return b;
}

/** Random bytes, valid packets, and valid packets with 1-4 mutations. */
const anyPacket: fc.Arbitrary<Buffer> = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 700 }).map((a) => Buffer.from(a)), weight: 3 },
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: 8 }), fc.uint8Array({ maxLength: 60 })).map(([op, rest]) => Buffer.concat([Buffer.from([0, op]), rest])), weight: 3 },
  { arbitrary: validPacket.map(encode), weight: 2 },
  { arbitrary: fc.tuple(validPacket, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([p, ms]) => mutate(encode(p), ms)), weight: 4 },
);

test(`decoder: ${RUNS} random and mutated packets never throw; what decodes re-encodes to itself`, () => {
  let decoded = 0;
  fc.assert(
    fc.property(anyPacket, (buf) => {
      const r = decode(buf);
      if (!r.ok) {
        assert.equal(typeof r.reason, 'string');
        return;
      }
      decoded++;
      const again = decode(encode(r.packet));
      assert.equal(again.ok, true);
      if (again.ok) assert.deepEqual(again.packet, r.packet);
    }),
    { numRuns: RUNS },
  );
  // The generator must reach the decoder's success paths too, or it tests little.
  assert.ok(decoded > RUNS / 10, `only ${decoded} packets decoded`);
});

test(`server: ${RUNS} random and mutated packets through the listening handler, then through live transfers`, async (t) => {
  const t0 = Date.now();
  const root = mkdtempSync(join(tmpdir(), 'fgtftp-fuzz-'));
  const content = randomBytes(3000);
  writeFileSync(join(root, 'a.bin'), content);
  writeFileSync(join(root, 'b.bin'), '');
  mkdirSync(join(root, 'sub'));
  writeFileSync(join(root, 'sub', 'c.cfg'), 'default local\n');
  symlinkSync('/etc', join(root, 'out'));
  let logged = 0;
  const log = createLogger('info', 'fuzz', () => {
    logged++;
  });
  const server = new TftpServer({ port: 0, address: '127.0.0.1', root, log, maxTransfers: 8, timeoutMs: 200, retries: 3 });
  await server.start();
  const sinks = await Promise.all(Array.from({ length: 8 }, () => UdpPeer.open()));
  const peers: UdpPeer[] = [];
  try {
    const samples = fc.sample(anyPacket, { numRuns: RUNS, seed: 4242 });
    for (let i = 0; i < samples.length; i++) {
      const sink = sinks[i % sinks.length] as UdpPeer;
      // The handler is synchronous and must not throw for any input.
      server.handlePacket(samples[i] as Buffer, { address: '127.0.0.1', port: sink.port });
      if (i % 256 === 255) {
        await new Promise((r) => setImmediate(r));
        for (const s of sinks) s.drain();
      }
    }
    // Let the asynchronous request handling and the short transfer timeouts settle.
    const settle = Date.now() + 10000;
    while (server.active > 0 && Date.now() < settle) await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.active, 0, 'every fuzz-started transfer ended');
    const st = server.stats;
    assert.ok(st.malformed > 0 && st.requests > 0 && st.refused > 0 && st.writeRefused > 0, JSON.stringify(st));
    assert.ok(st.started > 0, 'some fuzz requests reached a real transfer');

    t.diagnostic(`listening handler phase: ${Date.now() - t0} ms`);
    // Live transfers: mutated packets at the transfer port from foreign TIDs
    // and from the client's own TID, while a real client reads.
    const foreign = await UdpPeer.open();
    peers.push(foreign);
    const blast = fc.sample(anyPacket, { numRuns: 20000, seed: 7 });
    let k = 0;
    const good = await tftpGet(server.port, 'a.bin', {
      options: { blksize: '64' },
      idleMs: 200,
      onBlock: async () => {
        // After each block, hit the transfer with foreign-TID garbage.
        const port = goodPort;
        if (port === undefined) return;
        for (let j = 0; j < 100 && k < blast.length; j++) foreign.send(blast[k++] as Buffer, port);
        await new Promise((r) => setImmediate(r));
      },
      onServerPort: (p) => {
        goodPort = p;
      },
    });
    foreign.close();
    assert.equal(good.error, undefined);
    assert.ok(good.data.equals(content), 'transfer intact under foreign-TID fuzz');
    assert.ok(server.stats.wrongTid >= k * 0.25, `wrong-TID packets counted: ${server.stats.wrongTid} of ${k}`);

    t.diagnostic(`foreign-TID phase done: ${Date.now() - t0} ms`);
    // Same-TID garbage: the transfer may be aborted by a fuzzed ERROR, but the server survives.
    const own = await UdpPeer.open();
    peers.push(own);
    let sent = 0;
    for (let round = 0; round < 20; round++) {
      own.send(encode({ op: 'RRQ', filename: 'a.bin', mode: 'octet', options: [{ name: 'blksize', value: '16' }] }), server.port);
      const first = await own.next(2000);
      if (first === undefined) continue;
      for (let j = 0; j < 1000; j++) {
        const b = blast[(round * 1000 + j) % blast.length] as Buffer;
        // Skip well-formed ERRORs so most rounds exercise the ACK/garbage paths.
        if (b.length >= 2 && b[0] === 0 && b[1] === 5) continue;
        own.send(b, first.port);
        sent++;
      }
      await new Promise((r) => setTimeout(r, 30));
      own.drain();
      own.send(encode({ op: 'ERROR', code: 0, message: 'done' }), first.port);
      // The next round asks from the same port: wait until this transfer has ended. The ERROR
      // (transfer port) and the next RRQ (port 69) arrive on two sockets, whose order no server
      // is promised (with the native pump the ERROR is read on another thread); a real client
      // whose RRQ looked like a duplicate retransmits it, this one would lose its round.
      const ended = Date.now() + 2000;
      while (server.active > 0 && Date.now() < ended) await new Promise((r) => setTimeout(r, 5));
    }
    own.close();
    assert.ok(sent > 15000, `same-TID packets sent: ${sent}`);
    const settle2 = Date.now() + 10000;
    while (server.active > 0 && Date.now() < settle2) await new Promise((r) => setTimeout(r, 50));

    t.diagnostic(`same-TID phase done: ${Date.now() - t0} ms`);
    // Still healthy: a clean fetch is byte-identical.
    const after = await tftpGet(server.port, 'a.bin', { options: { blksize: '1468', tsize: '0' } });
    assert.equal(after.error, undefined);
    assert.ok(after.data.equals(content));
    assert.ok(logged > 0);
    assert.deepEqual(rejections, [], 'no unhandled rejections');
  } finally {
    for (const s of [...sinks, ...peers]) s.close();
    await server.close();
    rmSync(root, { recursive: true, force: true });
  }
});
let goodPort: number | undefined;
