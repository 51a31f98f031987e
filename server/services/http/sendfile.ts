/**
 * A boot file's response body by sendfile(2) (native/sendfile.c), beside the JavaScript path
 * (boot.ts writes slices of the in-memory copy). Issue 21: Node has no sendfile, so every byte
 * of every kernel and initrd was copied from a Buffer into the socket; on loopback that cost
 * forge ~360 ms of CPU per GiB against nginx's ~230 ms with sendfile (docs/benchmarks.md), and
 * with 1,000 PXE clients the CPU the server burns is CPU the clients do not get.
 *
 * The policy stays here and in boot.ts: which file and which bytes (confinement, Range, HEAD
 * are decided before), the headers (written by Node, so the response's keep-alive state is
 * Node's own), the idle bound. The body is handed to the addon only when
 * - the binding is loaded (FORGE_NATIVE=0 turns it off) and the socket is a plain TCP socket
 *   with a file descriptor (not TLS: its bytes must be encrypted in user space);
 * - the headers have been handed to the kernel (the write callback) and nothing else is
 *   queued on the socket, so the body follows the headers byte for byte.
 * While the addon sends, Node's own idle timer is off (it sees no writes and would cut a
 * healthy transfer) and the addon applies the same bound: a client that takes nothing for the
 * socket's idle time (limits.ts, 2 minutes) ends the send. When the send completes the
 * response ends normally (the next request on the connection is served); when it fails the
 * connection is destroyed (the Content-Length promise cannot be kept); when Node's socket
 * closes first (client gone, server close) the send is cancelled and the addon's dup of the
 * socket is closed.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { constants } from 'node:os';
import { native } from '../../native/index.js';
import { HTTP_TIMEOUTS } from './limits.js';

/** Two send threads: the machines forge runs on and the bench's nginx (worker_processes auto) both have two cores. */
const THREADS = 2;

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

const pending = new Map<number, (errno: number, sent: number) => void>();
let setUp = false;
/** FORGE_SENDFILE=0 keeps the rest of the addon (TFTP) but sends boot files from JavaScript (A/B in the bench). */
let enabled = process.env['FORGE_SENDFILE'] !== '0';

/** Bodies sent by each path since start (tests check which path served; metrics). */
export const sendfileCounts = { native: 0, failed: 0, fallback: 0 };

/** Turns the native path on or off for responses that start from now (tests run both paths in one process). */
export function useSendfile(on: boolean): void {
  enabled = on;
}

/** The socket's file descriptor when it is a plain TCP socket (Node's internal handle; absent on TLS and pipes). */
export function socketFd(socket: Socket | null): number | undefined {
  if (socket === null || socket instanceof TLSSocket) return undefined;
  const handle: unknown = Reflect.get(socket, '_handle');
  if (typeof handle !== 'object' || handle === null) return undefined;
  const fd: unknown = Reflect.get(handle, 'fd');
  return typeof fd === 'number' && Number.isInteger(fd) && fd > 2 ? fd : undefined;
}

/** Whether sendBody may take a response on this socket (the caller then writes the headers first). */
export function canSendfile(socket: Socket | null): boolean {
  return enabled && native !== null && socketFd(socket) !== undefined;
}

/** Sends not yet ended (tests: nothing is left behind). */
export function sendfileActive(): number {
  return native === null ? 0 : native.sendfileActive();
}

/**
 * Sends [start, start + length) of the file at path as the body of res, whose headers the
 * caller has written (writeHead) but not flushed. jsBody writes the body on the JavaScript
 * path instead; it is called when the native send cannot start (file gone, socket not
 * flushed), before any body byte is written.
 */
export function sendBody(res: ServerResponse, path: string, start: number, length: number, jsBody: () => void): void {
  const b = native;
  if (b === null) return jsBody();
  if (!setUp) {
    b.sendfileSetup((id, errno, sent) => {
      const done = pending.get(id);
      pending.delete(id);
      done?.(errno, sent);
    }, THREADS);
    setUp = true;
  }
  // An empty write flushes the headers; its callback runs when the kernel has them.
  res.write('', (err) => {
    const socket = res.socket;
    const fd = socketFd(socket);
    if (err !== null && err !== undefined) return;
    if (res.destroyed || socket === null || fd === undefined || socket.destroyed) return;
    if (socket.writableLength !== 0) {
      sendfileCounts.fallback++;
      return jsBody();
    }
    const idleMs = socket.timeout !== undefined && socket.timeout > 0 ? socket.timeout : HTTP_TIMEOUTS.idleSocketMs;
    let id: number;
    try {
      id = b.sendfileStart(fd, path, start, length, idleMs);
    } catch {
      sendfileCounts.fallback++;
      return jsBody();
    }
    sendfileCounts.native++;
    socket.setTimeout(0);
    const onClose = (): void => {
      b.sendfileCancel(id);
    };
    res.once('close', onClose);
    pending.set(id, (errno, sent) => {
      res.off('close', onClose);
      const complete = errno === 0 && sent === length;
      if (!complete) sendfileCounts.failed++;
      if (res.destroyed) return;
      if (complete) {
        socket.setTimeout(idleMs);
        res.end();
        return;
      }
      const why = errno === 0 ? 'short send' : (ERRNO_NAMES.get(errno) ?? `errno ${errno}`);
      res.destroy(new Error(`sendfile ended after ${sent} of ${length} bytes: ${why}`));
    });
  });
}
