/**
 * Discovery and rules API.
 *   POST /api/v1/discover           public: the discovery image's report (64 kB, schema-checked, rate-limited)
 *   GET  /api/v1/discover/MAC       public: what the image does next {action: wait|reboot|kexec|poweroff}
 *   GET  /api/v1/discover/MAC/kexec public: text, kernel URL / initrd URL / command line, one a line (404: reboot instead)
 *   GET  /api/v1/discovered[/NAME]  list, one
 *   DELETE /api/v1/discovered/NAME  token
 *   POST /api/v1/discovered/NAME/provision {profile, hostname?}  token
 *   GET,POST /api/v1/rules, GET,PATCH,DELETE /api/v1/rules/NAME   (writes: token)
 *   GET  /api/v1/rules/test?discovered=NAME   every rule's verdict
 * The public endpoints hold no secret and change no system: a report for a
 * MAC a system has is refused (KNOWN_SYSTEM).
 */
import type { Request, RequestHandler } from 'express';
import { normalizeMac } from '../core/mac.js';
import { ForgeError, invalid } from '../errors.js';
import { checkInventory, INVENTORY_LIMITS } from '../discovery/model.js';
import { RateLimiter } from '../discovery/ratelimit.js';
import { checkRule, instructionFor, judge, provision, report } from '../discovery/service.js';
import type { Store } from '../store/store.js';

/** The kernel, initrd and command line the image kexecs into for SYSTEM, or undefined (reboot instead). */
export type KexecTargetOf = (system: string, mac: string) => Promise<{ kernel: string; initrd: string; cmdline: string } | undefined>;

export interface DiscoveryApiDeps {
  store: Store;
  /** boot/provider.ts kexecTarget; absent: the image is always told to reboot. */
  kexecTarget?: KexecTargetOf;
}

function name(req: Request): string {
  return String(req.params['name']);
}

/** Handlers of the discovery and rules routes; the rows are in api/routes.ts. */
export interface DiscoveryHandlers {
  /** The per-address rate limit of the public endpoints (run before report and instruction). */
  limited: RequestHandler;
  report: RequestHandler;
  instruction: RequestHandler;
  kexec: RequestHandler;
  list: RequestHandler;
  get: RequestHandler;
  forget: RequestHandler;
  provision: RequestHandler;
  rules: RequestHandler;
  testRules: RequestHandler;
  rule: RequestHandler;
  addRule: RequestHandler;
  editRule: RequestHandler;
  removeRule: RequestHandler;
}

export function discoveryHandlers(ctx: DiscoveryApiDeps): DiscoveryHandlers {
  const deps = { store: ctx.store };
  const kexecOf = async (system: string, mac: string): Promise<Awaited<ReturnType<KexecTargetOf>>> =>
    system !== '' && ctx.kexecTarget !== undefined ? ctx.kexecTarget(system, mac) : undefined;
  // A discovery image reports once and polls every few seconds: 60 a minute per address
  // (burst 20) is plenty; 3000 a minute in all bounds the work a flood can cause.
  const limiter = new RateLimiter({ perMinute: 60, burst: 20, totalPerMinute: 3000 });
  const limited: RequestHandler = (req, res, next) => {
    if (limiter.allow(req.socket.remoteAddress ?? '?')) return next();
    res.setHeader('retry-after', '10');
    next(new ForgeError('RATE_LIMITED', 'too many discovery requests from this address; retry later'));
  };

  return {
    limited,
    report: async (req, res) => {
      const out = await report(deps, checkInventory(req.body));
      res.status(out.discovered.reports === 1 ? 201 : 200).json({
        name: out.discovered.name,
        action: out.discovered.instruction,
        ...(out.system === undefined ? {} : { system: out.system, rule: out.rule }),
      });
    },
    instruction: async (req, res) => {
      const mac = normalizeMac(String(req.params['mac']));
      if (mac === undefined) throw invalid('mac', 'must be a MAC address');
      const out = await instructionFor(deps, mac);
      // Told to reboot into its install: kexec straight into the installer kernel when its profile allows it.
      res.json({ action: out.action === 'reboot' && (await kexecOf(out.system, mac)) !== undefined ? 'kexec' : out.action });
    },
    kexec: async (req, res) => {
      const mac = normalizeMac(String(req.params['mac']));
      if (mac === undefined) throw invalid('mac', 'must be a MAC address');
      const out = await instructionFor(deps, mac);
      const target = out.action === 'reboot' ? await kexecOf(out.system, mac) : undefined;
      if (target === undefined) throw new ForgeError('NOT_FOUND', `no kexec target for ${mac} (not enlisted, or its profile does not set discovery_kexec)`, { field: 'mac' });
      // One value a line: the image reads them with sed; a newline inside would split a value.
      res.type('text/plain').send([target.kernel, target.initrd, target.cmdline.replace(/[\r\n]+/g, ' ')].join('\n') + '\n');
    },

    list: async (_req, res) => {
      res.json(await ctx.store.listDiscovered());
    },
    get: async (req, res) => {
      const d = await ctx.store.getDiscovered(name(req));
      if (d === undefined) throw new ForgeError('NOT_FOUND', `discovered ${name(req)}: no such machine`, { field: 'name' });
      res.json(d);
    },
    forget: async (req, res) => {
      await ctx.store.removeDiscovered(name(req));
      res.json({ removed: [name(req)] });
    },
    provision: async (req, res) => {
      const b = (req.body ?? {}) as Record<string, unknown>;
      for (const k of Object.keys(b)) if (k !== 'profile' && k !== 'hostname') throw new ForgeError('UNKNOWN_FIELD', `${k}: not a provision field`, { field: k });
      const profile = b['profile'];
      if (typeof profile !== 'string' || profile === '') throw new ForgeError('MISSING_FIELD', 'profile: required', { field: 'profile' });
      const hostname = b['hostname'];
      if (hostname !== undefined && typeof hostname !== 'string') throw invalid('hostname', 'must be a string');
      const out = await provision(deps, name(req), profile, hostname);
      res.status(201).json({ discovered: out.discovered.name, system: out.system.name });
    },

    rules: async (_req, res) => {
      res.json(await ctx.store.listRules());
    },
    testRules: async (req, res) => {
      const dn = req.query['discovered'];
      if (typeof dn !== 'string' || dn === '') throw new ForgeError('MISSING_FIELD', 'discovered: required', { field: 'discovered' });
      const d = await ctx.store.getDiscovered(dn);
      if (d === undefined) throw new ForgeError('NOT_FOUND', `discovered ${dn}: no such machine`, { field: 'discovered' });
      const { verdicts, fires } = judge(await ctx.store.listRules(), d);
      res.json({ discovered: d.name, facts: d.facts, rules: verdicts, fires: fires?.rule ?? null, hostname: fires?.hostname ?? null });
    },
    rule: async (req, res) => {
      const rule = await ctx.store.getRule(name(req));
      if (rule === undefined) throw new ForgeError('NOT_FOUND', `rule ${name(req)}: no such rule`, { field: 'name' });
      res.json(rule);
    },
    addRule: async (req, res) => {
      const rule = checkRule(req.body);
      await ctx.store.mustGet('profile', rule.profile).catch(() => {
        throw new ForgeError('REFERENCE_MISSING', `profile: ${rule.profile} does not exist`, { field: 'profile' });
      });
      res.status(201).json(await ctx.store.putRule(rule, true));
    },
    editRule: async (req, res) => {
      const cur = await ctx.store.getRule(name(req));
      if (cur === undefined) throw new ForgeError('NOT_FOUND', `rule ${name(req)}: no such rule`, { field: 'name' });
      const b = req.body as Record<string, unknown> | undefined;
      if (b !== undefined && b['name'] !== undefined && b['name'] !== cur.name) throw invalid('name', 'cannot be changed by an edit');
      const rule = checkRule(b ?? {}, cur);
      await ctx.store.mustGet('profile', rule.profile).catch(() => {
        throw new ForgeError('REFERENCE_MISSING', `profile: ${rule.profile} does not exist`, { field: 'profile' });
      });
      res.json(await ctx.store.putRule(rule, false));
    },
    removeRule: async (req, res) => {
      await ctx.store.removeRule(name(req));
      res.json({ removed: [name(req)] });
    },
  };
}
