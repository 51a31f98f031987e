/**
 * Small function types the composition root (server/main.ts) hands to the
 * services that need them. There is no shared context object: each service
 * declares the dependencies it uses (BootDeps, DhcpDeps, TftpDeps, ApiDeps,
 * AutoinstallDeps, BootRouteDeps) and main.ts builds each service once.
 */
import type { LifecycleEvent } from './core/events.js';
import type { EventOnce } from './store/store.js';

/**
 * Record a lifecycle event (its detail typed by its type, core/events.ts); fire-and-forget, never
 * throws or rejects (failures are logged). It may return the write's promise: a caller that must
 * see its event in the store before it answers (an installer callback, so that a retry through
 * another server finds it) awaits it. With `once`, the event is recorded only when the store has
 * no such event yet (Store.addEventOnce: decided in the database, one of racing servers wins).
 */
export type RecordEvent = (ev: LifecycleEvent, once?: EventOnce) => void | Promise<void>;

/**
 * The base URL installers and agents use, e.g. `http://10.98.0.1:8080` (no
 * trailing slash). A function, not a value: the port is known only once HTTP
 * listens, and the address may depend on where a request arrived.
 */
export type BaseUrl = () => string;

/** A lease as the boot events need it: who holds an address. */
export interface LiveLeases {
  byAddress(ip: string): { mac: string; system: string } | undefined;
}
