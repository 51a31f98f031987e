/**
 * Boot decisions and the configs generated from them: table-driven, pure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { GRUB_FETCH_TRIES, GRUB_RETRY_SECONDS, IPXE_FETCH_TRIES, IPXE_RETRY_SECONDS, grubConfig, grubWord, ipxeScript, pxelinuxConfig, pxelinuxMenu, type Locator } from '../../server/boot/configs.js';
import { parseBootPath } from '../../server/boot/target.js';
import { normalizeMac as normaliseMac } from '../../server/core/mac.js';
import { decideBoot, unknownPolicy, type BootTarget, type SystemFacts } from '../../server/core/bootplan.js';

const http: Locator = {
  kernel: (d) => `http://10.98.0.1:8080/boot/distro/${d}/kernel`,
  initrd: (d) => `http://10.98.0.1:8080/boot/distro/${d}/initrd`,
  discovery: { kernel: 'http://10.98.0.1:8080/boot/discovery/kernel', initrd: 'http://10.98.0.1:8080/boot/discovery/initrd' },
};
const tftp: Locator = { kernel: (d) => `/distro/${d}/kernel`, initrd: (d) => `/distro/${d}/initrd`, discovery: { kernel: '/discovery/kernel', initrd: '/discovery/initrd' } };

const install: BootTarget = {
  kind: 'install',
  system: 'vm9',
  profile: 'deb12',
  label: 'vm9',
  distro: 'deb12',
  cmdline: 'auto=true priority=critical url=http://10.98.0.1:8080/autoinstall/system/vm9',
};
const local: BootTarget = { kind: 'local', system: 'vm9', reason: 'netboot_disabled' };

test('iPXE install script: kernel with initrd=initrd and the command line, named initrd, boot; a failed fetch is tried again, then the fallback', () => {
  const s = ipxeScript(install, http);
  assert.ok(s.startsWith('#!ipxe\n'));
  assert.match(s, /^:fetch\nkernel --name kernel http:\/\/10\.98\.0\.1:8080\/boot\/distro\/deb12\/kernel initrd=initrd auto=true priority=critical url=http:\/\/10\.98\.0\.1:8080\/autoinstall\/system\/vm9 \|\| goto retry$/m);
  assert.match(s, /^initrd --name initrd http:\/\/10\.98\.0\.1:8080\/boot\/distro\/deb12\/initrd \|\| goto retry$/m);
  assert.match(s, /^boot \|\| goto failed$/m);
  // The retry: count, give up after IPXE_FETCH_TRIES, free the failed try's images, pause, again.
  const retry = s.slice(s.indexOf('\n:retry\n') + 1, s.indexOf('\n:failed'));
  assert.deepEqual(retry.split('\n'), [
    ':retry',
    'inc forge_tries',
    `iseq \${forge_tries} ${IPXE_FETCH_TRIES} && goto failed ||`,
    `echo forge: download failed (try \${forge_tries} of ${IPXE_FETCH_TRIES}); trying again in ${IPXE_RETRY_SECONDS} s`,
    'imgfree kernel ||',
    'imgfree initrd ||',
    `sleep ${IPXE_RETRY_SECONDS}`,
    'goto fetch',
  ]);
  // Every command that may fail is guarded (an unguarded failure would end the script, not retry it).
  for (const line of s.split('\n').filter((l) => /^(kernel|initrd|boot|imgfree|iseq) /.test(l))) assert.match(line, /\|\|( goto \w+)?$/, line);
  // The only exit is the failure path, after the boot attempt.
  assert.ok(s.indexOf('\nexit') > s.indexOf('\nboot '));
});

test('iPXE local boot is `exit` (back to the firmware, next boot device)', () => {
  const s = ipxeScript(local, http);
  assert.match(s, /^exit$/m);
  assert.doesNotMatch(s, /^kernel /m);
});

test('iPXE menu: one item per profile, default local, labels safe', () => {
  const s = ipxeScript({ kind: 'menu', entries: [{ label: 'deb12', distro: 'deb12', cmdline: 'a=1' }, { label: 'rocky9', distro: 'r9', cmdline: '' }] }, http);
  assert.match(s, /^item p0 deb12$/m);
  assert.match(s, /^item p1 rocky9$/m);
  assert.match(s, /^choose --default local --timeout \d+ target && goto \$\{target\} \|\| goto local$/m);
  assert.match(s, /^:p1\n:fetchp1\nkernel --name kernel http:\/\/10\.98\.0\.1:8080\/boot\/distro\/r9\/kernel initrd=initrd \|\| goto retryp1$/m);
  assert.match(s, /^iseq \$\{forge_tries\} \d+ && goto local \|\|\n(.*\n){4}goto fetchp1$/m);
  assert.match(s, /^:local\nexit$/m);
});

test('a newline in a command line cannot inject an iPXE command', () => {
  const s = ipxeScript({ ...install, cmdline: 'a=1\nshell' }, http);
  assert.doesNotMatch(s, /^shell$/m);
});

test('pxelinux per-MAC: KERNEL/APPEND initrd=, no prompt; local is LOCALBOOT 0', () => {
  const s = pxelinuxConfig(install, { kernel: (d) => `distro/${d}/kernel`, initrd: (d) => `distro/${d}/initrd`, discovery: { kernel: 'discovery/kernel', initrd: 'discovery/initrd' } });
  assert.match(s, /^DEFAULT forge$/m);
  assert.match(s, /^PROMPT 0$/m);
  // One retry of a failed download, as pxelinux allows (ONERROR runs once: no loop, no counter).
  assert.match(s, /^ONERROR forge$/m);
  assert.match(s, /^LABEL forge$/m, 'ONERROR names the entry itself');
  assert.match(s, /^  KERNEL distro\/deb12\/kernel$/m);
  assert.match(s, /^  APPEND initrd=distro\/deb12\/initrd auto=true priority=critical url=\S+$/m);
  const l = pxelinuxConfig(local, tftp);
  assert.doesNotMatch(l, /ONERROR/, 'local boot loads nothing to retry');
  assert.match(l, /^DEFAULT local$/m);
  assert.match(l, /^  LOCALBOOT 0$/m);
});

test('pxelinux default menu: menu.c32, local is default and on timeout', () => {
  const s = pxelinuxMenu([{ label: 'deb12', distro: 'deb12', cmdline: 'x=1' }], tftp);
  assert.match(s, /^UI menu\.c32$/m);
  assert.match(s, /^ONTIMEOUT local$/m);
  assert.match(s, /^LABEL local\n  MENU LABEL .*\n  MENU DEFAULT\n  LOCALBOOT 0$/m);
  assert.match(s, /^LABEL p0\n  MENU LABEL deb12\n  KERNEL \/distro\/deb12\/kernel\n  APPEND initrd=\/distro\/deb12\/initrd x=1$/m);
});

test('GRUB: linux/initrd (never linuxefi), quoted words, local = exit; a failed download is tried again', () => {
  const s = grubConfig({ ...install, cmdline: 'a=1 b=x;y' }, tftp);
  assert.match(s, /^    if linux \/distro\/deb12\/kernel a=1 'b=x;y'; then$/m);
  assert.match(s, /^      if initrd \/distro\/deb12\/initrd; then\n {8}boot$/m);
  // GRUB has no arithmetic: the tries are a word list, a pause between them.
  const tries = /^ {2}for forge_try in ([\d ]+); do$/m.exec(s)?.[1]?.split(' ');
  assert.deepEqual(tries, Array.from({ length: GRUB_FETCH_TRIES }, (_, i) => String(i + 1)));
  assert.match(s, new RegExp(`^ {4}sleep ${GRUB_RETRY_SECONDS}$`, 'm'));
  assert.ok(GRUB_RETRY_SECONDS * (GRUB_FETCH_TRIES - 1) >= 30, 'the tries outlast a service address moving (keepalived: seconds)');
  assert.doesNotMatch(s, /linuxefi|initrdefi/);
  assert.match(s, /^set timeout=0$/m);
  const l = grubConfig(local, tftp);
  assert.match(l, /^set default=local$/m);
  assert.match(l, /^  exit$/m);
  assert.equal(grubWord("it's"), `'it'\\''s'`);
  assert.equal(grubWord('url=http://h:8080/a'), 'url=http://h:8080/a');
});

const sys = (over: Partial<SystemFacts> = {}): SystemFacts => ({
  name: 'vm9', netboot_enabled: true, profile: 'p', distro: 'd', cmdline: 'c=1', ...over,
});

test('boot decision table', () => {
  const cases: { name: string; facts: Parameters<typeof decideBoot>[0]; kind: string; matched: string; system?: string }[] = [
    { name: 'known, netboot on', facts: { system: sys(), defaultSystem: undefined, menu: [], unknown: unknownPolicy({ dhcp_unknown: 'ignore', default_profile: '', unknown_boot: 'local' }) }, kind: 'install', matched: 'mac', system: 'vm9' },
    { name: 'known, netboot off', facts: { system: sys({ netboot_enabled: false }), defaultSystem: sys({ name: 'default' }), menu: [], unknown: unknownPolicy({ dhcp_unknown: 'ignore', default_profile: '', unknown_boot: 'menu' }) }, kind: 'local', matched: 'mac', system: 'vm9' },
    { name: 'unknown, default system', facts: { system: undefined, defaultSystem: sys({ name: 'default' }), menu: [], unknown: unknownPolicy({ dhcp_unknown: 'ignore', default_profile: '', unknown_boot: 'local' }) }, kind: 'install', matched: 'default', system: 'default' },
    { name: 'unknown, menu', facts: { system: undefined, defaultSystem: undefined, menu: [{ label: 'p', distro: 'd', cmdline: '' }], unknown: unknownPolicy({ dhcp_unknown: 'ignore', default_profile: '', unknown_boot: 'menu' }) }, kind: 'menu', matched: 'none' },
    { name: 'unknown, menu but no profiles', facts: { system: undefined, defaultSystem: undefined, menu: [], unknown: unknownPolicy({ dhcp_unknown: 'ignore', default_profile: '', unknown_boot: 'menu' }) }, kind: 'local', matched: 'none' },
    { name: 'unknown, local', facts: { system: undefined, defaultSystem: undefined, menu: [{ label: 'p', distro: 'd', cmdline: '' }], unknown: unknownPolicy({ dhcp_unknown: 'ignore', default_profile: '', unknown_boot: 'local' }) }, kind: 'local', matched: 'none' },
  ];
  for (const c of cases) {
    const d = decideBoot(c.facts);
    assert.equal(d.target.kind, c.kind, c.name);
    assert.equal(d.matched, c.matched, c.name);
    if (c.system !== undefined && d.target.kind !== 'menu') assert.equal(d.target.system, c.system, c.name);
  }
});

test('MAC normalisation and boot path grammar', () => {
  assert.equal(normaliseMac('52-54-00-AA-bb-01'), '52:54:00:aa:bb:01');
  assert.equal(normaliseMac('525400aabb01'), '52:54:00:aa:bb:01');
  assert.equal(normaliseMac('52:54:00:aa:bb'), undefined);
  assert.equal(normaliseMac('52:54-00aabb01'), undefined);
  assert.deepEqual(parseBootPath('pxelinux.cfg/01-52-54-00-aa-bb-01'), { kind: 'pxelinux', mac: '52:54:00:aa:bb:01' });
  assert.deepEqual(parseBootPath('/pxelinux.cfg/default'), { kind: 'pxelinux', mac: undefined });
  assert.equal(parseBootPath('pxelinux.cfg/C0A80001'), undefined);
  assert.deepEqual(parseBootPath('grub/grub.cfg-01-52-54-00-aa-bb-01'), { kind: 'grub', mac: '52:54:00:aa:bb:01' });
  // The Debian installer's network GRUB images look below their built-in prefix debian-installer/ARCH/grub.
  assert.deepEqual(parseBootPath('/debian-installer/arm64/grub/grub.cfg'), { kind: 'grub-root' });
  assert.deepEqual(parseBootPath('debian-installer/arm64/grub/system/52:54:00:aa:bb:01'), { kind: 'grub', mac: '52:54:00:aa:bb:01' });
  assert.equal(parseBootPath('debian-installer/sparc/grub/grub.cfg'), undefined);
  assert.deepEqual(parseBootPath('grub/system/52:54:00:aa:bb:01'), { kind: 'grub', mac: '52:54:00:aa:bb:01' });
  assert.deepEqual(parseBootPath('grub/grub.cfg'), { kind: 'grub-root' });
  assert.deepEqual(parseBootPath('distro/deb12/kernel'), { kind: 'distro', distro: 'deb12', file: 'kernel' });
  assert.deepEqual(parseBootPath('undionly.kpxe'), { kind: 'loader', name: 'undionly.kpxe' });
  assert.deepEqual(parseBootPath('loaders/ipxe.efi'), { kind: 'loader', name: 'ipxe.efi' });
  for (const bad of ['../etc/passwd', 'distro/../kernel', 'a\\b', 'x\0y', 'distro/a/../../kernel', '.hidden', 'grub/x86_64-efi/normal.mod']) {
    assert.equal(parseBootPath(bad), undefined, bad);
  }
});

test('discover target: every format boots the discovery image with forge.url and forge.mac, and falls back to local', () => {
  const d = decideBoot({
    system: undefined,
    defaultSystem: sys({ name: 'default' }),
    menu: [],
    unknown: unknownPolicy({ dhcp_unknown: 'discover', default_profile: '' }),
    discoveryCmdline: 'console=ttyS0 forge.url=http://10.98.0.1:8080 forge.mac=52:54:00:00:00:09',
  });
  assert.equal(d.target.kind, 'discover', 'discover wins over the default system');
  assert.equal(d.matched, 'none');
  const ipxe = ipxeScript(d.target, http);
  assert.match(ipxe, /^kernel --name kernel http:\/\/10\.98\.0\.1:8080\/boot\/discovery\/kernel initrd=initrd console=ttyS0 forge\.url=http:\/\/10\.98\.0\.1:8080 forge\.mac=52:54:00:00:00:09 \|\| goto retry$/m);
  assert.match(ipxe, /^initrd --name initrd http:\/\/10\.98\.0\.1:8080\/boot\/discovery\/initrd \|\| goto retry$/m);
  assert.match(ipxe, /^iseq \$\{forge_tries\} \d+ && goto failed \|\|$/m);
  assert.match(ipxe, /:failed\n.*\n.*\nexit/);
  const px = pxelinuxConfig(d.target, tftp);
  assert.match(px, /^ {2}KERNEL \/discovery\/kernel$/m);
  assert.match(px, /^ {2}APPEND initrd=\/discovery\/initrd console=ttyS0 forge\.url=http:\/\/10\.98\.0\.1:8080 forge\.mac=52:54:00:00:00:09$/m);
  const gr = grubConfig(d.target, tftp);
  assert.match(gr, /^ {4}if linux \/discovery\/kernel console=ttyS0 forge\.url=http:\/\/10\.98\.0\.1:8080 forge\.mac=52:54:00:00:00:09; then$/m);
  assert.match(gr, /^ {6}if initrd \/discovery\/initrd; then$/m);
});

/**
 * iPXE's own line rules, encoded from its sources (src/core/exec.c split_command
 * and command_terminator, src/core/settings.c expand_settings, with no settings
 * defined): what argv the `kernel` command receives from one script line.
 */
function ipxeKernelArgv(line: string): string[] {
  const tokens = line.split(/\s+/).filter((t) => t !== '');
  const argv: string[] = [];
  for (const t of tokens) {
    if (t.startsWith('#') || t === '||' || t === '&&' || t === ';') break;
    let v = t;
    for (;;) {
      const end = v.indexOf('}');
      const start = end < 0 ? -1 : v.lastIndexOf('${', end);
      if (start < 0) break;
      v = v.slice(0, start) + v.slice(end + 1); // unknown and empty names expand to nothing
    }
    argv.push(v);
  }
  return argv;
}

test('iPXE kernel line: every argument reaches the kernel as written, `;` in a word included (iPXE exec.c rules)', () => {
  const cmdlines = [
    'autoinstall ds=nocloud-net;s=http://10.98.0.1:8080/cloud-init/system/vm9/ cloud-config-url=/dev/null',
    'a=1 ; b=2',
    'x=1 || y=2 && z=3',
    'console=ttyS0 #not-a-comment quiet',
    'k="two words" ip=10.0.0.5::10.0.0.1:255.255.255.0:vm9:eth0:none',
  ];
  for (const c of cmdlines) {
    const s = ipxeScript({ ...install, cmdline: c }, http);
    const line = s.split('\n').find((l) => l.startsWith('kernel '));
    assert.ok(line !== undefined);
    const argv = ipxeKernelArgv(line);
    assert.deepEqual(argv.slice(0, 3), ['kernel', '--name', 'kernel']);
    assert.equal(argv[3], 'http://10.98.0.1:8080/boot/distro/deb12/kernel');
    assert.deepEqual(argv.slice(4), ['initrd=initrd', ...c.split(' ')], `kernel line for ${c}`);
    // ... and the line still ends in the retry branch, which a stray terminator would have cut.
    assert.match(line, / \|\| goto retry$/);
  }
});

test('GRUB configs pass GRUB\'s own parser (grub-script-check): install, discover, menu, local', async (t) => {
  if (need(t, { commands: ['grub-script-check'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'forge-grub-'));
  try {
    const configs = {
      install: grubConfig({ ...install, cmdline: "a=1 b=x;y it's $x" }, tftp),
      local: grubConfig(local, tftp),
      menu: grubConfig({ kind: 'menu', entries: [{ label: 'deb12 (x)', distro: 'deb12', cmdline: 'x=1' }, { label: 'two', distro: 'd2', cmdline: '' }] }, tftp),
    };
    for (const [name, text] of Object.entries(configs)) {
      const f = join(dir, `${name}.cfg`);
      writeFileSync(f, text);
      const r = spawnSync('grub-script-check', [f], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${name}: ${r.stdout}${r.stderr}\n${text}`);
    }
    // The checker can fail: an unclosed loop is refused.
    writeFileSync(join(dir, 'bad.cfg'), configs.install.replace('  done\n', ''));
    assert.notEqual(spawnSync('grub-script-check', [join(dir, 'bad.cfg')]).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
