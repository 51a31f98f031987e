/**
 * The sequencing of the two-phase install (agent/flow.ts) with fakes of its
 * ports: which libvirt calls happen in which order, which events reach the
 * server, and what each failure leaves behind. The real thing runs in
 * test/e2e/agent-install.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ForgeError } from '../../server/errors.js';
import type { AgentEvent, DistroFiles, ForgeApi } from '../../agent/api.js';
import { lastConsoleLine, PROGRESS_EVERY_MS, progressLine, runInstall, type FlowDeps } from '../../agent/flow.js';
import type { VirtHost } from '../../agent/libvirt.js';
import { parseOptions } from '../../agent/options.js';
import { STATE } from '../../agent/plan.js';

const BLENDED = {
  name: 'vm9',
  distro_name: 'deb12',
  kernel_url: 'http://forge/boot/distro/deb12/kernel',
  initrd_url: 'http://forge/boot/distro/deb12/initrd',
  kernel_cmdline: 'url=http://forge/autoinstall/system/vm9',
  interfaces: { eth0: { mac_address: '52:54:00:00:00:01' } },
  virt_ram: 256,
  virt_file_size: 1,
};
const SHA = 'a'.repeat(64);
const FILES: DistroFiles = {
  kernel: { url: 'http://forge/boot/distro/deb12/kernel', size: 10, sha256: SHA },
  initrd: { url: 'http://forge/boot/distro/deb12/initrd', size: 20, sha256: 'b'.repeat(64) },
};

interface World {
  calls: string[];
  events: { system: string; type: AgentEvent; detail: Record<string, unknown> }[];
  out: string[];
  err: string[];
  /** States the installer domain reports, one per poll; the last repeats. */
  states: (number | undefined)[];
  existing: number | undefined;
  tail: string;
  connected: boolean;
  /** createTransient throws (e.g. libvirt rejects the network). */
  failCreate: boolean;
}

function world(over: Partial<World> = {}): World {
  return { calls: [], events: [], out: [], err: [], states: [STATE.running, STATE.running, STATE.shutoff], existing: undefined, tail: '', connected: false, failCreate: false, ...over };
}

function deps(w: World): FlowDeps {
  const api: ForgeApi = {
    blended: async (kind, name) => {
      w.calls.push(`blended ${kind} ${name}`);
      return { ...BLENDED, name };
    },
    distroFiles: async () => FILES,
    list: async () => [],
    event: async (system, type, detail) => {
      w.events.push({ system, type, detail });
      return true;
    },
  };
  let installing = false;
  let clock = 0;
  const virt: VirtHost = {
    state: async (name) => {
      if (!installing) return w.existing;
      const s = w.states.length > 1 ? w.states.shift() : w.states[0];
      w.calls.push(`state ${name} -> ${String(s)}`);
      return s;
    },
    define: async (xml) => void w.calls.push(`define ${/<kernel>/.test(xml) ? 'with-kernel' : 'disk-boot'}`),
    createTransient: async (xml) => {
      if (w.failCreate) throw new ForgeError('VIRT_FAILED', 'start installer domain: network not found');
      installing = true;
      w.calls.push(`createTransient ${/<on_reboot>destroy/.test(xml) && /<kernel>\/cache\/aaaa/.test(xml) ? 'installer-ok' : 'installer-BAD'}`);
    },
    start: async (name) => void w.calls.push(`start ${name}`),
    destroy: async (name) => void w.calls.push(`destroy ${name}`),
    undefine: async (name) => void w.calls.push(`undefine ${name}`),
    autostart: async (name, on) => void w.calls.push(`autostart ${name} ${on}`),
    virsh: async () => '',
    close: async () => void w.calls.push('close'),
  };
  return {
    api,
    connectVirt: async () => {
      w.connected = true;
      return virt;
    },
    fetchFile: async (f, label) => {
      w.calls.push(`fetch ${label}`);
      return { path: `/cache/${f.sha256.slice(0, 4)}`, cached: false, fetched: f.size, resumedFrom: 0 };
    },
    prepareDisk: async (_t, spec) => {
      w.calls.push('disk');
      return spec;
    },
    removeDisk: async () => void w.calls.push('removeDisk'),
    resolveVirtType: async (req) => ({ type: req === 'kvm' ? 'kvm' : 'qemu', warning: req === 'auto' ? 'WARNING: slow' : undefined, reason: '' }),
    readTail: () => w.tail,
    out: (s) => void w.out.push(s),
    err: (s) => void w.err.push(s),
    sleep: async () => {
      clock += 1000;
    },
    now: () => clock,
    uuid: () => '11111111-2222-4333-8444-555555555555',
    randomMac: () => '52:54:00:99:99:99',
    pollMs: 1000,
  };
}

const opts = (extra: string[]) =>
  parseOptions(['--server', 'http://forge', '--system', 'vm9', '--virt', '-T', 'qemu', ...extra], { env: {}, isTTY: false, isRoot: true, home: '/root' });

test('flow: download, disk, define, transient installer, poll until shutoff, boot the disk', async () => {
  const w = world();
  const r = await runInstall(opts(['--vm-poll']), deps(w));
  assert.equal(r.outcome, 'disk_booted');
  assert.deepEqual(w.calls, [
    'blended system vm9',
    'fetch kernel',
    'fetch initrd',
    'disk',
    'define disk-boot',
    'createTransient installer-ok',
    'state vm9 -> 1',
    'state vm9 -> 1',
    'state vm9 -> 5',
    'start vm9',
    'close',
  ]);
  assert.deepEqual(w.events.map((e) => e.type), ['agent_start', 'installer_running', 'installer_finished', 'disk_boot_started']);
  assert.ok(w.events.every((e) => e.system === 'vm9' && e.detail['domain'] === 'vm9'));
  assert.equal(w.events[2]?.detail['seconds'], 2);
});

test('flow: --no-wait returns once the installer runs; --virt-auto-boot sets autostart', async () => {
  const w = world();
  const r = await runInstall(opts(['--no-wait', '--virt-auto-boot']), deps(w));
  assert.equal(r.outcome, 'installer_started');
  assert.ok(w.calls.includes('autostart vm9 true'));
  assert.ok(!w.calls.includes('start vm9'));
  assert.deepEqual(w.events.map((e) => e.type), ['agent_start', 'installer_running']);
  assert.match(w.out.join('\n'), /virsh start vm9/);
});

test('flow: an existing domain is refused without --force, replaced with it', async () => {
  const w = world({ existing: STATE.shutoff });
  await assert.rejects(runInstall(opts(['--vm-poll']), deps(w)), (e: unknown) => e instanceof ForgeError && e.code === 'VIRT_EXISTS');
  assert.ok(!w.calls.some((c) => c.startsWith('define') || c.startsWith('fetch') || c === 'disk'), w.calls.join(', '));
  assert.deepEqual(w.events.map((e) => e.type), ['agent_start', 'agent_failed']);
  assert.equal(w.events[1]?.detail['code'], 'VIRT_EXISTS');
  assert.equal(w.calls.at(-1), 'close', 'the connection is closed on failure too');

  const f = world({ existing: STATE.running });
  await runInstall(opts(['--vm-poll', '--force']), deps(f));
  assert.deepEqual(f.calls.slice(1, 3), ['destroy vm9', 'undefine vm9']);
  assert.match(f.err.join('\n'), /replacing existing domain vm9/);
});

test('flow: a timeout destroys the installer and reports INSTALL_FAILED with the console tail', async () => {
  const w = world({ states: [STATE.running], tail: 'last words of the installer\n' });
  const o = opts(['--vm-poll', '--timeout', '5']);
  await assert.rejects(runInstall(o, deps(w)), (e: unknown) => {
    assert.ok(e instanceof ForgeError);
    assert.equal(e.code, 'INSTALL_FAILED');
    assert.equal(e.exit, 9);
    assert.match(e.message, /did not finish within 5 s/);
    assert.equal((e.details as { console_tail: string }).console_tail, 'last words of the installer\n');
    return true;
  });
  assert.ok(w.calls.includes('destroy vm9'));
  assert.ok(!w.calls.includes('start vm9'), 'a failed install never boots the disk');
  const failed = w.events.find((e) => e.type === 'agent_failed');
  assert.equal(failed?.detail['reason'], 'timeout');
  assert.equal(failed?.detail['console_tail'], 'last words of the installer\n');
});

test('flow: --display prints the actions and both XML documents and touches nothing', async () => {
  const w = world();
  const r = await runInstall(opts(['--display', '--virt-path', 'vg0']), deps(w));
  assert.equal(r.outcome, 'displayed');
  assert.equal(w.connected, false, 'libvirt is not even opened');
  assert.deepEqual(w.events, [], 'nothing is reported');
  const text = w.out.join('\n');
  assert.match(text, /lvcreate -y -n vm9-disk01 -L 1G vg0/);
  assert.match(text, /# persistent domain\n<domain type='qemu'>/);
  assert.match(text, /# installer domain \(transient\)\n<domain/);
  assert.match(text, /<kernel>\/var\/cache\/forge-agent\/aaaaaaaa/);
});

test('flow: the auto virt type warning reaches the operator', async () => {
  const w = world();
  const o = parseOptions(['--server', 'http://forge', '--system', 'vm9', '--virt', '--vm-poll'], { env: {}, isTTY: false, isRoot: true, home: '/root' });
  await runInstall(o, deps(w));
  assert.ok(w.err.includes('WARNING: slow'));
});

test('flow: a profile install reports no events (no system record) and gets a random MAC', async () => {
  const w = world();
  const o = parseOptions(['--server', 'http://forge', '--profile', 'web', '--virt', '-V', 'scratch1', '-T', 'qemu', '--display'], { env: {}, isTTY: false, isRoot: true, home: '/root' });
  await runInstall(o, deps(w));
  assert.equal(w.calls[0], 'blended profile web');
  assert.match(w.out.join('\n'), /<name>scratch1<\/name>[\s\S]*<mac address='52:54:00:99:99:99'\/>/);
  assert.deepEqual(w.events, []);
});

test('flow: a failure before the installer starts undoes the definition and the new disk', async () => {
  const w = world({ failCreate: true });
  await assert.rejects(runInstall(opts(['--vm-poll']), deps(w)), (e: unknown) => e instanceof ForgeError && e.code === 'VIRT_FAILED');
  assert.deepEqual(w.calls.slice(-4), ['define disk-boot', 'undefine vm9', 'removeDisk', 'close']);
  assert.equal(w.events.at(-1)?.type, 'agent_failed');
  // a failed *install* keeps domain and disk for a post-mortem
  const t = world({ states: [STATE.running] });
  await assert.rejects(runInstall(opts(['--vm-poll', '--timeout', '2']), deps(t)));
  assert.ok(!t.calls.includes('undefine vm9') && !t.calls.includes('removeDisk'), t.calls.join(', '));
});

test('flow: while the installer runs, --vm-poll prints the stage forge saw, the elapsed time and the last console line', async () => {
  const running = Array.from({ length: 40 }, () => STATE.running);
  const w = world({ states: [...running, STATE.shutoff], tail: 'Loading\r\n\x1b[1mRetrieving file 3 of 9\x1b[0m\r\n' });
  const d = deps(w);
  d.api.lastEvent = async () => ({ type: 'install_start', time: new Date(5000).toISOString() });
  await runInstall(opts(['--vm-poll']), d);
  const progress = w.err.filter((l) => l.startsWith('vm9: installing'));
  // 40 one-second polls: a line at 15 s and at 30 s (the start has its own line).
  assert.equal(progress.length, Math.floor(40_000 / PROGRESS_EVERY_MS), w.err.join('\n'));
  assert.equal(progress[0], 'vm9: installing 15s; forge saw install_start 10s ago; console: Retrieving file 3 of 9');
});

test('progress line: no event yet, long console lines cut, control characters dropped', () => {
  assert.equal(progressLine('vm1', 65_000, undefined, 0, ''), 'vm1: installing 1m05s; forge saw no event from the installer yet');
  assert.equal(lastConsoleLine(`a\n${'x'.repeat(150)}\n\n`).length, 100);
  assert.equal(lastConsoleLine('ok\x07\x1b[2K done\n'), 'ok done');
});
