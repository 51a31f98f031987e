/**
 * TFTP packet codec: bytes <-> packet values. RFC 1350 (RRQ, WRQ, DATA, ACK,
 * ERROR) and RFC 2347 (OACK, options appended to requests). Pure data: this
 * module imports nothing of the product. Malformed input is reported as a
 * value (`decode`) or as a TftpDecodeError whose `code` is `TFTP_DECODE`
 * (`decodeOrThrow`); adapters translate that into the product's ForgeError.
 *
 * Strings (file name, mode, option names and values, error messages) are
 * decoded as latin1 so every byte maps to one char and encode(decode(b))
 * reproduces the bytes exactly; callers decide how to interpret them.
 */

export const Opcode = {
  RRQ: 1,
  WRQ: 2,
  DATA: 3,
  ACK: 4,
  ERROR: 5,
  OACK: 6,
} as const;

/** RFC 1350 section 5 error codes, plus 8 from RFC 2347. */
export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  /** RFC 2347: the client refuses the options in an OACK. */
  OPTION_REFUSED: 8,
} as const;

/** An option as sent: name lowercased (RFC 2347: case-insensitive), value verbatim. */
export interface TftpOption {
  name: string;
  value: string;
}

export interface RequestPacket {
  op: 'RRQ' | 'WRQ';
  filename: string;
  /** Lowercased transfer mode: normally `octet` or `netascii` (RFC 1350 section 5). */
  mode: string;
  /** Options in the order the client sent them (RFC 2347). */
  options: TftpOption[];
}

export interface DataPacket {
  op: 'DATA';
  /** 16-bit wire block number (wraps past 65535). */
  block: number;
  data: Buffer;
}

export interface AckPacket {
  op: 'ACK';
  block: number;
}

export interface ErrorPacket {
  op: 'ERROR';
  code: number;
  message: string;
}

export interface OackPacket {
  op: 'OACK';
  options: TftpOption[];
}

export type TftpPacket = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

export type DecodeResult = { ok: true; packet: TftpPacket } | { ok: false; reason: string };

/** Typed decode failure; `code` matches the product catalogue's TFTP_DECODE. */
export class TftpDecodeError extends Error {
  readonly code = 'TFTP_DECODE' as const;
  constructor(reason: string) {
    super(reason);
    this.name = 'TftpDecodeError';
  }
}

/** Largest DATA payload RFC 2348 allows (and so the largest packet we decode is 65468). */
export const MAX_BLKSIZE = 65464;
const MAX_PACKET = MAX_BLKSIZE + 4;

function fail(reason: string): DecodeResult {
  return { ok: false, reason };
}

/**
 * Splits `buf[from..]` into NUL-terminated strings. Returns undefined if the
 * last string is not terminated (RFC 1350 section 5: every string field ends in
 * a zero byte).
 */
function cstrings(buf: Buffer, from: number): string[] | undefined {
  const out: string[] = [];
  let start = from;
  while (start < buf.length) {
    const nul = buf.indexOf(0, start);
    if (nul < 0) return undefined;
    out.push(buf.toString('latin1', start, nul));
    start = nul + 1;
  }
  return out;
}

function decodeOptions(parts: string[], from: number): TftpOption[] | string {
  const options: TftpOption[] = [];
  // RFC 2347: options come as name/value pairs; a dangling name is malformed.
  if ((parts.length - from) % 2 !== 0) return 'option without a value';
  for (let i = from; i < parts.length; i += 2) {
    const name = parts[i] as string;
    const value = parts[i + 1] as string;
    if (name.length === 0) return 'empty option name';
    options.push({ name: name.toLowerCase(), value });
  }
  return options;
}

/** Decodes one UDP payload. Never throws. */
export function decode(buf: Buffer): DecodeResult {
  if (buf.length < 2) return fail('packet shorter than an opcode');
  if (buf.length > MAX_PACKET) return fail(`packet of ${buf.length} bytes exceeds ${MAX_PACKET}`);
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case Opcode.RRQ:
    case Opcode.WRQ: {
      const parts = cstrings(buf, 2);
      if (parts === undefined) return fail('request string not NUL-terminated');
      if (parts.length < 2) return fail('request without file name and mode');
      const filename = parts[0] as string;
      const mode = (parts[1] as string).toLowerCase();
      if (filename.length === 0) return fail('empty file name');
      if (mode.length === 0) return fail('empty mode');
      const options = decodeOptions(parts, 2);
      if (typeof options === 'string') return fail(options);
      return { ok: true, packet: { op: opcode === Opcode.RRQ ? 'RRQ' : 'WRQ', filename, mode, options } };
    }
    case Opcode.DATA:
      if (buf.length < 4) return fail('DATA shorter than 4 bytes');
      return { ok: true, packet: { op: 'DATA', block: buf.readUInt16BE(2), data: buf.subarray(4) } };
    case Opcode.ACK:
      // Exactly 4 bytes (RFC 1350 section 5, figure 5-3).
      if (buf.length !== 4) return fail(`ACK of ${buf.length} bytes, expected 4`);
      return { ok: true, packet: { op: 'ACK', block: buf.readUInt16BE(2) } };
    case Opcode.ERROR: {
      if (buf.length < 4) return fail('ERROR shorter than 4 bytes');
      const code = buf.readUInt16BE(2);
      // Lenient on purpose: a client's abort (e.g. the PXE ROM ending a tsize
      // probe) must be understood even if its message lacks the final NUL or
      // carries padding after it; the message is whatever precedes the first NUL.
      const nul = buf.indexOf(0, 4);
      const end = nul < 0 ? buf.length : nul;
      return { ok: true, packet: { op: 'ERROR', code, message: buf.toString('latin1', 4, end) } };
    }
    case Opcode.OACK: {
      const parts = cstrings(buf, 2);
      if (parts === undefined) return fail('OACK string not NUL-terminated');
      const options = decodeOptions(parts, 0);
      if (typeof options === 'string') return fail(options);
      return { ok: true, packet: { op: 'OACK', options } };
    }
    default:
      return fail(`unknown opcode ${opcode}`);
  }
}

/** Decodes or throws TftpDecodeError. */
export function decodeOrThrow(buf: Buffer): TftpPacket {
  const r = decode(buf);
  if (!r.ok) throw new TftpDecodeError(r.reason);
  return r.packet;
}

function checkString(s: string, what: string): void {
  if (s.includes('\0')) throw new RangeError(`${what} contains NUL`);
}

function u16(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError(`${what} ${n} is not a 16-bit number`);
  return n;
}

function encodeStrings(opcode: number, strings: string[]): Buffer {
  let len = 2;
  for (const s of strings) len += Buffer.byteLength(s, 'latin1') + 1;
  const out = Buffer.alloc(len);
  out.writeUInt16BE(opcode, 0);
  let at = 2;
  for (const s of strings) {
    at += out.write(s, at, 'latin1');
    out[at++] = 0;
  }
  return out;
}

function optionStrings(options: TftpOption[]): string[] {
  const out: string[] = [];
  for (const o of options) {
    checkString(o.name, 'option name');
    checkString(o.value, 'option value');
    out.push(o.name, o.value);
  }
  return out;
}

/** Encodes a packet. Throws RangeError for values that cannot be put on the wire (a programming error). */
export function encode(p: TftpPacket): Buffer {
  switch (p.op) {
    case 'RRQ':
    case 'WRQ':
      checkString(p.filename, 'file name');
      checkString(p.mode, 'mode');
      return encodeStrings(p.op === 'RRQ' ? Opcode.RRQ : Opcode.WRQ, [p.filename, p.mode, ...optionStrings(p.options)]);
    case 'DATA': {
      const out = Buffer.allocUnsafe(4 + p.data.length);
      out.writeUInt16BE(Opcode.DATA, 0);
      out.writeUInt16BE(u16(p.block, 'block'), 2);
      p.data.copy(out, 4);
      return out;
    }
    case 'ACK':
      return ackPacket(u16(p.block, 'block'));
    case 'ERROR':
      return errorPacket(u16(p.code, 'error code'), p.message);
    case 'OACK':
      return encodeStrings(Opcode.OACK, optionStrings(p.options));
  }
}

/** Fast paths for the server loop. */
export function ackPacket(block: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt16BE(Opcode.ACK, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  return out;
}

/** A 4-byte DATA header; the payload is sent alongside it (scatter/gather), never copied. */
export function dataHeader(block: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt16BE(Opcode.DATA, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  return out;
}

export function errorPacket(code: number, message: string): Buffer {
  // A NUL inside the message would end it early on the wire; replace it.
  const text = message.replace(/\0/g, ' ');
  const out = Buffer.alloc(4 + Buffer.byteLength(text, 'latin1') + 1);
  out.writeUInt16BE(Opcode.ERROR, 0);
  out.writeUInt16BE(code & 0xffff, 2);
  out.write(text, 4, 'latin1');
  return out;
}
