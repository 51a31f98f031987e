/**
 * The security tables (migration 5): install_windows (per-install tokens,
 * core/access.ts), api_tokens (role tokens, stored as SHA-256 digests) and
 * audit (writes and failed authentication).
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { ApiTokenInfo, AuditEntry, InstallWindow, NewAudit, Role } from '../../core/access.js';
import { ForgeError } from '../../errors.js';
import type { WriteQueue } from './queue.js';

/** Random bytes drawn 4 KiB at a time (256 tokens), each byte handed out once. */
const POOL = 4096;
let pool = Buffer.alloc(0);
let taken = POOL;

/**
 * A fresh install token: 128 random bits as hex (URL-safe everywhere, GRUB included). From the
 * same CSPRNG as randomBytes(16), but a fill of 4 KiB serves 256 tokens: one call per system
 * added was 3 % of an API add's CPU (issue 19 profile). Node's randomUUID() pools the same way.
 */
export function newInstallToken(): string {
  if (taken + 16 > POOL) {
    pool = randomBytes(POOL);
    taken = 0;
  }
  const token = pool.toString('hex', taken, taken + 16);
  // Zero what was handed out: no later read of the pool can see a token.
  pool.fill(0, taken, taken + 16);
  taken += 16;
  return token;
}

export class InstallRows {
  private readonly sel: Database.Statement;
  private readonly page: Database.Statement;
  private readonly open: Database.Statement;
  private readonly close: Database.Statement;

  constructor(
    db: Database.Database,
    private readonly queue: WriteQueue,
  ) {
    this.sel = db.prepare('SELECT system, token, opened, closed FROM install_windows WHERE system = ?');
    this.page = db.prepare('SELECT system, token, opened, closed FROM install_windows WHERE system > ? ORDER BY system LIMIT ?');
    this.open = db.prepare(
      'INSERT INTO install_windows (system, token, opened, closed) VALUES (?, ?, ?, NULL) ON CONFLICT(system) DO UPDATE SET token = excluded.token, opened = excluded.opened, closed = NULL',
    );
    this.close = db.prepare('UPDATE install_windows SET closed = ? WHERE system = ? AND closed IS NULL');
  }

  get(system: string): InstallWindow | undefined {
    return this.sel.get(system) as InstallWindow | undefined;
  }

  pageAfter(after: string, limit: number): InstallWindow[] {
    return this.page.all(after, limit) as InstallWindow[];
  }

  /** Inside a write: netboot turned on (a new install, a new token) or off (the window starts closing). */
  netbootChanged(system: string, on: boolean): void {
    const now = new Date().toISOString();
    if (on) this.open.run(system, newInstallToken(), now);
    else this.close.run(now, system);
  }

  /** A reinstall: a new token even when netboot was on already. */
  async rotate(system: string): Promise<InstallWindow> {
    return this.queue.write(() => {
      this.open.run(system, newInstallToken(), new Date().toISOString());
      return this.get(system)!;
    });
  }
}

interface TokenRow {
  id: number;
  role: Role;
  comment: string;
  created: string;
  revoked: string | null;
}

export class TokenRows {
  constructor(
    private readonly db: Database.Database,
    private readonly queue: WriteQueue,
  ) {}

  async create(role: Role, comment: string, hash: string): Promise<ApiTokenInfo> {
    return this.queue.write(() => {
      const created = new Date().toISOString();
      const id = Number(this.db.prepare('INSERT INTO api_tokens (role, comment, hash, created) VALUES (?, ?, ?, ?)').run(role, comment, hash, created).lastInsertRowid);
      return { id, role, comment, created, revoked: null };
    });
  }

  list(): ApiTokenInfo[] {
    return this.db.prepare('SELECT id, role, comment, created, revoked FROM api_tokens ORDER BY id').all() as TokenRow[];
  }

  /** The live (not revoked) token with this digest. */
  byHash(hash: string): ApiTokenInfo | undefined {
    return this.db.prepare('SELECT id, role, comment, created, revoked FROM api_tokens WHERE hash = ? AND revoked IS NULL').get(hash) as TokenRow | undefined;
  }

  async revoke(id: number): Promise<ApiTokenInfo> {
    return this.queue.write(() => {
      const row = this.db.prepare('SELECT id, role, comment, created, revoked FROM api_tokens WHERE id = ?').get(id) as TokenRow | undefined;
      if (row === undefined) throw new ForgeError('NOT_FOUND', `token ${id} does not exist`, { field: 'id' });
      if (row.revoked !== null) return row;
      const revoked = new Date().toISOString();
      this.db.prepare('UPDATE api_tokens SET revoked = ? WHERE id = ?').run(revoked, id);
      return { ...row, revoked };
    });
  }
}

interface AuditRow extends Omit<AuditEntry, 'detail'> {
  detail: string;
}

export interface AuditQuery {
  since?: string;
  /** `TYPE/NAME`, `TYPE` or `NAME` (matched on either). */
  object?: string;
  limit?: number;
}

export class AuditRows {
  private readonly ins: Database.Statement;

  constructor(
    private readonly db: Database.Database,
    private readonly queue: WriteQueue,
  ) {
    this.ins = db.prepare('INSERT INTO audit (time, actor, role, client, action, object_type, object, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  }

  /** Inside a write (the object write's own audit row, WriteOptions.audit). */
  addSync(e: NewAudit): void {
    this.ins.run(e.time ?? new Date().toISOString(), e.actor, e.role, e.client, e.action, e.object_type, e.object, JSON.stringify(e.detail));
  }

  async add(e: NewAudit): Promise<void> {
    await this.queue.write(() => this.addSync(e));
  }

  list(q: AuditQuery = {}): AuditEntry[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.since !== undefined) {
      where.push('time >= ?');
      args.push(q.since);
    }
    if (q.object !== undefined && q.object !== '') {
      const slash = q.object.indexOf('/');
      if (slash > 0) {
        where.push('object_type = ? AND object = ?');
        args.push(q.object.slice(0, slash), q.object.slice(slash + 1));
      } else {
        where.push('(object_type = ? OR object = ?)');
        args.push(q.object, q.object);
      }
    }
    const sql = `SELECT * FROM (SELECT * FROM audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?) ORDER BY id`;
    const rows = this.db.prepare(sql).all(...args, q.limit ?? 1000) as AuditRow[];
    return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }

  /** Entries older than `before`, at most `chunk` per call (cleanup runs in small steps). */
  async prune(before: string, chunk: number): Promise<number> {
    return this.queue.write(() => this.db.prepare('DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < ? ORDER BY id LIMIT ?)').run(before, chunk).changes);
  }
}
