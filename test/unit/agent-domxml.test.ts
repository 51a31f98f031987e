/**
 * Domain XML golden files, one per option combination, from the command line
 * through the plan to the XML (parseOptions -> planInstall -> builder), each
 * checked against libvirt's own RNG schema with `virt-xml-validate FILE
 * domain`. FORGE_UPDATE_GOLDEN=1 rewrites the files after a deliberate change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { need } from '../lib/env.js';
import { buildDomainXml, esc, installerCmdline } from '../../agent/domxml.js';
import { installerXml, persistentXml } from '../../agent/flow.js';
import { diskSpec } from '../../agent/disk.js';
import { parseOptions } from '../../agent/options.js';
import { parseBlended, planInstall } from '../../agent/plan.js';

const GOLDEN = fileURLToPath(new URL('../../../test/golden/agent/', import.meta.url));
const UUID = '6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b';

const BLENDED = {
  name: 'vm9',
  distro_name: 'deb12',
  breed: 'debian',
  kernel_url: 'http://forge:8080/boot/distro/deb12/kernel',
  initrd_url: 'http://forge:8080/boot/distro/deb12/initrd',
  kernel_cmdline: 'auto=true priority=critical url=http://forge:8080/autoinstall/system/vm9',
  interfaces: {
    eth0: { mac_address: '52:54:00:12:34:56', interface_type: 'na' },
    eth1: { mac_address: '52:54:00:12:34:57', interface_type: 'na' },
  },
  virt_type: 'kvm',
  virt_cpus: 2,
  virt_ram: 1024,
  virt_file_size: 8,
  virt_path: '',
  virt_bridge: '',
  virt_disk_driver: 'qcow2',
  virt_auto_boot: false,
  virt_pxe_boot: false,
};

const CASES: Record<string, string[]> = {
  default: [],
  'nogfx-bridge-e1000-ide': ['--nogfx', '--virt-bridge', 'br0', '--qemu-net-type', 'e1000', '--qemu-disk-type', 'ide'],
  'spice-scsi-pool': ['--graphics', 'spice', '--qemu-disk-type', 'scsi', '--virt-path', 'pool:fast'],
  'kvm-lvm': ['--virt-type', 'kvm', '--virt-path', 'vg0', '--nogfx'],
  'device-network': ['--virt-path', '/dev/sdb', '--virt-network', 'lab', '--virt-name', 'other-name'],
  'pxe-boot': ['--virt-pxe-boot', '--nogfx'],
  'uefi-q35-two-disks': ['--firmware', 'uefi', '--virt-path', '/images,/data', '--virt-file-size', '8,20', '--nogfx'],
  'uefi-secureboot-scsi-two-networks': ['--secure-boot', '--qemu-disk-type', 'scsi', '--virt-path', '/images,/images', '--virt-network', 'lab,default'],
  'bios-q35-ide-bridges': ['--machine', 'q35', '--qemu-disk-type', 'ide', '--virt-path', '/images,vg0', '--virt-bridge', 'br0,br1', '--nogfx'],
};

function xmlsFor(args: string[]): { name: string; xml: string }[] {
  const opts = parseOptions(['--server', 'http://forge:8080', '--system', 'vm9', '--virt', ...args], {
    env: {},
    isTTY: false,
    isRoot: true,
    home: '/root',
  });
  const plan = planInstall(opts, parseBlended(BLENDED));
  const disk = diskSpec(plan.disk, plan.domain, plan.diskFormat, plan.diskBus);
  const extraDisks = plan.extraDisks.map((d, i) => diskSpec(d.target, plan.domain, d.format, plan.diskBus, i + 2));
  const base = {
    name: plan.domain,
    uuid: UUID,
    type: plan.virtType === 'kvm' ? ('kvm' as const) : ('qemu' as const),
    memoryMiB: plan.memoryMiB,
    vcpus: plan.vcpus,
    disk,
    nics: plan.nics.map((n) => ({ ...n, mac: n.mac === 'random' ? '52:54:00:00:00:01' : n.mac })),
    graphics: plan.graphics,
    system: plan.system,
    machine: plan.machine,
    ...(extraDisks.length > 0 ? { extraDisks } : {}),
    ...(plan.firmware === 'uefi' ? { uefi: { secureBoot: plan.secureBoot } } : {}),
  };
  const out = [{ name: 'persistent', xml: persistentXml(plan, base) }];
  out.push({ name: 'installer', xml: installerXml(plan, base, '/var/cache/forge-agent/KERNELSHA', '/var/cache/forge-agent/INITRDSHA') });
  return out;
}

for (const [name, args] of Object.entries(CASES)) {
  test(`domain XML golden: ${name} (${args.join(' ') || 'defaults'})`, (t) => {
    for (const doc of xmlsFor(args)) {
      const file = join(GOLDEN, `${name}.${doc.name}.xml`);
      if (process.env['FORGE_UPDATE_GOLDEN'] === '1') {
        mkdirSync(GOLDEN, { recursive: true });
        writeFileSync(file, doc.xml);
      }
      assert.equal(doc.xml, readFileSync(file, 'utf8'), `${file} differs (FORGE_UPDATE_GOLDEN=1 after a deliberate change)`);
    }
    if (need(t, { commands: ['virt-xml-validate'] }) !== undefined) return;
    for (const doc of xmlsFor(args)) {
      const file = join(GOLDEN, `${name}.${doc.name}.xml`);
      const r = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${file}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout + r.stderr, /validates/);
    }
  });
}

test('domain XML: the facts each option must produce', () => {
  const [p, i] = xmlsFor([]);
  assert.match(p!.xml, /<domain type='qemu'>/, 'record virt_type kvm means auto: XML shows qemu until the probe decides');
  assert.match(p!.xml, /<boot dev='hd'\/>/);
  assert.match(p!.xml, /<on_reboot>restart<\/on_reboot>/);
  assert.match(i!.xml, /<on_reboot>destroy<\/on_reboot>/, 'installer: a reboot ends it (virt-install)');
  assert.match(i!.xml, /<kernel>\/var\/cache\/forge-agent\/KERNELSHA<\/kernel>/);
  assert.match(i!.xml, /<cmdline>auto=true priority=critical url=http:\/\/forge:8080\/autoinstall\/system\/vm9 console=tty0 console=ttyS0<\/cmdline>/);
  assert.match(p!.xml, /<mac address='52:54:00:12:34:56'\/>[\s\S]*<mac address='52:54:00:12:34:57'\/>/, "the system's MACs, in interface order");
  assert.match(p!.xml, /<source network='default'\/>/);
  assert.match(p!.xml, /<graphics type='vnc'/);
  assert.match(p!.xml, /<source file='\/var\/lib\/libvirt\/images\/vm9-disk01.qcow2'\/>/);
  const [n] = xmlsFor(['--nogfx', '--virt-bridge', 'br0', '--qemu-net-type', 'e1000', '--qemu-disk-type', 'ide']);
  assert.doesNotMatch(n!.xml, /<graphics/);
  assert.match(n!.xml, /<source bridge='br0'\/>/);
  assert.match(n!.xml, /<model type='e1000'\/>/);
  assert.match(n!.xml, /<target dev='hda' bus='ide'\/>/);
  const [k] = xmlsFor(['--virt-type', 'kvm', '--virt-path', 'vg0']);
  assert.match(k!.xml, /<domain type='kvm'>/);
  assert.match(k!.xml, /<cpu mode='host-passthrough'\/>/);
  assert.match(k!.xml, /<disk type='block' device='disk'>[\s\S]*<driver name='qemu' type='raw'\/>[\s\S]*<source dev='\/dev\/vg0\/vm9-disk01'\/>/);
  const [pool] = xmlsFor(['--virt-path', 'pool:fast', '--qemu-disk-type', 'scsi']);
  assert.match(pool!.xml, /<controller type='scsi' index='0' model='virtio-scsi'\/>/);
  assert.match(pool!.xml, /<source pool='fast' volume='vm9-disk01.qcow2'\/>/);
  const pxe = xmlsFor(['--virt-pxe-boot']);
  assert.match(pxe[0]!.xml, /<boot dev='hd'\/>/, 'the persistent domain boots from disk');
  assert.doesNotMatch(pxe[0]!.xml, /<boot dev='network'/);
  assert.match(pxe[1]!.xml, /<boot dev='network'\/>\s*<boot dev='hd'\/>/, 'the PXE installer boots from the network');
  assert.doesNotMatch(pxe[1]!.xml, /<kernel>/);
  assert.match(pxe[1]!.xml, /<on_reboot>destroy<\/on_reboot>/);
});

test('domain XML: escaping and the installer console', () => {
  assert.equal(esc(`a<b>&'"`), 'a&lt;b&gt;&amp;&apos;&quot;');
  assert.equal(installerCmdline('ks=http://x/a?b=1&c=2', 'none'), 'ks=http://x/a?b=1&c=2 console=ttyS0');
  assert.equal(installerCmdline('  quiet   console=ttyS1,115200 ', 'vnc'), 'quiet console=ttyS1,115200', 'an explicit console is kept');
  const xml = buildDomainXml({
    name: 'a&b', uuid: UUID, type: 'qemu', memoryMiB: 64, vcpus: 1,
    disk: { kind: 'file', path: "/tmp/it's.qcow2", format: 'qcow2', bus: 'virtio' },
    nics: [], graphics: 'none', consoleLog: '/var/log/x.log',
    boot: { kind: 'kernel', kernel: '/k', initrd: '/i', cmdline: 'a=<b>&c' }, installer: true,
  });
  assert.match(xml, /<name>a&amp;b<\/name>/);
  assert.match(xml, /<source file='\/tmp\/it&apos;s.qcow2'\/>/);
  assert.match(xml, /<cmdline>a=&lt;b&gt;&amp;c<\/cmdline>/);
});
