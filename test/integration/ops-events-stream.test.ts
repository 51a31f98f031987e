/**
 * GET /api/v1/events/stream against a real forge serve: a client sees every
 * event in id order as it happens (install callbacks and boot-config fetches
 * made over real HTTP, the way installers and iPXE make them); a client
 * that drops and reconnects with Last-Event-ID gets exactly the events it
 * missed; filters by system glob and type; bad filters name the field;
 * anonymous streams are bounded; `forge system events --follow` prints live.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ForgeEvent } from '../../server/core/model.js';
import { STREAM_LIMITS } from '../../server/api/stream.js';
import { FORGE_BIN, installerUrl, startForge, type ForgeServer } from '../lib/server.js';
import { openStream, type Stream } from '../lib/sse-stream.js';

let forge: ForgeServer;

before(async () => {
  forge = await startForge();
  const ok = async (m: string, p: string, b: unknown): Promise<void> => {
    const r = await forge.api(m, p, b);
    assert.ok(r.status < 300, `${m} ${p}: ${JSON.stringify(r.body)}`);
  };
  await ok('POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'generic' });
  await ok('POST', '/api/v1/profiles', { name: 'p', distro: 'd' });
  for (const [n, mac] of [['web1', '52:54:00:10:00:01'], ['web2', '52:54:00:10:00:02'], ['db1', '52:54:00:10:00:03']]) {
    await ok('POST', '/api/v1/systems', { name: n, profile: 'p', interfaces: { eth0: { mac_address: mac } } });
  }
});
after(async () => forge?.stop());

const open = (query: string, headers: Record<string, string> = {}): Promise<Stream> => openStream(forge.url, query, headers);

/** What an iPXE boot and an installer do over HTTP (boot config, autoinstall, callbacks). */
async function httpBoot(name: string, mac: string): Promise<void> {
  for (const path of [`/boot/ipxe/${mac}`, `/autoinstall/system/${name}`, `/api/v1/systems/${name}/install/start`, `/api/v1/systems/${name}/install/done`]) {
    const r = await fetch(await installerUrl(forge, path));
    await r.text();
    assert.ok(r.status < 400, `${path}: ${r.status}`);
  }
}

async function stored(name: string): Promise<ForgeEvent[]> {
  const r = await forge.api('GET', `/api/v1/systems/${name}/events`);
  return (r.body as ForgeEvent[]).sort((a, b) => a.id - b.id);
}

/**
 * The stored events of `name` once recording has settled: events are written
 * after the HTTP answer (install_done, for one, can record a follow-up), so a
 * single read right after a boot can miss the last. Reads until two reads
 * 300 ms apart agree and `s` has received `stored - skip` events (bounded).
 */
async function settled(name: string, s: Stream, skip = 0): Promise<ForgeEvent[]> {
  const end = Date.now() + 20_000;
  let all = await stored(name);
  for (;;) {
    await s.waitFor(all.length - skip);
    await new Promise((r) => setTimeout(r, 300));
    const again = await stored(name);
    if ((again.length === all.length && s.events.length === all.length - skip) || Date.now() > end) return again;
    all = again;
  }
}

test('a live client sees a boot\'s events in order; a reconnect with Last-Event-ID loses none and repeats none', async () => {
  const live = await open('?system=web1');
  const dropping = await open('?system=web1');
  assert.equal(live.status, 200);
  await httpBoot('web1', '52:54:00:10:00:01');
  const all = await settled('web1', live);
  assert.ok(all.length >= 4, `a boot records events: ${all.map((e) => e.type).join(' ')}`);
  assert.deepEqual(live.events.map((e) => e.id), all.map((e) => e.id), 'every stored event, in id order');
  const seq = live.events.map((e) => e.type);
  for (const [a, b] of [['boot_config_served', 'autoinstall_served'], ['autoinstall_served', 'install_start'], ['install_start', 'install_done']] as const) {
    assert.ok(seq.indexOf(a) >= 0 && seq.indexOf(a) < seq.indexOf(b), `${a} before ${b}: ${seq.join(' ')}`);
  }
  // Drop after the first two, let more happen, resume from the last id seen.
  await dropping.waitFor(2);
  dropping.close();
  const seen = dropping.events.slice(0, 2);
  await httpBoot('web1', '52:54:00:10:00:01');
  const resumed = await open('?system=web1', { 'last-event-id': String(seen[1]!.id) });
  const now = await settled('web1', resumed, 2);
  assert.deepEqual([...seen, ...resumed.events].map((e) => e.id), now.map((e) => e.id), 'nothing lost, nothing twice');
  await live.waitFor(now.length);
  assert.deepEqual(live.events.map((e) => e.id), now.map((e) => e.id));
  // ?since_id= is the same for clients that cannot set headers.
  const since = await open(`?system=web1&since_id=${now.at(-3)!.id}`);
  await since.waitFor(2);
  assert.deepEqual(since.events.map((e) => e.id), now.slice(-2).map((e) => e.id));
  for (const s of [live, resumed, since]) s.close();
});

test('filters: system glob and type list; bad filters name the field', async () => {
  const webs = await open('?system=web*&type=install_*');
  const dbOnly = await open('?system=db1');
  await httpBoot('web2', '52:54:00:10:00:02');
  await httpBoot('db1', '52:54:00:10:00:03');
  await webs.waitFor(2);
  await dbOnly.waitFor((await stored('db1')).length);
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(webs.events.map((e) => `${e.system}:${e.type}`), ['web2:install_start', 'web2:install_done']);
  assert.ok(dbOnly.events.every((e) => e.system === 'db1'));
  webs.close();
  dbOnly.close();
  const bad = await fetch(`${forge.url}/api/v1/events/stream?type=nonsense`);
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { field: string }).field, 'type');
  const badId = await fetch(`${forge.url}/api/v1/events/stream`, { headers: { 'last-event-id': 'x' } });
  assert.equal(badId.status, 400);
  assert.equal(((await badId.json()) as { field: string }).field, 'last-event-id');
});

test('anonymous streams are bounded (then 503 TOO_MANY_STREAMS); the token opens more; closed ones free their slot', async () => {
  const anon: Stream[] = [];
  for (let i = 0; i < STREAM_LIMITS.anonymous; i++) anon.push(await open(''));
  assert.ok(anon.every((s) => s.status === 200));
  const over = await fetch(`${forge.url}/api/v1/events/stream`);
  assert.equal(over.status, 503);
  assert.equal(((await over.json()) as { code: string }).code, 'TOO_MANY_STREAMS');
  assert.equal(over.headers.get('retry-after'), '10');
  const withToken = await open('', { authorization: `Bearer ${forge.token}` });
  assert.equal(withToken.status, 200);
  withToken.close();
  anon.pop()!.close();
  let again: Stream | undefined;
  for (let i = 0; i < 50 && again?.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    again?.close();
    again = await open('');
  }
  assert.equal(again?.status, 200, 'a closed stream frees its slot');
  again!.close();
  for (const s of anon) s.close();
});

test('forge system events --follow prints the history, then new events live', async () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_')));
  const p = spawn(process.execPath, [FORGE_BIN, 'system', 'events', '--name', 'web2', '--follow'], {
    env: { ...env, FORGE_SERVER: forge.url, FORGE_TOKEN: forge.token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const until = async (re: RegExp, count: number): Promise<void> => {
    const end = Date.now() + 20_000;
    while ((out.match(re) ?? []).length < count) {
      if (Date.now() > end) throw new Error(`follow output:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await until(/install_done/g, 1);
    await httpBoot('web2', '52:54:00:10:00:02');
    await until(/install_done/g, 2);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, (await stored('web2')).length, `one line per event:\n${out}`);
  } finally {
    p.kill('SIGINT');
    await new Promise((r) => p.on('close', r));
  }
  assert.equal(p.exitCode, 0, 'Ctrl-C ends --follow cleanly');
});
