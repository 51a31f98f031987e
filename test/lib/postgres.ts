/**
 * A real PostgreSQL for tests: Debian's postgresql-15 (initdb, pg_ctl),
 * a cluster in a temp dir, run as the dedicated `postgres` user when the
 * tests run as root (PostgreSQL refuses to run as root) and as the current
 * user otherwise, listening on a Unix socket only (listen_addresses='').
 * Each test takes a fresh database (`createDatabase`) so tests share one
 * cluster start. fsync is off unless asked (the benchmark asks): the
 * cluster dies with the test, and a crash of the machine is not what these
 * tests are about.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { inCI } from './env.js';

export interface PgCluster {
  /** Directory holding the Unix socket. */
  socketDir: string;
  /** URL of database `db` on this cluster. */
  url(db: string): string;
  /** A new, empty database; returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** Runs SQL on database `db` as the cluster's superuser. */
  sql(db: string, text: string): Promise<pg.QueryResultRow[]>;
  /** The postmaster's pid (its backends are its children): for CPU figures. */
  pid(): number;
  stop(): Promise<void>;
}

/** The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin). */
export function pgBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

/**
 * Starts a cluster, or skips `t` with the reason (never in CI: there a
 * missing PostgreSQL fails the test).
 */
/**
 * `opts.dir`: the cluster lives there and outlives `stop()` (initdb only when the directory holds
 * none yet), so a benchmark can keep a loaded database between runs (bench/store.ts).
 */
export async function startPostgres(t?: TestContext, opts: { fsync?: boolean; dir?: string } = {}): Promise<PgCluster | undefined> {
  const bin = pgBinDir();
  const root = process.getuid?.() === 0;
  const pgUser = root ? (spawnSync('id', ['-u', 'postgres']).status === 0 ? 'postgres' : undefined) : undefined;
  const missing = bin === undefined ? 'PostgreSQL (apt-get install postgresql)' : root && pgUser === undefined ? 'the postgres user (apt-get install postgresql)' : undefined;
  if (missing !== undefined) {
    const reason = `needs ${missing}`;
    if (inCI() || t === undefined) throw new Error(`CI=true and this test cannot run: ${reason}`);
    t.skip(reason);
    return undefined;
  }
  const kept = opts.dir !== undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'forge-pg-'));
  if (kept) mkdirSync(dir, { recursive: true });
  const data = join(dir, 'data');
  const socketDir = dir;
  const as = (cmd: string, args: string[]): void => {
    const full = join(bin!, cmd);
    if (pgUser !== undefined) execFileSync('runuser', ['-u', pgUser, '--', full, ...args], { stdio: 'pipe' });
    else execFileSync(full, args, { stdio: 'pipe' });
  };
  if (pgUser !== undefined) {
    const uid = Number(execFileSync('id', ['-u', pgUser]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', pgUser]).toString().trim());
    chownSync(dir, uid, gid);
    chmodSync(dir, 0o755);
  }
  try {
    if (!existsSync(join(data, 'PG_VERSION'))) as('initdb', ['-D', data, '-U', 'forge', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    const fsync = opts.fsync === true ? '' : ' -c fsync=off';
    as('pg_ctl', ['-D', data, '-w', '-t', '60', '-l', join(dir, 'log'), '-o', `-k ${socketDir} -c listen_addresses=''${fsync} -c max_connections=200`, 'start']);
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    if (!kept) rmSync(dir, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${err.stderr?.toString() ?? err.message}`);
  }
  const url = (db: string): string => `postgres://forge@/${db}?host=${encodeURIComponent(socketDir)}`;
  let n = 0;
  const sql = async (db: string, text: string): Promise<pg.QueryResultRow[]> => {
    const c = new pg.Client({ connectionString: url(db) });
    await c.connect();
    try {
      return (await c.query(text)).rows;
    } finally {
      await c.end();
    }
  };
  return {
    socketDir,
    url,
    sql,
    pid: () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]),
    async createDatabase(prefix = 'forge'): Promise<string> {
      const name = `${prefix}_${process.pid}_${++n}`;
      await sql('postgres', `CREATE DATABASE ${name}`);
      return url(name);
    },
    async stop(): Promise<void> {
      try {
        as('pg_ctl', ['-D', data, '-w', '-t', '60', '-m', 'fast', 'stop']);
      } finally {
        if (!kept) rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
