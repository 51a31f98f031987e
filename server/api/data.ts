/**
 * Export/import of every object, and `check`: problems in the configuration
 * an operator should fix before machines boot.
 */
import type { RequestHandler } from 'express';
import { existsSync } from 'node:fs';
import type { ForgeConfig } from '../config.js';
import type { ObjectKind, Settings, System } from '../core/model.js';
import { validateNew } from '../core/validate.js';
import { ForgeError, invalid } from '../errors.js';
import type { ExportDocument, Store } from '../store/store.js';
import { blendedProfile } from '../catalog.js';
import { slicer } from '../core/yield.js';
import { longJson } from '../services/http/limits.js';
import type { Logger } from '../log.js';
import { DISTRO_PATH_FIELDS, assertDistroConfined, bootRootsOf, whyRefused } from '../boot/confine.js';

export interface Problem {
  severity: 'error' | 'warning';
  /** `distro deb12`, `profile web`, `system vm9`, or `settings` */
  object: string;
  field?: string;
  message: string;
}

function validateDoc(body: unknown): ExportDocument {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body', 'must be a forge export JSON object');
  const b = body as Record<string, unknown>;
  if (b['forge_export'] !== 1) throw invalid('forge_export', 'must be 1 (a document written by forge export)');
  const list = (key: string, kind: ObjectKind): unknown[] => {
    const v = b[key] ?? [];
    if (!Array.isArray(v)) throw invalid(key, 'must be a list');
    return v.map((o: unknown, i: number) => {
      try {
        return validateNew(kind, o, { keepTimes: true });
      } catch (e) {
        if (e instanceof ForgeError) {
          throw new ForgeError(e.code, `${key}[${i}]: ${e.message}`, e.field === undefined ? {} : { field: e.field });
        }
        throw e;
      }
    });
  };
  return {
      forge_export: 1,
      exported: typeof b['exported'] === 'string' ? b['exported'] : '',
      distros: list('distros', 'distro') as ExportDocument['distros'],
      profiles: list('profiles', 'profile') as ExportDocument['profiles'],
      systems: list('systems', 'system') as ExportDocument['systems'],
      subnets: list('subnets', 'subnet') as NonNullable<ExportDocument['subnets']>,
  };
}

/** What export/import and check use. */
export interface DataDeps {
  store: Store;
  settings: Settings;
  config: Pick<ForgeConfig, 'dhcp_mode' | 'dhcp_subnet' | 'boot_roots' | 'data_dir' | 'server' | 'listen'>;
}

/** Systems read per page by the check: one page is read and parsed without a yield, so small (about 1 ms on SQLite). */
const CHECK_PAGE = 200;

/** Chunked (core/yield.ts) like validate: a check of 100k systems never holds DHCP/TFTP answers. */
export async function checkConfiguration(ctx: DataDeps): Promise<Problem[]> {
  const out: Problem[] = [];
  const { store } = ctx;
  const roots = bootRootsOf(ctx.config);
  const slice = slicer();
  for (const d of await store.list('distro')) {
    await slice();
    // Left over from before boot_roots (or a root removed since): never served, say so.
    for (const f of DISTRO_PATH_FIELDS) {
      const v = d[f];
      if (v === '' || !v.startsWith('/')) continue;
      const why = whyRefused(v, roots);
      if (why !== undefined) {
        out.push({ severity: 'error', object: `distro ${d.name}`, field: f, message: `${f} ${v} is not served: ${why}; boot_roots: ${roots.roots.join(', ')}` });
      }
    }
    for (const f of ['kernel', 'initrd'] as const) {
      const v = d[f];
      if (v === '') out.push({ severity: 'error', object: `distro ${d.name}`, field: f, message: `${f} is not set` });
      else if (v.startsWith('/') && !existsSync(v)) {
        out.push({ severity: 'error', object: `distro ${d.name}`, field: f, message: `${f} file ${v} does not exist` });
      }
    }
  }
  // Templates are checked by rendering them (GET /api/v1/validate, which
  // `forge check` also asks); here only what blending needs.
  const okProfiles = new Set<string>();
  for (const p of await store.list('profile')) {
    await slice();
    try {
      await blendedProfile(store, ctx.settings, p.name);
      okProfiles.add(p.name);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      out.push({ severity: 'error', object: `profile ${p.name}`, field: p.parent !== '' ? 'parent' : 'distro', message: `no distro: ${msg}` });
    }
  }
  // A system blends when its profile does (the store keeps references valid),
  // so a whole-site check stays fast at 100k systems.
  const noMac: string[] = [];
  // A page of documents per read (a read per system was a round trip each on PostgreSQL).
  for (let after = '', more = true; more; ) {
    const page = await store.systemDocs({ after, limit: CHECK_PAGE });
    more = page.length === CHECK_PAGE;
    after = page[page.length - 1]?.name ?? after;
    for (const d of page) {
      await slice();
      const s = JSON.parse(d.data) as System;
      if (!okProfiles.has(s.profile)) {
        out.push({ severity: 'error', object: `system ${s.name}`, field: 'profile', message: `profile ${s.profile} is missing or has no distro` });
      }
      if (s.netboot_enabled && !Object.values((s as System).interfaces).some((i) => i.mac_address !== '') && s.name !== 'default') {
        noMac.push(s.name);
      }
    }
  }
  const SHOWN = 50;
  for (const n of noMac.slice(0, SHOWN)) {
    out.push({ severity: 'warning', object: `system ${n}`, field: 'interfaces', message: 'netboot is enabled but no interface has a MAC address' });
  }
  if (noMac.length > SHOWN) {
    out.push({ severity: 'warning', object: 'systems', field: 'interfaces', message: `${noMac.length - SHOWN} more systems have netboot enabled and no MAC address` });
  }
  // Only a fixed address can be wrong for everyone; unset, each client gets the one it used.
  const fixed = ctx.config.server !== '' ? ctx.config.server : ctx.config.listen !== '0.0.0.0' && ctx.config.listen !== '::' ? ctx.config.listen : '';
  if (fixed.startsWith('127.') || fixed === 'localhost' || fixed.startsWith('localhost:')) {
    out.push({
      severity: 'warning',
      object: 'settings',
      field: 'server',
      message: `server is ${fixed}: installers on other machines cannot reach it (set --server)`,
    });
  }
  if (ctx.config.dhcp_mode === 'managed' && ctx.config.dhcp_subnet.length === 0 && (await ctx.store.listNames('subnet')).length === 0) {
    out.push({ severity: 'warning', object: 'settings', field: 'dhcp_subnet', message: 'managed DHCP has no subnet and answers nobody: --dhcp-subnet, or forge subnet add' });
  }
  return out;
}

/** Handlers of export, import and check; the rows are in api/routes.ts. */
export function dataHandlers(ctx: DataDeps & { log: Logger }): Record<'exportAll' | 'importAll' | 'check', RequestHandler> {
  return {
    exportAll: async (_req, res) => {
      res.json(await ctx.store.exportAll());
    },
    importAll: async (req, res) => {
      const doc = validateDoc(req.body);
      const roots = bootRootsOf(ctx.config);
      for (const [i, d] of doc.distros.entries()) {
        try {
          assertDistroConfined(d, roots);
        } catch (e) {
          if (e instanceof ForgeError) throw new ForgeError(e.code, `distros[${i}]: ${e.message}`, e.field === undefined ? {} : { field: e.field });
          throw e;
        }
      }
      const replace = req.query['replace'];
      const counts = await ctx.store.importAll(doc, { replace: replace === 'true' || replace === '1' });
      res.json({ imported: counts });
    },
    check: async (req, res) => {
      await longJson(req, res, async () => ({ problems: await checkConfiguration(ctx) }), ctx.log);
    },
  };
}
