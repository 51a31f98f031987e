/**
 * `forge validate`'s structural checks pick the installer's rules by
 * template and catch the defect classes of issue 14; preseed repositories
 * need a key or an explicit trust.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRendered, formatOf } from '../../server/render/checks/index.js';
import { Renderer } from '../../server/render/renderer.js';
import { shippedRoots } from '../../server/render/roots.js';
import { templateContext } from '../../server/render/vars.js';
import { blendSystem } from '../../server/core/blend.js';
import { ForgeError } from '../../server/errors.js';
import { renderAll } from '../lib/render-golden.js';
import { distro, nic, profile, settings, system } from '../lib/render-fixtures.js';

test('the format comes from the template directory or the content', () => {
  assert.equal(formatOf('kickstart/default.ks', ''), 'kickstart');
  assert.equal(formatOf('site/web.ks', ''), 'kickstart');
  assert.equal(formatOf('autoyast/default.xml', ''), 'autoyast');
  assert.equal(formatOf('site/x.xml', '<?xml version="1.0"?>\n<!DOCTYPE profile>\n<!-- c -->\n<profile xmlns="x">'), 'autoyast');
  assert.equal(formatOf('preseed/default.seed', 'd-i x string y'), 'none');
});

test('every golden case passes the check forge validate runs', () => {
  for (const r of renderAll()) {
    const template = r.format === 'kickstart' ? 'kickstart/default.ks' : r.format === 'autoyast' ? 'autoyast/default.xml' : 'preseed/default.seed';
    const c = checkRendered(template, r.text, { os_version: r.os_version });
    assert.deepEqual(c.problems, [], `${r.dir}/${r.id}`);
  }
});

test("the kickstart main shipped before issue 14 fails validate's check (two sshkey lines for root; no-interface network lines)", () => {
  const old = 'text\nurl --url=http://m/t\nlang en_US.UTF-8\nkeyboard us\ntimezone Etc/UTC\nnetwork --bootproto=dhcp --activate\nnetwork --hostname=h1\nrootpw --lock\nsshkey --username=root "k1"\nsshkey --username=root "k2"\nautopart\nbootloader\nreboot\n%packages\n%end\n';
  const msgs = checkRendered('kickstart/default.ks', old, { os_version: 'rhel9' }).problems.map((p) => p.message).join('\n');
  assert.match(msgs, /A network device with the name  has already been defined/);
  assert.match(msgs, /An ssh user with the name root has already been defined/);
});

function preseed(meta: Record<string, string>): string {
  const d = distro('deb12', 'debian', 'bookworm', 'http://deb.debian.org/debian');
  const p = profile('ps', { distro: 'deb12', autoinstall: 'preseed/default.seed', autoinstall_meta: meta });
  const s = system('ps1', 'ps', { interfaces: { eth0: nic({ mac_address: '52:54:00:aa:00:41' }) } });
  return new Renderer(shippedRoots()).render('preseed/default.seed', templateContext(blendSystem(s, [p], d, settings)), {
    kind: 'system', name: 'ps1', system: 'ps1', profiles: ['ps'], distro: 'deb12',
  }).text;
}

test('preseed: a repository without a key or trust is refused, naming it (d-i would leave it commented out)', () => {
  assert.throws(() => preseed({ repos: 'extras=http://r/extras' }), (e: unknown) => e instanceof ForgeError && /repository "extras" has no key/.test(e.message) && /repo_trusted_extras/.test(e.message));
});

test('preseed: a key URL becomes apt-setup/localN/key; an inline armoured key is served by forge; trusted=yes only when asked', () => {
  const t = preseed({ repos: 'a=http://r/a;b=http://r/b bookworm main;c=http://r/c', repo_key_a: 'http://r/a/key.asc', repo_key_b: '-----BEGIN PGP PUBLIC KEY BLOCK-----\nxx\n-----END PGP PUBLIC KEY BLOCK-----', repo_trusted_c: 'yes' });
  assert.match(t, /^d-i apt-setup\/local0\/repository string http:\/\/r\/a bookworm main$/m);
  assert.match(t, /^d-i apt-setup\/local0\/key string http:\/\/r\/a\/key\.asc$/m);
  assert.match(t, /^d-i apt-setup\/local1\/key string http:\/\/10\.98\.0\.1:8080\/autoinstall\/system\/ps1\/repo-key\/b\.asc$/m);
  assert.match(t, /^d-i apt-setup\/local2\/repository string \[trusted=yes\] http:\/\/r\/c bookworm main$/m);
  assert.doesNotMatch(t, /local2\/key/);
  assert.doesNotMatch(t, /local[01]\/repository string \[trusted/);
});
