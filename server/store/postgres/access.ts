/**
 * The security tables in PostgreSQL (migration 4; SQLite's are in
 * store/sqlite/access.ts, same behaviour): install windows, API tokens kept
 * as SHA-256 digests, the audit log, and event retention.
 */
import type { ApiTokenInfo, AuditEntry, InstallWindow, NewAudit, Role } from '../../core/access.js';
import { ForgeError } from '../../errors.js';
import { newInstallToken } from '../sqlite/access.js';
import type { Client, Db } from './db.js';
import { GroupWriter } from './batch.js';

const OPEN = `INSERT INTO install_windows (system, token, opened, closed) VALUES ($1, $2, $3, NULL)
  ON CONFLICT (system) DO UPDATE SET token = excluded.token, opened = excluded.opened, closed = NULL`;

export const AUDIT_COLS = 'time, actor, role, client, action, object_type, object, detail';
export const auditRow = (e: NewAudit): string[] => [e.time ?? new Date().toISOString(), e.actor, e.role, e.client, e.action, e.object_type, e.object, JSON.stringify(e.detail)];

interface TokenRow {
  id: number;
  role: Role;
  comment: string;
  created: string;
  revoked: string | null;
}

export class PgAccess {
  constructor(private readonly db: Db) {}

  async installWindow(system: string): Promise<InstallWindow | undefined> {
    return (await this.db.query<InstallWindow & Record<string, unknown>>('SELECT system, token, opened, closed FROM install_windows WHERE system = $1', [system]))[0];
  }

  async installWindows(systems: readonly string[]): Promise<InstallWindow[]> {
    return this.db.query<InstallWindow & Record<string, unknown>>('SELECT system, token, opened, closed FROM install_windows WHERE system = ANY($1::text[])', [systems]);
  }

  /** The column is COLLATE "C" (migration 4): byte order, as SQLite's, on the primary key's index. */
  async installWindowsPage(after: string, limit: number): Promise<InstallWindow[]> {
    return this.db.query<InstallWindow & Record<string, unknown>>(
      'SELECT system, token, opened, closed FROM install_windows WHERE system > $1 ORDER BY system LIMIT $2',
      [after, limit],
    );
  }

  /** Inside the object write's transaction. */
  async netbootChanged(c: Client, system: string, on: boolean): Promise<void> {
    const now = new Date().toISOString();
    if (on) await c.query(OPEN, [system, newInstallToken(), now]);
    else await c.query('UPDATE install_windows SET closed = $1 WHERE system = $2 AND closed IS NULL', [now, system]);
  }

  async rotate(system: string): Promise<InstallWindow> {
    await this.db.query(OPEN, [system, newInstallToken(), new Date().toISOString()]);
    return (await this.installWindow(system))!;
  }

  async createToken(role: Role, comment: string, hash: string): Promise<ApiTokenInfo> {
    const created = new Date().toISOString();
    const r = await this.db.query<{ id: number } & Record<string, unknown>>('INSERT INTO api_tokens (role, comment, hash, created) VALUES ($1, $2, $3, $4) RETURNING id', [role, comment, hash, created]);
    return { id: Number(r[0]!.id), role, comment, created, revoked: null };
  }

  async listTokens(): Promise<ApiTokenInfo[]> {
    return (await this.db.query<TokenRow & Record<string, unknown>>('SELECT id, role, comment, created, revoked FROM api_tokens ORDER BY id')).map((r) => ({ id: Number(r.id), role: r.role, comment: r.comment, created: r.created, revoked: r.revoked }));
  }

  async tokenByHash(hash: string): Promise<ApiTokenInfo | undefined> {
    const r = (await this.db.query<TokenRow & Record<string, unknown>>('SELECT id, role, comment, created, revoked FROM api_tokens WHERE hash = $1 AND revoked IS NULL', [hash]))[0];
    return r === undefined ? undefined : { id: Number(r.id), role: r.role, comment: r.comment, created: r.created, revoked: r.revoked };
  }

  async revokeToken(id: number): Promise<ApiTokenInfo> {
    const all = await this.listTokens();
    const row = all.find((t) => t.id === id);
    if (row === undefined) throw new ForgeError('NOT_FOUND', `token ${id} does not exist`, { field: 'id' });
    if (row.revoked !== null) return row;
    const revoked = new Date().toISOString();
    await this.db.query('UPDATE api_tokens SET revoked = $1 WHERE id = $2 AND revoked IS NULL', [revoked, id]);
    return { ...row, revoked };
  }

  /** Audit rows of concurrent requests share one INSERT (postgres/batch.ts). */
  private readonly auditWriter = new GroupWriter<NewAudit, void>(
    async (es) => {
      const cols: string[][] = [[], [], [], [], [], [], [], []];
      for (const e of es) auditRow(e).forEach((v, i) => cols[i]!.push(v));
      await this.db.query(`INSERT INTO audit (${AUDIT_COLS}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])`, cols);
      return es.map(() => undefined);
    },
    async (e) => {
      await this.db.query(`INSERT INTO audit (${AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, auditRow(e));
    },
  );

  /** Inside an object write's transaction (WriteOptions.audit). */
  async addAuditIn(c: Client, e: NewAudit): Promise<void> {
    await c.query(`INSERT INTO audit (${AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, auditRow(e));
  }

  addAudit(e: NewAudit): Promise<void> {
    return this.auditWriter.write(e);
  }

  drain(): Promise<void> {
    return this.auditWriter.drain();
  }

  async listAudit(q: { since?: string; object?: string; limit?: number } = {}): Promise<AuditEntry[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.since !== undefined) {
      args.push(q.since);
      where.push(`time >= $${args.length}`);
    }
    if (q.object !== undefined && q.object !== '') {
      const slash = q.object.indexOf('/');
      if (slash > 0) {
        args.push(q.object.slice(0, slash), q.object.slice(slash + 1));
        where.push(`object_type = $${args.length - 1} AND object = $${args.length}`);
      } else {
        args.push(q.object);
        where.push(`(object_type = $${args.length} OR object = $${args.length})`);
      }
    }
    args.push(q.limit ?? 1000);
    const rows = await this.db.query<Record<string, unknown>>(
      `SELECT * FROM (SELECT * FROM audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${args.length}) t ORDER BY id`,
      args,
    );
    return rows.map((r) => ({
      id: Number(r['id']), time: String(r['time']), actor: String(r['actor']), role: r['role'] as AuditEntry['role'], client: String(r['client']),
      action: String(r['action']), object_type: String(r['object_type']), object: String(r['object']), detail: JSON.parse(String(r['detail'])) as Record<string, unknown>,
    }));
  }

  async pruneAudit(before: string, chunk: number): Promise<number> {
    const r = await this.db.query<{ id: string } & Record<string, unknown>>('DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < $1 ORDER BY id LIMIT $2) RETURNING id', [before, chunk]);
    return r.length;
  }

  /** As SQLite's EventRows.prune: age, then the per-system cap; the newest install_done of a system stays. */
  async pruneEvents(before: string, perSystem: number, chunk: number): Promise<number> {
    const keep = `(e.type = 'install_done' AND e.id = (SELECT max(e2.id) FROM events e2 WHERE e2.system = e.system AND e2.type = 'install_done'))`;
    let n = (await this.db.query<Record<string, unknown>>(`DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE time < $1 AND NOT ${keep} ORDER BY time LIMIT $2) RETURNING id`, [before, chunk])).length;
    if (n < chunk) {
      n += (
        await this.db.query<Record<string, unknown>>(
          `DELETE FROM events WHERE id IN (
             SELECT id FROM (SELECT e.id, e.type, e.system, row_number() OVER (PARTITION BY e.system ORDER BY e.id DESC) AS rn FROM events e) r
             WHERE r.rn > $1 AND NOT (r.type = 'install_done' AND r.id = (SELECT max(e2.id) FROM events e2 WHERE e2.system = r.system AND e2.type = 'install_done'))
             ORDER BY r.id LIMIT $2) RETURNING id`,
          [perSystem, chunk - n],
        )
      ).length;
    }
    return n;
  }
}
