/**
 * Anonymous reads never return secrets: every object read of the REST API
 * (list, get, blended, ?fields=, filters) and of Cobbler's XML-RPC API (read
 * with Python's own xmlrpc.client) against a real `forge serve`. The secret
 * strings are searched for in the raw response bodies, so a secret that
 * leaks under any key or in any encoding (a=b strings, promoted top-level
 * vars) fails the test. With the token the same reads show them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { getText, startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

const run = promisify(execFile);
const HASH = '$6$Sx9secretsalt$HASHVALUEroot0123456789';
const SECRETS = ['HASHVALUEroot', 'userpw-value-42', 'grubhash-value-43', 'wifisecret-value-44', 'regtoken-value-45', 'bmcpass-value-46'];
const PUBKEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPubKeyIsNotSecret admin@lab';
let srv: ForgeServer;

before(async () => {
  srv = await startForge();
  const ok = async (method: string, path: string, body: unknown): Promise<void> => {
    const r = await srv.api(method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${JSON.stringify(r.body)}`);
  };
  await ok('POST', '/api/v1/distros', { name: 'sd', breed: 'debian', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd.gz', autoinstall_meta: { registration_token: 'regtoken-value-45', tree: 'http://mirror/debian' } });
  await ok('POST', '/api/v1/profiles', { name: 'sp', distro: 'sd', autoinstall: 'preseed/default.seed', autoinstall_meta: { root_password_hash: HASH, grub_password_hash: 'grubhash-value-43', ssh_authorized_keys: PUBKEY } });
  await ok('POST', '/api/v1/systems', {
    name: 'ss',
    profile: 'sp',
    autoinstall_meta: { user_password: 'userpw-value-42', wifi_secret: 'wifisecret-value-44', timezone: 'UTC' },
    power_type: 'ipmi',
    power_address: '192.0.2.200',
    power_pass: 'bmcpass-value-46',
    interfaces: { eth0: { mac_address: '52:54:00:5e:c0:01' } },
  });
});
after(async () => {
  await srv?.stop();
});

/** Every object read an anonymous host can make. */
const READS = [
  '/api/v1/distros',
  '/api/v1/distros/sd',
  '/api/v1/distros?fields=name,autoinstall_meta',
  '/api/v1/profiles',
  '/api/v1/profiles/sp',
  '/api/v1/profiles/sp/blended',
  '/api/v1/profiles?fields=name,autoinstall_meta',
  '/api/v1/profiles?name=s*',
  '/api/v1/systems',
  '/api/v1/systems/ss',
  '/api/v1/systems/ss/blended',
  '/api/v1/systems?fields=name,autoinstall_meta,power_pass',
  '/api/v1/systems?profile=sp',
];

async function raw(path: string, token: string | undefined): Promise<{ status: number; text: string }> {
  const res = await fetch(srv.url + path, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text() };
}

function leaked(text: string): string[] {
  return SECRETS.filter((s) => text.includes(s));
}

test('anonymous REST reads: no secret value in any body; the token sees all of them', async () => {
  const anonAll: string[] = [];
  const authedAll: string[] = [];
  for (const path of READS) {
    const a = await raw(path, undefined);
    assert.equal(a.status, 200, `${path}: ${a.text}`);
    assert.deepEqual(leaked(a.text), [], `anonymous ${path} leaks`);
    anonAll.push(a.text);
    const t = await raw(path, srv.token);
    assert.equal(t.status, 200, `${path}: ${t.text}`);
    authedAll.push(t.text);
  }
  // the token reads show every secret somewhere (so the masking above is real, not missing data)
  assert.deepEqual(leaked(authedAll.join('\n')).sort(), [...SECRETS].sort());
  const anon = anonAll.join('\n');
  assert.ok(anon.includes('********'), 'secrets are masked, not dropped');
  assert.ok(anon.includes(PUBKEY), 'ssh public keys are not secrets');
  assert.ok(anon.includes('http://mirror/debian') && anon.includes('"timezone":"UTC"'), 'other meta keys show as they are');

  const blended = JSON.parse((await raw('/api/v1/systems/ss/blended', undefined)).text) as Record<string, unknown>;
  assert.equal(blended['root_password_hash'], '********', 'the promoted top-level variable is masked too');
  assert.equal((blended['autoinstall_meta'] as Record<string, unknown>)['root_password_hash'], '********');
  const full = JSON.parse((await raw('/api/v1/systems/ss/blended', srv.token)).text) as Record<string, unknown>;
  assert.equal(full['root_password_hash'], HASH);
  const one = JSON.parse((await raw('/api/v1/profiles/sp', undefined)).text) as { autoinstall_meta: Record<string, string> };
  assert.deepEqual(one.autoinstall_meta, { root_password_hash: '********', grub_password_hash: '********', ssh_authorized_keys: PUBKEY });
});

test('filters: anonymous autoinstall_meta globs are refused naming the field; secret fields never filter; the token filters meta', async () => {
  for (const [path, field] of [
    ['/api/v1/profiles?autoinstall_meta=*root_password_hash*', 'autoinstall_meta'],
    ['/api/v1/profiles?autoinstall_meta=*$6$S*', 'autoinstall_meta'],
    ['/api/v1/systems?autoinstall_meta=*&fields=name', 'autoinstall_meta'],
    ['/api/v1/systems?power_pass=b*', 'power_pass'],
  ] as const) {
    const a = await raw(path, undefined);
    assert.equal(a.status, 400, `${path}: ${a.text}`);
    assert.deepEqual(leaked(a.text), []);
    const err = JSON.parse(a.text) as { field: string };
    assert.equal(err.field, field, a.text);
  }
  assert.match((await raw('/api/v1/profiles?autoinstall_meta=*', undefined)).text, /needs the token/);
  const t = await raw('/api/v1/profiles?autoinstall_meta=*root_password_hash*&fields=name', srv.token);
  assert.equal(t.status, 200, t.text);
  assert.deepEqual(JSON.parse(t.text), [{ name: 'sp' }]);
  assert.equal((await raw('/api/v1/systems?power_pass=b*', srv.token)).status, 400, 'secret fields are not filterable even with the token');
});

test('CLI with its token: dumpvars and report show real values; the rendered autoinstall file still carries the hash', async () => {
  const d = await srv.cli(['system', 'dumpvars', '--name', 'ss']);
  assert.equal(d.code, 0, d.stderr);
  assert.ok(d.stdout.includes(HASH), d.stdout);
  const r = await srv.cli(['profile', 'report', '--name', 'sp']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(HASH), r.stdout);
  const ks = await getText(srv, '/autoinstall/system/ss');
  assert.equal(ks.status, 200, ks.text);
  assert.ok(ks.text.includes(HASH), 'templates render with the real hash (the per-install window is a separate change)');
});

const PY = `
import json, sys, xmlrpc.client
url, token = sys.argv[1], sys.argv[2]
s = xmlrpc.client.ServerProxy(url, allow_none=True)
def call(f):
    try:
        return f()
    except xmlrpc.client.Fault as e:
        return {"fault": e.faultString}
out = {"anon": {
    "get_profiles": call(lambda: s.get_profiles()),
    "get_systems": call(lambda: s.get_systems()),
    "get_distros": call(lambda: s.get_distros()),
    "get_profile": call(lambda: s.get_profile("sp")),
    "get_system": call(lambda: s.get_system("ss")),
    "get_items": call(lambda: s.get_items("system")),
    "get_item": call(lambda: s.get_item("profile", "sp")),
    "get_system_as_rendered": call(lambda: s.get_system_as_rendered("ss")),
    "get_profile_as_rendered": call(lambda: s.get_profile_as_rendered("sp")),
    "get_system_for_koan": call(lambda: s.get_system_for_koan("ss")),
    "get_blended_data": call(lambda: s.get_blended_data("", "ss")),
    "find_system_full": call(lambda: s.find_system({"name": "s*"}, True)),
    "find_items": call(lambda: s.find_items("profile", {"name": "*"}, "name", True)),
  }, "refused": {
    "find_profile_meta": call(lambda: s.find_profile({"autoinstall_meta": "*root_password_hash*"})),
    "find_profile_ks_meta": call(lambda: s.find_profile({"ks_meta": "*$6$S*"})),
    "find_system_power_pass": call(lambda: s.find_system({"power_pass": "b*"})),
  }, "authed": {
    "get_profile": call(lambda: s.get_profile("sp", False, False, token)),
    "get_system_as_rendered": call(lambda: s.get_system_as_rendered("ss", token)),
    "find_profile_meta": call(lambda: s.find_profile({"ks_meta": "*root_password_hash*"}, False, token)),
  }}
print(json.dumps(out))
`;

test('XML-RPC (python xmlrpc.client): anonymous reads show no secret, secret globs are faults; the token sees them', async () => {
  const { stdout } = await run('python3', ['-c', PY, `${srv.url}/cobbler_api`, srv.token], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  const r = JSON.parse(stdout) as Record<string, Record<string, unknown>>;
  for (const [k, v] of Object.entries(r['anon']!)) {
    const text = JSON.stringify(v);
    assert.ok(!text.includes('"fault"'), `${k}: ${text}`);
    assert.deepEqual(leaked(text), [], `anonymous ${k} leaks: ${text}`);
  }
  assert.deepEqual((r['anon']!['get_profile'] as Record<string, unknown>)['autoinstall_meta'], { root_password_hash: '********', grub_password_hash: '********', ssh_authorized_keys: PUBKEY });
  assert.match(String((r['anon']!['get_system_as_rendered'] as Record<string, unknown>)['autoinstall_meta']), /root_password_hash=\*{8} /, 'the rendered a=b string is masked too');
  for (const [k, v] of Object.entries(r['refused']!)) {
    const fault = (v as { fault?: string }).fault ?? '';
    assert.match(fault, k === 'find_system_power_pass' ? /power_pass: a secret field/ : /meta: filtering on autoinstall_meta needs the token/, `${k}: ${JSON.stringify(v)}`);
  }
  const authed = JSON.stringify(r['authed']);
  assert.ok(authed.includes('HASHVALUEroot'), authed);
  assert.deepEqual((r['authed']!['find_profile_meta'] as unknown[]), ['sp']);
  assert.ok(JSON.stringify(r['authed']!['get_system_as_rendered']).includes('userpw-value-42'));
});
