/**
 * `forge` commands of the render area:
 *   forge system get-autoinstall --name N     the rendered file, as an installer would get it
 *   forge profile get-autoinstall --name N
 *   forge validate                            render every profile and system, list every error
 *   forge template list                       templates and snippets, site vs shipped, shadowing
 *   forge template show NAME                  the file in effect for a template (or --snippet) and its text
 *   forge template show --system N | --profile N   template and snippet overrides in effect
 * All through the HTTP API (server/render/routes.ts).
 */
import { ForgeError } from '../../errors.js';
import type { TemplateEntry } from '../../render/renderer.js';
import type { CommandSpec, OptionSpec, ParsedArgs } from '../command.js';

const NAME: OptionSpec = { type: 'string', description: 'object name', arg: 'NAME' };
const JSON_OPT: OptionSpec = { type: 'boolean', description: 'machine-readable JSON output' };


function str(args: ParsedArgs, key: string): string {
  const v = args.values[key];
  return typeof v === 'string' ? v : '';
}

function mustName(args: ParsedArgs): string {
  const n = str(args, 'name');
  if (n === '') throw new ForgeError('USAGE', '--name is required', { field: 'name' });
  return n;
}

function getAutoinstall(kind: 'system' | 'profile'): CommandSpec {
  return {
    path: [kind, 'get-autoinstall'],
    summary: `print the rendered autoinstall file (kickstart, preseed, AutoYaST) of a ${kind}`,
    options: { name: NAME },
    async run(args, io) {
      // Answered as text/plain whatever the format (preview route).
      const s = await io.client.autoinstall(kind, mustName(args));
      // io.out adds a newline; keep the file byte-exact.
      io.out(s.endsWith('\n') ? s.slice(0, -1) : s);
      return 0;
    },
  };
}

/** `--progress SECONDS`: 0 (none), or 0.1..60 (the server's bounds, services/http/limits.ts PROGRESS_MS). */
function progressSeconds(args: ParsedArgs): number {
  const v = str(args, 'progress');
  if (v === '') return 2;
  const n = Number(v);
  if (!Number.isFinite(n) || (n !== 0 && (n < 0.1 || n > 60))) throw new ForgeError('USAGE', `--progress: must be 0 (none) or 0.1..60 seconds (got "${v}")`, { field: 'progress' });
  return n;
}

/** One progress line of a long validate on stderr (stdout keeps the answer alone). */
export function progressLine(done: number, total: number): string {
  const n = (x: number): string => x.toLocaleString('en');
  return total > 0 ? `validated ${n(done)}/${n(total)}` : `validated ${n(done)}`;
}

const validate: CommandSpec = {
  path: ['validate'],
  summary: 'render the autoinstall file of every profile and system, check it with its installer\'s rules, report every error',
  help: 'Each file is also checked the way its installer would read it (kickstart: pykickstart\'s duplicate and option rules for the os_version; AutoYaST: the schema\'s required content; user-data: cloud-config and the subiquity autoinstall schema; Agama: its profile schema). exit status: 0 when everything renders and passes, 8 when at least one object fails (each failure is listed).',
  options: {
    json: JSON_OPT,
    progress: { type: 'string', description: 'seconds between progress lines on stderr ("validated 40,000/100,000"; default 2, 0: none)', arg: 'SECONDS' },
  },
  async run(args, io) {
    const every = progressSeconds(args);
    const r = every === 0 ? await io.client.validate() : await io.client.validate((done, total) => io.err(progressLine(done, total)), Math.round(every * 1000));
    if (args.values['json'] === true) io.out(JSON.stringify(r, null, 2));
    else {
      for (const e of r.errors) io.err(`${e.kind} ${e.name}: ${e.code}: ${e.message}`);
      io.out(`${r.checked} checked, ${r.errors.length} failed`);
    }
    if (!r.ok) throw new ForgeError('VALIDATION_FAILED', `${r.errors.length} of ${r.checked} autoinstall files failed to render or to pass their installer's checks`);
    return 0;
  },
};

const templateList: CommandSpec = {
  path: ['template', 'list'],
  summary: 'list templates and snippets: the file in effect (site or shipped) and what it shadows',
  options: { json: JSON_OPT },
  async run(args, io) {
    const r = await io.client.templates();
    if (args.values['json'] === true) {
      io.out(JSON.stringify(r, null, 2));
      return 0;
    }
    const show = (title: string, xs: TemplateEntry[]): void => {
      io.out(`${title}:`);
      for (const x of xs) {
        io.out(`  ${x.name.padEnd(40)} ${x.origin.padEnd(8)} ${x.file}`);
        for (const s of x.shadows) io.out(`  ${''.padEnd(40)} shadows  ${s}`);
      }
    };
    show('templates', r.templates);
    show('snippets', r.snippets);
    return 0;
  },
};

const templateShow: CommandSpec = {
  path: ['template', 'show'],
  summary: 'show which template file and snippet overrides are in effect (for a system/profile), or one template',
  help: [
    'examples:',
    '  forge template show --system vm9        template and each snippet in effect, with the lookup order',
    '  forge template show kickstart/default.ks   the file in effect and its text',
    '  forge template show --snippet kickstart/network',
  ].join('\n'),
  positionals: true,
  options: {
    system: { type: 'string', description: 'system to explain', arg: 'NAME' },
    profile: { type: 'string', description: 'profile to explain', arg: 'NAME' },
    snippet: { type: 'boolean', description: 'NAME is a snippet, not a template' },
    verbose: { type: 'boolean', description: 'with --system/--profile: also print where each snippet was looked for, in order' },
    json: JSON_OPT,
  },
  async run(args, io) {
    const system = str(args, 'system');
    const profile = str(args, 'profile');
    const name = args.positionals[0] ?? '';
    if ([system, profile, name].filter((x) => x !== '').length !== 1) {
      throw new ForgeError('USAGE', 'give exactly one of --system NAME, --profile NAME or a template NAME');
    }
    if (name !== '') {
      const r = await io.client.templateFile(name, args.values['snippet'] === true);
      if (args.values['json'] === true) io.out(JSON.stringify(r, null, 2));
      else {
        io.out(`# ${r.name}: ${r.file} (${r.origin})`);
        io.out(r.content.endsWith('\n') ? r.content.slice(0, -1) : r.content);
      }
      return 0;
    }
    const r = await io.client.effectiveTemplates(system !== '' ? 'system' : 'profile', system !== '' ? system : profile);
    if (args.values['json'] === true) {
      io.out(JSON.stringify(r, null, 2));
    } else {
      io.out(`template ${r.template_name}: ${r.template !== undefined ? `${r.template.file} (${r.template.origin})` : 'NOT FOUND'}`);
      for (const s of r.snippets) {
        const lvl = s.level === 'shared' ? 'shared' : `${s.level} ${s.for ?? ''}`.trim();
        io.out(`  snippet ${s.name.padEnd(32)} ${lvl.padEnd(24)} ${s.origin.padEnd(8)} ${s.file}`);
        if (args.values['verbose'] === true) for (const l of s.lookup) io.out(`      lookup ${l}`);
      }
    }
    if (r.error !== undefined) {
      io.err(`render error: ${r.error.code}: ${r.error.message}`);
      return 8;
    }
    return 0;
  },
};

export const commands: CommandSpec[] = [getAutoinstall('system'), getAutoinstall('profile'), validate, templateList, templateShow];

