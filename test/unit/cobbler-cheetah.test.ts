/** Cheetah -> nunjucks conversion of single constructs, rendered with forge's nunjucks settings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nunjucks from 'nunjucks';
import { convertCheetah } from '../../server/cobbler/cheetah/convert.js';

const env = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: true, trimBlocks: true, lstripBlocks: true });
env.addFilter('sortkeys', (v: Record<string, unknown>) => Object.keys(v).sort());

function render(src: string, ctx: Record<string, unknown> = {}): string {
  const r = convertCheetah(src);
  assert.deepEqual(r.leftovers, [], r.text);
  return env.renderString(r.text, ctx);
}

test('literal nunjucks syntax in Cheetah text stays literal', () => {
  assert.equal(render('a {{ b }} {% c %} {# d #} ${x}\n', { x: 1 }), 'a {{ b }} {% c %} {# d #} 1\n');
  assert.equal(render('cost \\$5 \\#tag $$ 100%\n'), 'cost $5 #tag $$ 100%\n');
});

test('Python truthiness in conditions, values untouched', () => {
  const src = '#if $l and not $d\nyes\n#else\nno\n#end if\n';
  assert.equal(render(src, { l: [1], d: {} }), 'yes\n');
  assert.equal(render(src, { l: [], d: {} }), 'no\n');
  assert.equal(render('#echo ($s and "x" or "y")\n', { s: 'a' }), 'x');
});

test('formatting, tuple targets, augmented set, silent, slurp, echo', () => {
  assert.equal(render('#set $a = "%s-%d%%" % ($n, 7)\n$a\n', { n: 'v' }), 'v-7%\n');
  assert.equal(render('#set [$x, $y] = $r.split(":")\n$y/$x\n', { r: 'net:gw' }), 'gw/net\n');
  assert.equal(render('#set $i = 1\n#set $i += 2\n$i\n'), '3\n');
  assert.equal(render('#set $l = []\n#silent $l.append(4)\n$len($l)\n'), '1\n');
  assert.equal(render('a#slurp\nb\n'), 'ab\n');
  assert.equal(render('x #echo $v\n', { v: 'y' }), 'x y\n');
});

test('#for over .items(), #continue and #break keep Cheetah semantics; variables set in a loop are seen after it', () => {
  const src = [
    '#set $found = ""',
    '#for $k, $v in $d.items()',
    '#if $v == 0',
    '#continue',
    '#end if',
    '$k=$v',
    '#if $v > 1',
    '#set $found = $k',
    '#break',
    '#end if',
    '#end for',
    'found $found',
    '',
  ].join('\n');
  assert.equal(render(src, { d: { a: 1, z: 0, b: 2, c: 3 } }), 'a=1\nb=2\nfound b\n');
});

test('getVar, varExists, len/str/int, string methods, in / not in, slices, None', () => {
  const src = '$getVar("missing", "dflt") #slurp\n#if $varExists("v") and $v.lower().startswith("ab") and $v.find("C") == 2 and "x" not in ("y", "z") and $v[0:2].lower() == "ab"\nok $str($int("41") + 1) $len($v)\n#end if\n#if $n is None\nnone\n#end if\n';
  assert.equal(render(src, { v: 'ABC', n: null }), 'dflt ok 42 3\nnone\n');
});

test('an unknown directive or Python module is a leftover with its line, the rest still converts', () => {
  const r = convertCheetah('a\n#import time\n#set $t = time.time()\nb $x.count("a")\n');
  assert.deepEqual(r.leftovers.map((l) => l.line), [2, 3, 4]);
  assert.match(r.text, /^a\n\{# CHEETAH line 2: .*#import time #\}/);
  assert.ok(r.text.includes('b $x.count("a")'), 'the original line is kept in the marker');
});

test("variables Cobbler always defines take Cobbler's default when forge has none", () => {
  const src = '#if $redhat_management_key != ""\nregister $redhat_management_server\n#else\nnot registered\n#end if\n#if $run_install_triggers\ntriggers\n#end if\n';
  assert.equal(render(src), 'not registered\ntriggers\n');
  assert.equal(render(src, { redhat_management_key: 'k', redhat_management_server: 'sat', run_install_triggers: false }), 'register sat\n');
});
