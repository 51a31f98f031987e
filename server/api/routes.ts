/** The /api/v1 router: every API route in one table. */
import { Router } from 'express';
import type { BaseUrl } from '../deps.js';
import type { Logger } from '../log.js';
import { requireToken } from './auth.js';
import { dataRouter, type DataDeps } from './data.js';
import { eventsRouter } from './events.js';
import { hasToken, streamRouter, type EventHub } from './stream.js';
import { ForgeError } from '../errors.js';
import { objectsRouter } from './objects.js';
import { openapiDocument } from './openapi.js';
import { powerRouter } from './power.js';
import { discoveryRouter } from './discovery.js';

import { VERSION } from '../core/version.js';

export { VERSION };

/** What the /api/v1 routes use. */
export interface ApiDeps extends DataDeps {
  /** Bearer token required by write endpoints. */
  token: string;
  baseUrl: BaseUrl;
  /** Stored events, published for the live stream. */
  events: EventHub;
  log: Logger;
}

export function apiRouter(ctx: ApiDeps): Router {
  const auth = requireToken(() => ctx.token);
  const r = Router();
  r.get('/health', (_req, res) => {
    res.json({ ok: true, name: 'forge', version: VERSION, base_url: ctx.baseUrl() });
  });
  r.get('/openapi.json', (_req, res) => {
    res.json(openapiDocument(VERSION));
  });
  // What the web UI shows: edit controls only for a token that may write.
  r.get('/whoami', (req, res) => {
    const given = req.get('authorization') !== undefined;
    if (given && !hasToken(req, ctx.token)) throw new ForgeError('AUTH_INVALID', 'the bearer token is wrong', { field: 'authorization' });
    res.json({ role: given ? 'admin' : 'anonymous', can_write: given });
  });
  // DHCP leases as stored (the running server writes them in batches).
  r.get('/leases', async (_req, res) => {
    res.json(await ctx.store.listLeases());
  });
  r.use(streamRouter(ctx));
  r.use(eventsRouter(ctx, auth));
  r.use(dataRouter(ctx, auth));
  r.use(powerRouter(ctx, auth));
  r.use(discoveryRouter(ctx, auth));
  r.use(objectsRouter(ctx, auth));
  return r;
}
