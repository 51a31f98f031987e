/**
 * One server per data dir, and storage failures as clear errors: a second
 * `forge serve` on the same dir exits naming the dir and the running PID; a
 * read-only data dir (a real read-only tmpfs) and a full one (a small
 * tmpfs) give errors naming the path and the cause, never a stack trace;
 * nothing is lost and the database passes integrity_check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { FORGE_BIN, startForge } from '../lib/server.js';
import { need } from '../lib/env.js';
import type { TestContext } from 'node:test';

type Obj = Record<string, unknown>;

function serve(dataDir: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [FORGE_BIN, 'serve', '--data-dir', dataDir, '--http-port', '0', '--listen', '127.0.0.1', '--tftp-enabled', 'false'], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

function integrity(dataDir: string): string {
  const db = new Database(join(dataDir, 'forge.db'), { readonly: true });
  try {
    return String(db.pragma('integrity_check', { simple: true }));
  } finally {
    db.close();
  }
}

test('a second forge serve on the same data dir exits 5 naming the dir and the PID; the first keeps serving', async () => {
  const a = await startForge();
  try {
    await a.api('POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i' });
    const b = serve(a.dataDir);
    assert.equal(b.status, 5, b.out);
    assert.ok(b.out.includes(`DATA_DIR_LOCKED: data directory ${a.dataDir} is in use by another forge serve (PID ${a.proc.pid})`), b.out);
    assert.doesNotMatch(b.out, /\n\s+at /, 'no stack trace');
    const d = await a.api('GET', '/api/v1/distros/d');
    assert.equal(d.status, 200);
    await a.stop({ keepData: true });
    // The lock goes with the process: the next server starts.
    const c = await startForge({ dataDir: a.dataDir });
    assert.equal((await c.api('GET', '/api/v1/distros/d')).status, 200);
    await c.kill();
    // Killed (no cleanup): the kernel dropped the lock, no stale lock file blocks the next start.
    const e = await startForge({ dataDir: a.dataDir });
    await e.stop({ keepData: true });
    assert.equal(integrity(a.dataDir), 'ok');
  } finally {
    rmSync(a.dataDir, { recursive: true, force: true });
  }
});

function mountTmpfs(t: TestContext, sizeK: number): string | undefined {
  if (need(t, { root: true, commands: ['mount', 'umount'] }) !== undefined) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'forge-tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeK}k,mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mount tmpfs: ${r.stderr}`);
  return dir;
}
function umount(dir: string): void {
  spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
}

test('a read-only data dir: exit 7 naming the path and EROFS, no stack trace, nothing lost', async (t) => {
  const mnt = mountTmpfs(t, 16 * 1024);
  if (mnt === undefined) return;
  try {
    const dataDir = join(mnt, 'data');
    const a = await startForge({ dataDir });
    await a.api('POST', '/api/v1/distros', { name: 'kept', kernel: '/srv/forge/k', initrd: '/srv/forge/i' });
    await a.stop({ keepData: true });
    assert.equal(spawnSync('mount', ['-o', 'remount,ro', mnt]).status, 0);
    const r = serve(dataDir);
    assert.equal(r.status, 7, r.out);
    assert.match(r.out, new RegExp(`STORAGE_UNAVAILABLE: data directory ${dataDir} is not writable: EROFS \\(read-only file system\\)`));
    assert.doesNotMatch(r.out, /\n\s+at |SqliteError/, 'no stack trace');
    assert.equal(spawnSync('mount', ['-o', 'remount,rw', mnt]).status, 0);
    assert.equal(integrity(dataDir), 'ok');
    const b = await startForge({ dataDir });
    assert.equal((await b.api('GET', '/api/v1/distros/kept')).status, 200, 'nothing lost');
    await b.stop({ keepData: true });
  } finally {
    umount(mnt);
  }
});

test('a full data dir: writes answer 507 STORAGE_FULL "disk full", reads and DELETE keep working, nothing lost, integrity ok', async (t) => {
  const mnt = mountTmpfs(t, 8 * 1024);
  if (mnt === undefined) return;
  const dataDir = join(mnt, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  const srv = await startForge({ dataDir });
  try {
    assert.equal((await srv.api('POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i' })).status, 201);
    assert.equal((await srv.api('POST', '/api/v1/profiles', { name: 'p', distro: 'd' })).status, 201);
    assert.equal((await srv.api('POST', '/api/v1/systems', { name: 'early', profile: 'p' })).status, 201);
    // Fill the file system.
    const fd = openSync(join(mnt, 'filler'), 'w');
    const chunk = Buffer.alloc(64 * 1024, 1);
    try {
      for (;;) writeSync(fd, chunk);
    } catch {
      /* ENOSPC */
    } finally {
      closeSync(fd);
    }
    let full: { status: number; body: unknown } | undefined;
    const meta = { blob: 'x'.repeat(60_000) };
    for (let i = 0; i < 300 && full === undefined; i++) {
      const r = await srv.api('POST', '/api/v1/systems', { name: `s${i}`, profile: 'p', autoinstall_meta: meta });
      if (r.status !== 201) full = r;
    }
    assert.ok(full !== undefined, 'a write failed once the disk was full');
    assert.equal(full.status, 507, JSON.stringify(full.body));
    assert.equal((full.body as Obj)['code'], 'STORAGE_FULL');
    assert.match(String((full.body as Obj)['message']), /disk full/);
    assert.ok(String((full.body as Obj)['message']).includes(join(dataDir, 'forge.db')), 'names the database');
    assert.equal((await srv.api('GET', '/api/v1/systems/early')).status, 200, 'reads still work');
    const del = await srv.api('DELETE', '/api/v1/systems/early');
    assert.ok(del.status === 200 || del.status === 507, `DELETE on a full disk: 200, or 507 where SQLite cannot, never 500: ${del.status} ${JSON.stringify(del.body)}`);
    rmSync(join(mnt, 'filler'));
    const after = await srv.api('POST', '/api/v1/systems', { name: 'after', profile: 'p' });
    assert.equal(after.status, 201, 'writes work again once there is space');
    assert.doesNotMatch(srv.output(), /\n\s+at /, 'no stack trace in the server log');
  } finally {
    await srv.stop({ keepData: true });
    try {
      assert.equal(integrity(dataDir), 'ok');
    } finally {
      umount(mnt);
    }
  }
});
