/** The `events` table: each system's lifecycle timeline. */
import type Database from 'better-sqlite3';
import type { ForgeEvent } from '../../core/model.js';
import type { NewEvent } from '../store.js';
import { rowToEvent, type EventRow } from '../common.js';
import type { WriteQueue } from './queue.js';

export class EventRows {
  private readonly insEvent: Database.Statement;
  private readonly renameSystem: Database.Statement;
  private readonly removeSystem: Database.Statement;

  constructor(
    private readonly db: Database.Database,
    private readonly queue: WriteQueue,
  ) {
    this.insEvent = db.prepare('INSERT INTO events (system, type, source, time, detail) VALUES (?, ?, ?, ?, ?)');
    this.renameSystem = db.prepare('UPDATE events SET system = ? WHERE system = ?');
    this.removeSystem = db.prepare('DELETE FROM events WHERE system = ?');
  }

  async add(ev: NewEvent): Promise<ForgeEvent> {
    const time = ev.time ?? new Date().toISOString();
    const detail = ev.detail ?? {};
    const id = await this.queue.write(() =>
      Number(this.insEvent.run(ev.system, ev.type, ev.source, time, JSON.stringify(detail)).lastInsertRowid),
    );
    return { id, system: ev.system, type: ev.type, source: ev.source, time, detail };
  }

  list(system: string, opts: { since?: string; limit?: number } = {}): ForgeEvent[] {
    const limit = opts.limit ?? 1000;
    const rows = (
      opts.since === undefined
        ? this.db.prepare('SELECT * FROM events WHERE system = ? ORDER BY id DESC LIMIT ?').all(system, limit)
        : this.db
            .prepare('SELECT * FROM events WHERE system = ? AND time >= ? ORDER BY id DESC LIMIT ?')
            .all(system, opts.since, limit)
    ) as EventRow[];
    return rows.reverse().map(rowToEvent);
  }

  latest(): ForgeEvent[] {
    const rows = this.db
      .prepare('SELECT * FROM events WHERE id IN (SELECT max(id) FROM events GROUP BY system) ORDER BY system')
      .all() as EventRow[];
    return rows.map(rowToEvent);
  }

  after(afterId: number, limit: number): ForgeEvent[] {
    const rows = this.db.prepare('SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as EventRow[];
    return rows.map(rowToEvent);
  }

  /** Inside a write: the timeline follows a renamed system. */
  systemRenamed(from: string, to: string): void {
    this.renameSystem.run(to, from);
  }

  /** Inside a write: a removed system's timeline goes with it. */
  systemRemoved(name: string): void {
    this.removeSystem.run(name);
  }
}
