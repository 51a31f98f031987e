/**
 * What the network services (HTTP, DHCP, TFTP) share at run time. Built once
 * by the composition root (server/main.ts) and passed down; nothing reads
 * process.env or argv below this point.
 */
import type { ForgeConfig } from './config.js';
import type { Settings } from './core/model.js';
import type { Logger } from './log.js';
import type { EventHub } from './api/stream.js';
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
  /** Stored events, published for the live stream (api/stream.ts) and the metrics. */
  events: EventHub;
  /**
   * The running DHCP server's in-memory lease index (managed mode; set when it
   * starts). It is ahead of the store, which gets leases in batches, and UEFI
   * firmware asks TFTP for its loader within milliseconds of the ACK.
   */
  liveLeases?: LiveLeases;
}

/** A lease as the boot events need it: who holds an address. */
export interface LiveLeases {
  byAddress(ip: string): { mac: string; system: string } | undefined;
}
