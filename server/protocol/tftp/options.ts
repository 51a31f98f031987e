/**
 * TFTP option negotiation as a pure function: what the client asked
 * (RFC 2347), the server's limits and the file's size in, the values to use
 * and the OACK to send out. Imports nothing of the product.
 *
 * - blksize 8..65464 (RFC 2348 section 2); a larger request is answered
 *   with the server's maximum, a smaller or non-numeric one is ignored.
 * - timeout 1..255 seconds (RFC 2349 section 2); echoed exactly or ignored.
 * - tsize (RFC 2349 section 3): on an RRQ the client sends 0 and the server
 *   answers the file size; only when the size is known in advance.
 * - windowsize 1..65535 (RFC 7440 section 3); answered with min(asked, max).
 *
 * Only options the client asked for appear in the OACK (RFC 2347: the OACK
 * acknowledges requested options; an unrequested tsize has broken EFI PXE
 * clients). If nothing is acknowledged, no OACK is sent and the transfer
 * starts with DATA block 1 (RFC 2347, "Negotiation Protocol").
 */
import { MAX_BLKSIZE, type TftpOption } from './packet.js';

export const DEFAULT_BLKSIZE = 512;

export interface ServerLimits {
  /** Largest block size the server grants (<= 65464). */
  maxBlksize: number;
  /** Largest window the server grants (>= 1). */
  maxWindowsize: number;
  /**
   * Largest client-chosen retransmission timeout (seconds) accepted. RFC 2349
   * lets the server only accept the value as asked or ignore the option, so a
   * larger one is left out of the OACK and the server's own timeout applies.
   */
  maxTimeout: number;
}

export const DEFAULT_LIMITS: ServerLimits = { maxBlksize: MAX_BLKSIZE, maxWindowsize: 64, maxTimeout: 5 };

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** Retransmission timeout in seconds, when the client set one. */
  timeout: number | undefined;
  /** Options to acknowledge, in the client's order; empty means no OACK. */
  oack: TftpOption[];
}

/** Parses a decimal option value; undefined unless it is plain ASCII digits. */
export function parseDecimal(v: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(v)) return undefined;
  return Number(v);
}

/**
 * Negotiates options for a read request. `fileSize` is undefined when the
 * size is not known up front (then tsize is not acknowledged).
 */
export function negotiate(asked: readonly TftpOption[], fileSize: number | undefined, limits: ServerLimits = DEFAULT_LIMITS): Negotiated {
  const result: Negotiated = { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeout: undefined, oack: [] };
  const seen = new Set<string>();
  for (const { name, value } of asked) {
    // A repeated option: the first one counts (RFC 2347 does not allow repeats).
    if (seen.has(name)) continue;
    seen.add(name);
    const n = parseDecimal(value);
    switch (name) {
      case 'blksize': {
        if (n === undefined || n < 8) break;
        const granted = Math.min(n, limits.maxBlksize, MAX_BLKSIZE);
        result.blksize = granted;
        result.oack.push({ name, value: String(granted) });
        break;
      }
      case 'timeout':
        if (n === undefined || n < 1 || n > 255 || n > limits.maxTimeout) break;
        result.timeout = n;
        result.oack.push({ name, value: String(n) });
        break;
      case 'tsize':
        // RFC 2349: in a read request the client sends 0; be lenient about the value.
        if (fileSize === undefined || n === undefined) break;
        result.oack.push({ name, value: String(fileSize) });
        break;
      case 'windowsize': {
        if (n === undefined || n < 1 || n > 65535) break;
        const granted = Math.max(1, Math.min(n, limits.maxWindowsize));
        result.windowsize = granted;
        result.oack.push({ name, value: String(granted) });
        break;
      }
      default:
        // Unknown options are ignored (RFC 2347).
        break;
    }
  }
  return result;
}
