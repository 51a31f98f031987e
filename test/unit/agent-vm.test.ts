/**
 * The pure parts of `forge-agent vm|snapshot|clone|console`: reading libvirt's
 * domain XML back (forge marker, disks, MACs, console, graphics, firmware),
 * retargeting it for a clone or a snap-run copy, snapshot naming, and the
 * subcommand parser and its --help. The libvirt side is test/e2e/agent-vm.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDomainXml, retargetDomainXml } from '../../agent/domain.js';
import { buildDomainXml, FORGE_NS } from '../../agent/domxml.js';
import { checkSnapshotName, createSnapshot, deleteSnapshot, listSnapshots, nextSnapshotName, restoreSnapshot } from '../../agent/snapshots.js';
import { findSub, parseSub, subHelp, SUBCOMMANDS } from '../../agent/subcommands.js';
import { ForgeError } from '../../server/errors.js';
import { rescueDomainXml, resolveJob } from '../../agent/jobs.js';
import { sshFingerprint } from '../../agent/vm.js';
import { need } from '../lib/env.js';

/** What `virsh dumpxml` gives back for a running forge domain (libvirt re-serialises: double quotes, its own additions). */
const LIVE = `<domain type="qemu" id="7">
  <name>vm9</name>
  <uuid>6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b</uuid>
  <metadata>
    <forge:agent xmlns:forge="${FORGE_NS}" system="vm9-rec">persistent</forge:agent>
  </metadata>
  <os>
    <type arch="x86_64" machine="pc-q35-7.2">hvm</type>
    <loader readonly="yes" type="pflash">/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template="/usr/share/OVMF/OVMF_VARS_4M.fd">/var/lib/libvirt/qemu/nvram/vm9_VARS.fd</nvram>
  </os>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="/images/vm9-disk01.qcow2" index="2"/>
      <backingStore type="file" index="3">
        <format type="qcow2"/>
        <source file="/images/base.qcow2"/>
      </backingStore>
      <target dev="vda" bus="virtio"/>
    </disk>
    <disk type="block" device="disk">
      <driver name="qemu" type="raw"/>
      <source dev="/dev/vg0/vm9-disk02" index="1"/>
      <target dev="sdb" bus="scsi"/>
    </disk>
    <interface type="network">
      <mac address="52:54:00:AA:bb:01"/>
      <source network="default"/>
    </interface>
    <serial type="pty">
      <source path="/dev/pts/4"/>
      <log file="/var/log/libvirt/qemu/vm9-console.log" append="off"/>
      <target type="isa-serial" port="0"/>
    </serial>
    <console type="pty" tty="/dev/pts/4">
      <target type="serial" port="0"/>
    </console>
    <graphics type="vnc" port="5901" autoport="yes" listen="127.0.0.1"/>
  </devices>
</domain>
`;

test('parseDomainXml reads what forge-agent vm shows from libvirt\'s own serialisation', () => {
  const d = parseDomainXml(LIVE);
  assert.equal(d.name, 'vm9');
  assert.equal(d.forge, true);
  assert.equal(d.system, 'vm9-rec');
  assert.deepEqual(d.disks.map((x) => [x.target, x.bus, x.type, x.format, x.source, x.backing]), [
    ['vda', 'virtio', 'file', 'qcow2', '/images/vm9-disk01.qcow2', '/images/base.qcow2'],
    ['sdb', 'scsi', 'block', 'raw', '/dev/vg0/vm9-disk02', ''],
  ]);
  assert.deepEqual(d.macs, ['52:54:00:aa:bb:01']);
  assert.equal(d.consoleLog, '/var/log/libvirt/qemu/vm9-console.log');
  assert.equal(d.consolePty, '/dev/pts/4');
  assert.deepEqual(d.graphics, [{ type: 'vnc', listen: '127.0.0.1', port: 5901 }]);
  assert.equal(d.firmware, 'uefi');
  assert.equal(d.machine, 'pc-q35-7.2');
});

test('parseDomainXml: a domain without forge\'s marker (or with another namespace) is not forge\'s', () => {
  assert.equal(parseDomainXml(LIVE.replace(/\s*<metadata>[\s\S]*<\/metadata>/, '')).forge, false);
  assert.equal(parseDomainXml(LIVE.replace(FORGE_NS, 'https://example.com/other')).forge, false);
  // The XML forge writes itself (single quotes) reads back the same.
  const own = buildDomainXml({
    name: 'a&b', uuid: 'u', type: 'qemu', memoryMiB: 64, vcpus: 1, disk: { kind: 'file', path: '/d/a.qcow2', format: 'qcow2', bus: 'ide' },
    nics: [], graphics: 'none', consoleLog: '/l/a.log', boot: { kind: 'disk' }, installer: false, system: 'rec<1>',
  });
  const d = parseDomainXml(own);
  assert.equal(d.name, 'a&b');
  assert.equal(d.system, 'rec<1>');
  assert.equal(d.firmware, 'bios');
  assert.deepEqual(d.graphics, []);
  assert.equal(d.disks[0]?.target, 'hda');
});

test('retargetDomainXml renames everything that names the source and drops libvirt\'s per-domain state', () => {
  const xml = retargetDomainXml(LIVE, {
    name: 'vm9-copy', uuid: 'new-uuid',
    disks: new Map([['/images/vm9-disk01.qcow2', { file: '/images/vm9-copy-disk01.qcow2', format: 'qcow2' }]]),
    macs: new Map([['52:54:00:aa:bb:01', '52:54:00:11:22:33']]),
    consoleLog: '/var/log/libvirt/qemu/vm9-copy-console.log', system: 'vm9-copy', role: 'persistent', dropNvram: true,
  });
  const d = parseDomainXml(xml);
  assert.equal(d.name, 'vm9-copy');
  assert.equal(d.uuid, 'new-uuid');
  assert.equal(d.system, 'vm9-copy');
  assert.equal(d.disks[0]?.source, '/images/vm9-copy-disk01.qcow2');
  assert.equal(d.disks[0]?.backing, '', 'the reported backing chain is libvirt\'s to find again');
  assert.equal(d.disks[1]?.source, '/dev/vg0/vm9-disk02', 'disks not in the map stay');
  assert.deepEqual(d.macs, ['52:54:00:11:22:33']);
  assert.equal(d.consoleLog, '/var/log/libvirt/qemu/vm9-copy-console.log');
  assert.doesNotMatch(xml, /<nvram/);
  assert.doesNotMatch(xml, /vm9-disk01|vm9-console|52:54:00:AA/i);
  // snap run: the overlay is qcow2 even over a raw disk, and the marker says what it is.
  const snap = retargetDomainXml(LIVE.replace('type="qcow2"/>\n      <source file="/images/vm9', 'type="raw"/>\n      <source file="/images/vm9'), {
    name: 's', uuid: 'u', disks: new Map([['/images/vm9-disk01.qcow2', { file: '/o.qcow2', format: 'qcow2' }]]), macs: new Map(), consoleLog: '/l', system: '', role: 'snap-run',
  });
  assert.equal(parseDomainXml(snap).disks[0]?.format, 'qcow2');
  assert.match(snap, /<forge:agent xmlns:forge="[^"]+">snap-run<\/forge:agent>/);
  assert.equal(parseDomainXml(snap).system, '');
});

test('snapshot names: S0, S1, ... past the highest; LAST reserved; bad names name the field', () => {
  assert.equal(nextSnapshotName([]), 'S0');
  assert.equal(nextSnapshotName(['S0', 'before-upgrade', 'S1']), 'S2');
  assert.equal(nextSnapshotName(['S0', 'S7']), 'S8', 'a deleted S1..S6 is not reused');
  assert.equal(nextSnapshotName(['S01x', 'x']), 'S0');
  assert.throws(() => checkSnapshotName('LAST'), (e: unknown) => e instanceof ForgeError && e.code === 'USAGE' && /reserved/.test(e.message));
  assert.throws(() => checkSnapshotName('../x'), (e: unknown) => e instanceof ForgeError && e.field === 'SNAP');
  assert.equal(checkSnapshotName('2023-05-10'), '2023-05-10');
});

test('snapshots on files: create, list (time, comment, size, LAST), restore all disks, delete moves LAST', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-snap-'));
  try {
    const a = join(dir, 'vm-disk01.qcow2');
    const b = join(dir, 'vm-disk02.img');
    writeFileSync(a, 'A1');
    writeFileSync(b, 'B1');
    const info = parseDomainXml(LIVE.replace('/images/vm9-disk01.qcow2', a).replace('<disk type="block" device="disk">', '<disk type="file" device="disk">').replace('<source dev="/dev/vg0/vm9-disk02" index="1"/>', `<source file="${b}"/>`));
    const s0 = await createSnapshot(info, { name: undefined, comment: 'first', now: new Date('2026-01-01T00:00:00Z') });
    assert.equal(s0.name, 'S0');
    writeFileSync(a, 'A2');
    writeFileSync(b, 'B2');
    const s1 = await createSnapshot(info, { name: undefined, comment: '', now: new Date('2026-01-02T00:00:00Z') });
    assert.equal(s1.name, 'S1');
    const root = join(dir, 'vm9.snapshots');
    assert.equal(readlinkSync(join(root, 'LAST')), 'S1');
    const rows = listSnapshots(root);
    assert.deepEqual(rows.map((r) => [r.name, r.comment, r.last, r.time]), [['S0', 'first', false, '2026-01-01T00:00:00.000Z'], ['S1', '', true, '2026-01-02T00:00:00.000Z']]);
    assert.ok(rows.every((r) => r.size > 0));
    await assert.rejects(createSnapshot(info, { name: 'S1', comment: '', now: new Date() }), (e: unknown) => e instanceof ForgeError && e.code === 'VIRT_EXISTS');
    writeFileSync(a, 'A3');
    rmSync(b);
    const r = await restoreSnapshot(root, 'S0');
    assert.equal(r.meta.name, 'S0');
    assert.equal(readFileSync(a, 'utf8'), 'A1');
    assert.equal(readFileSync(b, 'utf8'), 'B1', 'a missing disk comes back too');
    await restoreSnapshot(root, 'LAST');
    assert.equal(readFileSync(a, 'utf8'), 'A2');
    await assert.rejects(restoreSnapshot(root, 'S9'), (e: unknown) => e instanceof ForgeError && e.code === 'NOT_FOUND' && /snapshots: S0, S1/.test(e.message));
    deleteSnapshot(root, 'S1');
    assert.equal(readlinkSync(join(root, 'LAST')), 'S0');
    deleteSnapshot(root, 'LAST');
    assert.ok(!existsSync(join(root, 'LAST')));
    assert.deepEqual(listSnapshots(root), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('subcommands: parse positional args and flags, refuse unknown ones, --help for each', () => {
  const p = parseSub(['snapshot', 'create', 'vm9', '--comment', 'before upgrade', '--live']);
  assert.deepEqual(p.spec.path, ['snapshot', 'create']);
  assert.deepEqual(p.args, ['vm9']);
  assert.equal(p.flags.get('comment'), 'before upgrade');
  assert.equal(p.flags.get('live'), true);
  assert.deepEqual(parseSub(['snapshot', 'create', 'vm9', 'S5']).args, ['vm9', 'S5']);
  assert.throws(() => parseSub(['vm', 'kill']), (e: unknown) => e instanceof ForgeError && e.code === 'USAGE' && /missing NAME/.test(e.message));
  assert.throws(() => parseSub(['vm', 'kill', 'a', 'b']), /unexpected argument 'b'/);
  assert.throws(() => parseSub(['vm', 'kill', 'a', '--bogus']), /unknown option --bogus/);
  assert.throws(() => parseSub(['vm', 'reboot', 'a']), /unknown command 'vm reboot'; commands: vm list, vm info/);
  assert.equal(parseSub(['clone', '--help']).help, true);
  assert.equal(findSub(['console', 'x'])?.path.join(' '), 'console');
  for (const s of SUBCOMMANDS) {
    const h = subHelp(s);
    assert.match(h, new RegExp(`^usage: forge-agent ${s.path.join(' ')}`));
    assert.match(h, /--help/);
    for (const f of s.flags) assert.match(h, new RegExp(`--${f.long}`));
  }
  for (const destructive of [['vm', 'kill'], ['vm', 'destroy'], ['snapshot', 'restore'], ['snapshot', 'delete']]) {
    assert.ok(findSub(destructive)?.flags.some((f) => f.long === 'force'), `${destructive.join(' ')} has --force`);
  }
});

test('jobs: a job directory needs JOB.job; shipped jobs by name; unknown names say what there is', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-job-'));
  try {
    const j = join(dir, 'fix-grub');
    mkdirSync(j);
    assert.throws(() => resolveJob(j), (e: unknown) => e instanceof ForgeError && e.code === 'USAGE' && /has no fix-grub\.job/.test(e.message));
    writeFileSync(join(j, 'fix-grub.job'), 'true\n');
    assert.deepEqual(resolveJob(j), { name: 'fix-grub', dir: j, files: {} });
    assert.equal(resolveJob('add-ssh-keys').dir, '');
    assert.ok('post-install.job' in resolveJob('post-install').files);
    assert.throws(() => resolveJob(join(dir, 'nope')), /not a shipped job \(add-ssh-keys, post-install\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rescue domain XML: the VM disks as virtio, the 9p shares (in and mirror read-only), validated by libvirt\'s schema', (t) => {
  const info = parseDomainXml(LIVE);
  const xml = rescueDomainXml({
    name: 'vm9-job', vm: info, rescue: { kernel: '/c/vmlinuz', initrd: '/c/initrd' }, job: 'add-ssh-keys',
    run: { workdir: '/w', indir: '/w/in', outdir: '/w/out' }, mirror: '/srv/mirror', consoleLog: '/l/vm9-job-console.log', type: 'qemu', memoryMiB: 512,
  });
  assert.match(xml, /<source file='\/images\/vm9-disk01.qcow2'\/>\s*<target dev='vda' bus='virtio'\/>/);
  assert.match(xml, /<source dev='\/dev\/vg0\/vm9-disk02'\/>\s*<target dev='vdb' bus='virtio'\/>/);
  assert.match(xml, /<source dir='\/w\/in'\/>\s*<target dir='forge_in'\/>\s*<readonly\/>/);
  assert.match(xml, /<source dir='\/w\/out'\/>\s*<target dir='forge_out'\/>\s*<\/filesystem>/);
  assert.match(xml, /<source dir='\/srv\/mirror'\/>\s*<target dir='forge_mirror'\/>\s*<readonly\/>/);
  assert.match(xml, /forge\.job=add-ssh-keys/);
  if (need(t, { commands: ['virt-xml-validate'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'forge-rescue-xml-'));
  try {
    writeFileSync(join(dir, 'r.xml'), xml);
    const r = spawnSync('virt-xml-validate', [join(dir, 'r.xml'), 'domain'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr + r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ssh fingerprints are what ssh-keygen -l prints (SHA256: + unpadded base64 of the key blob); junk is refused', (t) => {
  assert.equal(sshFingerprint('not a key'), undefined);
  assert.equal(sshFingerprint('ssh-rsa AAAA'), undefined);
  if (need(t, { commands: ['ssh-keygen'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'forge-fp-'));
  try {
    for (const type of ['ed25519', 'rsa', 'ecdsa']) {
      const f = join(dir, `k-${type}`);
      spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'a comment', '-f', f]);
      const want = spawnSync('ssh-keygen', ['-l', '-f', `${f}.pub`], { encoding: 'utf8' }).stdout.split(' ')[1];
      assert.equal(sshFingerprint(readFileSync(`${f}.pub`, 'utf8')), want, type);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
