/**
 * Boot files held in memory for HTTP and TFTP: kernels, initrds and loaders are fetched by every
 * installing machine, often hundreds at once. Streaming each from disk costs a thread-pool read
 * and a fresh 256 KiB buffer per chunk per client (1,000 clients: 4x slower than nginx's
 * sendfile in the issue 21 bench); one shared copy in memory is written to every socket as
 * slices, without allocation or reads.
 *
 * A file is cached on its first request (that request streams from disk as before) and used
 * while its size and mtime are unchanged (checked with one stat per request), so a replaced
 * kernel is served fresh at once. Bounded: files up to 256 MiB, 1 GiB in all, least recently
 * used dropped first.
 *
 * TFTP (tftp/server.ts) serves from the same copy: a cached file needs no thread-pool read and
 * no promise per read-ahead chunk, so a window is sent straight from the ACK's callback.
 */
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const MAX_FILE = 256 * 1024 * 1024;
const MAX_TOTAL = 1024 * 1024 * 1024;

interface Entry {
  data: Buffer;
  mtimeMs: number;
}

export class HotFiles {
  private readonly files = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Buffer | undefined>>();
  private total = 0;

  constructor(
    private readonly maxFile = MAX_FILE,
    private readonly maxTotal = MAX_TOTAL,
  ) {}

  /** The file's bytes when cached and unchanged on disk; otherwise undefined (and a load starts). */
  get(path: string, size: number): Buffer | undefined {
    if (size > this.maxFile || size === 0) return undefined;
    let st: { size: number; mtimeMs: number };
    try {
      st = statSync(path);
    } catch {
      return undefined;
    }
    const e = this.files.get(path);
    if (e !== undefined) {
      if (e.data.length === st.size && e.mtimeMs === st.mtimeMs && st.size === size) {
        // Most recently used last (Map keeps insertion order).
        this.files.delete(path);
        this.files.set(path, e);
        return e.data;
      }
      this.drop(path);
    }
    if (st.size === size) this.load(path, st.mtimeMs);
    return undefined;
  }

  /**
   * The file's bytes from memory, reading it first when needed. Requests that arrive while a
   * file loads wait for that one read instead of each streaming the file from disk: 1,000 PXE
   * clients asking for one kernel at once otherwise made 1,000 streams of 256 KiB buffers, and
   * the garbage collector took half of the server's CPU. Never rejects; undefined when the file
   * cannot be served from memory (empty, over the bounds, changed while read, unreadable): the
   * caller streams it from disk.
   */
  async fetch(path: string, size: number): Promise<Buffer | undefined> {
    const hit = this.get(path, size);
    if (hit !== undefined) return hit;
    const data = await this.loading.get(path);
    // The load may be of a newer file than the size the caller stat'ed (and announced).
    return data !== undefined && data.length === size ? data : undefined;
  }

  get bytes(): number {
    return this.total;
  }

  private drop(path: string): void {
    const e = this.files.get(path);
    if (e === undefined) return;
    this.files.delete(path);
    this.total -= e.data.length;
  }

  private load(path: string, mtimeMs: number): void {
    if (this.loading.has(path)) return;
    const p = readFile(path)
      .then((data): Buffer | undefined => {
        // Changed while being read: not cached (the next request starts again).
        const st = statSync(path);
        if (st.mtimeMs !== mtimeMs || st.size !== data.length) return undefined;
        this.drop(path);
        while (this.total + data.length > this.maxTotal && this.files.size > 0) {
          const oldest = this.files.keys().next().value as string;
          this.drop(oldest);
        }
        if (this.total + data.length > this.maxTotal) return undefined;
        this.files.set(path, { data, mtimeMs });
        this.total += data.length;
        return data;
      })
      .catch(() => undefined)
      .finally(() => this.loading.delete(path));
    this.loading.set(path, p);
  }
}

/** The one cache of the process, shared by the HTTP boot routes and the TFTP engine. */
export const hotFiles = new HotFiles();
