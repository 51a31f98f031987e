/**
 * Heavy work never holds the hot path: a real `forge serve` with managed
 * DHCP on a real UDP socket, TFTP on another, and 10,000 systems; while
 * GET /api/v1/validate renders all of them (chunked, core/yield.ts), two
 * probes run side by side, each sending one request after another and
 * waiting for its answer before the next: raw DHCPINFORM packets (RFC 2131
 * s4.3.5: answered to the sender's port, so no root and no namespace are
 * needed) and TFTP read requests for a one-block file (RFC 1350: RRQ, the
 * first DATA from the transfer's own port, our ACK ends it). The pass/fail
 * is on order, not on time: at least 20 DHCPACKs and 20 TFTP DATA must come
 * back between the validate request and its answer, and validate must report
 * every system checked. A validate that held the event loop would let no
 * answer out until it had finished (the first probe's answer would arrive
 * after the validate's), so it fails the count whatever the machine's load.
 * `forge check` (GET /api/v1/check) is probed the same way. The round trips
 * are printed beside the idle ones (figures only: timings never decide a
 * test here; a probe gets 5 s to be answered at all).
 * `forge validate --progress` through the CLI: progress counts on stderr while it runs (the
 * server's ndjson progress lines), the answer alone on stdout; a bad `?progress=` is a 400
 * naming the field.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageType, Opt, Options, decode, encode } from '../../server/protocol/dhcp4/index.js';
import { bootRequest } from '../lib/dhcp-request.js';
import { ackPacket, encode as tftpEncode } from '../../server/protocol/tftp/index.js';
import { freeUdpPort, UdpPeer } from '../lib/tftp-client.js';
import { startForge, type ForgeServer } from '../lib/server.js';

const SYSTEMS = 10_000;
/** DHCPACKs, and TFTP first DATA, that must arrive while the work runs (ordering, not timing). */
const DURING = 20;
/** The file the TFTP probe reads: under 512 bytes, so its first DATA is its last (RFC 1350 s6). */
const PROBE_FILE = 'probe.bin';
const PROBE_DATA = Buffer.from('forge tftp probe\n'.repeat(8));
let srv: ForgeServer;
let dhcpPort: number;
let tftpPort: number;
let sock: Socket;
const tftpDir = mkdtempSync(join(tmpdir(), 'forge-eventloop-tftp-'));

const mac = (i: number): string => `52:54:01:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

before(async () => {
  dhcpPort = await freeUdpPort();
  tftpPort = await freeUdpPort();
  writeFileSync(join(tftpDir, PROBE_FILE), PROBE_DATA);
  srv = await startForge({
    tftp: true,
    args: ['--tftp-listen', '127.0.0.1', '--tftp-port', String(tftpPort), '--tftp-root', tftpDir, '--dhcp-mode', 'managed', '--dhcp-subnet', '127.0.0.0/8', '--dhcp-range', '127.0.0.100,127.0.0.200', '--dhcp-port', String(dhcpPort), '--dhcp-listen', '127.0.0.1', '--dhcp-probe-seconds', '0', '--dhcp-proxy-port', '0'],
    timeoutMs: 60_000,
  });
  const must = async (method: string, path: string, body: unknown): Promise<void> => {
    const r = await srv.api(method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${JSON.stringify(r.body).slice(0, 500)}`);
  };
  await must('POST', '/api/v1/distros', { name: 'ld', breed: 'debian', os_version: 'bookworm', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd.gz' });
  await must('POST', '/api/v1/profiles', { name: 'lp', distro: 'ld' });
  const systems = Array.from({ length: SYSTEMS }, (_, i) => ({ name: `l${i}`, profile: 'lp', interfaces: { eth0: { mac_address: mac(i + 1) } } }));
  await must('POST', '/api/v1/systems/bulk', systems);
  sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
});
after(async () => {
  sock?.close();
  await srv?.stop();
  rmSync(tftpDir, { recursive: true, force: true });
});

let xid = 1;
/** One DHCPINFORM from a known system's MAC; resolves with the round trip in ms. */
function inform(i: number): Promise<number> {
  const id = xid++;
  const o = new Options().setUint8(Opt.MessageType, MessageType.INFORM);
  const pkt = encode(bootRequest({ mac: mac(i), xid: id, options: o, ciaddr: '127.0.0.1' }));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const timer = setTimeout(() => {
      sock.off('message', on);
      reject(new Error(`no DHCPACK for xid ${id} within 5 s`));
    }, 5000);
    const on = (data: Buffer): void => {
      const p = decode(data);
      if (p.xid !== id) return;
      clearTimeout(timer);
      sock.off('message', on);
      assert.equal(p.options.get(Opt.MessageType)?.[0], MessageType.ACK);
      resolve(performance.now() - t0);
    };
    sock.on('message', on);
    sock.send(pkt, dhcpPort, '127.0.0.1');
  });
}

/**
 * One TFTP read of PROBE_FILE from a new port (each transfer its own TID, RFC 1350 s4; a
 * server may take a second RRQ from the same port for a retransmission): RRQ to the server's
 * port, the first DATA (block 1, from the transfer's own port), checked, then our ACK, which
 * ends the transfer (a block under 512 bytes is the last). Resolves with RRQ -> first DATA in ms.
 */
async function tftpRead(): Promise<number> {
  const peer = await UdpPeer.open();
  try {
    const t0 = performance.now();
    peer.send(tftpEncode({ op: 'RRQ', filename: PROBE_FILE, mode: 'octet', options: [] }), tftpPort);
    const r = await peer.next(5000);
    const rtt = performance.now() - t0;
    assert.ok(r !== undefined, 'no TFTP DATA within 5 s of the RRQ');
    assert.equal(r.packet.op, 'DATA', `TFTP answer ${JSON.stringify(r.packet).slice(0, 200)}`);
    if (r.packet.op === 'DATA') {
      assert.equal(r.packet.block, 1);
      assert.deepEqual(Buffer.from(r.packet.data), PROBE_DATA);
    }
    await peer.sendAsync(ackPacket(1), r.port);
    return rtt;
  } finally {
    peer.close();
  }
}

/**
 * DHCP and TFTP probes side by side, each one request after another, until `work` settles;
 * returns the round trips measured while it ran.
 */
async function probeDuring<T>(work: Promise<T>): Promise<{ result: T; rtts: number[]; tftpRtts: number[] }> {
  let done = false;
  const settled = work.finally(() => {
    done = true;
  });
  const loop = async (probe: (i: number) => Promise<number>): Promise<number[]> => {
    const rtts: number[] = [];
    let i = 1;
    while (!done) {
      const rtt = await probe((i++ % SYSTEMS) + 1);
      // Only replies to probes that went out and came back while the work still ran count.
      if (!done) rtts.push(rtt);
      await new Promise((r) => setTimeout(r, 5));
    }
    return rtts;
  };
  const [rtts, tftpRtts] = await Promise.all([loop(inform), loop(tftpRead)]);
  return { result: await settled, rtts, tftpRtts };
}

const p95 = (rtts: number[]): number => {
  const s = [...rtts].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.95))] ?? 0;
};
const summary = (rtts: number[]): string => {
  const s = [...rtts].sort((a, b) => a - b);
  return `${s.length} probes, median ${s[Math.floor(s.length / 2)]?.toFixed(1)} ms, p95 ${p95(s).toFixed(1)} ms, max ${s[s.length - 1]?.toFixed(1)} ms`;
};

/** Round trips of 20 probes of each kind against the server while it does nothing else: the machine's own noise. */
async function idleBaseline(): Promise<{ dhcp: number[]; tftp: number[] }> {
  const idle = { dhcp: [] as number[], tftp: [] as number[] };
  for (let i = 1; i <= 20; i++) {
    idle.dhcp.push(await inform(i));
    idle.tftp.push(await tftpRead());
    await new Promise((r) => setTimeout(r, 5));
  }
  return idle;
}

test(`validate over ${SYSTEMS} systems: DHCP exchanges and TFTP reads are answered while it runs`, { timeout: 600_000 }, async () => {
  const idle = await idleBaseline();
  const t0 = performance.now();
  // Two callers at once: they share one run (one answer, the same body).
  const { result: both, rtts, tftpRtts } = await probeDuring(Promise.all([srv.api('GET', '/api/v1/validate'), srv.api('GET', '/api/v1/validate')]));
  const ms = performance.now() - t0;
  const [result, second] = both;
  const body = result.body as { ok: boolean; checked: number; errors: unknown[] };
  assert.equal(result.status, 200);
  assert.deepEqual(second.body, result.body, 'concurrent validate calls share one run');
  assert.equal(body.checked, SYSTEMS + 1, 'validate rendered every system and the profile');
  process.stdout.write(`# validate ${ms.toFixed(0)} ms; DHCP idle: ${summary(idle.dhcp)}; during validate: ${summary(rtts)}\n`);
  process.stdout.write(`# validate ${ms.toFixed(0)} ms; TFTP RRQ -> DATA idle: ${summary(idle.tftp)}; during validate: ${summary(tftpRtts)}\n`);
  assert.ok(rtts.length >= DURING, `validate ran ${ms.toFixed(0)} ms: only ${rtts.length} DHCP exchanges were answered before its answer (${DURING} needed)`);
  assert.ok(tftpRtts.length >= DURING, `validate ran ${ms.toFixed(0)} ms: only ${tftpRtts.length} TFTP reads were answered before its answer (${DURING} needed)`);
});

test(`forge check over ${SYSTEMS} systems: DHCP exchanges and TFTP reads are answered while it runs`, { timeout: 600_000 }, async () => {
  const idle = await idleBaseline();
  const t0 = performance.now();
  const { result, rtts, tftpRtts } = await probeDuring(srv.api('GET', '/api/v1/check'));
  const ms = performance.now() - t0;
  assert.equal(result.status, 200);
  process.stdout.write(`# check ${ms.toFixed(0)} ms; DHCP idle: ${summary(idle.dhcp)}; during check: ${summary(rtts)}\n`);
  process.stdout.write(`# check ${ms.toFixed(0)} ms; TFTP idle: ${summary(idle.tftp)}; during check: ${summary(tftpRtts)}\n`);
  // check is quick (seconds at 10,000 systems): a handful of exchanges, none held for its whole run.
  assert.ok(rtts.length >= 1, `check ran ${ms.toFixed(0)} ms: no DHCP exchange was answered before its answer`);
  assert.ok(tftpRtts.length >= 1, `check ran ${ms.toFixed(0)} ms: no TFTP read was answered before its answer`);
});

test(`forge validate --progress over ${SYSTEMS} systems: progress counts on stderr, the answer alone on stdout, DHCP answered meanwhile`, { timeout: 600_000 }, async () => {
  const { result: v, rtts } = await probeDuring(srv.cli(['validate', '--progress', '0.1']));
  assert.equal(v.code, 0, v.stderr);
  assert.deepEqual(v.stdout.trim().split('\n'), [`${SYSTEMS + 1} checked, 0 failed`], 'stdout is the answer alone');
  const lines = v.stderr.trim().split('\n').filter((l) => l.startsWith('validated '));
  // 100 ms apart over a run of 10,000 renders (seconds even on an idle core with the workers).
  assert.ok(lines.length >= 1, `progress lines on stderr: ${v.stderr}`);
  let last = -1;
  for (const l of lines) {
    const m = /^validated ([\d,]+)\/([\d,]+)$/.exec(l);
    assert.ok(m !== null, `progress line "${l}"`);
    const [done, total] = [Number(m[1]!.replace(/,/g, '')), Number(m[2]!.replace(/,/g, ''))];
    assert.equal(total, SYSTEMS + 1, 'the total is every system and the profile (the server index knows it)');
    assert.ok(done >= last && done <= total, `progress ${done} after ${last}`);
    last = done;
  }
  assert.ok(rtts.length >= 1, 'DHCP answered while the CLI validate ran');
});

test('GET /api/v1/validate?progress= out of bounds: 400 naming the field, before any work', async () => {
  for (const bad of ['abc', '5', '1e9', '']) {
    const r = await srv.api('GET', `/api/v1/validate?progress=${bad}`);
    assert.equal(r.status, 400, `progress=${bad}: ${JSON.stringify(r.body)}`);
    assert.equal((r.body as { code: string; field: string }).field, 'progress');
  }
});
