/**
 * /api/v1/{distros,profiles,systems}: list, get, create, partial update,
 * rename, copy, delete, bulk create and the blended view. Input is validated
 * here, once (core/validate.ts); referential rules are the store's, inside
 * its transaction.
 */
import type { Request, RequestHandler, Response } from 'express';
import { ouiFor } from '../core/mac.js';
import type { Distro, KindMap, ObjectKind, Settings, System } from '../core/model.js';
import type { ForgeConfig } from '../config.js';
import { assertDistroConfined, bootRootsOf } from '../boot/confine.js';
import { isName, validateNew, validatePatch } from '../core/validate.js';
import { FIELDS, INTERFACE_FIELDS, RANDOM_MAC } from '../core/fields.js';
import { filterRefusal, nothingToRedact, redact, redactVars } from '../core/secrets.js';
import { normalizeMac } from '../core/mac.js';
import { ForgeError, invalid } from '../errors.js';
import type { Auth } from '../auth.js';
import { writeAudit } from './tokens.js';
import type { ListFilter, Store, WriteOptions } from '../store/store.js';
import { storedTextOf } from '../store/common.js';
import { blendedProfile, blendedSystem, effectiveVirtType } from '../catalog.js';

/** A JSON answer from its text, with the headers express's res.json sets (Content-Type with charset, Content-Length). */
function sendJsonText(res: Response, status: number, text: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', String(Buffer.byteLength(text)));
  res.end(text);
}

export const PLURAL: Record<ObjectKind, string> = { distro: 'distros', profile: 'profiles', system: 'systems', subnet: 'subnets' };

function hasRandomMac(s: System): boolean {
  return Object.values(s.interfaces).some((i) => i.mac_address === RANDOM_MAC);
}

export interface ObjectsDeps {
  store: Store;
  settings: Settings;
  /** Reads with a read or admin token see secret fields unmasked. */
  auth: Auth;
  /** boot_roots and data_dir: distro files are confined (boot/confine.ts). */
  config: Pick<ForgeConfig, 'boot_roots' | 'data_dir'>;
}

/**
 * What every create/edit/bulk write goes through before the store: distro
 * files confined to the boot roots (boot/confine.ts), and OUIs for systems
 * that ask for random MACs, from their blended virt_type.
 */
async function writeOptions(ctx: ObjectsDeps, kind: ObjectKind, objs: readonly KindMap[ObjectKind][]): Promise<WriteOptions> {
  if (kind === 'distro') {
    const roots = bootRootsOf(ctx.config);
    for (const [i, d] of (objs as readonly Distro[]).entries()) {
      try {
        assertDistroConfined(d, roots);
      } catch (e) {
        if (e instanceof ForgeError && objs.length > 1) throw new ForgeError(e.code, `item ${i}: ${e.message}`, { ...(e.field === undefined ? {} : { field: e.field }), details: { index: i } });
        throw e;
      }
    }
  }
  if (kind !== 'system') return {};
  const map: Record<string, string> = {};
  for (const o of objs as readonly System[]) {
    if (hasRandomMac(o)) map[o.name] = ouiFor(await effectiveVirtType(ctx.store, ctx.settings, o));
  }
  return Object.keys(map).length === 0 ? {} : { randomOui: map };
}

export function parseFilter(kind: ObjectKind, query: Request['query']): ListFilter {
  const filter: ListFilter = {};
  for (const [k, v] of Object.entries(query)) {
    if (k === 'fields') continue;
    const known = k in FIELDS[kind] || (kind === 'system' && k in INTERFACE_FIELDS);
    if (!known) throw new ForgeError('UNKNOWN_FIELD', `${k}: not a ${kind} field to filter on`, { field: k });
    if (typeof v !== 'string') throw invalid(k, 'give the filter once, as a string or glob');
    let val = v;
    if (k === 'mac_address') val = normalizeMac(v) ?? v.toLowerCase();
    filter[k] = val;
  }
  return filter;
}

/** `?fields=name,profile`: answer only those fields (lists of 100k systems stay small). */
function parseFields(kind: ObjectKind, raw: unknown): string[] | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw === '') throw invalid('fields', 'give a comma-separated list of field names');
  const fields = raw.split(',').map((f) => f.trim());
  for (const f of fields) {
    if (!(f in FIELDS[kind]) && !(kind === 'system' && f === 'interfaces')) {
      throw new ForgeError('UNKNOWN_FIELD', `fields: ${f} is not a ${kind} field`, { field: 'fields' });
    }
  }
  return fields;
}

function newName(body: unknown): string {
  const nn = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['new_name'] : undefined;
  if (typeof nn !== 'string' || nn === '') throw new ForgeError('MISSING_FIELD', 'new_name: required', { field: 'new_name' });
  if (!isName(nn)) throw invalid('new_name', `"${nn}" is not a valid name (letters, digits, . _ -)`);
  return nn;
}

function param(req: Request, key: string): string {
  const v = req.params[key];
  if (typeof v !== 'string') throw new ForgeError('ROUTE_NOT_FOUND', `missing :${key}`);
  return v;
}

/** The top-level fields whose values differ (what the audit log says a write changed). */
export function changedFields(before: object, after: object): string[] {
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => k !== 'mtime' && k !== 'ctime' && JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}

/** Rows per store page of a streamed listing: the first small (its row is out within a page read), then larger. */
export const LIST_PAGES = { first: 100, rest: 2000 };

/**
 * A listing as one JSON array, written page by page as the store reads it
 * (Store.listPage), so the first row leaves before the last is read and a
 * million systems are never in memory at once. The socket's backpressure
 * paces the reads. A failure before the first byte is the usual error
 * answer; after it, the connection is cut (the client sees a truncated
 * array, never a valid but partial one).
 */
async function streamList(res: Response, page: (after: string, limit: number) => Promise<{ rows: string[]; next: string | undefined }>, row: (r: string) => string): Promise<void> {
  let p = await page('', LIST_PAGES.first);
  res.status(200).type('application/json');
  let sep = '[';
  try {
    for (;;) {
      let chunk = '';
      for (const r of p.rows) {
        chunk += sep + row(r);
        sep = ',';
      }
      if (p.next === undefined) {
        res.end(chunk + (sep === '[' ? '[]' : ']'));
        return;
      }
      if (chunk !== '') {
        if (!res.write(chunk)) await drained(res);
      } else if (!res.headersSent) res.flushHeaders();
      if (res.destroyed) return;
      p = await page(p.next, LIST_PAGES.rest);
    }
  } catch (e) {
    res.destroy(e instanceof Error ? e : new Error(String(e)));
  }
}

function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** The handlers of one kind's routes; the rows are in api/routes.ts. */
export interface ObjectHandlers {
  list: RequestHandler;
  bulk: RequestHandler;
  create: RequestHandler;
  get: RequestHandler;
  patch: RequestHandler;
  remove: RequestHandler;
  rename: RequestHandler;
  copy: RequestHandler;
  /** Profiles and systems only (distros have no variables of their own). */
  blended: RequestHandler;
}

export function objectHandlers(ctx: ObjectsDeps, kind: ObjectKind): ObjectHandlers {
  return {
    list: async (req, res) => {
      const filter = parseFilter(kind, req.query);
      const authed = await ctx.auth.canReadSecrets(req, res);
      for (const k of Object.keys(filter)) {
        const why = filterRefusal(kind, k, authed);
        if (why !== undefined) throw invalid(k, why);
      }
      const fields = parseFields(kind, req.query['fields']);
      const names = fields !== undefined && fields.length === 1 && fields[0] === 'name';
      // The stored document as written is what res.json(list) sent (same bytes); only a redacted
      // or projected row is parsed.
      const row = names
        ? (n: string): string => JSON.stringify({ name: n })
        : authed && fields === undefined
          ? (d: string): string => d
          : (d: string): string => {
              const o = (authed ? JSON.parse(d) : redact(kind, JSON.parse(d) as KindMap[typeof kind])) as Record<string, unknown>;
              return JSON.stringify(fields === undefined ? o : Object.fromEntries(fields.map((f) => [f, o[f]])));
            };
      await streamList(res, (after, limit) => ctx.store.listPage(kind, filter, { after, limit, names }), row);
    },

    bulk: async (req, res) => {
      const body: unknown = req.body;
      if (!Array.isArray(body)) throw invalid('body', 'bulk create needs a JSON array of objects');
      const objs = body.map((o: unknown, i: number) => {
        try {
          return validateNew(kind, o);
        } catch (e) {
          if (e instanceof ForgeError) {
            throw new ForgeError(e.code, `item ${i}: ${e.message}`, {
              ...(e.field === undefined ? {} : { field: e.field }),
              details: { index: i },
            });
          }
          throw e;
        }
      });
      const a = writeAudit(req, res, 201);
      const n = await ctx.store.bulkCreate(kind, objs, { ...(await writeOptions(ctx, kind, objs)), ...a.opts });
      a.done();
      res.status(201).json({ created: n });
    },

    create: async (req, res) => {
      const obj = validateNew(kind, req.body);
      // The audit row commits with the write (one transaction, one group commit).
      const a = writeAudit(req, res, 201);
      const created = await ctx.store.create(kind, obj, { ...(await writeOptions(ctx, kind, [obj])), ...a.opts });
      a.done();
      // With nothing to mask, the answer is the text the store wrote (the same bytes res.json of
      // the redacted copy gives), not a copy serialised again (issue 19: API adds' CPU).
      const stored = storedTextOf(created);
      if (stored !== undefined && nothingToRedact(kind, created)) sendJsonText(res, 201, stored);
      else res.status(201).json(redact(kind, created));
    },

    get: async (req, res) => {
      const obj = await ctx.store.mustGet(kind, param(req, 'name'));
      res.json((await ctx.auth.canReadSecrets(req, res)) ? obj : redact(kind, obj));
    },

    patch: async (req, res) => {
      const name = param(req, 'name');
      // Validate against the current object first (clear errors, OUI for
      // random MACs), then apply the patch again inside the store's
      // transaction so concurrent edits of one object never lose each other.
      const preview = validatePatch(kind, await ctx.store.mustGet(kind, name), req.body);
      const opts = await writeOptions(ctx, kind, [preview]);
      let changed: string[] = [];
      const after = await ctx.store.update(kind, name, (cur) => {
        const next = validatePatch(kind, cur, req.body);
        changed = changedFields(cur, next);
        return next;
      }, opts);
      res.locals['audit_fields'] = changed;
      res.json(redact(kind, after));
    },

    remove: async (req, res) => {
      const recursive = req.query['recursive'];
      const removed = await ctx.store.remove(kind, param(req, 'name'), {
        recursive: recursive === 'true' || recursive === '1' || recursive === 'yes',
      });
      res.json({ removed });
    },

    rename: async (req, res) => {
      const to = newName(req.body);
      await ctx.store.rename(kind, param(req, 'name'), to);
      res.json(redact(kind, await ctx.store.mustGet(kind, to)));
    },

    copy: async (req, res) => {
      const to = newName(req.body);
      const src = structuredClone(await ctx.store.mustGet(kind, param(req, 'name')));
      src.name = to;
      if (kind === 'system') {
        // MACs and IPs are unique across systems: a copy starts without them.
        for (const i of Object.values((src as System).interfaces)) {
          i.mac_address = '';
          i.ip_address = '';
        }
      }
      res.status(201).json(redact(kind, await ctx.store.create(kind, src, await writeOptions(ctx, kind, [src]))));
    },

    blended: async (req, res) => {
      const name = param(req, 'name');
      const vars = kind === 'system' ? await blendedSystem(ctx.store, ctx.settings, name) : await blendedProfile(ctx.store, ctx.settings, name);
      res.json((await ctx.auth.canReadSecrets(req, res)) ? vars : redactVars(vars));
    },
  };
}
