/**
 * forge web UI: one module, no framework, bundled at build time
 * (scripts/build-ui.mjs: esbuild) and served by forge at /ui (no CDN: it
 * works offline). It reads and writes only through the REST API (/api/v1),
 * with the server's own typed client (server/api/client.ts, the one the CLI
 * and forge-agent use) and the token the user logs in with, and follows
 * GET /api/v1/events/stream (EventSource) for live updates. Answer types
 * come from server/api/types.ts and each event's stage from the one event
 * table (server/core/events.ts): the bundle shares those modules, so there
 * is no copy to keep in step.
 * Every element is built with createElement/textContent: server data is
 * never parsed as HTML. Keyboard: every action is a link, button or form
 * field in document order; focus moves to the page heading on navigation.
 */

import { ApiClient } from '../server/api/client.js';
import type { ForgeEvent, StatusRow } from '../server/api/types.js';
import { EVENT_TYPES, isNeutral, stageOfType } from '../server/core/events.js';
import { ForgeError } from '../server/errors.js';

type Json = Record<string, unknown>;

/** What a TEMPLATE_ERROR carries in its details (render/errors.ts): where the template failed. */
interface TemplateErrorAt {
  file?: string;
  line?: number;
  column?: number;
}

// ------------------------------------------------------------------ state

const TOKEN_KEY = 'forge.token';
let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
let canWrite = false;
let loggedIn = sessionStorage.getItem('forge.readonly') === '1' || token !== '';

const STAGE_COLOR: Record<string, string> = {
  booting: '#9a6700',
  installing: '#0b5cad',
  installed: '#1a7f37',
  running: '#1a7f37',
  failed: '#b3261e',
  local: '#5b6670',
  configured: '#5b6670',
  new: '#5b6670',
};


// ------------------------------------------------------------------ helpers

type Child = Node | string | null | undefined | false;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** The shared client, same origin, with the token logged in with (none: read-only). */
function api(): ApiClient {
  return new ApiClient({ server: '', token: token === '' ? undefined : token });
}

/** A server object as a plain record, for the generic tables and forms. */
const rec = (o: object): Json => ({ ...o });

const enc = encodeURIComponent;
const main = (): HTMLElement => document.getElementById('main')!;

function page(title: string, ...children: Child[]): void {
  const m = main();
  m.replaceChildren(h('h1', { tabindex: '-1', id: 'page-title' }, title), ...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
  document.title = `${title} · forge`;
  (document.getElementById('page-title') as HTMLElement).focus();
}

function errorBox(e: unknown): HTMLElement {
  const msg = e instanceof ForgeError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
  return h('div', { class: 'error', role: 'alert' }, msg);
}

function badge(stage: string, stalled = false): HTMLElement {
  return h('span', { class: `badge ${stalled ? 'stalled' : stage}` }, stalled ? `stalled · ${stage}` : stage);
}

function field(label: string, name: string, opts: { value?: string; required?: boolean; placeholder?: string } = {}): HTMLElement {
  return h('label', {}, label, h('input', { name, value: opts.value ?? '', required: opts.required === true, placeholder: opts.placeholder ?? '', autocomplete: 'off' }));
}

function select(label: string, name: string, values: string[], current = ''): HTMLElement {
  const sel = h('select', { name });
  for (const v of values) {
    const o = h('option', { value: v }, v === '' ? '(none)' : v);
    if (v === current) o.selected = true;
    sel.append(o);
  }
  return h('label', {}, label, sel);
}

function formValues(f: HTMLFormElement): Record<string, string> {
  const out: Record<string, string> = {};
  new FormData(f).forEach((v, k) => {
    if (typeof v === 'string') out[k] = v.trim();
  });
  return out;
}

/** A form whose submit calls `fn`; errors show inside it and nothing is lost. */
function actionForm(label: string, fields: HTMLElement[], fn: (v: Record<string, string>) => Promise<void>): HTMLFormElement {
  const status = h('div', { role: 'status' });
  const f = h('form', { class: 'inline', 'aria-label': label }, ...fields, h('button', { type: 'submit' }, label), status);
  f.addEventListener('submit', (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    fn(formValues(f)).catch((e: unknown) => status.replaceChildren(errorBox(e)));
  });
  return f;
}

function confirmDelete(kind: 'distro' | 'profile' | 'system' | 'subnet', name: string, after: () => void): HTMLElement {
  return h('button', {
    class: 'danger',
    type: 'button',
    'aria-label': `delete ${kind} ${name}`,
    onclick: () => {
      if (!confirm(`Delete ${kind} ${name}?`)) return;
      api().remove(kind, name).then(after, (e: unknown) => alert(e instanceof Error ? e.message : String(e)));
    },
  }, 'Delete');
}

// ------------------------------------------------------------------ login

async function whoami(): Promise<void> {
  const who = document.getElementById('who')!;
  try {
    const r = await api().whoami();
    canWrite = r.can_write;
    who.replaceChildren(`${r.role}${canWrite ? '' : ' (read-only)'} `, h('button', { class: 'secondary', type: 'button', onclick: logout }, token === '' ? 'Log in' : 'Log out'));
  } catch (e) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    canWrite = false;
    throw e;
  }
}

function logout(): void {
  token = '';
  loggedIn = false;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem('forge.readonly');
  void route();
}

function loginPage(err?: unknown): void {
  const f = actionForm('Log in', [h('label', {}, 'API token (DATA_DIR/token, or FORGE_TOKEN)', h('input', { name: 'token', type: 'password', autocomplete: 'current-password', required: true, size: '40' }))], async (v) => {
    token = v['token'] ?? '';
    try {
      await whoami();
    } catch (e) {
      token = '';
      throw e;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    loggedIn = true;
    await route();
  });
  page('Log in to forge',
    h('div', { class: 'login' },
      h('p', {}, 'The token lets you add, change and delete. Without it the UI is read-only.'),
      err !== undefined ? errorBox(err) : null,
      f,
      h('button', { class: 'secondary', type: 'button', onclick: () => {
        sessionStorage.setItem('forge.readonly', '1');
        loggedIn = true;
        void route();
      } }, 'Continue read-only')));
}

// ------------------------------------------------------------------ systems

let statusRows: StatusRow[] = [];

async function systemsPage(): Promise<void> {
  const [st, profiles] = await Promise.all([api().status(), api().names('profile')]);
  statusRows = st.systems;
  const tbody = h('tbody');
  const table = h('table', { 'aria-label': 'systems' }, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Profile'), h('th', {}, 'Netboot'), h('th', {}, 'Stage'), h('th', {}, 'In stage'), h('th', {}, 'Last event'), canWrite ? h('th', {}, h('span', { class: 'muted' }, 'Actions')) : null)), tbody);
  fillSystems(tbody, new Set());
  const stalled = st.systems.filter((x) => x.stalled).length;
  page('Systems',
    h('p', { class: 'muted' }, `${st.systems.length} systems${stalled > 0 ? `, ${stalled} stalled (no progress for ${st.stall_minutes} min)` : ''}; updates live.`),
    canWrite
      ? actionForm('Add system', [
          field('Name', 'name', { required: true }),
          select('Profile', 'profile', profiles),
          field('MAC address', 'mac', { placeholder: 'random' }),
          field('IP address', 'ip', { placeholder: 'dhcp' }),
        ], async (v) => {
          const eth0: Json = { mac_address: v['mac'] === '' ? 'random' : v['mac'] };
          if (v['ip'] !== '') eth0['ip_address'] = v['ip'];
          await api().create('system', { name: v['name'], profile: v['profile'], interfaces: { eth0 } });
          await systemsPage();
        })
      : null,
    table);
}

function fillSystems(tbody: HTMLElement, changed: Set<string>): void {
  tbody.replaceChildren(...statusRows.map((r) => h('tr', { class: changed.has(r.name) ? 'flash' : '', 'data-system': r.name },
    h('td', {}, h('a', { href: `#/system/${enc(r.name)}` }, r.name)),
    h('td', {}, r.profile),
    h('td', {}, r.netboot_enabled ? 'on' : 'off'),
    h('td', {}, badge(r.stage, r.stalled)),
    h('td', {}, r.stage === 'new' ? '' : `${r.minutes} min`),
    h('td', {}, r.last_event),
    canWrite ? h('td', {}, confirmDelete('system', r.name, () => void systemsPage())) : null)));
}

async function refreshSystems(changed: Set<string>): Promise<void> {
  const tbody = document.querySelector('table[aria-label="systems"] tbody');
  if (tbody === null) return;
  const st = await api().status();
  statusRows = st.systems;
  fillSystems(tbody as HTMLElement, changed);
}

// ------------------------------------------------------------------ one system

let timelineOf: { system: string; events: ForgeEvent[]; draw: () => void } | undefined;

/** The boot timeline as a picture: one dot per event on a time axis, coloured by stage, labelled. */
export function timelineSvg(events: ForgeEvent[]): SVGElement {
  const W = 1000;
  const rowH = 22;
  const top = 30;
  const H = top + Math.max(1, events.length) * rowH + 30;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'timeline', role: 'img', 'aria-label': `boot timeline, ${events.length} events` });
  if (events.length === 0) {
    svg.append(s('text', { x: 20, y: 45, fill: '#5b6670' }, 'no events yet: they appear here as the machine boots'));
    return svg;
  }
  const t0 = Date.parse(events[0]!.time);
  const t1 = Math.max(t0 + 1000, Date.parse(events[events.length - 1]!.time));
  const x0 = 230;
  const x1 = W - 90;
  const x = (t: string): number => x0 + ((Date.parse(t) - t0) / (t1 - t0)) * (x1 - x0);
  // Time axis with ticks.
  svg.append(s('line', { x1: x0, y1: top - 8, x2: x1, y2: top - 8, stroke: '#d5dbe0' }));
  for (let i = 0; i <= 4; i++) {
    const tx = x0 + (i / 4) * (x1 - x0);
    svg.append(s('text', { x: tx, y: top - 14, 'font-size': 11, 'text-anchor': 'middle', fill: '#5b6670' }, `+${fmtSpan(((t1 - t0) * i) / 4)}`));
  }
  let prev: { x: number; y: number } | undefined;
  events.forEach((e, i) => {
    const y = top + i * rowH + 10;
    const cx = x(e.time);
    const stage = stageOfType(e.type);
    const color = STAGE_COLOR[stage] ?? '#5b6670';
    if (prev !== undefined) svg.append(s('line', { x1: prev.x, y1: prev.y, x2: cx, y2: y, stroke: '#c0c8d0', 'stroke-dasharray': '3 3' }));
    svg.append(s('line', { x1: x0, y1: y, x2: x1, y2: y, stroke: '#f0f2f4' }));
    svg.append(s('text', { x: 10, y: y + 4, 'font-size': 12, fill: color, 'data-event': e.type }, `${e.type}`));
    svg.append(s('text', { x: 160, y: y + 4, 'font-size': 11, fill: '#5b6670' }, e.source));
    const dot = s('circle', { cx, cy: y, r: 6, fill: color });
    dot.append(s('title', {}, `${e.time} ${e.source} ${e.type}`));
    svg.append(dot);
    svg.append(s('text', { x: cx + 10, y: y + 4, 'font-size': 11, fill: '#1d232a' }, `+${fmtSpan(Date.parse(e.time) - t0)}`));
    prev = { x: cx, y };
  });
  return svg;
}

function fmtSpan(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const sec = Math.round(ms / 1000);
  if (sec < 60) return `${sec}s`;
  const m = Math.floor(sec / 60);
  return m < 60 ? `${m}m${String(sec % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function codeBlock(text: string, badLine?: number): HTMLElement {
  const pre = h('pre', { class: 'code', tabindex: '0' });
  text.replace(/\n$/, '').split('\n').forEach((l, i) => {
    const bad = badLine === i + 1;
    pre.append(h('span', { class: bad ? 'l bad' : 'l', ...(bad ? { 'aria-label': `line ${i + 1}: the error is here`, id: 'bad-line' } : {}) }, l === '' ? ' ' : l));
  });
  return pre;
}

async function autoinstallSection(kind: 'system' | 'profile', name: string, blended: Json): Promise<HTMLElement> {
  const box = h('section', { 'aria-label': 'autoinstall' }, h('h2', {}, 'Rendered autoinstall'));
  try {
    box.append(codeBlock(await api().autoinstall(kind, name)));
  } catch (e) {
    box.append(errorBox(e));
    const d = e instanceof ForgeError && typeof e.details === 'object' && e.details !== null ? (e.details as TemplateErrorAt) : undefined;
    if (d?.line !== undefined) {
      box.append(h('p', {}, `${d.file ?? ''} line ${d.line}${d.column !== undefined ? `, column ${d.column}` : ''}:`));
      // The template source in effect, with the failing line marked.
      const tname = String(blended['autoinstall'] ?? '');
      try {
        const f = await api().templateFile(tname);
        if (d.file === undefined || d.file === '' || f.file === d.file || d.file.endsWith(tname)) box.append(codeBlock(f.content, d.line));
      } catch {
        /* the template itself is missing: the message says so */
      }
    }
  }
  return box;
}

async function systemPage(name: string): Promise<void> {
  const [sys, blended, events, profiles, st] = await Promise.all([
    api().get('system', name).then(rec),
    api().blended('system', name).catch(() => ({}) as Json),
    api().events(name),
    api().names('profile'),
    api().status(),
  ]);
  statusRows = st.systems;
  const row = statusRows.find((r) => r.name === name);
  const tl = h('div', { id: 'timeline' });
  const evs = [...events].sort((a, b) => a.id - b.id);
  timelineOf = { system: name, events: evs, draw: () => tl.replaceChildren(timelineSvg(evs)) };
  timelineOf.draw();
  const ifaces = Object.entries((sys['interfaces'] as Record<string, Json> | undefined) ?? {});
  const vars = Object.entries(blended).sort(([a], [b]) => a.localeCompare(b));
  page(`System ${name}`,
    h('p', {}, 'Profile ', h('a', { href: '#/profiles' }, String(sys['profile'] ?? '')), ' · netboot ', sys['netboot_enabled'] === true ? 'on' : 'off', ' · ', h('span', { id: 'stage' }, row !== undefined ? badge(row.stage, row.stalled) : '')),
    h('h2', {}, 'Boot timeline'),
    tl,
    h('div', { class: 'grid2' },
      h('section', {},
        h('h2', {}, 'Interfaces'),
        h('table', { 'aria-label': 'interfaces' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'MAC'), h('th', {}, 'IP'), h('th', {}, 'Netmask'), h('th', {}, 'Static'))),
          h('tbody', {}, ...ifaces.map(([n, i]) => h('tr', {}, h('td', {}, n), h('td', {}, String(i['mac_address'] ?? '')), h('td', {}, String(i['ip_address'] ?? '')), h('td', {}, String(i['netmask'] ?? '')), h('td', {}, i['static'] === true ? 'yes' : 'no'))))),
        canWrite
          ? h('div', {},
              h('h2', {}, 'Edit'),
              actionForm('Save', [select('Profile', 'profile', profiles, String(sys['profile'] ?? '')), select('Netboot', 'netboot_enabled', ['true', 'false'], String(sys['netboot_enabled'] === true)), field('Comment', 'comment', { value: String(sys['comment'] ?? '') })], async (v) => {
                await api().patch('system', name, { profile: v['profile'], netboot_enabled: v['netboot_enabled'] === 'true', comment: v['comment'] });
                await systemPage(name);
              }),
              confirmDelete('system', name, () => (location.hash = '#/')))
          : null),
      h('section', {},
        h('h2', {}, 'Blended variables'),
        h('table', { 'aria-label': 'blended variables' }, h('tbody', {}, ...vars.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, typeof v === 'string' ? v : JSON.stringify(v)))))))),
    await autoinstallSection('system', name, blended));
}

// ------------------------------------------------------------------ distros, profiles

/**
 * "Edit KIND": pick an object, fill only the fields to change; one PATCH with
 * just those (the API's partial update, all or nothing), errors shown in the form.
 */
function editForm(kind: 'distro' | 'profile' | 'subnet', names: string[], fields: HTMLElement[], after: () => Promise<void>): HTMLFormElement {
  return actionForm(`Edit ${kind}`, [select('Name', 'name', names), ...fields], async (v) => {
    const body: Json = {};
    for (const [k, val] of Object.entries(v)) if (k !== 'name' && val !== '') body[k] = val;
    if (Object.keys(body).length === 0) throw new Error('fill at least one field to change');
    await api().patch(kind, v['name'] ?? '', body);
    await after();
  });
}

async function distrosPage(): Promise<void> {
  const ds = (await api().list('distro')).map(rec);
  page('Distros',
    canWrite
      ? actionForm('Add distro', [field('Name', 'name', { required: true }), select('Breed', 'breed', ['redhat', 'debian', 'ubuntu', 'suse', 'generic']), select('Arch', 'arch', ['x86_64', 'i386', 'aarch64', 'ppc64le', 's390x']), field('Kernel', 'kernel', { required: true, placeholder: '/srv/os/linux' }), field('Initrd', 'initrd', { required: true })], async (v) => {
          await api().create('distro', v);
          await distrosPage();
        })
      : null,
    canWrite && ds.length > 0
      ? editForm('distro', ds.map((d) => String(d['name'])), [field('Kernel', 'kernel'), field('Initrd', 'initrd'), field('Kernel options', 'kernel_options', { placeholder: 'console=ttyS0 quiet' }), field('Comment', 'comment')], distrosPage)
      : null,
    h('table', { 'aria-label': 'distros' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Breed'), h('th', {}, 'Arch'), h('th', {}, 'Kernel'), h('th', {}, 'Initrd'), canWrite ? h('th', {}, 'Actions') : null)),
      h('tbody', {}, ...ds.map((d) => h('tr', {}, h('td', {}, String(d['name'])), h('td', {}, String(d['breed'] ?? '')), h('td', {}, String(d['arch'] ?? '')), h('td', {}, String(d['kernel'] ?? '')), h('td', {}, String(d['initrd'] ?? '')), canWrite ? h('td', {}, confirmDelete('distro', String(d['name']), () => void distrosPage())) : null)))));
}

async function profilesPage(): Promise<void> {
  const [ps, ds] = await Promise.all([api().list('profile').then((l) => l.map(rec)), api().names('distro')]);
  // Inheritance as a tree: each profile under its parent, distro-level profiles at the top.
  const children = new Map<string, Json[]>();
  for (const p of ps) {
    const parent = String(p['parent'] ?? '');
    children.set(parent, [...(children.get(parent) ?? []), p]);
  }
  const rows: HTMLElement[] = [];
  const walk = (parent: string, depth: number): void => {
    for (const p of children.get(parent) ?? []) {
      const n = String(p['name']);
      rows.push(h('tr', {},
        h('td', {}, h('span', { style: `padding-left:${depth * 1.4}rem` }, depth > 0 ? '└ ' : '', n)),
        h('td', {}, depth > 0 ? `inherits ${parent}` : String(p['distro'] ?? '')),
        h('td', {}, String(p['autoinstall'] ?? '')),
        canWrite ? h('td', {}, confirmDelete('profile', n, () => void profilesPage())) : null));
      walk(n, depth + 1);
    }
  };
  walk('', 0);
  page('Profiles',
    canWrite
      ? actionForm('Add profile', [field('Name', 'name', { required: true }), select('Distro', 'distro', ['', ...ds]), select('Parent', 'parent', ['', ...ps.map((p) => String(p['name']))]), field('Autoinstall template', 'autoinstall', { placeholder: 'preseed/default.seed' })], async (v) => {
          const body: Json = { name: v['name'] };
          for (const k of ['distro', 'parent', 'autoinstall']) if (v[k] !== '' && v[k] !== undefined) body[k] = v[k];
          await api().create('profile', body);
          await profilesPage();
        })
      : null,
    canWrite && ps.length > 0
      ? editForm('profile', ps.map((p) => String(p['name'])), [field('Autoinstall template', 'autoinstall'), field('Kernel options', 'kernel_options'), field('Autoinstall meta', 'autoinstall_meta', { placeholder: 'tree=http://mirror/debian' }), field('Comment', 'comment')], profilesPage)
      : null,
    h('table', { 'aria-label': 'profiles' }, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Distro / parent'), h('th', {}, 'Autoinstall'), canWrite ? h('th', {}, 'Actions') : null)), h('tbody', {}, ...rows)));
}

// ------------------------------------------------------------------ DHCP

/** Reads the per-subnet pool gauges from forge's own Prometheus exposition. */
function poolUse(metrics: string): Map<string, { held: number; size: number }> {
  const out = new Map<string, { held: number; size: number }>();
  for (const m of metrics.matchAll(/^forge_dhcp_(leases|pool_addresses)\{subnet="([^"]+)"\} (\d+(?:\.\d+)?)$/gm)) {
    const u = out.get(m[2]!) ?? { held: 0, size: 0 };
    if (m[1] === 'leases') u.held = Number(m[3]);
    else u.size = Number(m[3]);
    out.set(m[2]!, u);
  }
  return out;
}

async function dhcpPage(): Promise<void> {
  const [leases, metrics, subnets] = await Promise.all([
    api().leases(),
    fetch('/metrics').then((r) => r.text()),
    api().list('subnet').then((l) => l.map(rec)).catch(() => undefined),
  ]);
  const pools = poolUse(metrics);
  const list = (v: unknown): string => (Array.isArray(v) ? v.map(String).join(' ') : '');
  const num = (v: unknown, unset: string): string => (typeof v === 'number' && v !== 0 ? String(v) : unset);
  // The stored subnet objects (forge subnet ...): what each subnet's clients get.
  const subnetFields = (): HTMLElement[] => [
    field('CIDR', 'cidr', { placeholder: '10.96.0.0/24' }),
    field('Range', 'range', { placeholder: '10.96.0.100,10.96.0.200' }),
    field('Router', 'router'),
    field('DNS', 'dns', { placeholder: '10.96.0.1' }),
    field('Domain', 'domain'),
    field('DNS search', 'dns_search'),
    field('Lease time (s)', 'lease_time'),
    field('MTU', 'mtu'),
    field('Servers', 'servers', { placeholder: 'every server' }),
  ];
  page('DHCP',
    canWrite
      ? actionForm('Add subnet', [field('Name', 'name', { required: true }), ...subnetFields()], async (v) => {
          const body: Json = {};
          for (const [k, val] of Object.entries(v)) if (val !== '') body[k] = val;
          await api().create('subnet', body);
          await dhcpPage();
        })
      : null,
    canWrite && subnets !== undefined && subnets.length > 0 ? editForm('subnet', subnets.map((sn) => String(sn['name'])), subnetFields(), dhcpPage) : null,
    h('h2', {}, 'Subnets'),
    subnets === undefined || subnets.length === 0
      ? h('p', { class: 'muted' }, 'No stored subnets (forge subnet add); the --dhcp-subnet flags serve their one implicit subnet.')
      : h('table', { 'aria-label': 'subnets' },
          h('thead', {}, h('tr', {}, ...['Name', 'CIDR', 'Ranges', 'Router', 'DNS', 'Domain', 'Search', 'Lease', 'MTU', 'Next server', 'Authoritative', 'Unknown', 'Servers'].map((c) => h('th', {}, c)), canWrite ? h('th', {}, 'Actions') : null)),
          h('tbody', {}, ...subnets.map((sn) => h('tr', {},
            h('td', {}, String(sn['name'] ?? '')), h('td', {}, String(sn['cidr'] ?? '')), h('td', {}, list(sn['range'])), h('td', {}, String(sn['router'] ?? '')),
            h('td', {}, list(sn['dns'])), h('td', {}, String(sn['domain'] ?? '')), h('td', {}, list(sn['dns_search'])), h('td', {}, num(sn['lease_time'], 'default')),
            h('td', {}, num(sn['mtu'], '')), h('td', {}, String(sn['next_server'] ?? '')), h('td', {}, sn['authoritative'] === true ? 'yes' : 'no'), h('td', {}, String(sn['unknown'] ?? '') === '' ? 'server default' : String(sn['unknown'])),
            h('td', {}, list(sn['servers']) || 'every server'),
            canWrite ? h('td', {}, confirmDelete('subnet', String(sn['name']), () => void dhcpPage())) : null)))),
    h('h2', {}, 'Pool use per subnet'),
    pools.size === 0
      ? h('p', { class: 'muted' }, 'forge is not serving DHCP (dhcp_mode off), or no pools are configured.')
      : h('table', { 'aria-label': 'pool use' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Subnet'), h('th', {}, 'Held'), h('th', {}, 'Pool'), h('th', {}, 'Use'))),
          h('tbody', {}, ...[...pools].map(([sn, u]) => {
            const pct = u.size > 0 ? Math.round((u.held / u.size) * 100) : 0;
            return h('tr', {}, h('td', {}, sn), h('td', {}, String(u.held)), h('td', {}, String(u.size)), h('td', {}, h('div', { class: 'bar', role: 'meter', 'aria-valuenow': String(pct), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': `${sn} ${pct}% used` }, h('span', { style: `width:${pct}%` })), `${pct}%`));
          }))),
    h('h2', {}, 'Leases'),
    h('table', { 'aria-label': 'leases' },
      h('thead', {}, h('tr', {}, h('th', {}, 'IP'), h('th', {}, 'MAC'), h('th', {}, 'State'), h('th', {}, 'System'), h('th', {}, 'Hostname'), h('th', {}, 'Expires'))),
      h('tbody', {}, ...leases.map((l) => h('tr', {}, h('td', {}, l.ip), h('td', {}, l.mac), h('td', {}, l.state), h('td', {}, l.system === '' ? '' : h('a', { href: `#/system/${enc(l.system)}` }, l.system)), h('td', {}, l.hostname), h('td', {}, new Date(l.expires).toISOString()))))));
}

// ------------------------------------------------------------------ live events

let pending = new Set<string>();
let timer: number | undefined;

function connectLive(): void {
  const live = document.getElementById('live')!;
  const es = new EventSource('/api/v1/events/stream');
  es.addEventListener('open', () => {
    live.textContent = 'live';
    live.classList.add('on');
  });
  es.addEventListener('error', () => {
    live.textContent = 'reconnecting…';
    live.classList.remove('on');
  });
  es.onmessage = null;
  // Every event type arrives as its own SSE event name.
  for (const t of EVENT_TYPES) es.addEventListener(t, (m) => onEvent(JSON.parse((m as MessageEvent<string>).data) as ForgeEvent));
}

function onEvent(ev: ForgeEvent): void {
  if (timelineOf !== undefined && timelineOf.system === ev.system && document.getElementById('timeline') !== null) {
    if (!timelineOf.events.some((e) => e.id === ev.id)) {
      timelineOf.events.push(ev);
      timelineOf.draw();
      // The stage follows the newest event as forge status judges it (events/lifecycle.ts: a
      // neutral event, such as an edit or a power action, never moves it), without a reload.
      if (!isNeutral(ev.type)) document.getElementById('stage')?.replaceChildren(badge(stageOfType(ev.type)));
    }
  }
  pending.add(ev.system);
  if (timer === undefined) {
    timer = window.setTimeout(() => {
      const changed = pending;
      pending = new Set();
      timer = undefined;
      void refreshSystems(changed).catch(() => undefined);
    }, 250);
  }
}

// ------------------------------------------------------------------ router

async function route(): Promise<void> {
  const hash = location.hash.replace(/^#/, '') || '/';
  for (const a of document.querySelectorAll('header nav a')) {
    const href = (a as HTMLAnchorElement).getAttribute('href')!.slice(1);
    if ((href === '/' && (hash === '/' || hash.startsWith('/system/'))) || (href !== '/' && hash.startsWith(href))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  timelineOf = undefined;
  try {
    if (!loggedIn) return loginPage();
    await whoami();
    const m = /^\/system\/(.+)$/.exec(hash);
    if (m !== null) return await systemPage(decodeURIComponent(m[1]!));
    if (hash.startsWith('/profiles')) return await profilesPage();
    if (hash.startsWith('/distros')) return await distrosPage();
    if (hash.startsWith('/dhcp')) return await dhcpPage();
    return await systemsPage();
  } catch (e) {
    if (e instanceof ForgeError && (e.status === 401 || e.status === 403)) {
      loggedIn = false;
      return loginPage(e);
    }
    page('Error', errorBox(e));
  }
}

window.addEventListener('hashchange', () => void route());
connectLive();
void route();
