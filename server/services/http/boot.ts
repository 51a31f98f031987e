/**
 * HTTP boot routes: per-MAC iPXE scripts and GRUB configs, loaders, distro
 * kernels and initrds, install trees, and the boot-area API endpoints
 * (distro file digests for forge-agent, loaders, status).
 *
 * Serving rules (boot-protocol-facts.md, "HTTP boot"): HTTP/1.1 status line;
 * header names in canonical case, written by hand through writeHead (GRUB
 * matches `Content-Length:` case-sensitively); HEAD with the real length
 * (EDK II asks HEAD first); single Range incl. `bytes=N-` -> 206, a range
 * outside the file -> 416; never a redirect on a boot path (GRUB and EDK II
 * fail on 3xx); files streamed from disk, never read whole into memory. The body goes by
 * sendfile(2) where the native addon and a plain TCP socket allow (sendfile.ts), else from
 * the shared in-memory copy (hotfiles.ts).
 */
import { createReadStream, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, relative, sep, isAbsolute } from 'node:path';
import type { Request, RequestHandler, Response } from 'express';
import type { ReplySpec, RouteRow } from './route.js';
import type { ForgeConfig } from '../../config.js';
import type { BaseUrl } from '../../deps.js';
import type { DhcpLinkStatus } from '../dhcp/links.js';
import type { RaStatus } from '../ra.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import { ForgeError } from '../../errors.js';
import { findLoaders, loaderPath } from '../../boot/loaders.js';
import { stageInfo, type StageInfo } from '../../events/lifecycle.js';
import type { BootService, Rendered } from '../../boot/provider.js';
import { sha256Of } from '../../boot/distfiles.js';
import { parseRange } from './range.js';
import { hotFiles } from '../hotfiles.js';
import { canSendfile, sendBody } from './sendfile.js';
import { parseBootPath } from '../../boot/target.js';
import { normalizeMac } from '../../core/mac.js';
import { bootRootsOf, whyRefused } from '../../boot/confine.js';

const TEXT = 'text/plain; charset=utf-8';

function contentType(name: string): string {
  // EDK II HTTP boot picks the image type from Content-Type (application/efi) or the .efi extension.
  if (/\.efi$/i.test(name)) return 'application/efi';
  if (/\.(efi|0|kpxe|c32|img|gz|xz|zst|bin|iso)$/i.test(name) || /(^|\/)(kernel|initrd|linux|vmlinuz)$/.test(name)) {
    return 'application/octet-stream';
  }
  if (/\.(cfg|txt|ipxe|seed|ks|treeinfo)$/i.test(name)) return TEXT;
  if (/\.xml$/i.test(name)) return 'application/xml';
  return 'application/octet-stream';
}

/** An error on a boot path: plain text (firmware shows it), canonical headers, no redirect. */
function sendError(res: ServerResponse, status: number, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(message + '\n', 'utf8');
  res.writeHead(status, { 'Content-Type': TEXT, 'Content-Length': String(body.length), 'Cache-Control': 'no-store', ...extra });
  res.end(body);
}

function sendText(req: IncomingMessage, res: ServerResponse, text: string, type = TEXT): void {
  const body = Buffer.from(text, 'utf8');
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(body.length), 'Cache-Control': 'no-store' });
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

export interface Served {
  status: 200 | 206 | 416;
  start: number;
  end: number;
}

/**
 * Node resets a connection's idle timer when a write completes, so the slice size is the
 * progress the idle bound (limits.ts: nothing taken for 2 minutes closes the connection)
 * demands of a client: with 1 MiB slices a client had to take 1 MiB every 2 minutes, not
 * "anything"; the 1,000-client bench (issue 21) saw 4 initrds cut off mid-response
 * ("aborted") on a loaded machine. 256 KiB asks a quarter of that for 4x the write calls
 * (160 per 40 MiB initrd).
 */
const SLICE = 256 * 1024;

/** Writes buf[from, to) in slices of the shared buffer, waiting for 'drain' (no copies in user space). */
function writeSlices(res: ServerResponse, buf: Buffer, from: number, to: number): void {
  let off = from;
  const pump = (): void => {
    while (off < to) {
      if (res.destroyed) return;
      const n = Math.min(SLICE, to - off);
      const more = res.write(buf.subarray(off, off + n));
      off += n;
      if (!more) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

/**
 * Stream a file with HEAD and single-Range support. Returns what was sent
 * (for event recording), after the headers are written.
 */
export function sendFile(req: IncomingMessage, res: ServerResponse, path: string, size: number, name: string): Served {
  const range = parseRange(typeof req.headers.range === 'string' ? req.headers.range : undefined, size);
  const base: Record<string, string> = {
    'Content-Type': contentType(name),
    'Accept-Ranges': 'bytes',
    'Cache-Control': 'no-cache',
  };
  if (range.kind === 'unsatisfiable') {
    sendError(res, 416, `range not satisfiable: ${req.headers.range ?? ''}`, { 'Content-Range': `bytes */${size}`, 'Accept-Ranges': 'bytes' });
    return { status: 416, start: 0, end: -1 };
  }
  const start = range.kind === 'partial' ? range.start : 0;
  const end = range.kind === 'partial' ? range.end : size - 1;
  const length = Math.max(0, end - start + 1);
  const headers: Record<string, string> = { ...base, 'Content-Length': String(length) };
  const status = range.kind === 'partial' ? 206 : 200;
  if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
  if (req.method === 'HEAD' || length === 0) {
    res.writeHead(status, headers);
    res.end();
    return { status, start, end };
  }
  // sendfile(2) where the socket allows it (sendfile.ts); the page cache is then the copy in memory.
  if (canSendfile(res.socket)) {
    res.writeHead(status, headers);
    sendBody(res, path, start, length, () => jsBody(res, path, size, start, end, status, headers, name));
    return { status, start, end };
  }
  jsBody(res, path, size, start, end, status, headers, name);
  return { status, start, end };
}

/** The body on the JavaScript path: slices of the in-memory copy (hotfiles.ts), or streamed from disk. */
function jsBody(res: ServerResponse, path: string, size: number, start: number, end: number, status: number, headers: Record<string, string>, name: string): void {
  const cached = hotFiles.get(path, size);
  if (cached !== undefined) {
    if (!res.headersSent) res.writeHead(status, headers);
    writeSlices(res, cached, start, end + 1);
    return;
  }
  // Not in memory yet: wait for the one read in flight (hotfiles.ts), stream only what cannot be cached.
  void hotFiles.fetch(path, size).then((data) => {
    if (res.destroyed) return;
    if (data !== undefined) {
      if (!res.headersSent) res.writeHead(status, headers);
      writeSlices(res, data, start, end + 1);
    } else streamFile(res, path, start, end, status, headers, name);
  });
}

/** A file streamed from disk (one that cannot be held in memory). */
function streamFile(res: ServerResponse, path: string, start: number, end: number, status: number, headers: Record<string, string>, name: string): void {
  const stream = createReadStream(path, { start, end, highWaterMark: 256 * 1024 });
  stream.once('open', () => {
    if (!res.headersSent) res.writeHead(status, headers);
    stream.pipe(res);
  });
  stream.once('error', (e) => {
    if (!res.headersSent) sendError(res, 404, `cannot read ${name}: ${e.message}`);
    else res.destroy(e);
  });
  res.once('close', () => stream.destroy());
}

function errorToResponse(res: ServerResponse, e: unknown): void {
  if (e instanceof ForgeError) sendError(res, e.status, `${e.code}: ${e.message}`);
  else sendError(res, 500, `INTERNAL: ${(e as Error).message}`);
}

function jsonError(res: Response, e: unknown): void {
  const err = e instanceof ForgeError ? e : new ForgeError('INTERNAL', (e as Error).message);
  res.status(err.status).json(err.toBody());
}

/** The first path parameter as a string (express 5 wildcards are arrays of segments). */
function param(req: Request, name: string): string {
  const v = (req.params as Record<string, unknown>)[name];
  if (Array.isArray(v)) return v.join('/');
  return typeof v === 'string' ? v : '';
}

function query(req: Request, name: string): string | undefined {
  const v = (req.query as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}

/** Segments of the firmware path: what Express would pass to a handler unchanged. */
const SEGMENT = '[A-Za-z0-9:._-]+';
/** The per-machine config paths `firmware` answers (bootRoutes); group 1 iPXE, 2 pxelinux, 3 GRUB. */
const FIRMWARE_CONFIG = new RegExp(`^/boot/(?:ipxe/(${SEGMENT})|pxelinux\\.cfg/(${SEGMENT})|grub/(${SEGMENT}(?:/${SEGMENT})*))$`);

/** The per-machine configs firmware asks for over HTTP, by their route patterns. */
const FIRMWARE_ROUTES = { ipxe: '/boot/ipxe/:mac', pxelinux: '/boot/pxelinux.cfg/:name', grub: '/boot/grub/*rest' } as const;

/** Which config a request asks for, and the path parameter its route handler would be given. */
export interface FirmwareConfig {
  kind: keyof typeof FIRMWARE_ROUTES;
  route: (typeof FIRMWARE_ROUTES)[keyof typeof FIRMWARE_ROUTES];
  param: string;
}

/**
 * A request the firmware path answers (bootRoutes `firmware`): a plain GET or HEAD of
 * /boot/ipxe/NAME, /boot/pxelinux.cfg/NAME or /boot/grub/A[/B...], with no query, no
 * percent-encoding and no trailing slash. Express gives these routes' handlers the same
 * parameter (without '%' its decoding changes nothing), so either way the answer is the same;
 * any other spelling (a query, '%', other case, a trailing slash) is undefined here and goes
 * through Express.
 */
export function firmwareConfig(method: string | undefined, url: string | undefined): FirmwareConfig | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  const m = FIRMWARE_CONFIG.exec(url ?? '');
  if (m === null) return undefined;
  const kind = m[1] !== undefined ? 'ipxe' : m[2] !== undefined ? 'pxelinux' : 'grub';
  return { kind, route: FIRMWARE_ROUTES[kind], param: m[1] ?? m[2] ?? m[3] ?? '' };
}

/** A config request recognised before Express: its route pattern (the metrics label) and the call that answers it. */
export type FirmwareRoute = (req: IncomingMessage, res: ServerResponse) => { route: string; serve: () => Promise<void> } | undefined;

/** HTTP boot routes (/boot/..., /tree/...) and boot-area API endpoints. */
export interface BootRouteDeps {
  boot: BootService;
  store: Store;
  config: Pick<ForgeConfig, 'loaders' | 'bios_loader' | 'uefi_loader' | 'unknown_boot' | 'stall_minutes' | 'server_name' | 'pxe_just_once' | 'boot_roots' | 'data_dir'>;
  log: Logger;
  baseUrl: BaseUrl;
  /** Managed DHCP's directly served links and their rival-server state. */
  dhcpLinks?: () => DhcpLinkStatus[];
  /** IPv6 router advertisement state per served link (services/ra.ts). */
  raStatus?: () => RaStatus;
}

/** Handlers of the boot area's /api/v1 routes; their rows are in api/routes.ts. */
export interface BootApi {
  distroFiles: RequestHandler;
  loaders: RequestHandler;
  info: RequestHandler;
  status: RequestHandler;
}

/** The firmware- and installer-facing boot routes (`rows`, mounted at the root) and the boot API handlers. */
export function bootRoutes(deps: BootRouteDeps): { rows: RouteRow[]; api: BootApi; firmware: FirmwareRoute } {
  const { boot, store, config } = deps;
  const log = deps.log.child('http.boot');
  const clientOf = (req: IncomingMessage): string => (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');

  const serveConfig = async (req: IncomingMessage, res: ServerResponse, file: string, make: () => Promise<Rendered>): Promise<void> => {
    try {
      const rendered = await make();
      const { decision } = rendered;
      const system = decision.matched === 'mac' && decision.target.kind !== 'menu' ? decision.target.system : undefined;
      if (req.method === 'GET') boot.record(system, 'boot_config_served', 'http', { file, client: clientOf(req), boot: decision.target.kind });
      sendText(req, res, rendered.text);
    } catch (e) {
      log.warn('boot config failed', { file, error: e });
      errorToResponse(res, e);
    }
  };

  // The per-machine configs take the request and the path's parameter as a string, so that the
  // Express rows and the firmware path (`firmware` below) run the same code.
  // iPXE script per MAC (aa:bb:.. or aa-bb-..), or for a machine that did not say.
  const ipxeConfig = async (req: IncomingMessage, res: ServerResponse, param: string): Promise<void> => {
    const raw = param.replace(/\.ipxe$/, '');
    if (raw === 'default') return serveConfig(req, res, 'ipxe/default', () => boot.ipxe(undefined, req.socket.remoteAddress));
    const mac = normalizeMac(raw);
    if (mac === undefined) return sendError(res, 400, `not a MAC address: ${raw}`);
    return serveConfig(req, res, `ipxe/${mac}`, () => boot.ipxe(mac, req.socket.remoteAddress));
  };

  // GRUB configs by the same names as over TFTP: grub/grub.cfg, grub/grub.cfg-01-<mac>, grub/system/<mac>.
  const grubConfig = async (req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> => {
    const parsed = parseBootPath(`grub/${rest}`);
    if (parsed?.kind === 'grub-root') return sendText(req, res, boot.grubRoot());
    if (parsed?.kind !== 'grub') return sendError(res, 404, `no such GRUB config: ${rest}`);
    return serveConfig(req, res, `grub/${rest}`, () => boot.grub(parsed.mac, req.socket.remoteAddress));
  };

  const pxelinuxConfig = async (req: IncomingMessage, res: ServerResponse, name: string): Promise<void> => {
    const parsed = parseBootPath(`pxelinux.cfg/${name}`);
    if (parsed?.kind !== 'pxelinux') return sendError(res, 404, 'no such pxelinux config');
    return serveConfig(req, res, `pxelinux.cfg/${name}`, () => boot.pxelinux(parsed.mac, req.socket.remoteAddress));
  };

  const ipxe = (req: Request, res: Response): Promise<void> => ipxeConfig(req, res, param(req, 'mac'));
  const grub = (req: Request, res: Response): Promise<void> => grubConfig(req, res, param(req, 'rest'));
  const pxelinux = (req: Request, res: Response): Promise<void> => pxelinuxConfig(req, res, param(req, 'name'));

  // The same three configs for the requests firmware makes (firmwareConfig), answered without
  // Express (app.ts firmwareFirst). Why: through Express each config allocated ~22 KB more and
  // ~14 KB per request outlived a young GC (router closures), so each scavenge promoted ~1.6 MB
  // against ~0.16 MB without it, and took milliseconds: the p99 of boot configs (issue 19).
  const answer = { ipxe: ipxeConfig, pxelinux: pxelinuxConfig, grub: grubConfig };
  const firmware: FirmwareRoute = (req, res) => {
    const c = firmwareConfig(req.method, req.url);
    return c === undefined ? undefined : { route: c.route, serve: () => answer[c.kind](req, res, c.param) };
  };

  const loader = async (req: Request, res: Response): Promise<void> => {
    const name = param(req, 'file');
    const l = loaderPath(name, config.loaders);
    if (l === undefined) {
      const known = findLoaders(config.loaders).find((x) => x.name === name);
      const why = known !== undefined ? `not installed (Debian package ${known.package})` : 'unknown loader';
      return sendError(res, 404, `LOADER_MISSING: ${name}: ${why}`);
    }
    const served = sendFile(req, res, l.path, l.size, name);
    if (req.method === 'GET' && served.status !== 416 && served.start === 0) {
      boot.record(await boot.systemByAddress(clientOf(req)), 'loader_fetched', 'http', { file: name, client: clientOf(req) });
    }
  };

  const distroFile = async (req: Request, res: Response): Promise<void> => {
    const name = param(req, 'name');
    const which = param(req, 'which');
    if (which !== 'kernel' && which !== 'initrd') return sendError(res, 404, `no such distro file: ${which}`);
    try {
      const f = await boot.distroFile(name, which);
      const served = sendFile(req, res, f.path, f.size, which);
      // One event per fetch: a resumed download (Range not at 0) or a HEAD is not a new fetch.
      if (req.method === 'GET' && served.status !== 416 && served.start === 0) {
        const macq = query(req, 'mac');
        const mac = macq !== undefined ? normalizeMac(macq) : undefined;
        const system = (await boot.systemByMac(mac)) ?? (await boot.systemByAddress(clientOf(req)));
        boot.record(system, which === 'kernel' ? 'kernel_fetched' : 'initrd_fetched', 'http', {
          file: `distro/${name}/${which}`,
          distro: name,
          size: f.size,
          client: clientOf(req),
        });
      }
    } catch (e) {
      errorToResponse(res, e);
    }
  };

  // The discovery image (policy discover): no system yet, so no events.
  const discoveryFile = async (req: Request, res: Response): Promise<void> => {
    const which = param(req, 'which');
    if (which !== 'kernel' && which !== 'initrd') return sendError(res, 404, `no such discovery image file: ${which}`);
    try {
      const f = await boot.discoveryFile(which);
      sendFile(req, res, f.path, f.size, which);
    } catch (e) {
      errorToResponse(res, e);
    }
  };

  // Install trees, confined to the distro's tree directory (symlinks included).

  const treeFile = async (req: Request, res: Response, distroName: string, rel: string): Promise<void> => {
    try {
      const d = await store.get('distro', distroName);
      if (d === undefined || d.tree === '') return sendError(res, 404, `no install tree for distro ${distroName}`);
      if (whyRefused(d.tree, bootRootsOf(deps.config)) !== undefined) {
        log.warn('install tree outside the boot roots not served', { distro: distroName, tree: d.tree });
        return sendError(res, 404, `no servable install tree for distro ${distroName} (outside the boot roots; see forge check)`);
      }
      if (rel.split('/').some((seg) => seg === '..') || rel.includes('\0') || rel.includes('\\')) {
        return sendError(res, 404, 'no such file in the tree');
      }
      const root = realpathSync(d.tree);
      let real: string;
      try {
        real = realpathSync(join(root, rel));
      } catch {
        return sendError(res, 404, `no such file in the tree: ${rel}`);
      }
      const within = relative(root, real);
      if (within.startsWith('..') || isAbsolute(within) || (within !== '' && within.split(sep)[0] === '..')) {
        return sendError(res, 404, 'no such file in the tree');
      }
      const st = statSync(real);
      if (!st.isFile()) return sendError(res, 404, `not a file: ${rel || '/'}`);
      sendFile(req, res, real, st.size, rel);
    } catch (e) {
      errorToResponse(res, e);
    }
  };

  // --- API of the boot area (JSON; the same error bodies as the core API)

  const distroFiles = async (req: Request, res: Response): Promise<void> => {
    try {
      const name = param(req, 'name');
      const out: Record<string, { url: string; size: number; sha256: string }> = {};
      for (const which of ['kernel', 'initrd'] as const) {
        const f = await boot.distroFile(name, which);
        out[which] = {
          url: `${deps.baseUrl()}/boot/distro/${encodeURIComponent(name)}/${which}`,
          size: f.size,
          sha256: await sha256Of(f),
        };
      }
      res.json(out);
    } catch (e) {
      jsonError(res, e);
    }
  };

  const loaders = (_req: Request, res: Response): void => {
    res.json(findLoaders(config.loaders));
  };

  const info = (_req: Request, res: Response): void => {
    res.json({
      base_url: deps.baseUrl(),
      bios_loader: config.bios_loader,
      uefi_loader: config.uefi_loader,
      unknown_boot: config.unknown_boot,
      stall_minutes: config.stall_minutes,
      pxe_just_once: config.pxe_just_once,
    });
  };

  const status = async (_req: Request, res: Response): Promise<void> => {
    try {
      const now = Date.now();
      const systems = await store.list('system');
      const out: (StageInfo & { name: string; profile: string; netboot_enabled: boolean })[] = [];
      for (const s of systems) {
        const events = await store.listEvents(s.name, { limit: 200 });
        out.push({ name: s.name, profile: s.profile, netboot_enabled: s.netboot_enabled, ...stageInfo(events, now, config.stall_minutes) });
      }
      res.json({ time: new Date(now).toISOString(), stall_minutes: config.stall_minutes, systems: out, server_name: config.server_name, dhcp_links: deps.dhcpLinks?.() ?? [], ...(deps.raStatus !== undefined ? { ipv6_ra: deps.raStatus() } : {}) });
    } catch (e) {
      jsonError(res, e);
    }
  };

  const tree = async (req: Request, res: Response): Promise<void> => treeFile(req, res, param(req, 'distro'), param(req, 'rest'));
  const treeTop = async (req: Request, res: Response): Promise<void> => treeFile(req, res, param(req, 'distro'), '');

  const FILE: ReplySpec = { description: 'file', type: 'binary' };
  const TEXT_REPLY: ReplySpec = { description: 'text', type: 'text' };
  const rows: RouteRow[] = [
    { method: 'get', path: FIRMWARE_ROUTES.ipxe, auth: 'anonymous', summary: 'iPXE script for a MAC (aa:bb:.. or aa-bb-..), or `default` for unknown machines', reply: TEXT_REPLY, errors: [400], handler: ipxe },
    { method: 'get', path: FIRMWARE_ROUTES.grub, auth: 'anonymous', summary: 'GRUB config by its TFTP name (grub.cfg, grub.cfg-01-MAC, system/MAC)', reply: TEXT_REPLY, errors: [404], handler: grub },
    { method: 'get', path: FIRMWARE_ROUTES.pxelinux, auth: 'anonymous', summary: 'pxelinux config (01-MAC or default)', reply: TEXT_REPLY, errors: [404], handler: pxelinux },
    { method: 'get', path: '/boot/loaders/:file', auth: 'anonymous', summary: 'boot loader file (undionly.kpxe, ipxe.efi, pxelinux.0, ...)', reply: FILE, errors: [404], handler: loader },
    {
      method: 'get',
      path: '/boot/distro/:name/:which',
      auth: 'anonymous',
      summary: 'kernel or initrd (HEAD and single Range supported)',
      params: { which: { type: 'string', enum: ['kernel', 'initrd'] } },
      reply: [FILE, { status: 206, description: 'range', type: 'binary' }],
      errors: [404, 416],
      handler: distroFile,
    },
    {
      method: 'get',
      path: '/boot/discovery/:which',
      auth: 'anonymous',
      summary: 'the discovery image (dhcp_unknown=discover): kernel or initrd',
      params: { which: { type: 'string', enum: ['kernel', 'initrd'] } },
      reply: [FILE, { status: 206, description: 'range', type: 'binary' }],
      errors: [404, 416],
      handler: discoveryFile,
    },
    { method: 'get', path: '/tree/:distro/*rest', auth: 'anonymous', summary: 'a file of the distro\'s install tree (confined to it)', reply: FILE, errors: [404, 416], handler: tree },
    { method: 'get', path: '/tree/:distro', auth: 'anonymous', summary: 'the top of the distro\'s install tree', reply: FILE, errors: [404], handler: treeTop },
  ];
  return { rows, api: { distroFiles, loaders, info, status }, firmware };
}
