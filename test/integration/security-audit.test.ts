/**
 * Token roles and the audit log through a real `forge serve` and the real
 * CLI: `forge token create --role read|admin`, `forge token list`,
 * `forge token revoke ID`; a read token sees secrets in object reads (as the
 * admin token does) and can write nothing, over REST and XML-RPC; every
 * write and every failed authentication lands in the audit log, shown by
 * `forge audit` (admin only) and GET /api/v1/audit.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startForge, type ForgeServer } from '../lib/server.js';

const run = promisify(execFile);
const HASH = '$6$AuditSalt$AuditHASHvalue0123456789abcdef';
let srv: ForgeServer;

interface AuditRow {
  actor: string;
  role: string;
  client: string;
  action: string;
  object_type: string;
  object: string;
  detail: Record<string, unknown>;
}

const cli = async (args: string[], token?: string): Promise<{ code: number; stdout: string; stderr: string }> =>
  srv.cli(args, token === undefined ? undefined : { FORGE_TOKEN: token });

before(async () => {
  srv = await startForge();
  for (const args of [
    ['distro', 'add', '--name', 'ad', '--breed', 'debian', '--kernel', '/srv/forge/linux', '--initrd', '/srv/forge/initrd.gz'],
    ['profile', 'add', '--name', 'ap', '--distro', 'ad', '--autoinstall-meta', `root_password_hash=${HASH}`],
    ['system', 'add', '--name', 'as1', '--profile', 'ap', '--mac', '52:54:00:ad:00:01'],
  ]) {
    const r = await cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
});
after(async () => {
  await srv?.stop();
});

async function createToken(role: string, comment: string): Promise<{ id: number; token: string }> {
  const r = await cli(['token', 'create', '--role', role, '--comment', comment, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { id: number; token: string };
}

test('a read token sees secrets and writes nothing; the web UI is told read-only', async () => {
  const { token } = await createToken('read', 'grafana');
  const get = async (path: string, t?: string): Promise<{ status: number; text: string }> => {
    const res = await fetch(srv.url + path, t === undefined ? {} : { headers: { authorization: `Bearer ${t}` } });
    return { status: res.status, text: await res.text() };
  };
  for (const path of ['/api/v1/profiles/ap', '/api/v1/systems/as1/blended', '/api/v1/profiles?fields=name,autoinstall_meta', '/api/v1/export', '/api/v1/systems/as1/autoinstall']) {
    const r = await get(path, token);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    assert.ok(r.text.includes(HASH), `read token sees the secret in ${path}`);
    assert.ok(!(await get(path)).text.includes(HASH), `anonymous does not (${path})`);
  }
  const who = JSON.parse((await get('/api/v1/whoami', token)).text) as { role: string; can_write: boolean; token_id: string };
  assert.equal(who.role, 'read');
  assert.equal(who.can_write, false, 'the web UI shows read-only controls');
  assert.match(who.token_id, /^\d+$/);
  // Writes: 403 FORBIDDEN naming the role, nothing changed.
  const edit = await cli(['system', 'edit', '--name', 'as1', '--comment', 'changed by read'], token);
  assert.notEqual(edit.code, 0);
  assert.match(edit.stderr, /role read/);
  const raw = await fetch(`${srv.url}/api/v1/systems/as1`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  assert.equal(raw.status, 403);
  assert.equal(((await srv.api('GET', '/api/v1/systems/as1')).body as { comment: string }).comment, '');
  // XML-RPC: login works with a read token, a write is refused (Python's own client).
  const py = `
import sys, xmlrpc.client
s = xmlrpc.client.ServerProxy(sys.argv[1])
tok = s.login("forge", sys.argv[2])
try:
    h = s.get_system_handle("as1", tok)
    s.modify_system(h, "comment", "via xmlrpc", tok)
    s.save_system(h, tok)
    print("WROTE")
except xmlrpc.client.Fault as e:
    print("FAULT", e.faultString)
`;
  const { stdout } = await run('python3', ['-c', py, `${srv.url}/cobbler_api`, token]);
  assert.match(stdout, /^FAULT .*role read/m, stdout);
  // The read token cannot list tokens or read the audit log.
  assert.equal((await get('/api/v1/tokens', token)).status, 403);
  assert.equal((await cli(['audit'], token)).code !== 0, true);
});

test('tokens are listed without their secret, stored as digests, and stop working when revoked', async () => {
  const { id, token } = await createToken('admin', 'ci pipeline');
  const list = await cli(['token', 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`^${id}\\s+admin\\s+\\S+\\s+ci pipeline$`, 'm'));
  assert.match(list.stdout, /^bootstrap\s+admin/m);
  assert.ok(!list.stdout.includes(token));
  for (const f of readdirSync(srv.dataDir).filter((n) => n.startsWith('forge.db'))) {
    assert.ok(!readFileSync(join(srv.dataDir, f)).toString('latin1').includes(token.slice(6)), `${f} does not hold the token`);
  }
  const w = await cli(['system', 'edit', '--name', 'as1', '--comment', 'by the ci token'], token);
  assert.equal(w.code, 0, w.stderr);
  const rv = await cli(['token', 'revoke', String(id)]);
  assert.equal(rv.code, 0, rv.stderr);
  const after = await cli(['system', 'edit', '--name', 'as1', '--comment', 'after revoke'], token);
  assert.notEqual(after.code, 0);
  assert.match(after.stderr, /token is wrong/);
});

test('the audit log: who changed which fields of what, from where; failed authentication; forge audit filters', async () => {
  const e = await cli(['system', 'edit', '--name', 'as1', '--hostname', 'as1.lab', '--comment', 'audited']);
  assert.equal(e.code, 0, e.stderr);
  const py = `
import sys, xmlrpc.client
s = xmlrpc.client.ServerProxy(sys.argv[1])
tok = s.login("forge", sys.argv[2])
h = s.get_system_handle("as1", tok)
s.modify_system(h, "comment", "via xmlrpc", tok)
s.save_system(h, tok)
`;
  await run('python3', ['-c', py, `${srv.url}/cobbler_api`, srv.token]);
  const bad = await fetch(`${srv.url}/api/v1/systems/as1`, { method: 'DELETE', headers: { authorization: 'Bearer not-a-token' } });
  assert.equal(bad.status, 403);
  const none = await fetch(`${srv.url}/api/v1/systems/as1`, { method: 'DELETE' });
  assert.equal(none.status, 401);
  const r = await cli(['audit', '--json', '--since', '1h']);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as AuditRow[];
  const edit = rows.filter((x) => x.action === 'PATCH /api/v1/systems/as1' && x.actor === 'bootstrap').pop();
  assert.ok(edit !== undefined, JSON.stringify(rows, null, 1));
  assert.equal(edit.role, 'admin');
  assert.equal(edit.object_type, 'system');
  assert.equal(edit.object, 'as1');
  assert.deepEqual(edit.detail['fields'], ['comment', 'hostname'], 'the fields that changed, never their values');
  assert.match(edit.client, /^127\.0\.0\.1$/);
  assert.ok(!JSON.stringify(rows).includes('as1.lab'), 'values are not logged');
  assert.ok(rows.some((x) => x.action === 'POST /api/v1/profiles' && x.object_type === 'profile' && !JSON.stringify(x).includes(HASH)), 'creates too, without the secret');
  // A create's row commits with the create (WriteOptions.audit): exactly one per request, the
  // refused one (a duplicate) its own with the refusal's status, written after the response.
  const created = rows.filter((x) => x.action === 'POST /api/v1/systems' && x.object === 'as1');
  assert.deepEqual(created.map((x) => [x.detail['status'], x.detail['fields']]), [[201, ['interfaces', 'name', 'profile']]], JSON.stringify(created));
  const dup = await fetch(`${srv.url}/api/v1/systems`, { method: 'POST', headers: { authorization: `Bearer ${srv.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'as1', profile: 'ap' }) });
  assert.equal(dup.status, 409);
  const after = JSON.parse((await cli(['audit', '--json', '--object', 'system/as1'])).stdout) as AuditRow[];
  assert.deepEqual(after.filter((x) => x.action === 'POST /api/v1/systems').map((x) => x.detail['status']), [201, 409]);
  const fails = rows.filter((x) => x.action === 'auth_failed');
  assert.ok(fails.some((x) => x.object === 'DELETE /api/v1/systems/as1' && x.detail['reason'] === 'wrong or revoked token'), JSON.stringify(fails));
  assert.ok(fails.some((x) => x.detail['reason'] === 'no token'));
  assert.ok(fails.some((x) => /role read/.test(String(x.detail['reason']))), 'a read token trying to write');
  assert.ok(rows.some((x) => x.action === 'xmlrpc save_system' && x.actor === 'bootstrap'), 'XML-RPC writes are audited too');
  // --object filters; the table form names who and what.
  const only = JSON.parse((await cli(['audit', '--json', '--object', 'system/as1'])).stdout) as AuditRow[];
  assert.ok(only.length > 0 && only.every((x) => x.object_type === 'system' && x.object === 'as1'));
  const table = await cli(['audit', '--object', 'system/as1']);
  assert.match(table.stdout, /token bootstrap \(admin\)\s+127\.0\.0\.1\s+PATCH \/api\/v1\/systems\/as1\s+system\/as1\s+status=200 fields=comment,hostname/);
  // The audit API is admin only.
  assert.equal((await fetch(`${srv.url}/api/v1/audit`)).status, 401);
});

test('a guessing loop cannot fill the audit log: failed authentication is recorded at most 10 times a minute per address', async () => {
  for (let i = 0; i < 50; i++) await fetch(`${srv.url}/api/v1/systems/as1`, { method: 'DELETE', headers: { authorization: `Bearer guess-${i}` } });
  const rows = JSON.parse((await cli(['audit', '--json', '--since', '1h'])).stdout) as AuditRow[];
  const fails = rows.filter((x) => x.action === 'auth_failed' && x.client === '127.0.0.1');
  assert.ok(fails.length <= 20, `${fails.length} failed-auth entries for 50 guesses (plus the earlier test's)`);
  assert.ok(fails.length >= 10);
});
