/**
 * Subnets as objects through a real `forge serve` (real SQLite): the `forge subnet` verbs as a
 * user types them, /api/v1/subnets with the token for writes, validation that names the field
 * (overlap, range/router outside the CIDR, lease time and MTU bounds, a static interface address
 * outside every subnet), OpenAPI, export/import, and the subnet's values in `system dumpvars`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cliOk, installerUrl, startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

let srv: ForgeServer;
before(async () => {
  srv = await startForge();
});
after(async () => {
  await srv?.stop();
});

const ok = (args: string[]): Promise<string> => cliOk(srv, args);

async function refused(args: string[], pattern: RegExp): Promise<void> {
  const r = await srv.cli(args);
  assert.notEqual(r.code, 0, `forge ${args.join(' ')} should fail\nstdout: ${r.stdout}`);
  assert.match(r.stderr, pattern, `forge ${args.join(' ')}`);
}

interface ErrBody {
  code: string;
  field?: string;
  message: string;
}

test('forge subnet add|edit|copy|rename|remove|list|report|find, as the README shows them', async () => {
  await ok(['subnet', 'add', '--name', 'lab', '--cidr', '10.96.0.0/24', '--range', '10.96.0.100,10.96.0.200', '--router', '10.96.0.1',
    '--dns', '10.96.0.1', '--domain', 'lab.example', '--dns-search', 'lab.example', '--lease-time', '3600', '--next-server', '10.96.0.1', '--mtu', '1500']);
  const lab = JSON.parse(await ok(['subnet', 'report', '--name', 'lab', '--json'])) as Record<string, unknown>;
  assert.deepEqual(
    { cidr: lab['cidr'], range: lab['range'], router: lab['router'], dns: lab['dns'], domain: lab['domain'], dns_search: lab['dns_search'], lease_time: lab['lease_time'], next_server: lab['next_server'], mtu: lab['mtu'], authoritative: lab['authoritative'], unknown: lab['unknown'] },
    { cidr: '10.96.0.0/24', range: ['10.96.0.100,10.96.0.200'], router: '10.96.0.1', dns: ['10.96.0.1'], domain: 'lab.example', dns_search: ['lab.example'], lease_time: 3600, next_server: '10.96.0.1', mtu: 1500, authoritative: false, unknown: '' },
  );
  const report = await ok(['subnet', 'report', '--name', 'lab']);
  assert.match(report, /^Cidr\s+: 10\.96\.0\.0\/24$/m);
  assert.match(report, /^Range\s+: 10\.96\.0\.100,10\.96\.0\.200$/m);
  await ok(['subnet', 'edit', '--name', 'lab', '--range', '10.96.0.100,10.96.0.150 10.96.0.160,10.96.0.170', '--authoritative', '--unknown', 'discover']);
  const edited = JSON.parse(await ok(['subnet', 'report', '--name', 'lab', '--json'])) as { range: string[]; authoritative: boolean; unknown: string; router: string };
  assert.deepEqual([edited.range, edited.authoritative, edited.unknown, edited.router], [['10.96.0.100,10.96.0.150', '10.96.0.160,10.96.0.170'], true, 'discover', '10.96.0.1']);
  // A copy has the same network: it overlaps the original, so it is refused until moved.
  await refused(['subnet', 'copy', '--name', 'lab', '--newname', 'lab2'], /SUBNET_OVERLAP|overlaps subnet lab/);
  await ok(['subnet', 'add', '--name', 'far', '--cidr', '10.96.1.0/24', '--router', '10.96.1.1']);
  await ok(['subnet', 'rename', '--name', 'far', '--newname', 'annex']);
  assert.deepEqual((await ok(['subnet', 'list'])).split('\n').map((l) => l.trim()).filter((l) => l !== ''), ['annex', 'lab']);
  assert.deepEqual((await ok(['subnet', 'find', '--cidr', '10.96.1.*'])).trim().split('\n'), ['annex']);
  assert.deepEqual((await ok(['subnet', 'find', '--domain', 'lab.example'])).trim().split('\n'), ['lab']);
  await ok(['subnet', 'remove', '--name', 'annex']);
  assert.deepEqual((await ok(['subnet', 'list'])).split('\n').map((l) => l.trim()).filter((l) => l !== ''), ['lab']);
  const help = await ok(['subnet', 'add', '--help']);
  for (const flag of ['--cidr', '--range', '--router', '--dns', '--domain', '--dns-search', '--lease-time', '--next-server', '--mtu', '--authoritative', '--unknown']) assert.ok(help.includes(flag), flag);
});

test('/api/v1/subnets: token for writes, errors name the field, nothing half-written', async () => {
  const anon = await srv.api('POST', '/api/v1/subnets', { name: 'x', cidr: '10.50.0.0/24' }, { auth: false });
  assert.equal(anon.status, 401);
  assert.equal((await srv.api('GET', '/api/v1/subnets/x')).status, 404, 'an anonymous write left nothing behind');
  const cases: [unknown, number, string, string][] = [
    [{ name: 'o1', cidr: '10.96.0.128/25' }, 409, 'SUBNET_OVERLAP', 'cidr'],
    [{ name: 'o2', cidr: '10.0.0.0/8' }, 409, 'SUBNET_OVERLAP', 'cidr'],
    [{ name: 'r1', cidr: '10.60.0.0/24', range: ['10.61.0.10,10.61.0.20'] }, 400, 'INVALID_FIELD', 'range[0]'],
    [{ name: 'r2', cidr: '10.60.0.128/25', router: '10.60.0.1' }, 400, 'INVALID_FIELD', 'router'],
    [{ name: 'l1', cidr: '10.60.0.0/24', lease_time: 5 }, 400, 'INVALID_FIELD', 'lease_time'],
    [{ name: 'm1', cidr: '10.60.0.0/24', mtu: 20 }, 400, 'INVALID_FIELD', 'mtu'],
    [{ name: 'c1', cidr: 'lab' }, 400, 'INVALID_FIELD', 'cidr'],
    [{ name: 'c2' }, 400, 'MISSING_FIELD', 'cidr'],
  ];
  for (const [body, status, code, field] of cases) {
    const r = await srv.api('POST', '/api/v1/subnets', body);
    const e = r.body as ErrBody;
    assert.equal(r.status, status, JSON.stringify([body, r.body]));
    assert.equal(e.code, code, e.message);
    assert.equal(e.field, field, e.message);
    assert.ok(e.message.startsWith(`${field}:`), e.message);
  }
  const names = ((await srv.api('GET', '/api/v1/subnets?fields=name', undefined, { auth: false })).body as { name: string }[]).map((n) => n.name);
  assert.deepEqual(names, ['lab'], 'refused creates wrote nothing');
  // An edit that would overlap or leave the router outside is refused and the stored one kept.
  await srv.api('POST', '/api/v1/subnets', { name: 'side', cidr: '10.97.0.0/24', router: '10.97.0.1' });
  const ov = await srv.api('PATCH', '/api/v1/subnets/side', { cidr: '10.96.0.0/23', router: '10.96.0.1' });
  assert.equal(ov.status, 409);
  assert.equal((ov.body as ErrBody).field, 'cidr');
  const rt = await srv.api('PATCH', '/api/v1/subnets/side', { cidr: '10.98.0.0/24' });
  assert.equal(rt.status, 400);
  assert.equal((rt.body as ErrBody).field, 'router');
  assert.equal(((await srv.api('GET', '/api/v1/subnets/side')).body as { cidr: string }).cidr, '10.97.0.0/24');
  const openapi = (await srv.api('GET', '/api/v1/openapi.json', undefined, { auth: false })).body as { paths: Record<string, unknown>; components: { schemas: Record<string, { properties: Record<string, unknown> }> } };
  for (const p of ['/api/v1/subnets', '/api/v1/subnets/{name}', '/api/v1/subnets/{name}/rename', '/api/v1/subnets/{name}/copy']) assert.ok(p in openapi.paths, p);
  assert.ok('dns_search' in (openapi.components.schemas['Subnet']?.properties ?? {}));
  assert.match(JSON.stringify(openapi.components.schemas['Subnet']?.properties['servers']), /server_name/, 'servers is documented in the OpenAPI schema');
  // servers: a list of server names, refused naming the field.
  const badServers = await srv.api('PATCH', '/api/v1/subnets/side', { servers: ['a', 'b c'] });
  assert.equal(badServers.status, 400);
  assert.equal((badServers.body as { field: string }).field, 'servers');
  assert.equal((await srv.api('DELETE', '/api/v1/subnets/side')).status, 200);
});

test('systems: a static address outside every subnet is refused (naming the interface field); dumpvars shows the subnet values; export/import carries subnets', async () => {
  await ok(['distro', 'add', '--name', 'deb12', '--breed', 'debian', '--kernel', '/srv/forge/deb12/linux', '--initrd', '/srv/forge/deb12/initrd.gz']);
  await ok(['profile', 'add', '--name', 'deb12', '--distro', 'deb12', '--autoinstall', 'preseed/default.seed']);
  await refused(['system', 'add', '--name', 'out', '--profile', 'deb12', '--mac', '52:54:00:00:77:01', '--ip-address', '192.168.7.5', '--static', 'true'],
    /interfaces\.eth0\.ip_address: 192\.168\.7\.5 is not inside any stored subnet/);
  assert.equal((await srv.api('GET', '/api/v1/systems/out')).status, 404);
  // A DHCP interface (static false) may hold any reservation; a static one inside lab is fine.
  await ok(['system', 'add', '--name', 'dyn', '--profile', 'deb12', '--mac', '52:54:00:00:77:02', '--ip-address', '192.168.7.6']);
  await ok(['system', 'add', '--name', 'in', '--profile', 'deb12', '--mac', '52:54:00:00:77:03', '--ip-address', '10.96.0.20', '--static', 'true']);
  const vars = await ok(['system', 'dumpvars', '--name', 'in']);
  const line = (k: string): string | undefined => vars.split('\n').find((l) => l.startsWith(`${k} : `))?.slice(k.length + 3);
  assert.equal(line('netmask_eth0'), '255.255.255.0');
  assert.equal(line('if_gateway_eth0'), '10.96.0.1');
  assert.equal(line('gateway'), '10.96.0.1');
  assert.equal(line('subnet_eth0'), 'lab');
  assert.equal(line('name_servers'), '10.96.0.1');
  assert.equal(line('name_servers_search'), 'lab.example');
  assert.match(line('subnet') ?? '', /"domain":"lab\.example"/);
  assert.match(line('kernel_cmdline') ?? '', /netcfg\/get_gateway=10\.96\.0\.1/);
  assert.match(line('kernel_cmdline') ?? '', /netcfg\/get_netmask=255\.255\.255\.0/);
  // The rendered preseed sees them too.
  // As the installer asks for it: under the system's install token (issue 13).
  const seed = await fetch(await installerUrl(srv, '/autoinstall/system/in')).then((r) => r.text());
  assert.match(seed, /netcfg\/get_gateway string 10\.96\.0\.1/);
  const doc = (await srv.api('GET', '/api/v1/export')).body as { subnets: { name: string }[] };
  assert.deepEqual(doc.subnets.map((s) => s.name), ['lab']);
  await ok(['system', 'remove', '--name', 'in']);
  await ok(['system', 'remove', '--name', 'dyn']);
  await ok(['subnet', 'remove', '--name', 'lab']);
  const imp = await srv.api('POST', '/api/v1/import?replace=true', doc);
  assert.equal(imp.status, 200, JSON.stringify(imp.body));
  assert.equal(((await srv.api('GET', '/api/v1/subnets/lab')).body as { router: string }).router, '10.96.0.1');
});
