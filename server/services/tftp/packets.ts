/**
 * Whole DATA datagrams made once per (cached file, blksize) and shared by every transfer of it
 * (issue 21: one buffer per DATA send instead of a header and a payload slice per block).
 *
 * A DATA datagram (RFC 1350 section 5: opcode 3, block number, payload) depends only on the
 * file, the blksize (RFC 2348) and the block's offset: block n carries bytes
 * (n-1)*blksize .. n*blksize and the wire block number n mod 65536 (the rollover every client
 * here expects). So the datagrams of a file are laid out once, back to back, and a send is one
 * slice of that memory: no header write, no two-buffer list, no payload copy.
 *
 * The image is built in segments as transfers reach them (a 64 MiB file is not copied in one
 * go on the event loop: a segment is ~1.5 MB at blksize 1468). Memory: the file's size plus 4
 * bytes per block, per blksize in use; the cache is bounded (256 MiB by default, least
 * recently used dropped first) and a file past the bound is sent as header + slice, as before.
 * A transfer holding an image that the cache dropped keeps using it until it ends.
 */
import { Opcode } from '../../protocol/tftp/index.js';

/** Blocks per segment of an image. */
const SEGMENT_BLOCKS = 1024;
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

export class PacketImage {
  /** Blocks of the transfer; a file of exactly k*blksize bytes ends with an empty block k+1. */
  readonly blocks: number;
  /** Bytes the complete image takes. */
  readonly bytes: number;
  private readonly segments: (Buffer | undefined)[];

  constructor(
    readonly data: Buffer,
    readonly blksize: number,
  ) {
    this.blocks = Math.floor(data.length / blksize) + 1;
    this.bytes = data.length + 4 * this.blocks;
    this.segments = new Array<Buffer | undefined>(Math.ceil(this.blocks / SEGMENT_BLOCKS));
  }

  /** The DATA datagram of 1-based block n (n <= blocks). */
  datagram(n: number): Buffer {
    const s = Math.floor((n - 1) / SEGMENT_BLOCKS);
    const seg = this.segments[s] ?? this.build(s);
    const first = s * SEGMENT_BLOCKS + 1;
    const off = (n - first) * (4 + this.blksize);
    const payload = Math.max(0, Math.min(this.blksize, this.data.length - (n - 1) * this.blksize));
    return seg.subarray(off, off + 4 + payload);
  }

  private build(s: number): Buffer {
    const first = s * SEGMENT_BLOCKS + 1;
    const last = Math.min(first + SEGMENT_BLOCKS - 1, this.blocks);
    const start = (first - 1) * this.blksize;
    const end = Math.min(this.data.length, last * this.blksize);
    const seg = Buffer.allocUnsafe(end - start + 4 * (last - first + 1));
    let at = 0;
    for (let n = first; n <= last; n++) {
      seg.writeUInt16BE(Opcode.DATA, at);
      seg.writeUInt16BE(n & 0xffff, at + 2);
      const from = (n - 1) * this.blksize;
      const to = Math.min(from + this.blksize, this.data.length);
      if (to > from) this.data.copy(seg, at + 4, from, to);
      at += 4 + this.blksize;
    }
    this.segments[s] = seg;
    return seg;
  }
}

/** Images by (path, blksize), for files served from the in-memory cache (hotfiles.ts). */
export class PacketCache {
  private readonly images = new Map<string, PacketImage>();
  private total = 0;

  constructor(readonly maxBytes = DEFAULT_MAX_BYTES) {}

  /**
   * The image of `data` (the cached bytes of `path`) at `blksize`, or undefined when it cannot
   * be held within the bound. A different buffer for the same path (the file changed, the
   * cache reloaded it) replaces the old image.
   */
  get(path: string, data: Buffer, blksize: number): PacketImage | undefined {
    const key = `${blksize}|${path}`;
    const hit = this.images.get(key);
    if (hit !== undefined) {
      this.images.delete(key);
      if (hit.data === data) {
        // Most recently used last (Map keeps insertion order).
        this.images.set(key, hit);
        return hit;
      }
      this.total -= hit.bytes;
    }
    const image = new PacketImage(data, blksize);
    if (image.bytes > this.maxBytes) return undefined;
    while (this.total + image.bytes > this.maxBytes) {
      const oldest = this.images.keys().next().value as string;
      this.total -= this.images.get(oldest)?.bytes ?? 0;
      this.images.delete(oldest);
    }
    this.images.set(key, image);
    this.total += image.bytes;
    return image;
  }

  /** Bytes the held images take once complete. */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.images.size;
  }
}

/** The process's one image cache (the TFTP engines of one process share the file cache too). */
export const packetCache = new PacketCache();
