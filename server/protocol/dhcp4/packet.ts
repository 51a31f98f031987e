/**
 * BOOTP/DHCP message codec (RFC 2131 s2, RFC 951): bytes <-> Packet.
 *
 *   0      op, htype, hlen, hops          (4)
 *   4      xid                            (4)
 *   8      secs, flags                    (4)
 *   12     ciaddr, yiaddr, siaddr, giaddr (16)
 *   28     chaddr                         (16)
 *   44     sname                          (64)
 *   108    file                           (128)
 *   236    magic cookie 99.130.83.99      (4)   RFC 2131 s3
 *   240    options ...                          RFC 2132
 *
 * Decoding is strict about structure (lengths, cookie, option bounds) and
 * lenient about content (unknown options are kept raw). Any structural fault
 * is a DecodeError, never another exception.
 */
import { DecodeError } from './errors.js';
import { Opt, Options, bytesToIp, writeIpInto } from './options.js';

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const MAGIC_COOKIE = 0x63825363;
/** Fixed header including the magic cookie. */
export const HEADER_LEN = 240;
/** RFC 1542 s3.3 / RFC 2131 s2: BOOTP messages are at least 300 bytes; some relays and ROMs drop shorter ones. */
export const MIN_PACKET_LEN = 300;
/** RFC 2131 s2: every DHCP host must accept 576-byte IP datagrams: 576 - 20 (IP) - 8 (UDP). */
export const DEFAULT_MAX_LEN = 548;
/** Broadcast bit of `flags` (RFC 2131 s2, figure 2). */
export const FLAG_BROADCAST = 0x8000;

export interface Packet {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The 16-byte chaddr field as sent (only the first hlen bytes are the hardware address). */
  chaddr: Buffer;
  /** Server host name (NUL-terminated on the wire); '' when overloaded with options. */
  sname: string;
  /** Boot file name; '' when overloaded with options. */
  file: string;
  options: Options;
}

/** Lower-case aa:bb:cc:dd:ee:ff of chaddr's first hlen bytes (Ethernet: 6). */
export function macOf(p: Pick<Packet, 'chaddr' | 'hlen'>): string {
  // Called several times per packet (lookups, leases, events, logs): a table, not toString/padStart.
  const n = Math.min(p.hlen, 16);
  let s = '';
  for (let i = 0; i < n; i++) s += (i === 0 ? '' : ':') + (HEX[p.chaddr[i] ?? 0] as string);
  return s;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function macToChaddr(mac: string): Buffer {
  const b = Buffer.alloc(16);
  const parts = mac.split(/[:-]/);
  parts.forEach((h, i) => {
    if (i < 16) b[i] = parseInt(h, 16) & 0xff;
  });
  return b;
}

function cstring(b: Buffer): string {
  const nul = b.indexOf(0);
  return (nul >= 0 ? b.subarray(0, nul) : b).toString('latin1');
}

/**
 * Walks one option area (options field, or file/sname when overloaded),
 * appending to `into` so repeated codes concatenate (RFC 3396 s5). Returns
 * whether an End option was seen. `buf` is the decoder's own copy: the
 * options are views into it.
 */
function readOptionArea(buf: Buffer, start: number, end: number, into: Options, area: string): boolean {
  let i = start;
  while (i < end) {
    const code = buf[i] as number;
    if (code === Opt.Pad) {
      i++;
      continue;
    }
    if (code === Opt.End) return true;
    if (i + 1 >= end) throw new DecodeError(`option ${code} in ${area} has no length byte`, i);
    const len = buf[i + 1] as number;
    if (i + 2 + len > end) throw new DecodeError(`option ${code} in ${area} overruns the area (length ${len})`, i);
    into.appendView(code, buf.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  // RFC 2131 s4.1 wants an End option; many stacks pad to the end instead. Tolerated.
  return false;
}

/** Decodes a DHCP message. Throws DecodeError (and only DecodeError) on malformed input. */
export function decode(input: Uint8Array): Packet {
  // One copy of the whole datagram (from Node's pool when small), of which chaddr and every option
  // are views: the packet never shares bytes with the caller's buffer, and costs one allocation.
  const buf = Buffer.from(input);
  if (buf.length < HEADER_LEN) throw new DecodeError(`packet too short: ${buf.length} bytes, need at least ${HEADER_LEN}`);
  const hlen = buf[2] as number;
  if (hlen > 16) throw new DecodeError(`hlen ${hlen} exceeds the 16-byte chaddr field`, 2);
  const cookie = buf.readUInt32BE(236);
  if (cookie !== MAGIC_COOKIE) throw new DecodeError(`bad magic cookie 0x${cookie.toString(16)} (plain BOOTP is not served)`, 236);

  const options = new Options();
  readOptionArea(buf, HEADER_LEN, buf.length, options, 'options');
  // Option 52 (RFC 2132 s9.3): 1 = file holds options, 2 = sname, 3 = both;
  // areas are read options, file, sname (RFC 3396 s5) so long options concatenate in that order.
  let overload = 0;
  const ov = options.get(Opt.Overload);
  if (ov !== undefined) {
    if (ov.length !== 1 || (ov[0] as number) < 1 || (ov[0] as number) > 3) throw new DecodeError(`bad option overload value`, HEADER_LEN);
    overload = ov[0] as number;
    if (overload & 1) readOptionArea(buf, 108, 236, options, 'file');
    if (overload & 2) readOptionArea(buf, 44, 108, options, 'sname');
  }
  return {
    op: buf[0] as number,
    htype: buf[1] as number,
    hlen,
    hops: buf[3] as number,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: bytesToIp(buf, 12),
    yiaddr: bytesToIp(buf, 16),
    siaddr: bytesToIp(buf, 20),
    giaddr: bytesToIp(buf, 24),
    chaddr: buf.subarray(28, 44),
    sname: overload & 2 ? '' : cstring(buf.subarray(44, 108)),
    file: overload & 1 ? '' : cstring(buf.subarray(108, 236)),
    options,
  };
}

/** Decodes without throwing: the packet, or the DecodeError. */
export function tryDecode(input: Uint8Array): { ok: true; packet: Packet } | { ok: false; error: DecodeError } {
  try {
    return { ok: true, packet: decode(input) };
  } catch (e) {
    if (e instanceof DecodeError) return { ok: false, error: e };
    // Defensive: the decoder is meant to throw only DecodeError; anything else is a codec bug,
    // still reported as a decode failure so the server loop never sees a raw exception.
    return { ok: false, error: new DecodeError(`internal decoder fault: ${e instanceof Error ? e.message : String(e)}`) };
  }
}

export interface EncodeOptions {
  /** Largest datagram payload allowed (client's option 57 minus IP/UDP headers); default 548. */
  maxLength?: number;
}

/**
 * Encodes a packet. Options go in insertion order; the option 52 overload
 * present in a decoded packet is dropped (forge never overloads: replies fit
 * in the options field). Values over 255 bytes are split (RFC 3396 s4). The
 * result is padded to 300 bytes (RFC 1542). Throws RangeError when the
 * options do not fit `maxLength` or a field is out of range.
 */
export function encode(p: Packet, opts: EncodeOptions = {}): Buffer {
  // A full-width field without its NUL is accepted on decode, so it is written back the same way.
  if (Buffer.byteLength(p.sname, 'latin1') > 64) throw new RangeError('sname longer than 64 bytes');
  if (Buffer.byteLength(p.file, 'latin1') > 128) throw new RangeError('file longer than 128 bytes');
  if (p.hlen > 16) throw new RangeError('hlen over 16');
  // Two passes over the options as held (no copies, no per-option buffers: issue 21 profile):
  // the length first, then the bytes straight into the datagram.
  const opts0 = p.options.view();
  let optLen = 0;
  for (const o of opts0) {
    if (o.code === Opt.Pad || o.code === Opt.End || o.code === Opt.Overload) continue;
    // Values over 255 bytes are split into several instances (RFC 3396 s4); an empty one is code + 0.
    optLen += o.data.length === 0 ? 2 : 2 * Math.ceil(o.data.length / 255) + o.data.length;
  }
  const total = Math.max(MIN_PACKET_LEN, HEADER_LEN + optLen + 1);
  const max = opts.maxLength ?? Number.MAX_SAFE_INTEGER;
  if (HEADER_LEN + optLen + 1 > max) throw new RangeError(`options need ${HEADER_LEN + optLen + 1} bytes, more than the ${max} allowed`);
  // From Node's pool (replies are under 4 KiB), zeroed: Buffer.alloc made an ArrayBuffer per reply.
  const buf = Buffer.allocUnsafe(total).fill(0);
  buf[0] = p.op & 0xff;
  buf[1] = p.htype & 0xff;
  buf[2] = p.hlen & 0xff;
  buf[3] = p.hops & 0xff;
  buf.writeUInt32BE(p.xid >>> 0, 4);
  buf.writeUInt16BE(p.secs & 0xffff, 8);
  buf.writeUInt16BE(p.flags & 0xffff, 10);
  writeIpInto(buf, 12, p.ciaddr);
  writeIpInto(buf, 16, p.yiaddr);
  writeIpInto(buf, 20, p.siaddr);
  writeIpInto(buf, 24, p.giaddr);
  p.chaddr.copy(buf, 28, 0, Math.min(16, p.chaddr.length));
  buf.write(p.sname, 44, 64, 'latin1');
  buf.write(p.file, 108, 128, 'latin1');
  buf.writeUInt32BE(MAGIC_COOKIE, 236);
  let off = HEADER_LEN;
  for (const o of opts0) {
    if (o.code === Opt.Pad || o.code === Opt.End || o.code === Opt.Overload) continue;
    if (o.data.length === 0) {
      buf[off++] = o.code;
      buf[off++] = 0;
      continue;
    }
    for (let i = 0; i < o.data.length; i += 255) {
      const n = Math.min(255, o.data.length - i);
      buf[off++] = o.code;
      buf[off++] = n;
      o.data.copy(buf, off, i, i + n);
      off += n;
    }
  }
  buf[off] = Opt.End;
  return buf;
}

/** A reply skeleton for a request (RFC 2131 s4.3.1 table 3): same xid, flags, giaddr, chaddr. */
export function replyTo(req: Packet): Packet {
  return {
    op: BOOTREPLY,
    htype: req.htype,
    hlen: req.hlen,
    hops: 0,
    xid: req.xid,
    secs: 0,
    flags: req.flags,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: req.giaddr,
    chaddr: Buffer.from(req.chaddr),
    sname: '',
    file: '',
    options: new Options(),
  };
}
