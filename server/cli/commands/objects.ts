/**
 * `forge distro|profile|system|subnet add|edit|copy|rename|remove|list|report|find` (+ `dumpvars` of profiles and systems).
 * Flags are the field names in kebab case (`--virt-ram` <-> virt_ram), taken
 * from the validator's field tables so CLI, API and docs cannot drift.
 * `--interface NAME` selects the system interface the interface flags apply
 * to (default eth0). Dict flags take `"a=b c"`; with `--in-place` an edit
 * merges into the stored dict (`~key` removes a key) instead of replacing it.
 */
import { ForgeError } from '../../errors.js';
import { parseList, parseOptionString, parseRangeList } from '../../core/validate.js';
import { FIELDS, INTERFACE_FIELDS } from '../../core/fields.js';
import type { FieldSpec } from '../../core/fields.js';
import type { ForgeObject, NetInterface, ObjectKind, OptionDict, System } from '../../core/model.js';
import type { CliIO, CommandSpec, OptionSpec, ParsedArgs } from '../command.js';

const PLURAL: Record<ObjectKind, string> = { distro: 'distros', profile: 'profiles', system: 'systems', subnet: 'subnets' };
const kebab = (s: string): string => s.replace(/_/g, '-');

function fieldOption(key: string, spec: FieldSpec): OptionSpec {
  let arg = 'VALUE';
  if (spec.type === 'bool') arg = 'true|false';
  else if (spec.type === 'enum') arg = (spec.values ?? []).join('|');
  else if (spec.type === 'dict') arg = '"a=b c"';
  else if (spec.type === 'list') arg = '"x y"';
  else if (spec.type === 'int' || spec.type === 'number') arg = 'N';
  else if (spec.type === 'mac') arg = 'MAC|random';
  else if (spec.type === 'ipv4') arg = 'IP';
  return {
    type: 'string',
    description: spec.doc + (spec.inherit === true ? ' (<<inherit>> to inherit)' : ''),
    arg,
    ...(spec.type === 'bool' ? { bare: 'true' } : {}),
  };
}

/** Field flags of a kind (without name), keyed by flag name. */
function fieldOptions(kind: ObjectKind): Record<string, OptionSpec> {
  const o: Record<string, OptionSpec> = {};
  for (const [k, s] of Object.entries(FIELDS[kind])) {
    if (k === 'name' || s.readonly === true) continue;
    o[kebab(k)] = fieldOption(k, s);
  }
  return o;
}

function interfaceOptions(): Record<string, OptionSpec> {
  const o: Record<string, OptionSpec> = {
    interface: { type: 'string', description: 'interface the interface flags apply to (default eth0)', arg: 'NAME' },
    mac: { type: 'string', description: 'MAC address of the interface, or "random" (OUI from the virt type)', arg: 'MAC|random' },
  };
  for (const [k, s] of Object.entries(INTERFACE_FIELDS)) o[kebab(k)] = fieldOption(k, s);
  return o;
}

const NAME: OptionSpec = { type: 'string', description: 'object name', arg: 'NAME' };
const JSON_OPT: OptionSpec = { type: 'boolean', description: 'machine-readable JSON output' };

function str(args: ParsedArgs, key: string): string | undefined {
  const v = args.values[key];
  return typeof v === 'string' ? v : undefined;
}

function mustName(args: ParsedArgs, flag = 'name'): string {
  const n = str(args, flag);
  if (n === undefined || n === '') throw new ForgeError('USAGE', `--${flag} is required`, { field: flag });
  return n;
}

function convert(spec: FieldSpec, raw: string): unknown {
  if (spec.type === 'dict') return raw === '' ? {} : raw === '<<inherit>>' ? raw : parseOptionString(raw);
  if (spec.type === 'list') return spec.item === 'range' ? parseRangeList(raw) : parseList(raw);
  return raw;
}

/** Top-level fields given as flags. */
function fieldsFromArgs(kind: ObjectKind, args: ParsedArgs): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(FIELDS[kind])) {
    if (k === 'name' || s.readonly === true) continue;
    const v = str(args, kebab(k));
    if (v !== undefined) body[k] = convert(s, v);
  }
  return body;
}

function interfaceFromArgs(args: ParsedArgs): Partial<Record<keyof NetInterface, unknown>> | undefined {
  const i: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(INTERFACE_FIELDS)) {
    const v = str(args, kebab(k));
    if (v !== undefined) i[k] = convert(s, v);
  }
  const mac = str(args, 'mac');
  if (mac !== undefined) i['mac_address'] = mac;
  return Object.keys(i).length === 0 ? undefined : i;
}

function printJson(io: CliIO, v: unknown): void {
  io.out(JSON.stringify(v, null, 2));
}

/**
 * A streamed listing printed exactly as printJson(io, rows) prints the whole
 * array, each element as it arrives (the last one held back for its comma).
 */
async function printJsonRows(io: CliIO, produce: (onRow: (row: unknown) => void) => Promise<void>): Promise<void> {
  let held: unknown;
  let any = false;
  const flush = (last: boolean): void => io.out(JSON.stringify(held, null, 2).split('\n').map((l) => `  ${l}`).join('\n') + (last ? '' : ','));
  await produce((row) => {
    if (any) flush(false);
    else io.out('[');
    held = row;
    any = true;
  });
  if (!any) io.out('[]');
  else {
    flush(true);
    io.out(']');
  }
}

/** Names of a streamed `fields=name` listing, each as it arrives. */
const eachName = (io: CliIO, kind: ObjectKind, query: Record<string, string>, fn: (name: string) => void): Promise<void> =>
  io.client.listRows(kind, { ...query, fields: 'name' }, (r) => fn((r as { name: string }).name));

// ------------------------------------------------------------------ report formatting

const LABEL_WIDTH = 31;
const label = (k: string): string =>
  k
    .split('_')
    .map((w) => (['ip', 'mac', 'dns', 'mtu', 'ram', 'cpus', 'ipxe'].includes(w) ? w.toUpperCase() : w.charAt(0).toUpperCase() + w.slice(1)))
    .join(' ');

export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ');
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.every(([, x]) => x === null || typeof x === 'string')) {
      return entries.map(([k, x]) => (x === null ? k : `${k}=${String(x)}`)).join(' ');
    }
    return JSON.stringify(v);
  }
  return String(v);
}

/** Cobbler-style `Label : value` report of one object. */
export function formatReport(kind: ObjectKind, obj: ForgeObject): string[] {
  const lines: string[] = [];
  const row = (k: string, v: unknown): void => void lines.push(`${label(k).padEnd(LABEL_WIDTH)}: ${formatValue(v)}`);
  for (const k of Object.keys(FIELDS[kind])) row(k, (obj as unknown as Record<string, unknown>)[k]);
  if (kind === 'system') {
    for (const [ifname, i] of Object.entries((obj as System).interfaces)) {
      lines.push(`${'Interface ====='.padEnd(LABEL_WIDTH)}: ${ifname}`);
      for (const [k, v] of Object.entries(i)) row(k, v);
    }
  }
  return lines;
}

// ------------------------------------------------------------------ verbs

function commandsFor(kind: ObjectKind): CommandSpec[] {
  const plural = PLURAL[kind];
  const fopts = fieldOptions(kind);
  const iopts = kind === 'system' ? interfaceOptions() : {};

  const add: CommandSpec = {
    path: [kind, 'add'],
    summary: `add a ${kind}`,
    options: { name: NAME, ...fopts, ...iopts, json: JSON_OPT },
    help:
      kind === 'distro'
        ? 'example: forge distro add --name deb12 --arch x86_64 --breed debian --os-version bookworm --kernel /srv/forge/deb12/linux --initrd /srv/forge/deb12/initrd.gz'
        : kind === 'profile'
          ? 'example: forge profile add --name deb12-web --distro deb12 --autoinstall preseed/default.seed --kernel-options "console=ttyS0,115200"'
          : kind === 'subnet'
            ? 'example: forge subnet add --name lab --cidr 10.96.0.0/24 --range 10.96.0.100,10.96.0.200 --router 10.96.0.1 --dns "10.96.0.1" --domain lab.example --dns-search "lab.example" --lease-time 3600'
            : 'example: forge system add --name vm9 --profile deb12-web --mac=random --virt-type kvm',
    async run(args, io) {
      const body: Record<string, unknown> = { name: mustName(args), ...fieldsFromArgs(kind, args) };
      if (kind === 'system') {
        const i = interfaceFromArgs(args);
        const ifname = str(args, 'interface') ?? 'eth0';
        if (i !== undefined || str(args, 'interface') !== undefined) body['interfaces'] = { [ifname]: i ?? {} };
      }
      const created = await io.client.create(kind, body);
      if (args.values['json'] === true) printJson(io, created);
      return 0;
    },
  };

  const edit: CommandSpec = {
    path: [kind, 'edit'],
    summary: `change fields of a ${kind} (only the flags given)`,
    options: {
      name: NAME,
      ...fopts,
      ...iopts,
      ...(kind === 'system' ? { 'delete-interface': { type: 'boolean', description: 'remove the interface named by --interface' } } : {}),
      'in-place': { type: 'boolean', description: 'merge dict flags into the stored dicts (~key removes a key)' },
      json: JSON_OPT,
    },
    help:
      kind === 'distro'
        ? 'example: forge distro edit --name deb12 --kernel /srv/deb12/linux --initrd /srv/deb12/initrd.gz --kernel-options "console=ttyS0,115200"'
        : kind === 'profile'
          ? 'example: forge profile edit --name deb12-web --virt-ram 4096 --autoinstall-meta "tree=http://mirror/debian" --in-place'
          : kind === 'subnet'
            ? 'example: forge subnet edit --name lab --router 10.96.0.254 --mtu 9000 --unknown discover'
            : 'example: forge system edit --name vm9 --interface eth1 --mac 52:54:00:12:34:56 --ip-address 10.0.0.9 --netmask 255.255.255.0 --static true',
    async run(args, io) {
      const name = mustName(args);
      const body = fieldsFromArgs(kind, args);
      const dictKeys = Object.entries(FIELDS[kind]).filter(([k, s]) => s.type === 'dict' && body[k] !== undefined).map(([k]) => k);
      if (args.values['in-place'] === true && dictKeys.length > 0) {
        const cur: Readonly<Record<string, unknown>> = { ...(await io.client.get(kind, name)) };
        for (const k of dictKeys) {
          const merged: OptionDict = { ...((cur[k] as OptionDict | undefined) ?? {}) };
          for (const [dk, dv] of Object.entries(body[k] as OptionDict)) {
            if (dk.startsWith('~')) delete merged[dk.slice(1)];
            else merged[dk] = dv;
          }
          body[k] = merged;
        }
      }
      if (kind === 'system') {
        const ifname = str(args, 'interface') ?? 'eth0';
        if (args.values['delete-interface'] === true) {
          if (str(args, 'interface') === undefined) throw new ForgeError('USAGE', '--delete-interface needs --interface NAME', { field: 'interface' });
          body['interfaces'] = { [ifname]: null };
        } else {
          const i = interfaceFromArgs(args);
          if (i !== undefined) body['interfaces'] = { [ifname]: i };
        }
      }
      if (Object.keys(body).length === 0) throw new ForgeError('USAGE', 'nothing to change: give at least one field flag');
      const updated = await io.client.patch(kind, name, body);
      if (args.values['json'] === true) printJson(io, updated);
      return 0;
    },
  };

  const newNameOpts: Record<string, OptionSpec> = {
    name: NAME,
    newname: { type: 'string', description: 'the new name', arg: 'NAME' },
    'new-name': { type: 'string', description: 'the new name (same as --newname)', arg: 'NAME' },
    json: JSON_OPT,
  };
  const newName = (args: ParsedArgs): string => {
    const n = str(args, 'newname') ?? str(args, 'new-name');
    if (n === undefined || n === '') throw new ForgeError('USAGE', '--newname is required', { field: 'newname' });
    return n;
  };

  const copy: CommandSpec = {
    path: [kind, 'copy'],
    summary: `copy a ${kind}${kind === 'system' ? ' (the copy has no MAC or IP addresses)' : ''}`,
    options: newNameOpts,
    async run(args, io) {
      const r = await io.client.copy(kind, mustName(args), newName(args));
      if (args.values['json'] === true) printJson(io, r);
      return 0;
    },
  };

  const rename: CommandSpec = {
    path: [kind, 'rename'],
    summary: `rename a ${kind}, updating what references it`,
    options: newNameOpts,
    async run(args, io) {
      const r = await io.client.rename(kind, mustName(args), newName(args));
      if (args.values['json'] === true) printJson(io, r);
      return 0;
    },
  };

  const remove: CommandSpec = {
    path: [kind, 'remove'],
    summary: `remove a ${kind}`,
    options: {
      name: NAME,
      recursive: { type: 'boolean', description: 'also remove what references it (profiles, sub-profiles, systems)' },
      json: JSON_OPT,
    },
    async run(args, io) {
      const r = await io.client.remove(kind, mustName(args), args.values['recursive'] === true);
      if (args.values['json'] === true) printJson(io, r);
      else if (r.removed.length > 1) for (const x of r.removed) io.out(`removed ${x}`);
      return 0;
    },
  };

  const list: CommandSpec = {
    path: [kind, 'list'],
    summary: `list ${plural}`,
    options: { json: JSON_OPT },
    async run(args, io) {
      // Streamed (api/objects.ts streamList): the first row prints before the last is read.
      if (args.values['json'] === true) await printJsonRows(io, (onRow) => io.client.listRows(kind, {}, onRow));
      else await eachName(io, kind, {}, (n) => io.out(`   ${n}`));
      return 0;
    },
  };

  const report: CommandSpec = {
    path: [kind, 'report'],
    summary: `show ${plural} in full (one with --name, else all)`,
    options: { name: NAME, json: JSON_OPT },
    async run(args, io) {
      const n = str(args, 'name');
      const objs: ForgeObject[] = n !== undefined ? [await io.client.get(kind, n)] : await io.client.list(kind);
      if (args.values['json'] === true) {
        printJson(io, n !== undefined ? objs[0] : objs);
        return 0;
      }
      objs.forEach((o, i) => {
        if (i > 0) io.out('');
        for (const l of formatReport(kind, o)) io.out(l);
      });
      return 0;
    },
  };

  const findOpts: Record<string, OptionSpec> = { name: { ...NAME, description: 'name (glob)' } };
  for (const [k, o] of Object.entries({ ...fopts, ...iopts })) {
    if (k === 'interface') continue;
    findOpts[k] = { ...o, description: `${o.description} (glob)` };
  }
  findOpts['json'] = JSON_OPT;
  const find: CommandSpec = {
    path: [kind, 'find'],
    summary: `find ${plural} whose fields match (globs * and ?)`,
    options: findOpts,
    help: `example: forge ${kind} find --name 'web*'${kind === 'system' ? ' --mac-address 52:54:00:*' : ''}`,
    async run(args, io) {
      const q = new URLSearchParams();
      for (const [flag, v] of Object.entries(args.values)) {
        if (typeof v !== 'string' || flag === 'server') continue;
        q.set(flag === 'mac' ? 'mac_address' : flag.replace(/-/g, '_'), v);
      }
      if ([...q.keys()].length === 0) throw new ForgeError('USAGE', 'give at least one field to match');
      const query = Object.fromEntries(q);
      if (args.values['json'] === true) await printJsonRows(io, (onRow) => eachName(io, kind, query, onRow));
      else await eachName(io, kind, query, (n) => io.out(n));
      return 0;
    },
  };

  const out = [add, edit, copy, rename, remove, list, report, find];
  if (kind === 'profile' || kind === 'system') {
    out.push({
      path: [kind, 'dumpvars'],
      summary: `show the blended variables of a ${kind} (what templates see)`,
      options: { name: NAME, json: JSON_OPT },
      async run(args, io) {
        const vars = await io.client.blended(kind, mustName(args));
        if (args.values['json'] === true) {
          printJson(io, vars);
          return 0;
        }
        for (const k of Object.keys(vars).sort()) io.out(`${k} : ${formatValue(vars[k])}`);
        return 0;
      },
    });
  }
  return out;
}

export const commands: CommandSpec[] = [...commandsFor('distro'), ...commandsFor('profile'), ...commandsFor('system'), ...commandsFor('subnet')];
