/**
 * The OpenAPI 3.1 document served at /api/v1/openapi.json, generated from
 * the route table (api/routes.ts, plus the installer-facing rows of
 * render/routes.ts and services/http/boot.ts) and from the same field tables
 * the validator uses, so it can drift from neither. No path is listed here.
 */
import { CATALOGUE } from '../errors.js';
import { FIELDS, INTERFACE_FIELDS } from '../core/fields.js';
import type { FieldSpec } from '../core/fields.js';
import { INHERIT } from '../core/model.js';
import type { ObjectKind } from '../core/model.js';
import { EVENT_TYPES } from '../core/model.js';
import type { MediaKind, ReplySpec, RouteRow, SchemaRef } from '../services/http/route.js';

type Schema = Record<string, unknown>;

function fieldSchema(s: FieldSpec): Schema {
  let sch: Schema;
  switch (s.type) {
    case 'int':
      sch = { type: 'integer', ...(s.min !== undefined ? { minimum: s.min } : {}), ...(s.max !== undefined ? { maximum: s.max } : {}) };
      break;
    case 'number':
      sch = { type: 'number', ...(s.min !== undefined ? { minimum: s.min } : {}) };
      break;
    case 'bool':
      sch = { type: 'boolean' };
      break;
    case 'enum':
      sch = { type: 'string', enum: [...(s.values ?? [])] };
      break;
    case 'dict':
      sch = { type: 'object', additionalProperties: { type: ['string', 'null'] } };
      break;
    case 'list':
      sch = { type: 'array', items: { type: 'string' } };
      break;
    case 'name':
      sch = { type: 'string', pattern: '^[A-Za-z0-9._-]+$', maxLength: 128 };
      break;
    case 'mac':
      sch = { type: 'string', pattern: '^([0-9a-f]{2}(:[0-9a-f]{2}){5}|random|)$' };
      break;
    default:
      sch = { type: 'string' };
  }
  if (s.inherit === true) sch = { anyOf: [sch, { const: INHERIT }] };
  return { ...sch, description: s.doc, ...(s.readonly === true ? { readOnly: true } : {}) };
}

function objectSchema(kind: ObjectKind): Schema {
  const props: Record<string, Schema> = {};
  for (const [k, s] of Object.entries(FIELDS[kind])) props[k] = fieldSchema(s);
  if (kind === 'system') {
    props['interfaces'] = {
      type: 'object',
      description: 'keyed by interface name; in PATCH a null value deletes the interface',
      additionalProperties: { $ref: '#/components/schemas/Interface' },
    };
  }
  const required = Object.entries(FIELDS[kind]).filter(([, s]) => s.required === true).map(([k]) => k);
  return { type: 'object', properties: props, required, additionalProperties: false };
}

const MEDIA: Record<MediaKind, string> = {
  json: 'application/json',
  text: 'text/plain',
  binary: 'application/octet-stream',
  'event-stream': 'text/event-stream',
  form: 'application/x-www-form-urlencoded',
  'pgp-keys': 'application/pgp-keys',
};

/** Express `/systems/:name/events`, `/boot/grub/*rest` -> OpenAPI `/systems/{name}/events`, `/boot/grub/{rest}`. */
export function openapiPath(expressPath: string): string {
  return expressPath.replace(/[:*]([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
}

function pathParams(expressPath: string): string[] {
  return [...expressPath.matchAll(/[:*]([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
}

/** The schemas rows refer to by name; each is the one declaration of that shape. */
function components(): Record<string, Schema> {
  const ifaceProps: Record<string, Schema> = {};
  for (const [k, s] of Object.entries(INTERFACE_FIELDS)) ifaceProps[k] = fieldSchema(s);
  const str = { type: 'string' };
  return {
    Distro: objectSchema('distro'),
    Profile: objectSchema('profile'),
    System: objectSchema('system'),
    Subnet: objectSchema('subnet'),
    Interface: { type: 'object', properties: ifaceProps, additionalProperties: false },
    Error: {
      type: 'object',
      properties: { code: { type: 'string', enum: Object.keys(CATALOGUE) }, message: str, field: str, details: {} },
      required: ['code', 'message'],
    },
    Health: { type: 'object', properties: { ok: { type: 'boolean' }, name: str, version: str, base_url: str }, required: ['ok', 'name', 'version'] },
    Whoami: { type: 'object', properties: { role: { type: 'string', enum: ['anonymous', 'read', 'admin'] }, token_id: { type: 'string' }, can_write: { type: 'boolean' } }, required: ['role', 'can_write'] },
    Removed: { type: 'object', properties: { removed: { type: 'array', items: str } }, required: ['removed'] },
    Created: { type: 'object', properties: { created: { type: 'integer', minimum: 0 } }, required: ['created'] },
    Event: {
      type: 'object',
      properties: { id: { type: 'integer' }, system: str, type: { type: 'string', enum: [...EVENT_TYPES] }, source: str, time: { type: 'string', format: 'date-time' }, detail: { type: 'object' } },
      required: ['id', 'system', 'type', 'source', 'time', 'detail'],
    },
    NewEvent: {
      type: 'object',
      properties: { type: { type: 'string', enum: [...EVENT_TYPES] }, source: { type: 'string', maxLength: 64 }, detail: { type: 'object' } },
      required: ['type'],
      additionalProperties: false,
    },
    CallbackResult: { type: 'object', properties: { system: str, event: { type: 'string', enum: [...EVENT_TYPES] }, netboot_enabled: { type: 'boolean' } }, required: ['system', 'event'] },
    Problem: {
      type: 'object',
      properties: { severity: { type: 'string', enum: ['error', 'warning'] }, object: str, field: str, message: str },
      required: ['severity', 'object', 'message'],
    },
    PowerResult: {
      type: 'object',
      properties: {
        name: str,
        action: str,
        ok: { type: 'boolean' },
        state: str,
        steps: { type: 'array', items: str },
        error: { type: 'object', properties: { code: str, message: str }, required: ['code', 'message'] },
      },
      required: ['name', 'action', 'ok', 'steps'],
    },
    DiscoverResult: {
      type: 'object',
      properties: { name: str, action: { type: 'string', enum: ['wait', 'reboot', 'kexec', 'poweroff'] }, system: str, rule: str },
      required: ['name', 'action'],
    },
  };
}

function schemaOf(ref: SchemaRef): Schema {
  return typeof ref === 'string' ? { $ref: `#/components/schemas/${ref}` } : ref;
}

function content(type: MediaKind | undefined, schema: SchemaRef | undefined): Schema {
  const media = MEDIA[type ?? 'json'];
  const dflt = type === undefined || type === 'json' || type === 'form' ? { type: 'object' } : { type: 'string' };
  return { [media]: { schema: schema === undefined ? dflt : schemaOf(schema) } };
}

function operation(row: RouteRow): Schema {
  const responses: Record<string, Schema> = {};
  const replies: readonly ReplySpec[] = Array.isArray(row.reply) ? row.reply : [row.reply as ReplySpec];
  for (const r of replies) responses[String(r.status ?? 200)] = { description: r.description, content: content(r.type, r.schema) };
  const err = { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  const errors = new Set(row.errors ?? []);
  if (row.auth === 'admin' || row.auth === 'token') {
    errors.add(401);
    errors.add(403);
  }
  for (const st of [...errors].sort((x, y) => x - y)) responses[String(st)] = err;
  const parameters: Schema[] = pathParams(row.path).map((name) => ({ name, in: 'path', required: true, schema: row.params?.[name] ?? { type: 'string' } }));
  for (const q of row.query ?? []) {
    parameters.push({ name: q.name, in: q.in, description: q.description, required: q.required === true, schema: q.schema ?? { type: 'string' } });
  }
  return {
    summary: row.summary,
    operationId: `${row.method}${openapiPath(row.path).replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
    'x-forge-auth': row.auth,
    ...(row.auth === 'admin' || row.auth === 'token' ? { security: [{ bearer: [] }] } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(row.request !== undefined ? { requestBody: { required: true, content: content(row.request.type, row.request.schema) } } : {}),
    responses,
  };
}

/**
 * The document: `api` rows under /api/v1, `root` rows (installer-facing,
 * same server, same error bodies) as they are mounted. Two rows for one
 * method and path is a table error and throws.
 */
export function openapiDocument(version: string, api: readonly RouteRow[], root: readonly RouteRow[] = []): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  const add = (prefix: string, row: RouteRow): void => {
    const p = openapiPath(prefix + row.path);
    const item = (paths[p] ??= {});
    if (item[row.method] !== undefined) throw new Error(`route table: ${row.method.toUpperCase()} ${p} twice`);
    item[row.method] = operation(row);
  };
  for (const row of api) add('/api/v1', row);
  for (const row of root) add('', row);
  return {
    openapi: '3.1.0',
    info: {
      title: 'forge',
      version,
      description: 'Network install server API. Admin routes need Authorization: Bearer TOKEN; x-forge-auth on each operation says who may call it (anonymous; read: anyone, secrets masked without a token; token: a read or admin token; admin).',
    },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: components(),
    },
  };
}
