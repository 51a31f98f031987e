/**
 * The TFTP engine: read-only, one ephemeral port per transfer (RFC 1350
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
import { ForgeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import {
  DEFAULT_LIMITS,
  ErrorCode,
  MAX_BLKSIZE,
  decode,
  encode,
  errorPacket,
  negotiate,
  type Negotiated,
  type RequestPacket,
  type ServerLimits,
  type TftpOption,
} from '../../protocol/tftp/index.js';
import { hotFiles, type HotFiles } from '../hotfiles.js';
import { literalLookup, peerLookup } from '../literal-lookup.js';
import { RetransmitClock } from './clock.js';
import { checkRequestPath, lookupInRoot } from './paths.js';
import { packetCache, type PacketCache } from './packets.js';
import { BufferSource, FileSource, PacketSource, toNetascii, type BlockSource } from './source.js';
import { NativeTransfer, nativePump, tftpPathCounts } from './native.js';
import { printable, Transfer, type ActiveTransfer, type Peer, type TftpStats, type TransferInfo, type TransferSockets } from './transfer.js';

export { Transfer, type Peer, type TftpStats, type TransferInfo };


/** A file the provider hands the engine: bytes made at request time, or a file on disk. */
export type TftpFile =
  | { kind: 'buffer'; data: Buffer; /** for event recording */ system?: string }
  | { kind: 'file'; path: string; size: number; system?: string };

/**
 * Asked before the root for every request (boot/files.ts implements it for
 * generated configs and loaders): a file, or undefined to try the root.
 * Must not throw for unknown paths.
 */
export interface TftpFileProvider {
  resolve(path: string, client: { address: string; via: 'tftp' }): Promise<TftpFile | undefined>;
}

export interface TftpServerOptions {
  /** 0 picks an ephemeral port (tests). */
  port: number;
  address: string;
  /** Extra directory served read-only; '' or undefined for none. */
  root?: string;
  /** Asked first for every request (generated configs, loaders). */
  provider?: TftpFileProvider;
  /** Concurrent transfers; requests over the cap get error 0 "busy". Default 64. */
  maxTransfers?: number;
  log: Logger;
  limits?: Partial<ServerLimits>;
  /** Retransmissions of one window before giving up. Default 5. */
  retries?: number;
  /** Retransmission timeout when the client sets none (RFC 2349). Default 1000 ms. */
  timeoutMs?: number;
  /**
   * A transfer that makes no progress (no new ACK) for this long ends,
   * whatever its timeout and backoff say, so an unanswered RRQ holds a slot
   * for seconds, not hours. Default 15000 ms.
   */
  stallMs?: number;
  /** Transfers one client address may hold at once (spoofed floods pin at most this many). Default 8. */
  maxPerClient?: number;
  /** Called once per completed transfer. */
  onComplete?: (info: TransferInfo) => void;
  /**
   * Where files on disk are served from memory once read (the process's one cache, shared with
   * HTTP, by default). A file's first request streams from disk while the cache loads it.
   */
  hotFiles?: HotFiles;
  /** Datagram images of cached files (the process's one, by default). */
  packetCache?: PacketCache;
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

type Slot = { state: 'setup'; req: RequestPacket } | ActiveTransfer;

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
  readonly stallMs: number;
  readonly maxPerClient: number;
  private readonly slots = new Map<string, Slot>();
  /** Slots held per client address (the key of `slots` is address|port). */
  private readonly perClient = new Map<string, number>();
  private socket: dgram.Socket | undefined;
  private realRoot: string | undefined;
  private boundPort = 0;
  private closing = false;
  private readonly limiter = new LogLimiter();
  readonly clock: RetransmitClock;
  private readonly hot: HotFiles;
  private readonly packets: PacketCache;

  constructor(readonly opts: TftpServerOptions) {
    this.log = opts.log;
    this.limits = {
      maxBlksize: Math.min(opts.limits?.maxBlksize ?? DEFAULT_LIMITS.maxBlksize, MAX_BLKSIZE),
      maxWindowsize: Math.max(1, opts.limits?.maxWindowsize ?? DEFAULT_LIMITS.maxWindowsize),
      maxTimeout: Math.max(1, Math.min(255, opts.limits?.maxTimeout ?? DEFAULT_LIMITS.maxTimeout)),
    };
    this.stallMs = Math.max(1000, opts.stallMs ?? 15_000);
    this.maxPerClient = Math.max(1, opts.maxPerClient ?? 8);
    this.retries = opts.retries ?? 5;
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.maxTransfers = Math.max(1, opts.maxTransfers ?? 64);
    this.clock = new RetransmitClock(this.timeoutMs);
    this.hot = opts.hotFiles ?? hotFiles;
    this.packets = opts.packetCache ?? packetCache;
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
    const sock = dgram.createSocket({ type: this.family, reuseAddr: false, lookup: literalLookup });
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
    for (const slot of this.slots.values()) if (slot.state !== 'setup') slot.close();
    this.slots.clear();
    this.perClient.clear();
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
      if (t !== undefined && t.state === 'oack') {
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
    let existing = this.slots.get(key);
    // The pump ended this port's transfer (the client's ERROR or last ACK, then at once a new
    // RRQ from the same port) and its report is on the way: take the report first, so the
    // new request is not mistaken for a duplicate of the ended one.
    const ending = existing !== undefined && existing.state !== 'setup' ? existing.pendingEnd() : undefined;
    if (ending !== undefined) {
      await ending;
      existing = this.slots.get(key);
    }
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
    if ((this.perClient.get(peer.address) ?? 0) >= this.maxPerClient) {
      this.stats.busy++;
      this.warnLimited('busy-client', 'refused request: too many transfers from one client', { client, file: printable(req.filename), max: this.maxPerClient });
      this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'too many transfers from this address, try again later'));
      return;
    }
    const slot: Slot = { state: 'setup', req };
    this.addSlot(key, peer.address, slot);
    let started = false;
    try {
      started = await this.setup(req, peer, key, client);
    } finally {
      if (!started && this.slots.get(key) === slot) this.removeSlot(key);
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
    let file: TftpFile | undefined;
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

    let source: BlockSource | undefined;
    let neg: Negotiated;
    /** The file's bytes when they are in memory: the native pump can send them. */
    let memory: Buffer | undefined;
    const pump = nativePump();
    try {
      if (req.mode === 'netascii') {
        const raw = file.kind === 'buffer' ? file.data : file.size <= NETASCII_MAX ? await readFile(file.path) : undefined;
        if (raw === undefined || raw.length > NETASCII_MAX) {
          this.log.info('refused request: netascii only for small files', { client, file: printable(rel) });
          this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'netascii mode is limited to files up to 1 MiB; use octet'));
          return false;
        }
        memory = toNetascii(raw);
        neg = negotiate(req.options, memory.length, this.limits);
      } else if (file.kind === 'buffer') {
        memory = file.data;
        neg = negotiate(req.options, file.data.length, this.limits);
      } else {
        neg = negotiate(req.options, file.size, this.limits);
        // Kernels, initrds and loaders are asked for by every booting machine: from memory
        // (no thread-pool read, no promise on the window path; a request that arrives while
        // the file loads waits for that one read), from disk only when it cannot be cached.
        memory = await this.hot.fetch(file.path, file.size);
        if (memory === undefined) source = await FileSource.open(file.path, file.size, neg.blksize);
      }
      if (source === undefined && memory !== undefined && pump === null) {
        // A cached file goes out as slices of its datagram image (packets.ts), shared by all
        // transfers at this blksize; past the image bound, as header + payload slice.
        const image = file.kind === 'file' && req.mode === 'octet' ? this.packets.get(file.path, memory, neg.blksize) : undefined;
        source = image !== undefined ? new PacketSource(image) : new BufferSource(memory, neg.blksize);
      }
    } catch (e) {
      this.log.error('cannot open file', { client, file: printable(rel), error: e instanceof Error ? e.message : String(e) });
      this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'cannot read file'));
      return false;
    }
    const info = { file: printable(rel), client, kind: file.kind, system: file.system };
    const size = source?.size ?? memory?.length ?? 0;

    let t: ActiveTransfer;
    try {
      if (source === undefined && memory !== undefined && pump !== null) {
        const data = memory;
        const oack = neg.oack.length > 0 ? encode({ op: 'OACK', options: neg.oack }) : undefined;
        const started = await this.onFreshPort(peer, false, (socks, port) => {
          if (this.closing) return undefined;
          return new NativeTransfer(this, socks.strays, peer, key, req, data, neg, oack, info, { address: this.opts.address, port }, pump);
        });
        if (started === undefined) return false;
        tftpPathCounts.native++;
        t = started;
      } else {
        const src = source as BlockSource;
        const started = await this.onFreshPort(peer, true, (socks) => {
          if (this.closing) return undefined;
          return new Transfer(this, socks, peer, key, req, src, neg, info);
        });
        if (started === undefined) {
          src.close();
          return false;
        }
        tftpPathCounts.js++;
        t = started;
      }
    } catch (e) {
      source?.close();
      this.log.error('cannot open a transfer socket', { client, error: e instanceof Error ? e.message : String(e) });
      this.reply(peer, errorPacket(ErrorCode.NOT_DEFINED, 'internal error'));
      return false;
    }
    this.slots.set(key, t);
    this.stats.started++;
    this.log.debug('transfer started', { client, file: printable(rel), size, blksize: neg.blksize, windowsize: neg.windowsize, native: t instanceof NativeTransfer });
    if (t instanceof Transfer) t.begin();
    return true;
  }

  /**
   * Runs `start` on the sockets of a fresh port (openTransferSockets), drawing a new port when
   * the port is taken before `start` binds on it (the native pump binds its own connected
   * socket beside the strays socket). Sockets `start` did not take (it returned undefined or
   * threw) are closed.
   */
  private async onFreshPort<T>(peer: Peer, connected: boolean, start: (socks: TransferSockets, port: number) => T | undefined): Promise<T | undefined> {
    let last: unknown;
    for (let attempt = 0; attempt < 8; attempt++) {
      const socks = await this.openTransferSockets(peer, connected);
      const port = socks.strays.address().port;
      try {
        const t = start(socks, port);
        if (t === undefined) closeAll(socks);
        return t;
      } catch (e) {
        closeAll(socks);
        last = e;
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      }
    }
    throw last;
  }

  /**
   * The transfer's new TID (RFC 1350 section 4): a fresh port P carried by two sockets.
   *
   * - `peer` is connected to the client, so a DATA send names no address (no lookup, no
   *   sockaddr parse, the kernel's cached route: 8-17 % less CPU per transfer, docs/bench/tftp.md).
   * - `strays` is unconnected on the same port. Linux delivers a datagram to the best-scoring
   *   socket on the port (udp4_lib_lookup2: a connected socket scores higher for its peer), so
   *   the client's ACKs reach `peer` and every other source reaches `strays`, which answers it
   *   with ERROR 5 "unknown transfer ID" (section 4) instead of the ICMP port unreachable a
   *   connected socket alone gets from the kernel.
   *
   * Sharing a port needs SO_REUSEADDR on both. An ephemeral bind with SO_REUSEADDR may land
   * on a port another SO_REUSEADDR socket holds, so P is first taken by an exclusive socket
   * (no other socket on it), released, and bound again at once by the pair; a port taken by
   * someone else in between fails the bind (EADDRINUSE) and a new P is drawn.
   */
  private async openTransferSockets(peer: Peer, connect: boolean): Promise<TransferSockets> {
    let last: unknown;
    for (let attempt = 0; attempt < 8; attempt++) {
      const probe = await this.bindUdp(0, false);
      const port = probe.address().port;
      probe.close();
      let sockets: dgram.Socket[] = [];
      try {
        if (!connect) {
          // The native pump binds and connects the transfer's socket itself (native.ts).
          const strays = await this.bindUdp(port, true);
          return { peer: undefined, strays };
        }
        const connected = await this.bindUdp(port, true, peer.address);
        sockets.push(connected);
        const strays = await this.bindUdp(port, true);
        sockets.push(strays);
        await new Promise<void>((resolve, reject) => {
          connected.once('error', reject);
          connected.connect(peer.port, peer.address, () => {
            connected.off('error', reject);
            resolve();
          });
        });
        const pair = { peer: connected, strays };
        sockets = [];
        return pair;
      } catch (e) {
        last = e;
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      } finally {
        for (const s of sockets) s.close();
      }
    }
    throw last;
  }

  /** A UDP socket bound to the listening address (an ephemeral port for 0). */
  private bindUdp(port: number, reuseAddr: boolean, peerAddress?: string): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      // A socket that only sends to the one peer answers its lookup without parsing it again.
      const sock = dgram.createSocket({ type: this.family, reuseAddr, lookup: peerAddress !== undefined ? peerLookup(peerAddress) : literalLookup });
      const onError = (e: Error): void => {
        sock.close();
        reject(e);
      };
      sock.once('error', onError);
      sock.bind({ port, address: this.opts.address, exclusive: true }, () => {
        sock.off('error', onError);
        resolve(sock);
      });
    });
  }

  /** Called by a transfer when it ends. */
  release(t: ActiveTransfer): void {
    if (this.slots.get(t.key) === t) this.removeSlot(t.key);
  }

  private addSlot(key: string, address: string, slot: Slot): void {
    this.slots.set(key, slot);
    this.perClient.set(address, (this.perClient.get(address) ?? 0) + 1);
  }

  private removeSlot(key: string): void {
    if (!this.slots.delete(key)) return;
    const address = key.slice(0, key.lastIndexOf('|'));
    const n = (this.perClient.get(address) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(address);
    else this.perClient.set(address, n);
  }
}

function closeAll(socks: TransferSockets): void {
  for (const s of [socks.peer, socks.strays]) {
    try {
      s?.close();
    } catch {
      // already closed
    }
  }
}
