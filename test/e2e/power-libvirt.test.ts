/**
 * The libvirt power driver against a real persistent domain under qemu TCG:
 * the guest (Debian kernel + busybox initramfs) prints its kernel boot_id on
 * the serial console at every boot, so a reboot is a new boot_id, not a
 * guess from timing. virsh domstate is the independent view of the power state.
 */
import { strict as assert } from 'node:assert';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { buildInitramfs, guestKernel } from '../lib/guest.js';
import { domainState, labDir, removeDomain, virsh } from '../lib/agent-lab.js';
import { need } from '../lib/env.js';
import { startForge, type ForgeServer } from '../lib/server.js';

const INIT = `say "boot id $(cat /proc/sys/kernel/random/boot_id)"
while true; do sleep 3600; done`;

async function waitFor<T>(what: string, ms: number, f: () => T | undefined): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function domainXml(name: string, dir: string, log: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>160</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${dir}/vmlinuz</kernel>
    <initrd>${dir}/initrd</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 no_timer_check</cmdline>
  </os>
  <on_reboot>restart</on_reboot>
  <devices>
    <serial type='pty'><log file='${log}' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
`;
}

describe('power: libvirt driver on a real qemu TCG domain', () => {
  let srv: ForgeServer | undefined;
  let dir = '';
  const dom = `forge-pwr-${randomBytes(3).toString('hex')}`;
  const log = `/var/log/libvirt/qemu/${dom}-console.log`;

  const bootIds = (): string[] =>
    existsSync(log) ? [...readFileSync(log, 'utf8').matchAll(/forge-guest: boot id ([0-9a-f-]{36})/g)].map((m) => m[1]!) : [];
  const waitBoots = (n: number): Promise<string[]> =>
    waitFor(`${n} boot(s) of ${dom} on its console`, 300_000, () => {
      const ids = bootIds();
      return ids.length >= n ? ids : undefined;
    });

  after(async () => {
    if (dir === '') return;
    removeDomain(dom);
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(log, { force: true });
  });

  test('poweron, powerstatus, reboot (a new boot), poweroff, reinstall; virsh agrees; events on the timeline', async (t) => {
    if (need(t, { root: true, commands: ['virsh', 'qemu-system-x86_64', 'cpio', 'modinfo'] }) !== undefined) return;
    dir = labDir('forge-pwr');
    copyFileSync(guestKernel().vmlinuz, join(dir, 'vmlinuz'));
    copyFileSync(buildInitramfs({ init: INIT, modules: [] }), join(dir, 'initrd'));
    writeFileSync(join(dir, 'dom.xml'), domainXml(dom, dir, log));
    virsh(['define', join(dir, 'dom.xml')]);
    srv = await startForge();
    const cli = async (args: string[]): Promise<string> => {
      const r = await srv!.cli(args, {}, { timeoutMs: 120_000 });
      assert.equal(r.code, 0, `forge ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    await cli(['distro', 'add', '--name', 'd', '--kernel', '/srv/forge/d/linux', '--initrd', '/srv/forge/d/initrd.gz']);
    await cli(['profile', 'add', '--name', 'p', '--distro', 'd']);
    await cli(['system', 'add', '--name', 'vm1', '--profile', 'p', '--power-type', 'libvirt', '--power-address', 'qemu:///system', '--power-id', dom]);

    assert.equal(await cli(['system', 'powerstatus', '--name', 'vm1']), 'vm1: off');
    assert.equal(domainState(dom), 'shut off');

    assert.equal(await cli(['system', 'poweron', '--name', 'vm1']), 'vm1: power_on');
    assert.equal(domainState(dom), 'running');
    const [first] = await waitBoots(1);
    assert.equal(await cli(['system', 'powerstatus', '--name', 'vm1']), 'vm1: on');

    assert.equal(await cli(['system', 'reboot', '--name', 'vm1']), 'vm1: power_reboot');
    const ids = await waitBoots(2);
    assert.notEqual(ids[1], first, 'the reset booted the kernel again (new boot_id)');

    assert.equal(await cli(['system', 'poweroff', '--name', 'vm1']), 'vm1: power_off');
    assert.equal(domainState(dom), 'shut off');
    assert.equal(await cli(['system', 'powerstatus', '--name', 'vm1']), 'vm1: off');

    await cli(['system', 'edit', '--name', 'vm1', '--netboot-enabled', 'false']);
    // libvirt cannot set a one-shot boot device: netboot on + power cycle (on, as it is off).
    assert.equal(await cli(['system', 'reinstall', '--name', 'vm1']), 'vm1: netboot_enabled, power_reboot');
    await waitBoots(3);
    assert.equal(domainState(dom), 'running');
    const sys = (await srv.api('GET', '/api/v1/systems/vm1')).body as { netboot_enabled: boolean };
    assert.equal(sys.netboot_enabled, true);

    // A domain that does not exist: the error names the driver, the URI, the domain and libvirt's answer.
    await cli(['system', 'add', '--name', 'ghost', '--profile', 'p', '--power-type', 'libvirt', '--power-id', `${dom}-nope`]);
    const r = await srv.cli(['system', 'poweron', '--name', 'ghost']);
    assert.equal(r.code, 9);
    assert.match(r.stderr, new RegExp(`POWER_FAILED: libvirt qemu:///system domain ${dom}-nope: .*failed to get domain`));

    const evs = (await srv.api('GET', '/api/v1/systems/vm1/events')).body as { type: string; source: string }[];
    assert.deepEqual(
      evs.filter((e) => e.source === 'power').map((e) => e.type),
      ['power_on', 'power_reboot', 'power_off', 'reinstall_requested', 'power_reboot'],
    );
  });
});
