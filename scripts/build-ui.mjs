#!/usr/bin/env node
// Builds the web UI into dist/ui at `npm run build`: tsc compiled ui/app.ts
// already (ui/tsconfig.json); this copies the page and the stylesheet beside
// it. No bundler and no CDN: the UI is three files forge serves at /ui.
import { copyFileSync, mkdirSync } from 'node:fs';

const root = new URL('../', import.meta.url).pathname;
mkdirSync(`${root}dist/ui`, { recursive: true });
for (const f of ['index.html', 'style.css']) copyFileSync(`${root}ui/${f}`, `${root}dist/ui/${f}`);
