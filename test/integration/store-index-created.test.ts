/**
 * The system index of the store `forge serve` runs on (store/layers.ts): a system this process
 * creates is in the index when create resolves, with the document the database holds, and it
 * got there without a re-read of what was just written (the stored text is what create
 * returned). On both backends, real stores; the only wrapper counts the store's named
 * document reads. On PostgreSQL the commit's NOTIFY of this process's own write is not re-read
 * either, while a write from another server (here: a second store on its own pool) right after
 * is re-read from its NOTIFY and converges.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { System } from '../../server/core/model.js';
import { validateNew } from '../../server/core/validate.js';
import { openSqliteStore } from '../../server/store/sqlite.js';
import { openPgStore } from '../../server/store/postgres.js';
import type { Store } from '../../server/store/store.js';
import { serverStore } from '../../server/store/layers.js';
import { startPostgres, type PgCluster } from '../lib/postgres.js';

let cluster: PgCluster | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'forge-index-created-'));
before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  await cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const mac = (n: number): string => `52:54:00:07:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
const sys = (n: number): System => validateNew('system', { name: `s${n}`, profile: 'p', interfaces: { eth0: { mac_address: mac(n), ip_address: `10.7.${n >> 8}.${n & 255}`, static: true, netmask: '255.255.0.0' } } });

/** `raw` with its named systemDocs reads counted (the index's re-reads). */
function counting(raw: Store): { store: Store; named: () => number } {
  let named = 0;
  const store = new Proxy(raw, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (prop === 'systemDocs' && typeof v === 'function') {
        return (q: Parameters<Store['systemDocs']>[0]) => {
          if ('names' in q) named++;
          return (v as Store['systemDocs']).call(target, q);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store, named: () => named };
}

async function check(raw: Store, other?: Store): Promise<{ creates: number; total: number }> {
  await raw.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' }));
  await raw.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
  const c = counting(raw);
  const layered = await serverStore(c.store, (e) => assert.fail(String(e)));
  try {
    await layered.index.loaded();
    const before = c.named();
    await Promise.all(
      Array.from({ length: 40 }, async (_, n) => {
        const made = await layered.store.create('system', sys(n));
        // In the index when create resolves, as the database holds it.
        assert.equal(layered.index.peekMac(mac(n)), `s${n}`);
        assert.deepEqual(await layered.store.findSystemByMac(mac(n)), await raw.get('system', `s${n}`));
        assert.deepEqual(made, await raw.get('system', `s${n}`), 'create returned what is stored');
      }),
    );
    const creates = c.named() - before;
    assert.equal(layered.index.stats().misses, 0, 'every lookup answered by the index');
    if (other !== undefined) {
      // Another server edits one of them: the feed brings it here.
      await other.update('system', 's3', (s) => ({ ...s, comment: 'edited elsewhere' }));
      const t0 = Date.now();
      while ((await layered.store.findSystemByMac(mac(3)))?.comment !== 'edited elsewhere') {
        assert.ok(Date.now() - t0 < 20_000, 'the other server\'s edit reached the index');
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    // Notifications arrive in commit order: once the other server's edit is applied, the
    // NOTIFYs of the 40 creates before it have all been handled.
    return { creates, total: c.named() - before };
  } finally {
    await layered.cache.stop();
    await layered.index.stop();
  }
}

test('index: a created system is in the index when create resolves, not re-read (SQLite)', async () => {
  const st = openSqliteStore(mkdtempSync(join(tmp, 'sq-')));
  try {
    assert.equal((await check(st)).creates, 0, 'no named re-read for 40 creates');
  } finally {
    await st.close();
  }
});

test('index: the same on PostgreSQL, and another server\'s edit still arrives by the feed', async () => {
  const url = await cluster!.createDatabase('idx');
  const st = await openPgStore(url);
  const other = await openPgStore(url);
  try {
    const r = await check(st, other);
    assert.equal(r.creates, 0, 'no named re-read when the creates resolve');
    // The own creates' NOTIFYs re-read nothing; the other server's edit is one re-read.
    assert.equal(r.total, 1, 'one named re-read in all: the other server\'s edit');
  } finally {
    await st.close();
    await other.close();
  }
});
