/**
 * One read transfer of the TFTP engine, on its own ephemeral port (RFC 1350
 * section 4: a new transfer ID): OACK, windows of DATA (RFC 7440), ACKs,
 * retransmission with back-off, and the end (done, aborted, probe, failed).
 * The engine (server.ts) accepts requests and creates these.
 */
import type dgram from 'node:dgram';
import type { Logger } from '../../log.js';
import { encode, ErrorCode, errorPacket, decode, type Negotiated, type RequestPacket } from '../../protocol/tftp/index.js';
import type { RetransmitClock, Ticking } from './clock.js';
import type { BlockSource, FileSource } from './source.js';

export interface TransferInfo {
  /** Normalised request path. */
  file: string;
  client: string;
  bytes: number;
  ms: number;
  blksize: number;
  windowsize: number;
  kind: 'buffer' | 'file';
  system?: string;
}

export interface TftpStats {
  requests: number;
  started: number;
  completed: number;
  /** Client ERRORs after OACK, before any DATA: the PXE ROM tsize probe. */
  probes: number;
  aborted: number;
  failed: number;
  refused: number;
  notFound: number;
  busy: number;
  writeRefused: number;
  wrongTid: number;
  malformed: number;
  retransmits: number;
}

export interface Peer {
  address: string;
  port: number;
}

/** The two sockets that carry one transfer's port (server.ts openTransferSockets). */
export interface TransferSockets {
  /** Connected to the client: every DATA, OACK and ERROR of the transfer goes out here. */
  peer: dgram.Socket;
  /** Unconnected on the same port: receives what any other source sends to it. */
  strays: dgram.Socket;
}

/** File names come from the network: escape control characters before they reach a log line. */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** What a transfer needs of the engine that created it. */
export interface TransferHost {
  readonly log: Logger;
  readonly stats: TftpStats;
  readonly retries: number;
  readonly timeoutMs: number;
  /** A transfer without progress for this long ends (the lifetime bound). */
  readonly stallMs: number;
  readonly opts: { onComplete?: (info: TransferInfo) => void };
  /** The engine's one retransmission clock (clock.ts). */
  readonly clock: RetransmitClock;
  release(t: Transfer): void;
}

/**
 * One read transfer. Blocks are numbered absolutely from 1 internally; the
 * wire carries the low 16 bits, so block 65536 goes out as 0 (rollover as
 * tftpd-hpa, atftp and curl expect).
 */
export class Transfer implements Ticking {
  state: 'oack' | 'data' | 'done' = 'oack';
  /** Highest block the client acknowledged (0 before any). */
  private base = 0;
  /** Highest block sent so far. */
  private sentUpTo = 0;
  private readonly lastBlock: number;
  private readonly blksize: number;
  private readonly windowsize: number;
  private readonly timeoutMs: number;
  private tries = 0;
  private waiting = false;
  /** Clock tick at which the unacknowledged window (or OACK) is resent. */
  private due: number;
  /** Current retransmission wait: the base, doubled per consecutive timeout. */
  private wait: number;
  private readonly started = Date.now();
  /** Clock tick at which the client last moved the transfer forward (begin, ACK of the OACK or of new data). */
  private lastProgress: number;
  private readonly clock: RetransmitClock;
  private readonly oack: Buffer | undefined;
  private readonly sock: dgram.Socket;
  private readonly strays: dgram.Socket;

  constructor(
    private readonly server: TransferHost,
    socks: TransferSockets,
    private readonly peer: Peer,
    readonly key: string,
    readonly req: RequestPacket,
    private readonly src: BlockSource,
    neg: Negotiated,
    private readonly info: { file: string; client: string; kind: 'buffer' | 'file'; system: string | undefined },
  ) {
    this.blksize = neg.blksize;
    this.windowsize = neg.windowsize;
    this.timeoutMs = neg.timeout !== undefined ? neg.timeout * 1000 : server.timeoutMs;
    // A file of exactly k*blksize bytes ends with an empty block k+1 (RFC 1350 section 6).
    this.lastBlock = Math.floor(src.size / this.blksize) + 1;
    this.oack = neg.oack.length > 0 ? encode({ op: 'OACK', options: neg.oack }) : undefined;
    this.wait = this.timeoutMs;
    this.clock = server.clock;
    this.clock.add(this);
    this.due = this.clock.after(this.wait);
    this.lastProgress = this.clock.tick;
    this.sock = socks.peer;
    this.strays = socks.strays;
    const onError = (e: NodeJS.ErrnoException): void => {
      if (e.code === 'ECONNREFUSED') {
        // The connected socket reports an ICMP port unreachable for an earlier datagram, and
        // Linux reports a pending socket error before the datagrams already queued: the
        // client's final ACK may be right behind it (a DATA retransmitted as the client
        // exited). Not an end: the ACKs, the retransmission clock and the stall bound decide.
        this.server.log.debug('client port unreachable (ICMP)', { client: this.info.client, file: this.info.file });
        return;
      }
      this.server.log.warn('transfer socket error', { client: this.info.client, file: this.info.file, error: e.message });
      this.fail('socket error');
    };
    this.sock.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.sock.on('error', onError);
    this.strays.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.strays.on('error', onError);
  }

  begin(): void {
    if (this.oack !== undefined) {
      // RFC 2347: the OACK is acknowledged with ACK 0 before DATA 1.
      this.state = 'oack';
      this.sock.send(this.oack);
      this.rearm(this.timeoutMs);
    } else {
      this.state = 'data';
      this.sendWindow();
    }
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (rinfo.port !== this.peer.port || rinfo.address !== this.peer.address) {
      // RFC 1350 section 4: a packet from a foreign TID gets error 5 and
      // does not disturb the transfer. It arrives on the unconnected socket of the port,
      // which answers it from the same TID.
      this.server.stats.wrongTid++;
      this.server.log.debug('packet from unknown transfer ID', { from: `${rinfo.address}:${rinfo.port}`, transfer: this.info.client });
      this.strays.send(errorPacket(ErrorCode.UNKNOWN_TID, 'unknown transfer ID'), rinfo.port, rinfo.address);
      return;
    }
    // Fast path for the common case: a well-formed ACK.
    if (msg.length === 4 && msg[0] === 0 && msg[1] === 4) {
      this.onAck(msg.readUInt16BE(2));
      return;
    }
    const r = decode(msg);
    if (!r.ok) {
      this.server.stats.malformed++;
      this.server.log.debug('dropped malformed packet', { client: this.info.client, code: 'TFTP_DECODE', reason: r.reason });
      return;
    }
    if (r.packet.op === 'ERROR') {
      this.onClientError(r.packet.code, r.packet.message);
      return;
    }
    this.server.stats.malformed++;
    this.server.log.debug('ignored unexpected packet in a read transfer', { client: this.info.client, op: r.packet.op });
  }

  private onAck(wire: number): void {
    if (this.state === 'oack') {
      if (wire !== 0) return;
      this.state = 'data';
      this.tries = 0;
      this.lastProgress = this.clock.tick;
      this.sendWindow();
      return;
    }
    if (this.state !== 'data') return;
    const delta = (wire - (this.base & 0xffff)) & 0xffff;
    // delta 0: a duplicate ACK. Never answer it with DATA (the Sorcerer's
    // Apprentice bug, RFC 1123 section 4.2.3.1): only the timer retransmits.
    // delta beyond what was sent: stale or bogus, ignored.
    if (delta === 0 || delta > this.sentUpTo - this.base) return;
    this.base += delta;
    this.tries = 0;
    this.lastProgress = this.clock.tick;
    if (this.base >= this.lastBlock) {
      this.finish();
      return;
    }
    // RFC 7440 section 4: the next window starts after the acknowledged block,
    // also when that ACK is inside the window (the client saw a gap).
    this.sendWindow();
  }

  private sendWindow(): void {
    if (this.waiting) return;
    const from = this.base + 1;
    const end = Math.min(this.base + this.windowsize, this.lastBlock);
    const pending = this.src.prefetch(from, end);
    if (pending !== undefined) {
      this.waiting = true;
      void pending.then(() => {
        this.waiting = false;
        if (this.state !== 'data') return;
        if (this.src.block(from) === undefined) {
          this.server.log.error('read failed', { client: this.info.client, file: this.info.file, error: String((this.src as FileSource).error) });
          this.sock.send(errorPacket(ErrorCode.NOT_DEFINED, 'read error'));
          this.fail('read error');
          return;
        }
        this.sendWindow();
      });
      return;
    }
    for (let n = from; n <= end; n++) this.sendBlock(n);
    if (end > this.sentUpTo) this.sentUpTo = end;
    this.rearm(this.timeoutMs);
  }

  /** (Re)starts the retransmission wait: an integer deadline on the engine's clock, no timer call. */
  private rearm(ms: number): void {
    this.wait = ms;
    this.due = this.clock.after(ms);
  }

  onTick(tick: number): void {
    if (tick >= this.due) this.onTimeout();
  }

  private sendBlock(n: number): void {
    const datagram = this.src.datagram(n);
    if (datagram === undefined) return; // not loaded (cannot happen after prefetch); the timer resends
    this.sock.send(datagram);
  }

  private onTimeout(): void {
    if (this.state === 'done') return;
    if (this.waiting) {
      this.rearm(this.wait);
      return;
    }
    this.tries++;
    if (this.clock.since(this.lastProgress) >= this.server.stallMs) {
      // The lifetime bound: however the timeout and backoff add up, a transfer
      // without progress for stallMs frees its slot (a flood of unanswered
      // RRQs with timeout=255 pins slots for seconds, not hours).
      this.server.log.info('transfer ended: no progress', { client: this.info.client, file: this.info.file, acked: this.base, of: this.lastBlock, ms: this.server.stallMs });
      this.fail('stalled');
      return;
    }
    if (this.tries > this.server.retries && this.state === 'oack') {
      // Never acknowledged the OACK: most often a PXE size probe whose ERROR
      // was lost, so not worth a warning.
      this.server.log.info('client never acknowledged the OACK', { client: this.info.client, file: this.info.file });
      this.fail('timeout');
      return;
    }
    if (this.tries > this.server.retries) {
      this.server.log.warn('transfer failed: client stopped answering', {
        client: this.info.client,
        file: this.info.file,
        acked: this.base,
        of: this.lastBlock,
        tries: this.tries - 1,
      });
      this.fail('timeout');
      return;
    }
    this.server.stats.retransmits++;
    if (this.state === 'oack' && this.oack !== undefined) {
      this.sock.send(this.oack);
    } else {
      // Resend the whole unacknowledged window (RFC 7440 section 4).
      for (let n = this.base + 1; n <= this.sentUpTo; n++) this.sendBlock(n);
    }
    // Exponential backoff (RFC 1123 section 4.2.3.2: adaptive timeouts), capped
    // at 8x the base. It also leaves a quiet gap in which a client that
    // re-ACKs only on its own timer (atftp, after one extra ACK) gets to speak.
    // Never past the stall bound, so it is checked on time.
    const left = this.server.stallMs - this.clock.since(this.lastProgress);
    this.rearm(Math.max(1, Math.min(this.wait * 2, this.timeoutMs * 8, left)));
  }

  private onClientError(code: number, message: string): void {
    if (this.state === 'oack') {
      // The PXE ROM pattern: RRQ with tsize, OACK, ERROR, then a new RRQ.
      // Normal, so debug only (boot-protocol-facts.md).
      this.server.stats.probes++;
      this.server.log.debug('client ended the transfer after the OACK (size probe)', { client: this.info.client, file: this.info.file, code, message: printable(message) });
    } else {
      this.server.stats.aborted++;
      this.server.log.info('client aborted the transfer', { client: this.info.client, file: this.info.file, code, message: printable(message), acked: this.base });
    }
    this.close();
  }

  /** Ends without a log line above debug (a superseded probe). */
  endQuietly(reason: string): void {
    if (this.state === 'done') return;
    this.server.stats.probes++;
    this.server.log.debug('transfer ended', { client: this.info.client, file: this.info.file, reason });
    this.close();
  }

  private finish(): void {
    const ms = Date.now() - this.started;
    this.server.stats.completed++;
    this.server.log.info('sent file', {
      client: this.info.client,
      file: this.info.file,
      bytes: this.src.size,
      ms,
      blksize: this.blksize,
      windowsize: this.windowsize,
    });
    this.close();
    const info: TransferInfo = {
      file: this.info.file,
      client: this.info.client,
      bytes: this.src.size,
      ms,
      blksize: this.blksize,
      windowsize: this.windowsize,
      kind: this.info.kind,
    };
    if (this.info.system !== undefined) info.system = this.info.system;
    try {
      this.server.opts.onComplete?.(info);
    } catch (e) {
      this.server.log.error('onComplete hook failed', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  private fail(_reason: string): void {
    if (this.state === 'done') return;
    this.server.stats.failed++;
    this.close();
  }

  close(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.clock.delete(this);
    this.src.close();
    for (const s of [this.sock, this.strays]) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
    this.server.release(this);
  }
}
