/**
 * `forge import-cobbler DIR` against a real forge serve: a Cobbler 3.3 data
 * directory written here (several distros, nested profiles, systems with
 * several interfaces and bonds, repos, a menu, an image system, settings.yaml
 * + settings.d) is imported and compared field by field with what Cobbler's
 * records say; what forge cannot hold is reported object by object; a dry run
 * and a conflicting import change nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';
import { distro, iface, menu, profile, repo, system, writeCobblerDir } from '../lib/cobbler-data.js';

const tmp = mkdtempSync(join(tmpdir(), 'forge-cobbler-import-'));
let forge: ForgeServer;
before(async () => {
  forge = await startForge();
});
after(async () => {
  await forge.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const SETTINGS = `---
# Cobbler 3.3 settings (excerpt, same shapes as the shipped file)
auto_migrate_settings: false
server: 192.0.2.10
http_port: 80
next_server_v4: 192.0.2.11
pxe_just_once: true
default_name_servers: [ '192.0.2.53', "192.0.2.54" ]
default_name_servers_search:
  - lab.example
default_password_crypted: "$1$mF86/UHC$WvcIcX2t6crBz2onWxyac."
default_virt_type: xenpv
kernel_options: {}
ldap_server: "ldap.example.com"
bootloaders_formats:
  x86_64-efi:
    binary_name: grubx64.efi
    extra_modules:
      - chain
      - efinet
`;

interface Unmapped {
  object: string;
  field: string;
  value: string;
  reason: string;
}
interface Report {
  dry_run: boolean;
  imported?: { distros: number; profiles: number; systems: number };
  would_import?: { distros: number; profiles: number; systems: number };
  conflicts?: string[];
  unmapped: Unmapped[];
  config: Record<string, unknown>;
}

function site(dir: string): void {
  writeCobblerDir(dir, {
    distros: [
      distro('el9-x86_64', {
        kernel_options: { console: ['tty0', 'ttyS0,115200'], quiet: null, 'inst.sshd': null },
        kernel_options_post: { 'net.ifnames': '0' },
        autoinstall_meta: { tree: 'http://@@http_server@@/cblr/links/el9-x86_64' },
        boot_loaders: ['grub', 'ipxe'],
        comment: 'EL 9',
        mgmt_classes: ['base'],
      }),
      distro('deb12', {
        breed: 'debian',
        os_version: 'bookworm',
        kernel: '/srv/forge/deb12/linux',
        initrd: '/srv/forge/deb12/initrd.gz',
      }),
      distro('power9', { arch: 'ppc64', breed: 'redhat' }),
      distro('esxi8', { breed: 'vmware', os_version: 'esxi80' }),
    ],
    repos: [repo('baseos', { mirror_locally: true, priority: 10 }), repo('appstream'), repo('debmirror', { breed: 'apt', mirror: 'http://deb.example/debian', apt_dists: ['bookworm'], apt_components: ['main'] })],
    menus: [menu('lab')],
    profiles: [
      profile('el9-base', {
        distro: 'el9-x86_64',
        autoinstall: 'sample.ks',
        autoinstall_meta: { tree: 'http://mirror.example/el9/BaseOS', timezone: 'UTC' },
        kernel_options: { 'inst.text': null },
        repos: ['baseos', 'appstream', 'debmirror'],
        name_servers: ['192.0.2.53'],
        name_servers_search: ['lab.example'],
        virt_type: 'kvm',
        virt_ram: 2048,
        virt_file_size: 20.0,
        virt_disk_driver: 'qcow2',
        virt_bridge: 'br0',
        enable_menu: true,
        menu: 'lab',
      }),
      // Cobbler keeps a sub-profile's distro empty; the parent names it.
      profile('el9-web', { parent: 'el9-base', kernel_options: { '!quiet': null, 'inst.sshd': null }, virt_cpus: 2, virt_ram: 4096, autoinstall_meta: { role: 'web', '!timezone': null } }),
      profile('el9-web-big', { parent: 'el9-web', virt_cpus: 8, virt_file_size: 100.0, virt_type: 'auto', enable_ipxe: true, proxy: 'http://proxy:3128' }),
      profile('deb12-base', { distro: 'deb12', autoinstall: 'sample.seed', virt_disk_driver: 'vmdk', kernel_options: 'auto=true priority=critical' }),
      profile('p9', { distro: 'power9' }),
      profile('p9-kid', { parent: 'p9' }),
    ],
    systems: [
      system('web1', {
        profile: 'el9-web',
        hostname: 'web1.lab.example',
        gateway: '192.0.2.1',
        name_servers: ['192.0.2.53'],
        netboot_enabled: true,
        status: 'testing',
        autoinstall_meta: { disk: 'vda' },
        kernel_options: { '!console': null, console: 'ttyS1,115200' },
        virt_ram: 8192,
        power_type: 'ipmilanplus',
        power_address: '192.0.2.201',
        power_user: 'admin',
        power_pass: 'secret',
        serial_device: 0,
        serial_baud_rate: 115200,
        interfaces: {
          eth0: iface({ mac_address: '52:54:00:AA:00:01', interface_type: 'bond_slave', interface_master: 'bond0', virt_bridge: 'br-prod' }),
          eth1: iface({ mac_address: '52:54:00:aa:00:02', interface_type: 'bond_slave', interface_master: 'bond0' }),
          bond0: iface({ interface_type: 'bond', bonding_opts: 'mode=802.3ad miimon=100', static: true, ip_address: '192.0.2.21', netmask: '255.255.255.0', if_gateway: '192.0.2.1', dns_name: 'web1.lab.example', mtu: '9000', static_routes: ['10.9.0.0/16:192.0.2.254'], cnames: ['www.lab.example'], ipv6_address: '2001:db8::21' }),
          bmc0: iface({ interface_type: 'bmc', ip_address: '192.0.2.201' }),
        },
      }),
      system('db1', {
        profile: 'el9-web-big',
        hostname: 'db1',
        netboot_enabled: false,
        status: 'production',
        virt_path: '/var/lib/libvirt/images',
        virt_pxe_boot: true,
        power_type: 'drac',
        power_address: 'drac.lab.example',
        interfaces: {
          eth0: iface({ mac_address: '52:54:00:aa:00:11', interface_type: 'bridge_slave', interface_master: 'br0' }),
          br0: iface({ interface_type: 'bridge', static: true, ip_address: '192.0.2.22', netmask: '255.255.255.0', bridge_opts: 'stp=no' }),
          eth1: iface({ mac_address: '52:54:00:aa:00:12', interface_type: 'bonded_bridge_slave', interface_master: 'br0' }),
        },
      }),
      system('deb1', { profile: 'deb12-base', power_type: 'redfish', power_address: 'not a url', interfaces: { eth0: iface({ mac_address: '52:54:00:aa:00:21', ip_address: '192.0.2.23' }) }, status: 'broken-status' }),
      system('imgsys', { image: 'win-iso', interfaces: { eth0: iface({ mac_address: '52:54:00:aa:00:31' }) } }),
      system('p9sys', { profile: 'p9-kid' }),
    ],
    settings: SETTINGS,
    settingsD: { 'zz-local.settings': 'http_port: 8080\n' },
  });
}

async function exportAll(): Promise<{ distros: Record<string, unknown>[]; profiles: Record<string, unknown>[]; systems: Record<string, unknown>[] }> {
  const r = await forge.cli(['export']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Record<string, unknown>;
  delete doc['exported']; // the export's own timestamp
  return doc as never;
}

function byName(list: Record<string, unknown>[], name: string): Record<string, unknown> {
  const o = list.find((x) => x['name'] === name);
  assert.ok(o !== undefined, `${name} was imported`);
  return o;
}

function has(report: Report, object: string, field: string, reason: RegExp): void {
  const hit = report.unmapped.find((u) => u.object === object && u.field === field);
  assert.ok(hit !== undefined, `unmapped lists ${object} ${field}: ${JSON.stringify(report.unmapped.filter((u) => u.object === object))}`);
  assert.match(hit.reason, reason, `${object} ${field}`);
}

test('import-cobbler: dry run reports and changes nothing; the import maps every field forge has', async () => {
  const dir = join(tmp, 'site');
  site(dir);
  const dry = await forge.cli(['import-cobbler', dir, '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  const dr = JSON.parse(dry.stdout) as Report;
  assert.equal(dr.dry_run, true);
  assert.deepEqual(dr.would_import, { distros: 3, profiles: 4, systems: 3 });
  assert.deepEqual(dr.conflicts, []);
  const empty = await exportAll();
  assert.deepEqual([empty.distros.length, empty.profiles.length, empty.systems.length], [0, 0, 0], 'dry run wrote nothing');

  const run = await forge.cli(['import-cobbler', dir, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const rep = JSON.parse(run.stdout) as Report;
  assert.deepEqual(rep.imported, { distros: 3, profiles: 4, systems: 3 });
  const all = await exportAll();

  // ---- distros
  const el9 = byName(all.distros, 'el9-x86_64');
  assert.equal(el9['arch'], 'x86_64');
  assert.equal(el9['breed'], 'redhat');
  assert.equal(el9['os_version'], 'rhel9');
  assert.equal(el9['kernel'], '/var/www/cobbler/distro_mirror/el9-x86_64/images/pxeboot/vmlinuz');
  assert.equal(el9['initrd'], '/var/www/cobbler/distro_mirror/el9-x86_64/images/pxeboot/initrd.img');
  assert.deepEqual(el9['kernel_options'], { console: 'ttyS0,115200', quiet: null, 'inst.sshd': null });
  assert.deepEqual(el9['kernel_options_post'], { 'net.ifnames': '0' });
  assert.deepEqual(el9['boot_loaders'], ['grub', 'ipxe']);
  assert.equal(el9['comment'], 'EL 9');
  assert.equal(el9['ctime'], new Date(1700000000250).toISOString(), 'ctime kept from Cobbler');
  assert.equal(el9['mtime'], new Date(1700000100500).toISOString());
  const deb = byName(all.distros, 'deb12');
  assert.deepEqual([deb['breed'], deb['os_version'], deb['kernel'], deb['boot_loaders']], ['debian', 'bookworm', '/srv/forge/deb12/linux', []]);
  assert.equal(byName(all.distros, 'esxi8')['breed'], 'generic');
  assert.equal(all.distros.find((d) => d['name'] === 'power9'), undefined, 'ppc64 distro not imported');

  // ---- profiles, nested
  const base = byName(all.profiles, 'el9-base');
  assert.equal(base['distro'], 'el9-x86_64');
  assert.equal(base['parent'], '');
  assert.equal(base['autoinstall'], 'sample.ks');
  assert.deepEqual(base['autoinstall_meta'], {
    tree: 'http://mirror.example/el9/BaseOS',
    timezone: 'UTC',
    repos: 'baseos=http://mirror.example/baseos/;appstream=http://mirror.example/appstream/',
  });
  assert.deepEqual(base['kernel_options'], { 'inst.text': null });
  assert.deepEqual(base['name_servers'], ['192.0.2.53']);
  assert.deepEqual(base['name_servers_search'], ['lab.example']);
  assert.deepEqual(
    [base['virt_type'], base['virt_ram'], base['virt_file_size'], base['virt_disk_driver'], base['virt_bridge'], base['virt_cpus'], base['virt_path'], base['enable_menu'], base['enable_ipxe']],
    ['kvm', 2048, 20, 'qcow2', 'br0', 1, '<<inherit>>', true, '<<inherit>>'],
  );
  const web = byName(all.profiles, 'el9-web');
  assert.deepEqual([web['parent'], web['distro'], web['autoinstall']], ['el9-base', '', '<<inherit>>']);
  assert.deepEqual(web['kernel_options'], { '!quiet': null, 'inst.sshd': null });
  assert.deepEqual(web['autoinstall_meta'], { role: 'web', '!timezone': null });
  assert.deepEqual([web['virt_cpus'], web['virt_ram'], web['virt_type']], [2, 4096, '<<inherit>>']);
  const big = byName(all.profiles, 'el9-web-big');
  assert.deepEqual([big['parent'], big['virt_cpus'], big['virt_file_size'], big['virt_type'], big['enable_ipxe']], ['el9-web', 8, 100, '<<inherit>>', true]);
  const debp = byName(all.profiles, 'deb12-base');
  assert.deepEqual([debp['distro'], debp['autoinstall'], debp['virt_disk_driver']], ['deb12', 'sample.seed', '<<inherit>>']);
  assert.deepEqual(debp['kernel_options'], { auto: 'true', priority: 'critical' }, 'a Cobbler a=b string becomes a dict');
  assert.equal(all.profiles.find((p) => p['name'] === 'p9' || p['name'] === 'p9-kid'), undefined);

  // ---- systems, interfaces and bonds
  const web1 = byName(all.systems, 'web1');
  assert.deepEqual(
    [web1['profile'], web1['hostname'], web1['gateway'], web1['netboot_enabled'], web1['status'], web1['virt_ram'], web1['virt_bridge']],
    ['el9-web', 'web1.lab.example', '192.0.2.1', true, 'testing', 8192, 'br-prod'],
  );
  assert.deepEqual(web1['name_servers'], ['192.0.2.53']);
  assert.deepEqual(web1['autoinstall_meta'], { disk: 'vda' });
  assert.deepEqual(web1['kernel_options'], { '!console': null, console: 'ttyS1,115200' });
  const ifs = web1['interfaces'] as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(ifs).sort(), ['bond0', 'eth0', 'eth1'], 'the BMC interface is not a forge interface');
  assert.deepEqual(ifs['eth0'], {
    mac_address: '52:54:00:aa:00:01', ip_address: '', netmask: '', if_gateway: '', static: false, dns_name: '', mtu: 0,
    interface_type: 'bond_slave', interface_master: 'bond0', bonding_opts: '', static_routes: [],
  });
  assert.equal(ifs['eth1']!['mac_address'], '52:54:00:aa:00:02');
  assert.deepEqual(ifs['bond0'], {
    mac_address: '', ip_address: '192.0.2.21', netmask: '255.255.255.0', if_gateway: '192.0.2.1', static: true, dns_name: 'web1.lab.example',
    mtu: 9000, interface_type: 'bond', interface_master: '', bonding_opts: 'mode=802.3ad miimon=100', static_routes: ['10.9.0.0/16:192.0.2.254'],
  });
  const db1 = byName(all.systems, 'db1');
  const dif = db1['interfaces'] as Record<string, Record<string, unknown>>;
  assert.deepEqual([dif['br0']!['interface_type'], dif['eth0']!['interface_type'], dif['eth0']!['interface_master'], dif['eth1']!['interface_type']], ['bridge', 'bridge_slave', 'br0', 'bond']);
  assert.deepEqual([db1['netboot_enabled'], db1['virt_path'], db1['virt_pxe_boot'], db1['status']], [false, '/var/lib/libvirt/images', true, 'production']);
  assert.equal(byName(all.systems, 'deb1')['status'], 'production');
  assert.equal(all.systems.find((s) => s['name'] === 'imgsys' || s['name'] === 'p9sys'), undefined);

  // ---- blending works across the imported chain (the `!key` rules)
  const vars = await forge.cli(['system', 'dumpvars', '--name', 'web1', '--json']);
  assert.equal(vars.code, 0, vars.stderr);
  const v = JSON.parse(vars.stdout) as Record<string, unknown>;
  const ko = v['kernel_options'] as Record<string, unknown>;
  assert.equal(ko['quiet'], undefined, 'el9-web !quiet removed the distro quiet');
  assert.equal(ko['console'], 'ttyS1,115200', 'system !console then console=: the system value');
  assert.equal(v['timezone'], undefined, '!timezone removed the inherited meta key');
  assert.equal(v['role'], 'web');
  assert.equal(v['virt_bridge'], 'br-prod');

  // ---- what could not be mapped, object by object
  assert.deepEqual([web1['power_type'], web1['power_address'], web1['power_user'], web1['power_pass']], ['ipmi', '192.0.2.201', 'admin', 'secret'], 'power fields mapped (ipmilanplus -> ipmi)');
  assert.equal(rep.unmapped.find((u) => u.object === 'system web1' && u.field.startsWith('power_')), undefined);
  has(rep, 'system db1', 'power_type', /drac not imported/);
  has(rep, 'system deb1', 'power_address', /power settings not imported: .*power_address/);
  has(rep, 'system web1', 'interfaces.bmc0', /BMC/);
  has(rep, 'system web1', 'interfaces.bond0.cnames', /CNAME/);
  has(rep, 'system web1', 'interfaces.bond0.ipv6_address', /IPv4 only/);
  has(rep, 'system web1', 'serial_device', /console=/);
  has(rep, 'system db1', 'interfaces.br0.bridge_opts', /bridge options/);
  has(rep, 'system db1', 'interfaces.eth1.interface_type', /bonded_bridge_slave/);
  has(rep, 'system deb1', 'status', /production/);
  has(rep, 'system imgsys', 'image', /image/);
  has(rep, 'system p9sys', '', /profile p9-kid/);
  has(rep, 'profile p9', '', /distro power9/);
  has(rep, 'profile p9-kid', '', /parent p9/);
  has(rep, 'distro power9', '', /architecture/);
  has(rep, 'distro esxi8', 'breed', /generic/);
  has(rep, 'distro el9-x86_64', 'kernel_options.console', /one value per key/);
  has(rep, 'distro el9-x86_64', 'autoinstall_meta.tree', /cblr\/links/);
  has(rep, 'distro el9-x86_64', 'mgmt_classes', /configuration-management/);
  has(rep, 'profile el9-base', 'menu', /menu/);
  has(rep, 'profile el9-base', 'repos.debmirror', /apt/);
  has(rep, 'profile el9-web-big', 'virt_type', /auto/);
  has(rep, 'profile el9-web-big', 'proxy', /proxy/);
  has(rep, 'profile deb12-base', 'virt_disk_driver', /raw and qcow2/);
  has(rep, 'repo baseos', 'mirror_locally', /does not mirror/);
  has(rep, 'repo baseos', 'priority', /repo setting/);
  has(rep, 'menu lab', '', /menu/);
  has(rep, 'settings', 'default_password_crypted', /root_password_hash/);
  has(rep, 'settings', 'default_virt_type', /virt_type/);
  // Cobbler defaults are not noise: an owners=[admin] distro reports no owners line
  assert.equal(rep.unmapped.find((u) => u.object === 'distro deb12'), undefined, JSON.stringify(rep.unmapped.filter((u) => u.object === 'distro deb12')));
  // settings -> forge serve configuration; settings.d overrides settings.yaml
  assert.deepEqual(rep.config, { server: '192.0.2.10', http_port: 8080, next_server: '192.0.2.11', pxe_just_once: true, dhcp_dns: ['192.0.2.53', '192.0.2.54'], dhcp_domain: 'lab.example' });

  // the human report names the same things
  const human = await forge.cli(['import-cobbler', dir, '--dry-run']);
  assert.equal(human.code, 5, 'a dry run over existing objects reports the conflict');
  assert.match(human.stdout, /would import 3 distros, 4 profiles, 3 systems/);
  assert.match(human.stdout, /would conflict .*distro el9-x86_64/);
  assert.match(human.stdout, /^ {2}system web1$/m);
  assert.match(human.stdout, /^ {4}power_type = "drac": forge drives power with libvirt, ipmi/m);
});

test('import-cobbler: a conflicting import changes nothing', async () => {
  const before = await exportAll();
  assert.ok(before.systems.length > 0, 'the first test imported the site');
  const dir = join(tmp, 'conflict');
  writeCobblerDir(dir, {
    distros: [distro('brand-new', {}), distro('deb12', { kernel: '/srv/forge/other/linux', initrd: '/srv/forge/other/initrd' })],
    profiles: [profile('new-prof', { distro: 'brand-new' })],
    systems: [system('new-sys', { profile: 'new-prof', interfaces: { eth0: iface({ mac_address: '52:54:00:bb:00:01' }) } })],
  });
  const r = await forge.cli(['import-cobbler', dir]);
  assert.equal(r.code, 5, r.stdout + r.stderr);
  assert.match(r.stderr, /DUPLICATE_NAME/);
  assert.deepEqual(await exportAll(), before, 'nothing changed, not even the new objects');
  // a MAC already in use is a conflict too, and nothing is written
  const dir2 = join(tmp, 'mac');
  writeCobblerDir(dir2, {
    distros: [distro('other', {})],
    profiles: [profile('other-p', { distro: 'other' })],
    systems: [system('mac-twin', { profile: 'other-p', interfaces: { eth0: iface({ mac_address: '52:54:00:aa:00:01' }) } })],
  });
  const r2 = await forge.cli(['import-cobbler', dir2]);
  assert.equal(r2.code, 5, r2.stdout + r2.stderr);
  assert.match(r2.stderr, /DUPLICATE_MAC/);
  assert.deepEqual(await exportAll(), before);
  // a directory that is not Cobbler's is a usage error naming what was expected
  const bad = await forge.cli(['import-cobbler', tmp + '/nope']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /not a directory/);
});

test('import-cobbler: a broken JSON file is named and nothing else is lost', async () => {
  const dir = join(tmp, 'broken');
  writeCobblerDir(dir, { distros: [distro('okd', {})] });
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, 'collections', 'distros', 'bad.json'), '{"name": "bad",');
  writeFileSync(join(dir, 'collections', 'distros', 'renamed.json'), JSON.stringify(distro('other-name')));
  writeFileSync(join(dir, 'settings.yaml'), 'server: [unclosed\n');
  const r = await forge.cli(['import-cobbler', dir, '--dry-run', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as Report;
  assert.deepEqual(rep.would_import, { distros: 1, profiles: 0, systems: 0 });
  assert.ok(rep.unmapped.some((u) => u.object.endsWith('bad.json') && /not imported/.test(u.reason)));
  assert.ok(rep.unmapped.some((u) => u.object.endsWith('renamed.json') && /other-name/.test(u.reason)));
  assert.ok(rep.unmapped.some((u) => u.object.endsWith('settings.yaml') && /line 1/.test(u.reason)));
});

test('Cobbler habits: sync explains, list/report show the imported site, validate-autoinstalls renders everything', async () => {
  const sync = await forge.cli(['sync']);
  assert.equal(sync.code, 0, sync.stderr);
  assert.match(sync.stdout, /nothing to sync/);
  const list = await forge.cli(['list']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^distros:\n(?:.*\n)*? {3}el9-x86_64$/m);
  assert.match(list.stdout, /^systems:\n(?:.*\n)*? {3}web1$/m);
  const report = await forge.cli(['report', '--json']);
  assert.equal(report.code, 0, report.stderr);
  const r = JSON.parse(report.stdout) as Record<string, { name: string }[]>;
  assert.ok(r['systems']!.some((s) => s.name === 'db1'));
  const human = await forge.cli(['report']);
  assert.match(human.stdout, /^system: web1\n(?: {2}.*\n)*? {2}hostname {14}: web1\.lab\.example$/m);
  // The imported profiles name Cobbler's templates (sample.ks), not yet converted: every one is an error.
  const v = await forge.cli(['validate-autoinstalls']);
  assert.equal(v.code, 8, v.stdout + v.stderr);
  assert.match(v.stdout, /profile el9-base: TEMPLATE_NOT_FOUND/);
  assert.match(v.stdout, /system web1: TEMPLATE_NOT_FOUND/);
});
