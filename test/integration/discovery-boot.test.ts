/**
 * Policy `discover` through a real `forge serve`: it builds the discovery
 * image at start (Debian's linux-image from the test cache, busybox-static,
 * kexec-tools), and an unknown MAC's boot configs over HTTP (iPXE) and TFTP
 * (pxelinux, GRUB) boot that image with forge.url and forge.mac, whose files
 * are served byte for byte on both transports; a known MAC still gets its
 * install. A server that cannot build the image does not start, and says why
 * naming dhcp_unknown.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { need } from '../lib/env.js';
import { guestKernel } from '../lib/guest.js';
import { FORGE_BIN, startForge, type ForgeServer } from '../lib/server.js';
import { freeUdpPort, tftpGet } from '../lib/tftp-client.js';
import { spawnSync } from 'node:child_process';

const UNKNOWN = '52:54:00:5e:00:01';

describe('dhcp_unknown=discover: the discovery image over HTTP and TFTP', () => {
  let srv: ForgeServer | undefined;
  let tftpPort = 0;
  let skip: string | undefined;

  before(async () => {
    for (const c of ['cpio', 'modinfo', 'gzip']) if (spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0) skip = `needs ${c}`;
    if (skip !== undefined) return;
    tftpPort = await freeUdpPort();
    srv = await startForge({
      tftp: true,
      timeoutMs: 180_000,
      args: ['--dhcp-unknown', 'discover', '--discovery-kernel-dir', dirname(dirname(guestKernel().vmlinuz)), '--tftp-listen', '127.0.0.1', '--tftp-port', String(tftpPort)],
    });
    assert.equal((await srv.cli(['distro', 'add', '--name', 'd', '--kernel', '/srv/forge/d/linux', '--initrd', '/srv/forge/d/initrd.gz'])).code, 0);
    assert.equal((await srv.cli(['profile', 'add', '--name', 'p', '--distro', 'd'])).code, 0);
    assert.equal((await srv.cli(['system', 'add', '--name', 'known', '--profile', 'p', '--mac', '52:54:00:5e:00:02'])).code, 0);
  });
  after(async () => {
    await srv?.stop();
  });

  test('unknown MAC: iPXE, pxelinux and GRUB boot the image; its files are the built ones; a known MAC installs', async (t) => {
    if (skip !== undefined) return void need(t, { commands: ['cpio', 'modinfo', 'gzip'] });
    const s = srv!;
    const img = join(s.dataDir, 'discovery');
    assert.ok(existsSync(join(img, 'linux')) && existsSync(join(img, 'initrd.gz')), 'forge serve built the image into DATA_DIR/discovery');
    const ipxe = (await s.api('GET', `/boot/ipxe/${UNKNOWN}`, undefined, { auth: false })).body as string;
    assert.match(ipxe, new RegExp(`^kernel --name kernel ${s.url}/boot/discovery/kernel initrd=initrd console=tty0 console=ttyS0 no_timer_check forge\\.url=${s.url} forge\\.mac=${UNKNOWN} \\|\\| goto retry$`, 'm'));
    assert.match(ipxe, new RegExp(`^initrd --name initrd ${s.url}/boot/discovery/initrd \\|\\| goto retry$`, 'm'));
    const known = (await s.api('GET', '/boot/ipxe/52:54:00:5e:00:02', undefined, { auth: false })).body as string;
    assert.match(known, /\/boot\/distro\/d\/kernel/);
    assert.doesNotMatch(known, /discovery/);

    const k = await fetch(`${s.url}/boot/discovery/kernel`);
    assert.equal(k.status, 200);
    assert.ok(Buffer.from(await k.arrayBuffer()).equals(readFileSync(join(img, 'linux'))), 'HTTP kernel is the built one');
    const i = await fetch(`${s.url}/boot/discovery/initrd`);
    assert.ok(Buffer.from(await i.arrayBuffer()).equals(readFileSync(join(img, 'initrd.gz'))), 'HTTP initrd is the built one');
    assert.equal((await fetch(`${s.url}/boot/discovery/other`)).status, 404);

    const px = await tftpGet(tftpPort, `pxelinux.cfg/01-${UNKNOWN.replace(/:/g, '-')}`);
    assert.equal(px.error, undefined);
    const pxText = px.data.toString('utf8');
    assert.match(pxText, /^ {2}KERNEL discovery\/kernel$/m);
    assert.match(pxText, new RegExp(`^ {2}APPEND initrd=discovery/initrd console=tty0 console=ttyS0 no_timer_check forge\\.url=http://\\S+ forge\\.mac=${UNKNOWN}$`, 'm'));
    const gr = (await tftpGet(tftpPort, `grub/system/${UNKNOWN}`)).data.toString('utf8');
    assert.match(gr, new RegExp(`^ {4}if linux /discovery/kernel console=tty0 console=ttyS0 no_timer_check forge\\.url=http://\\S+ forge\\.mac=${UNKNOWN}; then$`, 'm'));
    const ti = await tftpGet(tftpPort, 'discovery/initrd', { options: { blksize: '1468' }, totalMs: 60_000 });
    assert.equal(ti.error, undefined);
    assert.ok(ti.data.equals(readFileSync(join(img, 'initrd.gz'))), 'TFTP initrd is the built one');
  });

  test("a stored subnet's unknown setting wins over the global discover for machines on it", async (t) => {
    if (skip !== undefined) return void need(t, { commands: ['cpio', 'modinfo', 'gzip'] });
    const s = srv!;
    // The test's requests come from 127.0.0.1: a subnet holding it with unknown=ignore makes them local boots.
    const add = await s.cli(['subnet', 'add', '--name', 'loop', '--cidr', '127.0.0.0/8', '--unknown', 'ignore']);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    try {
      const ipxe = (await s.api('GET', `/boot/ipxe/${UNKNOWN}`, undefined, { auth: false })).body as string;
      assert.match(ipxe, /local boot \(unknown_machine\)/);
      assert.doesNotMatch(ipxe, /discovery/);
      const px = (await tftpGet(tftpPort, `pxelinux.cfg/01-${UNKNOWN.replace(/:/g, '-')}`)).data.toString('utf8');
      assert.match(px, /LOCALBOOT 0/);
    } finally {
      assert.equal((await s.cli(['subnet', 'remove', '--name', 'loop'])).code, 0);
    }
    // Empty again (the subnet gone): the global policy.
    const back = (await s.api('GET', `/boot/ipxe/${UNKNOWN}`, undefined, { auth: false })).body as string;
    assert.match(back, /\/boot\/discovery\/kernel/);
  });

  test('a server that cannot build the image does not start, naming dhcp_unknown and the cause', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'forge-disc-bad-'));
    try {
      const r = spawnSync(process.execPath, [FORGE_BIN, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1', '--http-port', '0', '--tftp-enabled', 'false',
        '--dhcp-unknown', 'discover', '--discovery-kernel-dir', '/nonexistent'], { encoding: 'utf8', timeout: 60_000, env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_'))) });
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /CONFIG_INVALID: dhcp_unknown=discover needs the discovery image, which could not be built: discovery image: no boot\/vmlinuz-VER with lib\/modules\/VER under \/nonexistent/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
