/** The `events` table: each system's lifecycle timeline. */
import type Database from 'better-sqlite3';
import type { ForgeEvent } from '../../core/model.js';
import type { EventOnce, NewEvent } from '../store.js';
import { onceMatch, rowToEvent, type EventRow } from '../common.js';
import type { WriteQueue } from './queue.js';

/** The row retention never deletes: its system's newest install_done (the NoCloud instance-id). */
const KEEP = `(e.type = 'install_done' AND e.id = (SELECT max(e2.id) FROM events e2 WHERE e2.system = e.system AND e2.type = 'install_done'))`;

export class EventRows {
  /** Systems that got events since their cap was last enforced (bounded). */
  private readonly touched = new Set<string>();
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
    // At open (before anything is served): every system with events gets its cap checked once.
    for (const r of db.prepare('SELECT DISTINCT system FROM events LIMIT 100000').all() as { system: string }[]) this.touched.add(r.system);
  }

  async add(ev: NewEvent): Promise<ForgeEvent> {
    const time = ev.time ?? new Date().toISOString();
    const detail = ev.detail ?? {};
    if (this.touched.size < 100_000) this.touched.add(ev.system);
    const id = await this.queue.write(() =>
      Number(this.insEvent.run(ev.system, ev.type, ev.source, time, JSON.stringify(detail)).lastInsertRowid),
    );
    return { id, system: ev.system, type: ev.type, source: ev.source, time, detail };
  }

  /**
   * add() unless the same event is there (EventOnce): the check and the insert run in one write
   * of the queue, so no other write of this store comes between them.
   */
  async addOnce(ev: NewEvent, once: EventOnce): Promise<ForgeEvent | undefined> {
    const time = ev.time ?? new Date().toISOString();
    const detail = ev.detail ?? {};
    const match = Object.entries(onceMatch(detail, once));
    const sql = `SELECT 1 FROM events WHERE system = ? AND type = ? AND time >= ?${match.map(() => ' AND json_extract(detail, ?) IS ?').join('')} LIMIT 1`;
    const args = [ev.system, ev.type, once.since, ...match.flatMap(([k, v]) => [`$."${k.replace(/"/g, '')}"`, v])];
    const id = await this.queue.write(() => {
      if (this.db.prepare(sql).get(...args) !== undefined) return undefined;
      return Number(this.insEvent.run(ev.system, ev.type, ev.source, time, JSON.stringify(detail)).lastInsertRowid);
    });
    if (id === undefined) return undefined;
    if (this.touched.size < 100_000) this.touched.add(ev.system);
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

  /**
   * Retention, one bounded step (the cleanup timer calls it until it returns
   * 0, yielding between calls, so a big backlog never blocks the event
   * loop): deletes at most `chunk` events older than `before`, and of the
   * systems that got events since the last step, at most `chunk` events
   * beyond the newest `perSystem`. A system's newest install_done is always
   * kept (its id is the NoCloud instance-id, render/service.ts).
   */
  async prune(before: string, perSystem: number, chunk: number): Promise<number> {
    return this.queue.write(() => {
      let n = this.db.prepare(`DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE time < ? AND NOT ${KEEP} ORDER BY time LIMIT ?)`).run(before, chunk).changes;
      for (const system of [...this.touched]) {
        if (chunk - n <= 0) break;
        // The id of the newest event past the cap (index events_system: O(perSystem)).
        const edge = this.db.prepare('SELECT id FROM events WHERE system = ? ORDER BY id DESC LIMIT 1 OFFSET ?').get(system, perSystem) as { id: number } | undefined;
        if (edge === undefined) {
          this.touched.delete(system);
          continue;
        }
        const d = this.db.prepare(`DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE system = ? AND id <= ? AND NOT ${KEEP} ORDER BY id LIMIT ?)`).run(system, edge.id, chunk - n).changes;
        n += d;
        if (d === 0) this.touched.delete(system);
      }
      return n;
    });
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
