/**
 * A read transfer whose DATA/ACK loop runs in the native pump (native/tftp.c), for files whose
 * bytes are in memory (the hot-file cache, generated configs, netascii copies).
 *
 * Issue 21: a lock-step transfer is one ACK and one DATA per block, and on Node's socket API
 * each is a libuv wakeup, a JavaScript callback and a send through libuv's queue; the pump
 * does a recv and a sendmmsg on its own thread (docs/bench/tftp.md has the figures). The
 * engine (server.ts) still accepts the request, checks the path, negotiates the options and
 * keeps the slot; this object holds the unconnected socket of the transfer's port, which
 * answers packets from other ports with ERROR 5 (RFC 1350 section 4), and turns the pump's
 * one end report into the same TransferEnd the JavaScript transfer makes (transfer.ts
 * reportEnd: the same statistics, log lines and completion hook on both paths).
 *
 * FORGE_NATIVE=0 (the whole addon) or FORGE_NATIVE_TFTP=0 (this part only) keeps every
 * transfer on the JavaScript path; files streamed from disk always take it.
 */
import type dgram from 'node:dgram';
import { availableParallelism, constants } from 'node:os';
import type { Negotiated, RequestPacket } from '../../protocol/tftp/index.js';
import { native, type NativeBinding } from '../../native/index.js';
import { answerStray, reportEnd, type ActiveTransfer, type Peer, type TransferEnd, type TransferHost } from './transfer.js';

/** The pump's end reasons (native/tftp.c enum end_reason). */
const REASON = ['done', 'probe', 'aborted', 'oack-timeout', 'timeout', 'stalled', 'socket', 'cancelled'] as const;
type Reason = (typeof REASON)[number];

interface EndReport {
  reason: Reason;
  acked: number;
  of: number;
  retransmits: number;
  ignored: number;
  ms: number;
  code: number;
  message: string;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

let enabled = process.env['FORGE_NATIVE_TFTP'] !== '0';
/**
 * Pump threads: one per core up to 4. A transfer stays on one thread; with one thread, 100
 * clients at once left it runnable-but-waiting for half the run (docs/bench/tftp.md) while
 * atftpd's thread per transfer used both cores.
 */
const PUMPS = Math.max(1, Math.min(4, availableParallelism()));
let setUp = false;
const live = new Map<number, NativeTransfer>();

/** Transfers started on each path since start (tests check which path served; the bench reports it). */
export const tftpPathCounts = { native: 0, js: 0 };

/** Turns the pump on or off for transfers that start from now (tests run both paths in one process). */
export function useNativeTftp(on: boolean): void {
  enabled = on;
}

/** The binding when transfers of in-memory files go to the pump. */
export function nativePump(): NativeBinding | null {
  return enabled && native !== null ? native : null;
}

/** Transfers the pump holds (tests: nothing is left behind after close). */
export function nativeTftpActive(): number {
  return native === null || !setUp ? 0 : native.tftpActive();
}

function ensureSetUp(b: NativeBinding): void {
  if (setUp) return;
  b.tftpSetup((id, reason, acked, of, retransmits, ignored, ms, code, message) => {
    const t = live.get(id);
    live.delete(id);
    // errno for 'socket' travels in `code` (native/tftp.c end()).
    t?.onEnd({ reason: REASON[reason] ?? 'socket', acked, of, retransmits, ignored, ms, code, message });
  }, PUMPS);
  setUp = true;
}

export class NativeTransfer implements ActiveTransfer {
  private ended = false;
  private readonly id: number;
  private whenReported: (() => void) | undefined;
  private reported: Promise<void> | undefined;

  /**
   * Starts the pump on the transfer's port (bound beside `strays`, already on it). Throws the
   * pump's error (e.g. EADDRINUSE) when it cannot bind; the caller then closes `strays`.
   */
  constructor(
    private readonly host: TransferHost,
    private readonly strays: dgram.Socket,
    peer: Peer,
    readonly key: string,
    readonly req: RequestPacket,
    private readonly data: Buffer,
    private readonly neg: Negotiated,
    oack: Buffer | undefined,
    private readonly info: { file: string; client: string; kind: 'buffer' | 'file'; system: string | undefined },
    local: { address: string; port: number },
    b: NativeBinding,
  ) {
    ensureSetUp(b);
    const timeoutMs = neg.timeout !== undefined ? neg.timeout * 1000 : host.timeoutMs;
    this.id = b.tftpStart(local.address, local.port, peer.address, peer.port, data, neg.blksize, neg.windowsize, timeoutMs, host.retries, host.stallMs, oack ?? null);
    live.set(this.id, this);
    strays.on('message', (_msg, rinfo) => {
      // The connected socket in the pump takes the client's own datagrams; a duplicate that
      // raced the connect lands here and is dropped like any duplicate.
      if (rinfo.port === peer.port && rinfo.address === peer.address) return;
      answerStray(host, strays, rinfo, info.client);
    });
    strays.on('error', (e) => host.log.debug('transfer strays socket error', { client: info.client, error: e.message }));
  }

  get state(): 'oack' | 'data' | 'done' {
    if (this.ended || native === null) return 'done';
    const s = native.tftpState(this.id);
    return s === 0 ? 'oack' : s === 1 ? 'data' : 'done';
  }

  pendingEnd(): Promise<void> | undefined {
    if (this.ended || native === null || native.tftpState(this.id) !== 2) return undefined;
    this.reported ??= new Promise<void>((resolve) => {
      this.whenReported = resolve;
    });
    return this.reported;
  }

  endQuietly(reason: string): void {
    if (this.ended) return;
    this.finish({ kind: 'quiet', reason }, undefined);
  }

  close(): void {
    if (this.ended) return;
    this.finish(undefined, undefined);
  }

  /** The pump's report: the end itself, or the echo of a cancel this side made. */
  onEnd(r: EndReport): void {
    this.host.stats.retransmits += r.retransmits;
    this.host.stats.malformed += r.ignored;
    if (this.ended || r.reason === 'cancelled') {
      this.ended = true;
      return;
    }
    const how: TransferEnd =
      r.reason === 'done'
        ? { kind: 'done' }
        : r.reason === 'probe'
          ? { kind: 'probe', code: r.code, message: r.message }
          : r.reason === 'aborted'
            ? { kind: 'aborted', code: r.code, message: r.message }
            : r.reason === 'oack-timeout'
              ? { kind: 'oack-timeout' }
              : r.reason === 'timeout'
                ? { kind: 'timeout', tries: this.host.retries }
                : r.reason === 'stalled'
                  ? { kind: 'stalled' }
                  : { kind: 'socket', error: ERRNO_NAMES.get(r.code) ?? `errno ${r.code}` };
    this.finish(how, r);
  }

  private finish(how: TransferEnd | undefined, r: EndReport | undefined): void {
    this.ended = true;
    this.whenReported?.();
    if (r === undefined) native?.tftpCancel(this.id);
    try {
      this.strays.close();
    } catch {
      // already closed
    }
    this.host.release(this);
    if (how === undefined) return;
    const at = { acked: r?.acked ?? 0, of: r?.of ?? Math.floor(this.data.length / this.neg.blksize) + 1, ms: r?.ms ?? 0, bytes: this.data.length, blksize: this.neg.blksize, windowsize: this.neg.windowsize };
    reportEnd(this.host, this.info, at, how);
  }
}
