/**
 * Install-window tokens against a real `forge serve` (core/access.ts): a
 * system's autoinstall file, NoCloud seed and callbacks answer only through
 * the per-install token forge writes into the URLs it generates (iPXE,
 * GRUB and PXELINUX configs, the kernel command line, the rendered file's
 * callbacks), only while the system is in its install window; anything else
 * is 404 and one install_refused event. The token rotates for each install,
 * so a stale one stops working. Profile renders carry no secrets without a
 * token. A read or admin bearer token reads everything.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startForge, waitForEvent, type ForgeServer } from '../lib/server.js';

const HASH = '$6$WinSalt$InstallWindowHASHvalue0123456789';
const MAC = '52:54:00:77:00:01';
let srv: ForgeServer;

const ok = async (method: string, path: string, body?: unknown): Promise<unknown> => {
  const r = await srv.api(method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${JSON.stringify(r.body)}`);
  return r.body;
};
const anon = async (path: string, init: RequestInit = {}): Promise<{ status: number; text: string }> => {
  const res = await fetch(srv.url + path, init);
  return { status: res.status, text: await res.text() };
};
const tokenOf = async (system: string): Promise<string> => {
  const b = (await ok('GET', `/api/v1/systems/${system}/blended`)) as { install_base_url: string };
  const m = /\/i\/([0-9a-f]{32})$/.exec(b.install_base_url);
  assert.ok(m !== null, `install_base_url ${b.install_base_url} carries a token`);
  return m[1]!;
};
const events = async (system: string): Promise<{ type: string; detail: Record<string, unknown> }[]> =>
  (await ok('GET', `/api/v1/systems/${system}/events`)) as { type: string; detail: Record<string, unknown> }[];

before(async () => {
  srv = await startForge();
  await ok('POST', '/api/v1/distros', { name: 'wd', breed: 'debian', os_version: 'bookworm', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd.gz' });
  await ok('POST', '/api/v1/profiles', { name: 'wp', distro: 'wd', autoinstall_meta: { root_password_hash: HASH } });
  await ok('POST', '/api/v1/systems', { name: 'w1', profile: 'wp', interfaces: { eth0: { mac_address: MAC } } });
});
after(async () => {
  await srv?.stop();
});

test('every URL forge generates for a system carries its install token: iPXE, GRUB, PXELINUX, kernel command line, callbacks', async () => {
  const t = await tokenOf('w1');
  const dash = MAC.replace(/:/g, '-');
  for (const path of [`/boot/ipxe/${MAC}`, `/boot/grub/grub.cfg-01-${dash}`, `/boot/pxelinux.cfg/01-${dash}`]) {
    const r = await anon(path);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    assert.ok(r.text.includes(`/i/${t}/autoinstall/system/w1`), `${path} carries the tokenised preseed URL:\n${r.text}`);
  }
  const file = await anon(`/i/${t}/autoinstall/system/w1`);
  assert.equal(file.status, 200, file.text);
  assert.ok(file.text.includes(HASH), 'the installer gets the whole file');
  assert.ok(file.text.includes(`/i/${t}/api/v1/systems/w1/install/done`), 'the callbacks in the file carry the token');
  // Anonymous blended reads never show the token (it would open the file).
  const blended = await anon('/api/v1/systems/w1/blended');
  assert.equal(blended.status, 200);
  assert.ok(!blended.text.includes(t), 'anonymous blended masks the install token');
  assert.match(blended.text, /\/i\/\*{8}\/autoinstall\/system\/w1/);
});

test('without the token, with a wrong one: 404 and one install_refused event per reason (not one per request)', async () => {
  const t = await tokenOf('w1');
  const wrong = '0'.repeat(32);
  const paths = [
    '/autoinstall/system/w1',
    '/cblr/svc/op/autoinstall/system/w1',
    '/cblr/svc/op/ks/system/w1',
    '/cloud-init/system/w1/user-data',
    '/api/v1/systems/w1/install/start',
    '/cblr/svc/op/nopxe/system/w1',
    `/i/${wrong}/autoinstall/system/w1`,
    `/i/${wrong}/api/v1/systems/w1/install/done`,
  ];
  for (let i = 0; i < 10; i++) {
    for (const p of paths) {
      const r = await anon(p);
      assert.equal(r.status, 404, `${p}: ${r.text}`);
      assert.ok(!r.text.includes(HASH));
    }
  }
  assert.equal(((await ok('GET', '/api/v1/systems/w1')) as { netboot_enabled: boolean }).netboot_enabled, true, 'a refused install/done changes nothing');
  await waitForEvent(srv, 'w1', 'install_refused', 2);
  const refused = (await events('w1')).filter((e) => e.type === 'install_refused');
  assert.deepEqual(refused.map((e) => e.detail['reason']).sort(), ['no_token', 'wrong_token'], '80 refused requests, one event per reason');
  assert.ok(refused.every((e) => !JSON.stringify(e).includes(wrong) && !JSON.stringify(e).includes(t)), 'events (public) never show a token');
  // Cobbler's names, the NoCloud seed and the callbacks work with the token.
  for (const p of ['/cblr/svc/op/autoinstall/system/w1', '/cblr/svc/op/ks/system/w1', '/cloud-init/system/w1/meta-data', '/cloud-init/system/w1/user-data']) {
    const r = await anon(`/i/${t}${p}`);
    assert.equal(r.status, 200, `${p}: ${r.text}`);
  }
  assert.equal((await anon(`/i/${t}/api/v1/systems/w1/install/start`, { method: 'POST' })).status, 200);
  // The admin token reads any of them without an install token; the preview needs a token.
  assert.equal((await anon('/autoinstall/system/w1', { headers: { authorization: `Bearer ${srv.token}` } })).status, 200);
  assert.equal((await anon('/api/v1/systems/w1/autoinstall')).status, 401);
});

test('the token rotates per install: install done closes the window after the grace, netboot on again gives a new token, the old one is stale', async () => {
  await ok('POST', '/api/v1/systems', { name: 'w2', profile: 'wp', interfaces: { eth0: { mac_address: '52:54:00:77:00:02' } } });
  const t1 = await tokenOf('w2');
  const done = await anon(`/i/${t1}/api/v1/systems/w2/install/done`, { method: 'POST' });
  assert.equal(done.status, 200, done.text);
  assert.equal((JSON.parse(done.text) as { netboot_enabled: boolean }).netboot_enabled, false, 'pxe_just_once');
  // Grace (install_grace_minutes, default 60): the installed system's first boot still reports.
  assert.equal((await anon(`/i/${t1}/api/v1/systems/w2/firstboot`, { method: 'POST' })).status, 200);
  await waitForEvent(srv, 'w2', 'first_boot');
  // A new install: netboot on again -> a new token; the old one is refused as stale.
  await ok('PATCH', '/api/v1/systems/w2', { netboot_enabled: true });
  const t2 = await tokenOf('w2');
  assert.notEqual(t2, t1);
  assert.equal((await anon(`/i/${t1}/autoinstall/system/w2`)).status, 404, 'stale token');
  assert.equal((await anon(`/i/${t2}/autoinstall/system/w2`)).status, 200);
  await waitForEvent(srv, 'w2', 'install_refused');
  assert.equal((await events('w2')).find((e) => e.type === 'install_refused')?.detail['reason'], 'wrong_token');
  // Tokens differ per system.
  assert.notEqual(await tokenOf('w1'), t2);
  assert.equal((await anon(`/i/${await tokenOf('w1')}/autoinstall/system/w2`)).status, 404, 'another system\'s token');
});

test('outside the window (grace 0): the token of the finished install is refused as window_closed; URLs lose the token', async () => {
  const s0 = await startForge({ args: ['--install-grace-minutes', '0'] });
  try {
    const must = async (method: string, path: string, body?: unknown): Promise<unknown> => {
      const r = await s0.api(method, path, body);
      assert.ok(r.status < 300, `${method} ${path}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    await must('POST', '/api/v1/distros', { name: 'wd', breed: 'debian', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd.gz' });
    await must('POST', '/api/v1/profiles', { name: 'wp', distro: 'wd' });
    await must('POST', '/api/v1/systems', { name: 'z1', profile: 'wp', interfaces: { eth0: { mac_address: '52:54:00:77:00:09' } } });
    const base = ((await must('GET', '/api/v1/systems/z1/blended')) as { install_base_url: string }).install_base_url;
    const t = /\/i\/([0-9a-f]{32})$/.exec(base)![1]!;
    assert.equal((await fetch(`${s0.url}/i/${t}/api/v1/systems/z1/install/done`, { method: 'POST' })).status, 200);
    const r = await fetch(`${s0.url}/i/${t}/autoinstall/system/z1`);
    assert.equal(r.status, 404, await r.text());
    await waitForEvent(s0, 'z1', 'install_refused');
    const evs = (await must('GET', '/api/v1/systems/z1/events')) as { type: string; detail: Record<string, unknown> }[];
    assert.equal(evs.find((e) => e.type === 'install_refused')?.detail['reason'], 'window_closed');
    const after = ((await must('GET', '/api/v1/systems/z1/blended')) as { install_base_url: string; kernel_cmdline: string });
    assert.equal(after.install_base_url, s0.url, 'no open window: no token in URLs');
  } finally {
    await s0.stop();
  }
});

test('profile renders: anonymous gets no secret (emptied), a token gets the whole file', async () => {
  const a = await anon('/autoinstall/profile/wp');
  assert.equal(a.status, 200, a.text);
  assert.ok(!a.text.includes(HASH), 'no root hash in an anonymous profile render');
  assert.match(a.text, /^d-i passwd\/root-password-crypted password !$/m, 'the template treats the emptied hash as unset (root locked)');
  const t = await anon('/autoinstall/profile/wp', { headers: { authorization: `Bearer ${srv.token}` } });
  assert.ok(t.text.includes(HASH));
});
