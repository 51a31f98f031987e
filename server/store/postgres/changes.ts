/**
 * Which systems any server wrote, as they commit: the trigger of PostgreSQL
 * migration 6 NOTIFYs `forge_systems` with the name (old and new on a
 * rename) of every systems row written, and PostgreSQL delivers a
 * transaction's notifications when it commits, in commit order (docs,
 * NOTIFY). store/index.ts keeps its in-process index of MACs, addresses and
 * documents fresh from this feed, so an edit on another server reaches this
 * one's DHCP and boot answers without a query per packet.
 */
import pg from 'pg';

export const SYSTEMS_CHANNEL = 'forge_systems';

/**
 * One dedicated connection LISTENs. Notifications are handed over in
 * batches (those that arrived in one turn); after a reconnect `reset` says
 * some may have been missed. Resolves, with the stop function, once LISTEN
 * took effect: a caller that loads after it misses nothing written meanwhile.
 */
export function watchSystems(url: string, fn: (names: string[], own: string[]) => void, reset: () => void, isOwn?: (pid: number) => boolean): Promise<() => Promise<void>> {
  return watchChannel(url, SYSTEMS_CHANNEL, fn, reset, undefined, isOwn);
}

/**
 * The same feed for one channel: `fn` gets the payloads of a turn; `down`
 * (optional) is told at once when the connection is lost, before the
 * reconnect's `reset`, so a cache stops trusting itself for the gap.
 * `isOwn` (optional) sorts the payloads by the backend that sent them (the
 * notification's process id, PostgreSQL protocol NotificationResponse): those
 * of this process's own connections go to `fn`'s second list.
 */
export async function watchChannel(url: string, channel: string, fn: (payloads: string[], own: string[]) => void, reset: () => void, down?: () => void, isOwn?: (pid: number) => boolean): Promise<() => Promise<void>> {
  let client: pg.Client | undefined;
  let stopped = false;
  let batch: string[] = [];
  let mine: string[] = [];
  const deliver = (): void => {
    const names = batch;
    const own = mine;
    batch = [];
    mine = [];
    if (!stopped && names.length + own.length > 0) fn(names, own);
  };
  const connect = async (first: boolean): Promise<void> => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (m) => {
      if (m.channel !== channel || m.payload === undefined) return;
      if (batch.length + mine.length === 0) setImmediate(deliver);
      (isOwn?.(m.processId) === true ? mine : batch).push(m.payload);
    });
    const retry = (): void => {
      if (stopped || client !== c) return;
      client = undefined;
      down?.();
      c.end().catch(() => undefined);
      setTimeout(() => void connect(false), 1000).unref();
    };
    c.on('error', retry);
    c.on('end', retry);
    client = c;
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
      // Writes committed while the connection was down sent nobody their names.
      if (!first && !stopped) reset();
    } catch {
      retry();
    }
  };
  // Resolves once LISTEN took effect (or the first try failed: then a later connect resets).
  await connect(true);
  return async () => {
    stopped = true;
    const c = client;
    client = undefined;
    await c?.end().catch(() => undefined);
  };
}
