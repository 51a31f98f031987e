/**
 * A stable, human-readable dump of a packet for golden files and logs
 * (pixiecore's DebugString). One line per field and per option; encapsulated
 * options (43, 82, 175) are shown with their sub-options.
 */
import { MessageType, Opt, parseSubOptions, messageTypeName, bytesToIp } from './options.js';
import type { Options, RawOption } from './options.js';
import { macOf, type Packet } from './packet.js';

const NAMES: Record<number, string> = {
  1: 'Subnet Mask',
  3: 'Router',
  6: 'Domain Name Server',
  12: 'Host Name',
  13: 'Boot File Size',
  15: 'Domain Name',
  17: 'Root Path',
  26: 'Interface MTU',
  28: 'Broadcast Address',
  42: 'NTP Servers',
  43: 'Vendor Specific',
  50: 'Requested IP Address',
  51: 'Lease Time',
  52: 'Option Overload',
  53: 'DHCP Message Type',
  54: 'Server Identifier',
  55: 'Parameter Request List',
  56: 'Message',
  57: 'Maximum DHCP Message Size',
  58: 'Renewal Time',
  59: 'Rebinding Time',
  60: 'Vendor Class Identifier',
  61: 'Client Identifier',
  66: 'TFTP Server Name',
  67: 'Bootfile Name',
  77: 'User Class',
  82: 'Relay Agent Information',
  93: 'Client System Architecture',
  94: 'Client Network Interface Identifier',
  97: 'Client Machine Identifier',
  119: 'Domain Search',
  121: 'Classless Static Route',
  128: 'PXE/Etherboot Signature',
  175: 'iPXE Encapsulated Options',
};

/** RFC 4578 s2.1 and the IANA processor architecture registry. */
export const ARCH_NAMES: Record<number, string> = {
  0: 'x86 BIOS',
  1: 'NEC/PC98',
  2: 'EFI Itanium',
  3: 'DEC Alpha',
  4: 'Arc x86',
  5: 'Intel Lean Client',
  6: 'x86 UEFI',
  7: 'x64 UEFI',
  8: 'EFI Xscale',
  9: 'EBC (x64 UEFI)',
  10: 'ARM 32-bit UEFI',
  11: 'ARM 64-bit UEFI',
  15: 'x86 UEFI HTTP',
  16: 'x64 UEFI HTTP',
  19: 'ARM 64-bit UEFI HTTP',
};

const IPXE_SUB: Record<number, string> = {
  1: 'priority',
  8: 'keep-san',
  9: 'skip-san-boot',
  16: 'pxeext',
  17: 'iscsi',
  18: 'aoe',
  19: 'http',
  20: 'https',
  21: 'tftp',
  22: 'ftp',
  23: 'dns',
  24: 'bzimage',
  25: 'multiboot',
  26: 'slam',
  27: 'srp',
  32: 'nbi',
  33: 'pxe',
  34: 'elf',
  35: 'comboot',
  36: 'efi',
  37: 'fcoe',
  38: 'vlan',
  39: 'menu',
  40: 'sdi',
  41: 'nfs',
  235: 'version',
};

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').replace(/(..)(?!$)/g, '$1 ');

function printable(b: Buffer): boolean {
  if (b.length === 0) return false;
  for (let i = 0; i < b.length; i++) {
    const c = b[i] as number;
    if (c === 0 && i === b.length - 1) continue;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

function subs(list: RawOption[] | undefined, names: Record<number, string>): string {
  if (list === undefined) return ' (malformed sub-options)';
  return list.map((s) => `\n      ${s.code}${names[s.code] ? ` ${names[s.code]}` : ''}: ${hex(s.data)}`).join('');
}

function describe(code: number, d: Buffer, opts: Options): string {
  switch (code) {
    case Opt.MessageType:
      return d.length === 1 ? `${messageTypeName(d[0] as number) ?? 'UNKNOWN'} (${d[0]})` : hex(d);
    case Opt.ParameterRequestList:
      return [...d].join(', ');
    case Opt.ClientArch: {
      const a = opts.clientArches();
      return a === undefined ? hex(d) : a.map((x) => `${x} (${ARCH_NAMES[x] ?? 'unknown'})`).join(', ');
    }
    case Opt.ClientNdi: {
      const n = opts.clientNdi();
      return n === undefined ? hex(d) : `type ${n.type} (${n.type === 1 ? 'UNDI' : '?'}) v${n.major}.${n.minor}`;
    }
    case Opt.ClientUuid:
      return opts.clientUuid() ?? hex(d);
    case Opt.UserClass:
      return (opts.userClasses() ?? []).map((s) => JSON.stringify(s)).join(', ');
    case Opt.MaxMessageSize:
    case 13:
    case 26:
      return d.length === 2 ? String(d.readUInt16BE(0)) : hex(d);
    case Opt.LeaseTime:
    case Opt.RenewalTime:
    case Opt.RebindingTime:
      return d.length === 4 ? `${d.readUInt32BE(0)} s` : hex(d);
    case Opt.SubnetMask:
    case Opt.RequestedIP:
    case Opt.ServerIdentifier:
    case 28:
    case Opt.Router:
    case Opt.DomainNameServer:
    case 42: {
      if (d.length === 0 || d.length % 4 !== 0) return hex(d);
      const out: string[] = [];
      for (let i = 0; i < d.length; i += 4) out.push(bytesToIp(d, i));
      return out.join(', ');
    }
    case Opt.ClientIdentifier:
      return `type ${d[0] ?? '?'}: ${hex(d.subarray(1))}`;
    case Opt.Overload:
      return d.length === 1 ? ['', 'file', 'sname', 'file+sname'][d[0] as number] ?? hex(d) : hex(d);
    case Opt.RelayAgentInfo:
      return `${hex(d)}${subs(parseSubOptions(d), { 1: 'circuit-id', 2: 'remote-id', 5: 'link-selection' })}`;
    case Opt.IpxeEncap:
      return `${d.length} bytes${subs(parseSubOptions(d), IPXE_SUB)}`;
    case Opt.VendorSpecific:
      return `${hex(d)}${subs(parseSubOptions(d), {})}`;
    default:
      return printable(d) ? JSON.stringify(d.toString('latin1').replace(/\0$/, '')) : hex(d);
  }
}

export function debugString(p: Packet): string {
  const mt = p.options.messageType();
  const lines = [
    `op: ${p.op === 1 ? 'BOOTREQUEST' : p.op === 2 ? 'BOOTREPLY' : 'UNKNOWN'} (${p.op})  message: ${mt === undefined ? 'none (BOOTP)' : messageTypeName(mt) ?? `unknown ${mt}`}`,
    `htype: ${p.htype}  hlen: ${p.hlen}  hops: ${p.hops}`,
    `xid: 0x${p.xid.toString(16).padStart(8, '0')}  secs: ${p.secs}  flags: 0x${p.flags.toString(16).padStart(4, '0')}${p.flags & 0x8000 ? ' (broadcast)' : ''}`,
    `ciaddr: ${p.ciaddr}  yiaddr: ${p.yiaddr}  siaddr: ${p.siaddr}  giaddr: ${p.giaddr}`,
    `chaddr: ${macOf(p)}`,
    `sname: ${JSON.stringify(p.sname)}`,
    `file: ${JSON.stringify(p.file)}`,
    `options:`,
  ];
  for (const o of p.options.entries()) {
    lines.push(`  ${String(o.code).padStart(3)} ${NAMES[o.code] ?? 'Unknown'} [${o.data.length}]: ${describe(o.code, o.data, p.options)}`);
  }
  return lines.join('\n') + '\n';
}

export { MessageType };
