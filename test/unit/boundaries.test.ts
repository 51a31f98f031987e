/**
 * Pins the layering, like errors.test.ts pins the error catalogue: the rules
 * hold by test, not by discipline. Reads the TypeScript sources (not dist)
 * and resolves every import; a layer reaching where it should not fails here
 * with the file and the import. Changing a rule must be deliberate.
 *
 *   server/protocol/  codecs: import nothing of forge (node: builtins only)
 *   server/core/      pure: imports only core/ and server/errors.ts; no node: I/O
 *   server/ outside server/cli/ (services, store, api, ...) never imports the CLI;
 *                     main.ts is the composition root and may
 *   server/render/    never imports server/api/ (the catalog is shared, not the API)
 *   server/api/client.ts  the one API client (CLI and agent): at run time it imports
 *                     only the error catalogue, so the agent ships without the server
 *   agent/            reaches the server only through that client: from server/ it
 *                     imports the error catalogue, core/, api/client.ts, (types
 *                     only) api/types.ts, boot/debkernel.ts (Debian's linux-image
 *                     for the small systems both build, the rescue VM and the
 *                     discovery image) and boot/initramfs.ts (their one busybox
 *                     initramfs builder): those two use node builtins, the error
 *                     catalogue and each other only; no agent file names an /api/v1 path
 *   ui/               the web UI (bundled by esbuild): at run time it imports from
 *                     server/ only the shared client, the error catalogue and core/
 *                     (the event table), types only from api/types.ts; it declares
 *                     no type api/types.ts exports and no copy of the event stages,
 *                     and names no /api/v1 path but the event stream's (EventSource)
 *   typed events      outside the store, an event is stored only as a LifecycleEvent
 *                     (core/events.ts): store.addEvent takes lifecycleEvent(...) or the
 *                     typed recorder's event (main.ts); only events posted over the API
 *                     (api/events.ts) carry the poster's free detail
 *   one initramfs builder  only server/boot/initramfs.ts packs a cpio archive (the
 *                     discovery image, the rescue VM and test/lib/guest.ts call it)
 *   server/cli/       calls the API only through that client's typed methods (so do
 *                     the agent and the UI: no client.request(path) there either): no
 *                     fetch() of its own, no client.request(path) and no /api/v1
 *                     path, except the event stream's reader (events-client.ts)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** node: modules core/ may use: pure functions only (isIP), no sockets, files or processes. */
const CORE_NODE_ALLOWED = new Set(['node:net']);
/** The shared API client (CLI and agent). */
const API_CLIENT = 'server/api/client.ts';
/** What the agent may import from server/ besides core/. */
const AGENT_SERVER_ALLOWED = new Set(['server/errors.ts', API_CLIENT, 'server/api/types.ts', 'server/boot/debkernel.ts', 'server/boot/initramfs.ts']);
/** The small-system modules the agent ships: node builtins, the error catalogue and each other. */
const SMALL_SYSTEM = new Set(['server/boot/debkernel.ts', 'server/boot/initramfs.ts']);
/** The one initramfs builder. */
const INITRAMFS_BUILDER = 'server/boot/initramfs.ts';
/** What the agent may import only as types (erased: not shipped code). */
const AGENT_TYPES_ONLY = new Set(['server/api/types.ts']);
/** The CLI files that may call fetch(): the event stream reader (SSE, not request/answer). */
const CLI_FETCH_ALLOWED = new Set(['server/cli/events-client.ts']);

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
  /** `import type` / `export type`: erased at build, no run-time dependency. */
  typeOnly: boolean;
  /** Repository-relative .ts path for relative imports; the bare name otherwise. */
  target: string;
}

function withoutComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

function importsOf(file: string): Import[] {
  const src = withoutComments(readFileSync(join(ROOT, file), 'utf8'));
  const out: Import[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s([^'"]*?)from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of src.matchAll(re)) {
    const spec = (m[2] ?? m[3])!;
    const target = spec.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts') : spec;
    out.push({ file, spec, target, typeOnly: m[1] !== undefined && /^type\s/.test(m[1]) });
  }
  return out;
}

const ALL = [...sources('server'), ...sources('agent'), ...sources('ui')];
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

test('nothing below the CLI imports the CLI (services, store, api, ...; main.ts composes and may)', () => {
  assert.ok(IMPORTS.some((i) => i.file === 'server/services/http/boot.ts'), 'services are scanned');
  assert.deepEqual(
    violations((i) => i.file.startsWith('server/') && !i.file.startsWith('server/cli/') && i.file !== 'server/main.ts' && forge(i) && i.target.startsWith('server/cli/')),
    [],
  );
});

test('the shared API client needs nothing of the server at run time but the error catalogue', () => {
  const runtime = IMPORTS.filter((i) => i.file === API_CLIENT && !i.typeOnly);
  assert.ok(runtime.length > 0, 'the client is scanned');
  assert.deepEqual(runtime.filter((i) => i.target !== 'server/errors.ts').map((i) => `${i.file}: ${i.spec}`), []);
  assert.ok(IMPORTS.some((i) => i.file === API_CLIENT && i.typeOnly && i.target === 'server/api/types.ts'), 'its types come from api/types.ts');
});

test('the CLI calls the API only through the shared client', () => {
  assert.ok(IMPORTS.some((i) => i.file === 'server/cli/command.ts' && i.target === API_CLIENT), 'CliIO carries the shared client');
  const own = sources('server/cli')
    .filter((f) => !CLI_FETCH_ALLOWED.has(f) && /\bfetch\(/.test(withoutComments(readFileSync(join(ROOT, f), 'utf8'))))
    .map((f) => `${f} calls fetch()`);
  assert.deepEqual(own, []);
});

test('the CLI, the agent and the UI use typed client methods: no client.request(path); the CLI names no /api/v1 path of its own', () => {
  const raw = [...sources('server/cli').filter((f) => !CLI_FETCH_ALLOWED.has(f)), ...sources('agent'), ...sources('ui')].flatMap((f) => {
    const src = withoutComments(readFileSync(join(ROOT, f), 'utf8'));
    return [
      ...(/\.request\s*(<[^>]*>)?\s*\(/.test(src) ? [`${f} calls client.request(path)`] : []),
      ...(f.startsWith('server/cli/') && /['"`]\/api\/v1/.test(src) ? [`${f} names an /api/v1 path`] : []),
    ];
  });
  assert.deepEqual(raw, []);
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
  assert.deepEqual(violations((i) => i.file.startsWith('agent/') && forge(i) && AGENT_TYPES_ONLY.has(i.target) && !i.typeOnly), []);
  assert.ok(IMPORTS.some((i) => i.file === 'agent/api.ts' && i.target === API_CLIENT && !i.typeOnly), 'the agent uses the shared client');
  assert.deepEqual(violations((i) => i.file.startsWith('agent/') && !forge(i) && ['express', 'better-sqlite3', 'nunjucks'].includes(i.spec)), []);
  const paths = sources('agent')
    .filter((f) => /['"`]\/api\/v1/.test(withoutComments(readFileSync(join(ROOT, f), 'utf8'))))
    .map((f) => `${f} names an /api/v1 path`);
  assert.deepEqual(paths, []);
});

test('the small-system modules the agent ships (debkernel, initramfs) import only node builtins, the catalogue and each other', () => {
  assert.ok(IMPORTS.some((i) => i.file === 'agent/rescue.ts' && i.target === INITRAMFS_BUILDER), 'the rescue system uses the builder');
  assert.deepEqual(
    violations((i) => SMALL_SYSTEM.has(i.file) && (forge(i) ? i.target !== 'server/errors.ts' && !SMALL_SYSTEM.has(i.target) : !i.spec.startsWith('node:'))),
    [],
  );
});

test('one initramfs builder: only server/boot/initramfs.ts packs a cpio archive', () => {
  const users = ['server/discovery/image.ts', 'agent/rescue.ts', 'test/lib/guest.ts'];
  for (const f of users) assert.match(readFileSync(join(ROOT, f), 'utf8'), /writeInitramfs\(/, `${f} builds through writeInitramfs`);
  const packers = [...ALL, ...sources('test/lib'), ...sources('bench')]
    .filter((f) => f !== INITRAMFS_BUILDER && /cpio\s+-o|['"`]cpio['"`]\s*,\s*\[\s*['"`]-o/.test(withoutComments(readFileSync(join(ROOT, f), 'utf8'))))
    .map((f) => `${f} packs its own cpio archive`);
  assert.deepEqual(packers, []);
});

test('the web UI shares the server modules instead of copying them', () => {
  const ui = sources('ui');
  assert.ok(IMPORTS.some((i) => i.file === 'ui/app.ts' && i.target === API_CLIENT && !i.typeOnly), 'the UI uses the shared client');
  assert.ok(IMPORTS.some((i) => i.file === 'ui/app.ts' && i.target === 'server/core/events.ts' && !i.typeOnly), 'the UI reads the event table');
  const UI_RUNTIME = (t: string): boolean => t === API_CLIENT || t === 'server/errors.ts' || t.startsWith('server/core/') || t.startsWith('ui/');
  assert.deepEqual(violations((i) => i.file.startsWith('ui/') && (forge(i) ? (i.typeOnly ? !UI_RUNTIME(i.target) && i.target !== 'server/api/types.ts' : !UI_RUNTIME(i.target)) : true)), []);
  // The names api/types.ts exports, and the event types: the UI declares none of the first and maps none of the second to a stage.
  const typesSrc = withoutComments(readFileSync(join(ROOT, 'server/api/types.ts'), 'utf8'));
  const shared = new Set<string>();
  for (const m of typesSrc.matchAll(/export\s+type\s*\{([^}]*)\}/g)) for (const n of m[1]!.split(',')) if (n.trim() !== '') shared.add(n.trim().split(/\s+as\s+/).pop()!);
  for (const m of typesSrc.matchAll(/export\s+(?:interface|type)\s+([A-Za-z0-9_]+)/g)) shared.add(m[1]!);
  assert.ok(shared.has('ForgeEvent') && shared.has('StatusRow') && shared.size > 20, `api/types.ts exports read (${shared.size})`);
  const eventTypes = [...withoutComments(readFileSync(join(ROOT, 'server/core/events.ts'), 'utf8')).matchAll(/^\s{2}([a-z_]+): \{ stage:/gm)].map((m) => m[1]!);
  assert.ok(eventTypes.includes('dhcp_offer') && eventTypes.length > 20, `event types read (${eventTypes.length})`);
  const copies = ui.flatMap((f) => {
    const src = withoutComments(readFileSync(join(ROOT, f), 'utf8'));
    const own = [...src.matchAll(/\b(?:interface|type|class)\s+([A-Za-z0-9_]+)/g)].map((m) => m[1]!).filter((n) => shared.has(n));
    const stages = eventTypes.filter((t) => new RegExp(`\\b${t}['"]?\\s*:\\s*['"\`]`).test(src));
    const paths = [...src.matchAll(/['"`](\/api\/v1[^'"`]*)/g)].map((m) => m[1]!).filter((p) => p !== '/api/v1/events/stream');
    return [
      ...own.map((n) => `${f} declares its own ${n} (import it from server/api/types.ts)`),
      ...(stages.length > 0 ? [`${f} maps event types to stages itself (${stages.slice(0, 3).join(', ')}...): use server/core/events.ts`] : []),
      ...paths.map((p) => `${f} names ${p}: call the shared client`),
    ];
  });
  assert.deepEqual(copies, []);
});

test('events are stored typed: addEvent outside the store takes lifecycleEvent(...), save the typed recorder and API-posted events', () => {
  /** main.ts: the recorder (deps.ts RecordEvent takes a LifecycleEvent); api/events.ts: POST /api/v1/systems/NAME/events. */
  const ALLOWED = new Set(['server/main.ts', 'server/api/events.ts']);
  const calls = sources('server').filter((f) => !f.startsWith('server/store/')).flatMap((f) =>
    [...withoutComments(readFileSync(join(ROOT, f), 'utf8')).matchAll(/\.addEvent\(\s*([A-Za-z_]*)/g)].map((m) => ({ f, arg: m[1]! })),
  );
  assert.ok(calls.some((c) => c.f === 'server/power/service.ts'), 'recorders are scanned');
  assert.deepEqual(calls.filter((c) => !ALLOWED.has(c.f) && c.arg !== 'lifecycleEvent').map((c) => `${c.f}: addEvent(${c.arg}...) is not a lifecycleEvent(...)`), []);
});
