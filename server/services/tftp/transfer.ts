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
  /** Connected to the client: every DATA, OACK and ERROR of the transfer goes out here (absent when the native pump connects its own). */
  peer: dgram.Socket | undefined;
  /** Unconnected on the same port: receives what any other source sends to it. */
  strays: dgram.Socket;
}

/** File names come from the network: escape control characters before they reach a log line. */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * How a transfer ended, as a value. The JavaScript transfer below and the native pump
 * (native.ts) both end in one of these, and reportEnd turns it into statistics, log lines and
 * the completion hook, so the two paths count and log alike.
 */
export type TransferEnd =
  | { kind: 'done' }
  /** The client's ERROR after the OACK, before DATA: the PXE ROM tsize probe. */
  | { kind: 'probe'; code: number; message: string }
  | { kind: 'aborted'; code: number; message: string }
  /** Ended by the engine without a line above debug (a superseded probe). */
  | { kind: 'quiet'; reason: string }
  | { kind: 'oack-timeout' }
  | { kind: 'timeout'; tries: number }
  | { kind: 'stalled' }
  | { kind: 'socket'; error: string }
  | { kind: 'read'; error: string };

/** Where a transfer stood when it ended. */
export interface TransferProgress {
  acked: number;
  of: number;
  ms: number;
  bytes: number;
  blksize: number;
  windowsize: number;
}

/** The one place a transfer's end becomes statistics, log lines and the completion hook. */
export function reportEnd(
  host: Pick<TransferHost, 'log' | 'stats' | 'stallMs' | 'opts'>,
  who: { file: string; client: string; kind: 'buffer' | 'file'; system: string | undefined },
  at: TransferProgress,
  end: TransferEnd,
): void {
  const where = { client: who.client, file: who.file };
  switch (end.kind) {
    case 'done': {
      host.stats.completed++;
      host.log.info('sent file', { ...where, bytes: at.bytes, ms: at.ms, blksize: at.blksize, windowsize: at.windowsize });
      const info: TransferInfo = { file: who.file, client: who.client, bytes: at.bytes, ms: at.ms, blksize: at.blksize, windowsize: at.windowsize, kind: who.kind };
      if (who.system !== undefined) info.system = who.system;
      try {
        host.opts.onComplete?.(info);
      } catch (e) {
        host.log.error('onComplete hook failed', { error: e instanceof Error ? e.message : String(e) });
      }
      return;
    }
    case 'probe':
      // The PXE ROM pattern: RRQ with tsize, OACK, ERROR, then a new RRQ.
      // Normal, so debug only (boot-protocol-facts.md).
      host.stats.probes++;
      host.log.debug('client ended the transfer after the OACK (size probe)', { ...where, code: end.code, message: printable(end.message) });
      return;
    case 'aborted':
      host.stats.aborted++;
      host.log.info('client aborted the transfer', { ...where, code: end.code, message: printable(end.message), acked: at.acked });
      return;
    case 'quiet':
      host.stats.probes++;
      host.log.debug('transfer ended', { ...where, reason: end.reason });
      return;
    case 'stalled':
      // The lifetime bound: however the timeout and backoff add up, a transfer
      // without progress for stallMs frees its slot (a flood of unanswered
      // RRQs with timeout=255 pins slots for seconds, not hours).
      host.stats.failed++;
      host.log.info('transfer ended: no progress', { ...where, acked: at.acked, of: at.of, ms: host.stallMs });
      return;
    case 'oack-timeout':
      // Never acknowledged the OACK: most often a PXE size probe whose ERROR
      // was lost, so not worth a warning.
      host.stats.failed++;
      host.log.info('client never acknowledged the OACK', where);
      return;
    case 'timeout':
      host.stats.failed++;
      host.log.warn('transfer failed: client stopped answering', { ...where, acked: at.acked, of: at.of, tries: end.tries });
      return;
    case 'socket':
      host.stats.failed++;
      host.log.warn('transfer socket error', { ...where, error: end.error });
      return;
    case 'read':
      host.stats.failed++;
      host.log.error('read failed', { ...where, error: end.error });
      return;
  }
}

/**
 * RFC 1350 section 4: a packet from a foreign TID gets error 5 and does not disturb the
 * transfer. It arrives on the unconnected socket of the port, which answers it from the same TID.
 */
export function answerStray(host: Pick<TransferHost, 'log' | 'stats'>, strays: dgram.Socket, from: Peer, transfer: string): void {
  host.stats.wrongTid++;
  host.log.debug('packet from unknown transfer ID', { from: `${from.address}:${from.port}`, transfer });
  strays.send(errorPacket(ErrorCode.UNKNOWN_TID, 'unknown transfer ID'), from.port, from.address);
}

/** What the engine holds for a running transfer, on either path. */
export interface ActiveTransfer {
  readonly key: string;
  readonly req: RequestPacket;
  readonly state: 'oack' | 'data' | 'done';
  /** Ends without a log line above debug (a superseded probe). */
  endQuietly(reason: string): void;
  /** Ends at once, counted nowhere (the server closes). */
  close(): void;
  /**
   * Resolves when an end that already happened elsewhere (the native pump's thread) has been
   * reported here; undefined when there is none pending.
   */
  pendingEnd(): Promise<void> | undefined;
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
  release(t: ActiveTransfer): void;
}

/**
 * One read transfer. Blocks are numbered absolutely from 1 internally; the
 * wire carries the low 16 bits, so block 65536 goes out as 0 (rollover as
 * tftpd-hpa, atftp and curl expect).
 */
export class Transfer implements Ticking, ActiveTransfer {
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
    if (socks.peer === undefined) throw new Error('a JavaScript transfer needs its connected socket');
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
      this.end({ kind: 'socket', error: e.message });
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
      answerStray(this.server, this.strays, rinfo, this.info.client);
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
      this.end({ kind: 'done' });
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
          this.sock.send(errorPacket(ErrorCode.NOT_DEFINED, 'read error'));
          this.end({ kind: 'read', error: String((this.src as FileSource).error) });
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
      this.end({ kind: 'stalled' });
      return;
    }
    if (this.tries > this.server.retries) {
      this.end(this.state === 'oack' ? { kind: 'oack-timeout' } : { kind: 'timeout', tries: this.tries - 1 });
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
    this.end(this.state === 'oack' ? { kind: 'probe', code, message } : { kind: 'aborted', code, message });
  }

  endQuietly(reason: string): void {
    this.end({ kind: 'quiet', reason });
  }

  pendingEnd(): undefined {
    return undefined;
  }

  private end(how: TransferEnd): void {
    if (this.state === 'done') return;
    const at = { acked: this.base, of: this.lastBlock, ms: Date.now() - this.started, bytes: this.src.size, blksize: this.blksize, windowsize: this.windowsize };
    this.close();
    reportEnd(this.server, this.info, at, how);
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
