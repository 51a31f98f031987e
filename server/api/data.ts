/**
 * Export/import of every object, and `check`: problems in the configuration
 * an operator should fix before machines boot.
 */
import { Router } from 'express';
import type { RequestHandler } from 'express';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve, sep } from 'node:path';
import type { ServerContext } from '../context.js';
import type { ObjectKind, System } from '../core/model.js';
import { validateNew } from '../core/validate.js';
import { ForgeError, invalid } from '../errors.js';
import type { ExportDocument } from '../store/store.js';
import { blendedProfile, blendedSystem } from './blended.js';

export interface Problem {
  severity: 'error' | 'warning';
  /** `distro deb12`, `profile web`, `system vm9`, or `settings` */
  object: string;
  field?: string;
  message: string;
}

/** The shipped templates directory (repo root /templates, next to dist/). */
export const SHIPPED_TEMPLATES = fileURLToPath(new URL('../../../templates/', import.meta.url));

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
  };
}

function templateExists(ctx: ServerContext, name: string): boolean {
  for (const root of [ctx.config.templates_dir, SHIPPED_TEMPLATES]) {
    if (root === '') continue;
    const p = resolve(root, name);
    if (!p.startsWith(resolve(root) + sep)) continue;
    try {
      if (statSync(p).isFile()) return true;
    } catch {
      /* not in this root */
    }
  }
  return false;
}

export async function checkConfiguration(ctx: ServerContext): Promise<Problem[]> {
  const out: Problem[] = [];
  const { store } = ctx;
  for (const d of await store.list('distro')) {
    for (const f of ['kernel', 'initrd'] as const) {
      const v = d[f];
      if (v === '') out.push({ severity: 'error', object: `distro ${d.name}`, field: f, message: `${f} is not set` });
      else if (v.startsWith('/') && !existsSync(v)) {
        out.push({ severity: 'error', object: `distro ${d.name}`, field: f, message: `${f} file ${v} does not exist` });
      }
    }
  }
  const checkTemplate = (obj: string, vars: Record<string, unknown>): void => {
    const t = vars['autoinstall'];
    if (typeof t !== 'string' || t === '') {
      out.push({ severity: 'warning', object: obj, field: 'autoinstall', message: 'no autoinstall template: installs will not be hands-off' });
    } else if (!templateExists(ctx, t)) {
      out.push({
        severity: 'error',
        object: obj,
        field: 'autoinstall',
        message: `template ${t} not found in ${[ctx.config.templates_dir, SHIPPED_TEMPLATES].filter((x) => x !== '').join(' or ')}`,
      });
    }
  };
  for (const p of await store.list('profile')) {
    try {
      checkTemplate(`profile ${p.name}`, await blendedProfile(store, ctx.settings, p.name));
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      out.push({ severity: 'error', object: `profile ${p.name}`, field: p.parent !== '' ? 'parent' : 'distro', message: `no distro: ${msg}` });
    }
  }
  for (const s of await store.list('system')) {
    try {
      const vars = await blendedSystem(store, ctx.settings, s);
      if (s.autoinstall !== '<<inherit>>') checkTemplate(`system ${s.name}`, vars);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      out.push({ severity: 'error', object: `system ${s.name}`, field: 'profile', message: msg });
    }
    if (s.netboot_enabled && !Object.values((s as System).interfaces).some((i) => i.mac_address !== '') && s.name !== 'default') {
      out.push({ severity: 'warning', object: `system ${s.name}`, field: 'interfaces', message: 'netboot is enabled but no interface has a MAC address' });
    }
  }
  if (ctx.settings.server.startsWith('127.') || ctx.settings.server === 'localhost') {
    out.push({
      severity: 'warning',
      object: 'settings',
      field: 'server',
      message: `server is ${ctx.settings.server}: installers on other machines cannot reach it (set --server)`,
    });
  }
  if (ctx.config.dhcp_mode === 'managed' && ctx.config.dhcp_subnet.length === 0) {
    out.push({ severity: 'error', object: 'settings', field: 'dhcp_subnet', message: 'managed DHCP needs --dhcp-subnet' });
  }
  if (ctx.config.templates_dir !== '' && !existsSync(ctx.config.templates_dir) && !existsSync(join(SHIPPED_TEMPLATES))) {
    out.push({ severity: 'warning', object: 'settings', field: 'templates_dir', message: `${ctx.config.templates_dir} does not exist` });
  }
  return out;
}

export function dataRouter(ctx: ServerContext, auth: RequestHandler): Router {
  const r = Router();
  // Export carries autoinstall_meta (password hashes, keys): token only.
  r.get('/export', auth, async (_req, res) => {
    res.json(await ctx.store.exportAll());
  });
  r.post('/import', auth, async (req, res) => {
    const doc = validateDoc(req.body);
    const replace = req.query['replace'];
    const counts = await ctx.store.importAll(doc, { replace: replace === 'true' || replace === '1' });
    res.json({ imported: counts });
  });
  r.get('/check', async (_req, res) => {
    res.json({ problems: await checkConfiguration(ctx) });
  });
  return r;
}
