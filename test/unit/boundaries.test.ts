/**
 * Pins the layering, like errors.test.ts pins the error catalogue: the rules
 * hold by test, not by discipline. Reads the TypeScript sources (not dist)
 * and resolves every import; a layer reaching where it should not fails here
 * with the file and the import. Changing a rule must be deliberate.
 *
 *   server/protocol/  codecs: import nothing of forge (node: builtins only)
 *   server/core/      pure: imports only core/ and server/errors.ts; no node: I/O
 *   server/store/, server/render/, server/boot/, server/services/, server/api/
 *                     never import the CLI (server/cli/)
 *   server/render/    never imports server/api/ (the catalog is shared, not the API)
 *   agent/            reaches the server only through its API client: from
 *                     server/ it imports the error catalogue, core/ and the client;
 *                     no other agent file names an /api/v1 path
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** node: modules core/ may use: pure functions only (isIP), no sockets, files or processes. */
const CORE_NODE_ALLOWED = new Set(['node:net']);
/** The agent's API client: the one agent file that talks to the server's API. */
const AGENT_CLIENT = 'agent/api.ts';
/** What the agent may import from server/ besides core/. */
const AGENT_SERVER_ALLOWED = new Set(['server/errors.ts']);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir))) {
    const rel = `${dir}/${e}`;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (e.endsWith('.ts') && !e.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

interface Import {
  file: string;
  /** As written. */
  spec: string;
  /** Repository-relative .ts path for relative imports; the bare name otherwise. */
  target: string;
}

function withoutComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

function importsOf(file: string): Import[] {
  const src = withoutComments(readFileSync(join(ROOT, file), 'utf8'));
  const out: Import[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of src.matchAll(re)) {
    const spec = (m[1] ?? m[2])!;
    const target = spec.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts') : spec;
    out.push({ file, spec, target });
  }
  return out;
}

const ALL = [...sources('server'), ...sources('agent')];
const IMPORTS = ALL.flatMap(importsOf);
const forge = (i: Import): boolean => i.spec.startsWith('.');

function violations(pred: (i: Import) => boolean): string[] {
  return IMPORTS.filter(pred).map((i) => `${i.file}: ${i.spec}`);
}

test('the import scanner sees the tree (a broken scanner must not pass every rule)', () => {
  assert.ok(ALL.length > 100, `${ALL.length} source files`);
  assert.ok(IMPORTS.some((i) => i.file === 'server/main.ts' && i.target === 'server/store/sqlite.ts'), 'main.ts imports the store');
  assert.ok(IMPORTS.some((i) => i.file === 'server/cli/commands/serve.ts' && i.spec === '../../main.js'), 'dynamic imports are seen');
  for (const i of IMPORTS.filter(forge)) {
    assert.ok(ALL.includes(i.target) || i.target.endsWith('.json'), `${i.file}: ${i.spec} resolves to a source file (${i.target})`);
  }
});

test('protocol/ imports nothing of forge', () => {
  assert.deepEqual(violations((i) => i.file.startsWith('server/protocol/') && forge(i) && !i.target.startsWith('server/protocol/')), []);
});

test('core/ is pure: only core/ and the error catalogue, no node: I/O, no packages', () => {
  assert.deepEqual(
    violations(
      (i) =>
        i.file.startsWith('server/core/') &&
        (forge(i) ? !i.target.startsWith('server/core/') && i.target !== 'server/errors.ts' : !CORE_NODE_ALLOWED.has(i.spec)),
    ),
    [],
  );
});

test('nothing below the CLI imports the CLI', () => {
  const layers = ['server/store/', 'server/render/', 'server/boot/', 'server/services/', 'server/api/', 'server/core/', 'server/protocol/'];
  assert.deepEqual(violations((i) => layers.some((l) => i.file.startsWith(l)) && forge(i) && i.target.startsWith('server/cli/')), []);
});

test('render/ does not import the API', () => {
  assert.deepEqual(violations((i) => i.file.startsWith('server/render/') && forge(i) && i.target.startsWith('server/api/')), []);
});

test('the agent reaches the server only through its API client', () => {
  assert.deepEqual(
    violations(
      (i) =>
        i.file.startsWith('agent/') &&
        forge(i) &&
        i.target.startsWith('server/') &&
        !i.target.startsWith('server/core/') &&
        !AGENT_SERVER_ALLOWED.has(i.target),
    ),
    [],
  );
  assert.deepEqual(violations((i) => i.file.startsWith('agent/') && !forge(i) && ['express', 'better-sqlite3', 'nunjucks'].includes(i.spec)), []);
  const paths = sources('agent')
    .filter((f) => f !== AGENT_CLIENT && /['"`]\/api\/v1/.test(withoutComments(readFileSync(join(ROOT, f), 'utf8'))))
    .map((f) => `${f} names an /api/v1 path`);
  assert.deepEqual(paths, []);
});
