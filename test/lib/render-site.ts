/**
 * A real `forge serve` with its own site template and snippet directories,
 * for the render integration tests (render-server, render-cloudinit-server):
 * `put` writes a site file, `ok` runs the CLI and asserts exit 0, `get` and
 * `waitEvent` read from the server; `stop` ends it and removes the site.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { getText, startForge, waitForEvent, type ForgeServer } from './server.js';

export interface RenderSite {
  srv: ForgeServer;
  /** The site directory (templates/ and snippets/ below it). */
  site: string;
  /** Write a site file, e.g. put('snippets/per_system/kickstart/partitioning/vm2', '...'). */
  put(rel: string, text: string): void;
  /** `forge ARGS` against the server; fails the test unless it exits 0; its stdout. */
  ok(args: string[]): Promise<string>;
  get(path: string): ReturnType<typeof getText>;
  waitEvent(system: string, type: string, n?: number, timeoutMs?: number): ReturnType<typeof waitForEvent>;
  stop(): Promise<void>;
}

export async function startRenderSite(prefix: string): Promise<RenderSite> {
  const site = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(site, 'templates'));
  mkdirSync(join(site, 'snippets'));
  const srv = await startForge({ args: ['--templates-dir', join(site, 'templates'), '--snippets-dir', join(site, 'snippets')] });
  return {
    srv,
    site,
    put(rel, text) {
      const p = join(site, rel);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, text);
    },
    async ok(args) {
      const r = await srv.cli(args);
      assert.equal(r.code, 0, `forge ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
    get: (path) => getText(srv, path),
    waitEvent: (system, type, n, timeoutMs) => waitForEvent(srv, system, type, n, timeoutMs),
    async stop() {
      await srv.stop();
      rmSync(site, { recursive: true, force: true });
    },
  };
}
