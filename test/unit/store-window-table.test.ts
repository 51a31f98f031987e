/**
 * The object cache's whole-table install windows (store/cache.ts
 * WindowTable), which a shared store gets: a real SQLite store beneath,
 * given a change feed this test drives (so the cache takes it for shared,
 * as it takes PostgreSQL) and reads it can hold back or fail. What must
 * hold: once loaded, a window never read before is answered from memory;
 * a name a change touched is never answered from the table until it has
 * been re-read; a change heard while that re-read runs keeps the name
 * stale; a failed read, the feed's loss and a write that can touch every
 * window take the table out of use until a full load succeeds. Against two
 * real PostgreSQL servers: store-postgres-scale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InstallWindow } from '../../server/core/access.js';
import { validateNew } from '../../server/core/validate.js';
import { ObjectCache, cachedStore } from '../../server/store/cache.js';
import { overlayStore } from '../../server/store/overlay.js';
import type { Store } from '../../server/store/store.js';
import { sqliteFixture } from '../lib/sqlite-store.js';

const fx = sqliteFixture('fgwin-');

interface Feed {
  fn: (keys: string[]) => void;
  reset: () => void;
  down: () => void;
}

/** The real store with a fake feed, its window reads counted, and re-reads held or failed on demand. */
async function shared(): Promise<{
  raw: Store;
  store: Store;
  cache: ObjectCache;
  feed: () => Feed;
  reads: () => number;
  hold: () => () => void;
  failNext: () => void;
}> {
  const raw = await fx.seeded();
  let feed: Feed | undefined;
  let reads = 0;
  let gate: Promise<void> | undefined;
  let failing = false;
  const beneath = overlayStore(raw, {
    watchObjects: async (fn, reset, down) => {
      feed = { fn, reset, down };
      return async () => undefined;
    },
    installWindow: (s) => {
      reads++;
      return raw.installWindow(s);
    },
    installWindows: async (names) => {
      reads++;
      const found = await raw.installWindows(names);
      if (gate !== undefined) await gate;
      if (failing) {
        failing = false;
        throw new Error('connection lost (injected)');
      }
      return found;
    },
    installWindowsPage: async (after, limit) => {
      reads++;
      return raw.installWindowsPage(after, limit);
    },
  });
  const cache = new ObjectCache(beneath);
  await cache.start();
  const store = cachedStore(beneath, cache);
  return {
    raw,
    store,
    cache,
    feed: () => feed!,
    reads: () => reads,
    hold: () => {
      let open!: () => void;
      gate = new Promise((r) => (open = r));
      return () => {
        gate = undefined;
        open();
      };
    },
    failNext: () => (failing = true),
  };
}

const sys = (name: string, netboot = true) => validateNew('system', { name, profile: 'p', netboot_enabled: netboot });

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!ok()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('once loaded, windows never read before are answered from memory, and a missing one is known missing', async () => {
  const t = await shared();
  try {
    await t.raw.bulkCreate('system', [sys('a'), sys('b'), sys('c', false)]);
    // Written beneath the cache: only the feed can tell it, and a full load (reset) picks it all up.
    t.feed().reset();
    await t.cache.windowsLoaded();
    assert.deepEqual(t.cache.stats().windowTable, { kept: true, ready: true, windows: 2 });
    const r0 = t.reads();
    const a = await t.store.installWindow('a');
    assert.equal(a?.token, (await t.raw.installWindow('a'))?.token);
    assert.equal(await t.store.installWindow('c'), undefined, 'netboot never on: no window');
    assert.equal(await t.store.installWindow('nobody'), undefined);
    const page = await t.store.installWindows(['a', 'b', 'c']);
    assert.deepEqual(page.map((w: InstallWindow) => w.system).sort(), ['a', 'b']);
    assert.equal(t.reads(), r0, 'no store read once the table is loaded');
  } finally {
    await t.store.close();
  }
});

test('a name a change touched goes to the store until re-read; a change heard during the re-read keeps it stale', async () => {
  const t = await shared();
  try {
    await t.cache.windowsLoaded();
    await t.raw.create('system', sys('s'));
    const w1 = (await t.raw.installWindow('s'))!;
    const release = t.hold();
    t.feed().fn(['window:s']);
    // The re-read is held: the name is answered by the store (the new token), not by the table.
    assert.equal((await t.store.installWindow('s'))?.token, w1.token);
    // Another server rotates the token while the first re-read is in flight.
    const w2 = await t.raw.rotateInstallToken('s');
    t.feed().fn(['window:s']);
    release();
    // The first re-read (which may have read w1) cannot make the name fresh: the second change
    // marked it again, so it is read once more; the answer is w2 throughout.
    for (let i = 0; i < 20; i++) {
      assert.equal((await t.store.installWindow('s'))?.token, w2.token);
      await new Promise((r) => setTimeout(r, 2));
    }
    await until('the re-reads to settle', () => t.cache.stats().windowTable.windows === 1);
    const r0 = t.reads();
    assert.equal((await t.store.installWindow('s'))?.token, w2.token);
    assert.equal(t.reads(), r0, 'settled: answered from the table again');
  } finally {
    await t.store.close();
  }
});

test('this process\'s own writes are seen when they return, before any notification', async () => {
  const t = await shared();
  try {
    await t.cache.windowsLoaded();
    await t.store.create('system', sys('o'));
    const w = await t.store.installWindow('o');
    assert.ok(w !== undefined && w.closed === null, 'created with netboot on: an open window at once');
    const rotated = await t.store.rotateInstallToken('o');
    assert.equal((await t.store.installWindow('o'))?.token, rotated.token);
    await t.store.update('system', 'o', (s) => ({ ...s, netboot_enabled: false }));
    assert.notEqual((await t.store.installWindow('o'))?.closed ?? null, null, 'netboot off: the window is closing');
    await t.store.remove('system', 'o');
    assert.equal(await t.store.installWindow('o'), undefined, 'removed with its system');
  } finally {
    await t.store.close();
  }
});

test('a failed re-read, the feed\'s loss and a recursive remove take the table out of use until a full load', async () => {
  const t = await shared();
  try {
    await t.cache.windowsLoaded();
    await t.store.create('system', sys('f'));
    await until('the own write to be re-read', () => t.cache.stats().windowTable.windows === 1);
    // A failed re-read: out of use at once, then reloaded by itself (retried after a second).
    t.failNext();
    t.feed().fn(['window:f']);
    await until('the failure to take the table out of use', () => !t.cache.stats().windowTable.ready);
    const r0 = t.reads();
    assert.ok((await t.store.installWindow('f')) !== undefined);
    assert.ok(t.reads() > r0, 'out of use: the store answers');
    // The retry's timer is unreferenced (it must not hold a server's exit): poll instead of only awaiting.
    await until('the retried full load', () => t.cache.stats().windowTable.ready);
    assert.deepEqual(t.cache.stats().windowTable, { kept: true, ready: true, windows: 1 });
    // The feed lost: out of use (a change now would go unheard), back with the feed's reset.
    t.feed().down();
    assert.equal(t.cache.stats().windowTable.ready, false);
    await t.raw.rotateInstallToken('f');
    t.feed().reset();
    await t.cache.windowsLoaded();
    assert.equal((await t.store.installWindow('f'))?.token, (await t.raw.installWindow('f'))?.token, 'the reload has the change made while the feed was down');
    // A recursive remove of the profile takes every system and window with it.
    await t.store.remove('profile', 'p', { recursive: true });
    assert.equal(await t.store.installWindow('f'), undefined);
    await t.cache.windowsLoaded();
    assert.deepEqual(t.cache.stats().windowTable, { kept: true, ready: true, windows: 0 });
  } finally {
    await t.store.close();
  }
});

test('a SQLite store (no feed) keeps the per-name cache and no table', async () => {
  const raw = await fx.seeded();
  const cache = new ObjectCache(raw);
  await cache.start();
  const store = cachedStore(raw, cache);
  try {
    await store.create('system', sys('q'));
    assert.ok((await store.installWindow('q')) !== undefined);
    assert.deepEqual(cache.stats().windowTable, { kept: false, ready: false, windows: 0 });
  } finally {
    await store.close();
  }
});
