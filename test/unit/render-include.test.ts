/**
 * The renderer's includes share the includer's variables instead of copying
 * them (render/include.ts). Each case here renders through that default
 * path and through stock nunjucks (Renderer copyIncludes: true: Template#render,
 * which copies every variable at every include) and requires the same bytes,
 * or the same error message, file and line:
 * - every golden case (test/golden/render) of every format;
 * - the store bench's systems (bench/core.ts system(n): the data `forge
 *   validate` is measured on) under every shipped template and breed;
 * - the cases where sharing could differ: a snippet's top-level set
 *   shadowing the includer's variable (must not leak out), a set in the
 *   includer after an include, includes in loops, nested includes reading a
 *   set from the level above, a macro and an import with context inside a
 *   snippet, an included template that extends another, errors raised
 *   two includes deep.
 * The caller's variable object is never written.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ForgeError } from '../../server/errors.js';
import { Renderer, type RenderTarget } from '../../server/render/renderer.js';
import { shippedRoots, type RenderRoots } from '../../server/render/roots.js';
import { templateContext } from '../../server/render/vars.js';
import { blendSystem } from '../../server/core/blend.js';
import { BREEDS } from '../../server/core/model.js';
import { validateNew } from '../../server/core/validate.js';
import { defaults } from '../../server/config.js';
import { settingsFromConfig } from '../../server/settings-from-config.js';
import { system as benchSystem } from '../../bench/core.js';
import { goldenRoots, renderAll } from '../lib/render-golden.js';

/** Text, or the error's code, message and place: what a caller of render() can observe. */
function outcome(r: Renderer, name: string, vars: Record<string, unknown>, target: RenderTarget): string {
  try {
    const res = r.render(name, vars, target);
    return `ok\n${res.template.file}\n${res.snippets.map((s) => `${s.name}:${s.file}:${s.level}`).join(',')}\n${res.text}`;
  } catch (e) {
    if (!(e instanceof ForgeError)) throw e;
    return `error ${e.code}\n${e.message}\n${JSON.stringify(e.details)}`;
  }
}

test('every golden case renders the same bytes with and without the include copy', () => {
  const shared = renderAll(new Renderer(goldenRoots()));
  const stock = renderAll(new Renderer(goldenRoots(), { copyIncludes: true }));
  assert.ok(shared.length >= 30, `only ${shared.length} golden cases`);
  assert.equal(shared.length, stock.length);
  for (let i = 0; i < shared.length; i++) {
    const a = shared[i]!;
    const b = stock[i]!;
    assert.equal(`${a.dir}/${a.id}`, `${b.dir}/${b.id}`);
    assert.equal(a.text, b.text, `${a.dir}/${a.id}`);
    assert.deepEqual(a.snippets, b.snippets, `${a.dir}/${a.id}`);
  }
});

test("the store bench's systems render the same under every shipped template and breed", () => {
  const settings = settingsFromConfig(defaults());
  const shared = new Renderer(shippedRoots());
  const stock = new Renderer(shippedRoots(), { copyIncludes: true });
  const templates = shared.listTemplates().map((t) => t.name);
  assert.ok(templates.length >= 10, templates.join(' '));
  let rendered = 0;
  for (const breed of BREEDS) {
    const d = validateNew('distro', { name: 'd', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd', breed });
    const p = validateNew('profile', { name: 'p', distro: 'd', kernel_options: 'console=ttyS0' });
    for (const n of [0, 1, 255, 65_537, 999_999]) {
      const sys = validateNew('system', benchSystem(n));
      const vars = templateContext(blendSystem(sys, [p], d, settings));
      const before = JSON.stringify(vars);
      const target: RenderTarget = { kind: 'system', name: sys.name, system: sys.name, profiles: ['p'], distro: 'd' };
      for (const t of templates) {
        const a = outcome(shared, t, vars, target);
        assert.equal(a, outcome(stock, t, vars, target), `${breed} ${sys.name} ${t}`);
        if (a.startsWith('ok')) rendered++;
      }
      assert.equal(JSON.stringify(vars), before, 'the caller\'s variables were written');
    }
  }
  // Most combinations render (a template for another installer may refuse this breed's variables: equally both ways).
  assert.ok(rendered >= BREEDS.length * 5 * 8, `only ${rendered} rendered`);
});

let tmp: string;
let roots: RenderRoots;
const T: RenderTarget = { kind: 'system', name: 'vm1', system: 'vm1', profiles: ['p'], distro: 'd' };

function put(rel: string, text: string): void {
  const p = join(tmp, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fginclude-'));
  roots = { templates: [{ dir: join(tmp, 'templates'), origin: 'shipped' }], snippets: [{ dir: join(tmp, 'snippets'), origin: 'shipped' }] };
  // A snippet that sets a name the includer also has: inside it the new value, outside the old.
  put('snippets/shadow', '{% set host = "inner-" + host %}in:{{ host }}\n{% include "snippets/reader" %}');
  put('snippets/reader', 'reader:{{ host }} {{ extra | default("none") }}\n');
  put('templates/shadow.ks', 'before:{{ host }}\n{% include "snippets/shadow" %}\nafter:{{ host }}\n{% set extra = "late" %}{% include "snippets/reader" %}{% include "snippets/shadow" %}\nend:{{ host }}\n');
  // Includes in a loop see the loop variable (frame) and the context.
  put('snippets/item', '{% set seen = (seen | default("")) + i %}item {{ i }} of {{ host }} seen={{ seen }}\n');
  put('templates/loop.ks', '{% for i in [1, 2, 3] %}{% include "snippets/item" %}{% endfor %}seen after: {{ seen | default("unset") }}\n');
  // A macro defined in a snippet, and an import with context inside a snippet.
  put('snippets/macro', '{% macro tag(x) %}<{{ x }}@{{ host }}>{% endmacro %}{{ tag("a") }}{{ tag(host) }}\n');
  put('templates/lib.j2', '{% macro show() %}lib sees {{ host }} {{ extra | default("-") }}{% endmacro %}');
  put('snippets/importer', '{% import "lib.j2" as lib with context %}{{ lib.show() }}\n{% from "lib.j2" import show with context %}{{ show() }}\n');
  put('templates/macro.ks', '{% set extra = "x" %}{% include "snippets/macro" %}{% include "snippets/importer" %}{{ host }}\n');
  // An included template that extends another (the base's sets run on the include's context).
  put('templates/base.j2', '{% set fromBase = "b" %}[{% block body %}base{% endblock %}]{{ fromBase }}\n');
  put('templates/child.j2', '{% extends "base.j2" %}{% block body %}child {{ host }}{% endblock %}');
  put('templates/extends.ks', '{% include "child.j2" %}{{ fromBase | default("not leaked") }}\n');
  // Errors two includes deep: an undefined value, a fail(), a missing snippet.
  put('snippets/deep-undef', 'x\n{{ nosuch }}\n');
  put('snippets/deep-fail', '{{ fail("refused: " + host) }}');
  put('snippets/deep-missing', 'a\n{% include "snippets/none" %}\n');
  put('snippets/middle', '{% set host = "m" %}{% include "snippets/" + which %}\n');
  put('templates/deep.ks', 'top\n{% include "snippets/middle" %}\n');
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('edge cases: sets that shadow, loops, macros, imports, extends render the same bytes both ways', () => {
  const shared = new Renderer(roots);
  const stock = new Renderer(roots, { copyIncludes: true });
  for (const t of ['shadow.ks', 'loop.ks', 'macro.ks', 'extends.ks']) {
    const vars = { host: 'h1' };
    const a = outcome(shared, t, vars, T);
    assert.ok(a.startsWith('ok'), `${t}: ${a}`);
    assert.equal(a, outcome(stock, t, vars, T), t);
    assert.deepEqual(vars, { host: 'h1' }, `${t} wrote the caller's variables`);
  }
  // What the copy semantics are (so the comparison above compares something): a snippet's set stays inside it.
  const text = shared.render('shadow.ks', { host: 'h1' }, T).text;
  assert.match(text, /^before:h1\nin:inner-h1\nreader:inner-h1 none\nafter:h1\nreader:h1 late\nin:inner-h1\nreader:inner-h1 late\nend:h1\n$/);
  assert.match(shared.render('extends.ks', { host: 'h1' }, T).text, /^\[child h1\]b\nnot leaked\n$/);
});

test('errors raised two includes deep carry the same message, file and line both ways', () => {
  const shared = new Renderer(roots);
  const stock = new Renderer(roots, { copyIncludes: true });
  for (const which of ['deep-undef', 'deep-fail', 'deep-missing']) {
    const a = outcome(shared, 'deep.ks', { host: 'h1', which }, T);
    assert.ok(a.startsWith('error'), `${which}: ${a}`);
    assert.equal(a, outcome(stock, 'deep.ks', { host: 'h1', which }, T), which);
  }
});

test('network_config, agama_connections and network_config_error are computed when read, with the values and errors of before', () => {
  const settings = settingsFromConfig(defaults());
  const d = validateNew('distro', { name: 'd', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd', breed: 'ubuntu', os_version: 'noble' });
  const p = validateNew('profile', { name: 'p', distro: 'd' });
  // A VLAN with no parent interface: netplan cannot express it (core/netplan.ts).
  const bad = validateNew('system', { name: 'v', profile: 'p', interfaces: { 'eth9.100': { ip_address: '10.0.0.5', netmask: '255.255.255.0', static: true } } });
  const ctx = templateContext(blendSystem(bad, [p], d, settings));
  assert.match(String(ctx['network_config_error']), /interfaces\.eth9\.100: a VLAN is named PARENT\.ID and there is no interface eth9/);
  assert.deepEqual(ctx['network_config'], {});
  assert.deepEqual(ctx['agama_connections'], []);
  const good = templateContext(blendSystem(validateNew('system', benchSystem(7)), [p], d, settings));
  const copy = JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
  assert.equal(copy['network_config_error'], '');
  assert.ok(typeof copy['network_config'] === 'object' && JSON.stringify(copy['network_config']).includes('02:00:00:00:00:07'), JSON.stringify(copy['network_config']));
  // A template's top-level set of one of them replaces it inside the render only.
  put('templates/netset.ks', '{% set network_config_error = "mine" %}{{ network_config_error }}|{% include "snippets/netread" %}');
  put('snippets/netread', '{{ network_config_error }}');
  for (const r of [new Renderer(roots), new Renderer(roots, { copyIncludes: true })]) {
    assert.equal(r.render('netset.ks', ctx, T).text, 'mine|mine');
    assert.match(String(ctx['network_config_error']), /VLAN/, 'the caller\'s value was written');
  }
});
