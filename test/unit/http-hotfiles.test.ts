/**
 * The in-memory boot-file cache behind HTTP kernel/initrd/loader downloads (issue 21): bytes
 * are the file's, a replaced file is served fresh at once, and the bounds hold. Real files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HotFiles } from '../../server/services/hotfiles.js';

async function settle(h: HotFiles, path: string, size: number): Promise<Buffer | undefined> {
  for (let i = 0; i < 100; i++) {
    const b = h.get(path, size);
    if (b !== undefined) return b;
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

test('hot files: the first request misses (streams from disk), later ones get the same bytes from memory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fghot-'));
  try {
    const f = join(dir, 'kernel');
    writeFileSync(f, Buffer.alloc(5000, 7));
    const h = new HotFiles();
    assert.equal(h.get(f, 5000), undefined);
    const b = await settle(h, f, 5000);
    assert.deepEqual(b, Buffer.alloc(5000, 7));
    assert.equal(h.bytes, 5000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hot files: a file replaced on disk (new size or mtime) is never served from the old copy', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fghot-'));
  try {
    const f = join(dir, 'initrd');
    writeFileSync(f, 'old-bytes');
    const h = new HotFiles();
    assert.ok(await settle(h, f, 9));
    writeFileSync(f, 'new-bytes'); // same size
    utimesSync(f, new Date(), new Date(Date.now() + 5000));
    assert.equal(h.get(f, 9), undefined);
    assert.equal((await settle(h, f, 9))?.toString(), 'new-bytes');
    writeFileSync(f, 'longer new bytes');
    assert.equal(h.get(f, 16), undefined);
    assert.equal((await settle(h, f, 16))?.toString(), 'longer new bytes');
    // The size the caller stat'ed disagrees with the file now: not served from memory.
    assert.equal(h.get(f, 9), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hot files: files over the per-file bound are not cached; the total bound drops the least recently used', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fghot-'));
  try {
    const h = new HotFiles(1000, 2500);
    const big = join(dir, 'big');
    writeFileSync(big, Buffer.alloc(1001));
    assert.equal(h.get(big, 1001), undefined);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(h.get(big, 1001), undefined);
    assert.equal(h.bytes, 0);
    const files = ['a', 'b', 'c'].map((n) => join(dir, n));
    for (const f of files) writeFileSync(f, Buffer.alloc(1000));
    assert.ok(await settle(h, files[0]!, 1000));
    assert.ok(await settle(h, files[1]!, 1000));
    assert.ok(h.get(files[0]!, 1000)); // a is now the most recently used
    assert.ok(await settle(h, files[2]!, 1000));
    assert.ok(h.bytes <= 2500);
    assert.ok(h.get(files[0]!, 1000));
    assert.ok(h.get(files[2]!, 1000));
    assert.equal(h.get(files[1]!, 1000), undefined, 'b was the least recently used');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hot files: requests that arrive while a file loads all wait for the one read, then get the same copy', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fghot-'));
  try {
    const f = join(dir, 'kernel');
    const bytes = Buffer.alloc(300_000, 9);
    writeFileSync(f, bytes);
    const h = new HotFiles();
    // 50 at once, as a rack of PXE clients asks for one kernel: one read, one copy for all.
    const got = await Promise.all(Array.from({ length: 50 }, () => h.fetch(f, bytes.length)));
    assert.ok(got.every((b) => b !== undefined && b === got[0]), 'every request got the same in-memory copy');
    assert.deepEqual(got[0], bytes);
    assert.equal(h.bytes, bytes.length);
    // What the caller announced must match what is served: a size that disagrees with the file gets nothing.
    assert.equal(await h.fetch(f, bytes.length - 1), undefined);
    // Not cacheable (empty, over the per-file bound, missing): undefined, so the caller streams from disk.
    writeFileSync(join(dir, 'empty'), '');
    assert.equal(await h.fetch(join(dir, 'empty'), 0), undefined);
    assert.equal(await new HotFiles(1000, 2000).fetch(f, bytes.length), undefined);
    assert.equal(await h.fetch(join(dir, 'missing'), 10), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
