/**
 * System documents with quotes, backslashes, escaped control characters, non-ASCII text and
 * emoji, written through PostgreSQL's group insert (one add at a time, 12 in flight, and bulk
 * create), come back from the database exactly as given: the documents column goes as one
 * text[] literal made by forge (store/postgres/objects.ts textArrayLiteral), or by the driver
 * for items it leaves to it (emoji). A refused statement would not show there (the group writer
 * then writes each add on its own, checked path), so PostgreSQL is also asked directly what the
 * literal forge sends parses to. A real PostgreSQL from test/lib/postgres.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { validateNew } from '../../server/core/validate.js';
import type { System } from '../../server/core/model.js';
import pg from 'pg';
import { openPgStore } from '../../server/store/postgres.js';
import { textArrayLiteral } from '../../server/store/postgres/objects.js';
import { startPostgres, type PgCluster } from '../lib/postgres.js';

let cluster: PgCluster | undefined;
before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  await cluster?.stop();
});

const COMMENTS = ['plain', 'say "hi"', 'back\\slash \\" both', 'line\nbreak\ttab', 'żółć ☃ ünïcödé', 'emoji 😀 pair', '{braces},commas', 'NULL', ''];
const sys = (name: string, i: number): System =>
  validateNew('system', { name, profile: 'p', comment: COMMENTS[i % COMMENTS.length], interfaces: { eth0: { mac_address: `52:54:00:0d:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` } }, kernel_options: { 'quote"key': 'v\\al' } });

test('PostgreSQL group insert: tricky documents round-trip, one by one and in bulk', async () => {
  const st = await openPgStore(await cluster!.createDatabase('docs'));
  try {
    await st.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' }));
    await st.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
    const one = Array.from({ length: 36 }, (_, i) => sys(`one-${i}`, i));
    // 12 in flight: the adds share statements (the group writer), each answered as written.
    for (let i = 0; i < one.length; i += 12) await Promise.all(one.slice(i, i + 12).map((s) => st.create('system', s)));
    const many = Array.from({ length: 18 }, (_, i) => sys(`bulk-${i}`, i + 100));
    assert.equal(await st.bulkCreate('system', many), many.length);
    for (const s of [...one, ...many]) {
      const got = await st.get('system', s.name);
      assert.ok(got !== undefined, s.name);
      assert.equal(got.comment, s.comment, s.name);
      assert.deepEqual(got.kernel_options, s.kernel_options, s.name);
      assert.equal(got.interfaces['eth0']?.mac_address, s.interfaces['eth0']?.mac_address, s.name);
    }
  } finally {
    await st.close();
  }
});

test('PostgreSQL parses the documents literal into exactly the documents', async () => {
  const url = await cluster!.createDatabase('lit');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    // Every document but the emoji one (its surrogate pair goes to the driver, by design).
    const docs = [...COMMENTS.map((_, i) => JSON.stringify(sys(`lit-${i}`, i))), ...COMMENTS.map((t) => JSON.stringify(t))].filter((d) => !/[\ud800-\udfff]/.test(d));
    assert.ok(docs.length >= 14);
    const literal = textArrayLiteral(docs);
    assert.equal(typeof literal, 'string', 'forge makes the literal for these');
    const r = await c.query<{ v: string }>('SELECT unnest($1::text[]) AS v', [literal]);
    assert.deepEqual(r.rows.map((x) => x.v), docs);
  } finally {
    await c.end();
  }
});
