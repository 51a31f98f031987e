/** `forge export`, `forge import-data FILE`, `forge check`. */
import { readFileSync } from 'node:fs';
import { ForgeError } from '../../errors.js';
import type { CommandSpec } from '../command.js';

export const exportCmd: CommandSpec = {
  path: ['export'],
  summary: 'print every distro, profile and system as one JSON document (forge export > backup.json)',
  options: {},
  async run(_args, io) {
    io.out(JSON.stringify(await io.client.exportAll(), null, 2));
    return 0;
  },
};

export const importCmd: CommandSpec = {
  path: ['import-data'],
  summary: 'load a document written by forge export (all or nothing)',
  options: {
    file: { type: 'string', description: 'the export file (or give it as the argument; - reads stdin)', arg: 'FILE' },
    replace: { type: 'boolean', description: 'overwrite objects that already exist (default: refuse)' },
  },
  positionals: true,
  help: 'example: forge import-data backup.json',
  async run(args, io) {
    const file = typeof args.values['file'] === 'string' ? args.values['file'] : args.positionals[0];
    if (file === undefined) throw new ForgeError('USAGE', 'give the file to import', { field: 'file' });
    if (args.positionals.length > (typeof args.values['file'] === 'string' ? 0 : 1)) {
      throw new ForgeError('USAGE', 'give exactly one file');
    }
    let text: string;
    try {
      text = readFileSync(file === '-' ? 0 : file, 'utf8');
    } catch (e) {
      throw new ForgeError('USAGE', `cannot read ${file}: ${(e as Error).message}`, { field: 'file' });
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new ForgeError('BAD_JSON', `${file} is not valid JSON: ${(e as Error).message}`, { field: 'file' });
    }
    const r = await io.client.importAll(doc, args.values['replace'] === true);
    io.out(`imported ${r.imported.distros} distros, ${r.imported.profiles} profiles, ${r.imported.systems} systems`);
    return 0;
  },
};

export const checkCmd: CommandSpec = {
  path: ['check'],
  summary: 'report configuration problems (missing kernels, templates, broken profiles, ...); exit 8 on errors',
  options: { json: { type: 'boolean', description: 'machine-readable JSON output' } },
  async run(args, io) {
    const r = await io.client.check();
    // Templates: ask the renderer to render everything (missing templates and
    // snippets, undefined variables, syntax errors).
    try {
      const v = await io.client.validate();
      for (const e of v.errors) {
        r.problems.push({ severity: 'error', object: `${e.kind} ${e.name}`, field: 'autoinstall', message: `${e.code}: ${e.message}` });
      }
    } catch (e) {
      if (!(e instanceof ForgeError) || e.code !== 'ROUTE_NOT_FOUND') throw e;
    }
    if (args.values['json'] === true) io.out(JSON.stringify(r, null, 2));
    else if (r.problems.length === 0) io.out('No configuration problems found.');
    else {
      io.out('The following potential problems were detected:');
      r.problems.forEach((p, i) => io.out(`${i + 1}: ${p.severity}: ${p.object}${p.field !== undefined ? ` (${p.field})` : ''}: ${p.message}`));
    }
    return r.problems.some((p) => p.severity === 'error') ? 8 : 0;
  },
};

export const commands: CommandSpec[] = [exportCmd, importCmd, checkCmd];
