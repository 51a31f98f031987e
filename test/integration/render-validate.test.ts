/**
 * Every rendered file passes the real tools:
 *  - preseed: `debconf-set-selections --checkonly` (debconf-utils);
 *  - AutoYaST: `xmllint` well-formedness plus the elements a hands-off
 *    AutoYaST install needs (profile root in the yast2ns namespace,
 *    general/mode/confirm=false, partitioning, software, users with root,
 *    networking, bootloader);
 *  - kickstart: test/lib/kickstart-check.ts (Anaconda/pykickstart rules);
 *  - the generic script: `sh -n`.
 * Over the golden cases (test/lib/render-fixtures.ts) of every format.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { checkKickstart, ksVersionFor } from '../lib/kickstart-check.js';
import { renderAll } from '../lib/render-golden.js';
import { Renderer } from '../../server/render/renderer.js';
import { packageRoot, shippedRoots } from '../../server/render/roots.js';
import { checkAutoyast, checkGrubSerial } from '../../server/render/checks/autoyast.js';
import { templateContext } from '../../server/render/vars.js';
import { blendSystem } from '../../server/core/blend.js';
import { distro, nic, profile, settings, system } from '../lib/render-fixtures.js';

const all = renderAll();

function withFile<T>(name: string, text: string, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'fgrender-'));
  try {
    const p = join(dir, name);
    writeFileSync(p, text);
    return fn(p);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const r of all.filter((x) => x.format === 'preseed')) {
  test(`preseed ${r.id} passes debconf-set-selections --checkonly`, (t) => {
    if (need(t, { commands: ['debconf-set-selections'] }) !== undefined) return;
    withFile('p.seed', r.text, (p) => {
      const res = spawnSync('debconf-set-selections', ['--checkonly', p], { encoding: 'utf8' });
      assert.equal(res.status, 0, `debconf-set-selections --checkonly failed:\n${res.stderr}${res.stdout}`);
      assert.equal(res.stderr.trim(), '', `warnings: ${res.stderr}`);
    });
    // Every non-comment line is `owner question type value` (or a continuation).
    for (const line of r.text.replace(/\\\n/g, ' ').split('\n')) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      assert.match(line, /^[a-z0-9-]+ [a-z0-9-]+\/[^\s]+ (string|boolean|select|multiselect|note|password) ?/, `bad preseed line: ${line}`);
    }
    assert.doesNotMatch(r.text, /\{\{|\{%|\{#/);
  });
}

test('debconf-set-selections --checkonly really rejects a malformed preseed (the check can fail)', (t) => {
  if (need(t, { commands: ['debconf-set-selections'] }) !== undefined) return;
  withFile('bad.seed', 'd-i netcfg/get_hostname\n', (p) => {
    const res = spawnSync('debconf-set-selections', ['--checkonly', p], { encoding: 'utf8' });
    assert.ok(res.status !== 0 || res.stderr.trim() !== '', 'a line without type and value must be reported');
  });
});

function xpathCount(file: string, expr: string): number {
  const out = execFileSync('xmllint', ['--xpath', `count(${expr})`, file], { encoding: 'utf8' });
  return Number(out.trim());
}

const L = (n: string): string => `*[local-name()='${n}']`;
const REQUIRED_XPATHS: [string, string][] = [
  ['profile root in the yast2ns namespace', `/*[local-name()='profile' and namespace-uri()='http://www.suse.com/1.0/yast2ns']`],
  ['general/mode/confirm = false', `/${L('profile')}/${L('general')}/${L('mode')}/${L('confirm')}[.='false']`],
  ['partitioning drive', `/${L('profile')}/${L('partitioning')}/${L('drive')}`],
  ['software product', `/${L('profile')}/${L('software')}/${L('products')}/${L('product')}`],
  ['users/user root', `/${L('profile')}/${L('users')}/${L('user')}[${L('username')}='root']`],
  ['networking', `/${L('profile')}/${L('networking')}`],
  ['bootloader', `/${L('profile')}/${L('bootloader')}`],
  ['timezone', `/${L('profile')}/${L('timezone')}/${L('timezone')}`],
];

for (const r of all.filter((x) => x.format === 'autoyast')) {
  test(`autoyast ${r.id} is well-formed XML with the elements AutoYaST requires`, (t) => {
    if (need(t, { commands: ['xmllint'] }) !== undefined) return;
    withFile('a.xml', r.text, (p) => {
      const res = spawnSync('xmllint', ['--noout', p], { encoding: 'utf8' });
      assert.equal(res.status, 0, `xmllint: ${res.stderr}`);
      for (const [what, xp] of REQUIRED_XPATHS) assert.ok(xpathCount(p, xp) >= 1, `missing ${what}`);
      // config:type attributes use the configns namespace and known types only.
      const types = execFileSync('xmllint', ['--xpath', `//@*[local-name()='type' and namespace-uri()='http://www.suse.com/1.0/configns']`, p], { encoding: 'utf8' });
      for (const m of types.matchAll(/type="([^"]*)"/g)) assert.ok(['boolean', 'integer', 'list', 'symbol'].includes(m[1]!), `config:type ${m[1]}`);
      if (r.id !== 'profile') {
        // Systems carry the install callbacks: start (pre-script) and done (chroot-script, not chrooted).
        assert.ok(xpathCount(p, `//${L('pre-scripts')}/${L('script')}[contains(${L('source')}, '/install/start')]`) === 1, 'install start callback');
        assert.ok(xpathCount(p, `//${L('chroot-scripts')}/${L('script')}[${L('chrooted')}='false' and contains(${L('source')}, '/install/done')]`) === 1, 'install done callback');
      }
    });
  });
}

for (const r of all.filter((x) => x.format === 'kickstart')) {
  test(`kickstart ${r.dir}/${r.id} passes the kickstart checker (pykickstart ${ksVersionFor(r.os_version)} rules)`, () => {
    assert.deepEqual(checkKickstart(r.text, ksVersionFor(r.os_version)), []);
    if (r.id !== 'profile') {
      assert.match(r.text, /%pre[^\n]*\n(?:.*\n)*?forge_callback '[^']*\/install\/start'\n(?:.*\n)*?%end/);
      assert.match(r.text, /%post --nochroot[^\n]*\n(?:.*\n)*?forge_callback '[^']*\/install\/done'\n(?:.*\n)*?%end/);
    }
    // The %pre / %post bodies are valid shell.
    for (const m of r.text.matchAll(/^%(pre|post)[^\n]*\n([\s\S]*?)^%end$/gm)) {
      const res = spawnSync('sh', ['-n'], { input: m[2], encoding: 'utf8' });
      assert.equal(res.status, 0, `sh -n on %${m[1]}: ${res.stderr}`);
    }
  });
}

test('the generic script is valid sh and calls install start and done', () => {
  const d = distro('gen', 'generic', '', '');
  const p = profile('gen-p', { distro: 'gen', autoinstall: 'generic/script.sh' });
  const s = system('t1', 'gen-p', { interfaces: { eth0: nic({ mac_address: '52:54:00:00:00:09' }) } });
  const r = new Renderer(shippedRoots()).render('generic/script.sh', templateContext(blendSystem(s, [p], d, settings)), {
    kind: 'system', name: 't1', system: 't1', profiles: ['gen-p'], distro: 'gen',
  });
  assert.ok(r.text.startsWith('#!/bin/sh\n'), 'shebang first');
  const res = spawnSync('sh', ['-n'], { input: r.text, encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  assert.match(r.text, /FORGE_INSTALL_START_URL='http:\/\/10\.98\.0\.1:8080\/api\/v1\/systems\/t1\/install\/start'/);
  assert.match(r.text, /FORGE_INSTALL_DONE_URL='http:\/\/10\.98\.0\.1:8080\/api\/v1\/systems\/t1\/install\/done'/);
});

// ----- AutoYaST against the schema's rules (issue 14): the RNG written from
// yast2-network networking.rnc + yast2-bootloader bootloader.rnc, run by
// xmllint, and forge's own structural checker (what `forge validate` runs).

const RNG = join(packageRoot(), 'test', 'schemas', 'autoyast-forge.rng');

function relaxng(text: string): { ok: boolean; out: string } {
  return withFile('a.xml', text, (p) => {
    const res = spawnSync('xmllint', ['--noout', '--relaxng', RNG, p], { encoding: 'utf8' });
    return { ok: res.status === 0, out: res.stderr };
  });
}

for (const r of all.filter((x) => x.format === 'autoyast')) {
  test(`autoyast ${r.id} validates against the schema's networking/bootloader rules (xmllint --relaxng) and forge's checker`, (t) => {
    if (need(t, { commands: ['xmllint'] }) !== undefined) return;
    const v = relaxng(r.text);
    assert.ok(v.ok, v.out);
    assert.deepEqual(checkAutoyast(r.text), []);
  });
}

function renderAy(ifaces: Record<string, ReturnType<typeof nic>>, kernel: Record<string, string>): string {
  const d = distro('sles15', 'suse', 'sles15sp6', 'http://10.98.0.1:8080/tree/sles15');
  const p = profile('ay-p', { distro: 'sles15', autoinstall: 'autoyast/default.xml', kernel_options: kernel });
  const s = system('ay1', 'ay-p', { hostname: 'ay1.lab.example', interfaces: ifaces });
  return new Renderer(shippedRoots()).render('autoyast/default.xml', templateContext(blendSystem(s, [p], d, settings)), {
    kind: 'system', name: 'ay1', system: 'ay1', profiles: ['ay-p'], distro: 'sles15',
  }).text;
}

test('autoyast: static interfaces without MACs give no empty net-udev; the schema and the checker reject an empty one', (t) => {
  if (need(t, { commands: ['xmllint'] }) !== undefined) return;
  const text = renderAy({ eth0: nic({ ip_address: '10.98.0.30', netmask: '255.255.255.0', static: true }) }, {});
  assert.doesNotMatch(text, /net-udev/);
  assert.ok(relaxng(text).ok);
  assert.deepEqual(checkAutoyast(text), []);
  const broken = text.replace('  </networking>', '    <net-udev config:type="list">\n    </net-udev>\n  </networking>');
  assert.equal(relaxng(broken).ok, false, 'xmllint must reject an empty net-udev');
  assert.ok(checkAutoyast(broken).some((p) => /net-udev" incomplete/.test(p.message)));
});

test('autoyast: the serial console is GRUB 2 serial syntax; the checker rejects the old --speed=115200n8 form', () => {
  const text = renderAy({ eth0: nic({ mac_address: '52:54:00:aa:00:31' }) }, { console: 'ttyS1,57600e7' });
  assert.match(text, /<serial>serial --unit=1 --speed=57600 --word=7 --parity=even --stop=1<\/serial>/);
  assert.deepEqual(checkAutoyast(text), []);
  const old = text.replace(/<serial>[^<]*<\/serial>/, '<serial>serial --unit=1 --speed=57600e7</serial>');
  assert.ok(checkAutoyast(old).some((p) => /--speed=57600e7 is not valid/.test(p.message)));
  assert.deepEqual(checkGrubSerial('serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1'), []);
});

test('autoyast: the checker rejects elements the schema does not allow and routes without a destination', () => {
  const text = renderAy({ eth0: nic({ mac_address: '52:54:00:aa:00:32' }) }, {});
  assert.ok(checkAutoyast(text.replace('<bootproto>dhcp</bootproto>', '<bootproto>dhcp</bootproto><bogus>x</bogus>')).some((p) => /"bogus" not allowed/.test(p.message)));
  assert.ok(checkAutoyast(text.replace('<profile ', '<profil ')).some((p) => /not well-formed/.test(p.message)));
});
