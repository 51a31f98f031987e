/**
 * Block sources for TFTP transfers: a file streamed from disk through a
 * read-ahead window of immutable chunks, or a buffer in memory.
 *
 * Chunks are never reused or written after a read completes: a DATA payload
 * is handed to the socket as a slice of a chunk, and a send that the kernel
 * could not take at once (EAGAIN) keeps referencing that memory until it is
 * flushed. Chunks are a whole number of blocks, so a block never straddles two.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Opcode } from '../../protocol/tftp/index.js';
import type { PacketImage } from './packets.js';

export interface BlockSource {
  readonly size: number;
  /** Data of 1-based block n, or undefined while its chunk is still loading. */
  block(n: number): Buffer | undefined;
  /** The whole DATA datagram of block n: one buffer, or header and payload; undefined while loading. */
  datagram(n: number): Buffer | Buffer[] | undefined;
  /**
   * Keeps blocks [from, to] (plus read-ahead) loaded and drops what lies
   * before `from`. Returns a promise when block `from`..`to` are not all ready.
   */
  prefetch(from: number, to: number): Promise<void> | undefined;
  close(): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * The 4-byte DATA header (RFC 1350 section 5: opcode 3, block number) of every wire block
 * number, made once for the process and never written again. A DATA datagram goes out as
 * [header, payload slice] without allocating or writing a header per block; a send the kernel
 * cannot take at once (EAGAIN) may keep referencing a header, which is safe as it never changes.
 */
const HEADER_BYTES = Buffer.alloc(65536 * 4);
for (let n = 0; n < 65536; n++) {
  HEADER_BYTES.writeUInt16BE(Opcode.DATA, n * 4);
  HEADER_BYTES.writeUInt16BE(n, n * 4 + 2);
}
// Pre-sized, so V8 keeps it a fast (holey) array as views are added; a view is made the first
// time its block number is sent (at most 65536 of them, a few MB, for the process).
const HEADERS = new Array<Buffer | undefined>(65536);
function dataHeaderOf(block: number): Buffer {
  const w = block & 0xffff;
  let h = HEADERS[w];
  if (h === undefined) {
    h = HEADER_BYTES.subarray(w * 4, w * 4 + 4);
    HEADERS[w] = h;
  }
  return h;
}

/** [header, payload] of block n, for sources that hold payloads only. */
function withHeader(n: number, data: Buffer | undefined): Buffer[] | undefined {
  return data === undefined ? undefined : [dataHeaderOf(n), data];
}

/** A file from the in-memory cache, sent from its shared datagram image (packets.ts). */
export class PacketSource implements BlockSource {
  readonly size: number;
  constructor(private readonly image: PacketImage) {
    this.size = image.data.length;
  }
  block(n: number): Buffer {
    return this.image.datagram(n).subarray(4);
  }
  datagram(n: number): Buffer {
    return this.image.datagram(n);
  }
  prefetch(): undefined {
    return undefined;
  }
  close(): void {}
}

export class BufferSource implements BlockSource {
  readonly size: number;
  constructor(
    private readonly data: Buffer,
    private readonly blksize: number,
  ) {
    this.size = data.length;
  }
  block(n: number): Buffer {
    const start = (n - 1) * this.blksize;
    if (start >= this.data.length) return EMPTY;
    return this.data.subarray(start, Math.min(start + this.blksize, this.data.length));
  }
  datagram(n: number): Buffer[] {
    return [dataHeaderOf(n), this.block(n)];
  }
  prefetch(): undefined {
    return undefined;
  }
  close(): void {}
}

/** Target chunk size and how far ahead of the acknowledged block we read. */
const CHUNK_BYTES = 128 * 1024;
const READ_AHEAD_CHUNKS = 2;

export class FileSource implements BlockSource {
  private readonly chunkBlocks: number;
  private readonly chunkBytes: number;
  private readonly chunks = new Map<number, Buffer>();
  private readonly loading = new Map<number, Promise<void>>();
  private closed = false;
  private failure: unknown;

  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly blksize: number,
  ) {
    this.chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / blksize));
    this.chunkBytes = this.chunkBlocks * blksize;
  }

  static async open(path: string, size: number, blksize: number): Promise<FileSource> {
    const fh = await open(path, 'r');
    return new FileSource(fh, size, blksize);
  }

  /** The error of a failed read, if any (the transfer then aborts). */
  get error(): unknown {
    return this.failure;
  }

  block(n: number): Buffer | undefined {
    const idx = Math.floor((n - 1) / this.chunkBlocks);
    const chunk = this.chunks.get(idx);
    if (chunk === undefined) {
      // The final, empty block of a file whose size is a multiple of blksize.
      if ((n - 1) * this.blksize >= this.size) return EMPTY;
      return undefined;
    }
    const off = ((n - 1) % this.chunkBlocks) * this.blksize;
    if (off >= chunk.length) return EMPTY;
    return chunk.subarray(off, Math.min(off + this.blksize, chunk.length));
  }

  datagram(n: number): Buffer[] | undefined {
    return withHeader(n, this.block(n));
  }

  prefetch(from: number, to: number): Promise<void> | undefined {
    if (this.closed) return undefined;
    const first = Math.floor((from - 1) / this.chunkBlocks);
    const need = Math.floor((to - 1) / this.chunkBlocks);
    const lastChunk = this.size === 0 ? 0 : Math.floor((this.size - 1) / this.chunkBytes);
    for (const idx of this.chunks.keys()) if (idx < first) this.chunks.delete(idx);
    const waits: Promise<void>[] = [];
    const upto = Math.min(need + READ_AHEAD_CHUNKS, lastChunk);
    for (let idx = first; idx <= upto; idx++) {
      if (this.chunks.has(idx)) continue;
      let p = this.loading.get(idx);
      if (p === undefined) {
        p = this.load(idx);
        this.loading.set(idx, p);
      }
      if (idx <= need) waits.push(p);
    }
    if (waits.length === 0) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  private async load(idx: number): Promise<void> {
    const pos = idx * this.chunkBytes;
    const len = Math.min(this.chunkBytes, this.size - pos);
    try {
      if (len <= 0) {
        this.chunks.set(idx, EMPTY);
        return;
      }
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await this.fh.read(buf, got, len - got, pos + got);
        if (bytesRead === 0) break; // the file shrank: send what is there
        got += bytesRead;
      }
      if (!this.closed) this.chunks.set(idx, got === len ? buf : buf.subarray(0, got));
    } catch (e) {
      // Never rejects (read-ahead loads are not awaited by anyone); the
      // transfer checks `error` when the block it waits for is missing.
      this.failure = e;
    } finally {
      this.loading.delete(idx);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.chunks.clear();
    // Reads still in flight finish against an open handle; close after them.
    const pending = [...this.loading.values()];
    void Promise.allSettled(pending).then(() => this.fh.close().catch(() => undefined));
  }
}

/**
 * RFC 1350 netascii: LF -> CR LF, CR -> CR NUL. Used only for small files
 * (boot configs); the size after translation is not known without doing it.
 */
export function toNetascii(data: Buffer): Buffer {
  let extra = 0;
  for (const b of data) if (b === 0x0a || b === 0x0d) extra++;
  const out = Buffer.allocUnsafe(data.length + extra);
  let j = 0;
  for (const b of data) {
    if (b === 0x0a) {
      out[j++] = 0x0d;
      out[j++] = 0x0a;
    } else if (b === 0x0d) {
      out[j++] = 0x0d;
      out[j++] = 0x00;
    } else out[j++] = b;
  }
  return out;
}
