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
import { moveDisks, parseDomainXml, retargetDomainXml } from '../../agent/domain.js';
import { buildDomainXml, FORGE_NS } from '../../agent/domxml.js';
import { checkSnapshotName, createSnapshot, deleteSnapshot, listSnapshots, nextSnapshotName, overlayPath, restoreSnapshot } from '../../agent/snapshots.js';
import { findSub, parseSub, subHelp, SUBCOMMANDS } from '../../agent/subcommands.js';
import { ForgeError } from '../../server/errors.js';
import { rescueDomainXml, resolveJob } from '../../agent/jobs.js';
import { sshFingerprint } from '../../agent/vmjobs.js';
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

/** libvirt's own schema check of a domain document (virt-xml-validate FILE domain). */
function validDomain(t: import('node:test').TestContext, xml: string): void {
  if (need(t, { commands: ['virt-xml-validate'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'forge-domain-xml-'));
  try {
    writeFileSync(join(dir, 'd.xml'), xml);
    const r = spawnSync('virt-xml-validate', [join(dir, 'd.xml'), 'domain'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr + r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A qemu-img image with its first 4 KiB holding `fill` (qemu-io writes through the format, so qcow2 works too). */
function writeBlock(file: string, format: string, fill: string): void {
  const r = spawnSync('qemu-io', ['-f', format, '-c', `write -P 0x${fill.charCodeAt(0).toString(16)} 0 4k`, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** The first byte the guest would read from `file` (the whole chain), as a character. */
function readBlock(file: string): string {
  const out = `${file}.peek`;
  const r = spawnSync('qemu-img', ['dd', '-O', 'raw', 'bs=4096', 'count=1', `if=${file}`, `of=${out}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const c = readFileSync(out).subarray(0, 1).toString('latin1');
  rmSync(out, { force: true });
  return c;
}

function chain(file: string): string[] {
  const r = spawnSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { filename: string }[]).map((x) => x.filename);
}

test('overlay snapshots on real images: the disk moves onto a qcow2 overlay, restore, LAST, delete rebases the chain', async (t) => {
  if (need(t, { commands: ['qemu-img', 'qemu-io'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'forge-snap-'));
  try {
    const a0 = join(dir, 'vm-disk01.qcow2');
    const b0 = join(dir, 'vm-disk02.img');
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', a0, '8M']);
    spawnSync('qemu-img', ['create', '-q', '-f', 'raw', b0, '8M']);
    writeBlock(a0, 'qcow2', 'A');
    writeBlock(b0, 'raw', 'B');
    const xmlOf = (a: string, b: string, fb = 'raw'): string => LIVE.replace('/images/vm9-disk01.qcow2', a).replace('<disk type="block" device="disk">', '<disk type="file" device="disk">')
      .replace('<source dev="/dev/vg0/vm9-disk02" index="1"/>', `<source file="${b}"/>`).replace(/(<disk type="file" device="disk">\s*<driver name="qemu" type=")[^"]*("\/>\s*<source file="[^"]*vm-disk02)/, `$1${fb}$2`);
    let info = parseDomainXml(xmlOf(a0, b0));
    assert.equal(info.disks[1]?.format, 'raw');
    const applied: string[][] = [];
    // What vm.ts does with the changes: define the domain on its new files.
    const apply = async (ch: { from: string; file: string; format: string }[]): Promise<void> => {
      applied.push(ch.map((c) => `${c.from}->${c.file}:${c.format}`));
      let a = info.disks[0]?.source as string;
      let b = info.disks[1]?.source as string;
      let fb = info.disks[1]?.format as string;
      for (const c of ch) {
        if (c.from === a) a = c.file;
        if (c.from === b) [b, fb] = [c.file, c.format];
      }
      info = parseDomainXml(xmlOf(a, b, fb));
    };
    const s0 = await createSnapshot(info, { name: undefined, comment: 'first', now: new Date('2026-01-01T00:00:00Z'), apply });
    assert.equal(s0.meta.name, 'S0');
    assert.deepEqual(s0.meta.disks.map((d) => [d.kind, d.image]), [['overlay', a0], ['overlay', b0]], 'ext4/tmpfs cannot clone: qcow2 overlays');
    const a1 = join(dir, 'vm-disk01.1.qcow2');
    const b1 = join(dir, 'vm-disk02.1.qcow2');
    assert.deepEqual(applied, [[`${a0}->${a1}:qcow2`, `${b0}->${b1}:qcow2`]]);
    assert.deepEqual(chain(a1), [a1, a0], 'the disk is now an overlay on the snapshot');
    assert.deepEqual(chain(b1), [b1, b0], 'a raw disk gets a qcow2 overlay (backing format raw)');
    writeBlock(a1, 'qcow2', 'C');
    writeBlock(b1, 'qcow2', 'D');
    assert.equal(readBlock(a0), 'A', 'the snapshot image is frozen');
    const s1 = await createSnapshot(info, { name: undefined, comment: '', now: new Date('2026-01-02T00:00:00Z'), apply });
    assert.equal(s1.meta.name, 'S1');
    const a2 = join(dir, 'vm-disk01.2.qcow2');
    assert.deepEqual(chain(a2), [a2, a1, a0]);
    const root = join(dir, 'vm9.snapshots');
    assert.equal(readlinkSync(join(root, 'LAST')), 'S1');
    const rows = listSnapshots(root);
    assert.deepEqual(rows.map((r) => [r.name, r.comment, r.last, r.time]), [['S0', 'first', false, '2026-01-01T00:00:00.000Z'], ['S1', '', true, '2026-01-02T00:00:00.000Z']]);
    assert.ok(rows.every((r) => r.size > 0));
    await assert.rejects(createSnapshot(info, { name: 'S1', comment: '', now: new Date(), apply }), (e: unknown) => e instanceof ForgeError && e.code === 'VIRT_EXISTS');
    writeBlock(a2, 'qcow2', 'E');
    rmSync(info.disks[1]?.source as string);
    applied.length = 0;
    const r = await restoreSnapshot(root, 'S0', { disks: info.disks, used: new Set(), apply });
    assert.equal(r.meta.name, 'S0');
    assert.deepEqual(applied, [], 'the disks keep their files: a fresh overlay replaces each');
    assert.equal(readBlock(a2), 'A');
    assert.equal(readBlock(info.disks[1]?.source as string), 'B', 'a missing disk comes back too');
    assert.deepEqual(chain(a2), [a2, a0], 'restore drops the old overlay and starts a new one on S0');
    await restoreSnapshot(root, 'LAST', { disks: info.disks, used: new Set(), apply });
    assert.equal(readBlock(a2), 'C');
    assert.deepEqual(chain(a2), [a2, a1, a0]);
    // A file another domain uses is never replaced: the VM gets a new overlay file.
    await restoreSnapshot(root, 'S1', { disks: info.disks, used: new Set([a2]), apply });
    const a3 = join(dir, 'vm-disk01.3.qcow2');
    assert.equal(info.disks[0]?.source, a3);
    assert.ok(existsSync(a2));
    rmSync(a2);
    await assert.rejects(restoreSnapshot(root, 'S9', { disks: info.disks, used: new Set(), apply }), (e: unknown) => e instanceof ForgeError && e.code === 'NOT_FOUND' && /snapshots: S0, S1/.test(e.message));
    // Delete S0 while another domain's chain holds its image: refused, nothing changes.
    await assert.rejects(deleteSnapshot(root, 'S0', { disks: [a3], usedBy: new Map([[a0, 'peer']]), apply }), (e: unknown) => e instanceof ForgeError && e.code === 'VIRT_IN_USE' && /domain peer/.test(e.message));
    assert.ok(existsSync(a0));
    // Delete S0 (the base): its one child, S1's image, is committed into it and takes its place; the disk still reads the same.
    writeBlock(a3, 'qcow2', 'F');
    const b2 = info.disks[1]?.source as string;
    applied.length = 0;
    await deleteSnapshot(root, 'S0', { disks: [a3, b2], usedBy: new Map(), apply });
    assert.deepEqual(applied, [], "the VM's disks stay where they are");
    assert.ok(!existsSync(a1), "S1's image was merged into S0's file");
    assert.deepEqual(chain(a3), [a3, a0]);
    assert.equal(readBlock(a3), 'F');
    assert.equal(readBlock(a0), 'C', "S0's file now holds S1");
    assert.deepEqual(chain(b2), [b2, b0]);
    assert.deepEqual(listSnapshots(root).map((r) => [r.name, r.disks.map((d) => d.image)]), [['S1', [a0, b0]]]);
    await restoreSnapshot(root, 'S1', { disks: info.disks, used: new Set(), apply });
    assert.equal(readBlock(a3), 'C', 'S1 still reads what it held after its base was merged in');
    assert.equal(readBlock(b2), 'D');
    writeBlock(a3, 'qcow2', 'G');
    // Deleting the only snapshot commits the VM's overlays into the original files: the VM is back on them, in their formats.
    await deleteSnapshot(root, 'LAST', { disks: info.disks.map((d) => d.source), usedBy: new Map(), apply });
    assert.deepEqual(applied, [[`${a3}->${a0}:qcow2`, `${b2}->${b0}:raw`]]);
    assert.deepEqual(info.disks.map((d) => [d.source, d.format]), [[a0, 'qcow2'], [b0, 'raw']]);
    assert.equal(readBlock(a0), 'G', 'the last writes are in the original file');
    assert.equal(readBlock(b0), 'D');
    assert.deepEqual(chain(a0), [a0]);
    assert.ok(!existsSync(a3) && !existsSync(b2), 'the overlays are gone');
    // Several files on one image (a restore branched the chain): each is rebased (safe) onto the image's backing.
    const t0 = await createSnapshot(info, { name: 'T0', comment: '', now: new Date('2026-01-03T00:00:00Z'), apply });
    const top = info.disks[0]?.source as string;
    writeBlock(top, 'qcow2', 'H');
    await createSnapshot(info, { name: 'T1', comment: '', now: new Date('2026-01-04T00:00:00Z'), apply });
    await restoreSnapshot(root, 'T0', { disks: info.disks, used: new Set(), apply });
    const t1img = listSnapshots(root).find((r) => r.name === 'T1')?.disks[0]?.image as string;
    assert.deepEqual(chain(t1img).at(-1), a0);
    assert.deepEqual(chain(info.disks[0]?.source as string).slice(1), [a0], 'the restored disk and T1 both sit on T0');
    await deleteSnapshot(root, 'T0', { disks: info.disks.map((d) => d.source), usedBy: new Map(), apply });
    assert.ok(!existsSync(a0));
    assert.equal(t0.meta.disks[0]?.image, a0);
    assert.equal(readBlock(t1img), 'H');
    assert.equal(readBlock(info.disks[0]?.source as string), 'G');
    assert.deepEqual(chain(info.disks[0]?.source as string).length, 1);
    await deleteSnapshot(root, 'T1', { disks: info.disks.map((d) => d.source), usedBy: new Map(), apply });
    assert.ok(!existsSync(join(root, 'LAST')));
    assert.deepEqual(listSnapshots(root), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a snapshot delete whose redefine fails leaves the chain whole and the snapshot marked; deleting again finishes it', async (t) => {
  if (need(t, { commands: ['qemu-img', 'qemu-io'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'forge-snapdel-'));
  try {
    const a0 = join(dir, 'vm-disk01.qcow2');
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', a0, '8M']);
    writeBlock(a0, 'qcow2', 'A');
    const b0 = join(dir, 'vm-disk02.qcow2');
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', b0, '8M']);
    // LIVE's second disk (an LV) as a file: snapshots cover file disks.
    const xmlOf = (a: string, b: string): string => LIVE.replace('/images/vm9-disk01.qcow2', a).replace('<disk type="block" device="disk">', '<disk type="file" device="disk">')
      .replace('<source dev="/dev/vg0/vm9-disk02" index="1"/>', `<source file="${b}"/>`).replace(/(<disk type="file" device="disk">\s*<driver name="qemu" type=")[^"]*("\/>\s*<source file="[^"]*vm-disk02)/, '$1qcow2$2');
    let info = parseDomainXml(xmlOf(a0, b0));
    const ok = async (ch: { from: string; file: string }[]): Promise<void> => {
      let [a, b] = info.disks.map((d) => d.source) as [string, string];
      for (const c of ch) {
        if (c.from === a) a = c.file;
        if (c.from === b) b = c.file;
      }
      info = parseDomainXml(xmlOf(a, b));
    };
    await createSnapshot(info, { name: 'S0', comment: '', now: new Date('2026-01-01T00:00:00Z'), apply: ok });
    const a1 = info.disks[0]?.source as string;
    assert.deepEqual(chain(a1), [a1, a0]);
    writeBlock(a1, 'qcow2', 'B');
    const root = join(dir, 'vm9.snapshots');
    const files = (): string[] => info.disks.map((d) => d.source).filter((f) => f.startsWith(dir));
    // libvirt refuses the redefine (what virsh define of the merged file does when libvirtd is gone, say).
    const broken = (): Promise<void> => Promise.reject(new Error('virsh define: failed to connect to the hypervisor'));
    await assert.rejects(deleteSnapshot(root, 'S0', { disks: files(), usedBy: new Map(), apply: broken }),
      (e: unknown) => e instanceof ForgeError && e.code === 'SNAPSHOT_INCOMPLETE' && /failed to connect/.test(e.message) && /snapshot delete S0 again/.test(e.message));
    // Nothing is lost: the domain still reads its overlay, whole, on the merged image.
    assert.equal(info.disks[0]?.source, a1);
    assert.deepEqual(chain(a1), [a1, a0]);
    assert.equal(readBlock(a1), 'B');
    assert.equal(spawnSync('qemu-img', ['check', '-q', a1]).status, 0);
    // S0's image now holds B: it is listed as half deleted and can no longer be restored as if it held A.
    assert.deepEqual(listSnapshots(root).map((r) => [r.name, r.deleting]), [['S0', true]]);
    await assert.rejects(restoreSnapshot(root, 'S0', { disks: info.disks, used: new Set(), apply: ok }),
      (e: unknown) => e instanceof ForgeError && e.code === 'SNAPSHOT_INCOMPLETE' && e.field === 'SNAP');
    assert.equal(readBlock(a1), 'B', 'the refused restore changed nothing');
    // Deleting again finishes: the domain is back on its original file with the last writes, the overlay gone.
    await deleteSnapshot(root, 'S0', { disks: files(), usedBy: new Map(), apply: ok });
    assert.deepEqual(info.disks.map((d) => d.source), [a0, b0]);
    assert.equal(readBlock(a0), 'B');
    assert.deepEqual(chain(a0), [a0]);
    assert.ok(!existsSync(a1), 'the merged overlay is removed');
    assert.deepEqual(listSnapshots(root), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('moveDisks: the domain on its overlay (file and driver type), libvirt\'s reported chain dropped; libvirt\'s schema accepts it', (t) => {
  const xml = buildDomainXml({
    name: 'vm9', uuid: '6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b', type: 'qemu', memoryMiB: 256, vcpus: 1,
    disk: { kind: 'file', path: '/images/vm9-disk01.img', format: 'raw', bus: 'virtio' },
    nics: [{ mac: '52:54:00:aa:bb:01', source: { network: 'default' }, model: 'virtio' }],
    graphics: 'vnc', consoleLog: '/var/log/libvirt/qemu/vm9-console.log',
    boot: { kind: 'disk' }, installer: false, system: 'vm9',
  });
  const moved = moveDisks(xml.replace('</disk>', `<backingStore type='file'><format type='raw'/><source file='/images/old'/></backingStore></disk>`),
    new Map([['/images/vm9-disk01.img', { file: '/images/vm9-disk01.1.qcow2', format: 'qcow2' }]]));
  const d = parseDomainXml(moved);
  assert.deepEqual([d.disks[0]?.source, d.disks[0]?.format, d.disks[0]?.backing], ['/images/vm9-disk01.1.qcow2', 'qcow2', '']);
  assert.equal(d.system, 'vm9');
  assert.equal(moveDisks(xml, new Map([['/other', { file: '/x', format: 'qcow2' }]])), xml, 'other disks stay as they are');
  validDomain(t, moved);
});

test('overlay paths: STEM.N.qcow2 beside the disk, the first N free, without stacking .N', () => {
  const have = new Set(['/i/vm-disk01.1.qcow2']);
  assert.equal(overlayPath('/i/vm-disk01.qcow2', (f) => have.has(f)), '/i/vm-disk01.2.qcow2');
  have.add('/i/vm-disk01.2.qcow2');
  assert.equal(overlayPath('/i/vm-disk01.2.qcow2', (f) => have.has(f)), '/i/vm-disk01.3.qcow2', 'an overlay of an overlay: vm-disk01.3, not vm-disk01.2.1');
  assert.equal(overlayPath('/i/vm-disk02.img', () => false), '/i/vm-disk02.1.qcow2');
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
  validDomain(t, xml);
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
