/**
 * One HTTP route as a row: method, path, who may call it, what it takes and
 * answers (schema references into the OpenAPI components), and its handler.
 * The /api/v1 table (api/routes.ts) and the installer-facing routes
 * (render/routes.ts, services/http/boot.ts) are lists of these rows; Express
 * is given the rows by `mountRows` and OpenAPI is generated from the same
 * rows (api/openapi.ts), so what is served and what is documented cannot
 * drift apart.
 */
import { Router as newRouter } from 'express';
import type { Request, RequestHandler, Router } from 'express';
import { routeTag } from './observe.js';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * Who may call a route.
 *   anonymous  public by design: installers, the discovery image, firmware (they cannot hold a token)
 *   read       a read; open without a token today (secret fields masked), a read token may be required later
 *   token      shows secrets: needs a read or admin bearer token (server/auth.ts)
 *   admin      changes state: needs an admin bearer token (RFC 6750 section 2.1)
 */
export type Auth = 'anonymous' | 'read' | 'token' | 'admin';

/** A JSON Schema (OpenAPI 3.1 schema object). */
export type Schema = Record<string, unknown>;

/** A component name (`System` -> #/components/schemas/System) or an inline schema. */
export type SchemaRef = string | Schema;

export interface ParamSpec {
  name: string;
  in: 'query' | 'header';
  description: string;
  schema?: Schema;
  required?: boolean;
}

export type MediaKind = 'json' | 'text' | 'binary' | 'event-stream' | 'form' | 'pgp-keys';

export interface BodySpec {
  /** Default json. */
  type?: MediaKind;
  schema?: SchemaRef;
  description?: string;
}

export interface ReplySpec {
  /** Default 200. */
  status?: number;
  description: string;
  /** Default json. */
  type?: MediaKind;
  schema?: SchemaRef;
}

export interface RouteRow {
  method: Method;
  /** Express pattern (`/systems/:name/events`), relative to the table's mount point. */
  path: string;
  auth: Auth;
  summary: string;
  /** Path parameter schemas where a plain string is not the whole truth (enums). */
  params?: Record<string, Schema>;
  query?: readonly ParamSpec[];
  request?: BodySpec;
  /** Success answers; the first is the usual one. */
  reply: ReplySpec | readonly ReplySpec[];
  /** Error statuses this route answers with the catalogue's error body (401/403 are added for admin routes). */
  errors?: readonly number[];
  /** Run after the auth check, before the handler: rate limits, body parsers. */
  before?: readonly RequestHandler[];
  handler: RequestHandler;
}

/** What a row's auth level runs before its handler (api/auth.ts builds these). */
export type Guards = Record<Auth, readonly RequestHandler[]>;

/** A row path's first segment when it is a fixed string (`/systems/:name` -> `systems`), else undefined (`/:x`, `/*rest`). */
function fixedHead(path: string): string | undefined {
  const m = /^\/([^/]*)/.exec(path);
  const head = m?.[1];
  return head === undefined || head === '' || /[:*?{}()+\\]/.test(head) ? undefined : head.toLowerCase();
}

/** A request path's first segment, lowercased (Express matches routes without regard to case). */
function requestHead(req: Request): string {
  const p = req.path;
  const end = p.indexOf('/', 1);
  return (end < 0 ? p.slice(1) : p.slice(1, end)).toLowerCase();
}

/**
 * Register rows on a router in table order (Express tries routes in registration order).
 *
 * Express tests a request against every route registered before the one that answers it: at
 * the end of the /api/v1 table (POST /systems, after ~100 rows) that walk was a tenth of an
 * API add's CPU (issue 19 profile: router `next` and path matching). So the rows are also
 * kept in small routers, one per method and fixed first segment (`POST systems`), and a
 * request goes straight to the one for its method and first segment, where only rows that
 * could match it are, in table order: the answer is the one the whole table would give.
 * Rows whose first segment is a parameter are in every router of their method. HEAD is
 * served by GET rows as Express does; OPTIONS (Express's automatic Allow answer) and any
 * other method go through the whole table. The whole table stays the router's route stack,
 * so a walk of the app's routes (the API contract test) sees every row.
 */
export function mountRows(router: Router, rows: readonly RouteRow[], guards: Guards): Router {
  const all = newRouter();
  const tags = new Map(rows.map((row) => [row, routeTag(row.path)]));
  const handlers = (row: RouteRow): RequestHandler[] => [tags.get(row)!, ...guards[row.auth], ...(row.before ?? []), row.handler];
  for (const row of rows) all[row.method](row.path, ...handlers(row));
  const heads = new Map<Method, Set<string>>();
  for (const row of rows) {
    const h = fixedHead(row.path);
    if (!heads.has(row.method)) heads.set(row.method, new Set());
    if (h !== undefined) heads.get(row.method)!.add(h);
  }
  // method -> first segment -> its router; '' holds the rows any first segment can match.
  const byMethod = new Map<string, Map<string, Router>>();
  for (const [method, set] of heads) {
    const routers = new Map<string, Router>();
    for (const head of [...set, '']) {
      const r = newRouter();
      for (const row of rows) {
        if (row.method !== method) continue;
        const h = fixedHead(row.path);
        if (h === undefined || h === head) r[row.method](row.path, ...handlers(row));
      }
      routers.set(head, r);
    }
    byMethod.set(method.toUpperCase(), routers);
  }
  const dispatch: RequestHandler = (req, res, next) => {
    const routers = byMethod.get(req.method === 'HEAD' ? 'GET' : req.method);
    if (routers === undefined) {
      if (req.method === 'OPTIONS' || !['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method)) all(req, res, next);
      else next();
      return;
    }
    (routers.get(requestHead(req)) ?? routers.get(''))!(req, res, next);
  };
  // The route walk (test/integration/api-contract.test.ts) reads `stack` of a mounted handler.
  Object.defineProperty(dispatch, 'stack', { value: all.stack, enumerable: false });
  router.use(dispatch);
  return router;
}

/**
 * Register an installer-facing table (no token check there): every row must
 * say anonymous, so a route that needs a token cannot be mounted open by mistake.
 */
export function mountPublicRows(router: Router, rows: readonly RouteRow[]): Router {
  for (const row of rows) {
    if (row.auth !== 'anonymous') throw new Error(`${row.method.toUpperCase()} ${row.path}: a public table holds only anonymous routes (this one is ${row.auth})`);
  }
  return mountRows(router, rows, { anonymous: [], read: [], token: [], admin: [] });
}
