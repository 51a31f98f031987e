/**
 * The REST API against a real `forge serve` process and a real SQLite file.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

let srv: ForgeServer;
before(async () => {
  srv = await startForge();
});
after(async () => {
  await srv?.stop();
});

type Obj = Record<string, unknown>;
const body = (r: { body: unknown }): Obj => r.body as Obj;

async function seed(prefix: string): Promise<void> {
  let r = await srv.api('POST', '/api/v1/distros', { name: `${prefix}-d`, breed: 'debian', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd.gz' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  r = await srv.api('POST', '/api/v1/profiles', { name: `${prefix}-p`, distro: `${prefix}-d`, kernel_options: 'console=ttyS0,115200 quiet' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

test('health and OpenAPI document', async () => {
  const h = await srv.api('GET', '/api/v1/health', undefined, { auth: false });
  assert.equal(h.status, 200);
  assert.equal(body(h)['ok'], true);
  const o = await srv.api('GET', '/api/v1/openapi.json', undefined, { auth: false });
  assert.equal(o.status, 200);
  assert.equal(body(o)['openapi'], '3.1.0');
  const paths = body(o)['paths'] as Obj;
  for (const p of ['/api/v1/systems', '/api/v1/systems/{name}', '/api/v1/profiles/{name}/blended', '/api/v1/systems/bulk']) {
    assert.ok(p in paths, p);
  }
});

test('create, get, list with glob filter, dict given as string', async () => {
  await seed('a');
  const p = await srv.api('GET', '/api/v1/profiles/a-p', undefined, { auth: false });
  assert.equal(p.status, 200);
  assert.deepEqual(body(p)['kernel_options'], { console: 'ttyS0,115200', quiet: null });
  assert.equal(body(p)['virt_ram'], '<<inherit>>');
  assert.match(String(body(p)['ctime']), /^\d{4}-\d\d-\d\dT/);
  const s = await srv.api('POST', '/api/v1/systems', {
    name: 'a-s1',
    profile: 'a-p',
    interfaces: { eth0: { mac_address: '52-54-00-AA-BB-01', ip_address: '10.1.0.1', netmask: '24' } },
  });
  assert.equal(s.status, 201, JSON.stringify(s.body));
  const eth0 = (body(s)['interfaces'] as Record<string, Obj>)['eth0']!;
  assert.equal(eth0['mac_address'], '52:54:00:aa:bb:01', 'MAC normalised');
  assert.equal(eth0['netmask'], '255.255.255.0', 'prefix length normalised');
  const byMac = await srv.api('GET', '/api/v1/systems?mac_address=52:54:00:AA:BB:01', undefined, { auth: false });
  assert.deepEqual((byMac.body as Obj[]).map((x) => x['name']), ['a-s1']);
  const glob = await srv.api('GET', '/api/v1/systems?name=a-*', undefined, { auth: false });
  assert.deepEqual((glob.body as Obj[]).map((x) => x['name']), ['a-s1']);
  const none = await srv.api('GET', '/api/v1/systems?name=zz*', undefined, { auth: false });
  assert.deepEqual(none.body, []);
  const bad = await srv.api('GET', '/api/v1/systems?colour=red', undefined, { auth: false });
  assert.equal(bad.status, 400);
  assert.equal(body(bad)['code'], 'UNKNOWN_FIELD');
});

test('PATCH merges interfaces, null deletes one; name cannot change', async () => {
  await seed('b');
  let r = await srv.api('POST', '/api/v1/systems', { name: 'b-s', profile: 'b-p', interfaces: { eth0: { mac_address: '52:54:00:bb:00:01' } } });
  assert.equal(r.status, 201);
  r = await srv.api('PATCH', '/api/v1/systems/b-s', { virt_ram: '2048', interfaces: { eth1: { mac_address: '52:54:00:bb:00:02', static: 'true' } } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(body(r)['virt_ram'], 2048);
  assert.deepEqual(Object.keys(body(r)['interfaces'] as Obj).sort(), ['eth0', 'eth1']);
  r = await srv.api('PATCH', '/api/v1/systems/b-s', { interfaces: { eth0: null } });
  assert.deepEqual(Object.keys(body(r)['interfaces'] as Obj), ['eth1']);
  // the deleted MAC is free again
  r = await srv.api('POST', '/api/v1/systems', { name: 'b-s2', profile: 'b-p', interfaces: { eth0: { mac_address: '52:54:00:bb:00:01' } } });
  assert.equal(r.status, 201);
  r = await srv.api('PATCH', '/api/v1/systems/b-s', { name: 'other' });
  assert.equal(r.status, 400);
  assert.equal(body(r)['field'], 'name');
});

test('bad input: clear error naming the field, nothing written', async () => {
  await seed('c');
  const cases: [string, string, unknown, number, string, string | undefined][] = [
    ['POST', '/api/v1/systems', { name: 'c bad', profile: 'c-p' }, 400, 'INVALID_FIELD', 'name'],
    ['POST', '/api/v1/systems', { name: 'c-x', profile: 'c-p', interfaces: { eth0: { mac_address: '52:54:00:zz:00:01' } } }, 400, 'INVALID_FIELD', 'interfaces.eth0.mac_address'],
    ['POST', '/api/v1/systems', { name: 'c-x', profile: 'c-p', interfaces: { eth0: { ip_address: '10.0.0.300' } } }, 400, 'INVALID_FIELD', 'interfaces.eth0.ip_address'],
    ['POST', '/api/v1/systems', { name: 'c-x', profile: 'nope' }, 400, 'REFERENCE_MISSING', 'profile'],
    ['POST', '/api/v1/systems', { name: 'c-x' }, 400, 'MISSING_FIELD', 'profile'],
    ['POST', '/api/v1/systems', { name: 'c-x', profile: 'c-p', colour: 'red' }, 400, 'UNKNOWN_FIELD', 'colour'],
    ['POST', '/api/v1/systems', { name: 'c-x', profile: 'c-p', virt_ram: 'lots' }, 400, 'INVALID_FIELD', 'virt_ram'],
    ['POST', '/api/v1/systems', { name: 'c-x', profile: 'c-p', virt_type: 'hyperv' }, 400, 'INVALID_FIELD', 'virt_type'],
    ['POST', '/api/v1/profiles', { name: 'c-x', distro: 'nope' }, 400, 'REFERENCE_MISSING', 'distro'],
    ['POST', '/api/v1/profiles', { name: 'c-x', distro: 'c-d', parent: 'c-p' }, 400, 'DISTRO_XOR_PARENT', undefined],
    ['POST', '/api/v1/profiles', { name: 'c-x' }, 400, 'DISTRO_XOR_PARENT', undefined],
    ['POST', '/api/v1/distros', { name: 'c-x', kernel: 'relative/linux', initrd: '/srv/forge/i' }, 400, 'INVALID_FIELD', 'kernel'],
    ['POST', '/api/v1/distros', { name: 'c-x', initrd: '/srv/forge/i' }, 400, 'MISSING_FIELD', 'kernel'],
    ['POST', '/api/v1/distros', { name: 'c-d', kernel: '/srv/forge/k', initrd: '/srv/forge/i' }, 409, 'DUPLICATE_NAME', 'name'],
    ['POST', '/api/v1/systems', { name: 'c-x', profile: 'c-p', interfaces: { eth0: { mac_address: '52:54:00:cc:00:01' }, eth1: { mac_address: '52:54:00:cc:00:01' } } }, 409, 'DUPLICATE_MAC', 'interfaces.eth1.mac_address'],
  ];
  for (const [m, p, b, status, code, field] of cases) {
    const r = await srv.api(m, p, b);
    assert.equal(r.status, status, `${JSON.stringify(b)} -> ${JSON.stringify(r.body)}`);
    assert.equal(body(r)['code'], code, JSON.stringify(b));
    if (field !== undefined) assert.equal(body(r)['field'], field, JSON.stringify(b));
    assert.match(String(body(r)['message']), /\S/);
  }
  const sys = await srv.api('GET', '/api/v1/systems?name=c-x', undefined, { auth: false });
  assert.deepEqual(sys.body, [], 'nothing written');
  const prof = await srv.api('GET', '/api/v1/profiles?name=c-x', undefined, { auth: false });
  assert.deepEqual(prof.body, [], 'nothing written');
});

test('duplicate MAC and IP across systems are refused with the field', async () => {
  await seed('d');
  let r = await srv.api('POST', '/api/v1/systems', { name: 'd-1', profile: 'd-p', interfaces: { eth0: { mac_address: '52:54:00:dd:00:01', ip_address: '10.4.0.1' } } });
  assert.equal(r.status, 201);
  r = await srv.api('POST', '/api/v1/systems', { name: 'd-2', profile: 'd-p', interfaces: { eth3: { mac_address: '52:54:00:DD:00:01' } } });
  assert.equal(r.status, 409);
  assert.equal(body(r)['code'], 'DUPLICATE_MAC');
  assert.equal(body(r)['field'], 'interfaces.eth3.mac_address');
  assert.match(String(body(r)['message']), /d-1/);
  r = await srv.api('POST', '/api/v1/systems', { name: 'd-2', profile: 'd-p', interfaces: { eth0: { ip_address: '10.4.0.1' } } });
  assert.equal(r.status, 409);
  assert.equal(body(r)['code'], 'DUPLICATE_IP');
  // an edit that would collide is refused and leaves the system as it was
  r = await srv.api('POST', '/api/v1/systems', { name: 'd-2', profile: 'd-p', interfaces: { eth0: { mac_address: '52:54:00:dd:00:02' } } });
  assert.equal(r.status, 201);
  r = await srv.api('PATCH', '/api/v1/systems/d-2', { virt_ram: 999, interfaces: { eth0: { mac_address: '52:54:00:dd:00:01' } } });
  assert.equal(r.status, 409);
  const d2 = body(await srv.api('GET', '/api/v1/systems/d-2'));
  assert.equal(d2['virt_ram'], '<<inherit>>');
  assert.equal((d2['interfaces'] as Record<string, Obj>)['eth0']!['mac_address'], '52:54:00:dd:00:02');
});

test('random MACs take the OUI of the blended virt type and never collide', async () => {
  await seed('e');
  await srv.api('POST', '/api/v1/profiles', { name: 'e-xen', parent: 'e-p', virt_type: 'xenpv' });
  const cases: [Obj, string][] = [
    [{ profile: 'e-p' }, '52:54:00'],
    [{ profile: 'e-p', virt_type: 'qemu' }, '52:54:00'],
    [{ profile: 'e-p', virt_type: 'vmware' }, '00:50:56'],
    [{ profile: 'e-xen' }, '00:16:3e'],
    [{ profile: 'e-xen', virt_type: 'kvm' }, '52:54:00'],
  ];
  for (const [i, [fields, oui]] of cases.entries()) {
    const r = await srv.api('POST', '/api/v1/systems', { name: `e-r${i}`, ...fields, interfaces: { eth0: { mac_address: 'random' } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const mac = String((body(r)['interfaces'] as Record<string, Obj>)['eth0']!['mac_address']);
    assert.ok(mac.startsWith(oui + ':'), `${JSON.stringify(fields)} -> ${mac}`);
  }
  const objs = Array.from({ length: 300 }, (_, i) => ({ name: `e-bulk${i}`, profile: 'e-p', interfaces: { eth0: { mac_address: 'random' }, eth1: { mac_address: 'random' } } }));
  const r = await srv.api('POST', '/api/v1/systems/bulk', objs);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const all = (await srv.api('GET', '/api/v1/systems?name=e-*')).body as { interfaces: Record<string, { mac_address: string }> }[];
  const macs = all.flatMap((s) => Object.values(s.interfaces).map((i) => i.mac_address));
  assert.equal(macs.length, 605);
  assert.equal(new Set(macs).size, macs.length, 'all random MACs distinct');
});

test('parent cycles are refused', async () => {
  await seed('f');
  await srv.api('POST', '/api/v1/profiles', { name: 'f-c1', parent: 'f-p' });
  await srv.api('POST', '/api/v1/profiles', { name: 'f-c2', parent: 'f-c1' });
  let r = await srv.api('PATCH', '/api/v1/profiles/f-c1', { parent: 'f-c2' });
  assert.equal(r.status, 400);
  assert.equal(body(r)['code'], 'PARENT_CYCLE');
  assert.equal(body(r)['field'], 'parent');
  r = await srv.api('PATCH', '/api/v1/profiles/f-c1', { parent: 'f-c1' });
  assert.equal(body(r)['code'], 'PARENT_CYCLE');
  const c1 = body(await srv.api('GET', '/api/v1/profiles/f-c1'));
  assert.equal(c1['parent'], 'f-p', 'unchanged');
});

test('remove refused while referenced unless recursive; rename updates references; copy', async () => {
  await seed('g');
  await srv.api('POST', '/api/v1/profiles', { name: 'g-sub', parent: 'g-p' });
  await srv.api('POST', '/api/v1/systems', { name: 'g-s', profile: 'g-sub', interfaces: { eth0: { mac_address: '52:54:00:99:00:01', ip_address: '10.9.0.1' } } });
  let r = await srv.api('DELETE', '/api/v1/distros/g-d');
  assert.equal(r.status, 409);
  assert.equal(body(r)['code'], 'REFERENCED');
  r = await srv.api('POST', '/api/v1/distros/g-d/rename', { new_name: 'g-d2' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(body(await srv.api('GET', '/api/v1/profiles/g-p'))['distro'], 'g-d2');
  r = await srv.api('POST', '/api/v1/profiles/g-sub/rename', { new_name: 'g-sub2' });
  assert.equal(r.status, 200);
  assert.equal(body(await srv.api('GET', '/api/v1/systems/g-s'))['profile'], 'g-sub2');
  r = await srv.api('POST', '/api/v1/systems/g-s/rename', { new_name: 'g-s2' });
  assert.equal(r.status, 200);
  const found = (await srv.api('GET', '/api/v1/systems?mac_address=52:54:00:99:00:01')).body as Obj[];
  assert.deepEqual(found.map((x) => x['name']), ['g-s2'], 'MAC index follows the rename');
  r = await srv.api('POST', '/api/v1/systems/g-s2/copy', { new_name: 'g-s3' });
  assert.equal(r.status, 201);
  assert.equal((body(r)['interfaces'] as Record<string, Obj>)['eth0']!['mac_address'], '', 'a copy has no MAC');
  r = await srv.api('POST', '/api/v1/systems/g-s2/rename', { new_name: 'g-s3' });
  assert.equal(body(r)['code'], 'DUPLICATE_NAME');
  r = await srv.api('DELETE', '/api/v1/distros/g-d2?recursive=true');
  assert.equal(r.status, 200);
  assert.deepEqual(new Set(body(r)['removed'] as string[]), new Set(['system g-s2', 'system g-s3', 'profile g-sub2', 'profile g-p', 'distro g-d2']));
  assert.equal((await srv.api('GET', '/api/v1/systems/g-s2')).status, 404);
  r = await srv.api('POST', '/api/v1/systems', { name: 'g-s9', profile: 'a-p', interfaces: { eth0: { mac_address: '52:54:00:99:00:01', ip_address: '10.9.0.1' } } });
  assert.equal(r.status, 201, 'MAC and IP freed by the removal');
});

test('bulk create is all or nothing', async () => {
  await seed('h');
  const objs = [
    { name: 'h-1', profile: 'h-p', interfaces: { eth0: { mac_address: '52:54:00:88:00:01' } } },
    { name: 'h-2', profile: 'h-p', interfaces: { eth0: { mac_address: '52:54:00:88:00:01' } } },
  ];
  let r = await srv.api('POST', '/api/v1/systems/bulk', objs);
  assert.equal(r.status, 409);
  assert.equal(body(r)['code'], 'DUPLICATE_MAC');
  assert.match(String(body(r)['message']), /item 1/);
  assert.deepEqual((await srv.api('GET', '/api/v1/systems?name=h-*')).body, []);
  r = await srv.api('POST', '/api/v1/systems/bulk', [{ name: 'h-1', profile: 'h-p' }, { name: 'bad name', profile: 'h-p' }]);
  assert.equal(r.status, 400);
  assert.deepEqual((await srv.api('GET', '/api/v1/systems?name=h-*')).body, []);
  r = await srv.api('POST', '/api/v1/profiles/bulk', [{ name: 'h-kid', parent: 'h-mid' }, { name: 'h-mid', parent: 'h-p' }]);
  assert.equal(r.status, 201, 'parents in the same batch are created first');
});

test('auth: writes need the right bearer token, reads do not', async () => {
  let r = await srv.api('POST', '/api/v1/distros', { name: 'i-d', kernel: '/srv/forge/k', initrd: '/srv/forge/i' }, { auth: false });
  assert.equal(r.status, 401);
  assert.equal(body(r)['code'], 'AUTH_REQUIRED');
  r = await srv.api('POST', '/api/v1/distros', { name: 'i-d', kernel: '/srv/forge/k', initrd: '/srv/forge/i' }, { auth: 'wrong' });
  assert.equal(r.status, 403);
  assert.equal(body(r)['code'], 'AUTH_INVALID');
  r = await srv.api('DELETE', '/api/v1/profiles/a-p?recursive=true', undefined, { auth: 'wrong' });
  assert.equal(r.status, 403);
  r = await srv.api('GET', '/api/v1/export', undefined, { auth: false });
  assert.equal(r.status, 401, 'export carries secrets');
  assert.equal((await srv.api('GET', '/api/v1/distros/i-d', undefined, { auth: false })).status, 404, 'nothing written');
  assert.equal((await srv.api('GET', '/api/v1/profiles/a-p', undefined, { auth: false })).status, 200);
});

test('malformed JSON and unknown routes answer JSON errors', async () => {
  let r = await srv.api('POST', '/api/v1/distros', undefined, { raw: '{"name": "j-d", ' });
  assert.equal(r.status, 400);
  assert.equal(body(r)['code'], 'BAD_JSON');
  r = await srv.api('POST', '/api/v1/distros', undefined, { raw: '[1,2' });
  assert.equal(body(r)['code'], 'BAD_JSON');
  r = await srv.api('GET', '/api/v1/nothing-here');
  assert.equal(r.status, 404);
  assert.equal(body(r)['code'], 'ROUTE_NOT_FOUND');
  r = await srv.api('GET', '/api/v1/systems/nobody');
  assert.equal(r.status, 404);
  assert.equal(body(r)['code'], 'NOT_FOUND');
});

test('blended view and events', async () => {
  await seed('k');
  await srv.api('POST', '/api/v1/profiles', { name: 'k-big', parent: 'k-p', virt_ram: 4096, kernel_options: { '!quiet': null } });
  await srv.api('POST', '/api/v1/systems', { name: 'k-s', profile: 'k-big', interfaces: { eth0: { mac_address: '52:54:00:77:00:01' } } });
  const v = body(await srv.api('GET', '/api/v1/systems/k-s/blended', undefined, { auth: false }));
  assert.equal(v['virt_ram'], 4096);
  assert.deepEqual(v['kernel_options'], { console: 'ttyS0,115200' });
  assert.match(String(v['autoinstall_url']), new RegExp(`^http://127\\.0\\.0\\.1:${srv.port}/i/(\\*{8}|[0-9a-f]{32})/autoinstall/system/k-s$`), 'with the install token (netboot on; masked for anonymous reads)');
  assert.equal(v['kernel_url'], `http://127.0.0.1:${srv.port}/boot/distro/k-d/kernel`);
  assert.equal(typeof v['kernel_cmdline'], 'string');
  const pv = body(await srv.api('GET', '/api/v1/profiles/k-big/blended', undefined, { auth: false }));
  assert.equal(pv['profile_name'], 'k-big');

  let r = await srv.api('POST', '/api/v1/systems/k-s/events', { type: 'install_start', source: 'test', detail: { n: 1 } }, { auth: false });
  assert.equal(r.status, 401);
  r = await srv.api('POST', '/api/v1/systems/k-s/events', { type: 'install_start', source: 'test', detail: { n: 1 } });
  assert.equal(r.status, 201);
  r = await srv.api('POST', '/api/v1/systems/k-s/events', { type: 'no_such_type' });
  assert.equal(body(r)['field'], 'type');
  r = await srv.api('GET', '/api/v1/systems/k-s/events', undefined, { auth: false });
  const evs = r.body as Obj[];
  assert.equal(evs.length, 1);
  assert.equal(evs[0]!['type'], 'install_start');
  assert.deepEqual(evs[0]!['detail'], { n: 1 });
  assert.equal((await srv.api('GET', '/api/v1/systems/nobody/events')).status, 404);
});

test('concurrent partial updates of one system lose nothing', async () => {
  await seed('m');
  await srv.api('POST', '/api/v1/systems', { name: 'm-s', profile: 'm-p' });
  const n = 24;
  const rs = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      srv.api('PATCH', '/api/v1/systems/m-s', { interfaces: { [`eth${i}`]: { mac_address: `52:54:00:66:00:${i.toString(16).padStart(2, '0')}` } } }),
    ),
  );
  assert.deepEqual(rs.map((r) => r.status), Array.from({ length: n }, () => 200));
  const s = body(await srv.api('GET', '/api/v1/systems/m-s'));
  assert.equal(Object.keys(s['interfaces'] as Obj).length, n, 'every concurrent edit kept');
});

test('?fields= answers only the fields asked for', async () => {
  await seed('n');
  await srv.api('POST', '/api/v1/systems', { name: 'n-s', profile: 'n-p', hostname: 'h' });
  const r = await srv.api('GET', '/api/v1/systems?name=n-*&fields=name,profile', undefined, { auth: false });
  assert.deepEqual(r.body, [{ name: 'n-s', profile: 'n-p' }]);
  const names = await srv.api('GET', '/api/v1/systems?name=n-*&fields=name', undefined, { auth: false });
  assert.deepEqual(names.body, [{ name: 'n-s' }]);
  const byHost = await srv.api('GET', '/api/v1/systems?hostname=h&fields=name', undefined, { auth: false });
  assert.deepEqual(byHost.body, [{ name: 'n-s' }], 'a filter on a non-column field still applies');
  const bad = await srv.api('GET', '/api/v1/systems?fields=name,colour', undefined, { auth: false });
  assert.equal(bad.status, 400);
  assert.equal(body(bad)['code'], 'UNKNOWN_FIELD');
});

test('a create answers the stored document: the same bytes and headers as a read of it, secrets still masked', async () => {
  await seed('w');
  const post = async (body: unknown): Promise<Response> =>
    fetch(`${srv.url}/api/v1/systems`, { method: 'POST', headers: { authorization: `Bearer ${srv.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const plain = await post({ name: 'w-s1', profile: 'w-p', interfaces: { eth0: { mac_address: '52:54:00:77:01:01' } }, autoinstall_meta: { locale: 'C' } });
  assert.equal(plain.status, 201);
  assert.equal(plain.headers.get('content-type'), 'application/json; charset=utf-8');
  const text = await plain.text();
  assert.equal(plain.headers.get('content-length'), String(Buffer.byteLength(text)));
  const read = await fetch(`${srv.url}/api/v1/systems/w-s1`, { headers: { authorization: `Bearer ${srv.token}` } });
  assert.equal(text, await read.text(), 'the created answer is the stored document, byte for byte');
  // With a secret set, the answer is the redacted copy (never the stored text).
  const secret = await post({ name: 'w-s2', profile: 'w-p', power_pass: 'hunter2', autoinstall_meta: { root_password_hash: '$6$abc' } });
  assert.equal(secret.status, 201);
  const s = (await secret.json()) as { power_pass: string; autoinstall_meta: Record<string, string> };
  assert.equal(s.power_pass, '********');
  assert.equal(s.autoinstall_meta['root_password_hash'], '********');
});
