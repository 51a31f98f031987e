/**
 * The renderer's contract, on template trees built in temp dirs: strict
 * errors carry file + line, missing snippets and path escapes are refused,
 * site dirs shadow shipped ones, snippet overrides follow Cobbler's order,
 * the compiled-template cache follows file edits.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { realpathSync } from 'node:fs';
import { ForgeError } from '../../server/errors.js';
import { Renderer, type RenderTarget } from '../../server/render/renderer.js';
import type { RenderRoots } from '../../server/render/roots.js';

let tmp: string;
let roots: RenderRoots;
const T: RenderTarget = { kind: 'system', name: 'vm9', system: 'vm9', profiles: ['web', 'base'], distro: 'deb12' };

function put(rel: string, text: string): string {
  const p = join(tmp, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  return realpathSync(p);
}

function fails(fn: () => unknown): ForgeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ForgeError, `expected a ForgeError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error, got a rendered file');
}

const details = (e: ForgeError): { file: string; line?: number; column?: number } => e.details as { file: string; line?: number; column?: number };

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fgrender-'));
  roots = {
    templates: [
      { dir: join(tmp, 'site/templates'), origin: 'site' },
      { dir: join(tmp, 'ship/templates'), origin: 'shipped' },
    ],
    snippets: [
      { dir: join(tmp, 'site/snippets'), origin: 'site' },
      { dir: join(tmp, 'ship/snippets'), origin: 'shipped' },
    ],
  };
  put('ship/templates/ok.ks', 'host {{ hostname }}\n{% include "snippets/net" %}\nend\n');
  put('ship/snippets/net', 'net shared {{ hostname }}\n');
  put('ship/templates/undef.ks', 'line one\nline two {{ hostname }}\nline three {{ nosuchvar }}\n');
  put('ship/templates/undef-in-snippet.ks', 'a\n{% include "snippets/bad" %}\n');
  put('ship/snippets/bad', 'x\ny\nz {{ missing.deeper }}\n');
  put('ship/templates/missing-snippet.ks', 'a\nb\n{% include "snippets/not_there" %}\n');
  put('ship/templates/syntax.ks', 'a\nb\n{% if hostname %}\nno endif\n');
  put('ship/templates/syntax-in-snippet.ks', '{% include "snippets/broken" %}\n');
  put('ship/snippets/broken', 'ok\n{{ hostname | }}\n');
  put('ship/templates/fail.ks', 'a\n  {{ fail("no tree configured") }}\n');
  put('ship/templates/escape.ks', '{% include "../../ship/snippets/net" %}\n');
  put('ship/templates/escape-snippet.ks', '{% include "snippets/../../x" %}\n');
  put('outside/secret', 'secret\n');
  mkdirSync(join(tmp, 'ship/templates/links'), { recursive: true });
  symlinkSync(join(tmp, 'outside/secret'), join(tmp, 'ship/templates/links/secret.ks'));
  put('ship/templates/guarded.ks', '{{ nosuch | default("dflt") }} {% if other is defined %}{{ other }}{% endif %}\n');
  put('ship/templates/order.ks', '{% include "snippets/part" %}');
});

after(() => rmSync(tmp, { recursive: true, force: true }));

describe('strict rendering', () => {
  test('a good template renders whole and reports the snippets it used', () => {
    const r = new Renderer(roots);
    const out = r.render('ok.ks', { hostname: 'vm9.lab' }, T);
    assert.equal(out.text, 'host vm9.lab\nnet shared vm9.lab\nend\n');
    assert.equal(out.template.origin, 'shipped');
    assert.deepEqual(out.snippets.map((s) => [s.name, s.level, s.origin]), [['net', 'shared', 'shipped']]);
  });

  test('an undefined variable is TEMPLATE_ERROR with file, line and the expression', () => {
    const e = fails(() => new Renderer(roots).render('undef.ks', { hostname: 'h' }, T));
    assert.equal(e.code, 'TEMPLATE_ERROR');
    assert.equal(details(e).file, realpathSync(join(tmp, 'ship/templates/undef.ks')));
    assert.equal(details(e).line, 3);
    assert.match(e.message, /undef\.ks:3:\d+: undefined variable or value in \{\{ nosuchvar \}\}/);
  });

  test('an undefined value inside a snippet names the snippet file and its line', () => {
    const e = fails(() => new Renderer(roots).render('undef-in-snippet.ks', {}, T));
    assert.equal(e.code, 'TEMPLATE_ERROR');
    assert.equal(details(e).file, realpathSync(join(tmp, 'ship/snippets/bad')));
    assert.equal(details(e).line, 3);
    assert.match(e.message, /\{\{ missing\.deeper \}\}/);
  });

  test('a missing snippet is TEMPLATE_NOT_FOUND at the include line', () => {
    const e = fails(() => new Renderer(roots).render('missing-snippet.ks', {}, T));
    assert.equal(e.code, 'TEMPLATE_NOT_FOUND');
    assert.equal(details(e).file, realpathSync(join(tmp, 'ship/templates/missing-snippet.ks')));
    assert.equal(details(e).line, 3);
    assert.match(e.message, /missing-snippet\.ks:3: snippet "not_there" not found/);
  });

  test('a syntax error is TEMPLATE_ERROR with file and line, in templates and snippets', () => {
    const e = fails(() => new Renderer(roots).render('syntax.ks', { hostname: 'h' }, T));
    assert.equal(e.code, 'TEMPLATE_ERROR');
    assert.equal(details(e).file, realpathSync(join(tmp, 'ship/templates/syntax.ks')));
    assert.ok(typeof details(e).line === 'number' && details(e).line! >= 3, `line ${String(details(e).line)}`);
    const e2 = fails(() => new Renderer(roots).render('syntax-in-snippet.ks', { hostname: 'h' }, T));
    assert.equal(e2.code, 'TEMPLATE_ERROR');
    assert.equal(details(e2).file, realpathSync(join(tmp, 'ship/snippets/broken')));
    assert.equal(details(e2).line, 2);
  });

  test('fail("...") in a template is an error at its line with the message', () => {
    const e = fails(() => new Renderer(roots).render('fail.ks', {}, T));
    assert.equal(e.code, 'TEMPLATE_ERROR');
    assert.equal(details(e).line, 2);
    assert.match(e.message, /fail\.ks:2:\d+: no tree configured$/);
  });

  test('guards (is defined, default) keep optional variables optional', () => {
    assert.equal(new Renderer(roots).render('guarded.ks', {}, T).text, 'dflt ');
  });

  test('a missing top-level template is TEMPLATE_NOT_FOUND', () => {
    assert.equal(fails(() => new Renderer(roots).render('nope.ks', {}, T)).code, 'TEMPLATE_NOT_FOUND');
  });
});

describe('confinement', () => {
  for (const name of ['../ship/templates/ok.ks', '/etc/passwd', 'a/../../x', 'a\\b', 'a\0b', './ok.ks', '']) {
    test(`template name ${JSON.stringify(name)} is refused`, () => {
      assert.equal(fails(() => new Renderer(roots).render(name, {}, T)).code, 'TEMPLATE_PATH');
    });
  }
  test('an include with .. is refused', () => {
    assert.equal(fails(() => new Renderer(roots).render('escape.ks', {}, T)).code, 'TEMPLATE_PATH');
    assert.equal(fails(() => new Renderer(roots).render('escape-snippet.ks', {}, T)).code, 'TEMPLATE_PATH');
  });
  test('a symlink whose target leaves the root is refused', () => {
    const e = fails(() => new Renderer(roots).render('links/secret.ks', {}, T));
    assert.equal(e.code, 'TEMPLATE_PATH');
    assert.match(e.message, /outside its root/);
  });
});

describe('shadowing and snippet override order', () => {
  test('per_system > per_profile (nearest first) > per_distro > shared; site before shipped at each level', () => {
    const r = new Renderer(roots);
    const render = (): string => r.render('order.ks', {}, T).text;
    put('ship/snippets/part', 'shipped shared');
    assert.equal(render(), 'shipped shared');
    put('site/snippets/part', 'site shared');
    assert.equal(render(), 'site shared');
    put('ship/snippets/per_distro/part/deb12', 'shipped distro');
    assert.equal(render(), 'shipped distro');
    put('site/snippets/per_distro/part/deb12', 'site distro');
    assert.equal(render(), 'site distro');
    put('site/snippets/per_profile/part/base', 'parent profile');
    assert.equal(render(), 'parent profile');
    put('site/snippets/per_profile/part/web', 'profile');
    assert.equal(render(), 'profile');
    put('site/snippets/per_system/part/vm9', 'system');
    assert.equal(render(), 'system');
    const used = r.render('order.ks', {}, T).snippets[0]!;
    assert.deepEqual([used.level, used.for, used.origin], ['per_system', 'vm9', 'site']);
    // Another system falls back to the profile override.
    assert.equal(r.render('order.ks', {}, { ...T, name: 'vm10', system: 'vm10' }).text, 'profile');
  });

  test('a site template shadows the shipped one of the same name', () => {
    put('site/templates/shadow.ks', 'site');
    put('ship/templates/shadow.ks', 'shipped');
    const r = new Renderer(roots);
    assert.equal(r.render('shadow.ks', {}, T).text, 'site');
    const listed = r.listTemplates().find((t) => t.name === 'shadow.ks');
    assert.equal(listed?.origin, 'site');
    assert.equal(listed?.shadows.length, 1);
  });
});

describe('cache', () => {
  test('compiled templates are reused, and an edit is picked up at the next render', () => {
    const r = new Renderer(roots);
    const file = put('ship/templates/cached.ks', 'v1 {{ x }}');
    assert.equal(r.render('cached.ks', { x: 1 }, T).text, 'v1 1');
    const size = r.cacheSize;
    assert.equal(r.render('cached.ks', { x: 2 }, T).text, 'v1 2');
    assert.equal(r.cacheSize, size);
    writeFileSync(file, 'v2 {{ x }}');
    // Same size: make sure the mtime differs even on coarse clocks.
    const future = new Date(Date.now() + 5000);
    utimesSync(file, future, future);
    assert.equal(r.render('cached.ks', { x: 3 }, T).text, 'v2 3');
  });
});
