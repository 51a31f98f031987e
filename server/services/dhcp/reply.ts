/**
 * Where a DHCP reply goes and how big it may be: one pure function for every reply forge sends
 * (managed OFFER/ACK/NAK, INFORM acks, proxyDHCP offers and boot-port acks).
 *
 * Addressing is RFC 2131 s4.1 ("Constructing and sending DHCP messages"):
 *   giaddr set          -> the relay, giaddr:67 (a NAK sets the broadcast bit so the relay broadcasts);
 *   ciaddr set, not NAK -> unicast to ciaddr:68;
 *   otherwise           -> broadcast 255.255.255.255:68 (no unicast to an unconfigured client:
 *                          Node cannot add the ARP entry for yiaddr that it would need).
 * INFORM (s4.3.5) and proxyDHCP boot-port requests (PXE 2.1 s2.2.3) are answered where they came
 * from (ciaddr, else the sender), on the sender's port.
 *
 * Size: the reply may not exceed the client's maximum DHCP message size (option 57, at least 576)
 * minus the 28 bytes of IP and UDP headers (RFC 2132 s9.10). When the options do not fit, optional
 * ones are dropped in DROP_ORDER (least needed to boot first) until they do, instead of sending
 * nothing; a reply that still does not fit is not sent.
 */
import { FLAG_BROADCAST, Opt, encode, type Packet } from '../../protocol/dhcp4/index.js';

const BROADCAST = '255.255.255.255';
const ZERO = '0.0.0.0';
/** IPv4 (20) + UDP (8) headers, subtracted from option 57 (RFC 2132 s9.10). */
const IP_UDP_HEADERS = 28;
/** RFC 2131 s2: every client accepts 576-byte datagrams. */
const MIN_DATAGRAM = 576;

/**
 * Options dropped, first to last, when a reply is larger than the client accepts. Kept always:
 * 53 message type, 54 server identifier, 51 lease time, 1 subnet mask, 3 router, 60/43/97 (PXE
 * and HTTP boot need them), 82 (the relay strips it) and option 67 when `file` cannot hold the name.
 */
export const DROP_ORDER: readonly number[] = [
  Opt.BootfileName, // only dropped while the `file` field holds the same name
  Opt.TftpServerName, // siaddr says the same
  Opt.DomainSearch, // RFC 3397 search list: the installer asks again, or uses option 15
  Opt.HostName,
  Opt.DomainName,
  Opt.RenewalTime, // T1/T2 default to 0.5 and 0.875 of the lease (RFC 2131 s4.4.5)
  Opt.RebindingTime,
  Opt.InterfaceMtu, // the link's default MTU still works, only slower or not for jumbo frames
  Opt.DomainNameServer,
];

export interface Outbound {
  data: Buffer;
  address: string;
  port: number;
  /**
   * Where to send instead when `address` is 255.255.255.255 and the host has no route for
   * it (ENETUNREACH, e.g. a namespace without a default route): directed broadcasts.
   */
  fallback?: string[];
  /**
   * For 255.255.255.255: our address on the client's segment. A socket bound to it sends the
   * limited broadcast out of that interface (Linux picks the device owning the bound source
   * address), with no route needed; UEFI PXE (EDK II) accepts only limited broadcasts.
   */
  via?: string;
  /** Options left out to fit the client's maximum message size, in the order dropped. */
  dropped?: number[];
}

export interface Addressing {
  /** The reply is a DHCPNAK. */
  nak?: boolean;
  /** INFORM or boot-port reply: answer ciaddr, else the sender, on the sender's port. */
  toSender?: { address: string; port: number };
  serverPort: number;
  clientPort: number;
  /** Directed broadcasts of the client's segment (fallback for 255.255.255.255). */
  broadcasts: string[];
  /** Our address on the client's segment, to send the limited broadcast from. */
  via?: string;
}

/** Encodes `reply` within `max` bytes, dropping options in DROP_ORDER; undefined if it cannot fit. */
export function encodeWithin(reply: Packet, max: number): { data: Buffer; dropped: number[] } | undefined {
  const dropped: number[] = [];
  for (let i = 0; ; i++) {
    try {
      return { data: encode(reply, { maxLength: max }), dropped };
    } catch (e) {
      if (!(e instanceof RangeError) || !/options need/.test(e.message)) throw e;
    }
    let code: number | undefined;
    while (i < DROP_ORDER.length) {
      const c = DROP_ORDER[i] as number;
      const droppable = reply.options.has(c) && (c !== Opt.BootfileName || reply.file !== '');
      if (droppable) {
        code = c;
        break;
      }
      i++;
    }
    if (code === undefined) return undefined;
    reply.options.delete(code);
    dropped.push(code);
  }
}

/** The largest DHCP message this client accepts (option 57, never below 576, minus headers). */
export function maxReplyLength(req: Packet): number {
  return Math.max(MIN_DATAGRAM, req.options.maxMessageSize() ?? MIN_DATAGRAM) - IP_UDP_HEADERS;
}

/** Addresses and encodes one reply (RFC 2131 s4.1); undefined when it cannot fit the client's limit. */
export function addressReply(req: Packet, reply: Packet, a: Addressing): Outbound | undefined {
  // Option 82 goes last, unchanged, as relays expect to find and strip it (RFC 3046 s2.2).
  const ri = req.options.relayAgentInfo();
  if (ri !== undefined) {
    reply.options.delete(Opt.RelayAgentInfo);
    reply.options.set(Opt.RelayAgentInfo, ri);
  }
  if (a.nak === true && req.giaddr !== ZERO) reply.flags |= FLAG_BROADCAST;
  const enc = encodeWithin(reply, maxReplyLength(req));
  if (enc === undefined) return undefined;
  const extra = enc.dropped.length > 0 ? { dropped: enc.dropped } : {};
  if (req.giaddr !== ZERO) return { data: enc.data, address: req.giaddr, port: a.serverPort, ...extra };
  if (a.toSender !== undefined) {
    return { data: enc.data, address: req.ciaddr !== ZERO ? req.ciaddr : a.toSender.address, port: a.toSender.port, ...extra };
  }
  if (a.nak !== true && req.ciaddr !== ZERO) return { data: enc.data, address: req.ciaddr, port: a.clientPort, ...extra };
  const out: Outbound = { data: enc.data, address: BROADCAST, port: a.clientPort, fallback: a.broadcasts, ...extra };
  if (a.via !== undefined) out.via = a.via;
  return out;
}
