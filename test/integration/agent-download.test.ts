/**
 * forge-agent against a real `forge serve` (loopback): the kernel/initrd
 * cache (cold, warm, resumed with Range after an interruption, a corrupt
 * partial file, a wrong digest, a missing file), the API client (distro
 * files, events with and without a token) and `forge-agent --list` and
 * `--display` as real processes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ForgeError } from '../../server/errors.js';
import { HttpForgeApi } from '../../agent/api.js';
import { fetchCached } from '../../agent/download.js';
import { startForge, type ForgeServer } from '../lib/server.js';
import { AGENT_BIN } from '../lib/agent-lab.js';

let srv: ForgeServer;
let dir: string;
let kernel: Buffer;
let initrd: Buffer;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fgag-dl-'));
  kernel = randomBytes(3 * 1024 * 1024 + 17);
  initrd = randomBytes(1024 * 1024 + 3);
  writeFileSync(join(dir, 'vmlinuz'), kernel);
  writeFileSync(join(dir, 'initrd.gz'), initrd);
  srv = await startForge();
  const mk = async (kind: string, body: unknown): Promise<void> => {
    const r = await srv.api('POST', `/api/v1/${kind}`, body);
    assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r.body));
  };
  await mk('distros', { name: 'dl', kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.gz'), breed: 'generic' });
  await mk('profiles', { name: 'dl', distro: 'dl' });
  await mk('systems', { name: 'dlvm', profile: 'dl', interfaces: { eth0: { mac_address: '52:54:00:aa:00:01' } } });
});

after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('api: distro files carry size and sha256 of the real files', async () => {
  const api = new HttpForgeApi(srv.url, srv.token, () => undefined);
  const f = await api.distroFiles('dl');
  assert.equal(f.kernel.size, kernel.length);
  assert.equal(f.kernel.sha256, sha(kernel));
  assert.equal(f.initrd.sha256, sha(initrd));
  assert.match(f.kernel.url, /^http:\/\/127\.0\.0\.1:\d+\/boot\/distro\/dl\/kernel$/);
  await assert.rejects(api.distroFiles('nope'), (e: unknown) => e instanceof ForgeError && e.code === 'NOT_FOUND');
});

test('download: cold fetch, then the cache is reused unchanged', async () => {
  const api = new HttpForgeApi(srv.url, srv.token, () => undefined);
  const f = await api.distroFiles('dl');
  const cache = join(dir, 'cache-cold');
  const ticks: number[] = [];
  const cold = await fetchCached(f.kernel, cache, (done) => ticks.push(done));
  assert.equal(cold.cached, false);
  assert.equal(cold.fetched, kernel.length);
  assert.ok(readFileSync(cold.path).equals(kernel));
  assert.equal(ticks.at(-1), kernel.length, 'progress reaches the full size');
  const warm = await fetchCached(f.kernel, cache);
  assert.equal(warm.cached, true);
  assert.equal(warm.fetched, 0);
  assert.equal(warm.path, cold.path);
  assert.deepEqual(readdirSync(cache), [f.kernel.sha256]);
});

test('download: an interrupted download resumes with Range from where it stopped', async () => {
  const api = new HttpForgeApi(srv.url, srv.token, () => undefined);
  const f = await api.distroFiles('dl');
  const cache = join(dir, 'cache-resume');
  await fetchCached(f.initrd, cache); // creates the dir
  rmSync(join(cache, f.initrd.sha256));
  const have = 700_001;
  writeFileSync(join(cache, `${f.initrd.sha256}.part`), initrd.subarray(0, have));
  const r = await fetchCached(f.initrd, cache);
  assert.equal(r.resumedFrom, have);
  assert.equal(r.fetched, initrd.length - have, 'only the rest crossed the wire');
  assert.ok(readFileSync(r.path).equals(initrd));
  assert.ok(!existsSync(join(cache, `${f.initrd.sha256}.part`)));
});

test('download: a corrupt partial file is detected and fetched again whole', async () => {
  const api = new HttpForgeApi(srv.url, srv.token, () => undefined);
  const f = await api.distroFiles('dl');
  const cache = join(dir, 'cache-corrupt');
  await fetchCached(f.initrd, cache);
  rmSync(join(cache, f.initrd.sha256));
  writeFileSync(join(cache, `${f.initrd.sha256}.part`), randomBytes(500_000));
  const r = await fetchCached(f.initrd, cache);
  assert.equal(r.fetched, initrd.length - 500_000 + initrd.length, 'the resume was checked, rejected, and the file fetched whole');
  assert.ok(readFileSync(r.path).equals(initrd));
});

test('download: a digest mismatch or a missing file is DOWNLOAD_FAILED and leaves nothing behind', async () => {
  const api = new HttpForgeApi(srv.url, srv.token, () => undefined);
  const f = await api.distroFiles('dl');
  const cache = join(dir, 'cache-bad');
  const wrong = { ...f.kernel, sha256: 'f'.repeat(64) };
  await assert.rejects(fetchCached(wrong, cache), (e: unknown) => e instanceof ForgeError && e.code === 'DOWNLOAD_FAILED' && /expected .* sha256 f{64}/.test(e.message));
  assert.deepEqual(readdirSync(cache), []);
  await assert.rejects(fetchCached({ ...f.kernel, url: `${srv.url}/boot/distro/nope/kernel` }, cache), (e: unknown) => e instanceof ForgeError && e.code === 'DOWNLOAD_FAILED' && /HTTP 404/.test(e.message));
});

test('api: events are recorded with the token; without one the agent warns once and carries on', async () => {
  const api = new HttpForgeApi(srv.url, srv.token, () => undefined);
  assert.equal(await api.event('dlvm', 'agent_start', { domain: 'dlvm' }), true);
  const evs = (await srv.api('GET', '/api/v1/systems/dlvm/events')).body as { type: string; source: string }[];
  assert.ok(evs.some((e) => e.type === 'agent_start' && e.source === 'agent'));
  const warnings: string[] = [];
  const anon = new HttpForgeApi(srv.url, undefined, (m) => warnings.push(m));
  assert.equal(await anon.event('dlvm', 'agent_start', {}), false);
  assert.equal(await anon.event('dlvm', 'installer_running', {}), false);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? '', /FORGE_TOKEN/);
});

function agent(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_')));
  const r = spawnSync(process.execPath, [AGENT_BIN, ...args], { env: { ...base, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('forge-agent --list and --display as real processes', () => {
  const list = agent(['--list', 'systems'], { FORGE_SERVER: srv.url });
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout, 'dlvm\n');
  const profiles = agent(['-s', srv.url, '-l', 'profiles']);
  assert.equal(profiles.stdout, 'dl\n');
  const disp = agent(['-s', srv.url, '-y', 'dlvm', '-v', '-D', '-T', 'qemu', '--virt-path', join(dir, 'vms'), '--cache-dir', '/var/cache/forge-agent']);
  assert.equal(disp.code, 0, disp.stderr);
  assert.match(disp.stdout, /qemu-img create -f qcow2 .*\/vms\/dlvm-disk01\.qcow2 8G/);
  assert.match(disp.stdout, new RegExp(`<kernel>/var/cache/forge-agent/${sha(kernel)}</kernel>`));
  assert.match(disp.stdout, /<mac address='52:54:00:aa:00:01'\/>/);
  assert.ok(!existsSync(join(dir, 'vms')), '--display created nothing');
  const missing = agent(['-s', srv.url, '-y', 'nope', '-v', '-D']);
  assert.equal(missing.code, 4);
  assert.match(missing.stderr, /forge-agent: NOT_FOUND: /);
  // libvirt unreachable (a socket that does not exist): VIRT_UNAVAILABLE, exit 9, nothing reported.
  const novirt = agent(['-s', srv.url, '-y', 'dlvm', '-v', '-T', 'qemu', '--no-wait', '--connect', `qemu+unix:///system?socket=${join(dir, 'no-such-socket')}`]);
  assert.equal(novirt.code, 9, novirt.stderr);
  assert.match(novirt.stderr, /VIRT_UNAVAILABLE: cannot connect to libvirt/);
  const down = agent(['-s', 'http://127.0.0.1:1', '-l', 'systems']);
  assert.equal(down.code, 7);
  assert.match(down.stderr, /SERVER_UNAVAILABLE: cannot reach forge/);
});

test('forge-agent without the libvirt binding says what to install (VIRT_UNAVAILABLE)', () => {
  // A copy of the compiled agent outside the package: no node_modules, so @unraid/libvirt cannot load,
  // as on a host where libvirt-dev was missing when npm installed the optional dependency.
  const root = mkdtempSync(join(tmpdir(), 'fgag-nobinding-'));
  try {
    const dist = join(AGENT_BIN, '..', '..');
    cpSync(join(dist, 'agent'), join(root, 'agent'), { recursive: true });
    // The agent imports shared server modules (errors, version, the API client): copy them all.
    cpSync(join(dist, 'server'), join(root, 'server'), { recursive: true });
    writeFileSync(join(root, 'package.json'), '{"type":"module"}\n');
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_') && k !== 'NODE_PATH'));
    const r = spawnSync(process.execPath, [join(root, 'agent', 'main.js'), '-s', srv.url, '-y', 'dlvm', '-v', '-T', 'qemu', '--no-wait'], { env: base, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 9, r.stderr);
    assert.match(r.stderr, /VIRT_UNAVAILABLE: the libvirt binding @unraid\/libvirt is not installed or did not load .*install libvirt-dev \(Debian\) and then `npm install @unraid\/libvirt`/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
