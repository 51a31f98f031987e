/**
 * Bearer-token check for write endpoints (RFC 6750 section 2.1). Cobbler's
 * XML-RPC once accepted writes without checking the token (CVE-2018-1000226):
 * here every write route carries this middleware explicitly.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ForgeError } from '../errors.js';
import { jsonBody } from '../services/http/limits.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export function tokenMatches(expected: string, given: string): boolean {
  // Compare digests so the comparison time does not depend on the length or content.
  return timingSafeEqual(digest(expected), digest(given));
}

/**
 * The token check, then (only for a request that passed it) the JSON body
 * parser with the route's size limit: an anonymous body is never buffered.
 */
export function requireToken(token: () => string): RequestHandler {
  const body = jsonBody();
  return (req: Request, res: Response, next: NextFunction): void => {
    const h = req.get('authorization');
    if (h === undefined || h.trim() === '') {
      next(new ForgeError('AUTH_REQUIRED', 'this endpoint needs Authorization: Bearer TOKEN (see DATA_DIR/token or FORGE_TOKEN)', { field: 'authorization' }));
      return;
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (m === null || !tokenMatches(token(), m[1]!)) {
      next(new ForgeError('AUTH_INVALID', 'the bearer token is wrong', { field: 'authorization' }));
      return;
    }
    body(req, res, next);
  };
}
