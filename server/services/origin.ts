/**
 * Where a request reached forge: the address installers and firmware must be told to use when
 * `server` is not configured. A host with a management NIC (default route) and a provisioning
 * bridge has two answers to "what is my address"; the right one is the one the client came in on.
 *
 * The edges (HTTP middleware, the TFTP provider, the DHCP handler) run each request inside
 * `withServerAddress(addr, fn)`; the services' base URL function reads it (server/main.ts),
 * so every renderer below sees the per-request value without threading it through each call.
 *
 * Node's dgram does not say which local address a datagram arrived on (no IP_PKTINFO): for UDP
 * the address is derived from the peer: forge's address on the interface whose subnet holds the
 * peer (a directly attached client, or a DHCP relay's giaddr), else the source address the kernel's
 * routing table picks for it (learned with a connected UDP socket, which sends nothing).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { ipToInt } from './dhcp/net.js';

export type IfaceTable = ReturnType<typeof networkInterfaces>;

const store = new AsyncLocalStorage<string>();

/** Runs `fn` with `address` (host or host:port) as the server address of this request. */
export function withServerAddress<T>(address: string, fn: () => T): T {
  return store.run(address, fn);
}

/** The address `atServerAddress` set for the synchronous call running now. */
let syncAddress: string | undefined;

/**
 * Runs the synchronous `fn` with `address` as the server address, without an async context: the
 * DHCP handler reads the base URL in one synchronous call per packet, and entering an
 * AsyncLocalStorage context per datagram installed Node 20's promise hooks on every promise of
 * the hot path (about 4 % of managed DHCP's CPU under perfdhcp, issue 21 profile).
 */
export function atServerAddress<T>(address: string, fn: () => T): T {
  const prev = syncAddress;
  syncAddress = address;
  try {
    return fn();
  } finally {
    syncAddress = prev;
  }
}

/** The server address of the request being handled, or undefined outside one. */
export function requestServerAddress(): string | undefined {
  return syncAddress ?? store.getStore();
}

const IFACES_TTL_MS = 1000;
let ifaces: { at: number; table: IfaceTable } | undefined;

/**
 * os.networkInterfaces(), read at most once a second: it is a getifaddrs(3) netlink dump, and
 * per relayed DHCP packet it was a quarter of the server's CPU (issue 21 profile). An address
 * added to an interface is seen within a second.
 */
export function interfaces(now = Date.now()): IfaceTable {
  if (ifaces === undefined || now - ifaces.at >= IFACES_TTL_MS || now < ifaces.at) ifaces = { at: now, table: networkInterfaces() };
  return ifaces.table;
}

/** Our IPv4 address on the interface whose subnet holds `peer` (directly attached), if any. */
export function attachedAddressFor(peer: string, table: IfaceTable = interfaces()): string | undefined {
  const p = ipToInt(peer.replace(/^::ffff:/, ''));
  if (p === undefined) return undefined;
  for (const list of Object.values(table)) {
    for (const a of list ?? []) {
      if (a.family !== 'IPv4' || a.internal) continue;
      const ip = ipToInt(a.address);
      const mask = ipToInt(a.netmask);
      if (ip !== undefined && mask !== undefined && ((ip & mask) >>> 0) === ((p & mask) >>> 0)) return a.address;
    }
  }
  return undefined;
}

const routed = new Map<string, { at: number; v: string | undefined }>();
const ROUTE_TTL_MS = 10_000;

/** The source address the routing table picks for `peer` (connect() on UDP sends nothing). */
export function routedAddressFor(peer: string): Promise<string | undefined> {
  const hit = routed.get(peer);
  if (hit !== undefined && Date.now() - hit.at < ROUTE_TTL_MS) return Promise.resolve(hit.v);
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const done = (v: string | undefined): void => {
      if (routed.size > 10_000) routed.clear();
      routed.set(peer, { at: Date.now(), v });
      try {
        s.close();
      } catch {
        /* already closed */
      }
      resolve(v);
    };
    s.once('error', () => done(undefined));
    try {
      s.connect(9, peer, () => {
        const a = s.address().address;
        done(a === '0.0.0.0' ? undefined : a);
      });
    } catch {
      done(undefined);
    }
  });
}

/** Our address facing `peer`: directly attached first, then the routing table's choice. */
export async function localAddressFor(peer: string, table?: IfaceTable): Promise<string | undefined> {
  const bare = peer.replace(/^::ffff:/, '');
  if (ipToInt(bare) === undefined || bare === '0.0.0.0' || bare.startsWith('127.')) return undefined;
  return attachedAddressFor(bare, table) ?? (await routedAddressFor(bare));
}

interface ServerFields {
  server: string;
  next_server: string;
}

/**
 * Makes `settings.server` (and `next_server`, when not configured) follow the request being
 * handled, unless `server` is configured: then every client is told the same address.
 * `fallback` is used outside a request (startup messages, the CLI-facing API on loopback).
 */
export function followRequests<T extends ServerFields>(settings: T, fixed: { server: boolean; nextServer: boolean }): T {
  let server = settings.server;
  let next = settings.next_server;
  const current = (): string => (fixed.server ? server : requestServerAddress() ?? server);
  Object.defineProperty(settings, 'server', {
    enumerable: true,
    get: current,
    set: (v: string) => {
      server = v;
    },
  });
  Object.defineProperty(settings, 'next_server', {
    enumerable: true,
    get: () => (fixed.nextServer ? next : hostOf(current())),
    set: (v: string) => {
      next = v;
    },
  });
  return settings;
}

/** The host part of host[:port] ([v6]:port keeps the bare v6 address). */
export function hostOf(hostPort: string): string {
  const br = /^\[([^\]]+)\](?::\d+)?$/.exec(hostPort);
  if (br !== null) return br[1] ?? hostPort;
  return hostPort.split(':').length === 2 ? hostPort.replace(/:\d+$/, '') : hostPort;
}

/** Runs `fn` as a request from `peer` (UDP: TFTP, DHCP): our address facing it is the server's. */
export async function asRequestFrom<T>(peer: string, fn: () => Promise<T>): Promise<T> {
  const mine = await localAddressFor(peer);
  return mine === undefined ? fn() : withServerAddress(mine, fn);
}
