/**
 * TFTP slot pinning, against a real `forge serve` and real clients (curl,
 * atftp): RRQs asking timeout=255 that are never acknowledged hold a slot
 * for at most tftp_stall_seconds, not hours; one address holds at most
 * tftp_max_per_client slots, so a normal client gets its file at once.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';
import { decode, encode } from '../../server/protocol/tftp/index.js';
import { freeUdpPort } from '../lib/tftp-client.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'forge-tftp-sec-'));
const CONTENT = Buffer.from('boot file for a normal client\n'.repeat(200));
let srv: ForgeServer;
let port = 0;

before(async () => {
  writeFileSync(join(dir, 'file.bin'), CONTENT);
  port = await freeUdpPort();
  // README defaults for the bounds (tftp_max_transfers 64, 8 per client, 15 s stall).
  srv = await startForge({ tftp: true, args: ['--tftp-listen', '127.0.0.1', '--tftp-port', String(port), '--tftp-root', dir] });
});
after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Flooder {
  socks: dgram.Socket[];
  /** Packets the server sent back: OACKs (with their options) and errors. */
  oacks: { at: number; options: string[] }[];
  errors: string[];
  close(): void;
}

/** `count` RRQs for file.bin with timeout=255 from `address`, one source port each, never acknowledged. */
async function flood(address: string, count: number): Promise<Flooder> {
  const f: Flooder = { socks: [], oacks: [], errors: [], close: () => f.socks.forEach((s) => s.close()) };
  const rrq = encode({ op: 'RRQ', filename: 'file.bin', mode: 'octet', options: [{ name: 'timeout', value: '255' }, { name: 'tsize', value: '0' }] });
  for (let i = 0; i < count; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, address, () => r()));
    s.on('message', (msg) => {
      const d = decode(msg);
      if (!d.ok) return;
      if (d.packet.op === 'OACK') f.oacks.push({ at: Date.now(), options: d.packet.options.map((o) => `${o.name}=${o.value}`) });
      if (d.packet.op === 'ERROR') f.errors.push(d.packet.message);
    });
    s.send(rrq, port, '127.0.0.1');
    f.socks.push(s);
  }
  return f;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a flood of 200 unanswered timeout=255 RRQs from one address: curl from another gets its file at once', async () => {
  const f = await flood('127.0.0.2', 200);
  try {
    await sleep(500);
    assert.ok(f.errors.some((e) => /too many transfers from this address/.test(e)), `per-client cap answered: ${f.errors.slice(0, 3).join('; ')}`);
    assert.ok(f.oacks.length >= 1 && f.oacks.length <= 8 * 8, `OACKs (with retransmissions) only for the capped slots: ${f.oacks.length}`);
    for (const o of f.oacks) assert.ok(!o.options.some((x) => x.startsWith('timeout=')), `timeout=255 is not accepted: ${o.options.join(' ')}`);
    const t0 = Date.now();
    const { stdout } = await run('curl', ['-s', '--max-time', '10', `tftp://127.0.0.1:${port}/file.bin`, '-o', '-'], { encoding: 'buffer', maxBuffer: 1 << 20 });
    assert.deepEqual(Buffer.from(stdout), CONTENT);
    assert.ok(Date.now() - t0 < 10_000);
  } finally {
    f.close();
  }
});

test('spoofed sources filling every slot: the slots free within tftp_stall_seconds and atftp then gets its file', async () => {
  await sleep(16_000); // let the first flood's slots expire
  const floods: Flooder[] = [];
  try {
    // 12 addresses x 8 = 96 RRQs: more than tftp_max_transfers (64).
    for (let a = 10; a < 22; a++) floods.push(await flood(`127.0.0.${a}`, 8));
    await sleep(300);
    const out = join(dir, 'got.bin');
    const start = Date.now();
    let ok = false;
    let last = '';
    // Like a PXE ROM, the normal client retries; with slots pinned for hours it would never get in.
    while (!ok && Date.now() - start < 45_000) {
      rmSync(out, { force: true });
      const r = await run('atftp', ['--get', '-r', 'file.bin', '-l', out, '127.0.0.1', String(port)]).then(() => 'ok', (e: { stderr?: string; message: string }) => e.stderr ?? e.message);
      last = r;
      if (r === 'ok') {
        ok = true;
        break;
      }
      await sleep(1000);
    }
    assert.ok(ok, `atftp never got the file in 45 s (last: ${last})`);
    assert.deepEqual(readFileSync(out), CONTENT);
    // Each pinned slot gave up: no OACK retransmission later than the stall bound after its RRQ.
    const lastOack = Math.max(...floods.flatMap((f) => f.oacks.map((o) => o.at)));
    assert.ok(lastOack - start < 20_000, `the server stopped retransmitting to the flood after ${lastOack - start} ms`);
  } finally {
    for (const f of floods) f.close();
  }
});
