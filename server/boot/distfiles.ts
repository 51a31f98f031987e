/**
 * Distro kernels and initrds as local files: a path is served in place; an
 * http(s) URL is fetched once into DATA_DIR/cache/distro and served from
 * there (never redirected: GRUB and EDK II treat a 3xx as an error). Also
 * the sha256 digests forge-agent checks downloads against, cached by
 * path + size + mtime so a replaced file is hashed again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ForgeError } from '../errors.js';

export interface LocalFile {
  path: string;
  size: number;
  mtimeMs: number;
}

export const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);

function statFile(p: string): LocalFile | undefined {
  try {
    const st = statSync(p);
    return st.isFile() ? { path: p, size: st.size, mtimeMs: st.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}

const inflight = new Map<string, Promise<LocalFile>>();

/** Cache file name for a URL: stable, no user-controlled path parts. */
export function cacheName(url: string): string {
  const h = createHash('sha256').update(url).digest('hex').slice(0, 32);
  const base = (url.split('?')[0] ?? '').split('/').pop() ?? '';
  const safe = base.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60);
  return `${h}-${safe || 'file'}`;
}

/**
 * The local file behind a distro kernel/initrd location. URLs are
 * downloaded (streamed to a temp file, renamed when complete) at most once
 * at a time per URL. Throws NOT_FOUND for a missing path, DOWNLOAD_FAILED
 * for a failed fetch.
 */
export async function localFile(location: string, dataDir: string, timeoutMs = 600_000): Promise<LocalFile> {
  if (!isUrl(location)) {
    const f = statFile(location);
    if (f === undefined) throw new ForgeError('NOT_FOUND', `file ${location} does not exist or is not a regular file`);
    return f;
  }
  const dir = join(dataDir, 'cache', 'distro');
  const dest = join(dir, cacheName(location));
  const cached = statFile(dest);
  if (cached !== undefined) return cached;
  const running = inflight.get(location);
  if (running !== undefined) return running;
  const p = (async (): Promise<LocalFile> => {
    mkdirSync(dir, { recursive: true });
    const tmp = `${dest}.part-${randomBytes(4).toString('hex')}`;
    try {
      const res = await fetch(location, { redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`);
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(tmp));
      renameSync(tmp, dest);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new ForgeError('DOWNLOAD_FAILED', `fetching ${location}: ${(e as Error).message}`, { cause: e });
    }
    const f = statFile(dest);
    if (f === undefined) throw new ForgeError('DOWNLOAD_FAILED', `fetching ${location}: cache file vanished`);
    return f;
  })();
  inflight.set(location, p);
  try {
    return await p;
  } finally {
    inflight.delete(location);
  }
}

const digests = new Map<string, string>();

/** sha256 (hex) of a file, streamed; cached by path + size + mtime. */
export async function sha256Of(f: LocalFile): Promise<string> {
  const key = `${f.path}\0${f.size}\0${f.mtimeMs}`;
  const hit = digests.get(key);
  if (hit !== undefined) return hit;
  const h = createHash('sha256');
  for await (const chunk of createReadStream(f.path)) h.update(chunk as Buffer);
  const hex = h.digest('hex');
  if (digests.size > 1000) digests.clear();
  digests.set(key, hex);
  return hex;
}
