/**
 * Served-file events recorded off the answer path, in batches (issue 19: a
 * boot config costs ~80 µs to make, and recording its boot_config_served
 * event, a store write of its own and on PostgreSQL a NOTIFY that this
 * server's feed reads back, cost more than that per request).
 *
 * `later(ev)` queues an event and returns at once; the queue is written
 * `windowMs` after its first event (or at `maxBatch` events), all of it in
 * one turn, so SQLite commits it once (store/sqlite/queue.ts) and
 * PostgreSQL inserts it in one statement (store/postgres/batch.ts). Nothing
 * is lost or reordered for readers of this server's store:
 *  - every store method that reads or moves events (the timeline, the
 *    stream's replay, renames and removes that carry a system's events, an
 *    export, an import, retention, close) first writes the queue and waits
 *    for it, so a timeline read right after an answer shows its event;
 *  - addEvent and addEventOnce do the same, so events keep call order.
 * What `later` promises is the same as before: the answer was sent before
 * the event was durable. A SIGKILL can lose the last `windowMs` of them (it
 * could lose the last turn's before); SIGTERM writes them (close()).
 */
import type { EventType, ForgeEvent } from '../core/model.js';
import { overlayStore } from './overlay.js';
import type { NewEvent, Store } from './store.js';

/**
 * The events main.ts records with `later`: a file served, fire-and-forget at the answer. An
 * installer's callbacks (install_start/done, written before their answer) and state changes are not.
 */
export const SERVED_EVENTS: ReadonlySet<EventType> = new Set<EventType>(['boot_config_served', 'loader_fetched', 'kernel_fetched', 'initrd_fetched', 'autoinstall_served']);

/** How long a served-file event may wait for others to share its write. */
export const EVENT_BATCH_MS = 20;
const MAX_BATCH = 512;

/**
 * Store methods that read events or move them (by system name): each waits for the queued
 * events first. Every other method (object and lease reads and writes, the DHCP and boot
 * paths) passes straight through.
 */
const ORDERED = ['addEvent', 'addEventOnce', 'listEvents', 'latestEvents', 'eventsAfter', 'rename', 'remove', 'exportAll', 'importAll', 'pruneEvents', 'integrityCheck'] as const;

interface Queued {
  ev: NewEvent;
  resolve: (e: ForgeEvent) => void;
  reject: (e: unknown) => void;
}

export interface DeferredEvents {
  /** The store to serve from: `store` with the ordering rules above. */
  store: Store;
  /** Queue `ev`; resolves with the stored event once its batch is written. */
  later(ev: NewEvent): Promise<ForgeEvent>;
  /** Write the queue now; resolves when every event queued so far is written (or failed). */
  flush(): Promise<void>;
  /** Batches written and events they carried (tests, benchmarks). */
  readonly stats: { batches: number; events: number };
}

export function deferredEvents(store: Store, windowMs = EVENT_BATCH_MS): DeferredEvents {
  let queue: Queued[] = [];
  let timer: NodeJS.Timeout | undefined;
  /** Settles when every batch started so far has. */
  let written: Promise<void> = Promise.resolve();
  const stats = { batches: 0, events: 0 };

  const flush = (): Promise<void> => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (queue.length === 0) return written;
    const batch = queue;
    queue = [];
    stats.batches++;
    stats.events += batch.length;
    // All in this turn: the backends share one commit (SQLite) or one statement (PostgreSQL).
    const done = batch.map((q) => store.addEvent(q.ev).then(q.resolve, q.reject));
    const all = Promise.all(done).then(() => undefined);
    written = Promise.all([written, all]).then(() => undefined);
    return written;
  };

  const later = (ev: NewEvent): Promise<ForgeEvent> =>
    new Promise<ForgeEvent>((resolve, reject) => {
      queue.push({ ev, resolve, reject });
      if (queue.length >= MAX_BATCH) void flush();
      else timer ??= setTimeout(() => void flush(), windowMs);
    });

  const overrides: Partial<Record<keyof Store, unknown>> = {};
  for (const m of ORDERED) {
    const fn = store[m] as (...a: unknown[]) => Promise<unknown>;
    overrides[m] = async (...args: unknown[]): Promise<unknown> => {
      if (queue.length > 0 || timer !== undefined) await flush();
      else await written;
      return fn.apply(store, args);
    };
  }
  overrides.close = async (): Promise<void> => {
    await flush();
    await store.close();
  };
  return { store: overlayStore(store, overrides as Partial<Store>), later, flush, stats };
}
