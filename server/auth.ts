/**
 * Bearer tokens and roles (RFC 6750 section 2.1). Cobbler's XML-RPC once
 * accepted writes without checking the token (CVE-2018-1000226): here every
 * write route carries `auth.require('admin')` explicitly.
 *
 * Tokens: DATA_DIR/token is the bootstrap admin token (id `bootstrap`);
 * `forge token create --role read|admin` adds more, kept in the store only as
 * a SHA-256 digest (the token is shown once). A read token sees everything an
 * admin sees (secrets included) and can write nothing.
 *
 * Every failed authentication (a wrong or revoked token) goes to the audit
 * log, at most AUTH_FAIL_AUDIT_PER_MINUTE per client address (a guessing
 * loop cannot fill the disk; the rest are counted in the next entry).
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ANONYMOUS, allows, type NewAudit, type Principal, type Role, type TokenPrincipal } from './core/access.js';
import { ForgeError } from './errors.js';
import type { Store } from './store/store.js';
import { jsonBody } from './services/http/limits.js';

/** SHA-256 of a string (crypto.hash: one call, no Hash object; a third of createHash's cost per request). */
const digest = (s: string): Buffer => hash('sha256', s, 'buffer');

/** Hex SHA-256 of a token: what the store keeps. */
export const tokenHash = (token: string): string => digest(token).toString('hex');

/** A new API token: `forge_` + 256 random bits (base64url). */
export const newApiToken = (): string => `forge_${randomBytes(32).toString('base64url')}`;

/** The last expected token's digest (the bootstrap token, asked about on every API request). */
let expectedDigest: { token: string; digest: Buffer } | undefined;

export function tokenMatches(expected: string, given: string): boolean {
  // Compare digests so the comparison time does not depend on the length or content.
  if (expectedDigest?.token !== expected) expectedDigest = { token: expected, digest: digest(expected) };
  return timingSafeEqual(expectedDigest.digest, digest(given));
}

/** The token of an `Authorization: Bearer TOKEN` header; '' when the header is absent. */
export function bearerOf(header: string | undefined): string | undefined {
  if (header === undefined || header.trim() === '') return '';
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m === null ? undefined : m[1]!;
}

export function clientOf(req: Request): string {
  return (req.ip ?? req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
}

/** `METHOD /path` as the client sent it (the query left out: it may carry values). */
export function actionOf(req: Request): string {
  const u = req.originalUrl;
  const q = u.indexOf('?');
  return `${req.method} ${(q < 0 ? u : u.slice(0, q)).replace(/^\/i\/[^/]+/, '/i/********').slice(0, 300)}`;
}

export const AUTH_FAIL_AUDIT_PER_MINUTE = 10;

export class Auth {
  private readonly failures = new Map<string, { minute: number; n: number; dropped: number }>();

  constructor(
    private readonly bootstrap: () => string,
    private readonly store: Store,
    private readonly audit: (e: NewAudit) => void,
  ) {}

  /** The principal a token belongs to, or undefined (wrong or revoked). */
  async principalOf(token: string): Promise<TokenPrincipal | undefined> {
    if (token === '') return undefined;
    if (tokenMatches(this.bootstrap(), token)) return { kind: 'token', id: 'bootstrap', role: 'admin' };
    const t = await this.store.findApiToken(tokenHash(token));
    return t === undefined ? undefined : { kind: 'token', id: String(t.id), role: t.role };
  }

  /** Record a failed authentication (rate-limited per client address). */
  failed(client: string, action: string, reason: string): void {
    const minute = Math.floor(Date.now() / 60_000);
    let f = this.failures.get(client);
    if (f === undefined || f.minute !== minute) {
      if (this.failures.size > 10_000) this.failures.clear();
      f = { minute, n: 0, dropped: f?.dropped ?? 0 };
      this.failures.set(client, f);
    }
    if (f.n >= AUTH_FAIL_AUDIT_PER_MINUTE) {
      f.dropped++;
      return;
    }
    f.n++;
    const detail: Record<string, unknown> = { reason };
    if (f.dropped > 0) detail['not_recorded_before'] = f.dropped;
    f.dropped = 0;
    this.audit({ actor: 'anonymous', role: 'anonymous', client, action: 'auth_failed', object_type: '', object: action, detail });
  }

  /**
   * Who sent this request: anonymous without an Authorization header; a
   * wrong, revoked or malformed token is AUTH_INVALID (and audited). Cached
   * on res.locals for the rest of the request.
   */
  async identify(req: Request, res: Response): Promise<Principal> {
    const cached = res.locals['principal'] as Principal | undefined;
    if (cached !== undefined) return cached;
    const token = bearerOf(req.get('authorization'));
    if (token === '') return (res.locals['principal'] = ANONYMOUS);
    const p = token === undefined ? undefined : await this.principalOf(token);
    if (p === undefined) {
      this.failed(clientOf(req), actionOf(req), token === undefined ? 'malformed Authorization header' : 'wrong or revoked token');
      throw new ForgeError('AUTH_INVALID', 'the bearer token is wrong', { field: 'authorization' });
    }
    return (res.locals['principal'] = p);
  }

  /**
   * The role check, then (only for a request that passed it) the JSON body
   * parser with the route's size limit: an anonymous body is never buffered.
   */
  require(role: Role): RequestHandler {
    const body = jsonBody();
    return (req: Request, res: Response, next: NextFunction): void => {
      this.identify(req, res).then(
        (p) => {
          if (p.kind === 'anonymous') {
            next(new ForgeError('AUTH_REQUIRED', 'this endpoint needs Authorization: Bearer TOKEN (see DATA_DIR/token or FORGE_TOKEN)', { field: 'authorization' }));
          } else if (!allows(p, role)) {
            this.failed(clientOf(req), actionOf(req), `token ${p.id} has role ${p.role}, this needs ${role}`);
            next(new ForgeError('FORBIDDEN', `token ${p.id} has role ${p.role}; this endpoint needs an ${role} token`, { field: 'authorization' }));
          } else {
            body(req, res, next);
          }
        },
        (e: unknown) => next(e),
      );
    };
  }

  /** True when the request carries a read or admin token (reads then show secrets). Throws AUTH_INVALID on a bad one. */
  async canReadSecrets(req: Request, res: Response): Promise<boolean> {
    return allows(await this.identify(req, res), 'read');
  }
}
