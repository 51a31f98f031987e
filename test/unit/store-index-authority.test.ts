/**
 * The system index answers misses itself on a store only this process
 * writes (store/index.ts), on a real SQLite store through the layers
 * `forge serve` runs on (store/layers.ts): an unknown MAC or address costs
 * no store query once the index is loaded, every write through the server's
 * store is seen by the next lookup (add, MAC change, IP change, rename,
 * remove, import), and a failed re-read takes the authority away (unknown
 * lookups go to the store again) until the retried reload succeeds. The
 * store's lookups are counted by wrapping the real store's two methods.
 * PostgreSQL (a shared store) keeps falling through: store-postgres-scale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateNew } from '../../server/core/validate.js';
import type { System } from '../../server/core/model.js';
import { serverStore } from '../../server/store/layers.js';
import { overlayStore } from '../../server/store/overlay.js';
import type { Store } from '../../server/store/store.js';
import { sqliteFixture } from '../lib/sqlite-store.js';

const fx = sqliteFixture('fgindex-');
const sys = (name: string, mac: string, ip: string): System =>
  validateNew('system', { name, profile: 'p', interfaces: { eth0: { mac_address: mac, ip_address: ip, netmask: '255.255.255.0', static: true } } });

/** The real store with its lookups counted and its re-reads made to fail on demand. */
function counted(raw: Store): { store: Store; asked: () => number; failReads: (n: number) => void } {
  let asked = 0;
  let failing = 0;
  const store = overlayStore(raw, {
    findSystemByMac: (mac) => {
      asked++;
      return raw.findSystemByMac(mac);
    },
    findSystemByIp: (ip) => {
      asked++;
      return raw.findSystemByIp(ip);
    },
    systemDocs: (q) => {
      if (failing > 0) {
        failing--;
        return Promise.reject(new Error('disk I/O error (injected)'));
      }
      return raw.systemDocs(q);
    },
  });
  return { store, asked: () => asked, failReads: (n) => (failing = n) };
}

test('on SQLite a miss is the answer: no store query, and every write through the server store is seen', async () => {
  const raw = await fx.seeded();
  await raw.create('system', sys('a', '52:54:00:00:00:01', '10.0.0.1'));
  const c = counted(raw);
  const { store, index } = await serverStore(c.store, (e) => assert.fail(String(e)));
  try {
    await index.loaded();
    assert.equal(index.stats().authoritative, true);
    assert.equal((await store.findSystemByMac('52:54:00:00:00:01'))?.name, 'a');
    assert.equal(await store.findSystemByMac('52:54:00:99:99:99'), undefined);
    assert.equal(await store.findSystemByIp('10.0.0.99'), undefined);
    assert.equal(c.asked(), 0, 'the index asked the store');
    assert.equal(index.stats().absent, 2);

    await store.create('system', sys('b', '52:54:00:00:00:02', '10.0.0.2'));
    assert.equal((await store.findSystemByMac('52:54:00:00:00:02'))?.name, 'b');
    await store.update('system', 'b', (s) => ({ ...s, interfaces: { eth0: { ...s.interfaces['eth0']!, mac_address: '52:54:00:00:00:03', ip_address: '10.0.0.3' } } }));
    assert.equal(await store.findSystemByMac('52:54:00:00:00:02'), undefined, 'the old MAC is gone');
    assert.equal(await store.findSystemByIp('10.0.0.2'), undefined, 'the old address is gone');
    assert.equal((await store.findSystemByMac('52:54:00:00:00:03'))?.name, 'b');
    await store.rename('system', 'b', 'c');
    assert.equal((await store.findSystemByIp('10.0.0.3'))?.name, 'c');
    await store.remove('system', 'c');
    assert.equal(await store.findSystemByMac('52:54:00:00:00:03'), undefined);
    const doc = await store.exportAll();
    await store.importAll({ ...doc, systems: [...doc.systems, sys('d', '52:54:00:00:00:04', '10.0.0.4')] }, { replace: true });
    assert.equal((await store.findSystemByMac('52:54:00:00:00:04'))?.name, 'd');
    assert.equal(c.asked(), 0, 'the index asked the store');
    // What the index says is what the database holds.
    for (const m of ['52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:03', '52:54:00:00:00:04']) {
      assert.equal((await store.findSystemByMac(m))?.name, (await raw.findSystemByMac(m))?.name, m);
    }
  } finally {
    await store.close();
  }
});

test('a failed re-read takes the authority away until the retried reload succeeds', async () => {
  const raw = await fx.seeded();
  const c = counted(raw);
  const errors: unknown[] = [];
  const { store, index } = await serverStore(c.store, (e) => errors.push(e));
  try {
    await index.loaded();
    await store.create('system', sys('e', '52:54:00:00:00:04', '10.0.0.5'));
    c.failReads(1);
    // The write commits; the index's re-read of it fails (the write's caller hears of it).
    const moved = store.update('system', 'e', (s) => ({ ...s, interfaces: { eth0: { ...s.interfaces['eth0']!, mac_address: '52:54:00:00:00:05' } } }));
    await assert.rejects(moved, /injected/);
    assert.equal(index.stats().authoritative, false);
    // Not answered from memory now: the store says, and has it.
    assert.equal((await store.findSystemByMac('52:54:00:00:00:05'))?.name, 'e');
    assert.equal(await store.findSystemByMac('52:54:00:99:99:99'), undefined);
    assert.equal(c.asked(), 2);
    // The reload is retried by itself (no write needed); then misses are the index's again.
    const deadline = Date.now() + 30_000;
    while (!index.stats().authoritative) {
      assert.ok(Date.now() < deadline, `the index never reloaded (${errors.map(String).join('; ')})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(index.peekMac('52:54:00:00:00:05'), 'e', 'the reload has the write whose re-read failed');
    assert.equal(await store.findSystemByMac('52:54:00:99:99:99'), undefined);
    assert.equal(c.asked(), 2, 'the index asked the store after its reload');
  } finally {
    await store.close();
  }
});

test('a re-read of the text the index holds changes nothing, and still gives a MAC back that another system held in between', async () => {
  const raw = await fx.seeded();
  const docs = new Map<string, string>();
  const put = (s: System): void => void docs.set(s.name, JSON.stringify(s));
  const store = overlayStore(raw, {
    systemDocs: async (q) => {
      const names = 'names' in q ? q.names : [...docs.keys()].sort().filter((n) => n > q.after).slice(0, q.limit);
      return names.filter((n) => docs.has(n)).map((n) => ({ name: n, data: docs.get(n)! }));
    },
  });
  const a = sys('a', '52:54:00:00:00:0a', '10.0.0.10');
  put(a);
  const { SystemIndex } = await import('../../server/store/index.js');
  const index = new SystemIndex(store, (e) => assert.fail(String(e)));
  await index.start();
  try {
    await index.loaded();
    assert.equal(index.peekMac('52:54:00:00:00:0a'), 'a');
    await index.refresh(['a']); // the same text again: nothing changes
    assert.equal(index.peekMac('52:54:00:00:00:0a'), 'a');
    assert.equal(index.peekIp('10.0.0.10'), 'a');
    // Another system holds a's MAC for a moment in the index (writes seen out of order), then lets it go.
    put(sys('b', '52:54:00:00:00:0a', '10.0.0.11'));
    await index.refresh(['b']);
    assert.equal(index.peekMac('52:54:00:00:00:0a'), 'b');
    put(sys('b', '52:54:00:00:00:0b', '10.0.0.11'));
    await index.refresh(['b']);
    assert.equal(index.peekMac('52:54:00:00:00:0a'), undefined);
    // a's unchanged text re-read: its MAC is a's again (the unchanged-text shortcut must not skip this).
    await index.refresh(['a']);
    assert.equal(index.peekMac('52:54:00:00:00:0a'), 'a');
    assert.equal(index.peekMac('52:54:00:00:00:0b'), 'b');
  } finally {
    await index.stop();
    await raw.close();
  }
});
