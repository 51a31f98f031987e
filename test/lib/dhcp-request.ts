/**
 * The one BOOTREQUEST skeleton of the DHCP tests (RFC 2131 section 2: op 1, htype 1 Ethernet,
 * hlen 6; yiaddr/siaddr zero, no sname/file): each test builds its options and passes the
 * header fields it varies. Unit fixtures, the namespace clients and the socket tests use it.
 */
import { BOOTREQUEST, macToChaddr, type Options, type Packet } from '../../server/protocol/dhcp4/index.js';

export interface RequestHeader {
  mac: string;
  xid: number;
  options: Options;
  /** A relay's address (RFC 2131 section 4.1); hops 1 when set, unless given. */
  giaddr?: string;
  hops?: number;
  ciaddr?: string;
  /** 0x8000: the broadcast flag (RFC 2131 section 4.1). */
  flags?: number;
  secs?: number;
}

export function bootRequest(h: RequestHeader): Packet {
  return {
    op: BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: h.hops ?? (h.giaddr !== undefined && h.giaddr !== '0.0.0.0' ? 1 : 0),
    xid: h.xid,
    secs: h.secs ?? 0,
    flags: h.flags ?? 0,
    ciaddr: h.ciaddr ?? '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: h.giaddr ?? '0.0.0.0',
    chaddr: macToChaddr(h.mac),
    sname: '',
    file: '',
    options: h.options,
  };
}
