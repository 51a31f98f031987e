/**
 * How many bytes of a TCP connection's sent data the peer has not yet acknowledged, from the
 * kernel's own table (/proc/net/tcp and /proc/net/tcp6, Linux): the `tx_queue` column is
 * write_seq - snd_una, bytes handed to the kernel that the client's TCP has not acknowledged.
 * Node exposes no SIOCOUTQ or TCP_INFO, and its response 'finish' means only "handed to the
 * kernel", which on a loopback or busy link can be megabytes before the client has them.
 *
 * A codec only: the text format and the socket-to-row key. The keep-alive policy that uses it
 * is in keepalive.ts.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { endianness } from 'node:os';

const LITTLE = endianness() === 'LE';

/** The 16 bytes of an IPv6 literal (with an optional dotted IPv4 tail), or undefined. */
export function ipv6Bytes(addr: string): Uint8Array | undefined {
  const s = addr.replace(/%.*$/, '');
  if (!isIPv6(s)) return undefined;
  const out = new Uint8Array(16);
  let head = s;
  const tail: number[] = [];
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m !== null) {
    head = (m[1] as string).endsWith('::') ? (m[1] as string) : (m[1] as string).slice(0, -1);
    const q = (m[2] as string).split('.').map(Number);
    tail.push(((q[0] as number) << 8) | (q[1] as number), ((q[2] as number) << 8) | (q[3] as number));
  }
  const [l, r] = head.includes('::') ? head.split('::') : [head, undefined];
  const left = l === '' || l === undefined ? [] : l.split(':').map((h) => parseInt(h, 16));
  const right = r === undefined || r === '' ? [] : r.split(':').map((h) => parseInt(h, 16));
  const words = [...left, ...new Array<number>(8 - left.length - right.length - tail.length).fill(0), ...right, ...tail];
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

/** A 4-byte group as the kernel prints it: the 32-bit word in host byte order, %08X. */
function word(b: Uint8Array, at: number): string {
  const bytes = [b[at], b[at + 1], b[at + 2], b[at + 3]] as number[];
  const ordered = LITTLE ? bytes.reverse() : bytes;
  return ordered.map((x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
}

function endpoint(addr: string, port: number): { table: 'tcp' | 'tcp6'; text: string } | undefined {
  const p = port.toString(16).toUpperCase().padStart(4, '0');
  if (isIPv4(addr)) {
    const b = Uint8Array.from(addr.split('.').map(Number));
    return { table: 'tcp', text: `${word(b, 0)}:${p}` };
  }
  const b = ipv6Bytes(addr);
  if (b === undefined) return undefined;
  return { table: 'tcp6', text: `${word(b, 0)}${word(b, 4)}${word(b, 8)}${word(b, 12)}:${p}` };
}

export interface QueueKey {
  table: 'tcp' | 'tcp6';
  /** "LOCAL REMOTE" as the table prints them. */
  key: string;
}

/** The row key of a connection, from its own (local) and the peer's (remote) address and port. */
export function queueKey(local: { address: string; port: number }, remote: { address: string; port: number }): QueueKey | undefined {
  const l = endpoint(local.address, local.port);
  const r = endpoint(remote.address, remote.port);
  if (l === undefined || r === undefined || l.table !== r.table) return undefined;
  return { table: l.table, key: `${l.text} ${r.text}` };
}

/**
 * tx_queue of every row of a /proc/net/tcp{,6} text, by "LOCAL REMOTE". Rows look like
 * `  3: 0100007F:1F90 0100007F:A2C4 01 000E0C80:00000000 ...` (sl, local, remote, state,
 * tx_queue:rx_queue in hex). Lines that do not parse are skipped.
 */
export function parseSendQueues(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    const q = f[4];
    if (f.length < 5 || !/^\d+:$/.test(f[0] as string) || q === undefined) continue;
    const tx = parseInt(q.slice(0, q.indexOf(':')), 16);
    if (Number.isFinite(tx)) out.set(`${f[1] as string} ${f[2] as string}`, tx);
  }
  return out;
}

/** Reads the tables named (once each); undefined for a table that cannot be read (not Linux). */
export function readSendQueues(tables: Iterable<'tcp' | 'tcp6'>): Map<'tcp' | 'tcp6', Map<string, number> | undefined> {
  const out = new Map<'tcp' | 'tcp6', Map<string, number> | undefined>();
  for (const t of tables) {
    if (out.has(t)) continue;
    try {
      out.set(t, parseSendQueues(readFileSync(`/proc/net/${t}`, 'utf8')));
    } catch {
      out.set(t, undefined);
    }
  }
  return out;
}
