/**
 * forge-agent end to end, with real libvirt (qemu:///system, domain type
 * qemu), a real `forge serve` and real VMs on an isolated libvirt network:
 *
 *  - the happy path: `forge-agent --system T --virt --virt-type qemu
 *    --vm-poll` downloads the distro kernel and a busybox installer initrd,
 *    creates the disk, defines the domain and starts the installer
 *    transiently; the installer fetches forge.autoinstall=URL, whose install
 *    step (a site snippet) writes a bootable syslinux image to /dev/vda, calls
 *    install start/done and powers off; the agent then boots the disk, whose
 *    system reports first boot to forge. The full event timeline and
 *    netboot_enabled=false are asserted.
 *  - failure paths: installer kernel panic, installer timeout, domain name
 *    already defined, disk already present.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { guestKernel } from '../lib/guest.js';
import {
  CRASH_INIT, HANG_INIT, INSTALLER_INIT, agentLab, buildDiskImage, domainState, initrdFor, installSnippet, labMac as mac,
  removeDomain, virsh, waitFor,
} from '../lib/agent-lab.js';

// The PXE system's NIC gets forge's per-MAC iPXE script as its DHCP boot file.
const pxeMac = mac();

const L = agentLab({
  prefix: 'fgag',
  reqs: { root: true, commands: ['virsh', 'virt-xml-validate', 'qemu-img', 'qemu-system-x86_64', 'mkfs.vfat', 'syslinux', 'mcopy', 'cpio', 'modinfo', 'dnsmasq'] },
  skip: 'needs root and libvirt/qemu/syslinux tools',
  bootp: (ip, port) => `http://${ip}:${port}/boot/ipxe/${pxeMac}`,
  serveArgs: (dir) => {
    const snippets = join(dir, 'snippets');
    mkdirSync(join(snippets, 'generic'), { recursive: true });
    writeFileSync(join(snippets, 'generic', 'install'), installSnippet());
    return ['--snippets-dir', snippets, '--pxe-just-once', 'true'];
  },
  async setup(core) {
    const { tag, dir } = core;
    const tree = join(dir, 'tree');
    mkdirSync(tree, { recursive: true });
    const kernel = guestKernel().vmlinuz;
    for (const [d, init] of [['good', INSTALLER_INIT], ['crash', CRASH_INIT], ['hang', HANG_INIT]] as const) {
      await L.create('distros', { name: `${tag}-${d}`, kernel, initrd: initrdFor(init), breed: 'generic', arch: 'x86_64', tree, kernel_options: { quiet: null, no_timer_check: null } });
      await L.create('profiles', { name: `${tag}-${d}`, distro: `${tag}-${d}` });
    }
    for (const [sys, prof] of [['inst', 'good'], ['crash', 'crash'], ['hang', 'hang'], ['dup', 'hang'], ['disk', 'good'], ['pool', 'hang'], ['pxe', 'good'], ['dev', 'hang']] as const) {
      const name = `${tag}-${sys}`;
      core.domains.push(name);
      await L.create('systems', {
        name,
        profile: `${tag}-${prof}`,
        virt_ram: 256,
        virt_cpus: 1,
        virt_file_size: 1,
        netboot_enabled: true,
        interfaces: { eth0: { mac_address: sys === 'pxe' ? pxeMac : mac() } },
      });
    }
    // The installed system's first-boot callback, as a template bakes it: under the system's install token.
    for (const sys of ['inst', 'pxe']) {
      const b = (await L.api('GET', `/api/v1/systems/${tag}-${sys}/blended`)).body as { install_base_url: string };
      buildDiskImage(tree, `${tag}-${sys}`, `${b.install_base_url}/api/v1/systems/${tag}-${sys}/firstboot`);
    }
    return {};
  },
});
const { api, events } = L;
const ready = L.ready;
const runAgent = L.agent;

/** Common agent flags: software emulation, the test network, the lab's disk and cache dirs. */
function agentArgs(system: string, extra: string[] = []): string[] {
  const lab = L.get();
  return [
    '--system', system, '--virt', '--virt-type', 'qemu', ...(extra.includes('--no-wait') ? [] : ['--vm-poll']), '--nogfx',
    '--virt-network', lab.net.name, '--virt-path', join(lab.dir, 'disks'), '--cache-dir', join(lab.dir, 'cache'),
    '--timeout', '300', ...extra,
  ];
}

test('forge-agent --vm-poll: installer runs, writes the disk, the VM boots it and reports first boot', { timeout: 600_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-inst`;
  const run = await runAgent(agentArgs(sys), 480_000);
  assert.equal(run.code, 0, `agent failed:\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /installer finished after [\d.]+ s; booting from disk/);
  assert.match(run.stderr, /installer for .* running \(qemu\)/);

  // The disk's own system reports first boot, then powers itself off.
  await waitFor('first_boot event', 240_000, async () => ((await events(sys)).some((e) => e.type === 'first_boot') ? true : undefined));
  await waitFor('the installed VM to power off', 60_000, async () => (domainState(sys) === 'shut off' ? true : undefined));

  const evs = await events(sys);
  const types = evs.map((e) => e.type);
  const order = ['agent_start', 'kernel_fetched', 'initrd_fetched', 'installer_running', 'autoinstall_served', 'install_start', 'install_done', 'netboot_disabled', 'installer_finished', 'disk_boot_started', 'first_boot'];
  let last = -1;
  for (const ty of order) {
    const i = types.indexOf(ty, last + 1);
    assert.ok(i > last, `event ${ty} missing or out of order in ${types.join(', ')}`);
    last = i;
  }
  assert.ok(!types.includes('agent_failed'), types.join(', '));
  const agentEvents = evs.filter((e) => e.source === 'agent');
  assert.deepEqual(agentEvents.map((e) => e.type), ['agent_start', 'installer_running', 'installer_finished', 'disk_boot_started']);
  assert.equal(agentEvents[1]?.detail['virt_type'], 'qemu');
  // The installer's power-off reached the agent as a libvirt lifecycle event (virsh event), not only by polling.
  assert.ok(Number(agentEvents[2]?.detail['lifecycle_events']) >= 1, `installer_finished ${JSON.stringify(agentEvents[2]?.detail)}`);

  const s = await api('GET', `/api/v1/systems/${sys}`);
  assert.equal((s.body as { netboot_enabled: boolean }).netboot_enabled, false, 'install/done with pxe_just_once disabled netboot');

  // The domain is persistent, boots from its disk, and carries the system's MAC on the test network.
  const xml = virsh(['dumpxml', '--inactive', sys]);
  assert.match(xml, /<boot dev='hd'\/>/);
  assert.doesNotMatch(xml, /<kernel>/);
  const sysMac = ((s.body as { interfaces: Record<string, { mac_address: string }> }).interfaces['eth0'] as { mac_address: string }).mac_address;
  assert.match(xml, new RegExp(`<mac address='${sysMac}'/>`));
  assert.match(xml, new RegExp(`<source network='${l.net.name}'`));
  // The installer's console went to its log; the disk's first boot to the console log.
  assert.match(readFileSync(`/var/log/libvirt/qemu/${sys}-install.log`, 'utf8'), /forge-installer: disk written/);
  assert.match(readFileSync(`/var/log/libvirt/qemu/${sys}-console.log`, 'utf8'), /forge-guest: firstboot reported/);
  // Kernel and initrd are cached under their sha256.
  const files = (await api('GET', `/api/v1/distros/${l.tag}-good/files`)).body as { kernel: { sha256: string }; initrd: { sha256: string } };
  const cached = readdirSync(join(l.dir, 'cache'));
  assert.ok(cached.includes(files.kernel.sha256) && cached.includes(files.initrd.sha256), cached.join(' '));

  // `forge system events` shows the whole timeline.
  const cli = await l.srv.cli(['system', 'events', '--name', sys], { FORGE_SERVER: l.base });
  assert.equal(cli.code, 0, cli.stderr);
  for (const ty of order) assert.match(cli.stdout, new RegExp(ty));
});

test('forge-agent --virt-pxe-boot: the installer boots over the network (iPXE -> forge), then the disk', { timeout: 600_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-pxe`;
  const run = await runAgent(agentArgs(sys, ['--virt-pxe-boot']), 480_000);
  assert.equal(run.code, 0, `agent failed:\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /installer finished after [\d.]+ s; booting from disk/);
  await waitFor('first_boot event', 240_000, async () => ((await events(sys)).some((e) => e.type === 'first_boot') ? true : undefined));
  await waitFor('the installed VM to power off', 60_000, async () => (domainState(sys) === 'shut off' ? true : undefined));
  const evs = await events(sys);
  const types = evs.map((e) => e.type);
  // The network boot is forge's: iPXE script for this MAC, kernel and initrd over HTTP, then the install.
  const order = ['agent_start', 'installer_running', 'boot_config_served', 'kernel_fetched', 'initrd_fetched', 'autoinstall_served', 'install_start', 'install_done', 'netboot_disabled', 'installer_finished', 'disk_boot_started', 'first_boot'];
  let last = -1;
  for (const ty of order) {
    const i = types.indexOf(ty, last + 1);
    assert.ok(i > last, `event ${ty} missing or out of order in ${types.join(', ')}`);
    last = i;
  }
  assert.equal(evs.find((e) => e.type === 'installer_running')?.detail['mode'], 'pxe');
  const s = await api('GET', `/api/v1/systems/${sys}`);
  assert.equal((s.body as { netboot_enabled: boolean }).netboot_enabled, false);
  assert.doesNotMatch(virsh(['dumpxml', '--inactive', sys]), /<boot dev='network'/, 'the installed domain boots from its disk');
});

test('forge-agent: an installer kernel panic fails with INSTALL_FAILED and the console tail', { timeout: 300_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-crash`;
  // --virt-type auto here: libvirt offers kvm on this kind of host, the probe decides.
  const run = await runAgent(agentArgs(sys, ['--virt-type', 'auto']), 240_000);
  assert.equal(run.code, 9, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stderr, /INSTALL_FAILED: .*kernel panicked/);
  assert.match(run.stderr, /tail of the installer console[\s\S]*installer crashing[\s\S]*Kernel panic/);
  assert.equal(domainState(sys), 'shut off', 'the crashed installer was destroyed');
  const evs = await events(sys);
  const failed = evs.find((e) => e.type === 'agent_failed');
  assert.ok(failed !== undefined, evs.map((e) => e.type).join(', '));
  assert.equal(failed.detail['code'], 'INSTALL_FAILED');
  assert.equal(failed.detail['reason'], 'panic');
  assert.match(String(failed.detail['console_tail']), /Kernel panic/);
  assert.ok(!evs.some((e) => e.type === 'disk_boot_started'));
  // auto: qemu with a loud warning unless a kvm guest really boots on this host.
  const running = evs.find((e) => e.type === 'installer_running');
  const warned = /WARNING: using plain QEMU software emulation/.test(run.stderr);
  assert.equal(running?.detail['virt_type'], warned ? 'qemu' : 'kvm', run.stderr);
});

test('forge-agent: an installer that never ends fails at --timeout and is destroyed', { timeout: 300_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-hang`;
  const run = await runAgent(agentArgs(sys, ['--timeout', '20']), 240_000);
  assert.equal(run.code, 9, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stderr, /INSTALL_FAILED: .*did not finish within 20 s/);
  assert.equal(domainState(sys), 'shut off');
  const failed = (await events(sys)).find((e) => e.type === 'agent_failed');
  assert.equal(failed?.detail['reason'], 'timeout');
});

test('forge-agent: a defined domain of the same name is never replaced without --force', { timeout: 120_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-dup`;
  const xmlFile = join(l.dir, 'dup.xml');
  writeFileSync(xmlFile, `<domain type='qemu'><name>${sys}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>\n`);
  virsh(['define', xmlFile]);
  const before = virsh(['domuuid', sys]).trim();
  const run = await runAgent(agentArgs(sys), 60_000);
  assert.equal(run.code, 5, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stderr, /VIRT_EXISTS: domain .* is already defined; use --force/);
  assert.equal(virsh(['domuuid', sys]).trim(), before, 'the existing domain is untouched');
  assert.ok(!existsSync(join(l.dir, 'disks', `${sys}-disk01.qcow2`)), 'no disk was created');
  const failed = (await events(sys)).find((e) => e.type === 'agent_failed');
  assert.equal(failed?.detail['code'], 'VIRT_EXISTS');

  // --force replaces it: a new definition (new UUID) whose installer is running.
  const forced = await runAgent(agentArgs(sys, ['--force', '--no-wait']), 60_000);
  assert.equal(forced.code, 0, `${forced.stdout}\n${forced.stderr}`);
  assert.match(forced.stderr, /replacing existing domain/);
  assert.notEqual(virsh(['domuuid', sys]).trim(), before);
  assert.equal(domainState(sys), 'running');
  assert.match(virsh(['dumpxml', sys]), /<kernel>/, 'the running instance is the installer');
  assert.doesNotMatch(virsh(['dumpxml', '--inactive', sys]), /<kernel>/, 'the persistent definition boots from disk');
  removeDomain(sys);
});

test('forge-agent --virt-path pool:NAME creates the disk as a libvirt storage volume', { timeout: 120_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-pool`;
  const pool = `${l.tag}-pool`;
  mkdirSync(join(l.dir, 'pool'), { recursive: true });
  virsh(['pool-create-as', pool, 'dir', '--target', join(l.dir, 'pool')]);
  try {
    const run = await runAgent(agentArgs(sys, ['--virt-path', `pool:${pool}`, '--no-wait', '--virt-auto-boot']), 60_000);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(virsh(['dominfo', sys]), /Autostart:\s+enable/, '--virt-auto-boot');
    assert.match(virsh(['vol-list', pool]), new RegExp(`${sys}-disk01\\.qcow2`));
    assert.match(virsh(['dumpxml', '--inactive', sys]), new RegExp(`<source pool='${pool}' volume='${sys}-disk01.qcow2'/>`));
    assert.equal(domainState(sys), 'running');
    removeDomain(sys);
    const again = await runAgent(agentArgs(sys, ['--virt-path', `pool:${pool}`, '--no-wait']), 60_000);
    assert.equal(again.code, 5, 'an existing volume is not overwritten without --force');
    assert.match(again.stderr, /VIRT_EXISTS: volume .* in pool .* already exists/);
  } finally {
    removeDomain(sys);
    virsh(['pool-destroy', pool], { allowFail: true });
  }
});

test('forge-agent: an existing disk is never overwritten without --force', { timeout: 120_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const sys = `${l.tag}-disk`;
  const disk = join(l.dir, 'disks', `${sys}-disk01.qcow2`);
  mkdirSync(join(l.dir, 'disks'), { recursive: true });
  writeFileSync(disk, 'precious data');
  const run = await runAgent(agentArgs(sys), 60_000);
  assert.equal(run.code, 5, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stderr, /VIRT_EXISTS: disk .* already exists; use --force/);
  assert.equal(readFileSync(disk, 'utf8'), 'precious data');
  assert.equal(domainState(sys), '', 'no domain was defined');
});

test('forge-agent --virt-path /dev/...: an existing block device is used, but not when it holds data', { timeout: 120_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined || need(t, { commands: ['losetup'] }) !== undefined) return;
  const sys = `${l.tag}-dev`;
  const backing = join(l.dir, 'loop.img');
  writeFileSync(backing, Buffer.alloc(0));
  spawnSync('truncate', ['-s', '64M', backing]);
  const lo = spawnSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' });
  if (lo.status !== 0) {
    // Some containers have no loop devices: only CI must have them.
    need(t, { files: ['/dev/loop-control (losetup -f failed)'] });
    return;
  }
  const dev = lo.stdout.trim();
  try {
    const fd = openSync(dev, 'r+');
    writeSync(fd, Buffer.from('precious data'), 0, 13, 0);
    closeSync(fd);
    const refused = await runAgent(agentArgs(sys, ['--virt-path', dev, '--no-wait']), 60_000);
    assert.equal(refused.code, 5, `${refused.stdout}\n${refused.stderr}`);
    assert.match(refused.stderr, new RegExp(`VIRT_EXISTS: data on ${dev} already exists`));
    assert.equal(domainState(sys), '', 'nothing was defined');
    const head = Buffer.alloc(13);
    const rfd = openSync(dev, 'r');
    readSync(rfd, head, 0, 13, 0);
    closeSync(rfd);
    assert.equal(head.toString(), 'precious data');

    const zero = openSync(dev, 'r+');
    writeSync(zero, Buffer.alloc(1 << 20), 0, 1 << 20, 0);
    closeSync(zero);
    const used = await runAgent(agentArgs(sys, ['--virt-path', dev, '--no-wait']), 60_000);
    assert.equal(used.code, 0, `${used.stdout}\n${used.stderr}`);
    const xml = virsh(['dumpxml', '--inactive', sys]);
    assert.match(xml, new RegExp(`<disk type='block' device='disk'>[\\s\\S]*<driver name='qemu' type='raw'/>[\\s\\S]*<source dev='${dev}'/>`));
    assert.equal(domainState(sys), 'running');
  } finally {
    removeDomain(sys);
    spawnSync('losetup', ['-d', dev]);
  }
});

test('forge-agent --profile P --virt-name N: a VM from a profile, with a random MAC', { timeout: 120_000 }, async (t) => {
  const l = ready(t);
  if (l === undefined) return;
  const name = `${l.tag}-scratch`;
  l.domains.push(name);
  const run = await runAgent(['--profile', `${l.tag}-hang`, '--virt', '--virt-name', name, '-T', 'qemu', '--no-wait', '--nogfx',
    '--virt-network', l.net.name, '--virt-path', join(l.dir, 'disks'), '--cache-dir', join(l.dir, 'cache')], 60_000);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.equal(domainState(name), 'running');
  const xml = virsh(['dumpxml', '--inactive', name]);
  assert.match(xml, /<mac address='52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}'\/>/);
  assert.match(xml, new RegExp(`<source file='${join(l.dir, 'disks', `${name}-disk01.qcow2`)}'/>`));
  removeDomain(name);
});
