/**
 * Hand-built DHCP exchanges on real sockets for the namespace tests: `packet` builds a request
 * with the codec (any giaddr, DECLINE, INIT-REBOOT shape), `exchange` sends packets from a
 * namespace through test/integration/dhcp-raw-client.ts and returns every BOOTREPLY decoded.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Host } from './netns.js';
import { Opt, Options, decode, encode, type Packet } from '../../server/protocol/dhcp4/index.js';
import { bootRequest } from './dhcp-request.js';

const RAW = fileURLToPath(new URL('../integration/dhcp-raw-client.js', import.meta.url));

/** A BOOTREQUEST asking for the usual options (broadcast flag set: replies come back broadcast or to giaddr). */
export function packet(o: { type: number; mac: string; xid: number; giaddr?: string; requested?: string; serverId?: string; maxSize?: number; hostname?: string }): Buffer {
  const opts = new Options().setUint8(Opt.MessageType, o.type);
  if (o.requested !== undefined) opts.setIp(Opt.RequestedIP, o.requested);
  if (o.serverId !== undefined) opts.setIp(Opt.ServerIdentifier, o.serverId);
  if (o.maxSize !== undefined) opts.setUint16(Opt.MaxMessageSize, o.maxSize);
  opts.set(Opt.ParameterRequestList, Buffer.of(1, 3, 6, 12, 15, 26, 51, 54, 119));
  return encode(bootRequest({ mac: o.mac, xid: o.xid, options: opts, flags: 0x8000, hops: o.giaddr !== undefined ? 1 : 0, ...(o.giaddr !== undefined ? { giaddr: o.giaddr } : {}) }));
}

/** Sends packets from `host` (bound to bind:bindPort) and returns the replies decoded, with their size. */
export async function exchange(host: Host, job: { bind: string; bindPort: number; to: string; port?: number; listenMs?: number }, packets: Buffer[]): Promise<{ p: Packet; size: number }[]> {
  const r = await host.exec(process.execPath, [RAW, JSON.stringify({ port: 67, listenMs: 1500, ...job, packets: packets.map((b) => b.toString('hex')) })], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '').map((h) => ({ p: decode(Buffer.from(h, 'hex')), size: h.length / 2 }));
}

/** Polls `out()` until it matches `re`; throws naming `what` with the output after `ms`. */
export async function waitFor(out: () => string, re: RegExp, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(out())) {
    if (Date.now() > end) throw new Error(`${what}: not seen in ${ms} ms:\n${out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
