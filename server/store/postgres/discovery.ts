/** The `discovered` and `rules` tables in PostgreSQL (see store/sqlite/discovery.ts). */
import { ForgeError } from '../../errors.js';
import type { Discovered, Rule } from '../../discovery/model.js';
import type { Db } from './db.js';

const parse = <T>(rows: { data: string }[]): T[] => rows.map((r) => JSON.parse(r.data) as T);

export class PgDiscovery {
  constructor(private readonly db: Db) {}

  async getByMac(mac: string): Promise<Discovered | undefined> {
    return parse<Discovered>(await this.db.query('SELECT data FROM discovered WHERE mac = $1', [mac], 'discovered_by_mac'))[0];
  }

  async get(name: string): Promise<Discovered | undefined> {
    return parse<Discovered>(await this.db.query('SELECT data FROM discovered WHERE name = $1', [name]))[0];
  }

  async list(): Promise<Discovered[]> {
    return parse<Discovered>(await this.db.query('SELECT data FROM discovered ORDER BY name'));
  }

  async count(): Promise<number> {
    return Number((await this.db.query<{ n: string }>('SELECT count(*) AS n FROM discovered'))[0]?.n ?? 0);
  }

  /** Insert or replace by MAC (the name is kept on replace). */
  async put(d: Discovered): Promise<Discovered> {
    await this.db.query('INSERT INTO discovered (name, mac, data) VALUES ($1, $2, $3) ON CONFLICT (mac) DO UPDATE SET data = excluded.data', [d.name, d.mac, JSON.stringify(d)]);
    return d;
  }

  async remove(name: string): Promise<void> {
    const rows = await this.db.query('DELETE FROM discovered WHERE name = $1 RETURNING name', [name]);
    if (rows.length === 0) throw new ForgeError('NOT_FOUND', `discovered ${name}: no such machine`, { field: 'name' });
  }

  async listRules(): Promise<Rule[]> {
    return parse<Rule>(await this.db.query('SELECT data FROM rules ORDER BY priority, name'));
  }

  async getRule(name: string): Promise<Rule | undefined> {
    return parse<Rule>(await this.db.query('SELECT data FROM rules WHERE name = $1', [name]))[0];
  }

  /** `create`: an INSERT the primary key refuses for an existing name, whichever server has it. */
  async putRule(rule: Rule, create: boolean): Promise<Rule> {
    const values = [rule.name, rule.priority, JSON.stringify(rule)];
    if (create) {
      const rows = await this.db.query('INSERT INTO rules (name, priority, data) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING name', values);
      if (rows.length === 0) throw new ForgeError('DUPLICATE_NAME', `rule ${rule.name} exists`, { field: 'name' });
    } else {
      await this.db.query('INSERT INTO rules (name, priority, data) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET priority = excluded.priority, data = excluded.data', values);
    }
    return rule;
  }

  async removeRule(name: string): Promise<void> {
    const rows = await this.db.query('DELETE FROM rules WHERE name = $1 RETURNING name', [name]);
    if (rows.length === 0) throw new ForgeError('NOT_FOUND', `rule ${name}: no such rule`, { field: 'name' });
  }
}
