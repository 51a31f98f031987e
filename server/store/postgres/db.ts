/**
 * The PostgreSQL connection pool, one transaction per write, and the
 * translation of the server's refusals (SQLSTATE and constraint names) into
 * the error catalogue. The database, not this process, is the judge of the
 * referential rules: several forge servers write to one database, and only a
 * constraint or a lock inside the database decides which of two concurrent
 * writes wins.
 */
import pg from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import { ForgeError } from '../../errors.js';

export type Client = Pick<PoolClient, 'query'>;

/** `postgres://forge:secret@db/forge` -> `postgres://forge:***@db/forge` (also `?password=`). */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@?#]*):[^@/?#]*@/, '$1:***@').replace(/([?&]password=)[^&#]*/i, '$1***');
}

/** SQLSTATEs after which the whole transaction is run again (PostgreSQL docs, 13.4 "Serialization Failure Handling"). */
const RETRY = new Set(['40001', '40P01']);

/** SQLSTATE classes 08 (connection exception) and 57P (operator intervention: shutdown, crash). */
const isConnectionError = (code: string): boolean =>
  code.startsWith('08') || code.startsWith('57P') || ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE'].includes(code);

export function pgCode(e: unknown): string {
  return String((e as { code?: unknown }).code ?? '');
}

export class Db {
  readonly pool: pg.Pool;
  /** The URL without its password, for messages. */
  readonly where: string;

  constructor(
    readonly url: string,
    max = 10,
  ) {
    this.where = redactUrl(url);
    this.pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000 });
    // An idle client's connection dropping (server restart) must not crash the process;
    // the next query gets a fresh connection or a STORAGE_UNAVAILABLE.
    this.pool.on('error', () => undefined);
    // The backend process of each pooled connection, from its BackendKeyData (sent once at
    // connect, before the connection runs any query): a NOTIFY carries the sending backend's
    // pid, so the change feed can tell this process's own commits from other servers'.
    this.pool.on('connect', (c) => {
      if ('processID' in c && typeof c.processID === 'number') this.backends.set(c, c.processID);
    });
    this.pool.on('remove', (c) => this.backends.delete(c));
  }

  private readonly backends = new Map<object, number>();

  /** Whether `pid` is the backend of one of this pool's connections (a NOTIFY this process caused). */
  ownBackend(pid: number): boolean {
    for (const p of this.backends.values()) if (p === pid) return true;
    return false;
  }

  /** A storage failure as STORAGE_UNAVAILABLE naming the database (never its password). */
  unavailable(e: unknown): ForgeError {
    const msg = redactUrl((e as Error).message ?? String(e));
    return new ForgeError('STORAGE_UNAVAILABLE', `PostgreSQL at ${this.where}: ${msg}`, { field: 'store', cause: e });
  }

  /** Connection failures become STORAGE_UNAVAILABLE; ForgeErrors and others pass. */
  private translate(e: unknown): unknown {
    if (e instanceof ForgeError) return e;
    if (isConnectionError(pgCode(e)) || /Connection terminated|connection timeout|timeout exceeded when trying to connect/i.test(String((e as Error).message))) {
      return this.unavailable(e);
    }
    return e;
  }

  async query<R extends QueryResultRow>(text: string, values: unknown[] = [], name?: string): Promise<R[]> {
    try {
      const r = await this.pool.query<R>(name === undefined ? { text, values } : { name, text, values });
      return r.rows;
    } catch (e) {
      throw this.translate(e);
    }
  }

  /**
   * Runs `fn` in one transaction (READ COMMITTED unless `isolation` says
   * otherwise): COMMIT when it returns, ROLLBACK when it throws. A
   * serialization failure or deadlock runs it again from the start, up to 8
   * times; `fn` must therefore only touch the database and its own locals.
   */
  async tx<T>(fn: (c: Client) => Promise<T>, isolation: 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE' = 'READ COMMITTED', readOnly = false): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let c: PoolClient;
      try {
        c = await this.pool.connect();
      } catch (e) {
        throw this.translate(e);
      }
      let broken = false;
      try {
        await c.query(`BEGIN ISOLATION LEVEL ${isolation}${readOnly ? ' READ ONLY' : ''}`);
        const r = await fn(c);
        await c.query('COMMIT');
        return r;
      } catch (e) {
        try {
          await c.query('ROLLBACK');
        } catch {
          broken = true;
        }
        if (RETRY.has(pgCode(e)) && attempt < 8) {
          await new Promise((res) => setTimeout(res, Math.random() * 5 * (attempt + 1)));
          continue;
        }
        throw this.translate(e);
      } finally {
        c.release(broken);
      }
    }
  }

  /** Runs `fn`, which issues one statement, outside BEGIN/COMMIT: the statement is its own transaction. */
  async statement<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    try {
      return await fn(this.pool);
    } catch (e) {
      throw this.translate(e);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
