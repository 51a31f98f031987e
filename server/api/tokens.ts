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
import { ROLES, type Principal, type Role } from '../core/access.js';
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

export function auditWrites(auth: Auth, store: Store, log: Logger): RequestHandler {
  const alog = log.child('audit');
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') {
      next();
      return;
    }
    const path = req.path;
    const started = new Date().toISOString();
    res.on('finish', () => {
      const p = res.locals['principal'] as Principal | undefined;
      const client = clientOf(req);
      const action = `${req.method} /api/v1${path}`;
      if (p === undefined || p.kind === 'anonymous') {
        // Refused before any token was checked (none sent): a failed authentication too.
        if (res.statusCode === 401) auth.failed(client, action, 'no token');
        return;
      }
      if (res.statusCode === 403) return; // a read token trying to write: audited by Auth.require
      const target = auditTarget(path);
      const { type } = target;
      const b: unknown = req.body;
      // A create names its object in the body.
      const name = target.name !== '' ? target.name : typeof b === 'object' && b !== null && typeof (b as Record<string, unknown>)['name'] === 'string' ? ((b as Record<string, unknown>)['name'] as string).slice(0, 200) : '';
      const detail: Record<string, unknown> = { status: res.statusCode };
      const fields = writtenFields(req, res);
      if (fields !== undefined) detail['fields'] = fields;
      if (Array.isArray(req.body)) detail['count'] = req.body.length;
      store
        .addAudit({ time: started, actor: p.id, role: p.role, client, action, object_type: type, object: name, detail })
        .catch((e: unknown) => alog.warn('could not record audit entry', { action, err: e }));
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
