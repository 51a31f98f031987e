/**
 * The optional native data path (binding.gyp, native/*.c).
 *
 * Node's public socket APIs cost a fixed amount per datagram and copy every
 * byte of a file into a socket (no sendmmsg, UDP GSO or sendfile; docs/benchmarks.md
 * has the measurements). The addon does only that I/O; what to send, when to
 * retransmit and which files may be served stay in TypeScript, and every user
 * of the binding keeps a complete JavaScript path for hosts where it did not
 * build (no compiler) or where FORGE_NATIVE=0 turns it off.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Must equal FORGE_NATIVE_ABI in native/forge_native.h. */
export const NATIVE_ABI = 3;

/** What the addon exports; each part adds its functions here. */
export interface NativeBinding {
  abiVersion(): number;
  /** native/sendfile.c: once, before the first send; onDone(id, errno or 0, bytes sent) on the main thread. */
  sendfileSetup(onDone: (id: number, errno: number, sent: number) => void, threads: number): void;
  /** Starts sending [offset, offset + length) of the file at path to a dup() of the socket fd; returns the send's id, throws when it cannot start. */
  sendfileStart(socketFd: number, path: string, offset: number, length: number, idleMs: number): number;
  /** Ends a send (its onDone follows with ECANCELED); false when it already ended. */
  sendfileCancel(id: number): boolean;
  /** Sends not yet ended. */
  sendfileActive(): number;
  /**
   * native/tftp.c: once, before the first transfer, with 1-4 pump threads. onEnd on the main thread, once per
   * transfer: reason (0 done, 1 probe, 2 aborted, 3 OACK never acknowledged, 4 timeout,
   * 5 stalled, 6 socket error, 7 cancelled), blocks acknowledged and in all, retransmissions,
   * packets ignored, milliseconds, the client's ERROR code (errno for 6) and message.
   */
  tftpSetup(
    onEnd: (id: number, reason: number, acked: number, of: number, retransmits: number, ignored: number, ms: number, code: number, message: string) => void,
    threads: number,
  ): void;
  /** Binds the transfer's connected socket on localPort (SO_REUSEADDR) and hands the transfer to the pump; throws (code EADDRINUSE, ...) when it cannot. */
  tftpStart(
    localAddress: string,
    localPort: number,
    peerAddress: string,
    peerPort: number,
    data: Buffer,
    blksize: number,
    windowsize: number,
    timeoutMs: number,
    retries: number,
    stallMs: number,
    oack: Buffer | null,
  ): number;
  /** Ends a transfer (its onEnd follows with reason 7); false when it already ended. */
  tftpCancel(id: number): boolean;
  /** 0 waiting for ACK 0 of the OACK, 1 sending data, 2 ended or unknown. */
  tftpState(id: number): number;
  /** Transfers started and not yet reported. */
  tftpActive(): number;
}

export type NativeStatus =
  | { readonly loaded: true; readonly path: string }
  | { readonly loaded: false; readonly reason: string };

// dist/server/native/index.js -> <package>/build/Release/forge_native.node
const ADDON = fileURLToPath(new URL('../../../build/Release/forge_native.node', import.meta.url));

function load(): { binding: NativeBinding | null; status: NativeStatus } {
  if (process.env.FORGE_NATIVE === '0') {
    return { binding: null, status: { loaded: false, reason: 'turned off by FORGE_NATIVE=0' } };
  }
  if (!existsSync(ADDON)) {
    return { binding: null, status: { loaded: false, reason: `not built (${ADDON} is missing; npm run build:native)` } };
  }
  try {
    const binding = createRequire(import.meta.url)(ADDON) as NativeBinding;
    const abi = binding.abiVersion();
    if (abi !== NATIVE_ABI) {
      return { binding: null, status: { loaded: false, reason: `ABI ${abi} built, ${NATIVE_ABI} expected (rebuild: npm run build:native)` } };
    }
    return { binding, status: { loaded: true, path: ADDON } };
  } catch (e) {
    return { binding: null, status: { loaded: false, reason: `failed to load: ${e instanceof Error ? e.message : String(e)}` } };
  }
}

const loaded = load();

/** The binding, or null when forge runs on its JavaScript path only. */
export const native: NativeBinding | null = loaded.binding;
/** Why the binding is (not) in use; logged once at start and shown by metrics. */
export const nativeStatus: NativeStatus = loaded.status;
