/**
 * Boot file bodies by sendfile(2) (services/http/sendfile.ts, native/sendfile.c) and on the
 * JavaScript path (FORGE_NATIVE=0, or useSendfile(false)), through forge's own sender (boot.ts
 * sendFile) and timeouts (limits.ts) on real loopback sockets. Checks bytes (sha256 of whole
 * files and ranges, both paths), which path served, keep-alive after a sendfile body, and that
 * an aborted client, a server close, a truncated or removed file leave no send and no file
 * descriptor behind (counted in /proc/self/fd). No timings.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyTimeouts, HTTP_TIMEOUTS } from '../../server/services/http/limits.js';
import { sendFile } from '../../server/services/http/boot.js';
import { sendfileActive, sendfileCounts, useSendfile } from '../../server/services/http/sendfile.js';
import { native } from '../../server/native/index.js';

// Larger than what loopback buffers while the client reads nothing (its receive window plus
// the server's 4 MiB send queue), so a paused client holds a send in progress.
const BIG = 16 * 1024 * 1024;
const SHORT = { ...HTTP_TIMEOUTS, keepAliveMs: 5000, idleSocketMs: 30_000 };
/** A hang (a send never ending) fails the test instead of the run. */
const T = { timeout: 30_000 };

let dir: string;
let data: Buffer;
let file: string;
let server: Server;
let port: number;
/** Files by the name in the request path (so a test can change its own file). */
const files = new Map<string, string>();

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const fds = (): number => readdirSync('/proc/self/fd').length;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sendf-'));
  data = randomBytes(BIG);
  file = join(dir, 'initrd');
  writeFileSync(file, data);
  files.set('initrd', file);
  server = createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    const path = files.get(name) ?? file;
    sendFile(req, res, path, data.length, name);
  });
  applyTimeouts(server, undefined, SHORT);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** Raw HTTP/1.1 over one connection: requests in turn, each answer read to its Content-Length. */
class Conn {
  private parts: Buffer[] = [];
  private have = 0;
  private wake: (() => void) | undefined;
  closed = false;
  readonly sock: net.Socket;
  constructor() {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d: Buffer) => {
      this.parts.push(d);
      this.have += d.length;
      this.wake?.();
    });
    this.sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    this.sock.on('error', () => undefined);
  }
  private async until(ok: () => boolean): Promise<boolean> {
    while (!ok()) {
      if (this.closed) return ok();
      await new Promise<void>((r) => (this.wake = r));
    }
    return true;
  }
  send(path: string, extra = ''): void {
    this.sock.write(`GET /${path} HTTP/1.1\r\nHost: forge\r\n${extra}\r\n`);
  }
  /** The next answer; its body is short when the connection closed before Content-Length bytes. */
  /** What has arrived, as one buffer (joined only when asked: a body arrives in thousands of parts). */
  private get buf(): Buffer {
    if (this.parts.length !== 1) this.parts = [Buffer.concat(this.parts)];
    return this.parts[0] ?? Buffer.alloc(0);
  }
  async reply(): Promise<Reply> {
    await this.until(() => this.buf.indexOf('\r\n\r\n') >= 0);
    const sep = this.buf.indexOf('\r\n\r\n');
    assert.ok(sep >= 0, 'an answer head');
    const lines = this.buf.subarray(0, sep).toString('latin1').split('\r\n');
    const headers = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    const len = Number(headers.get('content-length'));
    await this.until(() => this.have >= sep + 4 + len);
    const all = this.buf;
    const body = all.subarray(sep + 4, sep + 4 + len);
    this.parts = [all.subarray(sep + 4 + body.length)];
    this.have = this.parts[0]?.length ?? 0;
    return { status: Number(lines[0]?.split(' ')[1]), headers, body: Buffer.from(body) };
  }
  close(): void {
    this.sock.destroy();
  }
}

/** Resolves when no send is left (the addon ends cancelled ones on its threads) and fds are back to `base`. */
async function settled(base: number): Promise<void> {
  for (let i = 0; i < 400 && (sendfileActive() !== 0 || fds() > base); i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(sendfileActive(), 0, 'no send left');
  assert.ok(fds() <= base, `file descriptors back to ${base} (now ${fds()})`);
}

test('the addon is loaded where it was built (FORGE_NATIVE=0 runs this file on the JavaScript path)', () => {
  if (process.env['FORGE_NATIVE'] === '0') assert.equal(native, null);
  else assert.notEqual(native, null, 'build/Release/forge_native.node loads (npm run build)');
});

for (const path of ['native', 'js'] as const) {
  test(`${path}: whole file and ranges are byte-equal; keep-alive serves the next request`, T, async (t) => {
    if (path === 'native' && native === null) return t.skip('the addon is not loaded');
    useSendfile(path === 'native');
    t.after(() => useSendfile(true));
    const before = { ...sendfileCounts };
    const c = new Conn();
    c.send('initrd');
    const whole = await c.reply();
    assert.equal(whole.status, 200);
    assert.equal(whole.body.length, BIG);
    assert.equal(sha(whole.body), sha(data), 'whole file');
    // On the same connection (as iPXE asks for the initrd after the kernel): ranges, then the file again.
    const ranges: [string, number, number][] = [['bytes=1000-', 1000, BIG - 1], ['bytes=0-0', 0, 0], ['bytes=-4096', BIG - 4096, BIG - 1], ['bytes=5000000-5999999', 5_000_000, 5_999_999]];
    for (const [h, a, b] of ranges) {
      c.send('initrd', `Range: ${h}\r\n`);
      const r = await c.reply();
      assert.equal(r.status, 206, h);
      assert.equal(r.headers.get('content-range'), `bytes ${a}-${b}/${BIG}`);
      assert.equal(sha(r.body), sha(data.subarray(a, b + 1)), `range ${h}`);
    }
    c.send('initrd');
    assert.equal(sha((await c.reply()).body), sha(data), 'second whole file on the same connection');
    assert.equal(c.closed, false, 'the connection stays open after the bodies');
    c.close();
    const sent = sendfileCounts.native - before.native;
    const fellBack = sendfileCounts.fallback - before.fallback;
    if (path === 'native') {
      // sendfile.ts hands a body to the JavaScript path when the socket still holds queued
      // bytes after the headers' write (the body must follow the headers byte for byte). On a
      // loaded machine (two test files at once) that happened to 1 body of 6 in one CI run of
      // three; the cause was not found. Every body is accounted for, most go by sendfile.
      if (fellBack > 0) t.diagnostic(`${fellBack} of 6 bodies took the counted fallback`);
      assert.equal(sent + fellBack, 6, 'every body by sendfile or by the counted fallback');
      assert.ok(sent >= 4, `bodies by sendfile on the native path: ${sent} of 6`);
    } else {
      assert.equal(sent, 0, 'no body by sendfile on the JavaScript path');
    }
    assert.equal(sendfileCounts.failed, before.failed, 'no send failed');
  });
}

test('a client that closes mid-body ends the send; no file descriptor or send is left', T, async (t) => {
  if (native === null) return t.skip('the addon is not loaded');
  const base = fds();
  const failed = sendfileCounts.failed;
  const clients = [new Conn(), new Conn(), new Conn()];
  for (const c of clients) {
    c.sock.pause();
    c.send('initrd');
  }
  // Every send under way (the paused clients take only their receive windows).
  for (let i = 0; i < 400 && sendfileActive() < 3; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sendfileActive(), 3, 'three sends in progress');
  for (const c of clients) c.close();
  await settled(base);
  assert.equal(sendfileCounts.failed - failed, 3, 'each aborted send ended as failed');
});

test('server close (closeAllConnections) during sends cancels them and frees their descriptors', T, async (t) => {
  if (native === null) return t.skip('the addon is not loaded');
  const srv = createServer((req, res) => sendFile(req, res, file, data.length, 'initrd'));
  applyTimeouts(srv, undefined, SHORT);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const p = (srv.address() as net.AddressInfo).port;
  const base = fds();
  const socks = [0, 1, 2, 3].map(() => {
    const s = net.connect(p, '127.0.0.1');
    s.on('error', () => undefined);
    s.pause();
    s.write('GET /initrd HTTP/1.1\r\nHost: forge\r\n\r\n');
    return s;
  });
  for (let i = 0; i < 400 && sendfileActive() < 4; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sendfileActive(), 4, 'four sends in progress');
  const closed = socks.map((s) => new Promise<void>((r) => s.once('close', () => r())));
  srv.closeAllConnections();
  await new Promise<void>((r) => srv.close(() => r()));
  // The clients still take nothing: the sends must end by the cancel, not by running out of bytes.
  for (let i = 0; i < 400 && sendfileActive() !== 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sendfileActive(), 0, 'the server close cancelled every send');
  // The clients see the close although the addon held dups of the sockets.
  for (const s of socks) s.resume();
  await Promise.all(closed);
  await settled(base);
});

/** A copy of the file under its own name, asked for by a client that reads nothing yet; resolves once its send is under way. */
async function pausedSend(name: string): Promise<{ f: string; c: Conn }> {
  const f = join(dir, name);
  writeFileSync(f, data);
  files.set(name, f);
  const c = new Conn();
  c.sock.pause();
  c.send(name);
  for (let i = 0; i < 400 && sendfileActive() < 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sendfileActive(), 1, 'the send is under way');
  return { f, c };
}

test('a file truncated during a send: the connection is cut before Content-Length, nothing left', T, async (t) => {
  if (native === null) return t.skip('the addon is not loaded');
  const base = fds();
  const { f, c } = await pausedSend('shrinks');
  truncateSync(f, 1024 * 1024);
  c.sock.resume();
  const r = await c.reply();
  assert.ok(r.body.length < BIG, `body cut short (${r.body.length} of ${BIG})`);
  // Bytes the kernel already queued reference page-cache pages (sendfile is zero-copy), so what
  // lay beyond the new end may arrive changed; the bytes the file still has arrive intact, and
  // the connection is cut before Content-Length, so the client knows the body is incomplete.
  const kept = Math.min(r.body.length, 1024 * 1024);
  assert.equal(sha(r.body.subarray(0, kept)), sha(data.subarray(0, kept)), 'the part the file kept arrives intact');
  assert.equal(c.closed, true, 'the connection is closed (the Content-Length could not be kept)');
  await settled(base);
});

test('a file removed during a send is sent whole (the open file), nothing left', T, async (t) => {
  if (native === null) return t.skip('the addon is not loaded');
  const base = fds();
  const { f, c } = await pausedSend('removed');
  unlinkSync(f);
  c.sock.resume();
  const r = await c.reply();
  assert.equal(sha(r.body), sha(data), 'the whole file');
  c.close();
  await settled(base);
});

test('a client that takes nothing for the idle bound is cut by the addon (Node\'s timer is off meanwhile)', T, async (t) => {
  if (native === null) return t.skip('the addon is not loaded');
  const srv = createServer((req, res) => sendFile(req, res, file, data.length, 'initrd'));
  applyTimeouts(srv, undefined, { ...SHORT, idleSocketMs: 1000 });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const base = fds();
  const failed = sendfileCounts.failed;
  const s = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  s.on('error', () => undefined);
  s.pause();
  s.write('GET /initrd HTTP/1.1\r\nHost: forge\r\n\r\n');
  for (let i = 0; i < 400 && sendfileActive() < 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sendfileActive(), 1);
  // The client stays paused (takes nothing) until the server side has ended the send.
  for (let i = 0; i < 1000 && sendfileCounts.failed === failed; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sendfileCounts.failed - failed, 1, 'the send ended as failed (ETIMEDOUT)');
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.resume();
  await closed;
  await settled(base);
});
