/**
 * Rogue-server probe: before managed mode answers anyone, forge acts as a
 * client once (a DHCPDISCOVER from a random locally administered MAC with the
 * broadcast flag set) and listens for offers. Any offer means another DHCP
 * server serves this segment, and starting would fight it.
 */
import { randomBytes } from 'node:crypto';
import { BOOTREQUEST, FLAG_BROADCAST, MessageType, Opt, Options, decode, encode, macToChaddr, type Packet } from '../../protocol/dhcp4/index.js';
import { bindUdp, closeUdp, sendWithFallback } from './udp.js';

export interface ProbeAnswer {
  from: string;
  serverId: string | undefined;
  yiaddr: string;
}

export interface ProbeOptions {
  serverPort: number;
  clientPort: number;
  seconds: number;
  /** Directed broadcasts to use when 255.255.255.255 has no route. */
  fallback: readonly string[];
}

export async function probeForServers(o: ProbeOptions): Promise<ProbeAnswer[]> {
  const xid = randomBytes(4).readUInt32BE(0);
  const mac = randomBytes(6);
  mac[0] = ((mac[0] ?? 0) & 0xfc) | 0x02; // locally administered, unicast
  const pkt: Packet = {
    op: BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid,
    secs: 0,
    flags: FLAG_BROADCAST,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: macToChaddr([...mac].map((b) => b.toString(16).padStart(2, '0')).join(':')),
    sname: '',
    file: '',
    options: new Options()
      .setUint8(Opt.MessageType, MessageType.DISCOVER)
      .set(Opt.ParameterRequestList, Buffer.of(1, 3, 6, 54))
      .setString(Opt.VendorClass, 'forge-probe'),
  };
  const sock = await bindUdp(o.clientPort, '0.0.0.0', true);
  const answers: ProbeAnswer[] = [];
  sock.on('message', (data, rinfo) => {
    try {
      const p = decode(data);
      if (p.xid !== xid || p.op !== 2 || p.chaddr.subarray(0, 6).compare(mac) !== 0) return;
      if (p.options.messageType() !== MessageType.OFFER) return;
      answers.push({ from: rinfo.address, serverId: p.options.ip(Opt.ServerIdentifier), yiaddr: p.yiaddr });
    } catch {
      /* not a DHCP reply: ignore */
    }
  });
  try {
    const data = encode(pkt);
    const deadline = Date.now() + o.seconds * 1000;
    // Three tries spread over the window, like a client retransmitting (RFC 2131 s4.1).
    for (let i = 0; i < 3 && Date.now() < deadline && answers.length === 0; i++) {
      await sendWithFallback(sock, data, o.serverPort, '255.255.255.255', o.fallback);
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(deadline - Date.now(), (o.seconds * 1000) / 3))));
    }
    const rest = deadline - Date.now();
    if (answers.length === 0 && rest > 0) await new Promise((r) => setTimeout(r, rest));
  } finally {
    await closeUdp(sock);
  }
  return answers;
}
