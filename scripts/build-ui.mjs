#!/usr/bin/env node
// Builds the web UI into dist/ui at `npm run build` (after `tsc -p
// ui/tsconfig.json` type-checked it): esbuild bundles ui/app.ts with the
// server modules it shares (the typed API client, the error catalogue, the
// event table; types are erased) into one dist/ui/app.js, and the page and
// stylesheet are copied beside it. platform 'browser' makes a run-time import
// that reaches a node: builtin fail the build instead of the page. No CDN:
// the UI is three files forge serves at /ui.
import { copyFileSync, mkdirSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('../', import.meta.url).pathname;
mkdirSync(`${root}dist/ui`, { recursive: true });
await build({
  entryPoints: [`${root}ui/app.ts`],
  outfile: `${root}dist/ui/app.js`,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  charset: 'utf8',
  legalComments: 'none',
  logLevel: 'warning',
});
for (const f of ['index.html', 'style.css']) copyFileSync(`${root}ui/${f}`, `${root}dist/ui/${f}`);
