/**
 * The TFTP engine on both of its paths: the native pump (native/tftp.c through
 * server/services/tftp/native.ts) and the JavaScript transfer (transfer.ts), the same
 * scenarios each, with the same statistics and log lines expected of both:
 * - lock-step and windowed transfers past the block-number rollover, byte-identical;
 * - the PXE size probe (ERROR after the OACK), an abort mid-transfer, a client that stops
 *   ACKing (retransmissions, then the end after the retries), a duplicate ACK (no DATA for it);
 * - an identical RRQ from the same port after the client's ERROR is served as a new transfer;
 * - server.close() with transfers in flight ends them, and the process does not wait;
 * - no file descriptor left behind (/proc/self/fd counted before and after).
 * In CI the addon must be loaded (unit native-load), so both paths run there.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer, nativeTftpActive, tftpPathCounts, useNativeTftp } from '../../server/services/tftp/index.js';
import { HotFiles } from '../../server/services/hotfiles.js';
import { native } from '../../server/native/index.js';
import { memoryLogger } from '../../server/log.js';
import { ackPacket, encode, errorPacket } from '../../server/protocol/tftp/index.js';
import { UdpPeer, tftpGet } from '../lib/tftp-client.js';
import { need } from '../lib/env.js';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

const root = mkdtempSync(join(tmpdir(), 'fgtftp-native-'));
after(() => rmSync(root, { recursive: true, force: true }));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
// blksize 8 and 70,000 blocks: past the 65536 rollover in a small file.
const rollover = randomBytes(8 * 70_000 + 3);
const big = randomBytes(2 * 1024 * 1024 + 123);
const exact = randomBytes(512 * 4);
writeFileSync(join(root, 'rollover.bin'), rollover);
writeFileSync(join(root, 'big.bin'), big);
writeFileSync(join(root, 'exact.bin'), exact);
writeFileSync(join(root, 'empty.bin'), Buffer.alloc(0));

const fds = (): number => readdirSync('/proc/self/fd').length;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

const paths = native !== null ? (['native', 'js'] as const) : (['js'] as const);
if (native === null && process.env['CI'] === 'true') throw new Error('the native addon is not loaded in CI: the pump path would go untested');

for (const path of paths) {
  test(`${path}: transfers, probes, aborts, timeouts, close and fds`, { timeout: 120_000 }, async (t) => {
    useNativeTftp(path === 'native');
    const log = memoryLogger('debug');
    if (path === 'native') {
      // The pump's epoll set and wake eventfd are made once per process, at its first
      // transfer: start it before counting (a second request of a file comes from memory).
      const w = new TftpServer({ port: 0, address: '127.0.0.1', root, log: memoryLogger('warn'), hotFiles: new HotFiles() });
      await w.start();
      for (let i = 0; i < 2; i++) assert.equal((await tftpGet(w.port, 'exact.bin')).error, undefined);
      await w.close();
      await until('the warm-up ends', () => nativeTftpActive() === 0);
    }
    const fdsBefore = fds();
    const counts = { ...tftpPathCounts };
    const peers: UdpPeer[] = []; // closed in finally, so a failed assertion cannot leave the loop alive
    const s = new TftpServer({ port: 0, address: '127.0.0.1', root, log, hotFiles: new HotFiles(), retries: 2, timeoutMs: 200, stallMs: 3000 });
    await s.start();
    try {
      // Byte-identical: rollover lock-step and windowed, a multiple of the block size, empty.
      for (const [file, data, options] of [
        ['rollover.bin', rollover, { blksize: '8' }],
        ['rollover.bin', rollover, { blksize: '8', windowsize: '16' }],
        ['big.bin', big, { blksize: '1468', windowsize: '8', tsize: '0' }],
        ['exact.bin', exact, {}],
        ['empty.bin', Buffer.alloc(0), { tsize: '0' }],
      ] as const) {
        const r = await tftpGet(s.port, file, { options, idleMs: 300 });
        assert.equal(r.error, undefined, `${file} ${JSON.stringify(options)}`);
        assert.equal(sha(r.data), sha(data), `${file} ${JSON.stringify(options)} byte-identical`);
      }
      // The server takes the client's last ACK a moment after the client returns.
      await until('the five transfers complete', () => s.stats.completed === 5);
      // The empty file is never cached (hotfiles.ts) and always streams; every first request
      // of a file streams too while the cache loads it. The second rollover.bin is from memory.
      const took = { native: tftpPathCounts.native - counts.native, js: tftpPathCounts.js - counts.js };
      assert.equal(took.native + took.js, 5);
      if (path === 'native') assert.ok(took.native >= 1, `in-memory transfers went to the pump: ${JSON.stringify(took)}`);
      else assert.equal(took.native, 0, 'nothing went to the pump while it is off');

      // The size probe: RRQ with tsize, OACK, ERROR -> counted as a probe, no failure.
      const p = await UdpPeer.open();
      peers.push(p);
      p.send(encode({ op: 'RRQ', filename: 'big.bin', mode: 'octet', options: [{ name: 'tsize', value: '0' }] }), s.port);
      const oack = await p.next(2000);
      assert.equal(oack?.packet.op, 'OACK');
      p.send(errorPacket(0, 'tsize probe'), oack?.port ?? 0);
      await until('the probe ends', () => s.stats.probes === 1);
      // The same port asks again at once, same request: served (not a duplicate of the probe).
      p.send(encode({ op: 'RRQ', filename: 'exact.bin', mode: 'octet', options: [] }), s.port);
      const d1 = await p.next(2000);
      assert.equal(d1?.packet.op, 'DATA', 'the request after the probe is answered');
      p.send(ackPacket(1), d1?.port ?? 0);
      // An abort mid-transfer.
      p.send(errorPacket(0, 'user cancelled'), d1?.port ?? 0);
      await until('the abort ends it', () => s.stats.aborted === 1);
      assert.ok(log.lines.some((l) => /client aborted the transfer.*user cancelled/.test(l)), 'the abort is logged with the client message');
      // An identical RRQ from the same port once the abort is counted: a new transfer.
      p.drain();
      p.send(encode({ op: 'RRQ', filename: 'exact.bin', mode: 'octet', options: [] }), s.port);
      const again = await p.next(2000);
      assert.equal(again?.packet.op, 'DATA', 'an identical RRQ right after the abort is a new transfer');
      assert.equal(again?.packet.op === 'DATA' ? again.packet.block : -1, 1);
      // Now stop ACKing: the first block is resent after each timeout (no DATA for the
      // duplicate ACK sent below), then the transfer fails after its two retries.
      p.send(ackPacket(1), again?.port ?? 0);
      const d2 = await p.next(2000);
      assert.equal(d2?.packet.op === 'DATA' ? d2.packet.block : -1, 2);
      const retransmitsBefore = s.stats.retransmits;
      p.send(ackPacket(1), again?.port ?? 0); // duplicate: never answered with DATA
      await until('the silent client fails', () => s.stats.failed === 1);
      const resent = p.drain().filter((r) => r.packet.op === 'DATA');
      assert.equal(resent.length, 2, 'block 2 resent once per retry, nothing for the duplicate ACK');
      assert.ok(resent.every((r) => r.packet.op === 'DATA' && r.packet.block === 2));
      assert.equal(s.stats.retransmits - retransmitsBefore, 2);
      assert.ok(log.lines.some((l) => / warn .*client stopped answering/.test(l)));

      // close() with transfers in flight: they end and nothing keeps running.
      for (let i = 0; i < 3; i++) {
        const h = await UdpPeer.open();
        peers.push(h);
        h.send(encode({ op: 'RRQ', filename: 'big.bin', mode: 'octet', options: [{ name: 'windowsize', value: '4' }] }), s.port);
        const o = await h.next(2000);
        assert.equal(o?.packet.op, 'OACK');
        h.send(ackPacket(0), o?.port ?? 0);
        assert.equal((await h.next(2000))?.packet.op, 'DATA');
      }
      assert.equal(s.active, 3);
      if (path === 'native') assert.ok(nativeTftpActive() >= 3);
    } finally {
      await s.close();
      for (const h of peers) h.close();
    }
    assert.equal(s.active, 0);
    await until('the pump reports every end', () => nativeTftpActive() === 0);
    await until('every socket and file is closed', () => fds() <= fdsBefore, 5000).catch(() => undefined);
    t.diagnostic(`fds before ${fdsBefore}, after ${fds()}`);
    assert.equal(fds(), fdsBefore, 'no descriptor left behind');
    assert.deepEqual(log.lines.filter((l) => / error /.test(l)), []);
    useNativeTftp(true);
  });
}

for (const path of paths) {
  test(`${path}: IPv6 (::1) and an IPv4 client of a server on :: (v4-mapped peer), byte-identical (curl)`, { timeout: 60_000 }, async (t) => {
    if (need(t, { commands: ['curl'] })) return;
    useNativeTftp(path === 'native');
    const log = memoryLogger('debug');
    const hot = new HotFiles();
    // Cached before the transfers, so the pump path is the one taken (a first request streams).
    assert.ok((await hot.fetch(join(root, 'big.bin'), big.length)) !== undefined);
    const s = new TftpServer({ port: 0, address: '::', root, log, hotFiles: hot });
    await s.start();
    const counts = { ...tftpPathCounts };
    try {
      for (const host of ['[::1]', '127.0.0.1']) {
        const local = join(root, `curl-${path}-${host.length}.out`);
        const r = await new Promise<string>((resolve) =>
          execFile('curl', ['-sS', '--max-time', '20', '--tftp-blksize', '1468', '-o', local, `tftp://${host}:${s.port}/big.bin`], (e, _o, err) => resolve(e === null ? '' : `${e.message} ${err}`)),
        );
        assert.equal(r, '', `curl via ${host}`);
        assert.equal(sha(readFileSync(local)), sha(big), `byte-identical via ${host}`);
        rmSync(local);
      }
      await until('both complete', () => s.stats.completed === 2);
      assert.ok(log.lines.some((l) => /sent file client=::ffff:127\.0\.0\.1:/.test(l)), 'the IPv4 client was served as a v4-mapped peer');
      const took = path === 'native' ? tftpPathCounts.native - counts.native : tftpPathCounts.js - counts.js;
      assert.equal(took, 2, `both by the ${path} path`);
    } finally {
      await s.close();
      useNativeTftp(true);
    }
  });
}

test('both paths counted the same scenario alike', () => {
  // Each path's test asserts its own counts; this one makes sure both ran where they can.
  if (native === null) return;
  assert.ok(tftpPathCounts.native >= 3 && tftpPathCounts.js >= 8, JSON.stringify(tftpPathCounts));
});
