/**
 * The `discovered` and `rules` tables: machines that PXE-booted forge's
 * discovery image with a MAC no system has, their reported facts, and the
 * rules that turn them into systems.
 */
import type Database from 'better-sqlite3';
import { ForgeError } from '../../errors.js';
import type { Discovered, Rule } from '../../discovery/model.js';
import type { WriteQueue } from './queue.js';

interface DiscRow {
  name: string;
  mac: string;
  data: string;
}

export class DiscoveryRows {
  constructor(
    private readonly db: Database.Database,
    private readonly queue: WriteQueue,
  ) {}

  getByMac(mac: string): Discovered | undefined {
    const r = this.db.prepare('SELECT data FROM discovered WHERE mac = ?').get(mac) as DiscRow | undefined;
    return r === undefined ? undefined : (JSON.parse(r.data) as Discovered);
  }

  get(name: string): Discovered | undefined {
    const r = this.db.prepare('SELECT data FROM discovered WHERE name = ?').get(name) as DiscRow | undefined;
    return r === undefined ? undefined : (JSON.parse(r.data) as Discovered);
  }

  list(): Discovered[] {
    return (this.db.prepare('SELECT data FROM discovered ORDER BY name').all() as DiscRow[]).map((r) => JSON.parse(r.data) as Discovered);
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM discovered').get() as { n: number }).n;
  }

  /** Insert or replace by MAC (the name is kept on replace). */
  put(d: Discovered): Promise<Discovered> {
    return this.queue.write(() => {
      this.db
        .prepare('INSERT INTO discovered (name, mac, data) VALUES (?, ?, ?) ON CONFLICT(mac) DO UPDATE SET data = excluded.data')
        .run(d.name, d.mac, JSON.stringify(d));
      return d;
    });
  }

  remove(name: string): Promise<void> {
    return this.queue.write(() => {
      const n = this.db.prepare('DELETE FROM discovered WHERE name = ?').run(name).changes;
      if (n === 0) throw new ForgeError('NOT_FOUND', `discovered ${name}: no such machine`, { field: 'name' });
    });
  }

  listRules(): Rule[] {
    return (this.db.prepare('SELECT data FROM rules ORDER BY priority, name').all() as { data: string }[]).map((r) => JSON.parse(r.data) as Rule);
  }

  getRule(name: string): Rule | undefined {
    const r = this.db.prepare('SELECT data FROM rules WHERE name = ?').get(name) as { data: string } | undefined;
    return r === undefined ? undefined : (JSON.parse(r.data) as Rule);
  }

  putRule(rule: Rule, create: boolean): Promise<Rule> {
    return this.queue.write(() => {
      if (create) {
        const exists = this.db.prepare('SELECT 1 FROM rules WHERE name = ?').get(rule.name);
        if (exists !== undefined) throw new ForgeError('DUPLICATE_NAME', `rule ${rule.name} exists`, { field: 'name' });
      }
      this.db
        .prepare('INSERT INTO rules (name, priority, data) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET priority = excluded.priority, data = excluded.data')
        .run(rule.name, rule.priority, JSON.stringify(rule));
      return rule;
    });
  }

  removeRule(name: string): Promise<void> {
    return this.queue.write(() => {
      const n = this.db.prepare('DELETE FROM rules WHERE name = ?').run(name).changes;
      if (n === 0) throw new ForgeError('NOT_FOUND', `rule ${name}: no such rule`, { field: 'name' });
    });
  }
}
