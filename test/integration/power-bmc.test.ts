/**
 * Power control through real BMC protocols, checked with the other side's
 * own clients: IPMI 2.0 lanplus against OpenIPMI's ipmi_sim (ipmitool reads
 * the chassis back), Redfish over HTTPS with a self-signed certificate
 * (redfishtool reads the system back). Each BMC starts and stops a real qemu
 * process, so "on" means a machine process exists.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { ipmiSim, redfishService } from '../lib/bmc-sim.js';
import type { IpmiSim, RedfishService } from '../lib/bmc-sim.js';
import { hasCommand, inCI } from '../lib/env.js';
import { startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

const TOOLS = ['ipmi_sim', 'ipmitool', 'redfishtool', 'openssl', 'qemu-system-x86_64'];
const missing = TOOLS.filter((c) => !hasCommand(c));
if (missing.length > 0 && inCI()) throw new Error(`CI=true and power tests cannot run: missing ${missing.join(', ')}`);
const skip = missing.length > 0 ? `needs ${missing.join(', ')} (apt-get install openipmi ipmitool redfishtool qemu-system-x86)` : false;

interface Ev {
  type: string;
  source: string;
  detail: Record<string, unknown>;
}

describe('power: IPMI (ipmi_sim) and Redfish (HTTPS, self-signed) with independent clients', { skip }, () => {
  let srv: ForgeServer;
  let bmc: IpmiSim;
  let rf: RedfishService;

  before(async () => {
    [srv, bmc, rf] = await Promise.all([startForge(), ipmiSim(), redfishService()]);
    await srv.cli(['distro', 'add', '--name', 'd', '--kernel', '/srv/forge/d/linux', '--initrd', '/srv/forge/d/initrd.gz']);
    await srv.cli(['profile', 'add', '--name', 'p', '--distro', 'd']);
  });
  after(async () => {
    await Promise.all([srv?.stop(), bmc?.stop(), rf?.stop()]);
  });

  const events = async (name: string): Promise<Ev[]> => (await srv.api('GET', `/api/v1/systems/${name}/events`)).body as Ev[];

  test('IPMI: poweron, powerstatus, reboot, poweroff, reinstall (bootdev pxe) as ipmitool sees them', async () => {
    const add = await srv.cli([
      'system', 'add', '--name', 'bmc1', '--profile', 'p', '--mac', '52:54:00:aa:00:01', '--power-type', 'ipmi',
      '--power-address', `${bmc.host}:${bmc.port}`, '--power-user', bmc.user, '--power-pass', bmc.pass,
    ]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(bmc.ipmitool(['chassis', 'power', 'status']), /is off/);

    let r = await srv.cli(['system', 'poweron', '--name', 'bmc1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(bmc.ipmitool(['chassis', 'power', 'status']), /Chassis Power is on/);
    assert.ok(bmc.machine.running(), 'the qemu process behind the BMC runs');

    r = await srv.cli(['system', 'powerstatus', '--name', 'bmc1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'bmc1: on');

    const pidBefore = bmc.machine.pid();
    r = await srv.cli(['system', 'reboot', '--name', 'bmc1']);
    assert.equal(r.code, 0, r.stderr);
    // Power cycle: ipmi_sim powers off, then on again after its 1 s timer (lanserv/bmc_chassis.c).
    let pidAfter: number | undefined;
    for (let i = 0; i < 100 && (pidAfter === undefined || pidAfter === pidBefore); i++) {
      await new Promise((res) => setTimeout(res, 200));
      pidAfter = bmc.machine.pid();
    }
    assert.ok(pidAfter !== undefined && pidAfter !== pidBefore, `a new qemu process after the cycle (${pidBefore} -> ${pidAfter})`);

    r = await srv.cli(['system', 'poweroff', '--name', 'bmc1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(bmc.ipmitool(['chassis', 'power', 'status']), /Chassis Power is off/);
    assert.equal(bmc.machine.running(), false);

    await srv.cli(['system', 'edit', '--name', 'bmc1', '--netboot-enabled', 'false']);
    r = await srv.cli(['system', 'reinstall', '--name', 'bmc1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'bmc1: netboot_enabled, pxe_next_boot, power_reboot');
    assert.match(bmc.ipmitool(['chassis', 'bootparam', 'get', '5']), /Force PXE/);
    assert.equal(bmc.bootDevice(), 'pxe');
    assert.match(bmc.ipmitool(['chassis', 'power', 'status']), /Chassis Power is on/, 'off machine powered on by reinstall');
    const sys = (await srv.api('GET', '/api/v1/systems/bmc1')).body as { netboot_enabled: boolean };
    assert.equal(sys.netboot_enabled, true);

    const types = (await events('bmc1')).filter((e) => e.source === 'power').map((e) => e.type);
    assert.deepEqual(types, ['power_on', 'power_reboot', 'power_off', 'reinstall_requested', 'pxe_next_boot', 'power_reboot']);
  });

  test('IPMI: a wrong password fails naming driver, address and the BMC answer; the password is nowhere', async () => {
    await srv.cli([
      'system', 'add', '--name', 'bmc-bad', '--profile', 'p', '--power-type', 'ipmi', '--power-address', `${bmc.host}:${bmc.port}`,
      '--power-user', bmc.user, '--power-pass', 'wrong-password-123',
    ]);
    const r = await srv.cli(['system', 'poweron', '--name', 'bmc-bad']);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /POWER_FAILED/);
    assert.match(r.stderr, new RegExp(`ipmi 127\\.0\\.0\\.1:${bmc.port}`));
    assert.match(r.stderr, /RAKP|session|unauthorized|password/i, 'ipmitool/BMC answer included');
    assert.doesNotMatch(r.stderr + srv.output(), /wrong-password-123/);
    const ev = (await events('bmc-bad')).find((e) => e.type === 'power_failed');
    assert.ok(ev !== undefined, 'power_failed on the timeline');
    assert.doesNotMatch(JSON.stringify(ev), /wrong-password-123/);
    assert.equal(bmc.machine.running(), true, 'the earlier reinstall left it on; nothing changed');
  });

  test('power_pass is masked in anonymous reads, shown with the token, absent from dumpvars', async () => {
    const anon = await srv.api('GET', '/api/v1/systems/bmc1', undefined, { auth: false });
    assert.equal((anon.body as { power_pass: string }).power_pass, '********');
    const list = await srv.api('GET', '/api/v1/systems', undefined, { auth: false });
    assert.doesNotMatch(JSON.stringify(list.body), new RegExp(bmc.pass));
    const authed = await srv.api('GET', '/api/v1/systems/bmc1');
    assert.equal((authed.body as { power_pass: string }).power_pass, bmc.pass);
    const blended = await srv.api('GET', '/api/v1/systems/bmc1/blended', undefined, { auth: false });
    assert.equal('power_pass' in (blended.body as object), false);
    const filter = await srv.api('GET', `/api/v1/systems?power_pass=${bmc.pass}`, undefined, { auth: false });
    assert.equal(filter.status, 400, 'no guessing a secret through a filter');
    const noauth = await srv.api('POST', '/api/v1/systems/bmc1/power', { action: 'status' }, { auth: false });
    assert.equal(noauth.status, 401);
  });

  test('Redfish over HTTPS: a self-signed BMC is refused without power_ca, then driven with it; redfishtool agrees', async () => {
    const add = await srv.cli([
      'system', 'add', '--name', 'rf1', '--profile', 'p', '--power-type', 'redfish', '--power-address', rf.url,
      '--power-user', rf.user, '--power-pass', rf.pass,
    ]);
    assert.equal(add.code, 0, add.stderr);
    let r = await srv.cli(['system', 'poweron', '--name', 'rf1']);
    assert.equal(r.code, 9, 'TLS verification is on by default');
    assert.match(r.stderr, new RegExp(`redfish https://127\\.0\\.0\\.1:${rf.port}`));
    assert.match(r.stderr, /SELF_SIGNED|self.signed/i);
    assert.match(r.stderr, /power_ca/);
    assert.equal(rf.machine.running(), false);

    await srv.cli(['system', 'edit', '--name', 'rf1', '--power-ca', rf.certFile]);
    r = await srv.cli(['system', 'poweron', '--name', 'rf1']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(rf.machine.running());
    assert.match(await rf.redfishtool(['Systems', '-1', 'get', '-P', 'PowerState']), /"PowerState":\s*"On"/);

    r = await srv.cli(['system', 'powerstatus', '--name', 'rf1']);
    assert.equal(r.stdout.trim(), 'rf1: on');

    r = await srv.cli(['system', 'reinstall', '--name', 'rf1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'rf1: netboot_enabled, pxe_next_boot, power_reboot');
    const boot = JSON.parse(await rf.redfishtool(['Systems', '-1', 'get', '-P', 'Boot'])) as { Boot: Record<string, string> };
    assert.equal(boot.Boot['BootSourceOverrideTarget'], 'Pxe');
    assert.equal(boot.Boot['BootSourceOverrideEnabled'], 'Once');
    assert.ok(rf.requests.some((q) => q.method === 'POST' && q.path.endsWith('/Actions/ComputerSystem.Reset')));

    r = await srv.cli(['system', 'poweroff', '--name', 'rf1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await rf.redfishtool(['Systems', '-1', 'get', '-P', 'PowerState']), /"PowerState":\s*"Off"/);

    // A wrong password: the BMC's own error message comes back.
    await srv.cli(['system', 'edit', '--name', 'rf1', '--power-pass', 'nope-nope']);
    r = await srv.cli(['system', 'poweron', '--name', 'rf1']);
    assert.equal(r.code, 9);
    assert.match(r.stderr, /HTTP 401/);
    assert.match(r.stderr, /Authentication failed: wrong user name or password/);
    assert.doesNotMatch(r.stderr + srv.output(), /nope-nope/);
    assert.equal(rf.machine.running(), false);
    assert.ok(readFileSync(rf.certFile, 'utf8').includes('BEGIN CERTIFICATE'));
  });

  test('bulk: a glob acts on every match with a concurrency limit; one failing system does not stop the others', async () => {
    await srv.cli(['system', 'edit', '--name', 'rf1', '--power-pass', rf.pass]);
    await srv.cli(['system', 'copy', '--name', 'rf1', '--newname', 'rf2']);
    await srv.cli(['system', 'add', '--name', 'rf3', '--profile', 'p']); // power_type none
    const r = await srv.cli(['system', 'powerstatus', '--name', 'rf*', '--concurrency', '2', '--json']);
    assert.equal(r.code, 9, 'rf3 has no power driver');
    const results = JSON.parse(r.stdout) as { name: string; ok: boolean; state?: string; error?: { code: string } }[];
    assert.deepEqual(results.map((x) => [x.name, x.ok, x.state ?? x.error?.code]), [
      ['rf1', true, 'off'],
      ['rf2', true, 'off'],
      ['rf3', false, 'POWER_NOT_CONFIGURED'],
    ]);
    const bad = await srv.api('POST', '/api/v1/power', { name: 'rf*', action: 'status', concurrency: 0 });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { field: string }).field, 'concurrency');
    const none = await srv.api('POST', '/api/v1/power', { name: 'zz*', action: 'on' });
    assert.equal(none.status, 404);
  });

  test('validation names the field', async () => {
    const cases: [string[], string][] = [
      [['--power-type', 'hmc'], 'power_type'],
      [['--power-type', 'ipmi'], 'power_address'],
      [['--power-type', 'ipmi', '--power-address', 'bmc host;rm'], 'power_address'],
      [['--power-type', 'libvirt'], 'power_id'],
      [['--power-type', 'libvirt', '--power-id', 'd', '--power-address', 'not a uri'], 'power_address'],
      [['--power-type', 'redfish', '--power-address', 'ftp://x'], 'power_address'],
      [['--power-type', 'redfish', '--power-address', 'https://x', '--power-ca', 'relative.pem'], 'power_ca'],
    ];
    for (const [flags, field] of cases) {
      const r = await srv.api('POST', '/api/v1/systems', {
        name: 'v1',
        profile: 'p',
        ...Object.fromEntries(flags.reduce<[string, string][]>((acc, f, i) => (i % 2 === 0 ? [...acc, [f.slice(2).replace(/-/g, '_'), flags[i + 1]!]] : acc), [])),
      });
      assert.equal(r.status, 400, `${flags.join(' ')}: ${JSON.stringify(r.body)}`);
      assert.equal((r.body as { field: string }).field, field, flags.join(' '));
    }
  });
});
