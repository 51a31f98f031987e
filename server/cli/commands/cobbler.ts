/**
 * Coming from Cobbler: `forge import-cobbler DIR` (objects and settings of a
 * Cobbler 3.x server) and Cobbler's direct commands forge users type out of
 * habit (`sync`, `validate-autoinstalls`, `report`, `list`).
 */
import { ForgeError } from '../../errors.js';
import type { ObjectKind } from '../../core/model.js';
import { validateNew } from '../../core/validate.js';
import { planImport } from '../../cobbler/import.js';
import type { ImportPlan, Unmapped } from '../../cobbler/import.js';
import { readCobblerDir } from '../../cobbler/read.js';
import { convertCheetah } from '../../cobbler/cheetah/convert.js';
import type { Leftover } from '../../cobbler/cheetah/convert.js';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { CliIO, CommandSpec } from '../command.js';

const KINDS: { kind: ObjectKind; key: 'distros' | 'profiles' | 'systems' }[] = [
  { kind: 'distro', key: 'distros' },
  { kind: 'profile', key: 'profiles' },
  { kind: 'system', key: 'systems' },
];

/** Validate every object here, so a dry run finds what the server would refuse. */
function validatePlan(plan: ImportPlan): string[] {
  const errors: string[] = [];
  for (const { kind, key } of KINDS) {
    for (const o of plan.doc[key]) {
      try {
        validateNew(kind, o, { keepTimes: true });
      } catch (e) {
        errors.push(`${kind} ${o.name}: ${(e as Error).message}`);
      }
    }
  }
  return errors;
}

async function existing(io: CliIO): Promise<string[]> {
  const out: string[] = [];
  for (const { kind } of KINDS) {
    out.push(...(await io.client.names(kind)).map((n) => `${kind} ${n}`));
  }
  return out;
}

function printUnmapped(io: CliIO, unmapped: Unmapped[]): void {
  if (unmapped.length === 0) {
    io.out('Every Cobbler field found a forge field.');
    return;
  }
  io.out(`Not mapped (${unmapped.length}), object by object:`);
  let last = '';
  for (const u of unmapped) {
    if (u.object !== last) io.out(`  ${u.object}`);
    last = u.object;
    io.out(`    ${u.field === '' ? '(whole object)' : u.field}${u.value !== '' ? ` = ${u.value}` : ''}: ${u.reason}`);
  }
}

export const importCobblerCmd: CommandSpec = {
  path: ['import-cobbler'],
  summary: 'import a Cobbler 3.x server: distros, profiles, systems, repos from its data dir (all or nothing); lists what it could not map',
  options: {
    settings: { type: 'string', description: 'Cobbler settings.yaml (default: DIR/settings.yaml when present; settings.d/ beside it is read too)', arg: 'FILE' },
    'dry-run': { type: 'boolean', description: 'map and check everything, report, import nothing' },
    json: { type: 'boolean', description: 'machine-readable JSON output' },
  },
  positionals: true,
  help: 'DIR is /var/lib/cobbler (or a copy of it): collections/{distros,profiles,systems,repos,menus}/*.json.\nexample: forge import-cobbler /var/lib/cobbler --settings /etc/cobbler/settings.yaml --dry-run',
  async run(args, io) {
    if (args.positionals.length !== 1) throw new ForgeError('USAGE', 'give the Cobbler data directory (e.g. /var/lib/cobbler)', { field: 'dir' });
    const dir = args.positionals[0]!;
    const settings = typeof args.values['settings'] === 'string' ? args.values['settings'] : undefined;
    const plan = planImport(readCobblerDir(dir, settings));
    const errors = validatePlan(plan);
    const dry = args.values['dry-run'] === true;
    const counts = { distros: plan.doc.distros.length, profiles: plan.doc.profiles.length, systems: plan.doc.systems.length };
    const json = args.values['json'] === true;
    if (errors.length > 0) {
      if (json) io.out(JSON.stringify({ imported: null, errors, unmapped: plan.unmapped, config: plan.config }, null, 2));
      else {
        printUnmapped(io, plan.unmapped);
        for (const e of errors) io.err(`invalid: ${e}`);
      }
      throw new ForgeError('INVALID_FIELD', `${errors.length} Cobbler objects do not validate as forge objects; nothing imported (first: ${errors[0]!})`);
    }
    let conflicts: string[] = [];
    if (dry) {
      const have = new Set(await existing(io));
      conflicts = KINDS.flatMap(({ kind, key }) => plan.doc[key].map((o) => `${kind} ${o.name}`)).filter((n) => have.has(n));
    } else {
      await io.client.importAll(plan.doc);
    }
    if (json) {
      io.out(JSON.stringify({ dry_run: dry, [dry ? 'would_import' : 'imported']: counts, ...(dry ? { conflicts } : {}), unmapped: plan.unmapped, config: plan.config }, null, 2));
    } else {
      io.out(`${dry ? 'would import' : 'imported'} ${counts.distros} distros, ${counts.profiles} profiles, ${counts.systems} systems`);
      if (conflicts.length > 0) io.out(`would conflict (already in forge; the import would change nothing): ${conflicts.join(', ')}`);
      printUnmapped(io, plan.unmapped);
      if (Object.keys(plan.config).length > 0) {
        io.out('forge serve configuration from Cobbler settings (for /etc/forge/forge.json):');
        io.out(JSON.stringify(plan.config, null, 2));
      }
    }
    return dry && conflicts.length > 0 ? 5 : 0;
  },
};

export const syncCmd: CommandSpec = {
  path: ['sync'],
  summary: 'Cobbler habit: nothing to sync (forge writes no boot files or DHCP config; every answer is made at request time)',
  options: {},
  async run(_args, io) {
    // Reach the server so a wrong --server still says so, as `cobbler sync` would.
    await io.client.health();
    io.out('forge has nothing to sync: PXE/iPXE/GRUB configs, DHCP answers and autoinstall files are generated when a');
    io.out('machine asks, from the objects as they are now. Changes are live at once; `forge check` reports problems.');
    return 0;
  },
};

export const validateAutoinstallsCmd: CommandSpec = {
  path: ['validate-autoinstalls'],
  summary: 'Cobbler habit: render every autoinstall file and report every error (same as forge validate)',
  options: { json: { type: 'boolean', description: 'machine-readable JSON output' } },
  async run(args, io) {
    const v = await io.client.validate();
    if (args.values['json'] === true) io.out(JSON.stringify(v, null, 2));
    else if (v.errors.length === 0) io.out('*** all autoinstall files rendered without errors ***');
    else for (const e of v.errors) io.out(`${e.kind} ${e.name}: ${e.code}: ${e.message}`);
    return v.errors.length === 0 ? 0 : 8;
  },
};

async function eachKind(io: CliIO, f: (kind: ObjectKind, objs: Record<string, unknown>[]) => void): Promise<void> {
  for (const { kind } of KINDS) f(kind, (await io.client.list(kind)) as unknown as Record<string, unknown>[]);
}

export const reportCmd: CommandSpec = {
  path: ['report'],
  summary: 'Cobbler habit: every distro, profile and system in full',
  options: { json: { type: 'boolean', description: 'machine-readable JSON output' } },
  async run(args, io) {
    const all: Record<string, Record<string, unknown>[]> = {};
    await eachKind(io, (kind, objs) => {
      all[`${kind}s`] = objs;
    });
    if (args.values['json'] === true) {
      io.out(JSON.stringify(all, null, 2));
      return 0;
    }
    for (const { kind, key } of KINDS) {
      for (const o of all[key] ?? []) {
        io.out(`${kind}: ${String(o['name'])}`);
        for (const [k, v] of Object.entries(o)) {
          if (k === 'name') continue;
          io.out(`  ${k.padEnd(22)}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
        }
        io.out('');
      }
    }
    return 0;
  },
};

export const listCmd: CommandSpec = {
  path: ['list'],
  summary: 'Cobbler habit: names of every distro, profile and system',
  options: { json: { type: 'boolean', description: 'machine-readable JSON output' } },
  async run(args, io) {
    const names: Record<string, string[]> = {};
    for (const { kind, key } of KINDS) names[key] = await io.client.names(kind);
    if (args.values['json'] === true) io.out(JSON.stringify(names, null, 2));
    else {
      for (const { key } of KINDS) {
        io.out(`${key}:`);
        for (const n of names[key] ?? []) io.out(`   ${n}`);
      }
    }
    return 0;
  },
};

function walk(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      const st = statSync(p);
      return st.isDirectory() ? walk(p) : st.isFile() ? [p] : [];
    });
}

export const templateConvertCmd: CommandSpec = {
  path: ['template', 'convert'],
  summary: 'convert Cobbler Cheetah templates and snippets to nunjucks; every part it cannot convert is marked in the output and listed (exit 3)',
  options: {
    out: { type: 'string', description: 'where to write: a file for FILE (default stdout), a directory for DIR (required)', arg: 'PATH' },
    json: { type: 'boolean', description: 'machine-readable JSON report' },
  },
  positionals: true,
  help:
    'Cobbler snippets go to the site snippets dir (forge serve --snippets-dir), templates to --templates-dir;\n' +
    '$SNIPPET(\'name\') becomes {% include "snippets/name" %}.\n' +
    'example: forge template convert /var/lib/cobbler/snippets --out /etc/forge/snippets',
  async run(args, io) {
    if (args.positionals.length !== 1) throw new ForgeError('USAGE', 'give one Cheetah file or directory', { field: 'path' });
    const src = args.positionals[0]!;
    let st;
    try {
      st = statSync(src);
    } catch (e) {
      throw new ForgeError('USAGE', `cannot read ${src}: ${(e as Error).message}`, { field: 'path' });
    }
    const out = typeof args.values['out'] === 'string' ? args.values['out'] : undefined;
    const files = st.isDirectory() ? walk(src) : [src];
    if (st.isDirectory() && out === undefined) throw new ForgeError('USAGE', 'converting a directory needs --out DIR', { field: 'out' });
    const report: { file: string; leftovers: Leftover[]; notes: { line: number; message: string }[] }[] = [];
    for (const f of files) {
      const r = convertCheetah(readFileSync(f, 'utf8'));
      const rel = st.isDirectory() ? relative(src, f) : f;
      if (out === undefined) io.out(r.text.replace(/\n$/, ''));
      else {
        const dest = st.isDirectory() ? join(out, rel) : out;
        mkdirSync(dirname(dest), { recursive: true });
        writeFileSync(dest, r.text);
      }
      report.push({ file: rel, leftovers: r.leftovers, notes: r.notes });
    }
    const left = report.reduce((n, r) => n + r.leftovers.length, 0);
    if (args.values['json'] === true) {
      const doc = JSON.stringify({ files: report, leftovers: left }, null, 2);
      if (out === undefined) io.err(doc);
      else io.out(doc);
    } else {
      const say = (l: string): void => (out === undefined ? io.err(l) : io.out(l));
      for (const r of report) {
        for (const l of r.leftovers) say(`${r.file}:${l.line}: not converted: ${l.reason}${l.source !== '' ? `: ${l.source.trim()}` : ''}`);
        for (const n of r.notes.filter((x) => x.message.startsWith('warning: '))) say(`${r.file}:${n.line}: ${n.message}`);
      }
      say(`${files.length} file(s) converted, ${left} part(s) left for a person (marked "CHEETAH line N" in the output)`);
    }
    return left === 0 ? 0 : 3;
  },
};

export const commands: CommandSpec[] = [templateConvertCmd, importCobblerCmd, syncCmd, validateAutoinstallsCmd, reportCmd, listCmd];
