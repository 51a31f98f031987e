/**
 * Boot files: the port between the TFTP/HTTP servers and what they serve.
 * Generated per-machine configs (pxelinux.cfg/01-<mac>, GRUB, iPXE) are made
 * from the store at request time, so there is no sync step; loaders come from
 * Debian packages or config overrides. Owned by the boot-flow work.
 */
import type { ServerContext } from '../context.js';

export type BootFile =
  | { kind: 'buffer'; data: Buffer; /** for event recording */ system?: string }
  | { kind: 'file'; path: string; size: number; system?: string };

export interface BootClient {
  /** Remote address as seen by the server. */
  address: string;
  /** `tftp` or `http`. */
  via: 'tftp' | 'http';
}

export interface BootFileProvider {
  /**
   * Resolve a request path (TFTP file name, relative, no leading slash) to a
   * file; undefined when it is not a boot file (the TFTP server then tries its
   * extra root). Must not throw for unknown paths.
   */
  resolve(path: string, client: BootClient): Promise<BootFile | undefined>;
}

/** Placeholder until the boot-flow module lands: serves nothing. */
export function createBootFiles(_ctx: ServerContext): BootFileProvider {
  return { resolve: async () => undefined };
}
