/**
 * Cobbler's XML-RPC API at /cobbler_api, driven by Python's xmlrpc.client
 * (an independent client) doing what koan and Ansible's cobbler_system do,
 * against a real forge serve; plus the endpoint's bounds (anonymous body
 * size, malformed XML, DOCTYPE) answered as faults, never a crash.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { getText, startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../../test/clients/cobbler_clients.py', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'forge-xmlrpc-'));
let forge: ForgeServer;
const KERNEL = 'forge-test-kernel-bytes\n';
const INITRD = 'forge-test-initrd-bytes\n';

before(async () => {
  forge = await startForge();
  writeFileSync(join(tmp, 'vmlinuz'), KERNEL);
  writeFileSync(join(tmp, 'initrd.img'), INITRD);
  const ok = async (args: string[]): Promise<void> => {
    const r = await forge.cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  };
  await ok(['distro', 'add', '--name', 'el9', '--arch', 'x86_64', '--breed', 'redhat', '--os-version', 'rhel9', '--kernel', join(tmp, 'vmlinuz'), '--initrd', join(tmp, 'initrd.img'), '--kernel-options', 'quiet console=tty0']);
  await ok(['profile', 'add', '--name', 'el9-base', '--distro', 'el9', '--autoinstall', 'kickstart/default.ks', '--autoinstall-meta', 'tree=http://mirror.example/el9 timezone=UTC', '--virt-ram', '2048', '--virt-file-size', '12', '--virt-bridge', 'br0']);
  await ok(['profile', 'add', '--name', 'el9-web', '--parent', 'el9-base', '--kernel-options', '!quiet inst.sshd', '--virt-cpus', '2']);
  await ok(['system', 'add', '--name', 'vm1', '--profile', 'el9-web', '--hostname', 'vm1.lab.example', '--mac', '52:54:00:aa:bb:01', '--ip-address', '192.0.2.10', '--netmask', '255.255.255.0', '--static', 'true', '--gateway', '192.0.2.1', '--virt-type', 'kvm']);
  await ok(['system', 'edit', '--name', 'vm1', '--interface', 'eth1', '--mac', '52:54:00:aa:bb:02']);
});
after(async () => {
  await forge.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function py(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run('python3', [SCRIPT, ...args], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

test('koan: lists, the rendered system record, and the kernel, initrd and autoinstall it names', async () => {
  const r = await py('koan', '127.0.0.1', String(forge.port), 'vm1', 'el9-web');
  assert.equal(r['ping'], true);
  assert.deepEqual(r['systems'], ['vm1']);
  assert.deepEqual((r['profiles'] as string[]).sort(), ['el9-base', 'el9-web']);
  assert.deepEqual(r['distros'], ['el9']);
  assert.deepEqual(r['images'], []);
  assert.deepEqual(r['repos'], []);

  const pd = r['rendered'] as Record<string, unknown>;
  // Cobbler's flattened blend: strings for the dicts, child wins, !key deletes
  assert.equal(pd['kernel_options'], 'console=tty0 inst.sshd ');
  assert.match(String(pd['autoinstall_meta']), /^tree=http:\/\/mirror\.example\/el9 timezone=UTC $/);
  assert.equal(pd['http_server'], `127.0.0.1:${forge.port}`);
  assert.equal(pd['server'], '127.0.0.1');
  assert.deepEqual([pd['name'], pd['system_name'], pd['profile'], pd['profile_name'], pd['distro'], pd['distro_name']], ['vm1', 'vm1', 'el9-web', 'el9-web', 'el9', 'el9']);
  assert.deepEqual([pd['breed'], pd['os_version'], pd['arch']], ['redhat', 'rhel9', 'x86_64']);
  assert.deepEqual([pd['virt_type'], pd['virt_ram'], pd['virt_cpus'], pd['virt_file_size'], pd['virt_bridge'], pd['virt_pxe_boot']], ['kvm', 2048, 2, 12, 'br0', false]);
  assert.equal(pd['autoinstall'], 'kickstart/default.ks');
  assert.equal(pd['hostname'], 'vm1.lab.example');
  assert.equal(pd['gateway'], '192.0.2.1');
  assert.equal(pd['netboot_enabled'], true);
  const ifs = pd['interfaces'] as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(ifs).sort(), ['eth0', 'eth1']);
  assert.deepEqual(
    [ifs['eth0']!['mac_address'], ifs['eth0']!['ip_address'], ifs['eth0']!['netmask'], ifs['eth0']!['static'], ifs['eth0']!['interface_type'], ifs['eth0']!['virt_bridge'], ifs['eth0']!['mtu']],
    ['52:54:00:aa:bb:01', '192.0.2.10', '255.255.255.0', true, 'na', 'br0', ''],
  );
  assert.equal(pd['mac_address_eth1'], '52:54:00:aa:bb:02', 'per-interface FIELD_IFNAME keys, as Cobbler blender adds');
  assert.equal(pd['timezone'], undefined, 'Cobbler does not promote autoinstall_meta keys in the blended record');

  // the downloads koan makes
  const files = r['files'] as Record<string, { url: string; status: number; bytes?: string; text?: string }>;
  assert.equal(files['kernel']!.status, 200);
  assert.equal(files['kernel']!.bytes, KERNEL);
  assert.equal(files['initrd']!.bytes, INITRD);
  assert.equal(r['autoinst_url'], `http://127.0.0.1:${forge.port}/cblr/svc/op/autoinstall/system/vm1`);
  // Anonymous XML-RPC names the Cobbler URL without the install token: koan cannot open a system's
  // file with it (that would hand the file to anyone who knows the name); the installer's URL can.
  assert.equal(files['autoinst']!.status, 404, 'no install token, no file');
  const ks = (await getText(forge, '/cblr/svc/op/autoinstall/system/vm1')).text;
  assert.match(ks, /^url --url=http:\/\/mirror\.example\/el9$/m, 'the system kickstart');
  assert.match(ks, /network --device=52:54:00:aa:bb:01 --bootproto=static --ip=192\.0\.2\.10/);

  const prof = r['profile_rendered'] as Record<string, unknown>;
  assert.deepEqual([prof['name'], prof['profile_name'], prof['distro_name'], prof['interfaces'], prof['system_name']], ['el9-web', 'el9-web', 'el9', undefined, undefined]);
  assert.equal(prof['autoinst'], `http://127.0.0.1:${forge.port}/cblr/svc/op/autoinstall/profile/el9-web`);
  assert.equal(r['for_koan'], 'vm1');
  assert.equal(r['profile_for_koan'], 'el9-web');
  assert.deepEqual(r['unknown'], {}, 'an unknown name is {}, not a fault (koan: "No entry/entries found")');
  assert.deepEqual(r['unknown_profile'], {});
});

test('Ansible cobbler_system: login, find, new/modify/save, modify existing, sync, remove', async () => {
  const r = await py('ansible', '127.0.0.1', String(forge.port), forge.token, 'el9-web', 'ans1');
  assert.match(String(r['bad_login']), /login failed/);
  assert.equal(r['token_check'], true);
  assert.equal(r['token_check_bad'], false);
  assert.equal(r['version'], 3.3);
  assert.deepEqual(r['before'], []);
  assert.deepEqual(r['unsaved'], [], 'nothing is written before save_system');
  assert.equal(r['saved'], true);
  assert.deepEqual(r['compare'], { hostname: 'ans1.lab.example', eth0_ip: '192.0.2.77', eth0_mac: '52:54:00:12:34:56', eth0_cnames: [], bond0_type: 'bond' });
  assert.deepEqual(r['after_modify'], { comment: 'changed by ansible', eth0_ip: '192.0.2.78' });
  const f = r['faults'] as Record<string, string>;
  assert.match(f['no_token_new']!, /invalid token/);
  assert.match(f['no_token_modify']!, /invalid token/);
  assert.match(f['no_token_remove']!, /invalid token/);
  assert.match(f['power_field']!, /power_options: not a power field forge drives/);
  assert.deepEqual(r['power'], { anon_pass: '********', anon_type: 'ipmilanplus', pass: 'bmc-secret', type: 'ipmilanplus', rendered_anon_pass: '********', rendered_pass: 'bmc-secret' }, 'secrets masked for anonymous readers (koan), shown with the token');
  assert.match(f['bad_ip']!, /INVALID_FIELD: .*interfaces\.eth0\.ip_address/);
  assert.match(f['unknown_method']!, /frobnicate is not supported/);
  assert.equal(r['after_faults'], '192.0.2.78', 'a refused save changed nothing');
  assert.equal(r['sync'], true);
  assert.equal(r['removed'], true);
  assert.deepEqual(r['after_remove'], []);
});

test('the system Ansible created is a real forge system, with its bond', async () => {
  const r = await py('ansible', '127.0.0.1', String(forge.port), forge.token, 'el9-web', 'ans2').catch((e: unknown) => {
    throw e;
  });
  assert.equal(r['removed'], true);
  // run the create half by hand through Python, then read it back with forge's CLI
  const script = `
import xmlrpc.client, sys
s = xmlrpc.client.ServerProxy("http://127.0.0.1:${forge.port}/cobbler_api")
t = s.login("admin", sys.argv[1])
h = s.new_system(t)
s.modify_system(h, "name", "ans3", t)
s.modify_system(h, "profile", "el9-base", t)
s.modify_system(h, "modify_interface", {"macaddress-eth1": "52:54:00:00:00:31", "interfacetype-eth1": "bond_slave", "interfacemaster-eth1": "bond0", "interfacetype-bond0": "bond", "bondingopts-bond0": "mode=802.3ad", "ipaddress-bond0": "192.0.2.31", "static-bond0": True, "netmask-bond0": "255.255.255.0"}, t)
print(s.save_system(h, t))
`;
  const out = await run('python3', ['-c', script, forge.token], { timeout: 60_000 });
  assert.equal(out.stdout.trim(), 'True');
  const rep = await forge.cli(['system', 'report', '--name', 'ans3', '--json']);
  assert.equal(rep.code, 0, rep.stderr);
  const sys = JSON.parse(rep.stdout) as { profile: string; interfaces: Record<string, Record<string, unknown>> };
  assert.equal(sys.profile, 'el9-base');
  assert.deepEqual(
    [sys.interfaces['bond0']!['interface_type'], sys.interfaces['bond0']!['bonding_opts'], sys.interfaces['bond0']!['ip_address'], sys.interfaces['eth1']!['interface_master']],
    ['bond', 'mode=802.3ad', '192.0.2.31', 'bond0'],
  );
});

async function post(body: string, type = 'text/xml'): Promise<{ status: number; text: string }> {
  const res = await fetch(`${forge.url}/cobbler_api`, { method: 'POST', headers: { 'content-type': type }, body });
  return { status: res.status, text: await res.text() };
}

test('bounds: an anonymous body over the limit, malformed XML and DOCTYPE are faults; the server keeps answering', async () => {
  const big = `<?xml version="1.0"?><methodCall><methodName>ping</methodName><params><param><value><string>${'x'.repeat(300 * 1024)}</string></value></param></params></methodCall>`;
  const r1 = await post(big);
  assert.equal(r1.status, 413);
  assert.match(r1.text, /<fault>.*larger than 262144 bytes/s);
  const r2 = await post('<methodCall><methodName>ping</methodName><params><param><value><int>1</value></param></params></methodCall>');
  assert.equal(r2.status, 200);
  assert.match(r2.text, /<fault>.*not an XML-RPC call: end tag &lt;\/value&gt; does not match &lt;int&gt;/s);
  const r3 = await post('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><methodCall><methodName>ping</methodName></methodCall>');
  assert.match(r3.text, /<fault>.*DOCTYPE/s);
  const deep = `<methodCall><methodName>ping</methodName><params><param>${'<value><array><data>'.repeat(100)}${'</data></array></value>'.repeat(100)}</param></params></methodCall>`;
  assert.match((await post(deep)).text, /<fault>.*nesting deeper/s);
  const get = await fetch(`${forge.url}/cobbler_api`);
  assert.equal(get.status, 405);
  // still alive, and the same ping works
  const ok = await post('<?xml version="1.0"?><methodCall><methodName>ping</methodName><params></params></methodCall>');
  assert.match(ok.text, /<boolean>1<\/boolean>/);
});
