#!/usr/bin/env node
/**
 * The `forge` command line. A registry of CommandSpecs (cli/commands/*.ts);
 * argv is parsed strictly with node:util parseArgs; `--help` works on every
 * command, on a subject (`forge system --help`) and on `forge` itself. A
 * thrown ForgeError becomes `forge: CODE: message` on stderr and the
 * catalogue's exit code (see EXIT in errors.ts, documented in the README).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { VERSION } from '../core/version.js';
import { EXIT, ForgeError } from '../errors.js';
import type { CliIO, CommandSpec, OptionSpec, ParsedArgs } from './command.js';
import { DEFAULT_SERVER, cliClient } from './connection.js';
import type { ApiClient } from '../api/client.js';
import { bashCompletion } from './completion.js';
import { commands as bootCommands } from './commands/boot.js';
import { commands as dataCommands } from './commands/data.js';
import { commands as objectCommands } from './commands/objects.js';
import { commands as renderCommands } from './commands/render.js';
import { commands as serveCommands } from './commands/serve.js';
import { commands as cobblerCommands } from './commands/cobbler.js';
import { commands as powerCommands } from './commands/power.js';
import { commands as discoveryCommands } from './commands/discovery.js';
import { commands as accessCommands } from './commands/access.js';

export const REGISTRY: CommandSpec[] = [
  ...objectCommands,
  ...dataCommands,
  ...serveCommands,
  ...renderCommands,
  ...bootCommands,
  ...cobblerCommands,
  ...powerCommands,
  ...discoveryCommands,
  ...accessCommands,
];

REGISTRY.push({
  path: ['completion'],
  summary: 'print the bash completion script (source it, or put it in /etc/bash_completion.d/forge)',
  help: 'example: forge completion bash > /etc/bash_completion.d/forge',
  options: {},
  positionals: true,
  async run(args, io) {
    const shell = args.positionals[0] ?? 'bash';
    if (shell !== 'bash') throw new ForgeError('USAGE', `completion: only bash is supported, not ${shell}`, { field: 'shell' });
    io.out(bashCompletion(REGISTRY).trimEnd());
    return EXIT.ok;
  },
});

const GLOBAL: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', description: 'show this help' },
  server: { type: 'string', description: `forge server URL (FORGE_SERVER, default ${DEFAULT_SERVER})`, arg: 'URL' },
};

function optionsOf(spec: CommandSpec): Record<string, OptionSpec> {
  const out: Record<string, OptionSpec> = { ...spec.options };
  for (const [k, v] of Object.entries(GLOBAL)) if (!(k in out)) out[k] = v;
  if (!('help' in spec.options)) out['help'] = GLOBAL['help']!;
  return out;
}

export function commandHelp(spec: CommandSpec): string {
  const opts = optionsOf(spec);
  const lines = [`usage: forge ${spec.path.join(' ')} [options]${spec.positionals === true ? ' [ARGS...]' : ''}`, '', spec.summary, '', 'options:'];
  const rows = Object.entries(opts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, o]) => {
      const flag = `${o.short !== undefined ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.bare !== undefined ? `[${o.arg ?? 'VALUE'}]` : (o.arg ?? 'VALUE')}` : ''}`;
      return [flag, o.description + (o.multiple === true ? ' (repeatable)' : '')] as const;
    });
  const w = Math.min(36, Math.max(...rows.map(([f]) => f.length)) + 2);
  // A flag wider than the column (a long value list) gets its description on
  // the next line, indented, instead of running into it.
  for (const [f, d] of rows) {
    if (f.length + 2 > w) lines.push(`  ${f}`, `  ${' '.repeat(w)}${d}`);
    else lines.push(`  ${f.padEnd(w)}${d}`);
  }
  if (spec.help !== undefined) lines.push('', spec.help.trimEnd());
  return lines.join('\n');
}

function subjects(registry: CommandSpec[]): Map<string, CommandSpec[]> {
  const m = new Map<string, CommandSpec[]>();
  for (const c of registry) {
    const key = c.path[0]!;
    m.set(key, [...(m.get(key) ?? []), c]);
  }
  return m;
}

export function globalHelp(registry: CommandSpec[]): string {
  const lines = [
    'usage: forge SUBJECT VERB [options]      (forge SUBJECT --help lists the verbs)',
    '',
    'forge: network install server (DHCP, TFTP, HTTP boot, autoinstall) in the line of Cobbler.',
    '',
    'commands:',
  ];
  const rows = registry.map((c) => [c.path.join(' '), c.summary] as const).sort(([a], [b]) => a.localeCompare(b));
  const w = Math.max(...rows.map(([p]) => p.length)) + 2;
  for (const [p, s] of rows) lines.push(`  ${p.padEnd(w)}${s}`);
  lines.push(
    '',
    'global options: --server URL (FORGE_SERVER), --help; forge --version',
    'token: FORGE_TOKEN, else DATA_DIR/token (FORGE_DATA_DIR, default /var/lib/forge or ~/.local/share/forge)',
    'exit codes: ' + Object.entries(EXIT).map(([k, v]) => `${v} ${k}`).join(', '),
  );
  return lines.join('\n');
}

function subjectHelp(subject: string, cmds: CommandSpec[]): string {
  const lines = [`usage: forge ${subject} VERB [options]`, '', 'verbs:'];
  const rows = cmds.map((c) => [c.path.slice(1).join(' '), c.summary] as const);
  const w = Math.max(...rows.map(([p]) => p.length)) + 2;
  for (const [p, s] of rows) lines.push(`  ${p.padEnd(w)}${s}`);
  lines.push('', `forge ${subject} VERB --help shows the options of a verb.`);
  return lines.join('\n');
}

export interface RunOptions {
  out?: (line: string) => void;
  err?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  registry?: CommandSpec[];
}

/**
 * Gives bare true|false options their value (`--dhcp-force` -> `--dhcp-force
 * true`) so parseArgs, which needs a value for a string option, accepts them.
 * An option is bare when it ends argv or the next word is another option;
 * everything after `--` is left alone.
 */
export function fillBareValues(args: readonly string[], options: Record<string, OptionSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    out.push(a);
    if (a === '--') {
      out.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a.includes('=')) continue;
    const bare = options[a.slice(2)]?.bare;
    if (bare === undefined) continue;
    const next = args[i + 1];
    if (next === undefined || next.startsWith('-')) out.push(bare);
  }
  return out;
}

/** Runs one command line; returns the exit code (never throws). */
export async function runCli(argv: string[], opts: RunOptions = {}): Promise<number> {
  const out = opts.out ?? ((l: string) => void process.stdout.write(l + '\n'));
  const err = opts.err ?? ((l: string) => void process.stderr.write(l + '\n'));
  const env = opts.env ?? process.env;
  const registry = opts.registry ?? REGISTRY;

  if (argv[0] === '--version' || argv[0] === 'version') {
    out(`forge ${VERSION}`);
    return EXIT.ok;
  }
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    out(globalHelp(registry));
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  // Longest command path that prefixes argv.
  let spec: CommandSpec | undefined;
  for (const c of registry) {
    if (c.path.length <= argv.length && c.path.every((w, i) => argv[i] === w)) {
      if (spec === undefined || c.path.length > spec.path.length) spec = c;
    }
  }
  if (spec === undefined) {
    const subj = subjects(registry).get(argv[0]!);
    if (subj !== undefined) {
      const asked = argv.slice(1).some((a) => a === '--help' || a === '-h');
      if (asked || argv.length === 1) {
        out(subjectHelp(argv[0]!, subj));
        return asked ? EXIT.ok : EXIT.usage;
      }
      err(`forge: USAGE: unknown verb "${argv[1]}" for ${argv[0]} (verbs: ${subj.map((c) => c.path.slice(1).join(' ')).join(', ')})`);
      return EXIT.usage;
    }
    err(`forge: USAGE: unknown command "${argv[0]}" (see forge --help)`);
    return EXIT.usage;
  }

  const options = optionsOf(spec);
  let parsed: ParsedArgs;
  try {
    const r = parseArgs({
      args: fillBareValues(argv.slice(spec.path.length), options),
      options: Object.fromEntries(
        Object.entries(options).map(([k, o]) => [
          k,
          { type: o.type, ...(o.multiple === true ? { multiple: true } : {}), ...(o.short !== undefined ? { short: o.short } : {}) },
        ]),
      ),
      strict: true,
      allowPositionals: spec.positionals === true,
    });
    parsed = { values: r.values as ParsedArgs['values'], positionals: r.positionals };
  } catch (e) {
    err(`forge: USAGE: ${(e as Error).message.split('\n')[0]} (see forge ${spec.path.join(' ')} --help)`);
    return EXIT.usage;
  }
  if (parsed.values['help'] === true) {
    out(commandHelp(spec));
    return EXIT.ok;
  }

  const serverFlag = 'server' in spec.options ? undefined : parsed.values['server'];
  const server =
    typeof serverFlag === 'string' && serverFlag !== ''
      ? serverFlag
      : env['FORGE_SERVER'] !== undefined && env['FORGE_SERVER'] !== ''
        ? env['FORGE_SERVER']
        : DEFAULT_SERVER;
  let client: ApiClient | undefined;
  const io: CliIO = {
    out,
    err,
    env,
    server,
    // Built at first use: commands that never call the server never read the token file.
    get client(): ApiClient {
      client ??= cliClient(server, env);
      return client;
    },
  };
  try {
    return await spec.run(parsed, io);
  } catch (e) {
    if (e instanceof ForgeError) {
      err(`forge: ${e.code}: ${e.message}${e.field !== undefined && !e.message.startsWith(e.field) ? ` (field: ${e.field})` : ''}`);
      return e.exit;
    }
    err(`forge: INTERNAL: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return EXIT.internal;
  }
}

function isMain(): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const code = await runCli(process.argv.slice(2));
  process.exitCode = code;
}
