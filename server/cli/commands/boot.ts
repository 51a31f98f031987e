/**
 * `forge` commands of the boot area: loaders, import, system events, status.
 * Each talks to the server through io.api only, except that `import` reads
 * the tree on this host (like `cobbler import`, it runs where the server
 * serves the files from) and `loaders` falls back to this host's packages
 * when no server answers.
 */
import type { DhcpLinkStatus, StatusAnswer } from '../../api/types.js';
import type { CliIO, CommandSpec, ParsedArgs } from '../command.js';
import type { Arch, Breed, ForgeEvent } from '../../core/model.js';
import { ARCHES, BREEDS } from '../../core/model.js';
import { ForgeError } from '../../errors.js';
import { findLoaders, type LoaderStatus } from '../../boot/loaders.js';
import { detectTree } from '../../importer.js';
import { formatDuration, type StageInfo } from '../../events/lifecycle.js';
import { loadConfig } from '../../config.js';
import { findToken } from '../connection.js';
import { followEvents, stopOnSignal } from '../events-client.js';

const str = (a: ParsedArgs, k: string): string | undefined => {
  const v = a.values[k];
  return typeof v === 'string' ? v : undefined;
};
const flag = (a: ParsedArgs, k: string): boolean => a.values[k] === true;

function required(a: ParsedArgs, k: string): string {
  const v = str(a, k);
  if (v === undefined || v === '') throw new ForgeError('USAGE', `--${k} is required`, { field: k });
  return v;
}

/** Left-aligned columns; the last column is not padded. */
export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

function detailText(d: Record<string, unknown>): string {
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

const loaders: CommandSpec = {
  path: ['loaders'],
  summary: 'list boot loaders forge serves, and the Debian package of each missing one',
  options: {
    json: { type: 'boolean', description: 'print JSON' },
    local: { type: 'boolean', description: 'look on this host (with its config) instead of asking the server' },
  },
  async run(args, io) {
    let list: LoaderStatus[];
    let origin = 'server';
    if (flag(args, 'local')) {
      list = findLoaders(loadConfig({ env: io.env }).loaders);
      origin = 'this host';
    } else {
      try {
        list = await io.client.loaders();
      } catch (e) {
        if (!(e instanceof ForgeError) || e.code !== 'SERVER_UNAVAILABLE') throw e;
        io.err(`forge: server ${io.server} not reachable; checking this host`);
        list = findLoaders(loadConfig({ env: io.env }).loaders);
        origin = 'this host';
      }
    }
    if (flag(args, 'json')) {
      io.out(JSON.stringify(list, null, 2));
    } else {
      const rows = [['LOADER', 'FIRMWARE', 'STATUS', 'PATH / PACKAGE']];
      for (const l of list) {
        rows.push([l.name, l.firmware, l.origin === 'missing' ? 'MISSING' : 'ok', l.origin === 'missing' ? `apt-get install ${l.package}` : l.path]);
      }
      for (const line of table(rows)) io.out(line);
      const missing = list.filter((l) => l.origin === 'missing');
      if (missing.length > 0) {
        const pkgs = [...new Set(missing.map((l) => l.package))].filter((p) => !p.startsWith('('));
        io.out(`${missing.length} missing on ${origin}${pkgs.length > 0 ? `; install: apt-get install ${pkgs.join(' ')}` : ''}`);
      }
    }
    return 0;
  },
};

const importCmd: CommandSpec = {
  path: ['import'],
  summary: 'import an install or netboot tree: create a distro and a default profile',
  help: [
    'Examples:',
    '  forge import --path /usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64 --name deb12',
    '  forge import --path /srv/forge/rocky9 --name rocky9 --breed redhat',
    'Recognised: Debian/Ubuntu netboot (linux + initrd.gz), Red Hat (.treeinfo + images/pxeboot),',
    'SUSE (boot/ARCH/loader), Ubuntu live server (casper/vmlinuz + casper/initrd; 20.04+ installs with',
    'subiquity autoinstall, and its kernel needs the ISO: --iso-url, or an .iso file in the tree).',
    'The tree is served as http://SERVER/tree/NAME/.',
  ].join('\n'),
  options: {
    path: { type: 'string', description: 'directory holding the tree', arg: 'DIR' },
    name: { type: 'string', description: 'name of the distro (and of its default profile)', arg: 'NAME' },
    arch: { type: 'string', description: `override the detected arch (${ARCHES.join(', ')})`, arg: 'ARCH' },
    breed: { type: 'string', description: `override the detected breed (${BREEDS.join(', ')})`, arg: 'BREED' },
    'no-profile': { type: 'boolean', description: 'create only the distro' },
    'iso-url': { type: 'string', description: 'Ubuntu live server: the ISO URL casper loads (url=); default an .iso in the tree', arg: 'URL' },
  },
  async run(args, io) {
    const path = required(args, 'path');
    const name = required(args, 'name');
    const t = detectTree(path);
    const arch = str(args, 'arch');
    const breed = str(args, 'breed');
    if (arch !== undefined && !(ARCHES as readonly string[]).includes(arch)) {
      throw new ForgeError('INVALID_FIELD', `arch: must be one of ${ARCHES.join(', ')}`, { field: 'arch' });
    }
    if (breed !== undefined && !(BREEDS as readonly string[]).includes(breed)) {
      throw new ForgeError('INVALID_FIELD', `breed: must be one of ${BREEDS.join(', ')}`, { field: 'breed' });
    }
    const info = await io.client.bootInfo();
    const treeUrl = `${info.base_url}/tree/${encodeURIComponent(name)}`;
    const isoUrl = str(args, 'iso-url') ?? (t.iso !== undefined ? `${treeUrl}/${encodeURIComponent(t.iso)}` : undefined);
    await io.client.create('distro', {
      name,
      arch: (arch as Arch | undefined) ?? t.arch,
      breed: (breed as Breed | undefined) ?? t.breed,
      os_version: t.os_version,
      kernel: t.kernel,
      initrd: t.initrd,
      tree: t.tree,
      // Installers read the tree URL (inst.repo=, install=) from the `tree` variable;
      // casper (Ubuntu live server) reads the ISO from iso_url (core/cmdline.ts).
      autoinstall_meta: { tree: treeUrl, ...(isoUrl !== undefined ? { iso_url: isoUrl } : {}) },
      comment: `imported from ${t.tree} (${t.layout})`,
    });
    io.out(`distro ${name}: ${t.layout}, breed ${breed ?? t.breed}, arch ${arch ?? t.arch}${t.os_version !== '' ? `, version ${t.os_version}` : ''}`);
    io.out(`  kernel ${t.kernel}`);
    io.out(`  initrd ${t.initrd}`);
    io.out(`  tree   ${t.tree} -> ${treeUrl}/`);
    if (isoUrl !== undefined) io.out(`  iso    ${isoUrl}`);
    else if (t.layout === 'ubuntu-live') io.out('  note: no ISO found; casper needs one (give --iso-url URL or edit the distro\'s autoinstall_meta iso_url)');
    if (!flag(args, 'no-profile')) {
      await io.client.create('profile', { name, distro: name });
      io.out(`profile ${name} (distro ${name})`);
    }
    return 0;
  },
};

/** Column widths of `system events` when following (rows arrive one by one). */
const EVENT_COLS = [24, 6, 18] as const;

function eventRow(e: ForgeEvent): string {
  return [e.time.padEnd(EVENT_COLS[0]), e.source.padEnd(EVENT_COLS[1]), e.type.padEnd(EVENT_COLS[2]), detailText(e.detail)].join('  ').trimEnd();
}

const systemEvents: CommandSpec = {
  path: ['system', 'events'],
  summary: "show a system's boot and install timeline (--follow: and then live, until Ctrl-C)",
  options: {
    name: { type: 'string', description: 'system name', arg: 'NAME' },
    json: { type: 'boolean', description: 'print JSON (with --follow: one event per line)' },
    follow: { type: 'boolean', short: 'f', description: 'keep printing new events as they happen (server-sent events stream)' },
  },
  help: 'example: forge system events --name vm9 --follow',
  async run(args, io) {
    const name = required(args, 'name');
    const events = await io.client.events(name);
    const sorted = [...events].sort((a, b) => a.time.localeCompare(b.time) || a.id - b.id);
    const json = flag(args, 'json');
    if (flag(args, 'follow')) {
      for (const e of sorted) io.out(json ? JSON.stringify(e) : eventRow(e));
      if (!json && sorted.length === 0) io.out(`no events for ${name} yet; waiting (Ctrl-C to stop)`);
      const ctl = new AbortController();
      const stopped = stopOnSignal(ctl);
      const after = sorted.reduce((m, e) => Math.max(m, e.id), 0);
      // The system name as a glob that matches only itself.
      await followEvents({
        server: io.server,
        token: findToken(io.env),
        system: name.replace(/[*?]/g, '?'),
        after,
        signal: ctl.signal,
        onEvent: (e) => {
          if (e.system === name) io.out(json ? JSON.stringify(e) : eventRow(e));
        },
        onDrop: (why) => io.err(`forge: stream interrupted (${why}); reconnecting`),
      });
      await stopped;
      return 0;
    }
    if (json) {
      io.out(JSON.stringify(sorted, null, 2));
      return 0;
    }
    if (sorted.length === 0) {
      io.out(`no events for ${name}`);
      return 0;
    }
    const rows = [['TIME', 'SOURCE', 'TYPE', 'DETAIL']];
    for (const e of sorted) rows.push([e.time, e.source, e.type, detailText(e.detail)]);
    for (const line of table(rows)) io.out(line);
    return 0;
  },
};

/** `installing 12m`, `stalled (installing 75m)`, `new`. */
export function stageText(s: StageInfo): string {
  if (s.stage === 'new') return 'new';
  const t = `${s.stage} ${formatDuration(s.minutes)}`;
  return s.stalled ? `stalled (${t})` : t;
}

function statusLines(res: StatusAnswer): string[] {
  const rows = [['NAME', 'PROFILE', 'NETBOOT', 'STAGE', 'LAST EVENT']];
  for (const s of res.systems) rows.push([s.name, s.profile, s.netboot_enabled ? 'on' : 'off', stageText(s), s.last_event]);
  const out = table(rows);
  const stalled = res.systems.filter((s) => s.stalled).length;
  if (stalled > 0) out.push(`${stalled} stalled (no progress for ${res.stall_minutes}m or more)`);
  // Managed DHCP's served subnets: a rival server found on a link silences forge there; a subnet
  // with no interface of this host is reached through a relay.
  const links = res.dhcp_links ?? [];
  if (links.length > 0) {
    out.push('');
    if (res.server_name !== undefined) out.push(`DHCP of server ${res.server_name}:`);
    const lrows = [['DHCP LINK', 'INTERFACE', 'ADDRESS', 'STATE', 'SINCE']];
    const state = (l: DhcpLinkStatus): string =>
      l.servers !== undefined
        ? `${l.state} (answered by ${l.servers})`
        : l.state === 'relayed'
          ? `relayed (${l.relay !== undefined ? `via relay ${l.relay}` : 'no relayed request yet'})`
          : l.rival === undefined
            ? l.state
            : `${l.state} (other server: ${l.rival}${l.next_probe !== undefined ? `; next probe ${l.next_probe}` : ''})`;
    for (const l of links) lrows.push([l.subnet, l.interface || '-', l.address || '-', state(l), l.since]);
    out.push(...table(lrows));
  }
  // IPv6 RAs end PXE ROMs' IPv6 wait (services/ra.ts): each served interface's readiness, so a
  // late RA (no carrier yet, a tentative link-local address) is visible.
  const ra = res.ipv6_ra;
  if (ra !== undefined && (links.length > 0 || ra.mode === 'on')) {
    out.push('');
    if (ra.links.length === 0) out.push(`IPv6 RA (${ra.mode}): ${ra.note ?? 'no served link'}`);
    else {
      const rrows = [['IPV6 RA', 'STATE', 'SINCE']];
      for (const l of ra.links) rrows.push([l.interface, l.pid !== undefined ? `${l.state} (radvd ${l.pid})` : l.state, l.since]);
      out.push(...table(rrows));
    }
  }
  return out;
}

/** --watch redraws at least this often (minutes in a stage and stalls change without events). */
const WATCH_REFRESH_MS = 30_000;
/** Events that arrive together (a boot sends several within a second) cause one redraw. */
const WATCH_DEBOUNCE_MS = 300;

const status: CommandSpec = {
  path: ['status'],
  summary: 'systems with their install stage and how long they have been in it (--watch: live)',
  options: {
    json: { type: 'boolean', description: 'print JSON (with --watch: one document per line, each change)' },
    watch: { type: 'boolean', short: 'w', description: 'redraw on every event (server-sent events stream) until Ctrl-C' },
  },
  help: 'example: forge status --watch',
  async run(args, io) {
    const json = flag(args, 'json');
    const show = async (first: boolean): Promise<void> => {
      const res = await io.client.status();
      if (json) {
        io.out(flag(args, 'watch') ? JSON.stringify(res) : JSON.stringify(res, null, 2));
        return;
      }
      const tty = process.stdout.isTTY === true && io.env['FORGE_NO_CLEAR'] === undefined;
      if (flag(args, 'watch')) {
        if (tty) io.out('\x1b[H\x1b[2J' + `forge status --watch  ${new Date().toISOString()}  (Ctrl-C to stop)`);
        else if (!first) io.out(`--- ${new Date().toISOString()}`);
      }
      for (const line of statusLines(res)) io.out(line);
    };
    await show(true);
    if (!flag(args, 'watch')) return 0;
    const ctl = new AbortController();
    const stopped = stopOnSignal(ctl);
    let timer: NodeJS.Timeout | undefined;
    let busy = Promise.resolve();
    const redraw = (): void => {
      if (timer !== undefined) return;
      timer = setTimeout(() => {
        timer = undefined;
        busy = busy.then(() => show(false)).catch((e: unknown) => io.err(`forge: ${(e as Error).message}`));
      }, WATCH_DEBOUNCE_MS);
    };
    const tick = setInterval(redraw, WATCH_REFRESH_MS);
    await followEvents({
      server: io.server,
      token: findToken(io.env),
      signal: ctl.signal,
      // Only new events: the first table is already current.
      after: undefined,
      onEvent: redraw,
      onOpen: redraw,
      onDrop: (why) => io.err(`forge: stream interrupted (${why}); reconnecting`),
    });
    clearInterval(tick);
    if (timer !== undefined) clearTimeout(timer);
    await stopped;
    await busy;
    return 0;
  },
};

/** `forge` commands of the boot area. */
export const commands: CommandSpec[] = [loaders, importCmd, systemEvents, status];

export type { CliIO };
