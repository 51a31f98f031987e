/**
 * The /api/v1 contract: every route the running application registers under
 * /api/v1 is in the OpenAPI document it serves, with the same methods, and
 * the document lists no route the application does not serve. Read from the
 * real Express route table of a server built by main.ts (whatever router
 * registers a route), so a route added without its OpenAPI entry, or an entry
 * left behind, fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

test('every /api/v1 route is in the OpenAPI document and the document lists only served routes', async () => {
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

    const res = await fetch(`http://127.0.0.1:${srv.httpPort}/api/v1/openapi.json`);
    const doc = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = new Set<string>();
    for (const [p, item] of Object.entries(doc.paths)) {
      if (!p.startsWith('/api/v1/')) continue;
      for (const m of ['get', 'post', 'put', 'patch', 'delete']) if (item[m] !== undefined) documented.add(`${m.toUpperCase()} ${p}`);
    }
    // The document describes itself by being served; it needs no entry.
    api.delete('GET /api/v1/openapi.json');
    assert.deepEqual([...api].filter((r) => !documented.has(r)).sort(), [], 'served but not in OpenAPI');
    assert.deepEqual([...documented].filter((r) => !api.has(r)).sort(), [], 'in OpenAPI but not served');
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
