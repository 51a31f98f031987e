/**
 * Event and audit retention, run by itself: a first pass shortly after start,
 * then every RETENTION_INTERVAL_MS. Each pass deletes in chunks of
 * RETENTION_CHUNK rows (one short transaction each) and yields to the event
 * loop between chunks, so a backlog of millions never blocks DHCP/TFTP/HTTP.
 *   events: older than events_keep_days, and beyond events_per_system per
 *           system (the oldest first; a system's newest install_done stays);
 *   audit:  older than audit_keep_days.
 */
import type { ForgeConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';

export const RETENTION_FIRST_MS = 5_000;
export const RETENTION_INTERVAL_MS = 10 * 60_000;
export const RETENTION_CHUNK = 500;

type RetentionConfig = Pick<ForgeConfig, 'events_keep_days' | 'events_per_system' | 'audit_keep_days'>;

const daysAgo = (days: number, now: number): string => new Date(now - days * 86_400_000).toISOString();
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** One full pass; returns what it deleted. */
export async function runRetention(store: Store, config: RetentionConfig, now = Date.now()): Promise<{ events: number; audit: number }> {
  let events = 0;
  let audit = 0;
  for (;;) {
    const n = await store.pruneEvents(daysAgo(config.events_keep_days, now), config.events_per_system, RETENTION_CHUNK);
    events += n;
    if (n === 0) break;
    await turn();
  }
  for (;;) {
    const n = await store.pruneAudit(daysAgo(config.audit_keep_days, now), RETENTION_CHUNK);
    audit += n;
    if (n === 0) break;
    await turn();
  }
  return { events, audit };
}

/** Starts the timer; the returned function stops it. */
export function startRetention(store: Store, config: RetentionConfig, log: Logger): () => void {
  const rlog = log.child('retention');
  let running = false;
  const pass = (): void => {
    if (running) return;
    running = true;
    runRetention(store, config)
      .then((r) => {
        if (r.events > 0 || r.audit > 0) rlog.info('old events and audit entries deleted', { events: r.events, audit: r.audit, events_keep_days: config.events_keep_days, events_per_system: config.events_per_system });
      })
      .catch((e: unknown) => rlog.warn('retention pass failed', { err: e }))
      .finally(() => {
        running = false;
      });
  };
  const first = setTimeout(pass, RETENTION_FIRST_MS);
  const every = setInterval(pass, RETENTION_INTERVAL_MS);
  first.unref();
  every.unref();
  return () => {
    clearTimeout(first);
    clearInterval(every);
  };
}
