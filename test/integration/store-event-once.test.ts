/**
 * Store.addEventOnce, the install_start dedupe of several servers on one database: the check
 * and the insert are one decision in the database. In process, on both backends: calls racing
 * for one event record it once; another URL, another client, another type or a window that
 * starts after it records again. PostgreSQL: two stores on two pools (two servers' worth of
 * connections) racing record it once. Then two real `forge serve` on one PostgreSQL, an
 * installer's install/start callback sent to both at the same moment, for many systems: one
 * install_start each in the shared timeline (the read-then-write it replaces recorded two
 * whenever both reads ran before either write).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ForgeEvent } from '../../server/core/model.js';
import { openSqliteStore } from '../../server/store/sqlite.js';
import { openPgStore } from '../../server/store/postgres.js';
import type { EventOnce, Store } from '../../server/store/store.js';
import { startPostgres, type PgCluster } from '../lib/postgres.js';
import { startForge, type ForgeServer } from '../lib/server.js';

let cluster: PgCluster | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'forge-event-once-'));

before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  await cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const window = (): EventOnce => ({ since: new Date(Date.now() - 10_000).toISOString(), same: ['client', 'url'] });
const start = (system: string, url: string, client = '10.0.0.5'): Parameters<Store['addEvent']>[0] => ({ system, type: 'install_start', source: 'http', detail: { client, url } });

async function contract(st: Store, other: Store): Promise<void> {
  // 20 calls at once, half through each store: one records.
  const r = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? st : other).addEventOnce(start('web1', '/u'), window())));
  assert.equal(r.filter((e) => e !== undefined).length, 1, 'racing calls record one event');
  const recorded = r.find((e) => e !== undefined)!;
  assert.equal(recorded.type, 'install_start');
  assert.deepEqual(recorded.detail, { client: '10.0.0.5', url: '/u' });
  // What differs is recorded.
  assert.notEqual(await st.addEventOnce(start('web1', '/other'), window()), undefined, 'another URL');
  assert.notEqual(await st.addEventOnce(start('web1', '/u', '10.0.0.6'), window()), undefined, 'another client');
  assert.notEqual(await st.addEventOnce(start('web2', '/u'), window()), undefined, 'another system');
  assert.notEqual(await st.addEventOnce({ ...start('web1', '/u'), type: 'install_done' }, { ...window(), same: ['client', 'url'] }), undefined, 'another type');
  // A window that starts after the first one: it is not "in the window".
  const later = new Date(Date.now() + 1000).toISOString();
  assert.notEqual(await st.addEventOnce(start('web1', '/u'), { since: later, same: ['client', 'url'] }), undefined, 'outside the window');
  // An unconditional event is unaffected, and the timeline holds exactly what was recorded.
  await st.addEvent(start('web1', '/u'));
  const events = (await st.listEvents('web1')).filter((e: ForgeEvent) => e.type === 'install_start');
  assert.equal(events.length, 5, JSON.stringify(events));
  assert.deepEqual(events.map((e) => e.id), [...events.map((e) => e.id)].sort((a, b) => a - b), 'ids in order');
}

test('addEventOnce: SQLite', async () => {
  const dir = mkdtempSync(join(tmp, 'sqlite-'));
  const st = openSqliteStore(dir);
  try {
    await contract(st, st);
  } finally {
    await st.close();
  }
});

test('addEventOnce: PostgreSQL, two pools racing', async () => {
  const url = await cluster!.createDatabase('once');
  const a = await openPgStore(url);
  const b = await openPgStore(url);
  try {
    await contract(a, b);
  } finally {
    await a.close();
    await b.close();
  }
});

test('two forge servers on one PostgreSQL: an install/start sent to both at once is one install_start', async () => {
  const url = await cluster!.createDatabase('once_srv');
  const servers: ForgeServer[] = [];
  try {
    servers.push(await startForge({ args: ['--store', url] }));
    servers.push(await startForge({ args: ['--store', url] }));
    const [a, b] = servers as [ForgeServer, ForgeServer];
    const ok = async (s: ForgeServer, method: string, path: string, body?: unknown): Promise<unknown> => {
      const r = await s.api(method, path, body);
      assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    await ok(a, 'POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd', breed: 'debian' });
    await ok(a, 'POST', '/api/v1/profiles', { name: 'p', distro: 'd' });
    const N = 16;
    const paths: string[] = [];
    for (let i = 0; i < N; i++) {
      await ok(a, 'POST', '/api/v1/systems', { name: `inst${i}`, profile: 'p', netboot_enabled: true });
      const base = ((await ok(b, 'GET', `/api/v1/systems/inst${i}/blended`)) as { install_base_url: string }).install_base_url;
      paths.push(`${new URL(base).pathname}/api/v1/systems/inst${i}/install/start`);
    }
    // Both servers at the same moment, each system; every answer is a recorded callback.
    await Promise.all(
      paths.flatMap((p) =>
        [a, b].map(async (s) => {
          const r = await fetch(s.url + p);
          assert.equal(r.status, 200, `${s.url}${p}: ${await r.text()}`);
        }),
      ),
    );
    for (let i = 0; i < N; i++) {
      const started = ((await ok(b, 'GET', `/api/v1/systems/inst${i}/events`)) as ForgeEvent[]).filter((e) => e.type === 'install_start');
      assert.equal(started.length, 1, `inst${i}: one install_start for two racing calls: ${JSON.stringify(started)}`);
    }
  } finally {
    for (const s of servers) await s.stop().catch(() => undefined);
  }
});
