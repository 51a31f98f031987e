/**
 * A two-NIC host, started the way the README says (no --server, no --next-server, the default
 * probe): the server namespace has a management NIC holding the default route and a provisioning
 * bridge with no port yet (NO-CARRIER, its route "linkdown"). forge must start anyway, probe the
 * bridge when a machine appears on it, and answer with its bridge address (never the management
 * one): DHCP server identifier, siaddr, the iPXE script URL, and the URLs inside that script.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { need } from '../lib/env.js';
import { createLan } from '../lib/netns.js';
import { FORGE_BIN } from '../lib/server.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import { defaultDistro, defaultInterface, defaultProfile, defaultSystem } from '../../server/core/defaults.js';
import type { Reply, Step } from './dhcp-pxe-client.js';

const CLIENT = fileURLToPath(new URL('./dhcp-pxe-client.js', import.meta.url));
const MAC = '52:54:00:7e:00:01';

async function waitFor(out: () => string, re: RegExp, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(out())) {
    if (Date.now() > end) throw new Error(`${what}: not seen in ${ms} ms:\n${out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('two-NIC host: started before the bridge has carrier, with the README flags; answers with the bridge address, not the default-route one', async (t) => {
  if (need(t, { root: true, commands: ['ip'] }) !== undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgtopo-'));
  const lan = await createLan('fgtopo');
  try {
    await lan.addUplink({ address: '192.168.77.2', gateway: '192.168.77.1', prefixLen: 24 });
    // A port nobody holds (a VM's tap before qemu opens it): the bridge has no carrier. A bridge
    // with no port at all would report carrier.
    await lan.addTap();
    assert.match(await lan.must('ip', ['-o', 'link', 'show', 'br0']), /NO-CARRIER/, 'premise: no carrier on the bridge');
    const store = new SqliteStore({ file: join(dir, 'forge.db') });
    await store.create('distro', { ...defaultDistro('deb12'), kernel: '/srv/forge/k', initrd: '/srv/forge/i' });
    await store.create('profile', { ...defaultProfile('deb12-base'), distro: 'deb12' });
    await store.create('system', { ...defaultSystem('vm1'), profile: 'deb12-base', interfaces: { eth0: { ...defaultInterface(), mac_address: MAC, ip_address: '10.98.0.21' } } });
    await store.close();
    // The README's managed-mode line (its own data dir; TFTP off: not what this test is about).
    const proc = lan.spawn(process.execPath, [
      FORGE_BIN, 'serve', '--data-dir', dir, '--tftp-enabled', 'false',
      '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200',
      '--dhcp-router', '10.98.0.1', '--dhcp-dns', '10.98.0.1',
    ]);
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out, /forge ready:|exited/, 30_000, 'forge ready');
    assert.match(out, /forge ready:/);
    assert.doesNotMatch(out, /CONFIG_INVALID|ENETUNREACH/);
    assert.doesNotMatch(out, /base URL for installers: http:\/\/(127\.0\.0\.1|192\.168\.77\.2)/);
    // The first VM appears: the bridge gets carrier, forge probes it (3 s default), then serves it.
    const c = await lan.addClient({ mac: MAC });
    await c.must('ip', ['route', 'add', 'default', 'dev', 'eth0']);
    await waitFor(() => out, /serving this link/, 30_000, 'probe of the bridge');
    const step: Step = { mac: MAC, xid: 0x70b0001, to: '255.255.255.255', port: 67, bindPort: 68, listenMs: 3000, type: 1, userClass: 'iPXE', arch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001' };
    const r = await c.exec(process.execPath, [CLIENT, JSON.stringify(step)], { timeoutMs: 20_000 });
    const offers = r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Reply);
    const offer = offers.find((o) => o.type === 2);
    assert.ok(offer, `an offer: ${r.stdout} ${r.stderr}\n${out}`);
    assert.equal(offer.yiaddr, '10.98.0.21');
    assert.equal(offer.serverId, '10.98.0.1');
    assert.equal(offer.file, `http://10.98.0.1:8080/boot/ipxe/${MAC}`);
    // The script iPXE then fetches names the bridge address too (the Host it used).
    await c.must('ip', ['addr', 'add', '10.98.0.21/24', 'dev', 'eth0']);
    const script = await c.must(process.execPath, ['-e', `fetch('http://10.98.0.1:8080/boot/ipxe/${MAC}').then((x) => x.text()).then((t) => process.stdout.write(t))`]);
    assert.match(script, /http:\/\/10\.98\.0\.1:8080\/boot\/distro\/deb12\/kernel/);
    assert.doesNotMatch(script, /192\.168\.77\.2|127\.0\.0\.1/);
    proc.kill('SIGTERM');
  } finally {
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
