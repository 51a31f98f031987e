/**
 * The DHCP service: sockets in front of DhcpHandler.
 *
 *   off      (default) never binds, never answers;
 *   proxy    proxyDHCP for PXE clients on dhcp_port and dhcp_proxy_port (4011), no addresses;
 *   managed  authoritative for dhcp_subnet, after probing the segment for another server.
 *
 * Node's dgram cannot tell which interface a broadcast arrived on, so the
 * socket binds dhcp_listen (0.0.0.0, to see broadcasts) and one process serves
 * one L2 segment, plus any number of subnets behind relays (giaddr).
 */
import type { Socket } from 'node:dgram';
import type { ServerContext } from '../context.js';
import { ForgeError } from '../errors.js';
import type { Service } from './service.js';
import { DhcpHandler, type Inbound } from './dhcp/handler.js';
import { LeaseTable } from './dhcp/leases.js';
import { probeForServers } from './dhcp/probe.js';
import { dhcpSettings } from './dhcp/settings.js';
import { bindUdp, closeUdp, sendWithFallback } from './dhcp/udp.js';

export interface DhcpService extends Service {
  readonly handler: DhcpHandler;
}

/** Builds the handler without sockets (tests, fuzzing). */
export async function createDhcpHandler(ctx: ServerContext, now: () => number = Date.now): Promise<DhcpHandler> {
  const settings = dhcpSettings(ctx.config, ctx.settings.next_server);
  const leases = new LeaseTable(settings.mode === 'managed' ? ctx.store : undefined, ctx.log.child('dhcp'));
  if (settings.mode === 'managed') await leases.load(now());
  return new DhcpHandler(ctx, settings, leases, now);
}

/** Starts the DHCP service for ctx.config.dhcp_mode; undefined when mode is off. */
export async function startDhcp(ctx: ServerContext): Promise<DhcpService | undefined> {
  if (ctx.config.dhcp_mode === 'off') return undefined;
  const log = ctx.log.child('dhcp');
  const handler = await createDhcpHandler(ctx);
  const s = handler.settings;

  if (s.mode === 'managed' && ctx.config.dhcp_probe_seconds > 0) {
    const found = await probeForServers({ serverPort: s.port, clientPort: s.clientPort, seconds: ctx.config.dhcp_probe_seconds, fallback: s.localBroadcasts });
    if (found.length > 0) {
      const who = found.map((f) => `${f.serverId ?? f.from} (offered ${f.yiaddr})`).join(', ');
      if (!ctx.config.dhcp_force) {
        throw new ForgeError('DHCP_CONFLICT', `another DHCP server answers on this segment: ${who}; refusing to start managed DHCP (use --dhcp-force to override)`, {
          field: 'dhcp_mode',
          details: found,
        });
      }
      log.warn('another DHCP server answers on this segment; starting anyway (dhcp_force)', { servers: who });
    } else {
      log.info('probe: no other DHCP server answered', { seconds: ctx.config.dhcp_probe_seconds });
    }
  }

  const sockets: Socket[] = [];
  const pending = new Set<Promise<void>>();
  const listen = async (port: number): Promise<void> => {
    const sock = await bindUdp(port, ctx.config.dhcp_listen);
    sockets.push(sock);
    sock.on('error', (e) => log.error('socket error', { port, err: e }));
    sock.on('message', (data, rinfo) => {
      const msg: Inbound = { data, address: rinfo.address, port: rinfo.port, localPort: port };
      const job = handler
        .handle(msg)
        .then(async (out) => {
          if (out === undefined) return;
          await sendWithFallback(sock, out.data, out.port, out.address, out.fallback);
        })
        .catch((e: unknown) => {
          handler.stats.errors++;
          log.warn('could not send reply', { to: rinfo.address, err: e });
        })
        .finally(() => pending.delete(job));
      pending.add(job);
    });
  };
  try {
    await listen(s.port);
    if (s.mode === 'proxy' && s.proxyPort !== 0 && s.proxyPort !== s.port) await listen(s.proxyPort);
  } catch (e) {
    for (const x of sockets) await closeUdp(x);
    const code = (e as NodeJS.ErrnoException).code ?? '';
    throw new ForgeError('CONFIG_INVALID', `cannot bind DHCP port: ${(e as Error).message}`, { field: code === 'EACCES' ? 'dhcp_port' : 'dhcp_listen', cause: e });
  }
  const endpoints = sockets.map((x) => `udp ${ctx.config.dhcp_listen}:${x.address().port} (dhcp ${s.mode})`);
  log.info('DHCP service started', { mode: s.mode, endpoints: endpoints.join(', '), subnets: s.subnets.map((n) => n.cidr).join(' '), next_server: s.nextServer });
  return {
    name: 'dhcp',
    endpoints,
    handler,
    async close() {
      for (const x of sockets) await closeUdp(x);
      await Promise.allSettled([...pending]);
      await handler.leases.flush();
    },
  };
}
