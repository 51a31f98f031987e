/**
 * The HTTP application: API, autoinstall and boot routes, one JSON 404 and
 * one error handler that turns a ForgeError into `{code, message, field?}`
 * with the catalogue's status. `buildApp` does not listen (tests and main do).
 */
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, Express, Request, RequestHandler, Router } from 'express';
import { hostPortRule } from '../../config.js';
import { withServerAddress } from '../origin.js';
import { ForgeError } from '../../errors.js';
import { storageError } from '../../store/datadir.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { localEndOf, markInstallMount, markMount, observe, tagRoute } from './observe.js';
import type { FirmwareRoute } from './boot.js';
import { INSTALL_PREFIX, INSTALL_TOKEN_LOCAL } from '../../core/access.js';

/**
 * The address a client used to reach forge: its Host header (what it will reach again), or the
 * local end of its connection when the header is missing or not host[:port].
 */
export function serverAddressOf(req: Pick<Request, 'headers' | 'socket'>): string {
  const host = req.headers.host ?? '';
  if (host !== '' && hostPortRule(host) === undefined) return host;
  return localEndOf(req.socket);
}

/** The boot router's paths (services/http/boot.ts rows); Express matches paths without regard to case. */
const FIRMWARE_PATH = /^\/(?:boot|tree)\//i;

/** dist/ui, next to dist/server (this file is dist/server/services/http/app.js). */
const UI_DIR = fileURLToPath(new URL('../../../ui/', import.meta.url));

/** The routers main.ts built (the API first, then the others in this order). */
export interface AppRouters {
  /** Cobbler's XML-RPC at /cobbler_api. */
  cobbler: Router;
  autoinstall: Router;
  boot: Router;
  /** Mounted at /api/v1. */
  api: Router;
  /** The install callbacks of /api/v1 (systems/NAME/install/..., firstboot, cloud-init/done), mounted again under /i/TOKEN/api/v1. */
  installCallbacks?: Router;
  /** The database file, named in storage errors (disk full, read-only). */
  dbFile?: string;
}

/** Per-request observation (services/http/observe.ts) and GET /metrics. */
export interface AppObservation {
  metrics: Metrics;
  accessLog: boolean;
}

/**
 * The server's request listener: the configs firmware asks for (services/http/boot.ts
 * `firmware`) answered directly, under the same observation (metrics, access log) and server
 * address as through `app`; every other request goes to `app`. A handler's failure that
 * escaped it is logged and answered 500, as the app's error handler would.
 */
export function firmwareFirst(app: Express, firmware: FirmwareRoute, logger: Logger, obs?: AppObservation): RequestListener {
  const log = logger.child('http');
  const observed = obs === undefined ? undefined : observe({ log: logger.child('http.access'), accessLog: obs.accessLog, metrics: obs.metrics });
  return (req: IncomingMessage, res: ServerResponse) => {
    const hit = firmware(req, res);
    if (hit === undefined) {
      app(req, res);
      return;
    }
    tagRoute(req, hit.route);
    const serve = (): void => {
      withServerAddress(serverAddressOf(req), hit.serve).catch((e: unknown) => {
        log.error('internal error', { method: req.method, path: hit.route, err: e instanceof Error ? e.stack ?? e.message : String(e) });
        if (res.headersSent) res.destroy();
        else res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('INTERNAL: internal error (see the server log)\n');
      });
    };
    if (observed === undefined) serve();
    else observed(req, res, serve);
  };
}

export function buildApp(routers: AppRouters, logger: Logger, obs?: AppObservation): Express {
  const app = express();
  const log = logger.child('http');
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // No body parser here: bodies are parsed only after the token check, with
  // each route's limit (services/http/limits.ts, applied by api/auth.ts).

  // Everything below renders URLs with the address this client used to reach forge
  // (services/origin.ts). GET handlers see it; a route that parses a body first continues in
  // the socket's async context and falls back to the default address.
  app.use((req, _res, next) => withServerAddress(serverAddressOf(req), next));

  if (obs !== undefined) {
    const metrics = obs.metrics;
    app.use(observe({ log: logger.child('http.access'), accessLog: obs.accessLog, metrics }));
    app.get('/metrics', async (_req, res) => {
      res.setHeader('Content-Type', metrics.contentType);
      res.send(await metrics.text());
    });
  }
  // The API first: no other router has a path under /api/v1, so trying it before them changes no
  // answer, and an API request no longer walks the XML-RPC, autoinstall, install-token and boot
  // routers' layers on its way (per-layer matching was part of an add's CPU, issue 19 profile).
  app.use('/api/v1', markMount, routers.api);
  // Firmware's paths the same way: only the boot router has routes under /boot/ and /tree/. On
  // the way through the XML-RPC and autoinstall routers, each with no route for the path handed
  // it on through a setImmediate (router's `next` at the end of its stack): two loop turns per
  // boot config (issue 19 profile). A path the boot router does not answer goes on as before.
  app.use((req, res, next) => (FIRMWARE_PATH.test(req.path) ? routers.boot(req, res, next) : next()));
  // The web UI: static files built by `npm run build` (dist/ui), same origin as the API.
  app.use((req, res, next) => (req.method === 'GET' && req.path === '/ui' && !req.originalUrl.startsWith('/ui/') ? res.redirect(301, '/ui/') : next()));
  app.use('/ui', (_req, res, next) => {
    res.setHeader('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'");
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  }, express.static(UI_DIR, { index: 'index.html', fallthrough: true, redirect: false }));
  // Cobbler's XML-RPC API for koan and Ansible (anonymous reads, token writes; own body bound).
  app.use(routers.cobbler);
  app.use(routers.autoinstall);
  // The same installer URLs under a system's install token (core/access.ts): /i/TOKEN/autoinstall/...,
  // /i/TOKEN/cblr/svc/op/..., /i/TOKEN/cloud-init/..., /i/TOKEN/api/v1/systems/NAME/install/done.
  const installToken: RequestHandler = (req, res, next) => {
    res.locals[INSTALL_TOKEN_LOCAL] = req.params['install_token'];
    next();
  };
  if (routers.installCallbacks !== undefined) app.use(`${INSTALL_PREFIX}/:install_token/api/v1`, markInstallMount, installToken, routers.installCallbacks);
  app.use(`${INSTALL_PREFIX}/:install_token`, markInstallMount, installToken, routers.autoinstall, routers.boot);
  app.use(routers.boot);

  app.use((req, _res, next) => {
    next(new ForgeError('ROUTE_NOT_FOUND', `no endpoint ${req.method} ${req.path}`));
  });

  const onError: ErrorRequestHandler = (err: unknown, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    let fe: ForgeError;
    if (err instanceof ForgeError) {
      fe = err;
    } else {
      const e = err as { type?: unknown; status?: unknown; message?: unknown };
      if (err instanceof URIError || (e.status === 400 && /decode param/i.test(String(e.message)))) {
        // Express 5 decodes path parameters with decodeURIComponent.
        fe = new ForgeError('BAD_PATH', `the request path is not valid percent-encoding: ${req.originalUrl.slice(0, 200)}`, { field: 'path' });
      } else if (e.type === 'entity.parse.failed') {
        fe = new ForgeError('BAD_JSON', `request body is not valid JSON: ${String(e.message)}`, { field: 'body' });
      } else if (e.type === 'entity.too.large') {
        const limit = typeof (e as { limit?: unknown }).limit === 'number' ? (e as { limit: number }).limit : undefined;
        fe = new ForgeError('PAYLOAD_TOO_LARGE', `request body too large${limit !== undefined ? ` (this endpoint takes at most ${limit} bytes)` : ''}`, { field: 'body' });
      } else if (/^SQLITE_(FULL|READONLY|IOERR|CANTOPEN)/.test(String((err as { code?: unknown }).code ?? ''))) {
        // Storage, not a bug: say which (507 for a full disk) and never a stack trace.
        fe = storageError(routers.dbFile ?? 'the database', err);
        log.error('storage failed', { method: req.method, path: req.path, code: fe.code, msg: fe.message });
      } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
        fe = new ForgeError('BAD_JSON', `bad request body: ${String(e.message)}`, { field: 'body' });
      } else {
        log.error('internal error', { method: req.method, path: req.path, err: err instanceof Error ? err.stack ?? err.message : String(err) });
        fe = new ForgeError('INTERNAL', 'internal error (see the server log)');
      }
    }
    // A body nobody read (refused before parsing): close instead of draining it.
    if (!req.complete) res.setHeader('Connection', 'close');
    if (fe.status >= 500) log.warn('request failed', { method: req.method, path: req.path, code: fe.code, msg: fe.message });
    res.status(fe.status).json(fe.toBody());
  };
  app.use(onError);
  return app;
}
