/**
 * Autoinstall routes and install callbacks.
 *
 * Installers (no bearer token: they cannot hold one). A system's URLs are
 * answered only through its install token and only in its install window
 * (core/access.ts): forge generates them as /i/TOKEN/<path below>; without
 * the token, with a stale one or outside the window they answer 404 and
 * record install_refused (at most one per system, reason and minute). A read
 * or admin bearer token reads any of them. Profile renders (no system: boot
 * menus, dhcp_unknown=default) are served to anyone but with every secret
 * value emptied (root password locked); a token gets them whole.
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
 *   GET /api/v1/{systems,profiles}/NAME/autoinstall    rendered text (forge ... get-autoinstall; read or admin token)
 *   GET /api/v1/validate                               render everything, list every error (chunked: never holds DHCP/TFTP)
 *   GET /api/v1/templates                              templates and snippets, with what shadows what
 *   GET /api/v1/templates/effective?system=N|profile=N files and snippet overrides in effect
 *   GET /api/v1/templates/file?name=N[&snippet=1]      one template/snippet: file in effect and content
 */
import { localEndOf } from '../services/http/observe.js';
import { longJson, longProgress, progressInterval } from '../services/http/limits.js';
import { readFileSync } from 'node:fs';
import express from 'express';
import type { Request, RequestHandler, Response } from 'express';
import type { ReplySpec, RouteRow, Schema } from '../services/http/route.js';
import type { RecordEvent } from '../deps.js';
import type { EventDetails } from '../core/events.js';

/** The events installers' callbacks record. */
type CallbackEvent = 'install_start' | 'install_done' | 'first_boot';
/** What a booted system may report with its first boot (forge-agent --build's report). */
type FirstBootReport = { hostname?: string; kernel?: string; authorized_keys?: string; disks?: string; network?: string };
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { ForgeError } from '../errors.js';
import { clientOf, type Auth } from '../auth.js';
import { INSTALL_TOKEN_LOCAL, installVerdict } from '../core/access.js';
import { MASK } from '../core/secrets.js';
import { EventLimiter } from '../events/limit.js';
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

/** The URL as events show it (they are public): the install token masked. */
function urlOf(req: Request): string {
  return req.originalUrl.replace(/^\/i\/[^/]+/, `/i/${MASK}`);
}

/** Refusal events: one per system, reason and minute (a scanner must not fill the timeline). */
const REFUSAL_WINDOW_MS = 60_000;
/** Served/callback events: one per system, type and URL in this window (installers retry, ROMs fetch twice). */
const SERVED_WINDOW_MS = 10_000;

/** What the autoinstall routes use; main.ts builds the renderer and the service once. */
export interface AutoinstallDeps {
  autoinstall: AutoinstallService;
  renderer: Renderer;
  store: Store;
  /** pxe_just_once: install/done turns netboot off. */
  pxeJustOnce: boolean;
  log: Logger;
  record: RecordEvent;
  auth: Auth;
  /** install_grace_minutes (core/access.ts). */
  graceMinutes: number;
}

/** Handlers of the autoinstall module's /api/v1 routes; their rows are in api/routes.ts. */
export interface AutoinstallApi {
  installStart: RequestHandler;
  installDone: RequestHandler;
  firstBoot: RequestHandler;
  /** The subiquity reporter's JSON body (16 kB, any content type): run before installReport. */
  reportBody: RequestHandler;
  installReport: RequestHandler;
  /** cloud-init phone_home's form body (4 kB): run before cloudInitDone on POST. */
  cloudInitForm: RequestHandler;
  cloudInitDone: RequestHandler;
  previewSystem: RequestHandler;
  previewProfile: RequestHandler;
  validate: RequestHandler;
  templates: RequestHandler;
  effective: RequestHandler;
  file: RequestHandler;
}

const KIND: Schema = { type: 'string', enum: ['system', 'profile'] };
const TEXT: ReplySpec = { description: 'text', type: 'text' };
const RECORDED: ReplySpec = { description: 'recorded: {system, event, netboot_enabled}' };

/**
 * The installer-facing routes (`rows`, mounted at the root, no token: the
 * installers cannot hold one) and the handlers of the module's /api/v1 routes.
 */
export function autoinstallRoutes(ctx: AutoinstallDeps): { rows: RouteRow[]; api: AutoinstallApi } {
  const { renderer, autoinstall: svc } = ctx;
  const log = ctx.log.child('render');
  const refused = new EventLimiter(REFUSAL_WINDOW_MS);
  const served = new EventLimiter(SERVED_WINDOW_MS);

  /**
   * Whether this request may have `kind NAME`'s install URLs, and with secrets:
   * a read/admin token always; a profile anonymously without secrets; a system
   * only with its install token in its window (else 404 + install_refused).
   */
  const admit = async (req: Request, res: Response, kind: TargetKind, name: string): Promise<{ secrets: boolean }> => {
    if (await ctx.auth.canReadSecrets(req, res)) return { secrets: true };
    if (kind === 'profile') return { secrets: false };
    await ctx.store.mustGet('system', name);
    const given = res.locals[INSTALL_TOKEN_LOCAL] as string | undefined;
    const v = installVerdict(await ctx.store.installWindow(name), given, Date.now(), ctx.graceMinutes);
    if (v.ok) return { secrets: true };
    if (refused.allow(`${name}\0${v.reason}`)) {
      ctx.record({ system: name, type: 'install_refused', source: 'http', detail: { reason: v.reason, client: clientOf(req), url: urlOf(req) } });
    }
    throw new ForgeError('NOT_FOUND', `system ${name}: no install in progress for this URL (outside its install window, or the install token is missing or stale)`);
  };

  const serve = async (
    req: Request,
    res: Response,
    kind: TargetKind,
    name: string,
    render: (secrets: boolean) => Promise<RenderResult> = (secrets) => svc.render(kind, name, { secrets }),
    extra: { file?: string } = {},
  ): Promise<void> => {
    const client = clientOf(req);
    const { secrets } = await admit(req, res, kind, name);
    let result;
    try {
      result = await render(secrets);
    } catch (e) {
      const fe = e instanceof ForgeError ? e : new ForgeError('TEMPLATE_ERROR', e instanceof Error ? e.message : String(e));
      // Record on the system when there is one (an unknown name is just a 404).
      if (kind === 'system' && fe.code !== 'NOT_FOUND') {
        const detail: EventDetails['autoinstall_failed'] = { code: fe.code, message: fe.message, client, url: urlOf(req), ...extra };
        if (fe.details !== undefined) detail.where = fe.details;
        ctx.record({ system: name, type: 'autoinstall_failed', source: 'http', detail });
      }
      if (fe.code !== 'NOT_FOUND') log.warn('autoinstall failed', { kind, name, code: fe.code, msg: fe.message });
      throw fe;
    }
    if (kind === 'system') {
      const detail: EventDetails['autoinstall_served'] = {
        template: result.template.file,
        snippets: result.snippets.length,
        // Which overrides shaped this file (per_system/per_profile/per_distro or a site copy).
        overrides: result.snippets.filter((u) => u.level !== 'shared' || u.origin === 'site').map((u) => `${u.name} ${u.level}${u.for !== undefined ? ` ${u.for}` : ''} (${u.origin})`),
        bytes: Buffer.byteLength(result.text),
        client,
        // forge's address the installer used (the provisioning NIC on a multi-homed host).
        server: localEndOf(req.socket),
        url: urlOf(req),
        ...extra,
      };
      // The same file to the same client again within the window: one event.
      if (served.allow(`${name}\0autoinstall_served\0${JSON.stringify(detail)}`)) ctx.record({ system: name, type: 'autoinstall_served', source: 'http', detail });
    }
    res.status(200).type('text/plain; charset=utf-8').send(result.text);
  };

  const renderRoute = async (req: Request, res: Response): Promise<void> => {
    await serve(req, res, kindOf(param(req, 'kind')), param(req, 'name'));
  };
  // An armoured repository key given inline in autoinstall_meta repo_key_NAME,
  // for installers that only take a key URL (debian-installer apt-setup/localN/key).
  const repoKey = async (req: Request, res: Response): Promise<void> => {
    const file = param(req, 'file');
    const repo = file.replace(/\.asc$/, '');
    const kind = kindOf(param(req, 'kind'));
    await admit(req, res, kind, param(req, 'name'));
    const p = await svc.prepare(kind, param(req, 'name'));
    const meta = p.vars['autoinstall_meta'];
    const key = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)[`repo_key_${repo}`] : undefined;
    if (typeof key !== 'string' || !key.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) {
      throw new ForgeError('NOT_FOUND', `no inline key repo_key_${repo} on ${p.target.kind} ${p.target.name}`, { field: 'file' });
    }
    res.status(200).type('application/pgp-keys').send(key.endsWith('\n') ? key : `${key}\n`);
  };

  // NoCloud seed (cloud-init; Ubuntu autoinstall reads user-data from it).
  // cloud-init asks for SEED/meta-data, SEED/user-data, SEED/vendor-data and
  // (if present) SEED/network-config; each is rendered now, from the store.
  const cloudInit = async (req: Request, res: Response): Promise<void> => {
    const kind = kindOf(param(req, 'kind'));
    const name = param(req, 'name');
    const file = param(req, 'file');
    if (!(CLOUD_INIT_FILES as readonly string[]).includes(file)) {
      throw new ForgeError('ROUTE_NOT_FOUND', `no cloud-init file "${file}": use ${CLOUD_INIT_FILES.join(', ')}`, { field: 'file' });
    }
    await serve(req, res, kind, name, (secrets) => svc.renderCloudInit(kind, name, file as CloudInitFile, { secrets }), { file });
  };

  // ----- install callbacks

  const event = async (req: Request, res: Response, name: string, type: CallbackEvent, extra: FirstBootReport = {}): Promise<void> => {
    await admit(req, res, 'system', name);
    const sys = await ctx.store.mustGet('system', name);
    const client = clientOf(req);
    // A repeated install_start (installers retry) is one event per window; done and first boot change state: always.
    const url = urlOf(req);
    if (type !== 'install_start') {
      await ctx.record({ system: sys.name, type, source: 'http', detail: { client, url, ...extra } });
    } else if (served.allow(`${sys.name}\0${type}\0${client}\0${url}`)) {
      // With several servers on one database an installer that retries through the service
      // address after its server died reaches another server, whose own limiter has not seen the
      // first (README "Sites with several servers"): the store records it only when the shared
      // timeline has no such install_start in the window, decided in the database, so of servers
      // racing exactly one records it. Written before the answer: a later retry finds it.
      await ctx.record(
        { system: sys.name, type, source: 'http', detail: { client, url, ...extra } },
        { since: new Date(Date.now() - SERVED_WINDOW_MS).toISOString(), same: ['client', 'url'] },
      );
    }
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
    await admit(req, res, 'system', param(req, 'name'));
    const sys = await ctx.store.mustGet('system', param(req, 'name'));
    const body: Record<string, unknown> = typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {};
    const detail: EventDetails['cloud_init_done'] = { client: clientOf(req), url: urlOf(req) };
    for (const k of ['instance_id', 'hostname', 'fqdn'] as const) if (typeof body[k] === 'string') detail[k] = body[k].slice(0, 255);
    ctx.record({ system: sys.name, type: 'cloud_init_done', source: 'http', detail });
    res.status(200).json({ system: sys.name, event: 'cloud_init_done' });
  }
  const cb = (type: CallbackEvent) => async (req: Request, res: Response): Promise<void> => {
    await event(req, res, param(req, 'name'), type);
  };
  // A booted system may say what it sees (forge-agent --build's first-boot report: form fields
  // hostname, kernel, authorized_keys fingerprints, disks, network); bounded, kept on the event.
  const firstBoot = async (req: Request, res: Response): Promise<void> => {
    const body: Record<string, unknown> = typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {};
    const extra: FirstBootReport = {};
    for (const k of ['hostname', 'kernel', 'authorized_keys', 'disks', 'network'] as const) if (typeof body[k] === 'string') extra[k] = (body[k] as string).slice(0, 1024);
    await event(req, res, param(req, 'name'), 'first_boot', extra);
  };
  // subiquity's webhook reporter (autoinstall `reporting`): one JSON event per
  // install step; kept on the timeline as install_progress (a few fields, bounded).
  const installReport = async (req: Request, res: Response): Promise<void> => {
    await admit(req, res, 'system', param(req, 'name'));
    const sys = await ctx.store.mustGet('system', param(req, 'name'));
    const body: Record<string, unknown> = typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {};
    const detail: EventDetails['install_progress'] = { client: clientOf(req) };
    for (const k of ['event_type', 'name', 'result', 'description', 'origin', 'level'] as const) {
      const v = body[k];
      if (typeof v === 'string') detail[k] = v.slice(0, 300);
    }
    ctx.record({ system: sys.name, type: 'install_progress', source: 'http', detail });
    res.status(200).json({ system: sys.name, event: 'install_progress' });
  };
  const trig = async (req: Request, res: Response): Promise<void> => {
    const mode = param(req, 'mode');
    const type: CallbackEvent | undefined =
      mode === 'pre' ? 'install_start' : mode === 'post' ? 'install_done' : mode === 'firstboot' ? 'first_boot' : undefined;
    if (type === undefined) throw new ForgeError('ROUTE_NOT_FOUND', `no trigger mode "${mode}": use pre, post or firstboot`);
    await event(req, res, param(req, 'name'), type);
  };

  // ----- read-only API for the CLI

  const preview = (kind: TargetKind) => async (req: Request, res: Response): Promise<void> => {
    // The whole file, secrets included: its row needs a read or admin token (api/routes.ts).
    const r = await svc.render(kind, param(req, 'name'));
    res.status(200).type('text/plain; charset=utf-8').send(r.text);
  };
  const validate = async (req: Request, res: Response): Promise<void> => {
    // ?progress=MS: progress lines while it runs (what `forge validate` shows on stderr).
    const every = progressInterval(req.query['progress']);
    if (every === undefined) await longJson(req, res, () => svc.validate(), log);
    else await longProgress(req, res, (progress) => svc.validate(progress), log, every);
  };

  const templates = (_req: Request, res: Response): void => {
    res.status(200).json({
      roots: renderer.roots,
      templates: renderer.listTemplates(),
      snippets: renderer.listSnippets(),
    });
  };

  const effective = async (req: Request, res: Response): Promise<void> => {
    const q = req.query as Record<string, unknown>;
    const sys = typeof q['system'] === 'string' ? q['system'] : '';
    const prof = typeof q['profile'] === 'string' ? q['profile'] : '';
    if ((sys === '') === (prof === '')) throw new ForgeError('USAGE', 'give exactly one of system and profile', { field: 'system' });
    res.status(200).json(await svc.explain(sys !== '' ? 'system' : 'profile', sys !== '' ? sys : prof));
  };

  const file = (req: Request, res: Response): void => {
    const q = req.query as Record<string, unknown>;
    const name = typeof q['name'] === 'string' ? q['name'] : '';
    if (name === '') throw new ForgeError('MISSING_FIELD', 'name is required', { field: 'name' });
    const snippet = q['snippet'] === '1' || q['snippet'] === 'true';
    const use = snippet
      ? renderer.findSnippet(name, { kind: 'profile', name: '', system: '', profiles: [], distro: '' })
      : renderer.resolveTemplate(name);
    if (use === undefined) throw new ForgeError('TEMPLATE_NOT_FOUND', `snippet "${name}" not found`, { field: 'name' });
    res.status(200).json({ ...use, content: readFileSync(use.file, 'utf8') });
  };

  const kindName = { kind: KIND };
  const rows: RouteRow[] = [
    { method: 'get', path: '/autoinstall/:kind/:name', auth: 'anonymous', summary: 'rendered kickstart/preseed/AutoYaST (installers fetch this)', params: kindName, reply: TEXT, errors: [404, 500], handler: renderRoute },
    { method: 'get', path: '/cblr/svc/op/autoinstall/:kind/:name', auth: 'anonymous', summary: 'Cobbler alias of /autoinstall', params: kindName, reply: TEXT, errors: [404, 500], handler: renderRoute },
    { method: 'get', path: '/autoinstall/:kind/:name/repo-key/:file', auth: 'anonymous', summary: 'an inline armoured repository key (autoinstall_meta repo_key_NAME) as NAME.asc', params: kindName, reply: { description: 'armoured key', type: 'pgp-keys' }, errors: [404], handler: repoKey },
    { method: 'get', path: '/cblr/svc/op/ks/:kind/:name', auth: 'anonymous', summary: 'Cobbler (koan) alias of /autoinstall', params: kindName, reply: TEXT, errors: [404, 500], handler: renderRoute },
    {
      method: 'get',
      path: '/cloud-init/:kind/:name/:file',
      auth: 'anonymous',
      summary: 'cloud-init NoCloud seed file, rendered at request time (Ubuntu autoinstall reads user-data here)',
      params: { ...kindName, file: { type: 'string', enum: [...CLOUD_INIT_FILES] } },
      reply: TEXT,
      errors: [404, 500],
      handler: cloudInit,
    },
    { method: 'get', path: '/cblr/svc/op/nopxe/system/:name', auth: 'anonymous', summary: 'Cobbler alias of install/done', reply: RECORDED, errors: [404], handler: cb('install_done') },
    { method: 'post', path: '/cblr/svc/op/nopxe/system/:name', auth: 'anonymous', summary: 'Cobbler alias of install/done', reply: RECORDED, errors: [404], handler: cb('install_done') },
    { method: 'get', path: '/cblr/svc/op/trig/mode/:mode/system/:name', auth: 'anonymous', summary: 'Cobbler trigger: pre = install/start, post = install/done, firstboot = firstboot', params: { mode: { type: 'string', enum: ['pre', 'post', 'firstboot'] } }, reply: RECORDED, errors: [404], handler: trig },
    { method: 'post', path: '/cblr/svc/op/trig/mode/:mode/system/:name', auth: 'anonymous', summary: 'Cobbler trigger: pre = install/start, post = install/done, firstboot = firstboot', params: { mode: { type: 'string', enum: ['pre', 'post', 'firstboot'] } }, reply: RECORDED, errors: [404], handler: trig },
  ];
  const api: AutoinstallApi = {
    installStart: cb('install_start'),
    installDone: cb('install_done'),
    firstBoot,
    reportBody: express.json({ limit: 16 * 1024, type: () => true }),
    installReport,
    cloudInitForm: express.urlencoded({ extended: false, limit: 4 * 1024 }),
    cloudInitDone,
    previewSystem: preview('system'),
    previewProfile: preview('profile'),
    validate,
    templates,
    effective,
    file,
  };
  return { rows, api };
}
