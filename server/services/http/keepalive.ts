/**
 * When an idle HTTP connection may be closed (issue 21, the 1,000-PXE-client bench's "socket
 * hang up").
 *
 * Node starts a connection's keep-alive countdown when the response is handed to the kernel
 * ('finish'). A kernel or initrd of 8-40 MiB mostly fits in the socket buffers (loopback: up to
 * 4 MiB in the sender's send queue alone), so with hundreds of clients sharing a link or a CPU
 * the client may still be reading the response a minute after forge "finished" it. At 65 s
 * forge closed such a connection; the client then read the rest of its kernel, sent its initrd
 * request on the same connection, and got the FIN instead of an answer: "socket hang up"
 * (7 and 20 of 1,000 clients in the bench). The `Keep-Alive: timeout=65` header forge sends
 * says the connection stays open for 65 s of idleness, and a client counts that from when it
 * has the response (Node's agent does), so the close broke forge's own promise.
 *
 * Here the countdown starts when the client's TCP has acknowledged the whole response: when
 * Node's keep-alive (or idle) timer fires on a connection between requests, forge looks at the
 * kernel's send queue of that connection (send-queue.ts). Empty: closed, as before. Still
 * holding bytes: watched, and given its full keep-alive once they are acknowledged. Bounded, as
 * everything an anonymous client can hold: a connection whose client acknowledges nothing for
 * `idleSocketMs` is closed (the same "no traffic for 2 minutes" rule as mid-response), and none
 * is watched longer than `requestMs` in all. Where the kernel table cannot be read (not Linux),
 * Node's behaviour is kept.
 *
 * RFC 9112 section 9.3 (persistent connections) and 9.6 (tear-down): a server may close an
 * idle connection at any time, but a client whose request races the close loses it; closing
 * only connections that really are idle keeps that race to the one the timeout implies.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../log.js';
import { queueKey, readSendQueues, type QueueKey } from './send-queue.js';

export interface KeepAliveBounds {
  keepAliveMs: number;
  idleSocketMs: number;
  requestMs: number;
}

interface Watched {
  key: QueueKey;
  /** Unacknowledged bytes at the last look (Infinity before the first). */
  queued: number;
  /** When the client last acknowledged bytes (or the watch began). */
  progressAt: number;
  since: number;
}

/** How often watched connections are looked at (one read of the kernel table for all of them). */
export const WATCH_TICK_MS = 1000;
/** Node waits this much past keepAliveTimeout before its timer fires (HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER). */
const NODE_KEEP_ALIVE_BUFFER_MS = 1000;

export type QueueReader = typeof readSendQueues;

/** Counters for tests and metrics: connections kept past their timer because the client had not acknowledged the response, closed without progress, closed idle. */
export interface KeepAliveStats {
  extended: number;
  closedStalled: number;
  closedIdle: number;
}

/**
 * Takes over the server's 'timeout' event (which Node emits both for the idle timer and the
 * keep-alive timer): busy or never-answered sockets are destroyed as before; idle ones after a
 * response are closed only once their client has acknowledged the response.
 */
export function keepAliveUntilReceived(http: Server, bounds: KeepAliveBounds, log?: Logger, read: QueueReader = readSendQueues): KeepAliveStats {
  const stats: KeepAliveStats = { extended: 0, closedStalled: 0, closedIdle: 0 };
  const busy = new WeakMap<Socket, number>();
  const answered = new WeakSet<Socket>();
  /** Had its full keep-alive after its client acknowledged the response: the next timeout closes it. */
  const drained = new WeakSet<Socket>();
  const watched = new Map<Socket, Watched>();
  const listening = new WeakSet<Socket>();
  let timer: NodeJS.Timeout | undefined;

  const schedule = (ms: number): void => {
    if (timer === undefined && watched.size > 0) {
      timer = setTimeout(tick, ms);
      timer.unref();
    }
  };
  const close = (s: Socket): void => {
    watched.delete(s);
    s.destroy();
  };
  function tick(): void {
    timer = undefined;
    const tables = read(new Set([...watched.values()].map((w) => w.key.table)));
    const now = performance.now();
    for (const [s, w] of watched) {
      if (s.destroyed) {
        watched.delete(s);
        continue;
      }
      const q = tables.get(w.key.table)?.get(w.key.key);
      if (q === undefined) {
        // Not in the table (or no table): nothing known to wait for.
        stats.closedIdle++;
        close(s);
      } else if (q === 0) {
        watched.delete(s);
        if (w.queued === Infinity) {
          // The client had everything before the timer fired: really idle.
          stats.closedIdle++;
          s.destroy();
        } else {
          // Acknowledged just now: the keep-alive the response announced starts here.
          drained.add(s);
          s.setTimeout(bounds.keepAliveMs + NODE_KEEP_ALIVE_BUFFER_MS);
        }
      } else {
        if (w.queued === Infinity) stats.extended++;
        else if (q < w.queued) w.progressAt = now;
        if (q < w.queued) w.queued = q;
        if (now - w.progressAt >= bounds.idleSocketMs || now - w.since >= bounds.requestMs) {
          stats.closedStalled++;
          log?.info('closed a connection whose client stopped receiving its response', { client: s.remoteAddress, unacknowledged: q, sent: s.bytesWritten });
          close(s);
        }
      }
    }
    schedule(WATCH_TICK_MS);
  }

  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const s = req.socket;
    busy.set(s, (busy.get(s) ?? 0) + 1);
    watched.delete(s);
    drained.delete(s);
    res.once('close', () => {
      busy.set(s, Math.max(0, (busy.get(s) ?? 1) - 1));
      answered.add(s);
    });
  });
  http.on('timeout', (s: Socket) => {
    if (watched.has(s)) return;
    if ((busy.get(s) ?? 0) > 0) {
      // Mid-response: nothing of the response was taken by the client for idleSocketMs.
      stats.closedStalled++;
      log?.info('closed a connection: its client took nothing of the response for the idle bound', { client: s.remoteAddress, sent: s.bytesWritten, seconds: bounds.idleSocketMs / 1000 });
      s.destroy();
      return;
    }
    if (!answered.has(s) || drained.has(s)) {
      s.destroy();
      return;
    }
    const key =
      s.localAddress !== undefined && s.localPort !== undefined && s.remoteAddress !== undefined && s.remotePort !== undefined
        ? queueKey({ address: s.localAddress, port: s.localPort }, { address: s.remoteAddress, port: s.remotePort })
        : undefined;
    if (key === undefined) {
      s.destroy();
      return;
    }
    const now = performance.now();
    watched.set(s, { key, queued: Infinity, progressAt: now, since: now });
    if (!listening.has(s)) {
      listening.add(s);
      s.once('close', () => watched.delete(s));
    }
    // Timeouts that fire close together share one read of the table.
    schedule(50);
  });
  return stats;
}
