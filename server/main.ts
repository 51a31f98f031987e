/**
 * Composition root: config -> store -> HTTP, DHCP, TFTP. The only
 * place that wires modules together. `startServer` resolves once every
 * service listens and returns a handle that closes them in reverse order.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { join } from 'node:path';
import { apiRouter, apiRoutes, installCallbackRows, type ApiDeps } from './api/routes.js';
import { ensureDiscoveryImage } from './discovery/image.js';
import { Router } from 'express';
import { checkRootsConfig } from './boot/confine.js';
import { createBootFiles } from './boot/files.js';
import { BootService } from './boot/provider.js';
import { cobblerApiRouter } from './cobbler/xmlrpc.js';
import type { ForgeConfig } from './config.js';
import { baseUrlOf } from './core/blend.js';
import { settingsFromConfig } from './settings-from-config.js';
import { EventHub } from './api/stream.js';
import { Auth } from './auth.js';
import { startRetention } from './events/retention.js';
import { Metrics, timedStore } from './metrics.js';
import type { BaseUrl, RecordEvent } from './deps.js';
import { ForgeError } from './errors.js';
import type { Logger } from './log.js';
import { Renderer } from './render/renderer.js';
import { checkSiteTrust, rootsFor } from './render/roots.js';
import { autoinstallRoutes } from './render/routes.js';
import { AutoinstallService } from './render/service.js';
import { workerCount } from './render/validate-pool.js';
import { createLeaseTable, startDhcp } from './services/dhcp.js';
import { liveLeases } from './services/dhcp/leases.js';
import type { DhcpLinkStatus } from './services/dhcp/links.js';
import { findRadvd, startRouterAdvertiser, type RaStatus } from './services/ra.js';
import { followRequests } from './services/origin.js';
import { bootRoutes } from './services/http/boot.js';
import { mountPublicRows } from './services/http/route.js';
import { buildApp, firmwareFirst } from './services/http/app.js';
import { applyTimeouts, HTTP_LISTEN_BACKLOG } from './services/http/limits.js';
import type { Service } from './services/service.js';
import { startTftp } from './services/tftp.js';
import { openSqliteStore } from './store/sqlite.js';
import { isPostgresUrl, openPgStore, redactUrl } from './store/postgres.js';
import { serverStore } from './store/layers.js';
import { SERVED_EVENTS, deferredEvents } from './store/events-deferred.js';
import { lockDataDir, prepareDataDir, storageError } from './store/datadir.js';
import type { NewEvent, Store } from './store/store.js';

export interface RunningServer {
  /** The HTTP application (its route table is checked against the OpenAPI document). */
  app: Express;
  /** The HTTP port actually bound (differs from config when 0 was asked). */
  httpPort: number;
  /** Base URL installers and agents use. */
  baseUrl: string;
  services: Service[];
  close(): Promise<void>;
}

/** Reads DATA_DIR/token, creating it (mode 0600) on first start. */
export function ensureToken(dataDir: string): string {
  const file = join(dataDir, 'token');
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t !== '') return t;
  }
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return token;
}

/**
 * Builds every service once, each with what it uses. HTTP binds first, so
 * the real port (config 0 asks for any) is known before anything that puts
 * it in a URL is built; nothing is changed after construction. The request
 * handler is attached in the same turn as the bind completes, so no request
 * can arrive before it.
 */
const wildcard = (addr: string): boolean => addr === '0.0.0.0' || addr === '::' || addr === '';

export async function startServer(config: ForgeConfig, log: Logger, env: NodeJS.ProcessEnv = {}): Promise<RunningServer> {
  checkRootsConfig(config);
  checkSiteTrust(config);
  prepareDataDir(config.data_dir);
  const postgres = isPostgresUrl(config.store);
  // One server per SQLite data dir (two would answer DHCP from two lease tables). On
  // PostgreSQL several servers share the database: that is the point, and the database
  // decides between their writes.
  const lock = postgres ? { release: (): void => undefined } : lockDataDir(config.data_dir);
  let rawStore: Store;
  let token: string;
  try {
    rawStore = postgres
      ? await openPgStore(config.store)
      : openSqliteStore(config.data_dir, env['FORGE_SQLITE_SYNC'] === 'FULL' ? 'FULL' : 'NORMAL', env['FORGE_SQLITE_GROUP_COMMIT'] !== '0');
  } catch (e) {
    lock.release();
    throw e instanceof ForgeError ? e : storageError(join(config.data_dir, 'forge.db'), e);
  }
  try {
    token = ensureToken(config.data_dir);
  } catch (e) {
    await rawStore.close();
    lock.release();
    throw storageError(join(config.data_dir, 'token'), e);
  }
  // MAC/IP -> system, distros, profiles, subnets and install windows from memory for DHCP, boot
  // and renders (store/layers.ts), kept fresh by every server's writes.
  let layered: Awaited<ReturnType<typeof serverStore>>;
  try {
    layered = await serverStore(rawStore, (e) => log.warn('system index: re-read failed; lookups it cannot answer go to the store', { err: e }));
  } catch (e) {
    await rawStore.close();
    lock.release();
    throw e;
  }
  const metrics = new Metrics({ store: rawStore, stallMinutes: config.stall_minutes });
  metrics.watchIndex(layered.index);
  metrics.watchCache(layered.cache);
  // Served-file events written in batches off the answer path (store/events-deferred.ts).
  const deferred = deferredEvents(layered.store);
  // Every store call timed (forge_store_operation_duration_seconds).
  const store = timedStore(deferred.store, metrics.storeDuration);
  const evlog = log.child('events');
  const events = new EventHub();
  // PostgreSQL: the stream carries every server's events, all from the store's feed in id order.
  if (rawStore.watchEvents !== undefined) {
    const watch = rawStore.watchEvents.bind(rawStore);
    events.feedFrom((fn) => watch(fn, (e: unknown) => evlog.warn('event feed interrupted; catching up after reconnecting', { err: e })));
  }
  events.subscribe((ev) => metrics.countEvent(ev));
  // A file served (a boot config, a loader, a kernel, an initrd, an autoinstall file) is recorded
  // in the next batch; an installer's callback or a state change before its answer, as before.
  const record: RecordEvent = (ev, once): Promise<void> =>
    (once !== undefined ? store.addEventOnce(ev, once) : SERVED_EVENTS.has(ev.type) ? deferred.later(ev) : store.addEvent(ev))
      .then((stored) => (stored === undefined ? undefined : events.publish(stored)))
      .catch((e: unknown) => evlog.warn('could not record event', { system: ev.system, type: ev.type, err: e }));

  // Policy discover sends unknown machines the discovery image: built here when missing (once).
  if (config.dhcp_unknown === 'discover') {
    try {
      const built = await ensureDiscoveryImage(config.data_dir, config.discovery_kernel_dir, (m) => log.info(m));
      if (built !== undefined) log.info('discovery image built', { kernel: built.kernel, version: built.version, modules: built.modules.length, kexec: built.kexec });
    } catch (e) {
      await store.close();
      lock.release();
      throw new ForgeError('CONFIG_INVALID', `dhcp_unknown=discover needs the discovery image, which could not be built: ${(e as Error).message}`, { field: 'dhcp_unknown', cause: e });
    }
  }

  const http = createServer();
  applyTimeouts(http, log.child('http'));
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ port: config.http_port, host: config.listen, backlog: HTTP_LISTEN_BACKLOG }, () => {
      http.off('error', reject);
      resolve();
    });
  }).catch((e: unknown) => {
    void store.close().finally(() => lock.release());
    throw new ForgeError('CONFIG_INVALID', `cannot listen on ${config.listen}:${config.http_port}: ${(e as Error).message}`, {
      field: 'http_port',
    });
  });
  const httpPort = (http.address() as AddressInfo).port;
  // Installers need the real port in their URLs.
  // When `server` is not configured (and HTTP listens on every address), settings.server and the
  // base URL follow the request being handled: the address it arrived on (services/origin.ts).
  const settings = followRequests(settingsFromConfig({ ...config, http_port: httpPort }), {
    server: config.server !== '' || !wildcard(config.listen),
    nextServer: config.next_server !== '',
  });
  const url = baseUrlOf(settings);
  const baseUrl: BaseUrl = () => baseUrlOf(settings);
  /** Managed DHCP's link states for `forge status`; DHCP starts after the routes are built. */
  let dhcpLinks: () => DhcpLinkStatus[] = () => [];
  /** The IPv6 RA state for `forge status` (services/ra.ts); replaced when the advertiser starts. */
  let raStatus: () => RaStatus = () => ({
    mode: config.ipv6_ra,
    note: config.ipv6_ra === 'off' ? 'ipv6_ra is off' : config.dhcp_mode !== 'managed' ? `not sent in ${config.dhcp_mode} DHCP mode (the site's network)` : findRadvd() === undefined ? 'radvd is not installed' : 'not started',
    links: [],
  });

  // Managed DHCP's lease table, read by the boot events before the batched write reaches the store.
  const leases = config.dhcp_mode === 'managed' ? createLeaseTable({ store, log }, 'managed') : undefined;
  const boot = new BootService({ store, settings, config, log, record, baseUrl, ...(leases !== undefined ? { liveLeases: liveLeases(leases) } : {}) });
  const renderer = new Renderer(rootsFor(config));
  const alog = log.child('audit');
  const auth = new Auth(() => token, store, (e) => {
    store.addAudit(e).catch((err: unknown) => alog.warn('could not record audit entry', { action: e.action, err }));
  });
  const autoinstall = autoinstallRoutes({
    autoinstall: new AutoinstallService(store, settings, renderer, {
      workers: workerCount(config.validate_workers),
      systemCount: () => (layered.index.stats().ready ? layered.index.stats().systems : undefined),
      onWorkerFailure: (e) => log.warn('validate: a render worker failed; its objects are rendered in the server thread', { err: e }),
    }),
    renderer,
    store,
    pxeJustOnce: settings.pxe_just_once,
    log,
    record,
    auth,
    graceMinutes: config.install_grace_minutes,
  });
  const bootHttp = bootRoutes({ boot, store, config, log, baseUrl, dhcpLinks: () => dhcpLinks(), raStatus: () => raStatus() });
  const apiDeps: ApiDeps = {
    store,
    settings,
    config,
    auth,
    baseUrl,
    events,
    log,
    autoinstall: autoinstall.api,
    boot: bootHttp.api,
    publicRows: [...autoinstall.rows, ...bootHttp.rows],
    kexecTarget: (system, mac) => boot.kexecTarget(system, mac),
  };
  const app = buildApp(
    {
      cobbler: cobblerApiRouter({ store, settings, auth, log, config }),
      autoinstall: mountPublicRows(Router(), autoinstall.rows),
      boot: mountPublicRows(Router(), bootHttp.rows),
      api: apiRouter(apiDeps),
      installCallbacks: mountPublicRows(Router(), installCallbackRows(apiRoutes(apiDeps))),
      dbFile: postgres ? redactUrl(config.store) : join(config.data_dir, 'forge.db'),
    },
    log,
    { metrics, accessLog: config.access_log },
  );
  // Firmware's config requests before Express (services/http/app.ts firmwareFirst), the rest through it.
  http.on('request', firmwareFirst(app, bootHttp.firmware, log, { metrics, accessLog: config.access_log }));

  const services: Service[] = [];
  services.push({
    name: 'http',
    endpoints: [`tcp ${config.listen}:${httpPort}`],
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  });

  // Events and audit entries do not grow without end (events/retention.ts).
  const stopRetention = startRetention(store, config, log);

  const close = async (): Promise<void> => {
    stopRetention();
    for (const s of [...services].reverse()) {
      try {
        await s.close();
      } catch (e) {
        log.warn('service did not close cleanly', { service: s.name, err: e });
      }
    }
    await store.close();
    lock.release();
  };

  try {
    const index = layered.index;
    const absent = { mac: (mac: string): boolean => index.absentMac(mac), ip: (ip: string): boolean => index.absentIp(ip) };
    const dhcp = await startDhcp({ store, settings, config, log, record, baseUrl, absent }, leases);
    if (dhcp !== undefined) {
      services.push(dhcp);
      metrics.watchDhcp(dhcp.handler);
      dhcpLinks = dhcp.links;
      // Managed links forge serves get the RA that ends PXE ROMs' IPv6 wait (services/ra.ts).
      const ra = config.dhcp_mode === 'managed' ? startRouterAdvertiser({ config, log, links: dhcp.links }) : undefined;
      if (ra !== undefined) {
        services.push(ra);
        raStatus = () => ra.status();
      }
    }
    const tftp = config.tftp_enabled ? await startTftp({ config, log, record, metrics }, createBootFiles(boot, config.loaders, log)) : undefined;
    if (tftp !== undefined) services.push(tftp);
  } catch (e) {
    await close();
    throw e;
  }

  return { app, httpPort, baseUrl: url, services, close };
}
