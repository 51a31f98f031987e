/**
 * The /api/v1 route table: every API route is one row here (method, path,
 * who may call it, what it takes and answers, its handler). Express is given
 * these rows (mountRows) and /api/v1/openapi.json is generated from them
 * (api/openapi.ts), so the served API and its document cannot differ; the
 * contract test (test/integration/api-contract.test.ts) reads the running
 * route table and fails when a route is mounted some other way.
 *
 * Adding a route: write its handler in the module of its concern (a function
 * of that module's deps), then add its row below, in an order where a fixed
 * segment comes before a `:param` one at the same place (`/rules/test` before
 * `/rules/:name`: Express tries rows in order). Schemas are component names
 * (api/openapi.ts COMPONENTS) or inline JSON Schema.
 */
import { Router } from 'express';
import type { RequestHandler } from 'express';
import type { BaseUrl } from '../deps.js';
import type { Logger } from '../log.js';
import type { Auth } from '../auth.js';
import { auditWrites, tokenHandlers } from './tokens.js';
import { dataHandlers, type DataDeps } from './data.js';
import { eventHandlers } from './events.js';
import { streamHandler, type EventHub } from './stream.js';
import { objectHandlers, PLURAL } from './objects.js';
import { openapiDocument } from './openapi.js';
import { powerHandlers } from './power.js';
import { discoveryHandlers, type KexecTargetOf } from './discovery.js';
import { INVENTORY_LIMITS } from '../discovery/model.js';
import { boundedJsonBody } from '../services/http/limits.js';
import { mountRows, type Guards, type ReplySpec, type RouteRow } from '../services/http/route.js';
import type { AutoinstallApi } from '../render/routes.js';
import type { BootApi } from '../services/http/boot.js';
import { OBJECT_KINDS } from '../core/model.js';
import { VERSION } from '../core/version.js';

export { VERSION };

/** What the /api/v1 routes use. */
export interface ApiDeps extends DataDeps {
  /** Tokens and roles (server/auth.ts): admin routes need an admin token; reads with a read or admin token show secrets. */
  auth: Auth;
  baseUrl: BaseUrl;
  /** Stored events, published for the live stream. */
  events: EventHub;
  log: Logger;
  /** Handlers of the autoinstall module's API routes (render/routes.ts). */
  autoinstall: AutoinstallApi;
  /** Handlers of the boot area's API routes (services/http/boot.ts). */
  boot: BootApi;
  /** The discovery image's kexec target for an enlisted system (boot/provider.ts); absent: the image reboots. */
  kexecTarget?: KexecTargetOf;
  /** The installer-facing rows mounted at the root, documented with the API. */
  publicRows?: readonly RouteRow[];
}

const OK = (description: string, schema?: ReplySpec['schema']): ReplySpec => (schema === undefined ? { description } : { description, schema });
const CREATED = (description: string, schema?: ReplySpec['schema']): ReplySpec => ({ status: 201, description, ...(schema === undefined ? {} : { schema }) });
const TEXT: ReplySpec = { description: 'text', type: 'text' };
const REMOVED: ReplySpec = { description: 'removed', schema: 'Removed' };
const RECORDED: ReplySpec = { description: 'recorded', schema: 'CallbackResult' };
const NEW_NAME = { schema: { type: 'object', properties: { new_name: { type: 'string' } }, required: ['new_name'], additionalProperties: false } };
const list = (item: string): ReplySpec['schema'] => ({ type: 'array', items: { $ref: `#/components/schemas/${item}` } });

/** The object routes of one kind (distros, profiles, systems, subnets). */
function objectRows(ctx: ApiDeps, kind: (typeof OBJECT_KINDS)[number]): RouteRow[] {
  const h = objectHandlers(ctx, kind);
  const base = `/${PLURAL[kind]}`;
  const ref = kind[0]!.toUpperCase() + kind.slice(1);
  const rows: RouteRow[] = [
    {
      method: 'get', path: base, auth: 'read', summary: `list ${PLURAL[kind]}; query parameters filter by field (globs * ?), fields=a,b picks fields`,
      query: [{ name: 'fields', in: 'query', description: 'comma-separated field names to answer', schema: { type: 'string' } }],
      reply: OK('objects', list(ref)), errors: [400], handler: h.list,
    },
    { method: 'post', path: `${base}/bulk`, auth: 'admin', summary: `create many ${PLURAL[kind]}, all or nothing`, request: { schema: list(ref) }, reply: CREATED('{created: n}', 'Created'), errors: [400, 409, 413], handler: h.bulk },
    { method: 'post', path: base, auth: 'admin', summary: `create a ${kind}`, request: { schema: ref }, reply: CREATED('created', ref), errors: [400, 409], handler: h.create },
    { method: 'get', path: `${base}/:name`, auth: 'read', summary: `get a ${kind}`, reply: OK('object', ref), errors: [404], handler: h.get },
    { method: 'patch', path: `${base}/:name`, auth: 'admin', summary: `partial update of a ${kind}`, request: { schema: ref }, reply: OK('updated', ref), errors: [400, 404, 409], handler: h.patch },
    {
      method: 'delete', path: `${base}/:name`, auth: 'admin', summary: `remove a ${kind} (recursive=true also removes what references it)`,
      query: [{ name: 'recursive', in: 'query', description: 'also remove what references it', schema: { type: 'boolean' } }],
      reply: REMOVED, errors: [404, 409], handler: h.remove,
    },
    { method: 'post', path: `${base}/:name/rename`, auth: 'admin', summary: 'rename, updating references', request: NEW_NAME, reply: OK('renamed', ref), errors: [400, 404, 409], handler: h.rename },
    { method: 'post', path: `${base}/:name/copy`, auth: 'admin', summary: 'copy (systems lose MACs and IPs)', request: NEW_NAME, reply: CREATED('copy', ref), errors: [400, 404, 409], handler: h.copy },
  ];
  if (kind === 'profile' || kind === 'system') {
    rows.push({ method: 'get', path: `${base}/:name/blended`, auth: 'read', summary: 'blended variables (dumpvars)', reply: OK('variables', { type: 'object' }), errors: [404], handler: h.blended });
  }
  return rows;
}

/** Every /api/v1 route, in the order Express tries them. */
export function apiRoutes(ctx: ApiDeps): RouteRow[] {
  const data = dataHandlers(ctx);
  const ev = eventHandlers(ctx);
  const power = powerHandlers(ctx);
  const disc = discoveryHandlers(ctx);
  const ai = ctx.autoinstall;
  const boot = ctx.boot;
  let document: Record<string, unknown> | undefined;

  const health: RequestHandler = (_req, res) => {
    res.json({ ok: true, name: 'forge', version: VERSION, base_url: ctx.baseUrl() });
  };
  // What the web UI shows: edit controls only for a token that may write.
  const whoami: RequestHandler = async (req, res) => {
    const p = await ctx.auth.identify(req, res);
    res.json(p.kind === 'anonymous' ? { role: 'anonymous', can_write: false } : { role: p.role, token_id: p.id, can_write: p.role === 'admin' });
  };
  const tokens = tokenHandlers(ctx.store);
  // DHCP leases as stored (the running server writes them in batches).
  const leases: RequestHandler = async (_req, res) => {
    res.json(await ctx.store.listLeases());
  };

  const rows: RouteRow[] = [
    // ----- the server itself
    { method: 'get', path: '/health', auth: 'anonymous', summary: 'liveness and version', reply: OK('ok', 'Health'), handler: health },
    {
      method: 'get', path: '/openapi.json', auth: 'anonymous', summary: 'this document (generated from the route table)', reply: OK('OpenAPI 3.1 document', { type: 'object' }),
      handler: (_req, res) => {
        document ??= openapiDocument(VERSION, rows, ctx.publicRows ?? []);
        res.json(document);
      },
    },
    { method: 'get', path: '/whoami', auth: 'anonymous', summary: 'the role of the bearer token sent (anonymous without one): what the web UI may show', reply: OK('role', 'Whoami'), errors: [403], handler: whoami },
    { method: 'get', path: '/leases', auth: 'read', summary: 'DHCP leases as stored', reply: OK('leases', { type: 'array', items: { type: 'object' } }), handler: leases },

    // ----- API tokens and the audit log (admin)
    {
      method: 'post', path: '/tokens', auth: 'admin', summary: 'create an API token {role: read|admin, comment}; the answer carries the token, shown this once (only its SHA-256 is stored)',
      request: { schema: { type: 'object', properties: { role: { type: 'string', enum: ['read', 'admin'] }, comment: { type: 'string', maxLength: 200 } }, additionalProperties: false } },
      reply: CREATED('token', { type: 'object' }), errors: [400], handler: tokens.create,
    },
    { method: 'get', path: '/tokens', auth: 'admin', summary: 'API tokens: id, role, comment, created, revoked (never the token)', reply: OK('tokens', { type: 'array', items: { type: 'object' } }), handler: tokens.list },
    { method: 'delete', path: '/tokens/:id', auth: 'admin', summary: 'revoke an API token (it stops working at once)', reply: OK('token', { type: 'object' }), errors: [400, 404], handler: tokens.revoke },
    {
      method: 'get', path: '/audit', auth: 'admin', summary: 'audit log: every write (token id and role, method and path, object, names of the fields written, client address, status) and every failed authentication',
      query: [
        { name: 'since', in: 'query', description: 'ISO-8601 time: entries from it', schema: { type: 'string' } },
        { name: 'object', in: 'query', description: 'TYPE/NAME, TYPE or NAME', schema: { type: 'string' } },
        { name: 'limit', in: 'query', description: 'the newest N (1..100000, default 1000)', schema: { type: 'integer', minimum: 1, maximum: 100000 } },
      ],
      reply: OK('entries, oldest first', { type: 'array', items: { type: 'object' } }), errors: [400], handler: tokens.audit,
    },

    // ----- events
    {
      method: 'get', path: '/events/stream', auth: 'read', summary: 'live events as server-sent events; ?system=GLOB&type=a,b*, resume with Last-Event-ID or ?since_id=N',
      query: [
        { name: 'system', in: 'query', description: 'system name or glob', schema: { type: 'string' } },
        { name: 'type', in: 'query', description: 'comma-separated event types or globs', schema: { type: 'string' } },
        { name: 'since_id', in: 'query', description: 'replay the events after this id first', schema: { type: 'integer', minimum: 0 } },
      ],
      reply: { description: 'event stream', type: 'event-stream' }, errors: [400, 503], handler: streamHandler(ctx),
    },
    { method: 'get', path: '/events/latest', auth: 'read', summary: 'latest event of every system', reply: OK('events', list('Event')), handler: ev.latest },
    {
      method: 'get', path: '/systems/:name/events', auth: 'read', summary: 'event timeline of a system',
      query: [
        { name: 'since', in: 'query', description: 'ISO-8601 time: events after it', schema: { type: 'string' } },
        { name: 'limit', in: 'query', description: 'at most this many (1..100000)', schema: { type: 'integer', minimum: 1, maximum: 100000 } },
      ],
      reply: OK('events', list('Event')), errors: [400, 404], handler: ev.list,
    },
    { method: 'post', path: '/systems/:name/events', auth: 'admin', summary: 'record an event {type, source?, detail?}', request: { schema: 'NewEvent' }, reply: CREATED('event', 'Event'), errors: [400, 404], handler: ev.add },

    // ----- export, import, check
    { method: 'get', path: '/export', auth: 'token', summary: 'every object as one JSON document (carries secrets: a read or admin token)', reply: OK('export document', { type: 'object' }), handler: data.exportAll },
    {
      method: 'post', path: '/import', auth: 'admin', summary: 'import an export document, all or nothing (replace=true overwrites)',
      query: [{ name: 'replace', in: 'query', description: 'overwrite objects that exist', schema: { type: 'boolean' } }],
      request: { schema: { type: 'object' } }, reply: OK('counts', { type: 'object', properties: { imported: { type: 'object' } } }), errors: [400, 409, 413], handler: data.importAll,
    },
    { method: 'get', path: '/check', auth: 'read', summary: 'configuration problems', reply: OK('problems', { type: 'object', properties: { problems: list('Problem') } }), handler: data.check },

    // ----- power (token: acts on machines with BMC credentials)
    { method: 'get', path: '/systems/:name/power', auth: 'admin', summary: "power state through the system's power driver", reply: OK('state', 'PowerResult'), errors: [404, 502], handler: power.state },
    {
      method: 'post', path: '/systems/:name/power', auth: 'admin', summary: 'power action {"action": "on|off|reboot|status|reinstall"}',
      request: { schema: { type: 'object', properties: { action: { type: 'string' } }, required: ['action'] } }, reply: OK('result', 'PowerResult'), errors: [400, 404, 502], handler: power.act,
    },
    { method: 'post', path: '/systems/:name/reinstall', auth: 'admin', summary: 'netboot on, PXE next boot, power cycle', reply: OK('result', 'PowerResult'), errors: [404, 502], handler: power.reinstall },
    {
      method: 'post', path: '/power', auth: 'admin', summary: 'power action on every system matching {"name": GLOB, "action", "concurrency"?}, one result each',
      request: { schema: { type: 'object', properties: { name: { type: 'string' }, action: { type: 'string' }, concurrency: { type: 'integer' } }, required: ['name', 'action'] } },
      reply: OK('{results: [...], failed: n}', { type: 'object', properties: { results: list('PowerResult'), failed: { type: 'integer' } } }), errors: [400], handler: power.bulk,
    },

    // ----- discovery and rules (the two public endpoints hold no secret and change no system)
    {
      method: 'post', path: '/discover', auth: 'anonymous', summary: "discovery image report (public: 64 kB, schema-checked, rate-limited; a known system's MAC is 409 KNOWN_SYSTEM)",
      before: [disc.limited, boundedJsonBody(INVENTORY_LIMITS.body)], request: { schema: { type: 'object' } },
      reply: [OK('refreshed', 'DiscoverResult'), CREATED('new', 'DiscoverResult')], errors: [400, 409, 413, 429], handler: disc.report,
    },
    {
      method: 'get', path: '/discover/:mac/kexec', auth: 'anonymous',
      summary: 'text/plain: installer kernel URL, initrd URL, kernel command line (one a line) the discovery image kexecs into (public, rate-limited; 404: reboot instead)',
      before: [disc.limited], reply: { description: 'kexec target', type: 'text' }, errors: [400, 404, 429], handler: disc.kexec,
    },
    { method: 'get', path: '/discover/:mac', auth: 'anonymous', summary: 'what the discovery image does next {action: wait|reboot|kexec|poweroff} (public, rate-limited)', before: [disc.limited], reply: OK('instruction', { type: 'object' }), errors: [400, 429], handler: disc.instruction },
    { method: 'get', path: '/discovered', auth: 'read', summary: 'discovered machines with their facts', reply: OK('list', { type: 'array', items: { type: 'object' } }), handler: disc.list },
    { method: 'get', path: '/discovered/:name', auth: 'read', summary: 'one discovered machine', reply: OK('discovered', { type: 'object' }), errors: [404], handler: disc.get },
    { method: 'delete', path: '/discovered/:name', auth: 'admin', summary: 'forget a discovered machine', reply: REMOVED, errors: [404], handler: disc.forget },
    {
      method: 'post', path: '/discovered/:name/provision', auth: 'admin', summary: 'make a system from it {profile, hostname?}',
      request: { schema: { type: 'object', properties: { profile: { type: 'string' }, hostname: { type: 'string' } }, required: ['profile'], additionalProperties: false } },
      reply: CREATED('{discovered, system}', { type: 'object', properties: { discovered: { type: 'string' }, system: { type: 'string' } } }), errors: [400, 404, 409], handler: disc.provision,
    },
    { method: 'get', path: '/rules', auth: 'read', summary: 'discovery rules by priority', reply: OK('rules', { type: 'array', items: { type: 'object' } }), handler: disc.rules },
    {
      method: 'get', path: '/rules/test', auth: 'read', summary: "every rule's verdict on ?discovered=NAME and the one that would fire",
      query: [{ name: 'discovered', in: 'query', description: 'a discovered machine', required: true, schema: { type: 'string' } }],
      reply: OK('verdicts', { type: 'object' }), errors: [400, 404], handler: disc.testRules,
    },
    { method: 'get', path: '/rules/:name', auth: 'read', summary: 'one rule', reply: OK('rule', { type: 'object' }), errors: [404], handler: disc.rule },
    { method: 'post', path: '/rules', auth: 'admin', summary: 'add a rule {name, priority, match, profile, hostname, max, comment}', request: { schema: { type: 'object' } }, reply: CREATED('rule', { type: 'object' }), errors: [400, 409], handler: disc.addRule },
    { method: 'patch', path: '/rules/:name', auth: 'admin', summary: 'change fields of a rule', request: { schema: { type: 'object' } }, reply: OK('rule', { type: 'object' }), errors: [400, 404], handler: disc.editRule },
    { method: 'delete', path: '/rules/:name', auth: 'admin', summary: 'remove a rule', reply: REMOVED, errors: [404], handler: disc.removeRule },

    // ----- install callbacks (no token: installers cannot hold one) and the autoinstall module's reads
    { method: 'get', path: '/systems/:name/install/start', auth: 'anonymous', summary: 'install callback: install_start', reply: RECORDED, errors: [404], handler: ai.installStart },
    { method: 'post', path: '/systems/:name/install/start', auth: 'anonymous', summary: 'install callback: install_start', reply: RECORDED, errors: [404], handler: ai.installStart },
    { method: 'get', path: '/systems/:name/install/done', auth: 'anonymous', summary: 'install callback: install_done (pxe_just_once turns netboot off)', reply: RECORDED, errors: [404], handler: ai.installDone },
    { method: 'post', path: '/systems/:name/install/done', auth: 'anonymous', summary: 'install callback: install_done (pxe_just_once turns netboot off)', reply: RECORDED, errors: [404], handler: ai.installDone },
    { method: 'get', path: '/systems/:name/firstboot', auth: 'anonymous', summary: 'install callback: first_boot', reply: RECORDED, errors: [404], handler: ai.firstBoot },
    {
      method: 'post', path: '/systems/:name/firstboot', auth: 'anonymous', summary: 'install callback: first_boot (optional form fields from the booted system, e.g. forge-agent --build)',
      before: [ai.cloudInitForm], request: { type: 'form', schema: { type: 'object', properties: { hostname: { type: 'string' }, kernel: { type: 'string' }, authorized_keys: { type: 'string' }, disks: { type: 'string' }, network: { type: 'string' } } } },
      reply: RECORDED, errors: [404, 413], handler: ai.firstBoot,
    },
    {
      method: 'post', path: '/systems/:name/install/report', auth: 'anonymous', summary: 'subiquity webhook reporter (autoinstall reporting): one JSON install event -> install_progress',
      before: [ai.reportBody], request: { schema: { type: 'object' } }, reply: RECORDED, errors: [404, 413], handler: ai.installReport,
    },
    { method: 'get', path: '/systems/:name/cloud-init/done', auth: 'anonymous', summary: 'cloud-init phone_home -> cloud_init_done', reply: RECORDED, errors: [404], handler: ai.cloudInitDone },
    {
      method: 'post', path: '/systems/:name/cloud-init/done', auth: 'anonymous', summary: 'cloud-init phone_home (form: instance_id, hostname, fqdn) -> cloud_init_done',
      before: [ai.cloudInitForm], request: { type: 'form', schema: { type: 'object', properties: { instance_id: { type: 'string' }, hostname: { type: 'string' }, fqdn: { type: 'string' } } } },
      reply: RECORDED, errors: [404, 413], handler: ai.cloudInitDone,
    },
    { method: 'get', path: '/systems/:name/autoinstall', auth: 'token', summary: 'rendered autoinstall with its secrets (preview, no event; a read or admin token)', reply: TEXT, errors: [404, 500], handler: ai.previewSystem },
    { method: 'get', path: '/profiles/:name/autoinstall', auth: 'token', summary: 'rendered autoinstall with its secrets (preview; a read or admin token)', reply: TEXT, errors: [404, 500], handler: ai.previewProfile },
    { method: 'get', path: '/validate', auth: 'read', summary: 'render every profile and system, list every error', reply: OK('{ok, checked, errors}', { type: 'object' }), handler: ai.validate },
    { method: 'get', path: '/templates', auth: 'read', summary: 'templates and snippets with what shadows what', reply: OK('lists', { type: 'object' }), handler: ai.templates },
    {
      method: 'get', path: '/templates/effective', auth: 'read', summary: 'template and snippet files in effect for ?system=N or ?profile=N',
      query: [
        { name: 'system', in: 'query', description: 'a system (or give profile)', schema: { type: 'string' } },
        { name: 'profile', in: 'query', description: 'a profile (or give system)', schema: { type: 'string' } },
      ],
      reply: OK('report', { type: 'object' }), errors: [400, 404], handler: ai.effective,
    },
    {
      method: 'get', path: '/templates/file', auth: 'read', summary: 'one template or snippet (?name=N[&snippet=1])',
      query: [
        { name: 'name', in: 'query', description: 'template or snippet name', required: true, schema: { type: 'string' } },
        { name: 'snippet', in: 'query', description: '1: a snippet', schema: { type: 'string' } },
      ],
      reply: OK('file in effect and content', { type: 'object' }), errors: [400, 404], handler: ai.file,
    },

    // ----- the boot area
    { method: 'get', path: '/distros/:name/files', auth: 'read', summary: 'kernel/initrd URL, size and sha256', reply: OK('{kernel, initrd}', { type: 'object' }), errors: [404], handler: boot.distroFiles },
    { method: 'get', path: '/loaders', auth: 'read', summary: 'boot loaders found and missing', reply: OK('loaders', { type: 'array', items: { type: 'object' } }), handler: boot.loaders },
    { method: 'get', path: '/boot/info', auth: 'read', summary: 'base URL, loaders, unknown-machine policy and stall threshold', reply: OK('boot settings', { type: 'object' }), handler: boot.info },
    { method: 'get', path: '/status', auth: 'read', summary: 'install stage of every system', reply: OK('stages', { type: 'object' }), handler: boot.status },

    // ----- distros, profiles, systems (after the fixed /systems/:name/... rows above)
    ...OBJECT_KINDS.flatMap((k) => objectRows(ctx, k)),
  ];
  return rows;
}

/** The installer callbacks among the rows (anonymous, per system): also served under /i/TOKEN/api/v1 (core/access.ts). */
export function installCallbackRows(rows: readonly RouteRow[]): RouteRow[] {
  return rows.filter((r) => r.auth === 'anonymous' && /^\/systems\/:name\/(install\/|firstboot$|cloud-init\/done$)/.test(r.path));
}

/** What each auth level runs before a row's handler. */
export function apiGuards(auth: Auth): Guards {
  return { anonymous: [], read: [], token: [auth.require('read')], admin: [auth.require('admin')] };
}

export function apiRouter(ctx: ApiDeps): Router {
  const r = Router();
  // Every write (and who made it) into the audit log, once it is answered.
  r.use(auditWrites(ctx.auth, ctx.store, ctx.log));
  return mountRows(r, apiRoutes(ctx), apiGuards(ctx.auth));
}
