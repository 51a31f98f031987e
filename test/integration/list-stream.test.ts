/**
 * Streamed listings (issue 19): GET /api/v1/systems is written page by page
 * as the store reads it (api/objects.ts streamList), and `forge system
 * list`/`find` print rows as they arrive (api/client.ts JsonRows). A real `forge
 * serve` on its default SQLite store, as the README starts it.
 *
 * The proof that the first row leaves before the set is read is a
 * server-side count, not a timing: the client reads the first row and then
 * stops reading; the socket fills, the server's writes wait for it to drain,
 * and /metrics (forge_store_operation_duration_seconds_count{op="listPage"})
 * shows it has read fewer pages than the whole listing needs. Documents are
 * ~4 KB (a long comment) so the listing (~85 MB) is far beyond what the
 * kernel's loopback buffers can hold (tcp_rmem max 32 MB + tcp_wmem 4 MB).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { JsonRows } from '../../server/api/client.js';
import { LIST_PAGES } from '../../server/api/objects.js';
import { startForge, type ForgeServer } from '../lib/server.js';

const COUNT = 20_000;
let srv: ForgeServer;

const mac = (n: number): string => `52:54:00:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;

before(async () => {
  srv = await startForge({ timeoutMs: 60_000 });
  assert.equal((await srv.api('POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' })).status, 201);
  assert.equal((await srv.api('POST', '/api/v1/profiles', { name: 'p', distro: 'd' })).status, 201);
  assert.equal((await srv.api('POST', '/api/v1/profiles', { name: 'q', distro: 'd', comment: 'second' })).status, 201);
  const comment = 'x'.repeat(4000);
  for (let i = 0; i < COUNT; i += 2000) {
    const batch = Array.from({ length: 2000 }, (_, k) => ({ name: `sys${i + k}`, profile: 'p', comment, interfaces: { eth0: { mac_address: mac(i + k) } } }));
    const r = await srv.api('POST', '/api/v1/systems/bulk', batch);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
});
after(async () => {
  await srv?.stop();
});

async function pagesRead(): Promise<number> {
  const r = await fetch(`${srv.url}/metrics`, { headers: { authorization: `Bearer ${srv.token}` } });
  const m = /forge_store_operation_duration_seconds_count\{op="listPage"\} (\d+)/.exec(await r.text());
  return Number(m?.[1] ?? 0);
}

test('the first row is sent before the listing is read whole (server-side page count), and the rest follows', async () => {
  const needed = 1 + Math.ceil((COUNT - LIST_PAGES.first) / LIST_PAGES.rest);
  const before = await pagesRead();
  const rows: { name: string }[] = [];
  let res: http.IncomingMessage | undefined;
  const firstRow = new Promise<void>((resolve, reject) => {
    const parser = new JsonRows((t) => {
      rows.push(JSON.parse(t) as { name: string });
      if (rows.length === 1) {
        res!.pause();
        resolve();
      }
    });
    http
      .get(`${srv.url}/api/v1/systems`, { headers: { authorization: `Bearer ${srv.token}` } }, (r) => {
        res = r;
        r.setEncoding('utf8');
        r.on('data', (d: string) => parser.push(d));
        r.on('end', () => parser.end());
      })
      .on('error', reject);
  });
  await firstRow;
  assert.equal(rows[0]!.name, 'sys0');
  // The server stops where the socket is full: give it time to read on if it (wrongly) would.
  await new Promise((r) => setTimeout(r, 2000));
  const read = (await pagesRead()) - before;
  assert.ok(read >= 1 && read < needed, `pages read with the client paused after its first row: ${read} of ${needed}`);
  const done = new Promise<void>((resolve) => res!.on('end', () => resolve()));
  res!.resume();
  await done;
  assert.equal(rows.length, COUNT);
  assert.equal((await pagesRead()) - before, needed);
});

test('the streamed listing is the stored documents, as the export has them; list and find print the same rows as before', async () => {
  const exported = (await srv.api('GET', '/api/v1/export')).body as { systems: unknown[]; profiles: unknown[] };
  const r = await fetch(`${srv.url}/api/v1/systems`, { headers: { authorization: `Bearer ${srv.token}` } });
  assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(await r.text(), JSON.stringify(exported.systems), 'byte for byte');
  // Filters and fields go through the same pages (a filter SQL checks, one checked on the document).
  const names = (await srv.api('GET', '/api/v1/systems?fields=name&name=sys1999*')).body as { name: string }[];
  assert.deepEqual(names.map((n) => n.name), ['sys1999', 'sys19990', 'sys19991', 'sys19992', 'sys19993', 'sys19994', 'sys19995', 'sys19996', 'sys19997', 'sys19998', 'sys19999']);
  assert.deepEqual(((await srv.api('GET', '/api/v1/profiles?comment=sec*')).body as { name: string }[]).map((p) => p.name), ['q']);
  assert.deepEqual((await srv.api('GET', '/api/v1/systems?comment=nomatch')).body, []);
  // Without a token secrets are masked, row by row.
  const anon = (await srv.api('GET', '/api/v1/systems?name=sys1&fields=name,profile', undefined, { auth: false })).body;
  assert.deepEqual(anon, [{ name: 'sys1', profile: 'p' }]);

  const list = await srv.cli(['system', 'list']);
  assert.equal(list.code, 0, list.stderr);
  const printed = list.stdout.trimEnd().split('\n');
  assert.equal(printed.length, COUNT);
  assert.deepEqual(printed.slice(0, 3), ['   sys0', '   sys1', '   sys10']);
  const pj = await srv.cli(['profile', 'list', '--json']);
  assert.equal(pj.stdout, JSON.stringify(exported.profiles, null, 2) + '\n', '--json prints what JSON.stringify(list, null, 2) did');
  const find = await srv.cli(['system', 'find', '--name', 'sys1999?', '--json']);
  assert.equal(find.code, 0, find.stderr);
  assert.deepEqual(JSON.parse(find.stdout), ['sys19990', 'sys19991', 'sys19992', 'sys19993', 'sys19994', 'sys19995', 'sys19996', 'sys19997', 'sys19998', 'sys19999']);
  const none = await srv.cli(['system', 'find', '--name', 'zzz*', '--json']);
  assert.equal(none.stdout, '[]\n');
});
