/**
 * `forge validate`'s structural checks pick the installer's rules by
 * template and catch the defect classes of issue 14; preseed repositories
 * need a key or an explicit trust.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRendered, formatOf } from '../../server/render/checks/index.js';
import { checkAutoyast } from '../../server/render/checks/autoyast.js';
import { readFileSync } from 'node:fs';
import { Renderer } from '../../server/render/renderer.js';
import { shippedRoots } from '../../server/render/roots.js';
import { templateContext } from '../../server/render/vars.js';
import { blendSystem } from '../../server/core/blend.js';
import { ForgeError } from '../../server/errors.js';
import { renderAll } from '../lib/render-golden.js';
import { distro, nic, profile, settings, system, REPO_KEY } from '../lib/render-fixtures.js';
import { spawnSync } from 'node:child_process';
import YAML from 'yaml';
import { validateSchema } from '../../server/render/checks/jsonschema.js';
import { AUTOINSTALL_SCHEMA } from '../../server/render/checks/schemas/autoinstall.js';

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

/** One system of one profile rendered with a shipped template: the repository cases below. */
function renderOne(template: string, d: ReturnType<typeof distro>, meta: Record<string, string>): string {
  const p = profile('p1', { distro: d.name, autoinstall: template, autoinstall_meta: meta });
  const s = system('ps1', 'p1', { interfaces: { eth0: nic({ mac_address: '52:54:00:aa:00:41' }) } });
  return new Renderer(shippedRoots()).render(template, templateContext(blendSystem(s, [p], d, settings)), {
    kind: 'system', name: 'ps1', system: 'ps1', profiles: ['p1'], distro: d.name,
  }).text;
}
const preseed = (meta: Record<string, string>): string => renderOne('preseed/default.seed', distro('deb12', 'debian', 'bookworm', 'http://deb.debian.org/debian'), meta);
const subiquity = (meta: Record<string, string>): string => renderOne('subiquity/user-data.yaml', distro('noble', 'ubuntu', '24.04', ''), meta);

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

test('subiquity: repositories become curtin apt sources; the armoured key goes in as text, trusted=yes only when asked', () => {
  const t = YAML.parse(subiquity({ repos: 'a=http://r/a;c=http://r/c noble main universe', repo_key_a: REPO_KEY, repo_trusted_c: 'true' })) as { autoinstall: { apt: { sources: Record<string, { source: string; key?: string }> } } };
  const src = t.autoinstall.apt.sources;
  assert.deepEqual(Object.keys(src), ['a.list', 'c.list']);
  assert.equal(src['a.list']?.source, 'deb http://r/a $RELEASE main');
  assert.equal(src['a.list']?.key, REPO_KEY, 'the key survives the YAML round trip byte for byte');
  assert.equal(src['c.list']?.source, 'deb [trusted=yes] http://r/c noble main universe');
  assert.equal(src['c.list']?.key, undefined);
  // gpg itself reads the key back out of the rendered document.
  const g = spawnSync('gpg', ['--show-keys', '--with-colons'], { input: src['a.list']?.key ?? '', encoding: 'utf8' });
  assert.equal(g.status, 0, g.stderr);
  assert.match(g.stdout, /^uid:.*forge test repo/m);
  assert.deepEqual(validateSchema(AUTOINSTALL_SCHEMA, t.autoinstall), []);
});

test('subiquity: a repository without a key or trust, or with a key URL, is refused naming it', () => {
  assert.throws(() => subiquity({ repos: 'x=http://r/x' }), (e: unknown) => e instanceof ForgeError && /repository "x" has no key/.test(e.message) && /repo_trusted_x/.test(e.message));
  assert.throws(() => subiquity({ repos: 'x=http://r/x', repo_key_x: 'http://r/x/key.asc' }), (e: unknown) => e instanceof ForgeError && /repo_key_x must be the armoured key itself/.test(e.message));
  assert.doesNotMatch(subiquity({}), /^ {2}apt:/m, 'no repos, no apt section: subiquity keeps its defaults');
});

test('autoyast: the general, partitioning, software, scripts, users and timezone rules of the schema (.rnc) are enforced', () => {
  const good = readFileSync(new URL('../../../test/golden/render/autoyast/single-nic-dhcp.xml', import.meta.url), 'utf8');
  assert.deepEqual(checkAutoyast(good), []);
  const broken: [string, string, RegExp][] = [
    ['<confirm config:type="boolean">false</confirm>', '<confirm>false</confirm>', /general\/mode\/confirm: needs config:type="boolean"/],
    ['<confirm config:type="boolean">false</confirm>', '<confirm config:type="boolean">false</confirm><bogus_mode>1</bogus_mode>', /general\/mode: element "bogus_mode" not allowed/],
    ['<hwclock>UTC</hwclock>', '<hwclock>utc</hwclock>', /timezone\/hwclock: "utc" is not one of localtime, UTC/],
    ['<package>openssh</package>\n      <package>curl</package>', '', /software\/packages: element "packages" incomplete/],
    ['<packages config:type="list">', '<packages>', /software\/packages: needs config:type="list"/],
    ['<filename>forge-firstboot.sh</filename>', '<filename>forge-firstboot.sh</filename><interpreter>shell</interpreter>', /scripts\/init-scripts\/script: element "interpreter" not allowed/],
    ['<username>root</username>', '<username>root</username><password>x</password>', /users\/user: element "password" not allowed/],
    ['<users config:type="list">', '<users>', /^users: needs config:type="list"/],
    ['<partitioning config:type="list">', '<partitioning>', /^partitioning: needs config:type="list"/],
  ];
  for (const [from, to, want] of broken) {
    assert.ok(good.includes(from), `fixture has ${from}`);
    const msgs = checkAutoyast(good.replace(from, to)).map((p) => p.message);
    assert.ok(msgs.some((m) => want.test(m)), `${to}: ${msgs.join('; ')}`);
  }
  // listentry items are checked as the list's item (users.rnc authorized_key | listentry).
  assert.deepEqual(checkAutoyast(good.replace('<package>curl</package>', '<listentry>curl</listentry>')), []);
});
