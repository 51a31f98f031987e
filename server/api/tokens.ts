/**
 * API tokens by role and the audit log (admin only; rows in api/routes.ts):
 *   POST   /api/v1/tokens        {"role": "read|admin", "comment": "..."} -> the token, shown this once
 *   GET    /api/v1/tokens        id, role, comment, created, revoked (never the token)
 *   DELETE /api/v1/tokens/ID     revoke
 *   GET    /api/v1/audit?since=ISO&object=TYPE/NAME&limit=N
 * and `auditWrites`, the middleware that puts every write under /api/v1 into
 * the audit log once it is answered: who (token id and role), what (method,
 * path, object type and name, the names of the fields written: never their
 * values), when, from which address, and the HTTP status.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ROLES, type NewAudit, type Principal, type Role } from '../core/access.js';
import { invalid } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { clientOf, newApiToken, tokenHash, type Auth } from '../auth.js';

/** `/systems/web1/rename` -> system web1; `/import` -> data. */
export function auditTarget(path: string): { type: string; name: string } {
  const seg = path.split('/').filter((x) => x !== '').map((x) => {
    try {
      return decodeURIComponent(x);
    } catch {
      return x;
    }
  });
  const singular: Record<string, string> = { systems: 'system', profiles: 'profile', distros: 'distro', rules: 'rule', discovered: 'discovered', tokens: 'token' };
  const first = seg[0] ?? '';
  const type = singular[first] ?? (first === 'import' ? 'data' : first);
  const name = seg[1] === 'bulk' ? '' : seg[1] ?? '';
  return { type, name };
}

/** The field names a write carried (values are never logged: they may be secrets). */
function writtenFields(req: Request, res: Response): string[] | undefined {
  const changed = res.locals['audit_fields'];
  if (Array.isArray(changed)) return changed as string[];
  const b: unknown = req.body;
  if (req.method === 'POST' && typeof b === 'object' && b !== null && !Array.isArray(b)) return Object.keys(b).sort();
  return undefined;
}

const AUDIT_STARTED = 'audit_started';
const AUDIT_PATH = 'audit_path';
/** Set by a handler whose store write carried its audit row (WriteOptions.audit): not written again. */
const AUDITED = 'audited';

/**
 * The audit row of this write request as it ends with `status` (undefined: not audited here, e.g.
 * no token). What auditWrites records after the response, and what a handler hands its store write
 * (`writeAudit`) so the row commits with the write.
 */
function auditEntryOf(req: Request, res: Response, status: number): NewAudit | undefined {
  const p = res.locals['principal'] as Principal | undefined;
  if (p === undefined || p.kind === 'anonymous') return undefined;
  // The path below /api/v1 as auditWrites saw it (routers rewrite req.url on the way).
  const seen = res.locals[AUDIT_PATH];
  const path = typeof seen === 'string' ? seen : req.path;
  const target = auditTarget(path);
  const b: unknown = req.body;
  // A create names its object in the body.
  const name = target.name !== '' ? target.name : typeof b === 'object' && b !== null && typeof (b as Record<string, unknown>)['name'] === 'string' ? ((b as Record<string, unknown>)['name'] as string).slice(0, 200) : '';
  const detail: Record<string, unknown> = { status };
  const fields = writtenFields(req, res);
  if (fields !== undefined) detail['fields'] = fields;
  if (Array.isArray(req.body)) detail['count'] = req.body.length;
  const started = res.locals[AUDIT_STARTED];
  return {
    time: typeof started === 'string' ? started : new Date().toISOString(),
    actor: p.id, role: p.role, client: clientOf(req), action: `${req.method} /api/v1${path}`, object_type: target.type, object: name, detail,
  };
}

/**
 * For a handler's store write: the audit row it commits with (status `status`, what the handler
 * answers on success). Marks the request audited only once the write returned: a refused write
 * gets its row from auditWrites, with the refusal's status. Call `done()` after the write.
 */
export function writeAudit(req: Request, res: Response, status: number): { opts: { audit?: NewAudit }; done: () => void } {
  const audit = auditEntryOf(req, res, status);
  return { opts: audit === undefined ? {} : { audit }, done: () => void (res.locals[AUDITED] = audit !== undefined) };
}

export function auditWrites(auth: Auth, store: Store, log: Logger): RequestHandler {
  const alog = log.child('audit');
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') {
      next();
      return;
    }
    res.locals[AUDIT_STARTED] = new Date().toISOString();
    res.locals[AUDIT_PATH] = req.path;
    res.on('finish', () => {
      if (res.locals[AUDITED] === true) return; // committed with the write
      const p = res.locals['principal'] as Principal | undefined;
      if (p === undefined || p.kind === 'anonymous') {
        // Refused before any token was checked (none sent): a failed authentication too.
        if (res.statusCode === 401) auth.failed(clientOf(req), `${req.method} /api/v1${String(res.locals[AUDIT_PATH])}`, 'no token');
        return;
      }
      if (res.statusCode === 403) return; // a read token trying to write: audited by Auth.require
      const e = auditEntryOf(req, res, res.statusCode);
      if (e === undefined) return;
      store.addAudit(e).catch((err: unknown) => alog.warn('could not record audit entry', { action: e.action, err }));
    });
    next();
  };
}

/** Handlers of the token and audit rows (api/routes.ts; all admin). */
export function tokenHandlers(store: Store): { create: RequestHandler; list: RequestHandler; revoke: RequestHandler; audit: RequestHandler } {
  return {
    create: async (req, res) => {
      const b: unknown = req.body ?? {};
      if (typeof b !== 'object' || b === null || Array.isArray(b)) throw invalid('body', 'must be a JSON object');
      const o = b as Record<string, unknown>;
      const role = o['role'] ?? 'read';
      if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw invalid('role', `must be one of ${ROLES.join(', ')}`);
      const comment = o['comment'] ?? '';
      if (typeof comment !== 'string' || comment.length > 200) throw invalid('comment', 'must be text of at most 200 characters');
      const token = newApiToken();
      const info = await store.createApiToken(role as Role, comment, tokenHash(token));
      res.locals['audit_fields'] = ['comment', 'role'];
      res.status(201).json({ ...info, token });
    },
    list: async (_req, res) => {
      res.json(await store.listApiTokens());
    },
    revoke: async (req, res) => {
      const id = Number(req.params['id']);
      if (!Number.isInteger(id) || id < 1) throw invalid('id', 'must be a token id (forge token list)');
      res.json(await store.revokeApiToken(id));
    },
    audit: async (req, res) => {
      const q = req.query as Record<string, unknown>;
      const opts: { since?: string; object?: string; limit?: number } = {};
      if (typeof q['since'] === 'string' && q['since'] !== '') {
        if (Number.isNaN(Date.parse(q['since']))) throw invalid('since', 'must be an ISO time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)');
        opts.since = new Date(q['since']).toISOString();
      }
      if (typeof q['object'] === 'string' && q['object'] !== '') opts.object = q['object'].slice(0, 300);
      if (typeof q['limit'] === 'string' && q['limit'] !== '') {
        const n = Number(q['limit']);
        if (!Number.isInteger(n) || n < 1 || n > 100_000) throw invalid('limit', 'must be a whole number 1..100000');
        opts.limit = n;
      }
      res.json(await store.listAudit(opts));
    },
  };
}
