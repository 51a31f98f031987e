/**
 * Served-file events written in batches off the answer path (store/events-deferred.ts), on both
 * backends. In process: events queued with `later` are one batch, and every reader of the store
 * sees them at once (a timeline read, the stream's replay, a rename that carries a system's
 * events, an immediate addEvent that must come after them). Then real `forge serve`s (SQLite and
 * PostgreSQL), asked for boot configs the way iPXE asks: every fetch is in its system's timeline
 * when read right after the answer, and the fetches answered just before a SIGTERM are in the
 * timeline after a restart (close writes the queue). About 10 s.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ForgeEvent } from '../../server/core/model.js';
import { validateNew } from '../../server/core/validate.js';
import { openSqliteStore } from '../../server/store/sqlite.js';
import { openPgStore } from '../../server/store/postgres.js';
import { deferredEvents } from '../../server/store/events-deferred.js';
import type { NewEvent, Store } from '../../server/store/store.js';
import { startPostgres, type PgCluster } from '../lib/postgres.js';
import { startForge, type ForgeServer } from '../lib/server.js';

let cluster: PgCluster | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'forge-events-deferred-'));

before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  await cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const mac = (i: number): string => `52:54:00:20:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const served = (system: string, i: number): NewEvent => ({ system, type: 'boot_config_served', source: 'http', detail: { file: `ipxe/${i}`, client: '10.0.0.9', boot: 'profile' } });

async function seed(st: Store, n: number): Promise<void> {
  await st.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'generic' }));
  await st.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
  await st.bulkCreate('system', Array.from({ length: n }, (_, i) => validateNew('system', { name: `s${i}`, profile: 'p', interfaces: { eth0: { mac_address: mac(i) } } })));
}

async function inProcess(raw: Store): Promise<void> {
  await seed(raw, 3);
  // A window no test outlasts: only the ordering rules can write the queue in time.
  const d = deferredEvents(raw, 60_000);
  const st = d.store;
  const later = [0, 1, 2, 3, 4].map((i) => d.later(served('s0', i)));
  assert.deepEqual(d.stats, { batches: 0, events: 0 }, 'nothing written at the answer');
  const timeline = await st.listEvents('s0');
  assert.deepEqual(timeline.map((e) => e.detail['file']), ['ipxe/0', 'ipxe/1', 'ipxe/2', 'ipxe/3', 'ipxe/4'], 'a timeline read sees the queued events, in order');
  assert.deepEqual(d.stats, { batches: 1, events: 5 }, 'written as one batch');
  assert.deepEqual((await Promise.all(later)).map((e) => e.id), timeline.map((e) => e.id), 'each later() resolves with its stored event');

  // An immediate event after queued ones comes after them.
  void d.later(served('s1', 10));
  const now = await st.addEvent({ system: 's1', type: 'install_done', source: 'http', detail: { client: '10.0.0.9', url: '/u' } });
  assert.deepEqual((await st.listEvents('s1')).map((e) => e.type), ['boot_config_served', 'install_done']);
  assert.ok((await st.eventsAfter(0, 100)).every((e, i, a) => i === 0 || a[i - 1]!.id < e.id) && now.id > 0);

  // A rename carries the system's events, queued ones too.
  void d.later(served('s2', 20));
  await st.rename('system', 's2', 's2-new');
  assert.deepEqual((await st.listEvents('s2-new')).map((e) => e.detail['file']), ['ipxe/20'], 'the queued event followed the rename');
  assert.deepEqual(await st.listEvents('s2'), []);

  // close() writes what is queued.
  void d.later(served('s0', 99));
  await st.close();
}

test('deferred events, SQLite: one batch, seen by every reader at once, in order', async () => {
  const dir = mkdtempSync(join(tmp, 'sqlite-'));
  await inProcess(openSqliteStore(dir));
  const again = openSqliteStore(dir);
  try {
    assert.ok((await again.listEvents('s0')).some((e) => e.detail['file'] === 'ipxe/99'), 'the event queued before close() is stored');
  } finally {
    await again.close();
  }
});

test('deferred events, PostgreSQL: one batch, seen by every reader at once, in order', async () => {
  const url = await cluster!.createDatabase('deferred');
  await inProcess(await openPgStore(url));
  const again = await openPgStore(url);
  try {
    assert.ok((await again.listEvents('s0')).some((e) => e.detail['file'] === 'ipxe/99'), 'the event queued before close() is stored');
  } finally {
    await again.close();
  }
});

async function fetches(srv: ForgeServer, from: number, to: number): Promise<void> {
  // One at a time, then the rest at once (a rack powering on).
  const one = async (i: number): Promise<void> => {
    const r = await fetch(`${srv.url}/boot/ipxe/${mac(i)}`);
    const text = await r.text();
    assert.equal(r.status, 200, text);
    assert.match(text, /^#!ipxe/);
  };
  const mid = Math.floor((from + to) / 2);
  for (let i = from; i < mid; i++) await one(i);
  await Promise.all(Array.from({ length: to - mid }, (_, k) => one(mid + k)));
}

async function servedCount(srv: ForgeServer, i: number): Promise<number> {
  const r = await srv.api('GET', `/api/v1/systems/s${i}/events`);
  assert.equal(r.status, 200);
  return (r.body as ForgeEvent[]).filter((e) => e.type === 'boot_config_served').length;
}

async function overHttp(start: () => Promise<ForgeServer>): Promise<void> {
  const N = 60;
  let srv = await start();
  try {
    const r = await srv.api('POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'generic' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal((await srv.api('POST', '/api/v1/profiles', { name: 'p', distro: 'd' })).status, 201);
    const bulk = await srv.api('POST', '/api/v1/systems/bulk', Array.from({ length: N }, (_, i) => ({ name: `s${i}`, profile: 'p', interfaces: { eth0: { mac_address: mac(i) } } })));
    assert.equal(bulk.status, 201, JSON.stringify(bulk.body));
    // Each timeline read right after its answer (well inside the batch window): the fetch is there, once.
    for (let i = 0; i < N / 4; i++) {
      await fetches(srv, i, i + 1);
      assert.equal(await servedCount(srv, i), 1, `s${i}: its boot config fetch is in the timeline`);
    }
    // A rack at once, then read newest first.
    await fetches(srv, N / 4, N / 2);
    for (let i = N / 2 - 1; i >= N / 4; i--) assert.equal(await servedCount(srv, i), 1, `s${i}: its boot config fetch is in the timeline`);
    // Fetches answered, then SIGTERM at once: the queue is written on the way out.
    await fetches(srv, N / 2, N);
    await srv.stop({ keepData: true });
    srv = await start();
    for (let i = N / 2; i < N; i++) assert.equal(await servedCount(srv, i), 1, `s${i}: the fetch answered before SIGTERM is in the timeline`);
  } finally {
    await srv.stop();
  }
}

test('forge serve on SQLite: every boot config fetched is in the timeline, read at once and after a SIGTERM', async () => {
  const dataDir = mkdtempSync(join(tmp, 'serve-'));
  await overHttp(() => startForge({ dataDir }));
});

test('forge serve on PostgreSQL: every boot config fetched is in the timeline, read at once and after a SIGTERM', async () => {
  const url = await cluster!.createDatabase('deferred_serve');
  const dataDir = mkdtempSync(join(tmp, 'serve-pg-'));
  await overHttp(() => startForge({ dataDir, args: ['--store', url] }));
});
