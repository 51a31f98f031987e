/**
 * A tiny scriptable DHCP client for the interop tests, run inside a client
 * namespace: `node dhcp-pxe-client.js '<json Step>'`. It sends one crafted
 * packet (e.g. a PXE DISCOVER with option 60 PXEClient and option 93, or a
 * proxyDHCP REQUEST to port 4011) and prints every reply with the same xid as
 * one JSON line, until listenMs has passed. Not a test file itself.
 */
import { createSocket } from 'node:dgram';
import { Opt, Options, decode, encode, macOf, type Packet } from '../../server/protocol/dhcp4/index.js';
import { bootRequest } from '../lib/dhcp-request.js';

export interface Step {
  mac: string;
  type: number;
  xid: number;
  to: string;
  port: number;
  bindPort: number;
  listenMs: number;
  arch?: number;
  vendorClass?: string;
  userClass?: string;
  requested?: string;
  serverId?: string;
  ciaddr?: string;
  broadcastFlag?: boolean;
}

export interface Reply {
  from: string;
  type: number | undefined;
  yiaddr: string;
  siaddr: string;
  file: string;
  bootfileOption: string | undefined;
  vendorClass: string | undefined;
  serverId: string | undefined;
  mac: string;
}

export function stepPacket(s: Step): Packet {
  const o = new Options().setUint8(Opt.MessageType, s.type);
  o.setUint16(Opt.MaxMessageSize, 1472);
  if (s.arch !== undefined) o.setUint16(Opt.ClientArch, s.arch);
  o.set(Opt.ClientNdi, Buffer.of(1, 2, 1));
  if (s.vendorClass !== undefined) o.setString(Opt.VendorClass, s.vendorClass);
  if (s.userClass !== undefined) o.setString(Opt.UserClass, s.userClass);
  if (s.requested !== undefined) o.setIp(Opt.RequestedIP, s.requested);
  if (s.serverId !== undefined) o.setIp(Opt.ServerIdentifier, s.serverId);
  o.set(Opt.ParameterRequestList, Buffer.of(1, 3, 6, 43, 54, 60, 66, 67));
  o.set(Opt.ClientUuid, Buffer.concat([Buffer.of(0), Buffer.alloc(16, 0x11)]));
  return bootRequest({ mac: s.mac, xid: s.xid, options: o, secs: 4, flags: s.broadcastFlag === false ? 0 : 0x8000, ...(s.ciaddr !== undefined ? { ciaddr: s.ciaddr } : {}) });
}

async function main(): Promise<void> {
  const s = JSON.parse(process.argv[2] ?? '{}') as Step;
  const sock = createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((resolve) => sock.bind(s.bindPort, '0.0.0.0', () => resolve()));
  sock.setBroadcast(true);
  sock.on('message', (data, rinfo) => {
    try {
      const p = decode(data);
      if (p.xid !== s.xid || p.op !== 2) return;
      const r: Reply = {
        from: rinfo.address,
        type: p.options.messageType(),
        yiaddr: p.yiaddr,
        siaddr: p.siaddr,
        file: p.file,
        bootfileOption: p.options.string(Opt.BootfileName),
        vendorClass: p.options.vendorClass(),
        serverId: p.options.ip(Opt.ServerIdentifier),
        mac: macOf(p),
      };
      process.stdout.write(JSON.stringify(r) + '\n');
    } catch {
      /* not DHCP */
    }
  });
  await new Promise<void>((resolve, reject) => sock.send(encode(stepPacket(s)), s.port, s.to, (e) => (e ? reject(e) : resolve())));
  await new Promise((r) => setTimeout(r, s.listenMs));
  sock.close();
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\0')) {
  main().catch((e: unknown) => {
    process.stderr.write(`dhcp-pxe-client: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
