/**
 * Power API (token required: these act on machines and use BMC credentials).
 *   POST /api/v1/systems/NAME/power      {"action": "on|off|reboot|status|reinstall"}
 *   GET  /api/v1/systems/NAME/power      the power state
 *   POST /api/v1/systems/NAME/reinstall  netboot on + PXE next boot + power cycle
 *   POST /api/v1/power                   {"name": "web*", "action": ..., "concurrency": 8}
 * A driver failure answers 502 POWER_FAILED naming the driver, address and
 * the BMC's answer; bulk answers 200 with one result per system.
 */
import type { RequestHandler } from 'express';
import type { Store } from '../store/store.js';
import { ForgeError, invalid } from '../errors.js';
import { MAX_CONCURRENCY, DEFAULT_CONCURRENCY, POWER_ACTIONS, powerAction, powerBulk } from '../power/service.js';
import type { PowerAction, PowerResult } from '../power/service.js';

function action(raw: unknown): PowerAction {
  if (raw === undefined) throw new ForgeError('MISSING_FIELD', 'action: required', { field: 'action' });
  if (typeof raw !== 'string' || !(POWER_ACTIONS as readonly string[]).includes(raw)) {
    throw invalid('action', `must be one of ${POWER_ACTIONS.join(', ')}`);
  }
  return raw as PowerAction;
}

function body(raw: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('body', 'must be a JSON object');
  const b = raw as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!allowed.includes(k)) throw new ForgeError('UNKNOWN_FIELD', `${k}: not a power request field`, { field: k });
  return b;
}

/** A single-system failure is the request's failure: answer its ForgeError. */
function single(r: PowerResult): PowerResult {
  if (r.ok || r.error === undefined) return r;
  throw new ForgeError(r.error.code === 'POWER_NOT_CONFIGURED' ? 'POWER_NOT_CONFIGURED' : 'POWER_FAILED', r.error.message, { details: r });
}

/** What the power routes use. */
export interface PowerDeps {
  store: Store;
}

/** Handlers of the power routes; the rows are in api/routes.ts. */
export function powerHandlers(ctx: PowerDeps): Record<'state' | 'act' | 'reinstall' | 'bulk', RequestHandler> {
  const deps = { store: ctx.store };
  return {
    state: async (req, res) => {
      res.json(single(await powerAction(deps, String(req.params['name']), 'status')));
    },
    act: async (req, res) => {
      const b = body(req.body, ['action']);
      res.json(single(await powerAction(deps, String(req.params['name']), action(b['action']))));
    },
    reinstall: async (req, res) => {
      body(req.body, []);
      res.json(single(await powerAction(deps, String(req.params['name']), 'reinstall')));
    },
    bulk: async (req, res) => {
      const b = body(req.body, ['name', 'action', 'concurrency']);
      const glob = b['name'];
      if (typeof glob !== 'string' || glob === '') throw new ForgeError('MISSING_FIELD', 'name: required (a system name or glob)', { field: 'name' });
      if (glob.length > 256) throw invalid('name', 'at most 256 characters');
      const c = b['concurrency'] ?? DEFAULT_CONCURRENCY;
      if (typeof c !== 'number' || !Number.isInteger(c) || c < 1 || c > MAX_CONCURRENCY) {
        throw invalid('concurrency', `must be a whole number 1..${MAX_CONCURRENCY}`);
      }
      const results = await powerBulk(deps, glob, action(b['action']), c);
      res.json({ results, failed: results.filter((x) => !x.ok).length });
    },
  };
}
