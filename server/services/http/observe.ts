/**
 * Per-request observation, attached first in the app: when the response
 * finishes (or the client goes away), one access-log line and the HTTP
 * metrics, labelled by the matched route pattern (`/api/v1/systems/:name`,
 * never the raw path, so label cardinality stays bounded; no match is
 * `unmatched`). The path is logged without its query string. Status 499
 * (nginx's convention) is a client that left before the response ended,
 * as every event stream does.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler } from 'express';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';

/** The route pattern that handled the request (read inside the router chain). */
const ROUTE = Symbol('forge.route');
const MOUNT = Symbol('forge.mount');
type Tagged = Request & { [ROUTE]?: string; [MOUNT]?: string };

/**
 * Put before a router mounted under a prefix: an error answered after the
 * request left the router has lost req.baseUrl, not the prefix noted here.
 */
export const markMount: RequestHandler = (req, _res, next) => {
  (req as Tagged)[MOUNT] = req.baseUrl;
  next();
};

/**
 * For the /i/TOKEN prefix (core/access.ts): routes are labelled as if
 * unprefixed, so a metric label or log line never carries an install token
 * (and tokens do not multiply label sets).
 */
export const markInstallMount: RequestHandler = (req, _res, next) => {
  // /i/TOKEN/api/v1 -> /api/v1, /i/TOKEN -> '': the same label as the unprefixed route.
  (req as Tagged)[MOUNT] = req.baseUrl.replace(/^\/i\/[^/]+/, '');
  next();
};

/**
 * Put before a route table row's handlers (services/http/route.ts mountRows does): the row's
 * pattern, read while the request is inside its router (Express resets req.baseUrl on the way
 * out). Routes that are not rows are labelled when the response finishes.
 */
export function routeTag(path: string): RequestHandler {
  return (req, _res, next) => {
    const t = req as Tagged;
    t[ROUTE] = `${t[MOUNT] ?? req.baseUrl}${path}`;
    next();
  };
}

/** The route label of a request answered outside Express (app.ts firmwareFirst). */
export function tagRoute(req: IncomingMessage, route: string): void {
  (req as IncomingMessage & { [ROUTE]?: string })[ROUTE] = route;
}

/** The request as observe reads it: Express's, or a plain one answered before Express. */
type Observed = IncomingMessage & { [ROUTE]?: string; [MOUNT]?: string; originalUrl?: string; baseUrl?: string; route?: unknown };

export function observe(opts: { log: Logger; accessLog: boolean; metrics: Metrics }): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  // The labelled series, found once per (method, route, status): prom-client hashes a label
  // object on every inc/observe (issue 19 profile of API adds).
  const series = new Map<string, { count: { inc(): void }; time: { observe(v: number): void } }>();
  return (req, res, next) => {
    const t0 = performance.now();
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      const seconds = (performance.now() - t0) / 1000;
      const r = (req as Observed)[ROUTE] ?? routeOf(req as Observed);
      const status = res.writableFinished ? res.statusCode : 499;
      const key = `${req.method} ${status} ${r}`;
      let s = series.get(key);
      if (s === undefined) {
        const labels = { method: req.method, route: r, status: String(status) };
        s = { count: opts.metrics.httpRequests.labels(labels), time: opts.metrics.httpDuration.labels(labels) };
        // Bounded as the labels are (route patterns, not paths); a bound anyway.
        if (series.size < 10_000) series.set(key, s);
      }
      s.count.inc();
      s.time.observe(seconds);
      if (opts.accessLog) {
        const len = res.getHeader('content-length');
        opts.log.info('request', {
          client: req.socket.remoteAddress ?? '',
          // The local end the request arrived on: which of forge's addresses (which NIC) it used.
          server: localEndOf(req.socket),
          method: req.method,
          path: pathOf((req as Observed).originalUrl ?? req.url ?? '').replace(/^\/i\/[^/]+/, '/i/********'),
          route: r,
          status,
          bytes: typeof len === 'string' ? Number(len) : typeof len === 'number' ? len : 0,
          ms: Math.round(seconds * 1e4) / 10,
        });
      }
    };
    res.once('finish', finish);
    res.once('close', finish);
    next();
  };
}

/** The local end of a connection as host:port ([v6]:port), IPv4-mapped addresses unwrapped. */
export function localEndOf(socket: { localAddress?: string | undefined; localPort?: number | undefined }): string {
  const local = (socket.localAddress ?? '').replace(/^::ffff:/, '');
  const h = local.includes(':') ? `[${local}]` : local;
  return socket.localPort !== undefined ? `${h}:${socket.localPort}` : h;
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function routeOf(req: Observed): string {
  const route = req.route as { path?: unknown } | undefined;
  if (route === undefined || typeof route.path !== 'string') return 'unmatched';
  return `${req[MOUNT] ?? req.baseUrl ?? ''}${route.path}`;
}
