/**
 * DHCP options (RFC 2132), kept raw: an ordered list of (code, bytes) with
 * typed getters, the way pixiecore's dhcp4.Options does it. Decoding merges
 * repeated instances of one code by concatenation (RFC 3396 s5, "long
 * options"), so a getter always sees the whole value; encoding splits values
 * longer than 255 bytes back into consecutive instances (RFC 3396 s4).
 */

/** Option codes forge reads or writes. Names follow RFC 2132 / IANA. */
export const Opt = {
  Pad: 0,
  SubnetMask: 1,
  Router: 3,
  DomainNameServer: 6,
  HostName: 12,
  DomainName: 15,
  InterfaceMtu: 26,
  RequestedIP: 50,
  LeaseTime: 51,
  Overload: 52,
  MessageType: 53,
  ServerIdentifier: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  VendorClass: 60,
  ClientIdentifier: 61,
  TftpServerName: 66,
  BootfileName: 67,
  UserClass: 77,
  RelayAgentInfo: 82,
  ClientArch: 93,
  ClientNdi: 94,
  ClientUuid: 97,
  DomainSearch: 119,
  VendorSpecific: 43,
  IpxeEncap: 175,
  End: 255,
} as const;

/** Message types, option 53 (RFC 2132 s9.6). */
export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type MessageTypeName = keyof typeof MessageType;

export function messageTypeName(n: number): MessageTypeName | undefined {
  for (const [k, v] of Object.entries(MessageType)) if (v === n) return k as MessageTypeName;
  return undefined;
}

export interface RawOption {
  readonly code: number;
  readonly data: Buffer;
}

/** Dotted quad to 4 bytes; RangeError for anything else. Hand-rolled: it runs for every reply option. */
export function ipToBytes(ip: string): Buffer {
  const b = Buffer.allocUnsafe(4);
  writeIpInto(b, 0, ip);
  return b;
}

/** Writes a dotted quad as 4 bytes at `off` of `b` (no allocation: the encoder's header fields). */
export function writeIpInto(b: Uint8Array, off: number, ip: string): void {
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i < ip.length ? ip.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3 || val > 255) throw new RangeError(`not an IPv4 address: ${ip}`);
      b[off + part++] = val;
      val = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      val = val * 10 + (c - 48);
      digits++;
    } else {
      throw new RangeError(`not an IPv4 address: ${ip}`);
    }
  }
  if (part !== 4) throw new RangeError(`not an IPv4 address: ${ip}`);
}

export function bytesToIp(b: Uint8Array, off = 0): string {
  return `${b[off] ?? 0}.${b[off + 1] ?? 0}.${b[off + 2] ?? 0}.${b[off + 3] ?? 0}`;
}

/**
 * Ordered, code-unique option list. Insertion order is the order on the wire;
 * `set` of an existing code replaces its value in place.
 */
export class Options {
  private readonly list: { code: number; data: Buffer }[] = [];

  constructor(init?: Iterable<RawOption>) {
    if (init !== undefined) for (const o of init) this.append(o.code, o.data);
  }

  /** Adds bytes to a code; a second instance is concatenated (RFC 3396). */
  append(code: number, data: Uint8Array): this {
    const cur = this.list.find((o) => o.code === code);
    if (cur === undefined) this.list.push({ code, data: Buffer.from(data) });
    else cur.data = Buffer.concat([cur.data, data]);
    return this;
  }

  /**
   * append() without the copy, for bytes nobody changes afterwards: the decoder's own copy of
   * the datagram, whose options are views into it (one allocation per packet, not one per
   * option: issue 21 profile). A repeated code still concatenates into a new buffer (RFC 3396).
   */
  appendView(code: number, data: Buffer): this {
    const cur = this.list.find((o) => o.code === code);
    if (cur === undefined) this.list.push({ code, data });
    else cur.data = Buffer.concat([cur.data, data]);
    return this;
  }

  set(code: number, data: Uint8Array): this {
    return this.own(code, Buffer.from(data));
  }

  /**
   * set() without the copy, for a value shared by many replies that nobody changes (a subnet's
   * mask, router, lease times, encoded once per subnet: services/dhcp/managed.ts). The encoder
   * only reads option data, and every setter replaces a value rather than writing into it.
   */
  setShared(code: number, data: Buffer): this {
    return this.own(code, data);
  }

  /** set() for a buffer made here and referenced nowhere else: kept without a copy. */
  private own(code: number, data: Buffer): this {
    const cur = this.list.find((o) => o.code === code);
    if (cur === undefined) this.list.push({ code, data });
    else cur.data = data;
    return this;
  }

  delete(code: number): this {
    const i = this.list.findIndex((o) => o.code === code);
    if (i >= 0) this.list.splice(i, 1);
    return this;
  }

  has(code: number): boolean {
    return this.list.some((o) => o.code === code);
  }

  get(code: number): Buffer | undefined {
    return this.list.find((o) => o.code === code)?.data;
  }

  get size(): number {
    return this.list.length;
  }

  /** The options in wire order (copies: the list cannot be changed through them). */
  entries(): RawOption[] {
    return this.list.map((o) => ({ code: o.code, data: Buffer.from(o.data) }));
  }

  /**
   * The options as held, in wire order, without copies (the encoder's view, once per reply).
   * Callers must not modify the buffers; entries() is the copying form.
   */
  view(): readonly RawOption[] {
    return this.list;
  }

  clone(): Options {
    return new Options(this.entries());
  }

  // ---- typed setters
  // allocUnsafe (every byte written at once): small buffers come from Node's shared pool, while
  // Buffer.alloc and Buffer.of make an ArrayBuffer each, which the GC then tracks (issue 21 profile).
  setUint8(code: number, v: number): this {
    const b = Buffer.allocUnsafe(1);
    b[0] = v & 0xff;
    return this.own(code, b);
  }
  setUint16(code: number, v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(v & 0xffff);
    return this.own(code, b);
  }
  setUint32(code: number, v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v >>> 0);
    return this.own(code, b);
  }
  /**
   * Option 119, the domain search list (RFC 3397 s2): each name in DNS wire
   * form (RFC 1035 s3.1, length-prefixed labels ending in a zero octet), with
   * a name's tail that an earlier name already ends in written as a
   * compression pointer to it (RFC 1035 s4.1.4; offsets count from the start
   * of the option's data, RFC 3397 s2). Values over 255 bytes are split by
   * `set` into consecutive instances (RFC 3396).
   */
  setDomainSearch(code: number, names: readonly string[]): this {
    return this.set(code, encodeDomainSearch(names));
  }
  setString(code: number, s: string): this {
    return this.own(code, Buffer.from(s, 'latin1'));
  }
  setIp(code: number, ip: string): this {
    return this.own(code, ipToBytes(ip));
  }
  setIps(code: number, ips: readonly string[]): this {
    const b = Buffer.allocUnsafe(ips.length * 4);
    ips.forEach((ip, i) => writeIpInto(b, i * 4, ip));
    return this.own(code, b);
  }

  // ---- typed getters: undefined when absent or of the wrong length
  uint8(code: number): number | undefined {
    const d = this.get(code);
    return d !== undefined && d.length === 1 ? d[0] : undefined;
  }
  uint16(code: number): number | undefined {
    const d = this.get(code);
    return d !== undefined && d.length === 2 ? d.readUInt16BE(0) : undefined;
  }
  uint32(code: number): number | undefined {
    const d = this.get(code);
    return d !== undefined && d.length === 4 ? d.readUInt32BE(0) : undefined;
  }
  string(code: number): string | undefined {
    const d = this.get(code);
    if (d === undefined) return undefined;
    // Some clients NUL-terminate strings (RFC 2132 s2 says they should not).
    const nul = d.indexOf(0);
    return (nul >= 0 ? d.subarray(0, nul) : d).toString('latin1');
  }
  ip(code: number): string | undefined {
    const d = this.get(code);
    return d !== undefined && d.length === 4 ? bytesToIp(d) : undefined;
  }
  ips(code: number): string[] | undefined {
    const d = this.get(code);
    if (d === undefined || d.length === 0 || d.length % 4 !== 0) return undefined;
    const out: string[] = [];
    for (let i = 0; i < d.length; i += 4) out.push(bytesToIp(d, i));
    return out;
  }

  /** Option 53 (RFC 2132 s9.6). */
  messageType(): number | undefined {
    return this.uint8(Opt.MessageType);
  }

  /** Option 55 (RFC 2132 s9.8): the codes the client asks for. */
  parameterRequestList(): number[] {
    return Array.from(this.get(Opt.ParameterRequestList) ?? []);
  }

  /** Whether option 55 asks for `code` (no array made: per reply, issue 21 profile). */
  requests(code: number): boolean {
    return this.get(Opt.ParameterRequestList)?.includes(code) ?? false;
  }

  /** Option 57 (RFC 2132 s9.10); undefined when absent or below the RFC minimum of 576. */
  maxMessageSize(): number | undefined {
    const v = this.uint16(Opt.MaxMessageSize);
    return v !== undefined && v >= 576 ? v : undefined;
  }

  /** Option 60 vendor class identifier, e.g. `PXEClient:Arch:00000:UNDI:002001`. */
  vendorClass(): string | undefined {
    return this.string(Opt.VendorClass);
  }

  /**
   * Option 93 client system architectures (RFC 4578 s2.1): a list of 16-bit
   * types; the first is the one the client booted with.
   */
  clientArches(): number[] | undefined {
    const d = this.get(Opt.ClientArch);
    if (d === undefined || d.length === 0 || d.length % 2 !== 0) return undefined;
    const out: number[] = [];
    for (let i = 0; i < d.length; i += 2) out.push(d.readUInt16BE(i));
    return out;
  }

  clientArch(): number | undefined {
    return this.clientArches()?.[0];
  }

  /** Option 94 client network interface identifier (RFC 4578 s2.2): type, major, minor. */
  clientNdi(): { type: number; major: number; minor: number } | undefined {
    const d = this.get(Opt.ClientNdi);
    if (d === undefined || d.length !== 3) return undefined;
    return { type: d[0] ?? 0, major: d[1] ?? 0, minor: d[2] ?? 0 };
  }

  /**
   * Option 97 client machine identifier (RFC 4578 s2.3): type 0 + 16-byte GUID,
   * returned in the usual text form (the first three fields little-endian,
   * as PXE firmware writes them).
   */
  clientUuid(): string | undefined {
    const d = this.get(Opt.ClientUuid);
    if (d === undefined || d.length !== 17 || d[0] !== 0) return undefined;
    const g = d.subarray(1);
    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
    const rev = (b: Uint8Array): string => hex(Uint8Array.from(b).reverse());
    return `${rev(g.subarray(0, 4))}-${rev(g.subarray(4, 6))}-${rev(g.subarray(6, 8))}-${hex(g.subarray(8, 10))}-${hex(g.subarray(10, 16))}`;
  }

  /**
   * Option 77 user classes. RFC 3004 s4 encodes a list of length-prefixed
   * strings, but iPXE and ISC dhclient send one bare string ("iPXE"): when
   * the bytes do not parse as an RFC 3004 list, the whole value is one class.
   */
  userClasses(): string[] | undefined {
    const d = this.get(Opt.UserClass);
    if (d === undefined || d.length === 0) return undefined;
    const out: string[] = [];
    let i = 0;
    while (i < d.length) {
      const len = d[i] ?? 0;
      if (len === 0 || i + 1 + len > d.length) return [d.toString('latin1')];
      out.push(d.subarray(i + 1, i + 1 + len).toString('latin1'));
      i += 1 + len;
    }
    return out;
  }

  /** Option 61 client identifier (RFC 2132 s9.14), raw. */
  clientId(): Buffer | undefined {
    const d = this.get(Opt.ClientIdentifier);
    return d !== undefined && d.length >= 2 ? d : undefined;
  }

  /** Option 82 relay agent information (RFC 3046), raw: servers echo it unchanged (s2.2). */
  relayAgentInfo(): Buffer | undefined {
    return this.get(Opt.RelayAgentInfo);
  }

  /** Sub-options of an encapsulated option (82, 43, 175): code/length/value, undefined if malformed. */
  subOptions(code: number): RawOption[] | undefined {
    const d = this.get(code);
    if (d === undefined) return undefined;
    return parseSubOptions(d);
  }
}

export function parseSubOptions(d: Buffer): RawOption[] | undefined {
  const out: RawOption[] = [];
  let i = 0;
  while (i < d.length) {
    const c = d[i] ?? 0;
    if (c === 0) {
      i++;
      continue;
    }
    if (c === 255) break;
    const len = d[i + 1];
    if (len === undefined || i + 2 + len > d.length) return undefined;
    out.push({ code: c, data: d.subarray(i + 2, i + 2 + len) });
    i += 2 + len;
  }
  return out;
}

/** RFC 3397 s2 / RFC 1035 s3.1 + s4.1.4: a domain search list in wire form with compression. */
export function encodeDomainSearch(names: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  /** Offset of every suffix written so far ("b.example" -> 12), lower-cased. */
  const at = new Map<string, number>();
  let len = 0;
  for (const raw of names) {
    const labels = raw.replace(/\.$/, '').split('.').filter((l) => l !== '');
    for (const l of labels) if (l.length > 63) throw new RangeError(`domain label longer than 63 octets: ${l}`);
    let i = 0;
    for (; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const ptr = at.get(suffix);
      if (ptr !== undefined) {
        parts.push(Buffer.of(0xc0 | (ptr >> 8), ptr & 0xff));
        len += 2;
        break;
      }
      if (len < 0x3fff) at.set(suffix, len);
      const b = Buffer.from(labels[i]!, 'latin1');
      parts.push(Buffer.of(b.length), b);
      len += 1 + b.length;
    }
    if (i === labels.length) {
      parts.push(Buffer.of(0));
      len += 1;
    }
  }
  return Buffer.concat(parts);
}

/** Decodes an RFC 3397 search list (pointers followed, loops refused). */
export function decodeDomainSearch(data: Uint8Array): string[] {
  const out: string[] = [];
  let pos = 0;
  while (pos < data.length) {
    const labels: string[] = [];
    let p = pos;
    let jumped = false;
    let hops = 0;
    for (;;) {
      if (p >= data.length) throw new RangeError('domain search list truncated');
      const n = data[p]!;
      if (n === 0) {
        if (!jumped) pos = p + 1;
        break;
      }
      if ((n & 0xc0) === 0xc0) {
        if (p + 1 >= data.length || ++hops > 64) throw new RangeError('bad compression pointer in domain search list');
        const target = ((n & 0x3f) << 8) | data[p + 1]!;
        if (!jumped) pos = p + 2;
        jumped = true;
        p = target;
        continue;
      }
      labels.push(Buffer.from(data.subarray(p + 1, p + 1 + n)).toString('latin1'));
      p += 1 + n;
    }
    out.push(labels.join('.'));
  }
  return out;
}
