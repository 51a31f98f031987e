/**
 * What the network services (HTTP, DHCP, TFTP) share at run time. Built once
 * by the composition root (server/main.ts) and passed down; nothing reads
 * process.env or argv below this point.
 */
import type { ForgeConfig } from './config.js';
import type { Settings } from './core/model.js';
import type { Logger } from './log.js';
import type { NewEvent, Store } from './store/store.js';

export interface ServerContext {
  config: ForgeConfig;
  settings: Settings;
  store: Store;
  log: Logger;
  /** Bearer token required by write endpoints. */
  token: string;
  /** Base URL installers and agents use, e.g. `http://10.98.0.1:8080` (no trailing slash). */
  baseUrl: string;
  /** Record a lifecycle event; fire-and-forget, never throws (failures are logged). */
  record(ev: NewEvent): void;
  /**
   * Addresses DHCP acknowledged in the last moments (ip -> system and when):
   * the lease table reaches the store in batches, and UEFI firmware asks TFTP
   * for its loader within milliseconds of the ACK.
   */
  recentLeases?: Map<string, { system: string; at: number }>;
}

/** How long a recentLeases entry stands in for the stored lease (well past a lease flush). */
export const RECENT_LEASE_MS = 60_000;

export function noteRecentLease(ctx: ServerContext, ip: string, system: string, now = Date.now()): void {
  const m = ctx.recentLeases;
  if (m === undefined || ip === '') return;
  m.delete(ip); // re-insert: the Map stays in age order, so the oldest go first
  m.set(ip, { system, at: now });
  for (const [k, v] of m) {
    if (m.size <= 10_000 && now - v.at < RECENT_LEASE_MS) break;
    m.delete(k);
  }
}

export function recentLeaseSystem(ctx: ServerContext, ip: string, now = Date.now()): string | undefined {
  const e = ctx.recentLeases?.get(ip);
  return e !== undefined && now - e.at < RECENT_LEASE_MS ? e.system : undefined;
}
