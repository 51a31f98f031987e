/**
 * The kernel send-queue codec behind the keep-alive rule (services/http/send-queue.ts): the
 * row format, and the key of a real connection found in the kernel's own table with the
 * bytes the peer has not acknowledged (a paused client on loopback, IPv4 and IPv6).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { ipv6Bytes, parseSendQueues, queueKey, readSendQueues } from '../../server/services/http/send-queue.js';

test('send queue: rows of /proc/net/tcp parse to tx_queue by "LOCAL REMOTE"; other lines are skipped', () => {
  const text = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0',
    '   1: 0100007F:1F90 0100007F:A2C4 01 000E0C80:00000000 01:00000014 00000000     0        0 1235 2 0000000000000000 20 4 30 10 -1',
    'garbage',
  ].join('\n');
  const m = parseSendQueues(text);
  assert.equal(m.get('0100007F:1F90 0100007F:A2C4'), 0xe0c80);
  assert.equal(m.get('0100007F:1F90 00000000:0000'), 0);
  assert.equal(m.size, 2);
});

test('send queue: IPv6 literals, compressed and with an IPv4 tail, give their 16 bytes', () => {
  assert.deepEqual([...(ipv6Bytes('::1') ?? [])], [...new Array<number>(15).fill(0), 1]);
  assert.deepEqual([...(ipv6Bytes('::ffff:10.98.0.1') ?? [])], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 98, 0, 1]);
  assert.deepEqual([...(ipv6Bytes('fe80::1:2%eth0') ?? [])], [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]);
  assert.deepEqual([...(ipv6Bytes('2001:db8:0:0:0:0:0:ff') ?? [])], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
  assert.equal(ipv6Bytes('10.0.0.1'), undefined);
  assert.equal(ipv6Bytes('not an address'), undefined);
});

/** A server that writes `bytes` to its first connection, and a client that never reads. */
async function pausedPair(host: string, bytes: number): Promise<{ server: net.Server; client: net.Socket; conn: net.Socket }> {
  let conn: net.Socket | undefined;
  const server = net.createServer((s) => {
    conn = s;
    s.write(Buffer.alloc(bytes, 1));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const client = net.connect((server.address() as net.AddressInfo).port, host);
  client.pause();
  await new Promise<void>((r) => client.once('connect', r));
  for (let i = 0; i < 200 && conn === undefined; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(conn !== undefined, 'server accepted');
  return { server, client, conn };
}

for (const host of ['127.0.0.1', '::1']) {
  test(`send queue: a real ${host} connection is found in the kernel table, holding what its paused client has not acknowledged`, async (t) => {
    const table = host === '::1' ? 'tcp6' : 'tcp';
    try {
      readFileSync(`/proc/net/${table}`);
    } catch {
      t.skip(`no /proc/net/${table} (not Linux, or no IPv6)`);
      return;
    }
    let pair: Awaited<ReturnType<typeof pausedPair>>;
    try {
      pair = await pausedPair(host, 2 * 1024 * 1024);
    } catch (e) {
      if (host === '::1' && process.env['CI'] !== 'true') {
        t.skip(`no IPv6 loopback: ${(e as Error).message}`);
        return;
      }
      throw e;
    }
    const { server, client, conn } = pair;
    try {
      const key = queueKey({ address: conn.localAddress ?? '', port: conn.localPort ?? 0 }, { address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0 });
      assert.ok(key !== undefined);
      assert.equal(key.table, table);
      // The client's receive buffer fills, the rest waits in the server's send queue, unacknowledged.
      let q: number | undefined;
      for (let i = 0; i < 300; i++) {
        q = readSendQueues([key.table]).get(key.table)?.get(key.key);
        if (q !== undefined && q > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(q !== undefined && q > 0, `the server's row ${key.key} holds unacknowledged bytes (got ${String(q)})`);
      // Once the client reads everything, the queue empties.
      let got = 0;
      client.on('data', (d: Buffer) => (got += d.length));
      client.resume();
      for (let i = 0; i < 500; i++) {
        q = readSendQueues([key.table]).get(key.table)?.get(key.key);
        if (q === 0 && got === 2 * 1024 * 1024) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(got, 2 * 1024 * 1024);
      assert.equal(q, 0, 'acknowledged: nothing left in the send queue');
    } finally {
      client.destroy();
      conn.destroy();
      await new Promise((r) => server.close(r));
    }
  });
}
