/**
 * The security tables on a real SQLite file (migration 5) and the pure
 * decisions beside them: install windows follow netboot (a new token each
 * time it turns on, closed when it turns off, renamed and removed with the
 * system, a reinstall rotates), the verdicts (no/wrong/stale token, closed
 * window, grace), API tokens kept only as digests, the audit log's filters,
 * and retention (age, per-system cap, newest install_done kept) in chunks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { installVerdict, windowOpen, allows } from '../../server/core/access.js';
import { maskInstallTokens, redactVars, withoutSecrets } from '../../server/core/secrets.js';
import { MIGRATIONS, openSqliteStore } from '../../server/store/sqlite.js';
import { validateNew } from '../../server/core/validate.js';
import { newApiToken, tokenHash, tokenMatches } from '../../server/auth.js';
import { runRetention } from '../../server/events/retention.js';
import { sinceOf } from '../../server/cli/commands/access.js';
import { sqliteFixture } from '../lib/sqlite-store.js';

const { tmp, seeded } = sqliteFixture('forge-sec-');

test('install windows follow netboot: open with a new token, close, reopen with another, rotate, rename, remove', async () => {
  const st = await seeded();
  await st.create('system', validateNew('system', { name: 's', profile: 'p' }));
  const w1 = await st.installWindow('s');
  assert.ok(w1 !== undefined && /^[0-9a-f]{32}$/.test(w1.token) && w1.closed === null, 'netboot on at create: an open window');
  await st.update('system', 's', (c) => ({ ...c, comment: 'x' }));
  assert.equal((await st.installWindow('s'))?.token, w1.token, 'an edit that leaves netboot alone keeps the token');
  await st.update('system', 's', (c) => ({ ...c, netboot_enabled: false }));
  const w2 = await st.installWindow('s');
  assert.equal(w2?.token, w1.token);
  assert.ok(w2?.closed !== null, 'netboot off closes the window');
  await st.update('system', 's', (c) => ({ ...c, netboot_enabled: true }));
  const w3 = await st.installWindow('s');
  assert.ok(w3 !== undefined && w3.token !== w1.token && w3.closed === null, 'netboot on again: a new install, a new token');
  const w4 = await st.rotateInstallToken('s');
  assert.notEqual(w4.token, w3.token, 'reinstall rotates');
  await st.rename('system', 's', 't');
  assert.equal((await st.installWindow('t'))?.token, w4.token, 'the window follows a rename');
  assert.equal(await st.installWindow('s'), undefined);
  await st.remove('system', 't');
  assert.equal(await st.installWindow('t'), undefined, 'and goes with the system');
  await st.create('system', validateNew('system', { name: 'off', profile: 'p', netboot_enabled: false }));
  assert.equal(await st.installWindow('off'), undefined, 'netboot off at create: no window');
  await st.close();
});

test('migration 5 gives every netboot-enabled system of an older database a window', async () => {
  const dir = tmp();
  const file = join(dir, 'forge.db');
  const db = new Database(file);
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)');
  for (const m of MIGRATIONS.filter((x) => x.version < 5)) {
    db.exec(m.sql);
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, new Date().toISOString());
  }
  db.prepare('INSERT INTO systems (name, profile, data) VALUES (?, ?, ?)').run('on', 'p', JSON.stringify({ name: 'on', netboot_enabled: true }));
  db.prepare('INSERT INTO systems (name, profile, data) VALUES (?, ?, ?)').run('off', 'p', JSON.stringify({ name: 'off', netboot_enabled: false }));
  db.close();
  const st = openSqliteStore(dir);
  assert.match((await st.installWindow('on'))?.token ?? '', /^[0-9a-f]{32}$/);
  assert.equal(await st.installWindow('off'), undefined);
  await st.close();
});

test('verdicts: no token, wrong or stale token, closed window after the grace; open while netboot is on', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  const open = { system: 's', token: 'a'.repeat(32), opened: '2026-01-01T11:00:00Z', closed: null };
  assert.deepEqual(installVerdict(open, undefined, now, 60), { ok: false, reason: 'no_token' });
  assert.deepEqual(installVerdict(open, 'b'.repeat(32), now, 60), { ok: false, reason: 'wrong_token' });
  assert.deepEqual(installVerdict(open, 'a'.repeat(31), now, 60), { ok: false, reason: 'wrong_token' });
  assert.deepEqual(installVerdict(undefined, 'a'.repeat(32), now, 60), { ok: false, reason: 'wrong_token' });
  assert.deepEqual(installVerdict(open, 'a'.repeat(32), now, 60), { ok: true });
  const closed = { ...open, closed: '2026-01-01T11:30:00Z' };
  assert.ok(windowOpen(closed, now, 31), '30 minutes after netboot off, grace 31: still open');
  assert.deepEqual(installVerdict(closed, 'a'.repeat(32), now, 30), { ok: false, reason: 'window_closed' });
  assert.deepEqual(installVerdict(closed, 'a'.repeat(32), now, 0), { ok: false, reason: 'window_closed' });
  assert.ok(allows({ kind: 'token', id: '1', role: 'admin' }, 'read'));
  assert.ok(!allows({ kind: 'token', id: '1', role: 'read' }, 'admin'));
  assert.ok(!allows({ kind: 'anonymous' }, 'read'));
});

test('install tokens never leave in anonymous blended reads; profile renders lose their secrets', () => {
  const t = 'c'.repeat(32);
  assert.equal(maskInstallTokens(`url=http://h/i/${t}/autoinstall/system/s x`), 'url=http://h/i/********/autoinstall/system/s x');
  assert.equal(maskInstallTokens(`http://h/i/${t}`), 'http://h/i/********');
  const v = redactVars({ kernel_cmdline: `url=http://h/i/${t}/autoinstall/system/s`, install_base_url: `http://h/i/${t}`, root_password_hash: '$6$x' });
  assert.ok(!JSON.stringify(v).includes(t));
  const w = withoutSecrets({ root_password_hash: '$6$x', wifi_secret: 's', timezone: 'UTC', autoinstall_meta: { root_password_hash: '$6$x', timezone: 'UTC' } });
  assert.deepEqual(w, { root_password_hash: '', wifi_secret: '', timezone: 'UTC', autoinstall_meta: { root_password_hash: '', timezone: 'UTC' } });
});

test('API tokens: only a digest is stored; revoked tokens are not found', async () => {
  const dir = tmp();
  const st = openSqliteStore(dir);
  const token = newApiToken();
  assert.match(token, /^forge_[A-Za-z0-9_-]{43}$/);
  const info = await st.createApiToken('read', 'grafana', tokenHash(token));
  assert.deepEqual(await st.findApiToken(tokenHash(token)), info);
  assert.equal(await st.findApiToken(tokenHash(`${token}x`)), undefined);
  await st.revokeApiToken(info.id);
  assert.equal(await st.findApiToken(tokenHash(token)), undefined, 'revoked');
  assert.ok((await st.listApiTokens())[0]?.revoked !== null);
  await assert.rejects(st.revokeApiToken(999), /does not exist/);
  await st.close();
  for (const f of ['forge.db', 'forge.db-wal']) {
    let bytes = '';
    try {
      bytes = readFileSync(join(dir, f)).toString('latin1');
    } catch {
      continue;
    }
    assert.ok(!bytes.includes(token.slice(6)), `${f} does not hold the token`);
  }
});

test('audit: filters by time and object; retention deletes old entries', async () => {
  const st = openSqliteStore(tmp());
  await st.addAudit({ time: '2020-01-01T00:00:00.000Z', actor: 'bootstrap', role: 'admin', client: '10.0.0.1', action: 'PATCH /api/v1/systems/a', object_type: 'system', object: 'a', detail: { fields: ['comment'] } });
  await st.addAudit({ actor: '3', role: 'admin', client: '10.0.0.2', action: 'DELETE /api/v1/profiles/b', object_type: 'profile', object: 'b', detail: {} });
  assert.equal((await st.listAudit()).length, 2);
  assert.deepEqual((await st.listAudit({ object: 'system/a' })).map((e) => e.object), ['a']);
  assert.deepEqual((await st.listAudit({ object: 'profile' })).map((e) => e.object), ['b']);
  assert.deepEqual((await st.listAudit({ since: '2021-01-01T00:00:00.000Z' })).map((e) => e.object), ['b']);
  const r = await runRetention(st, { events_keep_days: 30, events_per_system: 1000, audit_keep_days: 365 });
  assert.equal(r.audit, 1);
  assert.deepEqual((await st.listAudit()).map((e) => e.object), ['b']);
  await st.close();
});

test('event retention: older than keep_days go, each system keeps its newest N, the newest install_done stays; in chunks', async () => {
  const st = await seeded();
  const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
  await st.addEvent({ system: 'a', type: 'install_done', source: 'http', time: old });
  for (let i = 0; i < 700; i++) await st.addEvent({ system: 'a', type: 'autoinstall_served', source: 'http', time: old });
  for (let i = 0; i < 1300; i++) await st.addEvent({ system: 'b', type: 'dhcp_ack', source: 'dhcp' });
  await st.addEvent({ system: 'b', type: 'install_done', source: 'http', time: new Date(Date.now() - 86_400_000).toISOString() });
  for (let i = 0; i < 20; i++) await st.addEvent({ system: 'b', type: 'dhcp_ack', source: 'dhcp' });
  // A chunk deletes at most `chunk` rows.
  assert.equal(await st.pruneEvents(new Date(Date.now() - 30 * 86_400_000).toISOString(), 1000, 100), 100);
  const r = await runRetention(st, { events_keep_days: 30, events_per_system: 1000, audit_keep_days: 365 });
  assert.ok(r.events > 0);
  const a = await st.listEvents('a', { limit: 100_000 });
  assert.deepEqual(a.map((e) => e.type), ['install_done'], 'old events gone, the newest install_done of a kept');
  const b = await st.listEvents('b', { limit: 100_000 });
  assert.equal(b.length, 1000, 'b capped at 1000');
  assert.ok(b.some((e) => e.type === 'install_done'), 'within the cap');
  await st.close();
});

test('--since takes durations and ISO times', () => {
  const now = Date.parse('2026-01-02T00:00:00Z');
  assert.equal(sinceOf('2h', now), '2026-01-01T22:00:00.000Z');
  assert.equal(sinceOf('1d', now), '2026-01-01T00:00:00.000Z');
  assert.equal(sinceOf('2026-01-01', now), '2026-01-01T00:00:00.000Z');
  assert.throws(() => sinceOf('yesterday', now), /--since/);
});

test('token digests: SHA-256 as stored, and the bootstrap comparison follows a changed expected token', () => {
  // FIPS 180-2 appendix B.1 test vector.
  assert.equal(tokenHash('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(tokenMatches('forge_a', 'forge_a'), true);
  assert.equal(tokenMatches('forge_a', 'forge_b'), false);
  // The expected token changes (a new bootstrap token): the old one no longer matches.
  assert.equal(tokenMatches('forge_b', 'forge_a'), false);
  assert.equal(tokenMatches('forge_b', 'forge_b'), true);
  assert.equal(tokenMatches('forge_b', ''), false);
});
