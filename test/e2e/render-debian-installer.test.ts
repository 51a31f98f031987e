/**
 * A real installer consumes forge's preseed: the Debian 12 installer
 * (debian-installer-12-netboot-amd64) boots under qemu (TCG) with the kernel
 * command line forge computes for the system (dumpvars kernel_cmdline:
 * auto=true priority=critical url=.../autoinstall/system/NAME ...), fetches
 * the preseed from a real `forge serve`, runs its early_command (the
 * install/start callback) and goes on unattended to the mirror check, which
 * proves d-i parsed the file and found its answers (at priority=critical a
 * missing answer would stop at a question dialog instead).
 *
 * Network: qemu user networking with restrict=on (the guest reaches nothing)
 * and one guestfwd rule, 10.0.2.100:80 -> forge on 127.0.0.1, so all traffic
 * stays on loopback. The mirror check then fails (no Internet): expected.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { need } from '../lib/env.js';
import { startForge, type ForgeServer } from '../lib/server.js';
import { startQemu, type Vm } from '../lib/qemu.js';

const DI = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';

let srv: ForgeServer | undefined;
let vm: Vm | undefined;

after(async () => {
  await vm?.kill();
  await srv?.stop();
});

interface Ev {
  type: string;
}

const CASES = [
  { id: 'dhcp', name: 'di1', mac: '52:54:00:31:00:01', add: [] as string[] },
  // Static: no DHCP at all; d-i must take address, gateway and DNS from forge's kernel command line.
  {
    id: 'static',
    name: 'di2',
    mac: '52:54:00:31:00:02',
    add: ['--ip-address', '10.0.2.15', '--netmask', '255.255.255.0', '--static', 'true', '--gateway', '10.0.2.2', '--name-servers', '10.0.2.3'],
  },
];

for (const c of CASES) {
  test(`the Debian 12 installer (${c.id}) fetches the preseed and runs the install/start callback`, { timeout: 600_000 }, async (t) => {
    if (need(t, { commands: ['qemu-system-x86_64', 'busybox'], files: [`${DI}/linux`, `${DI}/initrd.gz`] }) !== undefined) return;
    await runInstaller(c);
  });
}

async function runInstaller(c: (typeof CASES)[number]): Promise<void> {
  await vm?.kill();
  vm = undefined;
  if (srv === undefined) {
    // Installers reach forge as 10.0.2.100:80 through the guestfwd rule below.
    srv = await startForge({ args: ['--server', '10.0.2.100:80'] });
    const s0 = srv;
    const must0 = async (args: string[]): Promise<void> => {
      const r = await s0.cli(args);
      assert.equal(r.code, 0, `forge ${args.join(' ')}: ${r.stderr}`);
    };
    await must0(['distro', 'add', '--name', 'deb12', '--arch', 'x86_64', '--breed', 'debian', '--os-version', 'bookworm', '--kernel', `${DI}/linux`, '--initrd', `${DI}/initrd.gz`]);
    // lowmem/low: d-i shows a "low memory" note below ~700 MiB; slirp with restrict=on gives no DNS server.
    await must0(['profile', 'add', '--name', 'deb12p', '--distro', 'deb12', '--kernel-options', 'console=ttyS0,115200 no_timer_check lowmem/low=1 netcfg/get_nameservers=10.0.2.3']);
  }
  const s = srv;
  const must = async (args: string[]): Promise<void> => {
    const r = await s.cli(args);
    assert.equal(r.code, 0, `forge ${args.join(' ')}: ${r.stderr}`);
  };
  await must(['system', 'add', '--name', c.name, '--profile', 'deb12p', '--mac', c.mac, '--hostname', `${c.name}.lab.example`, ...c.add]);
  const vars = (await s.api('GET', `/api/v1/systems/${c.name}/blended`)).body as { kernel_cmdline: string };
  assert.match(vars.kernel_cmdline, new RegExp(`^auto=true priority=critical url=http://10\\.0\\.2\\.100:80/i/[0-9a-f]{32}/autoinstall/system/${c.name} hostname=${c.name} domain=lab\\.example interface=auto`));
  if (c.id === 'static') assert.match(vars.kernel_cmdline, /netcfg\/disable_autoconfig=true netcfg\/get_ipaddress=10\.0\.2\.15 netcfg\/get_netmask=255\.255\.255\.0 netcfg\/get_gateway=10\.0\.2\.2/);

  const machine = startQemu({
    kernel: `${DI}/linux`,
    initrd: `${DI}/initrd.gz`,
    append: vars.kernel_cmdline,
    memoryMiB: 512,
    extraArgs: [
      '-netdev', `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 ${s.port}`,
      '-device', `virtio-net-pci,netdev=n0,mac=${c.mac}`,
    ],
  });
  vm = machine;

  // Bounded wait for the events the installer causes (TCG on a shared 2-core machine: minutes).
  const deadline = Date.now() + 480_000;
  let types: string[] = [];
  while (Date.now() < deadline) {
    const r = await s.api('GET', `/api/v1/systems/${c.name}/events`);
    types = (r.body as Ev[]).map((e) => e.type);
    if (types.includes('install_start')) break;
    await new Promise((res) => setTimeout(res, 2000));
  }
  assert.ok(types.includes('autoinstall_served'), `no autoinstall_served; events: ${types.join(', ')}\nserial tail: ${machine.serial().slice(-2000)}`);
  assert.ok(types.includes('install_start'), `no install_start from early_command; events: ${types.join(', ')}\nserial tail: ${machine.serial().slice(-2000)}`);
  assert.ok(types.indexOf('autoinstall_served') < types.indexOf('install_start'));
  // Unattended past the preseed: d-i goes to the mirror check without asking anything.
  const serial = await machine.waitForSerial(/Checking the Debian archive mirror|Downloading Release files|Bad archive mirror/, 180_000);
  assert.doesNotMatch(serial.split('Checking the Debian archive mirror')[0] ?? '', /\[!!\]/, 'd-i stopped at a question before the mirror check');
  if (c.id === 'static') assert.doesNotMatch(serial, /Configuring the network with DHCP/, 'the static system must not use DHCP');
  await machine.kill();
  vm = undefined;
}
