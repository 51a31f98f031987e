/**
 * The Store contract, run against both backends: SQLite (a real file) and
 * PostgreSQL 15 (a real cluster started by test/lib/postgres.ts). Every rule
 * a caller relies on is checked the same way on each: lookups and filters,
 * writes that fail alone, referential rules (unique names/MACs/IPs,
 * references, parent cycles, removal of what is referenced), read-modify-
 * write without lost updates, all-or-nothing batches, events and leases in
 * call order, discovery, export/import. Then PostgreSQL alone: what two
 * servers on one database do at once (two stores = two pools = two
 * servers), migrations raced, the event feed, clear connection errors; and
 * an export moved SQLite -> PostgreSQL -> SQLite unchanged.
 */
import type { InstallWindow, NewAudit } from '../../server/core/access.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ForgeError } from '../../server/errors.js';
import { openSqliteStore } from '../../server/store/sqlite.js';
import { openPgStore, PG_MIGRATIONS, type PgStore } from '../../server/store/postgres.js';
import type { ExportDocument, Store } from '../../server/store/store.js';
import type { ForgeEvent } from '../../server/core/model.js';
import { validateNew } from '../../server/core/validate.js';
import { startPostgres, type PgCluster } from '../lib/postgres.js';

const dirs: string[] = [];
const stores: Store[] = [];
let cluster: PgCluster | undefined;

before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  await cluster?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const backends: Record<string, () => Promise<Store>> = {
  sqlite: async () => {
    const d = mkdtempSync(join(tmpdir(), 'forge-contract-'));
    dirs.push(d);
    const st = openSqliteStore(d);
    stores.push(st);
    return st;
  },
  postgres: async () => {
    const st = await openPgStore(await cluster!.createDatabase());
    stores.push(st);
    return st;
  },
};

const code = (r: PromiseSettledResult<unknown>): string => (r.status === 'rejected' ? (r.reason instanceof ForgeError ? r.reason.code : String(r.reason)) : 'ok');

async function rejects(p: Promise<unknown>, want: string, field?: string): Promise<ForgeError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ForgeError, `expected ForgeError ${want}, got ${String(e)}`);
    assert.equal(e.code, want, e.message);
    if (field !== undefined) assert.equal(e.field, field);
    return e;
  }
  assert.fail(`expected ${want}, the write succeeded`);
}

const sys = (name: string, profile: string, ifs: Record<string, Record<string, string>> = {}) => validateNew('system', { name, profile, interfaces: ifs });

async function seeded(open: () => Promise<Store>): Promise<Store> {
  const st = await open();
  await st.create('distro', validateNew('distro', { name: 'd', kernel: '/k', initrd: '/i' }));
  await st.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
  return st;
}

for (const [backend, open] of Object.entries(backends)) {
  describe(`Store contract: ${backend}`, () => {
    test('lookups by MAC and IP, names in byte order, filters (exact, glob, class, document fields)', async () => {
      const st = await seeded(open);
      await st.create('system', sys('s', 'p', { eth0: { mac_address: '52:54:00:00:00:09', ip_address: '10.0.0.9' }, eth1: {} }));
      await st.create('system', sys('t', 'p', { eth0: {} }));
      await st.create('system', sys('T-upper', 'p'));
      await st.create('system', sys('a.b', 'p'));
      assert.equal((await st.findSystemByMac('52:54:00:00:00:09'))?.name, 's');
      assert.equal((await st.findSystemByIp('10.0.0.9'))?.name, 's');
      assert.equal(await st.findSystemByMac('52:54:00:00:00:08'), undefined);
      assert.equal(await st.macInUse('52:54:00:00:00:09'), true);
      assert.equal(await st.macInUse('52:54:00:00:00:08'), false);
      assert.deepEqual(await st.listNames('system'), ['T-upper', 'a.b', 's', 't'], 'byte order, whatever the locale');
      assert.deepEqual(await st.listNames('system', { mac_address: '52:54:00:00:00:09' }), ['s']);
      assert.deepEqual(await st.listNames('system', { mac_address: '52:54:00:*' }), ['s']);
      assert.deepEqual(await st.listNames('system', { name: '[t]' }), ['t']);
      assert.deepEqual(await st.listNames('system', { name: 'a.?' }), ['a.b']);
      assert.deepEqual(await st.listNames('system', { name: 'a.' }), [], 'a dot is a dot');
      assert.deepEqual(await st.listNames('system', { ip_address: '10.0.0.9', name: 's' }), ['s']);
      assert.deepEqual(await st.listNames('system', { netboot_enabled: 'true', name: 't*' }), ['t'], 'document field');
      assert.deepEqual((await st.list('system', { profile: 'p', name: 's' })).map((s) => s.interfaces['eth0']?.ip_address), ['10.0.0.9']);
      assert.deepEqual(await st.listNames('profile', { distro: 'd' }), ['p']);
      assert.equal((await st.mustGet('system', 's')).profile, 'p');
      await rejects(st.mustGet('system', 'nope'), 'NOT_FOUND', 'name');
    });

    test('a write and its audit row (WriteOptions.audit) commit together or not at all', async () => {
      const st = await seeded(open);
      const entry = (object: string): NewAudit => ({ actor: 'bootstrap', role: 'admin', client: '127.0.0.1', action: 'POST /api/v1/systems', object_type: 'system', object, detail: { status: 201 } });
      // Concurrent adds (PostgreSQL groups them into one statement): each its own row.
      await Promise.all(['au1', 'au2', 'au3'].map((n, i) => st.create('system', sys(n, 'p', { eth0: { mac_address: `52:54:00:00:0a:0${i}` } }), { audit: entry(n) })));
      await st.update('system', 'au1', (o) => ({ ...o, comment: 'x' }), { audit: entry('au1') });
      await st.bulkCreate('system', [sys('au4', 'p'), sys('au5', 'p')], { audit: entry('') });
      // Refused (duplicate MAC): no system, no row.
      await rejects(st.create('system', sys('au6', 'p', { eth0: { mac_address: '52:54:00:00:0a:00' } }), { audit: entry('au6') }), 'DUPLICATE_MAC', 'interfaces.eth0.mac_address');
      // An audit row the database refuses (actor NOT NULL) takes its write with it.
      const broken = { ...entry('au7'), actor: null } as unknown as NewAudit;
      await assert.rejects(st.create('system', sys('au7', 'p', { eth0: { mac_address: '52:54:00:00:0a:07' } }), { audit: broken }));
      await assert.rejects(st.create('system', sys('au8', 'p', { eth0: { mac_address: 'random' } }), { audit: broken }));
      assert.equal(await st.get('system', 'au7'), undefined, 'the write went with its refused audit row');
      assert.equal(await st.get('system', 'au6'), undefined);
      assert.deepEqual(await st.listNames('system', { name: 'au8' }), [], 'the checked path too');
      const rows = (await st.listAudit()).map((e) => e.object).sort();
      assert.deepEqual(rows, ['', 'au1', 'au1', 'au2', 'au3']);
    });

    test('install windows read one by one and a page at a time agree', async () => {
      const st = await seeded(open);
      await st.create('system', { ...sys('w1', 'p'), netboot_enabled: true });
      await st.create('system', { ...sys('w2', 'p'), netboot_enabled: true });
      await st.create('system', { ...sys('w3', 'p'), netboot_enabled: false });
      const one = await Promise.all(['w1', 'w2', 'w3', 'nope'].map((n) => st.installWindow(n)));
      assert.ok(one[0] !== undefined && one[1] !== undefined && one[0].token !== one[1].token, 'netboot systems have windows of their own');
      const page = await st.installWindows(['w1', 'w2', 'w3', 'nope']);
      assert.deepEqual([...page].sort((a, b) => a.system.localeCompare(b.system)), one.filter((w) => w !== undefined));
      assert.deepEqual(await st.installWindows([]), []);
      // The whole table a page at a time (the object cache loads it so), in name order, byte-wise.
      await st.create('system', { ...sys('W0', 'p'), netboot_enabled: true });
      const paged: InstallWindow[] = [];
      for (let after = ''; ; ) {
        const p = await st.installWindowsPage(after, 2);
        paged.push(...p);
        if (p.length < 2) break;
        after = p[p.length - 1]!.system;
      }
      assert.deepEqual(paged.map((w) => w.system), ['W0', 'w1', 'w2']);
      assert.deepEqual(paged.slice(1), [...page].sort((a, b) => a.system.localeCompare(b.system)));
      assert.deepEqual(await st.installWindowsPage('w2', 10), []);
    });

    test('concurrent writes succeed or fail on their own', async () => {
      const st = await seeded(open);
      const mk = (name: string, mac: string) => st.create('system', sys(name, 'p', { eth0: { mac_address: mac } }));
      const results = await Promise.allSettled([
        mk('a', '52:54:00:00:01:01'),
        mk('b', '52:54:00:00:01:01'), // duplicate MAC of a
        mk('c', '52:54:00:00:01:03'),
        mk('a', '52:54:00:00:01:04'), // duplicate name
        st.create('system', sys('e', 'missing')),
        mk('f', 'random'),
      ]);
      const got = results.map(code);
      // Independent writes always end the same way; the three that conflict (the first a with b on
      // the MAC, with the second a on the name) end as one of the two serial orders allow: in
      // SQLite's single writer always the first, on PostgreSQL whichever transaction commits first.
      assert.deepEqual([got[2], got[4], got[5]], ['ok', 'REFERENCE_MISSING', 'ok']);
      if (got[0] === 'ok') {
        assert.deepEqual([got[1], got[3]], ['DUPLICATE_MAC', 'DUPLICATE_NAME'], got.join(' '));
        assert.deepEqual(await st.listNames('system'), ['a', 'c', 'f']);
        assert.equal((await st.findSystemByMac('52:54:00:00:01:01'))?.name, 'a', "b's failed interface row did not leak");
        assert.equal(await st.findSystemByMac('52:54:00:00:01:04'), undefined);
      } else {
        assert.ok(got[0] === 'DUPLICATE_MAC' || got[0] === 'DUPLICATE_NAME', got.join(' '));
        assert.deepEqual([got[1], got[3]], ['ok', 'ok'], got.join(' '));
        assert.deepEqual(await st.listNames('system'), ['a', 'b', 'c', 'f']);
        assert.equal((await st.findSystemByMac('52:54:00:00:01:01'))?.name, 'b', "the first a's failed interface row did not leak");
        assert.equal((await st.findSystemByMac('52:54:00:00:01:04'))?.name, 'a');
      }
      const f = await st.mustGet('system', 'f');
      assert.match(f.interfaces['eth0']!.mac_address, /^52:54:00(:[0-9a-f]{2}){3}$/, 'random MAC resolved and stored');
      assert.equal((await st.findSystemByMac(f.interfaces['eth0']!.mac_address))?.name, 'f');
    });

    test('duplicate MAC and IP name the field and the owner; an edit may keep its own', async () => {
      const st = await seeded(open);
      await st.create('system', sys('a', 'p', { eth0: { mac_address: '52:54:00:00:02:01', ip_address: '10.0.2.1' } }));
      const e1 = await rejects(st.create('system', sys('b', 'p', { eth1: { mac_address: '52:54:00:00:02:01' } })), 'DUPLICATE_MAC', 'interfaces.eth1.mac_address');
      assert.match(e1.message, /system a \(eth0\)/);
      await rejects(st.create('system', sys('b', 'p', { eth0: { ip_address: '10.0.2.1' } })), 'DUPLICATE_IP', 'interfaces.eth0.ip_address');
      const a = await st.mustGet('system', 'a');
      a.comment = 'edited';
      await st.replace('system', a);
      assert.equal((await st.findSystemByIp('10.0.2.1'))?.comment, 'edited');
      await rejects(st.replace('system', sys('zz', 'p')), 'NOT_FOUND');
    });

    test('references: must exist; parents never form a cycle', async () => {
      const st = await seeded(open);
      await rejects(st.create('profile', validateNew('profile', { name: 'x', distro: 'nod' })), 'REFERENCE_MISSING', 'distro');
      await rejects(st.create('profile', validateNew('profile', { name: 'x', parent: 'nop' })), 'REFERENCE_MISSING', 'parent');
      await st.create('profile', validateNew('profile', { name: 'c1', parent: 'p' }));
      await st.create('profile', validateNew('profile', { name: 'c2', parent: 'c1' }));
      await rejects(st.update('profile', 'p', (cur) => ({ ...cur, distro: '', parent: 'c2' })), 'PARENT_CYCLE', 'parent');
      await rejects(st.update('profile', 'c1', (cur) => ({ ...cur, parent: 'c1' })), 'PARENT_CYCLE', 'parent');
      assert.equal((await st.mustGet('profile', 'p')).parent, '', 'nothing changed');
      await rejects(st.update('system', 'nope', (c) => c), 'NOT_FOUND');
      await rejects(st.update('profile', 'c1', (cur) => ({ ...cur, name: 'other' })), 'INVALID_FIELD', 'name');
    });

    test('remove: refused while referenced, recursive removes dependants first; rename carries references', async () => {
      const st = await seeded(open);
      await st.create('profile', validateNew('profile', { name: 'c', parent: 'p' }));
      await st.create('system', sys('s', 'c', { eth0: { mac_address: '52:54:00:00:03:01' } }));
      await st.addEvent({ system: 's', type: 'dhcp_offer', source: 'dhcp' });
      const e = await rejects(st.remove('distro', 'd'), 'REFERENCED', 'name');
      assert.match(e.message, /profile p/);
      await rejects(st.rename('profile', 'c', 'p'), 'DUPLICATE_NAME', 'new_name');
      await rejects(st.rename('profile', 'zz', 'yy'), 'NOT_FOUND');
      await st.rename('distro', 'd', 'd2');
      await st.rename('profile', 'p', 'p2');
      await st.rename('profile', 'c', 'c2');
      await st.rename('system', 's', 's2');
      assert.equal((await st.mustGet('profile', 'p2')).distro, 'd2');
      assert.equal((await st.mustGet('profile', 'c2')).parent, 'p2');
      assert.equal((await st.mustGet('system', 's2')).profile, 'c2');
      assert.deepEqual(await st.listNames('profile', { distro: 'd2' }), ['p2'], 'the column followed');
      assert.deepEqual(await st.listNames('system', { profile: 'c2' }), ['s2']);
      assert.equal((await st.findSystemByMac('52:54:00:00:03:01'))?.name, 's2', 'interfaces followed');
      assert.equal((await st.listEvents('s2')).length, 1, 'events followed');
      const removed = await st.remove('distro', 'd2', { recursive: true });
      assert.deepEqual(removed, ['system s2', 'profile c2', 'profile p2', 'distro d2']);
      assert.equal(await st.findSystemByMac('52:54:00:00:03:01'), undefined);
      assert.deepEqual(await st.listEvents('s2'), [], "a removed system's timeline goes with it");
      await rejects(st.remove('distro', 'd2'), 'NOT_FOUND');
    });

    test('concurrent partial updates of one object lose nothing', async () => {
      const st = await seeded(open);
      await st.create('system', sys('s', 'p'));
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          st.update('system', 's', (cur) => ({ ...cur, autoinstall_meta: { ...cur.autoinstall_meta, [`k${i}`]: String(i) } })),
        ),
      );
      assert.equal(Object.keys((await st.mustGet('system', 's')).autoinstall_meta).length, 20);
    });

    test('bulk create is all or nothing, profiles of one batch in any order', async () => {
      const st = await seeded(open);
      await rejects(st.bulkCreate('system', [sys('b1', 'p'), sys('b2', 'p', { eth0: { mac_address: '52:54:00:00:04:01' } }), sys('b3', 'nope')]), 'REFERENCE_MISSING');
      assert.deepEqual(await st.listNames('system'), []);
      assert.equal(await st.findSystemByMac('52:54:00:00:04:01'), undefined);
      const n = await st.bulkCreate('profile', [validateNew('profile', { name: 'kid', parent: 'mid' }), validateNew('profile', { name: 'mid', parent: 'p' })]);
      assert.equal(n, 2);
      assert.deepEqual(await st.listNames('profile'), ['kid', 'mid', 'p']);
    });

    test('events and leases, in call order', async () => {
      const st = await seeded(open);
      await st.create('system', sys('s', 'p'));
      await Promise.all([
        st.addEvent({ system: 's', type: 'dhcp_offer', source: 'dhcp' }),
        st.addEvent({ system: 's', type: 'loader_fetched', source: 'tftp', detail: { file: 'undionly.kpxe' } }),
        st.addEvent({ system: 'other', type: 'dhcp_ack', source: 'dhcp' }),
      ]);
      const evs = await st.listEvents('s');
      assert.deepEqual(evs.map((e) => e.type), ['dhcp_offer', 'loader_fetched']);
      assert.deepEqual(evs[1]!.detail, { file: 'undionly.kpxe' });
      assert.ok(evs[0]!.id < evs[1]!.id);
      assert.deepEqual((await st.listEvents('s', { limit: 1 })).map((e) => e.type), ['loader_fetched']);
      assert.deepEqual((await st.eventsAfter(evs[0]!.id, 10)).map((e) => e.type), ['loader_fetched', 'dhcp_ack']);
      await st.rename('system', 's', 's2');
      assert.deepEqual((await st.latestEvents()).map((e) => [e.system, e.type]), [['other', 'dhcp_ack'], ['s2', 'loader_fetched']]);
      const l = { mac: '52:54:00:00:00:01', ip: '10.0.0.5', state: 'bound' as const, expires: 1, hostname: 'h', system: 's2' };
      await Promise.all([st.putLease(l), st.putLease({ ...l, ip: '10.0.0.6', expires: 2 })]);
      assert.deepEqual(await st.getLease(l.mac), { ...l, ip: '10.0.0.6', expires: 2 }, 'the later write wins');
      assert.equal((await st.getLeaseByIp('10.0.0.6'))?.mac, l.mac);
      assert.equal(await st.getLeaseByIp('10.0.0.5'), undefined);
      assert.equal((await st.listLeases()).length, 1);
    });

    test('discovered machines and rules', async () => {
      const st = await seeded(open);
      const d = {
        name: 'disc-525400aabbcc',
        mac: '52:54:00:aa:bb:cc',
        status: 'discovered' as const,
        inventory: {} as never,
        facts: {} as never,
        first_seen: '2026-01-01T00:00:00Z',
        last_seen: '2026-01-01T00:00:00Z',
        reports: 1,
        instruction: { action: 'wait' } as never,
        system: '',
        rule: '',
      };
      await st.putDiscovered(d);
      await st.putDiscovered({ ...d, reports: 2 });
      assert.equal((await st.getDiscoveredByMac(d.mac))?.reports, 2);
      assert.equal(await st.countDiscovered(), 1);
      assert.deepEqual((await st.listDiscovered()).map((x) => x.name), [d.name]);
      await st.removeDiscovered(d.name);
      await rejects(st.removeDiscovered(d.name), 'NOT_FOUND');
      const rule = { name: 'r2', priority: 10, match: 'true', profile: 'p', hostname: '', max: 0, used: 0, comment: '' };
      await st.putRule(rule, true);
      await st.putRule({ ...rule, name: 'r1', priority: 20 }, true);
      await st.putRule({ ...rule, name: 'r0', priority: 10 }, true);
      await rejects(st.putRule(rule, true), 'DUPLICATE_NAME');
      await st.putRule({ ...rule, used: 3 }, false);
      assert.deepEqual((await st.listRules()).map((r) => r.name), ['r0', 'r2', 'r1']);
      assert.equal((await st.getRule('r2'))?.used, 3);
      await st.removeRule('r2');
      await rejects(st.removeRule('r2'), 'NOT_FOUND');
    });

    test('export / import: all or nothing, refuses existing names unless replace, keeps times', async () => {
      const st = await seeded(open);
      await st.create('system', sys('s', 'p', { eth0: { mac_address: '52:54:00:00:05:01' } }));
      const doc = await st.exportAll();
      assert.deepEqual(doc.systems.map((s) => s.name), ['s']);
      await rejects(st.importAll(doc), 'DUPLICATE_NAME');
      const r = await st.importAll(doc, { replace: true });
      assert.deepEqual(r, { distros: 1, profiles: 1, systems: 1, subnets: 0 });
      assert.equal((await st.mustGet('system', 's')).mtime, doc.systems[0]!.mtime, 'times kept');
      const fresh = await open();
      await fresh.importAll(doc);
      assert.deepEqual(strip(await fresh.exportAll()), strip(doc));
      assert.equal(await st.integrityCheck(), 'ok');
    });

    test('subnets: overlap refused naming cidr, static addresses outside every subnet refused once any exists, export/import', async () => {
      const st = await seeded(open);
      const sn = (o: Record<string, unknown>) => validateNew('subnet', o);
      await st.create('subnet', sn({ name: 'a', cidr: '10.96.0.0/25', router: '10.96.0.1' }));
      await st.create('subnet', sn({ name: 'b', cidr: '10.96.0.128/25' }));
      const e = await rejects(st.create('subnet', sn({ name: 'c', cidr: '10.96.0.64/26' })), 'SUBNET_OVERLAP', 'cidr');
      assert.match(e.message, /overlaps subnet a \(10\.96\.0\.0\/25\)/);
      await rejects(st.update('subnet', 'b', (cur) => ({ ...cur, cidr: '10.96.0.0/24' })), 'SUBNET_OVERLAP', 'cidr');
      assert.equal((await st.get('subnet', 'b'))?.cidr, '10.96.0.128/25', 'the refused edit changed nothing');
      await rejects(st.create('system', sys('out', 'p', { eth0: { ip_address: '10.97.0.5', static: 'true' } })), 'OUTSIDE_SUBNETS', 'interfaces.eth0.ip_address');
      await st.create('system', sys('in', 'p', { eth0: { ip_address: '10.96.0.130', static: 'true' } }));
      await st.create('system', sys('dyn', 'p', { eth0: { ip_address: '10.97.0.6' } }));
      // An unrelated edit of a system whose address predates the rule is not refused.
      await st.remove('subnet', 'b');
      await st.update('system', 'in', (cur) => ({ ...cur, comment: 'kept' }));
      await rejects(st.update('system', 'in', (cur) => ({ ...cur, interfaces: { eth0: { ...cur.interfaces['eth0']!, ip_address: '10.96.0.131' } } })), 'OUTSIDE_SUBNETS');
      await st.rename('subnet', 'a', 'lab');
      assert.deepEqual(await st.listNames('subnet'), ['lab']);
      assert.deepEqual(await st.listNames('subnet', { cidr: '10.96.*' }), ['lab']);
      const doc = await st.exportAll();
      assert.deepEqual(doc.subnets?.map((x) => x.name), ['lab']);
      const fresh = await open();
      assert.equal((await fresh.importAll(doc)).subnets, 1);
      assert.equal((await fresh.get('subnet', 'lab'))?.router, '10.96.0.1');
    });
  });
}

/** `postgres://forge@/forge_1_2?host=...` -> `forge_1_2`. */
const dbName = (url: string): string => /\/([^/?]+)(\?|$)/.exec(url)![1]!;

const strip = (d: ExportDocument): string => JSON.stringify({ ...d, exported: '' });

describe('SQLite -> PostgreSQL -> SQLite', () => {
  test('an export moves between the backends unchanged, byte for byte', async () => {
    const a = await seeded(backends['sqlite']!);
    await a.create('profile', validateNew('profile', { name: 'web', parent: 'p', kernel_options: 'console=ttyS0 quiet', autoinstall_meta: { tz: 'UTC' } }));
    for (let i = 0; i < 50; i++) {
      await a.create('system', sys(`web${String(i).padStart(2, '0')}`, 'web', { eth0: { mac_address: `52:54:00:10:00:${i.toString(16).padStart(2, '0')}`, ip_address: `10.1.0.${i + 10}` }, eth1: {} }));
    }
    await a.create('system', sys('Zed_9.x-y', 'p'));
    const docA = await a.exportAll();
    const b = await backends['postgres']!();
    assert.deepEqual(await b.importAll(docA), { distros: 1, profiles: 2, systems: 51, subnets: 0 });
    const docB = await b.exportAll();
    assert.equal(strip(docB), strip(docA));
    assert.equal((await b.findSystemByMac('52:54:00:10:00:07'))?.name, 'web07');
    const c = await backends['sqlite']!();
    await c.importAll(docB);
    assert.equal(strip(await c.exportAll()), strip(docA));
  });
});

describe('PostgreSQL: several servers on one database', () => {
  /** Two stores with their own pools: what two forge servers are to the database. */
  async function pair(): Promise<[PgStore, PgStore, string]> {
    const url = await cluster!.createDatabase();
    const [a, b] = await Promise.all([openPgStore(url), openPgStore(url)]);
    stores.push(a, b);
    return [a, b, url];
  }

  test('two servers migrating one new database at once: one schema, every version once', async () => {
    const [a, , url] = await pair();
    assert.equal(await a.schemaVersion(), PG_MIGRATIONS[PG_MIGRATIONS.length - 1]!.version);
    const rows = await cluster!.sql(dbName(url), 'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version');
    assert.ok(rows.every((r) => r['n'] === 1));
    assert.equal(rows.length, PG_MIGRATIONS.length);
  });

  test('migration 5: a subnet stored before subnets named their servers names nobody, key order kept', async () => {
    const [a, , url] = await pair();
    const fresh = validateNew('subnet', { name: 'lab', cidr: '10.96.0.0/24' });
    const old = { ...fresh } as Record<string, unknown>;
    delete old['servers'];
    // The row as version 4 wrote it, and the schema as it was before version 5.
    await cluster!.sql(dbName(url), `INSERT INTO subnets (name, network, broadcast, data) VALUES ('lab', ${0x0a600000}, ${0x0a6000ff}, '${JSON.stringify(old)}')`);
    await cluster!.sql(dbName(url), 'DELETE FROM schema_migrations WHERE version = 5');
    const again = await openPgStore(url);
    stores.push(again);
    assert.deepEqual((await again.get('subnet', 'lab'))?.servers, []);
    const rows = await cluster!.sql(dbName(url), "SELECT data FROM subnets WHERE name = 'lab'");
    assert.equal(rows[0]?.['data'], JSON.stringify(fresh), 'the document a new subnet has');
    assert.equal(await a.schemaVersion(), PG_MIGRATIONS[PG_MIGRATIONS.length - 1]!.version);
  });

  test('concurrent creates of one name, one MAC, one IP from two servers: exactly one wins each', async () => {
    const [a, b] = await pair();
    await a.create('distro', validateNew('distro', { name: 'd', kernel: '/k', initrd: '/i' }));
    await a.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
    for (let round = 0; round < 10; round++) {
      const byName = await Promise.allSettled([a.create('system', sys(`n${round}`, 'p')), b.create('system', sys(`n${round}`, 'p'))]);
      assert.deepEqual(byName.map(code).sort(), ['DUPLICATE_NAME', 'ok'], `name, round ${round}`);
      const mac = `52:54:00:20:00:${round.toString(16).padStart(2, '0')}`;
      const byMac = await Promise.allSettled([a.create('system', sys(`ma${round}`, 'p', { eth0: { mac_address: mac } })), b.create('system', sys(`mb${round}`, 'p', { eth0: { mac_address: mac } }))]);
      assert.deepEqual(byMac.map(code).sort(), ['DUPLICATE_MAC', 'ok'], `MAC, round ${round}`);
      const loser = byMac.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.match((loser.reason as Error).message, /already used by system m[ab]\d+ \(eth0\)/, 'the loser is told who has it');
      const ip = `10.2.0.${round + 1}`;
      const byIp = await Promise.allSettled([a.create('system', sys(`ia${round}`, 'p', { eth0: { ip_address: ip } })), b.create('system', sys(`ib${round}`, 'p', { eth0: { ip_address: ip } }))]);
      assert.deepEqual(byIp.map(code).sort(), ['DUPLICATE_IP', 'ok'], `IP, round ${round}`);
    }
    assert.equal((await b.listNames('system')).length, 30, 'one of each pair, seen from either server');
    assert.equal((await a.listNames('system')).length, 30);
  });

  test('two servers storing overlapping subnets at once: the database lets exactly one in', async () => {
    const [a, b] = await pair();
    for (let round = 0; round < 10; round++) {
      const r = await Promise.allSettled([
        a.create('subnet', validateNew('subnet', { name: `a${round}`, cidr: `10.${100 + round}.0.0/24` })),
        b.create('subnet', validateNew('subnet', { name: `b${round}`, cidr: `10.${100 + round}.0.128/25` })),
      ]);
      assert.deepEqual(r.map(code).sort(), ['SUBNET_OVERLAP', 'ok'], `round ${round}`);
    }
    assert.equal((await b.listNames('subnet')).length, 10);
  });

  test('two servers re-parenting at once cannot close a cycle', async () => {
    const [a, b] = await pair();
    await a.create('distro', validateNew('distro', { name: 'd', kernel: '/k', initrd: '/i' }));
    for (let round = 0; round < 10; round++) {
      const x = `x${round}`;
      const y = `y${round}`;
      await a.create('profile', validateNew('profile', { name: x, distro: 'd' }));
      await a.create('profile', validateNew('profile', { name: y, distro: 'd' }));
      const r = await Promise.allSettled([
        a.update('profile', x, (c) => ({ ...c, distro: '', parent: y })),
        b.update('profile', y, (c) => ({ ...c, distro: '', parent: x })),
      ]);
      assert.deepEqual(r.map(code).sort(), ['PARENT_CYCLE', 'ok'], `round ${round}`);
    }
  });

  test('a removal racing a new reference: the database refuses one, nothing dangles', async () => {
    const [a, b] = await pair();
    await a.create('distro', validateNew('distro', { name: 'd', kernel: '/k', initrd: '/i' }));
    for (let round = 0; round < 10; round++) {
      await a.create('profile', validateNew('profile', { name: `p${round}`, distro: 'd' }));
      const r = await Promise.allSettled([a.remove('profile', `p${round}`), b.create('system', sys(`s${round}`, `p${round}`))]);
      const [rm, add] = r.map(code);
      assert.ok((rm === 'ok' && add === 'REFERENCE_MISSING') || (rm === 'REFERENCED' && add === 'ok'), `round ${round}: remove ${rm}, add ${add}`);
    }
    assert.equal(await a.integrityCheck(), 'ok');
  });

  test("each server's event feed carries both servers' events, in id order", async () => {
    const [a, b] = await pair();
    const seenA: ForgeEvent[] = [];
    const seenB: ForgeEvent[] = [];
    a.watchEvents((ev) => seenA.push(ev));
    b.watchEvents((ev) => seenB.push(ev));
    await new Promise((r) => setTimeout(r, 300)); // both LISTENing
    const writes: Promise<ForgeEvent>[] = [];
    for (let i = 0; i < 20; i++) writes.push((i % 2 === 0 ? a : b).addEvent({ system: `s${i % 3}`, type: 'dhcp_offer', source: i % 2 === 0 ? 'a' : 'b' }));
    const written = await Promise.all(writes);
    const deadline = Date.now() + 10_000;
    while ((seenA.length < 20 || seenB.length < 20) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const ids = written.map((e) => e.id).sort((x, y) => x - y);
    assert.deepEqual(seenA.map((e) => e.id), ids, 'server a saw all 20, in id order');
    assert.deepEqual(seenB.map((e) => e.id), ids, 'server b saw all 20, in id order');
    assert.deepEqual(new Set(seenA.map((e) => e.source)), new Set(['a', 'b']));
  });

  test('dynamic addresses claimed from two servers at once: one holder per address', async () => {
    const [a, b] = await pair();
    const now = Date.now();
    for (let i = 0; i < 20; i++) {
      const ip = `10.5.0.${i + 1}`;
      const r = await Promise.all([a.claimAddress(ip, `52:54:00:60:00:${i.toString(16).padStart(2, '0')}`, now + 60_000, now), b.claimAddress(ip, `52:54:00:61:00:${i.toString(16).padStart(2, '0')}`, now + 60_000, now)]);
      assert.deepEqual(r.map(String).sort(), ['false', 'true'], `address ${ip}`);
    }
    const m = '52:54:00:62:00:01';
    assert.equal(await a.claimAddress('10.5.1.1', m, now + 1000, now), true);
    assert.equal(await b.claimAddress('10.5.1.1', m, now + 500, now), true, 'the holder claims again (the other server answering the same client)');
    assert.equal(await b.claimAddress('10.5.1.1', 'ff:00:00:00:00:01', now + 5000, now + 900), false, 'still held: the shorter claim did not shorten it');
    assert.equal(await b.claimAddress('10.5.1.1', 'ff:00:00:00:00:01', now + 5000, now + 1001), true, 'expired: free for another client');
    assert.equal(await a.claimAddress('10.5.1.2', m, now + 1000, now), true);
    assert.equal(await a.claimAddress('10.5.1.3', m, now + 1000, now), true);
    assert.equal(await b.claimAddress('10.5.1.2', 'ff:00:00:00:00:02', now + 1000, now), true, 'a MAC holds one address: its claim of .2 went back when it took .3');
    await a.freeAddress('10.5.1.3', m, now + 60_000);
    assert.equal(await b.claimAddress('10.5.1.3', m, now + 1000, now), false, 'declined: held for nobody, not even the decliner');
    assert.equal(await b.claimAddress('10.5.1.4', m, now + 1000, now), true);
    await b.freeAddress('10.5.1.4', m);
    assert.equal(await a.claimAddress('10.5.1.4', 'ff:00:00:00:00:03', now + 1000, now), true, 'released: free at once');
  });

  test('an edit on one server is read by the other at once', async () => {
    const [a, b] = await pair();
    await a.create('distro', validateNew('distro', { name: 'd', kernel: '/k', initrd: '/i' }));
    await a.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
    await a.create('system', sys('s', 'p', { eth0: { mac_address: '52:54:00:30:00:01' } }));
    assert.equal((await b.findSystemByMac('52:54:00:30:00:01'))?.name, 's');
    await b.update('system', 's', (c) => ({ ...c, comment: 'from b' }));
    assert.equal((await a.mustGet('system', 's')).comment, 'from b');
  });
});

describe('PostgreSQL: errors', () => {
  test('an unreachable database is STORAGE_UNAVAILABLE naming the URL, never the password', async () => {
    const e = await rejects(openPgStore('postgres://forge:s3cret-pw@127.0.0.1:1/forge'), 'STORAGE_UNAVAILABLE', 'store');
    assert.match(e.message, /postgres:\/\/forge:\*\*\*@127\.0\.0\.1:1\/forge/);
    assert.match(e.message, /ECONNREFUSED/);
    assert.doesNotMatch(e.message, /s3cret/);
    const e2 = await rejects(openPgStore(`postgres://forge@/nodb?host=${encodeURIComponent(cluster!.socketDir)}&password=s3cret-pw`), 'STORAGE_UNAVAILABLE');
    assert.match(e2.message, /database "nodb" does not exist/);
    assert.doesNotMatch(e2.message, /s3cret/);
  });

  test('a database that goes away mid-run: STORAGE_UNAVAILABLE, and the store works again once it is back', async () => {
    const url = await cluster!.createDatabase();
    const st = await openPgStore(url);
    stores.push(st);
    await st.create('distro', validateNew('distro', { name: 'd', kernel: '/k', initrd: '/i' }));
    const dbname = dbName(url);
    // Cut every connection of the store (what a database restart does to it).
    await cluster!.sql('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${dbname}'`);
    let failed = 0;
    for (let i = 0; i < 12; i++) {
      try {
        await st.get('distro', 'd');
      } catch (e) {
        assert.ok(e instanceof ForgeError && e.code === 'STORAGE_UNAVAILABLE', String(e));
        failed++;
      }
    }
    assert.ok(failed <= 10, 'the pool replaces dead connections');
    assert.equal((await st.get('distro', 'd'))?.name, 'd');
  });
});
