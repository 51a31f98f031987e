/**
 * Rival-server probe: before managed mode answers on a segment, forge acts as a client once (a
 * DHCPDISCOVER from a random locally administered MAC with the broadcast flag set) and listens for
 * offers. Any offer from an address not ours means another DHCP server serves that segment.
 *
 * Probes run per serving interface: the DISCOVER is sent from a socket bound to forge's address on
 * that interface, so the limited broadcast leaves through it (no route needed), and each interface's
 * probe has its own xid so an answer is attributed to the link it came from. A link without carrier
 * (a hypervisor bridge before its first VM) cannot have a rival: sending fails with ENETUNREACH, and
 * the link is probed again when it comes up.
 *
 * Servers of one store are not rivals: they answer one subnet together on purpose (README "Sites
 * with several servers"). The probe says which store it comes from: option 43 (vendor-specific
 * information, RFC 2132 s8.4, whose meaning option 60's vendor class `forge-probe` gives) holds
 * sub-option 1, the store's cluster id (Store.clusterId, made by a migration: the same for every
 * server of one PostgreSQL database, different for every SQLite file). A serving forge stays
 * silent to a probe carrying its own cluster id and answers any other like a client's DISCOVER,
 * so a forge of another store, or an older forge whose probe carries no id, hears it as a rival,
 * as it hears dnsmasq or Kea. The id is no secret and no authentication: anyone on the link sees
 * it; it keeps servers configured together from silencing each other, nothing more.
 */
import { randomBytes } from 'node:crypto';
import { BOOTREQUEST, FLAG_BROADCAST, MessageType, Opt, Options, decode, encode, macToChaddr, type Packet } from '../../protocol/dhcp4/index.js';
import { bindUdp, closeUdp, sendUdp } from './udp.js';

/** Vendor class of forge's own probe (option 60). */
export const PROBE_VENDOR_CLASS = 'forge-probe';
/** Sub-option of option 43 holding the prober's cluster id. */
const SUB_CLUSTER = 1;

/** Option 43 of a probe from the store `cluster`. */
export function probeVendorInfo(cluster: string): Buffer {
  const id = Buffer.from(cluster, 'ascii');
  return Buffer.concat([Buffer.of(SUB_CLUSTER, id.length), id]);
}

/**
 * Whether `p` is the start-up probe of a server of the store `cluster`: vendor class
 * `forge-probe` and option 43's sub-option 1 equal to it. Such a DISCOVER is not answered.
 */
export function isPeerProbe(p: Packet, cluster: string): boolean {
  if (cluster === '' || p.options.vendorClass() !== PROBE_VENDOR_CLASS) return false;
  const sub = p.options.subOptions(Opt.VendorSpecific)?.find((o) => o.code === SUB_CLUSTER);
  return sub !== undefined && sub.data.toString('ascii') === cluster;
}

export interface ProbeAnswer {
  from: string;
  serverId: string | undefined;
  yiaddr: string;
}

export interface LinkProbe {
  /** Our address on the link (the probe is sent from it). */
  address: string;
}

export type LinkProbeResult = { state: 'clear' } | { state: 'rival'; answers: ProbeAnswer[] } | { state: 'no-carrier'; error: string };

export interface ProbeOptions {
  serverPort: number;
  clientPort: number;
  seconds: number;
  links: readonly LinkProbe[];
  /** Our own addresses: offers from them are ours, not a rival's. */
  ours: readonly string[];
  /** The store's cluster id: servers of the same store stay silent to the probe. */
  cluster: string;
}

function discover(xid: number, mac: Buffer, cluster: string): Packet {
  return {
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
      .setString(Opt.VendorClass, PROBE_VENDOR_CLASS)
      .set(Opt.VendorSpecific, probeVendorInfo(cluster)),
  };
}

const isUnreachable = (e: unknown): boolean => ['ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EADDRNOTAVAIL'].includes((e as NodeJS.ErrnoException).code ?? '');

/** Probes every link at once for `seconds`; one result per link, in order. */
export async function probeLinks(o: ProbeOptions): Promise<LinkProbeResult[]> {
  const mac = randomBytes(6);
  mac[0] = ((mac[0] ?? 0) & 0xfc) | 0x02; // locally administered, unicast
  const xids = o.links.map(() => randomBytes(4).readUInt32BE(0));
  const answers: ProbeAnswer[][] = o.links.map(() => []);
  // Offers are broadcast to port 68 (the flag is set): only a wildcard socket receives them.
  const listen = await bindUdp(o.clientPort, '0.0.0.0', true);
  listen.on('message', (data, rinfo) => {
    try {
      const p = decode(data);
      const i = xids.indexOf(p.xid);
      if (i < 0 || p.op !== 2 || p.chaddr.subarray(0, 6).compare(mac) !== 0) return;
      if (p.options.messageType() !== MessageType.OFFER) return;
      const serverId = p.options.ip(Opt.ServerIdentifier);
      if (o.ours.includes(rinfo.address) || (serverId !== undefined && o.ours.includes(serverId))) return;
      answers[i]?.push({ from: rinfo.address, serverId, yiaddr: p.yiaddr });
    } catch {
      /* not a DHCP reply: ignore */
    }
  });
  const senders = await Promise.all(o.links.map((l) => bindUdp(0, l.address).catch((e: unknown) => e as Error)));
  const down: (string | undefined)[] = o.links.map(() => undefined);
  try {
    const deadline = Date.now() + o.seconds * 1000;
    // Three tries spread over the window, like a client retransmitting (RFC 2131 s4.1).
    for (let round = 0; round < 3 && Date.now() < deadline; round++) {
      await Promise.all(
        senders.map(async (s, i) => {
          if (s instanceof Error) {
            down[i] = s.message;
            return;
          }
          if (down[i] !== undefined || (answers[i]?.length ?? 0) > 0) return;
          try {
            await sendUdp(s, encode(discover(xids[i] ?? 0, mac, o.cluster)), o.serverPort, '255.255.255.255');
          } catch (e) {
            if (!isUnreachable(e)) throw e;
            down[i] = `${(e as Error).message}`;
          }
        }),
      );
      if (down.every((d, i) => d !== undefined || (answers[i]?.length ?? 0) > 0)) break;
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(deadline - Date.now(), (o.seconds * 1000) / 3))));
    }
    const rest = deadline - Date.now();
    if (rest > 0 && down.some((d, i) => d === undefined && (answers[i]?.length ?? 0) === 0)) await new Promise((r) => setTimeout(r, rest));
  } finally {
    await closeUdp(listen);
    for (const s of senders) if (!(s instanceof Error)) await closeUdp(s);
  }
  return o.links.map((_, i) => {
    const a = answers[i] ?? [];
    if (a.length > 0) return { state: 'rival', answers: a };
    const d = down[i];
    if (d !== undefined) return { state: 'no-carrier', error: d };
    return { state: 'clear' };
  });
}
