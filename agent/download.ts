/**
 * Kernel/initrd cache. A file is stored under its sha256 (the name the
 * server's /api/v1/distros/NAME/files reports), so an unchanged file is reused
 * and a changed one is fetched again. Downloads land in `<sha>.part` and
 * resume with an HTTP Range request (RFC 9110 section 14.2) after an
 * interruption; the result is checked against size and sha256 before it is
 * renamed into place.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { ForgeError } from '../server/errors.js';
import type { RemoteFile } from './api.js';

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

export interface Progress {
  (done: number, total: number): void;
}

/** A one-line progress bar for a terminal (stderr), or nothing. */
export function progressBar(label: string, out: NodeJS.WriteStream | undefined): { tick: Progress; end: () => void } {
  if (out === undefined || !out.isTTY) return { tick: () => undefined, end: () => undefined };
  let last = -1;
  return {
    tick: (done, total) => {
      const pct = total > 0 ? Math.floor((done * 100) / total) : 0;
      if (pct === last) return;
      last = pct;
      const width = 30;
      const fill = Math.round((pct * width) / 100);
      out.write(`\r${label.padEnd(8)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${(done / 1048576).toFixed(1)}/${(total / 1048576).toFixed(1)} MiB`);
    },
    end: () => {
      if (last >= 0) out.write('\n');
    },
  };
}

export interface FetchResult {
  path: string;
  /** true when the cached copy was used. */
  cached: boolean;
  /** Bytes fetched over the network in this call. */
  fetched: number;
  resumedFrom: number;
}

/**
 * Make `file` available in `cacheDir` and return its path. Throws
 * DOWNLOAD_FAILED when the server fails or the bytes do not match.
 */
export async function fetchCached(file: RemoteFile, cacheDir: string, progress: Progress = () => undefined, timeoutMs = 600_000): Promise<FetchResult> {
  mkdirSync(cacheDir, { recursive: true, mode: 0o755 });
  const final = join(cacheDir, file.sha256);
  if (existsSync(final) && statSync(final).size === file.size) {
    if ((await sha256File(final)) === file.sha256) return { path: final, cached: true, fetched: 0, resumedFrom: 0 };
    rmSync(final, { force: true });
  }
  const part = `${final}.part`;
  let fetched = 0;
  let resumedFrom = 0;
  // At most one resume and one clean retry: a .part from an earlier run may be stale.
  for (let attempt = 0; attempt < 2; attempt++) {
    let have = existsSync(part) ? statSync(part).size : 0;
    if (have > file.size) {
      rmSync(part, { force: true });
      have = 0;
    }
    if (have < file.size) {
      const headers: Record<string, string> = {};
      if (have > 0) headers['range'] = `bytes=${have}-`;
      let res: Response;
      try {
        res = await fetch(file.url, { headers, signal: AbortSignal.timeout(timeoutMs) });
      } catch (e) {
        throw new ForgeError('DOWNLOAD_FAILED', `${file.url}: ${(e as Error).message}`, { cause: e });
      }
      let append = false;
      if (res.status === 206 && have > 0) {
        const cr = res.headers.get('content-range') ?? '';
        const m = /^bytes (\d+)-/.exec(cr);
        if (m === null || Number(m[1]) !== have) throw new ForgeError('DOWNLOAD_FAILED', `${file.url}: bad Content-Range '${cr}' for a resume at ${have}`);
        append = true;
        resumedFrom = have;
      } else if (res.status === 200) {
        have = 0; // the server ignored the Range: start over
      } else {
        await res.body?.cancel();
        throw new ForgeError('DOWNLOAD_FAILED', `${file.url}: HTTP ${res.status}`);
      }
      if (res.body === null) throw new ForgeError('DOWNLOAD_FAILED', `${file.url}: empty body`);
      let done = have;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          done += chunk.length;
          fetched += chunk.length;
          progress(done, file.size);
          cb(null, chunk);
        },
      });
      try {
        await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), counter, createWriteStream(part, { flags: append ? 'a' : 'w', mode: 0o644 }));
      } catch (e) {
        // The .part stays: the next run resumes from what arrived.
        throw new ForgeError('DOWNLOAD_FAILED', `${file.url}: interrupted after ${done} of ${file.size} bytes: ${(e as Error).message}`, { cause: e });
      }
    }
    const size = statSync(part).size;
    const sum = size === file.size ? await sha256File(part) : '';
    if (sum === file.sha256) {
      renameSync(part, final);
      // qemu runs as another user under qemu:///system: it must be able to read the file.
      chmodSync(final, 0o644);
      return { path: final, cached: false, fetched, resumedFrom };
    }
    rmSync(part, { force: true });
    if (attempt === 1 || resumedFrom === 0) {
      throw new ForgeError('DOWNLOAD_FAILED', `${file.url}: got ${size} bytes with sha256 ${sum || '-'}, expected ${file.size} bytes with sha256 ${file.sha256}`);
    }
  }
  throw new ForgeError('DOWNLOAD_FAILED', `${file.url}: could not be fetched`);
}
