/**
 * Events are bounded with the defaults a user runs: a data directory with
 * a backlog (events older than events_keep_days, a system far over
 * events_per_system) is cleaned by the server by itself shortly after
 * `forge serve` starts, with nothing configured and nothing called; and a
 * flood of anonymous install GETs records a handful of events, not one each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../server/store/sqlite.js';
import { validateNew } from '../../server/core/validate.js';
import { installerUrl, startForge } from '../lib/server.js';

test('the retention cleanup runs by itself: old events and events over the per-system cap are gone, the last install_done stays', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fgevents-'));
  try {
    const st = openSqliteStore(dir);
    await st.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'generic' }));
    await st.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
    for (const n of ['old', 'busy']) await st.create('system', validateNew('system', { name: n, profile: 'p' }));
    const old = new Date(Date.now() - 45 * 86_400_000).toISOString();
    await st.addEvent({ system: 'old', type: 'install_done', source: 'http', time: old });
    for (let i = 0; i < 300; i++) await st.addEvent({ system: 'old', type: 'autoinstall_served', source: 'http', time: old });
    for (let i = 0; i < 2500; i++) await st.addEvent({ system: 'busy', type: 'dhcp_ack', source: 'dhcp' });
    await st.close();

    const srv = await startForge({ dataDir: dir });
    try {
      const count = async (s: string): Promise<number> => ((await srv.api('GET', `/api/v1/systems/${s}/events?limit=100000`)).body as unknown[]).length;
      assert.equal(await count('busy'), 2500, 'nothing deleted before the first pass');
      const end = Date.now() + 60_000;
      while ((await count('busy')) > 1000 || (await count('old')) > 1) {
        assert.ok(Date.now() < end, `not cleaned within 60 s: busy ${await count('busy')}, old ${await count('old')}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(await count('busy'), 1000, 'events_per_system (default 1000)');
      const left = (await srv.api('GET', '/api/v1/systems/old/events')).body as { type: string }[];
      assert.deepEqual(left.map((e) => e.type), ['install_done'], 'older than events_keep_days (30) gone; the newest install_done kept');
      // The server kept answering while it cleaned.
      assert.equal((await srv.api('GET', '/api/v1/health')).status, 200);
    } finally {
      await srv.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a flood of anonymous install GETs records a handful of events, not one per request', { timeout: 120_000 }, async () => {
  const srv = await startForge();
  try {
    for (const [m, p, b] of [
      ['POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' }],
      ['POST', '/api/v1/profiles', { name: 'p', distro: 'd' }],
      ['POST', '/api/v1/systems', { name: 'f1', profile: 'p', interfaces: { eth0: { mac_address: '52:54:00:f1:00:01' } } }],
    ] as const) assert.ok((await srv.api(m, p, b)).status < 300);
    const url = await installerUrl(srv, '/autoinstall/system/f1');
    const start = await installerUrl(srv, '/api/v1/systems/f1/install/start');
    const t0 = Date.now();
    for (let i = 0; i < 300; i++) {
      await (await fetch(`${srv.url}/autoinstall/system/f1`)).text(); // no token: refused
      await (await fetch(url)).text(); // the installer's URL, again and again
      await (await fetch(start)).text();
    }
    // One event per 10 s window (render/routes.ts SERVED_WINDOW_MS) at most: bounded by the loop's length.
    const windows = Math.ceil((Date.now() - t0) / 10_000) + 1;
    await new Promise((r) => setTimeout(r, 500));
    const evs = (await srv.api('GET', '/api/v1/systems/f1/events?limit=100000')).body as { type: string }[];
    const n = (t: string): number => evs.filter((e) => e.type === t).length;
    assert.equal(n('install_refused'), 1, '300 refused GETs: one event');
    assert.ok(n('autoinstall_served') <= windows, `300 identical GETs: ${n('autoinstall_served')} autoinstall_served events (${windows} windows)`);
    assert.ok(n('install_start') <= windows, `300 install/start GETs: ${n('install_start')} events (${windows} windows)`);
    assert.ok(n('autoinstall_served') >= 1 && n('install_start') >= 1);
  } finally {
    await srv.stop();
  }
});
