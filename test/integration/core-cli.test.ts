/**
 * The `forge` CLI (a real process) against a real `forge serve` process:
 * the command sequence of the issue, then bad input.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cliOk, startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

let srv: ForgeServer;
before(async () => {
  srv = await startForge();
});
after(async () => {
  await srv?.stop();
});

const ok = (args: string[]): Promise<string> => cliOk(srv, args);

test('the issue command sequence works end to end', async () => {
  await ok(['distro', 'add', '--name', 'deb12', '--arch', 'x86_64', '--breed', 'debian', '--os-version', 'bookworm',
    '--kernel', '/srv/forge/deb12/linux', '--initrd', '/srv/forge/deb12/initrd.gz']);
  await ok(['profile', 'add', '--name', 'deb12-web', '--distro', 'deb12', '--autoinstall', 'preseed/default.seed',
    '--kernel-options', 'console=ttyS0,115200', '--autoinstall-meta', 'tree=http://mirror/debian']);
  await ok(['profile', 'add', '--name', 'deb12-web-big', '--parent', 'deb12-web', '--virt-ram', '4096']);
  await ok(['system', 'add', '--name', 'vm9', '--profile', 'deb12-web-big', '--mac=random', '--virt-type', 'kvm']);
  await ok(['system', 'edit', '--name', 'vm9', '--interface', 'eth1', '--mac', '52:54:00:12:34:56', '--ip-address', '10.0.0.9',
    '--netmask', '255.255.255.0', '--static', 'true']);

  const vars = await ok(['system', 'dumpvars', '--name', 'vm9']);
  const line = (k: string): string | undefined => vars.split('\n').find((l) => l.startsWith(`${k} : `))?.slice(k.length + 3);
  assert.equal(line('virt_ram'), '4096', 'inherited from deb12-web-big');
  assert.equal(line('tree'), 'http://mirror/debian', 'autoinstall_meta promoted');
  assert.equal(line('breed'), 'debian');
  assert.equal(line('autoinstall'), 'preseed/default.seed');
  assert.match(line('mac_address_eth0') ?? '', /^52:54:00(:[0-9a-f]{2}){3}$/, 'random MAC with the KVM OUI');
  assert.equal(line('ip_address_eth1'), '10.0.0.9');
  assert.equal(line('static_eth1'), 'true');
  assert.match(line('kernel_cmdline') ?? '', /console=ttyS0,115200/);
  assert.match(line('autoinstall_url') ?? '', new RegExp(`^http://127\\.0\\.0\\.1:${srv.port}/i/[0-9a-f]{32}/autoinstall/system/vm9$`));

  assert.deepEqual((await ok(['system', 'list'])).split('\n').filter((l) => l !== '').map((l) => l.trim()), ['vm9']);
  const report = await ok(['system', 'report', '--name', 'vm9']);
  assert.match(report, /^Name\s+: vm9$/m);
  assert.match(report, /^Profile\s+: deb12-web-big$/m);
  assert.match(report, /^Interface =+\s+: eth1$/m);
  assert.match(report, /^IP Address\s+: 10\.0\.0\.9$/m);
  const json = JSON.parse(await ok(['system', 'report', '--name', 'vm9', '--json'])) as { interfaces: Record<string, { netmask: string }> };
  assert.equal(json.interfaces['eth1']!.netmask, '255.255.255.0');
  await ok(['system', 'remove', '--name', 'vm9']);
  assert.equal((await ok(['system', 'list'])).trim(), '');
});

test('edit, in-place dict edits, find, copy, rename, recursive remove', async () => {
  await ok(['profile', 'edit', '--name', 'deb12-web', '--kernel-options', 'quiet splash', '--in-place']);
  let p = JSON.parse(await ok(['profile', 'report', '--name', 'deb12-web', '--json'])) as { kernel_options: Record<string, string | null> };
  assert.deepEqual(p.kernel_options, { console: 'ttyS0,115200', quiet: null, splash: null });
  await ok(['profile', 'edit', '--name', 'deb12-web', '--kernel-options', '~splash', '--in-place']);
  p = JSON.parse(await ok(['profile', 'report', '--name', 'deb12-web', '--json'])) as typeof p;
  assert.deepEqual(p.kernel_options, { console: 'ttyS0,115200', quiet: null });
  await ok(['profile', 'edit', '--name', 'deb12-web', '--kernel-options', 'console=tty0']);
  p = JSON.parse(await ok(['profile', 'report', '--name', 'deb12-web', '--json'])) as typeof p;
  assert.deepEqual(p.kernel_options, { console: 'tty0' }, 'without --in-place the dict is replaced');

  await ok(['system', 'add', '--name', 'web1', '--profile', 'deb12-web', '--mac', '52:54:00:00:00:11', '--ip-address', '10.0.1.1', '--virt-type', 'xenpv']);
  await ok(['system', 'add', '--name', 'web2', '--profile', 'deb12-web', '--interface', 'eno1', '--mac', 'random', '--virt-type', 'vmware']);
  const web2 = JSON.parse(await ok(['system', 'report', '--name', 'web2', '--json'])) as { interfaces: Record<string, { mac_address: string }> };
  assert.match(web2.interfaces['eno1']!.mac_address, /^00:50:56:/);
  assert.deepEqual((await ok(['system', 'find', '--mac-address', '52:54:00:00:00:11'])).trim().split('\n'), ['web1']);
  assert.deepEqual((await ok(['system', 'find', '--name', 'web*'])).trim().split('\n'), ['web1', 'web2']);
  assert.deepEqual((await ok(['system', 'find', '--virt-type', 'vmware'])).trim().split('\n'), ['web2']);
  await ok(['system', 'edit', '--name', 'web2', '--interface', 'eno1', '--delete-interface']);
  const after = JSON.parse(await ok(['system', 'report', '--name', 'web2', '--json'])) as { interfaces: object };
  assert.deepEqual(after.interfaces, {});
  await ok(['system', 'edit', '--name', 'web1', '--netboot-enabled', 'false']);
  assert.match(await ok(['system', 'report', '--name', 'web1']), /^Netboot Enabled\s+: false$/m);
  // A bare true|false flag means true, before another flag or at the end.
  await ok(['system', 'edit', '--netboot-enabled', '--name', 'web1']);
  assert.match(await ok(['system', 'report', '--name', 'web1']), /^Netboot Enabled\s+: true$/m);
  await ok(['system', 'edit', '--name', 'web1', '--netboot-enabled=false']);
  assert.match(await ok(['system', 'report', '--name', 'web1']), /^Netboot Enabled\s+: false$/m);
  await ok(['system', 'edit', '--name', 'web1', '--netboot-enabled']);
  assert.match(await ok(['system', 'report', '--name', 'web1']), /^Netboot Enabled\s+: true$/m);

  await ok(['profile', 'copy', '--name', 'deb12-web', '--newname', 'deb12-web-copy']);
  await ok(['profile', 'rename', '--name', 'deb12-web-copy', '--newname', 'deb12-db']);
  assert.match(await ok(['profile', 'list']), /deb12-db/);
  await ok(['distro', 'rename', '--name', 'deb12', '--newname', 'debian12']);
  assert.match(await ok(['profile', 'report', '--name', 'deb12-db']), /^Distro\s+: debian12$/m);

  const refused = await srv.cli(['distro', 'remove', '--name', 'debian12']);
  assert.equal(refused.code, 5);
  assert.match(refused.stderr, /REFERENCED/);
  const rm = await ok(['distro', 'remove', '--name', 'debian12', '--recursive']);
  assert.match(rm, /removed system web1/);
  assert.equal((await ok(['profile', 'list'])).trim(), '');
});

test('bad input: clear error naming the field, non-zero exit, nothing written', async () => {
  await ok(['distro', 'add', '--name', 'd1', '--kernel', '/srv/forge/k', '--initrd', '/srv/forge/i', '--breed', 'redhat']);
  await ok(['profile', 'add', '--name', 'p1', '--distro', 'd1']);
  await ok(['profile', 'add', '--name', 'p2', '--parent', 'p1']);
  await ok(['system', 'add', '--name', 's1', '--profile', 'p1', '--mac', '52:54:00:ab:00:01', '--ip-address', '10.2.0.1']);
  const before = await ok(['export']);
  const cases: [string[], number, RegExp][] = [
    [['system', 'add', '--name', 's2', '--profile', 'p1', '--mac', '52:54:00:ab:00'], 3, /INVALID_FIELD.*interfaces\.eth0\.mac_address/],
    [['system', 'add', '--name', 's2', '--profile', 'p1', '--ip-address', '10.2.0.256'], 3, /INVALID_FIELD.*interfaces\.eth0\.ip_address/],
    [['system', 'add', '--name', 's 2', '--profile', 'p1'], 3, /INVALID_FIELD.*name/],
    [['system', 'add', '--name', 's2', '--profile', 'p1', '--mac', '52:54:00:AB:00:01'], 5, /DUPLICATE_MAC.*interfaces\.eth0\.mac_address.*s1/],
    [['system', 'add', '--name', 's2', '--profile', 'p1', '--ip-address', '10.2.0.1'], 5, /DUPLICATE_IP/],
    [['system', 'add', '--name', 's2', '--profile', 'nope'], 3, /REFERENCE_MISSING.*profile/],
    [['profile', 'add', '--name', 'p3', '--distro', 'nope'], 3, /REFERENCE_MISSING.*distro/],
    [['profile', 'edit', '--name', 'p1', '--parent', 'p2'], 3, /PARENT_CYCLE.*parent/],
    [['system', 'add', '--name', 's2', '--profile', 'p1', '--virt-ram', 'lots'], 3, /INVALID_FIELD.*virt_ram/],
    [['system', 'add', '--name', 's2', '--profile', 'p1', '--no-such-flag', 'x'], 2, /USAGE.*no-such-flag/],
    [['system', 'add', '--profile', 'p1'], 2, /USAGE.*--name/],
    [['system', 'frobnicate'], 2, /USAGE.*frobnicate/],
    [['system', 'add', '--name', 's2', '--profile', 'p1'], 6, /AUTH_REQUIRED|AUTH_INVALID/],
    [['system', 'report', '--name', 'nobody'], 4, /NOT_FOUND/],
  ];
  for (const [args, code, re] of cases) {
    const env = args.includes('s2') && code === 6 ? { FORGE_TOKEN: 'wrong-token' } : {};
    const r = await srv.cli(args, env);
    assert.equal(r.code, code, `forge ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, `forge ${args.join(' ')}`);
    assert.equal(r.stdout, '', `forge ${args.join(' ')} printed to stdout`);
  }
  // missing token entirely: no FORGE_TOKEN and a data dir without a token file
  const r = await srv.cli(['system', 'add', '--name', 's2', '--profile', 'p1'], { FORGE_TOKEN: '', FORGE_DATA_DIR: '/nonexistent' });
  assert.equal(r.code, 6);
  assert.match(r.stderr, /AUTH_REQUIRED/);
  // malformed JSON to import-data
  const bad = await srv.cli(['import-data', '-'], {}, { input: '{"forge_export": 1, ' });
  assert.equal(bad.code, 3);
  assert.match(bad.stderr, /BAD_JSON/);
  const afterExport = await ok(['export']);
  const strip = (s: string): unknown => ({ ...(JSON.parse(s) as object), exported: '' });
  assert.deepEqual(strip(afterExport), strip(before), 'nothing written by any failed command');
  // unreachable server
  const down = await srv.cli(['system', 'list'], { FORGE_SERVER: 'http://127.0.0.1:1' });
  assert.equal(down.code, 7);
  assert.match(down.stderr, /SERVER_UNAVAILABLE/);
});

test('--help on forge, a subject and every command', async () => {
  const top = await srv.cli(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /system add/);
  assert.match(top.stdout, /exit codes:/);
  const subj = await srv.cli(['system', '--help']);
  assert.equal(subj.code, 0);
  assert.match(subj.stdout, /dumpvars/);
  for (const cmd of [['system', 'add'], ['system', 'edit'], ['profile', 'dumpvars'], ['distro', 'find'], ['serve'], ['export'], ['import-data'], ['check']]) {
    const r = await srv.cli([...cmd, '--help']);
    assert.equal(r.code, 0, cmd.join(' '));
    assert.match(r.stdout, new RegExp(`usage: forge ${cmd.join(' ')}`));
  }
  const add = await srv.cli(['system', 'add', '--help']);
  for (const f of ['--virt-ram', '--mac ', '--interface', '--ip-address', '--if-gateway', '--kernel-options', '--netboot-enabled']) {
    assert.ok(add.stdout.includes(f), f);
  }
  const serve = await srv.cli(['serve', '--help']);
  for (const f of ['--dhcp-mode', '--tftp-port', '--data-dir', '--http-port', '--config']) assert.ok(serve.stdout.includes(f), f);
});
