/**
 * The /api/v1 contract: every route the running application registers under
 * /api/v1 is in the OpenAPI document it serves, with the same methods, and
 * the document lists no route the application does not serve. Read from the
 * real Express route table of a server built by main.ts (whatever router
 * registers a route), so a route mounted around the route table
 * (api/routes.ts), or an entry left behind, fails here. The document is
 * checked by swagger-parser (the OpenAPI 3.1 JSON schema, $ref resolution,
 * path parameters, unique operation ids), and every row's auth level is
 * tried over HTTP: each admin operation refuses a request without a token
 * (401 AUTH_REQUIRED), no anonymous or read operation does. No route outside
 * /api/v1 can match a path under it (the app tries the API first).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCI } from '../lib/env.js';
import { defaults } from '../../server/config.js';
import { memoryLogger } from '../../server/log.js';
import { startServer } from '../../server/main.js';

interface Layer {
  rawPath?: unknown;
  route?: { path: unknown; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** `/systems/:name/events` -> `/systems/{name}/events`. */
function openapiPath(p: string): string {
  return p.replace(/:([A-Za-z_]+)/g, '{$1}').replace(/\*([A-Za-z_]+)/g, '{$1}');
}

function routesOf(stack: Layer[], prefix: string, out: Set<string>): void {
  for (const l of stack) {
    if (l.route !== undefined) {
      const paths = Array.isArray(l.route.path) ? l.route.path : [l.route.path];
      for (const p of paths) {
        if (typeof p !== 'string') continue;
        for (const [m, on] of Object.entries(l.route.methods)) if (on && m !== '_all') out.add(`${m.toUpperCase()} ${openapiPath(prefix + p)}`);
      }
    } else if (l.handle?.stack !== undefined) {
      const mount = typeof l.rawPath === 'string' && l.rawPath !== '/' ? l.rawPath : '';
      routesOf(l.handle.stack, prefix + mount, out);
    }
  }
}

/**
 * swagger-parser (a devDependency): loaded by name at run time so a checkout
 * whose node_modules predates it still builds; missing in CI is a failure.
 */
async function openapiValidator(t: TestContext): Promise<((doc: unknown) => Promise<unknown>) | undefined> {
  const name = '@apidevtools/swagger-parser';
  try {
    const m = (await import(name)) as { default: { validate(doc: unknown): Promise<unknown> } };
    return (doc) => m.default.validate(doc);
  } catch (e) {
    const why = `needs the npm package ${name} (npm install): ${e instanceof Error ? e.message : String(e)}`;
    if (inCI()) throw new Error(`CI=true and the OpenAPI validator is missing: ${why}`);
    t.diagnostic(`document NOT validated: ${why}`);
    return undefined;
  }
}

test('every /api/v1 route is in the OpenAPI document and the document lists only served routes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fg-contract-'));
  const srv = await startServer(
    { ...defaults(), data_dir: dir, listen: '127.0.0.1', http_port: 0, tftp_enabled: false, dhcp_mode: 'off', server: '127.0.0.1' },
    memoryLogger('warn'),
  );
  try {
    const served = new Set<string>();
    const app = srv.app as unknown as { router: { stack: Layer[] } };
    routesOf(app.router.stack, '', served);
    const api = new Set([...served].filter((r) => r.split(' ')[1]!.startsWith('/api/v1/')));
    assert.ok(api.has('GET /api/v1/systems/{name}'), 'the walk sees the object routes');
    assert.ok(api.has('POST /api/v1/systems/{name}/install/done'), 'and the autoinstall module\'s');
    assert.ok(api.has('GET /api/v1/distros/{name}/files'), 'and the boot module\'s');
    // The app tries /api/v1 before every other router (services/http/app.ts): that changes no
    // answer only while no route outside it has a first segment that could be `api`.
    const outside = [...served].map((r) => r.split(' ')[1]!).filter((p) => !p.toLowerCase().startsWith('/api/v1/'));
    assert.ok(outside.length >= 10, `the walk sees the public routes (${outside.length})`);
    assert.deepEqual(outside.filter((p) => !/^\/(?!api(\/|$))[A-Za-z0-9_.-]+(\/|$)/i.test(p)), [], 'routes outside /api/v1 whose first segment could be api');

    const res = await fetch(`http://127.0.0.1:${srv.httpPort}/api/v1/openapi.json`);
    const doc = (await res.json()) as { paths: Record<string, Record<string, { 'x-forge-auth'?: string; responses?: Record<string, { content?: Record<string, unknown> }> }>> };
    const documented = new Set<string>();
    for (const [p, item] of Object.entries(doc.paths)) {
      if (!p.startsWith('/api/v1/')) continue;
      for (const m of ['get', 'post', 'put', 'patch', 'delete']) if (item[m] !== undefined) documented.add(`${m.toUpperCase()} ${p}`);
    }
    assert.deepEqual([...api].filter((r) => !documented.has(r)).sort(), [], 'served but not in OpenAPI');
    assert.deepEqual([...documented].filter((r) => !api.has(r)).sort(), [], 'in OpenAPI but not served');
    // The installer-facing rows are documented with the API and served as documented.
    for (const r of ['GET /autoinstall/{kind}/{name}', 'GET /boot/distro/{name}/{which}', 'POST /cblr/svc/op/trig/mode/{mode}/system/{name}']) {
      assert.ok(served.has(r), `${r} served`);
      const [m, p] = r.split(' ') as [string, string];
      assert.ok(doc.paths[p]?.[m.toLowerCase()] !== undefined, `${r} documented`);
    }

    // The OpenAPI tooling's own validator (the 3.1 JSON schema and $ref resolution; throws naming the first problem).
    const validate = await openapiValidator(t);
    if (validate !== undefined) await validate(structuredClone(doc));

    // Each operation's auth level is what the server enforces.
    let admin = 0;
    for (const [p, item] of Object.entries(doc.paths)) {
      if (!p.startsWith('/api/v1/')) continue;
      for (const [m, op] of Object.entries(item)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(m)) continue;
        const auth = op['x-forge-auth'];
        assert.ok(auth === 'anonymous' || auth === 'read' || auth === 'token' || auth === 'admin', `${m} ${p}: x-forge-auth ${String(auth)}`);
        if (op.responses?.['200']?.content?.['text/event-stream'] !== undefined) continue; // a stream stays open
        const url = `http://127.0.0.1:${srv.httpPort}${p.replace(/\{[^}]+\}/g, 'no-such-thing')}`;
        const r = await fetch(url, { method: m.toUpperCase(), ...(m === 'get' || m === 'delete' ? {} : { headers: { 'content-type': 'application/json' }, body: '{}' }) });
        const body = (await r.json().catch(() => ({}))) as { code?: string };
        if (auth === 'admin' || auth === 'token') {
          admin++;
          assert.equal(r.status, 401, `${m.toUpperCase()} ${p} without a token`);
          assert.equal(body.code, 'AUTH_REQUIRED', `${m.toUpperCase()} ${p}`);
        } else {
          assert.notEqual(r.status, 401, `${m.toUpperCase()} ${p} (${auth}) answers without a token`);
        }
      }
    }
    assert.ok(admin > 20, `${admin} admin operations tried`);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
