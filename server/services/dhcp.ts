/**
 * The DHCP service: sockets in front of DhcpHandler.
 *
 *   off      (default) never binds, never answers;
 *   proxy    proxyDHCP for PXE clients on dhcp_port and dhcp_proxy_port (4011), no addresses;
 *   managed  authoritative for its subnets (dhcp_subnet and the stored subnets), after probing
 *            each directly attached link for another server.
 *
 * Node's dgram cannot tell which interface a broadcast arrived on, so the
 * socket binds dhcp_listen (0.0.0.0, to see broadcasts) and one process serves
 * one L2 segment, plus any number of subnets behind relays (giaddr).
 */
import type { Socket } from 'node:dgram';
import type { ForgeConfig } from '../config.js';
import { networkInterfaces } from 'node:os';
import type { Settings, Subnet } from '../core/model.js';
import { ForgeError } from '../errors.js';
import type { Service } from './service.js';
import { DhcpHandler, type DhcpHandlerDeps, type Inbound, type Outbound } from './dhcp/handler.js';
import { LeaseTable } from './dhcp/leases.js';
import { LinkWatch, type DhcpLinkStatus } from './dhcp/links.js';
import { dhcpSettings, refreshSettings } from './dhcp/settings.js';
import { bindUdp, closeUdp, sendWithFallback } from './dhcp/udp.js';
import { warmUp } from './dhcp/warmup.js';
import { createLogger } from '../log.js';

const BROADCAST = '255.255.255.255';

export interface DhcpService extends Service {
  readonly handler: DhcpHandler;
  /** Managed DHCP's directly served links and their rival-server state (`forge status`). */
  links(): DhcpLinkStatus[];
}

export interface DhcpDeps extends DhcpHandlerDeps {
  config: ForgeConfig;
  settings: Pick<Settings, 'next_server'>;
}

/** The lease table managed DHCP keeps (and the boot service reads); proxy mode keeps one without a store. */
export function createLeaseTable(deps: Pick<DhcpDeps, 'store' | 'log'>, mode: ForgeConfig['dhcp_mode']): LeaseTable {
  // A store several servers share (claimAddress) spreads each server's hand-outs over the pool.
  return new LeaseTable(mode === 'managed' ? deps.store : undefined, deps.log.child('dhcp'), mode === 'managed' && deps.store.claimAddress !== undefined);
}

/**
 * Builds the handler without sockets (tests, fuzzing). `leases` is the table
 * main.ts also hands to the boot service; loaded from the store here.
 */
export async function createDhcpHandler(
  deps: DhcpDeps,
  now: () => number = Date.now,
  leases: LeaseTable = createLeaseTable(deps, deps.config.dhcp_mode),
): Promise<DhcpHandler> {
  const stored = (): Promise<Subnet[]> => deps.store.list('subnet');
  const settings = dhcpSettings(deps.config, deps.settings.next_server, networkInterfaces(), await stored());
  settings.cluster = await deps.store.clusterId();
  if (settings.mode === 'managed') await leases.load(now());
  const h = new DhcpHandler(deps, settings, leases, now);
  // Stored subnets and the host's interfaces, looked at again (handler.refresh, links.ts).
  h.reload = async () => refreshSettings(settings, dhcpSettings(deps.config, deps.settings.next_server, networkInterfaces(), await stored()));
  return h;
}

/** Starts the DHCP service for config.dhcp_mode; undefined when mode is off. */
export async function startDhcp(deps: DhcpDeps, leases?: LeaseTable): Promise<DhcpService | undefined> {
  if (deps.config.dhcp_mode === 'off') return undefined;
  const log = deps.log.child('dhcp');
  const handler = await createDhcpHandler(deps, Date.now, leases);
  const s = handler.settings;

  const links = s.mode === 'managed' ? new LinkWatch(deps, s, log, async () => handler.refresh(true)) : undefined;
  // The first probe of every link with carrier, before answering anyone (links without carrier
  // cannot have a rival; they are probed when they come up).
  if (links !== undefined) await links.check();
  // The hot path compiled before the first client (dhcp/warmup.ts): a boot storm right after a
  // start found it in V8's interpreter at several times its warm cost per datagram.
  if (s.mode === 'managed') {
    const t0 = performance.now();
    const quiet = createLogger('error', 'warmup', () => undefined);
    const acked = await warmUp((table) => createDhcpHandler({ ...deps, log: quiet, record: () => undefined }, Date.now, table));
    log.info('DHCP hot path compiled before answering', { exchanges: acked, ms: Math.round(performance.now() - t0) });
  }

  const sockets: Socket[] = [];
  /** Sockets bound to our own addresses on dhcp_port: they send limited broadcasts per interface. */
  const bcast = new Map<string, Socket>();
  const bindBroadcasters = async (): Promise<void> => {
    if (deps.config.dhcp_listen !== '0.0.0.0') return;
    // Managed: our address in each served subnet. Proxy: every address, or only those inside
    // dhcp_subnet when given, so a multi-homed host keeps its proxy offers off other segments.
    const mine = s.mode === 'managed' || s.subnets.length > 0 ? [...new Set(s.serverIdBySubnet.values())] : s.localAddrs;
    for (const ip of mine) {
      if (bcast.has(ip)) continue;
      // Unicast to this address now arrives here (the more specific binding): serve it too.
      const sock = await bindUdp(s.port, ip, true);
      sockets.push(sock);
      bcast.set(ip, sock);
      serve(sock, s.port);
      log.info('sending broadcasts from', { address: ip });
    }
  };
  // Interfaces without carrier are invisible to os.networkInterfaces() (a bridge whose only port
  // is a tap of a VM not started yet): look again, at most every 2 s, when a broadcast has no socket.
  let lastScan = Date.now();
  const rescan = async (): Promise<void> => {
    lastScan = Date.now();
    await handler.refresh(true);
    await bindBroadcasters();
  };
  const deliver = async (sock: Socket, out: Outbound): Promise<void> => {
    if (out.address === BROADCAST) {
      const missing = out.via !== undefined ? !bcast.has(out.via) : bcast.size === 0;
      if (missing && Date.now() - lastScan > 2000) {
        await rescan().catch((e: unknown) => log.warn('interface rescan failed', { err: e }));
        if (out.via === undefined && s.mode === 'managed') {
          const subnetVia = [...s.serverIdBySubnet.values()][0];
          if (subnetVia !== undefined && s.serverIdBySubnet.size === 1) out.via = subnetVia;
        }
      }
    }
    if (out.address === BROADCAST && bcast.size > 0) {
      const via = out.via !== undefined ? bcast.get(out.via) : undefined;
      for (const b of via !== undefined ? [via] : [...bcast.values()]) await sendWithFallback(b, out.data, out.port, out.address, out.fallback);
      return;
    }
    await sendWithFallback(sock, out.data, out.port, out.address, out.fallback);
  };
  const sendFailed = (e: unknown): void => {
    handler.stats.errors++;
    log.warn('could not send reply', { err: e });
  };
  /** A unicast reply (a relay's giaddr, a renewing client): sent with a plain callback, no promise per datagram. */
  const sent = (e: Error | null): void => {
    if (e) sendFailed(e);
  };
  const reply = (sock: Socket, out: Outbound | undefined): Promise<void> | undefined => {
    if (out === undefined) return undefined;
    if (out.address !== BROADCAST && out.fallback === undefined) {
      sock.send(out.data, out.port, out.address, sent);
      return undefined;
    }
    return deliver(sock, out);
  };
  // Replies still being made or sent, awaited on close.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const settle = (): void => {
    if (--inFlight === 0) drained?.();
  };
  const serve = (sock: Socket, port: number): void => {
    sock.on('error', (e) => log.error('socket error', { port, err: e }));
    // One promise per datagram (handle never rejects): a unicast reply is sent in its callback,
    // only a broadcast's delivery adds its own (issue 21 profile: three chained promises before).
    const answer = (out: Outbound | undefined): void => {
      let p: Promise<void> | undefined;
      try {
        p = reply(sock, out);
      } catch (e) {
        sendFailed(e);
      }
      if (p === undefined) settle();
      else p.catch(sendFailed).then(settle, settle);
    };
    const failed = (e: unknown): void => {
      sendFailed(e);
      settle();
    };
    sock.on('message', (data, rinfo) => {
      const msg: Inbound = { data, address: rinfo.address, port: rinfo.port, localPort: port };
      inFlight++;
      handler.handle(msg).then(answer, failed);
    });
  };
  const listen = async (port: number): Promise<void> => {
    const sock = await bindUdp(port, deps.config.dhcp_listen, true);
    sockets.push(sock);
    serve(sock, port);
  };
  try {
    await listen(s.port);
    if (s.mode === 'proxy' && s.proxyPort !== 0 && s.proxyPort !== s.port) await listen(s.proxyPort);
    await bindBroadcasters();
  } catch (e) {
    for (const x of sockets) await closeUdp(x);
    const code = (e as NodeJS.ErrnoException).code ?? '';
    throw new ForgeError('CONFIG_INVALID', `cannot bind DHCP port: ${(e as Error).message}`, { field: code === 'EACCES' ? 'dhcp_port' : 'dhcp_listen', cause: e });
  }
  const endpoints = sockets.filter((x) => ![...bcast.values()].includes(x)).map((x) => `udp ${deps.config.dhcp_listen}:${x.address().port} (dhcp ${s.mode})`);
  links?.start();
  if (s.mode === 'managed' && s.subnets.length === 0) {
    log.warn('managed DHCP has no subnet yet: answering nobody until one is added (forge subnet add --name NAME --cidr ...; picked up within seconds)');
  }
  log.info('DHCP service started', { mode: s.mode, endpoints: endpoints.join(', '), broadcast_from: [...bcast.keys()].join(' '), subnets: s.subnets.map((n) => n.cidr).join(' '), next_server: s.nextServer });
  return {
    name: 'dhcp',
    endpoints,
    handler,
    links: () => links?.status() ?? [],
    async close() {
      links?.stop();
      for (const x of sockets) await closeUdp(x);
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
      await handler.leases.flush();
    },
  };
}
