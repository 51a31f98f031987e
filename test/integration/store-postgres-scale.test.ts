/**
 * The scale paths of the PostgreSQL store (issue 19 part B), on a real
 * PostgreSQL 15 (test/lib/postgres.ts): concurrent one-by-one adds share
 * one statement (postgres/batch.ts) yet each keeps its own outcome: a batch
 * holding a refused add writes the others and tells only that one why,
 * naming the field; a bulk create's one-statement path falls back to the
 * item-by-item path and names the item.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { validateNew } from '../../server/core/validate.js';
import type { System } from '../../server/core/model.js';
import { ForgeError } from '../../server/errors.js';
import { openPgStore, type PgStore } from '../../server/store/postgres.js';
import { SystemIndex, indexedStore } from '../../server/store/index.js';
import { serverStore } from '../../server/store/layers.js';
import type { ListFilter } from '../../server/store/store.js';
import { startPostgres, type PgCluster } from '../lib/postgres.js';

let cluster: PgCluster | undefined;
before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  await cluster?.stop();
});

const sys = (name: string, mac: string, ip = ''): System =>
  validateNew('system', { name, profile: 'p', netboot_enabled: true, interfaces: { eth0: { mac_address: mac, ...(ip === '' ? {} : { ip_address: ip, static: true, netmask: '255.255.255.0' }) } } });

async function seeded(): Promise<PgStore> {
  const st = await openPgStore(await cluster!.createDatabase());
  await st.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' }));
  await st.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
  return st;
}

test('concurrent adds share statements, and a refused one fails alone, naming its field', async () => {
  const st = await seeded();
  try {
    await st.create('system', sys('taken', '52:54:00:00:99:99', '10.9.0.99'));
    for (let round = 0; round < 5; round++) {
      const adds = Array.from({ length: 16 }, (_, i) => {
        const n = round * 16 + i;
        // One add per round reuses an address the store already holds, one a name, one repeats a MAC of its own batch.
        if (i === 5) return sys(`r${n}`, '52:54:00:00:99:99');
        if (i === 9) return sys('taken', `52:54:00:01:00:${n.toString(16).padStart(2, '0')}`);
        if (i === 12) return sys(`r${n}`, `52:54:00:02:00:${(n - 1).toString(16).padStart(2, '0')}`);
        return sys(`r${n}`, `52:54:00:02:00:${n.toString(16).padStart(2, '0')}`);
      });
      const out = await Promise.allSettled(adds.map((s) => st.create('system', s)));
      const refused = out.flatMap((o, i) => (o.status === 'rejected' ? [[i, o.reason as ForgeError] as const] : []));
      // 11 and 12 race for one MAC: either may win, exactly one.
      const pair = refused.find(([i]) => i === 11 || i === 12)?.[0] ?? -1;
      assert.deepEqual(refused.map(([i, e]) => [i, e.code, e.field]), [
        [5, 'DUPLICATE_MAC', 'interfaces.eth0.mac_address'],
        [9, 'DUPLICATE_NAME', 'name'],
        [pair, 'DUPLICATE_MAC', 'interfaces.eth0.mac_address'],
      ], `round ${round}`);
      for (const [i, o] of out.entries()) {
        if (o.status !== 'fulfilled') continue;
        const stored = await st.get('system', adds[i]!.name);
        assert.equal(stored?.interfaces['eth0']?.mac_address, adds[i]!.interfaces['eth0']!.mac_address);
        assert.deepEqual(stored, o.value, 'what create returned is what is stored');
        assert.equal((await st.installWindow(adds[i]!.name))?.closed, null, 'netboot on: an open install window');
      }
    }
    assert.equal((await st.listNames('system')).length, 1 + 5 * 13);
  } finally {
    await st.close();
  }
});

test('a static address outside every stored subnet is refused through the one-statement path too', async () => {
  const st = await seeded();
  try {
    await st.create('subnet', validateNew('subnet', { name: 'lab', cidr: '10.9.0.0/24' }));
    const out = await Promise.allSettled([st.create('system', sys('in', '52:54:00:03:00:01', '10.9.0.5')), st.create('system', sys('out', '52:54:00:03:00:02', '10.8.0.5'))]);
    assert.equal(out[0].status, 'fulfilled');
    assert.equal(out[1].status, 'rejected');
    assert.equal(((out[1] as PromiseRejectedResult).reason as ForgeError).code, 'OUTSIDE_SUBNETS');
    await assert.rejects(st.bulkCreate('system', [sys('b1', '52:54:00:03:00:03', '10.9.0.6'), sys('b2', '52:54:00:03:00:04', '10.7.0.1')]), (e: ForgeError) => e.code === 'OUTSIDE_SUBNETS' && /item 1 \(b2\)/.test(e.message));
    assert.equal(await st.get('system', 'b1'), undefined, 'bulk: all or nothing');
    assert.equal(await st.bulkCreate('system', [sys('b1', '52:54:00:03:00:03', '10.9.0.6'), sys('b2', '52:54:00:03:00:04', '10.9.0.7')]), 2);
    assert.equal((await st.findSystemByMac('52:54:00:03:00:04'))?.name, 'b2');
  } finally {
    await st.close();
  }
});

test('the in-process index of two servers stays right under concurrent edits from both', async () => {
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  const mac = (n: number): string => `52:54:01:${hex((n >> 16) & 255)}:${hex((n >> 8) & 255)}:${hex(n & 255)}`;
  const url = await cluster!.createDatabase();
  const raw = [await openPgStore(url), await openPgStore(url)];
  const idx = raw.map((r) => new SystemIndex(r));
  const st = raw.map((r, i) => indexedStore(r, idx[i]!));
  try {
    await st[0]!.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' }));
    await st[0]!.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
    // Systems that exist before the indexes load, and edits while they load.
    await st[0]!.bulkCreate('system', Array.from({ length: 3000 }, (_, n) => sys(`pre${n}`, mac(0x10000 + n), `10.20.${n >> 8}.${n & 255}`)));
    for (const i of idx) await i.start();
    // Each server: adds, MAC moves, renames, removes, some of them on the other server's systems;
    // some collide (the store refuses one; the index must follow what was stored, not what was tried).
    const work = async (side: number): Promise<void> => {
      const s = st[side]!;
      const other = 1 - side;
      for (let k = 0; k < 150; k++) {
        const n = side * 1000 + k;
        const ops: Promise<unknown>[] = [
          s.create('system', sys(`s${side}-${k}`, mac(0x20000 + n))),
          s.update('system', `pre${k * 2 + side}`, (o) => ({ ...o, interfaces: { eth0: { ...o.interfaces['eth0']!, mac_address: mac(0x30000 + (k % 60)) } } })),
          k % 3 === 0 ? s.rename('system', `pre${1000 + k * 2 + side}`, `moved${side}-${k}`) : Promise.resolve(),
          k % 5 === 0 ? s.remove('system', `pre${2000 + k * 2 + other}`) : Promise.resolve(),
        ];
        await Promise.allSettled(ops);
      }
    };
    await Promise.all([work(0), work(1), ...idx.map((i) => i.loaded())]);
    // A last write on each side: once the other side's index holds it, it has applied everything
    // committed before (notifications arrive in commit order; re-reads are serialised).
    for (const [side, s] of st.entries()) await s.create('system', sys(`sentinel${side}`, mac(0x40000 + side)));
    for (const [side, i] of idx.entries()) {
      const deadline = Date.now() + 60_000;
      while (i.peekMac(mac(0x40000 + (1 - side))) !== `sentinel${1 - side}`) {
        assert.ok(Date.now() < deadline, `index ${side} never saw the other server's last write`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const truth = await raw[0]!.list('system');
    const macs = truth.flatMap((s) => Object.values(s.interfaces).filter((x) => x.mac_address !== '').map((x) => [x.mac_address, s.name] as const));
    assert.ok(truth.length > 3000 && macs.some(([, n]) => n.startsWith('moved')), 'the edits happened');
    for (const [side, i] of idx.entries()) {
      const stats = i.stats();
      assert.equal(stats.systems, truth.length, `index ${side}: systems`);
      assert.equal(stats.macs, macs.length, `index ${side}: MACs`);
      for (const [m, n] of macs) assert.equal(i.peekMac(m), n, `index ${side}: ${m}`);
      for (const s of truth) assert.deepEqual(await st[side]!.findSystemByMac(Object.values(s.interfaces)[0]!.mac_address), s, `index ${side}: document of ${s.name}`);
      for (const s of truth) {
        const a = s.interfaces['eth0']?.ip_address ?? '';
        if (a !== '') assert.equal(i.peekIp(a), s.name);
      }
    }
    // A MAC the index does not hold (stored by a write it has not heard of) is asked of the store.
    await raw[1]!.create('system', sys('fresh', mac(0x50000)));
    assert.equal((await st[0]!.findSystemByMac(mac(0x50000)))?.name, 'fresh');
  } finally {
    for (const s of st) await s.close();
  }
});

test('listPage on PostgreSQL pages what list answers, filters included (SQL-checked and document-checked)', async () => {
  const st = await seeded();
  try {
    await st.bulkCreate('system', Array.from({ length: 250 }, (_, n) => ({ ...sys(`h${n}`, `52:54:00:04:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`), comment: n % 7 === 0 ? 'seven' : '' })));
    for (const filter of <ListFilter[]>[{}, { name: 'h1*' }, { comment: 'sev*' }, { mac_address: '52:54:00:04:00:1*' }]) {
      for (const names of [false, true]) {
        const got: string[] = [];
        let after = '';
        for (;;) {
          const p = await st.listPage('system', filter, { after, limit: 40, names });
          got.push(...p.rows);
          if (p.next === undefined) break;
          after = p.next;
        }
        const want = await st.list('system', filter);
        assert.deepEqual(got, names ? want.map((s) => s.name) : want.map((s) => JSON.stringify(s)), JSON.stringify(filter));
      }
    }
  } finally {
    await st.close();
  }
});

test('the object cache of two servers: reads come from memory, and each server sees the other\'s edits through the feed', async () => {
  const url = await cluster!.createDatabase();
  const a = await serverStore(await openPgStore(url), () => undefined);
  const b = await serverStore(await openPgStore(url), () => undefined);
  try {
    await a.store.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' }));
    await a.store.create('profile', validateNew('profile', { name: 'p', distro: 'd', comment: 'one' }));
    await a.store.create('system', sys('s1', '52:54:02:00:00:01'));
    const w0 = await a.store.installWindow('s1');
    assert.ok(w0 !== undefined && w0.closed === null, 'a netboot system has an open window');
    // B reads each again until one whole round is answered from memory (so only the feed can
    // change it). A's creates notify B asynchronously: a notification that arrives after B's first
    // read drops that entry once (CI r2 saw hits 2, misses 4 with a fixed two rounds).
    let before = b.cache.stats();
    let round = 0;
    for (let k = 0; k < 50; k++) {
      const h0 = b.cache.stats().hits;
      assert.equal((await b.store.get('profile', 'p'))?.comment, 'one');
      assert.equal((await b.store.installWindow('s1'))?.token, w0.token);
      assert.deepEqual(await b.store.list('subnet'), []);
      before = b.cache.stats();
      round = before.hits - h0;
      if (round === 3) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(before.live && round === 3, `B answered a whole round from memory: ${JSON.stringify(before)}`);
    // A edits all three kinds; B must see each without any write of its own.
    await a.store.update('profile', 'p', (p) => ({ ...p, comment: 'two' }));
    const w1 = await a.store.rotateInstallToken('s1');
    await a.store.create('subnet', validateNew('subnet', { name: 'n', cidr: '10.30.0.0/24' }));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const p = await b.store.get('profile', 'p');
      const w = await b.store.installWindow('s1');
      const n = await b.store.list('subnet');
      if (p?.comment === 'two' && w?.token === w1.token && n.length === 1) break;
      assert.ok(Date.now() < deadline, `B still shows ${p?.comment} / ${w?.token === w0.token ? 'the old token' : 'a token'} / ${n.length} subnets`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // A's own writes are seen by A at once (dropped when the write returns, not when the feed says).
    await a.store.update('profile', 'p', (p) => ({ ...p, comment: 'three' }));
    assert.equal((await a.store.get('profile', 'p'))?.comment, 'three');
    await a.store.remove('profile', 'p', { recursive: true });
    assert.equal(await a.store.get('profile', 'p'), undefined);
    assert.equal(await a.store.installWindow('s1'), undefined, 'the window went with its system');
  } finally {
    await a.store.close();
    await b.store.close();
  }
});

test('install windows on PostgreSQL: a server answers windows it never read from its whole table, hears the other\'s changes, and reloads after its feed is cut', async () => {
  const url = await cluster!.createDatabase();
  const a = await serverStore(await openPgStore(url), () => undefined);
  const b = await serverStore(await openPgStore(url), () => undefined);
  try {
    await a.store.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' }));
    await a.store.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
    await a.store.bulkCreate('system', Array.from({ length: 30 }, (_, n) => sys(`t${n}`, `52:54:02:01:00:${n.toString(16).padStart(2, '0')}`)));
    const want = new Map((await a.store.installWindows(Array.from({ length: 30 }, (_, n) => `t${n}`))).map((w) => [w.system, w.token]));
    assert.equal(want.size, 30);
    // B hears of A's 30 windows by the feed and re-reads them; then none of them costs B a read.
    const settled = async (who: typeof b, what: string): Promise<void> => {
      const deadline = Date.now() + 30_000;
      while (!(who.cache.stats().windowTable.ready && who.cache.stats().windowTable.windows === 30)) {
        assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(who.cache.stats())}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await settled(b, 'B never held the 30 windows');
    const m0 = b.cache.stats().misses;
    for (const [name, token] of want) assert.equal((await b.store.installWindow(name))?.token, token, name);
    assert.equal(b.cache.stats().misses, m0, 'every window B was asked for came from its table');
    // A rotates one: B answers the new token once the notification is in, never a third one.
    const rotated = await a.store.rotateInstallToken('t7');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const t = (await b.store.installWindow('t7'))?.token;
      if (t === rotated.token) break;
      assert.equal(t, want.get('t7'), 'before the notification B may answer the old token, nothing else');
      assert.ok(Date.now() < deadline, 'B never saw the rotation');
      await new Promise((r) => setTimeout(r, 20));
    }
    // Cut the listening connections (what a database restart does): the tables go out of use,
    // a change made meanwhile is in the reload, and both are whole again.
    const db = /\/([^/?]+)(\?|$)/.exec(url)![1]!;
    const cut = await cluster!.sql('postgres', `SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE datname = '${db}' AND query ILIKE 'LISTEN%forge_objects%'`);
    assert.equal(cut.filter((r) => r['cut'] === true).length, 2, 'both servers\' object feeds were cut');
    const again = await a.store.rotateInstallToken('t8');
    await settled(b, 'B\'s table did not come back after its feed was cut');
    await settled(a, 'A\'s table did not come back after its feed was cut');
    const d2 = Date.now() + 30_000;
    while ((await b.store.installWindow('t8'))?.token !== again.token) {
      assert.ok(Date.now() < d2, 'B lost the change made while its feed was cut');
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await a.store.close();
    await b.store.close();
  }
});
