/**
 * Per-system event timeline: GET (public, read-only) and POST (token) at
 * /api/v1/systems/NAME/events, plus the latest event of every system for
 * `forge status`.
 */
import type { RequestHandler } from 'express';
import { EVENT_TYPES } from '../core/model.js';
import type { EventType } from '../core/model.js';
import { ForgeError, invalid } from '../errors.js';
import type { Store } from '../store/store.js';
import type { EventHub } from './stream.js';

/** Handlers of the timeline routes; the rows are in api/routes.ts. */
export function eventHandlers(ctx: { store: Store; events: EventHub }): Record<'list' | 'add' | 'latest', RequestHandler> {
  return {
    list: async (req, res) => {
      const name = String(req.params['name']);
      await ctx.store.mustGet('system', name);
      const opts: { since?: string; limit?: number } = {};
      const since = req.query['since'];
      if (typeof since === 'string' && since !== '') opts.since = since;
      const limit = req.query['limit'];
      if (typeof limit === 'string' && limit !== '') {
        const n = Number(limit);
        if (!Number.isInteger(n) || n < 1 || n > 100000) throw invalid('limit', 'must be a whole number 1..100000');
        opts.limit = n;
      }
      res.json(await ctx.store.listEvents(name, opts));
    },

    add: async (req, res) => {
      const name = String(req.params['name']);
      await ctx.store.mustGet('system', name);
      const body: unknown = req.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body', 'must be a JSON object');
      const b = body as Record<string, unknown>;
      const type = b['type'];
      if (typeof type !== 'string' || type === '') throw new ForgeError('MISSING_FIELD', 'type: required', { field: 'type' });
      if (!(EVENT_TYPES as readonly string[]).includes(type)) throw invalid('type', `must be one of ${EVENT_TYPES.join(', ')}`);
      const source = b['source'] ?? 'api';
      if (typeof source !== 'string' || source === '' || source.length > 64) throw invalid('source', 'must be a short string');
      const detail = b['detail'] ?? {};
      if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) throw invalid('detail', 'must be a JSON object');
      for (const k of Object.keys(b)) {
        if (!['type', 'source', 'detail'].includes(k)) throw new ForgeError('UNKNOWN_FIELD', `${k}: not an event field`, { field: k });
      }
      const ev = await ctx.store.addEvent({ system: name, type: type as EventType, source, detail: detail as Record<string, unknown> });
      ctx.events.publish(ev);
      res.status(201).json(ev);
    },

    latest: async (_req, res) => {
      res.json(await ctx.store.latestEvents());
    },
  };
}
