/**
 * A small TFTP client for tests: full control over what it sends (options,
 * dropped ACKs, aborts, foreign TIDs), which atftp and curl do not give.
 * Loopback only. Every wait is bounded.
 */
import dgram from 'node:dgram';
import { ackPacket, decode, encode, errorPacket, type TftpOption, type TftpPacket } from '../../server/protocol/tftp/index.js';

export interface Received {
  packet: TftpPacket;
  port: number;
  address: string;
}

/** A UDP socket on 127.0.0.1 with a queue of decoded packets. */
export class UdpPeer {
  readonly sock: dgram.Socket;
  private queue: Received[] = [];
  private waiter: (() => void) | undefined;

  private constructor(sock: dgram.Socket) {
    this.sock = sock;
    sock.on('message', (msg, rinfo) => {
      const r = decode(msg);
      if (!r.ok) return;
      this.queue.push({ packet: r.packet, port: rinfo.port, address: rinfo.address });
      this.waiter?.();
    });
  }

  static async open(): Promise<UdpPeer> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    return new UdpPeer(sock);
  }

  get port(): number {
    return this.sock.address().port;
  }

  send(buf: Buffer, port: number): void {
    this.sock.send(buf, port, '127.0.0.1');
  }

  /** Resolves once the datagram left (a close right after send() would drop it). */
  sendAsync(buf: Buffer, port: number): Promise<void> {
    return new Promise((resolve) => this.sock.send(buf, port, '127.0.0.1', () => resolve()));
  }

  /** Next packet, or undefined after `ms`. */
  async next(ms: number): Promise<Received | undefined> {
    const deadline = Date.now() + ms;
    while (this.queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = undefined;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = undefined;
          resolve();
        };
      });
    }
    return this.queue.shift();
  }

  drain(): Received[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  close(): void {
    try {
      this.sock.close();
    } catch {
      // closed
    }
  }
}

export interface FetchOptions {
  options?: Record<string, string>;
  /** Return true to not send this ACK (simulated loss). `n` counts ACKs the client meant to send. */
  dropAck?: (block: number, n: number) => boolean;
  /** Client-side retransmission wait. */
  idleMs?: number;
  /** Give up after this long overall. */
  totalMs?: number;
  /** Called with the server's TID once known (for foreign-TID tests). */
  onServerPort?: (port: number) => void;
  /** Called after each in-order DATA block (absolute number). */
  onBlock?: (abs: number) => Promise<void> | void;
  peer?: UdpPeer;
}

export interface FetchResult {
  data: Buffer;
  oack: TftpOption[] | undefined;
  error: { code: number; message: string } | undefined;
  serverPort: number | undefined;
  acksSent: number;
  acksDropped: number;
}

/**
 * Reads a file. Windowed per RFC 7440 when `windowsize` is among the
 * options: ACK at the end of each window, on the last block, or the last
 * in-order block after a gap or a timeout.
 */
export async function tftpGet(serverPort: number, file: string, o: FetchOptions = {}): Promise<FetchResult> {
  const peer = o.peer ?? (await UdpPeer.open());
  const options = Object.entries(o.options ?? {}).map(([name, value]) => ({ name, value }));
  const idle = o.idleMs ?? 1000;
  const deadline = Date.now() + (o.totalMs ?? 30000);
  const chunks: Buffer[] = [];
  let blksize = 512;
  let windowsize = 1;
  let tid: number | undefined;
  let oack: TftpOption[] | undefined;
  let expected = 1; // absolute block we wait for
  let sinceAck = 0;
  let acksSent = 0;
  let acksDropped = 0;
  let ackAttempts = 0;
  const ack = async (abs: number): Promise<void> => {
    ackAttempts++;
    if (o.dropAck?.(abs, ackAttempts) === true) {
      acksDropped++;
      return;
    }
    acksSent++;
    if (tid !== undefined) await peer.sendAsync(ackPacket(abs & 0xffff), tid);
  };
  try {
    const rrq = encode({ op: 'RRQ', filename: file, mode: 'octet', options });
    peer.send(rrq, serverPort);
    for (;;) {
      if (Date.now() > deadline) throw new Error(`tftpGet ${file}: overall timeout`);
      const r = await peer.next(idle);
      if (r === undefined) {
        if (tid === undefined) peer.send(rrq, serverPort);
        else await ack(expected - 1); // re-ACK the last good block (RFC 7440 section 4)
        continue;
      }
      if (tid === undefined) {
        tid = r.port;
        o.onServerPort?.(tid);
      } else if (r.port !== tid) continue;
      const p = r.packet;
      if (p.op === 'ERROR') return { data: Buffer.concat(chunks), oack, error: { code: p.code, message: p.message }, serverPort: tid, acksSent, acksDropped };
      if (p.op === 'OACK') {
        if (oack === undefined) {
          oack = p.options;
          for (const x of p.options) {
            if (x.name === 'blksize') blksize = Number(x.value);
            if (x.name === 'windowsize') windowsize = Number(x.value);
          }
        }
        await ack(0);
        continue;
      }
      if (p.op !== 'DATA') continue;
      if (p.block !== (expected & 0xffff)) {
        // A duplicate (our ACK was lost, the server timed out) or a gap:
        // acknowledge what we have (RFC 1350 section 2; RFC 7440 section 4).
        await ack(expected - 1);
        sinceAck = 0;
        continue;
      }
      chunks.push(Buffer.from(p.data));
      const last = p.data.length < blksize;
      await o.onBlock?.(expected);
      expected++;
      sinceAck++;
      if (last || sinceAck >= windowsize) {
        await ack(expected - 1);
        sinceAck = 0;
      }
      if (last) return { data: Buffer.concat(chunks), oack, error: undefined, serverPort: tid, acksSent, acksDropped };
    }
  } finally {
    if (o.peer === undefined) peer.close();
  }
}

export { errorPacket };

/** A UDP port free on 127.0.0.1 right now (for a server started with --tftp-port). */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}
