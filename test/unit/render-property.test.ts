/**
 * Property: whatever strings an operator puts in autoinstall_meta (and the
 * hostname), rendering either fails with a precise ForgeError or produces a
 * file whose structure those values cannot change: no injected kickstart
 * command or section, every preseed line still `owner question type value`,
 * the generic script still valid sh with the values as single words.
 * (AutoYaST values are XML-escaped: checked with xmllint in the integration
 * tier; here, no raw < or & from a value reaches the output.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { blendSystem } from '../../server/core/blend.js';
import { ForgeError } from '../../server/errors.js';
import { Renderer } from '../../server/render/renderer.js';
import { shippedRoots } from '../../server/render/roots.js';
import { templateContext } from '../../server/render/vars.js';
import { checkKickstart } from '../lib/kickstart-check.js';
import { FORMATS, nic, profile, settings, system } from '../lib/render-fixtures.js';

const renderer = new Renderer(shippedRoots());
const META_KEYS = ['timezone', 'lang', 'keyboard', 'disk', 'packages', 'ssh_authorized_keys', 'root_password_hash', 'part_type', 'repos', 'tree'] as const;

// Strings heavy in the characters that break formats: quotes, newlines, %, <, &, $, backslashes, template syntax.
const nasty: fc.Arbitrary<string> = fc.string({
  unit: fc.constantFrom('a', 'Z', '0', ' ', '"', "'", '\n', '%', 'end', '<', '>', '&', '$', '\\', '{{', '}}', '{%', ';', '=', '/', '-', '@', ':', '.', '#'),
  maxLength: 12,
});

const metaArb = fc.record(Object.fromEntries(META_KEYS.map((k) => [k, nasty])) as Record<(typeof META_KEYS)[number], fc.Arbitrary<string>>, {
  requiredKeys: [],
});

function render(format: (typeof FORMATS)[number], meta: Record<string, string>, hostname: string): string | ForgeError {
  const d = format.distro;
  const p = profile('p', { distro: d.name, autoinstall: format.template, autoinstall_meta: { tree: d.tree, ...meta } });
  const s = system('s1', 'p', { hostname, interfaces: { eth0: nic({ mac_address: '52:54:00:00:00:01' }) } });
  try {
    return renderer.render(format.template, templateContext(blendSystem(s, [p], d, settings)), {
      kind: 'system', name: 's1', system: 's1', profiles: ['p'], distro: d.name,
    }).text;
  } catch (e) {
    if (e instanceof ForgeError) return e;
    throw e;
  }
}

const KS_LINES_FROM_TEMPLATE = /^(text|url|repo|lang|keyboard|timezone|network|rootpw|sshkey|ignoredisk|zerombr|clearpart|autopart|bootloader|firstboot|skipx|reboot|%packages|%pre|%post|%end|#.*|)$/;

test('kickstart: meta values never add commands or sections', () => {
  const ks = FORMATS.find((f) => f.format === 'kickstart')!;
  fc.assert(
    fc.property(metaArb, nasty, (meta, host) => {
      const out = render(ks, meta, host);
      if (out instanceof ForgeError) {
        assert.ok(['TEMPLATE_ERROR', 'TEMPLATE_NOT_FOUND'].includes(out.code));
        assert.match(out.message, /:\d+(:\d+)?: /, 'errors carry file:line');
        return;
      }
      const body = out.split('%packages')[0]!;
      for (const line of body.split('\n')) assert.match(line.split(' ')[0]!, KS_LINES_FROM_TEMPLATE, `injected line: ${JSON.stringify(line)}`);
      // Values may legitimately contain "{{" (data, not template syntax); structure is what matters here.
      const problems = checkKickstart(out).filter((p) => !/rootpw --iscrypted: not a crypt|bad --type|required command|unknown option|leftover template syntax/.test(p.message));
      assert.deepEqual(problems, []);
      assert.equal((out.match(/^%end$/gm) ?? []).length, 4, 'exactly the four sections close');
    }),
    { numRuns: 300, seed: 42 },
  );
});

test('preseed: every line stays owner question type value', () => {
  const ps = FORMATS.find((f) => f.format === 'preseed')!;
  fc.assert(
    fc.property(metaArb, nasty, (meta, host) => {
      const out = render(ps, { ...meta, tree: 'http://deb.debian.org/debian' }, host);
      if (out instanceof ForgeError) {
        assert.ok(['TEMPLATE_ERROR', 'TEMPLATE_NOT_FOUND'].includes(out.code));
        return;
      }
      for (const line of out.replace(/\\\n/g, ' ').split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        assert.match(line, /^(d-i|tasksel|popularity-contest) [a-z0-9-]+\/[^\s]+ (string|boolean|select|multiselect|note|password)( |$)/, JSON.stringify(line));
      }
    }),
    { numRuns: 300, seed: 7 },
  );
});

test('autoyast: values cannot open or close elements', () => {
  const ay = FORMATS.find((f) => f.format === 'autoyast')!;
  fc.assert(
    fc.property(metaArb, (meta) => {
      const out = render(ay, meta, 'h1');
      if (out instanceof ForgeError) return;
      // Outside CDATA, every < starts a tag from the template and every & an entity.
      const outside = out.replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
      assert.doesNotMatch(outside, /&(?!(amp|lt|gt|quot|apos);)/);
      for (const tag of outside.matchAll(/<\/?([^\s>!?/]+)/g)) assert.match(tag[1]!, /^[a-z_0-9-]+$/i, `odd element ${tag[1]}`);
    }),
    { numRuns: 200, seed: 3 },
  );
});

test('generic script: stays valid sh whatever the hostname', () => {
  const d = { ...FORMATS[0]!.distro, name: 'gen', breed: 'generic' as const };
  fc.assert(
    fc.property(nasty, (host) => {
      const p = profile('p', { distro: 'gen', autoinstall: 'generic/script.sh' });
      const s = system('s1', 'p', { hostname: host });
      const out = renderer.render('generic/script.sh', templateContext(blendSystem(s, [p], d, settings)), {
        kind: 'system', name: 's1', system: 's1', profiles: ['p'], distro: 'gen',
      }).text;
      const r = spawnSync('sh', ['-n'], { input: out, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }),
    { numRuns: 50, seed: 11 },
  );
});
