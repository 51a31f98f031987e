/**
 * DHCPv4 codec (RFC 2131, 2132, 3004, 3046, 3396, 3397, 4578): a library that knows
 * nothing of forge. Policy lives in server/core/bootplan.ts and
 * server/services/dhcp/.
 */
export { DecodeError, isDecodeError } from './errors.js';
export {
  Opt,
  MessageType,
  messageTypeName,
  Options,
  ipToBytes,
  bytesToIp,
  parseSubOptions,
  encodeDomainSearch,
  decodeDomainSearch,
  type RawOption,
  type MessageTypeName,
} from './options.js';
export {
  BOOTREQUEST,
  BOOTREPLY,
  MAGIC_COOKIE,
  HEADER_LEN,
  MIN_PACKET_LEN,
  DEFAULT_MAX_LEN,
  FLAG_BROADCAST,
  decode,
  tryDecode,
  encode,
  replyTo,
  macOf,
  macToChaddr,
  type Packet,
  type EncodeOptions,
} from './packet.js';
export { debugString, ARCH_NAMES } from './debug.js';
