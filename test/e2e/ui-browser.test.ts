/**
 * The web UI in a real browser: Debian's chromium (headless), driven by
 * playwright-core over its own pipe (no browser download), against a real
 * forge serve. Read-only shows no edit controls; logging in with the token
 * and adding a system through the form (keyboard only) puts it in
 * `forge system list`; the system page's timeline picture grows while a
 * boot's requests arrive (iPXE boot config, autoinstall, install callbacks,
 * the same HTTP requests a booting machine makes); a template that does not
 * render is shown with its failing line marked. Screenshots are kept in
 * test/.artifacts/ui/ (and docs/ui-system.png is refreshed from the run
 * with FORGE_UPDATE_DOCS=1).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { inCI, need } from '../lib/env.js';
import { installerUrl, startForge, type ForgeServer } from '../lib/server.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = new URL('../../../test/.artifacts/ui/', import.meta.url).pathname;
const DOCS = new URL('../../../docs/', import.meta.url).pathname;

let forge: ForgeServer | undefined;
let browser: BrowserContext | undefined;
let dir = '';
let skipped: string | undefined;

const MAC = '52:54:00:77:00:01';
/** Line 3 calls a function that does not exist: the render fails there. */
const BROKEN = ['#!/bin/sh', '# forge test template', 'echo {{ no_such_function() }}', 'exit 0', ''].join('\n');

before(async () => {
  if (!existsSync(CHROMIUM)) {
    skipped = `needs ${CHROMIUM} (Debian package chromium)`;
    return;
  }
  dir = mkdtempSync(join(tmpdir(), 'fgui-'));
  mkdirSync(join(dir, 'templates'));
  writeFileSync(join(dir, 'templates', 'broken.sh'), BROKEN);
  forge = await startForge({ args: ['--templates-dir', join(dir, 'templates')] });
  const ok = async (m: string, p: string, b: unknown): Promise<void> => {
    const r = await forge!.api(m, p, b);
    assert.ok(r.status < 300, `${m} ${p}: ${JSON.stringify(r.body)}`);
  };
  await ok('POST', '/api/v1/distros', { name: 'deb12', kernel: '/srv/forge/deb12/linux', initrd: '/srv/forge/deb12/initrd.gz', breed: 'debian', arch: 'x86_64' });
  await ok('POST', '/api/v1/profiles', { name: 'deb12-web', distro: 'deb12', autoinstall: 'preseed/default.seed' });
  await ok('POST', '/api/v1/profiles', { name: 'deb12-web-big', parent: 'deb12-web', virt_ram: 4096 });
  await ok('POST', '/api/v1/profiles', { name: 'broken', distro: 'deb12', autoinstall: 'broken.sh' });
  await ok('POST', '/api/v1/systems', { name: 'vm-bad', profile: 'broken', interfaces: { eth0: { mac_address: '52:54:00:77:00:09' } } });
  const { chromium } = await import('playwright-core');
  mkdirSync(ARTIFACTS, { recursive: true });
  // A fresh profile directory per run (launchPersistentContext passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1366, height: 768 },
  });
});

after(async () => {
  await browser?.close().catch(() => undefined);
  await forge?.stop();
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function ready(t: { skip(msg: string): void }): boolean {
  if (skipped !== undefined) {
    need(t as Parameters<typeof need>[0], { files: [CHROMIUM] });
    if (!inCI()) t.skip(skipped);
    return false;
  }
  return true;
}

async function newPage(): Promise<Page> {
  const p = await browser!.newPage();
  p.setDefaultTimeout(30_000);
  return p;
}

async function shot(p: Page, name: string): Promise<string> {
  const file = join(ARTIFACTS, `${name}.png`);
  await p.screenshot({ path: file, fullPage: true });
  return file;
}

/** Tab until `sel` has focus (keyboard-only use), bounded. */
async function tabTo(p: Page, sel: string): Promise<void> {
  for (let i = 0; i < 60; i++) {
    if ((await p.evaluate(`document.activeElement?.matches(${JSON.stringify(sel)}) === true`)) === true) return;
    await p.keyboard.press('Tab');
  }
  throw new Error(`could not reach ${sel} with Tab`);
}

test('read-only: systems, profiles with inheritance, no edit controls', async (t) => {
  if (!ready(t)) return;
  const p = await newPage();
  await p.goto(`${forge!.url}/ui/`);
  await p.getByRole('button', { name: 'Continue read-only' }).click();
  await p.getByRole('table', { name: 'systems' }).waitFor();
  assert.equal(await p.getByRole('form', { name: 'Add system' }).count(), 0, 'no add form');
  assert.equal(await p.getByRole('button', { name: /^delete / }).count(), 0, 'no delete buttons');
  assert.match(await p.locator('#who').innerText(), /anonymous \(read-only\)/);
  await p.getByRole('link', { name: 'Profiles' }).click();
  await p.getByRole('table', { name: 'profiles' }).waitFor();
  assert.match(await p.getByRole('table', { name: 'profiles' }).innerText(), /deb12-web-big\s+inherits deb12-web/);
  await shot(p, 'profiles-read-only');
  await p.close();
});

test('log in, add a system through the form with the keyboard only; forge system list has it', async (t) => {
  if (!ready(t)) return;
  const p = await newPage();
  await p.goto(`${forge!.url}/ui/`);
  await tabTo(p, 'input[name=token]');
  await p.keyboard.type('wrong-token');
  await p.keyboard.press('Enter');
  await p.getByRole('alert').waitFor();
  assert.match(await p.getByRole('alert').innerText(), /AUTH_INVALID/);
  await p.locator('input[name=token]').fill('');
  await tabTo(p, 'input[name=token]');
  await p.keyboard.type(forge!.token);
  await p.keyboard.press('Enter');
  await p.getByRole('form', { name: 'Add system' }).waitFor();
  await tabTo(p, 'input[name=name]');
  await p.keyboard.type('ui-vm1');
  await p.keyboard.press('Tab');
  await p.keyboard.type('deb12-web-big');
  await p.keyboard.press('Tab');
  await p.keyboard.type(MAC);
  await p.keyboard.press('Enter');
  await p.locator('tr[data-system="ui-vm1"]').waitFor();
  await shot(p, 'systems-admin');
  const list = await forge!.cli(['system', 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^\s*ui-vm1$/m);
  const rec = await forge!.api('GET', '/api/v1/systems/ui-vm1');
  assert.equal((rec.body as { profile: string }).profile, 'deb12-web-big');
  // A bad field is refused with the field named, and the form keeps what was typed.
  await p.locator('input[name=name]').fill('ui-vm2');
  await p.locator('input[name=mac]').fill('52:54:00:zz:00:01');
  await p.getByRole('button', { name: 'Add system' }).click();
  await p.getByRole('alert').waitFor();
  assert.match(await p.getByRole('alert').innerText(), /mac_address/);
  assert.equal(await p.locator('input[name=name]').inputValue(), 'ui-vm2');
  await p.close();
});

/** A page logged in with the token, on the page behind the navigation link `link`. */
async function loggedIn(link: string): Promise<Page> {
  const p = await newPage();
  await p.goto(`${forge!.url}/ui/`);
  await p.locator('input[name=token]').fill(forge!.token);
  await p.keyboard.press('Enter');
  await p.getByRole('form', { name: 'Add system' }).waitFor();
  await p.getByRole('link', { name: link }).click();
  return p;
}

test('edit a distro and a profile through their forms; a path outside the boot roots is refused and changes nothing', async (t) => {
  if (!ready(t)) return;
  const p = await loggedIn('Distros');
  const df = p.getByRole('form', { name: 'Edit distro' });
  await df.waitFor();
  await df.locator('select[name=name]').selectOption('deb12');
  await df.locator('input[name=kernel]').fill('/etc/shadow');
  await df.getByRole('button', { name: 'Edit distro' }).click();
  await df.getByRole('alert').waitFor();
  assert.match(await df.getByRole('alert').innerText(), /PATH_OUTSIDE_ROOTS.*kernel/);
  let d = (await forge!.api('GET', '/api/v1/distros/deb12')).body as { kernel: string; kernel_options?: Record<string, unknown> };
  assert.equal(d.kernel, '/srv/forge/deb12/linux', 'the refused edit changed nothing');
  await df.locator('input[name=kernel]').fill('/srv/forge/deb12/vmlinuz');
  await df.locator('input[name=kernel_options]').fill('console=ttyS0,115200');
  await df.getByRole('button', { name: 'Edit distro' }).click();
  await p.getByRole('table', { name: 'distros' }).getByText('/srv/forge/deb12/vmlinuz').waitFor();
  d = (await forge!.api('GET', '/api/v1/distros/deb12')).body as { kernel: string; kernel_options?: Record<string, unknown> };
  assert.equal(d.kernel, '/srv/forge/deb12/vmlinuz');
  assert.equal(d.kernel_options?.['console'], 'ttyS0,115200');
  await p.getByRole('link', { name: 'Profiles' }).click();
  const pf = p.getByRole('form', { name: 'Edit profile' });
  await pf.waitFor();
  await pf.locator('select[name=name]').selectOption('deb12-web-big');
  await pf.locator('input[name=autoinstall_meta]').fill('tree=http://10.98.0.1/debian');
  await pf.getByRole('button', { name: 'Edit profile' }).click();
  await p.getByRole('table', { name: 'profiles' }).waitFor();
  const bl = await forge!.cli(['profile', 'dumpvars', '--name', 'deb12-web-big']);
  assert.equal(bl.code, 0, bl.stderr);
  assert.match(bl.stdout, /tree\s*[:=]\s*http:\/\/10\.98\.0\.1\/debian/);
  await shot(p, 'profiles-edit');
  await p.close();
});

test('the DHCP page shows the stored subnet objects; a subnet is added, edited and refused with the field named through its forms', async (t) => {
  if (!ready(t)) return;
  const p = await loggedIn('DHCP');
  const add = p.getByRole('form', { name: 'Add subnet' });
  await add.waitFor();
  await add.locator('input[name=name]').fill('ui-lab');
  await add.locator('input[name=cidr]').fill('10.77.0.0/24');
  await add.locator('input[name=range]').fill('10.77.0.100,10.77.0.150');
  await add.locator('input[name=router]').fill('10.78.0.1');
  await add.getByRole('button', { name: 'Add subnet' }).click();
  await add.getByRole('alert').waitFor();
  assert.match(await add.getByRole('alert').innerText(), /router/, 'a router outside the CIDR is refused, naming the field');
  assert.equal((await forge!.api('GET', '/api/v1/subnets/ui-lab')).status, 404, 'nothing stored');
  await add.locator('input[name=router]').fill('10.77.0.1');
  await add.locator('input[name=dns_search]').fill('lab.example example');
  await add.getByRole('button', { name: 'Add subnet' }).click();
  const table = p.getByRole('table', { name: 'subnets' });
  await table.getByText('10.77.0.0/24').waitFor();
  assert.match(await table.innerText(), /ui-lab\s+10\.77\.0\.0\/24\s+10\.77\.0\.100,10\.77\.0\.150\s+10\.77\.0\.1\b/);
  const edit = p.getByRole('form', { name: 'Edit subnet' });
  await edit.locator('select[name=name]').selectOption('ui-lab');
  await edit.locator('input[name=mtu]').fill('9000');
  await edit.getByRole('button', { name: 'Edit subnet' }).click();
  await table.getByText('9000').waitFor();
  const sn = (await forge!.api('GET', '/api/v1/subnets/ui-lab')).body as { mtu: number; dns_search: string[] };
  assert.deepEqual([sn.mtu, sn.dns_search], [9000, ['lab.example', 'example']]);
  await shot(p, 'dhcp-subnets');
  await p.close();
});

test('the timeline picture grows while a boot\'s requests arrive, live from the event stream', async (t) => {
  if (!ready(t)) return;
  const p = await newPage();
  await p.goto(`${forge!.url}/ui/#/system/ui-vm1`);
  await p.getByRole('button', { name: 'Continue read-only' }).click();
  await p.locator('#timeline svg').waitFor();
  await p.locator('#live.on').waitFor();
  const dots = (): Promise<number> => p.locator('#timeline svg circle').count();
  const start = await dots();
  // What a machine does when it boots over iPXE and installs (forge records each as an event).
  const steps = [`/boot/ipxe/${MAC}`, '/autoinstall/system/ui-vm1', '/api/v1/systems/ui-vm1/install/start', '/api/v1/systems/ui-vm1/install/done'];
  let seen = start;
  for (const path of steps) {
    const r = await fetch(await installerUrl(forge!, path));
    await r.text();
    assert.ok(r.status < 400, `${path}: ${r.status}`);
    // Polled from here: the page's CSP (script-src 'self') refuses the driver's eval-based waits.
    const end = Date.now() + 30_000;
    while ((await dots()) <= seen) {
      assert.ok(Date.now() < end, `the timeline did not grow after ${path}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    seen = await dots();
  }
  const stored = ((await forge!.api('GET', '/api/v1/systems/ui-vm1/events')).body as unknown[]).length;
  assert.equal(await dots(), stored, 'one dot per stored event, no reload');
  const labels = await p.locator('#timeline svg text[data-event]').allTextContents();
  for (const want of ['boot_config_served', 'autoinstall_served', 'install_start', 'install_done']) assert.ok(labels.includes(want), `${want} in ${labels.join(' ')}`);
  assert.ok(labels.indexOf('install_start') < labels.indexOf('install_done'));
  await shot(p, 'system-timeline');
  // The README's picture: what a laptop screen shows (not the whole page).
  const view = join(ARTIFACTS, 'system-timeline-viewport.png');
  await p.screenshot({ path: view });
  if (process.env['FORGE_UPDATE_DOCS'] === '1') copyFileSync(view, join(DOCS, 'ui-system.png'));
  await p.close();
});

test('a template that does not render: the error, and the failing line marked in the template', async (t) => {
  if (!ready(t)) return;
  // A system's rendered file carries its secrets: only a token reads it (issue 13), so log in first.
  const p = await newPage();
  await p.goto(`${forge!.url}/ui/`);
  await p.locator('input[name=token]').fill(forge!.token);
  await p.keyboard.press('Enter');
  await p.getByRole('form', { name: 'Add system' }).waitFor();
  await p.goto(`${forge!.url}/ui/#/system/vm-bad`);
  const box = p.getByRole('region', { name: 'autoinstall' });
  await box.getByRole('alert').waitFor();
  assert.match(await box.getByRole('alert').innerText(), /TEMPLATE_ERROR|RENDER/);
  const bad = box.locator('pre.code span.l.bad');
  await bad.waitFor();
  assert.equal(await bad.innerText(), 'echo {{ no_such_function() }}');
  assert.equal(await bad.getAttribute('aria-label'), 'line 3: the error is here');
  await shot(p, 'render-error');
  await p.close();
});
