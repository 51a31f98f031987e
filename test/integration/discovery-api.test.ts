/**
 * Discovery and rules through a real forge server, with reports posted the
 * way the discovery image posts them (anonymous JSON): a rule enlists the
 * matching machine (system with its MAC, netboot on, `enlisted` event, the
 * image told to reboot), a machine matching no rule stays discovered, a
 * known system's MAC is refused untouched, bad input is named, floods are
 * rate-limited.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

function inventory(mac: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    mac,
    interfaces: [{ name: 'eth0', mac, link: true }, { name: 'eth1', mac: '52:54:00:ff:00:09', link: false }],
    vendor: 'QEMU',
    product: 'Standard PC (i440FX + PIIX, 1996)',
    serial: 'WEB0042',
    uuid: '8d1f2c3e-0000-4000-8000-000000000042',
    cpus: 2,
    cpu_model: 'QEMU Virtual CPU version 2.5+',
    arch: 'x86_64',
    ram_mib: 4096,
    disks: [{ name: 'vda', size_gib: 8, model: '', rotational: true }],
    firmware: 'bios',
    ...over,
  };
}

describe('discovery API, rules and the CLI', () => {
  let srv: ForgeServer;
  const post = (body: unknown): Promise<{ status: number; body: unknown }> => srv.api('POST', '/api/v1/discover', body, { auth: false });

  before(async () => {
    srv = await startForge();
    await srv.cli(['distro', 'add', '--name', 'd', '--kernel', '/srv/forge/d/linux', '--initrd', '/srv/forge/d/initrd.gz']);
    await srv.cli(['profile', 'add', '--name', 'deb12-web', '--distro', 'd']);
    await srv.cli(['system', 'add', '--name', 'known1', '--profile', 'deb12-web', '--mac', '52:54:00:00:00:99', '--netboot-enabled', 'false']);
  });
  after(async () => {
    await srv?.stop();
  });

  test('rule add validates the expression with its own parser; errors name match and the column', async () => {
    let r = await srv.cli(['rule', 'add', '--name', 'web', '--priority', '10', '--match', 'ram_mib>="4096"', '--profile', 'deb12-web']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /INVALID_FIELD: match: >= compares numbers .* at column 8/);
    r = await srv.cli(['rule', 'add', '--name', 'web', '--match', 'ram_mib>1', '--profile', 'nope']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /profile: nope does not exist/);
    r = await srv.cli([
      'rule', 'add', '--name', 'web', '--priority', '10', '--match', 'ram_mib>=4096 && disks.count>=1 && product~"Standard PC*"',
      '--profile', 'deb12-web', '--hostname', 'web-{serial}', '--max', '1',
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await srv.cli(['rule', 'add', '--name', 'catchall-big', '--priority', '50', '--match', 'ram_mib>=65536', '--profile', 'deb12-web']);
    assert.equal(r.code, 0, r.stderr);
    r = await srv.cli(['rule', 'list']);
    assert.match(r.stdout, /^PRIORITY\s+NAME.*\n10\s+web\s+deb12-web\s+0\/1\s+web-\{serial\}/);
  });

  test('a matching machine is enlisted by the first rule; the image is told to reboot', async () => {
    const r = await post(inventory('52:54:00:00:00:01'));
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual(r.body, { name: 'disc-525400000001', action: 'reboot', system: 'web-web0042', rule: 'web' });
    const sys = (await srv.api('GET', '/api/v1/systems/web-web0042')).body as { profile: string; netboot_enabled: boolean; interfaces: Record<string, { mac_address: string }> };
    assert.equal(sys.profile, 'deb12-web');
    assert.equal(sys.netboot_enabled, true);
    assert.equal(sys.interfaces['eth0']?.mac_address, '52:54:00:00:00:01');
    const evs = (await srv.api('GET', '/api/v1/systems/web-web0042/events')).body as { type: string; detail: Record<string, unknown> }[];
    assert.equal(evs[0]?.type, 'enlisted');
    assert.equal(evs[0]?.detail['rule'], 'web');
    const poll = await srv.api('GET', '/api/v1/discover/52-54-00-00-00-01', undefined, { auth: false });
    assert.deepEqual(poll.body, { action: 'reboot' });
    // Its profile does not allow kexec: no kexec target, the image reboots.
    const none = await srv.api('GET', '/api/v1/discover/52:54:00:00:00:01/kexec', undefined, { auth: false });
    assert.equal(none.status, 404);
    assert.equal((none.body as { field: string }).field, 'mac');
    // A profile with discovery_kexec: the same poll says kexec, and the target is what its PXE boot would get.
    assert.equal((await srv.cli(['profile', 'add', '--name', 'web-kexec', '--parent', 'deb12-web', '--autoinstall-meta', 'discovery_kexec=true'])).code, 0);
    assert.equal((await srv.cli(['system', 'edit', '--name', 'web-web0042', '--profile', 'web-kexec'])).code, 0);
    assert.deepEqual((await srv.api('GET', '/api/v1/discover/52:54:00:00:00:01', undefined, { auth: false })).body, { action: 'kexec' });
    const kx = await srv.api('GET', '/api/v1/discover/52:54:00:00:00:01/kexec', undefined, { auth: false });
    assert.equal(kx.status, 200);
    const [kernel, initrd, cmdline, rest] = String(kx.body).split('\n');
    assert.equal(kernel, `${srv.url}/boot/distro/d/kernel?mac=52:54:00:00:00:01`);
    assert.equal(initrd, `${srv.url}/boot/distro/d/initrd?mac=52:54:00:00:00:01`);
    const ipxe = await srv.api('GET', '/boot/ipxe/52:54:00:00:00:01', undefined, { auth: false });
    assert.ok(String(ipxe.body).includes(` ${cmdline!}`), `the kexec command line is the PXE boot's: ${cmdline!}\n${String(ipxe.body)}`);
    assert.notEqual(cmdline, '');
    assert.equal(rest, '');
    // Not enlisted: nothing to kexec into.
    assert.equal((await srv.api('GET', '/api/v1/discover/52:54:00:00:00:77/kexec', undefined, { auth: false })).status, 404);
  });

  test('a machine matching no rule (and one past a rule\'s max) stays discovered; rule test says why', async () => {
    let r = await post(inventory('52:54:00:00:00:02', { ram_mib: 1024, serial: 'SMALL1' }));
    assert.equal(r.status, 201);
    assert.deepEqual(r.body, { name: 'disc-525400000002', action: 'wait' });
    r = await post(inventory('52:54:00:00:00:03', { serial: 'WEB0043' }));
    assert.deepEqual(r.body, { name: 'disc-525400000003', action: 'wait' }, 'rule web has max 1');
    const list = await srv.cli(['discovered', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /disc-525400000002\s+52:54:00:00:00:02\s+discovered\s+QEMU\s+Standard PC \(i440FX \+ PIIX, 1996\)\s+SMALL1\s+2\s+1024\s+1\s+-/);
    assert.match(list.stdout, /disc-525400000001\s+52:54:00:00:00:01\s+provisioned.*web-web0042/);
    const t = await srv.cli(['rule', 'test', '--discovered', 'disc-525400000003']);
    assert.match(t.stdout, /10\s+web\s+yes \(max reached\)\s+web-web0043/);
    assert.match(t.stdout, /50\s+catchall-big\s+no/);
    assert.match(t.stdout, /no rule fires/);
    const rep = await srv.cli(['discovered', 'report', '--name', 'disc-525400000002']);
    assert.match(rep.stdout, /Serial\s+: SMALL1/);
    assert.match(rep.stdout, /NIC eth1\s+: 52:54:00:ff:00:09 link down/);
    assert.match(rep.stdout, /Disk vda\s+: 8 GiB \(rotational\)/);
    // By hand: provision with a profile and host name.
    const p = await srv.cli(['discovered', 'provision', '--name', 'disc-525400000002', '--profile', 'deb12-web', '--hostname', 'small1']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(((await srv.api('GET', '/api/v1/systems/small1')).body as { interfaces: Record<string, { mac_address: string }> }).interfaces['eth0']?.mac_address, '52:54:00:00:00:02');
    assert.equal((await srv.cli(['discovered', 'remove', '--name', 'disc-525400000003'])).code, 0);
    assert.equal((await srv.api('GET', '/api/v1/discovered/disc-525400000003')).status, 404);
  });

  test('a known system is never overwritten; bad reports are named; writes need the token', async () => {
    const before = (await srv.api('GET', '/api/v1/systems/known1')).body;
    let r = await post(inventory('52:54:00:00:00:99'));
    assert.equal(r.status, 409);
    assert.equal((r.body as { code: string }).code, 'KNOWN_SYSTEM');
    assert.deepEqual((await srv.api('GET', '/api/v1/systems/known1')).body, before);
    r = await post(inventory('52:54:00:00:00:05', { ram_mib: -1 }));
    assert.equal(r.status, 400);
    assert.equal((r.body as { field: string }).field, 'ram_mib');
    r = await post(inventory('52:54:00:00:00:05', { evil: 1 }));
    assert.equal((r.body as { field: string }).field, 'evil');
    r = await post(inventory('52:54:00:00:00:05', { disks: [{ name: 'vda', size_gib: 'x' }] }));
    assert.equal((r.body as { field: string }).field, 'disks[0].size_gib');
    r = await srv.api('POST', '/api/v1/discover', undefined, { auth: false, raw: JSON.stringify(inventory('52:54:00:00:00:06', { serial: 'x'.repeat(70_000) })) });
    assert.equal(r.status, 413, 'over the 64 kB report limit');
    const del = await srv.api('DELETE', '/api/v1/discovered/disc-525400000001', undefined, { auth: false });
    assert.equal(del.status, 401);
    const prov = await srv.api('POST', '/api/v1/discovered/disc-525400000001/provision', { profile: 'deb12-web' }, { auth: false });
    assert.equal(prov.status, 401);
  });

  test('a flood from one address is refused with 429 and Retry-After; the server keeps answering', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${srv.url}/api/v1/discover/52:54:00:00:00:01`);
      statuses.push(res.status);
      if (res.status === 429) assert.equal(res.headers.get('retry-after'), '10');
      await res.arrayBuffer();
    }
    assert.ok(statuses.includes(429), `some refused: ${statuses.join(',')}`);
    assert.equal(statuses[0], 200);
    assert.equal((await srv.api('GET', '/api/v1/health')).status, 200);
  });
});
