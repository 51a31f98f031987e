/**
 * mountRows (services/http/route.ts) sends a request straight to the rows of its method and
 * first path segment. Its answers must be the ones Express gives with every row registered in
 * table order: the same row wins (fixed before parameter, order between a parameter row and a
 * fixed one), case-insensitive paths, trailing slashes, HEAD through GET rows, OPTIONS' Allow
 * answer, a guard that refuses, next('route'), and what falls through to the app. Both apps
 * are real Express over real sockets; each answer names the row that gave it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { Router } from 'express';
import type { RequestHandler } from 'express';
import { mountRows, type Guards, type RouteRow } from '../../server/services/http/route.js';

const says = (what: string): RequestHandler => (req, res) => {
  res.setHeader('x-row', what);
  res.json({ row: what, params: req.params, route: (req as { route?: { path?: unknown } }).route?.path });
};

const refuse: RequestHandler = (req, res, next) => (req.headers['x-admin'] === 'yes' ? next() : res.status(403).json({ row: 'guard' }));
const guards: Guards = { anonymous: [], read: [], token: [refuse], admin: [refuse] };

const row = (method: RouteRow['method'], path: string, name: string, extra: Partial<RouteRow> = {}): RouteRow => ({
  method,
  path,
  auth: 'anonymous',
  summary: name,
  reply: { description: name },
  handler: says(name),
  ...extra,
});

const ROWS: RouteRow[] = [
  row('get', '/health', 'health'),
  row('get', '/systems/:name/events', 'events'),
  row('get', '/:kind/:name/blended', 'blended (param first)'),
  row('post', '/systems/bulk', 'bulk', { auth: 'admin' }),
  row('post', '/systems', 'create', { auth: 'admin' }),
  row('get', '/systems', 'list', { before: [(req, _res, next) => (req.query['skip'] === '1' ? next('route') : next())] }),
  row('get', '/systems', 'list again (after next(route))'),
  row('get', '/systems/:name', 'get'),
  row('patch', '/systems/:name', 'patch', { auth: 'admin' }),
  row('delete', '/systems/:name', 'delete', { auth: 'admin' }),
  row('get', '/boot/grub/*rest', 'grub'),
  row('get', '/tree/:distro', 'tree'),
  row('get', '/profiles/:name', 'profile'),
];

async function serve(table: (r: Router) => Router): Promise<{ url: string; close: () => Promise<void> }> {
  const app = express();
  app.use('/api/v1', table(Router()));
  app.use((req, res) => res.status(404).json({ row: 'app 404', path: req.path }));
  const srv = http.createServer(app);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, close: () => new Promise((r) => srv.close(() => r())) };
}

async function ask(url: string, method: string, path: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(url + path, { method, headers });
  const body = await res.text();
  return `${res.status} allow=${res.headers.get('allow') ?? ''} row=${res.headers.get('x-row') ?? ''} ${method === 'HEAD' ? '' : body}`;
}

test('route dispatch: every answer is the one the whole table in order gives', async () => {
  const plain = await serve((r) => {
    for (const x of ROWS) r[x.method](x.path, ...guards[x.auth], ...(x.before ?? []), x.handler);
    return r;
  });
  const fast = await serve((r) => mountRows(r, ROWS, guards));
  const cases: [string, string, Record<string, string>?][] = [
    ['GET', '/api/v1/health'],
    ['GET', '/api/v1/HEALTH'],
    ['GET', '/api/v1/health/'],
    ['GET', '/api/v1/systems'],
    ['GET', '/api/v1/Systems?x=1'],
    ['GET', '/api/v1/systems?skip=1'],
    ['GET', '/api/v1/systems/web1'],
    ['GET', '/api/v1/systems/web1/events'],
    ['GET', '/api/v1/systems/web1/blended'],
    ['GET', '/api/v1/profiles/p1/blended'],
    ['GET', '/api/v1/distros/d1/blended'],
    ['GET', '/api/v1/distros/d1'],
    ['GET', '/api/v1/sys%74ems/web1'],
    ['GET', '/api/v1/boot/grub/x86_64-efi/grub.cfg'],
    ['GET', '/api/v1/tree/d1'],
    ['GET', '/api/v1/'],
    ['GET', '/api/v1'],
    ['HEAD', '/api/v1/systems/web1'],
    ['HEAD', '/api/v1/nothing'],
    ['POST', '/api/v1/systems'],
    ['POST', '/api/v1/systems', { 'x-admin': 'yes' }],
    ['POST', '/api/v1/systems/bulk', { 'x-admin': 'yes' }],
    ['POST', '/api/v1/systems/web1'],
    ['POST', '/api/v1/health'],
    ['PATCH', '/api/v1/systems/web1', { 'x-admin': 'yes' }],
    ['DELETE', '/api/v1/systems/web1', { 'x-admin': 'yes' }],
    ['PUT', '/api/v1/systems/web1'],
    ['OPTIONS', '/api/v1/systems/web1'],
    ['OPTIONS', '/api/v1/systems'],
    ['GET', '/other'],
  ];
  try {
    let routed = 0;
    for (const [m, p, h] of cases) {
      const want = await ask(plain.url, m, p, h);
      const got = await ask(fast.url, m, p, h);
      assert.equal(got, want, `${m} ${p}`);
      if (!want.includes('app 404')) routed++;
    }
    // The cases reach rows, guards and OPTIONS answers, not only the fall-through.
    assert.ok(routed >= 20, `${routed} cases answered by the table`);
    assert.match(await ask(fast.url, 'GET', '/api/v1/distros/d1/blended'), /row=blended \(param first\)/);
    assert.match(await ask(fast.url, 'GET', '/api/v1/systems?skip=1'), /list again/);
  } finally {
    await plain.close();
    await fast.close();
  }
});
