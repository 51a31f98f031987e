/**
 * Keep-alive on the boot-file path (issue 21: 7 and 20 of 1,000 PXE clients got "socket hang
 * up" for their initrd). Real sockets, forge's own timeouts policy (services/http/limits.ts,
 * keepalive.ts) and its boot-file sender (sendFile: the in-memory copy written in slices), with
 * the keep-alive shortened from 65 s to 1 s so the test is short.
 *
 * The client behaves as a slow one among hundreds: it sends GET for the "kernel" and does not
 * read until the server has handed the whole response to the kernel AND the keep-alive would
 * have expired since; then it reads the body and asks for the "initrd" on the same connection,
 * as iPXE does. Before the fix the server had closed the connection while the kernel was
 * still in the socket buffers, and the second request got no answer. Counts answers, no
 * timings: the pauses are derived from the server's own events and bounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyTimeouts, HTTP_TIMEOUTS } from '../../server/services/http/limits.js';
import { sendFile } from '../../server/services/http/boot.js';
import { hotFiles } from '../../server/services/hotfiles.js';

// Fits in loopback's socket buffers (client receive buffer + server send queue, about 4 MiB
// here), so the server 'finishes' while the client has read nothing, and is larger than the
// client's receive buffer alone, so part of it waits unacknowledged in the server's queue.
const SIZE = 1024 * 1024;
const SHORT = { ...HTTP_TIMEOUTS, keepAliveMs: 1000, idleSocketMs: 4000 };

interface Lab {
  server: Server;
  port: number;
  finished: Promise<void>[];
  dir: string;
  stats: ReturnType<typeof applyTimeouts>;
}

async function lab(): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'fgka-'));
  const file = join(dir, 'kernel');
  writeFileSync(file, Buffer.alloc(SIZE, 0x4b));
  await hotFiles.fetch(file, SIZE); // from memory, as a kernel is after its first request
  const finished: Promise<void>[] = [];
  const server = createServer((req, res) => {
    finished.push(new Promise((r) => res.once('finish', () => r())));
    sendFile(req, res, file, SIZE, 'kernel');
  });
  const stats = applyTimeouts(server, undefined, SHORT);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, finished, dir, stats };
}

/** A raw HTTP/1.1 client on one connection (no agent, no keep-alive hints honoured, as firmware). */
class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly sock: net.Socket;
  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    this.sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    this.sock.on('error', () => undefined);
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  private async until(ok: () => boolean): Promise<boolean> {
    while (!ok()) {
      if (this.closed) return ok();
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return true;
  }
  get(path: string): void {
    this.sock.write(`GET ${path} HTTP/1.1\r\nHost: forge\r\nConnection: keep-alive\r\n\r\n`);
  }
  /** The next response's status and body length, or undefined when the connection closed first. */
  async response(): Promise<{ status: number; body: number } | undefined> {
    if (!(await this.until(() => this.buf.indexOf('\r\n\r\n') >= 0))) return undefined;
    const end = this.buf.indexOf('\r\n\r\n');
    const head = this.buf.subarray(0, end).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    if (!(await this.until(() => this.buf.length >= end + 4 + length))) return undefined;
    this.buf = this.buf.subarray(end + 4 + length);
    return { status, body: length };
  }
}

test('keep-alive: a client still receiving its kernel when the keep-alive would have expired gets its initrd on the same connection', async () => {
  const l = await lab();
  const c = new RawClient(l.port);
  try {
    c.sock.pause();
    c.get('/kernel');
    for (let i = 0; i < 3000 && l.finished.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(l.finished.length, 1, 'the server got the request');
    // The whole kernel is in the socket buffers, none of it read by the client.
    await Promise.race([l.finished[0], new Promise((_, rej) => setTimeout(() => rej(new Error('the server never handed the whole response to the kernel: socket buffers under 1 MiB?')), 30_000))]);
    // Node's keep-alive timer (1 s + its 1 s margin) has certainly fired after this.
    await new Promise((r) => setTimeout(r, SHORT.keepAliveMs + 2500));
    c.sock.resume();
    const kernel = await c.response();
    assert.deepEqual(kernel, { status: 200, body: SIZE }, 'the kernel arrived whole');
    c.get('/initrd');
    const initrd = await c.response();
    assert.deepEqual(initrd, { status: 200, body: SIZE }, 'the second request on the connection was answered (before the fix: closed, "socket hang up")');
    assert.equal(l.stats.extended, 1, 'the connection was kept because its client had not yet acknowledged the response');
  } finally {
    c.sock.destroy();
    await new Promise((r) => l.server.close(r));
    rmSync(l.dir, { recursive: true, force: true });
  }
});

test('keep-alive: the bound stays for a client that never reads (closed after the idle bound), and an idle connection still closes', async () => {
  const l = await lab();
  const stalled = new RawClient(l.port);
  const idle = new RawClient(l.port);
  try {
    stalled.sock.pause();
    stalled.get('/kernel');
    idle.get('/kernel');
    assert.deepEqual(await idle.response(), { status: 200, body: SIZE });
    // Generous caps, far above the bounds (1 s keep-alive, 4 s idle): only "closed at all" is asserted.
    for (let i = 0; i < 6000 && !(l.stats.closedStalled === 1 && idle.closed); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(idle.closed, `${JSON.stringify(l.stats)}: an idle keep-alive connection is closed by the server`);
    assert.equal(l.stats.closedStalled, 1, 'a client that never acknowledges the response does not keep its connection');
    // The paused client sees it once it reads: what was sent, then the end.
    stalled.sock.resume();
    assert.deepEqual(await stalled.response(), { status: 200, body: SIZE });
    assert.equal(await stalled.response(), undefined);
    assert.ok(stalled.closed);
    assert.equal(l.stats.closedStalled, 1);
    assert.equal(l.stats.closedIdle, 1);
  } finally {
    stalled.sock.destroy();
    idle.sock.destroy();
    await new Promise((r) => l.server.close(r));
    rmSync(l.dir, { recursive: true, force: true });
  }
});
