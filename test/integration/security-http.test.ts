/**
 * Bounded resources on the HTTP side, against a real `forge serve`:
 * anonymous bodies are never buffered (RSS measured from /proc), per-route
 * limits after authentication, field length limits naming the field, names
 * `.`/`..`, deep JSON and bad percent-encoding answered with a 400.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';

let srv: ForgeServer;
before(async () => {
  srv = await startForge();
  const d = await srv.api('POST', '/api/v1/distros', { name: 'hd', breed: 'debian', kernel: 'http://mirror/linux', initrd: 'http://mirror/initrd.gz' });
  assert.equal(d.status, 201, JSON.stringify(d.body));
  const p = await srv.api('POST', '/api/v1/profiles', { name: 'hp', distro: 'hd' });
  assert.equal(p.status, 201, JSON.stringify(p.body));
  const s = await srv.api('POST', '/api/v1/systems', { name: 'hs', profile: 'hp' });
  assert.equal(s.status, 201, JSON.stringify(s.body));
});
after(async () => {
  await srv?.stop();
});

type Obj = Record<string, unknown>;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m !== null, 'VmRSS in /proc/PID/status');
  return Number(m[1]);
}

/** Stream `mb` MiB of JSON-looking bytes to path without a token; resolves with the status (or the socket error). */
function bigAnonymousPost(url: string, path: string, mb: number): Promise<string> {
  return new Promise((resolve) => {
    const u = new URL(path, url);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(mb * 1024 * 1024) } });
    let done = false;
    const finish = (s: string): void => {
      if (!done) {
        done = true;
        resolve(s);
      }
    };
    req.on('response', (res) => {
      res.resume();
      finish(String(res.statusCode));
    });
    req.on('error', (e) => finish(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    chunk[0] = 0x5b; // '['
    let sent = 0;
    const pump = (): void => {
      while (sent < mb && !done) {
        sent++;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!done) req.end();
    };
    pump();
  });
}

test('four parallel anonymous 200 MB POSTs: each refused, server RSS grows by less than 50 MB', async () => {
  const pid = srv.proc.pid!;
  const before = rssKiB(pid);
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssKiB(pid));
  }, 20);
  const results = await Promise.all([
    bigAnonymousPost(srv.url, '/api/v1/systems', 200),
    bigAnonymousPost(srv.url, '/api/v1/systems/bulk', 200),
    bigAnonymousPost(srv.url, '/api/v1/import', 200),
    bigAnonymousPost(srv.url, '/api/v1/systems/hs/events', 200),
  ]);
  clearInterval(sampler);
  peak = Math.max(peak, rssKiB(pid));
  for (const r of results) assert.ok(r === '401' || r.startsWith('error'), `refused without reading the body: ${r}`);
  assert.ok(results.includes('401'), `at least one client saw the 401 before its socket closed: ${results.join(', ')}`);
  const grownMiB = (peak - before) / 1024;
  assert.ok(grownMiB < 50, `RSS grew by ${grownMiB.toFixed(1)} MiB (from ${before} kB to a peak of ${peak} kB)`);
  const h = await srv.api('GET', '/api/v1/health', undefined, { auth: false });
  assert.equal(h.status, 200, 'server still answers');
});

test('with the token: a 2 MB body is too large for one object, fine for bulk', async () => {
  const big = 'x'.repeat(2 * 1024 * 1024);
  const one = await srv.api('POST', '/api/v1/systems', undefined, { raw: JSON.stringify({ name: 'big', profile: 'hp', comment: big }) });
  assert.equal(one.status, 413);
  assert.equal((one.body as Obj)['code'], 'PAYLOAD_TOO_LARGE');
  assert.match(String((one.body as Obj)['message']), /at most 1048576 bytes/);
  const many = Array.from({ length: 8000 }, (_, i) => ({ name: `bulk-${i}`, profile: 'hp', comment: 'y'.repeat(200) }));
  assert.ok(JSON.stringify(many).length > 1024 * 1024);
  const bulk = await srv.api('POST', '/api/v1/systems/bulk', many);
  assert.equal(bulk.status, 201, JSON.stringify(bulk.body).slice(0, 300));
});

test('field length limits name the field; a 50 MB-style huge value is refused', async () => {
  const r = await srv.api('PATCH', '/api/v1/systems/hs', { autoinstall_meta: { root_password_hash: 'z'.repeat(70_000) } });
  assert.equal(r.status, 400);
  assert.equal((r.body as Obj)['field'], 'autoinstall_meta.root_password_hash');
  assert.match(String((r.body as Obj)['message']), /at most 65536 characters/);
  const c = await srv.api('PATCH', '/api/v1/systems/hs', { comment: 'c'.repeat(5000) });
  assert.equal(c.status, 400);
  assert.equal((c.body as Obj)['field'], 'comment');
  const k = await srv.api('PATCH', '/api/v1/distros/hd', { kernel: '/srv/forge/' + 'k'.repeat(5000) });
  assert.equal(k.status, 400);
  assert.equal((k.body as Obj)['field'], 'kernel');
  const many = Object.fromEntries(Array.from({ length: 1100 }, (_, i) => [`k${i}`, 'v']));
  const m = await srv.api('PATCH', '/api/v1/profiles/hp', { kernel_options: many });
  assert.equal(m.status, 400);
  assert.equal((m.body as Obj)['field'], 'kernel_options');
  const ok = await srv.api('GET', '/api/v1/systems/hs', undefined, { auth: false });
  assert.equal(((ok.body as Obj)['autoinstall_meta'] as Obj)['root_password_hash'], undefined, 'nothing stored');
});

test('names . and .. are refused on create and rename', async () => {
  for (const name of ['.', '..']) {
    const r = await srv.api('POST', '/api/v1/profiles', { name, distro: 'hd' });
    assert.equal(r.status, 400, name);
    assert.equal((r.body as Obj)['field'], 'name');
    const rn = await srv.api('POST', '/api/v1/profiles/hp/rename', { new_name: name });
    assert.equal(rn.status, 400, name);
    assert.equal((rn.body as Obj)['field'], 'new_name');
  }
});

test('a 20,000-deep JSON detail is a 400 naming the body, and the server keeps running', async () => {
  const depth = 20_000;
  const raw = '{"type":"install_start","detail":' + '{"a":'.repeat(depth) + '1' + '}'.repeat(depth) + '}';
  const r = await srv.api('POST', '/api/v1/systems/hs/events', undefined, { raw });
  assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 200));
  assert.equal((r.body as Obj)['code'], 'BAD_JSON');
  assert.equal((r.body as Obj)['field'], 'body');
  const ok = await srv.api('POST', '/api/v1/systems/hs/events', { type: 'install_start', detail: { a: { b: { c: 1 } } } });
  assert.equal(ok.status, 201);
});

test('bad percent-encoding in a path is BAD_PATH naming the path, not a body error', async () => {
  for (const p of ['/api/v1/systems/%E0%A4%A', '/api/v1/systems/%zz', '/autoinstall/system/%C0']) {
    const r = await srv.api('GET', p, undefined, { auth: false });
    assert.equal(r.status, 400, `${p}: ${JSON.stringify(r.body)}`);
    assert.equal((r.body as Obj)['code'], 'BAD_PATH', p);
    assert.equal((r.body as Obj)['field'], 'path', p);
  }
});
