/**
 * The `events` table in PostgreSQL, and the feed that carries every
 * server's events to every server (LISTEN/NOTIFY).
 *
 * Writes are queued in call order and each batch is one statement (its own
 * transaction, INSERT_EVENTS) that
 * takes the events advisory lock before inserting: ids are then handed out
 * in commit order across all servers, so a reader that has seen id N and
 * asks for `id > N` never skips an event another server committed late.
 * The COMMIT sends one NOTIFY (payload: the batch's last id); every
 * listening server then reads `id > last seen` and publishes in id order.
 * A listener that loses its connection reconnects and catches up the same
 * way, so a dropped notification loses nothing.
 */
import pg from 'pg';
import type { ForgeEvent } from '../../core/model.js';
import type { EventOnce, NewEvent } from '../store.js';
import { onceMatch, rowToEvent, type EventRow } from '../common.js';
import type { Client, Db } from './db.js';
import { LOCKS } from './migrations.js';
import { OrderedWrites } from './ordered.js';

export const EVENTS_CHANNEL = 'forge_events';

/**
 * A batch of events as one statement, so one round trip (it was five: BEGIN, lock, INSERT,
 * NOTIFY, COMMIT, per batch of a boot config's event). The lock CTE is volatile, so it is
 * materialised and runs before the first row reaches the INSERT, whose ids (nextval per row,
 * in batch order: ORDER BY ord) are then handed out under the lock, held to the statement's
 * commit: ids stay in commit order across servers. The NOTIFY (the last id) goes out at commit.
 */
const INSERT_EVENTS = `
  WITH l AS (SELECT pg_advisory_xact_lock($6)),
  ins AS (
    INSERT INTO events (system, type, source, time, detail)
    SELECT x.system, x.type, x.source, x.time, x.detail FROM l, unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS x(system, type, source, time, detail, ord) ORDER BY x.ord
    RETURNING id
  ),
  n AS (SELECT pg_notify('${EVENTS_CHANNEL}', max(id)::text) FROM ins)
  SELECT ins.id FROM ins, n ORDER BY ins.id`;

/**
 * One event unless the same one is already there (EventOnce), under the events lock that the
 * batch's transaction took in a statement before this one: READ COMMITTED gives each statement
 * a snapshot of its own start (PostgreSQL docs 13.2.1), so this one sees every event any server
 * committed before the lock was granted, and no server can commit the same event until this
 * transaction ends. Nothing inserted: no row, no NOTIFY.
 */
const INSERT_EVENT_ONCE = `
  WITH ins AS (
    INSERT INTO events (system, type, source, time, detail)
    SELECT $1, $2, $3, $4, $5
    WHERE NOT EXISTS (SELECT 1 FROM events WHERE system = $1 AND type = $2 AND time >= $6 AND detail::jsonb @> $7::jsonb)
    RETURNING id
  ),
  n AS (SELECT pg_notify('${EVENTS_CHANNEL}', id::text) FROM ins)
  SELECT ins.id FROM ins, n`;

type QueuedEvent = NewEvent & { time: string; detail: Record<string, unknown>; once?: EventOnce };

export class PgEvents {
  private readonly writes: OrderedWrites<QueuedEvent, number | undefined>;

  constructor(private readonly db: Db) {
    const insertAll = async (c: Client, batch: QueuedEvent[]): Promise<number[]> => {
      const cols: string[][] = [[], [], [], [], []];
      for (const e of batch) [e.system, e.type, e.source, e.time, JSON.stringify(e.detail)].forEach((v, i) => cols[i]!.push(v));
      const ids = (await c.query<{ id: string }>(INSERT_EVENTS, [...cols, LOCKS.events])).rows.map((r) => Number(r.id));
      if (ids.length !== batch.length) throw new Error(`events: ${ids.length} of ${batch.length} written`);
      return ids;
    };
    this.writes = new OrderedWrites(
      db,
      async (c, batch) => {
        if (batch.every((e) => e.once === undefined)) return insertAll(c, batch);
        // In a transaction (oneStatement below): the lock first, then runs of plain events and
        // each conditional one in call order, every statement under the lock.
        await c.query('SELECT pg_advisory_xact_lock($1)', [LOCKS.events]);
        const out: (number | undefined)[] = [];
        for (let i = 0; i < batch.length; ) {
          const e = batch[i]!;
          if (e.once !== undefined) {
            const r = await c.query<{ id: string }>(INSERT_EVENT_ONCE, [e.system, e.type, e.source, e.time, JSON.stringify(e.detail), e.once.since, JSON.stringify(onceMatch(e.detail, e.once))]);
            out.push(r.rows[0] === undefined ? undefined : Number(r.rows[0].id));
            i++;
            continue;
          }
          let j = i;
          while (j < batch.length && batch[j]!.once === undefined) j++;
          out.push(...(await insertAll(c, batch.slice(i, j))));
          i = j;
        }
        return out;
      },
      500,
      (batch) => batch.every((e) => e.once === undefined),
    );
  }

  async add(ev: NewEvent): Promise<ForgeEvent> {
    const time = ev.time ?? new Date().toISOString();
    const detail = ev.detail ?? {};
    const id = await this.writes.write({ ...ev, time, detail });
    if (id === undefined) throw new Error('events: an unconditional event was not written');
    return { id, system: ev.system, type: ev.type, source: ev.source, time, detail };
  }

  async addOnce(ev: NewEvent, once: EventOnce): Promise<ForgeEvent | undefined> {
    const time = ev.time ?? new Date().toISOString();
    const detail = ev.detail ?? {};
    onceMatch(detail, once);
    const id = await this.writes.write({ ...ev, time, detail, once });
    return id === undefined ? undefined : { id, system: ev.system, type: ev.type, source: ev.source, time, detail };
  }

  async list(system: string, opts: { since?: string; limit?: number } = {}): Promise<ForgeEvent[]> {
    const limit = opts.limit ?? 1000;
    const rows =
      opts.since === undefined
        ? await this.db.query<EventRow>('SELECT * FROM events WHERE system = $1 ORDER BY id DESC LIMIT $2', [system, limit])
        : await this.db.query<EventRow>('SELECT * FROM events WHERE system = $1 AND time >= $2 ORDER BY id DESC LIMIT $3', [system, opts.since, limit]);
    return rows.reverse().map(rowToEvent);
  }

  async latest(): Promise<ForgeEvent[]> {
    const rows = await this.db.query<EventRow>('SELECT DISTINCT ON (system) * FROM events ORDER BY system, id DESC');
    return rows.map(rowToEvent);
  }

  async after(afterId: number, limit: number): Promise<ForgeEvent[]> {
    return (await this.db.query<EventRow>('SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT $2', [afterId, limit], 'events_after')).map(rowToEvent);
  }

  async systemRenamed(c: Client, from: string, to: string): Promise<void> {
    await c.query('UPDATE events SET system = $1 WHERE system = $2', [to, from]);
  }

  async systemRemoved(c: Client, name: string): Promise<void> {
    await c.query('DELETE FROM events WHERE system = $1', [name]);
  }

  /** Waits for queued event writes (close). */
  drain(): Promise<void> {
    return this.writes.drain();
  }

  /**
   * Every event committed from now on, by any server, in id order. Returns
   * the stop function. One dedicated connection LISTENs; on a notification
   * (or after reconnecting) it reads everything after the last id it
   * delivered.
   */
  watch(fn: (ev: ForgeEvent) => void, onError: (e: unknown) => void): () => Promise<void> {
    let last: number | undefined;
    let client: pg.Client | undefined;
    let stopped = false;
    let reading: Promise<void> = Promise.resolve();
    let wake = false;
    const catchUp = (): void => {
      wake = true;
      reading = reading.then(async () => {
        while (wake && !stopped) {
          wake = false;
          try {
            if (last === undefined) {
              last = Number((await this.db.query<{ m: string | null }>('SELECT max(id) AS m FROM events'))[0]?.m ?? 0);
            }
            for (;;) {
              const evs = await this.after(last, 1000);
              for (const ev of evs) {
                last = ev.id;
                fn(ev);
              }
              if (evs.length < 1000) break;
            }
          } catch (e) {
            onError(e);
          }
        }
      });
    };
    const connect = async (): Promise<void> => {
      if (stopped) return;
      const c = new pg.Client({ connectionString: this.db.url });
      c.on('notification', () => catchUp());
      const retry = (e: unknown): void => {
        if (stopped || client !== c) return;
        client = undefined;
        onError(e);
        c.end().catch(() => undefined);
        setTimeout(() => void connect(), 1000).unref();
      };
      c.on('error', retry);
      c.on('end', () => retry(new Error('event listener connection closed')));
      client = c;
      try {
        await c.connect();
        await c.query(`LISTEN ${EVENTS_CHANNEL}`);
        catchUp(); // anything committed while (re)connecting
      } catch (e) {
        retry(e);
      }
    };
    // The starting point is fixed before listening: nothing committed after watch() is missed.
    catchUp();
    void connect();
    return async () => {
      stopped = true;
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
      await reading;
    };
  }
}
