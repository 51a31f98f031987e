/**
 * An acknowledged lease survives SIGKILL: a real `forge serve` in a namespace (managed mode, the
 * default SQLite store and durability), a relay namespace sending relayed REQUESTs for 400
 * clients from port 67 (dhcp-raw-client.ts prints each ACK the moment it arrives), and SIGKILL
 * the moment 150 ACKs have been read while the rest are still arriving. Every ACK the relay
 * received must then be a bound lease in the database the killed process left behind (opened
 * again by SQLite, WAL recovery included, integrity_check ok). forge commits a lease before its
 * ACK leaves (services/dhcp/leases.ts); with the write-behind it had before (up to 100 ms),
 * the last ACKs of the stream were missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { need } from '../lib/env.js';
import { createLan } from '../lib/netns.js';
import { forgeInNamespace, type NsForge } from '../lib/forge-ns.js';
import { MessageType, Opt, Options, decode, encode, macOf } from '../../server/protocol/dhcp4/index.js';
import { bootRequest } from '../lib/dhcp-request.js';
import { SqliteStore } from '../../server/store/sqlite.js';

const RAW = fileURLToPath(new URL('./dhcp-raw-client.js', import.meta.url));
const CLIENTS = 400;
const KILL_AFTER = 150;

/** A relayed SELECTING REQUEST (RFC 2131 s4.3.2) for `ip`, server identifier forge's. */
function request(i: number, giaddr: string, serverId: string): Buffer {
  const opts = new Options().setUint8(Opt.MessageType, MessageType.REQUEST);
  opts.setIp(Opt.RequestedIP, `10.98.${1 + Math.floor(i / 250)}.${(i % 250) + 1}`);
  opts.setIp(Opt.ServerIdentifier, serverId);
  const mac = `02:dd:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  return encode(bootRequest({ mac, xid: 0x5000 + i, options: opts, hops: 1, giaddr }));
}

test('every lease forge ACKed is in the store after SIGKILL in the middle of a stream of REQUESTs', async (t) => {
  if (need(t, { root: true, commands: ['ip'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgdur-'));
  const lan = await createLan('fgdur', { serverIp: '10.98.0.1', prefixLen: 16 });
  let forge: NsForge | undefined;
  try {
    // README's managed flags; the probe is skipped only because the relay, not a client, is on the link.
    forge = await forgeInNamespace(lan, lan.serverIp, dir, [
      '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/16', '--dhcp-range', '10.98.1.0,10.98.9.255', '--dhcp-probe-seconds', '0',
    ]);
    const relay = await lan.addClient();
    await relay.must('ip', ['addr', 'add', '10.98.0.2/16', 'dev', 'eth0']);
    const packets = Array.from({ length: CLIENTS }, (_, i) => request(i, '10.98.0.2', lan.serverIp).toString('hex'));
    const job = join(dir, 'requests.json');
    writeFileSync(job, JSON.stringify({ bind: '10.98.0.2', bindPort: 67, to: lan.serverIp, port: 67, listenMs: 1500, gapMs: 3, packets }));
    const client = relay.spawn(process.execPath, [RAW, `@${job}`]);
    const acked: { mac: string; ip: string }[] = [];
    let buf = '';
    let killedAt = -1;
    const done = new Promise<void>((resolve) => client.on('exit', () => resolve()));
    client.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const p = decode(Buffer.from(line, 'hex'));
        if (p.options.messageType() !== MessageType.ACK) continue;
        acked.push({ mac: macOf(p), ip: p.yiaddr });
        if (acked.length === KILL_AFTER && forge !== undefined) {
          forge.proc.kill('SIGKILL');
          killedAt = acked.length;
        }
      }
    });
    await done;
    await forge.exited;
    assert.equal(killedAt, KILL_AFTER, `the relay got at least ${KILL_AFTER} ACKs before the kill (got ${acked.length}):\n${forge.output()}`);
    assert.equal(forge.proc.signalCode, 'SIGKILL');
    assert.ok(acked.length < CLIENTS, `forge was killed while REQUESTs were still being answered (${acked.length} of ${CLIENTS} ACKed)`);

    const store = new SqliteStore({ file: join(dir, 'forge.db') });
    try {
      assert.equal(store.db.pragma('integrity_check', { simple: true }), 'ok');
      const bound = new Map((await store.listLeases()).filter((l) => l.state === 'bound').map((l) => [l.mac, l.ip]));
      const missing = acked.filter((a) => bound.get(a.mac) !== a.ip);
      assert.deepEqual(missing, [], `${missing.length} of ${acked.length} ACKed leases are not in the store after SIGKILL`);
    } finally {
      await store.close();
    }
  } finally {
    await forge?.stop();
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
