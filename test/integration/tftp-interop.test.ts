/**
 * The TFTP server with real clients on loopback: atftp (blksize, tsize,
 * windowsize) and curl fetch byte-identical files, including one past the
 * 16-bit block rollover; traversal and writes are refused; the PXE ROM
 * abort-then-retry is quiet; foreign TIDs get error 5 while the transfer
 * completes; a lossy path completes; the transfer cap holds; files on disk
 * are served from the in-memory copy once cached, and fresh once replaced.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';

const execFileSyncQuiet = (cmd: string, args: string[]): void => {
  execFileSync(cmd, args, { stdio: 'ignore', timeout: 10000 });
};
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync, statSync, openSync, writeSync, closeSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TftpServer, tftpPathCounts, useNativeTftp, type TransferInfo } from '../../server/services/tftp/index.js';
import { native } from '../../server/native/index.js';
import { startTftp, type TftpDeps } from '../../server/services/tftp.js';
import { HotFiles } from '../../server/services/hotfiles.js';
import { PacketCache } from '../../server/services/tftp/packets.js';
import { memoryLogger } from '../../server/log.js';
import { defaults } from '../../server/config.js';
import type { BootFileProvider } from '../../server/boot/files.js';
import type { NewEvent } from '../../server/store/store.js';
import { ForgeError } from '../../server/errors.js';
import { encode } from '../../server/protocol/tftp/index.js';
import { need } from '../lib/env.js';
import { UdpPeer, tftpGet } from '../lib/tftp-client.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const shaFile = (p: string): string => sha(readFileSync(p));

let dir: string;
let root: string;
let out: string;
const sizes = {
  'small.bin': 1000,
  // A multiple of both 512 and 1468 (lcm 187904): the transfer ends with an empty block.
  'exact.bin': 187904 * 4,
  'empty.bin': 0,
  'medium.bin': 200 * 1024,
  'lossy.bin': 60000,
  // More than 65535 blocks of 512 bytes: the block number rolls over.
  'big.bin': 32 * 1024 * 1024 + 1000,
};
const hashes: Record<string, string> = {};
const log = memoryLogger('debug');
let server: TftpServer;
const completed: TransferInfo[] = [];
const provided = Buffer.from('DEFAULT local\nLABEL local\n  LOCALBOOT 0\n');

function run(cmd: string, args: string[], timeoutMs = 60000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, cwd: out }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function writeRandom(path: string, size: number): void {
  const fd = openSync(path, 'w');
  const block = 1024 * 1024;
  for (let off = 0; off < size; off += block) writeSync(fd, randomBytes(Math.min(block, size - off)));
  closeSync(fd);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fgtftp-'));
  root = join(dir, 'root');
  out = join(dir, 'out');
  mkdirSync(root);
  mkdirSync(out);
  for (const [name, size] of Object.entries(sizes)) {
    writeRandom(join(root, name), size);
    hashes[name] = shaFile(join(root, name));
  }
  mkdirSync(join(root, 'sub'));
  writeFileSync(join(root, 'sub', 'in.cfg'), 'inside\n');
  writeFileSync(join(dir, 'secret'), 'outside the root\n');
  symlinkSync(join(dir, 'secret'), join(root, 'link-out'));
  symlinkSync('/etc', join(root, 'etc-link'));
  symlinkSync('sub/in.cfg', join(root, 'link-in'));
  const provider: BootFileProvider = {
    resolve: async (path) => {
      if (path === 'pxelinux.cfg/default') return { kind: 'buffer', data: provided, system: 'vm1' };
      if (path === 'loader.0') return { kind: 'file', path: join(root, 'small.bin'), size: sizes['small.bin'], system: 'vm1' };
      return undefined;
    },
  };
  server = new TftpServer({ port: 0, address: '127.0.0.1', root, provider, log, maxTransfers: 64, onComplete: (i) => completed.push(i) });
  await server.start();
});

after(async () => {
  await server?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const atftpVariants: [string, string[]][] = [
  ['plain', []],
  ['blksize 1468', ['--option', 'blksize 1468']],
  ['tsize', ['--option', 'tsize']],
  ['windowsize 8', ['--option', 'windowsize 8']],
  ['blksize 1468 + tsize + windowsize 8', ['--option', 'blksize 1468', '--option', 'tsize', '--option', 'windowsize 8']],
];

test('atftp fetches small, empty and 512/1468-multiple files byte-identical with every option', async (t) => {
  if (need(t, { commands: ['atftp'] })) return;
  for (const file of ['small.bin', 'empty.bin', 'exact.bin']) {
    for (const [label, opts] of atftpVariants) {
      const local = join(out, `${file}.${label.replace(/\W+/g, '_')}`);
      const r = await run('atftp', [...opts, '-g', '-r', file, '-l', local, '127.0.0.1', String(server.port)]);
      assert.equal(r.code, 0, `atftp ${label} ${file}: ${r.stderr}`);
      assert.equal(shaFile(local), hashes[file], `atftp ${label} ${file}`);
    }
  }
});

test('atftp and curl fetch a file past the block-number rollover (65538 blocks of 512) byte-identical', async (t) => {
  if (need(t, { commands: ['atftp', 'curl'] })) return;
  const a = join(out, 'big.atftp');
  let r = await run('atftp', ['-g', '-r', 'big.bin', '-l', a, '127.0.0.1', String(server.port)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(shaFile(a), hashes['big.bin']);
  const w = join(out, 'big.atftp-w8');
  r = await run('atftp', ['--option', 'blksize 1468', '--option', 'tsize', '--option', 'windowsize 8', '-g', '-r', 'big.bin', '-l', w, '127.0.0.1', String(server.port)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(shaFile(w), hashes['big.bin']);
  const c = join(out, 'big.curl');
  r = await run('curl', ['-sS', '-o', c, `tftp://127.0.0.1:${server.port}/big.bin`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(shaFile(c), hashes['big.bin']);
});

test('curl fetches small and exact files (plain and --tftp-blksize 1468)', async (t) => {
  if (need(t, { commands: ['curl'] })) return;
  for (const file of ['small.bin', 'exact.bin', 'sub/in.cfg']) {
    for (const extra of [[], ['--tftp-blksize', '1468']]) {
      const local = join(out, `curl-${file.replace('/', '_')}-${extra.length}`);
      const r = await run('curl', ['-sS', ...extra, '-o', local, `tftp://127.0.0.1:${server.port}/${file}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(shaFile(local), file === 'sub/in.cfg' ? sha(Buffer.from('inside\n')) : hashes[file]);
    }
  }
});

test('files from the boot-file provider come first, and completions carry the system', async (t) => {
  if (need(t, { commands: ['atftp'] })) return;
  const local = join(out, 'pxedefault');
  const r = await run('atftp', ['--option', 'tsize', '-g', '-r', 'pxelinux.cfg/default', '-l', local, '127.0.0.1', String(server.port)]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readFileSync(local), provided);
  // atftp exits after its final ACK; the server's completion (from the pump's thread, for a
  // file in memory) may follow the child's exit by a moment.
  const by = Date.now() + 5000;
  while (!completed.some((i) => i.file === 'pxelinux.cfg/default') && Date.now() < by) await new Promise((r) => setTimeout(r, 10));
  const c = completed.find((i) => i.file === 'pxelinux.cfg/default');
  assert.equal(c?.system, 'vm1');
  assert.equal(c?.kind, 'buffer');
  // A leading slash is normalised (GRUB sends /grub/...); symlinks inside the root are fine.
  const g = await tftpGet(server.port, '/loader.0');
  assert.equal(g.error, undefined);
  assert.equal(sha(g.data), hashes['small.bin']);
  const l = await tftpGet(server.port, 'link-in');
  assert.equal(l.data.toString(), 'inside\n');
});

for (const pump of native !== null ? [true, false] : [false]) {
test(`a file on disk is served from the in-memory copy once cached, and a replaced file is served fresh at once (${pump ? 'native pump' : 'JavaScript transfer'})`, async (t) => {
  if (need(t, { commands: ['atftp'] })) return;
  useNativeTftp(pump);
  const counts = { ...tftpPathCounts };
  const hot = new HotFiles();
  const packets = new PacketCache();
  const s = new TftpServer({ port: 0, address: '127.0.0.1', root, log: memoryLogger('info'), hotFiles: hot, packetCache: packets });
  await s.start();
  const path = join(root, `hot-${pump}.bin`);
  const size = 300 * 1024 + 17;
  const first = randomBytes(size);
  // Whole seconds, so the same mtime can be set again exactly below.
  const stamp = 1_700_000_000;
  writeFileSync(path, first);
  utimesSync(path, stamp, stamp);
  const get = async (ws: number): Promise<Buffer> => {
    const local = join(out, `hot-${ws}`);
    const r = await run('atftp', ['--option', 'blksize 1468', '--option', `windowsize ${ws}`, '-g', '-r', `hot-${pump}.bin`, '-l', local, '127.0.0.1', String(s.port)]);
    assert.equal(r.code, 0, r.stderr);
    return readFileSync(local);
  };
  try {
    // First request: the file is read into the cache once, and sent from there.
    assert.equal(sha(await get(1)), sha(first));
    assert.equal(hot.bytes, size, 'the file was loaded into the cache');
    // Same size and mtime, other bytes on disk: what comes back is the cached copy, which
    // proves the transfer was sent from memory (lock-step and windowed).
    const second = randomBytes(size);
    writeFileSync(path, second);
    utimesSync(path, stamp, stamp);
    assert.equal(sha(await get(1)), sha(first));
    assert.equal(sha(await get(16)), sha(first));
    // JavaScript: sent as slices of one datagram image (packets.ts) at blksize 1468, shared by
    // the three. The pump sends header + payload straight from the cached bytes: no image.
    const image = pump ? 0 : size + 4 * (Math.floor(size / 1468) + 1);
    assert.deepEqual({ images: packets.size, bytes: packets.bytes }, { images: pump ? 0 : 1, bytes: image });
    assert.equal(pump ? tftpPathCounts.native - counts.native : tftpPathCounts.js - counts.js, 3, 'the three transfers took the path asked for');
    // A real replacement changes the mtime: served fresh at once, not the stale copy.
    utimesSync(path, stamp + 10, stamp + 10);
    assert.equal(sha(await get(8)), sha(second));
    assert.deepEqual({ images: packets.size, bytes: packets.bytes }, { images: pump ? 0 : 1, bytes: image }, 'the new bytes replaced the image');
    assert.equal(s.stats.failed, 0);
  } finally {
    useNativeTftp(true);
    await s.close();
  }
});
}

test('traversal attempts are refused with an access violation and a warn line; the host file is never sent', async (t) => {
  const before = log.lines.length;
  for (const name of ['../etc/passwd', 'sub/../../secret', 'a\\..\\b', 'link-out', 'etc-link/passwd', 'C:\\boot.ini']) {
    const r = await tftpGet(server.port, name, { totalMs: 5000 });
    assert.equal(r.error?.code, 2, `${name}: ${JSON.stringify(r.error)}`);
    assert.equal(r.data.length, 0);
  }
  // An absolute name is looked up under the root (leading slash normalised): not found, not the host file.
  const abs = await tftpGet(server.port, '/etc/passwd', { totalMs: 5000 });
  assert.equal(abs.error?.code, 1);
  assert.equal(abs.data.length, 0);
  const warns = log.lines.slice(before).filter((l) => / warn .*access violation/.test(l));
  assert.equal(warns.length, 6, warns.join('\n'));
  if (need(t, { commands: ['atftp'] })) return;
  const local = join(out, 'passwd');
  const r = await run('atftp', ['-g', '-r', '../etc/passwd', '-l', local, '127.0.0.1', String(server.port)]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /access violation/);
  assert.ok(!existsSync(local) || statSync(local).size === 0);
});

test('a flood of refused requests is answered, but the warn lines are rate-limited', async () => {
  const flog = memoryLogger('info');
  const s = new TftpServer({ port: 0, address: '127.0.0.1', root, log: flog });
  await s.start();
  const peer = await UdpPeer.open();
  try {
    for (let i = 0; i < 200; i++) {
      s.handlePacket(encode({ op: 'RRQ', filename: `../x${i}\x1b`, mode: 'octet', options: [] }), { address: '127.0.0.1', port: peer.port });
      // Same client port each time: let the previous request finish, or this one is a duplicate.
      await new Promise((r) => setImmediate(r));
    }
    const deadline = Date.now() + 5000;
    while (s.stats.refused < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.stats.refused, 200);
    const warns = flog.lines.filter((l) => / warn /.test(l));
    assert.equal(warns.length, 20, 'burst of 20 per 10 s window');
    assert.ok(warns.every((l) => !l.includes('\x1b')), 'control characters escaped');
  } finally {
    peer.close();
    await s.close();
  }
});

test('write requests are refused (error 2, read-only)', async (t) => {
  const peer = await UdpPeer.open();
  try {
    peer.send(encode({ op: 'WRQ', filename: 'new.bin', mode: 'octet', options: [] }), server.port);
    const r = await peer.next(3000);
    assert.equal(r?.packet.op, 'ERROR');
    if (r?.packet.op === 'ERROR') assert.equal(r.packet.code, 2);
  } finally {
    peer.close();
  }
  assert.ok(!existsSync(join(root, 'new.bin')));
  if (need(t, { commands: ['atftp'] })) return;
  writeFileSync(join(out, 'up.bin'), 'x');
  const r = await run('atftp', ['-p', '-r', 'up.bin', '-l', join(out, 'up.bin'), '127.0.0.1', String(server.port)]);
  assert.notEqual(r.code, 0);
  assert.ok(!existsSync(join(root, 'up.bin')));
});

test('the PXE ROM pattern (RRQ tsize, OACK, ERROR, RRQ again) completes and logs no failure', async () => {
  const before = log.lines.length;
  const probesBefore = server.stats.probes;
  const failedBefore = server.stats.failed;
  for (const samePort of [true, false]) {
    const peer = await UdpPeer.open();
    try {
      peer.send(encode({ op: 'RRQ', filename: 'exact.bin', mode: 'octet', options: [{ name: 'tsize', value: '0' }] }), server.port);
      const oack = await peer.next(3000);
      assert.equal(oack?.packet.op, 'OACK');
      if (oack?.packet.op === 'OACK') assert.deepEqual(oack.packet.options, [{ name: 'tsize', value: String(sizes['exact.bin']) }]);
      // The ROM aborts (code 0 as Intel's ROM does; others use 8).
      peer.send(encode({ op: 'ERROR', code: samePort ? 0 : 8, message: 'tsize probe done' }), oack?.port ?? 0);
      const full = await tftpGet(server.port, 'exact.bin', { options: { blksize: '1456' }, ...(samePort ? { peer } : {}) });
      assert.equal(full.error, undefined);
      assert.equal(sha(full.data), hashes['exact.bin']);
    } finally {
      peer.close();
    }
  }
  // Variant: the ERROR goes to the listening port instead of the transfer's.
  const peer = await UdpPeer.open();
  try {
    peer.send(encode({ op: 'RRQ', filename: 'small.bin', mode: 'octet', options: [{ name: 'tsize', value: '0' }] }), server.port);
    assert.equal((await peer.next(3000))?.packet.op, 'OACK');
    peer.send(encode({ op: 'ERROR', code: 8, message: 'probe' }), server.port);
    const deadline = Date.now() + 3000;
    while (server.stats.probes - probesBefore < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  } finally {
    peer.close();
  }
  assert.equal(server.stats.probes - probesBefore, 3);
  assert.equal(server.stats.failed, failedBefore);
  const bad = log.lines.slice(before).filter((l) => / (warn|error) /.test(l));
  assert.deepEqual(bad, [], 'no warn/error lines for the probe pattern');
});

test('a packet from a foreign TID gets error 5 and the transfer still completes', async () => {
  const intruder = await UdpPeer.open();
  try {
    let replies = 0;
    let port: number | undefined;
    const r = await tftpGet(server.port, 'exact.bin', {
      onServerPort: (p) => {
        port = p;
      },
      onBlock: async (n) => {
        if (n !== 10 || port === undefined) return;
        // The intruder ACKs and errors on the transfer's port.
        intruder.send(encode({ op: 'ACK', block: 10 }), port);
        intruder.send(encode({ op: 'ERROR', code: 0, message: 'stop' }), port);
        for (let i = 0; i < 2; i++) {
          const e = await intruder.next(2000);
          if (e?.packet.op === 'ERROR' && e.packet.code === 5) replies++;
        }
      },
    });
    assert.equal(r.error, undefined);
    assert.equal(sha(r.data), hashes['exact.bin']);
    assert.equal(replies, 2, 'both foreign packets answered with error 5');
  } finally {
    intruder.close();
  }
});

/** The sockets of /proc/net/udp on a local port: remote "ip:port" ('' when unconnected) and state. */
function udpSocketsOn(port: number): { remote: string; connected: boolean }[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/udp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hex}`) === true)
    .map((f) => ({ remote: f[2] === '00000000:0000' ? '' : (f[2] ?? ''), connected: f[3] === '01' }));
}

test('a transfer port is one connected socket (the client) and one unconnected (every other source)', async () => {
  const peer = await UdpPeer.open();
  try {
    let seen: { remote: string; connected: boolean }[] = [];
    const r = await tftpGet(server.port, 'medium.bin', {
      peer,
      onServerPort: (p) => {
        seen = udpSocketsOn(p);
      },
    });
    assert.equal(r.error, undefined);
    assert.equal(sha(r.data), hashes['medium.bin']);
    // 127.0.0.1 in /proc's host-order hex, the client's port in hex.
    const client = `0100007F:${peer.port.toString(16).toUpperCase().padStart(4, '0')}`;
    assert.deepEqual(
      seen.map((x) => `${x.connected ? 'connected' : 'unconnected'} ${x.remote}`).sort(),
      [`connected ${client}`, 'unconnected '],
      JSON.stringify(seen),
    );
  } finally {
    peer.close();
  }
});

test('a client that exits right after its final ACK completes, although the connected socket reports the ICMP of a retransmit first', async () => {
  const s = new TftpServer({ port: 0, address: '127.0.0.1', root, log: memoryLogger('info'), timeoutMs: 200, retries: 5 });
  await s.start();
  const peer = await UdpPeer.open();
  try {
    peer.send(encode({ op: 'RRQ', filename: 'empty.bin', mode: 'octet', options: [] }), s.port);
    const d1 = await peer.next(5000);
    assert.ok(d1?.packet.op === 'DATA' && d1.packet.data.length === 0, 'the one, empty, last block');
    await peer.sendAsync(encode({ op: 'ACK', block: 1 }), d1.port);
    peer.close();
    // Hold the event loop past the retransmission deadline: the ACK waits, unread, in the
    // server's socket; then the clock runs first (timers before poll), resends DATA 1 to the
    // closed port, and the ICMP port unreachable becomes the socket's pending error, which
    // Linux reports before the queued ACK.
    const until = performance.now() + 1000;
    while (performance.now() < until) {
      // busy: no event loop turn
    }
    const deadline = Date.now() + 10000;
    while (s.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual({ completed: s.stats.completed, failed: s.stats.failed, retransmits: s.stats.retransmits }, { completed: 1, failed: 0, retransmits: 1 });
  } finally {
    peer.close();
    await s.close();
  }
});

test('a duplicate ACK never triggers DATA (Sorcerer\'s Apprentice); only the timer retransmits, a bounded number of times', async () => {
  const slog = memoryLogger('info');
  const s = new TftpServer({ port: 0, address: '127.0.0.1', root, log: slog, timeoutMs: 400, retries: 2 });
  await s.start();
  const peer = await UdpPeer.open();
  try {
    peer.send(encode({ op: 'RRQ', filename: 'medium.bin', mode: 'octet', options: [] }), s.port);
    const d1 = await peer.next(2000);
    assert.equal(d1?.packet.op, 'DATA');
    const tid = d1?.port ?? 0;
    peer.send(encode({ op: 'ACK', block: 1 }), tid);
    const d2 = await peer.next(2000);
    assert.ok(d2?.packet.op === 'DATA' && d2.packet.block === 2);
    // Duplicate ACK 1, three times: no DATA may follow before the 400 ms timer.
    for (let i = 0; i < 3; i++) peer.send(encode({ op: 'ACK', block: 1 }), tid);
    assert.equal(await peer.next(250), undefined, 'no DATA in answer to a duplicate ACK');
    // Now stop answering: DATA 2 comes back by timer (400 ms, then 800 ms: backoff),
    // exactly `retries` times, then the transfer ends.
    const resent: number[] = [];
    for (;;) {
      const r = await peer.next(1500);
      if (r === undefined) break;
      if (r.packet.op === 'DATA') resent.push(r.packet.block);
    }
    assert.deepEqual(resent, [2, 2]);
    const deadline = Date.now() + 3000;
    while (s.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.active, 0);
    assert.equal(s.stats.failed, 1);
    assert.ok(slog.lines.some((l) => / warn .*client stopped answering/.test(l)));
  } finally {
    peer.close();
    await s.close();
  }
});

test('a lossy path (every 7th ACK dropped, lock-step and windowed) still completes byte-identical', async () => {
  const lossy = new TftpServer({ port: 0, address: '127.0.0.1', root, log: memoryLogger('info'), timeoutMs: 50, retries: 5 });
  await lossy.start();
  try {
    for (const [options, every] of [
      [{} as Record<string, string>, 7],
      [{ blksize: '1468', windowsize: '8' }, 3],
    ] as const) {
      const last = Math.floor(sizes['medium.bin'] / Number(options['blksize'] ?? 512)) + 1;
      const r = await tftpGet(lossy.port, 'medium.bin', {
        options,
        idleMs: 300,
        // Drop every n-th ACK, but not the final one (this client does not dally).
        dropAck: (block, n) => n % every === 0 && block < last,
      });
      assert.equal(r.error, undefined);
      assert.ok(r.acksDropped >= 3, `dropped ${r.acksDropped}`);
      assert.equal(sha(r.data), hashes['medium.bin']);
    }
    assert.ok(lossy.stats.retransmits > 3, `retransmits ${lossy.stats.retransmits}`);
    assert.equal(lossy.stats.failed, 0);
  } finally {
    await lossy.close();
  }
});

// The kernel here has no sch_netem, so random loss comes from iptables' statistic match, in the
// INPUT chain: a DROP in OUTPUT makes the sender's own sendto() fail with EPERM (atftp then aborts
// at once: "tftp: aborting"), which is not loss. Only DATA-sized packets (100 bytes and more) are
// dropped: atftp itself aborts on a retransmitted OACK ("unexpected OACK") when its ACK of the OACK
// is lost, whatever the server does; lost ACKs are covered by the in-process test above.
test('atftp over a lossy path (5% of DATA packets silently dropped, in a namespace) still gets byte-identical files', async (t) => {
  if (need(t, { root: true, commands: ['ip', 'iptables', 'atftp'] })) return;
  const ns = `fgtftp-${randomBytes(3).toString('hex')}`;
  const engine = fileURLToPath(new URL('../../server/services/tftp/index.js', import.meta.url));
  const logmod = fileURLToPath(new URL('../../server/log.js', import.meta.url));
  const script = `import { TftpServer } from ${JSON.stringify(engine)};
import { createLogger } from ${JSON.stringify(logmod)};
const s = new TftpServer({ port: 0, address: '127.0.0.1', root: ${JSON.stringify(root)}, log: createLogger('warn', 'lossy'), timeoutMs: 300, retries: 10 });
await s.start();
console.log('PORT ' + s.port);
// The client exits right after its final ACK; the server counts it a moment later (with the
// native pump, after the report crosses from the pump's thread): up to 3 s for that, then the stats.
process.on('SIGTERM', async () => {
  for (let i = 0; i < 300 && s.active > 0; i++) await new Promise((r) => setTimeout(r, 10));
  console.log('STATS ' + JSON.stringify(s.stats)); await s.close(); process.exit(0);
});`;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    execFileSyncQuiet('ip', ['netns', 'add', ns]);
    execFileSyncQuiet('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    execFileSyncQuiet('ip', ['netns', 'exec', ns, 'iptables', '-A', 'INPUT', '-p', 'udp', '-m', 'length', '--length', '100:65535', '-m', 'statistic', '--mode', 'random', '--probability', '0.05', '-j', 'DROP']);
    child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    const deadline = Date.now() + 10000;
    while (!/PORT (\d+)/.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const port = /PORT (\d+)/.exec(stdout)?.[1];
    assert.ok(port !== undefined, 'server in the namespace started');
    for (const opts of [['--option', 'tsize'], ['--option', 'blksize 1468', '--option', 'windowsize 8']]) {
      const local = join(out, `lossy-${opts.length}`);
      const t0 = Date.now();
      const r = await run('ip', ['netns', 'exec', ns, 'atftp', '--tftp-timeout', '1', ...opts, '-g', '-r', 'lossy.bin', '-l', local, '127.0.0.1', port], 120000);
      t.diagnostic(`atftp ${opts.join(' ')}: ${Date.now() - t0} ms`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(shaFile(local), hashes['lossy.bin']);
    }
    child.kill('SIGTERM');
    const end = Date.now() + 5000;
    while (!/STATS/.test(stdout) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const stats = JSON.parse(/STATS (.*)/.exec(stdout)?.[1] ?? '{}') as { completed?: number; failed?: number; retransmits?: number };
    // Both atftp runs exited 0 after their final ACK (never dropped: under 100 bytes), so the
    // server counted both complete, also when a DATA resent as atftp exited drew an ICMP.
    assert.deepEqual({ completed: stats.completed, failed: stats.failed }, { completed: 2, failed: 0 }, stdout);
    t.diagnostic(`lossy-path stats: ${JSON.stringify(stats)}`);
  } finally {
    child?.kill('SIGKILL');
    try {
      execFileSyncQuiet('ip', ['netns', 'del', ns]);
    } catch {
      // not created
    }
  }
});

test('the concurrent transfer cap answers error 0 "busy" and logs it', async () => {
  const capLog = memoryLogger('info');
  const capped = new TftpServer({ port: 0, address: '127.0.0.1', root, log: capLog, maxTransfers: 2, timeoutMs: 2000 });
  await capped.start();
  const peers = await Promise.all([UdpPeer.open(), UdpPeer.open(), UdpPeer.open()]);
  try {
    const rrq = encode({ op: 'RRQ', filename: 'small.bin', mode: 'octet', options: [] });
    // Two transfers that never ACK hold both slots.
    const tids: number[] = [];
    for (const p of peers.slice(0, 2)) {
      p.send(rrq, capped.port);
      const first = await p.next(3000);
      assert.equal(first?.packet.op, 'DATA');
      tids.push(first?.port ?? 0);
    }
    const third = peers[2] as UdpPeer;
    third.send(rrq, capped.port);
    const r = await third.next(3000);
    assert.equal(r?.packet.op, 'ERROR');
    if (r?.packet.op === 'ERROR') {
      assert.equal(r.packet.code, 0);
      assert.match(r.packet.message, /busy/);
    }
    assert.equal(capped.stats.busy, 1);
    assert.equal(capped.active, 2);
    assert.ok(capLog.lines.some((l) => / warn .*too many transfers/.test(l)));
    // A slot frees when a client aborts; then the next request is served.
    (peers[0] as UdpPeer).send(encode({ op: 'ERROR', code: 0, message: 'bye' }), tids[0] ?? 0);
    const deadline = Date.now() + 3000;
    while (capped.active > 1 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    const ok = await tftpGet(capped.port, 'small.bin', { peer: third });
    assert.equal(ok.error, undefined);
    assert.equal(sha(ok.data), hashes['small.bin']);
  } finally {
    for (const p of peers) p.close();
    await capped.close();
  }
});

function fakeContext(over: Partial<ReturnType<typeof defaults>>, events: NewEvent[]): TftpDeps {
  const config = { ...defaults(), ...over };
  return {
    config,
    log: memoryLogger('debug'),
    record: (ev) => {
      events.push(ev);
    },
  };
}

test('startTftp: disabled -> undefined; enabled serves provider files and records events; a taken port is a clear error', async () => {
  const events: NewEvent[] = [];
  const provider: BootFileProvider = { resolve: async (p) => (p === 'pxelinux.cfg/default' ? { kind: 'buffer', data: provided, system: 'vm7' } : undefined) };
  assert.equal(await startTftp(fakeContext({ tftp_enabled: false }, []), provider), undefined);
  const svc = await startTftp(fakeContext({ tftp_listen: '127.0.0.1', tftp_port: 0, tftp_root: root }, events), provider);
  assert.ok(svc !== undefined);
  try {
    assert.equal(svc.name, 'tftp');
    const port = Number(/:(\d+)$/.exec(svc.endpoints[0] ?? '')?.[1]);
    assert.ok(port > 0);
    const r = await tftpGet(port, 'pxelinux.cfg/default');
    assert.deepEqual(r.data, provided);
    const small = await tftpGet(port, 'small.bin');
    assert.equal(sha(small.data), hashes['small.bin']);
    // The completion that records the event may follow the client's last ACK by a moment
    // (the pump's report crosses threads): wait for it, then as long again for any other.
    const by = Date.now() + 5000;
    while (events.length === 0 && Date.now() < by) await new Promise((res) => setTimeout(res, 10));
    await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(events.map((e) => [e.system, e.type, e.source, e.detail?.['file']]), [['vm7', 'boot_config_served', 'tftp', 'pxelinux.cfg/default']]);
    await assert.rejects(
      startTftp(fakeContext({ tftp_listen: '127.0.0.1', tftp_port: port }, []), provider),
      (e: unknown) => e instanceof ForgeError && e.code === 'CONFIG_INVALID' && /address in use/.test(e.message),
    );
  } finally {
    await svc.close();
  }
});

test('binding port 69 as a non-root user fails with a clear message', async (t) => {
  if (need(t, { root: true, commands: ['setpriv'] })) return;
  const engine = fileURLToPath(new URL('../../server/services/tftp/index.js', import.meta.url));
  const script = `import { TftpServer } from ${JSON.stringify(engine)};
const s = new TftpServer({ port: 69, address: '127.0.0.1', log: { debug(){}, info(){}, warn(){}, error(){}, child(){ return this; } } });
try { await s.start(); console.log('BOUND'); await s.close(); } catch (e) { console.log(e.code + ': ' + e.message); }`;
  const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const code = await new Promise<number | null>((res) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      res(c);
    });
  });
  assert.equal(code, 0);
  assert.match(stdout, /^CONFIG_INVALID: cannot bind TFTP on udp 127\.0\.0\.1:69: permission denied .*--tftp-port/m);
});

test('after all of the above, the shared server recorded no failed transfer and no error line', () => {
  assert.equal(server.stats.failed, 0, JSON.stringify(server.stats));
  assert.ok(server.stats.completed >= 30, JSON.stringify(server.stats));
  assert.deepEqual(log.lines.filter((l) => / error /.test(l)), []);
});
