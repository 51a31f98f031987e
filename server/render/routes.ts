/**
 * Autoinstall routes and install callbacks.
 *
 * Installers (no token: they cannot hold one):
 *   GET /autoinstall/{system,profile}/NAME             the rendered file, text/plain
 *   GET /cblr/svc/op/{autoinstall,ks}/{system,profile}/NAME   Cobbler's URLs (koan, old kickstart URLs)
 *   GET /autoinstall/{system,profile}/NAME/repo-key/REPO.asc  an inline armoured repo key (preseed apt-setup)
 *   GET /cloud-init/{system,profile}/NAME/{user-data,meta-data,vendor-data,network-config}  NoCloud seed
 *   POST /api/v1/systems/NAME/install/report           subiquity webhook reporter -> install_progress
 *   GET|POST /api/v1/systems/NAME/cloud-init/done      cloud-init phone_home -> cloud_init_done
 *   GET|POST /api/v1/systems/NAME/install/start        event install_start
 *   GET|POST /api/v1/systems/NAME/install/done         event install_done; pxe_just_once -> netboot off + netboot_disabled
 *   GET|POST /api/v1/systems/NAME/firstboot            event first_boot
 *   GET|POST /cblr/svc/op/nopxe/system/NAME            = install/done (Cobbler's autoinstall_done calls it)
 *   GET|POST /cblr/svc/op/trig/mode/{pre,post,firstboot}/system/NAME  = start / done / firstboot
 * A render failure answers 500 with the ForgeError body (file:line: message),
 * never a partial file, and records `autoinstall_failed` on the system.
 *
 * Read-only API for the CLI (no events recorded):
 *   GET /api/v1/{systems,profiles}/NAME/autoinstall    rendered text (forge ... get-autoinstall)
 *   GET /api/v1/validate                               render everything, list every error
 *   GET /api/v1/templates                              templates and snippets, with what shadows what
 *   GET /api/v1/templates/effective?system=N|profile=N files and snippet overrides in effect
 *   GET /api/v1/templates/file?name=N[&snippet=1]      one template/snippet: file in effect and content
 */
import { readFileSync } from 'node:fs';
import express, { Router } from 'express';
import type { Request, Response } from 'express';
import type { RecordEvent } from '../deps.js';
import type { EventType } from '../core/model.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { ForgeError } from '../errors.js';
import type { Renderer } from './renderer.js';
import { CLOUD_INIT_FILES, type AutoinstallService, type CloudInitFile, type TargetKind } from './service.js';
import type { RenderResult } from './renderer.js';

function kindOf(s: string | undefined): TargetKind {
  if (s === 'system' || s === 'profile') return s;
  throw new ForgeError('ROUTE_NOT_FOUND', `no autoinstall for "${String(s)}": use system or profile`);
}

function param(req: Request, key: string): string {
  const v = (req.params as Record<string, unknown>)[key];
  if (typeof v !== 'string' || v === '') throw new ForgeError('MISSING_FIELD', `${key} is required`, { field: key });
  return v;
}

function clientOf(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? '';
}

/** What the autoinstall routes use; main.ts builds the renderer and the service once. */
export interface AutoinstallDeps {
  autoinstall: AutoinstallService;
  renderer: Renderer;
  store: Store;
  /** pxe_just_once: install/done turns netboot off. */
  pxeJustOnce: boolean;
  log: Logger;
  record: RecordEvent;
}

export function autoinstallRouter(ctx: AutoinstallDeps): Router {
  const router = Router();
  const { renderer, autoinstall: svc } = ctx;
  const log = ctx.log.child('render');

  const serve = async (
    req: Request,
    res: Response,
    kind: TargetKind,
    name: string,
    render: () => Promise<RenderResult> = () => svc.render(kind, name),
    extra: Record<string, unknown> = {},
  ): Promise<void> => {
    const client = clientOf(req);
    let result;
    try {
      result = await render();
    } catch (e) {
      const fe = e instanceof ForgeError ? e : new ForgeError('TEMPLATE_ERROR', e instanceof Error ? e.message : String(e));
      // Record on the system when there is one (an unknown name is just a 404).
      if (kind === 'system' && fe.code !== 'NOT_FOUND') {
        const detail: Record<string, unknown> = { code: fe.code, message: fe.message, client, url: req.originalUrl, ...extra };
        if (fe.details !== undefined) detail['where'] = fe.details;
        ctx.record({ system: name, type: 'autoinstall_failed', source: 'http', detail });
      }
      if (fe.code !== 'NOT_FOUND') log.warn('autoinstall failed', { kind, name, code: fe.code, msg: fe.message });
      throw fe;
    }
    if (kind === 'system') {
      ctx.record({
        system: name,
        type: 'autoinstall_served',
        source: 'http',
        detail: {
          template: result.template.file,
          snippets: result.snippets.length,
          // Which overrides shaped this file (per_system/per_profile/per_distro or a site copy).
          overrides: result.snippets.filter((u) => u.level !== 'shared' || u.origin === 'site').map((u) => `${u.name} ${u.level}${u.for !== undefined ? ` ${u.for}` : ''} (${u.origin})`),
          bytes: Buffer.byteLength(result.text),
          client,
          url: req.originalUrl,
          ...extra,
        },
      });
    }
    res.status(200).type('text/plain; charset=utf-8').send(result.text);
  };

  const renderRoute = async (req: Request, res: Response): Promise<void> => {
    await serve(req, res, kindOf(param(req, 'kind')), param(req, 'name'));
  };
  router.get('/autoinstall/:kind/:name', renderRoute);
  router.get('/cblr/svc/op/autoinstall/:kind/:name', renderRoute);
  // An armoured repository key given inline in autoinstall_meta repo_key_NAME,
  // for installers that only take a key URL (debian-installer apt-setup/localN/key).
  router.get('/autoinstall/:kind/:name/repo-key/:file', async (req, res) => {
    const file = param(req, 'file');
    const repo = file.replace(/\.asc$/, '');
    const p = await svc.prepare(kindOf(param(req, 'kind')), param(req, 'name'));
    const meta = p.vars['autoinstall_meta'];
    const key = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)[`repo_key_${repo}`] : undefined;
    if (typeof key !== 'string' || !key.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) {
      throw new ForgeError('NOT_FOUND', `no inline key repo_key_${repo} on ${p.target.kind} ${p.target.name}`, { field: 'file' });
    }
    res.status(200).type('application/pgp-keys').send(key.endsWith('\n') ? key : `${key}\n`);
  });
  router.get('/cblr/svc/op/ks/:kind/:name', renderRoute);

  // NoCloud seed (cloud-init; Ubuntu autoinstall reads user-data from it).
  // cloud-init asks for SEED/meta-data, SEED/user-data, SEED/vendor-data and
  // (if present) SEED/network-config; each is rendered now, from the store.
  router.get('/cloud-init/:kind/:name/:file', async (req, res) => {
    const kind = kindOf(param(req, 'kind'));
    const name = param(req, 'name');
    const file = param(req, 'file');
    if (!(CLOUD_INIT_FILES as readonly string[]).includes(file)) {
      throw new ForgeError('ROUTE_NOT_FOUND', `no cloud-init file "${file}": use ${CLOUD_INIT_FILES.join(', ')}`, { field: 'file' });
    }
    await serve(req, res, kind, name, () => svc.renderCloudInit(kind, name, file as CloudInitFile), { file });
  });

  // ----- install callbacks

  const event = async (req: Request, res: Response, name: string, type: EventType): Promise<void> => {
    const sys = await ctx.store.mustGet('system', name);
    const client = clientOf(req);
    ctx.record({ system: sys.name, type, source: 'http', detail: { client, url: req.originalUrl } });
    let netboot = sys.netboot_enabled;
    if (type === 'install_done' && ctx.pxeJustOnce && sys.netboot_enabled) {
      // Read again right before the write so a concurrent edit is not undone.
      const fresh = await ctx.store.mustGet('system', name);
      await ctx.store.replace('system', { ...fresh, netboot_enabled: false });
      netboot = false;
      ctx.record({ system: sys.name, type: 'netboot_disabled', source: 'http', detail: { reason: 'pxe_just_once', client } });
    }
    res.status(200).json({ system: sys.name, event: type, netboot_enabled: netboot });
  };
  async function cloudInitDone(req: Request, res: Response): Promise<void> {
    const sys = await ctx.store.mustGet('system', param(req, 'name'));
    const body: Record<string, unknown> = typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {};
    const detail: Record<string, unknown> = { client: clientOf(req), url: req.originalUrl };
    for (const k of ['instance_id', 'hostname', 'fqdn']) if (typeof body[k] === 'string') detail[k] = (body[k] as string).slice(0, 255);
    ctx.record({ system: sys.name, type: 'cloud_init_done', source: 'http', detail });
    res.status(200).json({ system: sys.name, event: 'cloud_init_done' });
  }
  const cb = (type: EventType) => async (req: Request, res: Response): Promise<void> => {
    await event(req, res, param(req, 'name'), type);
  };
  router.route('/api/v1/systems/:name/install/start').get(cb('install_start')).post(cb('install_start'));
  router.route('/api/v1/systems/:name/install/done').get(cb('install_done')).post(cb('install_done'));
  router.route('/api/v1/systems/:name/firstboot').get(cb('first_boot')).post(cb('first_boot'));
  // subiquity's webhook reporter (autoinstall `reporting`): one JSON event per
  // install step; kept on the timeline as install_progress (a few fields, bounded).
  router.post('/api/v1/systems/:name/install/report', express.json({ limit: 16 * 1024, type: () => true }), async (req, res) => {
    const sys = await ctx.store.mustGet('system', param(req, 'name'));
    const body: Record<string, unknown> = typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {};
    const detail: Record<string, unknown> = { client: clientOf(req) };
    for (const k of ['event_type', 'name', 'result', 'description', 'origin', 'level']) {
      const v = body[k];
      if (typeof v === 'string') detail[k] = v.slice(0, 300);
    }
    ctx.record({ system: sys.name, type: 'install_progress', source: 'http', detail });
    res.status(200).json({ system: sys.name, event: 'install_progress' });
  });
  // cloud-init's phone_home (user-data from /cloud-init/...): form fields instance_id, hostname, fqdn.
  router
    .route('/api/v1/systems/:name/cloud-init/done')
    .get(cloudInitDone)
    .post(express.urlencoded({ extended: false, limit: 4 * 1024 }), cloudInitDone);
  router.route('/cblr/svc/op/nopxe/system/:name').get(cb('install_done')).post(cb('install_done'));
  const trig = async (req: Request, res: Response): Promise<void> => {
    const mode = param(req, 'mode');
    const type: EventType | undefined =
      mode === 'pre' ? 'install_start' : mode === 'post' ? 'install_done' : mode === 'firstboot' ? 'first_boot' : undefined;
    if (type === undefined) throw new ForgeError('ROUTE_NOT_FOUND', `no trigger mode "${mode}": use pre, post or firstboot`);
    await event(req, res, param(req, 'name'), type);
  };
  router.route('/cblr/svc/op/trig/mode/:mode/system/:name').get(trig).post(trig);

  // ----- read-only API for the CLI

  const preview = (kind: TargetKind) => async (req: Request, res: Response): Promise<void> => {
    const r = await svc.render(kind, param(req, 'name'));
    res.status(200).type('text/plain; charset=utf-8').send(r.text);
  };
  router.get('/api/v1/systems/:name/autoinstall', preview('system'));
  router.get('/api/v1/profiles/:name/autoinstall', preview('profile'));

  router.get('/api/v1/validate', async (_req, res) => {
    res.status(200).json(await svc.validate());
  });

  router.get('/api/v1/templates', (_req, res) => {
    res.status(200).json({
      roots: renderer.roots,
      templates: renderer.listTemplates(),
      snippets: renderer.listSnippets(),
    });
  });

  router.get('/api/v1/templates/effective', async (req, res) => {
    const q = req.query as Record<string, unknown>;
    const sys = typeof q['system'] === 'string' ? q['system'] : '';
    const prof = typeof q['profile'] === 'string' ? q['profile'] : '';
    if ((sys === '') === (prof === '')) throw new ForgeError('USAGE', 'give exactly one of system and profile', { field: 'system' });
    res.status(200).json(await svc.explain(sys !== '' ? 'system' : 'profile', sys !== '' ? sys : prof));
  });

  router.get('/api/v1/templates/file', (req, res) => {
    const q = req.query as Record<string, unknown>;
    const name = typeof q['name'] === 'string' ? q['name'] : '';
    if (name === '') throw new ForgeError('MISSING_FIELD', 'name is required', { field: 'name' });
    const snippet = q['snippet'] === '1' || q['snippet'] === 'true';
    const use = snippet
      ? renderer.findSnippet(name, { kind: 'profile', name: '', system: '', profiles: [], distro: '' })
      : renderer.resolveTemplate(name);
    if (use === undefined) throw new ForgeError('TEMPLATE_NOT_FOUND', `snippet "${name}" not found`, { field: 'name' });
    res.status(200).json({ ...use, content: readFileSync(use.file, 'utf8') });
  });

  return router;
}
