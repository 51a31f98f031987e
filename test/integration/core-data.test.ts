/**
 * `forge export > f.json` / `forge import-data f.json` round trip between two
 * real servers, and `forge check`.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

const servers: ForgeServer[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'forge-core-data-'));
after(async () => {
  for (const s of servers) await s.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test('export / import-data round-trips every object', async () => {
  const a = await startForge();
  servers.push(a);
  const kernel = join(tmp, 'linux');
  writeFileSync(kernel, 'k');
  const run = async (s: ForgeServer, args: string[], input?: string): Promise<string> => {
    const r = await s.cli(args, {}, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await run(a, ['distro', 'add', '--name', 'd', '--kernel', kernel, '--initrd', join(tmp, 'missing-initrd'), '--kernel-options', 'a=1 b']);
  await run(a, ['profile', 'add', '--name', 'p', '--distro', 'd', '--autoinstall-meta', 'x=1', '--name-servers', '1.1.1.1 9.9.9.9']);
  await run(a, ['profile', 'add', '--name', 'kid', '--parent', 'p', '--virt-ram', '2048', '--kernel-options', '!a']);
  await run(a, ['system', 'add', '--name', 's1', '--profile', 'kid', '--mac', 'random', '--ip-address', '10.0.0.5', '--netmask', '24', '--static', 'yes']);
  await run(a, ['system', 'edit', '--name', 's1', '--interface', 'eth1', '--mac', 'random', '--mtu', '9000', '--dns-name', 's1.lab']);
  await run(a, ['system', 'add', '--name', 's2', '--profile', 'p', '--netboot-enabled', 'false', '--comment', 'two words']);
  const exported = await run(a, ['export']);
  const file = join(tmp, 'backup.json');
  writeFileSync(file, exported);

  const b = await startForge();
  servers.push(b);
  assert.match(await run(b, ['import-data', file]), /imported 1 distros, 2 profiles, 2 systems/);
  const again = JSON.parse(await run(b, ['export'])) as Record<string, unknown>;
  const orig = JSON.parse(exported) as Record<string, unknown>;
  for (const k of ['distros', 'profiles', 'systems']) assert.deepEqual(again[k], orig[k], k);
  // the MAC index came along: a lookup by MAC finds s1 on the new server
  const mac = (orig['systems'] as { name: string; interfaces: Record<string, { mac_address: string }> }[])[0]!.interfaces['eth1']!.mac_address;
  assert.deepEqual((await run(b, ['system', 'find', '--mac-address', mac])).trim(), 's1');
  // importing again collides, all or nothing
  const dup = await b.cli(['import-data', file]);
  assert.equal(dup.code, 5);
  assert.match(dup.stderr, /DUPLICATE_NAME/);
  assert.match(await run(b, ['import-data', '--replace', file]), /imported/);
  // a document with a broken reference imports nothing
  const broken = structuredClone(orig) as { distros: unknown[]; profiles: { name: string }[]; systems: { name: string }[] };
  broken.distros = [];
  const c = await startForge();
  servers.push(c);
  const r = await c.cli(['import-data', '-'], {}, { input: JSON.stringify(broken) });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /REFERENCE_MISSING/);
  assert.equal((await run(c, ['profile', 'list'])).trim(), '');
});

test('forge check reports missing kernel files, templates and unreachable server address', async () => {
  const s = servers[0]!;
  const r = await s.cli(['check']);
  assert.equal(r.code, 8, r.stdout + r.stderr);
  assert.match(r.stdout, /distro d \(initrd\): initrd file .*missing-initrd does not exist/);
  assert.doesNotMatch(r.stdout, /distro d \(kernel\)/, 'the kernel exists');
  assert.match(r.stdout, /server is 127\.0\.0\.1/);
  await s.cli(['profile', 'edit', '--name', 'p', '--autoinstall', 'nowhere/none.ks']);
  const r2 = await s.cli(['check', '--json']);
  const probs = (JSON.parse(r2.stdout) as { problems: { object: string; field?: string; message: string }[] }).problems;
  assert.ok(probs.some((p) => p.object === 'profile p' && p.field === 'autoinstall' && /nowhere\/none\.ks/.test(p.message)), JSON.stringify(probs));
});
