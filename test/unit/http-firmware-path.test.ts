/**
 * The firmware path (services/http/boot.ts firmwareConfig): which config requests are answered
 * before Express, checked against Express itself. The same raw request lines go to an Express
 * app holding the three routes with forge's patterns; for every line, either firmwareConfig
 * declines it (and Express answers, as before) or it names the route Express matched and the
 * parameter Express gave the handler. A recogniser that took a spelling Express reads
 * differently (a query, percent-encoding, a trailing slash, other case) fails here, as does
 * one that declined everything (the counts of lines taken).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Request } from 'express';
import { firmwareConfig } from '../../server/services/http/boot.js';

const ROUTES = ['/boot/ipxe/:mac', '/boot/pxelinux.cfg/:name', '/boot/grub/*rest'] as const;

let server: http.Server;
let port: number;

before(async () => {
  const app = express();
  app.set('query parser', 'simple');
  for (const route of ROUTES) {
    app.get(route, (req: Request, res) => {
      const v = Object.values(req.params as Record<string, unknown>)[0];
      res.json({ route, param: Array.isArray(v) ? v.join('/') : v });
    });
  }
  app.use((_req, res) => {
    res.status(404).json({ route: null });
  });
  server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => {
  server.close();
});

/** One raw request line (bytes as written, no client normalisation); Express's match. */
function ask(method: string, target: string): Promise<{ route: string | null; param?: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => {
      const body = data.slice(data.indexOf('\r\n\r\n') + 4);
      if (method === 'HEAD') {
        resolve({ route: /^HTTP\/1\.1 200/.test(data) ? 'head-200' : null });
        return;
      }
      try {
        resolve(JSON.parse(body) as { route: string | null; param?: string });
      } catch {
        resolve({ route: null });
      }
    });
    s.write(`${method} ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
}

const MAC = '52:54:00:ab:cd:ef';
const TAKEN = [
  `/boot/ipxe/${MAC}`,
  '/boot/ipxe/52-54-00-AB-CD-EF',
  '/boot/ipxe/default',
  `/boot/ipxe/${MAC}.ipxe`,
  '/boot/ipxe/not-a-mac',
  '/boot/pxelinux.cfg/01-52-54-00-ab-cd-ef',
  '/boot/pxelinux.cfg/default',
  '/boot/grub/grub.cfg',
  '/boot/grub/grub.cfg-01-52-54-00-ab-cd-ef',
  `/boot/grub/system/${MAC}`,
  '/boot/grub/a/b/c.cfg',
  '/boot/grub/../x',
];
const DECLINED = [
  `/boot/ipxe/${MAC}?x=1`,
  '/boot/ipxe/52%3A54%3A00%3Aab%3Acd%3Aef',
  `/boot/ipxe/${MAC}/`,
  `/BOOT/IPXE/${MAC}`,
  `/boot/ipxe/${MAC}/extra`,
  '/boot/ipxe/',
  '/boot/grub/',
  '/boot/grub//x',
  '/boot/grub/x/',
  '/boot/pxelinux.cfg/a/b',
  '/boot/loaders/undionly.kpxe',
  `/i/0123456789abcdef0123456789abcdef/boot/ipxe/${MAC}`,
  `//boot/ipxe/${MAC}`,
  `http://x/boot/ipxe/${MAC}`,
  '/boot/ipxe/a b',
];

test('firmwareConfig takes only what Express reads the same way, with the parameter Express gives', async () => {
  let taken = 0;
  for (const target of [...TAKEN, ...DECLINED]) {
    const mine = firmwareConfig('GET', target);
    if (mine === undefined) {
      assert.ok(DECLINED.includes(target), `${target}: declined, but it is a plain firmware request`);
      continue;
    }
    taken++;
    assert.ok(TAKEN.includes(target), `${target}: taken, but Express must answer it`);
    const theirs = await ask('GET', target);
    assert.deepEqual({ route: mine.route, param: mine.param }, theirs, target);
  }
  assert.equal(taken, TAKEN.length);
});

test('firmwareConfig: GET and HEAD only; the kind names the route', async () => {
  assert.equal(firmwareConfig('HEAD', `/boot/ipxe/${MAC}`)?.kind, 'ipxe');
  assert.equal((await ask('HEAD', `/boot/ipxe/${MAC}`)).route, 'head-200', 'Express answers HEAD with the GET route');
  for (const m of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', undefined]) assert.equal(firmwareConfig(m, `/boot/ipxe/${MAC}`), undefined, String(m));
  assert.equal(firmwareConfig('GET', undefined), undefined);
  assert.deepEqual(firmwareConfig('GET', '/boot/pxelinux.cfg/default'), { kind: 'pxelinux', route: '/boot/pxelinux.cfg/:name', param: 'default' });
  assert.deepEqual(firmwareConfig('GET', `/boot/grub/system/${MAC}`), { kind: 'grub', route: '/boot/grub/*rest', param: `system/${MAC}` });
});
