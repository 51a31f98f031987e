/**
 * The data directory as a resource only one server owns, and storage
 * failures as errors that name the path and the cause.
 *
 * Lock: `forge serve` holds an exclusive SQLite lock (an fcntl lock the
 * kernel drops when the process dies, so a crash never leaves a stale lock)
 * on DATA_DIR/serve.lock for its whole life, and writes its PID beside it
 * for the message the second server prints. Two servers on one data dir
 * would answer DHCP from two lease tables and offer one address twice.
 */
import Database from 'better-sqlite3';
import { accessSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ForgeError } from '../errors.js';

export interface DataDirLock {
  release(): void;
}

const CAUSES: Record<string, string> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'disk full',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such directory',
  ENOTDIR: 'a path component is not a directory',
  SQLITE_FULL: 'disk full',
  SQLITE_READONLY: 'read-only (file system or permissions)',
  SQLITE_CANTOPEN: 'cannot open the file',
  SQLITE_IOERR: 'I/O error',
};

/** `EROFS (read-only file system)`, from a Node or SQLite error. */
export function causeOf(e: unknown): string {
  const code = String((e as { code?: unknown }).code ?? '');
  const base = Object.keys(CAUSES).find((k) => code === k || code.startsWith(`${k}_`));
  return base !== undefined ? `${code} (${CAUSES[base]})` : (e as Error).message ?? String(e);
}

/** Why `dir` cannot be written, probed by the file system (root ignores modes but not EROFS). */
function writeProblem(dir: string): string | undefined {
  try {
    accessSync(dir, constants.W_OK);
    const probe = join(dir, `.write-probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe, { force: true });
    return undefined;
  } catch (e) {
    return causeOf(e);
  }
}

/** A storage failure at startup: STORAGE_UNAVAILABLE naming the path and the cause. */
export function storageError(path: string, e: unknown): ForgeError {
  const code = String((e as { code?: unknown }).code ?? '');
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    return new ForgeError('STORAGE_FULL', `${path}: disk full: ${causeOf(e)}`, { field: 'data_dir', cause: e });
  }
  return new ForgeError('STORAGE_UNAVAILABLE', `${path}: ${causeOf(e)}`, { field: 'data_dir', cause: e });
}

/** Creates (if needed) and checks DATA_DIR: writable, or STORAGE_UNAVAILABLE naming it and why. */
export function prepareDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new ForgeError('STORAGE_UNAVAILABLE', `data directory ${dir} cannot be created: ${causeOf(e)}`, { field: 'data_dir', cause: e });
  }
  const why = writeProblem(dir);
  if (why !== undefined) throw new ForgeError('STORAGE_UNAVAILABLE', `data directory ${dir} is not writable: ${why}`, { field: 'data_dir' });
}

/** Takes the data directory for this process, or DATA_DIR_LOCKED naming it and the running PID. */
export function lockDataDir(dir: string): DataDirLock {
  const file = join(dir, 'serve.lock');
  const pidFile = join(dir, 'serve.pid');
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 0 });
    db.pragma('locking_mode = EXCLUSIVE');
    // A write transaction left open: the exclusive lock is held until close.
    db.exec('CREATE TABLE IF NOT EXISTS owner (pid INTEGER)');
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    const code = String((e as { code?: unknown }).code ?? '');
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      let pid = 'unknown';
      try {
        pid = readFileSync(pidFile, 'utf8').trim() || pid;
      } catch {
        /* the other server has not written it yet */
      }
      throw new ForgeError('DATA_DIR_LOCKED', `data directory ${dir} is in use by another forge serve (PID ${pid}); stop it first or use another --data-dir`, {
        field: 'data_dir',
        details: { pid },
      });
    }
    throw storageError(file, e);
  }
  writeFileSync(pidFile, `${process.pid}\n`);
  return {
    release(): void {
      rmSync(pidFile, { force: true });
      if (db.open) db.close();
    },
  };
}
