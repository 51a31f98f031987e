/**
 * `forge template convert` on the Cheetah corpus (test/fixtures/cheetah:
 * every construct and variable Cobbler 3.3's sample templates and snippets
 * use, written here), then the converted files served by a real forge serve
 * for a system (static interface, bond, VLAN, static route) and a profile,
 * checked with the installers' rules: the kickstart checker, debconf's own
 * debconf-set-selections, the AutoYaST checker. Where forge has Cobbler's
 * equivalent the output keeps Cobbler's meaning (network lines per physical
 * interface, nopxe once, repos as repo lines). What cannot be converted is
 * marked in place and listed with its line.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkKickstart } from '../lib/kickstart-check.js';
import { checkAutoyast } from '../../server/render/checks/autoyast.js';
import { need } from '../lib/env.js';
import { installerUrl, runCli, startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

const CORPUS = fileURLToPath(new URL('../../../test/fixtures/cheetah/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'forge-cheetah-'));
const templatesDir = join(tmp, 'templates');
const snippetsDir = join(tmp, 'snippets');
let forge: ForgeServer;
const HASH = '$6$rounds=4096$salt$0123456789abcdefABCDEF';

async function convert(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCli(['template', 'convert', ...args], { ...process.env });
}

before(async () => {
  const t = await convert([join(CORPUS, 'templates'), '--out', join(templatesDir, 'cobbler'), '--json']);
  assert.equal(t.code, 0, `templates convert cleanly: ${t.stdout}${t.stderr}`);
  const s = await convert([join(CORPUS, 'snippets'), '--out', snippetsDir]);
  assert.equal(s.code, 0, `snippets convert cleanly: ${s.stdout}${s.stderr}`);
  assert.match(s.stdout, /11 file\(s\) converted, 0 part\(s\) left/);
  forge = await startForge({ args: ['--templates-dir', templatesDir, '--snippets-dir', snippetsDir, '--pxe-just-once', 'true'] });
  const ok = async (a: string[]): Promise<void> => {
    const r = await forge.cli(a);
    assert.equal(r.code, 0, `${a.join(' ')}: ${r.stderr}`);
  };
  writeFileSync(join(tmp, 'k'), 'k');
  await ok(['distro', 'add', '--name', 'el9', '--breed', 'redhat', '--os-version', 'rhel9', '--kernel', join(tmp, 'k'), '--initrd', join(tmp, 'k'), '--kernel-options-post', 'console=ttyS0,115200']);
  await ok(['profile', 'add', '--name', 'el9-cob', '--distro', 'el9', '--autoinstall', 'cobbler/sample.ks', '--autoinstall-meta',
    `tree=http://mirror.example/el9/BaseOS root_password_hash=${HASH} disk=vda repos=appstream=http://mirror.example/el9/AppStream;extras=http://mirror.example/extras`]);
  await ok(['system', 'add', '--name', 'web1', '--profile', 'el9-cob', '--hostname', 'web1.lab.example', '--gateway', '192.0.2.1', '--name-servers', '192.0.2.53',
    '--interface', 'eth0', '--mac', '52:54:00:aa:00:01', '--ip-address', '192.0.2.21', '--netmask', '255.255.255.0', '--static', 'true', '--static-routes', '10.9.0.0/16:192.0.2.254']);
  await ok(['system', 'edit', '--name', 'web1', '--interface', 'eth1', '--mac', '52:54:00:aa:00:02', '--interface-type', 'bond_slave', '--interface-master', 'bond0']);
  await ok(['system', 'edit', '--name', 'web1', '--interface', 'bond0', '--interface-type', 'bond', '--ip-address', '192.0.2.22', '--netmask', '255.255.255.0', '--static', 'true']);
  await ok(['system', 'edit', '--name', 'web1', '--interface', 'eth0.100', '--ip-address', '198.51.100.5', '--netmask', '255.255.255.0', '--static', 'true']);
  // a system with an interface lacking a MAC takes Cobbler's "old style" network lines
  await ok(['system', 'add', '--name', 'old1', '--profile', 'el9-cob', '--hostname', 'old1', '--interface', 'eth0', '--ip-address', '192.0.2.31', '--netmask', '255.255.255.0', '--static', 'true']);
  await ok(['distro', 'add', '--name', 'deb12', '--breed', 'debian', '--os-version', 'bookworm', '--kernel', join(tmp, 'k'), '--initrd', join(tmp, 'k')]);
  await ok(['profile', 'add', '--name', 'deb-cob', '--distro', 'deb12', '--autoinstall', 'cobbler/sample.seed', '--autoinstall-meta', `tree=http://deb.debian.org/debian mirror_host=deb.debian.org root_password_hash=${HASH}`]);
  await ok(['system', 'add', '--name', 'deb_one', '--profile', 'deb-cob', '--mac', '52:54:00:aa:00:41']);
  await ok(['distro', 'add', '--name', 'sles15', '--breed', 'suse', '--os-version', 'sles15', '--kernel', join(tmp, 'k'), '--initrd', join(tmp, 'k')]);
  await ok(['profile', 'add', '--name', 'sles-cob', '--distro', 'sles15', '--autoinstall', 'cobbler/sample_autoyast.xml', '--autoinstall-meta', `root_password_hash=${HASH}`]);
  await ok(['system', 'add', '--name', 'sles1', '--profile', 'sles-cob', '--interface', 'eth0', '--mac', '52:54:00:aa:00:51', '--ip-address', '192.0.2.51', '--netmask', '255.255.255.0', '--static', 'true']);
  await ok(['system', 'edit', '--name', 'sles1', '--interface', 'eth1', '--mac', '52:54:00:aa:00:52', '--interface-type', 'bond_slave', '--interface-master', 'bond0']);
});
after(async () => {
  await forge.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function fetchText(path: string): Promise<string> {
  // Systems through their install token, as installers; profiles with the token (anonymous profile renders carry no secrets).
  const res = await fetch(await installerUrl(forge, path), path.includes('/profile/') ? { headers: { authorization: `Bearer ${forge.token}` } } : {});
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return text;
}

test('kickstart for a system: renders, passes the kickstart checks, keeps Cobbler semantics', async () => {
  const ks = await fetchText('/cblr/svc/op/autoinstall/system/web1');
  assert.deepEqual(checkKickstart(ks, 'RHEL9'), [], ks);
  assert.doesNotMatch(ks, /Cheetah line comment|block comment|CHEETAH/);
  assert.match(ks, /^# Kickstart for web1 \(el9, rhel9\)$/m);
  assert.match(ks, /^url --url=http:\/\/mirror\.example\/el9\/BaseOS$/m);
  // $yum_repo_stanza -> forge's repos
  assert.match(ks, /^repo --name=appstream --baseurl=http:\/\/mirror\.example\/el9\/AppStream$/m);
  assert.match(ks, /^repo --name=extras --baseurl=http:\/\/mirror\.example\/extras$/m);
  // every interface has a MAC or is a bond/VLAN: Cobbler's "new style" include
  assert.match(ks, /^%include \/tmp\/pre_install_network_config$/m);
  assert.match(ks, /^rootpw --iscrypted \$6\$rounds=4096\$salt\$0123456789abcdefABCDEF$/m);
  assert.match(ks, /^timezone America\/New_York --utc$/m);
  assert.match(ks, /^ignoredisk --only-use=vda$/m);
  assert.match(ks, /^zerombr\nclearpart --all --initlabel\nautopart$/m);
  assert.match(ks, /^bootloader --location=mbr --append="console=ttyS0,115200"$/m);
  assert.match(ks, /^%packages\ncurl\nwget\n%end$/m);
  // %pre: raw shell kept byte for byte, pre trigger, per-MAC network lines, the bond takes its slave's MAC
  assert.match(ks, /^exec 1>\/tmp\/ks-pre\.log 2>&1\n# raw text here: \$# args, \$\? status, \$\{HOME\}$/m);
  assert.match(ks, /^echo "pre for web1, home \$\{HOME\}"$/m);
  assert.match(ks, new RegExp(`^curl "http://127\\.0\\.0\\.1:${forge.port}/i/[0-9a-f]{32}/cblr/svc/op/trig/mode/pre/system/web1" -o /dev/null$`, 'm'));
  assert.match(ks, /^ {2}echo "network --device=\$IFNAME --bootproto=static --ip=192\.0\.2\.21 --netmask=255\.255\.255\.0" >> \/tmp\/pre_install_network_config$/m);
  assert.match(ks, /^ {2}ip route add 10\.9\.0\.0\/16 via 192\.0\.2\.254 dev \$IFNAME$/m);
  assert.match(ks, /^# master bond0 takes 52:54:00:aa:00:02 from eth1$/m);
  assert.match(ks, /^# Skipping eth1 \(slave or no MAC\)$/m);
  assert.equal((ks.match(/^# master bond0 takes/gm) ?? []).length, 1, '#break stopped the slave search at the first match');
  // %post: yum repo files, grub options, koan env, no registration, autoinstall saved, nopxe once (pxe_just_once)
  assert.match(ks, /^cat > \/etc\/yum\.repos\.d\/appstream\.repo << 'EOF'\n\[appstream\]\nname=appstream\nbaseurl=http:\/\/mirror\.example\/el9\/AppStream$/m);
  assert.match(ks, /^ {2}TMP_GRUB=\$\(gawk 'match\(\$0,\/\^GRUB_CMDLINE_LINUX="\(\[\^"\]\+\)"\/,a\) \{printf\("%s\\n",a\[1\]\)\}' \/etc\/default\/grub\)$/m);
  assert.match(ks, /^ {2}\/sbin\/grubby --update-kernel=\$\(\/sbin\/grubby --default-kernel\) --args="console=ttyS0,115200"$/m);
  assert.match(ks, /^echo "export COBBLER_SERVER=127\.0\.0\.1" > \/etc\/profile\.d\/cobbler\.sh$/m);
  assert.match(ks, /^# not configured to register \(ok\)$/m);
  assert.match(ks, new RegExp(`^curl "http://127\\.0\\.0\\.1:${forge.port}/i/[0-9a-f]{32}/cblr/svc/op/nopxe/system/web1" -o /dev/null$`, 'm'));
  assert.match(ks, /^# config files\n# end config files$/m, 'no template_files in forge: the loop is empty');
});

test('kickstart: an interface without a MAC takes the per-device network lines; a profile render takes DHCP', async () => {
  const ks = await fetchText('/cblr/svc/op/autoinstall/system/old1');
  assert.deepEqual(checkKickstart(ks, 'RHEL9'), [], ks);
  assert.match(ks, /^network --bootproto=static --ip=192\.0\.2\.31 --netmask=255\.255\.255\.0 --hostname=old1 --device=eth0 --onboot=on$/m);
  const prof = await fetchText('/cblr/svc/op/autoinstall/profile/el9-cob');
  assert.deepEqual(checkKickstart(prof, 'RHEL9'), [], prof);
  assert.match(prof, /^network --bootproto=dhcp --device=eth0 --onboot=on$/m);
  assert.doesNotMatch(prof, /nopxe/, 'no system: no nopxe call');
  assert.match(prof, new RegExp(`^curl "http://127\\.0\\.0\\.1:${forge.port}/cblr/svc/op/trig/mode/pre/profile/el9-cob" -o /dev/null$`, 'm'));
});

test('preseed: renders and passes debconf-set-selections --checkonly', async (t) => {
  const seed = await fetchText('/cblr/svc/op/autoinstall/system/deb_one');
  assert.match(seed, /^d-i netcfg\/get_hostname string deb-one$/m, 'getVar + replace + split as in Cobbler');
  assert.match(seed, /^d-i netcfg\/get_domain string lab\.example$/m);
  assert.match(seed, /^d-i mirror\/http\/directory string \/debian$/m, '$install_source_directory from the tree URL');
  assert.match(seed, /^# Debian bookworm$/m);
  assert.match(seed, /^d-i grub-installer\/bootdev string default$/m);
  assert.match(seed, new RegExp(`^d-i preseed/late_command string wget -O /dev/null http://127\\.0\\.0\\.1:${forge.port}/i/[0-9a-f]{32}/cblr/svc/op/trig/mode/post/system/deb_one \\|\\| true$`, 'm'));
  assert.doesNotMatch(seed, /apt-setup\/local0/, 'no repo_data: no extra repositories');
  if (need(t, { commands: ['debconf-set-selections'] }) !== undefined) return;
  const f = join(tmp, 'deb_one.seed');
  writeFileSync(f, seed);
  execFileSync('debconf-set-selections', ['--checkonly', f], { stdio: 'pipe' });
});

test('AutoYaST: renders, #continue skips the bond slave, passes the AutoYaST checks', async () => {
  const xml = await fetchText('/cblr/svc/op/autoinstall/system/sles1');
  assert.deepEqual(checkAutoyast(xml), [], xml);
  assert.match(xml, /<name>eth0<\/name>\n\s+<bootproto>static<\/bootproto>\n\s+<ipaddr>192\.0\.2\.51<\/ipaddr>\n\s+<netmask>255\.255\.255\.0<\/netmask>/);
  assert.doesNotMatch(xml, /<name>eth1<\/name>/);
});

test('what cannot be converted is marked in place with its line and reason, and listed (exit 3)', async () => {
  const out = join(tmp, 'left.ks');
  const r = await convert([join(CORPUS, 'leftovers.ks'), '--out', out, '--json']);
  assert.equal(r.code, 3, r.stdout + r.stderr);
  const rep = JSON.parse(r.stdout) as { files: { leftovers: { line: number; reason: string; source: string }[] }[]; leftovers: number };
  const lines = rep.files[0]!.leftovers.map((l) => l.line);
  assert.deepEqual(lines, [2, 3, 4, 7, 8, 10]);
  const text = readFileSync(out, 'utf8');
  for (const [line, src] of [[2, '#import os'], [3, "#set $perms = oct(os.stat('/etc/passwd').st_mode)"], [7, '$SNIPPET($computed_name)'], [8, '#def helper($x)']] as const) {
    assert.ok(text.includes(`{# CHEETAH line ${line}: `) && text.includes(src), `line ${line} kept: ${text}`);
  }
  assert.match(text, /url --url=\{\{ tree \}\}$/m, 'the rest converts');
  assert.match(text, /fail\("unconverted Cheetah at line 4/, 'an unconverted #if fails the render instead of picking a branch');
  // stdout mode: the text on stdout, the report on stderr
  const s = await convert([join(CORPUS, 'leftovers.ks')]);
  assert.equal(s.code, 3);
  assert.match(s.stdout, /^text$/m);
  assert.match(s.stderr, /leftovers\.ks:7: not converted: \$SNIPPET with a computed name/);
  mkdirSync(join(tmp, 'x'), { recursive: true });
  const bad = await convert([join(tmp, 'x')]);
  assert.equal(bad.code, 2, 'a directory needs --out');
});
