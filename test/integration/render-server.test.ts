/**
 * Autoinstall rendering through a real `forge serve` process (real SQLite,
 * real HTTP, the real `forge` CLI): the served file, Cobbler aliases, a
 * failing template answering 500 with file:line and an autoinstall_failed
 * event, `forge validate` exit codes, `forge template show` naming the
 * override in effect, and the install callbacks changing state.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ForgeServer } from '../lib/server.js';
import { startRenderSite, type RenderSite } from '../lib/render-site.js';
import { installerUrl } from '../lib/server.js';

import { need } from '../lib/env.js';
import { spawnSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { checkKickstart } from '../lib/kickstart-check.js';

let srv: ForgeServer;
let site: string;

let lab: RenderSite;
const put = (rel: string, text: string): void => lab.put(rel, text);
const ok = (args: string[]): Promise<string> => lab.ok(args);
const get = (path: string): ReturnType<RenderSite['get']> => lab.get(path);
const waitEvent = (system: string, type: string, n?: number, timeoutMs?: number): ReturnType<RenderSite['waitEvent']> => lab.waitEvent(system, type, n, timeoutMs);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return srv.cli(args);
}


before(async () => {
  lab = await startRenderSite('fgrender-site-');
  ({ srv, site } = lab);
  await ok(['distro', 'add', '--name', 'rocky9', '--arch', 'x86_64', '--breed', 'redhat', '--os-version', 'rhel9', '--kernel', '/srv/forge/rocky9/vmlinuz', '--initrd', '/srv/forge/rocky9/initrd.img']);
  await ok(['profile', 'add', '--name', 'rk9', '--distro', 'rocky9', '--autoinstall-meta', 'tree=http://127.0.0.1/tree/rocky9', '--kernel-options', 'console=ttyS0,115200']);
  await ok(['system', 'add', '--name', 'vm1', '--profile', 'rk9', '--mac', '52:54:00:10:00:01', '--hostname', 'vm1.lab']);
  await ok(['system', 'add', '--name', 'vm2', '--profile', 'rk9', '--mac', '52:54:00:10:00:02', '--ip-address', '10.0.0.2', '--netmask', '255.255.255.0', '--static', 'true']);
});

after(async () => {
  await lab?.stop();
});

test('GET /autoinstall/system/NAME serves a complete kickstart and records autoinstall_served', async () => {
  const r = await get('/autoinstall/system/vm1');
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/plain/);
  assert.deepEqual(checkKickstart(r.text), []);
  assert.match(r.text, /network --device=52:54:00:10:00:01 --bootproto=dhcp/);
  // The callbacks carry the system's install token (it is in its install window: netboot on).
  assert.match(r.text, new RegExp(`forge_callback '${srv.url.replace(/[.]/g, '\\.')}/i/[0-9a-f]{32}/api/v1/systems/vm1/install/done'`));
  const evs = await waitEvent('vm1', 'autoinstall_served');
  const served = evs.find((e) => e.type === 'autoinstall_served')!;
  assert.match(String(served.detail['template']), /kickstart\/default\.ks$/);
});

test('Cobbler aliases serve the same file; profiles render too', async () => {
  const direct = (await get('/autoinstall/system/vm2')).text;
  for (const p of ['/cblr/svc/op/autoinstall/system/vm2', '/cblr/svc/op/ks/system/vm2']) {
    const r = await get(p);
    assert.equal(r.status, 200, p);
    assert.equal(r.text, direct, p);
  }
  assert.match(direct, /--bootproto=static --ip=10\.0\.0\.2 --netmask=255\.255\.255\.0/);
  const prof = await get('/cblr/svc/op/autoinstall/profile/rk9');
  assert.equal(prof.status, 200);
  assert.deepEqual(checkKickstart(prof.text), []);
  assert.equal((await get('/autoinstall/system/nosuch')).status, 404);
});

test('the CLI prints the file and the kernel command line carries inst.ks', async () => {
  const out = await ok(['system', 'get-autoinstall', '--name', 'vm2']);
  assert.equal(out, (await get('/autoinstall/system/vm2')).text);
  const vars = JSON.parse(await ok(['system', 'dumpvars', '--name', 'vm2', '--json'])) as Record<string, unknown>;
  assert.equal(
    vars['kernel_cmdline'],
    `inst.ks=${await installerUrl(srv, '/autoinstall/system/vm2')} inst.repo=http://127.0.0.1/tree/rocky9 ip=10.0.0.2:::255.255.255.0:vm2:eth0:none ifname=eth0:52:54:00:10:00:02 console=ttyS0,115200`,
  );
});

test('a per-system site snippet overrides the shipped one, and template show says so', async () => {
  put('snippets/per_system/kickstart/partitioning/vm2', 'zerombr\nclearpart --all --initlabel\npart / --fstype=xfs --size=1 --grow\n');
  const r = await get('/autoinstall/system/vm2');
  assert.match(r.text, /part \/ --fstype=xfs --size=1 --grow/);
  assert.doesNotMatch(r.text, /autopart/);
  assert.deepEqual(checkKickstart(r.text), []);
  const served = (await waitEvent('vm2', 'autoinstall_served')).filter((e) => e.type === 'autoinstall_served').pop()!;
  assert.deepEqual(served.detail['overrides'], ['kickstart/partitioning per_system vm2 (site)']);
  const verbose = await ok(['template', 'show', '--system', 'vm2', '--verbose']);
  assert.match(verbose, /lookup per_system\/kickstart\/network\/vm2\n\s+lookup per_profile\/kickstart\/network\/rk9\n\s+lookup per_distro\/kickstart\/network\/rocky9\n\s+lookup kickstart\/network\n/);
  const show = await ok(['template', 'show', '--system', 'vm2']);
  assert.match(show, /snippet kickstart\/partitioning\s+per_system vm2\s+site\s+\S*per_system\/kickstart\/partitioning\/vm2/);
  assert.match(show, /snippet kickstart\/network\s+shared\s+shipped/);
  const other = await ok(['template', 'show', '--system', 'vm1']);
  assert.match(other, /snippet kickstart\/partitioning\s+shared\s+shipped/);
  const prof = await ok(['template', 'show', '--profile', 'rk9']);
  assert.match(prof, /template kickstart\/default\.ks: \S+templates\/kickstart\/default\.ks \(shipped\)/);
  assert.match(prof, /snippet kickstart\/partitioning\s+shared\s+shipped/);
  const pfile = await ok(['profile', 'get-autoinstall', '--name', 'rk9']);
  assert.equal(pfile, (await get('/autoinstall/profile/rk9')).text);
  const one = await ok(['template', 'show', 'kickstart/default.ks']);
  assert.match(one, /^# kickstart\/default\.ks: \S+ \(shipped\)\n/);
  assert.match(one, /\{% include "snippets\/kickstart\/network" %\}/);
  const snip = await ok(['template', 'show', '--snippet', 'kickstart/partitioning']);
  assert.match(snip, /autopart/);
  const list = await ok(['template', 'list']);
  assert.match(list, /kickstart\/default\.ks\s+shipped/);
});

test('a failing template answers 500 with file:line, records autoinstall_failed, and validate exits non-zero', async () => {
  put('templates/kickstart/broken.ks', 'text\nlang {{ no_such_language }}\n');
  await ok(['system', 'edit', '--name', 'vm1', '--autoinstall', 'kickstart/broken.ks']);
  const r = await get('/autoinstall/system/vm1');
  assert.equal(r.status, 500);
  const body = JSON.parse(r.text) as { code: string; message: string; details: { file: string; line: number } };
  assert.equal(body.code, 'TEMPLATE_ERROR');
  assert.match(body.message, /kickstart\/broken\.ks:2:\d+: undefined variable or value in \{\{ no_such_language \}\}/);
  assert.equal(body.details.line, 2);
  assert.doesNotMatch(r.text, /^text\nlang/, 'never a half-rendered file');
  const evs = await waitEvent('vm1', 'autoinstall_failed');
  const failed = evs.find((e) => e.type === 'autoinstall_failed')!;
  assert.equal(failed.detail['code'], 'TEMPLATE_ERROR');
  assert.match(String(failed.detail['message']), /broken\.ks:2/);

  const v = await cli(['validate']);
  assert.equal(v.code, 8, `validate exit code: ${v.stdout}${v.stderr}`);
  assert.match(v.stderr, /system vm1: TEMPLATE_ERROR: .*broken\.ks:2/);
  assert.doesNotMatch(v.stderr, /vm2/);
  const g = await cli(['system', 'get-autoinstall', '--name', 'vm1']);
  assert.equal(g.code, 8);
  assert.match(g.stderr, /broken\.ks:2/);

  // A missing snippet is TEMPLATE_NOT_FOUND at the include line.
  put('templates/kickstart/nosnip.ks', 'text\n\n{% include "snippets/kickstart/nope" %}\n');
  await ok(['system', 'edit', '--name', 'vm1', '--autoinstall', 'kickstart/nosnip.ks']);
  const m = await get('/autoinstall/system/vm1');
  assert.equal(m.status, 500);
  assert.match(m.text, /TEMPLATE_NOT_FOUND.*nosnip\.ks:3: snippet \\"kickstart\/nope\\" not found/);

  // Fixed: validate passes again.
  await ok(['system', 'edit', '--name', 'vm1', '--autoinstall', 'kickstart/default.ks']);
  const v2 = await cli(['validate']);
  assert.equal(v2.code, 0, v2.stderr);
});

test('template names cannot escape the roots', async () => {
  const r = await srv.api('GET', '/api/v1/templates/file?name=../../../etc/passwd');
  assert.equal(r.status, 400);
  assert.equal((r.body as { code: string }).code, 'TEMPLATE_PATH');
  const edit = await cli(['system', 'edit', '--name', 'vm2', '--autoinstall', '../../etc/passwd']);
  if (edit.code === 0) {
    // Accepted by the store: the renderer must still refuse it.
    const g = await get('/autoinstall/system/vm2');
    assert.equal(g.status, 400);
    assert.match(g.text, /TEMPLATE_PATH/);
    assert.doesNotMatch(g.text, /root:x:0:0/);
    await ok(['system', 'edit', '--name', 'vm2', '--autoinstall', '<<inherit>>']);
  }
});

test('install callbacks: start, done (netboot off with pxe_just_once), firstboot, Cobbler aliases', async () => {
  const start = await fetch(await installerUrl(srv, `/api/v1/systems/vm2/install/start`), { method: 'POST' });
  assert.equal(start.status, 200);
  await waitEvent('vm2', 'install_start');
  const done = await fetch(await installerUrl(srv, `/api/v1/systems/vm2/install/done`), { method: 'POST' });
  assert.equal(done.status, 200);
  assert.equal(((await done.json()) as { netboot_enabled: boolean }).netboot_enabled, false);
  const sys = await srv.api('GET', '/api/v1/systems/vm2');
  assert.equal((sys.body as { netboot_enabled: boolean }).netboot_enabled, false);
  const evs = await waitEvent('vm2', 'netboot_disabled');
  const types = evs.map((e) => e.type);
  assert.ok(types.indexOf('install_start') < types.indexOf('install_done'), types.join(','));
  assert.ok(types.includes('install_done'));
  assert.equal((await fetch(await installerUrl(srv, `/api/v1/systems/vm2/firstboot`))).status, 200);
  await waitEvent('vm2', 'first_boot');

  // Cobbler's nopxe (GET, as autoinstall_done snippets call it) on vm1.
  assert.equal((await srv.api('GET', '/api/v1/systems/vm1')).body instanceof Object, true);
  const nopxe = await fetch(await installerUrl(srv, `/cblr/svc/op/nopxe/system/vm1`));
  assert.equal(nopxe.status, 200);
  assert.equal(((await srv.api('GET', '/api/v1/systems/vm1')).body as { netboot_enabled: boolean }).netboot_enabled, false);
  await waitEvent('vm1', 'netboot_disabled');
  assert.equal((await fetch(await installerUrl(srv, `/cblr/svc/op/trig/mode/pre/system/vm1`))).status, 200);
  await waitEvent('vm1', 'install_start');
  assert.equal((await fetch(await installerUrl(srv, `/cblr/svc/op/trig/mode/bogus/system/vm1`))).status, 404);
  assert.equal((await fetch(await installerUrl(srv, `/api/v1/systems/nosuch/install/done`), { method: 'POST' })).status, 404);
});

test('the generic script, run by busybox sh with only busybox wget, reports start and done', async (t) => {
  if (need(t, { commands: ['busybox'] }) !== undefined) return;
  await ok(['distro', 'add', '--name', 'gen', '--arch', 'x86_64', '--breed', 'generic', '--kernel', '/srv/forge/gen/k', '--initrd', '/srv/forge/gen/i']);
  await ok(['profile', 'add', '--name', 'genp', '--distro', 'gen']);
  await ok(['system', 'add', '--name', 'g1', '--profile', 'genp', '--mac', '52:54:00:10:00:09']);
  const script = await get('/autoinstall/system/g1');
  assert.equal(script.status, 200);
  assert.ok(script.text.startsWith('#!/bin/sh\n'));
  // An installer-like environment: busybox applets only (no curl).
  const bin = join(site, 'bin');
  mkdirSync(bin, { recursive: true });
  const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
  for (const applet of ['sh', 'wget', 'echo', 'true', 'cat']) symlinkSync(busybox, join(bin, applet));
  const file = join(site, 'script.sh');
  writeFileSync(file, script.text);
  const r = spawnSync(join(bin, 'sh'), [file], { encoding: 'utf8', env: { PATH: bin }, timeout: 30_000 });
  assert.equal(r.status, 0, `script failed: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /failed/);
  const evs = await waitEvent('g1', 'netboot_disabled');
  const types = evs.map((e) => e.type);
  assert.ok(types.indexOf('install_start') < types.indexOf('install_done'), types.join(','));
  assert.equal(((await srv.api('GET', '/api/v1/systems/g1')).body as { netboot_enabled: boolean }).netboot_enabled, false);
});
