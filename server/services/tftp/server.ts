/**
 * The TFTP engine: read-only, one ephemeral socket per transfer (RFC 1350
 * section 4: a new transfer ID), options per RFC 2347/2348/2349 and windows
 * per RFC 7440. Usable without the rest of the server (tests, benchmarks):
 *
 *   const s = new TftpServer({ port: 0, address: '127.0.0.1', root, log });
 *   await s.start(); ... s.port ...; await s.close();
 *
 * The socket loops never throw: malformed packets are counted, logged at
 * debug level and dropped.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { readFile, realpath } from 'node:fs/promises';
import type { BootFile, BootFileProvider } from '../../boot/files.js';
import { ForgeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import {
  DEFAULT_LIMITS,
  ErrorCode,
  MAX_BLKSIZE,
  dataHeader,
  decode,
  encode,
  errorPacket,
  negotiate,
  type Negotiated,
  type RequestPacket,
  type ServerLimits,
  type TftpOption,
} from '../../protocol/tftp/index.js';
import { checkRequestPath, lookupInRoot } from './paths.js';
import { BufferSource, FileSource, toNetascii, type BlockSource } from './source.js';

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

export interface TftpServerOptions {
  /** 0 picks an ephemeral port (tests). */
  port: number;
  address: string;
  /** Extra directory served read-only; '' or undefined for none. */
  root?: string;
  /** Asked first for every request (generated configs, loaders). */
  provider?: BootFileProvider;
  /** Concurrent transfers; requests over the cap get error 0 "busy". Default 64. */
  maxTransfers?: number;
  log: Logger;
  limits?: Partial<ServerLimits>;
  /** Retransmissions of one window before giving up. Default 5. */
  retries?: number;
  /** Retransmission timeout when the client sets none (RFC 2349). Default 1000 ms. */
  timeoutMs?: number;
  /** Called once per completed transfer. */
  onComplete?: (info: TransferInfo) => void;
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

/**
 * Peers are always IP literals taken from rinfo, so skip dgram's default
 * dns.lookup (one extra process.nextTick per datagram on the hot path).
 */
function literalLookup(address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

/** File names come from the network: escape control characters before they reach a log line. */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * At most `burst` lines per kind per `windowMs`; the rest are counted and
 * reported once when the window rolls over, so a flood of bad requests
 * cannot flood the log.
 */
class LogLimiter {
  private readonly seen = new Map<string, { start: number; count: number; dropped: number }>();
  constructor(
    private readonly burst = 20,
    private readonly windowMs = 10000,
  ) {}
  /** True when this line may be written; `flushed` gets the count suppressed in the last window. */
  allow(kind: string, now: number, flushed: (n: number) => void): boolean {
    let w = this.seen.get(kind);
    if (w === undefined || now - w.start >= this.windowMs) {
      if (w !== undefined && w.dropped > 0) flushed(w.dropped);
      w = { start: now, count: 0, dropped: 0 };
      this.seen.set(kind, w);
    }
    if (w.count < this.burst) {
      w.count++;
      return true;
    }
    w.dropped++;
    return false;
  }
}

/** Netascii is translated in memory, so only small files (configs) get it. */
const NETASCII_MAX = 1024 * 1024;

function optionsEqual(a: TftpOption[], b: TftpOption[]): boolean {
  return a.length === b.length && a.every((o, i) => o.name === b[i]?.name && o.value === b[i]?.value);
}

type Slot = { state: 'setup'; req: RequestPacket } | Transfer;

export class TftpServer {
  readonly stats: TftpStats = {
    requests: 0,
    started: 0,
    completed: 0,
    probes: 0,
    aborted: 0,
    failed: 0,
    refused: 0,
    notFound: 0,
    busy: 0,
    writeRefused: 0,
    wrongTid: 0,
    malformed: 0,
    retransmits: 0,
  };
  readonly log: Logger;
  readonly limits: ServerLimits;
  readonly retries: number;
  readonly timeoutMs: number;
  readonly maxTransfers: number;
  private readonly slots = new Map<string, Slot>();
  private socket: dgram.Socket | undefined;
  private realRoot: string | undefined;
  private boundPort = 0;
  private closing = false;
  private readonly limiter = new LogLimiter();

  constructor(readonly opts: TftpServerOptions) {
    this.log = opts.log;
    this.limits = {
      maxBlksize: Math.min(opts.limits?.maxBlksize ?? DEFAULT_LIMITS.maxBlksize, MAX_BLKSIZE),
      maxWindowsize: Math.max(1, opts.limits?.maxWindowsize ?? DEFAULT_LIMITS.maxWindowsize),
    };
    this.retries = opts.retries ?? 5;
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.maxTransfers = Math.max(1, opts.maxTransfers ?? 64);
  }

  get port(): number {
    return this.boundPort;
  }

  /** Transfers running or being set up. */
  get active(): number {
    return this.slots.size;
  }

  private get family(): 'udp4' | 'udp6' {
    return isIPv6(this.opts.address) ? 'udp6' : 'udp4';
  }

  async start(): Promise<void> {
    if (this.opts.root !== undefined && this.opts.root !== '') {
      try {
        this.realRoot = await realpath(this.opts.root);
      } catch (e) {
        throw new ForgeError('CONFIG_INVALID', `tftp_root ${this.opts.root} is not accessible: ${(e as Error).message}`, {
          field: 'tftp_root',
          cause: e,
        });
      }
    }
    const sock = dgram.createSocket({ type: this.family, reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        sock.close();
        const where = `${this.opts.address}:${this.opts.port}`;
        if (e.code === 'EACCES') {
          reject(
            new ForgeError(
              'CONFIG_INVALID',
              `cannot bind TFTP on udp ${where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); run as root or set --tftp-port to a port >= 1024`,
              { field: 'tftp_port', cause: e },
            ),
          );
        } else if (e.code === 'EADDRINUSE') {
          reject(new ForgeError('CONFIG_INVALID', `cannot bind TFTP on udp ${where}: address in use (another TFTP server running?)`, { field: 'tftp_port', cause: e }));
        } else {
          reject(new ForgeError('CONFIG_INVALID', `cannot bind TFTP on udp ${where}: ${e.message}`, { field: 'tftp_listen', cause: e }));
        }
      };
      sock.once('error', onError);
      sock.bind({ port: this.opts.port, address: this.opts.address, exclusive: true }, () => {
        sock.off('error', onError);
        resolve();
      });
    });
    sock.on('error', (e) => this.log.error('tftp socket error', { error: e }));
    sock.on('message', (msg, rinfo) => this.handlePacket(msg, rinfo));
    this.socket = sock;
    this.boundPort = sock.address().port;
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const slot of this.slots.values()) if (slot instanceof Transfer) slot.close();
    this.slots.clear();
    const sock = this.socket;
    this.socket = undefined;
    if (sock !== undefined) await new Promise<void>((r) => sock.close(() => r()));
  }

  /** A warn line for things a remote party can trigger at will (rate-limited per kind). */
  warnLimited(kind: string, msg: string, fields: Record<string, unknown>): void {
    if (this.limiter.allow(kind, Date.now(), (n) => this.log.warn('suppressed similar log lines', { kind, count: n }))) this.log.warn(msg, fields);
  }

  /** Sends from the listening socket (answers to requests). */
  private reply(peer: Peer, buf: Buffer): void {
    this.socket?.send(buf, peer.port, peer.address);
  }

  /**
   * The main socket's packet handler. Never throws; requests are handled
   * asynchronously and their failures are caught and logged.
   */
  handlePacket(msg: Buffer, peer: Peer): void {
    const r = decode(msg);
    if (!r.ok) {
      this.stats.malformed++;
      const err = new ForgeError('TFTP_DECODE', r.reason);
      this.log.debug('dropped malformed packet', { client: `${peer.address}:${peer.port}`, code: err.code, reason: err.message });
      return;
    }
    const p = r.packet;
    if (p.op === 'WRQ') {
      // Read-only server (RFC 1350 error 2).
      this.stats.writeRefused++;
      this.log.info('refused write request', { client: `${peer.address}:${peer.port}`, file: printable(p.filename) });
      this.reply(peer, errorPacket(ErrorCode.ACCESS_VIOLATION, 'read-only server: writes are not allowed'));
      return;
    }
    if (p.op === 'ERROR') {
      // Some firmware sends its post-probe ERROR to port 69 instead of the
      // transfer's port: end that client's unacknowledged OACK quietly.
      const t = this.slots.get(`${peer.address}|${peer.port}`);
      if (t instanceof Transfer && t.state === 'oack') {
        t.endQuietly('client sent ERROR to the listening port after the OACK');
        return;
      }
    }
    if (p.op !== 'RRQ') {
      // DATA/ACK/ERROR/OACK belong on a transfer's port, not here.
      this.stats.malformed++;
      this.log.debug('dropped non-request packet on the listening port', { client: `${peer.address}:${peer.port}`, op: p.op });
      return;
    }
    this.stats.requests++;
    this.onRequest(p, peer).catch((e: unknown) => {
      this.log.error('request failed', { client: `${peer.address}:${peer.port}`, file: printable(p.filename), error: e instanceof Error ? e.message : String(e) });
    });
  }

  private async onRequest(req: RequestPacket, peer: Peer): Promise<void> {
    if (this.closing) return;
    const key = `${peer.address}|${peer.port}`;
    const client = `${peer.address}:${peer.port}`;
    const existing = this.slots.get(key);
    if (existing !== undefined) {
      const same = existing.req.filename === req.filename && optionsEqual(existing.req.options, req.options);
      if (same || existing.state === 'data') {
        // A retransmitted RRQ: our answer is in flight or will be retransmitted.
        this.log.debug('ignored duplicate request', { client, file: printable(req.filename) });
        return;
      }
      if (existing.state === 'setup') return;
      // A new, different request from the same port while we wait for ACK 0:
      // the client moved on (e.g. a PXE ROM re-requesting after its tsize probe).
      existing.endQuietly('superseded by a new request');
    }
    if (this.slots.size >= this.maxTransfers) {
      this.stats.busy++;
      this.warnLimited('busy', 'refused request: too many transfers', { client, file: printable(req.filename), max: this.maxTransfers });
      this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'server busy, try again later'));
      return;
    }
    const slot: Slot = { state: 'setup', req };
    this.slots.set(key, slot);
    let started = false;
    try {
      started = await this.setup(req, peer, key, client);
    } finally {
      if (!started && this.slots.get(key) === slot) this.slots.delete(key);
    }
  }

  /** Resolves the file and starts the transfer; false when it answered with an error. */
  private async setup(req: RequestPacket, peer: Peer, key: string, client: string): Promise<boolean> {
    if (req.mode !== 'octet' && req.mode !== 'netascii') {
      this.log.info('refused request: unsupported mode', { client, file: printable(req.filename), mode: printable(req.mode) });
      this.reply(peer, errorPacket(ErrorCode.ILLEGAL_OPERATION, `unsupported transfer mode ${req.mode}`));
      return false;
    }
    const path = checkRequestPath(req.filename);
    if (!path.ok) {
      this.stats.refused++;
      this.warnLimited('refused', 'refused request: access violation', { client, file: printable(req.filename), reason: path.reason });
      this.reply(peer, errorPacket(ErrorCode.ACCESS_VIOLATION, 'access violation'));
      return false;
    }
    const rel = path.rel;
    let file: BootFile | undefined;
    if (this.opts.provider !== undefined) {
      try {
        file = await this.opts.provider.resolve(rel, { address: peer.address, via: 'tftp' });
      } catch (e) {
        this.log.error('boot file provider failed', { client, file: printable(rel), error: e instanceof Error ? e.message : String(e) });
        this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'internal error'));
        return false;
      }
    }
    if (file === undefined && this.realRoot !== undefined) {
      const found = await lookupInRoot(this.realRoot, rel);
      if (found.kind === 'refused') {
        this.stats.refused++;
        this.warnLimited('refused', 'refused request: access violation', { client, file: printable(rel), reason: found.reason });
        this.reply(peer, errorPacket(ErrorCode.ACCESS_VIOLATION, 'access violation'));
        return false;
      }
      if (found.kind === 'file') file = found;
    }
    if (file === undefined) {
      this.stats.notFound++;
      this.log.info('file not found', { client, file: printable(rel) });
      this.reply(peer, errorPacket(ErrorCode.FILE_NOT_FOUND, 'file not found'));
      return false;
    }
    if (this.closing) return false;

    let source: BlockSource;
    let neg: Negotiated;
    try {
      if (req.mode === 'netascii') {
        const raw = file.kind === 'buffer' ? file.data : file.size <= NETASCII_MAX ? await readFile(file.path) : undefined;
        if (raw === undefined || raw.length > NETASCII_MAX) {
          this.log.info('refused request: netascii only for small files', { client, file: printable(rel) });
          this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'netascii mode is limited to files up to 1 MiB; use octet'));
          return false;
        }
        const data = toNetascii(raw);
        neg = negotiate(req.options, data.length, this.limits);
        source = new BufferSource(data, neg.blksize);
      } else if (file.kind === 'buffer') {
        neg = negotiate(req.options, file.data.length, this.limits);
        source = new BufferSource(file.data, neg.blksize);
      } else {
        neg = negotiate(req.options, file.size, this.limits);
        source = await FileSource.open(file.path, file.size, neg.blksize);
      }
    } catch (e) {
      this.log.error('cannot open file', { client, file: printable(rel), error: e instanceof Error ? e.message : String(e) });
      this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'cannot read file'));
      return false;
    }

    let sock: dgram.Socket;
    try {
      sock = await this.openTransferSocket();
    } catch (e) {
      source.close();
      this.log.error('cannot open a transfer socket', { client, error: e instanceof Error ? e.message : String(e) });
      this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'internal error'));
      return false;
    }
    if (this.closing) {
      source.close();
      sock.close();
      return false;
    }
    const info = { file: printable(rel), client, kind: file.kind, system: file.system };
    const t = new Transfer(this, sock, peer, key, req, source, neg, info);
    this.slots.set(key, t);
    this.stats.started++;
    this.log.debug('transfer started', { client, file: printable(rel), size: source.size, blksize: neg.blksize, windowsize: neg.windowsize });
    t.begin();
    return true;
  }

  private openTransferSocket(): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const sock = dgram.createSocket({ type: this.family, lookup: literalLookup as unknown as dgram.SocketOptions['lookup'] });
      const onError = (e: Error): void => {
        sock.close();
        reject(e);
      };
      sock.once('error', onError);
      // An ephemeral port on the listening address: the server's new TID.
      sock.bind({ port: 0, address: this.opts.address, exclusive: true }, () => {
        sock.off('error', onError);
        resolve(sock);
      });
    });
  }

  /** Called by a transfer when it ends. */
  release(t: Transfer): void {
    if (this.slots.get(t.key) === t) this.slots.delete(t.key);
  }
}

/**
 * One read transfer. Blocks are numbered absolutely from 1 internally; the
 * wire carries the low 16 bits, so block 65536 goes out as 0 (rollover as
 * tftpd-hpa, atftp and curl expect).
 */
export class Transfer {
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
  private timer: NodeJS.Timeout;
  /** Current retransmission wait: the base, doubled per consecutive timeout. */
  private wait: number;
  private readonly started = Date.now();
  private readonly oack: Buffer | undefined;

  constructor(
    private readonly server: TftpServer,
    private readonly sock: dgram.Socket,
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
    this.timer = setTimeout(() => this.onTimeout(), this.wait);
    sock.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    sock.on('error', (e) => {
      this.server.log.warn('transfer socket error', { client: this.info.client, file: this.info.file, error: e.message });
      this.fail('socket error');
    });
  }

  begin(): void {
    if (this.oack !== undefined) {
      // RFC 2347: the OACK is acknowledged with ACK 0 before DATA 1.
      this.state = 'oack';
      this.sock.send(this.oack, this.peer.port, this.peer.address);
      this.rearm(this.timeoutMs);
    } else {
      this.state = 'data';
      this.sendWindow();
    }
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (rinfo.port !== this.peer.port || rinfo.address !== this.peer.address) {
      // RFC 1350 section 4: a packet from a foreign TID gets error 5 and
      // does not disturb the transfer.
      this.server.stats.wrongTid++;
      this.server.log.debug('packet from unknown transfer ID', { from: `${rinfo.address}:${rinfo.port}`, transfer: this.info.client });
      this.sock.send(errorPacket(ErrorCode.UNKNOWN_TID, 'unknown transfer ID'), rinfo.port, rinfo.address);
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
          this.sock.send(errorPacket(ErrorCode.NOT_DEFINED, 'read error'), this.peer.port, this.peer.address);
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

  /** (Re)starts the retransmission timer; refresh() is cheap when the wait is unchanged. */
  private rearm(ms: number): void {
    if (ms === this.wait) {
      this.timer.refresh();
      return;
    }
    clearTimeout(this.timer);
    this.wait = ms;
    this.timer = setTimeout(() => this.onTimeout(), ms);
  }

  private sendBlock(n: number): void {
    const data = this.src.block(n);
    if (data === undefined) return; // not loaded (cannot happen after prefetch); the timer resends
    this.sock.send([dataHeader(n), data], this.peer.port, this.peer.address);
  }

  private onTimeout(): void {
    if (this.state === 'done') return;
    if (this.waiting) {
      this.rearm(this.wait);
      return;
    }
    this.tries++;
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
      this.sock.send(this.oack, this.peer.port, this.peer.address);
    } else {
      // Resend the whole unacknowledged window (RFC 7440 section 4).
      for (let n = this.base + 1; n <= this.sentUpTo; n++) this.sendBlock(n);
    }
    // Exponential backoff (RFC 1123 section 4.2.3.2: adaptive timeouts), capped
    // at 8x the base. It also leaves a quiet gap in which a client that
    // re-ACKs only on its own timer (atftp, after one extra ACK) gets to speak.
    this.rearm(Math.min(this.wait * 2, this.timeoutMs * 8));
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
    clearTimeout(this.timer);
    this.src.close();
    try {
      this.sock.close();
    } catch {
      // already closed
    }
    this.server.release(this);
  }
}
