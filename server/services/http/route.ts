/**
 * One HTTP route as a row: method, path, who may call it, what it takes and
 * answers (schema references into the OpenAPI components), and its handler.
 * The /api/v1 table (api/routes.ts) and the installer-facing routes
 * (render/routes.ts, services/http/boot.ts) are lists of these rows; Express
 * is given the rows by `mountRows` and OpenAPI is generated from the same
 * rows (api/openapi.ts), so what is served and what is documented cannot
 * drift apart.
 */
import type { RequestHandler, Router } from 'express';

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

/** Register rows on a router in table order (Express tries routes in registration order). */
export function mountRows(router: Router, rows: readonly RouteRow[], guards: Guards): Router {
  for (const row of rows) router[row.method](row.path, ...guards[row.auth], ...(row.before ?? []), row.handler);
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
