/**
 * A real cloud-init consumes forge's NoCloud seed end to end: a Debian 12
 * image built in the test from Debian packages (test/lib/cloud-image.ts:
 * mmdebstrap with cloud-init, linux-image-amd64, systemd, openssh-server;
 * cached under /var/cache/forge-test) boots under qemu TCG by direct kernel
 * boot with `ds=nocloud-net;s=<cloud_init_url>` (the seed URL forge puts in
 * the system's variables). cloud-init fetches meta-data, user-data and
 * vendor-data from a real `forge serve`, sets the hostname and root's ssh
 * key from forge's user-data, and phones home to forge's cloud-init/done
 * callback. The test asserts the event timeline (seed files served, then
 * cloud_init_done carrying the served instance-id and hostname) and logs in
 * with the key over ssh to read the hostname back.
 *
 * Network: qemu user networking with restrict=on (the guest reaches
 * nothing else), guestfwd 10.0.2.100:80 -> forge on 127.0.0.1, and one
 * hostfwd from 127.0.0.1 to the guest's sshd: all traffic stays on loopback.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { need } from '../lib/env.js';
import { installerUrl, startForge, waitForEvent, type ForgeServer, type TimelineEvent } from '../lib/server.js';
import { startQemu, type Vm } from '../lib/qemu.js';
import { cloudImage, overlay } from '../lib/cloud-image.js';

let srv: ForgeServer | undefined;
let vm: Vm | undefined;
const work = mkdtempSync(join(tmpdir(), 'forge-cloudinit-'));

after(async () => {
  await vm?.kill();
  await srv?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

test('a real cloud-init (Debian 12 image under qemu) takes hostname and ssh key from forge and phones home', { timeout: 3_000_000 }, async (t) => {
  if (need(t, { root: true, commands: ['qemu-system-x86_64', 'qemu-img', 'mmdebstrap', 'mkfs.ext4', 'busybox', 'ssh', 'ssh-keygen'] }) !== undefined) return;
  const img = cloudImage((line) => t.diagnostic(line));

  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forge-e2e', '-f', join(work, 'id')]);
  const pub = readFileSync(join(work, 'id.pub'), 'utf8').trim();

  // Guests reach forge as 10.0.2.100:80 through the guestfwd rule below.
  srv = await startForge({ args: ['--server', '10.0.2.100:80'] });
  const s = srv;
  const must = async (args: string[]): Promise<void> => {
    const r = await s.cli(args);
    assert.equal(r.code, 0, `forge ${args.join(' ')}: ${r.stderr}`);
  };
  await must(['distro', 'add', '--name', 'deb12cloud', '--arch', 'x86_64', '--breed', 'debian', '--os-version', 'bookworm', '--kernel', img.kernel, '--initrd', img.initrd]);
  await must(['profile', 'add', '--name', 'cloud', '--distro', 'deb12cloud', '--autoinstall', 'cloud-init/user-data.yaml', '--autoinstall-meta', `ssh_authorized_keys="${pub}"`]);
  const mac = '52:54:00:41:00:01';
  await must(['system', 'add', '--name', 'ci1', '--profile', 'cloud', '--mac', mac, '--hostname', 'ci1.lab.example']);
  const vars = (await s.api('GET', '/api/v1/systems/ci1/blended')).body as { cloud_init_url: string };
  assert.match(vars.cloud_init_url, /^http:\/\/10\.0\.2\.100:80\/i\/[0-9a-f]{32}\/cloud-init\/system\/ci1\/$/, 'the seed URL carries the install token');

  const sshPort = await freePort();
  const machine = startQemu({
    kernel: img.kernel,
    initrd: img.initrd,
    disk: overlay(img, join(work, 'ci1.qcow2')),
    append: `root=/dev/vda rw console=ttyS0,115200 no_timer_check ds=nocloud-net;s=${vars.cloud_init_url}`,
    memoryMiB: 1024,
    extraArgs: [
      '-netdev', `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 ${s.port},hostfwd=tcp:127.0.0.1:${sshPort}-:22`,
      '-device', `virtio-net-pci,netdev=n0,mac=${mac}`,
    ],
  });
  vm = machine;

  // TCG on a shared 2-core machine: kernel, systemd and cloud-init's four stages take minutes.
  let evs: TimelineEvent[] = [];
  try {
    evs = await waitForEvent(s, 'ci1', 'cloud_init_done', 1, 1_500_000);
  } catch (e) {
    assert.fail(`${e instanceof Error ? e.message : String(e)}\nserial tail:\n${machine.serial().slice(-4000)}`);
  }
  const served = evs.filter((e) => e.type === 'autoinstall_served').map((e) => String(e.detail['file']));
  for (const f of ['meta-data', 'user-data']) assert.ok(served.includes(f), `cloud-init never fetched ${f}; served: ${served.join(', ')}`);
  const idx = (pred: (e: (typeof evs)[number]) => boolean): number => evs.findIndex(pred);
  assert.ok(idx((e) => e.detail['file'] === 'user-data') < idx((e) => e.type === 'cloud_init_done'), 'user-data served before cloud-init phoned home');
  const done = evs.find((e) => e.type === 'cloud_init_done')!;
  const meta = parse(await (await fetch(await installerUrl(s, '/cloud-init/system/ci1/meta-data'))).text()) as Record<string, string>;
  assert.equal(done.detail['instance_id'], meta['instance-id'], 'phone_home reports the instance-id forge served');
  assert.equal(done.detail['hostname'], 'ci1', 'cloud-init set the hostname from forge');

  // Log in as root with the key forge's user-data installed and read the hostname back.
  let out = '';
  for (let i = 0; i < 60 && out === ''; i++) {
    const r = spawnSync('ssh', ['-i', join(work, 'id'), '-p', String(sshPort), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', 'root@127.0.0.1', 'hostname; cat /root/.ssh/authorized_keys'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) out = r.stdout;
    else await new Promise((res) => setTimeout(res, 5000));
  }
  assert.notEqual(out, '', `ssh with forge's key never succeeded\nserial tail:\n${machine.serial().slice(-3000)}`);
  assert.equal(out.split('\n')[0], 'ci1');
  assert.match(out, new RegExp(pub.split(' ')[1]!.replace(/[+/]/g, (c) => `\\${c}`)));
  await machine.kill();
  vm = undefined;
});
